"""The dead-letter topic for operators: read letters, pick some, send them back.

A letter is addressed by its place in the dlq topic, `partition:offset`. Reading never
joins a consumer group or commits offsets, so listing changes nothing for anyone.

Redrive re-publishes a letter's payload, byte for byte, to the input topic of the stage
that refused it (validate → docs.raw, score → docs.valid, index → docs.scored, notify →
alerts, labels → labels). The payload carries the document's id, or the content the id is
derived from, so a redriven document lands on its own record: redriving twice, or a
letter whose document was meanwhile stored, never stores it twice. A raw payload goes back
with the letter's time as its Kafka timestamp, which the worker takes as the receipt time
(and as `published_at` when the document has none), as on its first pass.

Not redriven: letters whose payload was cut (`raw_truncated`: the whole payload is not in
the letter), and detect letters (an observation's partition holds its scope's detector
state; a foreign producer's observation is not worth that risk).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Iterator

from pydantic import ValidationError

from finsentry.errors import FinsentryError
from finsentry.kafka import kafka_python_connection, producer_config
from finsentry.records import DeadLetter, story_key
from finsentry.settings import Settings
from finsentry.streams.end_offsets import end_offsets_sync

INPUT_TOPICS = {
    "validate": "docs.raw",
    "score": "docs.valid",
    "index": "docs.scored",
    "notify": "alerts",
    "labels": "labels",
}
PREVIEW_CHARS = 120


@dataclass
class Letter:
    partition: int
    offset: int
    letter: DeadLetter | None  # None: the dlq record itself is unreadable
    problem: str | None = None

    @property
    def address(self) -> str:
        return f"{self.partition}:{self.offset}"

    def payload(self) -> bytes:
        assert self.letter is not None
        if self.letter.raw_encoding == "base64":
            return base64.b64decode(self.letter.raw)
        return self.letter.raw.encode("utf-8", "surrogatepass")

    def preview(self) -> str:
        if self.letter is None:
            return ""
        if self.letter.raw_encoding == "base64":
            return f"<{self.letter.raw_size or 0} bytes, not UTF-8>"
        text = " ".join(self.letter.raw.split())
        return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"

    def summary(self) -> dict[str, Any]:
        """One line of `finsentry dlq` (JSON form)."""
        if self.letter is None:
            return {"letter": self.address, "problem": self.problem}
        return {
            "letter": self.address,
            "at": self.letter.at.isoformat(),
            "stage": self.letter.stage,
            "reason": self.letter.reason,
            "input_topic": self.letter.topic,
            "size": self.letter.raw_size,
            "truncated": self.letter.raw_truncated,
            "preview": self.preview(),
        }


@dataclass
class LetterFilter:
    stage: str | None = None
    reason: str | None = None  # substring, case-insensitive
    since: datetime | None = None
    until: datetime | None = None
    addresses: set[str] | None = None  # partition:offset

    def __call__(self, item: Letter) -> bool:
        if self.addresses is not None and item.address not in self.addresses:
            return False
        letter = item.letter
        if letter is None:
            return self.addresses is not None or not (self.stage or self.reason or self.since or self.until)
        return (
            (self.stage is None or letter.stage == self.stage)
            and (self.reason is None or self.reason.lower() in letter.reason.lower())
            and (self.since is None or letter.at >= self.since)
            and (self.until is None or letter.at < self.until)
        )


def read_letters(settings: Settings, timeout_s: float = 10.0) -> Iterator[Letter]:
    """Every letter now in the dlq topic, partition by partition, oldest first."""
    from kafka import KafkaConsumer, TopicPartition

    topic = settings.topic("dlq")
    consumer = KafkaConsumer(
        **kafka_python_connection(settings),
        enable_auto_commit=False,
        group_id=None,
        client_id=f"{settings.app_id}-dlq",
        request_timeout_ms=int(max(timeout_s, 6) * 1000) + 1000,
    )
    try:
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return
        # A consumer of its own: confirming the ends fetches, which would disturb this one's order.
        probe = KafkaConsumer(
            **kafka_python_connection(settings),
            enable_auto_commit=False,
            group_id=None,
            client_id=f"{settings.app_id}-dlq-ends",
        )
        try:
            ends = end_offsets_sync(probe, tps, settings.broker_embedded)
        finally:
            probe.close()
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        remaining = {tp for tp in tps if ends[tp] > consumer.position(tp)}
        while remaining:
            batches = consumer.poll(timeout_ms=int(timeout_s * 1000))
            if not batches:
                raise TimeoutError(
                    f"{topic}: no records within {timeout_s:g} s while {len(remaining)} partition(s) had more to read"
                )
            for tp, records in sorted(batches.items(), key=lambda kv: kv[0].partition):
                for record in records:
                    if record.offset >= ends[tp]:
                        continue
                    yield _letter(record.partition, record.offset, record.value)
                if consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
                    consumer.pause(tp)
    finally:
        consumer.close()


def _letter(partition: int, offset: int, value: bytes | None) -> Letter:
    try:
        return Letter(partition, offset, DeadLetter.model_validate_json(value or b""))
    except ValidationError as exc:
        return Letter(partition, offset, None, problem=f"not a dead letter: {exc.errors()[0]['msg']}")


def select(letters: Iterable[Letter], where: LetterFilter, limit: int | None = None) -> list[Letter]:
    """The letters `where` accepts, oldest first (by the time they were dead-lettered; a
    keyed topic spreads them over partitions, so reading order is not time order), at most
    `limit` of them. Unreadable records, which carry no time, come last."""

    def age(item: Letter) -> tuple:
        if item.letter is None:
            return (1, 0.0, item.partition, item.offset)
        return (0, item.letter.at.timestamp(), item.partition, item.offset)

    chosen = sorted((item for item in letters if where(item)), key=age)
    return chosen if limit is None else chosen[:limit]


class NotRedrivable(FinsentryError, ValueError):
    pass


@dataclass
class Redrive:
    letter: Letter
    topic: str
    key: bytes | None
    value: bytes
    timestamp_ms: int | None


def plan_redrive(settings: Settings, item: Letter) -> Redrive:
    """Where and how one letter goes back; NotRedrivable(reason) when it cannot."""
    letter = item.letter
    if letter is None:
        raise NotRedrivable(item.problem or "unreadable letter")
    if letter.raw_truncated:
        raise NotRedrivable(
            f"the payload was cut at {len(letter.raw)} of {letter.raw_size} bytes: "
            "the whole payload is not in the letter"
        )
    if letter.stage not in INPUT_TOPICS:
        raise NotRedrivable(f"letters of stage {letter.stage!r} are not redriven (only {', '.join(INPUT_TOPICS)})")
    value = item.payload()
    topic = letter.topic if letter.stage == "validate" and letter.topic else settings.topic(INPUT_TOPICS[letter.stage])
    return Redrive(
        item,
        topic,
        _key(letter.stage, value),
        value,
        int(letter.at.timestamp() * 1000) if letter.stage == "validate" else None,
    )


def _key(stage: str, value: bytes) -> bytes | None:
    """The key the stage's producer gave the record: the story key of a document, an
    alert's id, a label's document; None where the next agent does not care."""
    try:
        data = json.loads(value)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if stage in ("score", "index") and isinstance(data.get("text"), str):
        return story_key(data.get("title") if isinstance(data.get("title"), str) else None, data["text"]).encode()
    if stage == "notify" and isinstance(data.get("id"), str):
        return data["id"].encode()
    if stage == "labels" and isinstance(data.get("doc_id"), str):
        return data["doc_id"].encode()
    return None


def redrive(settings: Settings, plans: list[Redrive], timeout_s: float | None = None) -> list[int]:
    """Publish every plan and wait for the broker's acknowledgements; their offsets."""
    import hashlib

    from kafka import KafkaProducer

    timeout_s = timeout_s or settings.producer_delivery_timeout_s
    producer = KafkaProducer(**{**producer_config(settings), "client_id": f"{settings.app_id}-dlq-redrive"})
    try:
        futures = [
            producer.send(
                p.topic,
                value=p.value,
                timestamp_ms=p.timestamp_ms,
                key=p.key or hashlib.sha1(p.value).hexdigest()[:16].encode(),
            )
            for p in plans
        ]
        producer.flush(timeout_s)
        return [f.get(timeout=timeout_s).offset for f in futures]
    finally:
        producer.close(timeout=5)
