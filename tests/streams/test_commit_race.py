"""The lost-commit race of a restart with a backlog, replayed in a fixed order through the
worker's consumer (streams/transport.py): Faust's own fetch loop (`_drain_messages`) and
seek (`perform_seek`) run unchanged, fed records in the order that lost documents; only
the broker is replaced, by a list of fetched records, because the order is the point.

Three orders, all possible after a kill -9 with a backlog:
- a record fetched before the seek to the committed offset is delivered after it: the read
  position jumps, the records in between are dropped from the fetch, and Faust's rule
  counts the jumped-over offsets as acknowledged;
- across a rebalance, the streams skip (acknowledge unprocessed) the records still queued
  from the old generation while the copies fetched again after the seek are in flight;
- records of the new generation delivered before the flow resumes (tables still
  recovering) are skipped; Faust never delivers them again (its read position passed them).

In both, the offset the consumer would commit must not pass a record that no agent has
finished. Each scenario also runs with Faust's own rule, which must commit past one: if a
Faust upgrade stops doing so, that test says the race is gone from Faust itself.
"""

from __future__ import annotations

import asyncio
import threading

import faust
import pytest
from faust.transport import consumer as faust_consumer
from faust.types import TP
from faust.types.tuples import Message

from finsentry.streams.transport import SCHEME, Consumer

TOPIC = "docs.valid"
PART = TP(TOPIC, 0)


class FaustRuleConsumer(Consumer):
    """The worker's consumer with Faust's own acknowledgement and commit rule put back."""

    ack = faust_consumer.Consumer.ack
    _new_offset = faust_consumer.Consumer._new_offset
    _add_gap = faust_consumer.Consumer._add_gap
    _filter_tps_with_pending_acks = faust_consumer.Consumer._filter_tps_with_pending_acks


class Harness:
    """One consumer of one partition, the app around it, and the records its agents got."""

    def __init__(self, consumer_class: type[Consumer]):
        self.app = faust.App(
            f"commit-race-{consumer_class.__name__}",
            broker=f"{SCHEME}://127.0.0.1:9",
            broker_consumer=f"{SCHEME}://127.0.0.1:9",
            autodiscover=False,
        )
        self.app.topics._acking_topics.add(TOPIC)  # an agent reads it with acks on, as the worker's do
        self.app.flow_control.resume()
        self.handed_to_agents: list[Message] = []

        async def hand_to_agents(message: Message) -> None:
            self.handed_to_agents.append(message)

        async def rebalance_callback(*args, **kwargs) -> None:
            """The app's own handlers (tables, agents) are not what is tested here."""

        self.consumer = consumer_class(
            self.app.transport,
            callback=hand_to_agents,
            on_partitions_revoked=rebalance_callback,
            on_partitions_assigned=rebalance_callback,
        )
        self.app.on_rebalance_return = lambda: None

    def message(self, offset: int) -> Message:
        return Message(
            TOPIC,
            PART.partition,
            offset,
            0.0,
            0,
            None,
            b"k",
            b"v",
            None,
            tp=PART,
            generation_id=self.app.consumer_generation_id,
        )

    async def seek_to_committed(self, committed: int) -> None:
        """Faust's seek after an assignment, with the group's committed offset."""

        async def committed_offsets():
            return {PART: committed}

        self.consumer.seek_to_committed = committed_offsets
        await self.consumer.perform_seek()

    async def fetch(self, messages: list[Message]) -> list[Message]:
        """Run Faust's fetch loop over one fetch returning `messages`; what reached the agents."""
        stopped = threading.Event()
        fetcher = type("Fetcher", (), {"_stopped": stopped})()
        before = len(self.handed_to_agents)

        async def getmany(timeout: float):
            for message in messages:
                yield message.tp, message
            stopped.set()

        self.consumer.getmany = getmany
        await asyncio.wait_for(self.consumer._drain_messages(fetcher), timeout=30)
        return self.handed_to_agents[before:]

    def finish(self, messages: list[Message]) -> None:
        """The agents processed these and acknowledged them (Event.ack ends in Consumer.ack)."""
        for message in messages:
            self.consumer.ack(message)

    def skip(self, messages: list[Message]) -> None:
        """A stream acknowledges a record it skipped (flow stopped, or an older generation)."""
        for message in messages:
            self.consumer.ack(message)

    def to_commit(self) -> int | None:
        """The offset the next commit would write for the partition (None: no commit)."""
        offsets = self.consumer._filter_committable_offsets(self.consumer._filter_tps_with_pending_acks())
        return offsets.get(PART)

    async def rebalance(self, generation: int) -> None:
        """An eager rebalance that gives the partition back to this consumer."""
        self.app.flow_control.suspend()
        await self.consumer.on_partitions_revoked({PART})
        await self.consumer.on_partitions_assigned({PART}, generation_id=generation)
        self.app.consumer_generation_id = generation


