"""Drift detection on synthetic scored streams: quiet on a stream like the training mix,
firing with evidence on a shifted one; fresh analyst labels; and the trainer reading its
window from the real SQLite store."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from training_helpers import synthetic_records

from finsentry.labels import TOPIC_LABELS
from finsentry.models.registry import Registry
from finsentry.records import Label
from finsentry.training.drift import Profile, check_drift, psi
from finsentry.training.pipeline import RunResult
from finsentry.training.scheduler import Trainer

TRAIN_SENTIMENT = {"negative": 0.15, "neutral": 0.65, "positive": 0.20}
TRAIN_TOPICS = {t: (0.2 if i == 2 else 0.8 / 19) for i, t in enumerate(TOPIC_LABELS)}
SHIFTED_SENTIMENT = {"negative": 0.55, "neutral": 0.35, "positive": 0.10}
SHIFTED_TOPICS = {t: (0.6 if t == "Energy / Oil" else 0.4 / 19) for t in TOPIC_LABELS}


def dicts(records) -> list[dict]:
    return [r.model_dump(mode="json") for r in records]


@pytest.fixture
def reference() -> Profile:
    """The serving model's predictions on its held-out split, here drawn from the training mix."""
    return Profile.from_records(dicts(synthetic_records(2000, TRAIN_SENTIMENT, TRAIN_TOPICS, 0.85, "m1", seed=1)))


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_psi_is_zero_for_the_same_mix_and_grows_with_the_shift():
    assert psi(TRAIN_SENTIMENT, TRAIN_SENTIMENT) == pytest.approx(0.0)
    mild = {"negative": 0.20, "neutral": 0.60, "positive": 0.20}
    assert 0 < psi(TRAIN_SENTIMENT, mild) < psi(TRAIN_SENTIMENT, SHIFTED_SENTIMENT)
    assert psi(TRAIN_SENTIMENT, {"negative": 0.0, "neutral": 1.0, "positive": 0.0}) < float("inf")


def test_unshifted_stream_does_not_fire(training_settings, reference):
    window = dicts(synthetic_records(500, TRAIN_SENTIMENT, TRAIN_TOPICS, 0.85, "m1", seed=2))
    report = check_drift(reference, window, training_settings(), version="m1")
    assert not report.drifted, report.triggers
    assert report.window == 500
    assert report.measurements["psi_sentiment"] < 0.05 and report.measurements["psi_topic"] < 0.1
    assert abs(report.measurements["confidence_drop_sentiment"]) < 0.02


def test_shifted_stream_fires_with_evidence_and_metrics(training_settings, reference):
    before = sample("finsentry_drift_triggers_total", reason="psi_sentiment")
    window = dicts(synthetic_records(500, SHIFTED_SENTIMENT, SHIFTED_TOPICS, 0.62, "m1", seed=3))
    report = check_drift(reference, window, training_settings(), version="m1")
    reasons = {t.reason: t for t in report.triggers}
    assert set(reasons) == {"psi_sentiment", "psi_topic", "confidence_sentiment", "confidence_topic"}
    psi_sent = reasons["psi_sentiment"]
    assert psi_sent.value > 0.2 and psi_sent.threshold == 0.2
    assert psi_sent.evidence["window_mix"]["negative"] > 0.45 and psi_sent.evidence["reference_mix"]["neutral"] > 0.6
    assert reasons["confidence_sentiment"].evidence["window_confidence"] < 0.7
    assert sample("finsentry_drift_triggers_total", reason="psi_sentiment") == before + 1
    assert sample("finsentry_drift_psi", head="sentiment") == pytest.approx(psi_sent.value)


def test_records_of_another_version_are_not_counted(training_settings, reference):
    old = dicts(synthetic_records(500, SHIFTED_SENTIMENT, SHIFTED_TOPICS, 0.6, "m0", seed=4))
    report = check_drift(reference, old, training_settings(), version="m1")
    assert not report.drifted and report.window == 0
    assert "fewer than 200" in report.notes[0]


def _labelled(n: int, wrong_every: int) -> list[tuple[Label, dict]]:
    records = dicts(synthetic_records(n, TRAIN_SENTIMENT, TRAIN_TOPICS, 0.85, "m1", seed=5))
    pairs = []
    for i, r in enumerate(records):
        served = r["sentiment"]["label"]
        other = "negative" if served != "negative" else "positive"
        pairs.append((Label(doc_id=r["id"], sentiment=other if i % wrong_every == 0 else served), r))
    return pairs


def test_falling_accuracy_on_fresh_labels_fires(training_settings, reference):
    settings = training_settings()
    bad = check_drift(reference, [], settings, _labelled(40, wrong_every=2), version="m1")
    assert [t.reason for t in bad.triggers] == ["label_accuracy_sentiment"]
    assert bad.triggers[0].evidence == {"correct": 20, "labels": 40}
    good = check_drift(reference, [], settings, _labelled(40, wrong_every=10), version="m1")
    assert not good.drifted and good.measurements["label_accuracy_sentiment"] == pytest.approx(0.9)
    few = check_drift(reference, [], settings, _labelled(10, wrong_every=1), version="m1")
    assert not few.drifted and any("fewer than 30" in n for n in few.notes)


def _serving_registry(root: Path) -> Registry:
    art = root / "art"
    art.mkdir(parents=True)
    (art / "card.json").write_text(json.dumps({"version": "m1", "data": {}}))
    (art / "weights.safetensors").write_bytes(b"opaque")
    registry = Registry(root / "registry", shipped=None)
    registry.register(art, {})
    registry.promote("m1")
    return registry


@pytest.mark.parametrize("shifted", [False, True])
async def test_trainer_checks_drift_from_the_store_and_retrains_on_it(training_settings, reference, tmp_path, shifted):
    from finsentry.store import open_store

    settings = training_settings(drift_check_interval_s=300)
    registry = _serving_registry(tmp_path)
    # The reference profile is computed from the model once per version and cached; the
    # cache stands in for the model here (the artifact above has no real weights).
    cache = Path(settings.data_dir) / "drift" / "drift-reference-m1.json"
    cache.parent.mkdir(parents=True)
    cache.write_text(json.dumps(reference.__dict__))
    mixes = (SHIFTED_SENTIMENT, SHIFTED_TOPICS, 0.6) if shifted else (TRAIN_SENTIMENT, TRAIN_TOPICS, 0.85)
    runs: list[tuple[str, dict]] = []

    def run(settings_, registry_, labels, trigger, evidence):  # the training run itself is tested in test_retrain.py
        runs.append((trigger, evidence))
        return RunResult(trigger, "rejected", "m2", ["test run"])

    now = datetime(2025, 3, 5, 12, 0, tzinfo=timezone.utc)
    async with open_store(settings.store, settings) as store:
        await store.upsert_many(synthetic_records(400, *mixes, "m1", seed=7))
        trainer = Trainer(settings, registry, store, clock=lambda: now, run=run)
        assert await trainer.tick(now) == []  # not due yet
        results = await trainer.tick(now + timedelta(seconds=300))
    assert trainer.last_drift is not None and trainer.last_drift.window == 400
    if shifted:
        assert [r.trigger for r in results] == ["drift"] and len(runs) == 1
        assert {t["reason"] for t in runs[0][1]["triggers"]} >= {"psi_sentiment", "psi_topic"}
    else:
        assert results == [] and runs == []
