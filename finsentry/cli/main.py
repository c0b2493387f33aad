"""The `finsentry` command. Each subcommand parses flags and calls into the packages."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from finsentry.cli.alerts import app as alerts_app
from finsentry.cli.dashboards import app as dashboards_app
from finsentry.cli.dlq import app as dlq_app
from finsentry.cli.flags import environment_settings, settings_from_flags
from finsentry.cli.ingest import ingest_command, push_command, scrape_command
from finsentry.cli.store import app as store_app
from finsentry.cli.training import app as training_app
from finsentry.logging import setup_logging
from finsentry.settings import Settings, dotenv_lines, readme_with_settings, settings_markdown, settings_values

app = typer.Typer(
    help="finsentry: a real-time financial opinion monitor.", no_args_is_help=True, pretty_exceptions_show_locals=False
)


def settings_broker_port(settings: Settings) -> int:
    """The port of the first address in FINSENTRY_BROKER (Kafka's 9092 if it names none)."""
    first = settings.broker_address.split(",")[0]
    _, _, port = first.rpartition(":")
    return int(port) if port.isdigit() else 9092


def configure_logging(settings: Settings) -> None:
    setup_logging(settings.log_level, settings.log_json)


@app.command()
def broker(
    port: Optional[int] = typer.Option(
        None, help="Port to listen on (default: the port of FINSENTRY_BROKER, so workers find it)."
    ),
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
) -> None:
    """Run the embedded Kafka-compatible broker (tansu) in the foreground. Memory only:
    everything it holds is gone when it stops."""
    import signal
    import time

    from finsentry.streams.broker import EmbeddedBroker

    with EmbeddedBroker(host=host, port=port or settings_broker_port(environment_settings())) as b:
        typer.echo(
            f"broker listening on {b.address} (memory storage: data is lost on stop); "
            f"use FINSENTRY_BROKER=kafka://{b.address} FINSENTRY_BROKER_EMBEDDED=true"
        )
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            while b.running():
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass


@app.command()
def worker(
    broker_url: Optional[str] = typer.Option(
        None, "--broker", help="Kafka broker: host:port or kafka://host:port (default: FINSENTRY_BROKER)."
    ),
    store: Optional[str] = typer.Option(None, help="Store URL: sqlite:///path.db or http(s)://host:9200."),
    web_port: Optional[int] = typer.Option(None, help="Port of the web page, /api and /metrics."),
    model: Optional[Path] = typer.Option(None, help="Model directory (default: promoted, else shipped)."),
    backend: Optional[str] = typer.Option(None, help="auto | onnx | torch | torch-bf16 | cuda."),
    embedded: Optional[bool] = typer.Option(
        None, "--embedded/--no-embedded", help="The broker is the embedded tansu broker."
    ),
) -> None:
    """Run a Faust worker with every agent, serving the web page and /metrics.

    An unreachable broker is waited for (FINSENTRY_BROKER_CONNECT_TIMEOUT_S) with one log
    line per attempt; exit status 1 if it never answers."""
    from finsentry.cli.worker_app import run_worker
    from finsentry.streams.broker_wait import BrokerUnreachable, wait_for_broker

    settings = settings_from_flags(
        {"model_path": "--model", "broker_embedded": "--embedded"},
        broker=broker_url,
        store=store,
        web_port=web_port,
        model_path=model,
        backend=backend,
        broker_embedded=embedded,
    )
    configure_logging(settings)
    try:
        wait_for_broker(settings)
    except BrokerUnreachable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    run_worker(settings)


@app.command()
def demo(
    store: Optional[str] = typer.Option(None, help="Store URL (default: a fresh SQLite file under var/demo)."),
    web_port: int = typer.Option(6066, help="Port of the dashboard page."),
    speed: float = typer.Option(30.0, help="Replay speed: event-time seconds per wall-clock second."),
    max_docs: Optional[int] = typer.Option(
        None, help="Stop after this many documents are stored and print a JSON summary."
    ),
    input_file: Optional[Path] = typer.Option(
        None, "--input", help="JSONL stream to replay instead of the bundled sample."
    ),
    backend: Optional[str] = typer.Option(None, help="Inference backend (default auto)."),
) -> None:
    """Start broker + worker + store + dashboard and replay the bundled sample stream."""
    from finsentry.streams.demo import DemoIncomplete, DemoOptions, run_demo

    settings = settings_from_flags(backend=backend)
    configure_logging(settings)
    try:
        summary = run_demo(
            settings, DemoOptions(store=store, web_port=web_port, speed=speed, max_docs=max_docs, input_file=input_file)
        )
    except DemoIncomplete as exc:
        typer.echo(json.dumps(exc.summary))
        typer.echo(f"demo incomplete: {exc}", err=True)
        raise typer.Exit(1)
    if summary is not None:
        typer.echo(json.dumps(summary))


@app.command()
def classify(
    model: Optional[Path] = typer.Option(None, help="Model directory (default: the shipped model)."),
    backend: Optional[str] = typer.Option(
        None, help="auto | onnx | torch | torch-bf16 | cuda (default: FINSENTRY_BACKEND)."
    ),
    batch_size: int = typer.Option(256, min=1, help="Lines read per model call."),
    explain_words: bool = typer.Option(False, "--explain", help="Add word-level explanations (slower)."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first malformed line."),
) -> None:
    """Score text lines or JSONL ({"text": ..., "title": ...}) from stdin; one JSONL line out per
    line scored, in order.

    A line starting with { or [ must be a JSON object with a string "text" (or "title"). A
    malformed line is not scored: it is reported on stderr with its line number and the
    rest goes on (--strict: stops there). Exit status 0: every line scored; 1: some lines
    were malformed; 2: stopped at a malformed line by --strict.
    """
    from finsentry.models.classify import classify_stream

    settings = settings_from_flags({"model_path": "--model"}, backend=backend, model_path=model)
    errors: list[str] = []

    def report(error) -> None:
        errors.append(str(error))
        typer.echo(f"error: {error}", err=True)

    classify_stream(
        sys.stdin,
        sys.stdout,
        model=settings.model_path,
        backend=settings.backend,
        batch_size=batch_size,
        explain_words=explain_words,
        cache_dir=settings.model_cache_dir,
        entities_csv=settings.entity_aliases,
        on_error=report,
        strict=strict,
    )
    if errors:
        if strict:
            typer.echo("stopped at the first malformed line (--strict); the lines before it were scored", err=True)
            raise typer.Exit(2)
        typer.echo(f"{len(errors)} malformed line(s) not scored", err=True)
        raise typer.Exit(1)


@app.command()
def rescore(
    since: str = typer.Option(
        ..., help="Documents published at or after: ISO 8601 (UTC if no zone) or an age like 24h, 7d."
    ),
    until: Optional[str] = typer.Option(None, help="Published before: ISO 8601 or an age (default: now)."),
    store: Optional[str] = typer.Option(None, help="Store URL (default: FINSENTRY_STORE)."),
    model: Optional[Path] = typer.Option(
        None, help="Model directory (default: the promoted version, else the shipped model)."
    ),
    backend: Optional[str] = typer.Option(
        None, help="auto | onnx | torch | torch-bf16 | cuda (default: FINSENTRY_BACKEND)."
    ),
    batch_size: Optional[int] = typer.Option(
        None, min=1, help="Documents per model call (default: FINSENTRY_MAX_BATCH)."
    ),
    limit: Optional[int] = typer.Option(None, min=1, help="Stop after re-scoring this many (run again to go on)."),
    progress: Optional[bool] = typer.Option(
        None, "--progress/--no-progress", help="Progress bar on stderr (default: only on a terminal)."
    ),
) -> None:
    """Re-score stored documents of a time range with the serving model (after a promotion),
    in batches, writing each back onto its own record; model_version tells which model
    scored a document. Documents this model already scored are skipped, so a run that
    stopped can simply be started again. Prints a JSON summary."""
    import asyncio

    from tqdm import tqdm

    from finsentry.store import StoreMissing, StoreUnavailable, open_store
    from finsentry.store.base import SearchQuery
    from finsentry.store.ops import parse_time
    from finsentry.streams.rescore import rescore as run_rescore
    from finsentry.streams.runtime import Runtime

    settings = settings_from_flags(
        {"model_path": "--model", "max_batch": "--batch-size"},
        store=store,
        model_path=model,
        backend=backend,
        max_batch=batch_size,
    )
    configure_logging(settings)
    try:
        query = SearchQuery(since=parse_time(since), until=parse_time(until) if until else None)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    from finsentry.models.engine import Engine

    engine = Engine.load(
        Runtime(settings).model_dir(),
        backend=settings.backend,
        max_batch=settings.max_batch,
        cache_dir=settings.model_cache_dir,
    )

    async def main():
        # The store must exist: re-scoring never creates one.
        async with open_store(settings.store, settings, read_only=True):
            pass
        async with open_store(settings.store, settings) as target:
            total = await target.count(query)
            with tqdm(
                total=total,
                unit="doc",
                desc="rescore",
                file=sys.stderr,
                disable=not (sys.stderr.isatty() if progress is None else progress),
            ) as bar:
                return await run_rescore(
                    target,
                    engine,
                    query,
                    batch_size=settings.max_batch,
                    entities_csv=settings.entity_aliases,
                    limit=limit,
                    progress=bar.update,
                )

    try:
        report = asyncio.run(main())
    except (StoreMissing, StoreUnavailable, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(report.as_dict()))


@app.command()
def explain(
    text: str = typer.Argument(..., help="The text to explain."),
    model: Optional[Path] = typer.Option(None, help="Model directory."),
    top: int = typer.Option(8, help="Words to show."),
) -> None:
    """Show the words that pushed a text's sentiment score, strongest first."""
    from finsentry.models.engine import Engine
    from finsentry.models.explain import explain as explain_text

    engine = Engine.load(model or environment_settings().model_path, backend="torch")
    pred = engine.predict([text])[0]
    typer.echo(json.dumps({**pred.as_record(), "explanation": explain_text(engine, text, top)}))


@app.command()
def schemas(
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Write one <topic>.schema.json per topic into this directory."
    ),
    check: Optional[Path] = typer.Option(
        None, "--check", help="Exit 1 if this directory's files differ from the records (for CI)."
    ),
) -> None:
    """JSON Schemas of every topic's payload, generated from the records the agents parse
    (docs/schemas holds them). Without options: one JSON object {topic: schema} on stdout."""
    from finsentry.streams import schemas as topic_schemas

    if check is not None:
        problems = topic_schemas.differences(check)
        for problem in problems:
            typer.echo(problem, err=True)
        if problems:
            typer.echo(f"run: finsentry schemas --output {check}", err=True)
            raise typer.Exit(1)
        return
    if output is not None:
        for path in topic_schemas.write(output):
            typer.echo(str(path))
        return
    typer.echo(json.dumps({topic: topic_schemas.topic_schema(topic) for topic in topic_schemas.TOPICS}, indent=2))


@app.command("settings")
def show_settings(
    markdown: bool = typer.Option(False, help="Print the documentation table instead of values."),
    as_json: bool = typer.Option(
        False, "--json", help="One JSON object {FINSENTRY_NAME: value} instead of .env lines."
    ),
    changed: bool = typer.Option(False, "--changed", help="Only the settings that differ from their defaults."),
    show_secrets: bool = typer.Option(
        False, "--show-secrets", help="Print the values of passwords, tokens and keys too."
    ),
    update_readme: Optional[Path] = typer.Option(None, help="Rewrite the settings table in this README."),
) -> None:
    """Print every setting as .env lines that load back as the same settings
    (`finsentry settings > .env`): an unset value prints empty. A secret that is set is
    left out as a comment line (its name only) unless --show-secrets."""
    if update_readme:
        update_readme.write_text(readme_with_settings(update_readme.read_text()))
        return
    if markdown:
        typer.echo(settings_markdown())
        return
    values, hidden = settings_values(environment_settings(), changed=changed, show_secrets=show_secrets)
    if as_json:
        typer.echo(json.dumps(values, indent=2))
        for name in hidden:
            typer.echo(f"note: {name} is set but not shown (--show-secrets prints it)", err=True)
        return
    for line in dotenv_lines(values, hidden):
        typer.echo(line)


def _mount() -> None:
    """Sub-apps of the packages, each owning its commands."""
    app.command("ingest")(ingest_command)
    app.command("scrape")(scrape_command)
    app.command("push")(push_command)
    app.add_typer(store_app, name="store")
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(dlq_app, name="dlq")
    app.add_typer(dashboards_app, name="dashboards")
    app.add_typer(training_app)  # train, eval, label, trainer, models …


_mount()


def main() -> None:
    from finsentry.streams.broker import EmbeddedBrokerMissing

    try:
        app()
    except EmbeddedBrokerMissing as exc:  # a production install, asked for the demo broker
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
