"""labels: analyst feedback → stored with the document's text for the next training run."""

from __future__ import annotations

import logging
from typing import Any

import faust
from pydantic import ValidationError

from finsentry import metrics
from finsentry.records import DeadLetter, Label
from finsentry.streams.runtime import Runtime, deliver
from finsentry.textnorm import model_input

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
                metrics.DOCS_DEAD.labels(stage="labels", reason="invalid_label").inc()
                await deliver(topics.dlq, None, DeadLetter.of(payload, f"invalid label: {exc}", "labels"))
                continue
            doc = await rt.store.get(label.doc_id)
            if doc is None:
                metrics.DOCS_DEAD.labels(stage="labels", reason="unknown_document").inc()
                await deliver(
                    topics.dlq, None, DeadLetter.of(payload, f"label for unknown document {label.doc_id}", "labels")
                )
                continue
            label.text = model_input(doc.get("title"), doc.get("text"))
            await rt.store.put_label(label)
            log.info("label stored doc=%s sentiment=%s topic=%s", label.doc_id, label.sentiment, label.topic)

    return labels
