"""Alerting agents.

observe: docs.scored → one observation per scope (global, topic, each entity), keyed
         "scope:key", so every scope's state lives in exactly one partition — scale-out by
         partitions, no cross-worker coordination.
detect:  observations → Detector over a changelog-backed Faust table (a restarted or
         rebalanced worker recovers its baselines from the changelog) → alerts.
notify:  alerts → the store's alerts collection + the notification outbox.
"""

from __future__ import annotations

import logging

import faust
from pydantic import BaseModel, ValidationError

from finsentry.streams import metrics
from finsentry.streams.records import Alert, ScoredDocument
from finsentry.streams.runtime import Runtime, deliver, deliver_all

log = logging.getLogger("finsentry.alerting")


class Tick(BaseModel):
    tick: float  # event time, epoch seconds
    key: str  # "scope:key"


def register(app: faust.App, rt: Runtime):
    from finsentry.streams.alerting.detector import Detector, DetectorConfig
    from finsentry.streams.alerting.observations import Observation, fan_out

    state = app.Table("finsentry-detector-state", default=None, partitions=rt.settings.topic_partitions,
                      key_type=str, value_type=None)
    detector = Detector(DetectorConfig.from_settings(rt.settings), state)

    @app.agent(rt.topics.scored, name="finsentry.observe")
    async def observe(stream):
        async for batch in stream.take(rt.settings.max_batch, within=rt.settings.batch_window_s):
            out = []
            for payload in batch:
                try:
                    record = ScoredDocument.model_validate_json(payload)
                except ValidationError:
                    continue  # the index agent dead-letters invalid scored records
                out += [(f"{o.scope}:{o.key}", o) for o in fan_out(record)]
            await deliver_all(rt.topics.observations, out)

    @app.agent(rt.topics.observations, name="finsentry.detect")
    async def detect(stream):
        async for payload in stream:
            if payload.startswith(b'{"tick"'):
                tick = Tick.model_validate_json(payload)
                alerts = detector.tick(tick.tick, keys=[tick.key])
            else:
                alerts = detector.observe(Observation.model_validate_json(payload))
            for alert in alerts:
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
