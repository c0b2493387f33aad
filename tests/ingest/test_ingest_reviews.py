"""Configurable review sources (JSON and HTML) against the local HTTP server and the broker."""

from __future__ import annotations

import json

import pytest
from ingest_helpers import read_topic
from pydantic import ValidationError

from finsentry.ingest.fetcher import PoliteFetcher
from finsentry.ingest.producer import DocumentProducer
from finsentry.ingest.reviews import ReviewOptions, ReviewSource, dotted, parse_date, parse_rating
from finsentry.ingest.runner import ScrapeRunner
from finsentry.ingest.seen import SeenSet
from finsentry.ingest.source import MalformedSource

JSON_OPTIONS = {
    "format": "json",
    "items": "data.reviews",
    "fields": {
        "text": "body",
        "title": "title",
        "rating": "score",
        "author": "user.name",
        "date": "created_at",
        "id": "id",
    },
}
HTML_OPTIONS = {
    "format": "html",
    "items": "div.review",
    "fields": {
        "text": "div.body",
        "title": "h3.title",
        "rating": "span.stars",
        "author": "span.author",
        "date": "time@datetime",
        "id": "@data-id",
        "url": "a.permalink@href",
    },
}


async def collect(source):
    return [item async for item in source.poll()]


@pytest.fixture
async def fetcher(settings):
    made = PoliteFetcher(settings)
    yield made
    await made.close()


async def test_json_reviews_are_mapped_and_published_once(site, settings, broker, fetcher):
    site.serve_fixture("/api/reviews.json", "reviews.json", "application/json")
    source = ReviewSource("bank-app", site.url("/api/reviews.json"), 60, fetcher, ReviewOptions(**JSON_OPTIONS))
    with DocumentProducer(settings) as producer, SeenSet(settings.seen_path) as seen:
        runner = ScrapeRunner([source], producer, seen)
        assert (await runner.poll_once(source)).new == 2  # the review without text is not a document
        assert (await runner.poll_once(source)).new == 0
    docs = {d["id"]: d for d in (json.loads(r.value) for r in read_topic(broker.address, settings.topic("docs.raw")))}
    assert set(docs) == {"bank-app:501", "bank-app:502"}
    bad = docs["bank-app:501"]
    assert bad["kind"] == "review" and bad["rating"] == 1.0 and bad["source"] == "bank-app"
    assert bad["text"].startswith("Every transfer fails") and bad["title"] == "Transfers fail"
    assert bad["meta"]["author"] == "ann" and bad["published_at"] == "2024-05-01T08:00:00Z"
    assert docs["bank-app:502"]["published_at"] == "2024-05-01T09:00:00Z"  # epoch seconds
    assert docs["bank-app:502"]["rating"] == 5.0


async def test_html_reviews_use_css_selectors_and_attributes_and_are_published(site, settings, broker, fetcher):
    site.serve_fixture("/reviews", "reviews.html", "text/html")
    source = ReviewSource("broker-site", site.url("/reviews"), 60, fetcher, ReviewOptions(**HTML_OPTIONS))
    first, second = [item.doc for item in await collect(source)]
    assert first.id == "broker-site:r-1" and first.rating == 2.0
    assert first.text == "They charged me a withdrawal fee nobody mentioned."
    assert first.url == site.url("/reviews/r-1") and first.meta["author"] == "carl"
    assert first.published_at.isoformat() == "2024-05-01T07:00:00+00:00"
    assert second.rating == 4.5 and second.published_at.isoformat() == "2024-05-01T07:00:00+00:00"

    # the same page through the runner: what reaches the raw topic, read back from the broker
    with DocumentProducer(settings) as producer, SeenSet(settings.seen_path) as seen:
        runner = ScrapeRunner([source], producer, seen)
        assert (await runner.poll_once(source)).new == 2
        assert (await runner.poll_once(source)).new == 0
    records = read_topic(broker.address, settings.topic("docs.raw"))
    docs = {d["id"]: d for d in (json.loads(r.value) for r in records)}
    assert len(records) == 2 and set(docs) == {"broker-site:r-1", "broker-site:r-2"}
    fees = docs["broker-site:r-1"]
    assert fees["kind"] == "review" and fees["source"] == "broker-site" and fees["title"] == "Hidden fees everywhere"
    assert fees["text"] == "They charged me a withdrawal fee nobody mentioned." and fees["rating"] == 2.0
    assert fees["url"] == site.url("/reviews/r-1") and fees["published_at"] == "2024-05-01T07:00:00Z"
    assert fees["meta"] == {"listing": site.url("/reviews"), "author": "carl"}
    assert docs["broker-site:r-2"]["rating"] == 4.5 and docs["broker-site:r-2"]["meta"]["author"] == "dana"


async def test_broken_answers_are_malformed_sources(site, fetcher):
    site.serve("/not-json", "<html>maintenance</html>", "application/json")
    site.serve("/wrong-path", json.dumps({"data": {"reviews": {"oops": 1}}}), "application/json")
    for path in ("/not-json", "/wrong-path"):
        source = ReviewSource("x", site.url(path), 60, fetcher, ReviewOptions(**JSON_OPTIONS))
        with pytest.raises(MalformedSource):
            await collect(source)


def test_options_refuse_unknown_fields_and_need_text():
    with pytest.raises(ValidationError, match="unknown field"):
        ReviewOptions(fields={"text": "a", "stars": "b"})
    with pytest.raises(ValidationError, match="'text' field is required"):
        ReviewOptions(fields={"title": "a"})


def test_small_parsers():
    assert dotted({"a": {"b": [10, 20]}}, "a.b.1") == 20
    assert dotted({"a": 1}, "a.b") is None and dotted([1], "") == [1]
    assert parse_rating("4,5 / 5") == 4.5 and parse_rating("★★★") == 3.0 and parse_rating(None) is None
    assert parse_rating(True) is None and parse_rating("n/a") is None
    assert parse_date("2024-05-01T10:00:00").tzinfo is not None  # naive → UTC
    assert parse_date(1714554000000).isoformat() == "2024-05-01T09:00:00+00:00"  # milliseconds
    assert parse_date("yesterday") is None
