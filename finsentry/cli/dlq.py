"""`finsentry dlq`: list dead letters, and `finsentry dlq redrive` sends chosen ones back to
their input topic. Flags parse here; the work is in finsentry.streams.dlq."""

from __future__ import annotations

import json
from typing import List, Optional

import typer

from finsentry.cli.flags import settings_from_flags
from finsentry.cli.ingest import prepare_client
from finsentry.settings import Settings

app = typer.Typer(
    help="The dead-letter topic: list letters (reason, stage, time, payload preview) and "
    "redrive chosen ones to their input topic after a fix."
)

BROKER = typer.Option(
    None, "--broker", help="Kafka broker: host:port or kafka://host:port (default: FINSENTRY_BROKER)."
)
STAGE = typer.Option(None, help="Only letters of this stage: validate, score, index, detect, notify, labels.")
REASON = typer.Option(None, help="Only letters whose reason contains this text (any case).")
SINCE = typer.Option(None, help="Dead-lettered at or after: ISO 8601 (UTC if no zone) or an age like 15m, 24h, 7d.")
UNTIL = typer.Option(None, help="Dead-lettered before: ISO 8601 or an age.")
LETTER = typer.Option(None, "--letter", help="Only this letter, as partition:offset (from the list); repeatable.")


def _settings(broker: str | None) -> Settings:
    settings = settings_from_flags(broker=broker)
    prepare_client(settings)
    return settings


def _filter(stage, reason, since, until, letters):
    from finsentry.store.ops import parse_time
    from finsentry.streams.dlq import LetterFilter

    for address in letters or ():
        partition, _, offset = address.partition(":")
        if not (partition.isdigit() and offset.isdigit()):
            raise typer.BadParameter(f"{address!r} is not partition:offset", param_hint="'--letter'")
    try:
        return LetterFilter(
            stage=stage,
            reason=reason,
            since=parse_time(since) if since else None,
            until=parse_time(until) if until else None,
            addresses=set(letters) if letters else None,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _read(settings, where, limit=None):
    from finsentry.streams.dlq import read_letters, select

    try:
        return select(read_letters(settings), where, limit)
    except (TimeoutError, OSError) as exc:
        typer.echo(f"error: cannot read {settings.topic('dlq')}: {exc}", err=True)
        raise typer.Exit(1) from None


@app.callback(invoke_without_command=True)
def dlq(ctx: typer.Context) -> None:
    """List dead letters (same as `finsentry dlq list`), or redrive them."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(
            list_letters,
            broker=None,
            stage=None,
            reason=None,
            since=None,
            until=None,
            letters=None,
            limit=50,
            as_json=False,
        )


@app.command("list")
def list_letters(
    broker: Optional[str] = BROKER,
    stage: Optional[str] = STAGE,
    reason: Optional[str] = REASON,
    since: Optional[str] = SINCE,
    until: Optional[str] = UNTIL,
    letters: Optional[List[str]] = LETTER,
    limit: int = typer.Option(50, min=1, help="Most letters to print, oldest first."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
) -> None:
    """Print dead letters, oldest first: where (partition:offset), when, stage, reason, a preview."""
    settings = _settings(broker)
    chosen = _read(settings, _filter(stage, reason, since, until, letters), limit)
    for item in chosen:
        row = item.summary()
        if as_json:
            typer.echo(json.dumps(row, ensure_ascii=False))
        elif item.letter is None:
            typer.echo(f"{row['letter']:<10} {row['problem']}")
        else:
            typer.echo(
                f"{row['letter']:<10} {row['at'][:19]}  {row['stage']:<8}  {row['reason'][:60]:<60}  "
                f"{row['preview'][:60]}"
            )
    if not as_json:
        typer.echo(f"{len(chosen)} letter(s) in {settings.topic('dlq')}", err=True)


@app.command()
def redrive(
    broker: Optional[str] = BROKER,
    stage: Optional[str] = STAGE,
    reason: Optional[str] = REASON,
    since: Optional[str] = SINCE,
    until: Optional[str] = UNTIL,
    letters: Optional[List[str]] = LETTER,
    everything: bool = typer.Option(False, "--all", help="Every letter (needed when no filter is given)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only print what would be sent where."),
) -> None:
    """Re-publish the chosen letters' payloads to their input topic, unchanged: a document
    keeps its id, so it is stored once however often it is redriven. Exit status 1 if a
    chosen letter could not be redriven (cut payload, detect stage, unreadable)."""
    from finsentry.streams.dlq import NotRedrivable, plan_redrive
    from finsentry.streams.dlq import redrive as send

    if not (everything or stage or reason or since or until or letters):
        raise typer.BadParameter("choose letters with --letter, --stage, --reason, --since/--until, or --all")
    settings = _settings(broker)
    chosen = _read(settings, _filter(stage, reason, since, until, letters))
    plans, refused = [], 0
    for item in chosen:
        try:
            plans.append(plan_redrive(settings, item))
        except NotRedrivable as exc:
            refused += 1
            typer.echo(f"error: letter {item.address}: not redriven: {exc}", err=True)
    if not dry_run and plans:
        try:
            offsets = send(settings, plans)
        except Exception as exc:  # noqa: BLE001 - any delivery failure is one line for the operator
            typer.echo(f"error: redrive not acknowledged by the broker: {type(exc).__name__}: {exc}", err=True)
            raise typer.Exit(1) from None
    else:
        offsets = [None] * len(plans)
    verb = "would redrive" if dry_run else "redriven"
    for plan, offset in zip(plans, offsets):
        where = plan.topic if offset is None else f"{plan.topic} offset {offset}"
        typer.echo(f"{verb} {plan.letter.address} ({plan.letter.letter.stage}) → {where}")
    typer.echo(f"{verb} {len(plans)}, not redriven {refused}", err=True)
    if refused:
        raise typer.Exit(1)
