"""The training commands end to end: labels published to the embedded broker, the registry
commands, train → eval → models register on the tiny slice (two steps), and a child trained
from its parent with the parent's replay pool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from training_helpers import read_topic, unique_prefix
from typer.testing import CliRunner

from finsentry.cli.training import app
from finsentry.records import Label, ModelUpdate
from finsentry.settings import get_settings
from finsentry.training.data import read_labelled, read_tfns, read_tfnt

runner = CliRunner()


@pytest.fixture
def env(monkeypatch, tmp_path: Path, tiny_data: Path, broker):
    """The commands read settings from FINSENTRY_* like in production."""
    prefix = unique_prefix()
    values = {
        "FINSENTRY_BROKER": broker.url,
        "FINSENTRY_BROKER_EMBEDDED": "true",
        "FINSENTRY_TOPIC_PREFIX": prefix,
        "FINSENTRY_REGISTRY_DIR": str(tmp_path / "registry"),
        "FINSENTRY_DATA_DIR": str(tmp_path / "var"),
        "FINSENTRY_STORE": f"sqlite:///{tmp_path / 'store.db'}",
        "FINSENTRY_TRAIN_DATA_DIR": str(tiny_data),
        "FINSENTRY_PRODUCER_DELIVERY_TIMEOUT_S": "15",
        "FINSENTRY_LOG_LEVEL": "WARNING",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    return result


def test_label_is_published_to_the_labels_topic(env, broker):
    result = invoke("label", "doc-42", "--sentiment", "Negative", "--topic", "earnings", "--analyst", "qa")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["published"] == env.topic("labels")
    records = read_topic(broker.address, env.topic("labels"), expected=1)
    assert len(records) == 1 and records[0].key == b"doc-42"
    label = Label.model_validate_json(records[0].value)
    assert (label.doc_id, label.sentiment, label.topic, label.analyst) == ("doc-42", "negative", "Earnings", "qa")


@pytest.mark.parametrize(
    "args, message",
    [
        (["doc-1"], "give --sentiment and/or --topic"),
        (["doc-1", "--sentiment", "bullishish"], "sentiment"),
        (["doc-1", "--topic", "Astrology"], "unknown topic label"),
    ],
)
def test_bad_labels_are_refused_with_a_clear_error(env, args, message):
    result = invoke("label", *args)
    assert result.exit_code == 2 and message in result.output


def _artifact(root: Path, version: str) -> Path:
    art = root / version
    art.mkdir(parents=True)
    (art / "card.json").write_text(json.dumps({"version": version, "data": {}}))
    (art / "weights.safetensors").write_bytes(version.encode())
    return art


def test_models_commands_promote_list_show_and_roll_back(env, tmp_path: Path, broker):
    from finsentry.models.registry import Registry

    registry = Registry(env.registry_dir, shipped=None)
    for name in ("m1", "m2"):
        registry.register(_artifact(tmp_path / "arts", name), {})
    assert invoke("models", "promote", "m1").exit_code == 0
    assert invoke("models", "promote", "m2", "--reason", "better on earnings").exit_code == 0
    listed = [json.loads(line) for line in invoke("models", "list", "--json").stdout.splitlines()]
    assert [(r["version"], r["status"]) for r in listed] == [("m1", "retired"), ("m2", "promoted")]
    rolled = invoke("models", "rollback", "--reason", "false alerts")
    assert rolled.exit_code == 0 and json.loads(rolled.stdout) == {"serving": "m1", "status": "promoted"}
    shown = json.loads(invoke("models", "show", "m2").stdout)
    assert shown["status"] == "retired" and "false alerts" in shown["events"][-1]["reason"]
    missing = invoke("models", "promote", "m9")
    assert missing.exit_code == 2 and "no model version 'm9'" in missing.output
    updates = [
        ModelUpdate.model_validate_json(r.value)
        for r in read_topic(broker.address, env.topic("model-updates"), expected=3)
    ]
    assert [(u.action, u.version) for u in updates] == [("promote", "m1"), ("promote", "m2"), ("rollback", "m1")]


def test_train_then_eval_then_register_records_the_gate_decision(env, tmp_path: Path, tiny_data: Path):
    run = tmp_path / "run"
    trained = invoke(
        "train",
        "--sentiment-file",
        str(tiny_data / "tfns_sentiment_train.csv"),
        "--topic-file",
        str(tiny_data / "tfnt_topic_train.csv"),
        "--max-steps",
        "2",
        "--batch-size",
        "8",
        "--output",
        str(run),
        "--version",
        "m-cli",
    )
    assert trained.exit_code == 0, trained.output
    assert "%|" not in trained.stderr  # stderr is no terminal: no progress bar unless --progress
    assert json.loads(trained.stdout.splitlines()[-1])["version"] == "m-cli"
    assert (run / "model" / "heldout.jsonl").exists() and (run / "report.md").exists()

    evaluated = invoke("eval", "--model", str(run), "--limit", "30", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.stdout)
    assert report["version"] == "m-cli" and report["sets"]["tfns-valid"]["n"] == 30
    assert len(report["sets"]["tfns-valid"]["sentiment"]["confusion"]) == 3

    # Two steps do not reach the production floors: registered, and rejected with reasons.
    registered = invoke("models", "register", str(run), "--promote")
    assert registered.exit_code == 0, registered.output
    outcome = json.loads(registered.stdout)
    assert outcome["status"] == "rejected" and any("below the floor" in r for r in outcome["reasons"])
    listed = invoke("models", "list")
    assert "m-cli" in listed.output and "rejected" in listed.output


def test_train_from_a_parent_replays_its_training_data_but_never_its_heldout_split(
    env, tmp_path: Path, tiny_data: Path, fresh_sentiment_rows
):
    parent = tmp_path / "parent"
    files = [tiny_data / "tfns_sentiment_train.csv", tiny_data / "tfnt_topic_train.csv"]
    first = invoke(
        "train",
        "--sentiment-file",
        str(files[0]),
        "--topic-file",
        str(files[1]),
        "--max-steps",
        "2",
        "--batch-size",
        "8",
        "--output",
        str(parent),
        "--version",
        "m-parent",
        "--no-progress",
    )
    assert first.exit_code == 0, first.output
    new = tmp_path / "new.jsonl"
    names = {"0": "negative", "1": "positive", "2": "neutral"}
    new.write_text(
        "".join(json.dumps({"text": r["text"], "sentiment": names[r["label"]]}) + "\n" for r in fresh_sentiment_rows)
    )
    child = tmp_path / "child"
    second = invoke(
        "train",
        "--labelled",
        str(new),
        "--parent",
        str(parent),
        "--replay-fraction",
        "1",
        "--max-steps",
        "2",
        "--batch-size",
        "8",
        "--output",
        str(child),
        "--version",
        "m-kid",
        "--no-progress",
    )
    assert second.exit_code == 0, second.output

    held = set(read_labelled(parent / "model" / "heldout.jsonl"))
    replay = set(read_labelled(child / "replay.jsonl"))
    assert held and replay == set(read_tfns(files[0]) + read_tfnt(files[1])) - held
    files_of_child = json.loads((child / "model" / "card.json").read_text())["data"]["files"]
    assert set(files_of_child) == {"new.jsonl", "replay.jsonl"}
    assert (child / "model" / "data" / "replay.jsonl").read_bytes() == (child / "replay.jsonl").read_bytes()


def test_train_refuses_missing_inputs(env, tmp_path: Path):
    assert "no training data" in invoke("train", "--output", str(tmp_path / "r")).output
    result = invoke("train", "--sentiment-file", str(tmp_path / "nope.csv"), "--output", str(tmp_path / "r"))
    assert result.exit_code == 2 and "no such file" in result.output


def test_a_promotion_the_broker_never_acknowledged_says_how_to_recover(env, monkeypatch, tmp_path: Path):
    from finsentry.models.registry import Registry
    from finsentry.streams.broker import free_port

    monkeypatch.setenv("FINSENTRY_BROKER", f"kafka://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("FINSENTRY_PRODUCER_DELIVERY_TIMEOUT_S", "2")
    get_settings.cache_clear()
    registry = Registry(get_settings().registry_dir, shipped=None)
    registry.register(_artifact(tmp_path / "arts", "m1"), {})
    result = invoke("models", "promote", "m1")
    assert result.exit_code == 1
    assert "promoted in the registry, but workers were not told" in result.output
    assert "finsentry models announce" in result.output
    assert registry.promoted().name == "m1"
