import json
from datetime import datetime, timezone

from finsentry.streams.alerting.dedup import NearDuplicateIndex
from finsentry.streams.records import DeadLetter, ScoredDocument, ValidDocument


def valid(i: int, title: str, text: str) -> bytes:
    return ValidDocument(id=f"doc-{i}", source="wire", title=title, text=text,
                         published_at=datetime(2026, 1, 5, 13, i, tzinfo=timezone.utc),
                         ingested_at=1767618000.0 + i).model_dump_json().encode()


async def test_batch_is_scored_with_version_entities_and_duplicates(harness, engine):
    h = harness(("score",), engine=engine, dedup=NearDuplicateIndex(0.8, 3600))
    inputs = [
        valid(0, "Crude oil prices collapse as OPEC talks fail", "Crude oil prices collapse as OPEC talks fail; Exxon Mobil warns of lower output."),
        valid(1, "Apple raises dividend after record quarter", "Apple raises its dividend after a record quarter of iPhone sales."),
        valid(2, "Crude oil prices collapse as OPEC talks fail (wire-b)", "Crude oil prices collapse as OPEC talks fail; Exxon Mobil warns of lower output."),
    ]
    async with h.agent("score").test_context() as agent:
        for payload in inputs:
            await agent.put(payload, key=b"k")
        out = {r.id: r for r in (ScoredDocument.model_validate_json(v) for v in await h.read("scored", 3))}
    assert set(out) == {"doc-0", "doc-1", "doc-2"}
    assert all(r.model_version == engine.version for r in out.values())
    assert out["doc-0"].sentiment.label == "negative" and out["doc-0"].sentiment.score < 0
    assert out["doc-0"].topic.label == "Energy / Oil"
    assert out["doc-1"].sentiment.label == "positive"
    assert out["doc-0"].entities == ["XOM"] and out["doc-1"].entities == ["AAPL"]
    assert out["doc-2"].dup_of == "doc-0" and out["doc-0"].dup_of is None and out["doc-1"].dup_of is None
    assert out["doc-0"].ingested_at == 1767618000.0
    assert h.empty("dlq")


class Poisoned:
    """A stand-in engine that fails on one marked text, to show one bad document is
    isolated and dead-lettered while its batch neighbours are scored by the real model."""

    def __init__(self, engine):
        self.engine = engine
        self.version = engine.version

    def predict(self, texts):
        if any("POISON" in t for t in texts):
            raise RuntimeError("tokenizer exploded")
        return self.engine.predict(texts)


async def test_a_failing_document_is_isolated_and_dead_lettered(harness, engine):
    h = harness(("score",), engine=Poisoned(engine), dedup=NearDuplicateIndex(0.8, 3600))
    async with h.agent("score").test_context() as agent:
        await agent.put(valid(0, "Gold climbs", "Gold climbs to a record."), key=b"k")
        await agent.put(valid(1, "POISON", "POISON pill"), key=b"k")
        await agent.put(valid(2, "Bonds rally", "Treasury bonds rally."), key=b"k")
        scored = [ScoredDocument.model_validate_json(v) for v in await h.read("scored", 2)]
        letter = DeadLetter.model_validate_json((await h.read("dlq", 1))[0])
    assert sorted(r.id for r in scored) == ["doc-0", "doc-2"]
    assert letter.stage == "score" and "tokenizer exploded" in letter.reason
    assert json.loads(letter.raw)["id"] == "doc-1"
