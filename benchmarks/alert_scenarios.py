"""Labelled synthetic streams for judging the detector: what must alert, what must not.

Each scenario is a list of scored records (the replay shape) plus the events a risk team
would want to hear about (`expected`) and the scopes that may reasonably alert as a
consequence of them (`allowed`: a topic spike also lifts the global share). Streams are
random but seeded, so the table in docs/alerting.md is reproducible:

    python benchmarks/detector_scenarios.py

Headlines are random words, distinct per story, so the near-duplicate check sees them as
different stories — except in the syndication scenario, where copies of one story carry
the edits outlets make (prefix, source tag, link).
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

from finsentry.alerting.config import DetectorConfig
from finsentry.alerting.dedup import NearDuplicateIndex
from finsentry.alerting.replay import replay_events
from finsentry.labels import TOPIC_LABELS
from finsentry.records import Alert
from finsentry.settings import Settings

START = datetime(2026, 1, 5, 0, 0, tzinfo=timezone.utc)
# Background topic mix and negative share: busy topics are busier, some are gloomier.
TOPIC_WEIGHTS = {label: 1.0 + (i % 5) for i, label in enumerate(TOPIC_LABELS)}
TOPIC_NEGATIVE = {label: 0.15 + 0.05 * (i % 5) for i, label in enumerate(TOPIC_LABELS)}
_SYLLABLES = ["ka", "lo", "mi", "ra", "te", "su", "no", "vi", "pe", "da", "zo", "ri", "fa", "gu", "be", "xi"]


TARGET_NEGATIVES, TARGET_INCREASE = 8, 0.30  # the events the detector must find (docs/alerting.md)


@dataclass(frozen=True)
class Event:
    scope: str
    key: str
    start: datetime
    end: datetime
    negatives: int | None = None  # distinct negative stories the event adds, when known
    increase: float | None = None  # the event's own negative share minus the scope's usual

    @property
    def target(self) -> bool:
        """At least 8 distinct negative stories, 30 points above the usual share."""
        return (
            self.negatives is not None
            and self.increase is not None
            and self.negatives >= TARGET_NEGATIVES
            and self.increase >= TARGET_INCREASE - 1e-9
        )


@dataclass
class Scenario:
    name: str
    description: str
    records: list[dict]
    expected: list[Event] = field(default_factory=list)
    allowed: list[Event] = field(default_factory=list)
    scope_weeks: float = 0.0  # scopes times weeks of the stream, for false alarms per scope-week


class StreamBuilder:
    """Scored records with random but distinct headlines, seeded."""

    def __init__(self, seed: int, start: datetime = START):
        self.rng = random.Random(seed)
        self.start = start
        self.records: list[dict] = []
        self._vocab = [a + b + c for a in _SYLLABLES for b in _SYLLABLES for c in _SYLLABLES]

    def at(self, minute: float) -> datetime:
        return self.start + timedelta(minutes=minute)

    def headline(self, entity: str | None = None) -> str:
        words = self.rng.sample(self._vocab, 11)
        if entity:
            words.insert(0, entity)
        text = " ".join(words)
        return text[0].upper() + text[1:]

    def add(
        self,
        minute: float,
        topic: str,
        negative: bool,
        entities: tuple[str, ...] = (),
        title: str | None = None,
        source: str | None = None,
        positive: bool | None = None,
    ) -> dict:
        rng = self.rng
        if negative:
            label, score = "negative", -rng.uniform(0.4, 0.95)
        elif positive if positive is not None else rng.random() < 0.5:
            label, score = "positive", rng.uniform(0.3, 0.9)
        else:
            label, score = "neutral", rng.uniform(-0.2, 0.2)
        title = title or self.headline(entities[0] if entities else None)
        number = len(self.records)
        record = {
            "id": f"s{number:07d}",
            "published_at": self.at(minute).isoformat(),
            "title": title,
            "text": title,
            "source": source or rng.choice(["wire-a", "wire-b", "desk", "tweets"]),
            "url": f"https://news.example/{number}",
            "sentiment": {"label": label, "probabilities": {}, "score": round(score, 4)},
            "topic": {"label": topic, "probability": 0.9},
            "entities": list(entities),
            "model_version": "synthetic",
        }
        self.records.append(record)
        return record

    def background(
        self,
        minutes: float,
        per_minute: Callable[[float], float] | float = 30.0,
        negative_shift: Callable[[float, str], float] | None = None,
        entities: dict[str, float] | None = None,
        start_minute: float = 0.0,
    ) -> None:
        """Poisson arrivals over [start, start+minutes); optional entity mentions per minute."""
        rate = per_minute if callable(per_minute) else (lambda _m, r=per_minute: r)
        topics, weights = list(TOPIC_WEIGHTS), list(TOPIC_WEIGHTS.values())
        for m in range(int(start_minute), int(start_minute + minutes)):
            for _ in range(self._poisson(rate(m))):
                topic = self.rng.choices(topics, weights)[0]
                p = TOPIC_NEGATIVE[topic] + (negative_shift(m, topic) if negative_shift else 0.0)
                self.add(m + self.rng.random(), topic, self.rng.random() < min(max(p, 0.0), 1.0))
            for entity, per in (entities or {}).items():
                for _ in range(self._poisson(per)):
                    topic = self.rng.choice(["Company / Product News", "Stock Movement", "Earnings"])
                    self.add(m + self.rng.random(), topic, self.rng.random() < 0.25, (entity,))

    def burst(
        self,
        start_minute: float,
        minutes: float,
        per_minute: float,
        topic: str,
        negative_share: float = 1.0,
        entities: tuple[str, ...] = (),
    ) -> None:
        for m in range(int(start_minute), int(start_minute + minutes)):
            for _ in range(self._poisson(per_minute)):
                self.add(m + self.rng.random(), topic, self.rng.random() < negative_share, entities)

    def syndicate(
        self, minute: float, copies: int, spread_minutes: float, topic: str, entities: tuple[str, ...] = ()
    ) -> None:
        story = self.add(minute, topic, True, entities)["title"]
        edits = [
            lambda t: "BREAKING: " + t,
            lambda t: t + " - Reuters",
            lambda t: t + " https://t.co/abc123",
            lambda t: t + " (wire-b)",
            lambda t: "Markets: " + t + " via @desk",
            lambda t: t,
        ]
        for i in range(copies - 1):
            at = minute + self.rng.uniform(0, spread_minutes)
            self.add(at, topic, True, entities, title=edits[i % len(edits)](story), source=f"outlet-{i % 17}")

    def sorted_records(self) -> list[dict]:
        return sorted(self.records, key=lambda r: r["published_at"])

    def _poisson(self, lam: float) -> int:
        if lam <= 0:
            return 0
        if lam > 50:  # normal approximation keeps big rates fast
            return max(0, round(self.rng.gauss(lam, math.sqrt(lam))))
        threshold, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= self.rng.random()
            if p <= threshold:
                return k
            k += 1


def _window(b: StreamBuilder, start: float, end: float) -> tuple[datetime, datetime]:
    return b.at(start), b.at(end)


def topic_spike(seed: int, extra_per_minute: float = 12.0, name: str = "topic spike") -> Scenario:
    b = StreamBuilder(seed)
    b.background(150)
    b.burst(90, 10, extra_per_minute, "Energy / Oil")
    s, e = _window(b, 90, 100)
    return Scenario(
        name,
        f"30 stories/min; Energy / Oil gets {extra_per_minute:g} more, negative, per minute for 10 min",
        b.sorted_records(),
        [Event("topic", "Energy / Oil", s, e)],
        [Event("global", "all", s, e)],
    )


def entity_spike(seed: int) -> Scenario:
    b = StreamBuilder(seed)
    b.background(150, entities={"ACME": 0.5})
    b.burst(90, 8, 10, "Company / Product News", entities=("ACME",))
    s, e = _window(b, 90, 98)
    return Scenario(
        "entity spike",
        "ACME mentioned 0.5/min; then 10 negative stories/min for 8 min",
        b.sorted_records(),
        [Event("entity", "ACME", s, e)],
        [Event("topic", "Company / Product News", s, e), Event("global", "all", s, e)],
    )


def steady_noise(seed: int) -> Scenario:
    b = StreamBuilder(seed)
    b.background(6 * 60, entities={"ACME": 0.5, "GLOBEX": 1.0})
    return Scenario("steady noise", "6 h of 30 stories/min, stationary shares", b.sorted_records())


def low_volume_night(seed: int) -> Scenario:
    b = StreamBuilder(seed)
    b.background(8 * 60, per_minute=0.5)
    for minute in range(30, 8 * 60, 45):  # a few negative tweets at once, now and then
        for _ in range(3):
            b.add(minute + b.rng.random(), "Markets", True)
    return Scenario("low-volume night", "8 h of 0.5 stories/min with bursts of 3 negative tweets", b.sorted_records())


def syndicated_copies(seed: int) -> Scenario:
    b = StreamBuilder(seed)
    b.background(150)
    b.syndicate(90, 50, 5, "Energy / Oil", ("XOM",))
    return Scenario(
        "50 syndicated copies",
        "one negative story re-published 50 times in 5 min (prefixes, tags, links)",
        b.sorted_records(),
    )


def slow_drift(seed: int) -> Scenario:
    b = StreamBuilder(seed)
    ramp_start, ramp = 120, 180

    def shift(minute: float, topic: str) -> float:
        if topic != "Macro" or minute < ramp_start:
            return 0.0
        return 0.3 * min(1.0, (minute - ramp_start) / ramp)

    b.background(ramp_start + ramp + 60, per_minute=40, negative_shift=shift)
    s, e = _window(b, ramp_start, ramp_start + ramp + 60)
    return Scenario(
        "slow drift",
        "Macro (3 stories/min) drifts from 35% to 65% negative over 3 h, then stays",
        b.sorted_records(),
        [Event("topic", "Macro", s, e)],
        [Event("global", "all", s, e)],
    )


def diurnal_volume(seed: int) -> Scenario:
    b = StreamBuilder(seed)
    b.background(24 * 60, per_minute=lambda m: 32.5 - 27.5 * math.cos(2 * math.pi * m / (24 * 60)))
    return Scenario("diurnal volume swing", "24 h, volume 5 ↔ 60 stories/min, shares unchanged", b.sorted_records())


def bursty_shares(seed: int) -> Scenario:
    b = StreamBuilder(seed)
    jitter = {}

    def shift(minute: float, topic: str) -> float:
        block = (int(minute) // 10, topic)
        if block not in jitter:
            jitter[block] = b.rng.gauss(0.0, 0.06)
        return jitter[block]

    b.background(6 * 60, negative_shift=shift)
    return Scenario(
        "overdispersed noise", "6 h; each topic's share wanders ±0.06 every 10 min (no event)", b.sorted_records()
    )


def positive_surge(seed: int) -> Scenario:
    b = StreamBuilder(seed)
    b.background(150)
    b.burst(90, 10, 20, "Earnings", negative_share=0.0)
    return Scenario(
        "positive surge", "Earnings gets 20 more stories/min for 10 min, all positive or neutral", b.sorted_records()
    )


def neutral_volume_surge(seed: int) -> Scenario:
    b = StreamBuilder(seed)
    b.background(150)
    b.burst(90, 20, 25, "Earnings", negative_share=TOPIC_NEGATIVE["Earnings"])
    return Scenario(
        "volume surge, usual share", "Earnings volume ×6 for 20 min at its usual negative share", b.sorted_records()
    )


def two_spikes(seed: int) -> Scenario:
    b = StreamBuilder(seed)
    b.background(300)
    b.burst(90, 8, 12, "Legal / Regulation")
    b.burst(220, 8, 12, "Legal / Regulation")
    events = [
        Event("topic", "Legal / Regulation", *_window(b, 90, 98)),
        Event("topic", "Legal / Regulation", *_window(b, 220, 228)),
    ]
    return Scenario(
        "two spikes, 2 h apart",
        "two separate episodes on one topic: two alerts",
        b.sorted_records(),
        events,
        [Event("global", "all", e.start, e.end) for e in events],
    )


def flapping_spike(seed: int) -> Scenario:
    b = StreamBuilder(seed)
    b.background(180)
    b.burst(90, 6, 12, "Financials")
    b.burst(101, 6, 12, "Financials")  # a five-minute lull inside one episode
    s, e = _window(b, 90, 107)
    return Scenario(
        "spike with a lull",
        "one episode with a 5-minute pause: still one alert",
        b.sorted_records(),
        [Event("topic", "Financials", s, e)],
        [Event("global", "all", s, e)],
    )


SCENARIOS: dict[str, Callable[[int], Scenario]] = {
    "topic_spike": topic_spike,
    "small_topic_spike": lambda seed: topic_spike(seed, 6.0, "small topic spike"),
    "entity_spike": entity_spike,
    "two_spikes": two_spikes,
    "flapping_spike": flapping_spike,
    "slow_drift": slow_drift,
    "steady_noise": steady_noise,
    "low_volume_night": low_volume_night,
    "syndicated_copies": syndicated_copies,
    "diurnal_volume": diurnal_volume,
    "bursty_shares": bursty_shares,
    "positive_surge": positive_surge,
    "neutral_volume_surge": neutral_volume_surge,
}


# --- scoring -------------------------------------------------------------------------------
@dataclass
class Outcome:
    events: int = 0
    detected: int = 0
    alerts: int = 0  # counted alerts (those on allowed scopes are left out)
    true_alerts: int = 0
    delays_buckets: list[float] = field(default_factory=list)
    false: list[Alert] = field(default_factory=list)
    target_events: int = 0  # events of at least 8 negatives and +30 points
    target_detected: int = 0
    scope_weeks: float = 0.0

    def add(self, other: "Outcome") -> None:
        self.events += other.events
        self.detected += other.detected
        self.target_events += other.target_events
        self.target_detected += other.target_detected
        self.scope_weeks += other.scope_weeks
        self.alerts += other.alerts
        self.true_alerts += other.true_alerts
        self.delays_buckets += other.delays_buckets
        self.false += other.false


def run(
    scenario: Scenario,
    config: DetectorConfig,
    dedup: NearDuplicateIndex | None = None,
    grace: timedelta = timedelta(minutes=30),
) -> tuple[Outcome, list[Alert]]:
    """Replay a scenario and match its alerts (one per episode) against the labels.

    An alert matches an event of the same scope and key when its episode overlaps the
    event (plus `grace` after it). The first alert matching an event is a true alert;
    another one for the same event is a repeat and counts as false, like any alert that
    matches neither an event nor an allowed scope.
    """
    first_seen: dict[str, datetime] = {}
    final: dict[str, Alert] = {}
    for alert in replay_events(scenario.records, config, dedup):
        first_seen.setdefault(alert.id, alert.updated_at)
        final[alert.id] = alert
    out = Outcome(
        events=len(scenario.expected),
        scope_weeks=scenario.scope_weeks,
        target_events=sum(e.target for e in scenario.expected),
    )
    matched: set[int] = set()
    end_of_data = max(datetime.fromisoformat(r["published_at"]) for r in scenario.records)
    for alert in final.values():
        start, end = alert.episode_start, alert.ended_at or end_of_data

        def overlaps(event: Event) -> bool:
            return (
                (event.scope, event.key) == (alert.scope, alert.key)
                and start <= event.end + grace
                and end >= event.start
            )

        hits = [i for i, event in enumerate(scenario.expected) if overlaps(event)]
        if hits:
            out.alerts += 1
            fresh = [i for i in hits if i not in matched]
            if fresh:
                matched.add(fresh[0])
                out.true_alerts += 1
                event = scenario.expected[fresh[0]]
                delay = (first_seen[alert.id] - event.start).total_seconds() / config.bucket_s
                out.delays_buckets.append(max(0.0, delay))
            else:
                out.false.append(alert)
        elif not any(overlaps(event) for event in scenario.allowed):
            out.alerts += 1
            out.false.append(alert)
    out.detected = len(matched)
    out.target_detected = sum(scenario.expected[i].target for i in matched)
    return out, list(final.values())


def _runs(
    name: str,
    registry: dict[str, Callable[[int], Scenario]],
    seeds: range,
    config: DetectorConfig,
    settings: Settings,
    progress: Callable[[str], None] | None,
) -> tuple[str, Outcome]:
    """One scenario over the seeds: its description and the summed outcome."""
    outcome, description = Outcome(), name
    for seed in seeds:
        scenario = registry[name](seed)
        description = scenario.name
        result, _ = run(scenario, config, NearDuplicateIndex.from_settings(settings))
        outcome.add(result)
        if progress:
            progress(
                f"{name} seed={seed}: events={result.events} detected={result.detected} "
                f"alerts={result.alerts} false={len(result.false)}"
            )
    return description, outcome


def table(
    config: DetectorConfig,
    seeds: range = range(5),
    names: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
    settings: Settings | None = None,
    registry: dict[str, Callable[[int], Scenario]] | None = None,
) -> tuple[str, Outcome]:
    """The precision/recall table (markdown) over every scenario and seed, and the total.

    Each run gets a fresh near-duplicate index configured like the worker's, from
    `settings` (default: `Settings()`, the environment's).
    """
    settings = settings if settings is not None else Settings()
    registry = registry if registry is not None else SCENARIOS
    rows = [
        (
            "| scenario | runs | events | detected | recall | alerts | false or repeated | precision | median delay "
            "(buckets) |"
        ),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    total = Outcome()
    for name in names or list(registry):
        description, outcome = _runs(name, registry, seeds, config, settings, progress)
        total.add(outcome)
        rows.append(_row(description, len(seeds), outcome))
    rows.append(_row("**all**", len(seeds) * len(names or registry), total))
    return "\n".join(rows), total


def rate_table(
    config: DetectorConfig,
    registry: dict[str, Callable[[int], Scenario]],
    seeds: range = range(5),
    names: list[str] | None = None,
    settings: Settings | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[str, dict[str, Outcome]]:
    """The table of the streams at real rates: recall on all events and on the target
    events (>= 8 negatives, +30 points), precision, median delay in minutes of event time,
    false alarms per scope and week."""
    settings = settings if settings is not None else Settings()
    rows = [
        "| scenario | runs | events | recall | target events | target recall | alerts | false | precision "
        "| median delay (min) | scope-weeks | false per scope-week |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    outcomes: dict[str, Outcome] = {}
    for name in names or list(registry):
        description, outcome = _runs(name, registry, seeds, config, settings, progress)
        outcomes[name] = outcome
        o = outcome
        minutes = [d * config.bucket_s / 60 for d in o.delays_buckets]
        rows.append(
            " | ".join(
                [
                    f"| {description}",
                    str(len(seeds)),
                    str(o.events),
                    f"{o.detected / o.events:.2f}" if o.events else "–",
                    str(o.target_events),
                    f"{o.target_detected / o.target_events:.2f}" if o.target_events else "–",
                    str(o.alerts),
                    str(len(o.false)),
                    f"{o.true_alerts / o.alerts:.2f}" if o.alerts else "–",
                    f"{statistics.median(minutes):.1f}" if minutes else "–",
                    f"{o.scope_weeks:.1f}",
                    f"{len(o.false) / o.scope_weeks:.2f} |" if o.scope_weeks else "– |",
                ]
            )
        )
    return "\n".join(rows), outcomes


def _row(name: str, runs: int, o: Outcome) -> str:
    recall = f"{o.detected / o.events:.2f}" if o.events else "–"
    precision = f"{o.true_alerts / o.alerts:.2f}" if o.alerts else "–"
    delay = f"{statistics.median(o.delays_buckets):.1f}" if o.delays_buckets else "–"
    return (
        f"| {name} | {runs} | {o.events} | {o.detected} | {recall} | {o.alerts} | {len(o.false)} | {precision} | "
        f"{delay} |"
    )
