"""Run a worker: the Faust app with every agent, the web page and /metrics."""

from __future__ import annotations

import faust

from finsentry.settings import Settings
from finsentry.streams.app import create_app
from finsentry.streams.runtime import Runtime


def run_worker(settings: Settings, runtime: Runtime | None = None) -> None:
    """`runtime`: pieces injected before start (benchmarks/null_worker.py brings its engine)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings, runtime)
    level = {"warning": "warn", "critical": "crit"}.get(settings.log_level.lower(), settings.log_level.lower())
    from finsentry.logging import dict_config

    # Faust installs its own logging at start: give it ours, so FINSENTRY_LOG_JSON holds for
    # every line, Faust's and aiokafka's included.
    worker = faust.Worker(app, loglevel=level, quiet=True, redirect_stdouts=False,
                          logging_config=dict_config(settings.log_level, settings.log_json))
    worker.execute_from_commandline()
