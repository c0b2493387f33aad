"""kill -9 of a worker holding a backlog, then a restart: is every document stored, once?

    python benchmarks/kill_restart.py [--documents 3000] [--kill-at 600]

Runs the embedded broker and `finsentry worker` with the default settings (SQLite store in
a temp dir), publishes the documents with `finsentry ingest`, kills the worker (SIGKILL to
its process group) once --kill-at are stored, starts another with the same settings and
prints one JSON line: stored, missing, upserts, what was unacknowledged at the kill and
re-delivered, and the records still uncommitted at the end. Exit status 1 if any document
is missing or an offset stayed behind. tests/reliability/test_worker_kill_defaults.py
runs the same drill with these helpers.

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

from finsentry.records import Document
from finsentry.streams.end_offsets import end_offsets_sync

SAMPLE = "demo.jsonl.gz"  # the bundled sample stream, in finsentry.ingest.samples

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
    from importlib.resources import files

    with gzip.open(files("finsentry.ingest.samples") / SAMPLE, "rt", encoding="utf-8") as lines:
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
        return end_offsets_sync(consumer, tps, embedded=True) if tps else {}  # the embedded broker
    finally:
        consumer.close()


def positions(address: str, topic: str) -> dict[str, tuple[int, int]]:
    """Document id → (partition, offset) of its last record on a topic."""
    consumer = KafkaConsumer(
        bootstrap_servers=address,
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
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
        held = {
            doc_id
            for doc_id, (partition, offset) in positions(address, scored_topic).items()
            if doc_id in stored and offset >= committed.get(TopicPartition(scored_topic, partition), 0)
        }
        return cls(stored=stored, unacknowledged_stored=held, uncommitted=uncommitted)


def settled_snapshot(address: str, group: str, topic_of, db: Path, attempts: int = 60) -> KillSnapshot:
    """The snapshot once two readings agree: an offset commit the worker sent just before it
    died may still reach the broker after the kill."""
    import time

    previous = KillSnapshot.take(address, group, topic_of, db)
    for _ in range(attempts):
        current = KillSnapshot.take(address, group, topic_of, db)
        if current == previous:
            return current
        previous = current
        time.sleep(0.5)
    raise AssertionError("the group's committed offsets kept moving after the kill")


def all_committed(address: str, group: str, topic_of) -> dict[str, int]:
    """Per topic, records past the group's committed offsets (0 everywhere: nothing stuck)."""
    committed = committed_offsets(address, group)
    left = {}
    for name in ("docs.raw", "docs.valid", "docs.scored"):
        ends = end_offsets(address, topic_of(name))
        left[name] = sum(end - committed.get(tp, 0) for tp, end in ends.items())
    return left


# --- the drill as a command -------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    import argparse
    import os
    import subprocess
    import sys
    import tempfile
    import time

    from finsentry.settings import Settings
    from finsentry.streams.broker import EmbeddedBroker, free_port
    from finsentry.streams.process import WorkerProcess, settings_env

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=3000)
    parser.add_argument("--kill-at", type=int, default=600, help="Stored documents at which the worker is killed.")
    parser.add_argument("--timeout", type=float, default=1800.0, help="Longest wait for the backlog after the restart.")
    parser.add_argument("--workdir", type=Path, default=None, help="Where the store and logs go (default: a temp dir).")
    args = parser.parse_args(argv)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="finsentry-kill-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "store.db"
    docs_file = work / "documents.jsonl"
    docs_file.write_text("".join(d.model_dump_json() + "\n" for d in sample_documents(args.documents)))
    ids = {d.id for d in sample_documents(args.documents)}
    with EmbeddedBroker(log_file=work / "broker.log") as broker:
        values = dict(
            broker=broker.url,
            broker_embedded=True,
            store=f"sqlite:///{db}",
            data_dir=work / "data",
            outbox_path=work / "outbox.db",
            web_port=free_port(),
        )
        settings = Settings(_env_file=None, **values)
        env = settings_env(**values)
        workers = []

        def start() -> WorkerProcess:
            worker = WorkerProcess(env, work / f"worker-{len(workers)}.log", settings.web_port, cwd=work)
            workers.append(worker)
            return worker.start()

        try:
            first = start()
            install_upsert_log(db)
            subprocess.run(
                [sys.executable, "-m", "finsentry.cli", "ingest", str(docs_file), "--no-progress"],
                env={**os.environ, **env},
                cwd=work,
                check=True,
            )
            while stored_count(db) < args.kill_at:
                time.sleep(0.2)
            first.kill()
            at_kill = settled_snapshot(broker.address, settings.app_id, settings.topic, db)
            print(
                f"killed with {len(at_kill.stored)} stored, {len(at_kill.unacknowledged_stored)} of them not yet "
                f"acknowledged; uncommitted records: {at_kill.uncommitted}",
                flush=True,
            )
            started = time.monotonic()
            second = start()
            deadline, last = started + args.timeout, -1
            while time.monotonic() < deadline:
                count = stored_count(db)
                if count != last:
                    last = count
                left = all_committed(broker.address, settings.app_id, settings.topic)
                if count >= len(ids) and not any(left.values()):
                    break
                time.sleep(2.0)
            counted = upserts(db)
            stored = stored_ids(db)
            result = {
                "documents": len(ids),
                "stored": len(stored & ids),
                "missing": len(ids - stored),
                "upserts": sum(counted.values()),
                "stored_at_kill": len(at_kill.stored),
                "unacknowledged_at_kill": len(at_kill.unacknowledged_stored),
                "redelivered": sum(counted[i] >= 2 for i in at_kill.unacknowledged_stored),
                "uncommitted_after": all_committed(broker.address, settings.app_id, settings.topic),
                "seconds_after_restart": round(time.monotonic() - started),
                "healthz_ready": bool(second.metrics().get("finsentry_worker_ready")),
            }
            print(json.dumps(result))
            ok = result["missing"] == 0 and not any(result["uncommitted_after"].values())
            print(
                "PASS: every document stored, every offset committed"
                if ok
                else f"FAIL: see {work} (worker logs, store.db)"
            )
            return 0 if ok else 1
        finally:
            for worker in workers:
                worker.stop()


if __name__ == "__main__":
    raise SystemExit(main())
