"""score: docs.valid → batches → the model engine (in an executor) → docs.scored.

Batches come from `take(max_batch, within=window)`: under load they fill up and the model
runs at full width; when quiet, a lone document waits at most `window`. Inference runs in
the runtime's inference threads (one per inference stream) so the event loop keeps
consuming, heart-beating and serving the web page. A batch is acknowledged only after its
scored records were delivered. Several batches are in flight (`score_concurrency`, by
default one more than the streams): each stream computes one while another waits on the
broker, which keeps the model busy.

Flow control (flow_control.py): a docs.valid partition that runs ahead of the others in
event time is paused until they catch up, so the detector's clock is not held far back.
Order (input_order.py): a partition's scored records are delivered in the order they were
read, whichever batch in flight finishes first, so its event time only moves forward.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, Sequence

import faust
from pydantic import ValidationError

from finsentry import metrics
from finsentry.alerting.dedup import NearDuplicateIndex
from finsentry.models.engine import Engine
from finsentry.models.entities import extractor
from finsentry.records import DeadLetter, DeadReason, ScoredDocument, Sentiment, Topic, ValidDocument
from finsentry.streams.consumer_lag import partitions_with_backlog
from finsentry.streams.flow_control import FlowControl
from finsentry.streams.input_order import InputOrder
from finsentry.streams.runtime import Runtime, deliver, delivered
from finsentry.textnorm import model_input

log = logging.getLogger("finsentry.score")


def score_documents(
    engine: Engine,
    docs: Sequence[ValidDocument],
    entities_csv: str | Path | None = None,
    dedup: NearDuplicateIndex | None = None,
) -> list[ScoredDocument]:
    """Blocking: one model call for the whole batch; every record names the version used.
    The near-duplicate index is consulted here too, in the same single inference thread, so
    its MinHash work stays off the event loop and needs no lock."""
    inputs = [model_input(d.title, d.text) for d in docs]
    preds = engine.predict(inputs)
    ext = extractor(str(entities_csv) if entities_csv else None)
    now = time.time()
    out = []
    for doc, text, pred in zip(docs, inputs, preds):
        out.append(
            ScoredDocument(
                **doc.model_dump(),
                sentiment=Sentiment(label=pred.sentiment, probabilities=pred.probabilities, score=pred.score),
                topic=Topic(label=pred.topic, probability=pred.topic_probability),
                entities=ext.extract(doc.title, doc.text),
                model_version=pred.model_version,
                scored_at=now,
                dup_of=dedup.check(doc.id, text, doc.published_at.timestamp()) if dedup is not None else None,
            )
        )
    return out


def timed_score(*args: Any) -> tuple[list[ScoredDocument], float]:
    """score_documents and its duration, timed in the inference thread: with several
    batches in flight, time spent queued for that thread is not the model's."""
    started = time.perf_counter()
    scored = score_documents(*args)
    return scored, time.perf_counter() - started


async def score_batch(
    rt: Runtime, docs: list[ValidDocument]
) -> tuple[list[ScoredDocument], list[tuple[ValidDocument, str]]]:
    """Score in the executor. If the batch fails, find the culprit(s) one by one so a
    single poisonous document is dead-lettered instead of blocking its neighbours."""
    loop = asyncio.get_running_loop()
    try:
        scored, seconds = await loop.run_in_executor(
            rt.executor, timed_score, rt.engine, docs, rt.settings.entity_aliases, rt.dedup
        )
        metrics.BATCH_SIZE.observe(len(docs))
        metrics.INFERENCE_SECONDS.observe(seconds)
        return scored, []
    except Exception as exc:
        if len(docs) == 1:
            return [], [(docs[0], f"scoring failed: {type(exc).__name__}: {exc}")]
        log.warning("batch of %d failed (%s); scoring one by one", len(docs), exc)
    scored, failed = [], []
    for doc in docs:
        ok, bad = await score_batch(rt, [doc])
        scored += ok
        failed += bad
    return scored, failed


