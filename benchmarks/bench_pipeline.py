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

With `--engine null` the worker is benchmarks/null_worker.py: the real worker with an
engine that answers instantly, so what remains is the streaming layer's own cost. That run
skips the raw engine and the half-rate phase and reports the drain rate, and the CPU time
per document of the worker (its process tree) and of the broker, from /proc: CPU time is
far less sensitive than wall time to other work on the machine. `--profile FILE` samples
the worker with py-spy (`pip install py-spy`) during the peak and writes a speedscope
profile; benchmarks/profile_stages.py turns it into the per-stage table.

    python benchmarks/bench_pipeline.py [--n 6000] [--engine model|null] [--profile FILE]
                                        [--ingest-batch-size 0]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from finsentry.ingest.producer import DocumentProducer
from finsentry.models.engine import Engine
from finsentry.records import Document
from finsentry.settings import Settings
from finsentry.store import open_store
from finsentry.store import ops as store_ops
from finsentry.store.shape import ingest_to_stored_s, stored_epoch
from finsentry.streams.broker import EmbeddedBroker, free_port
from finsentry.streams.process import WorkerProcess, percentile, rss_mb, settings_env
from finsentry.textnorm import model_input

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
    worker.wait_for(
        lambda: asyncio.run(store_ops.count(settings.store, settings)) >= total,
        timeout,
        interval=1.0,
        what=f"{total} documents stored",
    )


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


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads (Linux /proc)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process, its live descendants, and the children it has reaped."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(_stat(int(entry.name))[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent and child not in tree]
        tree.update(children)
        frontier += children
    total = 0.0
    for member in tree:
        try:
            total += cpu_seconds(member)
        except OSError:  # exited meanwhile
            continue
    reaped = _stat(pid)
    return total + (int(reaped[13]) + int(reaped[14])) / os.sysconf("SC_CLK_TCK")


def publish(settings: Settings, docs: list[Document], rate: float | None, **producer_overrides) -> tuple[float, float]:
    """Publish (at `rate` docs/s, or as fast as possible); returns (start, end) epochs."""
    producer = DocumentProducer(settings, **producer_overrides)
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
    return [
        Document(
            source="bench", title=None, text=f"{t} [{tag}{i}]", url=None, published_at=base + timedelta(milliseconds=i)
        )
        for i, t in enumerate(batch)
    ]


NULL_WORKER = Path(__file__).resolve().parent / "null_worker.py"


def engine_rate_of(backend: str, corpus: list[str]) -> tuple[float, str]:
    """The engine as the worker runs it (same streams and threads); each call gets one batch
    per stream, so it sorts by length no further ahead than the worker's batches do."""
    defaults = Settings(_env_file=None)
    streams, _ = defaults.inference_plan
    engine = Engine.load(
        backend=backend,
        cache_dir=Path("var/model-cache"),
        max_batch=defaults.max_batch,
        threads=defaults.inference_threads,
        streams=streams,
    )
    inputs = [model_input(None, t) for t in corpus]
    chunk = defaults.max_batch * streams
    engine.predict(inputs[:chunk])
    start = time.perf_counter()
    for i in range(0, len(inputs), chunk):
        engine.predict(inputs[i : i + chunk])
    return len(inputs) / (time.perf_counter() - start), engine.backend_name


