"""The detector on synthetic streams: what must alert does, within two buckets; noise, a
quiet night and one syndicated story do not; one episode is one alert; state survives a
restart; replay is deterministic."""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from datetime import datetime, timedelta

import alert_scenarios as scenarios
import pytest
from alert_scenarios import StreamBuilder

from finsentry.alerting.config import DetectorConfig, Thresholds
from finsentry.alerting.detector import Detector
from finsentry.alerting.observations import Observation, fan_out
from finsentry.alerting.replay import replay, replay_events, to_scored

CONFIG = DetectorConfig()  # the defaults of Settings
SPIKE_TOPIC = "Energy / Oil"


def without_dedup(records: list[dict]) -> list[dict]:
    """Mark records as already checked for near-duplicates (dup_of: null), as the store's
    export is; keeps the tests that are not about duplicates fast."""
    return [{**r, "dup_of": None} for r in records]


def spike_stream(seed: int = 1, minutes: int = 70, spike_at: int = 50, per_minute: float = 20.0) -> list[dict]:
    b = StreamBuilder(seed)
    b.background(minutes)
    b.burst(spike_at, 8, per_minute, SPIKE_TOPIC)
    return without_dedup(b.sorted_records())


class JsonTable(MutableMapping):
    """Stores values as JSON text, like a changelog-backed table: a value mutated in place
    after assignment is lost, and a value that is not JSON-serialisable fails loudly."""

    def __init__(self, data: dict[str, str] | None = None):
        self.data: dict[str, str] = dict(data or {})
        self.assignments = 0

    def __getitem__(self, key):
        return json.loads(self.data[key])

    def __setitem__(self, key, value):
        self.data[key] = json.dumps(value)
        self.assignments += 1

    def __delitem__(self, key):
        del self.data[key]

    def __iter__(self):
        return iter(self.data)

    def __len__(self):
        return len(self.data)


def run_detector(records: list[dict], state: MutableMapping | None = None, config: DetectorConfig = CONFIG):
    detector = Detector(config, state if state is not None else {}, record_metrics=False)
    alerts = []
    for record in records:
        doc, _ = to_scored(record)
        for obs in fan_out(doc):
            alerts += detector.observe(obs)
    return alerts


def test_a_spike_in_one_topic_is_detected_within_two_buckets():
    records = spike_stream()
    spike_start = scenarios.START + timedelta(minutes=50)
    state = JsonTable()
    alerts = run_detector(records, state)
    opened = [a for a in alerts if a.change == "opened"]
    topic = [a for a in opened if a.scope == "topic"]
    assert [a.key for a in topic] == [SPIKE_TOPIC]
    delay_buckets = (topic[0].updated_at - spike_start).total_seconds() / CONFIG.bucket_s
    assert 0 <= delay_buckets <= 2.0
    # The alert says what happened and shows the stories behind it.
    first = topic[0]
    assert first.negative_share > first.baseline + 0.5 and first.statistic >= CONFIG.defaults.z
    assert first.volume >= CONFIG.defaults.min_count
    assert 0 < len(first.evidence) <= CONFIG.evidence_docs
    assert all(e.score < 0 for e in first.evidence)
    assert first.evidence == sorted(first.evidence, key=lambda e: e.score)
    assert {s for s in (a.scope for a in opened)} <= {"topic", "global"}  # the spike lifts global too
    assert state.assignments > 0


def test_the_same_stream_without_the_spike_raises_nothing():
    b = StreamBuilder(1)
    b.background(70)
    assert run_detector(without_dedup(b.sorted_records())) == []


def test_steady_noise_raises_nothing():
    b = StreamBuilder(7)
    b.background(4 * 60, entities={"ACME": 1.0})
    assert run_detector(without_dedup(b.sorted_records())) == []


def test_a_low_volume_night_raises_nothing():
    records = scenarios.low_volume_night(3).records
    # Bursts of three negative tweets are there, and would be a large share of their window.
    assert sum(1 for r in records if r["sentiment"]["label"] == "negative") > 20
    assert replay(records, CONFIG) == []