async def record_fetched_before_the_seek(consumer_class: type[Consumer]) -> tuple[int | None, int]:
    """The group committed 250. A fetch made before the seek (the old read position) returns
    record 400 after the seek; then the records from 251 arrive. Returns what would be
    committed once the agents finished everything they were handed, and the oldest record
    no agent finished."""
    h = Harness(consumer_class)
    await h.seek_to_committed(250)
    handed = await h.fetch([h.message(400)] + [h.message(o) for o in range(251, 260)])
    h.finish(handed)
    finished = {m.offset for m in handed}
    return h.to_commit(), min(o for o in range(250, 401) if o not in finished)


async def skipped_across_a_rebalance(consumer_class: type[Consumer]) -> tuple[int | None, int]:
    """Records 12-14 are queued in generation 1 when a rebalance hands the partition back
    (committed 12). The copies fetched again in generation 2 are in flight, only 12 done,
    when the streams skip the queued generation-1 records. Returns what would be committed
    and the oldest record of generation 2 not finished."""
    h = Harness(consumer_class)
    h.app.consumer_generation_id = 1
    await h.seek_to_committed(12)
    queued = await h.fetch([h.message(o) for o in (12, 13, 14)])
    assert [m.offset for m in queued] == [12, 13, 14]
    await h.rebalance(generation=2)
    await h.seek_to_committed(12)
    h.app.flow_control.resume()
    again = await h.fetch([h.message(o) for o in (12, 13, 14)])
    assert [m.offset for m in again] == [12, 13, 14]
    h.finish(again[:1])
    h.skip(queued)  # old generation: the stream acknowledges them without processing
    return h.to_commit(), 13


async def skipped_before_the_flow_resumed(
    consumer_class: type[Consumer], harness: list | None = None
) -> tuple[int | None, int]:
    """After the assignment (committed 20) records 20-24 arrive while the flow is still
    stopped: the streams skip 20-22, then the flow resumes and 23-24 are processed.
    Returns what would be committed and the oldest record not processed."""
    h = Harness(consumer_class)
    if harness is not None:
        harness.append(h)
    h.app.consumer_generation_id = 1
    await h.seek_to_committed(20)
    h.app.flow_control.suspend()
    handed = await h.fetch([h.message(o) for o in range(20, 25)])
    h.skip(handed[:3])
    h.app.flow_control.resume()
    h.finish(handed[3:])
    return h.to_commit(), 20


def test_a_record_fetched_before_the_seek_does_not_move_the_commit_past_undelivered_records():
    to_commit, oldest_unfinished = asyncio.run(record_fetched_before_the_seek(Consumer))
    assert oldest_unfinished == 250  # the agents were handed 400 only: Faust dropped 251-259
    assert to_commit is None or to_commit <= oldest_unfinished, (
        f"would commit {to_commit}, past record {oldest_unfinished} that no agent finished"
    )


def test_records_skipped_across_a_rebalance_do_not_move_the_commit_past_their_copies_in_flight():
    to_commit, oldest_unfinished = asyncio.run(skipped_across_a_rebalance(Consumer))
    assert to_commit is not None and to_commit <= oldest_unfinished, (
        f"would commit {to_commit}; record {oldest_unfinished} is still in flight"
    )
    assert to_commit == 13  # record 12 was finished: the commit does move up to the next one


def test_records_skipped_before_the_flow_resumed_hold_the_commit_and_are_read_again():
    async def scenario_then_redelivery() -> None:
        made: list[Harness] = []
        to_commit, oldest_unprocessed = await skipped_before_the_flow_resumed(Consumer, made)
        assert to_commit is None or to_commit <= oldest_unprocessed, (
            f"would commit {to_commit}, past record {oldest_unprocessed} that was skipped, not processed"
        )

        # The next commit reads the partition again from the skipped record: not frozen.
        h, seeks = made[0], []

        async def seek(tp: TP, offset: int) -> None:
            seeks.append((tp, offset))

        h.consumer._seek = seek
        h.consumer.assignment = lambda: {PART}
        await h.consumer._redeliver_skipped()
        assert seeks == [(PART, 20)]
        again = await h.fetch([h.message(o) for o in range(20, 25)])
        assert [m.offset for m in again] == [20, 21, 22, 23, 24]
        assert h.to_commit() is None  # read again: in flight until processed
        h.finish(again)
        assert h.to_commit() == 25

    asyncio.run(scenario_then_redelivery())


SCENARIOS = [record_fetched_before_the_seek, skipped_across_a_rebalance, skipped_before_the_flow_resumed]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__.replace("_", "-") for s in SCENARIOS])
def test_faust_own_rule_commits_past_an_unfinished_record_in_the_same_order(scenario):
    """The scenarios replay the race: with Faust's rule the commit passes an unfinished record."""
    to_commit, oldest_unfinished = asyncio.run(scenario(FaustRuleConsumer))
    assert to_commit is not None and to_commit > oldest_unfinished, (
        f"Faust's own rule would commit {to_commit}, not past {oldest_unfinished}: the race is not "
        "replayed (or a Faust upgrade removed it)"
    )
