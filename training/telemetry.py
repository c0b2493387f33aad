"""Prometheus metrics of the trainer (`finsentry trainer`): retraining runs and drift checks.

The pipeline's metrics are in finsentry/metrics.py; these live here because only the
trainer records them.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RETRAIN_RUNS = Counter("finsentry_retrain_runs_total", "Retraining runs by result.", ["trigger", "result"])
DRIFT_TRIGGERS = Counter("finsentry_drift_triggers_total", "Drift detections by reason.", ["reason"])
DRIFT_PSI = Gauge("finsentry_drift_psi", "PSI of the predicted class mix against the training mix.", ["head"])

# A failed run is alerted on its first increase(), so its series starts at 0.
for _trigger in ("schedule", "drift"):
    RETRAIN_RUNS.labels(trigger=_trigger, result="failed")