def test_fifty_copies_of_one_negative_story_raise_nothing_but_fifty_stories_do():
    copies = StreamBuilder(2)
    copies.background(50)
    copies.syndicate(40, 50, 5, SPIKE_TOPIC, ("XOM",))
    assert replay(copies.sorted_records(), CONFIG) == []
    # Control: the same volume of *different* negative stories at the same time is a spike.
    stories = StreamBuilder(2)
    stories.background(50)
    for i in range(50):
        stories.add(40 + 5 * i / 50, SPIKE_TOPIC, True, ("XOM",))
    alerts = replay(stories.sorted_records(), CONFIG)
    assert ("topic", SPIKE_TOPIC) in {(a.scope, a.key) for a in alerts}


def test_copies_are_counted_as_duplicates_in_the_alert():
    b = StreamBuilder(4)
    b.background(50)
    b.burst(40, 6, 20, SPIKE_TOPIC)
    b.syndicate(41, 30, 3, SPIKE_TOPIC)
    alerts = [a for a in replay(b.sorted_records(), CONFIG) if a.scope == "topic"]
    assert len(alerts) == 1
    assert alerts[0].duplicates > 0
    assert len({e.id for e in alerts[0].evidence}) == len(alerts[0].evidence)


def test_one_episode_gives_one_alert_updated_then_resolved():
    alerts = [a for a in run_detector(spike_stream()) if a.scope == "topic"]
    assert len({a.id for a in alerts}) == 1
    assert alerts[0].change == "opened" and alerts[0].status == "firing"
    assert [a.update for a in alerts] == list(range(len(alerts)))
    assert {a.change for a in alerts[1:-1]} <= {"updated", "escalated"}
    assert alerts[-1].change == "resolved" and alerts[-1].status == "resolved"
    assert alerts[-1].ended_at is not None and alerts[-1].ended_at > alerts[0].episode_start
    assert all(b.updated_at >= a.updated_at for a, b in zip(alerts, alerts[1:]))
    severities = [a.severity for a in alerts]
    assert severities == sorted(severities, key=["warning", "critical"].index)  # only ever goes up


def test_a_lull_inside_an_episode_does_not_raise_a_second_alert():
    b = StreamBuilder(0)
    b.background(80)
    b.burst(50, 6, 15, "Financials")
    b.burst(61, 6, 15, "Financials")  # a five-minute pause in the middle
    events = list(replay_events(without_dedup(b.sorted_records()), CONFIG))
    financials = [a for a in events if (a.scope, a.key) == ("topic", "Financials")]
    assert len({a.id for a in financials}) == 1
    assert [a.change for a in financials].count("opened") == 1
    assert financials[-1].ended_at > scenarios.START + timedelta(minutes=66)


def test_a_second_episode_after_the_cooldown_is_a_new_alert():
    b = StreamBuilder(0)
    b.background(120)
    b.burst(40, 6, 20, SPIKE_TOPIC)
    b.burst(90, 6, 20, SPIKE_TOPIC)  # well after the first episode ended plus the cooldown
    config = DetectorConfig(defaults=Thresholds(cooldown_s=900))
    alerts = [a for a in replay(without_dedup(b.sorted_records()), config) if a.scope == "topic"]
    assert [(a.key, a.status) for a in alerts] == [(SPIKE_TOPIC, "resolved")] * 2
    assert alerts[0].id != alerts[1].id


def test_a_renewed_spike_within_the_cooldown_reopens_the_same_alert():
    b = StreamBuilder(5)
    b.background(90)
    b.burst(40, 5, 20, SPIKE_TOPIC)
    b.burst(60, 5, 20, SPIKE_TOPIC)  # 15 quiet minutes: the first episode has ended
    events = [a for a in replay_events(without_dedup(b.sorted_records()), CONFIG) if a.scope == "topic"]
    changes = [a.change for a in events]
    assert changes.count("opened") == 1 and "reopened" in changes
    assert changes.index("resolved") < changes.index("reopened")
    assert len({a.id for a in events}) == 1


def test_the_same_surge_a_day_later_alerts_again():
    """A surge then nothing until the same hour the next day, when it happens again (the
    demo sample on consecutive days): the first surge must not have become the topic's
    norm, however few quiet stories came after it."""
    b = StreamBuilder(3)
    b.background(70, per_minute=8.0)
    b.burst(20, 9, 25, SPIKE_TOPIC)
    day = without_dedup(b.sorted_records())
    later = [
        {
            **r,
            "id": f"next-{r['id']}",
            "published_at": (
                scenarios.START + timedelta(days=1) + (datetime.fromisoformat(r["published_at"]) - scenarios.START)
            ).isoformat(),
        }
        for r in day
    ]
    alerts = [a for a in replay(day + later, CONFIG) if (a.scope, a.key) == ("topic", SPIKE_TOPIC)]
    assert [(a.episode_start - scenarios.START).days for a in alerts] == [0, 1], [
        (a.episode_start.isoformat(), round(a.baseline, 2)) for a in alerts
    ]
    assert alerts[1].baseline < 0.45  # moved by the first surge a little, not to its share


