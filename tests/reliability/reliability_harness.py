"""A pipeline under test: the session's embedded broker, a topic prefix and consumer group of
its own, `finsentry worker` processes started and killed at will, and read-backs of what
arrived (the store, the dead-letter topic, the alerts topic).

Every worker runs with production-like secrets in its environment (SECRETS), so every test
that reads a worker log can also check that none of them leaked into it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from itertools import product
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from finsentry.ingest.producer import DocumentProducer, producer_config
from finsentry.records import Document
from finsentry.settings import Settings
from finsentry.store import open_store
from finsentry.streams.broker import EmbeddedBroker, free_port
from finsentry.streams.process import WorkerProcess, settings_env

# Distinctive values, so a leak is found by a plain substring search of a log.
SECRETS = {
    "es_password": "es-secret-7Hq2vX",
    "kafka_password": "kafka-secret-Lp94Rw",
    "push_token": "push-secret-Mz58Tc",
    "web_token": "web-secret-Qd31Ks",
}

# Alert scenarios in minutes of event time: small numbers so a test needs a few dozen
# documents, and no CUSUM, so only the window test decides.
FAST_DETECTOR = dict(
    alert_bucket_s=60,
    alert_lateness_s=120,
    alert_window_buckets=2,
    alert_min_baseline_buckets=4,
    alert_min_count=10,
    alert_cusum_h=0.0,
    explain_evidence=False,
)


def read_topic(address: str, topic: str) -> list[tuple[bytes | None, bytes]]:
    """Every (key, value) of a topic, from the beginning (assign + seek: tansu does not
    support kafka-python consumer groups)."""
    consumer = KafkaConsumer(
        bootstrap_servers=address,
        enable_auto_commit=False,
        consumer_timeout_ms=1500,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        return [(m.key, m.value) for m in consumer]
    finally:
        consumer.close()


class TopicReader:
    """Reads a topic from the beginning and, on each `read()`, returns what arrived since
    the previous call — cheap to poll, unlike re-reading the whole topic. A topic that does
    not exist yet (the dlq is created by its first record) reads as empty until it does."""

    def __init__(self, address: str, topic: str):
        self.topic = topic
        self._consumer = KafkaConsumer(
            bootstrap_servers=address,
            enable_auto_commit=False,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )
        self._assigned = False

    def _assign(self) -> bool:
        self._consumer.topics()  # refresh metadata
        partitions = self._consumer.partitions_for_topic(self.topic) or set()
        if partitions:
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            self._consumer.assign(tps)
            self._consumer.seek_to_beginning(*tps)
            self._assigned = True
        return self._assigned

    def read(self, timeout_ms: int = 500) -> list[bytes]:
        if not self._assigned and not self._assign():
            return []
        out = []
        while True:
            batches = self._consumer.poll(timeout_ms=timeout_ms)
            if not batches:
                return out
            out += [m.value for records in batches.values() for m in records]

    def close(self) -> None:
        self._consumer.close()


async def _with_store(settings: Settings, fn):
    store = open_store(settings.store, settings)
    await store.open()
    try:
        return await fn(store)
    finally:
        await store.close()


@dataclass
class Pipeline:
    broker: EmbeddedBroker
    workdir: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    workers: list[WorkerProcess] = field(default_factory=list)
    _producer: DocumentProducer | None = None

    def __post_init__(self) -> None:
        prefix = f"rel-{uuid.uuid4().hex[:8]}."
        values = dict(
            broker=self.broker.url,
            broker_embedded=True,
            topic_prefix=prefix,
            app_id=f"finsentry-{prefix}",
            store=f"sqlite:///{self.workdir / 'store.db'}",
            data_dir=self.workdir / "data",
            outbox_path=self.workdir / "outbox.db",
            registry_dir=self.workdir / "registry",
            seen_path=self.workdir / "seen.db",
            model_cache_dir=Path("var/test-model-cache").resolve(),
            backend="torch",
            log_level="INFO",  # the group's session and heartbeat stay at the defaults users get
            web_port=free_port(),
            store_retry_max_s=2.0,
            **{name: value for name, value in SECRETS.items()},
        )
        values.update(self.overrides)
        self.values = values
        self.settings = Settings(_env_file=None, **values)

    # --- workers ---------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        return settings_env(**self.values)

    def start_worker(self, timeout: float = 180.0) -> WorkerProcess:
        n = len(self.workers)
        worker = WorkerProcess(self.env(), self.workdir / f"worker-{n}.log", self.settings.web_port)
        self.workers.append(worker)
        return worker.start(timeout)

    def logs(self) -> str:
        return "\n".join(w.log_file.read_text(errors="replace") for w in self.workers if w.log_file.exists())

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self._producer is not None:
            self._producer.close()

    # --- input -----------------------------------------------------------------------------
    @property
    def producer(self) -> DocumentProducer:
        if self._producer is None:
            self._producer = DocumentProducer(self.settings)
        return self._producer

    def publish(self, docs: Iterable[Document], pace_s: float = 0.0) -> None:
        for doc in docs:
            self.producer.publish(doc)
            if pace_s:
                time.sleep(pace_s)
        self.producer.flush()

    def publish_raw(self, payloads: Iterable[bytes | None]) -> None:
        """Bytes as they are; None is a record without a value (a tombstone)."""
        for payload in payloads:
            if payload is None:
                tombstones = KafkaProducer(**producer_config(self.settings))
                try:
                    tombstones.send(self.producer.topic, key=b"tombstone", value=None).get(30)
                finally:
                    tombstones.close()
            else:
                self.producer.publish_raw(payload)
        self.producer.flush()

    # --- read-backs ------------------------------------------------------------------------
    def stored(self) -> dict[str, dict]:
        """Every stored document by id; a second copy of an id would show up in `export_ids`."""

        async def export(store):
            return [doc async for doc in store.export()]

        docs = asyncio.run(_with_store(self.settings, export))
        return {doc["id"]: doc for doc in docs}

    def export_ids(self) -> list[str]:
        async def export(store):
            return [doc["id"] async for doc in store.export()]

        return asyncio.run(_with_store(self.settings, export))

    def count(self) -> int:
        return asyncio.run(_with_store(self.settings, lambda store: store.count()))

    def dead_letters(self) -> list[dict]:
        return [json.loads(value) for _, value in read_topic(self.broker.address, self.settings.topic("dlq"))]

    def alerts(self) -> list[dict]:
        return [json.loads(value) for _, value in read_topic(self.broker.address, self.settings.topic("alerts"))]

    def wait(self, predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
        """Poll until `predicate()` is truthy; every live worker must stay alive meanwhile."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            for worker in self.workers:
                if worker.proc is not None and worker.proc.returncode is None and worker.proc.poll() is not None:
                    raise AssertionError(
                        f"worker exited with {worker.proc.returncode} while waiting for {what}:\n{worker.tail()}"
                    )
            time.sleep(interval)
        tail = self.workers[-1].tail() if self.workers else ""
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")


