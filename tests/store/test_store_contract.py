"""The store contract: the same cases against every backend.

Backends (see conftest.py): the embedded SQLite store, and the Elasticsearch store against
osmem-server — an in-memory OpenSearch-compatible server that stands in for Elasticsearch
here — plus a real Elasticsearch when ES_URL is set. Every read follows `refresh()`, which
the contract requires for read-your-writes (Elasticsearch refreshes about once a second).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from store_helpers import T0, alert, scored

from finsentry.records import Label, ScoredDocument
from finsentry.store.base import AggregateQuery, SearchQuery, UnknownDocument
from finsentry.textnorm import model_input


async def write(store, records):
    result = await store.upsert_many(records)
    await store.refresh()
    return result


def ids(docs):
    return [d["id"] for d in docs]


async def test_upsert_twice_keeps_one_record_with_the_latest_content(store):
    first = await write(store, [scored(1), scored(2)])
    again = await write(store, [scored(1, title="Story 1, corrected"), scored(2)])
    assert (first.stored, again.stored, first.rejected, again.rejected) == (2, 2, [], [])
    assert await store.count() == 2
    doc = await store.get("doc-00001")
    assert doc["title"] == "Story 1, corrected"


async def test_a_document_re_dated_to_another_day_is_kept_once_with_the_newest_content(store):
    # Elasticsearch puts it in another daily index: the copy in the first day's index must go.
    await write(store, [scored(1)])
    again = await write(store, [scored(1, minutes=2 * 24 * 60 + 1, title="Story 1, re-dated")])
    assert again.stored == 1
    assert await store.count() == 1
    doc = await store.get("doc-00001")
    assert doc["title"] == "Story 1, re-dated" and doc["published_at"].startswith("2024-03-06")
    assert [d["title"] for d in await store.search(SearchQuery())] == ["Story 1, re-dated"]


async def test_a_batch_holding_one_id_twice_stores_it_once(store):
    result = await write(store, [scored(1, title="old"), scored(1, title="new")])
    assert result.stored == 1
    assert await store.count() == 1
    assert (await store.get("doc-00001"))["title"] == "new"


async def test_stored_document_is_the_record_shape_plus_stored_at(store):
    record = scored(7, entities=["AAPL", "MSFT"], meta={"feed": "x"}, dup_of="doc-00001", url="https://e.x/7")
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    await write(store, [record])
    doc = await store.get(record.id)
    stored_at = datetime.fromisoformat(doc.pop("stored_at").replace("Z", "+00:00"))
    assert before <= stored_at <= datetime.now(timezone.utc) + timedelta(seconds=1)
    assert ScoredDocument.model_validate(doc) == record
    assert doc == record.model_dump(mode="json")
    assert await store.get("doc-99999") is None


def filter_corpus() -> list[ScoredDocument]:
    return [
        scored(0, source="wire", kind="news", topic="Energy", sentiment="negative", entities=["XOM"]),
        scored(1, source="wire", kind="news", topic="Energy", sentiment="positive", entities=["XOM", "CVX"]),
        scored(2, source="blog", kind="review", topic="Macro", sentiment="negative", entities=[]),
        scored(3, source="blog", kind="social", topic="Macro", sentiment="neutral", entities=["CVX"]),
        scored(4, source="wire", kind="filing", topic="Energy", sentiment="negative", entities=["CVX"]),
    ]


@pytest.mark.parametrize(
    "query, expected",
    [
        (SearchQuery(source="wire"), {0, 1, 4}),
        (SearchQuery(kind="review"), {2}),
        (SearchQuery(topic="Energy"), {0, 1, 4}),
        (SearchQuery(entity="CVX"), {1, 3, 4}),
        (SearchQuery(sentiment="negative"), {0, 2, 4}),
        (SearchQuery(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3)), {1, 2}),  # [since, until)
        (SearchQuery(source="wire", sentiment="negative", entity="CVX"), {4}),
        (SearchQuery(topic="Nothing"), set()),
        (SearchQuery(), {0, 1, 2, 3, 4}),
    ],
)
async def test_filters(store, query, expected):
    await write(store, filter_corpus())
    assert {int(i[-5:]) for i in ids(await store.search(query))} == expected
    assert await store.count(query) == len(expected)


async def test_sort_newest_first_or_most_negative_first_with_limit(store):
    await write(
        store,
        [
            scored(0, score=-0.2),
            scored(1, score=-0.9),
            scored(2, score=0.5),
            scored(3, score=-0.9),
            scored(4, score=0.0),
        ],
    )
    assert ids(await store.search(SearchQuery(limit=3))) == ["doc-00004", "doc-00003", "doc-00002"]
    # Ties on score: the newer first.
    assert ids(await store.search(SearchQuery(sort="score", limit=4))) == [
        "doc-00003",
        "doc-00001",
        "doc-00000",
        "doc-00004",
    ]


async def test_full_text_over_title_and_text(store):
    await write(
        store,
        [
            scored(0, title="Bank downgraded by analysts", text="Shares fell."),
            scored(1, title="Oil rallies", text="Crude jumps as the bank of England holds rates."),
            scored(2, title="Crédit Agricole profit", text="Quarterly earnings beat."),
            scored(3, title="Downgrades pile up", text="Several brokers cut targets."),
            scored(4, title="Don't sell yet", text="Guidance raised to 3.5% growth, capex_plan steady."),
        ],
    )

    async def found(text):
        return sorted(ids(await store.search(SearchQuery(text=text))))

    assert await found("bank") == ["doc-00000", "doc-00001"]  # title or text
    assert await found("BANK analysts") == ["doc-00000"]  # every word, any case
    assert await found("bank nothing") == []
    assert await found("downgrad*") == ["doc-00000", "doc-00003"]  # prefix
    assert await found("credit") == ["doc-00002"]  # accents folded
    assert await found('bank" (analysts -') == ["doc-00000"]  # operators are just words
    assert await found("?!") == []  # no words: nothing, not everything
    # Words are runs of letters and digits on both backends: punctuation inside a word splits it.
    for text in ("don't", "don", "3.5", "3", "5", "capex", "plan", "capex_plan"):
        assert await found(text) == ["doc-00004"], text
    assert await store.count(SearchQuery(text="bank", topic="Markets")) == 2


async def test_aggregate_buckets_count_mean_score_and_negative_share(store):
    records = [
        # 09:00-09:04 bucket (5-minute buckets): Energy 2 negative + 1 positive, Macro 1 neutral
        scored(0, minutes=0, topic="Energy", sentiment="negative", score=-0.8, entities=["XOM"]),
        scored(1, minutes=1, topic="Energy", sentiment="negative", score=-0.6, entities=["XOM", "CVX"]),
        scored(2, minutes=4.5, topic="Energy", sentiment="positive", score=0.8, entities=["CVX"]),
        scored(3, minutes=2, topic="Macro", sentiment="neutral", score=0.0),
        # 09:10-09:14 bucket: Energy 1 neutral
        scored(4, minutes=12, topic="Energy", sentiment="neutral", score=0.1, entities=["XOM"]),
    ]
    await write(store, records)
    by_topic = await store.aggregate(AggregateQuery(by="topic", interval_s=300))
    got = [(b.key, b.start, b.count, round(b.mean_score, 6), round(b.negative_share, 6)) for b in by_topic]
    assert got == [
        ("Energy", T0, 3, round((-0.8 - 0.6 + 0.8) / 3, 6), round(2 / 3, 6)),
        ("Energy", T0 + timedelta(minutes=10), 1, 0.1, 0.0),
        ("Macro", T0, 1, 0.0, 0.0),
    ]
    by_entity = await store.aggregate(AggregateQuery(by="entity", interval_s=300))
    assert [(b.key, b.start, b.count, round(b.negative_share, 6)) for b in by_entity] == [
        ("CVX", T0, 2, 0.5),
        ("XOM", T0, 2, 1.0),
        ("XOM", T0 + timedelta(minutes=10), 1, 0.0),
    ]
    overall = await store.aggregate(AggregateQuery(by="none", interval_s=3600))
    assert [(b.key, b.start, b.count, round(b.negative_share, 6)) for b in overall] == [("all", T0, 5, 0.4)]
    only_cvx = await store.aggregate(AggregateQuery(by="entity", interval_s=300, keys=["CVX"]))
    assert [(b.key, b.count) for b in only_cvx] == [("CVX", 2)]
    window = await store.aggregate(
        AggregateQuery(by="topic", interval_s=60, since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=4))
    )
    assert [(b.key, b.start, b.count) for b in window] == [
        ("Energy", T0 + timedelta(minutes=1), 1),
        ("Macro", T0 + timedelta(minutes=2), 1),
    ]


async def test_near_duplicates_are_counted_once_in_aggregates(store):
    story = scored(0, topic="Energy", sentiment="negative", score=-0.9)
    copies = [
        scored(i, minutes=1, topic="Energy", sentiment="negative", score=-0.9, dup_of=story.id, source=f"outlet-{i}")
        for i in range(1, 6)
    ]
    other = scored(9, minutes=2, topic="Energy", sentiment="positive", score=0.8)
    await write(store, [story, *copies, other])
    assert await store.count() == 7  # the store keeps every copy
    once = await store.aggregate(AggregateQuery(by="topic", interval_s=600))
    assert [(b.count, b.negative_share) for b in once] == [(2, 0.5)]
    every = await store.aggregate(AggregateQuery(by="topic", interval_s=600, count_duplicates=True))
    assert [(b.count, round(b.negative_share, 6)) for b in every] == [(7, round(6 / 7, 6))]


async def test_alerts_upsert_by_id_newest_update_wins_listed_newest_first(store):
    first = alert(0, key="Energy")
    await store.put_alert(first)
    await store.put_alert(alert(2, key="Energy", severity="critical"))
    await store.put_alert(alert(1, key="Energy", severity="warning"))  # a late re-delivery of update 1
    await store.put_alert(alert(0, key="Macro", updated_at=T0 + timedelta(minutes=30)))
    await store.refresh()
    listed = await store.alerts()
    assert [(a["key"], a["update"], a["severity"]) for a in listed] == [
        ("Macro", 0, "warning"),
        ("Energy", 2, "critical"),
    ]
    assert [a["key"] for a in await store.alerts(since=T0 + timedelta(minutes=10))] == ["Macro"]
    assert len(await store.alerts(limit=1)) == 1
    assert listed[1]["id"] == first.id and listed[1]["evidence"] == []


async def test_labels_are_stored_with_the_document_text_one_per_analyst(store):
    doc = scored(3, title="Refinery fire", text="Output halted at the plant.")
    await write(store, [doc])
    await store.put_label(Label(doc_id=doc.id, sentiment="negative", analyst="ana", at=T0))
    await store.put_label(Label(doc_id=doc.id, sentiment="neutral", analyst="ana", at=T0 + timedelta(hours=1)))
    await store.put_label(
        Label(doc_id=doc.id, sentiment="positive", analyst="ana", at=T0 + timedelta(minutes=5))
    )  # stale
    await store.put_label(Label(doc_id=doc.id, topic="Earnings", analyst="bob", at=T0 + timedelta(minutes=1)))
    with pytest.raises(UnknownDocument):
        await store.put_label(Label(doc_id="doc-nope", sentiment="negative"))
    await store.refresh()
    labels = await store.labels()
    assert [(lb.analyst, lb.sentiment) for lb in labels] == [("ana", "neutral"), ("bob", None)]
    assert {lb.text for lb in labels} == {model_input("Refinery fire", "Output halted at the plant.")}
    assert len(await store.labels(limit=1)) == 1


async def test_export_every_matching_document_oldest_first_across_pages(store):
    records = [scored(i, minutes=i / 10, sentiment="negative" if i % 3 == 0 else "neutral") for i in range(1205)]
    result = await write(store, records)
    assert result.stored == 1205
    exported = [doc async for doc in store.export()]
    assert ids(exported) == [r.id for r in records]
    negatives = [doc async for doc in store.export(SearchQuery(sentiment="negative"))]
    assert ids(negatives) == [r.id for r in records if r.sentiment.label == "negative"]


async def test_content_the_store_cannot_hold_is_rejected_with_a_reason_the_rest_stored(store, backend):
    broken = scored(1, text="half a character: \ud800")
    result = await write(store, [scored(0), broken, scored(2)])
    assert result.stored == 2
    assert [(r.id, "text" in r.reason and "UTF-8" in r.reason) for r in result.rejected] == [(broken.id, True)]
    assert await store.count() == 2 and await store.get(broken.id) is None


async def test_a_meta_value_of_conflicting_type_is_a_mapping_rejection_on_elasticsearch(store, backend):
    await write(store, [scored(0, meta={"rank": 3})])
    result = await write(store, [scored(1, meta={"rank": "top"}), scored(2, meta={"rank": 4})])
    if backend == "sqlite":
        # SQLite keeps meta as JSON: nothing to conflict with, both are stored.
        assert (result.stored, result.rejected) == (2, [])
        return
    assert result.stored == 1
    assert [r.id for r in result.rejected] == ["doc-00001"]
    assert "meta.rank" in result.rejected[0].reason and "parsing" in result.rejected[0].reason
    assert await store.count() == 2


async def test_prune_deletes_whole_days_before_the_cutoff(store):
    day = timedelta(days=1)
    await write(store, [scored(i, minutes=i * 24 * 60 + 30) for i in range(4)])  # one per day, 09:30
    deleted = await store.prune(T0 + 2 * day + timedelta(hours=5))  # the day of doc 2 is kept whole
    await store.refresh()
    assert deleted == 2
    assert sorted(ids(await store.search(SearchQuery()))) == ["doc-00002", "doc-00003"]
    assert await store.prune(T0 + 2 * day) == 0


async def test_prune_alerts_deletes_those_last_updated_before_the_cutoff(store):
    day = timedelta(days=1)
    await store.put_alert(alert(0, key="Energy", updated_at=T0))
    await store.put_alert(alert(3, key="Rates", updated_at=T0 + day))  # at the cutoff: kept
    await store.put_alert(alert(0, key="Macro", updated_at=T0 + 2 * day))
    assert await store.prune_alerts(T0 + day) == 1
    await store.refresh()
    assert [a["key"] for a in await store.alerts()] == ["Macro", "Rates"]
    assert await store.prune_alerts(T0 + day) == 0


async def test_open_again_is_harmless_and_keeps_data(store):
    await write(store, [scored(1)])
    await store.open()
    assert await store.count() == 1
    assert (await write(store, [scored(2)])).stored == 1
