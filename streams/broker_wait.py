"""Waiting for the Kafka broker at start-up.

A worker started before its broker (a compose stack coming up, a broker restarting) used
to die within two seconds on an aiokafka connection traceback. Instead, every process that
talks to the broker first waits until one bootstrap address accepts a connection: retries
with doubling back-off (1 s up to 30 s), one log line per failed attempt, and after
FINSENTRY_BROKER_CONNECT_TIMEOUT_S a `BrokerUnreachable` with a message that says what to
check. The probe is a TCP connection: whether the broker then speaks Kafka, TLS or SASL as
configured is the client's business, and its errors say so.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Callable

from finsentry.errors import FinsentryError
from finsentry.settings import Settings

log = logging.getLogger("finsentry.broker")

FIRST_RETRY_S = 1.0
MAX_RETRY_S = 30.0


class BrokerUnreachable(FinsentryError, RuntimeError):
    """No bootstrap address accepted a connection within the connect timeout."""


def _reachable(addresses: list[str], timeout_s: float) -> str | None:
    """None when one address accepts a TCP connection, else the last error."""
    error = "no address"
    for address in addresses:
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
                return None
        except OSError as exc:
            error = f"{address}: {exc.strerror or exc}"
    return error


def wait_for_broker(
    settings: Settings, sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic
) -> None:
    """Return once the broker accepts connections; BrokerUnreachable after the timeout."""
    addresses = settings.broker_address.split(",")
    limit = settings.broker_connect_timeout_s
    start = clock()
    delay, attempt = FIRST_RETRY_S, 0
    while True:
        attempt += 1
        error = _reachable(addresses, timeout_s=min(5.0, max(limit, 0.5)))
        if error is None:
            if attempt > 1:
                log.info("broker reachable broker=%s attempts=%d", settings.broker_address, attempt)
            return
        left = limit - (clock() - start)
        if left <= 0:
            raise BrokerUnreachable(
                f"broker {settings.broker_address} unreachable for {limit:g} s ({attempt} attempts; last error: "
                f"{error}): check that it runs and FINSENTRY_BROKER or --broker names it; "
                f"FINSENTRY_BROKER_CONNECT_TIMEOUT_S sets how long to wait"
            )
        wait = min(delay, left)
        log.warning(
            "broker unreachable broker=%s attempt=%d error=%r retry_in_s=%.1f gives_up_in_s=%.0f",
            settings.broker_address,
            attempt,
            error,
            wait,
            left,
        )
        sleep(wait)
        delay = min(delay * 2, MAX_RETRY_S)
