"""Run a worker as a child process (the demo, the tests and the reliability suite use it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def settings_env(**values) -> dict[str, str]:
    """FINSENTRY_* variables from keyword arguments (None values are left out)."""
    return {
        f"FINSENTRY_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in values.items()
        if v is not None
    }


def scrape_metrics(port: int, host: str = "127.0.0.1") -> dict[str, float]:
    """Each finsentry_* sample on a /metrics page, summed over its labels."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("finsentry_"):
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1); NaN for no values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else float("nan")


class WorkerProcess:
    """`finsentry worker` (or another `command` that serves the worker's /metrics) in its own
    process group, configured only through FINSENTRY_*."""

    def __init__(
        self,
        env: dict[str, str],
        log_file: Path,
        web_port: int,
        command: list[str] | None = None,
        cwd: Path | None = None,
    ):
        self.env = {**os.environ, **env}
        self.log_file = Path(log_file)
        self.web_port = web_port
        self.command = command or [sys.executable, "-m", "finsentry.cli", "worker"]
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180.0) -> "WorkerProcess":
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab")
        self.proc = subprocess.Popen(
            self.command, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.wait_ready(timeout)
        return self

    def metrics(self) -> dict[str, float]:
        return scrape_metrics(self.web_port)

    def wait_ready(self, timeout: float) -> None:
        """Ready = the model is loaded (model_info exported) and the web server answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.tail()}")
            if self.metrics().get("finsentry_model_info"):
                return
            time.sleep(0.3)
        raise TimeoutError(f"worker not ready within {timeout:.0f}s:\n{self.tail()}")

    def wait_for(self, predicate, timeout: float = 60.0, interval: float = 0.3, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.tail()}")
            time.sleep(interval)
        raise TimeoutError(f"{what} not met within {timeout:.0f}s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no final commit — a crash."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> "WorkerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
