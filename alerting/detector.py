"""The spike detector: observations in, alert updates out, state in a mapping.

Per scope ("topic:Energy / Oil", "entity:AAPL", "global:all") the detector keeps, as a
JSON-serialisable dict in `state` (a changelog-backed Faust table in the worker, a dict
in replay):

- event-time buckets (from `published_at`). The clock of a scope is the low watermark of
  the source partitions that feed its observations partition (watermarks.py): newer
  observations wait as pending and are taken in event-time order as the low watermark
  passes them, so partitions consumed unevenly give the same result as the sorted
  records. A bucket is *closed* once the clock is `lateness_s` past its end; then it is
  folded into the baseline, and a record that still arrives for it is counted as late (per
  scope, in the alert too) and not counted. Only event time moves the clock, so a replay of
  the same records gives the same alerts; `tick(now)` moves the clock of given scopes.
- the windows: the latest `window_buckets` buckets (the newest still filling) and the
  longer windows of `longer_windows` (counts of closed buckets kept in `history`, their
  most negative stories in `recent`). On every observation each window's negative count
  is tested against the baseline (`scales`: exact small-count tails of the share and of
  the rate, floors on distinct stories and on the share increase), so a busy topic's
  spike is seen within the bucket it starts in and a quiet company's burst over the hour.
- the baseline (EWMA of share and volume, robust, with learned overdispersion) and a
  CUSUM for slow drifts, both updated as buckets close.
- the episode: opened when the window test (or the CUSUM) fires; updated at each bucket
  boundary while the window stays elevated (severity only goes up), resolved when it is
  not. A renewed spike within the cooldown re-opens the same episode: one alert id per
  episode, many updates.

After every change the detector assigns `state[key] = new_dict` (a Faust table records a
change only on assignment) and never mutates the dict it read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable, MutableMapping

from finsentry import metrics
from finsentry.alerting import scales
from finsentry.alerting.buckets import Bucket, Window, bucket_index, most_negative, window
from finsentry.alerting.config import DetectorConfig, Thresholds
from finsentry.alerting.observations import Message, Observation, ObservationGroup, Tick, Watermark, state_key
from finsentry.alerting.stats import Baseline, Cusum, ewma_alpha, z_score
from finsentry.alerting.watermarks import SELF_SOURCE, PartitionClock, clock_key, is_scope_key, pending_key
from finsentry.records import Alert, Evidence

__all__ = ["Detector", "DetectorConfig", "Thresholds"]

log = logging.getLogger("finsentry.alerting")

# 2: the clock's fields (partition, chunks of pending observations, late), the longer
# windows (history, recent) and the share's own memory in the baseline
# 3: each bucket marks the documents it counted (re-delivery counts once)
# 4: each closed bucket in `history` says whether a surge's episode covers it
# v1, v2 and v3 are migrated.
STATE_VERSION = 4


def _time(obs: Observation) -> float:
    return obs.published_at.timestamp()


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=timezone.utc)


@dataclass
class Episode:
    id: str
    start: float  # epoch seconds, bucket-aligned
    method: str  # "z" | "cusum"
    severity: str  # "warning" | "critical"
    status: str = "firing"
    update: int = 0
    ended: float | None = None
    updated: float = 0.0
    peak: dict = field(default_factory=dict)  # the window (or CUSUM run) the alert reports
    evidence: list[dict] = field(default_factory=list)

    @property
    def firing(self) -> bool:
        return self.status == "firing"


@dataclass
class ScopeState:
    scope: str
    key: str
    watermark: float | None = None  # the scope's clock: event time it has been moved to
    next_close: int | None = None  # first bucket not yet closed
    partition: int = 0  # the observations partition whose clock moves this scope
    pending: list[Observation] = field(default_factory=list)  # newer than the clock, arrived in this call
    chunks: dict[str, float] = field(default_factory=dict)  # stored pending observations: key → earliest time
    next_chunk: int = 0
    late: int = 0  # records that came after their bucket closed: counted here, not in buckets
    buckets: dict[int, Bucket] = field(default_factory=dict)
    baseline: Baseline = field(default_factory=Baseline)
    cusum: Cusum = field(default_factory=Cusum)
    episode: Episode | None = None
    model_version: str | None = None
    history: dict[int, list[int]] = field(default_factory=dict)  # closed buckets: [n, neg, dups, in episode]
    recent: list[dict] = field(default_factory=list)  # most negative stories of closed buckets
    reference: Baseline = field(default_factory=Baseline)  # the baseline before the longest window
    reference_next: int | None = None  # first closed bucket not yet folded into `reference`
    reported_until: int | None = None  # bucket where the last episode ended: windows start after it

    def dump(self) -> dict:
        return {
            "v": STATE_VERSION,
            "scope": self.scope,
            "key": self.key,
            "watermark": self.watermark,
            "next_close": self.next_close,
            "buckets": {str(i): b.dump() for i, b in sorted(self.buckets.items())},
            "baseline": self.baseline.dump(),
            "cusum": self.cusum.dump(),
            "episode": None if self.episode is None else dict(self.episode.__dict__),
            "model_version": self.model_version,
            "partition": self.partition,
            "late": self.late,
            "chunks": dict(self.chunks),
            "next_chunk": self.next_chunk,
            # Read by the clock without loading the whole state:
            "due": min([*self.chunks.values(), *(o.published_at.timestamp() for o in self.pending)], default=None),
            "settled": self.settled,
            "history": {str(i): list(c) for i, c in sorted(self.history.items())},
            "recent": list(self.recent),
            "reference": self.reference.dump(),
            "reference_next": self.reference_next,
            "reported_until": self.reported_until,
        }

    @property
    def settled(self) -> bool:
        """No firing episode and every bucket with data closed: moving the clock of such a
        scope in one jump gives the same state as bucket by bucket, so it may wait."""
        if self.episode is not None and self.episode.firing:
            return False
        return self.next_close is None or not any(
            i >= self.next_close and (b.n or b.dups) for i, b in self.buckets.items()
        )

    @classmethod
    def load(cls, raw: dict | None, scope: str, key: str) -> "ScopeState":
        """A fresh object from the stored dict: the dict itself is never mutated."""
        if not raw:
            return cls(scope=scope, key=key)
        if raw.get("v") == 1:  # written before the clock fields and the longer windows
            raw = _from_version_1(raw)
        if raw.get("v") == 2:  # written before the buckets marked what they counted
            raw = _from_version_2(raw)
        if raw.get("v") == 3:  # written before episodes were kept out of the reference
            raw = _from_version_3(raw)
        if raw.get("v") != STATE_VERSION:
            raise ValueError(f"detector state of {scope}:{key} has version {raw.get('v')!r}, expected {STATE_VERSION}")
        episode = raw.get("episode")
        return cls(
            scope=raw["scope"],
            key=raw["key"],
            watermark=raw["watermark"],
            next_close=raw["next_close"],
            buckets={int(i): Bucket.load(b) for i, b in raw["buckets"].items()},
            baseline=Baseline.load(raw["baseline"]),
            cusum=Cusum.load(raw["cusum"]),
            episode=None
            if episode is None
            else Episode(**{**episode, "peak": dict(episode["peak"]), "evidence": list(episode["evidence"])}),
            model_version=raw.get("model_version"),
            partition=raw.get("partition", 0),
            chunks=dict(raw.get("chunks", {})),
            next_chunk=raw.get("next_chunk", 0),
            late=raw.get("late", 0),
            history={int(i): list(c) for i, c in raw["history"].items()},
            recent=list(raw["recent"]),
            reference=Baseline.load(raw["reference"]),
            reference_next=raw["reference_next"],
            reported_until=raw["reported_until"],
        )


def _from_version_1(raw: dict) -> dict:
    """State written before the longer windows: they start empty, the share starts from
    the sums the baseline had."""
    base = dict(raw["baseline"])
    base.setdefault("share_stories", base["stories"])
    base.setdefault("share_negatives", base["negatives"])
    return {
        **raw,
        "v": 2,
        "baseline": base,
        "history": {},
        "recent": [],
        "reference": dict(base),
        "reference_next": raw["next_close"],
        "reported_until": None,
    }


def _from_version_2(raw: dict) -> dict:
    """State written before the buckets marked their documents: what they counted is not
    known, so a document delivered again into one of them may still count twice."""
    return {**raw, "v": 3, "buckets": {i: [*b[:4], []] for i, b in raw["buckets"].items()}}


def _from_version_3(raw: dict) -> dict:
    """State written before closed buckets said whether an episode covers them: those
    still waiting for the reference are taken as ordinary ones (as version 2 folded them)."""
    return {**raw, "v": 4, "history": {i: [*counts[:3], 0] for i, counts in raw["history"].items()}}


class _Batch:
    """Scope states and partition clocks read during one call: each is stored once."""

    def __init__(self) -> None:
        self.scopes: dict[str, ScopeState] = {}
        self.changed: set[str] = set()
        self.clocks: dict[int, PartitionClock] = {}
        self.clocks_read: dict[int, dict] = {}
        self.alerts: list[Alert] = []
        self.chunks: dict[str, list[Observation] | None] = {}  # pending chunks read or written (None: taken)


class Detector:
    def __init__(self, config: DetectorConfig, state: MutableMapping[str, dict], record_metrics: bool = True):
        self.config = config
        self.state = state
        self.record_metrics = record_metrics
        self._alpha = ewma_alpha(config.halflife_buckets)
        self._long_alpha = ewma_alpha(config.drift_halflife_buckets)
        self._known: set[str] = set()  # scopes this instance has touched: what tick() moves
        self._pending: dict[int, set[str]] = {}  # per partition, scopes known to hold pending observations
        self._watched = set(config.watched_entities)
        self.max_event_time: float | None = None

    # --- entry points ----------------------------------------------------------------------
    def observe(self, obs: Observation) -> list[Alert]:
        return self.observe_many([obs])

    def observe_many(self, observations: Iterable[Observation], partition: int = 0) -> list[Alert]:
        """Observations in arrival order, all of one observations partition. Each scope's
        state is loaded and stored once per call, so a batch costs one table write (one
        changelog record) per scope instead of one per document."""
        return self.apply(observations, lambda key: partition)

    def apply(self, messages: Iterable[Message], partition_of=None) -> list[Alert]:
        """A batch of observations-topic messages, in order. `partition_of(state_key)` names
        the observations partition a scope's messages came from (0 offline); a `Watermark`
        names its own. A partition that never heard of a source partition is clocked by the
        observations themselves, as offline."""
        part = partition_of or (lambda key: 0)
        b = _Batch()
        for message in messages:
            if isinstance(message, Watermark):
                self._on_watermark(b, message.partition, message.source, message.watermark, message.idle)
            elif isinstance(message, Tick):
                self._tick_scope(b, message.key, message.tick)
            else:
                for obs in message.observations if isinstance(message, ObservationGroup) else [message]:
                    self._receive(b, obs, part(obs.state_key))
        self._store(b)
        return b.alerts

    def tick(self, now: datetime | float, keys: Iterable[str] | None = None) -> list[Alert]:
        """Move the clock of the given scopes (by default those this instance has observed)
        to `now`, event time: pending observations up to it are taken, buckets close,
        episodes end."""
        t = now.timestamp() if isinstance(now, datetime) else float(now)
        b = _Batch()
        for key in sorted(self._known if keys is None else keys):
            self._tick_scope(b, key, t)
        self._store(b)
        return b.alerts

    # --- event time across partitions (watermarks.py) --------------------------------------
    def _scope(self, b: _Batch, key: str, scope: str | None = None, name: str | None = None) -> ScopeState | None:
        if key not in b.scopes:
            raw = self.state.get(key)
            if raw is None and scope is None:
                return None
            b.scopes[key] = ScopeState.load(raw, scope or raw["scope"], name or raw["key"])
            self._known.add(key)
        return b.scopes[key]

    def _clock(self, b: _Batch, partition: int) -> PartitionClock:
        if partition not in b.clocks:
            raw = self.state.get(clock_key(partition))
            b.clocks_read[partition] = raw
            b.clocks[partition] = PartitionClock.load(raw)
        return b.clocks[partition]

    def _receive(self, b: _Batch, obs: Observation, partition: int) -> None:
        key = obs.state_key
        s = self._scope(b, key, obs.scope, obs.key)
        s.partition = partition
        s.pending.append(obs)
        b.changed.add(key)
        clock = self._clock(b, partition)
        if clock.self_clocked:
            old = clock.low
            if clock.update(SELF_SOURCE, obs.published_at.timestamp(), idle=False):
                self._clock_moved(b, partition, old, clock.low)
        if clock.low is not None:
            b.alerts += self._catch_up(b, s, clock.low)

    def _on_watermark(self, b: _Batch, partition: int, source: str, watermark: float | None, idle: bool) -> None:
        clock = self._clock(b, partition)
        old = clock.low
        moved = clock.update(source, watermark, idle)
        if self.record_metrics:
            metrics.WATERMARK_SKEW.labels(partition=str(partition)).set(clock.skew())
        if moved:
            self._clock_moved(b, partition, old, clock.low)

    def _tick_scope(self, b: _Batch, key: str, t: float) -> None:
        s = self._scope(b, key)
        if s is None or s.watermark is None:
            return
        b.alerts += self._catch_up(b, s, t)

    def _clock_moved(self, b: _Batch, partition: int, old: float | None, low: float) -> None:
        """The low watermark of `partition` moved to `low`: scopes whose pending
        observations it passed take them; at a bucket boundary, every scope that is not
        settled moves on (settled ones catch up in one jump when they next hear something)."""
        width = self.config.bucket_s
        keys = set(self._pending.get(partition, ())) | {
            k for k, s in b.scopes.items() if s.partition == partition and (s.pending or s.chunks)
        }
        if old is None or bucket_index(low, width) > bucket_index(old, width):
            for key in list(self.state):
                if key in b.scopes or not is_scope_key(key):
                    continue
                raw = self.state.get(key)
                if (
                    raw
                    and raw.get("partition", 0) == partition
                    and (raw.get("due") is not None or not raw.get("settled", False))
                ):
                    keys.add(key)
            keys |= {k for k, s in b.scopes.items() if s.partition == partition and not s.settled}
        for key in sorted(keys):
            s = self._scope(b, key)
            if s is None or s.partition != partition:
                continue
            b.alerts += self._catch_up(b, s, low)

    def _catch_up(self, b: _Batch, s: ScopeState, low: float) -> list[Alert]:
        """Take the pending observations up to `low` in event-time order, moving the clock
        bucket boundary by bucket boundary in between, then move it to `low`'s bucket."""
        width = self.config.bucket_s
        alerts: list[Alert] = []
        before = s.watermark
        due = []
        for key in sorted(k for k, earliest in s.chunks.items() if earliest <= low):  # in the order they came
            stored = self._chunk(b, key)
            due += [o for o in stored if _time(o) <= low]
            rest = [o for o in stored if _time(o) > low]
            b.chunks[key] = rest or None
            if rest:
                s.chunks[key] = min(_time(o) for o in rest)
            else:
                del s.chunks[key]
        due += [o for o in s.pending if _time(o) <= low]
        s.pending = [o for o in s.pending if _time(o) > low]
        for obs in sorted(due, key=_time):
            stepped = self._step_to(s, bucket_index(_time(obs), width))
            alerts += stepped + self._apply(s, obs, emitted=bool(stepped))
        alerts += self._step_to(s, bucket_index(low, width))
        if due or s.watermark != before:
            b.changed.add(state_key(s.scope, s.key))
        return alerts

    def _chunk(self, b: _Batch, key: str) -> list[Observation]:
        if key in b.chunks:
            return b.chunks[key] or []
        raw = self.state.get(key)
        return [Observation.model_validate(o) for o in raw["obs"]] if raw else []

    def _step_to(self, s: ScopeState, head: int) -> list[Alert]:
        """Move the clock into bucket `head`, one boundary at a time, so that where the
        boundaries fall does not depend on how the watermarks arrived."""
        width = self.config.bucket_s
        alerts: list[Alert] = []
        while s.watermark is not None and bucket_index(s.watermark, width) < head:
            if s.settled:
                alerts += self._advance(s, head * float(width))
                break
            alerts += self._advance(s, (bucket_index(s.watermark, width) + 1) * float(width))
        return alerts

    def _store(self, b: _Batch) -> None:
        """Pending observations go to a chunk of their own (one table record for what a
        scope received in this call), so the scope's own record stays small however many wait.

        The order of the writes is what a worker killed half way through leaves right: new
        chunks before the scopes that name them (else a restart would miss them), chunks
        taken or cut down only after the scopes that took them (else their observations
        would be gone unapplied; applied twice instead, the buckets' marks skip them)."""
        partitions: dict[str, int] = {}
        fresh: list[str] = []
        for key in b.changed:
            s = b.scopes[key]
            if s.pending:
                chunk = pending_key(key, s.next_chunk)
                s.next_chunk += 1
                b.chunks[chunk] = s.pending
                s.chunks[chunk] = min(_time(o) for o in s.pending)
                s.pending = []
                fresh.append(chunk)
            for chunk in s.chunks:
                partitions[chunk] = s.partition
        for chunk in fresh:
            self._store_chunk(chunk, partitions[chunk], b.chunks[chunk])
        for key in b.changed:
            s = b.scopes[key]
            self.state[key] = s.dump()
            holders = self._pending.setdefault(s.partition, set())
            if s.chunks:
                holders.add(key)
            else:
                holders.discard(key)
        for partition, clock in b.clocks.items():
            dumped = clock.dump()
            if dumped != b.clocks_read.get(partition):
                self.state[clock_key(partition)] = dumped
        for chunk, observations in b.chunks.items():
            if observations is None:
                # `in` holds for every key of a table with a default: ask for the record itself.
                # A chunk a scope names may be gone after a kill between one batch's records.
                if self.state.get(chunk) is not None:
                    del self.state[chunk]
            elif chunk in partitions and chunk not in fresh:
                self._store_chunk(chunk, partitions[chunk], observations)

    def _store_chunk(self, chunk: str, partition: int, observations: list[Observation]) -> None:
        self.state[chunk] = {
            "partition": partition,
            "obs": [o.model_dump(mode="json", exclude_none=True) for o in observations],
        }

    def _apply(self, s: ScopeState, obs: Observation, emitted: bool = False) -> list[Alert]:
        """One observation, due by the clock, into its scope's state."""
        t = obs.published_at.timestamp()
        self.max_event_time = t if self.max_event_time is None else max(self.max_event_time, t)
        index = bucket_index(t, self.config.bucket_s)
        if index in s.buckets and s.buckets[index].holds(obs):
            self._redelivered(s, obs)
            return []
        if s.next_close is not None and index < s.next_close:
            s.late += 1
            if self.record_metrics:
                metrics.LATE_RECORDS.labels(scope=s.scope).inc()
            log.info(
                "late record scope=%s key=%s doc=%s published_at=%s clock=%s late_total=%d",
                s.scope,
                s.key,
                obs.doc_id,
                obs.published_at.isoformat(),
                _utc(s.watermark).isoformat(),
                s.late,
            )
            return []
        if s.next_close is None:
            s.next_close = index
        s.buckets.setdefault(index, Bucket()).add(obs, self.config.evidence_docs)  # not held: checked above
        if obs.model_version:
            s.model_version = obs.model_version
        alerts = self._advance(s, t)
        alerts += self._test_window(s, emitted=emitted or bool(alerts))
        return alerts

    def _redelivered(self, s: ScopeState, obs: Observation) -> None:
        """A document this scope counted already (its bucket is still kept): delivered again
        after a rebalance or a restart re-read records past the last commit."""
        if self.record_metrics:
            metrics.REDELIVERED_OBSERVATIONS.labels(scope=s.scope).inc()
        log.debug("observation counted already scope=%s key=%s doc=%s", s.scope, s.key, obs.doc_id)

    # --- clock -----------------------------------------------------------------------------
    def _advance(self, s: ScopeState, t: float) -> list[Alert]:
        if s.watermark is not None and t <= s.watermark:
            return []
        old_head = None if s.watermark is None else bucket_index(s.watermark, self.config.bucket_s)
        s.watermark = t
        closable = bucket_index(t - self.config.lateness_s, self.config.bucket_s)
        alerts: list[Alert] = []
        while s.next_close < closable:
            alerts += self._close(s, closable)
        head = bucket_index(t, self.config.bucket_s)
        if old_head is not None and head > old_head and not alerts:
            alerts += self._at_boundary(s)
        keep_from = min(s.next_close, head) - self.config.window_buckets + 1
        s.buckets = {i: b for i, b in s.buckets.items() if i >= keep_from}
        self._forget_old_episode(s)
        return alerts

    def _close(self, s: ScopeState, closable: int) -> list[Alert]:
        """Close bucket `s.next_close` (or, in a quiet stretch, every bucket up to `closable`)."""
        cfg, index = self.config, s.next_close
        newest_data = max((i for i, b in s.buckets.items() if b.n or b.dups), default=None)
        if newest_data is None or newest_data < index - cfg.window_buckets + 1:
            # Nothing in this bucket, its window or after it: fold the quiet stretch at once.
            s.baseline.fold_empty(closable - index, self._alpha, self._long_alpha)
            s.next_close = closable
            return []
        previous = max((i for i, b in s.buckets.items() if i <= index and (b.n or b.dups)), default=None)
        if previous is None or previous < index - cfg.window_buckets + 1:
            # A gap before the next data (a scope opened by an old record, then a current
            # one): the buckets up to it hold no data in their window either, so they fold
            # at once too — one by one, years of empty minutes would hold the loop for minutes.
            upcoming = min(i for i, b in s.buckets.items() if i > index and (b.n or b.dups))
            quiet = min(closable, upcoming) - index
            if quiet > 0:
                s.baseline.fold_empty(quiet, self._alpha, self._long_alpha)
                s.next_close = index + quiet
                return []
        bucket = s.buckets.get(index) or Bucket()
        th = cfg.thresholds(s.scope, s.key)
        base = s.baseline
        ready = base.buckets >= cfg.min_baseline_buckets
        firing = s.episode is not None and s.episode.firing
        # A surge does not become the norm (a drift, the CUSUM's, is meant to be learned). Its
        # last buckets close after it ended (the lateness bound): they are part of it too.
        ep = s.episode
        surge = ep is not None and ep.method == "z" and (firing or index * cfg.bucket_s < ep.ended)
        alerts: list[Alert] = []
        if ready and not (firing or surge):
            closed = window(s.buckets, index, cfg.window_buckets, 0)
            if closed.n >= 3:
                base.observe_dispersion(z_score(closed.neg, closed.n, base, dispersion=1.0) ** 2, self._alpha)
        if ready and th.cusum_h > 0 and not surge:  # a surge's buckets are not a drift
            s.cusum.step(
                index, bucket.n, bucket.neg, bucket.dups, base.long_share, th.cusum_k, th.cusum_h, base.dispersion
            )
            alerts += self._test_cusum(s, th, index)
        base.fold(
            bucket.n,
            bucket.neg,
            self._alpha,
            self._long_alpha,
            robust=ready,
            weight=base.episode_weight(bucket.n) if surge else 1.0,
        )
        s.recent = scales.record_closed(
            s.history, s.recent, index, bucket, cfg.longest_window, cfg.evidence_docs, in_episode=surge
        )
        s.next_close = index + 1
        # The reference follows the closed buckets, not the tests: the state is then the same
        # however often the windows were tested (one observation at a time or a batch).
        self._catch_up_reference(s)
        self._export(s, bucket)
        return alerts

    # --- tests -----------------------------------------------------------------------------
    def _test_window(self, s: ScopeState, emitted: bool) -> list[Alert]:
        cfg = self.config
        th = cfg.thresholds(s.scope, s.key)
        self._catch_up_reference(s)
        if not th.enabled or s.baseline.buckets < cfg.min_baseline_buckets:
            return []
        verdicts = self._verdicts(s, th)
        v = scales.strongest(verdicts, th)
        ep = s.episode
        hot = v.hot(th)
        if ep is not None and ep.firing:
            if v.window.neg:
                ep.evidence = most_negative([*ep.evidence, *self._evidence(s, v.window)], cfg.evidence_docs)
            # The peak stays at the time scale that opened the episode (a CUSUM run gives way).
            same = next((u for u in verdicts if u.scale == ep.peak.get("scale")), v)
            if ep.method == "cusum" and hot:
                ep.method, ep.peak = "z", self._peak(s, v)
            elif same.hot(th) and same.z > ep.peak["statistic"]:
                ep.peak = self._peak(s, same)
            if hot and v.z >= th.z_critical and ep.severity == "warning" and not emitted:
                ep.severity = "critical"
                return [self._emit(s, "escalated")]
            return []
        if not hot:
            return []
        severity = "critical" if v.z >= th.z_critical else "warning"
        return [
            self._open(s, th, "z", severity, self._peak(s, v), self._evidence(s, v.window), start_bucket=v.window.last)
        ]

    def _test_cusum(self, s: ScopeState, th: Thresholds, index: int) -> list[Alert]:
        c, base = s.cusum, s.baseline
        if not th.enabled or c.start is None or c.value < th.cusum_h or c.stories < th.min_count:
            return []
        if c.negatives / c.stories - base.long_share < th.cusum_k:
            return []
        run = {
            "first": c.start,
            "last": index,
            "share": c.negatives / c.stories,
            "baseline": base.long_share,
            "statistic": c.value,
            "n": c.stories,
            "baseline_volume": base.volume * (index - c.start + 1),
            "dups": c.duplicates,
        }
        ep = s.episode
        if ep is not None and ep.firing:
            if ep.method == "cusum":
                ep.peak = run  # the drift run grows; reported at the next boundary
            return []
        return [self._open(s, th, "cusum", "warning", run, self._window(s).evidence, start_bucket=c.start)]

    def _at_boundary(self, s: ScopeState) -> list[Alert]:
        """The clock entered a new bucket: update a firing episode, or end it."""
        ep = s.episode
        if ep is None or not ep.firing:
            return []
        th = self.config.thresholds(s.scope, s.key)
        # Judged at the time scale that fired: an hour's burst lasts as long as its hour.
        scale = ep.peak.get("scale", self.config.window_buckets)
        verdicts = self._verdicts(s, th)
        v = next((v for v in verdicts if v.scale == scale), None) or scales.strongest(verdicts, th)
        elevated = v.elevated(th)
        if ep.method == "cusum" and th.cusum_h > 0:
            elevated = elevated or s.cusum.value >= th.cusum_h / 2
        w = self._window(s)
        ep.evidence = most_negative([*ep.evidence, *w.evidence], self.config.evidence_docs)
        if elevated and th.enabled:
            return [self._emit(s, "updated")]
        ep.status = "resolved"
        ep.ended = bucket_index(s.watermark, self.config.bucket_s) * float(self.config.bucket_s)
        s.reported_until = bucket_index(s.watermark, self.config.bucket_s)
        s.cusum.reset()
        return [self._emit(s, "resolved")]

    # --- episodes --------------------------------------------------------------------------
    def _open(
        self,
        s: ScopeState,
        th: Thresholds,
        method: str,
        severity: str,
        peak: dict,
        evidence: list[dict],
        start_bucket: int,
    ) -> Alert:
        ep = s.episode
        if ep is not None and ep.ended is not None and s.watermark < ep.ended + th.cooldown_s:
            # Within the cooldown: the same episode flares up again.
            ep.status, ep.ended, ep.method, ep.peak = "firing", None, method, peak
            ep.severity = "critical" if "critical" in (ep.severity, severity) else "warning"
            ep.evidence = most_negative([*ep.evidence, *evidence], self.config.evidence_docs)
            change = "reopened"
        else:
            start = start_bucket * float(self.config.bucket_s)
            ep = Episode(
                id=Alert.make_id(s.scope, s.key, _utc(start)),
                start=start,
                method=method,
                severity=severity,
                update=-1,
                peak=peak,
                evidence=list(evidence),
            )
            s.episode = ep
            change = "opened"
            if self.record_metrics:
                metrics.ALERTS_RAISED.labels(scope=s.scope, severity=severity).inc()
        if method == "z":
            s.cusum.reset()  # the window test owns this episode; the drift detector restarts after it
            scales.mark_episode(s.history, peak["first"])  # the surge's closed buckets too
        alert = self._emit(s, change)
        log.info("alert %s change=%s id=%s", alert.summary, change, alert.id)
        return alert

    def _emit(self, s: ScopeState, change: str) -> Alert:
        ep, cfg = s.episode, self.config
        ep.update += 1
        ep.updated = max(ep.updated, s.watermark)
        p = ep.peak
        return Alert(
            id=ep.id,
            scope=s.scope,
            key=s.key,
            severity=ep.severity,
            status=ep.status,
            change=change,
            update=ep.update,
            episode_start=_utc(ep.start),
            ended_at=None if ep.ended is None else _utc(ep.ended),
            window_start=_utc(p["first"] * float(cfg.bucket_s)),
            window_end=_utc((p["last"] + 1) * float(cfg.bucket_s)),
            negative_share=p["share"],
            baseline=p["baseline"],
            statistic=p["statistic"],
            method=ep.method,
            volume=p["n"],
            baseline_volume=p["baseline_volume"],
            duplicates=p["dups"],
            time_scale_s=p["scale"] * cfg.bucket_s if "scale" in p else None,
            model_version=s.model_version,
            updated_at=_utc(ep.updated),
            late_records=s.late,
            evidence=[Evidence(**e) for e in ep.evidence],
        )

    def _forget_old_episode(self, s: ScopeState) -> None:
        ep = s.episode
        if ep is not None and ep.ended is not None:
            if s.watermark >= ep.ended + self.config.thresholds(s.scope, s.key).cooldown_s:
                s.episode = None

    # --- helpers ---------------------------------------------------------------------------
    def _window(self, s: ScopeState) -> Window:
        head = bucket_index(s.watermark, self.config.bucket_s)
        return window(s.buckets, head, self.config.window_buckets, self.config.evidence_docs)

    def _catch_up_reference(self, s: ScopeState) -> None:
        """Fold the closed buckets that left the longest window into the reference baseline."""
        if s.next_close is not None:
            s.reference_next = scales.catch_up(
                s.reference,
                s.reference_next,
                s.history,
                s.next_close - self.config.longest_window,
                self._alpha,
                self._long_alpha,
                self.config.min_baseline_buckets,
            )
        # The spread of shares is learned on the running baseline (only it sees closed windows).
        s.reference.disp_sum, s.reference.disp_weight = s.baseline.disp_sum, s.baseline.disp_weight

    def _verdicts(self, s: ScopeState, th: Thresholds) -> list[scales.Verdict]:
        cfg = self.config
        self._catch_up_reference(s)
        # Judged against the baseline from before the longest window once it has enough
        # history; until then (a scope's first hour) against the running one.
        base = s.reference if s.reference.buckets >= cfg.min_baseline_buckets else s.baseline
        head = bucket_index(s.watermark, cfg.bucket_s)
        # Stories an ended episode reported do not raise it again through a longer window.
        since = s.reported_until if s.episode is None or not s.episode.firing else None
        windows = scales.windows_of(
            cfg.window_buckets, cfg.longer_windows, s.buckets, s.history, s.next_close, head, since
        )
        return [scales.judge(w, base, th, cfg.window_buckets) for w in windows]

    def _evidence(self, s: ScopeState, w: Window) -> list[dict]:
        return scales.evidence_of_window(w, s.buckets, s.recent, self.config.evidence_docs)

    def _peak(self, s: ScopeState, v: scales.Verdict) -> dict:
        w = v.window
        return {
            "first": w.first,
            "last": w.last,
            "share": w.share,
            "baseline": v.p0,
            "statistic": v.z,
            "n": w.n,
            "baseline_volume": v.volume * w.buckets,
            "dups": w.dups,
            "scale": v.scale,
            "z_share": v.z_share,
            "z_rate": v.z_rate,
        }

    def _export(self, s: ScopeState, bucket: Bucket) -> None:
        if not self.record_metrics or bucket.n == 0:
            return
        if s.scope == "topic":
            metrics.NEGATIVE_SHARE.labels(topic=s.key).set(bucket.neg / bucket.n)
        elif s.scope == "entity" and s.key in self._watched:
            metrics.ENTITY_NEGATIVE_SHARE.labels(entity=s.key).set(bucket.neg / bucket.n)
