"""Labelled streams at the rates real finance news arrives (the scenarios of the benchmark
table besides the dense ones of `scenarios`).

Where the rates come from (orders of magnitude, public):
- A general finance feed carries a few to about ten stories a minute: a labelled 8-hour
  stream of finance news in the project's issue tracker ran at about 9 a minute over six
  topics, 15 % negative; Bloomberg News says it publishes over 5,000 stories a day
  (about 3.5 a minute), Reuters some 2.5 million a year in all languages (about 5 a minute).
  Volume follows the trading day: a night carries a tenth of the midday rate or less.
- A company gets from a few stories a day (most listed companies) to a few an hour (the
  largest caps on a normal day), and on a news day (results, a deal) ten times its rate
  for an hour, at its usual tone.
- A company burst in that stream: 24 distinct headlines in 10 minutes, 80 % negative; a
  sector surge: about 150 stories in 30 minutes (5 a minute), 65 % negative.
- News clusters: a story is often followed by follow-ups of the same tone within the half
  hour; a wire story is syndicated by many outlets (the near-duplicate check counts it once).

Streams here mark syndicated copies with `dup_of` themselves (as the score agent would),
which keeps a simulated week fast; the syndication trap alone goes through the real
near-duplicate check.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from alert_scenarios import Event, Scenario, StreamBuilder

SECTORS = {  # six topics, as in the labelled stream: weight of the feed, usual negative share
    "Markets": (0.30, 0.15),
    "Company / Product News": (0.20, 0.12),
    "Earnings": (0.15, 0.14),
    "Macro": (0.15, 0.18),
    "Energy / Oil": (0.10, 0.16),
    "Financials": (0.10, 0.17),
}
COMPANY_TOPICS = ["Company / Product News", "Earnings", "Stock Movement"]
PER_DAY = 1440.0
COMPANY_RATES = {"3/day": 3 / PER_DAY, "12/day": 12 / PER_DAY, "2/h": 2 / 60, "5/h": 5 / 60}


def trading_day(minute: float) -> float:
    """Volume relative to the daily mean: low at night, high mid-session, weekends lighter."""
    day, hour = divmod(minute / 60.0, 24.0)
    level = 0.15 + 2.2 * max(0.0, math.sin(math.pi * (hour - 6.0) / 16.0)) if 6.0 <= hour <= 22.0 else 0.15
    return level * (0.35 if int(day) % 7 in (5, 6) else 1.0)


class NewsStream(StreamBuilder):
    """A StreamBuilder with clustered follow-ups, syndicated copies and wandering shares."""

    def __init__(self, seed: int, follow_up: float = 0.25, syndicated: float = 0.05):
        super().__init__(seed)
        self.follow_up, self.syndicated = follow_up, syndicated
        self._drift: dict[tuple[int, str], float] = {}

    def story(
        self, minute: float, topic: str, negative: bool, entities: tuple[str, ...] = (), clustered: bool = True
    ) -> None:
        original = self.add(minute, topic, negative, entities)
        original["dup_of"] = None
        if self.rng.random() < self.syndicated:
            for _ in range(self.rng.randint(2, 20)):
                copy = self.add(minute + self.rng.uniform(0, 10), topic, negative, entities, title=original["title"])
                copy["dup_of"] = original["id"]
        if clustered and self.rng.random() < self.follow_up:
            for _ in range(self.rng.randint(1, 3)):
                same = negative if self.rng.random() < 0.7 else self.rng.random() < 0.2
                self.story(minute + self.rng.uniform(1, 30), topic, same, entities, clustered=False)

    def share(self, topic: str, base: float, minute: float) -> float:
        """The usual share, wandering ±0.04 every half hour (overdispersion)."""
        block = (int(minute) // 30, topic)
        if block not in self._drift:
            self._drift[block] = self.rng.gauss(0.0, 0.04)
        return min(0.9, max(0.02, base + self._drift[block]))

    def sectors(self, start: float, minutes: float, per_minute: float, diurnal: bool = True) -> None:
        names, weights = list(SECTORS), [w for w, _ in SECTORS.values()]
        for m in range(int(start), int(start + minutes)):
            rate = per_minute * (trading_day(m) if diurnal else 1.0)
            for _ in range(self._poisson(rate)):
                topic = self.rng.choices(names, weights)[0]
                self.story(m + self.rng.random(), topic, self.rng.random() < self.share(topic, SECTORS[topic][1], m))

    def company(
        self,
        name: str,
        start: float,
        minutes: float,
        per_minute: float,
        share: float = 0.22,
        news_day: float | None = None,
    ) -> None:
        """A company's stories at its rate (following the trading day), with one news day:
        an hour at ten times its rate (at least ten stories), at its usual share."""
        for m in range(int(start), int(start + minutes)):
            rate = per_minute * trading_day(m)
            if news_day is not None and news_day <= m < news_day + 60:
                rate = max(10 * per_minute, 10 / 60)
            for _ in range(self._poisson(rate)):
                self.story(m + self.rng.random(), self.rng.choice(COMPANY_TOPICS), self.rng.random() < share, (name,))

    def negative_burst(
        self, start: float, minutes: float, negatives: int, share: float, topic: str, entities: tuple[str, ...] = ()
    ) -> None:
        """Exactly `negatives` distinct negative stories and enough others for `share`,
        spread uniformly over the span (no syndication, no follow-ups: counted exactly)."""
        others = round(negatives * (1.0 - share) / share)
        labels = [True] * negatives + [False] * others
        for negative in labels:
            self.add(start + self.rng.uniform(0, minutes), topic, negative, entities)["dup_of"] = None


def scope_weeks(records: list[dict]) -> float:
    """Scopes the stream touches (global, topics, entities) times its length in weeks."""
    scopes = {("global", "all")} | {("topic", r["topic"]["label"]) for r in records}
    scopes |= {("entity", e) for r in records for e in r["entities"]}
    times = [r["published_at"] for r in records]
    span = datetime.fromisoformat(max(times)) - datetime.fromisoformat(min(times))
    return len(scopes) * span / timedelta(weeks=1)


def _scenario(name: str, description: str, b: NewsStream, expected=(), allowed=()) -> Scenario:
    records = b.sorted_records()
    return Scenario(name, description, records, list(expected), list(allowed), scope_weeks=scope_weeks(records))


def company_burst(rate: str):
    def build(seed: int) -> Scenario:
        b = NewsStream(seed)
        days = 2.5
        b.sectors(0, days * 1440, 1.0)  # the other news: what the global and topic scopes see
        b.company("ACME", 0, days * 1440, COMPANY_RATES[rate], share=0.22)
        b.company("GLOBEX", 0, days * 1440, COMPANY_RATES["5/h"], share=0.22)  # a busy neighbour
        start = 2 * 1440 + b.rng.uniform(9 * 60, 15 * 60)
        negatives, minutes = b.rng.randint(8, 30), b.rng.uniform(10, 60)
        share = b.rng.uniform(0.22 + 0.30, 0.95)
        b.negative_burst(start, minutes, negatives, share, "Company / Product News", ("ACME",))
        event = Event("entity", "ACME", b.at(start), b.at(start + minutes), negatives=negatives, increase=share - 0.22)
        side = [Event("topic", t, event.start, event.end) for t in COMPANY_TOPICS] + [
            Event("global", "all", event.start, event.end)
        ]
        return _scenario(
            f"company burst, base {rate}",
            f"ACME at {rate} (22 % negative) gets 8-30 negative stories in 10-60 min at 52-95 % negative",
            b,
            [event],
            side,
        )

    return build


def sector_surge(per_minute: float):
    def build(seed: int) -> Scenario:
        b = NewsStream(seed)
        b.sectors(0, 8 * 60, 9.0, diurnal=False)
        start, minutes = 6 * 60 + b.rng.uniform(0, 30), b.rng.uniform(15, 30)
        negatives = max(8, round(per_minute * minutes * 0.65))
        b.negative_burst(start, minutes, negatives, 0.65, "Energy / Oil")
        event = Event(
            "topic",
            "Energy / Oil",
            b.at(start),
            b.at(start + minutes),
            negatives=negatives,
            increase=0.65 - SECTORS["Energy / Oil"][1],
        )
        return _scenario(
            f"sector surge, {per_minute:g}/min",
            (
                f"9 stories/min over six topics; Energy / Oil gets {per_minute:g} more a minute for 15-30 min, 65 % "
                "negative"
            ),
            b,
            [event],
            [Event("global", "all", event.start, event.end)],
        )

    return build


def syndicated_60(seed: int) -> Scenario:
    b = StreamBuilder(seed)
    b.background(180, per_minute=3.0)
    b.syndicate(120, 60, 10, "Energy / Oil", ("XOM",))
    return Scenario(
        "one story syndicated 60 times",
        "3 stories/min; one negative story copied 60 times in 10 min",
        b.sorted_records(),
        scope_weeks=scope_weeks(b.records),
    )


def negative_night(seed: int) -> Scenario:
    b = NewsStream(seed)
    b.sectors(0, 10 * 60, 9.0)  # from midnight: a quiet night, then the morning
    for minute in range(30, 6 * 60, 40):  # clusters of all-negative headlines in the night
        topic = b.rng.choice(list(SECTORS))
        for _ in range(b.rng.randint(3, 4)):
            b.add(minute + b.rng.random() * 3, topic, True)["dup_of"] = None
    return _scenario(
        "low-volume night, negative clusters",
        "night at about 1.4 stories/min; every 40 min 3-4 negative headlines at once on one topic",
        b,
    )


def null_week(seed: int, days: int = 7) -> Scenario:
    b = NewsStream(seed)
    b.sectors(0, days * 1440, 6.0)
    for i, (rate, per_minute) in enumerate(sorted(COMPANY_RATES.items()) * 3):
        news_day = b.rng.randrange(days) * 1440 + b.rng.uniform(9 * 60, 16 * 60)
        b.company(f"CO{i:02d}", 0, days * 1440, per_minute, share=b.rng.uniform(0.12, 0.3), news_day=news_day)
    return _scenario(
        "null week",
        "7 days, 6/min on average over six topics following the trading day, 12 companies "
        "from 3/day to 5/h each with one news day; follow-ups, syndication, wandering shares",
        b,
    )


REALISTIC = {
    **{f"company_burst_{rate.replace('/', '_per_')}": company_burst(rate) for rate in COMPANY_RATES},
    **{f"sector_surge_{rate}": sector_surge(float(rate)) for rate in (1, 3, 10)},
    "syndicated_60": syndicated_60,
    "negative_night": negative_night,
    "null_week": null_week,
}
