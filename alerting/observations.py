"""What the detector sees of a scored document: one small record per scope it counts in.

(Besides observations the topic carries `Tick`s and the source partitions' `Watermark`s.)

A document counts in the global scope, in its topic and in each entity it names. The worker
publishes observations keyed ``f"{scope}:{key}"`` so that all observations of one scope
land in one partition and one worker holds that scope's state (scale-out by partitions).
A batch of scored documents becomes one `ObservationGroup` message per scope, not one
message per document and scope: the global and topic scopes see nearly every document.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable, Literal, Union

from pydantic import BaseModel, field_validator

from finsentry.records import ScoredDocument

Scope = Literal["global", "topic", "entity"]
GLOBAL_KEY = "all"


class Observation(BaseModel):
    scope: Scope
    key: str
    doc_id: str
    published_at: datetime
    negative: bool  # the sentiment label is "negative"
    score: float  # p_positive - p_negative
    title: str | None = None
    url: str | None = None
    source: str | None = None
    model_version: str | None = None
    dup_of: str | None = None  # id of the earlier story this one repeats: counted once, there
    explanation: list[tuple[str, float]] | None = None

    @field_validator("published_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("published_at has no time zone")
        return value.astimezone(timezone.utc)

    @property
    def state_key(self) -> str:
        """The partition key and the detector's state key."""
        return state_key(self.scope, self.key)


def state_key(scope: str, key: str) -> str:
    return f"{scope}:{key}"


def fan_out(record: ScoredDocument) -> list[Observation]:
    """One observation for the global scope, one for the topic, one per distinct entity."""
    common = dict(
        doc_id=record.id,
        published_at=record.published_at,
        negative=record.sentiment.label == "negative",
        score=record.sentiment.score,
        title=record.title,
        url=record.url,
        source=record.source,
        model_version=record.model_version,
        dup_of=record.dup_of,
        explanation=record.explanation,
    )
    out = [
        Observation(scope="global", key=GLOBAL_KEY, **common),
        Observation(scope="topic", key=record.topic.label, **common),
    ]
    seen: set[str] = set()
    for entity in record.entities:
        name = entity.strip()
        if name and name not in seen:
            seen.add(name)
            out.append(Observation(scope="entity", key=name, **common))
    return out


class ObservationGroup(BaseModel):
    """The observations of one scope from one batch of scored documents, in order."""

    key: str  # "scope:key"
    observations: list[Observation]


class Tick(BaseModel):
    """Moves the clock of a quiet scope (see the detect agent's timer)."""

    tick: float  # event time, epoch seconds
    key: str  # "scope:key"


class Watermark(BaseModel):
    """How far one source partition has delivered, sent to every observations partition
    after the observations it covers (see watermarks.py)."""

    watermark: float | None  # newest event time delivered from the source (None: nothing yet)
    source: str  # "scored:<partition>"
    partition: int = 0  # the observations partition this copy is for
    idle: bool = False  # nothing arrived for a while and nothing waits upstream


Message = Union[ObservationGroup, Tick, Watermark, Observation]


def group_by_scope(observations: Iterable[Observation]) -> list[ObservationGroup]:
    groups: dict[str, list[Observation]] = {}
    for obs in observations:
        groups.setdefault(obs.state_key, []).append(obs)
    return [ObservationGroup(key=key, observations=items) for key, items in groups.items()]


def parse_message(payload: bytes) -> Message:
    """A message of the observations topic: a group, a tick, or (as written before
    groups existed) a single observation. Raises pydantic's ValidationError if none."""
    if payload.startswith(b'{"tick"'):
        return Tick.model_validate_json(payload)
    if payload.startswith(b'{"watermark"'):
        return Watermark.model_validate_json(payload)
    if payload.startswith(b'{"key"'):
        return ObservationGroup.model_validate_json(payload)
    return Observation.model_validate_json(payload)
