"""The web dashboard's JSON API over a real SQLite store (the embedded default)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from dashboard_helpers import CORPUS_END, XSS_TITLE

from finsentry.dashboards.web import api


async def test_documents_come_newest_first_with_the_fields_the_page_shows(filled_store):
    body = await api.documents(filled_store, {"limit": "10"})
    docs = body["documents"]
    assert len(docs) == 10
    times = [d["published_at"] for d in docs]
    assert times == sorted(times, reverse=True)
    newest = max(filled_store.corpus, key=lambda d: (d.published_at, d.id))
    assert docs[0]["published_at"].startswith(newest.published_at.strftime("%Y-%m-%dT%H:%M"))
    first = docs[0]
    assert {"title", "url", "sentiment", "score", "topic", "entities", "explanation", "model_version"} <= first.keys()
    assert first["model_version"] == "test-v1"
    assert first["explanation"][0][1] in (-0.42, 0.38)


async def test_documents_filter_by_topic_and_sentiment_and_sort_by_score(filled_store):
    body = await api.documents(
        filled_store, {"topic": "Earnings", "sentiment": "negative", "sort": "score", "limit": "500"}
    )
    docs = body["documents"]
    expected = [d for d in filled_store.corpus if d.topic.label == "Earnings" and d.sentiment.label == "negative"]
    assert len(docs) == len(expected) > 0
    assert all(d["topic"] == "Earnings" and d["sentiment"] == "negative" for d in docs)
    scores = [d["score"] for d in docs]
    assert scores == sorted(scores)


async def test_scraped_markup_passes_through_as_plain_text(filled_store):
    body = await api.search(filled_store, {"q": "bank slump"})
    titles = [d["title"] for d in body["documents"]]
    assert XSS_TITLE in titles  # unchanged: escaping is the page's job, done by textContent


async def test_search_matches_words_and_rejects_queries_without_any(filled_store):
    body = await api.search(filled_store, {"q": "lawsuit"})
    assert body["documents"] and all("lawsuit" in d["title"].lower() for d in body["documents"])
    for bad in ({"q": ""}, {"q": "  ?! "}, {}):
        with pytest.raises(api.BadRequest, match="at least one word"):
            await api.search(filled_store, bad)


async def test_series_is_anchored_at_the_data_and_shows_the_negative_episode(filled_store):
    body = await api.series(filled_store, {"by": "topic", "range_s": "7200", "top": "3", "min_count": "1"})
    assert body["interval_s"] == 60  # 2 h / 60 s = 120 points, the most the page draws
    until = datetime.fromisoformat(body["until"].replace("Z", "+00:00"))
    assert until > CORPUS_END - timedelta(minutes=2) and until <= CORPUS_END + timedelta(minutes=2)
    assert len(body["series"]) == 3
    t = body["t"]
    assert all(b - a == 60 for a, b in zip(t, t[1:]))
    for s in body["series"]:
        assert len(s["mean_score"]) == len(s["negative_share"]) == len(s["count"]) == len(t)
    earnings = next(s for s in body["series"] if s["key"] == "Earnings")
    last = [v for v in earnings["negative_share"][-30:] if v is not None]
    early = [v for v in earnings["negative_share"][:60] if v is not None]
    assert sum(last) / len(last) > 0.6 > 0.35 > sum(early) / len(early)
    # Topics are not published every minute: those buckets are gaps, not zeros.
    assert None in earnings["mean_score"]


async def test_series_starts_at_the_first_bucket_with_data(filled_store):
    body = await api.series(filled_store, {"range_s": str(24 * 3600)})  # the corpus spans 3 hours
    first = min(d.published_at for d in filled_store.corpus).timestamp()
    assert body["t"][0] <= first < body["t"][0] + body["interval_s"]
    assert body["since"] == api.iso(datetime.fromtimestamp(body["t"][0], timezone.utc))
    assert all(len(s["count"]) == len(body["t"]) for s in body["series"])


async def test_series_leaves_buckets_of_too_few_documents_blank(filled_store):
    # One document per topic and minute in this corpus: below the default floor of 3.
    sparse = await api.series(filled_store, {"range_s": "3600", "interval_s": "60"})
    assert all(v is None for s in sparse["series"] for v in s["negative_share"])
    assert any(n > 0 for s in sparse["series"] for n in s["count"])  # counts stay
    dense = await api.series(filled_store, {"range_s": "3600", "interval_s": "600"})
    assert all((v is None) == (n < 3) for s in dense["series"] for v, n in zip(s["negative_share"], s["count"]))
    assert any(v is not None for s in dense["series"] for v in s["negative_share"])


async def test_series_by_entity_and_explicit_window(filled_store):
    until = (CORPUS_END - timedelta(hours=1)).isoformat()
    body = await api.series(filled_store, {"by": "entity", "range_s": "3600", "until": until})
    assert {s["key"] for s in body["series"]} == {"AAPL", "MSFT", "XOM"}
    assert body["until"] <= (CORPUS_END - timedelta(minutes=59)).isoformat().replace("+00:00", "Z")


async def test_stats_count_the_store_and_the_last_hour_of_data(filled_store):
    body = await api.stats(filled_store, {}, ["test-v1"])
    assert body["documents"] == len(filled_store.corpus)
    end = max(d.published_at for d in filled_store.corpus)
    window = [d for d in filled_store.corpus if end - timedelta(hours=1) <= d.published_at <= end]
    assert body["window_documents"] == len(window)
    negative = sum(d.sentiment.label == "negative" for d in window)
    assert body["window_negative_share"] == pytest.approx(negative / len(window), abs=1e-4)
    assert body["alerts_firing"] == 1
    assert body["model_versions"] == ["test-v1"]


async def test_alerts_carry_their_evidence_and_a_summary(filled_store):
    body = await api.alerts(filled_store, {})
    [alert] = body["alerts"]
    assert alert["scope"] == "topic" and alert["key"] == "Earnings" and alert["severity"] == "critical"
    assert alert["summary"].startswith("CRITICAL: negative share on topic 'Earnings'")
    assert len(alert["evidence"]) == 5 and alert["evidence"][0]["explanation"]
    assert any(ev["title"] == XSS_TITLE for ev in alert["evidence"])


@pytest.mark.parametrize(
    "call, params, message",
    [
        (api.documents, {"limit": "lots"}, "limit must be a whole number"),
        (api.documents, {"limit": "100000"}, "limit must be between 1 and 500"),
        (api.documents, {"sentiment": "grumpy"}, "sentiment must be one of"),
        (api.documents, {"since": "yesterday"}, "since must be ISO 8601"),
        (api.documents, {"since": "2024-03-01T10:00:00"}, "since has no time zone"),
        (api.series, {"by": "planet"}, "by must be one of"),
        (api.series, {"range_s": "1"}, "range_s must be between"),
    ],
)
async def test_bad_parameters_are_refused_with_a_reason(filled_store, call, params, message):
    with pytest.raises(api.BadRequest, match=message):
        await call(filled_store, params)


async def test_times_may_be_epoch_seconds(filled_store):
    since = (CORPUS_END - timedelta(minutes=10)).timestamp()
    body = await api.documents(filled_store, {"since": str(since), "limit": "500"})
    cutoff = datetime.fromtimestamp(since, timezone.utc)
    assert body["documents"] and len(body["documents"]) == sum(d.published_at >= cutoff for d in filled_store.corpus)
