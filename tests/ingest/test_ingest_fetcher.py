"""Politeness of the fetcher against the local HTTP server: robots.txt, per-host interval,
crawl-delay, errors and timeouts."""

from __future__ import annotations

import pytest
from fixture_site import FixtureSite

from finsentry.ingest.fetcher import (
    FetchTimeout,
    HTTPStatusError,
    PoliteFetcher,
    RobotsDisallowed,
    Validators,
)


class VirtualTime:
    """Clock and sleep that only move when the fetcher sleeps, so waits are exact."""

    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


@pytest.fixture
async def other_site():
    running = await FixtureSite().start()
    running.serve("/robots.txt", "", "text/plain")
    running.serve("/feed", "b")
    yield running
    await running.close()


async def test_requests_to_one_host_are_spaced_and_hosts_are_independent(site, other_site, settings):
    site.serve("/feed", "a")
    time = VirtualTime()
    fetcher = PoliteFetcher(
        settings.model_copy(update={"per_host_interval_s": 2.0}), clock=time.clock, sleep=time.sleep
    )
    try:
        await fetcher.get(site.url("/feed"))  # robots.txt at t=0, the feed waits 2 s
        await fetcher.get(other_site.url("/feed"))  # another host: its robots.txt goes at once
        await fetcher.get(site.url("/feed"))  # 2 s passed on the other host meanwhile: no wait
    finally:
        await fetcher.close()
    assert time.sleeps == [2.0, 2.0]
    assert site.hits("/feed") == 2 and site.hits("/robots.txt") == 1


async def test_crawl_delay_longer_than_the_interval_is_honoured(site, settings):
    site.serve("/robots.txt", "User-agent: *\nCrawl-delay: 5\n", "text/plain")
    site.serve("/feed", "a")
    time = VirtualTime()
    fetcher = PoliteFetcher(
        settings.model_copy(update={"per_host_interval_s": 1.0}), clock=time.clock, sleep=time.sleep
    )
    try:
        await fetcher.get(site.url("/feed"))
        await fetcher.get(site.url("/feed"))
    finally:
        await fetcher.close()
    assert time.sleeps == [5.0, 5.0]


@pytest.mark.parametrize(
    "robots, path, allowed",
    [
        ("User-agent: *\nDisallow: /private/\n", "/private/x", False),
        ("User-agent: *\nDisallow: /private/\n", "/public/x", True),
        ("User-agent: finsentry\nDisallow: /\n\nUser-agent: *\nAllow: /\n", "/public/x", False),
        ("User-agent: otherbot\nDisallow: /\n", "/public/x", True),
        # RFC 9309: the longest match wins, not the first rule listed.
        ("User-agent: *\nAllow: /\nDisallow: /premium/\n", "/premium/a", False),
        ("User-agent: *\nAllow: /\nDisallow: /premium/\n", "/news/a", True),
        # `*` matches any run of characters, `$` the end of the path.
        ("User-agent: *\nDisallow: /*.pdf$\n", "/reports/q3.pdf", False),
        ("User-agent: *\nDisallow: /*.pdf$\n", "/reports/q3.pdf.html", True),
    ],
)
async def test_robots_rules_for_our_user_agent(site, settings, robots, path, allowed):
    site.serve("/robots.txt", robots, "text/plain")
    fetcher = PoliteFetcher(settings)
    try:
        assert await fetcher.allowed(site.url(path)) is allowed
    finally:
        await fetcher.close()


async def test_missing_robots_allows_and_failing_robots_disallows(site, settings):
    del site.pages["/robots.txt"]  # 404: no rules
    site.serve("/feed", "ok")
    fetcher = PoliteFetcher(settings)
    try:
        assert (await fetcher.get(site.url("/feed"))).body == b"ok"
    finally:
        await fetcher.close()

    site.fail("/robots.txt", 503)  # RFC 9309: a server error means complete disallow
    fetcher = PoliteFetcher(settings)
    try:
        with pytest.raises(RobotsDisallowed):
            await fetcher.get(site.url("/feed"))
    finally:
        await fetcher.close()
    assert site.hits("/feed") == 1


async def test_errors_carry_their_kind(site, settings):
    site.delays["/slow"] = 1.0
    site.serve("/slow", "late")
    fetcher = PoliteFetcher(settings.model_copy(update={"scrape_timeout_s": 0.2}))
    try:
        with pytest.raises(HTTPStatusError) as missing:
            await fetcher.get(site.url("/nothing-here"))
        assert missing.value.kind == "http_4xx" and missing.value.status == 404
        site.fail("/boom", 500)
        with pytest.raises(HTTPStatusError) as boom:
            await fetcher.get(site.url("/boom"))
        assert boom.value.kind == "http_5xx"
        with pytest.raises(FetchTimeout):
            await fetcher.get(site.url("/slow"))
    finally:
        await fetcher.close()


async def test_conditional_get_sends_validators_and_reports_304(site, settings):
    site.serve("/feed", "body", etag='"e1"')
    fetcher = PoliteFetcher(settings)
    try:
        first = await fetcher.get(site.url("/feed"), validators=Validators())
        assert first.status == 200 and first.validators == Validators('"e1"', None)
        second = await fetcher.get(site.url("/feed"), validators=first.validators)
        assert second.not_modified and second.body == b""
        plain = await fetcher.get(site.url("/feed"))
        assert plain.status == 200
    finally:
        await fetcher.close()


# --- article pages in legacy encodings ---------------------------------------------------------

PAGE = """<html><head><meta http-equiv="Content-Type" content="text/html; charset={charset}">
<title>{title}</title></head><body><article><h1>{title}</h1>
<p>{body}</p><p>{body}</p><p>{body}</p></article></body></html>"""


@pytest.mark.parametrize(
    "charset, title, body",
    [
        (
            "windows-1252",
            "Café société’s outlook",
            "Profits at the café chain fell – “a difficult quarter”, said the CEO, naïvely optimistic about 2025.",
        ),
        (
            "shift_jis",
            "決算発表",
            "トヨタ自動車の四半期決算は市場予想を下回り、株価は大幅に下落した。経営陣は来期の見通しを引き下げた。",
        ),
    ],
)
@pytest.mark.parametrize("content_type", ["text/html", "text/html; charset={charset}"])
def test_article_text_is_decoded_in_the_pages_own_charset(charset, title, body, content_type):
    """The page declares its charset in a meta tag (and maybe the Content-Type header);
    nothing may be decoded as UTF-8 first."""
    from finsentry.ingest.feeds import _main_text

    raw = PAGE.format(charset=charset, title=title, body=body).encode(charset)
    text = _main_text(raw, "http://127.0.0.1/a", content_type.format(charset=charset))
    assert text and body in text and "\ufffd" not in text


def test_a_wrong_charset_header_falls_back_to_detection():
    from finsentry.ingest.feeds import _main_text

    body = "Profits at the café chain fell – “a difficult quarter”, said the CEO, quite naïvely."
    raw = PAGE.format(charset="windows-1252", title="Café", body=body).encode("windows-1252")
    text = _main_text(raw, "http://127.0.0.1/a", "text/html; charset=utf-8")
    assert text and body in text
