"""`finsentry demo` as a user runs it: a subprocess with the embedded broker, a worker with the
shipped model, and a real store (SQLite, or osmem-server in place of Elasticsearch)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from finsentry.records import ScoredDocument, Sentiment, Topic
from finsentry.settings import Settings
from finsentry.store.elasticsearch import ElasticsearchStore
from finsentry.streams.broker import free_port

pytestmark = pytest.mark.slow

FINSENTRY = [sys.executable, "-m", "finsentry.cli"]
SUMMARY_KEYS = {
    "docs_in",
    "docs_scored",
    "docs_stored",
    "docs_dead_lettered",
    "alerts",
    "docs_per_s",
    "p50_ms",
    "p99_ms",
}


def run_demo(cwd, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        FINSENTRY + ["demo", "--speed", "0", "--web-port", str(free_port()), *args],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=cwd,  # generous: a loaded machine
        env={**os.environ, "FINSENTRY_BACKEND": "torch", **(env or {})},
    )


def summary_of(out: subprocess.CompletedProcess) -> dict:
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(summary) == SUMMARY_KEYS
    return summary


def test_demo_stores_exactly_max_docs_through_the_negative_episode(tmp_path):
    # 1,200 documents reach past the start of the sample's Energy / Oil episode (minute 20 of
    # event time, near line 614) and past its three malformed records and two exact repeats.
    n = 1200
    out = run_demo(
        tmp_path, "--max-docs", str(n), "--backend", "torch", env={"FINSENTRY_BACKEND": "onnx"}
    )  # the flag, not the environment, must reach the worker
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    summary = summary_of(out)
    assert summary["docs_stored"] == n
    assert summary["docs_dead_lettered"] == 3  # lines 101 (truncated JSON), 401 (no text), 901 (kind "rumour")
    assert summary["docs_in"] == n + 3 + 2  # lines 837 and 930 repeat earlier documents: same id, stored once
    assert summary["docs_scored"] >= summary["docs_stored"]
    assert summary["alerts"] >= 1  # the episode's alert, which reaches the store a hop after its documents
    assert 0 < summary["p50_ms"] <= summary["p99_ms"] and summary["docs_per_s"] > 0
    assert "dashboard http://127.0.0.1:" in out.stdout and "broker   kafka://127.0.0.1:" in out.stdout
    assert "backend=torch" in (tmp_path / "var" / "demo" / "worker.log").read_text()


def test_demo_exits_non_zero_when_max_docs_cannot_be_reached(tmp_path):
    at = datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc)
    docs = [
        json.dumps(
            {
                "source": "wire",
                "title": f"Story {i}",
                "text": f"Markets move on story number {i}.",
                "published_at": (at + timedelta(seconds=i)).isoformat(),
            }
        )
        for i in range(5)
    ]
    stream = tmp_path / "five.jsonl"
    stream.write_text("\n".join(docs + [docs[0], '{"source": "wire", "text": "truncated']) + "\n")
    out = run_demo(tmp_path, "--max-docs", "10", "--input", str(stream))
    assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
    assert summary_of(out)["docs_stored"] == 5
    assert "5 of 10 documents stored" in out.stderr and "holds only 5" in out.stderr


def stale_document(i: int) -> ScoredDocument:
    return ScoredDocument(
        id=f"earlier-run-{i}",
        source="wire",
        title=f"Earlier story {i}",
        text=f"Earlier story {i}.",
        published_at=datetime.now(timezone.utc) - timedelta(minutes=i),
        ingested_at=time.time(),
        sentiment=Sentiment(
            label="neutral", probabilities={"negative": 0.1, "neutral": 0.8, "positive": 0.1}, score=0.0
        ),
        topic=Topic(label="Markets", probability=0.9),
        model_version="v-earlier",
    )


async def seed_and_count(url: str, docs: list[ScoredDocument]) -> int:
    store = ElasticsearchStore(url, Settings(_env_file=None, es_replicas=0))
    await store.open()
    try:
        if docs:
            await store.upsert_many(docs)
            await store.refresh()
        return await store.count()
    finally:
        await store.close()


def test_demo_on_an_opensearch_store_counts_only_its_own_run(tmp_path):
    from osmem_server import OsmemServer

    # osmem-server stands in for Elasticsearch (which cannot run here); the store speaks to it
    # with plain JSON media types (compat=opensearch).
    server = OsmemServer.start(japanese=False)
    try:
        url = f"{server.url}?compat=opensearch"
        assert asyncio.run(seed_and_count(url, [stale_document(i) for i in range(30)])) == 30  # an earlier run
        out = run_demo(tmp_path, "--max-docs", "20", "--store", url, env={"FINSENTRY_ES_REPLICAS": "0"})
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        summary = summary_of(out)
        assert summary["docs_stored"] == 20 and summary["docs_in"] == 20
        assert re.search(r"^store +http://\S+prefix=finsentry-demo-\d{8}-\d{6}-[0-9a-f]{6}", out.stdout, re.M), (
            out.stdout
        )
        assert asyncio.run(seed_and_count(url, [])) == 30  # the earlier run's indices are left as they were
    finally:
        server.close()
