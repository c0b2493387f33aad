"""Temperature scaling on synthetic logits whose true calibration is known."""

from __future__ import annotations

import numpy as np
import pytest

from finsentry.training.calibration import fit_temperature, softmax
from finsentry.training.metrics import expected_calibration_error


def sampled(scale: float, n: int = 6000, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z), so z is perfectly calibrated; returns (scale * z, labels)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, size=(n, classes))
    p = softmax(z)
    labels = (rng.random((n, 1)) > p.cumsum(1)).sum(1)
    return scale * z, labels


@pytest.mark.parametrize("scale", [3.0, 0.5])
def test_fit_temperature_undoes_a_known_miscalibration(scale):
    logits, labels = sampled(scale)
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(scale, rel=0.1)  # over-confident (scale > 1) needs T > 1, and vice versa
    before = expected_calibration_error(softmax(logits), labels)
    after = expected_calibration_error(softmax(logits, t), labels)
    assert after < before / 2, (before, after)
    assert after < 0.03, after


def test_fit_temperature_without_labels_is_identity():
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 1.0
