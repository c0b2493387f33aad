import asyncio
import inspect
import sqlite3
from datetime import datetime, timedelta, timezone

from finsentry import metrics
from finsentry.alerting.notifiers import AlertmanagerNotifier
from finsentry.alerting.observations import Observation, ObservationGroup, Tick, parse_message
from finsentry.alerting.outbox import Outbox
from finsentry.models import explain as explain_module
from finsentry.records import Alert, Evidence, Label, ScoredDocument, Sentiment, Topic
from finsentry.store.sqlite import SqliteStore
from finsentry.streams.broker import free_port

T0 = datetime(2026, 1, 5, 13, 0, tzinfo=timezone.utc)


def scored(i: int, negative: bool, at: datetime, topic: str = "Energy / Oil", entities=("XOM",)) -> ScoredDocument:
    probs = (
        {"negative": 0.9, "neutral": 0.05, "positive": 0.05}
        if negative
        else {"negative": 0.05, "neutral": 0.9, "positive": 0.05}
    )
    return ScoredDocument(
        id=f"doc-{i}",
        source="wire",
        title=f"headline {i}",
        text=f"story {i}",
        published_at=at,
        ingested_at=at.timestamp(),
        model_version="v-test",
        sentiment=Sentiment(
            label="negative" if negative else "neutral",
            probabilities=probs,
            score=probs["positive"] - probs["negative"],
        ),
        topic=Topic(label=topic, probability=0.9),
        entities=list(entities),
    )


async def read_groups(h, n: int) -> list[ObservationGroup]:
    """The next n observation groups; the watermarks sent between them are set aside."""
    groups = []
    while len(groups) < n:
        message = parse_message((await h.read("observations", 1))[0])
        if isinstance(message, ObservationGroup):
            groups.append(message)
        else:
            h.watermarks.append(message)
    return groups


async def test_observe_fans_out_one_observation_per_scope_keyed_for_partitioning(harness):
    h = harness(("alert",))
    async with h.agent("observe").test_context() as agent:
        await agent.put(scored(1, True, T0, entities=("XOM", "CVX")).model_dump_json().encode(), key=b"k")
        groups = await read_groups(h, 4)
    got = [o for g in groups for o in g.observations]
    assert sorted((o.scope, o.key) for o in got) == [
        ("entity", "CVX"),
        ("entity", "XOM"),
        ("global", "all"),
        ("topic", "Energy / Oil"),
    ]
    assert all(o.doc_id == "doc-1" and o.negative for o in got)
    assert all(g.key == g.observations[0].state_key for g in groups)


async def test_observe_sends_one_group_per_scope_for_a_batch(harness):
    h = harness(("alert",))
    async with h.agent("observe").test_context() as agent:
        for i in range(3):
            await agent.put(scored(i, i == 0, T0, entities=("XOM",)).model_dump_json().encode(), key=b"k")
        groups = []
        while sum(len(g.observations) for g in groups) < 9:  # 3 documents × (global, topic, XOM)
            groups += await read_groups(h, 1)
    assert {g.key for g in groups} == {"global:all", "topic:Energy / Oil", "entity:XOM"}
    for key in {g.key for g in groups}:  # each scope keeps its documents in order
        assert [o.doc_id for g in groups if g.key == key for o in g.observations] == ["doc-0", "doc-1", "doc-2"]
    assert len(groups) < 9  # batched: fewer messages than observations


async def test_detect_dead_letters_a_message_it_cannot_read_and_keeps_going(harness):
    h = harness(("alert",))
    async with h.agent("detect").test_context() as agent:
        await agent.put(b'{"scope": "galaxy"}', key=b"x")
        obs = Observation(scope="topic", key="Energy / Oil", doc_id="d1", negative=True, score=-0.8, published_at=T0)
        await agent.put(obs.model_dump_json().encode(), key=b"topic:Energy / Oil")
        letter = (await h.read("dlq", 1))[0]
        for _ in range(1200):  # up to 60 s: a loaded machine is slow, the loop ends on the condition
            state = dict(agent.app.tables["finsentry-detector-state"].items())
            if state:
                break
            await asyncio.sleep(0.05)
    assert b"invalid observation" in letter and b'"stage":"detect"' in letter
    assert "topic:Energy / Oil" in state


