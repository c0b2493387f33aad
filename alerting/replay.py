"""Offline replay: scored records → the same dedup, fan-out and detector as the worker.

Records may be `ScoredDocument`s or dicts in the shape `finsentry classify` writes
(sentiment {label, probabilities, score}, topic {label, probability}, entities,
model_version) plus id, published_at, title and source — or the store's export, which
already carries `dup_of`. A record without a `dup_of` key goes through the near-duplicate
check exactly as the score agent does it; one with the key keeps what it says.

Used to tune thresholds on history and to reproduce an alert after the fact: time is the
records' event time only, so the same input gives the same alerts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Iterable, Iterator

from pydantic import ValidationError

from finsentry.alerting.dedup import NearDuplicateIndex
from finsentry.alerting.detector import Detector, DetectorConfig
from finsentry.alerting.observations import fan_out
from finsentry.records import Alert, ScoredDocument, describe_validation_error, document_id
from finsentry.textnorm import model_input

ErrorHandler = Callable[[int, str], None]


def to_scored(record: dict[str, Any]) -> tuple[ScoredDocument, bool]:
    """A replay record → (ScoredDocument, whether it already says what it duplicates).

    Raises ValueError with a reason a person can act on.
    """
    if not isinstance(record, dict):
        raise ValueError(f"a record must be a JSON object, got {type(record).__name__}")
    if not record.get("published_at"):
        raise ValueError("published_at is missing: replay needs each record's event time")
    text = record.get("text") or record.get("title")
    if not text:
        raise ValueError("neither text nor title: nothing to compare for near-duplicates")
    sentiment = record.get("sentiment")
    if isinstance(sentiment, str):
        sentiment = {"label": sentiment}
    if not isinstance(sentiment, dict) or "label" not in sentiment:
        raise ValueError("sentiment is missing or has no label (expected {label, probabilities, score})")
    sentiment = dict(sentiment)
    probabilities = sentiment.setdefault("probabilities", {})
    if "score" not in sentiment:
        if not {"positive", "negative"} <= set(probabilities):
            raise ValueError("sentiment has neither a score nor positive/negative probabilities")
        sentiment["score"] = probabilities["positive"] - probabilities["negative"]
    topic = record.get("topic")
    if isinstance(topic, str):
        topic = {"label": topic, "probability": 1.0}
    if not isinstance(topic, dict) or "label" not in topic:
        raise ValueError("topic is missing or has no label (expected {label, probability})")
    source = record.get("source") or "replay"
    fields = {
        **{k: v for k, v in record.items() if k in ScoredDocument.model_fields},
        "id": record.get("id") or document_id(source, record.get("url"), record.get("title"), text),
        "source": source,
        "text": text,
        "sentiment": sentiment,
        "topic": {"probability": 1.0, **topic},
        "model_version": record.get("model_version") or "unknown",
        "entities": record.get("entities") or [],
    }
    try:
        doc = ScoredDocument.model_validate(fields)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from None
    # Processing times play no part in detection; pin them so a replayed record is reproducible.
    stamp = doc.published_at.timestamp()
    return doc.model_copy(update={"ingested_at": stamp, "scored_at": stamp}), "dup_of" in record


def replay_events(
    records: Iterable[dict | ScoredDocument],
    config: DetectorConfig,
    dedup: NearDuplicateIndex | None = None,
    on_error: ErrorHandler | None = None,
    state: dict[str, dict] | None = None,
) -> Iterator[Alert]:
    """Every alert update in the order the detector emits them."""
    dedup = dedup if dedup is not None else NearDuplicateIndex()
    detector = Detector(config, state if state is not None else {}, record_metrics=False)
    for number, record in enumerate(records, start=1):
        try:
            if isinstance(record, ScoredDocument):
                doc, knows_dup = record, "dup_of" in record.model_fields_set
            else:
                doc, knows_dup = to_scored(record)
        except ValueError as exc:
            if on_error is None:
                raise ValueError(f"record {number}: {exc}") from None
            on_error(number, str(exc))
            continue
        if not knows_dup:
            dup_of = dedup.check(doc.id, model_input(doc.title, doc.text), doc.published_at.timestamp())
            doc = doc.model_copy(update={"dup_of": dup_of})
        for obs in fan_out(doc):
            yield from detector.observe(obs)


def replay(
    records: Iterable[dict | ScoredDocument],
    config: DetectorConfig,
    dedup: NearDuplicateIndex | None = None,
    on_error: ErrorHandler | None = None,
) -> list[Alert]:
    """One alert per episode — its latest update — in the order the episodes opened."""
    latest: dict[str, Alert] = {}
    for alert in replay_events(records, config, dedup, on_error):
        latest[alert.id] = alert
    return list(latest.values())


def by_event_time(records: Iterable[dict]) -> list[dict]:
    """Records sorted by published_at (stable; unparseable times first, reported later)."""

    def key(record: dict) -> float:
        try:
            value = datetime.fromisoformat(str(record.get("published_at")))
            return value.timestamp() if value.tzinfo else float("-inf")
        except (ValueError, AttributeError):
            return float("-inf")

    return sorted(records, key=key)
