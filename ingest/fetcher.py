"""Polite HTTP for the scrapers (aiohttp): our User-Agent, robots.txt, one request at a time
per host with a least interval between them, conditional GET, bounded bodies.

The fetcher keeps no validators: a source remembers them only once what it published from
an answer was acknowledged, so a failed publish is fetched again instead of being 304'd.

robots.txt follows RFC 9309 (parsed by Protego: the longest matching rule wins, `*` and `$`
patterns count): a 4xx answer means no rules (everything allowed); a 5xx or an unreachable
server means everything is disallowed until the next check. Crawl-delay, when larger than
the configured interval, is honoured.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDictProxy
from protego import Protego

from finsentry.ingest.source import SourceError
from finsentry.settings import Settings

log = logging.getLogger("finsentry.ingest.fetch")

MAX_BODY_BYTES = 20_000_000  # feeds and article pages are far smaller; guards memory
ROBOTS_TTL_S = 3600.0  # RFC 9309 asks to re-check at least daily
ROBOTS_RETRY_S = 300.0  # after an unreachable robots.txt
ALLOW_ALL = ""
DISALLOW_ALL = "User-agent: *\nDisallow: /\n"


class FetchError(SourceError):
    kind = "network"


class FetchTimeout(FetchError):
    kind = "timeout"


class HTTPStatusError(FetchError):
    def __init__(self, url: str, status: int):
        self.url, self.status = url, status
        self.kind = "http_5xx" if status >= 500 else "http_4xx"
        super().__init__(f"HTTP {status} from {url}")


class RobotsDisallowed(FetchError):
    kind = "robots"

    def __init__(self, url: str):
        self.url = url
        super().__init__(f"robots.txt disallows {url}")


@dataclass(frozen=True)
class Validators:
    """What a conditional GET sends back: the ETag and Last-Modified of the last 200."""

    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


@dataclass(frozen=True)
class Response:
    url: str
    status: int
    body: bytes
    headers: CIMultiDictProxy | dict

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def validators(self) -> Validators:
        return Validators(self.headers.get("ETag"), self.headers.get("Last-Modified"))


@dataclass
class _Robots:
    parser: Protego
    expires: float


class PoliteFetcher:
    """One per process; share it between sources so per-host politeness is global."""

    def __init__(
        self,
        settings: Settings,
        *,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.user_agent = settings.user_agent
        self.interval_s = settings.per_host_interval_s
        self.timeout = aiohttp.ClientTimeout(total=settings.scrape_timeout_s)
        self._session = session
        self._own_session = session is None
        self._clock, self._sleep = clock, sleep
        self._host_locks: dict[str, asyncio.Lock] = {}
        self._last_request: dict[str, float] = {}
        self._robots: dict[str, _Robots] = {}
        self._robots_locks: dict[str, asyncio.Lock] = {}

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers={"User-Agent": self.user_agent}, timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()

    async def get(self, url: str, *, validators: Validators | None = None) -> Response:
        """GET `url` if robots.txt allows it. With validators, a conditional GET: the answer
        may be 304 (response.not_modified). Raises FetchError subclasses."""
        if not await self.allowed(url):
            raise RobotsDisallowed(url)
        response = await self._request(url, validators.headers() if validators else {})
        if response.status == 304 and validators:
            return response
        if response.status >= 400 or response.status == 304:
            raise HTTPStatusError(url, response.status)
        return response

    async def allowed(self, url: str) -> bool:
        robots = await self._robots_for(url)
        return robots.can_fetch(url, self.user_agent)

    async def _robots_for(self, url: str) -> Protego:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        async with self._robots_locks.setdefault(origin, asyncio.Lock()):  # one fetch per origin
            cached = self._robots.get(origin)
            if cached and cached.expires > self._clock():
                return cached.parser
            return await self._fetch_robots(origin)

    async def _fetch_robots(self, origin: str) -> Protego:
        rules, ttl = ALLOW_ALL, ROBOTS_TTL_S
        try:
            answer = await self._request(f"{origin}/robots.txt", {})
        except FetchError as exc:
            log.warning("robots.txt unreachable origin=%s error=%s: disallowing until retry", origin, exc)
            rules, ttl = DISALLOW_ALL, ROBOTS_RETRY_S
        else:
            if answer.status >= 500:
                rules, ttl = DISALLOW_ALL, ROBOTS_RETRY_S
            elif answer.status < 400:
                rules = answer.body.decode("utf-8", "replace")  # RFC 9309: robots.txt is UTF-8
        parser = Protego.parse(rules)
        self._robots[origin] = _Robots(parser, self._clock() + ttl)
        return parser

    def _host_interval(self, origin: str) -> float:
        cached = self._robots.get(origin)
        delay = cached.parser.crawl_delay(self.user_agent) if cached else None
        return max(self.interval_s, float(delay or 0))

    async def _request(self, url: str, headers: dict[str, str]) -> Response:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        lock = self._host_locks.setdefault(origin, asyncio.Lock())
        async with lock:  # one request at a time per host
            last = self._last_request.get(origin)
            if last is not None:
                wait = last + self._host_interval(origin) - self._clock()
                if wait > 0:
                    await self._sleep(wait)
            self._last_request[origin] = self._clock()
            try:
                async with self.session.get(url, headers=headers, timeout=self.timeout) as answer:
                    body = await _read_bounded(answer, url)
                    return Response(str(answer.url), answer.status, body, answer.headers)
            except asyncio.TimeoutError:
                raise FetchTimeout(f"no answer from {url} within {self.timeout.total:.0f}s") from None
            except aiohttp.ClientError as exc:
                raise FetchError(f"{type(exc).__name__} fetching {url}: {exc}") from None


async def _read_bounded(answer: aiohttp.ClientResponse, url: str) -> bytes:
    chunks, size = [], 0
    async for chunk in answer.content.iter_chunked(65536):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise FetchError(f"{url} is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
