"""Write a batch until the store takes it: the one place the pipeline waits out an outage.

The store retries briefly on its own (`store_retry_budget_s`) and then raises
`StoreUnavailable`; this loop keeps retrying the same batch with capped, jittered
exponential back-off for as long as it takes. The caller acknowledges its input only
after this returns, so an outage backs the pipeline up and loses nothing; re-sending is
safe because every write is an upsert by id.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Callable, Sequence

from finsentry.streams import metrics
from finsentry.streams.records import ScoredDocument
from finsentry.streams.sinks.base import Store, StoreUnavailable, UpsertResult

log = logging.getLogger("finsentry.store")


async def write_with_retry(store: Store, records: Sequence[ScoredDocument], *,
                           max_backoff_s: float = 30.0, initial_backoff_s: float = 0.2,
                           should_stop: Callable[[], bool] = lambda: False) -> UpsertResult:
    """`store.upsert_many(records)`, retried while the store is unavailable.

    Returns the store's result (content rejections included, for the dead-letter topic).
    Raises `StoreUnavailable` only when `should_stop()` turns true during an outage
    (shutdown): the batch is then not acknowledged and is re-delivered after restart.
    """
    delay = initial_backoff_s
    attempts = 0
    while True:
        started = time.perf_counter()
        try:
            result = await store.upsert_many(records)
        except StoreUnavailable as exc:
            attempts += 1
            metrics.STORE_ERRORS.labels(kind="unavailable").inc()
            if should_stop():
                raise
            wait = delay * (0.5 + random.random())
            log.warning("store unavailable, batch kept for retry store=%s records=%d attempt=%d retry_in_s=%.2f error=%s",
                        store.url, len(records), attempts, wait, exc)
            await asyncio.sleep(wait)
            delay = min(max_backoff_s, delay * 2)
            continue
        metrics.STORE_BULK_SECONDS.observe(time.perf_counter() - started)
        if attempts:
            log.info("store back, batch stored store=%s records=%d attempts=%d", store.url, len(records), attempts + 1)
        return result
