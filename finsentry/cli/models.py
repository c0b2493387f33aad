"""The `models` group: the registry (list, show, register, promote, reject, roll back,
announce) and the company list entity extraction matches (`models entities refresh`).

Mounted under the training commands (finsentry/cli/training.py). Commands parse flags and
call library code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from finsentry.cli.common import fail as _fail
from finsentry.cli.common import read_store_labels
from finsentry.settings import get_settings

models_app = typer.Typer(
    help="The model registry: list, show, register, promote, reject, roll back.", no_args_is_help=True
)
entities_app = typer.Typer(
    help="The company list entity extraction matches (models/data/companies.csv).", no_args_is_help=True
)
models_app.add_typer(entities_app, name="entities")


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
    analyst = split_feedback(read_store_labels(settings), settings.feedback_golden_share)[1] if labels else []
    golden = golden_sets(settings.train_data_dir, analyst)
    cand, cur, par = evaluate_pair(
        artifact, registry.serving(), registry.parent_of(artifact), golden, settings.train_data_dir
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
