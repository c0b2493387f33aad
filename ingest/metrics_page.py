"""GET /metrics of the ingest processes' own HTTP servers (the scraper's status port, the
push endpoint): this process's registry in the Prometheus text format. Open, like the
worker's: it carries counts, never documents or secrets."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest


async def metrics_page(_request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})
