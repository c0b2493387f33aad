"""The scrape runner's schedule and its crash safety, with real sources, the local HTTP server,
SQLite seen-sets and the embedded broker."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

from ingest_helpers import read_topic

from finsentry.ingest.feeds import FeedSource
from finsentry.ingest.fetcher import PoliteFetcher
from finsentry.ingest.producer import DocumentProducer
from finsentry.ingest.replay import ReplayOptions, ReplaySource
from finsentry.ingest.runner import ScrapeRunner
from finsentry.ingest.seen import SeenSet

FEED = "/feeds/markets.rss"
T0 = datetime(2024, 5, 1, 9, 30, tzinfo=timezone.utc)


def titles(settings, broker) -> list[str]:
    return sorted(json.loads(r.value)["title"] for r in read_topic(broker.address, settings.topic("docs.raw")))


async def test_a_source_waits_its_interval_after_success_and_backs_off_after_failure(site, settings, broker):
    """Poll 1 succeeds, 2 and 3 get server errors, 4 succeeds: the waits after them are the
    interval, the back-off doubling from min(interval, 30 s), then the interval again."""
    site.serve_fixture(FEED, "markets.rss", "application/rss+xml")
    waits, stop = [], asyncio.Event()

    async def sleep(seconds: float) -> None:  # the runner's injectable sleep: no real waiting
        waits.append(seconds)
        if len(waits) == 1:
            site.fail(FEED, 503, 500)  # the next two polls
        if len(waits) == 4:
            stop.set()

    fetcher = PoliteFetcher(settings)
    with DocumentProducer(settings) as producer, SeenSet(settings.seen_path) as seen:
        feed = FeedSource("markets", site.url(FEED), 300.0, fetcher)
        runner = ScrapeRunner([feed], producer, seen, backoff_cap_s=600.0, sleep=sleep)
        await asyncio.wait_for(runner.run_source(feed, stop), 30)
    await fetcher.close()

    assert waits == [300.0, 30.0, 60.0, 300.0]
    assert site.hits(FEED) == 4  # stopped during the fourth wait, before a fifth poll
    assert runner.state["markets"].errors == 2 and runner.state["markets"].consecutive_failures == 0


def stream_line(i: int) -> str:
    return (
        json.dumps(
            {
                "source": "file",
                "title": f"Item {i}",
                "text": f"Body {i}",
                "published_at": (T0 + timedelta(minutes=i)).isoformat(),
            }
        )
        + "\n"
    )


async def test_items_acknowledged_before_a_crash_mid_poll_are_not_republished(settings, broker, tmp_path):
    """A paced replay (a minute of event time between documents) freezes in its wait before
    the fourth document, as a long replay does before the process is killed. What the broker
    acknowledged is already in the seen-set on disk: the next run, over the same file and
    database, publishes the other three only."""
    path = tmp_path / "stream.jsonl"
    path.write_text("".join(stream_line(i) for i in range(6)))
    now, waits, frozen = [0.0], [], asyncio.Event()

    async def paced(seconds: float) -> None:  # virtual time: the first two waits pass at once
        waits.append(seconds)
        if len(waits) < 3:
            now[0] += seconds
            return
        frozen.set()
        await asyncio.Event().wait()  # never ends: the process dies in this wait

    first_producer = DocumentProducer(settings)
    first_seen = SeenSet(settings.seen_path)
    first = ReplaySource("file", path, 60, ReplayOptions(speed=1), sleep=paced, clock=lambda: now[0])
    crashed = asyncio.create_task(ScrapeRunner([first], first_producer, first_seen).poll_once(first))
    try:
        await asyncio.wait_for(frozen.wait(), 10)
        await asyncio.to_thread(first_producer.flush)  # its acknowledgements have reached the loop
        assert first_producer.published == 3 and waits == [60.0, 60.0, 60.0]

        with DocumentProducer(settings) as producer, SeenSet(settings.seen_path) as seen:
            restarted = ReplaySource("file", path, 60)  # the next process, unpaced
            result = await ScrapeRunner([restarted], producer, seen).poll_once(restarted)
        assert (result.new, result.seen) == (3, 3)
        assert titles(settings, broker) == [f"Item {i}" for i in range(6)]  # each exactly once
    finally:
        crashed.cancel()
        await asyncio.gather(crashed, return_exceptions=True)
        first_producer.close()
        first_seen.close()
