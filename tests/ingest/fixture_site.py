"""A real HTTP server on loopback (aiohttp) serving the fixture feeds, pages, review JSON and
robots.txt, with conditional GET and scripted failures, logging every request it gets."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class Page:
    body: bytes
    content_type: str
    etag: str | None = None
    last_modified: str | None = None


class FixtureSite:
    def __init__(self) -> None:
        self.pages: dict[str, Page] = {}
        self.failures: dict[str, list[int]] = {}  # path → statuses to answer before the page
        self.delays: dict[str, float] = {}  # path → seconds to wait before answering
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.base = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> "FixtureSite":
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self

    async def close(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    def url(self, path: str) -> str:
        return self.base + path

    def serve(
        self,
        path: str,
        body: str | bytes,
        content_type: str = "text/html; charset=utf-8",
        *,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> None:
        if isinstance(body, str):
            body = body.replace("{base}", self.base).encode("utf-8")
        self.pages[path] = Page(body, content_type, etag, last_modified)

    def serve_fixture(self, path: str, name: str, content_type: str, **validators) -> None:
        self.serve(path, (FIXTURES / name).read_text(encoding="utf-8"), content_type, **validators)

    def fail(self, path: str, *statuses: int) -> None:
        self.failures[path] = list(statuses)

    def hits(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)

    def headers_of(self, path: str) -> list[dict[str, str]]:
        return [h for p, h in self.requests if p == path]

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path
        self.requests.append((path, dict(request.headers)))
        if path in self.delays:
            await asyncio.sleep(self.delays[path])
        pending = self.failures.get(path)
        if pending:
            return web.Response(status=pending.pop(0), text="scripted failure")
        page = self.pages.get(path)
        if page is None:
            return web.Response(status=404, text="not found")
        headers = {}
        if page.etag:
            headers["ETag"] = page.etag
            if request.headers.get("If-None-Match") == page.etag:
                return web.Response(status=304, headers=headers)
        if page.last_modified:
            headers["Last-Modified"] = page.last_modified
            if not page.etag and request.headers.get("If-Modified-Since") == page.last_modified:
                return web.Response(status=304, headers=headers)
        return web.Response(body=page.body, headers={**headers, "Content-Type": page.content_type})
