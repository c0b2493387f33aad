"""Reading topics back in the ingest tests: assign()+seek, since kafka-python consumer
groups do not work against the embedded broker."""

from __future__ import annotations

import time

from kafka import KafkaConsumer, TopicPartition

from finsentry.streams.end_offsets import end_offsets_sync


def read_topic(address: str, topic: str, timeout: float = 10.0) -> list:
    """Every record of `topic`, read from offset 0 of each partition up to its end offset."""
    consumer = KafkaConsumer(
        bootstrap_servers=address, enable_auto_commit=False, group_id=None, consumer_timeout_ms=500
    )
    try:
        partitions = None
        deadline = time.monotonic() + timeout
        while partitions is None and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            if partitions is None:
                time.sleep(0.1)
        if not partitions:
            return []
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = end_offsets_sync(consumer, tps, embedded=True)  # records arrive in batches
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        records = []
        while any(consumer.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def end_offsets(address: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=address, enable_auto_commit=False, group_id=None)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        return {tp.partition: off for tp, off in end_offsets_sync(consumer, tps, embedded=True).items()}
    finally:
        consumer.close()
