"""Scored records of a partition leave in the order they were read, whichever batch in
flight finishes first; a record that never comes holds the rest back only for the bound."""

from __future__ import annotations

import asyncio

from finsentry.streams.input_order import InputOrder


class Msg:
    def __init__(self, partition: int, offset: int):
        self.tp = ("docs.valid", partition)
        self.offset = offset

    def __repr__(self) -> str:
        return f"{self.tp[1]}@{self.offset}"


async def hand_over(order: InputOrder, batch, out: list, before=None) -> None:
    """What an actor does with a scored batch: each record in its turn."""
    if before is not None:
        await before.wait()
    for m in batch:
        await order.turn(m)
        out.append(m)
        order.handed_over(m)


def test_a_batch_that_finishes_first_waits_for_the_earlier_records_of_its_partitions():
    async def run():
        order = InputOrder()
        p0 = [Msg(0, o) for o in range(6)]
        q = [Msg(1, o) for o in range(2)]
        for m in [p0[0], p0[1], q[0], p0[2], p0[3], q[1], p0[4], p0[5]]:
            order.read(m)
        first = [p0[0], p0[1], p0[4]]  # batches interleave: the actors share one queue
        second = [q[0], p0[2], p0[3], q[1], p0[5]]
        out: list = []
        slow = asyncio.Event()
        late_actor = asyncio.create_task(hand_over(order, first, out, before=slow))
        await asyncio.wait_for(hand_over(order, second[:1], out), 5)  # another partition: no wait
        early_actor = asyncio.create_task(hand_over(order, second[1:], out))
        for _ in range(20):  # let it run as far as it can
            await asyncio.sleep(0)
        assert out == [q[0]] and not early_actor.done()  # p0@2 waits for p0@0 and p0@1, still being scored
        slow.set()
        await asyncio.wait_for(asyncio.gather(late_actor, early_actor), 5)
        return out, order

    out, order = asyncio.run(run())
    assert [m.offset for m in out if m.tp[1] == 0] == list(range(6))
    assert order.waiting() == 0


def test_a_record_never_handed_over_holds_the_later_ones_only_for_the_bound():
    async def run():
        order = InputOrder(max_wait_s=0.2)
        lost, later, last = Msg(0, 0), Msg(0, 1), Msg(0, 2)
        for m in (lost, later, last):
            order.read(m)
        out: list = []
        await asyncio.wait_for(hand_over(order, [later, last], out), 10)
        order.handed_over(lost)  # its actor comes back after all: nothing breaks
        return out, order

    out, order = asyncio.run(run())
    assert [m.offset for m in out] == [1, 2]
    assert order.waiting() == 0


def test_a_record_read_before_order_was_kept_does_not_wait():
    async def run():
        order = InputOrder()
        order.read(Msg(0, 5))
        out: list = []
        await asyncio.wait_for(hand_over(order, [Msg(0, 4)], out), 5)
        return out

    assert [m.offset for m in asyncio.run(run())] == [4]


def test_a_record_read_by_two_streams_is_waited_for_once():
    async def run():
        order = InputOrder()
        first, second = Msg(0, 0), Msg(0, 1)
        for m in (first, first, second):
            order.read(m)
        out: list = []
        await asyncio.wait_for(hand_over(order, [first, second], out), 5)
        await asyncio.wait_for(hand_over(order, [first], out), 5)
        return out, order

    out, order = asyncio.run(run())
    assert [m.offset for m in out] == [0, 1, 0] and order.waiting() == 0
