"""Fixtures of the alerting tests: a local HTTP receiver for Apprise json:// notifications
and a real Alertmanager (Debian's prometheus-alertmanager) on a loopback port."""

from __future__ import annotations

import subprocess
import time
import urllib.request

import pytest
from alerting_helpers import Receiver
from system_deps import require_binary

from finsentry.streams.broker import free_port


@pytest.fixture
async def receiver():
    rec = await Receiver().start()
    yield rec
    await rec.stop()


@pytest.fixture(scope="session")
def alertmanager(tmp_path_factory):
    """A real Alertmanager; its base URL. Routes everything to a receiver that drops it.
    Its resolve_timeout (1 h) is far from any endsAt the notifiers set, so tests can tell them apart."""
    binary = require_binary("prometheus-alertmanager", "/usr/bin/prometheus-alertmanager")
    work = tmp_path_factory.mktemp("alertmanager")
    config = work / "alertmanager.yml"
    config.write_text(
        "global:\n  resolve_timeout: 1h\n"
        "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n"
    )
    port = free_port()
    log = (work / "alertmanager.log").open("w")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"alertmanager did not start; see {work / 'alertmanager.log'}")
        time.sleep(0.1)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
