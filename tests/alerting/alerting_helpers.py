"""Helpers of the alerting tests: a local HTTP receiver (json:// Apprise target, Alertmanager
stand-in for error codes), an alert to send, and a wait for a condition."""

from __future__ import annotations

import asyncio
import inspect
import time
from datetime import datetime, timedelta, timezone

from aiohttp import web

from finsentry.records import Alert, Evidence
from finsentry.streams.broker import free_port


class Receiver:
    """An aiohttp server on 127.0.0.1 recording every JSON body POSTed to it.

    `start()`/`stop()` may be called repeatedly on the same port, to play a receiver that
    goes down and comes back.
    """

    def __init__(self, port: int | None = None, status: int = 200):
        self.port = port or free_port()
        self.status = status
        self.received: list[dict] = []
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append({"path": request.path, "body": await request.json()})
        return web.Response(status=self.status, text="ok")

    async def start(self) -> "Receiver":
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


START = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=5)


def make_alert(key: str = "Energy / Oil", **changes) -> Alert:
    base = dict(
        id=Alert.make_id("topic", key, START),
        scope="topic",
        key=key,
        severity="warning",
        episode_start=START,
        window_start=START,
        window_end=START + timedelta(minutes=3),
        negative_share=0.82,
        baseline=0.21,
        statistic=6.3,
        volume=41,
        baseline_volume=4.5,
        duplicates=7,
        model_version="v3",
        updated_at=START + timedelta(minutes=3),
        evidence=[
            Evidence(
                id="d1",
                title="Oil slumps as OPEC talks collapse",
                url="https://wire-a.example/oil-slump",
                source="wire-a",
                score=-0.93,
            ),
            Evidence(
                id="d2",
                title="Refiners cut output",
                url="https://wire-b.example/refiners",
                source="wire-b",
                score=-0.81,
            ),
        ],
    )
    return Alert(**{**base, **changes})


async def eventually(predicate, timeout: float = 15.0, what: str = "condition") -> None:
    """Wait until `predicate()` (a function, sync or async) is true."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
