"""The shipped model through the engine: shapes, quality, calibration, backends, swap."""

from __future__ import annotations

import csv
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from finsentry.models import engine as engine_mod
from finsentry.models.backends import TorchBackend, cpu_has_native_bf16, cuda_available
from finsentry.models.classifier import load_artifact, save_artifact
from finsentry.models.engine import SHIPPED_MODEL, Engine, LoadedModel, candidate_backends, load_model
from finsentry.models.labels import SENTIMENT_LABELS, TFNS_TO_SENTIMENT, TOPIC_LABELS
from finsentry.training.metrics import expected_calibration_error

DATA = Path(__file__).resolve().parents[2] / "data" / "tfn"


def slice_of(name: str, n: int, seed: int = 1) -> list[tuple[str, int]]:
    with open(DATA / name, newline="", encoding="utf-8") as fh:
        rows = [(r["text"], int(r["label"])) for r in csv.DictReader(fh)]
    random.Random(seed).shuffle(rows)
    return rows[:n]


@pytest.fixture(scope="module")
def sentiment_slice():
    return [(t, TFNS_TO_SENTIMENT[y]) for t, y in slice_of("tfns_sentiment_valid.csv", 400)]


@pytest.fixture(scope="module")
def topic_slice():
    return slice_of("tfnt_topic_test.csv", 400)


def test_shapes_order_and_probabilities(engine):
    texts = ["Stocks tumble as recession fears grow", "", "Company raises dividend by 10%", "x" * 5000]
    preds = engine.predict(texts)
    assert len(preds) == len(texts)
    for p in preds:
        assert list(p.probabilities) == list(SENTIMENT_LABELS)
        assert abs(sum(p.probabilities.values()) - 1) < 1e-4
        assert p.score == pytest.approx(p.probabilities["positive"] - p.probabilities["negative"], abs=1e-5)
        assert p.sentiment == max(p.probabilities, key=p.probabilities.get)
        assert p.topic in TOPIC_LABELS and 0 < p.topic_probability <= 1
        assert p.model_version == engine.version
    # order is input order even though the engine sorts by length internally
    again = engine.predict(list(reversed(texts)))
    assert [p.probabilities for p in again] == [p.probabilities for p in reversed(preds)]
    assert engine.predict([]) == []


def test_shipped_model_loads_offline_and_beats_majority(engine, sentiment_slice, topic_slice):
    preds = engine.predict([t for t, _ in sentiment_slice])
    acc = np.mean([SENTIMENT_LABELS[y] == p.sentiment for (_, y), p in zip(sentiment_slice, preds)])
    majority = max(np.bincount([y for _, y in sentiment_slice])) / len(sentiment_slice)
    assert acc >= majority + 0.15, (acc, majority)
    preds = engine.predict([t for t, _ in topic_slice])
    acc = np.mean([TOPIC_LABELS[y] == p.topic for (_, y), p in zip(topic_slice, preds)])
    majority = max(np.bincount([y for _, y in topic_slice])) / len(topic_slice)
    assert acc >= majority + 0.5, (acc, majority)


def test_probabilities_are_calibrated(engine, sentiment_slice):
    texts = [t for t, _ in sentiment_slice]
    labels = np.array([y for _, y in sentiment_slice])
    probs = np.array([[p.probabilities[k] for k in SENTIMENT_LABELS] for p in engine.predict(texts)])
    s_logits, _ = engine.model.logits(texts)
    raw = torch.softmax(torch.from_numpy(s_logits), 1).numpy()
    calibrated, uncalibrated = expected_calibration_error(probs, labels), expected_calibration_error(raw, labels)
    assert calibrated < 0.06, calibrated
    assert calibrated <= uncalibrated + 0.01, (calibrated, uncalibrated)


