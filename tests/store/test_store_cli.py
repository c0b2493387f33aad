"""`finsentry store count|search|export|prune` on a real SQLite store and on osmem-server
(the in-memory OpenSearch-compatible stand-in for Elasticsearch)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest
from store_helpers import alert, scored, store_settings
from typer.testing import CliRunner

from finsentry.cli.store import app
from finsentry.store import open_store
from finsentry.store.ops import parse_time

runner = CliRunner()


def fill(url: str) -> list:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    records = [
        scored(0, published_at=now - timedelta(days=40), title="Old bank story", sentiment="negative"),
        scored(1, published_at=now - timedelta(hours=3), title="Bank rally", sentiment="positive", entities=["JPM"]),
        scored(2, published_at=now - timedelta(hours=2), title="Oil slump", sentiment="negative", score=-0.9),
        scored(3, published_at=now - timedelta(hours=1), title="Bank fined", sentiment="negative", entities=["JPM"]),
    ]

    async def write():
        async with open_store(url, store_settings()) as store:
            assert (await store.upsert_many(records)).stored == len(records)
            await store.put_alert(alert(0, key="Energy", updated_at=now - timedelta(days=40)))
            await store.put_alert(alert(0, key="Macro", updated_at=now - timedelta(hours=1)))
            await store.refresh()

    asyncio.run(write())
    return records


@pytest.fixture(params=["sqlite", "osmem"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/cli.db"
    clone = request.getfixturevalue("osmem_server").clone()
    request.addfinalizer(clone.close)
    return f"{clone.url}?compat=opensearch"


def run(*args: str):
    result = runner.invoke(app, list(args))
    return result


def test_count_search_export_prune(store_url, tmp_path):
    records = fill(store_url)
    assert run("count", "--store", store_url).stdout.strip() == "4"
    assert run("count", "--store", store_url, "--since", "1d", "--entity", "JPM").stdout.strip() == "2"
    assert run("count", "--store", store_url, "--text", "bank", "--sentiment", "negative").stdout.strip() == "2"

    lines = run("search", "--text", "bank", "--store", store_url, "--since", "7d").stdout.splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["doc-00003", "doc-00001"]
    old_form = run("search", "bank", "--store", store_url, "--since", "7d")
    assert old_form.stdout.splitlines() == lines and "deprecated" in old_form.stderr  # still works, with a note
    assert run("search", "bank", "--text", "oil", "--store", store_url).exit_code == 2
    table = run("search", "--store", store_url, "--sort", "score", "--limit", "2", "--table").stdout.splitlines()
    assert table[0].split()[:3] == ["published_at", "sentiment", "score"]
    assert "Oil slump" in table[1] and "-0.90" in table[1] and len(table) == 3

    out = tmp_path / "exports" / "all.jsonl"
    result = run("export", "--store", store_url, "--output", str(out))
    assert result.exit_code == 0
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [
        "doc-00000",
        "doc-00001",
        "doc-00002",
        "doc-00003",
    ]
    stdout = run("export", "--store", store_url, "--sentiment", "negative").stdout.splitlines()
    assert len(stdout) == 3

    dry = run("prune", "--dry-run", "--store", store_url, "--days", "30", "--alert-days", "30")
    old_day = f"{records[0].published_at:%Y-%m-%d}"
    assert dry.exit_code == 0 and "would delete 1 documents published before" in dry.stdout
    assert f"  {old_day}: 1" in dry.stdout.splitlines() and "would delete 1 alerts" in dry.stdout
    assert run("count", "--store", store_url).stdout.strip() == "4"  # a dry run deletes nothing

    result = run("prune", "--store", store_url, "--days", "30", "--alert-days", "30")
    assert f"  {old_day}: 1" in result.stdout.splitlines()  # says what went
    # The output mixes the job's log lines (stderr) with its result lines (stdout).
    results = [line for line in result.stdout.splitlines() if line.startswith("deleted ")]
    assert result.exit_code == 0 and [line.split(" before ")[0] for line in results] == [
        "deleted 1 documents published",
        "deleted 1 alerts last updated",
    ]
    assert run("count", "--store", store_url).stdout.strip() == "3"

    async def alert_keys():
        async with open_store(store_url, store_settings()) as store:
            return [a["key"] for a in await store.alerts()]

    assert asyncio.run(alert_keys()) == ["Macro"]


def test_bad_flags_and_unreachable_store_are_one_line_errors(tmp_path):
    bad_time = run("count", "--store", f"sqlite:///{tmp_path}/x.db", "--since", "yesterday")
    assert bad_time.exit_code == 2 and "not a time" in bad_time.output
    bad_sentiment = run("search", "--store", f"sqlite:///{tmp_path}/x.db", "--sentiment", "angry")
    assert bad_sentiment.exit_code == 2
    unknown = run("count", "--store", "ftp://host/x")
    assert unknown.exit_code == 1 and "unsupported store URL" in unknown.output


def test_every_command_has_help():
    for command in ("count", "search", "export", "prune"):
        result = run(command, "--help")
        assert result.exit_code == 0 and "--store" in result.output


def test_parse_time_accepts_iso_and_ages():
    now = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    assert parse_time("15m", now) == now - timedelta(minutes=15)
    assert parse_time("2d", now) == now - timedelta(days=2)
    assert parse_time("2024-05-01T10:00Z") == datetime(2024, 5, 1, 10, tzinfo=timezone.utc)
    assert parse_time("2024-05-01T10:00") == datetime(2024, 5, 1, 10, tzinfo=timezone.utc)  # UTC when no zone
    assert parse_time("2024-05-01T12:00+02:00") == datetime(2024, 5, 1, 10, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="not a time"):
        parse_time("soon")