# --- synthetic stories ---------------------------------------------------------------------

COMPANIES = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Vandelay",
    "Stark",
    "Wayne",
    "Wonka",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Oscorp",
    "Gringotts",
    "Monarch",
    "Nakatomi",
]
REGIONS = ["Europe", "Asia", "Texas", "Brazil", "Canada", "Japan", "India", "Germany", "Mexico", "Nigeria"]
NEGATIVE = [
    "{c} shares plunge after {n} percent revenue collapse and fraud probe in {r}",
    "{c} slashes outlook, warns of heavy losses as {r} demand crumbles by {n} percent",
    "{c} stock tumbles {n} percent after regulators sue over accounting fraud in {r}",
]
POSITIVE = [
    "{c} shares rise {n} percent after record quarterly profit in {r}",
    "{c} beats estimates and raises full-year guidance on strong {r} sales up {n} percent",
    "{c} announces dividend increase of {n} percent as {r} growth accelerates",
]


class Stories:
    """Distinct headlines: no two share template, company and region, so the near-duplicate
    check counts each as its own story."""

    def __init__(self, seed: int = 0):
        self._pairs = {
            kind: iter([(t, c, r) for c, r in product(COMPANIES, REGIONS) for t in templates])
            for kind, templates in (("negative", NEGATIVE), ("positive", POSITIVE))
        }
        self._n = seed

    def make(self, kind: str, published_at: datetime, source: str = "wire") -> Document:
        template, company, region = next(self._pairs[kind])
        self._n += 1
        text = template.format(c=company, r=region, n=3 + self._n % 57)
        return Document(
            source=source,
            kind="news",
            title=None,
            text=text,
            url=f"https://news.example.test/{self._n}",
            published_at=published_at,
        )


def event_time_origin() -> datetime:
    """A bucket-aligned event time an hour back: recent, and every bucket a whole minute."""
    now = datetime.now(timezone.utc) - timedelta(hours=1)
    return now.replace(second=0, microsecond=0)


def steady_stream(
    stories: Stories, t0: datetime, buckets: range, per_bucket: int = 5, negatives_per_bucket: int = 1
) -> list[Document]:
    """`per_bucket` stories a minute, `negatives_per_bucket` of them negative."""
    docs = []
    for b in buckets:
        for i in range(per_bucket):
            kind = "negative" if i < negatives_per_bucket else "positive"
            docs.append(stories.make(kind, t0 + timedelta(minutes=b, seconds=5 + 10 * i)))
    return docs


def spike(stories: Stories, t0: datetime, buckets: range, per_bucket: int = 12) -> list[Document]:
    return [
        stories.make("negative", t0 + timedelta(minutes=b, seconds=2 + 4 * i))
        for b in buckets
        for i in range(per_bucket)
    ]


def doc_id(doc: Document) -> str:
    return doc.with_defaults().id
