"""Flow control in event time: input partitions that run ahead wait for the others.

When a worker is behind (a backfill, the backlog after a restart or a store outage) the
consumer reads its partitions unevenly. The detector's clock waits for the slowest
partition (alerting/watermarks.py), so nothing is lost, but whatever the fast partitions
delivered meanwhile waits in the detector's state. So the score agent, the pipeline's
bottleneck, pauses a partition of docs.valid that is more than `flow_max_skew_s` of event
time ahead of the slowest partition that still has work waiting, and resumes it once that
one has caught up.

The bound: a pause is lifted after `flow_max_pause_s` if the partition waited for made no
progress meanwhile (a stuck partition must not stall the rest); the lifted partition is
not paused again until the slow one moves.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

log = logging.getLogger("finsentry.flow")


@dataclass
class Pause:
    since: float  # processing time
    floor: float  # the slowest waiting partition's event time when the pause began


class FlowControl:
    def __init__(self, max_skew_s: float, max_pause_s: float, clock=time.monotonic):
        self.max_skew_s = max_skew_s
        self.max_pause_s = max_pause_s
        self.clock = clock
        self.frontier: dict[int, float] = {}  # newest event time read, per partition
        self.paused: dict[int, Pause] = {}
        self.exempt: dict[int, float] = {}  # partition → floor its last pause expired at

    def saw(self, partition: int, event_time: float) -> None:
        old = self.frontier.get(partition)
        self.frontier[partition] = event_time if old is None else max(old, event_time)

    def forget(self, partitions) -> None:
        """Partitions no longer assigned."""
        for p in list(self.frontier):
            if p not in partitions:
                self.frontier.pop(p, None)
                self.paused.pop(p, None)
                self.exempt.pop(p, None)

    def skew(self) -> float:
        return max(self.frontier.values()) - min(self.frontier.values()) if len(self.frontier) > 1 else 0.0

    def decide(self, waiting: set[int]) -> tuple[set[int], set[int]]:
        """(partitions to pause, partitions to resume), given the partitions with work waiting."""
        if not waiting:
            return set(), set(self.paused)
        # A partition with work that has not been read at all is behind every other.
        floor = min(self.frontier.get(p, float("-inf")) for p in waiting)
        now = self.clock()
        pause, resume = set(), set()
        for p, t in self.frontier.items():
            ahead = p in waiting and t > floor + self.max_skew_s
            if p in self.exempt and floor > self.exempt[p]:
                del self.exempt[p]  # the slow partition moved: the bound starts again
            if p in self.paused:
                held = self.paused[p]
                if not ahead:
                    resume.add(p)
                elif floor <= held.floor and now - held.since >= self.max_pause_s:
                    log.warning(
                        "flow control: partition %d paused %.0fs without the slowest partition moving; resumed",
                        p,
                        now - held.since,
                    )
                    self.exempt[p] = floor
                    resume.add(p)
                elif floor > held.floor:
                    self.paused[p] = Pause(since=now, floor=floor)  # progress: the bound restarts
            elif ahead and p not in self.exempt:
                pause.add(p)
                self.paused[p] = Pause(since=now, floor=floor)
        for p in resume:
            self.paused.pop(p, None)
        return pause, resume
