"""Whether this worker is doing its work, as /healthz and the metrics report it.

Ready means: the model and the store are loaded, the worker holds partitions of its input
topics, table recovery is over, and — when input waits (consumer lag above zero) — the
committed offsets moved within FINSENTRY_HEALTH_STALL_S. A worker that answers HTTP while
it processes nothing is the failure a monitor must never hide: the risk team would see a
quiet market. The lag collector calls `observe()` on every tick.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

from finsentry import metrics


@dataclass
class Liveness:
    stall_after_s: float
    clock: Callable[[], float] = time.monotonic
    started: bool = False  # model loaded, store open
    partitions: int = 0
    recovering: bool = True
    lag: int = 0
    _positions: dict = field(default_factory=dict)
    _waiting_since: float | None = None  # input waiting and no committed offset moved since

    def observe(self, partitions: int, recovering: bool, lag: int, committed: Mapping) -> None:
        """One look at the consumer: partitions held, recovery, lag, committed positions."""
        now = self.clock()
        moved = any(self._positions.get(tp) != offset for tp, offset in committed.items())
        self._positions = dict(committed)
        self.partitions, self.recovering, self.lag = partitions, recovering, lag
        if lag <= 0 or moved:
            self._waiting_since = None if lag <= 0 else now
        elif self._waiting_since is None:
            self._waiting_since = now
        metrics.STALLED_SECONDS.set(self.stalled_s())
        metrics.WORKER_READY.set(1 if self.ready() else 0)

    def stalled_s(self) -> float:
        """How long input has waited with no committed offset moving (0: none waits, or it moves)."""
        return 0.0 if self._waiting_since is None else self.clock() - self._waiting_since

    def reasons(self) -> list[str]:
        why = []
        if not self.started:
            why.append("starting: model or store not loaded yet")
        if self.partitions == 0:
            why.append("holds no partitions of the input topics")
        if self.recovering:
            why.append("recovering table state from its changelog")
        stalled = self.stalled_s()
        if stalled >= self.stall_after_s:
            why.append(f"{self.lag} records wait and no offset was committed for {stalled:.0f}s")
        return why

    def ready(self) -> bool:
        return not self.reasons()

    def report(self) -> dict:
        reasons = self.reasons()
        return {
            "status": "ok" if not reasons else "not ready",
            "ready": not reasons,
            "reasons": reasons,
            "partitions": self.partitions,
            "lag": self.lag,
            "stalled_s": round(self.stalled_s(), 1),
        }
