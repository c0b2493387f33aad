"""A backfill at full speed raises exactly the episodes of the offline replay of the sorted
records — whichever partition the worker happens to read first.

The bundled demo sample (70 minutes of real headlines with an Energy / Oil surge) is
repeated on two consecutive days (new ids, times shifted a day), as a user backfilling a
few days of a feed would: documents spread over every raw partition, an episode on each day. It is published with
`finsentry ingest` at full speed; the worker's alerts are compared with
`finsentry alerts replay --sort` over the records the worker stored, by (scope, key,
opening bucket, level). Default detector settings throughout.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from kafka.partitioner.default import murmur2
from reliability_harness import read_topic

from finsentry.records import Document
from finsentry.streams.demo import SAMPLE

pytestmark = [pytest.mark.reliability, pytest.mark.drill]

COPIES = 2
COPY_SHIFT = timedelta(days=1)


def backfill_lines() -> list[tuple[datetime, dict | str]]:
    """(event time, record) of every copy, in event-time order; malformed lines kept as they are."""
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as fh:
        lines = [line.rstrip("\n") for line in fh if line.strip()]
    out = []
    for copy in range(COPIES):
        previous = None
        for line in lines:
            try:
                doc = json.loads(line)
                at = datetime.fromisoformat(doc["published_at"].replace("Z", "+00:00")) + copy * COPY_SHIFT
            except (ValueError, KeyError, TypeError):
                if copy == 0 and previous is not None:
                    out.append((previous, line))  # the sample's malformed lines: dead-lettered once
                continue
            previous = at
            doc = {**doc, "published_at": at.isoformat(), "url": f"{doc['url']}?copy={copy}"}
            out.append((at, doc))
    out.sort(key=lambda item: item[0])
    return out


def raw_partition(doc: dict, partitions: int) -> int:
    """The raw partition the ingest producer picks: Kafka's default partitioner on the story key."""
    key = Document.model_validate(doc).key.encode("utf-8")
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def write_jsonl(path: Path, items) -> int:
    with path.open("w", encoding="utf-8") as fh:
        for _, record in items:
            fh.write((record if isinstance(record, str) else json.dumps(record, ensure_ascii=False)) + "\n")
    return len(items)


