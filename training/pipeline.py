"""One retraining run: plan → train → evaluate → gate → register → promote or reject.

The parent is the serving model (promoted, else shipped). New data are the analyst labels
(their training share) and the files in settings.train_extra_dir; a replay sample of the
parent's own training data (minus its held-out split) is mixed in so the new model keeps
what the parent knew, and forgetting is then measured on that held-out split. Without any
parent the run trains from the base encoder on the base files, like the default model.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from finsentry.errors import FinsentryError
from finsentry.models.registry import Registry, Version
from finsentry.records import Label
from finsentry.training.data import Example, read_labelled
from finsentry.training.evaluate import Decision, GoldenSet, evaluate, gate, golden_sets, heldout_set
from finsentry.training.feedback import split_feedback
from finsentry.training.finetune import TrainArguments, train
from finsentry.training.lineage import REPLAY_FILE, HeldoutUnavailable, save_lineage, write_replay

log = logging.getLogger("finsentry.training.pipeline")

BASE_SENTIMENT = "tfns_sentiment_train.csv"
BASE_TOPIC = "tfnt_topic_train.csv"
EXTRA_SUFFIXES = (".csv", ".jsonl", ".ndjson")


@dataclass
class RunResult:
    trigger: str
    result: str  # promoted | rejected | skipped | failed | busy
    version: str | None = None
    reasons: list[str] = field(default_factory=list)
    run_dir: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


class NothingToLearn(FinsentryError):
    """Too few new labelled examples for a run to be worth it."""


def run_id(trigger: str, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return f"m{now.strftime('%Y%m%d-%H%M%S')}-{trigger}"


def extra_files(directory: Path) -> list[Path]:
    if not Path(directory).is_dir():
        return []
    return sorted(p.resolve() for p in Path(directory).iterdir() if p.suffix.lower() in EXTRA_SUFFIXES)


def plan(
    settings, parent: Version | None, feedback: Sequence[Example], run_dir: Path, version: str, **overrides: Any
) -> TrainArguments:
    """The TrainArguments of a run (raises NothingToLearn when a retrain would add nothing)."""
    data_dir = Path(settings.train_data_dir).resolve()
    extras = extra_files(settings.train_extra_dir)
    args = TrainArguments(
        output_dir=run_dir,
        labelled_files=extras,
        feedback=list(feedback),
        method=settings.train_method,
        epochs=settings.train_epochs,
        max_steps=settings.train_max_steps,
        version=version,
        progress=False,
    )
    if parent is None:
        args.sentiment_files = [data_dir / BASE_SENTIMENT]
        args.topic_files = [data_dir / BASE_TOPIC]
    else:
        new = len(feedback) + sum(len(read_labelled(p)) for p in extras)
        if new < settings.train_min_new_examples:
            raise NothingToLearn(f"{new} new labelled examples, fewer than {settings.train_min_new_examples}")
        replay = write_replay(parent.path, data_dir, settings.train_replay_fraction, args.seed, run_dir / REPLAY_FILE)
        args.labelled_files = extras + [replay]
        args.parent = parent.path
    return replace(args, **overrides)


def evaluate_pair(
    candidate_dir: Path, current: Version | None, parent: Version | None, golden: list[GoldenSet], data_dir: Path
) -> tuple[dict, dict | None, dict | None]:
    """(candidate report, current report, parent report) on the same sets."""
    sets = list(golden)
    if parent is not None:
        try:
            sets.append(heldout_set(parent.path, data_dir))
        except HeldoutUnavailable as exc:  # the gate rejects: forgetting unmeasured
            log.error("parent held-out split unavailable: %s", exc)
    cand = evaluate(candidate_dir, sets)
    cur = evaluate(current.path, sets) if current is not None else None
    par = None
    if parent is not None and (current is None or parent.name != current.name):
        par = evaluate(parent.path, [s for s in sets if s.role == "forgetting"])
    return cand, cur, par


def decide(
    registry: Registry,
    artifact: Path,
    train_report: dict,
    cand: dict,
    cur: dict | None,
    par: dict | None,
    settings,
    reason: str,
    promote: bool = True,
) -> tuple[Version, Decision]:
    """Gate, register with the evaluation and decision, then reject or (if asked) promote."""
    decision = gate(cand, cur, settings, parent=par)
    version = registry.register(artifact, train_report, evaluation=cand)
    record = {**decision.to_dict(), "against": cur["version"] if cur else None}
    version = registry.record_evaluation(version.name, cand, record)
    if not decision.promote:
        version = registry.reject(version.name, decision.reasons)
    elif promote:
        version = registry.promote(version.name, reason=f"{reason}; passed the gate")
    return version, decision


def retrain(
    settings,
    registry: Registry,
    labels: Sequence[Label],
    trigger: str,
    evidence: dict[str, Any] | None = None,
    **overrides: Any,
) -> RunResult:
    """A whole run. `overrides` set TrainArguments fields (tests, smoke runs)."""
    evidence = evidence or {}
    version = overrides.pop("version", None) or run_id(trigger)
    run_dir = Path(settings.data_dir).resolve() / "runs" / version
    parent = registry.serving()
    feedback_train, feedback_golden = split_feedback(labels, settings.feedback_golden_share)
    try:
        args = plan(settings, parent, feedback_train, run_dir, version, **overrides)
    except NothingToLearn as exc:
        log.info("retrain skipped trigger=%s reason=%s", trigger, exc)
        return RunResult(trigger, "skipped", reasons=[str(exc)], evidence=evidence)
    log.info(
        "retrain started trigger=%s version=%s parent=%s feedback=%d evidence=%s",
        trigger,
        version,
        parent.name if parent else None,
        len(feedback_train),
        json.dumps(evidence, default=str),
    )
    report = train(args)
    artifact = Path(report["artifact"])
    save_lineage(args, artifact, report)
    golden = golden_sets(settings.train_data_dir, feedback_golden)
    cand, cur, par = evaluate_pair(artifact, registry.serving(), parent, golden, settings.train_data_dir)
    registered, decision = decide(registry, artifact, report, cand, cur, par, settings, reason=f"retrain on {trigger}")
    shutil.rmtree(artifact)  # the registry holds its copy now
    result = "promoted" if decision.promote else "rejected"
    (run_dir / "decision.json").write_text(
        json.dumps(
            {"trigger": trigger, "evidence": evidence, "result": result, **decision.to_dict()}, indent=2, default=str
        )
        + "\n"
    )
    return RunResult(trigger, result, registered.name, decision.reasons, str(run_dir), evidence)
