"""`finsentry demo`: the whole pipeline on one machine, nothing to install beyond the package.

It supervises two child processes — the embedded broker (memory only: everything is gone
when the demo stops) and one worker running every agent with the SQLite store and the
web page — and replays the bundled sample stream into the raw topic. It reports what
happens while it runs; with --max-docs it stops once that many documents are stored and
prints a JSON summary as its last line.
"""

from __future__ import annotations

import asyncio
import gzip
import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from finsentry.errors import FinsentryError
from finsentry.ingest import samples
from finsentry.ingest.producer import DocumentProducer, encode_document, with_stable_id
from finsentry.ingest.replay import Line, Pacer, Rebaser, read_documents
from finsentry.settings import Settings
from finsentry.store import open_store
from finsentry.store.shape import ingest_to_stored_s, stored_epoch
from finsentry.streams.agents.validate import validate_payload
from finsentry.streams.broker import EmbeddedBroker
from finsentry.streams.process import WorkerProcess, percentile, scrape_metrics, settings_env

SAMPLE = Path(samples.__file__).resolve().parent / "demo.jsonl.gz"
# After the replay, the worker gets this long to store the last of N documents: start-up
# slack plus a per-document allowance for a slow CPU shared with other work (5 documents/s;
# the wait ends as soon as they are stored).
DRAIN_GRACE_S = 60.0
DRAIN_S_PER_DOC = 0.2
# The worker's counters follow the store by a batch, its alerts follow the documents by a
# topic hop, and a busy worker answers a scrape late.
SETTLE_WAIT_S = 60.0


@dataclass
class DemoOptions:
    store: str | None = None
    web_port: int = 6066
    speed: float = 30.0
    max_docs: int | None = None
    input_file: Path | None = None
    workdir: Path = Path("var/demo")


def say(message: str) -> None:
    print(message, flush=True)


def read_sample(path: Path, max_text_bytes: int) -> list[Line]:
    """Every line of a (gzipped) JSONL or CSV stream, as `finsentry ingest` reads it."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        return list(read_documents(fh, name=path.name.removesuffix(".gz"), max_text_bytes=max_text_bytes))


def run_store_url(url: str, settings: Settings, stamp: str) -> str:
    """An Elasticsearch URL gets an index prefix of its own for this run: the cluster outlives
    the demo, and an earlier run's documents and alerts would otherwise be counted again."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        return url
    options = parse_qs(parts.query, keep_blank_values=True)
    base = options.get("prefix", [settings.es_index_prefix])[-1]
    options["prefix"] = [f"{base}-demo-{stamp}"]
    return urlunsplit(parts._replace(query=urlencode(options, doseq=True)))


