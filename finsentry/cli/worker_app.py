"""The worker's composition root: the Faust app with every agent, the web page, /api and /metrics.

It sits on top of the layers: streams/ builds the agents' app, dashboards/ the web views,
and only this module knows both.
"""

from __future__ import annotations

import faust

from finsentry.dashboards.web import register_web
from finsentry.logging import dict_config
from finsentry.settings import Settings
from finsentry.streams.app import create_app
from finsentry.streams.runtime import Runtime


def build_worker_app(
    settings: Settings, runtime: Runtime | None = None, agents: tuple[str, ...] | None = None
) -> faust.App:
    """The agents' app (every agent, or the named subset) with the web views mounted on it."""
    app = create_app(settings, runtime, agents)
    rt: Runtime = app.finsentry  # type: ignore[attr-defined]
    register_web(app, lambda: rt.store, settings, lambda: rt.liveness)
    return app


def run_worker(settings: Settings, runtime: Runtime | None = None) -> None:
    """`runtime`: pieces injected before start (benchmarks/null_worker.py brings its engine)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = build_worker_app(settings, runtime)
    level = {"warning": "warn", "critical": "crit"}.get(settings.log_level.lower(), settings.log_level.lower())
    # Faust installs its own logging at start: give it ours, so FINSENTRY_LOG_JSON holds for
    # every line, Faust's and aiokafka's included.
    worker = faust.Worker(
        app,
        loglevel=level,
        quiet=True,
        redirect_stdouts=False,
        logging_config=dict_config(settings.log_level, settings.log_json),
    )
    worker.execute_from_commandline()
