"""The `finsentry` command as a user runs it: a subprocess, real model, real broker."""

from __future__ import annotations

import json
import subprocess
import sys

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
    aliases = tmp_path / "aliases.csv"  # FINSENTRY_ENTITY_ALIASES replaces the shipped list
    aliases.write_text("ticker,name,aliases\nAAPL,Apple Inc.,Apple\nZBX,Zorblax Industries,Zorblax\n")
    lines = [
        "Oil slumps as OPEC+ signals higher output",
        '{"text": "Apple raises its dividend after record iPhone sales"}',
        "",
        "Fed holds rates steady",
        '{"title": "Zorblax cuts outlook", "text": "Zorblax cuts outlook. Demand for widgets fell sharply."}',
    ]
    out = subprocess.run(
        FINSENTRY + ["classify", "--backend", "torch"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **__import__("os").environ,
            "FINSENTRY_MODEL_CACHE_DIR": str(tmp_path),
            "FINSENTRY_ENTITY_ALIASES": str(aliases),
        },
    )
    assert out.returncode == 0, out.stderr
    assert "UNEXPECTED" not in out.stderr  # transformers' report of the unused pooler is not shown
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(records) == len(lines)
    assert records[0]["text"].startswith("Oil slumps") and records[1]["text"].startswith("Apple raises")
    assert records[1]["entities"] == ["AAPL"] and records[1]["sentiment"]["label"] == "positive"
    # scored as the pipeline scores it: title + lead (the repeated title dropped), the configured aliases
    assert records[4]["text"] == "Zorblax cuts outlook. Demand for widgets fell sharply."
    assert records[4]["entities"] == ["ZBX"] and records[4]["sentiment"]["label"] == "negative"
    for r in records:
        assert set(r["sentiment"]) == {"label", "probabilities", "score"}
        assert set(r["sentiment"]["probabilities"]) == {"negative", "neutral", "positive"}
        assert set(r["topic"]) == {"label", "probability"} and r["model_version"]


def test_explain_names_the_words_behind_a_clear_negative_headline():
    out = subprocess.run(
        FINSENTRY + ["explain", "Shares plunge after the company is charged with accounting fraud", "--top", "5"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "UNEXPECTED" not in out.stderr
    result = json.loads(out.stdout)
    assert result["sentiment"]["label"] == "negative"
    words = result["explanation"]
    assert len(words) == 5
    assert [abs(w) for _, w in words] == sorted((abs(w) for _, w in words), reverse=True)  # strongest first
    top_word, top_weight = words[0]
    assert top_word.lower() in {"plunge", "charged", "fraud"} and top_weight < 0, words
    most_negative = min(words, key=lambda wv: wv[1])[0]
    assert most_negative.lower() in {"plunge", "charged", "fraud"}, words


def test_classify_exit_status_says_whether_a_line_failed(tmp_path):
    env = {**__import__("os").environ, "FINSENTRY_MODEL_CACHE_DIR": str(tmp_path)}
    lines = 'Fed holds rates steady\n{bad json\n{"text": 5}\nOil slumps\n'
    out = subprocess.run(
        FINSENTRY + ["classify", "--backend", "torch"],
        input=lines,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 1
    assert len(out.stdout.splitlines()) == 2  # the two good lines, in order
    assert "error: line 2: malformed JSON" in out.stderr and 'error: line 3: "text" must be a string' in out.stderr
    strict = subprocess.run(
        FINSENTRY + ["classify", "--backend", "torch", "--strict"],
        input=lines,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert strict.returncode == 2 and len(strict.stdout.splitlines()) == 1 and "line 3" not in strict.stderr
    clean = subprocess.run(
        FINSENTRY + ["classify", "--backend", "torch"],
        input="Fed holds rates steady\n",
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert clean.returncode == 0 and len(clean.stdout.splitlines()) == 1
