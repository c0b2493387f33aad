"""`finsentry demo` as a user runs it — a subprocess with the real model, broker, worker and
store — and its built-in page looked at in headless Chromium (Debian chromium) while the
sample stream goes through: both charts have points, the Energy / Oil alert is listed and
marked on the chart. The screenshot is docs/dashboard.png (FINSENTRY_SCREENSHOT_DIR=docs)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from chromium_cdp import Chromium
from dashboard_helpers import require_tool

from finsentry.streams.broker import free_port

FINSENTRY = [sys.executable, "-m", "finsentry.cli"]
# No --max-docs: after the sample the demo keeps serving its page until it is stopped, so
# the page is looked at whenever the alert arrives (with --max-docs the demo could end,
# taking the page with it, before a slow machine had drawn the alert).
# Full speed, as `demo --speed 0` runs: the raw partitions drift apart in event time on a
# loaded machine, and the detector's clock (the low watermark of the partitions) waits
# for the slowest, so the Energy / Oil episode is raised all the same.
SPEED = 0
PAGE_READY = (
    "document.body.dataset.loaded === 'true'"
    " && Number(document.getElementById('chart-sentiment').dataset.points) > 0"
    " && Number(document.getElementById('chart-negative').dataset.points) > 0"
    " && Array.from(document.querySelectorAll('#alerts .alert-scope'))"
    ".some(e => e.textContent === 'topic: Energy / Oil')"
    " && Number(document.getElementById('chart-negative').dataset.alertMarkers) > 0"
)


def wait_for_line(log: Path, text: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        assert proc.poll() is None, f"the demo exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {text!r} after {timeout:.0f}s:\n{log.read_text()[-3000:]}"
        time.sleep(0.5)


@pytest.fixture
def demo(tmp_path):
    """The running demo and its page's address; stopped with SIGTERM (as Ctrl-C) at the end."""
    port = free_port()
    log_path = tmp_path / "demo.log"
    env = {k: v for k, v in os.environ.items() if k != "FINSENTRY_WEB_TOKEN"}
    with open(log_path, "wb") as log:
        command = ["demo", "--speed", str(SPEED), "--web-port", str(port)]
        proc = subprocess.Popen(
            FINSENTRY + command,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**env, "FINSENTRY_BACKEND": "torch"},
        )
        try:
            wait_for_line(log_path, f"dashboard http://127.0.0.1:{port}/", proc, timeout=300)
            yield proc, f"http://127.0.0.1:{port}/", log_path
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.slow
async def test_the_demo_page_shows_charts_and_the_alert_while_the_stream_runs(demo, tmp_path):
    proc, url, log = demo
    async with Chromium(require_tool("chromium"), tmp_path / "profile") as page:
        await page.navigate(url)
        await page.wait_for(PAGE_READY, timeout=300)
        assert proc.poll() is None, "the demo ended before its page could be looked at"
        for chart in ("chart-sentiment", "chart-negative"):
            assert int(await page.evaluate(f"document.getElementById('{chart}').dataset.points")) > 10, chart
        # PAGE_READY waited for the Energy / Oil alert in the list and its marker on the chart.
        assert await page.evaluate("document.querySelector('#alerts .evidence-item .title').textContent")
        assert int(await page.evaluate("document.querySelectorAll('#documents > li').length")) > 0
        assert not page.exceptions, page.exceptions
        shot = await page.screenshot(tmp_path / "dashboard.png")
    assert shot.stat().st_size > 20_000
    keep = os.environ.get("FINSENTRY_SCREENSHOT_DIR")
    if keep:  # FINSENTRY_SCREENSHOT_DIR=docs refreshes the README's picture
        shutil.copy(shot, Path(keep) / "dashboard.png")
    proc.send_signal(signal.SIGTERM)  # Ctrl-C: the demo stops its worker and broker, and exits cleanly
    assert proc.wait(60) == 0, log.read_text()[-3000:]
