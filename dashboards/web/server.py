"""The built-in dashboard on the worker's Faust web server: the page, its JSON API under
/api, /metrics for Prometheus and /healthz.

The page and /api require FINSENTRY_WEB_TOKEN when it is set (header X-Finsentry-Token or
?token=); /metrics, /healthz and the static assets (code, no data) stay open so that
Prometheus and health checks need no secret. The server binds to FINSENTRY_WEB_HOST
(loopback unless configured otherwise) through the app's web settings.
"""

from __future__ import annotations

import hmac
import logging
from pathlib import Path
from typing import Any, Awaitable, Callable

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from finsentry import metrics
from finsentry.dashboards.web import api
from finsentry.settings import Settings
from finsentry.store.base import Store, StoreUnavailable

log = logging.getLogger("finsentry.web")

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
VENDOR_DIR = HERE / "vendor"
TOKEN_HEADER = "X-Finsentry-Token"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}

# Defence in depth behind the page's text-only rendering: no inline script, nothing foreign.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
API_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}

ApiCall = Callable[[Store, api.Params], Awaitable[dict[str, Any]]]


def token_ok(request: Request, settings: Settings) -> bool:
    if settings.web_token is None:
        return True
    expected = settings.web_token.get_secret_value().encode()
    given = request.headers.get(TOKEN_HEADER) or request.query.get("token") or ""
    return hmac.compare_digest(given.encode(), expected)


def model_versions() -> list[str]:
    """The serving model version(s), read back from finsentry_model_info."""
    return sorted({s.labels["version"] for m in metrics.MODEL_INFO.collect() for s in m.samples if s.value == 1})


def api_view(settings: Settings, get_store: Callable[[], Store | None], call: ApiCall) -> type[View]:
    class ApiView(View):
        async def get(self, request: Request) -> Response:
            if not token_ok(request, settings):
                return self.json({"error": "token required"}, status=401, headers=API_HEADERS)
            store = get_store()
            if store is None:
                return self.json({"error": "the store is not open yet"}, status=503, headers=API_HEADERS)
            try:
                body = await call(store, request.query)
            except (api.BadRequest, ValueError) as exc:  # SearchQuery validates too
                return self.json({"error": str(exc)}, status=400, headers=API_HEADERS)
            except StoreUnavailable as exc:
                log.warning("web api: store unavailable: %s", exc)
                return self.json({"error": "the store is unavailable, retry shortly"}, status=503, headers=API_HEADERS)
            return self.json(body, headers=API_HEADERS)

    return ApiView


def page_view(settings: Settings) -> type[View]:
    index = (STATIC_DIR / "index.html").read_text()

    class PageView(View):
        async def get(self, request: Request) -> Response:
            if not token_ok(request, settings):
                return self.text(
                    "finsentry: this dashboard needs its token: open /?token=YOUR_TOKEN\n",
                    status=401,
                    headers=API_HEADERS,
                )
            return self.html(index, headers=PAGE_HEADERS)

    return PageView


class MetricsView(View):
    async def get(self, request: Request) -> Response:
        return self.bytes(generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


def health_view(get_store: Callable[[], Store | None], get_liveness: Callable[[], Any] | None = None) -> type[View]:
    class HealthView(View):
        async def get(self, request: Request) -> Response:
            # 200 only while the worker does its work: see finsentry/streams/liveness.py.
            liveness = get_liveness() if get_liveness is not None else None
            if liveness is None:
                ready = get_store() is not None
                body = {"status": "ok" if ready else "not ready", "ready": ready}
            else:
                body = liveness.report()
            return self.json(body, status=200 if body["ready"] else 503, headers=API_HEADERS)

    return HealthView


async def _stats(store: Store, params: api.Params) -> dict[str, Any]:
    return await api.stats(store, params, model_versions())


def register_web(
    app: faust.App,
    get_store: Callable[[], Store | None],
    settings: Settings,
    get_liveness: Callable[[], Any] | None = None,
) -> None:
    """Serve the dashboard page, /api/*, /metrics and /healthz on the app's web server.

    `get_store` is called per request, so the store may be opened after registration
    (it returns None until then and the API answers 503).
    """
    routes: dict[str, ApiCall] = {
        "/api/documents": api.documents,
        "/api/alerts": api.alerts,
        "/api/series": api.series,
        "/api/search": api.search,
        "/api/stats": _stats,
    }
    for path, call in routes.items():
        app.page(path, name=f"finsentry{path.replace('/', '.')}")(api_view(settings, get_store, call))
    app.page("/metrics", name="finsentry.metrics")(MetricsView)
    app.page("/healthz", name="finsentry.healthz")(health_view(get_store, get_liveness))
    # Registered before faust applies its own blueprints, so this page wins at "/".
    app.page("/", name="finsentry.page")(page_view(settings))
    app.web.add_static("/static", STATIC_DIR)
    app.web.add_static("/vendor", VENDOR_DIR)
    if settings.web_token is None and settings.web_host not in LOOPBACK:
        log.warning(
            "web dashboard on %s has no FINSENTRY_WEB_TOKEN: anyone who reaches this address reads it",
            settings.web_host,
        )
