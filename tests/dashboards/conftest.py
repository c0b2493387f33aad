"""Fixtures of the dashboard tests: a real SQLite store filled with scored documents, and
one worker process (dashboard_worker.py: create_app + the web dashboard on the embedded
broker) shared by the HTTP, Prometheus and browser tests."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from dashboard_helpers import CORPUS_END, corpus, episode_alert

from finsentry.settings import Settings
from finsentry.streams.broker import free_port
from finsentry.streams.process import scrape_metrics, settings_env
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


@dataclass
class DashboardWorker:
    proc: subprocess.Popen
    port: int
    token: str
    settings: Settings
    log_file: Path
    corpus_size: int
    store_path: Path

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

    def metrics(self) -> dict[str, float]:
        return scrape_metrics(self.port)

    def samples(self, name: str) -> dict[tuple, float]:
        """One metric's samples by their label values, from the worker's /metrics."""
        from prometheus_client.parser import text_string_to_metric_families

        text = self.get("/metrics", token=False)[2].decode()
        return {tuple(sorted(s.labels.items())): s.value for family in text_string_to_metric_families(text)
                for s in family.samples if s.name == name}

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def wait_for(self, predicate, what: str, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if self.proc.poll() is not None:
                raise RuntimeError(f"dashboard worker exited with {self.proc.returncode}:\n{self.tail()}")
            time.sleep(0.2)
        raise TimeoutError(f"{what} not within {timeout:.0f}s:\n{self.tail()}")


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
    log_file = root / "worker.log"
    env = {**os.environ, **settings_env(**values)}
    with open(log_file, "ab") as log:
        proc = subprocess.Popen([sys.executable, str(HERE / "dashboard_worker.py")], env=env, cwd=root,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    worker = DashboardWorker(proc, port, token, settings, log_file, len(docs), root / "store.db")
    try:
        worker.wait_for(lambda: worker.metrics().get("finsentry_model_info"), "worker ready", timeout=90)
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
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
