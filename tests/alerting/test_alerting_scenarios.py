"""How scenarios.run matches alerts to labelled events (overlap, grace period, repeats,
allowed scopes) and how `table` adds runs up into recall, precision and delay, on a small
hand-built stream whose alerts are known."""

from __future__ import annotations

from datetime import timedelta

import alert_scenarios as scenarios
import pytest
from alert_scenarios import Event, Scenario, StreamBuilder, run, table

from finsentry.alerting.config import DetectorConfig
from finsentry.alerting.replay import replay_events
from finsentry.settings import Settings

CONFIG = DetectorConfig()
OIL = "Energy / Oil"


def two_spikes() -> list[dict]:
    """130 minutes of Energy / Oil, 10 stories a minute, one in ten negative; all of them
    negative in minutes 30-34 and 100-104. Only one topic, so the global scope follows it."""
    b = StreamBuilder(0)
    for minute in range(130):
        spike = 30 <= minute < 35 or 100 <= minute < 105
        for k in range(10):
            b.add(minute + k / 10, OIL, negative=spike or k == 0)
    return [{**r, "dup_of": None} for r in b.sorted_records()]  # distinct headlines: no dedup needed


RECORDS = two_spikes()


def at(minute: float):
    return scenarios.START + timedelta(minutes=minute)


def event(scope: str, key: str, start: float, end: float) -> Event:
    return Event(scope, key, at(start), at(end))


def first_emission(scope: str, episode_start_minute: float):
    """When the detector first emitted the episode of `scope` that starts at that minute."""
    return min(
        a.updated_at
        for a in replay_events(RECORDS, CONFIG)
        if a.scope == scope and a.episode_start == at(episode_start_minute)
    )


def test_the_stream_gives_two_episodes_per_scope():
    """What the matching tests below rely on: one episode per spike, on the topic and on global,
    found in the spike's second minute (its first holds 10 negative stories of the window's 30
    at a baseline of 1 in 10: an exact tail of about 1e-4 once the baseline's uncertainty and
    the spread of shares are counted, short of the threshold)."""
    episodes = {(a.scope, a.episode_start) for a in replay_events(RECORDS, CONFIG)}
    assert episodes == {(scope, at(minute)) for scope in ("topic", "global") for minute in (31, 101)}


def test_a_detected_event_a_missed_one_an_allowed_scope_and_a_false_alert():
    scenario = Scenario(
        "two spikes",
        "",
        RECORDS,
        expected=[event("topic", OIL, 30, 35), event("topic", "Macro", 30, 35)],
        allowed=[event("global", "all", 30, 35)],
    )
    outcome, alerts = run(scenario, CONFIG)
    assert len(alerts) == 4
    assert (outcome.events, outcome.detected) == (2, 1)  # Macro never alerts
    # Counted: the first topic episode (true) and the second (no event), and the second
    # global episode (outside what the spike allows); the first global one is allowed.
    assert (outcome.alerts, outcome.true_alerts) == (3, 1)
    assert sorted((a.scope, a.episode_start) for a in outcome.false) == [("global", at(101)), ("topic", at(101))]
    delay = (first_emission("topic", 31) - at(30)).total_seconds() / CONFIG.bucket_s
    assert outcome.delays_buckets == [pytest.approx(delay)] and 1 <= delay < 2


def test_an_alert_within_the_grace_period_after_an_event_still_matches_it():
    scenario = Scenario(
        "late", "", RECORDS, expected=[event("topic", OIL, 10, 20)], allowed=[event("global", "all", 0, 130)]
    )
    within, _ = run(scenario, CONFIG, grace=timedelta(minutes=30))  # the episode starts 10 min after the event
    assert (within.detected, within.alerts, within.true_alerts, len(within.false)) == (1, 2, 1, 1)
    delay = (first_emission("topic", 31) - at(10)).total_seconds() / CONFIG.bucket_s
    assert within.delays_buckets == [pytest.approx(delay)] and delay > 20
    beyond, _ = run(scenario, CONFIG, grace=timedelta(minutes=5))
    assert (beyond.detected, beyond.alerts, beyond.true_alerts, len(beyond.false)) == (0, 2, 0, 2)
    assert beyond.delays_buckets == []


def test_a_second_alert_for_the_same_event_is_a_repeat():
    scenario = Scenario(
        "one long event", "", RECORDS, expected=[event("topic", OIL, 30, 105)], allowed=[event("global", "all", 0, 130)]
    )
    outcome, _ = run(scenario, CONFIG)
    assert (outcome.events, outcome.detected, outcome.alerts, outcome.true_alerts) == (1, 1, 2, 1)
    assert [(a.scope, a.episode_start) for a in outcome.false] == [("topic", at(101))]


def test_table_adds_up_runs_into_recall_precision_and_median_delay(monkeypatch):
    def hand_built(seed: int) -> Scenario:
        return Scenario(
            "hand-built",
            "",
            RECORDS,
            expected=[event("topic", OIL, 30, 35), event("topic", "Macro", 30, 35)],
            allowed=[event("global", "all", 30, 35)],
        )

    made = []
    real = scenarios.NearDuplicateIndex.from_settings

    def from_settings(settings):
        made.append(settings)
        return real(settings)

    monkeypatch.setitem(scenarios.SCENARIOS, "hand_built", hand_built)
    monkeypatch.setattr(scenarios.NearDuplicateIndex, "from_settings", from_settings)
    markdown, total = table(CONFIG, seeds=range(2), names=["hand_built"])
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in markdown.splitlines()[2:]]
    delay = (first_emission("topic", 31) - at(30)).total_seconds() / CONFIG.bucket_s
    # Per run: 2 events, 1 detected, 3 counted alerts of which 2 false.
    assert rows == [
        ["hand-built", "2", "4", "2", "0.50", "6", "4", "0.33", f"{delay:.1f}"],
        ["**all**", "2", "4", "2", "0.50", "6", "4", "0.33", f"{delay:.1f}"],
    ]
    assert (total.events, total.detected, total.alerts, total.true_alerts, len(total.false)) == (4, 2, 6, 2, 4)
    # Each run has its own near-duplicate index, configured from the Settings defaults.
    assert len(made) == 2 and all(s.model_dump() == Settings().model_dump() for s in made)
