"""A running `finsentry worker` (embedded broker, SQLite store, the shipped model) follows
the registry: a child of the shipped model is trained on analyst labels, evaluated, gated,
registered and promoted; the worker swaps to it between batches, then back on rollback.
Every document is stored exactly once and names the version that scored it, and scoring
goes on while the candidate loads: documents published at a steady pace across the load
are stored without a pause longer than `pause_bound` of the load's duration."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from training_helpers import TINY_TRAIN

from finsentry.ingest.producer import DocumentProducer
from finsentry.models.registry import SHIPPED_MODEL, Registry, read_card
from finsentry.publish import ModelUpdatePublisher
from finsentry.records import Document, Label
from finsentry.store import open_store
from finsentry.store.shape import stored_epoch
from finsentry.streams.process import WorkerProcess, settings_env
from finsentry.training.evaluate import GoldenSet, evaluate, golden_sets
from finsentry.training.feedback import split_feedback
from finsentry.training.finetune import train
from finsentry.training.lineage import heldout_examples, save_lineage
from finsentry.training.pipeline import decide, plan

pytestmark = pytest.mark.slow

REPO_DATA = Path(__file__).resolve().parents[2] / "data" / "tfn"
HEADLINES = [
    "Oil slumps as OPEC+ signals higher output",
    "Apple beats earnings estimates, raises dividend",
    "Fed holds rates steady, signals patience",
    "Tesla recalls vehicles over steering defect",
    "Gold climbs to record as dollar weakens",
    "Nvidia shares jump on AI chip demand",
]


TRICKLE_PACE_S = 0.25


def pause_bound(load_s: float) -> float:
    """The longest pause in stored times allowed while a candidate loads (and is checked):
    half the load, so a worker that scores nothing meanwhile (a pause as long as the load)
    fails, while a busy machine's usual pauses (under a second, trickle and batching
    included) pass; never under 1.5 s, for a load too quick to tell the two apart."""
    return max(1.5, 0.5 * load_s)


def load_window(log_file: Path, version: str) -> tuple[float, float]:
    """From the worker's JSON log: when it received the promotion of `version` (and began
    loading it) and when it swapped to it."""
    import json

    received = swapped = None
    for line in log_file.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        at = datetime.fromisoformat(entry["ts"].replace("Z", "+00:00")).timestamp() if "ts" in entry else None
        message = entry.get("msg", "")
        if received is None and message.startswith(f"model update received action=promote version={version}"):
            received = at
        elif (
            received is not None
            and swapped is None
            and message.startswith("model swapped")
            and f"to={version} " in message
        ):
            swapped = at
    assert received is not None and swapped is not None, f"no load of {version} in the worker log"
    return received, swapped


def document(phase: str, i: int) -> Document:
    base = datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc)
    return Document(
        source="wire",
        title=f"{HEADLINES[i % len(HEADLINES)]} ({phase} {i})",
        text=f"{HEADLINES[i % len(HEADLINES)]}. Story {phase}-{i}.",
        url=f"https://example.test/{phase}/{i}",
        published_at=base + timedelta(seconds=i),
    ).with_defaults()


def documents(phase: str, n: int) -> list[Document]:
    return [document(phase, i) for i in range(n)]


class Trickle(threading.Thread):
    """Publishes documents one at a time every TRICKLE_PACE_S until stopped."""

    def __init__(self, settings, phase: str):
        super().__init__(daemon=True)
        self.settings, self.phase, self.stop = settings, phase, threading.Event()
        self.published: list[Document] = []

    def run(self) -> None:
        with DocumentProducer(self.settings) as producer:
            while not self.stop.is_set():
                doc = document(self.phase, len(self.published))
                producer.publish(doc)
                producer.flush()
                self.published.append(doc)
                self.stop.wait(TRICKLE_PACE_S)

    def finish(self) -> list[Document]:
        self.stop.set()
        self.join(60)
        return self.published


def longest_pause(stored_times: list[float], start: float, end: float) -> float:
    """The longest stretch of [start, end] with no document stored."""
    inside = sorted(t for t in stored_times if start < t < end)
    edges = [start, *inside, end]
    return max(b - a for a, b in zip(edges, edges[1:]))


def stored(settings) -> dict[str, dict]:
    async def read() -> dict[str, dict]:
        async with open_store(settings.store, settings) as store:
            out: dict[str, dict] = {}
            async for doc in store.export():
                assert doc["id"] not in out, f"{doc['id']} stored twice"
                out[doc["id"]] = doc
            return out

    return asyncio.run(read())


def train_child(settings, registry: Registry, labels: list[Label], tiny_data: Path, root: Path, before_decision=None):
    """The pipeline's steps with small evaluation sets: the tiny golden slices and 150
    examples of the parent's held-out split instead of all 2,653. `before_decision` is
    called just before the gate decides (and the registry promotes)."""
    parent = registry.serving()
    feedback, analyst_golden = split_feedback(labels, settings.feedback_golden_share)
    args = plan(
        settings,
        parent,
        feedback,
        root / "run",
        "m-child",
        max_steps=4,
        **{**TINY_TRAIN, "learning_rate": 2e-5, "head_learning_rate": 2e-4},
    )
    report = train(args)
    artifact = Path(report["artifact"])
    save_lineage(args, artifact, report)
    sets = golden_sets(tiny_data, analyst_golden) + [
        GoldenSet(f"heldout:{parent.name}", heldout_examples(parent.path, REPO_DATA)[:150], role="forgetting")
    ]
    candidate, current = evaluate(artifact, sets), evaluate(parent.path, sets)
    if before_decision is not None:
        before_decision()
    return decide(registry, artifact, report, candidate, current, None, settings, reason="analyst feedback")


def test_worker_swaps_to_the_promoted_child_and_back_storing_every_document_once(
    broker, training_settings, tiny_data, fresh_sentiment_rows, tmp_path, request
):
    # The shipped model is part of the repository: its absence is a broken checkout, not a reason to skip.
    assert (SHIPPED_MODEL / "card.json").exists(), f"the shipped model is missing from {SHIPPED_MODEL}"
    prefix = f"swap-{uuid.uuid4().hex[:8]}."
    settings = training_settings(
        broker=broker.url,
        broker_embedded=True,
        topic_prefix=prefix,
        app_id=f"finsentry-{prefix}",
        train_data_dir=REPO_DATA,
        train_replay_fraction=0.005,
        train_min_new_examples=10,
        gate_tolerance=0.05,
        gate_max_forgetting=0.05,
        gate_max_ece_increase=0.1,
        gate_min_examples=50,
        gate_min_sentiment_accuracy=0.80,
        gate_min_sentiment_macro_f1=0.75,
        gate_min_topic_accuracy=0.75,
        web_port=0,
        backend="torch",
    )
    from finsentry.streams.broker import free_port

    settings = settings.model_copy(update={"web_port": free_port()})
    registry = Registry(settings.registry_dir, publisher=ModelUpdatePublisher(settings))
    shipped = read_card(SHIPPED_MODEL)["version"]
    names = {"0": "negative", "1": "positive", "2": "neutral"}
    labels = [
        Label(doc_id=f"doc-{i}", sentiment=names[r["label"]], text=r["text"])
        for i, r in enumerate(fresh_sentiment_rows)
    ]

    env = settings_env(
        broker=settings.broker,
        broker_embedded=True,
        topic_prefix=prefix,
        app_id=settings.app_id,
        store=settings.store,
        web_port=settings.web_port,
        data_dir=settings.data_dir,
        outbox_path=tmp_path / "outbox.db",
        registry_dir=settings.registry_dir,
        model_cache_dir=Path("var/test-model-cache").resolve(),
        backend="torch",
        inference_threads=1,
        broker_session_timeout_s=6,
        broker_heartbeat_s=0.5,
        log_json=True,
    )  # timestamps to the millisecond: the load window
    before, after, back = (documents(p, 20) for p in ("before", "after", "back"))
    # Workers follow model-updates from its end, so the topic exists before they start, as
    # the production stack's topic-init makes sure.
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=broker.address)
    admin.create_topics([NewTopic(settings.topic("model-updates"), settings.topic_partitions, 1)])
    admin.close()
    with WorkerProcess(env, tmp_path / "worker.log", settings.web_port) as worker:
        producer = DocumentProducer(settings)

        def publish(docs):
            for doc in docs:
                producer.publish(doc)
            producer.flush()

        def swaps() -> float:
            return worker.metrics().get("finsentry_model_swaps_total", 0.0)

        publish(before)
        worker.wait_for(lambda: len(stored(settings)) >= 20, timeout=120)

        trickle = Trickle(settings, "during")  # in flight while the worker loads and checks the new version
        request.addfinalizer(trickle.stop.set)  # also when the test fails before the swap
        version, decision = train_child(settings, registry, labels, tiny_data, tmp_path, before_decision=trickle.start)
        assert decision.promote, decision.reasons
        assert version.name == "m-child" and registry.promoted().name == "m-child"
        assert any(c["check"].startswith(f"heldout:{shipped}/") for c in decision.checks)

        worker.wait_for(lambda: swaps() >= 1, timeout=120)
        during = trickle.finish()
        publish(after)
        total = len(before) + len(during) + len(after)
        worker.wait_for(lambda: len(stored(settings)) >= total, timeout=120)

        assert registry.rollback("test: back to the shipped model").name == shipped
        worker.wait_for(lambda: swaps() >= 2, timeout=120)
        publish(back)
        total += len(back)
        worker.wait_for(lambda: len(stored(settings)) >= total, timeout=120)
        producer.close()
        metrics = worker.metrics()
        # A fresh worker process: its counter is the run's total. Exactly that many: a document
        # scored again across a swap (a redelivered batch) would show here.
        assert metrics.get("finsentry_documents_scored_total") == total
        assert metrics.get("finsentry_documents_stored_total", 0) >= total

    records = stored(settings)
    assert len(records) == total
    version_of = {doc_id: rec["model_version"] for doc_id, rec in records.items()}
    assert {version_of[d.id] for d in before} == {shipped}
    assert {version_of[d.id] for d in during} <= {shipped, "m-child"}
    assert {version_of[d.id] for d in after} == {"m-child"}
    assert {version_of[d.id] for d in back} == {shipped}

    # Scoring went on while the candidate loaded, from the promotion's arrival to the swap.
    start, end = load_window(tmp_path / "worker.log", "m-child")
    during_stored = [stored_epoch(records[d.id]) for d in during]
    pause, in_window = longest_pause(during_stored, start, end), sum(start < t < end for t in during_stored)
    print(f"candidate loaded in {end - start:.1f}s: {in_window} documents stored meanwhile, longest pause {pause:.1f}s")
    assert pause <= pause_bound(end - start), (
        f"no document stored for {pause:.1f}s of the {end - start:.1f}s the candidate took to load "
        f"({in_window} stored meanwhile; bound {pause_bound(end - start):.1f}s)"
    )
