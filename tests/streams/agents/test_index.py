import asyncio
from datetime import datetime, timezone

from finsentry.records import DeadLetter, ScoredDocument, Sentiment, Topic
from finsentry.store.base import Rejected, StoreUnavailable, UpsertResult
from finsentry.store.shape import ingest_to_stored_s
from finsentry.store.sqlite import SqliteStore


def scored(i: int, text: str = "Oil falls") -> ScoredDocument:
    return ScoredDocument(
        id=f"doc-{i}",
        source="wire",
        title=text,
        text=text,
        published_at=datetime(2026, 1, 5, 13, i, tzinfo=timezone.utc),
        ingested_at=1767618000.0,
        sentiment=Sentiment(
            label="negative", probabilities={"negative": 0.8, "neutral": 0.15, "positive": 0.05}, score=-0.75
        ),
        topic=Topic(label="Energy / Oil", probability=0.9),
        entities=["XOM"],
        model_version="v-test",
    )


class FlakySqlite(SqliteStore):
    """The real SQLite store behind injected faults (an outage, a content rejection), to
    drive the agent's retry and dead-letter paths deterministically."""

    def __init__(self, path, outages: int = 0, reject: str | None = None):
        super().__init__(path)
        self.outages, self.reject, self.calls = outages, reject, 0

    async def upsert_many(self, records):
        self.calls += 1
        if self.outages:
            self.outages -= 1
            raise StoreUnavailable("injected outage")
        keep = [r for r in records if r.id != self.reject]
        result = await super().upsert_many(keep)
        rejected = [
            Rejected(id=r.id, reason="mapper_parsing_exception: field [meta.x]") for r in records if r.id == self.reject
        ]
        return UpsertResult(stored=result.stored, rejected=rejected)


async def test_redelivered_records_are_stored_once(harness, tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    h = harness(("index",), store=store)
    async with h.agent("index").test_context() as agent:
        for i in (0, 1, 2, 1, 0):
            await agent.put(scored(i).model_dump_json().encode(), key=b"k")
        for _ in range(1200):  # up to 60 s: a loaded machine is slow, the loop ends on the condition
            if await store.count() == 3:
                break
            await asyncio.sleep(0.05)
    assert await store.count() == 3
    doc = await store.get("doc-1")
    assert doc["sentiment"]["label"] == "negative" and doc["model_version"] == "v-test" and ingest_to_stored_s(doc) >= 0
    await store.close()


async def test_outage_is_waited_out_and_rejections_dead_lettered(harness, tmp_path):
    store = FlakySqlite(tmp_path / "s.db", outages=2, reject="doc-2")
    await store.open()
    h = harness(("index",), store=store)
    async with h.agent("index").test_context() as agent:
        for i in range(4):
            await agent.put(scored(i).model_dump_json().encode(), key=b"k")
        letter = DeadLetter.model_validate_json((await h.read("dlq", 1))[0])
        for _ in range(1200):  # up to 60 s: a loaded machine is slow, the loop ends on the condition
            if await store.count() == 3:
                break
            await asyncio.sleep(0.05)
    assert store.calls >= 3  # two failed attempts, then the write went through
    assert await store.count() == 3 and await store.get("doc-2") is None
    assert letter.stage == "index" and "mapper_parsing_exception" in letter.reason
    await store.close()


async def test_a_mapping_conflict_on_elasticsearch_is_dead_lettered_with_the_store_reason(harness, make_settings):
    """The real ElasticsearchStore on osmem-server, an in-memory OpenSearch-compatible server
    standing in for Elasticsearch: its mapping, not an injected fault, refuses the record."""
    from osmem_server import OsmemServer

    from finsentry.store.elasticsearch import ElasticsearchStore

    def with_rank(i: int, rank) -> ScoredDocument:
        return scored(i).model_copy(update={"meta": {"rank": rank}})

    server = OsmemServer.start(japanese=False)
    store = ElasticsearchStore(
        f"{server.url}?compat=opensearch", make_settings(es_replicas=0, store_retry_budget_s=2.0)
    )
    try:
        await store.open()
        await store.upsert_many([with_rank(0, 3)])  # the day's index now maps meta.rank as a number
        h = harness(("index",), store=store)
        async with h.agent("index").test_context() as agent:
            for i, rank in ((1, 4), (2, "top"), (3, 5)):
                await agent.put(with_rank(i, rank).model_dump_json().encode(), key=b"k")
            letter = DeadLetter.model_validate_json((await h.read("dlq", 1))[0])
            for _ in range(1200):  # up to 60 s: a loaded machine is slow, the loop ends on the condition
                await store.refresh()
                if await store.count() == 3:
                    break
                await asyncio.sleep(0.05)
        assert letter.stage == "index" and letter.reason.startswith("store rejected the document: ")
        assert "meta.rank" in letter.reason and "parsing" in letter.reason
        assert ScoredDocument.model_validate_json(letter.raw).id == "doc-2"
        assert await store.count() == 3 and await store.get("doc-2") is None
        assert [(await store.get(f"doc-{i}"))["meta"]["rank"] for i in (1, 3)] == [4, 5]
    finally:
        await store.close()
        server.close()
