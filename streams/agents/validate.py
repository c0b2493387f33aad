"""validate: docs.raw → docs.valid, or → dlq with the reason and the raw payload."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any

import faust
from pydantic_core import PydanticSerializationError

from finsentry import metrics
from finsentry.records import DeadLetter, DeadReason, InvalidPayload, ValidDocument, parse_document
from finsentry.streams.runtime import Runtime, deliver_all

log = logging.getLogger("finsentry.validate")


def reason_kind(exc: BaseException) -> DeadReason:
    """The metric label of a validation failure: its own kind, or schema for anything else."""
    return exc.kind if isinstance(exc, InvalidPayload) else DeadReason.SCHEMA


def validate_payload(
    payload: bytes | None, ingested_at: float, max_text_bytes: int, future_tolerance_s: float = 3600.0
) -> ValidDocument:
    """Raw bytes → ValidDocument (stable id, UTC time, ingest time), or ValueError(reason)."""
    if payload is None:
        raise InvalidPayload(DeadReason.SCHEMA, "empty message (no value)")
    received = datetime.fromtimestamp(ingested_at, timezone.utc)
    doc = parse_document(payload, max_text_bytes).with_defaults(received)
    published_at = doc.published_at
    assert published_at is not None  # with_defaults fills it
    ahead = (published_at - received).total_seconds()
    if ahead > future_tolerance_s:
        raise InvalidPayload(
            DeadReason.FUTURE_TIME,
            f"published_at {published_at.isoformat()} is {ahead / 3600:.1f} h after the document "
            f"was received (tolerance {future_tolerance_s / 3600:g} h): check the source's clock",
        )
    valid = ValidDocument(**doc.model_dump(), ingested_at=ingested_at)
    try:
        valid.model_dump_json()  # what deliver() sends: a value it cannot encode must not reach it
    except PydanticSerializationError as exc:
        raise ValueError(
            f"document cannot be encoded as UTF-8 JSON (a lone surrogate escape such as \\ud800?): {exc}"
        ) from None
    return valid


def register(app: faust.App, rt: Runtime) -> Any:
    topics = rt.require_topics()

    @app.agent(topics.raw, name="finsentry.validate")
    async def validate(stream: Any) -> None:  # a faust Stream (take_events is not on StreamT)
        # Events in batches so deliveries are pipelined instead of one round trip each;
        # the batch is acknowledged after every output was delivered.
        async for events in stream.take_events(rt.settings.max_batch, within=rt.settings.batch_window_s / 2):
            valid, dead = [], []
            for event in events:
                metrics.DOCS_INGESTED.inc()
                message = event.message
                ingested_at = message.timestamp if message.timestamp else time.time()
                try:
                    doc = validate_payload(
                        event.value, ingested_at, rt.settings.max_text_bytes, rt.settings.future_tolerance_s
                    )
                except Exception as exc:  # noqa: BLE001 - a payload must never stop this agent
                    reason = str(exc)
                    if not isinstance(exc, ValueError):  # not a reason we wrote: a bug to fix, loudly
                        log.exception("validation failed unexpectedly offset=%s/%s", message.partition, message.offset)
                        reason = f"validation failed unexpectedly: {type(exc).__name__}: {exc}"
                    metrics.DOCS_DEAD.labels(stage="validate", reason=reason_kind(exc).value).inc()
                    log.info(
                        "dead-lettered stage=validate reason=%r offset=%s/%s", reason, message.partition, message.offset
                    )
                    dead.append(
                        (
                            message.key,
                            DeadLetter.of(
                                event.value or b"",
                                reason,
                                "validate",
                                topic=message.topic,
                                partition=message.partition,
                                offset=message.offset,
                            ),
                        )
                    )
                    continue
                metrics.DOCS_VALID.labels(source=metrics.source_label(doc.source)).inc()
                valid.append((doc.key, doc))
            await deliver_all(topics.dlq, dead)
            await deliver_all(topics.valid, valid)

    return validate
