"""RSS/Atom sources and the runner, against a local HTTP server and the real embedded broker."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from ingest_helpers import read_topic

from finsentry import metrics
from finsentry.ingest.feeds import FeedOptions, FeedSource
from finsentry.ingest.fetcher import PoliteFetcher
from finsentry.ingest.producer import DocumentProducer
from finsentry.ingest.runner import ScrapeRunner
from finsentry.ingest.seen import SeenSet

RSS = "application/rss+xml"
ATOM = "application/atom+xml"


def published(settings, broker) -> list[dict]:
    return [json.loads(r.value) for r in read_topic(broker.address, settings.topic("docs.raw"))]


def metric(counter, **labels) -> float:
    return counter.labels(**labels)._value.get()


@pytest.fixture
async def rig(settings):
    """fetcher + producer + seen-set as the scraper process has them; closed afterwards."""

    class Rig:
        def __init__(self):
            self.fetcher = PoliteFetcher(settings)
            self.producer = DocumentProducer(settings)
            self.seen = SeenSet(settings.seen_path)

        def runner(self, *sources, **kwargs) -> ScrapeRunner:
            return ScrapeRunner(list(sources), self.producer, self.seen, **kwargs)

        def feed(self, name, url, interval=60.0, **options) -> FeedSource:
            return FeedSource(name, url, interval, self.fetcher, FeedOptions(**options))

    made = Rig()
    yield made
    await made.fetcher.close()
    made.producer.close()
    made.seen.close()


async def test_new_items_are_published_once(site, rig, settings, broker):
    site.serve_fixture("/feeds/markets.rss", "markets.rss", RSS)
    site.serve_fixture("/feeds/earnings.atom", "earnings.atom", ATOM)
    markets = rig.feed("markets", site.url("/feeds/markets.rss"))
    earnings = rig.feed("earnings", site.url("/feeds/earnings.atom"))
    runner = rig.runner(markets, earnings)

    first = [await runner.poll_once(markets), await runner.poll_once(earnings)]
    assert [r.new for r in first] == [3, 2]
    again = [await runner.poll_once(markets), await runner.poll_once(earnings)]
    assert [(r.new, r.seen) for r in again] == [(0, 3), (0, 2)]  # no validators: full answers, all seen

    docs = published(settings, broker)
    assert len(docs) == 5
    by_title = {d["title"]: d for d in docs}
    northwind = by_title["Northwind Bank cuts full-year guidance"]
    assert northwind["source"] == "markets" and northwind["kind"] == "news"
    assert northwind["text"] == "Shares of Northwind fell 8% in early trading."  # HTML stripped
    assert northwind["published_at"] == "2024-05-01T09:30:00Z"
    assert northwind["url"] == site.url("/articles/northwind.html")
    assert northwind["meta"]["guid"] == "wire-1001" and northwind["lang"] == "en-us"
    tailspin = by_title["Tailspin Toys misses on margins"]  # Atom content preferred to summary
    assert "kept its outlook unchanged" in tailspin["text"]


async def test_conditional_get_is_sent_and_304_honoured(site, rig, settings, broker):
    site.serve_fixture(
        "/feeds/markets.rss", "markets.rss", RSS, etag='"v1"', last_modified="Wed, 01 May 2024 10:15:00 GMT"
    )
    feed = rig.feed("markets", site.url("/feeds/markets.rss"))
    runner = rig.runner(feed)
    before = metric(metrics.SCRAPE_NOT_MODIFIED, source="markets")

    assert (await runner.poll_once(feed)).new == 3
    second = await runner.poll_once(feed)
    assert (second.new, second.seen) == (0, 0)  # nothing parsed: the server said 304
    sent = site.headers_of("/feeds/markets.rss")
    assert "If-None-Match" not in sent[0]
    assert sent[1]["If-None-Match"] == '"v1"'
    assert sent[1]["If-Modified-Since"] == "Wed, 01 May 2024 10:15:00 GMT"
    assert metric(metrics.SCRAPE_NOT_MODIFIED, source="markets") == before + 1

    # the feed changes: a new ETag, one new item among the old ones
    body = (
        site.pages["/feeds/markets.rss"]
        .body.decode()
        .replace(
            "<item>",
            "<item><title>Woodgrove recalls cards</title><guid>wire-1004</guid>"
            "<description>A printing fault.</description></item><item>",
            1,
        )
    )
    site.serve("/feeds/markets.rss", body, RSS, etag='"v2"')
    third = await runner.poll_once(feed)
    assert (third.new, third.seen) == (1, 3)
    assert len(published(settings, broker)) == 4


async def test_last_modified_alone_makes_the_get_conditional(site, rig, settings, broker):
    """A server that sends no ETag: the second poll asks If-Modified-Since and the 304 is
    honoured (the fixture server answers 304 on the date only when the page has no ETag)."""
    stamp = "Wed, 01 May 2024 10:15:00 GMT"
    site.serve_fixture("/feeds/markets.rss", "markets.rss", RSS, last_modified=stamp)
    feed = rig.feed("markets", site.url("/feeds/markets.rss"))
    runner = rig.runner(feed)
    before = metric(metrics.SCRAPE_NOT_MODIFIED, source="markets")

    assert (await runner.poll_once(feed)).new == 3
    second = await runner.poll_once(feed)
    assert (second.new, second.seen) == (0, 0)  # a full answer would have listed 3 seen items
    first_sent, second_sent = site.headers_of("/feeds/markets.rss")
    assert "If-Modified-Since" not in first_sent
    assert second_sent["If-Modified-Since"] == stamp and "If-None-Match" not in second_sent
    assert metric(metrics.SCRAPE_NOT_MODIFIED, source="markets") == before + 1
    assert len(published(settings, broker)) == 3


async def test_undelivered_items_are_fetched_again_not_hidden_by_a_304(site, rig, settings, broker):
    """Validators are remembered only after a fully acknowledged poll: when publishing fails,
    the next poll is unconditional and publishes what was missed."""
    site.serve_fixture("/feeds/markets.rss", "markets.rss", RSS, etag='"v1"')
    feed = rig.feed("markets", site.url("/feeds/markets.rss"))
    tiny = DocumentProducer(settings, max_request_size=200)  # every document is too large for it
    try:
        failing = ScrapeRunner([feed], tiny, rig.seen)
        await failing.poll_and_record(feed)
        assert failing.state["markets"].consecutive_failures == 1
        assert "MessageSizeTooLargeError" in failing.state["markets"].last_error
    finally:
        tiny._producer.close(timeout=1)
    result = await rig.runner(feed).poll_once(feed)
    assert result.new == 3
    assert "If-None-Match" not in site.headers_of("/feeds/markets.rss")[1]
    assert len(published(settings, broker)) == 3


async def test_restart_over_the_same_seen_db_publishes_nothing_twice(site, settings, broker):
    site.serve_fixture("/feeds/markets.rss", "markets.rss", RSS, etag='"v1"')
    url = site.url("/feeds/markets.rss")

    async def one_life() -> int:
        fetcher = PoliteFetcher(settings)  # fresh: no validators, a full 200 answer
        with DocumentProducer(settings) as producer, SeenSet(settings.seen_path) as seen:
            feed = FeedSource("markets", url, 60, fetcher)
            result = await ScrapeRunner([feed], producer, seen).poll_once(feed)
        await fetcher.close()
        return result.new

    assert await one_life() == 3
    assert await one_life() == 0
    assert site.hits("/feeds/markets.rss") == 2  # both lives really fetched
    assert len(published(settings, broker)) == 3


async def test_failing_sources_are_retried_without_stopping_the_others(site, rig, settings, broker, caplog):
    site.serve_fixture("/feeds/markets.rss", "markets.rss", RSS)
    site.serve_fixture("/feeds/earnings.atom", "earnings.atom", ATOM)
    site.fail("/feeds/earnings.atom", 500, 503)  # two server errors, then the feed
    site.serve("/feeds/broken.xml", "<rss><channel><item><title>unterminated", RSS)
    sources = [
        rig.feed("markets", site.url("/feeds/markets.rss"), interval=0.05),
        rig.feed("earnings", site.url("/feeds/earnings.atom"), interval=0.05),
        rig.feed("broken", site.url("/feeds/broken.xml"), interval=0.05),
    ]
    runner = rig.runner(*sources)
    errors_before = metric(metrics.SCRAPE_ERRORS, source="earnings", kind="http_5xx")
    caplog.set_level(logging.INFO, logger="finsentry.ingest")

    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    for _ in range(1200):  # up to 60 s: a loaded machine is slow, the loop ends on the condition
        if runner.state["earnings"].items == 2 and runner.state["broken"].errors >= 2:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 10)

    assert runner.state["markets"].items == 3 and runner.state["markets"].errors == 0
    assert runner.state["earnings"].items == 2 and runner.state["earnings"].errors == 2
    assert metric(metrics.SCRAPE_ERRORS, source="earnings", kind="http_5xx") == errors_before + 2
    assert runner.state["broken"].errors >= 2 and runner.state["broken"].last_success is None
    assert site.hits("/feeds/broken.xml") >= 2  # retried
    assert "poll failed source=broken kind=malformed" in caplog.text
    assert "poll failed source=earnings kind=http_5xx" in caplog.text
    titles = sorted(d["title"] for d in published(settings, broker))
    assert len(titles) == 5 and len(set(titles)) == 5


async def test_robots_txt_is_respected(site, rig, settings, broker):
    site.serve_fixture("/private/feed.rss", "markets.rss", RSS)
    site.serve_fixture("/feeds/markets.rss", "markets.rss", RSS)
    site.serve_fixture("/articles/northwind.html", "northwind.html", "text/html")
    site.serve_fixture("/private/fabrikam.html", "northwind.html", "text/html")
    hidden = rig.feed("hidden", site.url("/private/feed.rss"))
    markets = rig.feed("markets", site.url("/feeds/markets.rss"), full_text=True)
    runner = rig.runner(hidden, markets)
    blocked_before = metric(metrics.SCRAPE_ROBOTS_BLOCKED, source="markets")

    await runner.poll_and_record(hidden)
    assert runner.state["hidden"].consecutive_failures == 1
    assert "robots.txt disallows" in runner.state["hidden"].last_error
    assert (await runner.poll_once(markets)).new == 3

    assert site.hits("/private/feed.rss") == 0
    assert site.hits("/private/fabrikam.html") == 0  # the one article under /private/
    assert site.hits("/articles/northwind.html") == 1
    assert site.hits("/robots.txt") == 1  # cached per host
    assert metric(metrics.SCRAPE_ROBOTS_BLOCKED, source="markets") == blocked_before + 1
    fabrikam = next(d for d in published(settings, broker) if d["title"].startswith("Fabrikam"))
    assert fabrikam["text"] == "The appointment takes effect in June."  # the summary, not the page


async def test_full_text_is_fetched_once_for_new_items_only(site, rig, settings, broker):
    site.serve_fixture("/feeds/markets.rss", "markets.rss", RSS)
    site.serve_fixture("/articles/northwind.html", "northwind.html", "text/html")
    # /articles/contoso.html is missing (404): that item keeps its summary
    feed = rig.feed("markets", site.url("/feeds/markets.rss"), full_text=True)
    runner = rig.runner(feed)
    await runner.poll_once(feed)
    await runner.poll_once(feed)
    assert site.hits("/articles/northwind.html") == 1
    assert site.hits("/articles/contoso.html") == 1
    docs = {d["title"]: d for d in published(settings, broker)}
    northwind = docs["Northwind Bank cuts full-year guidance"]
    assert "net interest income to fall between four and six percent" in northwind["text"]
    assert "Sign in" not in northwind["text"] and "Copyright" not in northwind["text"]
    assert northwind["meta"]["full_text"] is True
    assert docs["Contoso beats revenue estimates"]["text"].startswith("Contoso reported revenue")


async def test_requests_carry_the_user_agent(site, rig):
    site.serve_fixture("/feeds/markets.rss", "markets.rss", RSS)
    feed = rig.feed("markets", site.url("/feeds/markets.rss"))
    items = [item async for item in feed.poll()]
    assert len(items) == 3
    assert {h["User-Agent"] for _, h in site.requests} == {rig.fetcher.user_agent}
