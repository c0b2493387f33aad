"""The shipped model through the engine: shapes, quality, calibration, backends, swap."""

from __future__ import annotations

import csv
import json
import random
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from finsentry.labels import SENTIMENT_LABELS, TFNS_TO_SENTIMENT, TOPIC_LABELS
from finsentry.models import backends as backends_mod
from finsentry.models import engine as engine_mod
from finsentry.models.backends import TorchBackend, cpu_has_native_bf16, cuda_available, cuda_backend
from finsentry.models.classifier import ModelCard, load_artifact, load_tokenizer, save_artifact
from finsentry.models.engine import (
    SHIPPED_MODEL,
    Engine,
    LoadedModel,
    below_floors,
    candidate_backends,
    choose_backend,
    load_model,
    read_golden,
)
from finsentry.training.metrics import expected_calibration_error

DATA = Path(__file__).resolve().parents[2] / "data" / "tfn"
# The ONNX export is cached per model version across runs, as a deployment caches it.
ONNX_CACHE = Path(__file__).resolve().parents[2] / "var" / "test-model-cache"
# The quality floors on the held-out sets, and the artifact budget.
FLOORS = {("sentiment", "accuracy"): 0.89, ("sentiment", "macro_f1"): 0.85, ("topic", "accuracy"): 0.90}
HELDOUT_SET = {"sentiment": "tfns-valid", "topic": "tfnt-test"}
MAX_ARTIFACT_BYTES = 25 * 1024 * 1024


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


def test_probabilities_are_calibrated(engine):
    # The whole TFNS valid set: ECE over 15 bins on a few hundred texts moves by ±0.02 from
    # one sample to the next, more than temperature scaling gains.
    rows = [(t, TFNS_TO_SENTIMENT[y]) for t, y in slice_of("tfns_sentiment_valid.csv", 10**6)]
    texts, labels = [t for t, _ in rows], np.array([y for _, y in rows])
    s_logits, _ = engine.model.logits(texts)
    temperature = engine.model.card.sentiment_temperature
    served = np.array([[p.probabilities[k] for k in SENTIMENT_LABELS] for p in engine.predict(texts[:16])])
    assert np.allclose(served, torch.softmax(torch.from_numpy(s_logits[:16]) / temperature, 1).numpy(), atol=1e-5)
    calibrated = torch.softmax(torch.from_numpy(s_logits) / temperature, 1).numpy()
    raw = torch.softmax(torch.from_numpy(s_logits), 1).numpy()
    ece, raw_ece = expected_calibration_error(calibrated, labels), expected_calibration_error(raw, labels)
    assert ece < 0.03, ece
    assert ece <= raw_ece, (ece, raw_ece)


def test_shipped_card_clears_the_floors_and_the_artifact_fits_the_budget():
    card = ModelCard.read(SHIPPED_MODEL)
    heldout = card.metrics["heldout"]
    served = card.metrics.get("heldout_by_backend", {})
    assert {"torch-bf16", "onnx"} <= set(served)
    for name, metrics in {"torch fp32": heldout, **served}.items():
        for (head, metric), floor in FLOORS.items():
            m = metrics[HELDOUT_SET[head]][head]
            assert m["n"] == {"sentiment": 2388, "topic": 4117}[head], (name, head, m["n"])
            assert m[metric] >= floor, (name, head, metric, m[metric], floor)
    for (head, metric), floor in FLOORS.items():  # `auto` judges backends by floors no looser
        assert card.metrics["floors"][head][metric] >= floor
    assert below_floors(card) == {}
    size = sum(f.stat().st_size for f in SHIPPED_MODEL.rglob("*") if f.is_file())
    assert size <= MAX_ARTIFACT_BYTES, size


def test_explanations_point_at_the_words_that_matter(engine):
    from finsentry.models.explain import explain

    cases = [
        ("Shares plunge after the company is charged with accounting fraud", {"plunge", "charged", "fraud"}, -1),
        ("Profit soars to a record and the dividend is raised", {"soars", "record", "raised"}, +1),
        ("Canada Goose stock price target cut to $50 from $65 at CFRA", {"cut"}, -1),
    ]
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
    decisions = list(tmp_path.rglob("auto-*.json"))
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
    with pytest.raises(RuntimeError, match="no CUDA device"):
        cuda_backend(model)
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


