"""Bounded soak and load test: embedded broker → `finsentry worker` → SQLite, on loopback.

1. Warm-up: --warm-docs documents through the whole path (topics, group join, first batches).
2. Peak: documents published as fast as possible; docs/s from first publish to last stored.
3. Soak: documents published at a steady rate (default: half of the measured peak) for
   --duration seconds, while the worker's resident memory (VmRSS from /proc/PID/status) and
   its stored-documents counter are sampled.

Report: throughput, ingest→stored latency (p50/p99, overall and per third of the soak),
worker RSS over time, and a verdict against the budgets:
  - RSS below 1 GB, and flat: the mean of the last third of the soak at most 10 % (and
    32 MB) above the mean of the first third;
  - p99 ingest→stored latency below 2 s at half of the peak rate.
The last line of stdout is one JSON object with every number.

    python benchmarks/soak.py                      # ~5 minutes of soak
    python benchmarks/soak.py --duration 60 --rate 20
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from finsentry.ingest.producer import DocumentProducer
from finsentry.records import Document
from finsentry.settings import Settings
from finsentry.store import open_store
from finsentry.store import ops as store_ops
from finsentry.store.base import SearchQuery
from finsentry.store.shape import ingest_to_stored_s, stored_epoch
from finsentry.streams.broker import EmbeddedBroker, free_port
from finsentry.streams.process import WorkerProcess, percentile, rss_mb, settings_env

DATA = Path(__file__).resolve().parents[1] / "data" / "tfn"
RSS_BUDGET_MB = 1024.0
RSS_GROWTH_RATIO = 1.10
RSS_GROWTH_FLOOR_MB = 32.0
P99_BUDGET_S = 2.0
# The budgets a run passes or fails: (name in the verdict line, key of verdict()).
CHECKS = (("RSS < 1 GB", "rss_below_budget"), ("RSS flat", "rss_flat"), ("p99 < 2 s", "p99_below_budget"))

COMPANIES = ["Apple", "Microsoft", "Exxon", "JPMorgan", "Tesla", "Pfizer", "Boeing", "Walmart", "Nvidia", "Shell"]
EVENTS = [
    "beats earnings estimates",
    "cuts full-year guidance",
    "faces regulatory probe",
    "announces buyback",
    "misses revenue forecast",
    "raises dividend",
    "recalls products",
    "wins large contract",
]


def corpus() -> list[str]:
    """Real finance sentences when the training data is present, else synthetic headlines."""
    texts: list[str] = []
    for name in ("tfns_sentiment_valid.csv", "tfnt_topic_test.csv"):
        path = DATA / name
        if path.exists():
            with open(path, newline="", encoding="utf-8") as fh:
                texts += [row["text"] for row in csv.DictReader(fh) if row.get("text")]
    if texts:
        return texts
    return [f"{c} {e} as markets weigh the outlook" for c in COMPANIES for e in EVENTS]


@dataclass
class Sample:
    t: float  # seconds since the soak started
    rss_mb: float
    stored: float  # the worker's finsentry_documents_stored_total


@dataclass
class Sampler:
    """Samples the worker's RSS and stored counter in a thread until stopped."""

    worker: WorkerProcess
    every_s: float
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sampler:
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            stored = self.worker.metrics().get("finsentry_documents_stored_total", float("nan"))
            self.samples.append(Sample(time.monotonic() - self._t0, rss_mb(self.worker.proc.pid), stored))
            self._stop.wait(self.every_s)

    def stop(self) -> list[Sample]:
        self._stop.set()
        self._thread.join()
        return self.samples


class Feed:
    """Documents for one phase: corpus texts made unique by a tag, published now."""

    def __init__(self, texts: list[str], phase: str):
        self.texts, self.phase, self.n = texts, phase, 0

    def next(self) -> Document:
        text = self.texts[self.n % len(self.texts)]
        self.n += 1
        return Document(
            source=f"soak-{self.phase}",
            kind="news",
            title=None,
            text=f"{text} [{self.phase}-{self.n}]",
            published_at=datetime.now(timezone.utc),
        )


