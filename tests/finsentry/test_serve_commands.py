"""`finsentry broker` and `finsentry worker` as an operator starts them: subprocesses, the real
embedded broker, a Kafka client, the shipped model and SQLite."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaProducer

from finsentry.ingest.producer import DocumentProducer
from finsentry.records import Document
from finsentry.store import ops as store_ops
from finsentry.streams.broker import free_port, wait_for_port
from finsentry.streams.process import WorkerProcess, scrape_metrics, settings_env

FINSENTRY = [sys.executable, "-m", "finsentry.cli"]


def child_pids(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task")
    return [int(c) for task in tasks.iterdir() for c in (task / "children").read_text().split()]


@pytest.mark.parametrize("port_from", ["flag", "settings"])
def test_broker_command_serves_kafka_clients_and_stops_on_sigterm(port_from, tmp_path):
    port = free_port()
    if port_from == "flag":  # --port wins over FINSENTRY_BROKER
        args, env = ["--port", str(port)], {"FINSENTRY_BROKER": f"kafka://127.0.0.1:{free_port()}"}
    else:  # no flag: the port of FINSENTRY_BROKER, where workers will look for it
        args, env = [], {"FINSENTRY_BROKER": f"kafka://127.0.0.1:{port}"}
    proc = subprocess.Popen(
        FINSENTRY + ["broker", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **env},
    )
    children: list[int] = []
    try:
        wait_for_port("127.0.0.1", port, timeout=60)
        children = child_pids(proc.pid)  # tansu
        producer = KafkaProducer(bootstrap_servers=f"127.0.0.1:{port}")
        producer.send("smoke", b"hello").get(timeout=30)
        producer.close()
        admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}")
        assert "smoke" in admin.list_topics()
        admin.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        for pid in [proc.pid, *children]:
            try:
                os.kill(pid, signal.SIGKILL)  # only if the test failed half-way
            except ProcessLookupError:
                pass
        proc.wait()
    assert f"broker listening on 127.0.0.1:{port}" in proc.stdout.read()
    with pytest.raises(OSError):  # tansu stopped with it
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


@pytest.mark.slow
def test_worker_flags_override_the_environment(broker, make_settings, tmp_path):
    prefix = f"flags-{uuid.uuid4().hex[:8]}."
    settings = make_settings(
        broker=broker.url,
        broker_embedded=True,
        topic_prefix=prefix,
        app_id=f"finsentry-{prefix}",
        store=f"sqlite:///{tmp_path / 'flag.db'}",
    )
    env_port, env_db = free_port(), tmp_path / "env.db"
    env = settings_env(
        broker=f"kafka://127.0.0.1:{free_port()}",  # nothing listens there
        store=f"sqlite:///{env_db}",
        web_port=env_port,
        broker_embedded=True,
        topic_prefix=prefix,
        app_id=settings.app_id,
        data_dir=settings.data_dir,
        outbox_path=settings.outbox_path,
        registry_dir=settings.registry_dir,
        backend="torch",
        broker_session_timeout_s=6,
        broker_heartbeat_s=0.5,
    )
    command = FINSENTRY + [
        "worker",
        "--broker",
        broker.url,
        "--store",
        settings.store,
        "--web-port",
        str(settings.web_port),
    ]

    # Ready = the model info is served on the flag's port.
    with WorkerProcess(env, tmp_path / "worker.log", settings.web_port, command=command, cwd=tmp_path) as worker:
        producer = DocumentProducer(settings)
        producer.publish(
            Document(source="wire", title="Gold climbs", text="Gold climbs to a record as the dollar weakens.")
        )
        producer.flush()
        producer.close()
        worker.wait_for(
            lambda: asyncio.run(store_ops.count(settings.store, settings)) == 1,
            timeout=120,
            what="the document stored in the flag's store",
        )
        assert scrape_metrics(env_port) == {}
    assert not env_db.exists()
