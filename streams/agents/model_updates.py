"""Hot swap: every worker follows the model-updates topic and swaps versions between batches.

Promotion is a broadcast, not work to share, so this reader is outside the consumer group:
it assigns itself every partition and starts at the end. The new version is loaded and
checked on its golden batch in a loader thread; scoring goes on meanwhile with the old
one, and the swap is a reference change between two model calls — no document is lost
or scored twice, and every record names the version that scored it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from finsentry import metrics
from finsentry.kafka import aiokafka_security
from finsentry.models.registry import Registry
from finsentry.records import ModelUpdate
from finsentry.streams.runtime import Runtime

log = logging.getLogger("finsentry.models")


async def apply_update(rt: Runtime, update: ModelUpdate) -> bool:
    if rt.engine is not None and rt.engine.version == update.version:
        return False
    loop = asyncio.get_running_loop()
    try:
        version = Registry(rt.settings.registry_dir).get(update.version)
        candidate = await loop.run_in_executor(
            rt.loader,
            lambda: rt.engine.prepare(
                version.path, cache_dir=rt.settings.model_cache_dir, threads=rt.settings.inference_threads
            ),
        )
    except Exception as exc:  # a bad version must never take the worker down
        metrics.MODEL_SWAPS.labels(action=update.action, result="failed").inc()
        log.error("model update failed action=%s version=%s error=%s", update.action, update.version, exc)
        return False
    rt.engine.swap(candidate)
    metrics.set_model_info(rt.engine.version, rt.engine.backend_name)
    metrics.MODEL_SWAPS.labels(action=update.action, result="swapped").inc()
    return True


async def follow_updates(rt: Runtime, app: faust.App) -> None:
    topics = rt.require_topics()
    from aiokafka import AIOKafkaConsumer, TopicPartition

    await rt.ready.wait()
    await topics.model_updates.maybe_declare()
    name = topics.model_updates.get_topic_name()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=rt.settings.broker_address,
        group_id=None,
        enable_auto_commit=False,
        **aiokafka_security(rt.settings),
    )
    await consumer.start()
    try:
        partitions = None
        while not partitions:
            partitions = consumer.partitions_for_topic(name)
            if not partitions:
                await consumer.topics()  # refresh metadata until the topic exists
                await asyncio.sleep(1.0)
        tps = [TopicPartition(name, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        await catch_up(rt)
        async for message in consumer:
            try:
                update = ModelUpdate.model_validate_json(message.value)
            except ValueError as exc:
                log.error("ignoring malformed model update: %s", exc)
                continue
            log.info("model update received action=%s version=%s", update.action, update.version)
            await apply_update(rt, update)
    finally:
        await consumer.stop()


async def catch_up(rt: Runtime) -> None:
    """A promotion published while this worker was loading (before it followed the topic)
    is not lost: once following, compare with the registry and apply what it serves."""
    if rt.settings.model_path:  # an explicitly configured model is not replaced by the registry
        return
    try:
        serving = Registry(rt.settings.registry_dir).serving()
    except Exception as exc:  # an unreadable registry must not stop scoring with the loaded model
        log.error("registry not readable, keeping model=%s: %s", rt.engine.version, exc)
        return
    if serving is not None and serving.name != rt.engine.version:
        await apply_update(rt, ModelUpdate(action="promote", version=serving.name))


def register(app: faust.App, rt: Runtime) -> Any:

    @app.task
    async def model_updates() -> None:
        await follow_updates(rt, app)

    return model_updates
