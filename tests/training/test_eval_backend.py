"""`finsentry eval --backend`: the golden sets scored through a serving backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finsentry.cli.training import app
from finsentry.models.backends import cuda_available
from finsentry.models.engine import SHIPPED_MODEL
from finsentry.settings import get_settings

ONNX_CACHE = Path(__file__).resolve().parents[2] / "var" / "test-model-cache"  # exports reused across runs


@pytest.fixture
def evaluate_cli(monkeypatch, tmp_path: Path, tiny_data: Path):
    for key, value in {
        "FINSENTRY_TRAIN_DATA_DIR": str(tiny_data),
        "FINSENTRY_MODEL_CACHE_DIR": str(ONNX_CACHE),
        "FINSENTRY_REGISTRY_DIR": str(tmp_path / "registry"),
        "FINSENTRY_STORE": f"sqlite:///{tmp_path / 'store.db'}",
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()

    def run(*args: str):
        return CliRunner().invoke(app, ["eval", "--model", str(SHIPPED_MODEL), "--no-labels", *args])

    yield run
    get_settings.cache_clear()


def accuracies(report: dict) -> dict[tuple[str, str], float]:
    return {
        (name, head): entry[head]["accuracy"]
        for name, entry in report["sets"].items()
        for head in ("sentiment", "topic")
        if head in entry
    }


def test_eval_scores_through_the_named_backend(evaluate_cli):
    reports = {}
    for backend in (None, "torch", "onnx"):
        result = evaluate_cli("--json", *(["--backend", backend] if backend else []))
        assert result.exit_code == 0, result.output
        reports[backend] = json.loads(result.stdout)
        assert reports[backend]["backend"] == (backend or "torch")
    plain, engine_fp32, onnx = (accuracies(reports[b]) for b in (None, "torch", "onnx"))
    assert set(plain) == {("tfns-valid", "sentiment"), ("tfnt-test", "topic")}
    n = {key: reports[None]["sets"][key[0]]["n"] for key in plain}
    for key in plain:
        assert abs(engine_fp32[key] - plain[key]) <= 1 / n[key]  # the same fp32 model, padded differently
        assert abs(onnx[key] - plain[key]) <= 0.03, (key, onnx[key], plain[key])
    assert reports["onnx"]["sets"] != reports["torch"]["sets"]  # int8 really scored it


def test_eval_refuses_a_backend_it_cannot_use(evaluate_cli):
    if not cuda_available():
        missing = evaluate_cli("--backend", "cuda")
        assert missing.exit_code == 2 and "not available" in missing.output
    both = evaluate_cli("--backend", "onnx", "--gate")
    assert both.exit_code == 2 and "do not combine" in both.output


def test_the_model_card_says_plainly_when_a_served_backend_misses_a_floor():
    from finsentry.models.classifier import ModelCard
    from finsentry.models.engine import below_floors
    from finsentry.training.model_card import record_backends, render

    card = ModelCard.read(SHIPPED_MODEL)
    sets = {
        "tfns-valid": {"n": 2388, "sentiment": {"n": 2388, "accuracy": 0.885, "macro_f1": 0.86, "ece": 0.01}},
        "tfnt-test": {"n": 4117, "topic": {"n": 4117, "accuracy": 0.91, "macro_f1": 0.9, "ece": 0.02}},
    }
    record_backends(
        card,
        {
            "slow-but-right": {
                "sets": {
                    **sets,
                    "tfns-valid": {
                        "n": 2388,
                        "sentiment": {"n": 2388, "accuracy": 0.895, "macro_f1": 0.86, "ece": 0.01},
                    },
                }
            },
            "quick": {"sets": sets},
        },
    )
    text = render(card, None)
    assert (
        "| quick | tfns-valid | sentiment | 2388 | 0.8850 | 0.8600 | 0.0100 | **below the floor: accuracy below "
        "0.89** |"
    ) in text
    assert "| slow-but-right | tfns-valid | sentiment | 2388 | 0.8950 | 0.8600 | 0.0100 | clears the floor |" in text
    assert list(below_floors(card)) == ["quick"]  # and `auto` will not serve with it
