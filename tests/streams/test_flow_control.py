from finsentry.streams.flow_control import FlowControl


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_partition_ahead_in_event_time_waits_until_the_slowest_catches_up():
    flow = FlowControl(max_skew_s=120, max_pause_s=60, clock=Clock())
    flow.saw(0, 1000.0)
    flow.saw(1, 1500.0)
    assert flow.decide({0, 1}) == ({1}, set())
    assert flow.decide({0, 1}) == (set(), set())  # still ahead: stays paused
    flow.saw(0, 1400.0)
    assert flow.decide({0, 1}) == (set(), {1})


def test_a_partition_with_nothing_waiting_holds_nobody_back():
    flow = FlowControl(max_skew_s=120, max_pause_s=60, clock=Clock())
    flow.saw(0, 1000.0)
    flow.saw(1, 1500.0)
    assert flow.decide({1}) == (set(), set())  # 0 is caught up: its old time is no reason to wait


def test_a_stuck_partition_stalls_the_others_for_at_most_the_bound():
    clock = Clock()
    flow = FlowControl(max_skew_s=120, max_pause_s=60, clock=clock)
    flow.saw(0, 1000.0)
    flow.saw(1, 1500.0)
    assert flow.decide({0, 1}) == ({1}, set())
    clock.now = 59.0
    assert flow.decide({0, 1}) == (set(), set())
    clock.now = 61.0
    assert flow.decide({0, 1}) == (set(), {1})  # 0 made no progress: 1 goes on
    clock.now = 200.0
    assert flow.decide({0, 1}) == (set(), set())  # and is not paused again for the same stall
    flow.saw(0, 1010.0)  # the slow one moves: the bound applies afresh
    assert flow.decide({0, 1}) == ({1}, set())


def test_progress_of_the_slow_partition_restarts_the_bound():
    clock = Clock()
    flow = FlowControl(max_skew_s=120, max_pause_s=60, clock=clock)
    flow.saw(0, 1000.0)
    flow.saw(1, 5000.0)
    flow.decide({0, 1})
    for step in range(1, 6):
        clock.now = 50.0 * step
        flow.saw(0, 1000.0 + 10 * step)
        assert flow.decide({0, 1}) == (set(), set())
    assert 1 in flow.paused


def test_a_partition_with_work_that_was_never_read_is_waited_for_within_the_bound():
    clock = Clock()
    flow = FlowControl(max_skew_s=120, max_pause_s=60, clock=clock)
    flow.saw(0, 1000.0)
    flow.saw(1, 1500.0)
    assert flow.decide({0, 1, 2}) == ({0, 1}, set())
    clock.now = 61.0
    assert flow.decide({0, 1, 2}) == (set(), {0, 1})  # 2 still unread: the others go on
    flow.saw(2, 900.0)
    assert flow.decide({0, 1, 2}) == ({1}, set())  # 2 is read now: only what is far ahead waits


# --- the pause itself, on the worker's consumer ---------------------------------------------


def fetched(tp, offsets):
    from aiokafka.structs import ConsumerRecord

    return [
        ConsumerRecord(
            topic=tp.topic,
            partition=tp.partition,
            offset=o,
            timestamp=0,
            timestamp_type=0,
            key=b"k",
            value=b"v",
            checksum=None,
            serialized_key_size=1,
            serialized_value_size=1,
            headers=(),
        )
        for o in offsets
    ]


def worker_consumer():
    """The worker's own consumer class, not started: no broker is asked anything."""
    import faust

    from finsentry.streams import transport

    app = faust.App("flow-pause-test", broker=f"{transport.SCHEME}://localhost:1")

    async def nothing(*args):
        return None

    return app.transport.create_consumer(
        callback=nothing, on_partitions_revoked=nothing, on_partitions_assigned=nothing
    )


def test_records_already_fetched_for_a_partition_paused_meanwhile_are_still_handed_over():
    """The fetch in hand has moved the read position past its records: a record of it that is
    not handed over is never read again, and the commit passes it (lost, not dead-lettered)."""
    import asyncio

    import faust
    from faust.types import TP

    from finsentry.streams import transport  # noqa: F401 - registers the scheme

    app = faust.App("flow-pause-test", broker=f"{transport.SCHEME}://localhost:1")

    async def nothing(*args):
        return None

    consumer = app.transport.create_consumer(
        callback=nothing, on_partitions_revoked=nothing, on_partitions_assigned=nothing
    )
    a, b = TP("docs.valid", 0), TP("docs.valid", 1)
    records = {a: fetched(a, range(0, 4)), b: fetched(b, range(0, 4))}
    consumer._set_active_tps({a, b})
    consumer.highwater = lambda tp: 4

    async def one_fetch(active_partitions, timeout):
        return records

    consumer._getmany = one_fetch

    async def hand_over():
        got = []
        async for tp, message in consumer.getmany(timeout=0):
            got.append((tp.partition, message.offset))
            if len(got) == 1:
                consumer.pause_partitions([b])  # the flow control's timer ran while a record was handed over
        return got

    got = asyncio.run(hand_over())
    assert sorted(got) == [(p, o) for p in (0, 1) for o in range(4)]
    assert b not in consumer._get_active_partitions()  # the next fetch leaves it out


def test_a_drained_stream_buffer_does_not_lift_a_pause():
    from faust.types import TP

    consumer = worker_consumer()
    a, b = TP("docs.valid", 0), TP("docs.valid", 1)
    consumer._set_active_tps({a, b})
    consumer.on_buffer_full(b)  # Faust stops fetching a partition whose stream buffer is full
    consumer.pause_partitions([b])
    consumer.on_buffer_drop(b)  # ... and fetches it again once the buffer drains
    assert consumer._get_active_partitions() == {a}
    consumer.resume_partitions([b])
    assert consumer._get_active_partitions() == {a, b}
