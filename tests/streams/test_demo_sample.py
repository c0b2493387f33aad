"""The bundled demo stream does what the README promises: through the real model and the
same detector code the worker runs, its Energy / Oil episode raises a topic alert early
enough that, replayed at the demo's default 30× event time, it fires within two minutes."""

from __future__ import annotations

import ast
import fnmatch
import gzip
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from setuptools import find_packages

from finsentry.alerting.config import DetectorConfig
from finsentry.alerting.replay import replay
from finsentry.settings import Settings
from finsentry.streams.demo import SAMPLE, DemoOptions
from finsentry.textnorm import model_input


@pytest.fixture(scope="module")
def scored_sample(engine) -> list[dict]:
    """The sample's documents scored by the shipped model (the replay shape)."""
    records = []
    for line in gzip.open(SAMPLE, "rt", encoding="utf-8"):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("text") and doc.get("kind") in ("news", "review"):
            records.append(doc)
    preds = engine.predict([model_input(d.get("title"), d["text"]) for d in records])
    return [{**d, **p.as_record()} for d, p in zip(records, preds)]


def _event_time(record: dict) -> datetime:
    return datetime.fromisoformat(record["published_at"].replace("Z", "+00:00"))


def test_sample_episode_alerts_early_and_nothing_else_on_topics(scored_sample):
    scored = scored_sample
    start = min(_event_time(d) for d in scored)

    alerts = replay(scored, DetectorConfig.from_settings(Settings(_env_file=None)))
    topic_alerts = [a for a in alerts if a.scope == "topic"]
    assert [a.key for a in topic_alerts] == ["Energy / Oil"], [(a.scope, a.key) for a in alerts]
    first = min(topic_alerts, key=lambda a: a.window_end)
    offset_s = (first.window_end - start).total_seconds()
    assert offset_s / DemoOptions().speed < 90, offset_s  # leaves the worker half a minute to start
    assert first.negative_share > 0.6 and first.evidence
    # The alert says which time scale fired: a surge this dense shows within three minutes.
    assert first.time_scale_s == 3 * 60 and "in 3 min" in first.summary, first.summary


def test_the_same_surge_on_the_next_days_alerts_again(scored_sample):
    """The sample on three consecutive days, nothing in between (the same stories under new
    ids, a day later each time): a second identical crisis is as much news as the first.
    The surge of day 1 must not have become the Energy / Oil norm of day 2."""
    days = []
    for day in range(3):
        for number, record in enumerate(scored_sample):
            shifted = _event_time(record) + timedelta(days=day)
            days.append({**record, "id": f"day{day}-{number}", "published_at": shifted.isoformat()})
    days.sort(key=_event_time)
    alerts = replay(days, DetectorConfig.from_settings(Settings(_env_file=None)))
    energy = [a for a in alerts if (a.scope, a.key) == ("topic", "Energy / Oil")]
    start = min(_event_time(d) for d in scored_sample)
    assert sorted((a.episode_start - start).days for a in energy) == [0, 1, 2], [
        (a.episode_start.isoformat(), a.baseline) for a in energy
    ]
    # Each day judged against a baseline the earlier surges moved only a little.
    assert all(a.baseline < 0.4 and a.negative_share > 0.6 and a.time_scale_s for a in energy), [
        (a.baseline, a.negative_share, a.time_scale_s) for a in energy
    ]


REPO = Path(__file__).resolve().parents[2]


def test_sample_ships_in_the_wheel_with_its_attribution():
    """`pip install .` (the Docker image) has no checkout: the sample and the file crediting its
    data must sit in a package folder and match setup.py's package_data."""
    attribution = SAMPLE.parent / "SOURCES.md"
    assert "MIT" in attribution.read_text() and "data/tfn/SOURCES.md" in attribution.read_text()
    tree = ast.parse((REPO / "setup.py").read_text())
    patterns = next(
        ast.literal_eval(node.value)[""]
        for node in ast.walk(tree)
        if isinstance(node, ast.keyword) and node.arg == "package_data"
    )
    packages = {p.replace(".", "/") for p in find_packages(str(REPO / "ingest"))}
    for shipped in (SAMPLE, attribution):
        assert shipped.parent.relative_to(REPO / "ingest").as_posix() in packages, shipped
        assert any(fnmatch.fnmatch(shipped.name, pattern) for pattern in patterns), shipped.name