class Storable:
    """Counts what the worker will store: payloads its own validation accepts, by distinct id
    (an exact duplicate is upserted onto its first copy)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.ids: set[str] = set()

    def add(self, payload: bytes) -> None:
        try:
            doc = validate_payload(payload, time.time(), self.settings.max_text_bytes, self.settings.future_tolerance_s)
        except ValueError:
            return  # dead-lettered by the worker
        self.ids.add(doc.id)

    def __len__(self) -> int:
        return len(self.ids)


class DemoIncomplete(FinsentryError, RuntimeError):
    """--max-docs N was not reached; carries the summary of what was."""

    def __init__(self, message: str, summary: dict):
        super().__init__(message)
        self.summary = summary


class Demo:
    def __init__(self, settings: Settings, opts: DemoOptions):
        self.opts = opts
        self.workdir = opts.workdir
        stamp = f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        self.store_url = (
            run_store_url(opts.store, settings, stamp) if opts.store else f"sqlite:///{self.workdir / 'finsentry.db'}"
        )
        self.settings = settings
        self.broker = EmbeddedBroker(log_file=self.workdir / "broker.log")
        self.worker: WorkerProcess | None = None

    # --- processes -----------------------------------------------------------------------
    def start(self) -> None:
        if self.workdir.exists():
            shutil.rmtree(self.workdir)  # the broker starts empty, so must the store and outbox
        self.workdir.mkdir(parents=True)
        self.broker.start()
        say(f"broker   kafka://{self.broker.address}  (embedded tansu, memory only: data is gone when the demo stops)")
        env = settings_env(
            broker=self.broker.url,
            broker_embedded=True,
            store=self.store_url,
            web_port=self.opts.web_port,
            data_dir=self.workdir,
            backend=self.settings.backend,
            outbox_path=self.workdir / "outbox.db",
            broker_session_timeout_s=10,
            broker_heartbeat_s=1,
            dashboard_url=f"http://127.0.0.1:{self.opts.web_port}/",
        )
        self.worker = WorkerProcess(env, self.workdir / "worker.log", self.opts.web_port)
        say(f"worker   starting, log {self.workdir / 'worker.log'}; loading the model…")
        self.worker.start(timeout=300)
        say(f"dashboard http://127.0.0.1:{self.opts.web_port}/   metrics http://127.0.0.1:{self.opts.web_port}/metrics")
        say(f"store    {self.store_url}")
        say(
            (
                f"publish your own: FINSENTRY_BROKER={self.broker.url} FINSENTRY_BROKER_EMBEDDED=true finsentry "
                "ingest docs.jsonl"
            )
        )

    def stop(self) -> None:
        if self.worker:
            self.worker.stop()
        self.broker.stop()

    # --- replay and report -----------------------------------------------------------------
    async def run(self) -> dict | None:
        producer_settings = self.settings.model_copy(update={"broker": self.broker.url, "broker_embedded": True})
        producer = DocumentProducer(producer_settings)
        store = open_store(self.store_url, self.settings)
        await store.open()
        lines = read_sample(self.opts.input_file or SAMPLE, self.settings.max_text_bytes)
        started = time.time()
        # The recorded stream is moved to end now, so the dashboards show it as the last hours.
        shift = Rebaser.ending_at(datetime.now(timezone.utc), [line.doc for line in lines if line.doc])
        pacer = Pacer(self.opts.speed)
        published, storable, last_report = 0, Storable(self.settings), 0.0
        seen_alerts: set[str] = set()
        pace = f"{self.opts.speed:g}× event time" if self.opts.speed else "full speed"
        say(f"replaying {len(lines)} documents at {pace}")
        try:
            for line in lines:
                if line.doc is None:  # the sample's deliberately malformed records: dead-lettered
                    payload = line.raw
                    producer.publish_raw(payload)
                else:
                    doc = with_stable_id(shift(line.doc))
                    wait = pacer.delay(doc.published_at)
                    if wait > 0:
                        time.sleep(wait)
                    payload = encode_document(doc)
                    producer.publish(doc)
                published += 1
                storable.add(payload)
                if time.monotonic() - last_report > 5:
                    last_report = time.monotonic()
                    await self.report(store, published, seen_alerts)
                if self.opts.max_docs and len(storable) >= self.opts.max_docs:
                    break
            producer.flush()
            if self.opts.max_docs:
                return await self.finish(store, published, len(storable), started)
            say("sample replayed; the pipeline keeps running — Ctrl-C to stop")
            while True:
                await asyncio.sleep(5)
                await self.report(store, published, seen_alerts)
        finally:
            producer.close()
            await store.close()

    async def report(self, store, published: int, seen_alerts: set) -> None:
        stored = await store.count()
        m = scrape_metrics(self.opts.web_port)
        say(
            f"published {published}  scored {int(m.get('finsentry_documents_scored_total', 0))}  stored {stored}  "
            f"dead-lettered {int(m.get('finsentry_documents_dead_lettered_total', 0))}"
        )
        for alert in await store.alerts(limit=50):
            if alert["id"] not in seen_alerts:
                seen_alerts.add(alert["id"])
                say(
                    f"ALERT [{alert['severity']}] {alert['scope']} '{alert['key']}': negative share "
                    f"{alert['negative_share']:.0%} vs baseline {alert['baseline']:.0%} over {alert['volume']} stories"
                )

    async def settled_after(self, store, stored: int) -> dict[str, float]:
        """The worker's counters once the pipeline behind the store has caught up: its counters
        account for `stored` documents, no input of the worker lags, and every alert the
        detector raised is in the store (alerts follow the documents that raised them by a
        topic hop). After SETTLE_WAIT_S the last answer is returned, and the summary shows
        what the worker had reported by then."""
        deadline = time.monotonic() + SETTLE_WAIT_S
        while True:
            m = scrape_metrics(self.opts.web_port)
            settled = (
                m.get("finsentry_documents_stored_total", 0) >= stored
                and m.get("finsentry_consumer_lag_messages", 1) == 0
                and len(await store.alerts(limit=1000)) >= m.get("finsentry_alerts_total", 0)
            )
            if settled or time.monotonic() > deadline:
                return m
            await asyncio.sleep(0.2)

    async def finish(self, store, published: int, storable: int, started: float) -> dict:
        """Wait for the stored count to reach N, then summarise; DemoIncomplete if it does not.
        The wait starts after the replay, so a paced replay (N documents at --speed) has already
        had its own time; what is left is the pipeline's backlog, at most N documents."""
        target = min(self.opts.max_docs, storable)
        budget_s = DRAIN_GRACE_S + DRAIN_S_PER_DOC * target
        deadline = time.monotonic() + budget_s
        while await store.count() < target and time.monotonic() < deadline:
            if self.worker.proc.poll() is not None:
                raise RuntimeError(f"the worker exited:\n{self.worker.tail()}")
            await asyncio.sleep(0.2)
        latencies, last_stored = [], started
        async for doc in store.export():
            latencies.append(ingest_to_stored_s(doc) * 1000)
            last_stored = max(last_stored, stored_epoch(doc))
        stored = await store.count()
        m = await self.settled_after(store, stored)
        summary = {
            "docs_in": published,
            "docs_scored": int(m.get("finsentry_documents_scored_total", 0)),
            "docs_stored": stored,
            "docs_dead_lettered": int(m.get("finsentry_documents_dead_lettered_total", 0)),
            "alerts": len(await store.alerts(limit=1000)),
            "docs_per_s": round(stored / max(1e-6, last_stored - started), 1),
            "p50_ms": round(percentile(latencies, 0.50), 1) if latencies else 0.0,
            "p99_ms": round(percentile(latencies, 0.99), 1) if latencies else 0.0,
        }
        if stored < self.opts.max_docs:
            why = (
                f"the stream holds only {storable} documents the worker accepts"
                if storable < self.opts.max_docs
                else f"the pipeline did not store them within {budget_s:.0f} s"
            )
            raise DemoIncomplete(
                f"{stored} of {self.opts.max_docs} documents stored: {why}; worker log: {self.workdir / 'worker.log'}",
                summary,
            )
        return summary


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the demo like Ctrl-C: children are stopped too


def run_demo(settings: Settings, opts: DemoOptions) -> dict | None:
    import signal

    signal.signal(signal.SIGTERM, _interrupt)
    demo = Demo(settings, opts)
    try:
        demo.start()
        return asyncio.run(demo.run())
    except KeyboardInterrupt:
        say("stopping")
        return None
    finally:
        demo.stop()
