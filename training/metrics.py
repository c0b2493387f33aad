"""Classification metrics: accuracy, macro-F1, per-class report, confusion matrix, ECE."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def confusion(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def expected_calibration_error(probs: np.ndarray, y_true: Sequence[int], bins: int = 15) -> float:
    """ECE of the top-class confidence over equal-width bins."""
    probs = np.asarray(probs, dtype=np.float64)
    conf = probs.max(1)
    correct = (probs.argmax(1) == np.asarray(y_true)).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return float(ece)


def classification_report(y_true: Sequence[int], probs: np.ndarray, labels: Sequence[str]) -> dict:
    probs = np.asarray(probs)
    y_true = np.asarray(y_true)
    y_pred = probs.argmax(1)
    matrix = confusion(y_true, y_pred, len(labels))
    per_class = {}
    f1s = []
    for i, name in enumerate(labels):
        tp = matrix[i, i]
        precision = tp / matrix[:, i].sum() if matrix[:, i].sum() else 0.0
        recall = tp / matrix[i, :].sum() if matrix[i, :].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        support = int(matrix[i, :].sum())
        per_class[name] = {"precision": float(precision), "recall": float(recall), "f1": float(f1), "support": support}
        if support:
            f1s.append(f1)
    return {
        "n": int(len(y_true)),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else 0.0,
        "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
        "ece": expected_calibration_error(probs, y_true) if len(y_true) else 0.0,
        "per_class": per_class,
        "confusion": matrix.tolist(),
    }
