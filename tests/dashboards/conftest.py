"""Fixtures of the dashboard tests: a real SQLite store filled with scored documents, and
one worker process (dashboard_worker.py: build_worker_app, the web dashboard mounted, on the embedded
broker, with the alert agents notifying a real Alertmanager) shared by the HTTP,
Prometheus and browser tests."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from dashboard_helpers import CORPUS_END, corpus, episode_alert, require_tool

from finsentry.models.registry import SHIPPED_MODEL, read_card
from finsentry.records import Document
from finsentry.settings import Settings
from finsentry.store.sqlite import SqliteStore
from finsentry.streams.broker import free_port
from finsentry.streams.process import WorkerProcess, settings_env

HERE = Path(__file__).resolve().parent
MODEL_CACHE = HERE.parents[1] / "var" / "test-model-cache"
SHIPPED_VERSION = read_card(SHIPPED_MODEL)["version"]  # what the dashboard worker serves
PUBLISHED_DOCS = 40
BAD_PAYLOADS = [b'{"source": "x", "text": "unterminated', b"\xff\xfe not utf-8"]
# The real detector's episode (see episode_documents): its topic, the watched entities its
# documents mention, and detector settings small enough for a few dozen documents. The
# shipped model reads the episode's headlines as this topic and sentiment.
EPISODE_TOPIC = "Stock Movement"
CALM_TOPIC = "Macro"
WATCHED = ("AAPL", "XOM")
DETECTOR_SETTINGS = dict(
    watched_entities=",".join(WATCHED),
    alert_lateness_s=720,
    alert_min_count=10,
    alert_min_baseline_buckets=3,
    alert_z_threshold=3.0,
    alert_scope_overrides="global=off;entity=off",  # one alert: the topic's
    explain_evidence=False,
)  # an extra model pass per story: not what these tests look at


@pytest.fixture
async def filled_store(tmp_path):
    docs = corpus(CORPUS_END)
    store = SqliteStore(tmp_path / "store.db")
    await store.open()
    result = await store.upsert_many(docs)
    assert result.stored == len(docs) and not result.rejected
    await store.put_alert(episode_alert(CORPUS_END, docs))
    store.corpus = docs  # type: ignore[attr-defined]  # what the tests compare against
    yield store
    await store.close()


async def prefill(path: Path) -> list:
    docs = corpus(CORPUS_END)
    async with SqliteStore(path) as store:
        await store.upsert_many(docs)
        await store.put_alert(episode_alert(CORPUS_END, docs))
    return docs


def published_documents() -> list[Document]:
    """Documents that travel the whole pipeline (raw → validate → score → index → store)."""
    words = ["slumps", "beats", "misses", "holds", "surges"]  # the shipped model: each sentiment at least once
    return [
        Document(
            source="wire-live",
            kind="news",
            title=f"Quarterly earnings of company {i} {words[i % 5]}",
            text=f"Company {i} reported quarterly earnings; profit {words[i % 5]}.",
            url=f"https://live.example.com/{i}",
            published_at=CORPUS_END - timedelta(minutes=20) + timedelta(seconds=20 * i),
        )
        for i in range(PUBLISHED_DOCS)
    ]


COMPANIES = [
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella Group",
    "Stark Industries",
    "Wayne Enterprises",
    "Hooli",
    "Vandelay Industries",
]


def episode_headline(i: int, negative: bool, tickers: str) -> str:
    """A stock-movement headline the shipped model reads as negative (or positive)."""
    move = "plunge" if negative else "jump"
    tail = " as sellers pile in" if negative else ""
    return f"{COMPANIES[i % len(COMPANIES)]} shares {move} {100 + 7 * i} basis points in session {i}{tail}, {tickers}"


def episode_documents(phase: str) -> list[Document]:
    """A negative burst on one topic for the real detector, an hour before the corpus end so
    that the newest documents on the page stay the corpus's. Within a phase documents may
    reach the detector in any order (they travel several partitions), so each phase spans
    less than the lateness bound (DETECTOR_SETTINGS) and none is ever late:

    - "opening": the earliest document, alone, so the scopes start at the first bucket;
    - "baseline": twelve minutes at a quarter negative;
    - "burst": twenty negative stories within 80 s, late enough to close five baseline
      buckets first (the detector needs three before it may alert);
    - "quiet": a positive pair that closes the burst's buckets (the gauges are exported then)
      and, its window holding none of the burst, ends the episode.

    A calm second topic runs alongside (one story a minute, no burst), so the panels have
    two topics to choose from. Each text carries its own numbers: none is a near-duplicate.
    The shipped model scores them (checked once: every headline of a phase gets the topic
    and sentiment meant for it)."""
    start = CORPUS_END - timedelta(minutes=60)
    if phase == "opening":
        negatives, offsets = [False], [0]
    elif phase == "baseline":
        negatives, offsets = [False, False, False, True], [15 * (i + 1) for i in range(48)]
    elif phase == "burst":
        negatives, offsets = [True], [17 * 60 + 4 * i for i in range(20)]
    else:
        negatives, offsets = [False], [32 * 60, 32 * 60 + 10]
    docs = []
    for i, offset in enumerate(offsets):
        tickers = " and ".join(f"${t}" for t in WATCHED) if phase == "quiet" else f"${WATCHED[i % 2]}"
        number = {"opening": 0, "baseline": 100, "burst": 200, "quiet": 300}[phase] + i
        headline = episode_headline(number, negatives[i % len(negatives)], tickers)
        docs.append(
            Document(
                source="wire-episode",
                kind="news",
                title=headline,
                text=f"{headline}.",
                url=f"https://episode.example.com/{phase}/{i}",
                published_at=start + timedelta(seconds=offset),
            )
        )
        if phase != "burst" and offset % 60 == 0:  # CALM_TOPIC: the model reads these as Macro
            report = f"Central statistics office publishes inflation report {number} for the month"
            docs.append(
                Document(
                    source="wire-episode",
                    kind="news",
                    title=report,
                    text=f"{report}.",
                    url=f"https://episode.example.com/calm/{phase}/{i}",
                    published_at=start + timedelta(seconds=offset),
                )
            )
    return docs


def publish(settings: Settings, docs: list[Document], raw: list[bytes] = ()) -> None:
    from finsentry.ingest.producer import DocumentProducer

    with DocumentProducer(settings) as producer:
        for doc in docs:
            producer.publish(doc)
        for payload in raw:
            producer.publish_raw(payload)
        producer.flush()


@pytest.fixture(scope="session")
def alertmanager_url(tmp_path_factory):
    """A real Alertmanager on a loopback port; it routes everything to a receiver that drops it."""
    binary = require_tool("prometheus-alertmanager")
    root = tmp_path_factory.mktemp("alertmanager")
    (root / "alertmanager.yml").write_text("route:\n  receiver: drop\nreceivers:\n  - name: drop\n")
    url = f"http://127.0.0.1:{free_port()}"
    log = open(root / "alertmanager.log", "wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={root / 'alertmanager.yml'}",
            f"--storage.path={root / 'data'}",
            f"--web.listen-address={url[7:]}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1):
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (root / "alertmanager.log").read_text()
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


class DashboardWorker(WorkerProcess):
    """The worker process, plus what the tests need to query it."""

    def __init__(
        self,
        env: dict[str, str],
        log_file: Path,
        port: int,
        token: str,
        settings: Settings,
        corpus_size: int,
        store_path: Path,
    ):
        super().__init__(
            env, log_file, port, command=[sys.executable, str(HERE / "dashboard_worker.py")], cwd=store_path.parent
        )
        self.token, self.settings, self.corpus_size, self.store_path = token, settings, corpus_size, store_path

    @property
    def port(self) -> int:
        return self.web_port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, token: bool = True, header: bool = True) -> tuple[int, dict, bytes]:
        """GET a path; the token goes in the header (or in ?token= when header=False)."""
        url = self.url + path
        headers = {}
        if token and header:
            headers["X-Finsentry-Token"] = self.token
        elif token:
            url += ("&" if "?" in url else "?") + f"token={self.token}"
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def samples(self, name: str) -> dict[tuple, float]:
        """One metric's samples by their label values, from the worker's /metrics."""
        from prometheus_client.parser import text_string_to_metric_families

        text = self.get("/metrics", token=False)[2].decode()
        return {
            tuple(sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == name
        }

    def wait_for(self, predicate, what: str, timeout: float = 120.0):
        return super().wait_for(predicate, timeout, interval=0.2, what=what)

    def alerts(self) -> list[dict]:
        return json.loads(self.get("/api/alerts?limit=100")[2])["alerts"]

    def episode_alert(self) -> dict | None:
        return next((a for a in self.alerts() if a["scope"] == "topic" and a["key"] == EPISODE_TOPIC), None)

    def stored(self) -> float:
        return self.metrics().get("finsentry_documents_stored_total", 0)

    def run_episode(self) -> None:
        """Baseline, burst, quiet: each phase published once the previous one went through,
        so the detector sees them in event-time order. The alert is raised, notified to
        Alertmanager and resolved; the negative-share gauges are exported."""
        for phase in ("opening", "baseline"):
            docs, stored = episode_documents(phase), self.stored()
            publish(self.settings, docs)
            self.wait_for(lambda: self.stored() >= stored + len(docs), f"{phase} stored")
        publish(self.settings, episode_documents("burst"))
        self.wait_for(self.episode_alert, "the burst raised an alert", timeout=180)
        publish(self.settings, episode_documents("quiet"))
        self.wait_for(lambda: self.episode_alert()["status"] == "resolved", "the episode resolved")
        self.wait_for(
            lambda: (
                len(self.samples("finsentry_negative_share")) == 2  # EPISODE_TOPIC, CALM_TOPIC
                and len(self.samples("finsentry_entity_negative_share")) == len(WATCHED)
            ),
            "negative-share gauges exported",
        )
        self.wait_for(
            lambda: (
                self.samples("finsentry_notifications_total").get((("notifier", "alertmanager"), ("result", "sent")), 0)
                >= 1
            ),
            "the alert notified to Alertmanager",
        )


@pytest.fixture(scope="session")
def dashboard_worker(broker, alertmanager_url, tmp_path_factory):
    """A worker serving the dashboard over a store pre-filled with three hours of scored
    documents and an alert, after the detector raised and resolved an alert of its own
    (run_episode) and PUBLISHED_DOCS more went through the live pipeline."""
    root = tmp_path_factory.mktemp("dashboard-worker")
    prefix = f"dash-{uuid.uuid4().hex[:8]}."
    token = secrets.token_urlsafe(16)
    port = free_port()
    values = dict(
        broker=broker.url,
        broker_embedded=True,
        topic_prefix=prefix,
        app_id=f"finsentry-{prefix}",
        store=f"sqlite:///{root / 'store.db'}",
        data_dir=root / "data",
        web_port=port,
        web_host="127.0.0.1",
        web_token=token,
        broker_session_timeout_s=10,
        broker_heartbeat_s=0.5,
        outbox_path=root / "outbox.db",
        registry_dir=root / "registry",
        log_level="WARNING",
        # A locked store (test_store_outage.py) fails fast and recovers fast.
        sqlite_busy_timeout_s=0.3,
        store_retry_max_s=1.0,
        alertmanager_url=alertmanager_url,
        **DETECTOR_SETTINGS,
        # The shipped model on PyTorch, one core: no backend measurement at start,
        # and the other core stays free for the broker and the test.
        backend="torch",
        inference_threads=1,
        model_cache_dir=MODEL_CACHE,
    )
    settings = Settings(_env_file=None, **values)
    docs = asyncio.run(prefill(root / "store.db"))
    worker = DashboardWorker(
        settings_env(**values), root / "worker.log", port, token, settings, len(docs), root / "store.db"
    )
    try:
        worker.start(timeout=300)  # the shipped model loads first: slow on a busy machine
        worker.run_episode()
        stored = worker.stored()
        publish(settings, published_documents(), BAD_PAYLOADS)
        worker.wait_for(lambda: worker.stored() >= stored + PUBLISHED_DOCS, "published documents stored", timeout=180)
        yield worker
    finally:
        worker.stop(timeout=20)
