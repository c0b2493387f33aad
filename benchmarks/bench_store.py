"""Store write throughput: bulk batches against one document per call, same records, same run.

For each backend — the embedded SQLite store, the Elasticsearch store on osmem-server (an
in-memory OpenSearch-compatible server standing in for Elasticsearch), and a real
Elasticsearch when ES_URL is set — the same N scored records are written twice into fresh
storage: once in batches of --batch through `upsert_many`, once with one `upsert_many` call
per record (what a sink without batching does). Prints docs/s of both and the ratio
bulk/per-document. Bounded: --n records per mode (default 2000), well under two minutes.

    python benchmarks/bench_store.py [--n 2000] [--batch 500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from finsentry.records import ScoredDocument, Sentiment, Topic
from finsentry.settings import Settings
from finsentry.store import open_store

TOPICS = ["Earnings", "Energy | Oil", "Fed / Central Banks", "Macro", "M&A | Investments"]
WORDS = (
    "shares bank profit warning outlook guidance rally slump merger deal oil crude rates "
    "inflation dividend buyback downgrade upgrade lawsuit recall"
).split()


def records(n: int, seed: int = 7) -> list[ScoredDocument]:
    rng = random.Random(seed)
    start = datetime.now(timezone.utc) - timedelta(days=2)
    out = []
    for i in range(n):
        label = rng.choice(["negative", "neutral", "positive"])
        p = {"negative": 0.1, "neutral": 0.1, "positive": 0.1, label: 0.8}
        out.append(
            ScoredDocument(
                id=f"bench-{i:07d}",
                source=f"outlet-{i % 17}",
                title=" ".join(rng.choices(WORDS, k=8)).capitalize(),
                text=" ".join(rng.choices(WORDS, k=60)),
                published_at=start + timedelta(seconds=i * 60),
                sentiment=Sentiment(label=label, probabilities=p, score=p["positive"] - p["negative"]),
                topic=Topic(label=rng.choice(TOPICS), probability=0.9),
                entities=rng.sample(["AAPL", "MSFT", "XOM", "JPM", "TSLA"], k=rng.randint(0, 2)),
                model_version="bench",
                explanation=[("word", 0.1)],
            )
        )
    return out


async def write(url: str, settings: Settings, docs: list[ScoredDocument], batch: int) -> float:
    """Docs/s writing `docs` in batches of `batch` into a fresh store at `url`."""
    async with open_store(url, settings) as store:
        started = time.perf_counter()
        for i in range(0, len(docs), batch):
            result = await store.upsert_many(docs[i : i + batch])
            if result.rejected:
                raise SystemExit(f"{url}: store rejected {result.rejected[0]}")
        await store.refresh()  # counted: the writes are searchable when the clock stops
        elapsed = time.perf_counter() - started
        stored = await store.count()
    if stored != len(docs):
        raise SystemExit(f"{url}: {stored} stored, expected {len(docs)}")
    return len(docs) / elapsed


def report(name: str, bulk: float, single: float, batch: int) -> None:
    print(
        f"{name:<14} bulk({batch})={bulk:9.0f} docs/s   per-document={single:8.0f} docs/s   "
        f"ratio bulk/per-document={bulk / single:6.1f}x"
    )


def backends(work: Path):
    """(name, url factory giving fresh storage per call)."""
    yield "sqlite", lambda: f"sqlite:///{work}/store-{uuid.uuid4().hex[:8]}.db"
    from osmem_server import OsmemServer

    server = OsmemServer.start(japanese=False)
    try:
        yield "osmem", lambda: f"{server.url}?compat=opensearch&prefix=bench-{uuid.uuid4().hex[:8]}"
    finally:
        server.close()
    es_url = os.environ.get("ES_URL")
    if es_url:
        sep = "&" if "?" in es_url else "?"
        yield "elasticsearch", lambda: f"{es_url}{sep}prefix=finsentry-bench-{uuid.uuid4().hex[:8]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="records per mode and backend")
    parser.add_argument("--batch", type=int, default=500, help="records per bulk call")
    args = parser.parse_args()
    docs = records(args.n)
    settings = Settings(_env_file=None, es_replicas=0, store_batch_size=args.batch)
    print(f"{args.n} records per run, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        for name, fresh_url in backends(Path(tmp)):
            bulk = asyncio.run(write(fresh_url(), settings, docs, args.batch))
            single = asyncio.run(write(fresh_url(), settings, docs, 1))
            report(name, bulk, single, args.batch)
    # Indices a real cluster got are left under their bench prefix: remove them with
    # DELETE finsentry-bench-* when done (the script never deletes on a shared cluster).


if __name__ == "__main__":
    main()
