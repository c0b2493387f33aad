"""The kill -9 scenario shared by the reliability test and benchmarks/kill_restart.py: a backlog
of documents with given ids, one worker killed while it holds records it has not
acknowledged, a second one started with the same settings; the store counts every upsert.

The store's UNIQUE id makes "one row per id" true by construction, so it proves nothing
alone. What can fail is counted instead: every upsert the store receives is logged by a
trigger, so a lost document shows as an id with no upsert, and a re-delivery (the point of
the kill) as an id upserted twice.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from finsentry.streams.records import Document

SAMPLE = Path(__file__).resolve().parents[2] / "streams" / "ingest" / "samples" / "demo.jsonl.gz"

UPSERT_LOG = """
CREATE TABLE IF NOT EXISTS upsert_log (id TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS upsert_log_insert AFTER INSERT ON documents BEGIN
    INSERT INTO upsert_log (id) VALUES (NEW.id);
END;
CREATE TRIGGER IF NOT EXISTS upsert_log_update AFTER UPDATE ON documents BEGIN
    INSERT INTO upsert_log (id) VALUES (NEW.id);
END;
"""


def sample_documents(n: int, prefix: str = "kill") -> list[Document]:
    """`n` documents with given ids: the bundled sample's headlines, repeated a day later
    each time round so event time keeps moving forward."""
    rows = []
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as lines:
        for line in lines:
            try:
                row = json.loads(line)
            except ValueError:
                continue  # the sample carries a few malformed lines on purpose
            if isinstance(row, dict) and row.get("text") and row.get("published_at"):
                rows.append(row)
    docs = []
    for i in range(n):
        row = dict(rows[i % len(rows)])
        published = datetime.fromisoformat(row["published_at"].replace("Z", "+00:00"))
        row["published_at"] = published + timedelta(days=i // len(rows))
        docs.append(Document.model_validate({**row, "id": f"{prefix}-{i:05d}"}))
    return docs


def install_upsert_log(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.executescript(UPSERT_LOG)


def stored_count(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            return conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def stored_ids(db: Path) -> set[str]:
    with sqlite3.connect(db, timeout=30) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM documents")}


def upserts(db: Path) -> Counter:
    with sqlite3.connect(db, timeout=30) as conn:
        return Counter(row[0] for row in conn.execute("SELECT id FROM upsert_log"))


def committed_offsets(address: str, group: str) -> dict[TopicPartition, int]:
    admin = KafkaAdminClient(bootstrap_servers=address)
    try:
        offsets = admin.list_group_offsets(group)[group]
    finally:
        admin.close()
    return {tp: meta.offset for tp, meta in offsets.items() if meta is not None and meta.offset >= 0}


def end_offsets(address: str, topic: str) -> dict[TopicPartition, int]:
    consumer = KafkaConsumer(bootstrap_servers=address)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        return dict(consumer.end_offsets(tps)) if tps else {}
    finally:
        consumer.close()


def positions(address: str, topic: str) -> dict[str, tuple[int, int]]:
    """Document id → (partition, offset) of its last record on a topic."""
    consumer = KafkaConsumer(bootstrap_servers=address, enable_auto_commit=False, consumer_timeout_ms=3000,
                             max_partition_fetch_bytes=8 * 1024 * 1024)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        return {json.loads(m.value)["id"]: (m.partition, m.offset) for m in consumer}
    finally:
        consumer.close()


@dataclass
class KillSnapshot:
    """What the broker and the store held right after the kill."""

    stored: set[str]
    unacknowledged_stored: set[str]  # in the store, yet their docs.scored record not committed
    uncommitted: dict[str, int]  # per topic: records past the group's committed offsets

    @classmethod
    def take(cls, address: str, group: str, topic_of, db: Path) -> "KillSnapshot":
        committed = committed_offsets(address, group)
        uncommitted = {}
        for name in ("docs.valid", "docs.scored"):
            topic = topic_of(name)
            ends = end_offsets(address, topic)
            uncommitted[name] = sum(end - committed.get(tp, 0) for tp, end in ends.items())
        stored = stored_ids(db)
        scored_topic = topic_of("docs.scored")
        held = {doc_id for doc_id, (partition, offset) in positions(address, scored_topic).items()
                if doc_id in stored and offset >= committed.get(TopicPartition(scored_topic, partition), 0)}
        return cls(stored=stored, unacknowledged_stored=held, uncommitted=uncommitted)


def all_committed(address: str, group: str, topic_of) -> dict[str, int]:
    """Per topic, records past the group's committed offsets (0 everywhere: nothing stuck)."""
    committed = committed_offsets(address, group)
    left = {}
    for name in ("docs.raw", "docs.valid", "docs.scored"):
        ends = end_offsets(address, topic_of(name))
        left[name] = sum(end - committed.get(tp, 0) for tp, end in ends.items())
    return left
