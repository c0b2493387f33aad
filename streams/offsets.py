"""Which offset of a partition a worker may commit: below the oldest record still in flight.

Faust derives the commit point from the acknowledged offsets, filling "gaps" between
fetched offsets as if acknowledged, and counting a record skipped during a rebalance as
acknowledged. Under a restart with a backlog (records fetched before the seek to the
committed offset, then the read position reset) that commits past records no agent has
finished, so a kill -9 loses them; and a record dropped from a cleared queue whose offset
the read position has passed is never acknowledged, so the commit stops for good while
the worker keeps running. `InFlight` replaces that rule with one that cannot do either:

- every record handed to the agents is *in flight* until its last stream acknowledges it;
- the commit point is the oldest offset in flight, else one past the newest delivered;
- a record acknowledged without being processed (flow stopped for a rebalance, or an
  older consumer generation) caps the commit point at its offset, and the partition is
  read again from there (or revoked, when a rebalance follows);
- if the first record delivered after an assignment lies past the committed offset, the
  records between were not delivered: the commit point stays at the committed offset until
  the broker confirms that those offsets no longer exist (retention removed them).

Offsets never delivered in the middle of a partition (compaction, transaction markers)
do not hold the commit back: the broker returned the records around them in one stream.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Hashable

_AWAITED = object()  # the generation of a record read again but not delivered yet: matches none


@dataclass
class PartitionFlight:
    in_flight: dict[int, object] = field(default_factory=dict)  # offset → generation it was delivered in
    first: int | None = None  # lowest offset delivered since the assignment
    newest: int | None = None  # highest offset delivered since the assignment
    cap: int | None = None  # commit no further than this (an unprocessed record)
    log_start: int | None = None  # the broker's first offset, once asked about a head gap


class InFlight:
    """Per partition: the records handed to streams and not yet acknowledged."""

    def __init__(self) -> None:
        self._parts: dict[Hashable, PartitionFlight] = defaultdict(PartitionFlight)

    def delivered(self, tp: Hashable, offset: int, generation: int | None) -> None:
        part = self._parts[tp]
        part.first = offset if part.first is None else min(part.first, offset)
        part.newest = offset if part.newest is None else max(part.newest, offset)
        part.in_flight[offset] = generation

    def acknowledged(self, tp: Hashable, offset: int, generation: int | None, processed: bool) -> None:
        part = self._parts.get(tp)
        if part is None or offset not in part.in_flight or part.in_flight[offset] != generation:
            return  # delivered before the partition was last revoked: forgotten with it
        del part.in_flight[offset]
        if not processed:
            part.cap = offset if part.cap is None else min(part.cap, offset)

    def commit_point(self, tp: Hashable, committed: int | None) -> int | None:
        """The offset to commit (the next one to read), or None if it would not move forward."""
        part = self._parts.get(tp)
        if part is None or part.newest is None:
            return None
        point = min(part.in_flight) if part.in_flight else part.newest + 1
        if part.cap is not None:
            point = min(point, part.cap)
        if self._head_gap(part, committed):
            return None
        if committed is not None and point <= committed:
            return None
        return point

    @staticmethod
    def _head_gap(part: PartitionFlight, committed: int | None) -> bool:
        """Records from the committed offset up to the first delivered one were not delivered,
        and the broker has not confirmed that they are gone."""
        if committed is None or part.first is None or part.first <= committed:
            return False
        return part.log_start is None or part.log_start < part.first

    def head_gap(self, tp: Hashable, committed: int | None) -> bool:
        part = self._parts.get(tp)
        return part is not None and self._head_gap(part, committed)

    def head_gaps(self, committed: dict) -> list:
        """Partitions whose commit waits on a head gap the broker has not been asked about."""
        return [
            tp for tp, part in self._parts.items() if part.log_start is None and self._head_gap(part, committed.get(tp))
        ]

    def set_log_start(self, tp: Hashable, offset: int | None) -> None:
        part = self._parts.get(tp)
        if part is not None and offset is not None:
            part.log_start = offset

    def capped(self) -> dict[Hashable, int]:
        """Partitions holding a record that was acknowledged without being processed."""
        return {tp: part.cap for tp, part in self._parts.items() if part.cap is not None}

    def redeliver_from(self, tp: Hashable, offset: int) -> None:
        """The partition is read again from `offset`: the cap is lifted, the records come back."""
        part = self._parts.get(tp)
        if part is not None and part.cap == offset:
            part.cap = None
            part.in_flight.setdefault(offset, _AWAITED)  # holds the commit until it is delivered again

    def partitions(self) -> list:
        return list(self._parts)

    def forget(self, tps) -> None:
        for tp in tps:
            self._parts.pop(tp, None)

    def oldest_in_flight(self, tp: Hashable) -> int | None:
        part = self._parts.get(tp)
        return min(part.in_flight) if part is not None and part.in_flight else None

    def count(self) -> int:
        return sum(len(part.in_flight) for part in self._parts.values())