def start_profiler(pid: int, out: Path) -> subprocess.Popen:
    """py-spy sampling every thread of the worker (native frames off: Python stacks name the
    stages), until stopped with SIGINT."""
    beside = Path(sys.executable).with_name("py-spy")  # installed in this environment, else on PATH
    return subprocess.Popen(
        [
            str(beside) if beside.exists() else "py-spy",
            "record",
            "--pid",
            str(pid),
            "--format",
            "speedscope",
            "--rate",
            "200",
            "--output",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stop_profiler(proc: subprocess.Popen) -> None:
    import signal

    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=6000)
    parser.add_argument(
        "--engine",
        choices=("model", "null"),
        default="model",
        help="model: the real engine; null: benchmarks/null_worker.py's instant one",
    )
    parser.add_argument("--backend", default="auto", help="the model's backend (--engine model)")
    parser.add_argument("--profile", type=Path, help="write a py-spy speedscope profile of the worker's peak here")
    parser.add_argument(
        "--ingest-batch-size",
        type=int,
        help="the publisher's kafka-python batch_size (0: one record per batch, as before batching)",
    )
    args = parser.parse_args()
    overrides = {} if args.ingest_batch_size is None else {"batch_size": args.ingest_batch_size}
    null = args.engine == "null"
    corpus = texts(args.n)
    work = Path(tempfile.mkdtemp(prefix="finsentry-bench-"))
    engine_rate, backend = (float("nan"), "null") if null else engine_rate_of(args.backend, corpus)

    with EmbeddedBroker(log_file=work / "broker.log") as broker:
        prefix = f"bench-{uuid.uuid4().hex[:6]}."
        port = free_port()
        settings = Settings(
            _env_file=None,
            broker=broker.url,
            broker_embedded=True,
            topic_prefix=prefix,
            store=f"sqlite:///{work / 'store.db'}",
            web_port=port,
            data_dir=work,
            outbox_path=work / "outbox.db",
        )
        env = settings_env(
            broker=broker.url,
            broker_embedded=True,
            topic_prefix=prefix,
            app_id=f"bench-{prefix}",
            store=settings.store,
            web_port=port,
            data_dir=work,
            outbox_path=work / "outbox.db",
            registry_dir=work / "registry",
            log_level="WARNING",
            backend=None if null else backend,
        )
        command = [sys.executable, str(NULL_WORKER)] if null else None
        with WorkerProcess(env, work / "worker.log", port, command=command) as worker:
            # Warm the path (topic creation, group join, first batches) before measuring.
            warm = make_docs(corpus[:100], "w")
            publish(settings, warm, None, **overrides)
            wait_stored(worker, settings, len(warm), 180)

            peak_docs = make_docs(corpus, "p")
            ids = {d.with_defaults().id for d in peak_docs}
            before = worker.metrics()
            profiler = start_profiler(worker.proc.pid, args.profile) if args.profile else None
            cpu_before = tree_cpu_seconds(worker.proc.pid), cpu_seconds(broker.proc.pid)
            t0, t_pub = publish(settings, peak_docs, None, **overrides)
            wait_stored(worker, settings, len(warm) + len(ids), 900)
            t_done = time.time()
            worker_cpu = tree_cpu_seconds(worker.proc.pid) - cpu_before[0]
            broker_cpu = cpu_seconds(broker.proc.pid) - cpu_before[1]
            if profiler:
                stop_profiler(profiler)
            after = worker.metrics()
            worker_cores, broker_cores = worker_cpu / (t_done - t0), broker_cpu / (t_done - t0)
            _, last, _, when = asyncio.run(stored_stats(settings, ids))
            delta = {
                k: after.get(k, 0.0) - before.get(k, 0.0)
                for k in ("finsentry_batch_size_sum", "finsentry_batch_size_count", "finsentry_inference_seconds_sum")
            }
            mean_batch = delta["finsentry_batch_size_sum"] / max(1.0, delta["finsentry_batch_size_count"])
            model_busy = delta["finsentry_inference_seconds_sum"] / (last - t0)
            end_to_end_rate = len(ids) / (last - t0)
            drained = [w for w in when if w > t_pub]
            # Too few left after publishing means the worker kept pace with the producer.
            pipeline_rate = len(drained) / (last - t_pub) if len(drained) >= len(ids) // 4 else end_to_end_rate

            half, lat, memory = pipeline_rate / 2, [], rss_mb(worker.proc.pid)
            if not null:
                steady = make_docs(corpus[: min(len(corpus), int(half * 60))], "h")
                ids_half = {d.with_defaults().id for d in steady}
                publish(settings, steady, half, **overrides)
                wait_stored(worker, settings, len(warm) + len(peak_docs) + len(ids_half), 600)
                _, _, lat, _ = asyncio.run(stored_stats(settings, ids_half))
                memory = rss_mb(worker.proc.pid)

    ratio = pipeline_rate / engine_rate
    worker_ms, broker_ms = worker_cpu * 1000 / len(ids), broker_cpu * 1000 / len(ids)
    print(
        f"engine {args.engine}, backend {backend}; {len(corpus)} documents; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    if not null:
        print(f"raw engine          {engine_rate:8.0f} docs/s")
    print(
        f"pipeline, drain     {pipeline_rate:8.0f} docs/s" + ("" if null else f"   ratio {ratio:.2f} (target ≥ 0.90)")
    )
    print(f"pipeline, incl. publishing {end_to_end_rate:5.0f} docs/s (publisher on the same cores)")
    print(
        f"CPU per document    worker {worker_ms:.3f} ms, broker {broker_ms:.3f} ms "
        f"(publish to last stored; the broker's includes taking the publisher's records)"
    )
    print(
        f"during the peak      mean batch {mean_batch:.1f}; model running {model_busy:.0%} of the time; "
        f"worker {worker_cores:.2f} cores, broker {broker_cores:.2f} cores (of {os.cpu_count()})"
    )
    if not null:
        print(
            f"at half of peak     {half:8.0f} docs/s   p50 {percentile(lat, 0.5) * 1000:.0f} ms  "
            f"p99 {percentile(lat, 0.99) * 1000:.0f} ms (budget p99 < 2000 ms)"
        )
    print(f"worker RSS          {memory:8.0f} MB (budget < 1024 MB)")
    summary = {
        "engine": args.engine,
        "documents": len(ids),
        "ingest_batch_size": args.ingest_batch_size,
        "pipeline_docs_per_s": round(pipeline_rate, 1),
        "end_to_end_docs_per_s": round(end_to_end_rate, 1),
        "worker_cpu_ms_per_doc": round(worker_ms, 3),
        "broker_cpu_ms_per_doc": round(broker_ms, 3),
        "worker_rss_mb": round(memory, 1),
        "backend": backend,
        "mean_batch": round(mean_batch, 1),
        "model_busy": round(model_busy, 3),
        "worker_cores": round(worker_cores, 2),
        "broker_cores": round(broker_cores, 2),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    if not null:
        summary.update(
            {
                "engine_docs_per_s": round(engine_rate, 1),
                "ratio": round(ratio, 3),
                "half_load_docs_per_s": round(half, 1),
                "p50_ms": round(percentile(lat, 0.5) * 1000, 1),
                "p99_ms": round(percentile(lat, 0.99) * 1000, 1),
            }
        )
    print(json.dumps(summary))
    sys.exit(0)


if __name__ == "__main__":
    main()
