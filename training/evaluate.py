"""Evaluation on the golden sets and the promotion gate.

Golden sets: the published held-out splits (TFNS valid for sentiment, TFNT test for topic),
never used for training or tuning, plus the golden share of the analyst labels. A
candidate is also scored on its parent's own held-out split, where forgetting is measured.

The gate promotes a candidate only if, on every golden set large enough to judge, it is
not worse than the current model beyond the tolerance on accuracy and macro-F1 (and on
ECE beyond its own allowance), clears the absolute floors, and has not forgotten more than
the bound on its parent's held-out split. Everything it checked is returned, not only the
failures, so a rejection can be read and a promotion audited.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from finsentry.labels import SENTIMENT_LABELS, TOPIC_LABELS
from finsentry.models.classifier import load_artifact, load_tokenizer
from finsentry.models.engine import load_model
from finsentry.models.registry import read_card
from finsentry.training.calibration import softmax
from finsentry.training.data import MISSING, Example, examples_sha256, read_tfns, read_tfnt
from finsentry.training.lineage import heldout_examples
from finsentry.training.metrics import classification_report
from finsentry.training.predict import logits_for

log = logging.getLogger("finsentry.training.evaluate")

Role = Literal["golden", "forgetting"]
HEADS = ("sentiment", "topic")
GATED = ("accuracy", "macro_f1")
TFNS_GOLDEN = "tfns_sentiment_valid.csv"
TFNT_GOLDEN = "tfnt_topic_test.csv"


@dataclass
class GoldenSet:
    name: str
    examples: list[Example]
    role: Role = "golden"

    @property
    def sha256(self) -> str:
        return examples_sha256(self.examples)


def golden_sets(data_dir: Path, analyst: Sequence[Example] = (), limit: int | None = None) -> list[GoldenSet]:
    """TFNS valid + TFNT test from `data_dir`, plus analyst golden labels when there are any.
    `limit` keeps the first N of each file (quick checks and tests)."""
    data_dir = Path(data_dir)
    sets = []
    for name, reader, filename in (("tfns-valid", read_tfns, TFNS_GOLDEN), ("tfnt-test", read_tfnt, TFNT_GOLDEN)):
        path = data_dir / filename
        if not path.exists():
            raise FileNotFoundError(f"golden set {path} is missing (set FINSENTRY_TRAIN_DATA_DIR)")
        examples = reader(path)
        sets.append(GoldenSet(name, examples[:limit] if limit else examples))
    if analyst:
        sets.append(GoldenSet("analyst", list(analyst)))
    return sets


def heldout_set(parent_dir: Path, data_dir: Path | None) -> GoldenSet:
    """The parent's held-out split as a forgetting set (raises HeldoutUnavailable)."""
    version = read_card(parent_dir)["version"]
    return GoldenSet(f"heldout:{version}", heldout_examples(parent_dir, data_dir), role="forgetting")


def _scorer(model_dir: Path, backend: str | None, batch_size: int, cache_dir: Path):
    """(card, texts → (sentiment logits, topic logits)): plain torch fp32 by default, or an
    engine backend by name (what a worker serves with)."""
    if backend:
        loaded = load_model(model_dir, backend=backend, max_batch=64, cache_dir=cache_dir)
        return loaded.card, loaded.logits
    model, card = load_artifact(model_dir)
    tokenizer = load_tokenizer(card.max_length, card.encoder)
    return card, lambda texts: logits_for(model, tokenizer, texts, card.max_length, batch_size)


