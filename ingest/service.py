"""The scraper process: source list → fetcher + seen-set + producer → runner, with /metrics
and /status (per-source state as JSON) on a loopback port."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from pathlib import Path

from aiohttp import web

from finsentry.ingest.config import ConfigError, build_source, load_sources
from finsentry.ingest.fetcher import PoliteFetcher
from finsentry.ingest.metrics_page import metrics_page
from finsentry.ingest.producer import DeliveryError, DocumentProducer
from finsentry.ingest.runner import ScrapeRunner
from finsentry.ingest.seen import SeenSet
from finsentry.settings import Settings

log = logging.getLogger("finsentry.ingest.service")


def status_app(runner: ScrapeRunner) -> web.Application:
    async def status_page(_request: web.Request) -> web.Response:
        return web.json_response({name: dataclasses.asdict(state) for name, state in runner.state.items()})

    app = web.Application()
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/status", status_page)
    return app


async def start_status_server(runner: ScrapeRunner, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve /metrics and /status; returns the runner (to clean up) and the bound port."""
    app_runner = web.AppRunner(status_app(runner), access_log=None)
    await app_runner.setup()
    site = web.TCPSite(app_runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # the real port when 0 was asked
    return app_runner, bound


async def run_scrape(
    settings: Settings, config_path: Path | None = None, *, once: bool = False, stop: asyncio.Event | None = None
) -> int:
    """Run every enabled source of the list until stopped (SIGINT/SIGTERM or `stop`), or
    poll each once. Returns the exit status: 0, or 1 when `once` saw a source fail."""
    configs = load_sources(config_path or settings.sources_file)
    if not configs:
        raise ConfigError(f"{config_path or settings.sources_file} lists no enabled source")
    fetcher = PoliteFetcher(settings)
    seen = SeenSet(settings.seen_path)
    forgotten = seen.prune(settings.seen_retention_days * 86400)
    if forgotten:
        log.info("seen-set pruned keys=%d older_than_days=%g", forgotten, settings.seen_retention_days)
    producer = await asyncio.to_thread(DocumentProducer, settings)  # connecting blocks
    sources = [build_source(c, fetcher, settings) for c in configs]
    runner = ScrapeRunner(
        sources,
        producer,
        seen,
        backoff_cap_s=settings.scrape_backoff_max_s,
        delivery_timeout_s=settings.producer_delivery_timeout_s + 10,
    )
    status = None
    try:
        if once:
            failed = await runner.run_once()
            return 1 if failed else 0
        status, port = await start_status_server(runner, settings.scrape_metrics_host, settings.scrape_metrics_port)
        log.info("scraping sources=%d metrics=http://%s:%d/metrics", len(sources), settings.scrape_metrics_host, port)
        stop = stop or stop_on_signals()
        await runner.run(stop)
        return 0
    finally:
        if status is not None:
            await status.cleanup()
        for source in sources:
            await source.aclose()
        await fetcher.close()
        try:
            await asyncio.to_thread(producer.close)
        except DeliveryError as exc:  # those items are not marked seen: the next run retries them
            log.error("records undelivered at shutdown: %s", exc)
        seen.close()


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT/SIGTERM (when running in the main thread)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    return stop
