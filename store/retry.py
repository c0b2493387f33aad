"""Write until the store takes it: where the pipeline waits out an outage (a batch of
documents in the index agent, an alert update in the notify agent).

The store retries briefly on its own (`store_retry_budget_s`) and then raises
`StoreUnavailable`; these loops keep retrying the same write with capped, jittered
exponential back-off for as long as it takes. The caller acknowledges its input only
after they return, so an outage backs the pipeline up and loses nothing; re-sending is
safe because every write is an upsert by id.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Awaitable, Callable, Sequence, TypeVar

from finsentry import metrics
from finsentry.records import Alert, ScoredDocument
from finsentry.store.base import Store, StoreUnavailable, UpsertResult

log = logging.getLogger("finsentry.store")
T = TypeVar("T")


async def write_with_retry(
    store: Store,
    records: Sequence[ScoredDocument],
    *,
    max_backoff_s: float = 30.0,
    initial_backoff_s: float = 0.2,
    should_stop: Callable[[], bool] = lambda: False,
) -> UpsertResult:
    """`store.upsert_many(records)`, retried while the store is unavailable.

    Returns the store's result (content rejections included, for the dead-letter topic).
    Raises `StoreUnavailable` only when `should_stop()` turns true during an outage
    (shutdown): the batch is then not acknowledged and is re-delivered after restart.
    """

    async def upsert() -> UpsertResult:
        started = time.perf_counter()
        result = await store.upsert_many(records)
        metrics.STORE_BULK_SECONDS.observe(time.perf_counter() - started)
        return result

    return await retry_while_unavailable(
        store,
        upsert,
        f"batch of {len(records)} records",
        max_backoff_s=max_backoff_s,
        initial_backoff_s=initial_backoff_s,
        should_stop=should_stop,
    )


async def put_alert_with_retry(
    store: Store,
    alert: Alert,
    *,
    max_backoff_s: float = 30.0,
    initial_backoff_s: float = 0.2,
    should_stop: Callable[[], bool] = lambda: False,
) -> None:
    """`store.put_alert(alert)`, retried while the store is unavailable (as `write_with_retry`)."""
    await retry_while_unavailable(
        store,
        lambda: store.put_alert(alert),
        f"alert {alert.id} update {alert.update}",
        max_backoff_s=max_backoff_s,
        initial_backoff_s=initial_backoff_s,
        should_stop=should_stop,
    )


async def retry_while_unavailable(
    store: Store,
    write: Callable[[], Awaitable[T]],
    what: str,
    *,
    max_backoff_s: float,
    initial_backoff_s: float,
    should_stop: Callable[[], bool],
) -> T:
    """`await write()` until it does not raise `StoreUnavailable` (or `should_stop()`)."""
    delay = initial_backoff_s
    attempts = 0
    while True:
        try:
            result = await write()
        except StoreUnavailable as exc:
            attempts += 1
            metrics.STORE_ERRORS.labels(kind="unavailable").inc()
            if should_stop():
                raise
            wait = delay * (0.5 + random.random())
            log.warning(
                "store unavailable, %s kept for retry store=%s attempt=%d retry_in_s=%.2f error=%s",
                what,
                store.url,
                attempts,
                wait,
                exc,
            )
            await asyncio.sleep(wait)
            delay = min(max_backoff_s, delay * 2)
            continue
        if attempts:
            log.info("store back, %s stored store=%s attempts=%d", what, store.url, attempts + 1)
        return result
