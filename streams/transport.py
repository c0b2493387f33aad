"""The Kafka transport of the workers: Faust's aiokafka driver with a short fetch wait.

Faust fixes the consumer's fetch_max_wait_ms at 1500. A broker may hold a fetch for that
long when no record was there at its start (the embedded tansu broker does), so on a
quiet pipeline each hop (raw → valid → scored → store) could add up to 1.5 s of latency.
The wait comes from FINSENTRY_CONSUMER_FETCH_MAX_WAIT_MS instead; against Apache Kafka,
which answers as soon as a record arrives, a short wait only adds cheap idle fetches.
Registered as the `finsentry-kafka://` scheme and used for the consumer side only.

It also decides which offsets are committed (see streams/offsets.py for why Faust's own
rule cannot be trusted across a restart with a backlog): a record counts as done only when
every stream that received it acknowledged it after processing it.
"""

from __future__ import annotations

import logging

from faust.transport import drivers
from faust.transport.consumer import ensure_TPset
from faust.transport.drivers import aiokafka as driver
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from finsentry.streams.offsets import InFlight

log = logging.getLogger("finsentry.worker")

SCHEME = "finsentry-kafka"


class ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this when it builds its fetcher in start(); set before start.
        consumer._fetch_max_wait_ms = int(getattr(self.app.conf, "finsentry_fetch_max_wait_ms", 1500))
        return consumer


class Consumer(driver.Consumer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.in_flight = InFlight()
        self._reported_gaps: set = set()
        hand_over = self.callback

        async def deliver_and_track(message) -> None:
            if self.app.topics.acks_enabled_for(message.topic):
                self.in_flight.delivered(message.tp, message.offset, message.generation_id)
            await hand_over(message)

        self.callback = deliver_and_track

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def ack(self, message) -> bool:
        """The last stream is done with `message`. Faust skips (and acknowledges) records while
        the flow is stopped for a rebalance or when they belong to an older generation: those
        were not processed, so they hold the commit point back instead of moving it."""
        with ack_lock:
            if message.acked:
                return False
            message.acked = True
            try:
                if self.app.topics.acks_enabled_for(message.topic):
                    processed = (
                        self.app.flow_control.is_active() and message.generation_id == self.app.consumer_generation_id
                    )
                    self._unacked_messages.discard(message)
                    self.in_flight.acknowledged(message.tp, message.offset, message.generation_id, processed)
                    self._n_acked += 1
                    return True
                return False
            finally:
                notify(self._waiting_for_ack)

    def pause_partitions(self, tps) -> None:
        """Faust narrows its set of active partitions in place, and the fetch being handed over
        checks each record against that same set: records of a partition paused meanwhile were
        dropped after the read position had passed them, so they were never read again and the
        commit went past them (lost, not dead-lettered). A new set leaves the fetch in hand
        to be handed over whole; the next fetch leaves the paused partitions out."""
        paused = ensure_TPset(tps)
        self._active_partitions = set(self._get_active_partitions()) - paused
        self._paused_partitions.update(paused)

    def on_buffer_drop(self, tp) -> None:
        """A stream's buffer drained: fetch the partition again, unless the flow control paused it."""
        if tp in self._paused_partitions:
            self._buffered_partitions.discard(tp)
            return
        super().on_buffer_drop(tp)

    def _filter_tps_with_pending_acks(self, topics=None):
        return (tp for tp in self.in_flight.partitions() if topics is None or tp in topics or tp.topic in topics)

    def _new_offset(self, tp):
        return self.in_flight.commit_point(tp, self._committed_offset.get(tp))

    async def _add_gap(self, tp, offset_from: int, offset_to: int) -> None:
        """Gaps need no bookkeeping: the commit point never waits on offsets never delivered."""

    async def commit(self, *args, **kwargs) -> bool:
        await self._check_head_gaps()
        await self._redeliver_skipped()
        return await super().commit(*args, **kwargs)

    async def _redeliver_skipped(self) -> None:
        """Read a partition again from a record that was acknowledged without being processed
        (Faust drops later copies below its read position, so it would never come back)."""
        if not self.app.flow_control.is_active():
            return  # a rebalance is under way: it revokes the partitions and rewinds them anyway
        assigned = self.assignment()
        for tp, offset in self.in_flight.capped().items():
            if tp in assigned:
                log.info("reading %s again from offset %s: a record there was skipped, not processed", tp, offset)
                await self.seek(tp, offset)
                self.in_flight.redeliver_from(tp, offset)

    async def _check_head_gaps(self) -> None:
        """A partition whose first delivered record lies past its committed offset commits no
        further until the broker shows that the offsets between are gone (retention)."""
        waiting = self.in_flight.head_gaps(dict(self._committed_offset))
        if not waiting:
            return
        try:
            starts = await self.earliest_offsets(*waiting)
        except Exception as exc:  # noqa: BLE001 - asked again at the next commit
            log.debug("log start offsets not read: %s", exc)
            return
        for tp in waiting:
            self.in_flight.set_log_start(tp, starts.get(tp))
            if tp not in self._reported_gaps and self.in_flight.head_gap(tp, self._committed_offset.get(tp)):
                self._reported_gaps.add(tp)
                log.warning(
                    "records of %s from offset %s were not delivered after the assignment; "
                    "commits of this partition wait until it is assigned again",
                    tp,
                    self._committed_offset.get(tp),
                )

    async def on_partitions_revoked(self, revoked) -> None:
        self.in_flight.forget(revoked)  # their queued records are dropped; the next owner re-reads them
        self._reported_gaps.difference_update(revoked)
        await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned, generation_id: int = 0) -> None:
        self.in_flight.forget(assigned)
        await super().on_partitions_assigned(assigned, generation_id)


class Transport(driver.Transport):
    Consumer = Consumer


drivers.TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
