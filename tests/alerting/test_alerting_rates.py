"""The detector at the rates real news arrives: exact small-count tails, a quiet company's
burst found over the hour, the traps silent, and a small run of the benchmark's streams
meeting the targets of docs/alerting.md (the full table: benchmarks/detector_scenarios.py)."""

from __future__ import annotations

import math

import news_rates as newsrates
import pytest
from alert_scenarios import rate_table

from finsentry.alerting.config import DetectorConfig
from finsentry.alerting.replay import replay
from finsentry.alerting.stats import beta_binomial_sf, negative_binomial_sf, z_of_tail

CONFIG = DetectorConfig()  # the defaults of Settings


def binomial_sf(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))


def poisson_sf(k: int, mean: float) -> float:
    return 1.0 - sum(math.exp(-mean) * mean**j / math.factorial(j) for j in range(k))


@pytest.mark.parametrize("k, n, p", [(8, 14, 0.25), (5, 5, 0.2), (12, 40, 0.1), (30, 31, 0.5)])
def test_the_share_tail_is_exact_and_tends_to_the_binomial(k, n, p):
    assert beta_binomial_sf(k, n, p, 1e7) == pytest.approx(binomial_sf(k, n, p), rel=1e-4)
    # An uncertain share makes a high count less surprising.
    assert beta_binomial_sf(k, n, p, 20.0) > beta_binomial_sf(k, n, p, 1e7)
    # All n negative: the tail is the product (a+j)/(a+b+j) of the beta-binomial.
    a, b = p * 20.0, (1 - p) * 20.0
    assert beta_binomial_sf(n, n, p, 20.0) == pytest.approx(
        math.prod((a + j) / (a + b + j) for j in range(n)), rel=1e-9
    )


@pytest.mark.parametrize("k, mean", [(5, 0.3), (9, 1.0), (20, 8.0)])
def test_the_rate_tail_is_exact_and_tends_to_the_poisson(k, mean):
    assert negative_binomial_sf(k, mean, 1e7) == pytest.approx(poisson_sf(k, mean), rel=1e-4)
    assert negative_binomial_sf(k, mean, 4.0) > poisson_sf(k, mean)


def test_the_floor_of_distinct_negative_stories_is_what_keeps_five_negatives_silent():
    from finsentry.alerting.buckets import Window
    from finsentry.alerting.config import Thresholds
    from finsentry.alerting.scales import judge
    from finsentry.alerting.stats import Baseline

    # A quiet scope: 0.01 stories a bucket, 20 % negative over some 100 stories.
    quiet = Baseline(share_stories=100.0, share_negatives=20.0, stories=1.0, negatives=0.2, weight=100.0, buckets=5000)
    five = Window(first=0, last=14, n=5, neg=5)
    assert not judge(five, quiet, Thresholds(), 3).hot(Thresholds())
    lower = Thresholds(min_negatives=5)
    assert judge(five, quiet, lower, 3).hot(lower)


def test_z_of_tail_is_the_normal_quantile():
    assert z_of_tail(3.167e-5) == pytest.approx(4.0, abs=1e-3)
    assert z_of_tail(0.7) == 0.0 and z_of_tail(0.0) > 30


def test_a_quiet_company_burst_alerts_on_the_company_at_a_longer_time_scale():
    scenario = newsrates.company_burst("3/day")(0)
    [event] = scenario.expected
    acme = [a for a in replay(scenario.records, CONFIG) if (a.scope, a.key) == ("entity", "ACME")]
    assert len(acme) == 1
    alert = acme[0]
    assert event.start <= alert.episode_start <= event.end
    assert alert.time_scale_s in (15 * 60, 60 * 60)  # three minutes never hold enough of it
    assert alert.volume >= 5 and alert.negative_share > alert.baseline + 0.3
    # Judged against the share from before the burst (22 % negative, a prior of 30 %), not
    # one the burst itself has already pulled up.
    assert alert.baseline < 0.32
    assert alert.evidence and all(e.title.startswith("ACME ") for e in alert.evidence)
    assert f"in {alert.time_scale_s // 60} min" in alert.summary


def test_the_same_company_without_its_burst_stays_silent():
    scenario = newsrates.company_burst("3/day")(0)
    [event] = scenario.expected
    calm = [
        r
        for r in scenario.records
        if not ("ACME" in r["entities"] and event.start.isoformat() <= r["published_at"] <= event.end.isoformat())
    ]
    assert [a for a in replay(calm, CONFIG) if a.scope == "entity"] == []


@pytest.mark.parametrize("name", ["syndicated_60", "negative_night"])
@pytest.mark.parametrize("seed", [0, 2])
def test_traps_stay_silent(name, seed):
    assert replay(newsrates.REALISTIC[name](seed).records, CONFIG) == []