async def test_detect_raises_one_alert_for_a_spike_over_the_table_state(make_settings):
    from tests.streams.agents.conftest import Harness

    settings = make_settings(
        alert_min_count=8,
        alert_min_baseline_buckets=3,
        alert_window_buckets=1,
        alert_z_threshold=3.0,
        alert_min_share_increase=0.2,
    )
    h = Harness(settings, ("alert",))
    detect = h.agent("detect")
    i = 0
    async with detect.test_context() as agent:
        for minute in range(8):  # calm: about one negative story in ten
            for k in range(10):
                obs = Observation(
                    scope="topic",
                    key="Energy / Oil",
                    doc_id=f"c{i}",
                    negative=(k == 0),
                    score=0.0,
                    published_at=T0 + timedelta(minutes=minute, seconds=5 * k),
                    title=f"calm {i}",
                )
                await agent.put(obs.model_dump_json().encode(), key=b"topic:Energy / Oil")
                i += 1
        for minute in range(8, 11):  # the spike: nearly all negative, distinct stories
            for k in range(12):
                obs = Observation(
                    scope="topic",
                    key="Energy / Oil",
                    doc_id=f"s{i}",
                    negative=(k != 0),
                    score=-0.8,
                    published_at=T0 + timedelta(minutes=minute, seconds=4 * k),
                    title=f"spike {i}",
                )
                await agent.put(obs.model_dump_json().encode(), key=b"topic:Energy / Oil")
                i += 1
        alerts = [Alert.model_validate_json(v) for v in await h.read("alerts", 1)]
        # The scope goes quiet: a tick (what the worker's timer sends) ends the episode.
        quiet = (T0 + timedelta(hours=2)).timestamp()
        await agent.put(
            Tick(tick=quiet, key="topic:Energy / Oil").model_dump_json().encode(), key=b"topic:Energy / Oil"
        )
        updates = []
        while not updates or updates[-1].status != "resolved":
            updates += [Alert.model_validate_json(v) for v in await h.read("alerts", 1)]
        state = dict(detect.app.tables["finsentry-detector-state"].items())
    alert = alerts[0]
    assert (alert.scope, alert.key) == ("topic", "Energy / Oil")
    assert alert.negative_share > 0.7 and alert.baseline < 0.3 and alert.evidence
    assert "topic:Energy / Oil" in state  # the baseline lives in the changelog-backed table
    assert updates[-1].id == alert.id and updates[-1].status == "resolved"


