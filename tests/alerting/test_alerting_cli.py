"""`finsentry alerts replay` and `finsentry alerts test` through the Typer app."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

from alert_scenarios import StreamBuilder
from typer.testing import CliRunner

from finsentry.cli.alerts import app
from finsentry.records import Alert
from finsentry.streams.broker import free_port

runner = CliRunner()


def plain(output: str) -> str:
    """CLI output without the box drawing and line wrapping of error panels."""
    return " ".join(output.replace("│", " ").split())


def classify_shape(record: dict) -> dict:
    """What `finsentry classify` writes, plus id, published_at, title and source."""
    keep = ("id", "published_at", "title", "source", "text", "sentiment", "topic", "entities", "model_version")
    return {k: record[k] for k in keep}


def write_spike(path: Path) -> list[dict]:
    b = StreamBuilder(11)
    b.background(45)
    b.burst(35, 6, 20, "Energy / Oil")
    b.syndicate(35, 12, 6, "Energy / Oil")  # copies all through the spike
    records = [classify_shape(r) for r in b.sorted_records()]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


def test_replay_prints_the_alerts_as_jsonl(tmp_path):
    source = tmp_path / "scored.jsonl"
    write_spike(source)
    result = runner.invoke(app, ["replay", "--input", str(source)])
    assert result.exit_code == 0, result.output
    alerts = [Alert.model_validate_json(line) for line in result.stdout.splitlines()]
    topic = [a for a in alerts if a.scope == "topic"]
    assert [a.key for a in topic] == ["Energy / Oil"]
    assert topic[0].duplicates > 0  # dedup ran: the syndicated copies were recognised
    assert len({a.id for a in alerts}) == len(alerts)  # one line per episode
    # The same file replayed again gives the same alerts, to the byte.
    assert runner.invoke(app, ["replay", "--input", str(source)]).stdout == result.stdout


def test_replay_all_updates_to_a_file_and_tuning_flags(tmp_path):
    source, out = tmp_path / "scored.jsonl", tmp_path / "alerts.jsonl"
    write_spike(source)
    result = runner.invoke(app, ["replay", "-i", str(source), "-o", str(out), "--all-updates"])
    assert result.exit_code == 0, result.output
    updates = [Alert.model_validate_json(line) for line in out.read_text().splitlines()]
    assert len(updates) > len({a.id for a in updates})
    assert [a.change for a in updates if a.scope == "topic"][0] == "opened"
    strict = runner.invoke(
        app, ["replay", "-i", str(source), "--min-count", "5000"]
    )  # more than any window holds, up to the hour
    assert strict.exit_code == 0 and strict.stdout == ""


def test_replay_reports_bad_records_and_keeps_the_rest(tmp_path):
    source = tmp_path / "scored.jsonl"
    records = write_spike(source)
    lines = source.read_text().splitlines()
    bad = [
        '{"id": "x", "title": "truncated',
        json.dumps({**records[0], "id": "no-time", "published_at": None}),
        json.dumps({**records[0], "id": "no-sentiment", "sentiment": {"score": 0.1}}),
    ]
    source.write_text("\n".join(lines[:10] + bad + lines[10:]) + "\n")
    result = runner.invoke(app, ["replay", "--input", str(source)])
    assert result.exit_code == 1
    assert "line 11: malformed JSON" in result.stderr
    assert "published_at is missing" in result.stderr and "sentiment is missing or has no label" in result.stderr
    assert "3 invalid record(s) skipped" in result.stderr
    assert "Energy / Oil" in result.stdout  # nothing else was lost


def test_replay_refuses_bad_overrides_and_missing_input(tmp_path):
    source = tmp_path / "scored.jsonl"
    source.write_text("")
    bad = runner.invoke(app, ["replay", "--input", str(source), "--overrides", "topic:Nope=z=3"])
    assert bad.exit_code == 2 and "unknown topic 'Nope'" in plain(bad.output)
    missing = runner.invoke(app, ["replay", "--input", str(tmp_path / "absent.jsonl")])
    assert missing.exit_code == 2 and "does not exist" in plain(missing.output)


async def test_alerts_test_sends_through_every_notifier(receiver):
    dead = f"json://127.0.0.1:{free_port()}/hook"
    result = await asyncio.to_thread(runner.invoke, app, ["test", "--apprise-url", receiver.url, "--apprise-url", dead])
    assert result.exit_code == 1  # one of the two failed
    lines = result.stdout.splitlines()
    assert lines[0].startswith("sent    apprise:json:") and lines[1].startswith("FAILED  apprise:json:")
    [hit] = receiver.received
    assert "finsentry test notification" in hit["body"]["message"]
    ok = await asyncio.to_thread(runner.invoke, app, ["test", "--apprise-url", receiver.url])
    assert ok.exit_code == 0 and len(receiver.received) == 2


def test_alerts_test_sends_alertmanager_a_marked_alert_that_ends_by_itself(alertmanager):
    sent_at = datetime.now(timezone.utc)
    result = runner.invoke(app, ["test", "--alertmanager-url", alertmanager])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["sent    alertmanager"]
    with urllib.request.urlopen(f"{alertmanager}/api/v2/alerts?filter=key%3D%22finsentry-test%22", timeout=5) as resp:
        received = json.loads(resp.read())
    assert received and all(a["labels"]["test"] == "true" and a["status"]["state"] == "active" for a in received)
    ends = datetime.fromisoformat(received[-1]["endsAt"].replace("Z", "+00:00"))
    assert sent_at + timedelta(minutes=3) < ends < sent_at + timedelta(minutes=10)


def test_every_command_has_help():
    for args in (["--help"], ["replay", "--help"], ["test", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and "Usage" in result.stdout
