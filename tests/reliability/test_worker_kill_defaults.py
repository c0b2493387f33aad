"""kill -9 of a worker holding a backlog, with the session and heartbeat settings users get,
then a restart with the same settings: all 3,000 documents are stored, each once, and the
committed offsets reach the end of every input topic (none stays stuck below a record).

The kill must matter: the test shows that the store held documents whose records the
group had not acknowledged when the worker died, and that they were upserted again after
the restart (the re-delivery at-least-once promises). The store's upserts are counted by
a trigger, so a lost document (no upsert) or a missing re-delivery fails the test even
though SQLite's UNIQUE id alone would always show one row per id.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest

from finsentry.settings import Settings


def load_drill():
    """benchmarks/kill_restart.py: the drill's helpers, shared with the command users run."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "kill_restart.py"
    spec = importlib.util.spec_from_file_location("finsentry_kill_restart", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


drill = load_drill()
KillSnapshot, all_committed, install_upsert_log = drill.KillSnapshot, drill.all_committed, drill.install_upsert_log
sample_documents, stored_count, stored_ids, upserts = (
    drill.sample_documents,
    drill.stored_count,
    drill.stored_ids,
    drill.upserts,
)

pytestmark = pytest.mark.reliability

DOCUMENTS = 3000
KILL_AT = 600
# What a user gets: no shortened group timeouts.
DEFAULT_GROUP_SETTINGS = {
    name: Settings.model_fields[name].default for name in ("broker_session_timeout_s", "broker_heartbeat_s")
}


def test_kill_9_with_a_backlog_under_default_settings_stores_every_document_once(pipeline):
    assert DEFAULT_GROUP_SETTINGS == {"broker_session_timeout_s": 30.0, "broker_heartbeat_s": 3.0}
    p = pipeline(**DEFAULT_GROUP_SETTINGS)
    db = p.workdir / "store.db"
    docs = sample_documents(DOCUMENTS)
    ids = {d.id for d in docs}
    address, group = p.broker.address, p.settings.app_id

    first = p.start_worker()
    install_upsert_log(db)  # the worker created the schema before it reported ready
    p.publish(docs)  # the whole backlog at once, as `finsentry ingest` does
    p.wait(lambda: stored_count(db) >= KILL_AT, 600, f"{KILL_AT} documents stored", interval=0.2)
    first.kill()  # SIGKILL to the process group: no commit, no leave-group
    at_kill = drill.settled_snapshot(address, group, p.settings.topic, db)

    # The kill landed mid-batch: the store holds documents the group has not acknowledged.
    assert at_kill.unacknowledged_stored, (
        f"the kill must land while stored documents are not yet acknowledged (uncommitted: {at_kill.uncommitted})"
    )
    assert at_kill.uncommitted["docs.valid"] > 0
    assert len(at_kill.stored) < DOCUMENTS

    started = time.monotonic()
    second = p.start_worker()
    wait_while_progressing(p, lambda: stored_count(db), DOCUMENTS, stall_s=300, limit_s=2400)
    p.wait(
        lambda: not any(all_committed(address, group, p.settings.topic).values()),
        120,
        "the group's committed offsets to reach the end of docs.raw, docs.valid and docs.scored",
    )
    drained_s = time.monotonic() - started

    counted = upserts(db)
    assert stored_ids(db) == ids, "every document stored, no other"
    assert set(counted) == ids and min(counted.values()) >= 1
    redelivered = {doc_id for doc_id in at_kill.unacknowledged_stored if counted[doc_id] >= 2}
    assert redelivered == at_kill.unacknowledged_stored, "documents unacknowledged at the kill were re-delivered"
    assert sum(counted.values()) > len(ids)
    assert p.dead_letters() == []

    p.wait(lambda: health(second.web_port)[0] == 200, 60, "/healthz to answer ready once the backlog is done")
    print(
        f"stored {DOCUMENTS} after the restart in {drained_s:.0f}s; upserts {sum(counted.values())}, "
        f"re-delivered {len(redelivered)} of {len(at_kill.stored)} stored at the kill"
    )


def wait_while_progressing(p, count, target: int, stall_s: float, limit_s: float) -> None:
    """Wait until count() reaches target; fail once it has not moved for stall_s (a loaded
    machine is slow, a stuck worker is stuck) or after limit_s in all."""
    last_change = time.monotonic()
    last = -1

    def done() -> bool:
        nonlocal last, last_change
        now, value = time.monotonic(), count()
        if value != last:
            last, last_change = value, now
        if now - last_change > stall_s:
            raise AssertionError(
                f"stored documents stuck at {value} of {target} for {stall_s:.0f}s:\n{p.workers[-1].tail()}"
            )
        return value >= target

    p.wait(done, limit_s, f"all {target} documents stored after the restart", interval=1.0)


def health(port: int) -> tuple[int, dict]:
    import json
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