def test_explanations_point_at_the_words_that_matter(engine):
    from finsentry.models.explain import explain

    cases = [("Shares plunge after the company is charged with accounting fraud", {"plunge", "charged", "fraud"}, -1),
             ("Profit soars to a record and the dividend is raised", {"soars", "record", "raised"}, +1),
             ("Canada Goose stock price target cut to $50 from $65 at CFRA", {"cut"}, -1)]
    for text, words_that_matter, sign in cases:
        ranked = explain(engine, text, top_k=5)
        strongest, weight = max(ranked, key=lambda wv: sign * wv[1])
        assert strongest.lower() in words_that_matter and sign * weight > 0, (text, ranked)
        loudest = max(ranked, key=lambda wv: abs(wv[1]))[0]
        assert loudest.lower() in words_that_matter, (text, ranked)


def test_every_backend_agrees_with_fp32(engine, sentiment_slice, topic_slice, tmp_path):
    texts = [t for t, _ in sentiment_slice + topic_slice]
    model, card = load_artifact(SHIPPED_MODEL)
    cands = candidate_backends(lambda: model, SHIPPED_MODEL, card, tmp_path, 0)
    assert "torch" in cands and "onnx" in cands
    assert ("torch-bf16" in cands) == cpu_has_native_bf16()
    assert ("cuda" in cands) == cuda_available()
    ref = LoadedModel(SHIPPED_MODEL, card, cands["torch"](), engine.model.tokenizer, 64).predict(texts)
    for name, factory in cands.items():
        preds = LoadedModel(SHIPPED_MODEL, card, factory(), engine.model.tokenizer, 64).predict(texts)
        for head in ("sentiment", "topic"):
            agree = np.mean([getattr(a, head) == getattr(b, head) for a, b in zip(ref, preds)])
            assert agree >= 0.99, (name, head, agree)


def test_auto_measures_and_caches_its_choice(tmp_path):
    loaded = load_model(backend="auto", cache_dir=tmp_path)
    decisions = list(tmp_path.rglob("auto.json"))
    assert len(decisions) == 1
    import json

    decision = json.loads(decisions[0].read_text())
    assert decision["backend"] == loaded.backend.name
    chosen = decision["measurements"][decision["backend"]]
    assert chosen["agreement"] >= 0.99
    eligible = [m for m in decision["measurements"].values() if m.get("agreement", 0) >= 0.99]
    assert chosen["docs_per_s"] == max(m["docs_per_s"] for m in eligible)


def test_cuda_is_guarded_without_a_gpu():
    if cuda_available():
        pytest.skip("a GPU is present: the guard does not apply")
    model, _ = load_artifact(SHIPPED_MODEL)
    with pytest.raises(RuntimeError, match="no CUDA device"):
        TorchBackend(model, "bf16", "cuda")
    with pytest.raises(ValueError, match="not available"):
        load_model(backend="cuda")


def test_hot_swap_changes_version_between_calls_and_golden_check_guards(engine, tmp_path):
    model, card = load_artifact(SHIPPED_MODEL)
    good_dir = tmp_path / "v2"
    card.version = "test-v2"
    save_artifact(model, card, good_dir)
    shutil.copy(SHIPPED_MODEL / engine_mod.GOLDEN_FILE, good_dir / engine_mod.GOLDEN_FILE)

    eng = Engine(engine.model)
    before = eng.predict(["Oil prices fall"])[0]
    candidate = eng.prepare(good_dir, backend="torch", cache_dir=tmp_path)
    assert eng.predict(["Oil prices fall"])[0].model_version == before.model_version  # not yet swapped
    eng.swap(candidate)
    after = eng.predict(["Oil prices fall"])[0]
    assert after.model_version == "test-v2"
    assert after.probabilities == before.probabilities  # same weights, new name

    broken_dir = tmp_path / "broken"
    with torch.no_grad():
        model.sentiment_head.weight.copy_(torch.randn_like(model.sentiment_head.weight) * 5)
        model.topic_head.weight.copy_(torch.randn_like(model.topic_head.weight) * 5)
    card.version = "test-broken"
    save_artifact(model, card, broken_dir)
    shutil.copy(SHIPPED_MODEL / engine_mod.GOLDEN_FILE, broken_dir / engine_mod.GOLDEN_FILE)
    with pytest.raises(ValueError, match="golden check"):
        eng.prepare(broken_dir, backend="torch", cache_dir=tmp_path)
    assert eng.version == "test-v2"
