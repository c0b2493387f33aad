import asyncio
import json
import time
from datetime import datetime, timezone

from finsentry.alerting.dedup import NearDuplicateIndex
from finsentry.records import DeadLetter, ScoredDocument, ValidDocument


def valid(i: int, title: str, text: str) -> bytes:
    return (
        ValidDocument(
            id=f"doc-{i}",
            source="wire",
            title=title,
            text=text,
            published_at=datetime(2026, 1, 5, 13, i, tzinfo=timezone.utc),
            ingested_at=1767618000.0 + i,
        )
        .model_dump_json()
        .encode()
    )


async def test_batch_is_scored_with_version_entities_and_duplicates(harness, engine):
    h = harness(("score",), engine=engine, dedup=NearDuplicateIndex(0.8, 3600))
    inputs = [
        valid(
            0,
            "Crude oil prices collapse as OPEC talks fail",
            "Crude oil prices collapse as OPEC talks fail; Exxon Mobil warns of lower output.",
        ),
        valid(
            1,
            "Apple raises dividend after record quarter",
            "Apple raises its dividend after a record quarter of iPhone sales.",
        ),
        valid(
            2,
            "Crude oil prices collapse as OPEC talks fail (wire-b)",
            "Crude oil prices collapse as OPEC talks fail; Exxon Mobil warns of lower output.",
        ),
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


# One actor: under test_context every actor of an agent receives every event (an in-memory
# channel copies to each subscriber), whereas on a topic they share one queue.
ONE_ACTOR = {"score_concurrency": 1}


class Slow:
    """A stand-in engine: the real model, with every call held for `seconds` and recorded,
    so a test can see what happens on the event loop while a batch is being scored."""

    def __init__(self, engine, seconds: float, on_call=None):
        self.engine = engine
        self.version = engine.version
        self.seconds = seconds
        self.on_call = on_call or (lambda: None)
        self.calls: list[int] = []
        self.during: list[tuple[int, int]] = []  # the on_call() value at entry and at exit of each call

    def predict(self, texts):
        self.calls.append(len(texts))
        entry = self.on_call()
        time.sleep(self.seconds)
        self.during.append((entry, self.on_call()))
        return self.engine.predict(texts)


async def test_scoring_never_blocks_the_event_loop(harness, engine):
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    slow = Slow(engine, seconds=0.5, on_call=lambda: ticks)
    h = harness(("score",), settings=ONE_ACTOR, engine=slow, dedup=NearDuplicateIndex(0.8, 3600))
    running = asyncio.ensure_future(ticker())
    try:
        async with h.agent("score").test_context() as agent:
            await agent.put(valid(0, "Gold climbs", "Gold climbs to a record."), key=b"k", wait=False)
            await h.read("scored", 1)
    finally:
        running.cancel()
    ((entry, exit_),) = slow.during
    assert exit_ - entry >= 10, f"the loop ticked {exit_ - entry} times in a 0.5 s model call"


async def test_every_model_call_gets_at_most_max_batch_documents(harness, engine):
    # Each call is slowed, so the queue holds far more than max_batch while one is scored.
    slow = Slow(engine, seconds=0.2)
    h = harness(("score",), settings=ONE_ACTOR, engine=slow, dedup=NearDuplicateIndex(0.8, 3600))
    max_batch = h.rt.settings.max_batch
    n = 5 * max_batch
    async with h.agent("score").test_context() as agent:
        for i in range(n):
            await agent.put(valid(i % 50, f"Story {i}", f"Markets move on story number {i}."), key=b"k", wait=False)
        scored = [ScoredDocument.model_validate_json(v) for v in await h.read("scored", n, timeout=60)]
    assert len(scored) == n and sum(slow.calls) == n, slow.calls
    assert max(slow.calls) <= max_batch, slow.calls
    assert len(slow.calls) < n  # batches were formed: not one call per document
