"""A worker started before its broker waits for it, one log line per attempt, and gives up
with a clear message after FINSENTRY_BROKER_CONNECT_TIMEOUT_S instead of a traceback."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import uuid

import pytest

from finsentry.settings import Settings
from finsentry.streams.broker import EmbeddedBroker, free_port
from finsentry.streams.broker_wait import BrokerUnreachable, wait_for_broker
from finsentry.streams.process import WorkerProcess, settings_env

FINSENTRY = [sys.executable, "-m", "finsentry.cli"]


def test_waits_with_back_off_and_gives_up_after_the_stated_time(caplog):
    settings = Settings(_env_file=None, broker=f"127.0.0.1:{free_port()}", broker_connect_timeout_s=20)
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    with caplog.at_level(logging.WARNING, logger="finsentry.broker"):
        with pytest.raises(
            BrokerUnreachable, match=r"unreachable for 20 s \(6 attempts.*FINSENTRY_BROKER_CONNECT_TIMEOUT_S"
        ):
            wait_for_broker(settings, sleep=sleep, clock=lambda: now[0])
    assert waits == [1.0, 2.0, 4.0, 8.0, 5.0]  # doubling, the last cut to the time left
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 5 and all("broker unreachable" in line and "attempt=" in line for line in lines)


def test_returns_at_once_when_the_broker_listens(broker):
    settings = Settings(_env_file=None, broker=broker.address)
    wait_for_broker(settings, sleep=lambda s: pytest.fail("waited for a broker that listens"))


@pytest.mark.slow
def test_a_worker_started_before_its_broker_waits_and_then_runs(make_settings, tmp_path):
    """Default settings: the worker keeps trying, then serves once the broker is there."""
    port = free_port()
    prefix = f"late-{uuid.uuid4().hex[:8]}."
    s = make_settings(
        broker=f"127.0.0.1:{port}",
        broker_embedded=True,
        topic_prefix=prefix,
        app_id=f"fs-{prefix}",
        log_json=True,
        log_level="INFO",
    )
    assert s.broker_connect_timeout_s == Settings.model_fields["broker_connect_timeout_s"].default
    env = settings_env(
        broker=f"127.0.0.1:{port}",
        broker_embedded=True,  # host:port, no kafka:// topic_prefix=prefix, app_id=s.app_id,
        data_dir=s.data_dir,
        store=s.store,
        outbox_path=s.outbox_path,
        registry_dir=s.registry_dir,
        model_cache_dir=s.model_cache_dir,
        backend="torch",
        web_port=s.web_port,
        broker_session_timeout_s=6,
        broker_heartbeat_s=0.5,
        log_json=True,
    )
    worker = WorkerProcess(env, tmp_path / "worker.log", s.web_port)
    worker.log_file.parent.mkdir(parents=True, exist_ok=True)
    log = open(worker.log_file, "ab")
    worker.proc = subprocess.Popen(
        worker.command, env=worker.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path
    )
    try:
        worker.wait_for(
            lambda: worker.tail(200).count("broker unreachable") >= 2, timeout=120, what="two logged attempts"
        )
        with EmbeddedBroker(port=port):
            worker.wait_ready(timeout=240)
            text = worker.log_file.read_text()
            assert "Traceback" not in text and "KafkaConnectionError" not in text
            attempts = [json.loads(line) for line in text.splitlines() if "broker unreachable" in line]
            assert len(attempts) >= 2 and all(a["level"] == "warning" for a in attempts)
            assert any(
                json.loads(line)["msg"].startswith("broker reachable")
                for line in text.splitlines()
                if line.startswith("{") and "broker reachable" in line
            )
    finally:
        worker.stop()


def test_a_worker_gives_up_with_a_clear_message_short_timeout_variant(tmp_path):
    """FINSENTRY_BROKER_CONNECT_TIMEOUT_S shortened only so the test does not wait 5 minutes."""
    env = {
        **settings_env(
            broker=f"kafka://127.0.0.1:{free_port()}",
            broker_connect_timeout_s=3,
            data_dir=tmp_path / "data",
            store=f"sqlite:///{tmp_path}/s.db",
        )
    }
    import os

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FINSENTRY_")}, **env}
    started = time.monotonic()
    out = subprocess.run(FINSENTRY + ["worker"], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert out.returncode == 1
    assert "error: broker 127.0.0.1:" in out.stderr and "unreachable for 3 s" in out.stderr
    assert out.stderr.count("broker unreachable") >= 2 and "Traceback" not in out.stderr
    assert time.monotonic() - started < 100