@pytest.mark.xfail(
    strict=True,
    reason="trap not silent on seed 1: the trap's 4 negative night headlines meet two "
    "negative stories of the stream with their follow-ups, 11 negative of 15 in 8 minutes on a topic "
    "of one story in 3 minutes; a floor of 7 negatives does not silence it (docs/alerting.md)",
)
def test_the_negative_night_of_seed_1_stays_silent():
    assert replay(newsrates.REALISTIC["negative_night"](1).records, CONFIG) == []


def test_a_small_benchmark_run_meets_the_targets_for_sector_surges_and_the_null_stream():
    """Two seeds of the 3 and 10 a minute sector surges, two days of the null stream:
    every target event found within 5 minutes of event time, no false alarm on the
    surges, at most one per scope and week on the null stream."""
    names = ["sector_surge_3", "sector_surge_10"]
    _, outcomes = rate_table(CONFIG, newsrates.REALISTIC, range(2), names)
    for name in names:
        o = outcomes[name]
        assert o.target_events == 2 and o.target_detected == 2, name
        assert len(o.false) == 0, (name, [a.summary for a in o.false])
        assert sorted(o.delays_buckets)[0] * CONFIG.bucket_s / 60 <= 5.0, (name, o.delays_buckets)
    registry = {"null": lambda seed: newsrates.null_week(seed, days=2)}
    _, null = rate_table(CONFIG, registry, range(1))
    assert len(null["null"].false) / null["null"].scope_weeks <= 1.0


@pytest.mark.xfail(
    strict=True,
    reason="recall target not met: a company burst of 8-9 negative stories spread over "
    "most of an hour at a company with 12 a day or 5 an hour (seed 1 of 12/day, seed 0 of 5/h) and a "
    "sector surge of 1 story a minute stay below the threshold (docs/alerting.md, the table)",
)
def test_company_bursts_at_every_base_rate_and_the_smallest_surge_are_all_found():
    names = ["company_burst_12_per_day", "company_burst_5_per_h", "sector_surge_1"]
    _, outcomes = rate_table(CONFIG, newsrates.REALISTIC, range(2), names)
    assert all(outcomes[name].target_detected == outcomes[name].target_events for name in names), {
        name: (o.target_detected, o.target_events) for name, o in outcomes.items()
    }


def test_state_of_version_1_is_carried_over():
    """A worker upgraded over a changelog written by the previous release resumes with its
    baselines; the longer windows start empty."""
    from finsentry.alerting.detector import STATE_VERSION, ScopeState
    from finsentry.alerting.replay import replay_events

    scenario = newsrates.sector_surge(10.0)(0)
    state: dict = {}
    list(replay_events(scenario.records[:2000], CONFIG, state=state))
    old = {
        k: {
            **{
                f: v
                for f, v in raw.items()
                if f not in ("history", "recent", "reference", "reference_next", "reported_until")
            },
            "v": 1,
            "baseline": {f: v for f, v in raw["baseline"].items() if not f.startswith("share_")},
        }
        for k, raw in state.items()
        if "baseline" in raw
    }  # scopes, not the clock's own keys
    loaded = ScopeState.load(old["global:all"], "global", "all")
    assert STATE_VERSION == 4 and loaded.history == {} and loaded.reference_next == old["global:all"]["next_close"]
    assert loaded.baseline.share_stories == old["global:all"]["baseline"]["stories"]
    list(replay_events(scenario.records[2000:2100], CONFIG, state=old))  # goes on without an error
    assert old["global:all"]["v"] == 4 and "reference" in old["global:all"]


def test_state_of_version_3_is_carried_over_with_its_closed_buckets_as_ordinary_ones():
    """Version 3 kept [n, neg, dups] per closed bucket; version 4 adds whether a surge's
    episode covers it. An upgraded worker goes on with the counts it had."""
    from finsentry.alerting.detector import ScopeState
    from finsentry.alerting.replay import replay_events

    scenario = newsrates.sector_surge(10.0)(0)
    state: dict = {}
    list(replay_events(scenario.records[:2000], CONFIG, state=state))
    old = {
        k: {**raw, "v": 3, "history": {i: c[:3] for i, c in raw["history"].items()}}
        for k, raw in state.items()
        if "baseline" in raw
    }
    assert old["global:all"]["history"], "the test needs closed buckets waiting for the reference"
    loaded = ScopeState.load(old["global:all"], "global", "all")
    assert {i: c[:3] for i, c in loaded.history.items()} == {int(i): c for i, c in old["global:all"]["history"].items()}
    assert all(c[3] == 0 for c in loaded.history.values())
    ours = dict(state)
    a = list(replay_events(scenario.records[2000:2600], CONFIG, state=old))
    b = list(replay_events(scenario.records[2000:2600], CONFIG, state=ours))
    assert old["global:all"]["v"] == 4 and [x.id for x in a] == [x.id for x in b]
