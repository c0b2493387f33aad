"""Typer commands of the ingest room: `finsentry ingest FILE|-` (`ingest_command`) and the
sub-app `app` with `scrape` and `push`. They parse flags and call into the library."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Optional

import typer

from finsentry.cli.flags import settings_from_flags
from finsentry.logging import setup_logging
from finsentry.settings import Settings

app = typer.Typer(help="Scrapers and the HTTP push endpoint that feed the raw topic.", no_args_is_help=True)


def _settings(flags: dict[str, str] | None = None, **overrides) -> Settings:
    return settings_from_flags(flags, **overrides)


def prepare_client(settings: Settings) -> None:
    """Logging, then the broker waited for (exit status 1 if it never answers)."""
    from finsentry.streams.broker_wait import BrokerUnreachable, wait_for_broker

    setup_logging(settings.log_level, settings.log_json)
    try:
        wait_for_broker(settings)
    except BrokerUnreachable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def ingest_command(
    source: str = typer.Argument(..., help="JSONL or CSV file of documents, or - for stdin."),
    broker: Optional[str] = typer.Option(
        None, "--broker", help="Kafka broker: host:port or kafka://host:port (default: FINSENTRY_BROKER)."
    ),
    embedded: Optional[bool] = typer.Option(
        None, "--embedded/--no-embedded", help="The broker is the embedded tansu broker (no idempotent producer)."
    ),
    fmt: Optional[str] = typer.Option(
        None, "--format", help="jsonl or csv (default: from the file name, else from the first byte)."
    ),
    speed: float = typer.Option(
        0.0, help="Replay at published_at gaps divided by this factor (0: as fast as possible)."
    ),
    rebase: bool = typer.Option(
        False, "--rebase", help="Shift timestamps so that the first document is now (for demos)."
    ),
    strict: bool = typer.Option(
        False,
        "--strict",
        help="Stop at the first malformed line instead of publishing it raw for the dead-letter topic.",
    ),
    topic: Optional[str] = typer.Option(None, help="Topic to publish to (default: <prefix>docs.raw)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on stderr."),
) -> None:
    """Publish JSONL/CSV documents to the raw topic.

    Malformed lines are published as they are, so that the worker dead-letters them with a
    reason; --strict stops at the first one instead.

    Prints 'published N, failed M'. Exit status 1: records were not delivered; 2: unreadable input.
    """
    from tqdm import tqdm

    from finsentry.ingest.producer import DocumentProducer
    from finsentry.ingest.replay import BadInput, ReplayFormatError, read_documents, replay

    if fmt not in (None, "jsonl", "csv"):
        raise typer.BadParameter("--format must be jsonl or csv")
    settings = _settings({"broker_embedded": "--embedded"}, broker=broker, broker_embedded=embedded)
    if source == "-":
        stream_cm, name = nullcontext(sys.stdin.buffer), None
    else:
        path = Path(source)
        if not path.is_file():
            typer.echo(f"error: no such file: {source}", err=True)
            raise typer.Exit(2)
        stream_cm, name = path.open("rb"), path.name
    prepare_client(settings)

    bar = tqdm(file=sys.stderr, unit="doc", desc="ingest", disable=not progress or None)
    with stream_cm as stream, DocumentProducer(settings, topic=topic) as producer:
        lines = read_documents(stream, fmt=fmt, name=name, max_text_bytes=settings.max_text_bytes)
        try:
            summary = replay(
                lines, producer, speed=speed, rebase=rebase, strict=strict, progress=lambda _line: bar.update()
            )
        except BadInput as exc:
            bar.close()
            typer.echo(f"error: {exc} (stopped by --strict; the lines before it were published)", err=True)
            raise typer.Exit(2) from None
        except ReplayFormatError as exc:
            bar.close()
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
    bar.close()
    typer.echo(summary.line())
    if summary.failed:
        raise typer.Exit(1)


@app.command("scrape")
def scrape_command(
    config: Optional[Path] = typer.Option(
        None, "--config", help="Source list (YAML); default: FINSENTRY_SOURCES_FILE."
    ),
    broker: Optional[str] = typer.Option(
        None, "--broker", help="Kafka broker: host:port or kafka://host:port (default: FINSENTRY_BROKER)."
    ),
    embedded: Optional[bool] = typer.Option(
        None, "--embedded/--no-embedded", help="The broker is the embedded tansu broker."
    ),
    seen_db: Optional[Path] = typer.Option(None, "--seen-db", help="Seen-set database (default: FINSENTRY_SEEN_PATH)."),
    metrics_port: Optional[int] = typer.Option(
        None, help="Port of /metrics and /status (default: FINSENTRY_SCRAPE_METRICS_PORT)."
    ),
    once: bool = typer.Option(
        False, "--once", help="Poll every source once and exit (status 1 if one failed), e.g. from cron."
    ),
) -> None:
    """Run every source of the list concurrently; a failing source is retried with back-off while the others go on.

    Serves /metrics and /status on FINSENTRY_SCRAPE_METRICS_HOST:PORT (loopback by default).
    """
    import asyncio

    from finsentry.ingest.config import ConfigError, load_sources
    from finsentry.ingest.service import run_scrape

    settings = _settings(
        {"broker_embedded": "--embedded", "seen_path": "--seen-db", "scrape_metrics_port": "--metrics-port"},
        broker=broker,
        broker_embedded=embedded,
        seen_path=seen_db,
        scrape_metrics_port=metrics_port,
    )
    try:
        load_sources(config or settings.sources_file)  # a bad source list fails before any wait for the broker
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    prepare_client(settings)
    try:
        status = asyncio.run(run_scrape(settings, config, once=once))
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(status)


@app.command("push")
def push_command(
    broker: Optional[str] = typer.Option(
        None, "--broker", help="Kafka broker: host:port or kafka://host:port (default: FINSENTRY_BROKER)."
    ),
    embedded: Optional[bool] = typer.Option(
        None, "--embedded/--no-embedded", help="The broker is the embedded tansu broker."
    ),
    host: Optional[str] = typer.Option(None, help="Bind address (default: FINSENTRY_PUSH_HOST, loopback)."),
    port: Optional[int] = typer.Option(None, help="Port (default: FINSENTRY_PUSH_PORT)."),
) -> None:
    """Serve POST /documents (Authorization: Bearer FINSENTRY_PUSH_TOKEN) and publish what arrives.

    Answers 202 with the document ids once the broker acknowledged them, 400 with reasons,
    401 on a missing or wrong token. Refuses to start without a token.
    """
    import asyncio

    from finsentry.ingest.push import PushConfigError, serve_push
    from finsentry.ingest.service import stop_on_signals

    settings = _settings(
        {"broker_embedded": "--embedded", "push_host": "--host", "push_port": "--port"},
        broker=broker,
        broker_embedded=embedded,
        push_host=host,
        push_port=port,
    )
    if not settings.push_token or not settings.push_token.get_secret_value().strip():  # before any wait for the broker
        typer.echo(
            "error: the push endpoint needs a token (FINSENTRY_PUSH_TOKEN); refusing to start without one", err=True
        )
        raise typer.Exit(2)
    prepare_client(settings)

    async def main() -> None:
        await serve_push(settings, stop_on_signals())

    try:
        asyncio.run(main())
    except PushConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
