"""Consumer lag of this worker, exported as `finsentry_consumer_lag_messages{topic}`.

Lag is the broker's log end offset minus the offset this worker will commit next, summed
over the partitions assigned to it. The end offsets are asked from the broker on every
tick (ListOffsets) rather than taken from the last fetch, so a worker that stopped fetching
(the store is down and the index agent holds its batch) still shows its lag growing. On the
embedded broker, whose ListOffsets is wrong for multi-record batches, each answer is
confirmed by a small fetch (streams/end_offsets.py).
Each worker reports only its own partitions; Prometheus sums the workers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Mapping

import faust
from aiokafka.errors import KafkaError

from finsentry import metrics
from finsentry.streams.end_offsets import fetched_end_offsets

log = logging.getLogger("finsentry.metrics")

_reported_topics: set[str] = set()


def lag_by_topic(ends: Mapping, committed: Mapping, earliest: Mapping) -> dict[str, int]:
    """Sum per topic of end - position, where position is the group's committed offset (the
    next one to process), else the earliest offset: with nothing committed the group starts
    from the beginning (auto_offset_reset=earliest). Fetched but unprocessed messages count
    as lag, as in `kafka-consumer-groups --describe`."""
    lag: dict[str, int] = {}
    for tp, end in ends.items():
        if end is None:
            continue
        position = committed.get(tp)
        if position is None:
            position = earliest.get(tp, 0)
        lag[tp.topic] = lag.get(tp.topic, 0) + max(0, end - position)
    return lag


async def log_end_offsets(app: faust.App, partitions) -> dict:
    """The broker's end offset of each partition: ListOffsets, confirmed on the embedded broker
    by a fetch in the consumer's own thread (its client lives on that thread's loop)."""
    consumer = app.consumer
    listed = await consumer.highwaters(*partitions)
    settings = getattr(getattr(app, "finsentry", None), "settings", None)
    if settings is None or not settings.broker_embedded:
        return dict(listed)
    thread = consumer._thread
    return await thread.call_thread(fetched_end_offsets, thread._ensure_consumer()._client, listed)


def input_partitions(app: faust.App) -> set:
    """The assigned partitions the group commits: a table's changelog is read by the table,
    never committed, so its "lag" would be the whole topic, always."""
    return {tp for tp in app.consumer.assignment() if tp.topic not in app.tables.changelog_topics}


async def measure_consumer_lag(app: faust.App) -> dict[str, int]:
    consumer = app.consumer
    assigned = input_partitions(app)
    if not assigned:
        return {}
    ends = await log_end_offsets(app, assigned)
    # faust keeps the group's committed offsets here: fetched from the broker when partitions
    # are assigned, updated on every commit. (The monitor only sees this worker's commits.)
    committed = {tp: consumer._committed_offset.get(tp) for tp in assigned}
    unknown = [tp for tp in assigned if committed[tp] is None]
    earliest = await consumer.earliest_offsets(*unknown) if unknown else {}
    return lag_by_topic(ends, committed, earliest)


def publish_lag(lag: Mapping[str, int]) -> None:
    """Set the gauge per topic; topics no longer assigned to this worker disappear."""
    for topic, value in lag.items():
        metrics.CONSUMER_LAG.labels(topic=topic).set(value)
    for topic in _reported_topics - set(lag):
        try:
            metrics.CONSUMER_LAG.remove(topic)
        except KeyError:
            pass
    _reported_topics.clear()
    _reported_topics.update(lag)


async def update_consumer_lag(app: faust.App) -> dict[str, int]:
    """Measure and publish once. Returns the lag per topic (empty while unassigned)."""
    try:
        lag = await measure_consumer_lag(app)
    except (KafkaError, asyncio.TimeoutError) as exc:
        # A rebalance or a broker hiccup: keep the last values, the next tick tries again.
        log.debug("consumer lag not measured this tick: %s", exc)
        return {}
    publish_lag(lag)
    observe_liveness(app, lag)
    return lag


def observe_liveness(app: faust.App, lag: Mapping[str, int]) -> None:
    liveness = getattr(getattr(app, "finsentry", None), "liveness", None)
    if liveness is None:
        return
    assigned = input_partitions(app)
    committed = {tp: app.consumer._committed_offset.get(tp) for tp in assigned}
    liveness.observe(
        partitions=len(assigned),
        recovering=bool(getattr(app, "in_recovery", False)),
        lag=sum(lag.values()),
        committed=committed,
    )


def register_lag_collector(app: faust.App, interval_s: float = 5.0) -> None:
    """Measure consumer lag every `interval_s` seconds in every worker (not only the leader)."""

    @app.timer(interval=interval_s, on_leader=False, name="finsentry.consumer_lag")
    async def collect_consumer_lag() -> None:
        await update_consumer_lag(app)


async def partitions_with_backlog(app: faust.App, topics: set[str]) -> set[int]:
    """Partition numbers of the given topics where this worker still has work: the broker's
    end offset is past the group's committed offset. What is fetched but not yet committed
    counts as waiting (conservative: it may not have reached the next topic yet)."""
    consumer = app.consumer
    assigned = [tp for tp in consumer.assignment() if tp.topic in topics]
    if not assigned:
        return set()
    ends = await log_end_offsets(app, assigned)
    committed = {tp: consumer._committed_offset.get(tp) for tp in assigned}
    unknown = [tp for tp in assigned if committed[tp] is None]
    earliest = await consumer.earliest_offsets(*unknown) if unknown else {}
    waiting = set()
    for tp in assigned:
        position = committed[tp] if committed[tp] is not None else earliest.get(tp, 0)
        if ends.get(tp) is not None and ends[tp] > position:
            waiting.add(tp.partition)
    return waiting
