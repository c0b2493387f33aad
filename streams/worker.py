"""Run a worker: the Faust app with every agent, the web page and /metrics."""

from __future__ import annotations

import faust

from finsentry.settings import Settings
from finsentry.streams.app import create_app


def run_worker(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.lower().replace("warning", "warn"),
                          web_port=settings.web_port, web_bind=settings.web_host, web_host=settings.web_host,
                          override_logging=False)
    worker.execute_from_commandline()
