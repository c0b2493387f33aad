"""The notification outbox: a receiver that is down loses nothing and, once back, gets
each update once; a restarted outbox process re-sends what was pending and nothing that
was sent; updates are queued once however often they arrive."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

from alerting_helpers import Receiver, eventually, make_alert

from finsentry.alerting.notifiers import AlertmanagerNotifier, AppriseNotifier
from finsentry.alerting.outbox import Outbox

PROCESS = Path(__file__).with_name("outbox_process.py")


def fast_outbox(path: Path, notifiers, **kw) -> Outbox:
    return Outbox(path, notifiers, retry_min_s=0.05, retry_max_s=0.2, **kw)


async def test_a_receiver_down_while_the_alert_fires_gets_it_once_when_back(tmp_path):
    receiver = Receiver()  # not started: the port refuses connections
    outbox = fast_outbox(tmp_path / "outbox.db", [AppriseNotifier(receiver.url)])
    async with outbox:
        assert await outbox.enqueue(make_alert()) == 1

        async def failed_twice():
            return (await outbox.rows())[0]["attempts"] >= 2

        await eventually(failed_twice, what="two failed attempts")
        assert await outbox.pending() == 1 and receiver.received == []
        await receiver.start()
        try:
            assert await outbox.wait_idle(timeout=15)
            await asyncio.sleep(0.5)  # time enough for a wrong second delivery
            assert len(receiver.received) == 1
            [row] = await outbox.rows()
            assert row["state"] == "sent" and row["attempts"] >= 3 and row["sent_at"] is not None
        finally:
            await receiver.stop()


async def test_an_update_is_queued_once_however_often_it_arrives(tmp_path):
    outbox = fast_outbox(tmp_path / "outbox.db", [AlertmanagerNotifier("http://127.0.0.1:1")])
    await outbox.open()
    try:
        alert = make_alert()
        assert await outbox.enqueue(alert) == 1
        assert await outbox.enqueue(alert) == 0  # the alerts topic re-delivered it
        assert await outbox.enqueue(alert.model_copy(update={"update": 1, "change": "updated"})) == 1
        rows = await outbox.rows()
        assert [(r["update_no"], r["state"]) for r in rows] == [(0, "superseded"), (1, "pending")]
        # An older update arriving after a newer one is kept for the record, never sent.
        assert await outbox.enqueue(alert.model_copy(update={"update": 0, "status": "firing", "id": alert.id})) == 0
        assert await outbox.pending() == 1
    finally:
        await outbox.stop()


async def test_each_notifier_gets_only_the_updates_it_wants(tmp_path):
    chat = AppriseNotifier("json://127.0.0.1:1/hook")
    outbox = fast_outbox(tmp_path / "outbox.db", [AlertmanagerNotifier("http://127.0.0.1:1"), chat])
    await outbox.open()
    try:
        alert = make_alert()
        await outbox.enqueue(alert)
        await outbox.enqueue(alert.model_copy(update={"update": 1, "change": "updated"}))
        rows = await outbox.rows()
        assert [(r["notifier"], r["update_no"], r["state"]) for r in rows] == [
            ("alertmanager", 0, "superseded"),
            (chat.name, 0, "pending"),
            ("alertmanager", 1, "pending"),
        ]
    finally:
        await outbox.stop()


async def test_the_rate_limit_holds_back_what_exceeds_it(tmp_path, receiver):
    outbox = fast_outbox(tmp_path / "outbox.db", [AppriseNotifier(receiver.url)], max_per_minute=2)
    async with outbox:
        for key in ("A", "B", "C"):
            await outbox.enqueue(make_alert(key))
        await eventually(lambda: len(receiver.received) >= 2, what="two deliveries")
        await asyncio.sleep(0.5)
        assert len(receiver.received) == 2 and await outbox.pending() == 1


def _states(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT alert_id, state FROM outbox").fetchall())


def _attempts(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT COALESCE(MIN(attempts), 0) FROM outbox").fetchone()[0]


async def _start(*args: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(sys.executable, str(PROCESS), *args, stdout=asyncio.subprocess.PIPE)
    assert (await asyncio.wait_for(proc.stdout.readline(), 60)).strip() == b"ready"
    return proc


async def _kill(proc: asyncio.subprocess.Process) -> None:
    proc.kill()  # SIGKILL: no chance to clean up, like a crash
    await proc.wait()


async def test_a_restarted_outbox_process_resends_pending_and_never_twice(tmp_path):
    db = tmp_path / "outbox.db"
    receiver = Receiver()
    files = []
    for key in ("Energy / Oil", "Macro"):
        path = tmp_path / f"{key.replace(' / ', '-')}.json"
        path.write_text(make_alert(key).model_dump_json())
        files.append(str(path))

    # 1. The receiver is down: the process queues both alerts, fails to send, and crashes.
    first = await _start(str(db), receiver.url, *files)
    try:
        await eventually(lambda: _attempts(db) >= 1, what="failed attempts")
    finally:
        await _kill(first)
    assert set(_states(db).values()) == {"pending"}

    # 2. The receiver is back; a new process delivers what was pending.
    await receiver.start()
    try:
        second = await _start(str(db), receiver.url)
        try:
            await eventually(lambda: set(_states(db).values()) == {"sent"}, what="delivery")
        finally:
            await _kill(second)
        assert sorted(hit["body"]["title"].split("'")[1] for hit in receiver.received) == ["Energy / Oil", "Macro"]

        # 3. Another restart, and the same alerts delivered again by the alerts topic: nothing is re-sent.
        third = await _start(str(db), receiver.url, *files)
        try:
            await asyncio.sleep(1.0)
        finally:
            await _kill(third)
        assert len(receiver.received) == 2
    finally:
        await receiver.stop()
