"""`finsentry scrape`: every configured source polled on its own schedule, concurrently.

Per poll: new items (not in the seen-set) are completed, published, and each is marked seen
the moment the broker acknowledged it — a crash late in a long (paced) poll republishes only
what was not acknowledged; once all are, the source may commit its progress. A failing source
(HTTP error, malformed answer, timeout, robots.txt, undelivered records) is logged, counted
and retried with a doubling back-off; the others never notice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from finsentry import metrics
from finsentry.ingest.producer import DeliveryError, DocumentProducer
from finsentry.ingest.seen import SeenSet
from finsentry.ingest.source import Item, Source, SourceError

log = logging.getLogger("finsentry.ingest.runner")

BACKOFF_BASE_MAX_S = 30.0


@dataclass
class PollResult:
    new: int = 0
    seen: int = 0


@dataclass
class SourceState:
    """What /status shows about one source."""

    polls: int = 0
    items: int = 0
    errors: int = 0
    consecutive_failures: int = 0
    last_success: float | None = None
    last_error: str | None = None


def backoff_s(interval_s: float, failures: int, cap_s: float) -> float:
    """Wait after `failures` consecutive failed polls: doubling from min(interval, 30 s) up to
    cap_s, or up to the interval when that is longer — a failing source is retried sooner
    than its schedule at first, and never waits longer than max(cap, interval)."""
    base = min(interval_s, BACKOFF_BASE_MAX_S)
    return min(max(cap_s, interval_s), base * 2 ** max(0, failures - 1))


class ScrapeRunner:
    def __init__(
        self,
        sources: list[Source],
        producer: DocumentProducer,
        seen: SeenSet,
        *,
        backoff_cap_s: float = 600.0,
        delivery_timeout_s: float = 130.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique: {names}")
        self.sources = sources
        self.producer = producer
        self.seen = seen
        self.backoff_cap_s = backoff_cap_s
        self.delivery_timeout_s = delivery_timeout_s
        self._sleep = sleep
        self.state = {s.name: SourceState() for s in sources}

    async def poll_once(self, source: Source) -> PollResult:
        """One poll of one source; raises what went wrong after settling what was sent."""
        result = PollResult()
        sent: list[asyncio.Future] = []
        this_poll: set[str] = set()  # a listing may repeat an item
        try:
            async for item in source.poll():
                if self.seen.seen(item.keys) or this_poll.intersection(item.keys):
                    result.seen += 1
                    continue
                this_poll.update(item.keys)
                doc = await source.complete(item)
                future = await asyncio.to_thread(self.producer.publish, doc)  # may wait for metadata
                sent.append(self._mark_seen_when_acknowledged(source, item, _as_asyncio(future)))
        finally:
            failures = await self._settle(sent)
        result.new = len(sent) - len(failures)
        if failures:
            raise DeliveryError(len(failures), failures[0])
        source.commit()
        return result

    def _mark_seen_when_acknowledged(self, source: Source, item: Item, future: asyncio.Future) -> asyncio.Future:
        def mark(done: asyncio.Future) -> None:
            if not done.cancelled() and done.exception() is None:
                self.seen.add(item.keys, source.name)
                metrics.SCRAPE_ITEMS.labels(source=source.name).inc()

        future.add_done_callback(mark)  # runs before any later waiter of the future
        return future

    async def _settle(self, sent: list[asyncio.Future]) -> list[BaseException]:
        """Wait for every acknowledgement (each has marked its item seen); return the failures."""
        if not sent:
            return []
        outcomes = await asyncio.wait_for(asyncio.gather(*sent, return_exceptions=True), self.delivery_timeout_s)
        return [outcome for outcome in outcomes if isinstance(outcome, BaseException)]

    async def poll_and_record(self, source: Source) -> float:
        """One poll with its logs, metrics and state; returns how long to wait before the next."""
        state = self.state[source.name]
        started = time.monotonic()
        state.polls += 1
        try:
            result = await self.poll_once(source)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 — one source's failure must not stop the others
            kind = _kind(exc)
            state.errors += 1
            state.consecutive_failures += 1
            state.last_error = f"{type(exc).__name__}: {exc}"
            metrics.SCRAPE_ERRORS.labels(source=source.name, kind=kind).inc()
            if kind == "robots":
                metrics.SCRAPE_ROBOTS_BLOCKED.labels(source=source.name).inc()
            wait = backoff_s(source.interval_s, state.consecutive_failures, self.backoff_cap_s)
            # a traceback only for the unexpected: the expected kinds say enough
            log.warning(
                "poll failed source=%s kind=%s error=%s retry_in_s=%.1f",
                source.name,
                kind,
                state.last_error,
                wait,
                exc_info=kind == "error",
            )
            return wait
        state.consecutive_failures = 0
        state.items += result.new
        state.last_success = time.time()
        metrics.SCRAPE_LAST_SUCCESS.labels(source=source.name).set(state.last_success)
        metrics.SCRAPE_SEEN.labels(source=source.name).inc(result.seen)
        log.info(
            "poll ok source=%s new=%d seen=%d duration_s=%.2f",
            source.name,
            result.new,
            result.seen,
            time.monotonic() - started,
        )
        return source.interval_s

    async def run_source(self, source: Source, stop: asyncio.Event) -> None:
        while not stop.is_set():
            wait = await self.poll_and_record(source)
            await _sleep_or_stop(self._sleep, wait, stop)

    async def run_once(self) -> int:
        """Poll every source once, concurrently; returns how many failed."""
        await asyncio.gather(*(self.poll_and_record(s) for s in self.sources))
        return sum(1 for s in self.state.values() if s.consecutive_failures)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Poll every source until `stop` is set (or forever)."""
        stop = stop or asyncio.Event()
        tasks = [asyncio.create_task(self.run_source(s, stop), name=f"source:{s.name}") for s in self.sources]
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _kind(exc: BaseException) -> str:
    if isinstance(exc, SourceError):
        return exc.kind
    if isinstance(exc, DeliveryError):
        return "delivery"
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    return "error"


async def _sleep_or_stop(sleep: Callable[[float], Awaitable[None]], seconds: float, stop: asyncio.Event) -> None:
    waiter = asyncio.ensure_future(stop.wait())
    sleeper = asyncio.ensure_future(sleep(seconds))
    try:
        await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        sleeper.cancel()


def _as_asyncio(future) -> asyncio.Future:
    """A kafka-python future as an asyncio future of the running loop."""
    loop = asyncio.get_running_loop()
    bridged = loop.create_future()

    def settle(setter, value) -> None:
        if not bridged.done():
            setter(value)

    future.add_callback(lambda meta: loop.call_soon_threadsafe(settle, bridged.set_result, meta))
    future.add_errback(lambda exc: loop.call_soon_threadsafe(settle, bridged.set_exception, exc))
    return bridged