def test_baselines_survive_a_restart():
    records = spike_stream(seed=2)
    whole = run_detector(records)
    # Stop half way, as a worker would, and go on with a new detector over the same state,
    # recovered from its JSON form as a changelog would restore it.
    state = JsonTable()
    cut = len(records) // 2
    first_half = run_detector(records[:cut], state)
    recovered = JsonTable(state.data)
    second_half = run_detector(records[cut:], recovered)
    assert first_half == []  # the spike is in the second half
    assert [a.model_dump() for a in second_half] == [a.model_dump() for a in whole]
    # A detector that lost its state would not have a baseline yet and stay silent.
    assert run_detector(records[cut:]) != whole


def test_replay_is_deterministic():
    b = StreamBuilder(3)
    b.background(60)
    b.burst(45, 6, 20, SPIKE_TOPIC)
    b.syndicate(46, 10, 3, SPIKE_TOPIC)
    records = b.sorted_records()
    once = [a.model_dump() for a in replay_events(records, CONFIG)]
    twice = [a.model_dump() for a in replay_events(records, CONFIG)]
    assert once and once == twice


def test_records_later_than_the_lateness_bound_are_not_counted_but_counted_as_late():
    detector = Detector(CONFIG, {}, record_metrics=False)
    b = StreamBuilder(1)
    b.background(30)
    for record in without_dedup(b.sorted_records()):
        for obs in fan_out(to_scored(record)[0]):
            detector.observe(obs)
    state_before = dict(detector.state["global:all"])
    late = Observation(
        scope="global",
        key="all",
        doc_id="late",
        published_at=scenarios.START + timedelta(minutes=1),
        negative=True,
        score=-0.9,
    )
    assert detector.observe(late) == []
    after = dict(detector.state["global:all"])
    assert (state_before.pop("late"), after.pop("late")) == (0, 1)  # never dropped silently
    assert json.dumps(after, sort_keys=True) == json.dumps(state_before, sort_keys=True)


def test_tick_ends_the_episode_of_a_scope_that_went_quiet():
    records = spike_stream(minutes=56, spike_at=50)  # the stream stops during the spike
    detector = Detector(CONFIG, {}, record_metrics=False)
    alerts = []
    for record in records:
        for obs in fan_out(to_scored(record)[0]):
            alerts += detector.observe(obs)
    topic = [a for a in alerts if a.scope == "topic"]
    assert topic and topic[-1].status == "firing"
    later = scenarios.START + timedelta(minutes=90)
    ticked = [a for a in detector.tick(later) if a.scope == "topic"]
    # The clock moves boundary by boundary: updates while the spike is still in the window, then the end.
    assert [a.status for a in ticked][-1] == "resolved" and {a.id for a in ticked} == {topic[0].id}
    assert [a.change for a in ticked[:-1]] == ["updated"] * (len(ticked) - 1) and len(ticked) <= CONFIG.window_buckets
    assert detector.tick(later) == []  # nothing more to say


def drift_stream(seed: int) -> list[dict]:
    """Macro, 4 stories/min: 30% negative for 2 h, rising to 60% over 2 h, then staying."""
    b = StreamBuilder(seed)
    for minute in range(300):
        share = 0.3 + 0.3 * min(1.0, max(0.0, (minute - 120) / 120))
        for _ in range(b._poisson(4.0)):
            b.add(minute + b.rng.random(), "Macro", b.rng.random() < share)
    return without_dedup(b.sorted_records())


def test_cusum_finds_a_slow_drift_the_window_test_misses():
    records = drift_stream(0)
    with_cusum = [a for a in replay(records, CONFIG) if (a.scope, a.key) == ("topic", "Macro")]
    assert [a.method for a in with_cusum] == ["cusum"]
    assert with_cusum[0].negative_share > with_cusum[0].baseline
    no_cusum = DetectorConfig(defaults=Thresholds(cusum_h=0.0))
    assert [a for a in replay(records, no_cusum) if (a.scope, a.key) == ("topic", "Macro")] == []


