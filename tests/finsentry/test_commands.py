"""The `finsentry` command as a user runs it: a subprocess, real model, real broker."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from finsentry.cli import app

FINSENTRY = [sys.executable, "-m", "finsentry.cli"]


def command_paths(typer_app, prefix=()):
    import typer.main

    click_cmd = typer.main.get_command(typer_app)
    stack = [(prefix, click_cmd)]
    while stack:
        path, cmd = stack.pop()
        yield path
        for name, sub in getattr(cmd, "commands", {}).items():
            stack.append((path + (name,), sub))


def test_every_command_has_help():
    paths = [p for p in command_paths(app) if p]
    assert {("demo",), ("worker",), ("broker",), ("ingest",), ("classify",), ("store", "count")} <= set(paths)
    from typer.testing import CliRunner

    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output


def test_classify_writes_one_line_per_input_in_order(tmp_path):
    lines = ["Oil slumps as OPEC+ signals higher output", '{"text": "Apple raises its dividend after record iPhone sales"}',
             "", "Fed holds rates steady"]
    out = subprocess.run(FINSENTRY + ["classify", "--backend", "torch"], input="\n".join(lines) + "\n",
                         capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "FINSENTRY_MODEL_CACHE_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(records) == len(lines)
    assert records[0]["text"].startswith("Oil slumps") and records[1]["text"].startswith("Apple raises")
    assert records[1]["entities"] == ["AAPL"] and records[1]["sentiment"]["label"] == "positive"
    for r in records:
        assert set(r["sentiment"]) == {"label", "probabilities", "score"}
        assert set(r["sentiment"]["probabilities"]) == {"negative", "neutral", "positive"}
        assert set(r["topic"]) == {"label", "probability"} and r["model_version"]


@pytest.mark.slow
def test_demo_max_docs_prints_a_summary_line(tmp_path):
    from finsentry.streams.broker import free_port

    out = subprocess.run(FINSENTRY + ["demo", "--max-docs", "150", "--speed", "0", "--web-port", str(free_port())],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path,
                         env={**__import__("os").environ, "FINSENTRY_BACKEND": "torch"})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(summary) == {"docs_in", "docs_scored", "docs_stored", "docs_dead_lettered", "alerts", "docs_per_s",
                            "p50_ms", "p99_ms"}
    assert summary["docs_stored"] >= 150 and summary["docs_scored"] >= summary["docs_stored"]
    assert summary["docs_dead_lettered"] >= 1  # the sample's truncated record at line 101
    assert summary["docs_in"] >= summary["docs_stored"] + summary["docs_dead_lettered"]
    assert 0 < summary["p50_ms"] <= summary["p99_ms"] and summary["docs_per_s"] > 0
    assert "dashboard http://127.0.0.1:" in out.stdout and "broker   kafka://127.0.0.1:" in out.stdout
