"""End-to-end throughput and latency: broker → worker → store against the raw engine.

In one run, on the same texts:
1. the raw engine (same backend choice, batch size, streams and threads as the worker)
   scores them in-process;
2. a `finsentry worker` on the embedded broker takes them from the raw topic to the SQLite
   store as fast as they are published. Two rates: from first publish to last stored, and
   the drain rate once the publisher is done (documents stored after the last publish,
   over the time they took). The publisher stands in for scrapers on other machines; on
   two shared cores it competes with the worker, so the drain rate is the pipeline's own;
3. the same worker at half that rate — ingest→stored latency p50/p99 (budget: p99 < 2 s)
   and the worker's resident memory (budget: < 1 GB).
Prints the pipeline/engine ratio (target ≥ 0.9), and where the time went during the peak:
mean batch size, the share of the wall time the model was running, and the CPU cores the
worker and the broker used.

    python benchmarks/bench_pipeline.py [--n 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from finsentry.models.engine import Engine
from finsentry.models.textnorm import model_input
from finsentry.settings import Settings
from finsentry.streams.broker import EmbeddedBroker, free_port
from finsentry.streams.ingest.producer import DocumentProducer
from finsentry.streams.process import WorkerProcess, percentile, rss_mb, settings_env
from finsentry.streams.records import Document
from finsentry.streams.sinks import open_store
from finsentry.streams.sinks import ops as store_ops
from finsentry.streams.sinks.shape import ingest_to_stored_s, stored_epoch

DATA = Path(__file__).resolve().parents[1] / "data" / "tfn"


def texts(n: int) -> list[str]:
    out = []
    for name in ("tfns_sentiment_valid.csv", "tfnt_topic_test.csv"):
        with open(DATA / name, newline="", encoding="utf-8") as fh:
            out += [r["text"] for r in csv.DictReader(fh)]
    return (out * (n // len(out) + 1))[:n]




def wait_stored(worker: WorkerProcess, settings: Settings, total: int, timeout: float) -> None:
    """Poll with a cheap COUNT: exporting every document each second would take CPU from
    the worker being measured."""
    worker.wait_for(lambda: asyncio.run(store_ops.count(settings.store, settings)) >= total, timeout,
                    interval=1.0, what=f"{total} documents stored")


async def stored_stats(settings: Settings, ids: set[str]) -> tuple[int, float, list[float], list[float]]:
    """(count, last stored epoch, ingest→stored latencies, stored epochs) of these ids."""
    store = open_store(settings.store, settings)
    await store.open()
    try:
        count, last, lat, when = 0, 0.0, [], []
        async for doc in store.export():
            if doc["id"] in ids:
                count += 1
                when.append(stored_epoch(doc))
                last = max(last, when[-1])
                lat.append(ingest_to_stored_s(doc))
        return count, last, lat, when
    finally:
        await store.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def publish(settings: Settings, docs: list[Document], rate: float | None) -> tuple[float, float]:
    """Publish (at `rate` docs/s, or as fast as possible); returns (start, end) epochs."""
    producer = DocumentProducer(settings)
    start = time.time()
    for i, doc in enumerate(docs):
        if rate:
            delay = start + i / rate - time.time()
            if delay > 0:
                time.sleep(delay)
        producer.publish(doc)
    producer.flush()
    producer.close()
    return start, time.time()


def make_docs(batch: list[str], tag: str) -> list[Document]:
    base = datetime.now(timezone.utc) - timedelta(hours=1)
    return [Document(source="bench", title=None, text=f"{t} [{tag}{i}]", url=None,
                     published_at=base + timedelta(milliseconds=i)) for i, t in enumerate(batch)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args()
    corpus = texts(args.n)
    work = Path(tempfile.mkdtemp(prefix="finsentry-bench-"))

    # The engine as the worker runs it (same streams and threads); each call gets one batch
    # per stream, so it sorts by length no further ahead than the worker's batches do.
    defaults = Settings(_env_file=None)
    streams, _ = defaults.inference_plan
    engine = Engine.load(backend=args.backend, cache_dir=Path("var/model-cache"), max_batch=defaults.max_batch,
                         threads=defaults.inference_threads, streams=streams)
    inputs = [model_input(None, t) for t in corpus]
    chunk = defaults.max_batch * streams
    engine.predict(inputs[:chunk])
    start = time.perf_counter()
    for i in range(0, len(inputs), chunk):
        engine.predict(inputs[i:i + chunk])
    engine_rate = len(inputs) / (time.perf_counter() - start)
    backend = engine.backend_name
    del engine

    with EmbeddedBroker(log_file=work / "broker.log") as broker:
        prefix = f"bench-{uuid.uuid4().hex[:6]}."
        port = free_port()
        settings = Settings(_env_file=None, broker=broker.url, broker_embedded=True, topic_prefix=prefix,
                            store=f"sqlite:///{work / 'store.db'}", web_port=port, data_dir=work,
                            outbox_path=work / "outbox.db", backend=backend)
        env = settings_env(broker=broker.url, broker_embedded=True, topic_prefix=prefix, app_id=f"bench-{prefix}",
                           store=settings.store, web_port=port, data_dir=work, outbox_path=work / "outbox.db",
                           backend=backend, log_level="WARNING")
        with WorkerProcess(env, work / "worker.log", port) as worker:
            # Warm the path (topic creation, group join, first batches) before measuring.
            warm = make_docs(corpus[:100], "w")
            publish(settings, warm, None)
            wait_stored(worker, settings, len(warm), 180)

            peak_docs = make_docs(corpus, "p")
            ids = {d.with_defaults().id for d in peak_docs}
            before = worker.metrics()
            cpu_before = cpu_seconds(worker.proc.pid), cpu_seconds(broker.proc.pid)
            t0, t_pub = publish(settings, peak_docs, None)
            wait_stored(worker, settings, len(warm) + len(ids), 900)
            t_done = time.time()
            after = worker.metrics()
            worker_cores = (cpu_seconds(worker.proc.pid) - cpu_before[0]) / (t_done - t0)
            broker_cores = (cpu_seconds(broker.proc.pid) - cpu_before[1]) / (t_done - t0)
            _, last, _, when = asyncio.run(stored_stats(settings, ids))
            delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in
                     ("finsentry_batch_size_sum", "finsentry_batch_size_count", "finsentry_inference_seconds_sum")}
            mean_batch = delta["finsentry_batch_size_sum"] / max(1.0, delta["finsentry_batch_size_count"])
            model_busy = delta["finsentry_inference_seconds_sum"] / (last - t0)
            end_to_end_rate = len(ids) / (last - t0)
            drained = [w for w in when if w > t_pub]
            # Too few left after publishing means the worker kept pace with the producer.
            pipeline_rate = len(drained) / (last - t_pub) if len(drained) >= len(ids) // 4 else end_to_end_rate

            half = pipeline_rate / 2
            steady = make_docs(corpus[: min(len(corpus), int(half * 60))], "h")
            ids = {d.with_defaults().id for d in steady}
            publish(settings, steady, half)
            wait_stored(worker, settings, len(warm) + len(peak_docs) + len(ids), 600)
            _, _, lat, _ = asyncio.run(stored_stats(settings, ids))
            memory = rss_mb(worker.proc.pid)

    ratio = pipeline_rate / engine_rate
    print(f"backend {backend}; {len(corpus)} documents")
    print(f"raw engine          {engine_rate:8.0f} docs/s")
    print(f"pipeline, drain     {pipeline_rate:8.0f} docs/s   ratio {ratio:.2f} (target ≥ 0.90)")
    print(f"pipeline, incl. publishing {end_to_end_rate:5.0f} docs/s   ratio {end_to_end_rate / engine_rate:.2f} "
          f"(publisher on the same cores)")
    print(f"during the peak      mean batch {mean_batch:.1f}; model running {model_busy:.0%} of the time; "
          f"worker {worker_cores:.2f} cores, broker {broker_cores:.2f} cores (of {os.cpu_count()})")
    print(f"at half of peak     {half:8.0f} docs/s   p50 {percentile(lat, .5) * 1000:.0f} ms  "
          f"p99 {percentile(lat, .99) * 1000:.0f} ms (budget p99 < 2000 ms)")
    print(f"worker RSS          {memory:8.0f} MB (budget < 1024 MB)")
    print(json.dumps({"engine_docs_per_s": round(engine_rate, 1), "pipeline_docs_per_s": round(pipeline_rate, 1),
                      "end_to_end_docs_per_s": round(end_to_end_rate, 1),
                      "ratio": round(ratio, 3), "half_load_docs_per_s": round(half, 1),
                      "p50_ms": round(percentile(lat, .5) * 1000, 1), "p99_ms": round(percentile(lat, .99) * 1000, 1),
                      "worker_rss_mb": round(memory, 1), "backend": backend, "mean_batch": round(mean_batch, 1),
                      "model_busy": round(model_busy, 3), "worker_cores": round(worker_cores, 2),
                      "broker_cores": round(broker_cores, 2)}))
    sys.exit(0)


if __name__ == "__main__":
    main()