def cli(pipeline, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, **pipeline.env()}
    result = subprocess.run(
        [sys.executable, "-m", "finsentry.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result


def changelog(pipeline) -> dict[str, dict]:
    """The latest value of every key of the detector's table."""
    topic = f"{pipeline.settings.app_id}-finsentry-detector-state-changelog"
    latest = {}
    for raw_key, value in read_topic(pipeline.broker.address, topic):
        if raw_key is None:
            continue
        key = raw_key.decode(errors="replace").strip('"')
        if value is None or json.loads(value) is None:  # a tombstone: a chunk of pending observations taken
            latest.pop(key, None)
        else:
            latest[key] = json.loads(value)
    return latest


def worker_episodes(pipeline) -> set[tuple]:
    """(scope, key, opening bucket, highest level) of every episode on the alerts topic."""
    out: dict[str, tuple] = {}
    for a in pipeline.alerts():
        level = "critical" if a["severity"] == "critical" or out.get(a["id"], ("",) * 4)[3] == "critical" else "warning"
        out[a["id"]] = (a["scope"], a["key"], a["episode_start"], level)
    return set(out.values())


def replay_episodes(pipeline, tmp_path: Path) -> set[tuple]:
    stored = tmp_path / "stored.jsonl"
    write_jsonl(stored, [(None, doc) for doc in pipeline.stored().values()])
    result = cli(pipeline, "alerts", "replay", "--input", str(stored), "--sort")
    alerts = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return {(a["scope"], a["key"], a["episode_start"], a["severity"]) for a in alerts}


def normalise(episodes: set[tuple]) -> set[tuple]:
    return {(s, k, datetime.fromisoformat(t.replace("Z", "+00:00")).isoformat(), level) for s, k, t, level in episodes}


def distinct_documents(items) -> int:
    """What the store ends with: one row per id (the sample repeats two documents)."""
    return len({Document.model_validate(r).with_defaults().id for _, r in items if isinstance(r, dict)})


def settle(pipeline, items, timeout: float) -> dict[str, dict]:
    """Every document stored, then the detector's clock past the last one with nothing
    pending: the worker has said all it will say about these records."""
    expected = distinct_documents(items)
    last_event = max(at for at, _ in items).timestamp()
    pipeline.wait(lambda: pipeline.count() >= expected, timeout, f"all {expected} documents stored", interval=2.0)

    def caught_up():
        table = changelog(pipeline)
        clocks = [v for k, v in table.items() if k.startswith("clock:")]
        scopes = [v for k, v in table.items() if not k.startswith(("clock:", "pending:"))]
        done = (
            all(c["low"] is not None and c["low"] >= last_event for c in clocks)
            and (table.get("global:all") or {}).get("watermark", 0) >= last_event
            and not any(s.get("chunks") for s in scopes)
        )
        return table if done else None

    return pipeline.wait(caught_up, 180, "the detector's clock past the last document, nothing pending", interval=2.0)


def check_same_episodes(pipeline, tmp_path: Path, table: dict[str, dict]) -> set[tuple]:
    reference = normalise(replay_episodes(pipeline, tmp_path))
    # The premise: every copy (day) opens an episode, so each day's records matter. Day 1 is
    # the Energy / Oil surge; on later days the detector has learned that surge into its
    # share baseline (the sample has no quiet hours between the days), and the day's rise
    # shows in the global scope instead.
    days = {t[:10] for _, _, t, _ in reference}
    assert len(days) >= COPIES, f"the premise: an episode on every copy's day, got {sorted(reference)}"
    try:  # the last alerts may still be on their way after the changelog shows the clock
        pipeline.wait(
            lambda: normalise(worker_episodes(pipeline)) == reference, 60, "the worker's episodes to equal the replay's"
        )
    except AssertionError:
        pass
    late = {k: v["late"] for k, v in table.items() if not k.startswith(("clock:", "pending:")) and v.get("late")}
    assert sorted(normalise(worker_episodes(pipeline))) == sorted(reference), f"late records per scope: {late}"
    return reference


def test_backfill_into_a_worker_started_after_it_gives_the_replay_episodes(pipeline, tmp_path):
    p = pipeline(explain_evidence=False)
    items = backfill_lines()
    docs = [record for _, record in items if isinstance(record, dict)]
    assert len({raw_partition(d, p.settings.topic_partitions) for d in docs}) == p.settings.topic_partitions
    write_jsonl(tmp_path / "backfill.jsonl", items)
    cli(p, "ingest", str(tmp_path / "backfill.jsonl"), "--speed", "0")
    p.start_worker()  # deliberately behind: everything is already waiting
    table = settle(p, items, timeout=1200)
    check_same_episodes(p, tmp_path, table)


def test_backfill_with_one_partition_published_minutes_behind_the_others(pipeline, tmp_path):
    p = pipeline(explain_evidence=False)
    n = p.settings.topic_partitions
    lag = timedelta(minutes=10)
    items = backfill_lines()
    # The file holds partition n-1's documents ten minutes of event time after the others':
    # that partition is published later than the rest, and read later.
    order = sorted(
        items,
        key=lambda item: (
            item[0] + (lag if isinstance(item[1], dict) and raw_partition(item[1], n) == n - 1 else timedelta(0))
        ),
    )
    write_jsonl(tmp_path / "backfill.jsonl", order)
    p.start_worker()
    cli(p, "ingest", str(tmp_path / "backfill.jsonl"), "--speed", "0")
    table = settle(p, items, timeout=1200)
    check_same_episodes(p, tmp_path, table)


def test_backfill_with_the_worker_killed_and_restarted_midway(pipeline, tmp_path):
    p = pipeline(explain_evidence=False)
    items = backfill_lines()
    write_jsonl(tmp_path / "backfill.jsonl", items)
    cli(p, "ingest", str(tmp_path / "backfill.jsonl"), "--speed", "0")
    p.start_worker()
    published = distinct_documents(items)
    p.wait(lambda: p.count() >= published // 3, 600, "a third of the backfill stored", interval=1.0)
    p.workers[-1].kill()
    assert p.count() < published * 0.9, "the kill must land mid-backfill"
    p.start_worker()
    table = settle(p, items, timeout=1200)
    check_same_episodes(p, tmp_path, table)
