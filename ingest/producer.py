"""The one way documents enter Kafka: a kafka-python producer keyed by story.

Every record is acknowledged by all in-sync replicas (acks=all) and retried until
``producer_delivery_timeout_s``; a record that still fails is counted
(``finsentry_ingest_delivery_failures_total``), fails its future, and makes the next
``flush()`` raise — nothing is dropped quietly.

Against the embedded tansu broker the producer runs without idempotence (tansu has no
InitProducerId), so one request in flight keeps retried records in order. It batches as it
does against Kafka: tansu's ListOffsets(LATEST) is wrong for multi-record batches (the base
offset of the newest batch + 1), but everything that reads this topic's end offsets confirms
them with a fetch (streams/end_offsets.py), and nothing else about offsets is affected
(tests/streams/test_embedded_broker_offsets.py). The worker's own producer, whose topics
include table changelogs that Faust's recovery reads to ListOffsets' answer, still sends
one record per batch there (streams/app.py).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.producer.future import FutureRecordMetadata, RecordMetadata

from finsentry import metrics
from finsentry.errors import FinsentryError
from finsentry.kafka import producer_config
from finsentry.records import Document, document_id
from finsentry.settings import Settings, get_settings

log = logging.getLogger("finsentry.ingest.producer")


class DeliveryError(FinsentryError, RuntimeError):
    """Records were not acknowledged by the broker."""

    def __init__(self, failed: int, first: BaseException | None):
        self.failed = failed
        self.first = first
        detail = f": {type(first).__name__}: {first}" if first else ""
        super().__init__(f"{failed} record(s) were not delivered{detail}")


def with_stable_id(doc: Document) -> Document:
    """The document with its id filled — the same id the worker would derive — so that
    publishers can report ids. Nothing else is touched."""
    if doc.id:
        return doc
    return doc.model_copy(update={"id": document_id(doc.source, doc.url, doc.title, doc.text)})


def encode_document(doc: Document) -> bytes:
    return doc.model_dump_json(exclude_none=True).encode("utf-8")


class DocumentProducer:
    """Publishes documents to the raw topic. Thread-safe, like the KafkaProducer inside."""

    def __init__(self, settings: Settings | None = None, *, topic: str | None = None, **overrides: Any):
        self.settings = settings or get_settings()
        self.topic = topic or self.settings.topic("docs.raw")
        self._producer = KafkaProducer(**{**producer_config(self.settings), **overrides})
        self._lock = threading.Lock()
        self.published = 0
        self.failed = 0
        self._unreported_failures = 0
        self._first_unreported: BaseException | None = None

    def publish(self, doc: Document) -> FutureRecordMetadata:
        """Send one document, keyed by its story key; the future resolves to its offset."""
        doc = with_stable_id(doc)
        return self._send(encode_document(doc), doc.key.encode("utf-8"))

    def publish_raw(self, payload: bytes, key: bytes | str | None = None) -> FutureRecordMetadata:
        """Send bytes as they are — for tools and tests that must deliver malformed payloads so
        the worker dead-letters them. Without a key, the payload's hash keeps re-sends together."""
        if key is None:
            key = hashlib.sha1(payload).hexdigest()[:16]
        if isinstance(key, str):
            key = key.encode("utf-8")
        return self._send(payload, key)

    def _send(self, value: bytes, key: bytes) -> FutureRecordMetadata:
        try:
            future = self._producer.send(self.topic, key=key, value=value)
            if future.failed():  # kafka-python 2.x returns a failed future where 3.x raises
                raise future.exception
        except KafkaError as exc:  # e.g. record too large, metadata unavailable within max_block_ms
            self._count_failure(exc)
            raise DeliveryError(1, exc) from exc
        future.add_callback(self._on_success)
        future.add_errback(self._on_failure)
        return future

    def _on_success(self, _metadata: RecordMetadata) -> None:
        with self._lock:
            self.published += 1
        metrics.INGEST_PUBLISHED.inc()

    def _on_failure(self, exc: BaseException) -> None:
        """A record failed after send() returned: the caller may never look at its future,
        so the next flush() reports it."""
        with self._lock:
            self._unreported_failures += 1
            if self._first_unreported is None:
                self._first_unreported = exc
        self._count_failure(exc)

    def _count_failure(self, exc: BaseException) -> None:
        with self._lock:
            self.failed += 1
        metrics.INGEST_DELIVERY_FAILURES.labels(error=type(exc).__name__).inc()
        log.error("delivery failed topic=%s error=%s detail=%s", self.topic, type(exc).__name__, exc)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every record sent so far is acknowledged or failed; raise
        DeliveryError if any failed since the previous flush."""
        try:
            self._producer.flush(timeout)
        except KafkaError as exc:
            raise DeliveryError(0, exc) from exc
        with self._lock:
            failed, first = self._unreported_failures, self._first_unreported
            self._unreported_failures, self._first_unreported = 0, None
        if failed:
            raise DeliveryError(failed, first)

    def close(self, timeout: float | None = None) -> None:
        """Flush, then close; still raises DeliveryError for records that failed."""
        try:
            self.flush(timeout)
        finally:
            self._producer.close(timeout=timeout)

    def __enter__(self) -> "DocumentProducer":
        return self

    def __exit__(self, exc_type, *_exc) -> None:
        if exc_type is None:
            self.close()
        else:  # do not mask the original error with a delivery error
            try:
                self.close()
            except DeliveryError as err:
                log.error("%s while closing after an error", err)
