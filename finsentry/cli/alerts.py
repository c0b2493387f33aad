"""`finsentry alerts ...`: replay scored history through the detector; test the notifiers."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Iterator, Optional

import typer

from finsentry.cli.flags import settings_from_flags
from finsentry.settings import Settings

app = typer.Typer(
    help="Spike alerts: replay scored records through the detector, test the notifiers.", no_args_is_help=True
)


def _settings(flags: dict[str, str] | None = None, **overrides) -> Settings:
    return settings_from_flags(flags, **overrides)


def _read_jsonl(stream: IO[str], errors: list[str]) -> Iterator[dict]:
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"line {number}: malformed JSON: {exc.msg} at column {exc.colno}")


@app.command()
def replay(
    input_file: Path = typer.Option(
        ...,
        "--input",
        "-i",
        help="Scored records as JSONL ('-' for stdin): "
        "the `finsentry classify` shape plus id, published_at, title, source.",
    ),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the alerts here instead of stdout."),
    all_updates: bool = typer.Option(
        False, "--all-updates", help="Print every update of every episode, not only each episode's latest state."
    ),
    sort: bool = typer.Option(
        False, "--sort", help="Sort records by published_at first (default: file order, as they would have arrived)."
    ),
    bucket_s: Optional[int] = typer.Option(None, help="Bucket width in seconds."),
    window_buckets: Optional[int] = typer.Option(None, help="Buckets in the current window."),
    z_threshold: Optional[float] = typer.Option(None, "--z", help="z-score that opens an episode."),
    min_count: Optional[int] = typer.Option(None, help="Fewest distinct stories in the window to alert."),
    min_share_increase: Optional[float] = typer.Option(
        None, help="Least increase of the negative share over the baseline."
    ),
    cusum_h: Optional[float] = typer.Option(None, help="CUSUM threshold (0 disables it)."),
    overrides: Optional[str] = typer.Option(None, help="Per-scope thresholds, as FINSENTRY_ALERT_SCOPE_OVERRIDES."),
) -> None:
    """Run scored records through the detector offline and print the alerts as JSONL.

    The same path as the worker: near-duplicate check (unless a record has a dup_of key),
    fan-out per scope, detector. Invalid records are reported on stderr and skipped (exit
    status 1 when there were any); the same input always gives the same alerts.
    """
    from finsentry.alerting.config import DetectorConfig
    from finsentry.alerting.dedup import NearDuplicateIndex
    from finsentry.alerting.replay import by_event_time, replay_events
    from finsentry.alerting.replay import replay as run_replay

    try:
        settings = _settings(
            {
                "alert_bucket_s": "--bucket-s",
                "alert_window_buckets": "--window-buckets",
                "alert_z_threshold": "--z",
                "alert_min_count": "--min-count",
                "alert_min_share_increase": "--min-share-increase",
                "alert_cusum_h": "--cusum-h",
                "alert_scope_overrides": "--overrides",
            },
            alert_bucket_s=bucket_s,
            alert_window_buckets=window_buckets,
            alert_z_threshold=z_threshold,
            alert_min_count=min_count,
            alert_min_share_increase=min_share_increase,
            alert_cusum_h=cusum_h,
            alert_scope_overrides=overrides,
        )
        config = DetectorConfig.from_settings(settings)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    dedup = NearDuplicateIndex.from_settings(settings)
    errors: list[str] = []
    source = sys.stdin if str(input_file) == "-" else _open_input(input_file)
    records = _read_jsonl(source, errors)
    if sort:
        records = iter(by_event_time(list(records)))
    on_error = lambda number, reason: errors.append(f"record {number}: {reason}")  # noqa: E731
    alerts = (
        list(replay_events(records, config, dedup, on_error))
        if all_updates
        else run_replay(records, config, dedup, on_error)
    )
    out = output.open("w", encoding="utf-8") if output else sys.stdout
    try:
        for alert in alerts:
            out.write(alert.model_dump_json() + "\n")
    finally:
        if output:
            out.close()
    for line in errors:
        typer.echo(line, err=True)
    typer.echo(
        f"{len(alerts)} alert{'s' if len(alerts) != 1 else ''}; {len(errors)} invalid record(s) skipped", err=True
    )
    if errors:
        raise typer.Exit(1)


def _open_input(path: Path) -> IO[str]:
    if not path.exists():
        raise typer.BadParameter(f"{path} does not exist", param_hint="--input")
    if path.suffix == ".gz":
        import gzip

        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


@app.command()
def test(
    alertmanager_url: Optional[str] = typer.Option(
        None, help="Alertmanager base URL (default: FINSENTRY_ALERTMANAGER_URL)."
    ),
    apprise_url: Optional[list[str]] = typer.Option(
        None, help="Apprise URL; repeat for several (default: FINSENTRY_APPRISE_URLS)."
    ),
) -> None:
    """Send a test notification through every configured notifier.

    Sent directly, not through the outbox; each notifier's result is printed. Exit status 1
    if any failed.
    """
    from finsentry.alerting.notifiers import notifiers_from_settings

    settings = _settings(
        {"apprise_urls": "--apprise-url"},
        alertmanager_url=alertmanager_url,
        apprise_urls=" ".join(apprise_url) if apprise_url else None,
    )
    try:
        notifiers = notifiers_from_settings(settings)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if not notifiers:
        typer.echo("no notifier configured: set FINSENTRY_ALERTMANAGER_URL and/or FINSENTRY_APPRISE_URLS", err=True)
        raise typer.Exit(1)
    failures = asyncio.run(_send_test(notifiers))
    raise typer.Exit(1 if failures else 0)


async def _send_test(notifiers) -> int:
    from finsentry.alerting.notifiers import NotificationFailed

    alert = test_alert()
    failures = 0
    for notifier in notifiers:
        try:
            # Alertmanager marks a test alert (label test="true") and ends it by itself.
            await getattr(notifier, "send_test", notifier.send)(alert)
        except NotificationFailed as exc:
            failures += 1
            typer.echo(f"FAILED  {notifier.name}: {exc}")
        else:
            typer.echo(f"sent    {notifier.name}")
    return failures


def test_alert():
    """A clearly labelled test alert (scope global, key 'finsentry-test')."""
    from finsentry.records import Alert, Evidence

    now = datetime.now(timezone.utc).replace(microsecond=0)
    return Alert(
        id=Alert.make_id("global", "finsentry-test", now),
        scope="global",
        key="finsentry-test",
        severity="warning",
        episode_start=now,
        window_start=now,
        window_end=now,
        negative_share=0.0,
        baseline=0.0,
        statistic=0.0,
        volume=0,
        baseline_volume=0.0,
        model_version="test",
        updated_at=now,
        evidence=[Evidence(id="test", title="finsentry test notification: no action needed", score=0.0)],
    )
