"""The built-in web dashboard served by the worker: page, JSON API, /metrics, /healthz."""

from finsentry.dashboards.web.server import register_web

__all__ = ["register_web"]
