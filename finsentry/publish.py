"""Publishing the training module's two kinds of events: model updates and analyst labels.

Both are rare, so each publish opens a kafka-python producer, waits for the broker's
acknowledgement and closes it: the caller learns at once whether the record is durable.
The producer settings (acks=all, no idempotence on the embedded broker, TLS/SASL) are
finsentry/kafka.py's, as for every publisher.
"""

from __future__ import annotations

import logging

from kafka import KafkaProducer
from kafka.errors import KafkaError
from pydantic import BaseModel

from finsentry.errors import FinsentryError
from finsentry.kafka import producer_config
from finsentry.records import Label, ModelUpdate
from finsentry.settings import Settings

log = logging.getLogger("finsentry.training.publish")

# One key for every model update: they land on one partition, so workers see them in order.
MODEL_UPDATE_KEY = b"model"


class PublishError(FinsentryError, RuntimeError):
    """The broker did not acknowledge the record."""


def publish_record(
    settings: Settings, topic: str, key: bytes, record: BaseModel, timeout_s: float | None = None
) -> int:
    """Send one record and wait for its acknowledgement (at most the producer delivery
    timeout); returns its offset."""
    timeout_s = timeout_s or settings.producer_delivery_timeout_s
    config = {
        **producer_config(settings),
        "client_id": f"{settings.app_id}-training",
        "max_block_ms": int(timeout_s * 1000),
    }
    producer = None
    try:
        producer = KafkaProducer(**config)  # connects at once: an unreachable broker fails here
        metadata = producer.send(topic, key=key, value=record.model_dump_json().encode()).get(timeout=timeout_s)
    except KafkaError as exc:
        raise PublishError(f"{topic}: the broker did not acknowledge the record: {type(exc).__name__}: {exc}") from exc
    finally:
        if producer is not None:
            producer.close(timeout=5)
    offset: int = metadata.offset
    return offset


def publish_model_update(settings: Settings, update: ModelUpdate) -> int:
    offset = publish_record(settings, settings.topic("model-updates"), MODEL_UPDATE_KEY, update)
    log.info("model update published action=%s version=%s offset=%d", update.action, update.version, offset)
    return offset


def publish_label(settings: Settings, label: Label) -> int:
    """Analyst feedback; keyed by document so corrections of one document stay in order."""
    offset = publish_record(settings, settings.topic("labels"), label.doc_id.encode(), label)
    log.info("label published doc=%s sentiment=%s topic=%s", label.doc_id, label.sentiment, label.topic)
    return offset


class ModelUpdatePublisher:
    """The registry's publisher: a callable taking a ModelUpdate."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def __call__(self, update: ModelUpdate) -> None:
        publish_model_update(self.settings, update)
