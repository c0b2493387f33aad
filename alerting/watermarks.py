"""Event time across input partitions: the detector's clock.

Observations of one scope come from every partition of the scored topic, and those
partitions are consumed unevenly whenever the worker is behind (a backfill, the backlog
after a restart or a store outage). So the clock of a scope is not the newest event time
it has seen but the *low watermark* of the partitions that feed it:

- the observe agent, which sees the source partitions, tracks per source partition the
  newest event time it delivered (its watermark) and whether the partition is *idle*:
  nothing arrived for `alert_idle_partition_s` and nothing waits for it upstream (raw,
  valid and scored offsets all caught up). After each batch, and on a timer, it sends a
  `Watermark` to every observations partition — after that batch's observations, so in
  each observations partition an observation always precedes the watermark that covers it.
- per observations partition the detector keeps a `PartitionClock` (in the same
  changelog-backed table as the scopes, key ``clock:<partition>``): each source's watermark
  and idle flag, and the low watermark reached. The low watermark is the minimum over the
  sources that are not idle; a source announced but not yet delivered anything holds it;
  when every source is idle it is the newest of them. It never goes back.
- a scope holds observations newer than its partition's low watermark as pending (in
  chunks of their own in the table, key ``pending:<scope>#<n>``, so the scope's record
  stays small) and takes them in event-time order as the low watermark passes them; buckets close only once the
  clock is `alert_lateness_s` past their end. What is still late is counted per scope.

Offline (`finsentry alerts replay`, the detector's own tests) there is one source, the
records themselves: each observation moves that source's watermark. A partition that
never heard of a real source is clocked that way too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

CLOCK_PREFIX = "clock:"
PENDING_PREFIX = "pending:"  # a chunk of a scope's pending observations
SELF_SOURCE = "self"  # the records' own event time: offline replay, tests, a partition no source announced


def clock_key(partition: int) -> str:
    return f"{CLOCK_PREFIX}{partition}"


def is_clock_key(key: str) -> bool:
    return key.startswith(CLOCK_PREFIX)


def pending_key(scope_key: str, number: int) -> str:
    return f"{PENDING_PREFIX}{scope_key}#{number:012d}"


def is_scope_key(key: str) -> bool:
    """A scope's own state, not a partition clock or a chunk of pending observations."""
    return not key.startswith((CLOCK_PREFIX, PENDING_PREFIX))


@dataclass
class PartitionClock:
    """The source watermarks one observations partition has heard of, and its low watermark."""

    sources: dict[str, dict] = field(default_factory=dict)  # source → {"wm": float | None, "idle": bool}
    low: float | None = None

    @property
    def self_clocked(self) -> bool:
        return not self.sources or set(self.sources) == {SELF_SOURCE}

    def dump(self) -> dict:
        return {"sources": {k: dict(v) for k, v in sorted(self.sources.items())}, "low": self.low}

    @classmethod
    def load(cls, raw: dict | None) -> "PartitionClock":
        if not raw:
            return cls()
        return cls(sources={k: dict(v) for k, v in raw["sources"].items()}, low=raw["low"])

    def update(self, source: str, watermark: float | None, idle: bool) -> bool:
        """One source's report; True when the low watermark moved on."""
        if source != SELF_SOURCE:
            self.sources.pop(SELF_SOURCE, None)  # real sources from now on
        old = self.sources.get(source, {"wm": None})
        wm = old["wm"] if watermark is None else watermark if old["wm"] is None else max(old["wm"], watermark)
        self.sources[source] = {"wm": wm, "idle": bool(idle)}
        return self._recompute()

    def _recompute(self) -> bool:
        active = [v for v in self.sources.values() if not v["idle"]]
        if any(v["wm"] is None for v in active):
            candidate = None  # a source with work waiting has not said how far it is
        elif active:
            candidate = min(v["wm"] for v in active)
        else:
            candidate = max((v["wm"] for v in self.sources.values() if v["wm"] is not None), default=None)
        if candidate is not None and (self.low is None or candidate > self.low):
            self.low = candidate
            return True
        return False

    def skew(self) -> float:
        """Event-time spread between the active sources (seconds)."""
        wms = [v["wm"] for v in self.sources.values() if not v["idle"] and v["wm"] is not None]
        return max(wms) - min(wms) if len(wms) > 1 else 0.0


@dataclass
class SourcePartition:
    watermark: float | None = None
    last_record: float = 0.0  # processing time of the newest record
    announced: bool = False


class SourceTracker:
    """The observe agent's view of its source partitions: watermark and idleness of each."""

    def __init__(self, idle_after_s: float, clock=time.monotonic):
        self.idle_after_s = idle_after_s
        self.clock = clock
        self.partitions: dict[int, SourcePartition] = {}

    def assign(self, partitions) -> None:
        now = self.clock()
        for p in partitions:
            self.partitions.setdefault(p, SourcePartition(last_record=now))
        for p in set(self.partitions) - set(partitions):
            del self.partitions[p]

    def saw(self, partition: int, event_time: float) -> None:
        src = self.partitions.setdefault(partition, SourcePartition())
        src.watermark = event_time if src.watermark is None else max(src.watermark, event_time)
        src.last_record = self.clock()

    def idle(self, partition: int, backlog: bool) -> bool:
        src = self.partitions[partition]
        return not backlog and self.clock() - src.last_record >= self.idle_after_s

    def reports(self, backlog: set[int]) -> list[tuple[str, float | None, bool]]:
        """(source, watermark, idle) for every partition held."""
        return [
            (source_name(p), src.watermark, self.idle(p, p in backlog)) for p, src in sorted(self.partitions.items())
        ]


def source_name(partition: int) -> str:
    return f"scored:{partition}"
