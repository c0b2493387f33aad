"""Fixtures of the dashboard tests: a real SQLite store filled with scored documents, and
one worker process (dashboard_worker.py: create_app + the web dashboard on the embedded
broker) shared by the HTTP, Prometheus and browser tests."""

from __future__ import annotations

import asyncio
import secrets
import sys
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from dashboard_helpers import CORPUS_END, corpus, episode_alert

from finsentry.settings import Settings
from finsentry.streams.broker import free_port
from finsentry.streams.process import WorkerProcess, settings_env
from finsentry.streams.records import Document
from finsentry.streams.sinks.sqlite import SqliteStore

HERE = Path(__file__).resolve().parent
PUBLISHED_DOCS = 40
BAD_PAYLOADS = [b'{"source": "x", "text": "unterminated', b"\xff\xfe not utf-8"]


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
    words = ["slumps", "beats", "misses", "holds", "surges"]
    return [Document(source="wire-live", kind="news", title=f"Quarterly earnings of company {i} {words[i % 5]}",
                     text=f"Company {i} reported quarterly earnings; shares {words[i % 5]}.",
                     url=f"https://live.example.com/{i}",
                     published_at=CORPUS_END - timedelta(minutes=20) + timedelta(seconds=20 * i))
            for i in range(PUBLISHED_DOCS)]


class DashboardWorker(WorkerProcess):
    """The worker process, plus what the tests need to query it."""

    def __init__(self, env: dict[str, str], log_file: Path, port: int, token: str, settings: Settings,
                 corpus_size: int, store_path: Path):
        super().__init__(env, log_file, port, command=[sys.executable, str(HERE / "dashboard_worker.py")],
                         cwd=store_path.parent)
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
        return {tuple(sorted(s.labels.items())): s.value for family in text_string_to_metric_families(text)
                for s in family.samples if s.name == name}

    def wait_for(self, predicate, what: str, timeout: float = 60.0):
        return super().wait_for(predicate, timeout, interval=0.2, what=what)


@pytest.fixture(scope="session")
def dashboard_worker(broker, tmp_path_factory):
    """A worker serving the dashboard over a store pre-filled with three hours of scored
    documents and an alert, after PUBLISHED_DOCS more went through the live pipeline."""
    from finsentry.streams.ingest.producer import DocumentProducer

    root = tmp_path_factory.mktemp("dashboard-worker")
    prefix = f"dash-{uuid.uuid4().hex[:8]}."
    token = secrets.token_urlsafe(16)
    port = free_port()
    values = dict(broker=broker.url, broker_embedded=True, topic_prefix=prefix, app_id=f"finsentry-{prefix}",
                  store=f"sqlite:///{root / 'store.db'}", data_dir=root / "data", web_port=port,
                  web_host="127.0.0.1", web_token=token, broker_session_timeout_s=10, broker_heartbeat_s=0.5,
                  outbox_path=root / "outbox.db", registry_dir=root / "registry", log_level="WARNING",
                  # A locked store (test_store_outage.py) fails fast and recovers fast.
                  sqlite_busy_timeout_s=0.3, store_retry_max_s=1.0)
    settings = Settings(_env_file=None, **values)
    docs = asyncio.run(prefill(root / "store.db"))
    worker = DashboardWorker(settings_env(**values), root / "worker.log", port, token, settings, len(docs),
                             root / "store.db")
    try:
        worker.start(timeout=90)
        with DocumentProducer(settings) as producer:
            for doc in published_documents():
                producer.publish(doc)
            for payload in BAD_PAYLOADS:
                producer.publish_raw(payload)
            producer.flush()
        worker.wait_for(lambda: worker.metrics().get("finsentry_documents_stored_total", 0) >= PUBLISHED_DOCS,
                        "published documents stored", timeout=90)
        yield worker
    finally:
        worker.stop(timeout=20)