def test_a_disabled_scope_stays_silent():
    config = DetectorConfig(overrides={("topic", SPIKE_TOPIC): Thresholds(enabled=False)})
    alerts = run_detector(spike_stream(), config=config)
    assert all(a.key != SPIKE_TOPIC for a in alerts)


@pytest.mark.parametrize("z_critical, severity", [(5.0, "critical"), (50.0, "warning")])
def test_severity_follows_the_critical_threshold(z_critical, severity):
    config = DetectorConfig(defaults=Thresholds(z_critical=z_critical))
    topic = [a for a in run_detector(spike_stream(), config=config) if a.scope == "topic"]
    assert topic[-1].severity == severity


def test_batched_messages_give_the_alerts_and_state_of_one_at_a_time_with_fewer_writes():
    """The worker applies observations in batches (groups per scope, ticks in between);
    each scope must see exactly the sequence it would one by one."""
    from finsentry.alerting.observations import Tick, group_by_scope

    records = spike_stream(seed=3)
    observations = [obs for record in records for obs in fan_out(to_scored(record)[0])]
    one_by_one, one_state = [], JsonTable()
    single = Detector(CONFIG, one_state, record_metrics=False)
    batched, batch_state = [], JsonTable()
    grouped = Detector(CONFIG, batch_state, record_metrics=False)
    for start in range(0, len(observations), 50):
        chunk = observations[start : start + 50]
        tick = Tick(tick=chunk[-1].published_at.timestamp() + 30, key="topic:" + SPIKE_TOPIC)
        for obs in chunk[:25]:
            one_by_one += single.observe(obs)
        one_by_one += single.tick(tick.tick, keys=[tick.key])
        for obs in chunk[25:]:
            one_by_one += single.observe(obs)
        batched += grouped.apply([*group_by_scope(chunk[:25]), tick, *group_by_scope(chunk[25:])])

    def by_scope(alerts):
        return sorted((a.scope, a.key, a.update, a.change, a.model_dump_json()) for a in alerts)

    assert any(a.change == "opened" for a in one_by_one)
    assert by_scope(batched) == by_scope(one_by_one)
    assert batch_state.data == one_state.data
    assert batch_state.assignments < one_state.assignments / 3  # entities are many and sparse


def test_an_entity_spike_is_detected_on_the_entity_within_two_buckets():
    scenario = scenarios.entity_spike(3)
    [event] = scenario.expected
    opened = [a for a in run_detector(without_dedup(scenario.records)) if a.change == "opened"]
    entity = [a for a in opened if a.scope == "entity"]
    assert [a.key for a in entity] == ["ACME"]
    assert 0 <= (entity[0].updated_at - event.start).total_seconds() / CONFIG.bucket_s <= 2.0
    assert entity[0].evidence and all(e.title.startswith("ACME ") for e in entity[0].evidence)
    assert {(a.scope, a.key) for a in opened} <= {(e.scope, e.key) for e in [*scenario.expected, *scenario.allowed]}


def market_wide_stream(seed: int, shift: float) -> list[dict]:
    """Every topic's negative share rises by `shift` for 8 minutes: too few stories per
    topic to alert on any one of them, together a clear move of the whole market."""
    b = StreamBuilder(seed)
    b.background(120, negative_shift=lambda minute, topic: shift if 90 <= minute < 98 else 0.0)
    return without_dedup(b.sorted_records())


def test_a_market_wide_rise_is_detected_on_the_global_scope():
    start = scenarios.START + timedelta(minutes=90)
    opened = [a for a in run_detector(market_wide_stream(1, 0.35)) if a.change == "opened"]
    assert [(a.scope, a.key) for a in opened] == [("global", "all")]
    assert 0 <= (opened[0].updated_at - start).total_seconds() / CONFIG.bucket_s <= 3.0
    assert opened[0].negative_share > opened[0].baseline + 0.2
    assert run_detector(market_wide_stream(1, 0.0)) == []  # the same stream without the rise


