"""A store outage as the dashboards see it, in the running worker (dashboard_worker.py): with
the SQLite store locked by another process, the index agent's writes fail and it holds its
batch, so finsentry_store_errors_total rises and the consumer lag on docs.scored grows with
every document published; once the lock goes, the backlog is stored and the lag returns to 0."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta

from dashboard_helpers import CORPUS_END

from finsentry.records import Document


def lag(worker, topic: str) -> float:
    return worker.samples("finsentry_consumer_lag_messages").get((("topic", topic),), 0.0)


def store_errors(worker) -> float:
    return worker.samples("finsentry_store_errors_total").get((("kind", "unavailable"),), 0.0)


def stored(worker) -> float:
    return worker.metrics().get("finsentry_documents_stored_total", 0.0)


def publish(worker, n: int, start: int) -> set[str]:
    """Publish n documents; returns their ids."""
    from finsentry.ingest.producer import DocumentProducer

    docs = [
        Document(
            source="wire-outage",
            title=f"Outage test headline {i}",
            text=f"Body {i}.",
            published_at=CORPUS_END - timedelta(minutes=30) + timedelta(seconds=i),
        ).with_defaults()
        for i in range(start, start + n)
    ]
    with DocumentProducer(worker.settings) as producer:
        for doc in docs:
            producer.publish(doc)
        producer.flush()
    return {doc.id for doc in docs}


# Every upsert the store commits, by id: SQLite's unique id alone would always show one row.
UPSERT_LOG = """
CREATE TABLE IF NOT EXISTS outage_upserts (id TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS outage_upserts_insert AFTER INSERT ON documents
WHEN NEW.source = 'wire-outage' BEGIN INSERT INTO outage_upserts (id) VALUES (NEW.id); END;
CREATE TRIGGER IF NOT EXISTS outage_upserts_update AFTER UPDATE ON documents
WHEN NEW.source = 'wire-outage' BEGIN INSERT INTO outage_upserts (id) VALUES (NEW.id); END;
"""


def upserts(path) -> dict[str, int]:
    with sqlite3.connect(path, timeout=30) as conn:
        return dict(conn.execute("SELECT id, COUNT(*) FROM outage_upserts GROUP BY id").fetchall())


def test_a_locked_store_shows_as_store_errors_and_growing_lag_then_recovers(dashboard_worker):
    worker = dashboard_worker
    scored_topic = worker.settings.topic("docs.scored")
    worker.wait_for(lambda: lag(worker, scored_topic) == 0, "no lag before the outage")
    errors_before, stored_before = store_errors(worker), stored(worker)
    with sqlite3.connect(worker.store_path, timeout=30) as conn:
        conn.executescript(UPSERT_LOG)

    lock = sqlite3.connect(worker.store_path, timeout=5, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # another process holds the write lock: the store is unavailable
    try:
        ids = publish(worker, 5, 0)
        worker.wait_for(lambda: lag(worker, scored_topic) >= 5, "lag of the 5 unstored documents")
        worker.wait_for(lambda: store_errors(worker) > errors_before, "store errors counted")
        ids |= publish(worker, 5, 5)
        worker.wait_for(lambda: lag(worker, scored_topic) >= 10, "lag growing to 10")
        assert stored(worker) == stored_before  # nothing acknowledged while the store is away
    finally:
        lock.execute("ROLLBACK")
        lock.close()

    worker.wait_for(lambda: stored(worker) >= stored_before + 10, "the backlog stored")
    worker.wait_for(lambda: lag(worker, scored_topic) == 0, "lag back to 0")
    status, _, body = worker.get("/api/documents?source=wire-outage&limit=100")
    assert status == 200 and len(json.loads(body)["documents"]) == 10
    # Each stored once: the retried batch was committed by the store exactly once per document
    # (failed attempts roll back), none lost.
    assert upserts(worker.store_path) == dict.fromkeys(ids, 1)