def publish(
    producer: DocumentProducer,
    feed: Feed,
    count: int | None = None,
    rate: float | None = None,
    duration_s: float | None = None,
) -> tuple[int, float]:
    """Publish `count` documents (or for `duration_s` at `rate`); returns (published, start)."""
    start = time.time()
    sent = 0
    while (count is None or sent < count) and (duration_s is None or time.time() - start < duration_s):
        if rate:
            delay = start + sent / rate - time.time()
            if delay > 0:
                time.sleep(delay)
        producer.publish(feed.next())
        sent += 1
    producer.flush()
    return sent, start


async def stored_docs(settings: Settings, source: str) -> list[dict]:
    store = open_store(settings.store, settings)
    await store.open()
    try:
        return [doc async for doc in store.export() if doc.get("source") == source]
    finally:
        await store.close()


def wait_stored(worker: WorkerProcess, settings: Settings, source: str, n: int, timeout: float) -> list[dict]:
    """Poll with a COUNT (exporting every document each second would take the CPU of the
    worker being measured), then export this source's documents once."""
    deadline = time.monotonic() + timeout
    query = SearchQuery(source=source)
    while True:
        stored = asyncio.run(store_ops.count(settings.store, settings, query))
        if stored >= n:
            return asyncio.run(stored_docs(settings, source))
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {stored} of {n} {source} documents stored within {timeout:.0f}s")
        if worker.proc.poll() is not None:
            raise RuntimeError(f"the worker exited:\n{worker.tail()}")
        time.sleep(1.0)


