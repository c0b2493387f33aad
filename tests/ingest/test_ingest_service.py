"""The scraper process end to end: replay sources through the runner, `run_scrape` over a
YAML list, /metrics and /status, and the `scrape` command."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import aiohttp
from ingest_helpers import read_topic
from typer.testing import CliRunner

from finsentry.cli.ingest import app as ingest_app
from finsentry.ingest.producer import DocumentProducer
from finsentry.ingest.replay import ReplayOptions, ReplaySource
from finsentry.ingest.runner import ScrapeRunner, backoff_s
from finsentry.ingest.seen import SeenSet
from finsentry.ingest.service import run_scrape, start_status_server
from finsentry.settings import get_settings

T0 = datetime(2024, 5, 1, 9, 30, tzinfo=timezone.utc)


def line(i: int, seconds: float) -> str:
    return (
        json.dumps(
            {
                "source": "file",
                "title": f"Item {i}",
                "text": f"Body {i}",
                "published_at": (T0 + timedelta(seconds=seconds)).isoformat(),
            }
        )
        + "\n"
    )


class VirtualTime:
    def __init__(self):
        self.now, self.sleeps = 0.0, []

    def clock(self):
        return self.now

    async def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def published(settings, broker):
    return [json.loads(r.value) for r in read_topic(broker.address, settings.topic("docs.raw"))]


async def test_replay_source_paces_new_documents_only_and_survives_restart(settings, broker, tmp_path, caplog):
    path = tmp_path / "stream.jsonl"
    path.write_text(line(0, 0) + line(1, 30) + "{broken\n" + line(2, 60) + line(3, 90))
    time = VirtualTime()

    def source():
        return ReplaySource("file", path, 60, ReplayOptions(speed=30), sleep=time.sleep, clock=time.clock)

    with DocumentProducer(settings) as producer, SeenSet(settings.seen_path) as seen:
        replay = source()
        runner = ScrapeRunner([replay], producer, seen)
        assert (await runner.poll_once(replay)).new == 4
        assert time.sleeps == [1.0, 1.0, 1.0]
        with path.open("a") as more:
            more.write(line(4, 120) + line(5, 150))
        result = await runner.poll_once(replay)
        assert (result.new, result.seen) == (2, 4)
        assert time.sleeps == [1.0, 1.0, 1.0, 1.0, 1.0]

        restarted = source()  # a new process: the seen-set remembers, nothing waits for old lines
        assert (await ScrapeRunner([restarted], producer, seen).poll_once(restarted)).new == 0
        assert len(time.sleeps) == 5
    # the bad line 3: reported by each process once, not at every poll (two polls + a restart)
    assert caplog.text.count("not a document source=file file=") == 2
    assert "line=3 reason=malformed JSON" in caplog.text
    assert sorted(d["title"] for d in published(settings, broker)) == [f"Item {i}" for i in range(6)]


def test_backoff_doubles_from_the_shorter_of_interval_and_30s():
    assert [backoff_s(300, n, 600) for n in (1, 2, 3, 4, 5, 6)] == [30, 60, 120, 240, 480, 600]
    assert [backoff_s(1, n, 600) for n in (1, 2, 3)] == [1, 2, 4]
    assert backoff_s(3600, 10, 600) == 3600  # a long interval caps its own back-off


def sources_yaml(site, tmp_path, *, broken: bool = False) -> str:
    (tmp_path / "backfill.jsonl").write_text(line(10, 0) + line(11, 5))
    text = (
        f"sources:\n"
        f"  - {{type: rss, name: markets, url: '{site.url('/feeds/markets.rss')}', interval: 1h}}\n"
        f"  - {{type: replay, name: backfill, url: backfill.jsonl, interval: 1h}}\n"
    )
    if broken:
        text += f"  - {{type: atom, name: down, url: '{site.url('/feeds/down.atom')}', interval: 1h}}\n"
    path = tmp_path / "sources.yml"
    path.write_text(text)
    return path


async def test_run_scrape_once_publishes_every_source_and_a_restart_adds_nothing(site, settings, broker, tmp_path):
    site.serve_fixture("/feeds/markets.rss", "markets.rss", "application/rss+xml")
    config = sources_yaml(site, tmp_path)
    assert await run_scrape(settings, config, once=True) == 0
    assert await run_scrape(settings, config, once=True) == 0
    docs = published(settings, broker)
    assert sorted(d["source"] for d in docs) == ["file", "file", "markets", "markets", "markets"]


async def test_seen_keys_past_retention_are_forgotten_at_start(site, settings, broker, tmp_path):
    site.serve_fixture("/feeds/markets.rss", "markets.rss", "application/rss+xml")
    config = sources_yaml(site, tmp_path)
    assert await run_scrape(settings, config, once=True) == 0
    forgetful = settings.model_copy(update={"seen_retention_days": 0})
    assert await run_scrape(forgetful, config, once=True) == 0
    assert len(published(settings, broker)) == 10  # everything again: the seen-set was emptied


async def test_run_scrape_once_reports_a_failed_source(site, settings, broker, tmp_path):
    site.serve_fixture("/feeds/markets.rss", "markets.rss", "application/rss+xml")
    site.fail("/feeds/down.atom", 500)
    assert await run_scrape(settings, sources_yaml(site, tmp_path, broken=True), once=True) == 1
    assert len(published(settings, broker)) == 5  # the others were not held back


async def test_metrics_and_status_are_served(site, settings, broker):
    site.serve_fixture("/feeds/markets.rss", "markets.rss", "application/rss+xml")
    from finsentry.ingest.feeds import FeedSource
    from finsentry.ingest.fetcher import PoliteFetcher

    fetcher = PoliteFetcher(settings)
    with DocumentProducer(settings) as producer, SeenSet(settings.seen_path) as seen:
        feed = FeedSource("metrics-feed", site.url("/feeds/markets.rss"), 60, fetcher)
        runner = ScrapeRunner([feed], producer, seen)
        await runner.poll_and_record(feed)
        server, port = await start_status_server(runner, "127.0.0.1", 0)
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/metrics") as answer:
                    text = await answer.text()
                async with session.get(f"http://127.0.0.1:{port}/status") as answer:
                    status = await answer.json()
        finally:
            await server.cleanup()
            await fetcher.close()
    assert 'finsentry_scrape_items_total{source="metrics-feed"} 3.0' in text
    assert 'finsentry_scrape_last_success_timestamp_seconds{source="metrics-feed"}' in text
    assert status["metrics-feed"]["items"] == 3 and status["metrics-feed"]["errors"] == 0


async def test_scrape_command_runs_once(site, settings, broker, tmp_path, monkeypatch):
    """The command runs its own event loop, so it goes to a thread: the fixture server keeps
    answering on this one."""
    site.serve_fixture("/feeds/markets.rss", "markets.rss", "application/rss+xml")
    config = sources_yaml(site, tmp_path)
    monkeypatch.setenv("FINSENTRY_TOPIC_PREFIX", settings.topic_prefix)
    get_settings.cache_clear()
    try:
        result = await asyncio.to_thread(
            CliRunner().invoke,
            ingest_app,
            [
                "scrape",
                "--once",
                "--config",
                str(config),
                "--broker",
                broker.address,
                "--embedded",
                "--seen-db",
                str(tmp_path / "cli-seen.db"),
            ],
        )
        bad = await asyncio.to_thread(
            CliRunner().invoke, ingest_app, ["scrape", "--once", "--config", str(tmp_path / "missing.yml")]
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert len(published(settings, broker)) == 5
    assert bad.exit_code == 2 and "cannot read the source list" in bad.stderr