def evaluate(
    model_dir: Path,
    golden: Sequence[GoldenSet],
    batch_size: int = 128,
    backend: str | None = None,
    cache_dir: Path = Path("var/model-cache"),
) -> dict[str, Any]:
    """Score the model (calibrated with its card's temperatures) on each set: torch fp32, or
    the named engine backend."""
    card, score = _scorer(Path(model_dir), backend, batch_size, Path(cache_dir))
    report: dict[str, Any] = {
        "version": card.version,
        "parent": card.parent,
        "model_dir": str(model_dir),
        "backend": backend or "torch",
        "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "temperatures": {"sentiment": card.sentiment_temperature, "topic": card.topic_temperature},
        "sets": {},
    }
    temps = {"sentiment": card.sentiment_temperature, "topic": card.topic_temperature}
    names = {"sentiment": SENTIMENT_LABELS, "topic": TOPIC_LABELS}
    for gs in golden:
        entry: dict[str, Any] = {"n": len(gs.examples), "sha256": gs.sha256, "role": gs.role}
        if gs.examples:
            s_logits, t_logits = score([e.text for e in gs.examples])
            for head, logits in (("sentiment", s_logits), ("topic", t_logits)):
                idx = [i for i, e in enumerate(gs.examples) if getattr(e, head) != MISSING]
                if idx:
                    y = np.array([getattr(gs.examples[i], head) for i in idx])
                    entry[head] = classification_report(y, softmax(logits[idx], temps[head]), names[head])
        report["sets"][gs.name] = entry
        log.info(
            "evaluated version=%s set=%s n=%d %s",
            card.version,
            gs.name,
            entry["n"],
            " ".join(f"{h}_accuracy={entry[h]['accuracy']:.4f}" for h in HEADS if h in entry),
        )
    return report


# --- the gate --------------------------------------------------------------------------------


@dataclass
class Decision:
    promote: bool
    reasons: list[str] = field(default_factory=list)  # why not, when rejected
    checks: list[dict[str, Any]] = field(default_factory=list)  # every comparison made

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Checks:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.failures: list[str] = []

    def require(self, ok: bool, what: str, value: float, bound: float, explain: str) -> None:
        self.items.append({"check": what, "value": round(value, 6), "bound": round(bound, 6), "passed": bool(ok)})
        if not ok:
            self.failures.append(explain)

    def fail(self, what: str, explain: str) -> None:
        self.items.append({"check": what, "passed": False})
        self.failures.append(explain)

    def note(self, what: str, explain: str) -> None:
        self.items.append({"check": what, "passed": True, "note": explain})


def _floors(settings) -> dict[tuple[str, str], float]:
    return {
        ("sentiment", "accuracy"): settings.gate_min_sentiment_accuracy,
        ("sentiment", "macro_f1"): settings.gate_min_sentiment_macro_f1,
        ("topic", "accuracy"): settings.gate_min_topic_accuracy,
    }


def gate(
    candidate: dict[str, Any], current: dict[str, Any] | None, settings, parent: dict[str, Any] | None = None
) -> Decision:
    """Promote or reject `candidate` (an `evaluate` report) against the serving model's report.

    `parent` is the parent's report on the forgetting set; by default the current report is
    used when the current model is the candidate's parent (the usual case).
    """
    checks = _Checks()
    tol, min_n = settings.gate_tolerance, settings.gate_min_examples
    floors = _floors(settings)
    sets = candidate.get("sets", {})
    golden = {n: s for n, s in sets.items() if s.get("role") == "golden"}
    if not any(s["n"] >= min_n for s in golden.values()):
        checks.fail("golden", f"no golden set with at least {min_n} examples to judge the candidate on")
    for name, cand in golden.items():
        if cand["n"] < min_n:
            checks.note(name, f"{name}: {cand['n']} examples, fewer than {min_n}: reported, not gated")
            continue
        cur = (current or {}).get("sets", {}).get(name)
        if current is not None and (cur is None or cur.get("sha256") != cand.get("sha256")):
            checks.fail(name, f"{name}: the current model was not evaluated on the same examples; cannot compare")
            cur = None
        for head in HEADS:
            if head not in cand:
                continue
            for metric in GATED:
                value = cand[head][metric]
                floor = floors.get((head, metric))
                if floor is not None:
                    checks.require(
                        value >= floor,
                        f"{name}/{head}/{metric} >= floor",
                        value,
                        floor,
                        f"{name}: {head} {metric} {value:.4f} is below the floor {floor:.4f}",
                    )
                if cur is not None and head in cur:
                    bound = cur[head][metric] - tol
                    checks.require(
                        value >= bound,
                        f"{name}/{head}/{metric} vs current",
                        value,
                        bound,
                        f"{name}: {head} {metric} {value:.4f} is worse than the current model's "
                        f"{cur[head][metric]:.4f} by more than {tol:.4f}",
                    )
            if cur is not None and head in cur:
                bound = cur[head]["ece"] + settings.gate_max_ece_increase
                value = cand[head]["ece"]
                checks.require(
                    value <= bound,
                    f"{name}/{head}/ece vs current",
                    value,
                    bound,
                    f"{name}: {head} ECE {value:.4f} exceeds the current model's "
                    f"{cur[head]['ece']:.4f} by more than {settings.gate_max_ece_increase:.4f}",
                )
    _forgetting(candidate, current, parent, settings, checks)
    decision = Decision(promote=not checks.failures, reasons=checks.failures, checks=checks.items)
    log.info("gate version=%s promote=%s reasons=%s", candidate.get("version"), decision.promote, decision.reasons)
    return decision


