"""Observations fan out per scope; the detector's configuration comes from Settings, with
per-scope overrides parsed from one string and bad ones refused with a clear reason."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from finsentry.alerting.config import DetectorConfig, Thresholds, parse_overrides
from finsentry.alerting.observations import fan_out
from finsentry.records import ScoredDocument, Sentiment, Topic
from finsentry.settings import Settings


def scored(**changes) -> ScoredDocument:
    base = dict(
        id="d1",
        source="wire-a",
        title="Exxon and Chevron slump",
        text="Exxon and Chevron slump",
        published_at=datetime(2026, 1, 5, 13, 0, tzinfo=timezone.utc),
        sentiment=Sentiment(
            label="negative", probabilities={"negative": 0.9, "neutral": 0.05, "positive": 0.05}, score=-0.85
        ),
        topic=Topic(label="Energy / Oil", probability=0.8),
        entities=["XOM", "CVX", "XOM", ""],
        model_version="v1",
        dup_of="d0",
    )
    return ScoredDocument(**{**base, **changes})


def test_fan_out_gives_global_topic_and_each_distinct_entity():
    obs = fan_out(scored())
    assert [(o.scope, o.key) for o in obs] == [
        ("global", "all"),
        ("topic", "Energy / Oil"),
        ("entity", "XOM"),
        ("entity", "CVX"),
    ]
    assert [o.state_key for o in obs][:2] == ["global:all", "topic:Energy / Oil"]
    assert all(o.negative and o.score == -0.85 and o.dup_of == "d0" and o.doc_id == "d1" for o in obs)


def test_fan_out_marks_only_negative_labels_negative():
    assert not any(
        o.negative for o in fan_out(scored(sentiment=Sentiment(label="neutral", probabilities={}, score=-0.3)))
    )


def test_config_from_settings_uses_every_alert_setting():
    settings = Settings(
        _env_file=None,
        alert_bucket_s=30,
        alert_window_buckets=4,
        alert_z_threshold=5.0,
        alert_min_count=12,
        alert_cusum_h=0,
        watched_entities="aapl, msft",
        alert_scope_overrides="entity=min=8",
    )
    config = DetectorConfig.from_settings(settings)
    assert (config.bucket_s, config.window_buckets) == (30, 4)
    assert config.defaults.z == 5.0 and config.defaults.min_count == 12 and config.defaults.cusum_h == 0
    assert config.watched_entities == ("AAPL", "MSFT")
    assert config.thresholds("entity", "AAPL").min_count == 8
    assert config.thresholds("topic", "Earnings") is config.defaults


def test_overrides_layer_key_over_scope_over_defaults():
    defaults = Thresholds()
    parsed = parse_overrides(
        "topic:earnings=z=5,min=30; entity=min=10,cooldown=60 ;entity:AAPL=z=3;entity:SPY=off", defaults
    )
    config = DetectorConfig(overrides=parsed)
    earnings = config.thresholds("topic", "Earnings")  # topic names are matched without regard to case
    assert (earnings.z, earnings.min_count, earnings.z_critical) == (5.0, 30, defaults.z_critical)
    aapl = config.thresholds("entity", "AAPL")
    assert (aapl.z, aapl.min_count, aapl.cooldown_s) == (3.0, 10, 60.0)
    assert config.thresholds("entity", "MSFT").min_count == 10
    assert config.thresholds("entity", "SPY").enabled is False
    assert config.thresholds("global", "all") == defaults


@pytest.mark.parametrize(
    "text, message",
    [
        ("topic:Earnings", "expected 'scope"),
        ("sector:Tech=z=3", "scope must be one of"),
        ("topic:Crypto=z=3", "unknown topic 'Crypto'"),
        ("entity:AAPL=zz=3", "unknown setting 'zz=3'"),
        ("entity:AAPL=z=high", "z must be a number"),
    ],
)
def test_bad_overrides_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_overrides(text, Thresholds())


def test_bad_detector_settings_are_refused():
    with pytest.raises(ValueError, match="alert_bucket_s"):
        DetectorConfig(bucket_s=0)
    with pytest.raises(ValueError, match="alert_window_buckets"):
        DetectorConfig(window_buckets=0)
