"""The processes besides the worker that the committed Prometheus config scrapes, run for
real on loopback: `finsentry scrape` (its /metrics and /status port) polling a local feed
site, `finsentry push` (its /metrics beside POST /documents) and `finsentry trainer` (its
/metrics), each configured through FINSENTRY_* variables as docker-compose does.

The scraper and the push endpoint publish to topics of their own: their documents would
otherwise reach the shared dashboard worker and change what the other dashboard tests
count. The trainer reads the dashboard worker's store and checks drift against the shipped
model (its reference profile, the model's predictions on its 2,653 held-out examples, is
cached under var/ after the first run); its thresholds are set so that the check never
starts a training run, and its schedule lies months ahead.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from finsentry.streams.broker import free_port
from finsentry.streams.process import settings_env

REPO = Path(__file__).resolve().parents[2]
FEED = REPO / "tests" / "ingest" / "fixtures" / "markets.rss"
DRIFT_CACHE = REPO / "var" / "test-trainer-data"  # the trainer's data dir: its drift reference is cached there


class FeedSite:
    """A loopback site with one RSS feed and one feed that always answers 500."""

    def __init__(self) -> None:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server hook
                if self.path == "/markets.rss":
                    body = FEED.read_text().replace("{base}", site.url).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/rss+xml")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    self.send_error(500 if self.path == "/failing.rss" else 404)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Exporter:
    """One finsentry command as a process, with the port of its /metrics."""

    def __init__(self, name: str, args: list[str], values: dict, port: int, root: Path):
        self.name, self.port, self.log_file = name, port, root / f"{name}.log"
        env = {**os.environ, **settings_env(**values)}
        self.log = open(self.log_file, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "finsentry.cli", *args],
            env=env,
            cwd=root,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def metrics_text(self) -> str | None:
        try:
            with urllib.request.urlopen(f"http://{self.target}/metrics", timeout=10) as resp:
                return resp.read().decode()
        except OSError:
            return None

    def wait_serving(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while self.metrics_text() is None:
            assert self.proc.poll() is None, f"{self.name} exited:\n{self.tail()}"
            assert time.monotonic() < deadline, f"{self.name} serves no /metrics after {timeout:.0f}s:\n{self.tail()}"
            time.sleep(0.5)

    def wait_exporting(self, series: list[str], timeout: float) -> None:
        """Until the process's own /metrics carries a sample of each series."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.metrics_text() or ""
            missing = [name for name in series if f"\n{name}{{" not in text and f"\n{name} " not in text]
            if not missing:
                return
            assert self.proc.poll() is None, f"{self.name} exited:\n{self.tail()}"
            assert time.monotonic() < deadline, f"{self.name} exports no {missing} after {timeout:.0f}s:\n{self.tail()}"
            time.sleep(1.0)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def start_exporters(worker_settings, root: Path, site: FeedSite) -> dict[str, Exporter]:
    """The scraper, push endpoint and trainer, by the job name that scrapes each."""
    prefix = f"{worker_settings.topic_prefix}exporters."
    broker = dict(broker=worker_settings.broker, broker_embedded=True, topic_prefix=prefix, log_level="INFO")
    sources = root / "sources.yml"
    sources.write_text(
        "sources:\n"
        f"  - {{type: rss, name: wire-markets, url: '{site.url}/markets.rss', interval: 5s}}\n"
        f"  - {{type: rss, name: wire-failing, url: '{site.url}/failing.rss', interval: 5s}}\n"
    )
    scraper_port, push_port, trainer_port = free_port(), free_port(), free_port()
    push_token = secrets.token_urlsafe(16)
    DRIFT_CACHE.mkdir(parents=True, exist_ok=True)
    exporters = {
        "finsentry-scraper": Exporter(
            "scraper",
            ["scrape", "--config", str(sources)],
            {
                **broker,
                "seen_path": root / "seen.db",
                "scrape_metrics_host": "127.0.0.1",
                "scrape_metrics_port": scraper_port,
                "per_host_interval_s": 0.1,
            },
            scraper_port,
            root,
        ),
        "finsentry-push": Exporter(
            "push",
            ["push"],
            {**broker, "push_host": "127.0.0.1", "push_port": push_port, "push_token": push_token},
            push_port,
            root,
        ),
        "finsentry-trainer": Exporter(
            "trainer",
            ["trainer"],
            {
                **broker,
                "trainer_metrics_host": "127.0.0.1",
                "trainer_metrics_port": trainer_port,
                "store": worker_settings.store,
                "registry_dir": root / "registry",
                "data_dir": DRIFT_CACHE,
                "train_data_dir": REPO / "data" / "tfn",
                "train_schedule": "0 0 1 1 *",
                "drift_check_interval_s": 5,
                "drift_min_records": 20,
                # Measured and exported, never acted on: no training run in a dashboard test.
                "drift_psi_threshold": 1e9,
                "drift_confidence_drop": 2.0,
                "drift_label_accuracy_floor": 0.0,
            },
            trainer_port,
            root,
        ),
    }
    exporters["finsentry-push"].token = push_token  # type: ignore[attr-defined]
    return exporters


def push_one_document(push: Exporter) -> None:
    """A document through the push endpoint, so its request and publish counters move."""
    body = json.dumps(
        [
            {
                "source": "wire-push",
                "title": "Pushed headline",
                "text": "A document sent by push.",
                "published_at": "2026-03-02T14:00:00Z",
            }
        ]
    ).encode()
    request = urllib.request.Request(
        f"http://{push.target}/documents",
        data=body,
        method="POST",
        headers={
            "Authorization": f"Bearer {push.token}",  # type: ignore[attr-defined]
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        assert resp.status == 202, resp.read()
