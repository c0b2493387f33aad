"""Alerting agents.

observe: docs.scored → one observation per scope (global, topic, each entity), sent as one
         group per scope and batch, keyed "scope:key", so every scope's state lives in
         exactly one partition — scale-out by partitions, no cross-worker coordination.
         After the observations, the watermark of each scored partition (newest event time,
         idle or not) goes to every observations partition: the detector's clock
         (alerting/watermarks.py). A timer repeats it, so idleness is reported too.
detect:  observations → Detector over a changelog-backed Faust table (a restarted or
         rebalanced worker recovers its baselines from the changelog) → alerts. Batches:
         a scope's state is read and written once per batch, one changelog record each.
notify:  alerts → the notification outbox + the store's alerts collection. The outbox comes
         first, so people hear of an alert while the store is down; the store write is then
         retried until it succeeds (the outbox queues each update once, so a re-delivered
         alert is not notified twice). An unreadable payload is dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterator, MutableMapping
from typing import Any, Sequence

import faust
from faust.exceptions import ConsumerNotStarted
from pydantic import ValidationError

from finsentry.alerting.detector import Detector, DetectorConfig
from finsentry.alerting.observations import Observation, Tick, Watermark, fan_out, group_by_scope, parse_message
from finsentry.alerting.watermarks import SourceTracker, clock_key, is_clock_key, source_name
from finsentry.models import explain as explanations
from finsentry.records import Alert, DeadReason, ScoredDocument
from finsentry.store.retry import put_alert_with_retry
from finsentry.streams.consumer_lag import partitions_with_backlog
from finsentry.streams.runtime import Runtime, deliver, deliver_all

log = logging.getLogger("finsentry.alerting")
EXPLANATION_CACHE_DOCS = 4096


class BatchState(MutableMapping[str, Any]):
    """The detector's state table when a whole batch is applied at once.

    A table assignment takes its changelog partition from the event being processed; a
    batch holds events of several partitions, so each key's write goes to the partition of
    that key's own messages (the same partition the key's state was recovered from)."""

    def __init__(self, table: Any) -> None:  # a faust Table of JSON-able dicts
        self.table = table
        self.partitions: dict[str, int] = {}

    def __getitem__(self, key: str) -> Any:
        return self.table[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.table.get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        self.table.data[key] = value  # what Table.__setitem__ does, with the partition given
        self.table.send_changelog(self.partition_of(key, value), key, value)

    def partition_of(self, key: str, value: Any = None) -> int:
        """The partition of this batch's messages for the key; a scope moved by a watermark
        alone keeps the partition it recorded; a partition clock's is in its key."""
        if key in self.partitions:
            return self.partitions[key]
        if is_clock_key(key):
            return int(key.split(":", 1)[1])
        stored = value if value is not None else self.table.get(key)
        return int(stored.get("partition", 0))

    def __delitem__(self, key: str) -> None:
        """Only chunks of pending observations are deleted (once taken): a tombstone."""
        partition = self.partition_of(key)
        self.table.data.pop(key, None)
        self.table.send_changelog(partition, key, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)