async def test_notify_stores_the_alert(harness, tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    h = harness(("alert",), store=store)
    h.rt.settings = h.rt.settings.model_copy(update={"explain_evidence": False})
    alert = Alert(
        id="a1",
        scope="topic",
        key="Energy / Oil",
        severity="warning",
        episode_start=T0,
        window_start=T0,
        window_end=T0 + timedelta(minutes=3),
        negative_share=0.8,
        baseline=0.2,
        statistic=6.1,
        volume=40,
        baseline_volume=10.0,
    )
    async with h.agent("notify").test_context() as agent:
        await agent.put(alert.model_dump_json().encode(), key=b"a1")
        for _ in range(1200):  # up to 60 s: a loaded machine is slow, the loop ends on the condition
            if await store.alerts():
                break
            await asyncio.sleep(0.05)
    stored = await store.alerts()
    assert [a["id"] for a in stored] == ["a1"]
    await store.close()


def spike_alert(update: int, evidence: list[Evidence]) -> Alert:
    return Alert(
        id="a1",
        scope="topic",
        key="Energy / Oil",
        severity="warning",
        episode_start=T0,
        window_start=T0,
        window_end=T0 + timedelta(minutes=3),
        negative_share=0.8,
        baseline=0.2,
        statistic=6.1,
        volume=40,
        baseline_volume=10.0,
        update=update,
        change="opened" if update == 0 else "updated",
        evidence=evidence,
    )


async def until(predicate, what: str, timeout: float = 20.0) -> None:
    """Wait until `predicate()` (sync or async) is true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def stored_update(store, update: int) -> bool:
    return any(a["update"] == update for a in await store.alerts())


async def test_notify_explains_the_evidence_once_per_document(harness, tmp_path, engine, monkeypatch):
    """The shipped model explains each evidence headline; the next update of the episode
    reuses those explanations and runs the model only for its new document."""
    explained = []

    def counting_explain(model, text, top_k=8):
        explained.append(text)
        return real_explain(model, text, top_k)

    real_explain = explain_module.explain
    monkeypatch.setattr(explain_module, "explain", counting_explain)
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    h = harness(("alert",), engine=engine, store=store)
    assert h.rt.settings.explain_evidence  # the default
    first = [
        Evidence(id="d1", title="Oil prices slump as OPEC talks collapse", score=-0.9),
        Evidence(id="d2", title="Refiners cut output after a fire at the plant", score=-0.8),
    ]
    later = [*first, Evidence(id="d3", title="Crude tumbles to a six month low on weak demand", score=-0.85)]

    async with h.agent("notify").test_context() as agent:
        await agent.put(spike_alert(0, first).model_dump_json().encode(), key=b"a1")
        await until(lambda: stored_update(store, 0), "the first update")
        await agent.put(spike_alert(1, later).model_dump_json().encode(), key=b"a1")
        await until(lambda: stored_update(store, 1), "the second update")
    [stored] = await store.alerts()
    await store.close()
    assert explained == [e.title for e in later]  # d1 and d2 once, then only d3
    for evidence in stored["evidence"]:
        words = [word for word, _ in evidence["explanation"]]
        assert words and set(words) <= set(evidence["title"].replace(",", " ").split())


async def test_notify_queues_the_alert_during_a_store_outage_and_stores_it_after(make_settings, tmp_path):
    """A real outage: another connection holds SQLite's write lock for longer than the
    store's busy timeout, so every put_alert raises StoreUnavailable until it is released."""
    from tests.streams.agents.conftest import Harness

    path = tmp_path / "s.db"
    store = SqliteStore(path, busy_timeout_s=0.05)
    await store.open()
    outbox = Outbox(tmp_path / "outbox.db", [AlertmanagerNotifier(f"http://127.0.0.1:{free_port()}")])
    await outbox.open()  # delivery is not started: the rows stay pending for the test to read
    h = Harness(make_settings(explain_evidence=False, store_retry_max_s=0.2), ("alert",), store=store)
    h.rt.outbox = outbox
    refused = metrics.STORE_ERRORS.labels(kind="unavailable")
    refused_before = refused._value.get()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    locked = True
    try:
        async with h.agent("notify").test_context() as agent:
            # wait=False: the agent is busy retrying, the test must go on to end the outage
            await agent.put(spike_alert(0, []).model_dump_json().encode(), key=b"a1", wait=False)
            await agent.put(b'{"id": "a2", "scope": "galaxy"}', key=b"a2", wait=False)
            await until(lambda: refused._value.get() >= refused_before + 3, "retries against the locked store")
            rows = await outbox.rows()
            assert [(r["alert_id"], r["update_no"]) for r in rows] == [("a1", 0)]  # notified while the store is down
            assert await store.alerts() == []
            other.execute("ROLLBACK")
            locked = False
            letter = (await h.read("dlq", 1))[0]
            assert [a["id"] for a in await store.alerts()] == ["a1"]
            # A re-delivered update is neither queued nor stored twice; the next one is both.
            await agent.put(spike_alert(0, []).model_dump_json().encode(), key=b"a1", wait=False)
            await agent.put(spike_alert(1, []).model_dump_json().encode(), key=b"a1", wait=False)
            await until(lambda: stored_update(store, 1), "the second update")
    finally:
        if locked:
            other.execute("ROLLBACK")
        other.close()
    rows = await outbox.rows()
    assert [(r["alert_id"], r["update_no"], r["state"]) for r in rows] == [
        ("a1", 0, "superseded"),
        ("a1", 1, "pending"),
    ]
    assert b"invalid alert" in letter and b'"stage":"notify"' in letter
    await outbox.stop()
    await store.close()


async def test_labels_are_stored_with_the_document_text(harness, tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    await store.upsert_many([scored(7, True, T0)])
    h = harness(("labels",), store=store)
    async with h.agent("labels").test_context() as agent:
        await agent.put(Label(doc_id="doc-7", sentiment="neutral").model_dump_json().encode(), key=b"doc-7")
        await agent.put(Label(doc_id="missing", sentiment="neutral").model_dump_json().encode(), key=b"x")
        letter = (await h.read("dlq", 1))[0]
        for _ in range(1200):  # up to 60 s: a loaded machine is slow, the loop ends on the condition
            if await store.labels():
                break
            await asyncio.sleep(0.05)
    labels = await store.labels()
    assert len(labels) == 1 and labels[0].doc_id == "doc-7" and labels[0].sentiment == "neutral"
    assert "headline 7" in labels[0].text and b"unknown document" in letter
    await store.close()
