"""End to end on real components: the embedded tansu broker, a `finsentry worker` process
with the shipped model, and the SQLite store.

N documents go in (some malformed) → every good one is stored exactly once with sentiment,
topic and model_version; every bad one lands in the dlq with a reason; publishing the same
documents again adds no stored duplicates.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from kafka import KafkaConsumer, TopicPartition

from finsentry.ingest.producer import DocumentProducer
from finsentry.models.engine import SHIPPED_MODEL
from finsentry.records import Document
from finsentry.store import open_store
from finsentry.store import ops as store_ops
from finsentry.streams.process import WorkerProcess, settings_env

pytestmark = pytest.mark.slow

HEADLINES = [
    "Oil slumps as OPEC+ signals higher output",
    "Apple beats earnings estimates, raises dividend",
    "Fed holds rates steady, signals patience",
    "Tesla recalls 100,000 vehicles over steering defect",
    "Gold climbs to record as dollar weakens",
    "JPMorgan cuts price target on Boeing",
    "Treasury yields rise after strong jobs report",
    "Nvidia shares jump on AI chip demand",
]

BAD_PAYLOADS = [
    (b'{"source": "x", "text": "unterminated', "malformed JSON"),
    (b"\xff\xfe not utf-8", "not valid UTF-8"),
    (json.dumps({"source": "x", "title": "no text"}).encode(), "text"),
    (json.dumps({"source": "x", "text": "   "}).encode(), "text is empty"),
    (json.dumps({"source": "x", "text": "wrong kind", "kind": "rumour"}).encode(), "kind"),
    (json.dumps(["not", "an", "object"]).encode(), "JSON object"),
    (json.dumps({"source": "x", "text": "big" * 40_000}).encode(), "over the limit"),
]


def read_topic(address: str, topic: str) -> list[bytes]:
    consumer = KafkaConsumer(bootstrap_servers=address, enable_auto_commit=False, consumer_timeout_ms=2000)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        return [m.value for m in consumer]
    finally:
        consumer.close()


def documents(n: int) -> list[Document]:
    base = datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc)
    return [
        Document(
            source=f"wire-{i % 3}",
            kind="news",
            title=f"{HEADLINES[i % len(HEADLINES)]} ({i})",
            text=f"{HEADLINES[i % len(HEADLINES)]}. Story number {i} with details.",
            url=f"https://example.test/{i}",
            published_at=base + timedelta(seconds=7 * i),
        )
        for i in range(n)
    ]


def test_documents_stored_once_and_bad_ones_dead_lettered(broker, make_settings, tmp_path):
    prefix = f"e2e-{uuid.uuid4().hex[:8]}."
    settings = make_settings(
        broker=broker.url,
        broker_embedded=True,
        topic_prefix=prefix,
        app_id=f"finsentry-{prefix}",
        max_text_bytes=100_000,
    )
    env = settings_env(
        broker=settings.broker,
        broker_embedded=True,
        topic_prefix=prefix,
        app_id=settings.app_id,
        store=settings.store,
        web_port=settings.web_port,
        data_dir=settings.data_dir,
        outbox_path=settings.outbox_path,
        registry_dir=settings.registry_dir,
        model_cache_dir=settings.model_cache_dir,
        backend="torch",
        broker_session_timeout_s=6,
        broker_heartbeat_s=0.5,
        max_text_bytes=100_000,
    )
    docs = documents(60)
    with WorkerProcess(env, tmp_path / "worker.log", settings.web_port) as worker:
        producer = DocumentProducer(settings)
        for doc in docs:
            producer.publish(doc)
        for payload, _ in BAD_PAYLOADS:
            producer.publish_raw(payload)
        producer.flush()

        worker.wait_for(lambda: asyncio.run(store_ops.count(settings.store, settings)) >= len(docs), timeout=120)
        worker.wait_for(lambda: len(read_topic(broker.address, settings.topic("dlq"))) >= len(BAD_PAYLOADS), timeout=60)

        # Re-delivery: the same documents again must not add stored records. A scrape that
        # fails or times out gives no number, so it can never satisfy the wait.
        def stored_total() -> float | None:
            return worker.metrics().get("finsentry_documents_stored_total")

        (stored_before,) = worker.wait_for(
            lambda: (total := stored_total()) is not None and (total,), timeout=60, what="a /metrics scrape"
        )
        for doc in docs:
            producer.publish(doc)
        producer.flush()
        worker.wait_for(
            lambda: (total := stored_total()) is not None and total >= stored_before + len(docs),
            timeout=120,
            what="the re-delivered documents stored",
        )
        served = served_version(settings.web_port)
        assert served == json.loads((SHIPPED_MODEL / "card.json").read_text())["version"]
        producer.close()

        async def check() -> None:
            store = open_store(settings.store, settings)
            await store.open()
            try:
                assert await store.count() == len(docs)
                for doc in docs:
                    stored = await store.get(doc.with_defaults().id)
                    assert stored is not None, doc.title
                    assert stored["sentiment"]["label"] in ("negative", "neutral", "positive")
                    assert abs(sum(stored["sentiment"]["probabilities"].values()) - 1) < 1e-3
                    assert stored["topic"]["label"]
                    assert stored["model_version"] == served, (stored["model_version"], served)
            finally:
                await store.close()

        asyncio.run(check())

    letters = [json.loads(v) for v in read_topic(broker.address, settings.topic("dlq"))]
    assert len(letters) == len(BAD_PAYLOADS)
    assert all(letter["stage"] == "validate" and letter["raw"] for letter in letters)
    # Each letter carries its payload byte for byte (base64 when it is not UTF-8), uncut,
    # and the reason written for that payload.
    reason_of = {raw_bytes(letter): letter["reason"] for letter in letters}
    assert sorted(reason_of) == sorted(payload for payload, _ in BAD_PAYLOADS)
    for payload, expected in BAD_PAYLOADS:
        assert expected in reason_of[payload], f"{payload[:40]!r}: {expected!r} not in {reason_of[payload]!r}"
    assert not any(letter["raw_truncated"] for letter in letters)


def served_version(port: int) -> str | None:
    """The version label of finsentry_model_info on the worker's /metrics."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as resp:
        text = resp.read().decode()
    versions = [
        sample.labels["version"]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "finsentry_model_info" and sample.value == 1
    ]
    assert len(versions) == 1, versions
    return versions[0]


def raw_bytes(letter: dict) -> bytes:
    """The payload a dead letter carries, as the bytes that were published."""
    raw = letter["raw"]
    return base64.b64decode(raw) if letter["raw_encoding"] == "base64" else raw.encode("utf-8")
