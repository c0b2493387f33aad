"""The topics of the pipeline. Every topic carries raw bytes (JSON); agents parse them.

docs.raw → [validate] → docs.valid → [score] → docs.scored → [index] → store
                     ↘ dlq                                  ↘ [observe] → alerts.observations
                                                               → [detect] → alerts → [notify]
labels → [labels] → store;  model-updates → every worker (not a consumer group)
"""

from __future__ import annotations

from dataclasses import dataclass

import faust
from faust.types import ChannelT

from finsentry.settings import Settings


@dataclass
class Topics:
    raw: ChannelT
    valid: ChannelT
    scored: ChannelT
    observations: ChannelT
    alerts: ChannelT
    dlq: ChannelT
    labels: ChannelT
    model_updates: ChannelT

    @classmethod
    def declare(cls, app: faust.App, settings: Settings) -> "Topics":
        def topic(name: str, internal: bool = True) -> ChannelT:
            return app.topic(
                settings.topic(name),
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
                partitions=settings.topic_partitions,
                internal=internal,
            )

        return cls(
            raw=topic("docs.raw"),
            valid=topic("docs.valid"),
            scored=topic("docs.scored"),
            observations=topic("alerts.observations"),
            alerts=topic("alerts"),
            dlq=topic("dlq"),
            labels=topic("labels"),
            model_updates=topic("model-updates"),
        )

    def names(self) -> list[str]:
        return [
            t.get_topic_name()
            for t in (
                self.raw,
                self.valid,
                self.scored,
                self.observations,
                self.alerts,
                self.dlq,
                self.labels,
                self.model_updates,
            )
        ]