def register(app: faust.App, rt: Runtime) -> Any:
    topics = rt.require_topics()
    state = app.Table(
        "finsentry-detector-state", default=None, partitions=rt.settings.topic_partitions, key_type=str, value_type=None
    )
    batch_state = BatchState(state)
    detector = Detector(DetectorConfig.from_settings(rt.settings), batch_state)

    sources = SourceTracker(rt.settings.alert_idle_partition_s)
    upstream = {topics.raw.get_topic_name(), topics.valid.get_topic_name(), topics.scored.get_topic_name()}
    scored_topic = topics.scored.get_topic_name()

    async def send_watermarks(reports: Sequence[tuple[str, float | None, bool]]) -> None:
        """Each (source, watermark, idle) to every observations partition, after what was
        already sent there: a partition's observations come before the watermark covering them."""
        futures = []
        for q in range(rt.settings.topic_partitions):
            for source, watermark, idle in reports:
                payload = Watermark(watermark=watermark, source=source, partition=q, idle=idle).model_dump_json()
                futures.append(
                    await topics.observations.send(key=clock_key(q).encode(), value=payload.encode(), partition=q)
                )
        await deliver_pending(futures)

    def held_sources() -> list[int]:
        try:
            return [tp.partition for tp in app.consumer.assignment() if tp.topic == scored_topic]
        except ConsumerNotStarted:  # not yet assigned anything: announced with the first batch's own
            return list(sources.partitions)

    @app.agent(topics.scored, name="finsentry.observe")
    async def observe(stream: Any) -> None:  # a faust Stream (take_events is not on StreamT)
        async for events in stream.take_events(rt.settings.max_batch, within=rt.settings.batch_window_s):
            if any(not src.announced for src in sources.partitions.values()) or not sources.partitions:
                # Announce every partition held before the first observations: a partition
                # with work waiting holds the clock until it says how far it is.
                sources.assign(held_sources())
                await send_watermarks(
                    [(source_name(p), src.watermark, False) for p, src in sorted(sources.partitions.items())]
                )
                for src in sources.partitions.values():
                    src.announced = True
            observations: list[Observation] = []
            seen: dict[Any, Any] = {}
            for event in events:
                try:
                    record = ScoredDocument.model_validate_json(event.value)
                except ValidationError:
                    continue  # the index agent dead-letters invalid scored records
                observations += fan_out(record)
                p, t = event.message.partition, record.published_at.timestamp()
                seen[p] = max(seen.get(p, t), t)
            await deliver_all(topics.observations, [(g.key, g) for g in group_by_scope(observations)])
            for p, t in seen.items():  # only now: the timer must not report what is not yet sent
                sources.saw(p, t)
            await send_watermarks([(source_name(p), sources.partitions[p].watermark, False) for p in sorted(seen)])

    @app.timer(interval=rt.settings.alert_watermark_interval_s)
    async def report_watermarks() -> None:
        """Watermarks and idleness of every partition held, also when nothing arrives: an
        idle partition must stop holding the clock back, and a quiet stream still moves."""
        held = held_sources()
        if not held:
            return
        sources.assign(held)
        try:
            backlog = await partitions_with_backlog(app, upstream)
        except Exception as exc:  # noqa: BLE001 - a rebalance or broker hiccup: report next time
            log.debug("watermarks not reported this tick: %s", exc)
            return
        await send_watermarks(sources.reports(backlog))

    @app.agent(topics.observations, name="finsentry.detect")
    async def detect(stream: Any) -> None:  # a faust Stream (take_events is not on StreamT)
        async for events in stream.take_events(rt.settings.max_batch, within=rt.settings.batch_window_s):
            messages = []
            for event in events:
                try:
                    message = parse_message(event.value)
                except ValidationError as exc:  # only a foreign producer writes bad data here
                    reason = f"invalid observation: {exc.errors()[0]['msg']}"
                    await rt.dead_letter(event.value, reason, "detect", DeadReason.INVALID_RECORD)
                    continue
                messages.append(message)
                if isinstance(message, Watermark):
                    message.partition = event.message.partition  # the clock of the partition it arrived on
                    keys = [clock_key(message.partition)]
                elif isinstance(message, Tick):
                    keys = [message.key]
                else:
                    keys = [o.state_key for o in getattr(message, "observations", [message])]
                batch_state.partitions.update(dict.fromkeys(keys, event.message.partition))
            for alert in detector.apply(messages, batch_state.partition_of):
                await deliver(topics.alerts, alert.id, alert)
            batch_state.partitions.clear()  # known again from the next batch's own events

    explanations = ExplanationCache()

    @app.agent(topics.alerts, name="finsentry.notify")
    async def notify(stream: Any) -> None:  # a faust Stream (take_events is not on StreamT)
        await rt.ready.wait()
        async for payload in stream:
            try:
                alert = Alert.model_validate_json(payload)
            except ValidationError as exc:  # only a foreign producer writes bad data here
                reason = f"invalid alert: {exc.errors()[0]['msg']}"
                await rt.dead_letter(payload, reason, "notify", DeadReason.INVALID_RECORD)
                continue
            if rt.settings.explain_evidence and rt.engine is not None:
                await attach_explanations(rt, alert, explanations)
            if rt.outbox is not None:
                await rt.outbox.enqueue(alert)
            await put_alert_with_retry(rt.store, alert, max_backoff_s=rt.settings.store_retry_max_s)
            log.warning("alert %s id=%s", alert.summary, alert.id)

    return observe, detect, notify


async def deliver_pending(futures: Sequence[Any]) -> None:
    import asyncio

    pending = [f for f in futures if isinstance(f, asyncio.Future)]
    if pending:
        await asyncio.gather(*pending)


class ExplanationCache:
    """Explanations by (document id, model version), the least recently used dropped first:
    every update of an episode carries mostly the same evidence, explained once."""

    def __init__(self, max_docs: int = EXPLANATION_CACHE_DOCS):
        self.max_docs = max_docs
        self._items: OrderedDict[tuple[str, str | None], list[Any]] = OrderedDict()

    def get(self, key: tuple[str, str | None]) -> list[Any] | None:
        if key in self._items:
            self._items.move_to_end(key)
        return self._items.get(key)

    def put(self, key: tuple[str, str | None], explanation: list[Any]) -> None:
        self._items[key] = explanation
        self._items.move_to_end(key)
        while len(self._items) > self.max_docs:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


async def attach_explanations(rt: Runtime, alert: Alert, cache: ExplanationCache) -> None:
    """Word-level explanations for the evidence documents that lack one (off the loop)."""
    loop = asyncio.get_running_loop()
    version = getattr(rt.engine, "version", None)
    for ev in alert.evidence:
        if ev.explanation is not None or not ev.title:
            continue
        key = (ev.id, version)
        explanation = cache.get(key)
        if explanation is None:
            fresh = await loop.run_in_executor(rt.executor, explanations.explain, rt.engine, ev.title, 6)
            cache.put(key, fresh)
            explanation = fresh
        ev.explanation = explanation
