"""A finsentry worker for the dashboard tests, run as its own process: `python dashboard_worker.py`,
configured like `finsentry worker` through FINSENTRY_* variables.

It is the real thing: the worker's composition root (build_worker_app: the agents' app with
the web dashboard mounted), the validate, score and index agents with the shipped model, and
the alert agents (observe, detect, notify: the spike detector and the notification outbox) on
the embedded broker, the SQLite store, the consumer-lag collector and the Faust web server. It
differs from `finsentry worker` only in leaving out the model-updates follower (these tests
promote no model) and in collecting the consumer lag every second instead of every few, so
that the Prometheus tests see it move within their time.
"""

from __future__ import annotations

import logging

import faust

from finsentry.cli.worker_app import build_worker_app
from finsentry.settings import get_settings
from finsentry.streams.consumer_lag import register_lag_collector
from finsentry.streams.runtime import Runtime


def main() -> None:
    settings = get_settings()
    logging.basicConfig(level=settings.log_level)
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # as run_worker does
    runtime = Runtime(settings)  # loads the shipped model and the near-duplicate index at start
    app = build_worker_app(settings, runtime=runtime, agents=("validate", "score", "index", "alert"))
    register_lag_collector(app, interval_s=1.0)

    # The web server's address and port come from the app's configuration (faust_config).
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), override_logging=False)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
