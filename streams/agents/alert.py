"""Alerting agents.

observe: docs.scored → one observation per scope (global, topic, each entity), sent as one
         group per scope and batch, keyed "scope:key", so every scope's state lives in
         exactly one partition — scale-out by partitions, no cross-worker coordination.
detect:  observations → Detector over a changelog-backed Faust table (a restarted or
         rebalanced worker recovers its baselines from the changelog) → alerts. Batches:
         a scope's state is read and written once per batch, one changelog record each.
notify:  alerts → the store's alerts collection + the notification outbox.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping

import faust
from pydantic import ValidationError

from finsentry.streams import metrics
from finsentry.streams.alerting.observations import Tick, fan_out, group_by_scope, parse_message
from finsentry.streams.records import Alert, DeadLetter, ScoredDocument
from finsentry.streams.runtime import Runtime, deliver, deliver_all

log = logging.getLogger("finsentry.alerting")


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

    @app.agent(rt.topics.alerts, name="finsentry.notify")
    async def notify(stream):
        await rt.ready.wait()
        async for payload in stream:
            alert = Alert.model_validate_json(payload)
            if rt.settings.explain_evidence and rt.engine is not None:
                await attach_explanations(rt, alert)
            await rt.store.put_alert(alert)
            if rt.outbox is not None:
                await rt.outbox.enqueue(alert)
            log.warning("alert %s id=%s", alert.summary, alert.id)

    return observe, detect, notify


async def attach_explanations(rt: Runtime, alert: Alert) -> None:
    """Word-level explanations for the evidence documents that lack one (off the loop)."""
    import asyncio

    from finsentry.models.explain import explain

    loop = asyncio.get_running_loop()
    for ev in alert.evidence:
        if ev.explanation is None and ev.title:
            ev.explanation = await loop.run_in_executor(rt.executor, explain, rt.engine, ev.title, 6)
