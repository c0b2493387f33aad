"""Fixtures of the training tests (helpers live in training_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from training_helpers import sample_rows, tiny_settings, write_tiny_data


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One intra-op thread: on a shared 2-core machine, a second thread mostly spin-waits
    and doubles the CPU time of every training step."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """Class-balanced slices of the four files: 180 + 160 training rows, 120 + 120 golden."""
    out = tmp_path_factory.mktemp("tfn")
    write_tiny_data(out)
    return out


@pytest.fixture(scope="session")
def fresh_sentiment_rows() -> list[dict[str, str]]:
    """Training rows not in the tiny slice: the 'new data' of a retraining run."""
    return sample_rows("tfns_sentiment_train.csv", 20, 1, skip=60)


@pytest.fixture
def training_settings(tmp_path: Path, tiny_data: Path):
    return lambda **overrides: tiny_settings(tmp_path, tiny_data, **overrides)
