"""labels: analyst feedback → stored with the document's text for the next training run."""

from __future__ import annotations

import logging
from typing import Any

import faust
from pydantic import ValidationError

from finsentry.records import DeadReason, Label
from finsentry.store.base import UnknownDocument
from finsentry.streams.runtime import Runtime

log = logging.getLogger("finsentry.labels")


def register(app: faust.App, rt: Runtime) -> Any:
    topics = rt.require_topics()

    @app.agent(topics.labels, name="finsentry.labels")
    async def labels(stream: Any) -> None:  # a faust Stream (take_events is not on StreamT)
        await rt.ready.wait()
        async for payload in stream:
            try:
                label = Label.model_validate_json(payload)
            except (ValidationError, ValueError) as exc:
                await rt.dead_letter(payload, f"invalid label: {exc}", "labels", DeadReason.INVALID_LABEL)
                continue
            try:
                # Without text, the store fills it from the document as the model saw it.
                await rt.store.put_label(label.model_copy(update={"text": None}))
            except UnknownDocument:
                reason = f"label for unknown document {label.doc_id}"
                await rt.dead_letter(payload, reason, "labels", DeadReason.UNKNOWN_DOCUMENT)
                continue
            log.info("label stored doc=%s sentiment=%s topic=%s", label.doc_id, label.sentiment, label.topic)

    return labels
