"""Alerting agents.

observe: docs.scored → one observation per scope (global, topic, each entity), sent as one
         group per scope and batch, keyed "scope:key", so every scope's state lives in
         exactly one partition — scale-out by partitions, no cross-worker coordination.
detect:  observations → Detector over a changelog-backed Faust table (a restarted or
         rebalanced worker recovers its baselines from the changelog) → alerts. Batches:
         a scope's state is read and written once per batch, one changelog record each.
notify:  alerts → the notification outbox + the store's alerts collection. The outbox comes
         first, so people hear of an alert while the store is down; the store write is then
         retried until it succeeds (the outbox queues each update once, so a re-delivered
         alert is not notified twice). An unreadable payload is dead-lettered.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import MutableMapping

import faust
from pydantic import ValidationError

from finsentry.streams import metrics
from finsentry.streams.alerting.observations import Tick, fan_out, group_by_scope, parse_message
from finsentry.streams.records import Alert, DeadLetter, ScoredDocument
from finsentry.streams.runtime import Runtime, deliver, deliver_all
from finsentry.streams.sinks.retry import put_alert_with_retry

log = logging.getLogger("finsentry.alerting")
EXPLANATION_CACHE_DOCS = 4096


class BatchState(MutableMapping):
    """The detector's state table when a whole batch is applied at once.

    A table assignment takes its changelog partition from the event being processed; a
    batch holds events of several partitions, so each key's write goes to the partition of
    that key's own messages (the same partition the key's state was recovered from)."""

    def __init__(self, table):
        self.table = table
        self.partitions: dict[str, int] = {}

    def __getitem__(self, key):
        return self.table[key]

    def get(self, key, default=None):
        return self.table.get(key, default)

    def __setitem__(self, key, value):
        self.table.data[key] = value  # what Table.__setitem__ does, with the partition given
        self.table.send_changelog(self.partitions[key], key, value)

    def __delitem__(self, key):
        raise NotImplementedError("the detector never deletes a scope's state")

    def __iter__(self):
        return iter(self.table)

    def __len__(self):
        return len(self.table)


def register(app: faust.App, rt: Runtime):
    from finsentry.streams.alerting.detector import Detector, DetectorConfig

    state = app.Table("finsentry-detector-state", default=None, partitions=rt.settings.topic_partitions,
                      key_type=str, value_type=None)
    batch_state = BatchState(state)
    detector = Detector(DetectorConfig.from_settings(rt.settings), batch_state)

    @app.agent(rt.topics.scored, name="finsentry.observe")
    async def observe(stream):
        async for batch in stream.take(rt.settings.max_batch, within=rt.settings.batch_window_s):
            observations = []
            for payload in batch:
                try:
                    observations += fan_out(ScoredDocument.model_validate_json(payload))
                except ValidationError:
                    continue  # the index agent dead-letters invalid scored records
            await deliver_all(rt.topics.observations, [(g.key, g) for g in group_by_scope(observations)])

    @app.agent(rt.topics.observations, name="finsentry.detect")
    async def detect(stream):
        async for events in stream.take_events(rt.settings.max_batch, within=rt.settings.batch_window_s):
            messages = []
            for event in events:
                try:
                    message = parse_message(event.value)
                except ValidationError as exc:  # only a foreign producer writes bad data here
                    metrics.DOCS_DEAD.labels(stage="detect", reason="invalid_record").inc()
                    await deliver(rt.topics.dlq, None, DeadLetter.of(
                        event.value, f"invalid observation: {exc.errors()[0]['msg']}", "detect"))
                    continue
                messages.append(message)
                keys = [message.key] if isinstance(message, Tick) else [o.state_key for o in getattr(
                    message, "observations", [message])]
                batch_state.partitions.update(dict.fromkeys(keys, event.message.partition))
            for alert in detector.apply(messages):
                await deliver(rt.topics.alerts, alert.id, alert)
            batch_state.partitions.clear()  # known again from the next batch's own events

    @app.timer(interval=float(rt.settings.alert_bucket_s))
    async def tick_quiet_scopes() -> None:
        """A quiet scope sees no observation to close its buckets and end its episode, so
        each worker sends a tick through the observations topic to the scopes it holds;
        table state changes only inside the detect agent, on the scope's own partition.
        The tick carries this worker's newest event time, never the wall clock, so a
        replay of old records is not closed early."""
        now = detector.max_event_time
        if now is None:
            return
        await deliver_all(rt.topics.observations,
                          [(key, Tick(tick=now, key=key)) for key in list(state.keys())])

    explanations = ExplanationCache()

    @app.agent(rt.topics.alerts, name="finsentry.notify")
    async def notify(stream):
        await rt.ready.wait()
        async for payload in stream:
            try:
                alert = Alert.model_validate_json(payload)
            except ValidationError as exc:  # only a foreign producer writes bad data here
                metrics.DOCS_DEAD.labels(stage="notify", reason="invalid_record").inc()
                await deliver(rt.topics.dlq, None, DeadLetter.of(
                    payload, f"invalid alert: {exc.errors()[0]['msg']}", "notify"))
                continue
            if rt.settings.explain_evidence and rt.engine is not None:
                await attach_explanations(rt, alert, explanations)
            if rt.outbox is not None:
                await rt.outbox.enqueue(alert)
            await put_alert_with_retry(rt.store, alert, max_backoff_s=rt.settings.store_retry_max_s)
            log.warning("alert %s id=%s", alert.summary, alert.id)

    return observe, detect, notify


class ExplanationCache:
    """Explanations by (document id, model version), the least recently used dropped first:
    every update of an episode carries mostly the same evidence, explained once."""

    def __init__(self, max_docs: int = EXPLANATION_CACHE_DOCS):
        self.max_docs = max_docs
        self._items: OrderedDict[tuple[str, str | None], list] = OrderedDict()

    def get(self, key: tuple[str, str | None]) -> list | None:
        if key in self._items:
            self._items.move_to_end(key)
        return self._items.get(key)

    def put(self, key: tuple[str, str | None], explanation: list) -> None:
        self._items[key] = explanation
        self._items.move_to_end(key)
        while len(self._items) > self.max_docs:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


async def attach_explanations(rt: Runtime, alert: Alert, cache: ExplanationCache) -> None:
    """Word-level explanations for the evidence documents that lack one (off the loop)."""
    import asyncio

    from finsentry.models.explain import explain

    loop = asyncio.get_running_loop()
    version = getattr(rt.engine, "version", None)
    for ev in alert.evidence:
        if ev.explanation is not None or not ev.title:
            continue
        key = (ev.id, version)
        explanation = cache.get(key)
        if explanation is None:
            explanation = await loop.run_in_executor(rt.executor, explain, rt.engine, ev.title, 6)
            cache.put(key, explanation)
        ev.explanation = explanation
