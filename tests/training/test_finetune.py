"""Fine-tuning runs on a small slice (a handful of CPU steps each): identical runs give
identical weights, a run interrupted at an epoch boundary and resumed ends with the weights
of an uninterrupted run, a checkpoint of another run is refused, and a LoRA run merges into
an artifact the engine serves."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from training_helpers import TINY_TRAIN

from finsentry.labels import SENTIMENT_LABELS
from finsentry.models.classifier import MultiTaskClassifier, load_artifact
from finsentry.models.engine import Engine
from finsentry.training import finetune
from finsentry.training.finetune import CheckpointMismatch, TrainArguments, train
from finsentry.training.lineage import training_split

ROWS = 64  # 58 training examples: 4 steps an epoch at batch 16


class Interrupted(Exception):
    """Stands in for a process killed as its second epoch begins."""


@pytest.fixture(scope="module")
def small_file(tiny_data: Path, tmp_path_factory) -> Path:
    with open(tiny_data / "tfns_sentiment_train.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[:ROWS]
    path = tmp_path_factory.mktemp("small") / "tfns_small.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def arguments(output: Path, data: Path, **overrides) -> TrainArguments:
    return TrainArguments(
        output_dir=output,
        sentiment_files=[data],
        **{**TINY_TRAIN, "epochs": 2, "progress": False, "version": "m-small", **overrides},
    )


def weights_sha256(report: dict) -> str:
    return hashlib.sha256((Path(report["artifact"]) / "weights.safetensors").read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def reference(small_file: Path, tmp_path_factory) -> dict:
    """An uninterrupted two-epoch run."""
    return train(arguments(tmp_path_factory.mktemp("reference"), small_file))


def interrupt_second_epoch(monkeypatch) -> None:
    """Raise when the second epoch asks for its batches: epoch 1's checkpoint is written."""
    real, calls = finetune.grouped_batches, []

    def batches(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise Interrupted()
        return real(*args, **kwargs)

    monkeypatch.setattr(finetune, "grouped_batches", batches)


def test_identical_runs_give_identical_weights(reference, small_file: Path, tmp_path: Path):
    again = train(arguments(tmp_path / "again", small_file))
    assert reference["steps"] == again["steps"] == 8
    assert weights_sha256(again) == weights_sha256(reference)
    other_seed = train(arguments(tmp_path / "seed", small_file, seed=14, epochs=1))
    assert weights_sha256(other_seed) != weights_sha256(reference)  # the hash does see the weights


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_run(
    reference, small_file: Path, tmp_path: Path, monkeypatch
):
    args = arguments(tmp_path / "run", small_file)
    interrupt_second_epoch(monkeypatch)
    with pytest.raises(Interrupted):
        train(args)
    checkpoint = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert (checkpoint["epoch"], checkpoint["step"]) == (1, 4)
    monkeypatch.undo()

    resumed = train(args)
    assert resumed["steps"] == reference["steps"]
    assert resumed["history"] == reference["history"]
    assert weights_sha256(resumed) == weights_sha256(reference)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_a_checkpoint_of_other_arguments_or_data_is_refused(small_file: Path, tmp_path: Path, monkeypatch):
    args = arguments(tmp_path / "run", small_file)
    interrupt_second_epoch(monkeypatch)
    with pytest.raises(Interrupted):
        train(args)
    monkeypatch.undo()
    with pytest.raises(CheckpointMismatch, match="checkpoint.pt was written by another run"):
        train(replace(args, learning_rate=args.learning_rate * 2))
    changed = tmp_path / "data" / small_file.name  # same name, one row fewer
    changed.parent.mkdir()
    changed.write_text("".join(small_file.read_text(encoding="utf-8").splitlines(keepends=True)[:-1]), encoding="utf-8")
    with pytest.raises(CheckpointMismatch, match="--no-resume"):
        train(replace(args, sentiment_files=[changed]))
    # What may change between attempts does not count: the same run resumes elsewhere.
    assert train(replace(args, version="m-renamed", threads=1, progress=False))["steps"] == 8


def test_lora_run_merges_into_an_artifact_the_engine_serves(small_file: Path, tmp_path: Path):
    args = arguments(tmp_path / "lora", small_file, method="lora", epochs=1, learning_rate=1e-3)
    report = train(args)
    artifact = Path(report["artifact"])
    trained, card = load_artifact(artifact)  # strict: no adapter keys are left after the merge
    assert card.method == "lora"

    # LoRA moved the targeted projections and nothing else of the encoder.
    base = {k: v.half().float() for k, v in MultiTaskClassifier.from_base(card.encoder).state_dict().items()}
    state = trained.state_dict()
    assert not torch.equal(
        state["encoder.encoder.layer.0.attention.self.query.weight"],
        base["encoder.encoder.layer.0.attention.self.query.weight"],
    )
    assert torch.equal(
        state["encoder.embeddings.position_embeddings.weight"], base["encoder.embeddings.position_embeddings.weight"]
    )

    # The engine serves the merged model as training measured it on its dev split.
    _, dev = training_split(args)
    engine = Engine.load(artifact, backend="torch", cache_dir=tmp_path / "cache")
    predictions = engine.predict([e.text for e in dev])
    assert {p.model_version for p in predictions} == {"m-small"}
    accuracy = sum(SENTIMENT_LABELS[e.sentiment] == p.sentiment for e, p in zip(dev, predictions)) / len(dev)
    assert accuracy == pytest.approx(report["dev"]["sentiment"]["accuracy"], abs=1 / len(dev))
