"""The batched inference engine: texts in, calibrated sentiment + topic out.

Throughput comes from three things: the fast (Rust) tokenizer over the whole batch, sorting
texts by token length so each model call pads only to its own longest text, and a backend
picked for the hardware (see backends.py). `auto` measures instead of assuming: each
candidate runs on the model's golden batch, must agree with torch fp32 on ≥99% of the labels
of each head, must not be recorded in the model card below a held-out floor, and the fastest
wins; the choice is cached per model version and CPU. Every loaded model is warmed up on a
few golden texts, so the first live batch does not pay for it.

Threads: on the CPU the engine can run several batches at once ("streams"), each on its
share of the cores, instead of one batch over every core. Intra-op threads meet at every
operator, so one thread delayed by other work in the process (the worker's event loop, its
consumer) stalls the others, and torch's Python-level forward also waits for the GIL between
operators; independent batches just share the cores. On 2 cores, bf16, with a Python thread
busy 30 % of the time beside it: 2 streams x 1 thread 276 docs/s, 1 stream x 2 threads 219
(alone: 342 vs 301). Each stream costs memory, so the worker's default is one (see
FINSENTRY_INFERENCE_STREAMS). A caller with one batch per call (the worker) gets streams by
calling from as many threads as there are streams.

Hot swap: the engine scores through one immutable `LoadedModel`. `prepare()` builds a new
one off the event loop and checks it on the golden batch; `swap()` replaces the reference.
A call to `predict` holds the model it started with, so every batch is scored by exactly
one version and every prediction names it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch

from finsentry.labels import SENTIMENT_LABELS, TOPIC_LABELS
from finsentry.models.backends import (
    Backend,
    OnnxBackend,
    TorchBackend,
    cpu_has_native_bf16,
    cuda_available,
    cuda_backend,
    export_onnx_int8,
)
from finsentry.models.classifier import ModelCard, load_artifact, load_tokenizer
from finsentry.models.memory import release_free_memory
from finsentry.models.registry import SHIPPED_MODEL
from finsentry.textnorm import normalize
from finsentry.threads import thread_plan

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger("finsentry.models")

GOLDEN_FILE = "golden.jsonl"
AGREEMENT_FLOOR = 0.99
WARM_UP_TEXTS = 8
FALLBACK_SAMPLE = "Stocks fall as outlook is cut."  # for models shipped without a golden batch


@lru_cache(maxsize=None)
def _stream_pool(streams: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(streams, thread_name_prefix="engine-stream")


@dataclass(frozen=True)
class Prediction:
    sentiment: str
    probabilities: dict[str, float]  # negative, neutral, positive
    score: float  # p_positive - p_negative
    topic: str
    topic_probability: float
    model_version: str

    def as_record(self) -> dict[str, Any]:
        """The shape scored records and `finsentry classify` use."""
        return {
            "sentiment": {"label": self.sentiment, "probabilities": self.probabilities, "score": self.score},
            "topic": {"label": self.topic, "probability": self.topic_probability},
            "model_version": self.model_version,
        }


def _softmax(z: np.ndarray, t: float) -> np.ndarray:
    z = z.astype(np.float64) / t
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    probabilities: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return probabilities


def read_golden(directory: Path) -> list[dict[str, Any]]:
    path = Path(directory) / GOLDEN_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class LoadedModel:
    """One model version on one backend with its tokenizer; immutable once built."""

    def __init__(
        self,
        directory: Path,
        card: ModelCard,
        backend: Backend,
        tokenizer: PreTrainedTokenizerBase,
        max_batch: int,
        streams: int = 1,
        release_memory: bool = False,
    ):
        self.directory = directory
        self.card = card
        self.backend = backend
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        # A GPU computes one batch at a time anyway; its backend is never split in streams.
        self.streams = 1 if getattr(backend, "name", "") == "cuda" else max(1, streams)
        self.release_memory = release_memory  # see models/memory.py
        self.golden = read_golden(directory)

    @property
    def version(self) -> str:
        return self.card.version

    def logits(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        enc = self.tokenizer([normalize(t) or "." for t in texts], truncation=True, max_length=self.card.max_length)[
            "input_ids"
        ]
        order = np.argsort([len(ids) for ids in enc], kind="stable")
        sentiment = np.zeros((len(texts), len(SENTIMENT_LABELS)), dtype=np.float32)
        topic = np.zeros((len(texts), len(TOPIC_LABELS)), dtype=np.float32)
        pad = self.tokenizer.pad_token_id
        batches = []
        for start in range(0, len(order), self.max_batch):
            idx = order[start : start + self.max_batch]
            width = max(len(enc[i]) for i in idx)
            ids = np.full((len(idx), width), pad, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                ids[row, : len(enc[i])] = enc[i]
                mask[row, : len(enc[i])] = 1
            batches.append((idx, ids, mask))
        if self.streams > 1 and len(batches) > 1:
            results = _stream_pool(self.streams).map(lambda b: self.backend.run(b[1], b[2]), batches)
        else:
            results = (self.backend.run(ids, mask) for _, ids, mask in batches)
        for (idx, _, _), (s, t) in zip(batches, results):
            sentiment[idx], topic[idx] = s, t
        if self.release_memory:
            release_free_memory()
        return sentiment, topic

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        if not texts:
            return []
        s_logits, t_logits = self.logits(texts)
        s_probs = _softmax(s_logits, self.card.sentiment_temperature)
        t_probs = _softmax(t_logits, self.card.topic_temperature)
        out = []
        for sp, tp in zip(s_probs, t_probs):
            probs = {name: round(float(p), 6) for name, p in zip(SENTIMENT_LABELS, sp)}
            top = int(tp.argmax())
            out.append(
                Prediction(
                    sentiment=SENTIMENT_LABELS[int(sp.argmax())],
                    probabilities=probs,
                    score=round(probs["positive"] - probs["negative"], 6),
                    topic=TOPIC_LABELS[top],
                    topic_probability=round(float(tp[top]), 6),
                    model_version=self.version,
                )
            )
        return out

    def warm_up(self) -> None:
        """One small batch through the backend, so its lazy set-up (oneDNN kernels, ONNX
        Runtime's first run, CUDA context) is paid here and not by the first live batch."""
        self.logits([g["text"] for g in self.golden[:WARM_UP_TEXTS]] or [FALLBACK_SAMPLE])

    def golden_accuracy(self) -> dict[str, float]:
        """Accuracy on the golden batch shipped with the model, per head."""
        if not self.golden:
            return {}
        preds = self.predict([g["text"] for g in self.golden])
        result = {}
        for head, attr in (("sentiment", "sentiment"), ("topic", "topic")):
            pairs = [(g[head], getattr(p, attr)) for g, p in zip(self.golden, preds) if g.get(head)]
            if pairs:
                result[head] = sum(a == b for a, b in pairs) / len(pairs)
        return result


def _cache_key(card: ModelCard) -> str:
    import onnxruntime
    import transformers

    versions = (card.version, torch.__version__, transformers.__version__, onnxruntime.__version__)
    raw = "|".join([*versions, str(cpu_has_native_bf16())])
    return hashlib.sha1(raw.encode()).hexdigest()[:12]


def candidate_backends(
    model_factory: Callable[[], torch.nn.Module],
    directory: Path,
    card: ModelCard,
    cache_dir: Path,
    threads: int,
    release_memory: bool = True,
) -> dict[str, Callable[[], Backend]]:
    """Name → factory for every backend this machine can run."""
    cands: dict[str, Callable[[], Backend]] = {"torch": lambda: TorchBackend(model_factory(), "fp32")}
    if cuda_available():
        cands["cuda"] = lambda: cuda_backend(model_factory())
    if cpu_has_native_bf16():
        cands["torch-bf16"] = lambda: TorchBackend(model_factory(), "bf16")
    onnx_dir = cache_dir / card.version / _cache_key(card)
    cands["onnx"] = lambda: OnnxBackend(export_onnx_int8(model_factory(), onnx_dir), threads, release_memory)
    return cands


def below_floors(card: ModelCard) -> dict[str, list[str]]:
    """Backends whose held-out metrics, as recorded in the card, miss one of its floors."""
    floors = card.metrics.get("floors", {})
    misses: dict[str, list[str]] = {}
    for backend, sets in card.metrics.get("heldout_by_backend", {}).items():
        found = [
            f"{name} {head} {metric} {m[metric]:.4f} < {floor}"
            for name, heads in sets.items()
            for head, m in heads.items()
            for metric, floor in floors.get(head, {}).items()
            if m.get(metric, floor) < floor
        ]
        if found:
            misses[backend] = found
    return misses


def agreement(s: np.ndarray, t: np.ndarray, ref_s: np.ndarray, ref_t: np.ndarray) -> dict[str, float]:
    """Share of labels equal to the reference's, per head."""
    return {
        "sentiment": float(np.mean(s.argmax(1) == ref_s.argmax(1))),
        "topic": float(np.mean(t.argmax(1) == ref_t.argmax(1))),
    }


def choose_backend(
    cands: dict[str, Callable[[], Backend]],
    tokenizer: PreTrainedTokenizerBase,
    card: ModelCard,
    directory: Path,
    sample: Sequence[str],
    max_batch: int,
    cache_file: Path | None,
    streams: int = 1,
    release_memory: bool = False,
) -> tuple[str, Backend, dict[str, Any]]:
    """Measure every candidate on `sample`: keep those agreeing with fp32 on each head and
    not recorded below a held-out floor in the card, pick the fastest."""
    below = below_floors(card)
    if cache_file and cache_file.exists():
        cached = json.loads(cache_file.read_text())
        if cached.get("backend") in cands and cached["backend"] not in below:
            return cached["backend"], cands[cached["backend"]](), cached
    reference = LoadedModel(directory, card, cands["torch"](), tokenizer, max_batch)
    ref_s, ref_t = reference.logits(sample)
    measured: dict[str, dict[str, Any]] = {}
    built: dict[str, Backend] = {}
    for name, factory in cands.items():
        try:
            backend = factory() if name != "torch" else reference.backend
        except Exception as exc:  # a backend that cannot start here is skipped, with the reason
            measured[name] = {"error": str(exc)}
            continue
        model = LoadedModel(directory, card, backend, tokenizer, max_batch, streams, release_memory)  # as served
        model.logits(sample[:8])  # warm-up
        start = time.perf_counter()
        s, t = model.logits(sample)
        rate = len(sample) / (time.perf_counter() - start)
        per_head = agreement(s, t, ref_s, ref_t)
        measured[name] = {
            "docs_per_s": round(rate, 1),
            "agreement": round(min(per_head.values()), 4),
            "agreement_by_head": {h: round(a, 4) for h, a in per_head.items()},
        }
        built[name] = backend
    agreeing = [n for n in built if measured[n]["agreement"] >= AGREEMENT_FLOOR]
    eligible = [n for n in agreeing if n not in below] or agreeing
    best = max(eligible, key=lambda n: measured[n]["docs_per_s"])
    decision = {"backend": best, "measurements": measured, "sample": len(sample), "below_floors": below}
    if cache_file:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        cache_file.write_text(json.dumps(decision, indent=2))
    log.info("backend chosen=%s measurements=%s", best, json.dumps(measured))
    return best, built[best], decision


def load_model(
    directory: Path | None = None,
    backend: str = "auto",
    max_batch: int = 64,
    cache_dir: Path = Path("var/model-cache"),
    threads: int = 0,
    streams: int = 1,
    release_memory: bool = True,
) -> LoadedModel:
    """Load a model version on a backend. `threads`: cores in all (0 = every core);
    `streams`: batches computed at once (0 = one per core; see the module's docstring);
    `release_memory`: give freed memory back after each call (models/memory.py).
    Sets torch's intra-op thread count for the process to threads per stream."""
    directory = Path(directory or SHIPPED_MODEL)
    streams, per_stream = thread_plan(threads, streams)
    torch.set_num_threads(per_stream)
    model, card = load_artifact(directory)
    tokenizer = load_tokenizer(card.max_length, card.encoder)
    state = {"model": model}

    def model_factory() -> torch.nn.Module:
        # The CPU backends share one module (autocast and the ONNX export leave its weights
        # alone); the CUDA backend copies it before moving it to the GPU.
        return state["model"]

    cands = candidate_backends(model_factory, directory, card, Path(cache_dir), per_stream, release_memory)
    if backend == "auto":
        golden = [g["text"] for g in read_golden(directory)] or [FALLBACK_SAMPLE] * 32
        plan = f"auto-{streams}x{per_stream}.json"  # the fastest backend depends on the plan
        cache_file = Path(cache_dir) / card.version / _cache_key(card) / plan
        _, chosen, _ = choose_backend(
            cands, tokenizer, card, directory, golden, max_batch, cache_file, streams, release_memory
        )
    else:
        if backend not in cands:
            raise ValueError(f"backend {backend!r} is not available here; available: {sorted(cands)}")
        chosen = cands[backend]()
    loaded = LoadedModel(directory, card, chosen, tokenizer, max_batch, streams, release_memory)
    loaded.warm_up()
    return loaded


class Engine:
    """Thread-safe facade: predict() on the current model, prepare()/swap() to change it."""

    def __init__(self, model: LoadedModel, golden_floor: float = 0.5, golden_max_drop: float = 0.1):
        self._model = model
        self._lock = threading.Lock()
        self.golden_floor = golden_floor
        self.golden_max_drop = golden_max_drop

    @classmethod
    def load(cls, directory: Path | None = None, **kwargs: Any) -> Engine:
        return cls(load_model(directory, **kwargs))

    @property
    def version(self) -> str:
        return self._model.version

    @property
    def backend_name(self) -> str:
        return self._model.backend.name

    @property
    def model(self) -> LoadedModel:
        return self._model

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        model = self._model  # one version for the whole call
        return model.predict(texts)

    def prepare(self, directory: Path, backend: str | None = None, **kwargs: Any) -> LoadedModel:
        """Load and check a new version (blocking: call it in an executor)."""
        current = self._model
        kwargs.setdefault("streams", current.streams)
        kwargs.setdefault("release_memory", current.release_memory)
        candidate = load_model(
            directory, backend=backend or current.backend.name, max_batch=current.max_batch, **kwargs
        )
        accuracy = candidate.golden_accuracy()
        # Judge the candidate on its own golden batch and, where the serving model has one
        # too, against the serving model on that same batch.
        reference = (
            LoadedModel(
                candidate.directory, current.card, current.backend, current.tokenizer, current.max_batch
            ).golden_accuracy()
            if candidate.golden
            else {}
        )
        failures = [
            f"{head} {acc:.2f} < floor {self.golden_floor:.2f}"
            for head, acc in accuracy.items()
            if acc < self.golden_floor
        ]
        failures += [
            f"{head} {acc:.2f} is {reference[head] - acc:.2f} below the serving model"
            for head, acc in accuracy.items()
            if head in reference and reference[head] - acc > self.golden_max_drop
        ]
        if failures:
            raise ValueError(f"model {candidate.version} failed its golden check: {'; '.join(failures)}")
        return candidate

    def swap(self, candidate: LoadedModel) -> str:
        with self._lock:
            previous, self._model = self._model.version, candidate
        log.info("model swapped from=%s to=%s backend=%s", previous, candidate.version, candidate.backend.name)
        return previous