def verdict(peak: float | None, rate: float, soak_lat: list[float], samples: list[Sample]) -> dict:
    thirds = max(1, len(samples) // 3)
    first = sum(s.rss_mb for s in samples[:thirds]) / thirds
    last = sum(s.rss_mb for s in samples[-thirds:]) / thirds
    max_rss = max(s.rss_mb for s in samples)
    p99 = percentile(soak_lat, 0.99)
    at_half_peak = peak is not None and abs(rate - peak / 2) <= 0.05 * peak
    return {
        "rss_below_budget": max_rss < RSS_BUDGET_MB,
        "rss_flat": last <= max(first * RSS_GROWTH_RATIO, first + RSS_GROWTH_FLOOR_MB),
        "p99_below_budget": p99 < P99_BUDGET_S,
        "p99_measured_at_half_peak": at_half_peak,
        "rss_first_third_mb": round(first, 1),
        "rss_last_third_mb": round(last, 1),
        "rss_max_mb": round(max_rss, 1),
    }


def report(
    peak: float | None,
    rate: float,
    duration_s: float,
    documents: int,
    throughput: float,
    latencies: list[float],
    latencies_by_third: list[list[float]],
    samples: list[Sample],
    result: dict,
) -> dict:
    """The JSON object printed as the last line: every number of the run, the verdict and
    whether every budget was met."""
    return {
        "peak_docs_per_s": None if peak is None else round(peak, 1),
        "rate_docs_per_s": round(rate, 1),
        "duration_s": duration_s,
        "documents": documents,
        "stored_docs_per_s": round(throughput, 1),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "p99_ms_by_third": [round(percentile(part, 0.99) * 1000, 1) for part in latencies_by_third],
        "rss_mb": [[round(s.t, 1), round(s.rss_mb, 1)] for s in samples],
        **result,
        "pass": all(result[key] for _, key in CHECKS),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=300.0, help="Seconds of steady load (default 300).")
    parser.add_argument(
        "--rate", type=float, default=None, help="Docs/s of the soak (default: half the measured peak)."
    )
    parser.add_argument("--peak-docs", type=int, default=1500, help="Documents of the peak measurement.")
    parser.add_argument("--warm-docs", type=int, default=100, help="Documents of the warm-up.")
    parser.add_argument("--sample-every", type=float, default=5.0, help="Seconds between RSS samples.")
    parser.add_argument("--backend", default="auto", help="Inference backend of the worker.")
    args = parser.parse_args()
    texts = corpus()
    work = Path(tempfile.mkdtemp(prefix="finsentry-soak-"))
    print(f"soak: work directory {work} (broker, worker and store on 127.0.0.1)", flush=True)

    with EmbeddedBroker(log_file=work / "broker.log") as broker:
        prefix = f"soak-{uuid.uuid4().hex[:6]}."
        port = free_port()
        values = dict(
            broker=broker.url,
            broker_embedded=True,
            topic_prefix=prefix,
            app_id=f"soak-{prefix}",
            store=f"sqlite:///{work / 'store.db'}",
            web_port=port,
            data_dir=work / "data",
            outbox_path=work / "outbox.db",
            registry_dir=work / "registry",
            backend=args.backend,
            model_cache_dir=Path("var/model-cache").resolve(),
            log_level="WARNING",
        )
        settings = Settings(_env_file=None, **values)
        with WorkerProcess(settings_env(**values), work / "worker.log", port) as worker:
            producer = DocumentProducer(settings)
            try:
                publish(producer, Feed(texts, "warm"), count=args.warm_docs)
                wait_stored(worker, settings, "soak-warm", args.warm_docs, 300)

                peak = None
                if args.rate is None:
                    n, start = publish(producer, Feed(texts, "peak"), count=args.peak_docs)
                    docs = wait_stored(worker, settings, "soak-peak", n, 900)
                    peak = n / (max(stored_epoch(d) for d in docs) - start)
                    print(f"peak: {n} documents, {peak:.1f} docs/s", flush=True)
                rate = args.rate or peak / 2

                print(
                    f"soak: {rate:.1f} docs/s for {args.duration:.0f}s, sampling every {args.sample_every:.0f}s",
                    flush=True,
                )
                sampler = Sampler(worker, args.sample_every).start()
                n, start = publish(producer, Feed(texts, "soak"), rate=rate, duration_s=args.duration)
                published_for = time.time() - start
                docs = wait_stored(worker, settings, "soak-soak", n, 300)
                samples = sampler.stop()
            finally:
                producer.close()

    latencies = [ingest_to_stored_s(d) for d in docs]
    by_ingest = sorted(docs, key=lambda d: float(d["ingested_at"]))
    third = max(1, len(by_ingest) // 3)
    parts = [by_ingest[:third], by_ingest[third : 2 * third], by_ingest[2 * third :]]
    latencies_by_third = [[ingest_to_stored_s(d) for d in part] for part in parts]
    throughput = n / (max(stored_epoch(d) for d in docs) - start)
    result = verdict(peak, rate, latencies, samples)

    print("\n   t(s)   RSS(MB)   stored   docs/s")
    previous = None
    for s in samples:
        speed = "" if previous is None else f"{(s.stored - previous.stored) / max(1e-9, s.t - previous.t):8.1f}"
        print(f"{s.t:7.0f} {s.rss_mb:9.1f} {s.stored:8.0f} {speed}")
        previous = s
    print(f"\npublished {n} documents in {published_for:.0f}s ({n / published_for:.1f} docs/s asked {rate:.1f})")
    print(
        f"stored throughput   {throughput:8.1f} docs/s"
        + (f"   (peak {peak:.1f}, ratio {throughput / peak:.2f})" if peak else "")
    )
    print(
        f"latency p50/p99     {percentile(latencies, 0.5) * 1000:6.0f} / {percentile(latencies, 0.99) * 1000:6.0f} ms"
        f"   (budget p99 < {P99_BUDGET_S * 1000:.0f} ms)"
    )
    for name, lat in zip(("first", "middle", "last"), latencies_by_third):
        print(f"  {name:6} third     {percentile(lat, 0.5) * 1000:6.0f} / {percentile(lat, 0.99) * 1000:6.0f} ms")
    print(
        f"worker RSS          first third {result['rss_first_third_mb']:.0f} MB, last third "
        f"{result['rss_last_third_mb']:.0f} MB, max {result['rss_max_mb']:.0f} MB (budget < {RSS_BUDGET_MB:.0f} MB, "
        f"growth ≤ {RSS_GROWTH_RATIO - 1:.0%})"
    )
    print(
        "verdict: "
        + ", ".join(f"{name} {'PASS' if result[key] else 'FAIL'}" for name, key in CHECKS)
        + ("" if result["p99_measured_at_half_peak"] else "  (p99 not at half of peak: --rate was given)")
    )
    summary = report(peak, rate, args.duration, n, throughput, latencies, latencies_by_third, samples, result)
    print(json.dumps(summary))
    return 0 if summary["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
