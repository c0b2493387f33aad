"""What the agents share inside one worker: settings, topics, the model engine, the store,
the near-duplicate index, the notification outbox, and the executor inference runs in.

Heavy start-up (model load, backend choice, store schema) happens in `start()`, off the
event loop; agents wait for `ready` before their first record.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Sequence

from faust.types import ChannelT
from pydantic import BaseModel

from finsentry import metrics
from finsentry.alerting.dedup import NearDuplicateIndex
from finsentry.alerting.notifiers import notifiers_from_settings
from finsentry.alerting.outbox import Outbox
from finsentry.metrics import initialise_notifier_series
from finsentry.models.engine import Engine
from finsentry.models.registry import Registry
from finsentry.records import DeadLetter, DeadReason
from finsentry.settings import Settings
from finsentry.store import open_store
from finsentry.streams.liveness import Liveness
from finsentry.streams.topics import Topics

log = logging.getLogger("finsentry.worker")


async def deliver(channel: ChannelT[Any], key: str | bytes | None, value: BaseModel | bytes) -> None:
    """Send and wait until the broker acknowledged it (or the channel accepted it).

    Agents finish a batch only after its outputs are delivered, so the input offsets are
    committed only for work that reached the next topic: a crash re-delivers, never loses.
    """
    await deliver_all(channel, [(key, value)])


async def deliver_all(channel: ChannelT[Any], items: Sequence[tuple[str | bytes | None, BaseModel | bytes]]) -> None:
    """Send every item, then wait for all acknowledgements (sends are pipelined)."""
    futures = []
    for key, value in items:
        payload = value if isinstance(value, bytes) else value.model_dump_json().encode()
        raw_key = key.encode() if isinstance(key, str) else key
        futures.append(await channel.send(key=raw_key, value=payload))
    await delivered(futures)


async def delivered(futures) -> None:
    """Wait for the broker's acknowledgement of every send among `futures`."""
    pending = [f for f in futures if isinstance(f, asyncio.Future)]
    if pending:
        await asyncio.gather(*pending)


@dataclass
class Runtime:
    settings: Settings
    topics: Topics | None = None
    engine: Any = None  # finsentry.models.engine.Engine
    store: Any = None  # finsentry.store.base.Store
    dedup: Any = None  # finsentry.alerting.dedup.NearDuplicateIndex
    outbox: Any = None  # finsentry.alerting.outbox.Outbox
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    executor: ThreadPoolExecutor | None = None  # one thread per inference stream (see finsentry/threads.py)
    loader: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="loader"))
    liveness: Any = None  # finsentry.streams.liveness.Liveness

    async def dead_letter(
        self, payload: bytes | str, reason: str, stage: str, kind: DeadReason, key: str | bytes | None = None
    ) -> None:
        """Count a record that cannot go on, and deliver it to the dlq topic with its reason."""
        metrics.DOCS_DEAD.labels(stage=stage, reason=kind.value).inc()
        await deliver(self.require_topics().dlq, key, DeadLetter.of(payload, reason, stage))

    def require_topics(self) -> Topics:
        """The topics create_app declared; the agents register only after that."""
        if self.topics is None:
            raise RuntimeError("the topics are not declared yet (create_app declares them)")
        return self.topics

    def __post_init__(self) -> None:
        if self.liveness is None:
            self.liveness = Liveness(self.settings.health_stall_s)
        if self.executor is None:
            streams, _ = self.settings.inference_plan
            self.executor = ThreadPoolExecutor(streams, thread_name_prefix="inference")

    async def start(self) -> None:
        """Load what is not injected yet. Tests inject their own pieces before calling this."""
        loop = asyncio.get_running_loop()
        if self.engine is None:
            self.engine = await loop.run_in_executor(self.loader, self._load_engine)
        if self.store is None:
            self.store = open_store(self.settings.store, self.settings)
            await self.store.open()
        if self.dedup is None:
            self.dedup = NearDuplicateIndex.from_settings(self.settings)
        if self.outbox is None:
            notifiers = notifiers_from_settings(self.settings)
            if notifiers:  # no notifier configured: alerts still go to the store and the page
                for notifier in notifiers:
                    initialise_notifier_series(notifier.name)
                self.outbox = Outbox.from_settings(self.settings, notifiers)
                await self.outbox.start()

        metrics.set_model_info(self.engine.version, self.engine.backend_name)
        self.ready.set()
        self.liveness.started = True
        log.info(
            "worker ready model=%s backend=%s store=%s",
            self.engine.version,
            self.engine.backend_name,
            self.settings.store.split("@")[-1],
        )

    def _load_engine(self):
        s = self.settings
        return Engine.load(
            self.model_dir(),
            backend=s.backend,
            max_batch=s.max_batch,
            cache_dir=s.model_cache_dir,
            threads=s.inference_threads,
            streams=s.inference_plan[0],
            release_memory=s.inference_release_memory,
        )

    def model_dir(self):
        """The explicit model path, else the registry's promoted version, else the shipped one."""
        if self.settings.model_path:
            return self.settings.model_path
        try:
            promoted = Registry(self.settings.registry_dir).promoted()
            if promoted is not None:
                return promoted.path
        except (ImportError, FileNotFoundError):
            pass
        return None

    async def stop(self) -> None:
        if self.outbox is not None:
            await self.outbox.stop()
        if self.store is not None:
            await self.store.close()
        if self.executor is not None:
            self.executor.shutdown(wait=False)
        self.loader.shutdown(wait=False)
