"""`finsentry rescore` on SQLite with the shipped model: documents of the range get the new
model's scores on their own records, resumably; others are left alone."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

from finsentry.records import ScoredDocument, Sentiment, Topic
from finsentry.store import open_store
from finsentry.store.base import SearchQuery
from finsentry.streams.rescore import rescore

FINSENTRY = [sys.executable, "-m", "finsentry.cli"]
T0 = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)
HEADLINES = [
    "Shares plunge after the company is charged with accounting fraud",
    "Apple beats earnings estimates and raises its dividend",
    "Oil slumps as OPEC+ signals higher output",
]


def old_record(i: int, day: int = 0) -> ScoredDocument:
    """Scored by an older model that called everything neutral, 'Markets'."""
    return ScoredDocument(
        id=f"doc-{day}-{i}",
        source="wire",
        title=HEADLINES[i % 3],
        text=f"{HEADLINES[i % 3]}. Story {i}.",
        published_at=T0 + timedelta(days=day, minutes=i),
        ingested_at=T0.timestamp(),
        sentiment=Sentiment(
            label="neutral", probabilities={"negative": 0.1, "neutral": 0.8, "positive": 0.1}, score=0.0
        ),
        topic=Topic(label="Markets", probability=0.5),
        model_version="m-old",
        dup_of="doc-0-0" if i == 3 else None,
        explanation=[("old", 0.1)],
    )


async def fill(url: str, settings) -> None:
    async with open_store(url, settings) as store:
        await store.upsert_many([old_record(i) for i in range(7)] + [old_record(i, day=5) for i in range(2)])


async def everything(url: str, settings) -> dict[str, dict]:
    async with open_store(url, settings, read_only=True) as store:
        return {d["id"]: d async for d in store.export()}


async def test_rescore_is_batched_resumable_and_keeps_one_record_per_document(engine, make_settings, tmp_path):
    settings = make_settings()
    url = settings.store
    await fill(url, settings)
    query = SearchQuery(since=T0, until=T0 + timedelta(days=1))

    async with open_store(url, settings) as store:
        first = await rescore(store, engine, query, batch_size=2, limit=4)  # "interrupted" after 4
    assert (first.rescored, first.skipped, first.model_version) == (4, 0, engine.version)
    async with open_store(url, settings) as store:
        second = await rescore(store, engine, query, batch_size=2)
    assert (second.scanned, second.rescored, second.skipped) == (7, 3, 4)

    docs = await everything(url, settings)
    assert len(docs) == 9
    in_range = [d for d in docs.values() if d["published_at"].startswith("2026-03-02")]
    assert all(d["model_version"] == engine.version for d in in_range)
    assert all(d["model_version"] == "m-old" for d in docs.values() if d not in in_range)
    assert docs["doc-0-0"]["sentiment"]["label"] == "negative"  # the new model's score, not the old one
    assert docs["doc-0-1"]["sentiment"]["label"] == "positive"
    assert docs["doc-0-3"]["dup_of"] == "doc-0-0" and docs["doc-0-0"]["explanation"] is None
    assert docs["doc-0-0"]["ingested_at"] == T0.timestamp()


def test_rescore_command_prints_a_summary_and_refuses_a_missing_store(make_settings, tmp_path):
    settings = make_settings()
    asyncio.run(fill(settings.store, settings))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENTRY_")}
    env.update(
        FINSENTRY_STORE=settings.store,
        FINSENTRY_BACKEND="torch",
        FINSENTRY_REGISTRY_DIR=str(tmp_path / "reg"),
        FINSENTRY_MODEL_CACHE_DIR=str(settings.model_cache_dir),
    )
    out = subprocess.run(
        FINSENTRY + ["rescore", "--since", "2026-03-02", "--until", "2026-03-03"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert (summary["scanned"], summary["rescored"], summary["skipped"]) == (7, 7, 0)
    assert "%|" not in out.stderr  # no progress bar when stderr is no terminal
    missing = subprocess.run(
        FINSENTRY + ["rescore", "--since", "7d", "--store", f"sqlite:///{tmp_path}/typo.db"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert missing.returncode == 1 and "no SQLite store" in missing.stderr
    assert not (tmp_path / "typo.db").exists()
