"""Agents under `agent.test_context()`: Faust's in-memory harness. Inputs are put straight
into the agent; its output topics are swapped for in-memory channels to read from. The
model, store and near-duplicate index are the real ones."""

from __future__ import annotations

import asyncio

import pytest

from finsentry.streams.app import create_app
from finsentry.streams.runtime import Runtime


class Harness:
    def __init__(self, settings, agents, engine=None, store=None, dedup=None):
        self.rt = Runtime(settings, engine=engine, store=store, dedup=dedup)
        self.app = create_app(settings, runtime=self.rt, agents=agents)
        self.outputs = {}
        self.watermarks = []  # Watermark messages read past by tests that want observations
        for name in ("valid", "scored", "observations", "alerts", "dlq"):
            channel = self.app.channel()
            setattr(self.rt.topics, name, channel)
            self.outputs[name] = channel.__aiter__()  # a subscriber: channels deliver only to those
        self.rt.ready.set()

    def agent(self, name: str):
        return self.app.agents[f"finsentry.{name}"]

    async def read(self, output: str, n: int, timeout: float = 60.0) -> list[bytes]:
        got = []
        for _ in range(n):
            event = await asyncio.wait_for(self.outputs[output].get(), timeout)
            got.append(event.value if hasattr(event, "value") else event)
        return got

    def empty(self, output: str) -> bool:
        return self.outputs[output].empty()


@pytest.fixture
def harness(make_settings):
    def factory(agents, settings: dict | None = None, **pieces):
        return Harness(make_settings(**{"max_batch": 8, "batch_window_s": 0.05, **(settings or {})}), agents, **pieces)

    return factory