def register(app: faust.App, rt: Runtime) -> Any:
    topics = rt.require_topics()
    # Actors share one queue; Faust commits only the offsets below the oldest unacknowledged
    # event, so a batch still being delivered holds the commit back (at-least-once holds).
    flow = FlowControl(rt.settings.flow_max_skew_s, rt.settings.flow_max_pause_s)
    order = InputOrder()
    valid_topic = topics.valid.get_topic_name()

    @app.agent(topics.valid, name="finsentry.score", concurrency=rt.settings.inference_plan[1])
    async def score(stream: Any) -> None:  # a faust Stream (take_events is not on StreamT)
        await rt.ready.wait()

        def note_read(value: Any) -> Any:
            if stream.current_event is not None:
                order.read(stream.current_event.message)
            return value

        stream.add_processor(note_read)  # runs as each record leaves the queue, before the batch takes it
        async for events in stream.take_events(rt.settings.max_batch, within=rt.settings.batch_window_s):
            try:
                await score_events(events)
            finally:
                for event in events:  # a failed batch must not hold the records read after it
                    order.handed_over(event.message)

    async def score_events(events: list[Any]) -> None:
        docs: list[ValidDocument] = []
        dead: list[DeadLetter] = []
        read_as: list[Any] = []
        for event in events:
            payload = event.value
            try:
                docs.append(ValidDocument.model_validate_json(payload))
                read_as.append(event.message)
                flow.saw(event.message.partition, docs[-1].published_at.timestamp())
            except ValidationError as exc:  # only a foreign producer writes bad data here
                dead.append(DeadLetter.of(payload, f"invalid record on docs.valid: {exc.errors()[0]['msg']}", "score"))
        scored, failed = await score_batch(rt, docs) if docs else ([], [])
        dead += [DeadLetter.of(d.model_dump_json(), reason, "score") for d, reason in failed]
        for record in scored:
            if record.dup_of:
                metrics.DOCS_DUPLICATE.inc()
            metrics.count_scored(record)
        for letter in dead:
            metrics.DOCS_DEAD.labels(stage="score", reason=DeadReason.SCORING_FAILED.value).inc()
            await deliver(topics.dlq, None, letter)
        unscored = {id(doc) for doc, _ in failed}
        outputs = dict(zip((id(m) for doc, m in zip(docs, read_as) if id(doc) not in unscored), scored))
        futures = []
        for event in events:  # in the order read; each waits for its partition's earlier records
            out = outputs.get(id(event.message))
            if out is not None:
                await order.turn(event.message)
                futures.append(await topics.scored.send(key=out.key.encode(), value=out.model_dump_json().encode()))
            order.handed_over(event.message)
        await delivered(futures)

    @app.timer(interval=1.0)
    async def pace_partitions() -> None:
        """Pause the docs.valid partitions that run ahead in event time, resume the rest."""
        if not rt.ready.is_set() or app.rebalancing:
            return  # recovery pauses and resumes partitions itself
        consumer = app.consumer
        try:
            held = {tp.partition: tp for tp in consumer.assignment() if tp.topic == valid_topic}
            waiting = await partitions_with_backlog(app, {valid_topic})
        except Exception as exc:  # noqa: BLE001 - a rebalance or broker hiccup: fail open
            log.info("flow control: offsets not measured (%s); every partition it paused is resumed", exc)
            try:
                consumer.resume_partitions(
                    [tp for tp in consumer.assignment() if tp.topic == valid_topic and tp.partition in flow.paused]
                )
            except Exception:  # noqa: BLE001 - not assigned now: nothing of ours is paused
                pass
            flow.paused.clear()
            return
        flow.forget(set(held))
        pause, resume = flow.decide(waiting)
        if pause:
            consumer.pause_partitions([held[p] for p in pause if p in held])
            log.info(
                "flow control: paused %s partitions %s (more than %gs of event time ahead)",
                valid_topic,
                sorted(pause),
                rt.settings.flow_max_skew_s,
            )
        if resume:
            consumer.resume_partitions([held[p] for p in resume if p in held])
            log.info("flow control: resumed %s partitions %s", valid_topic, sorted(resume))
        metrics.PAUSED_PARTITIONS.labels(topic=valid_topic).set(len(flow.paused))
        metrics.FLOW_SKEW.labels(topic=valid_topic).set(flow.skew())
        for p, t in flow.frontier.items():
            metrics.PARTITION_EVENT_TIME.labels(topic=valid_topic, partition=str(p)).set(t)

    return score