def newest_closed_share(records: list[dict], topic: str, next_close: int) -> float:
    """The negative share of the newest closed bucket with stories of `topic`, from the records."""
    buckets: dict[int, list[bool]] = {}
    for record in records:
        if record["topic"]["label"] == topic:
            doc = to_scored(record)[0]
            index = int(doc.published_at.timestamp() // CONFIG.bucket_s)
            buckets.setdefault(index, []).append(doc.sentiment.label == "negative")
    newest = max(i for i in buckets if i < next_close)
    return sum(buckets[newest]) / len(buckets[newest])


def test_metrics_export_the_negative_share_per_topic_and_count_raised_alerts():
    from prometheus_client import REGISTRY

    records = spike_stream(seed=4, minutes=57)  # ends inside the spike: the newest closed buckets are in it
    pairs = {(scope, severity) for scope in ("global", "topic", "entity") for severity in ("warning", "critical")}

    def raised() -> dict:
        return {
            p: REGISTRY.get_sample_value("finsentry_alerts_total", {"scope": p[0], "severity": p[1]}) or 0.0
            for p in pairs
        }

    before = raised()
    detector = Detector(CONFIG, {}, record_metrics=True)
    alerts = []
    for record in records:
        for obs in fan_out(to_scored(record)[0]):
            alerts += detector.observe(obs)
    after = raised()
    opened = [a for a in alerts if a.change == "opened"]
    assert any(a.scope == "topic" for a in opened)
    assert {p: after[p] - before[p] for p in pairs} == {
        p: float(sum((a.scope, a.severity) == p for a in opened)) for p in pairs
    }
    topics = {r["topic"]["label"] for r in records}
    for topic in topics:
        state = detector.state[f"topic:{topic}"]
        gauge = REGISTRY.get_sample_value("finsentry_negative_share", {"topic": topic})
        assert gauge == pytest.approx(newest_closed_share(records, topic, state["next_close"])), topic
    assert REGISTRY.get_sample_value("finsentry_negative_share", {"topic": SPIKE_TOPIC}) > 0.6


def test_observations_delivered_again_after_a_restart_are_counted_once():
    """A restarted or rebalanced worker reads again from its last commit, so the detector
    sees again observations its recovered state has counted. They must change nothing."""
    records = spike_stream(seed=2)
    observations = [obs for record in records for obs in fan_out(to_scored(record)[0])]
    once_state = JsonTable()
    once = Detector(CONFIG, once_state, record_metrics=False).observe_many(observations)
    state = JsonTable()
    cut = len(observations) * 3 // 4
    before = Detector(CONFIG, state, record_metrics=False).observe_many(observations[:cut])
    # Recovered from the changelog, then the last minutes before the cut delivered again:
    # open buckets, and closed ones the scope still keeps (its shortest window).
    horizon = CONFIG.lateness_s + (CONFIG.window_buckets - 1) * CONFIG.bucket_s
    newest = observations[cut - 1].published_at.timestamp()
    first = next(i for i, o in enumerate(observations) if o.published_at.timestamp() >= newest - horizon)
    again = observations[first:]
    assert cut - first > 500
    restarted = JsonTable(state.data)
    after = Detector(CONFIG, restarted, record_metrics=False).observe_many(again)
    assert [a.model_dump() for a in before + after] == [a.model_dump() for a in once]
    assert any(a.change == "opened" for a in once)
    recovered = {k: json.loads(v) for k, v in restarted.data.items()}
    assert recovered == {k: json.loads(v) for k, v in once_state.data.items()}
    assert sum(v.get("late", 0) for v in recovered.values()) == 0  # not mistaken for late records


def test_state_of_version_2_is_carried_over():
    """Buckets written before they marked their documents load without marks; the detector
    goes on, and writes the current version."""
    from finsentry.alerting.detector import STATE_VERSION, ScopeState

    observations = [obs for record in spike_stream(seed=2) for obs in fan_out(to_scored(record)[0])]
    state: dict = {}
    Detector(CONFIG, state, record_metrics=False).observe_many(observations[:3000])
    old = {
        k: ({**raw, "v": 2, "buckets": {i: b[:4] for i, b in raw["buckets"].items()}} if "buckets" in raw else raw)
        for k, raw in state.items()
    }
    loaded = ScopeState.load(old["global:all"], "global", "all")
    assert STATE_VERSION == 4 and loaded.buckets and all(not b.counted for b in loaded.buckets.values())
    assert [b.dump()[:4] for b in loaded.buckets.values()] == list(old["global:all"]["buckets"].values())
    Detector(CONFIG, old, record_metrics=False).observe_many(observations[3000:3500])
    assert old["global:all"]["v"] == 4
