"""Fixtures of the ingest tests: one real embedded broker for the session and a fresh topic
prefix per test."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from finsentry.settings import Settings
from finsentry.streams.broker import EmbeddedBroker

_prefixes = itertools.count()


@pytest.fixture(scope="session")
def broker():
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture
def settings(broker, tmp_path: Path) -> Settings:
    return Settings(
        broker=broker.url,
        broker_embedded=True,
        topic_prefix=f"t{next(_prefixes)}-{int(time.time() * 1000) % 10**8}.",
        seen_path=tmp_path / "seen.db",
        per_host_interval_s=0.0,
        scrape_timeout_s=5.0,
        producer_delivery_timeout_s=10.0,
        push_token="s3cret-token",
        _env_file=None,
    )


ROBOTS_TXT = "User-agent: *\nDisallow: /private/\n"


@pytest.fixture
async def site():
    """The fixture HTTP server, with a robots.txt that disallows /private/."""
    from fixture_site import FixtureSite

    running = await FixtureSite().start()
    running.serve("/robots.txt", ROBOTS_TXT, "text/plain")
    yield running
    await running.close()