def test_the_onnx_export_leaves_the_shared_module_in_eval_mode(tmp_path):
    # The torch backends share the module the export reads; a module left in training mode
    # runs dropout, and its predictions change from call to call.
    model, _ = load_artifact(SHIPPED_MODEL)
    backends_mod.export_onnx_int8(model, tmp_path)
    assert [name for name, module in model.named_modules() if module.training] == []


@pytest.mark.parametrize("gpu_has_bf16, dtype", [(True, torch.bfloat16), (False, torch.float16)])
def test_cuda_candidate_gets_its_own_model_and_runs_its_host_side_logic(monkeypatch, gpu_has_bf16, dtype):
    # Stand-in for a GPU, which this project's CI does not have: CUDA is reported present, the
    # CUDA device is pointed at the CPU, and pinning records the tensor instead of pinning it
    # (pin_memory needs a CUDA driver). The candidate list, the backends and the model are real.
    monkeypatch.setattr(backends_mod, "cuda_available", lambda: True)
    monkeypatch.setattr(engine_mod, "cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: gpu_has_bf16)
    monkeypatch.setattr(backends_mod, "CUDA_DEVICE", "cpu")
    pinned = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self, *a, **k: pinned.append(tuple(self.shape)) or self)

    model, card = load_artifact(SHIPPED_MODEL)
    shared = dict(model.named_parameters())
    before = {name: p.detach().clone() for name, p in shared.items()}
    cands = candidate_backends(lambda: model, SHIPPED_MODEL, card, ONNX_CACHE, 0)
    assert "cuda" in cands
    built = {name: factory() for name, factory in cands.items()}

    cuda = built["cuda"]
    assert cuda.name == "cuda" and cuda.pin and cuda.autocast_dtype == dtype
    assert cuda.model is not model
    shared_storage = {p.data_ptr() for p in shared.values()}
    assert not shared_storage & {p.data_ptr() for p in cuda.model.parameters()}
    # The module the CPU backends share is still theirs: same tensors, same values, fp32 on the CPU.
    assert dict(model.named_parameters()) == shared
    for name, p in model.named_parameters():
        assert p.device.type == "cpu" and p.dtype == torch.float32 and torch.equal(p.detach(), before[name]), name

    # The bar the engine holds every backend to: the whole golden batch, each head.
    texts = [g["text"] for g in read_golden(SHIPPED_MODEL)]
    tokenizer = load_tokenizer(card.max_length, card.encoder)
    preds = LoadedModel(SHIPPED_MODEL, card, cuda, tokenizer, 64).predict(texts)
    assert pinned, "inputs were not pinned"
    ref = LoadedModel(SHIPPED_MODEL, card, built["torch"], tokenizer, 64).predict(texts)
    for head in ("sentiment", "topic"):
        agree = np.mean([getattr(a, head) == getattr(b, head) for a, b in zip(ref, preds)])
        assert agree >= engine_mod.AGREEMENT_FLOOR, (head, agree)


def test_load_model_warms_up_before_returning(monkeypatch, tmp_path):
    runs = []
    real_run = TorchBackend.run
    monkeypatch.setattr(
        TorchBackend, "run", lambda self, ids, mask: runs.append(ids.shape[0]) or real_run(self, ids, mask)
    )
    loaded = load_model(backend="torch", cache_dir=tmp_path)
    assert runs == [engine_mod.WARM_UP_TEXTS]  # one small batch of golden texts, before any caller
    # A cached `auto` choice skips the measuring, not the warm-up.
    card = loaded.card
    streams, per_stream = engine_mod.thread_plan(0, 1)
    cache_file = tmp_path / card.version / engine_mod._cache_key(card) / f"auto-{streams}x{per_stream}.json"
    cache_file.parent.mkdir(parents=True)
    cache_file.write_text(json.dumps({"backend": "torch"}))
    runs.clear()
    assert load_model(backend="auto", cache_dir=tmp_path).backend.name == "torch"
    assert runs == [engine_mod.WARM_UP_TEXTS]


class LabelsFromIds:
    """A stand-in backend whose labels are a function of the token ids, so its agreement with
    the reference is exact: rows holding `flip_token` get the next topic. `delay` sets speed."""

    def __init__(self, name: str, flip_token: int | None = None, delay: float = 0.0):
        self.name, self.flip_token, self.delay = name, flip_token, delay

    def run(self, ids, mask):
        time.sleep(self.delay)
        key = (ids * mask).sum(1)
        sentiment, topic = np.eye(3, dtype=np.float32)[key % 3], np.eye(20, dtype=np.float32)[key % 20]
        if self.flip_token is not None:
            rows = (ids == self.flip_token).any(1)
            topic[rows] = np.roll(topic[rows], 1, axis=1)
        return sentiment, topic


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


