"""DocumentProducer against the real embedded broker."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
from ingest_helpers import end_offsets, read_topic
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from finsentry import metrics
from finsentry.ingest.producer import DeliveryError, DocumentProducer, producer_config
from finsentry.records import Document, document_id
from finsentry.settings import Settings
from finsentry.streams.broker import EmbeddedBroker


def _docs(n: int) -> list[Document]:
    return [
        Document(source="wire", title=f"Company {i} reports quarter {i % 7}", text=f"Body number {i}.")
        for i in range(n)
    ]


def test_embedded_broker_gets_batches_and_end_offsets_stay_right(settings, broker):
    """Sent back-to-back, the records share batches (a request waits while one is in flight).
    tansu's ListOffsets then answers per batch, not per record; the end offsets every reader
    uses (streams/end_offsets.py) are still the record counts, and every record reads back."""
    docs = _docs(40)
    with DocumentProducer(settings) as producer:
        futures = [producer.publish(doc) for doc in docs]
        producer.flush()
        sent = [f.get(timeout=10) for f in futures]

    offsets = defaultdict(list)
    for meta in sent:
        offsets[meta.partition].append(meta.offset)
    assert len(offsets) > 1  # story keys spread over partitions
    for partition, seen in offsets.items():
        assert seen == list(range(len(seen))), partition

    topic = settings.topic("docs.raw")
    consumer = KafkaConsumer(bootstrap_servers=broker.address, enable_auto_commit=False)
    try:
        listed = {
            tp.partition: n for tp, n in consumer.end_offsets([TopicPartition(topic, p) for p in offsets]).items()
        }
    finally:
        consumer.close()
    assert any(listed[p] < len(o) for p, o in offsets.items()), "no multi-record batch was sent"
    topic = settings.topic("docs.raw")
    ends = end_offsets(broker.address, topic)
    assert {p: n for p, n in ends.items() if n} == {p: len(o) for p, o in offsets.items()}

    records = read_topic(broker.address, topic)
    by_position = {(r.partition, r.offset): r for r in records}
    assert len(records) == len(docs)
    for doc, meta in zip(docs, sent, strict=True):
        record = by_position[(meta.partition, meta.offset)]
        assert record.key == doc.key.encode()
        assert json.loads(record.value)["text"] == doc.text


def test_embedded_settings_batch_without_idempotence():
    embedded = producer_config(Settings(broker_embedded=True, _env_file=None))
    assert "batch_size" not in embedded and embedded["linger_ms"] == 5 and embedded["enable_idempotence"] is False
    assert embedded["acks"] == "all" and embedded["max_in_flight_requests_per_connection"] == 1
    cluster = producer_config(Settings(broker_embedded=False, _env_file=None))
    assert cluster["enable_idempotence"] is True and "batch_size" not in cluster
    assert cluster["compression_type"] == "gzip"


@pytest.mark.parametrize("embedded", [True, False])
def test_every_record_waits_for_all_replicas_and_is_retried_until_the_delivery_timeout(embedded):
    """Durability does not rest on library defaults (retries was 0 before kafka-python 2.2)."""
    config = producer_config(Settings(broker_embedded=embedded, producer_delivery_timeout_s=42, _env_file=None))
    assert config["acks"] == "all"
    assert config["retries"] == 2**31 - 1
    assert config["delivery_timeout_ms"] == 42_000


def test_the_cluster_config_is_accepted_by_the_client(broker):
    """KafkaProducer rejects keyword arguments it does not know, and idempotence with
    retries=0: the cluster config must construct a producer of the installed client.
    (The embedded broker has no InitProducerId; construction does not need it.)"""
    config = producer_config(Settings(broker=broker.url, broker_embedded=False, _env_file=None))
    KafkaProducer(**config).close(timeout=1)


def test_published_document_keeps_its_content_and_gains_only_its_derived_id(settings, broker):
    doc = Document(
        source="wire",
        title="Bank cuts guidance",
        text="Shares fell 8% after the bank cut guidance.",
        url="https://example.test/a",
    )
    with DocumentProducer(settings) as producer:
        producer.publish(doc).get(timeout=10)
    (record,) = read_topic(broker.address, settings.topic("docs.raw"))
    value = json.loads(record.value)
    assert value["id"] == document_id(doc.source, doc.url, doc.title, doc.text)
    assert "published_at" not in value  # the producer stamps no time: the worker fills it
    assert Document.model_validate(value).model_dump(exclude={"id"}) == doc.model_dump(exclude={"id"})
    assert record.key == doc.key.encode()


def test_given_id_is_kept(settings, broker):
    doc = Document(id="custom-1", source="wire", text="Body")
    with DocumentProducer(settings) as producer:
        producer.publish(doc).get(timeout=10)
    (record,) = read_topic(broker.address, settings.topic("docs.raw"))
    assert json.loads(record.value)["id"] == "custom-1"


def test_publish_raw_delivers_bytes_unchanged(settings, broker):
    payloads = [b"{not json", b"\xff\xfe binary", b'{"source": "x"}']
    with DocumentProducer(settings) as producer:
        for payload in payloads:
            producer.publish_raw(payload)
        producer.publish_raw(b"keyed", key="k1")
    records = read_topic(broker.address, settings.topic("docs.raw"))
    assert sorted(r.value for r in records) == sorted(payloads + [b"keyed"])
    assert {r.key for r in records if r.value == b"keyed"} == {b"k1"}


def test_oversized_record_raises_and_is_counted(settings):
    before = metrics.INGEST_DELIVERY_FAILURES.labels(error="MessageSizeTooLargeError")._value.get()
    with DocumentProducer(settings, max_request_size=1000) as producer:
        with pytest.raises(DeliveryError, match="MessageSizeTooLargeError"):
            producer.publish(Document(source="wire", text="x" * 5000))
        assert producer.failed == 1
    after = metrics.INGEST_DELIVERY_FAILURES.labels(error="MessageSizeTooLargeError")._value.get()
    assert after == before + 1


def test_unreachable_broker_fails_the_future_and_the_flush(tmp_path):
    """A broker that goes away: the record times out, its future fails, flush() raises and
    the failure is counted — never a silent drop."""
    with EmbeddedBroker() as own:
        settings = Settings(broker=own.url, broker_embedded=True, _env_file=None)
        producer = DocumentProducer(
            settings, request_timeout_ms=500, delivery_timeout_ms=1500, max_block_ms=1500, reconnect_backoff_max_ms=200
        )
        producer.publish(Document(source="wire", text="first")).get(timeout=10)
    # the broker is stopped now
    future = producer.publish(Document(source="wire", text="second"))
    with pytest.raises(KafkaError):
        future.get(timeout=15)
    with pytest.raises(DeliveryError) as raised:
        producer.flush(timeout=5)
    assert raised.value.failed == 1
    assert producer.published == 1 and producer.failed == 1
    producer._producer.close(timeout=1)


def test_sasl_ssl_settings_reach_the_client():
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_username="scraper",
        kafka_password="pw",
        kafka_ca_file="/etc/ca.pem",
        _env_file=None,
    )
    config = producer_config(settings)
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl_plain_username"], config["sasl_plain_password"]) == ("scraper", "pw")
    assert config["ssl_cafile"] == "/etc/ca.pem"
    assert "sasl_mechanism" not in producer_config(Settings(_env_file=None))