def _forgetting(candidate, current, parent, settings, checks: _Checks) -> None:
    parent_version = candidate.get("parent")
    if not parent_version:
        checks.note("forgetting", "trained from the base encoder: no parent to forget")
        return
    if parent is None and current is not None and current.get("version") == parent_version:
        parent = current
    name = f"heldout:{parent_version}"
    cand = candidate.get("sets", {}).get(name)
    ref = (parent or {}).get("sets", {}).get(name)
    if cand is None or ref is None or cand.get("sha256") != ref.get("sha256"):
        checks.fail(
            "forgetting",
            f"forgetting was not measured: candidate and parent {parent_version} "
            f"need reports on the parent's held-out split",
        )
        return
    if cand["n"] < settings.gate_min_examples:
        checks.note(name, f"{name}: {cand['n']} examples, fewer than {settings.gate_min_examples}: not gated")
        return
    bound = settings.gate_max_forgetting
    for head in HEADS:
        if head in cand and head in ref:
            drop = ref[head]["accuracy"] - cand[head]["accuracy"]
            checks.require(
                drop <= bound,
                f"{name}/{head}/accuracy drop",
                drop,
                bound,
                f"forgetting: {head} accuracy on the parent's held-out split fell by {drop:.4f} "
                f"(parent {ref[head]['accuracy']:.4f}, candidate {cand[head]['accuracy']:.4f}), "
                f"over the bound {bound:.4f}",
            )


# --- presentation ----------------------------------------------------------------------------


def _confusion_lines(matrix: list[list[int]], labels: Sequence[str]) -> list[str]:
    """The confusion matrix as a table: a row per true class, columns numbered like the rows."""
    if not matrix:
        return []
    width = max(4, len(str(max(max(row) for row in matrix))) + 1)
    lines = [
        "  confusion (rows true, columns predicted; column k is class k):",
        f"  {'':>2} {'':<28}" + "".join(f"{k:>{width}}" for k in range(len(matrix))),
    ]
    for k, (label, row) in enumerate(zip(labels, matrix)):
        lines.append(f"  {k:>2} {label[:28]:<28}" + "".join(f"{v:>{width}}" for v in row))
    return lines


def render(report: dict[str, Any], decision: Decision | None = None) -> str:
    """A readable summary of an evaluation (and a gate decision)."""
    lines = [
        f"model {report['version']} (parent {report.get('parent') or 'base encoder'})"
        + (f", backend {report['backend']}" if report.get("backend") else ""),
        "",
        f"{'set':<28} {'head':<10} {'n':>6} {'accuracy':>9} {'macro-F1':>9} {'ECE':>7}",
    ]
    for name, entry in report["sets"].items():
        for head in HEADS:
            if head in entry:
                m = entry[head]
                lines.append(
                    f"{name:<28} {head:<10} {m['n']:>6} {m['accuracy']:>9.4f} {m['macro_f1']:>9.4f} {m['ece']:>7.4f}"
                )
    for name, entry in report["sets"].items():
        for head in HEADS:
            if head not in entry:
                continue
            lines += [
                "",
                f"{name} / {head}: per class",
                f"  {'class':<28} {'precision':>9} {'recall':>7} {'F1':>6} {'support':>8}",
            ]
            for cls, m in entry[head]["per_class"].items():
                lines.append(
                    f"  {cls:<28} {m['precision']:>9.3f} {m['recall']:>7.3f} {m['f1']:>6.3f} {m['support']:>8}"
                )
            labels = SENTIMENT_LABELS if head == "sentiment" else TOPIC_LABELS
            lines += _confusion_lines(entry[head].get("confusion") or [], labels)
    if decision is not None:
        lines += ["", "gate: " + ("PROMOTE" if decision.promote else "REJECT")]
        lines += [f"  - {r}" for r in decision.reasons]
    return "\n".join(lines)
