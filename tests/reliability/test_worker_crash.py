"""kill -9 of a worker mid-stream, the broker staying up, then a restart: every document is
stored exactly once, and the detector's baselines come back from their changelog.

How the baseline check would catch a loss of state:
  A  a steady stream (20 % negative) builds the global baseline; the test waits until the
     detector's changelog shows all of it observed.
  B  documents published while the worker is killed and restarted: all negative, and all
     in minutes the baseline has already closed. A restored detector drops them as late;
     a detector that lost its state would start from them and learn a baseline of about
     100 % negative.
  C  after the restart, a burst of negative stories. Against the restored 20 % baseline it
     is a spike and raises a global alert; against a baseline learned from B it is not.
The same detector code, run offline on A+B+C and on B+C, confirms both outcomes.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from reliability_harness import (
    FAST_DETECTOR,
    Stories,
    doc_id,
    event_time_origin,
    read_topic,
    spike,
    steady_stream,
)

from finsentry.alerting.detector import Detector, DetectorConfig
from finsentry.alerting.observations import fan_out
from finsentry.records import ScoredDocument

pytestmark = [pytest.mark.reliability, pytest.mark.drill]


def load_drill():
    """benchmarks/kill_restart.py: reading committed offsets and counting the store's upserts."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "kill_restart.py"
    spec = importlib.util.spec_from_file_location("finsentry_kill_restart", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


drill = load_drill()


def detector_state(pipeline, key: str) -> dict | None:
    """The latest value of one scope in the detector's changelog topic."""
    topic = f"{pipeline.settings.app_id}-finsentry-detector-state-changelog"
    latest = None
    for raw_key, value in read_topic(pipeline.broker.address, topic):
        if raw_key is not None and raw_key.decode(errors="replace").strip('"') == key:
            latest = value
    return None if latest is None else json.loads(latest)


def offline_alerts(settings, records: list[ScoredDocument]) -> list:
    """The worker's detector code with a dict for state, fed in event-time order."""
    detector = Detector(DetectorConfig.from_settings(settings), {}, record_metrics=False)
    return [
        alert
        for record in records
        for obs in fan_out(record)
        for alert in detector.observe(obs)
        if alert.scope == "global"
    ]


def test_kill_9_mid_stream_keeps_every_document_once_and_restores_baselines(pipeline):
    p = pipeline(**FAST_DETECTOR)
    stories = Stories()
    t0 = event_time_origin()
    phase_a = steady_stream(stories, t0, range(12))  # 60 stories in minutes 0-11, 1 in 5 negative
    phase_b = [
        stories.make("negative", t0 + timedelta(minutes=1 + i // 6, seconds=1 + 9 * (i % 6))) for i in range(36)
    ]  # minutes 1-6: closed once A has been observed
    phase_c = spike(stories, t0, range(12, 14))  # 24 negative stories in minutes 12-13
    last_a = max(d.published_at for d in phase_a).timestamp()

    p.start_worker()
    db = p.workdir / "store.db"
    drill.install_upsert_log(db)  # the worker created the schema before it reported ready
    p.publish(phase_a)
    ids_a = {doc_id(d) for d in phase_a}
    p.wait(lambda: ids_a <= set(p.export_ids()), 300, "phase A stored")
    state = p.wait(
        lambda: (s := detector_state(p, "global:all")) and s["watermark"] >= last_a and s,
        180,
        "the detector's changelog to show phase A observed (the clock passes the last "
        "document once the partitions without later ones are idle)",
    )
    assert state["baseline"]["buckets"] >= FAST_DETECTOR["alert_min_baseline_buckets"]

    # Phase B, paced, and the worker killed while it is being stored.
    publisher = threading.Thread(target=p.publish, args=(phase_b, 0.2))
    publisher.start()
    ids_b = {doc_id(d) for d in phase_b}

    scored_topic = p.settings.topic("docs.scored")

    def stored_ahead_of_commits() -> bool:
        """More documents stored than docs.scored records acknowledged (one record per document
        until a re-delivery): the worker holds stored records it has not acknowledged."""
        committed = drill.committed_offsets(p.broker.address, p.settings.app_id)
        return drill.stored_count(db) > sum(o for tp, o in committed.items() if tp.topic == scored_topic)

    p.wait(stored_ahead_of_commits, 120, "phase B documents stored but not yet acknowledged", interval=0.1)
    p.workers[-1].kill()
    at_kill = drill.settled_snapshot(p.broker.address, p.settings.app_id, p.settings.topic, db)
    held = at_kill.unacknowledged_stored
    publisher.join()
    # The kill landed while the worker held records it had not acknowledged: they must come back.
    assert held, "the kill must land while stored documents are not yet acknowledged"
    assert len(ids_b & at_kill.stored) < len(phase_b), "the kill must land mid-stream"

    p.start_worker()
    p.wait(lambda: ids_b <= set(p.export_ids()), 300, "phase B stored after the restart")
    p.publish(phase_c)
    ids_c = {doc_id(d) for d in phase_c}
    p.wait(lambda: ids_c <= set(p.export_ids()), 300, "phase C stored")
    alerts = p.wait(
        lambda: [a for a in p.alerts() if a["scope"] == "global"],
        180,
        "a global alert on the burst (it needs the baseline from before the kill)",
    )

    # Every document, no other; counted by the store's upserts, so a loss cannot hide behind
    # the unique id: each id upserted at least once, those held at the kill at least twice.
    exported = p.export_ids()
    assert set(exported) == ids_a | ids_b | ids_c
    counted = drill.upserts(db)
    assert set(counted) == ids_a | ids_b | ids_c
    assert all(counted[doc_id] >= 2 for doc_id in held), {i: counted[i] for i in held}
    stored = p.stored()
    assert p.dead_letters() == []

    # The premise: the model saw the stream as built (A mostly positive, B and C negative).
    def negative_share(ids):
        return sum(stored[i]["sentiment"]["label"] == "negative" for i in ids) / len(ids)

    assert negative_share(ids_a) < 0.35 and negative_share(ids_b) > 0.8 and negative_share(ids_c) > 0.8

    # The alert was measured against the restored baseline, not one learned from B.
    first = min(alerts, key=lambda a: a["update"])
    assert first["baseline"] < 0.5, first

    # The same detector offline: with A's baseline the burst alerts, without it it does not.
    def records(ids, order):
        fields = ScoredDocument.model_fields  # the stored form adds stored_at
        return [
            ScoredDocument.model_validate({k: v for k, v in stored[doc_id(d)].items() if k in fields})
            for d in order
            if doc_id(d) in ids
        ]

    assert offline_alerts(p.settings, records(ids_a, phase_a) + records(ids_b, phase_b) + records(ids_c, phase_c))
    assert offline_alerts(p.settings, records(ids_b, phase_b) + records(ids_c, phase_c)) == []