def test_auto_requires_agreement_on_each_head(tokenizer):
    zebra = tokenizer.convert_tokens_to_ids("zebra")
    sample = [f"Company {i} reports quarterly results" + (" zebra" if i % 70 == 0 else "") for i in range(200)]
    cands = {"torch": lambda: LabelsFromIds("torch", delay=0.02), "skewed": lambda: LabelsFromIds("skewed", zebra)}
    name, _, decision = choose_backend(cands, tokenizer, ModelCard.read(SHIPPED_MODEL), SHIPPED_MODEL, sample, 64, None)
    skewed = decision["measurements"]["skewed"]
    # 3 of 200 topics differ: 98.5 % on topic, 100 % on sentiment, 99.25 % on average
    assert skewed["agreement_by_head"] == {"sentiment": 1.0, "topic": 0.985}
    assert skewed["agreement"] == 0.985
    assert skewed["docs_per_s"] > decision["measurements"]["torch"]["docs_per_s"]
    assert name == "torch"


def test_auto_does_not_serve_a_backend_the_card_records_below_a_floor(tokenizer, tmp_path):
    card = ModelCard.read(SHIPPED_MODEL)
    card.metrics["heldout_by_backend"]["fast"] = {
        "tfns-valid": {"sentiment": {"n": 2388, "accuracy": 0.885, "macro_f1": 0.86, "ece": 0.01}}
    }
    assert list(below_floors(card)) == ["fast"]
    cands = {"torch": lambda: LabelsFromIds("torch", delay=0.02), "fast": lambda: LabelsFromIds("fast")}
    cache_file = tmp_path / "auto.json"
    cache_file.write_text(json.dumps({"backend": "fast"}))  # chosen before the card said otherwise
    name, _, decision = choose_backend(cands, tokenizer, card, SHIPPED_MODEL, ["Oil falls"] * 64, 64, cache_file)
    assert decision["measurements"]["fast"]["agreement"] == 1.0
    assert decision["measurements"]["fast"]["docs_per_s"] > decision["measurements"]["torch"]["docs_per_s"]
    assert name == "torch" and "fast" in decision["below_floors"]
    assert json.loads(cache_file.read_text())["backend"] == "torch"


def test_thread_plan_splits_the_cores_between_streams():
    assert engine_mod.thread_plan(4, 2) == (2, 2)
    assert engine_mod.thread_plan(2, 0) == (2, 1)  # one stream per core
    assert engine_mod.thread_plan(2, 8) == (2, 1)  # never more streams than cores
    assert engine_mod.thread_plan(3, 1) == (1, 3)


def test_streams_score_batches_at_once_and_give_the_same_predictions(engine):
    """Several batches of one call run on separate threads at the same time; the result is
    the same as one batch after the other, in input order."""
    texts = [t for t, _ in slice_of("tfns_sentiment_valid.csv", 300)]
    model = engine.model
    single = LoadedModel(model.directory, model.card, model.backend, model.tokenizer, 32, streams=1)
    inside, peak, lock = set(), [0], threading.Lock()

    class Watching:
        name = model.backend.name

        def run(self, ids, mask):
            with lock:
                inside.add(threading.get_ident())
                peak[0] = max(peak[0], len(inside))
            try:
                time.sleep(0.02)  # hold the batch long enough for another to start
                return model.backend.run(ids, mask)
            finally:
                with lock:
                    inside.discard(threading.get_ident())

    multi = LoadedModel(model.directory, model.card, Watching(), model.tokenizer, 32, streams=2)
    assert multi.predict(texts) == single.predict(texts)
    assert peak[0] == 2


def test_freed_memory_is_given_back_after_each_call_when_asked(engine, monkeypatch):
    from finsentry.models import memory

    assert memory.release_free_memory()  # glibc here: malloc_trim is there to call
    calls = []
    monkeypatch.setattr(engine_mod, "release_free_memory", lambda: calls.append(1) or True)
    model = engine.model
    texts = ["Oil prices slump", "Bank beats estimates", "Fed holds rates"]
    LoadedModel(model.directory, model.card, model.backend, model.tokenizer, 2).predict(texts)
    assert calls == []
    LoadedModel(model.directory, model.card, model.backend, model.tokenizer, 2, release_memory=True).predict(texts)
    assert calls == [1]  # once per call, after every batch of it
