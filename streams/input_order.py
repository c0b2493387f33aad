"""Scored records leave in the order their inputs were read, per input partition.

The score agent runs several actors over one queue (streams/agents/score.py), so a
partition's records are spread over several batches in flight at once, and a batch that
finishes first would be delivered first. On docs.scored a partition's records would then
be out of event-time order, and the observe agent, which takes a partition's newest event
time as how far that partition has got (alerting/watermarks.py), would move the
detector's clock past records still to come. Within a day of news that is seconds and the
lateness bound absorbs it; across a gap in the data (a backfill of several days, a
weekend) the clock jumps the whole gap and the record still to come is counted late.

So every record is noted as it is read from the queue (in that order), and an actor hands
a scored record to the producer only once every earlier record of its partition has been
handed over (or dead-lettered). Waiting only on earlier records, the earliest one never
waits, so the actors cannot block each other for good. A record that is not handed over
within `MAX_WAIT_S` (its actor failed, or it was dropped in a rebalance) is given up on:
the records behind it go on, with a warning and a metric.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Hashable

from finsentry import metrics

log = logging.getLogger("finsentry.score")

MAX_WAIT_S = 120.0  # far beyond a batch's inference on a loaded machine


@dataclass(eq=False)
class _Entry:
    line: Hashable
    done: asyncio.Event = field(default_factory=asyncio.Event)


class InputOrder:
    def __init__(self, max_wait_s: float = MAX_WAIT_S):
        self.max_wait_s = max_wait_s
        self._lines: dict[Hashable, deque[_Entry]] = {}
        self._entries: dict[object, _Entry] = {}  # message (compared by identity) → its place in its line

    def read(self, message) -> None:
        """`message` was taken from the queue: it comes after every message of its partition read before."""
        if message in self._entries:
            return  # a second stream over the same channel (Faust's test harness gives each actor every event)
        entry = _Entry(message.tp)
        self._lines.setdefault(message.tp, deque()).append(entry)
        self._entries[message] = entry

    async def turn(self, message) -> None:
        """Wait until every message of the partition read before `message` was handed over."""
        entry = self._entries.get(message)
        if entry is None:
            return  # not noted (read before this worker kept order, or given up on): nothing to wait for
        line = self._lines[entry.line]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while line and line[0] is not entry:
            try:
                await asyncio.wait_for(line[0].done.wait(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                self._give_up_before(entry)
                return

    def handed_over(self, message) -> None:
        """`message` was handed to the producer (or dead-lettered, or needs no output)."""
        entry = self._entries.pop(message, None)
        if entry is None:
            return
        entry.done.set()
        line = self._lines[entry.line]
        while line and line[0].done.is_set():
            line.popleft()
        if not line:
            del self._lines[entry.line]

    def waiting(self) -> int:
        return len(self._entries)

    def _give_up_before(self, entry: _Entry) -> None:
        line = self._lines[entry.line]
        stuck = 0
        while line and line[0] is not entry:
            head = line.popleft()
            if not head.done.is_set():
                stuck += 1
                head.done.set()  # whoever still waits on it goes on
                for key in [k for k, e in self._entries.items() if e is head]:
                    del self._entries[key]
        log.warning(
            "scored records of %s: %d earlier record(s) not handed over within %.0fs; the later ones "
            "go on out of order",
            entry.line,
            stuck,
            self.max_wait_s,
        )
        metrics.OUT_OF_ORDER_DELIVERIES.labels(topic=getattr(entry.line, "topic", str(entry.line))).inc()
