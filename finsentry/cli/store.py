"""`finsentry store ...`: count, search, export and prune the store. Flags parse here; the
work is in finsentry.store.ops."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Optional

import typer

from finsentry.cli.flags import environment_settings as get_settings  # a bad FINSENTRY_* value: one line, exit 2
from finsentry.logging import setup_logging
from finsentry.store import ops
from finsentry.store.base import SearchQuery, StoreMissing, StoreUnavailable

app = typer.Typer(
    help="Query and maintain the store of scored documents (SQLite or Elasticsearch).", no_args_is_help=True
)

STORE = typer.Option(
    None,
    "--store",
    help="Store URL: sqlite:///path.db or http(s)://host:9200[?compat=opensearch] (default: FINSENTRY_STORE).",
)
SINCE = typer.Option(None, help="Published at or after: ISO 8601 (UTC if no zone) or an age like 15m, 24h, 7d.")
UNTIL = typer.Option(None, help="Published before: ISO 8601 or an age.")
SOURCE = typer.Option(None, help="Only this source.")
KIND = typer.Option(None, help="Only this kind: news, review, social, filing.")
TOPIC = typer.Option(None, help="Only this topic label.")
ENTITY = typer.Option(None, help="Only documents naming this entity (ticker).")
SENTIMENT = typer.Option(None, help="Only this sentiment: negative, neutral, positive.")
TEXT = typer.Option(None, "--text", help="Full text over title and text: every word must occur; word* is a prefix.")


def _query(text, since, until, source, kind, topic, entity, sentiment, **extra) -> SearchQuery:
    try:
        return SearchQuery(
            text=text,
            since=ops.parse_time(since) if since else None,
            until=ops.parse_time(until) if until else None,
            source=source,
            kind=kind,
            topic=topic,
            entity=entity,
            sentiment=sentiment,
            **extra,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _run(coro):
    """Run one store call; an unreachable or missing store or a bad URL is a one-line error, exit 1."""
    try:
        return asyncio.run(coro)
    except (StoreUnavailable, StoreMissing, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command()
def count(
    store: Optional[str] = STORE,
    text: Optional[str] = TEXT,
    since: Optional[str] = SINCE,
    until: Optional[str] = UNTIL,
    source: Optional[str] = SOURCE,
    kind: Optional[str] = KIND,
    topic: Optional[str] = TOPIC,
    entity: Optional[str] = ENTITY,
    sentiment: Optional[str] = SENTIMENT,
) -> None:
    """Print the number of stored documents (matching the filters). Reads only: creates
    nothing, and a store that does not exist is an error (exit 1)."""
    query = _query(text, since, until, source, kind, topic, entity, sentiment)
    typer.echo(_run(ops.count(store, get_settings(), query)))


@app.command()
def search(
    words: Optional[str] = typer.Argument(None, hidden=True, help="Deprecated: use --text."),
    store: Optional[str] = STORE,
    text: Optional[str] = TEXT,
    since: Optional[str] = SINCE,
    until: Optional[str] = UNTIL,
    source: Optional[str] = SOURCE,
    kind: Optional[str] = KIND,
    topic: Optional[str] = TOPIC,
    entity: Optional[str] = ENTITY,
    sentiment: Optional[str] = SENTIMENT,
    sort: str = typer.Option("published_at", help="published_at (newest first) or score (most negative first)."),
    limit: int = typer.Option(20, help="Most documents to print (up to 10000; use export for all)."),
    table: bool = typer.Option(False, "--table", help="A compact table instead of JSON lines."),
) -> None:
    """Print matching documents as JSON lines (or a table). Reads only: creates nothing,
    and a store that does not exist is an error (exit 1)."""
    if words is not None:
        if text is not None:
            raise typer.BadParameter("give the words once, with --text", param_hint="'--text'")
        typer.echo("note: words without --text are deprecated; write `finsentry store search --text WORDS`", err=True)
        text = words
    query = _query(text, since, until, source, kind, topic, entity, sentiment, sort=sort, limit=limit)
    docs = _run(ops.search(store, get_settings(), query))
    if table:
        typer.echo(ops.format_table(docs))
    else:
        for doc in docs:
            typer.echo(json.dumps(doc, ensure_ascii=False))


@app.command()
def export(
    store: Optional[str] = STORE,
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="File to write (default: stdout)."),
    text: Optional[str] = TEXT,
    since: Optional[str] = SINCE,
    until: Optional[str] = UNTIL,
    source: Optional[str] = SOURCE,
    kind: Optional[str] = KIND,
    topic: Optional[str] = TOPIC,
    entity: Optional[str] = ENTITY,
    sentiment: Optional[str] = SENTIMENT,
) -> None:
    """Write every matching document as JSON lines, oldest first. Reads only: creates
    nothing, and a store that does not exist is an error (exit 1)."""
    query = _query(text, since, until, source, kind, topic, entity, sentiment)
    if output is None:
        _run(ops.export_jsonl(store, get_settings(), query, sys.stdout))
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", encoding="utf-8") as out:
        written = _run(ops.export_jsonl(store, get_settings(), query, out))
    typer.echo(f"exported {written} documents to {output}", err=True)


@app.command()
def prune(
    store: Optional[str] = STORE,
    days: Optional[int] = typer.Option(
        None, min=0, help="Keep this many days before today (default: FINSENTRY_ES_RETENTION_DAYS)."
    ),
    alert_days: Optional[int] = typer.Option(
        None, min=0, help="Keep alerts updated this many days before today (default: FINSENTRY_ALERT_RETENTION_DAYS)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only print what would be deleted (reads only)."),
) -> None:
    """Delete documents published before the retention window (Elasticsearch: whole daily
    indices), and old alerts; print what was deleted, per UTC day."""
    settings = get_settings()
    setup_logging(settings.log_level, settings.log_json)  # the retention job logs what it dropped
    report = _run(
        ops.prune(
            store,
            settings,
            settings.es_retention_days if days is None else days,
            settings.alert_retention_days if alert_days is None else alert_days,
            dry_run=dry_run,
        )
    )
    verb = "would delete" if dry_run else "deleted"
    typer.echo(f"{verb} {report.documents} documents published before {report.cutoff:%Y-%m-%d}")
    for day, n in report.days:
        typer.echo(f"  {day}: {n}")
    typer.echo(f"{verb} {report.alerts} alerts last updated before {report.alert_cutoff:%Y-%m-%d}")
