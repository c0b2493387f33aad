"""A persistent outbox in front of the notifiers: a notifier that is down loses nothing.

`enqueue(alert)` writes one row per notifier that wants the update, keyed by (notifier,
alert id, status, update): an alert delivered twice by Kafka is queued once. One delivery
task per notifier sends its rows in order, with exponential back-off after a failure and
at most `max_per_minute` sends per minute, so a slow or broken receiver holds up nobody
else. A row is marked sent in the same SQLite database right after the receiver accepted
it; after a restart every row not marked sent is sent again, none that was.

When a newer update of the same episode is queued for a notifier, older rows still
waiting for it are superseded: a receiver that was down hears the episode's latest state,
not a backlog of stale ones.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence, TypeVar

from finsentry import metrics
from finsentry.alerting.notifiers import NotificationRejected, Notifier, notifiers_from_settings
from finsentry.records import Alert
from finsentry.settings import Settings

log = logging.getLogger("finsentry.outbox")
T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    notifier TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    status TEXT NOT NULL,
    update_no INTEGER NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,               -- pending | sent | superseded | rejected
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    created_at REAL NOT NULL,
    sent_at REAL,
    last_error TEXT,
    UNIQUE (notifier, alert_id, status, update_no)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (notifier, state, next_attempt, seq);
"""


class Outbox:
    def __init__(
        self,
        path: Path | str,
        notifiers: Sequence[Notifier],
        max_per_minute: int = 30,
        retry_min_s: float = 1.0,
        retry_max_s: float = 300.0,
        clock: Callable[[], float] = time.time,
    ):
        if max_per_minute < 1:
            raise ValueError(f"notify_max_per_minute must be at least 1, got {max_per_minute}")
        names = [n.name for n in notifiers]
        if len(set(names)) != len(names):
            raise ValueError(f"two notifiers share a name: {names}")
        self.path = Path(path)
        self.notifiers = {n.name: n for n in notifiers}
        self.max_per_minute = max_per_minute
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.clock = clock
        self._db = ThreadPoolExecutor(1, thread_name_prefix="outbox-db")  # one connection, one thread
        self._conn: sqlite3.Connection | None = None
        self._wake: dict[str, asyncio.Event] = {}
        self._tasks: list[asyncio.Task] = []
        self._sent_at: dict[str, deque[float]] = {name: deque() for name in self.notifiers}

    @classmethod
    def from_settings(cls, settings: Settings, notifiers: Sequence[Notifier] | None = None) -> "Outbox":
        return cls(
            settings.outbox_path,
            notifiers if notifiers is not None else notifiers_from_settings(settings),
            max_per_minute=settings.notify_max_per_minute,
            retry_min_s=settings.notify_retry_min_s,
            retry_max_s=settings.notify_retry_max_s,
        )

    # --- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        """Open the database; rows left pending by an earlier process become due at once."""

        def _open(conn: None) -> None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # a row marked sent stays sent, even on power loss
            conn.executescript(SCHEMA)
            conn.execute("UPDATE outbox SET next_attempt = ? WHERE state = 'pending'", (self.clock(),))
            self._conn = conn

        await self._run(_open)
        orphans = await self._run(
            lambda conn: conn.execute(
                "SELECT notifier, COUNT(*) FROM outbox WHERE state = 'pending' GROUP BY notifier"
            ).fetchall()
        )
        for name, count in orphans:
            if name not in self.notifiers:
                log.warning(
                    "outbox holds %d pending notification(s) for notifier %s, which is not configured;"
                    " they wait until it is",
                    count,
                    name,
                )
        await self._refresh_gauge()

    async def start(self) -> None:
        """Open (if needed) and start one delivery task per notifier."""
        if self._conn is None:
            await self.open()
        for name in self.notifiers:
            self._wake[name] = asyncio.Event()
            self._tasks.append(asyncio.create_task(self._deliver_loop(name), name=f"outbox:{name}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._conn is not None:
            await self._run(lambda conn: conn.close())
            self._conn = None
        self._db.shutdown(wait=True)

    async def __aenter__(self) -> "Outbox":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # --- queue -----------------------------------------------------------------------------
    async def enqueue(self, alert: Alert) -> int:
        """Queue `alert` for every notifier that wants it; returns the rows added (0 when
        this update was queued before)."""
        if self._conn is None:
            await self.open()
        payload = alert.model_dump_json()
        wanted = [name for name, n in self.notifiers.items() if n.accepts(alert)]
        now = self.clock()

        def _insert(conn: sqlite3.Connection) -> int:
            added = 0
            conn.execute("BEGIN IMMEDIATE")
            try:
                for name in wanted:
                    newer = conn.execute(
                        "SELECT 1 FROM outbox WHERE notifier = ? AND alert_id = ? AND update_no > ? LIMIT 1",
                        (name, alert.id, alert.update),
                    ).fetchone()
                    cur = conn.execute(
                        "INSERT OR IGNORE INTO outbox (notifier, alert_id, status, update_no, payload, state, "
                        "next_attempt, created_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            name,
                            alert.id,
                            alert.status,
                            alert.update,
                            payload,
                            "superseded" if newer else "pending",
                            now,
                            now,
                        ),
                    )
                    if cur.rowcount and not newer:
                        added += 1
                        conn.execute(
                            "UPDATE outbox SET state = 'superseded' WHERE notifier = ? AND alert_id = ?"
                            " AND update_no < ? AND state = 'pending'",
                            (name, alert.id, alert.update),
                        )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return added

        added = await self._run(_insert)
        for name in wanted:
            if name in self._wake:
                self._wake[name].set()
        await self._refresh_gauge()
        return added

    async def pending(self, notifier: str | None = None) -> int:
        """Rows waiting for `notifier`, or for any configured notifier."""
        names = [notifier] if notifier is not None else list(self.notifiers)
        marks = ",".join("?" * len(names))
        sql = f"SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND notifier IN ({marks})"
        return (await self._run(lambda conn: conn.execute(sql, names).fetchone()))[0]

    async def rows(self) -> list[dict]:
        """Every row, oldest first (for inspection and tests)."""

        def _rows(conn: sqlite3.Connection) -> list[dict]:
            cur = conn.execute(
                "SELECT seq, notifier, alert_id, status, update_no, state, attempts, sent_at, last_error"
                " FROM outbox ORDER BY seq"
            )
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, row)) for row in cur.fetchall()]

        return await self._run(_rows)

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is pending; False if `timeout` seconds passed first."""
        deadline = time.monotonic() + timeout
        while await self.pending():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    # --- delivery --------------------------------------------------------------------------
    async def _deliver_loop(self, name: str) -> None:
        wake = self._wake[name]
        while True:
            try:
                delivered = await self._deliver_next(name)
            except Exception:  # the outbox itself failed (disk full...): say so, keep trying
                log.exception("outbox delivery loop error notifier=%s", name)
                delivered = False
                await asyncio.sleep(self.retry_min_s)
            if delivered:
                continue
            wake.clear()
            wait = await self._seconds_to_next(name)
            if wait is None or wait > 0:
                try:
                    await asyncio.wait_for(wake.wait(), timeout=wait)
                except asyncio.TimeoutError:
                    pass

    async def _deliver_next(self, name: str) -> bool:
        """Send the oldest due row of `name`; False when nothing is due."""
        row = await self._next_due(name)
        if row is None:
            return False
        seq, attempts, payload = row
        try:
            alert = Alert.model_validate_json(payload)
        except ValueError as exc:  # a row this version cannot read: retrying will not help
            metrics.NOTIFICATIONS.labels(notifier=name, result="rejected").inc()
            log.error("unreadable outbox row notifier=%s seq=%s: %s", name, seq, exc)
            await self._mark(seq, "rejected", attempts + 1, f"unreadable: {exc}")
            return True
        await self._respect_rate_limit(name)
        try:
            await self.notifiers[name].send(alert)
        except NotificationRejected as exc:
            metrics.NOTIFICATIONS.labels(notifier=name, result="rejected").inc()
            log.error("notification rejected notifier=%s seq=%s: %s", name, seq, exc)
            await self._mark(seq, "rejected", attempts + 1, str(exc))
        except Exception as exc:  # transient by default: the receiver may come back
            metrics.NOTIFICATIONS.labels(notifier=name, result="failed").inc()
            delay = min(self.retry_max_s, self.retry_min_s * 2**attempts)
            log.warning(
                "notification failed notifier=%s seq=%s attempt=%d retry_in=%.1fs: %s",
                name,
                seq,
                attempts + 1,
                delay,
                exc,
            )
            await self._retry_later(seq, attempts + 1, delay, f"{type(exc).__name__}: {exc}")
        else:
            metrics.NOTIFICATIONS.labels(notifier=name, result="sent").inc()
            self._sent_at[name].append(time.monotonic())
            await self._mark(seq, "sent", attempts + 1, None)
            log.info(
                "notification sent notifier=%s alert=%s update=%s status=%s", name, alert.id, alert.update, alert.status
            )
        await self._refresh_gauge()
        return True

    async def _respect_rate_limit(self, name: str) -> None:
        sent = self._sent_at[name]
        while True:
            now = time.monotonic()
            while sent and now - sent[0] >= 60.0:
                sent.popleft()
            if len(sent) < self.max_per_minute:
                return
            await asyncio.sleep(60.0 - (now - sent[0]))

    async def _next_due(self, name: str) -> tuple[int, int, str] | None:
        now = self.clock()
        return await self._run(
            lambda conn: conn.execute(
                "SELECT seq, attempts, payload FROM outbox WHERE notifier = ? AND state = 'pending' AND "
                "next_attempt <= ?"
                " ORDER BY seq LIMIT 1",
                (name, now),
            ).fetchone()
        )

    async def _seconds_to_next(self, name: str) -> float | None:
        row = await self._run(
            lambda conn: conn.execute(
                "SELECT MIN(next_attempt) FROM outbox WHERE notifier = ? AND state = 'pending'", (name,)
            ).fetchone()
        )
        return None if row[0] is None else max(0.0, row[0] - self.clock())

    async def _mark(self, seq: int, state: str, attempts: int, error: str | None) -> None:
        now = self.clock()
        await self._run(
            lambda conn: conn.execute(
                "UPDATE outbox SET state = ?, attempts = ?, sent_at = ?, last_error = ? WHERE seq = ?",
                (state, attempts, now if state == "sent" else None, error, seq),
            )
        )

    async def _retry_later(self, seq: int, attempts: int, delay: float, error: str) -> None:
        due = self.clock() + delay
        await self._run(
            lambda conn: conn.execute(
                "UPDATE outbox SET attempts = ?, next_attempt = ?, last_error = ? WHERE seq = ?",
                (attempts, due, error[:500], seq),
            )
        )

    async def _refresh_gauge(self) -> None:
        metrics.OUTBOX_PENDING.set(await self.pending())

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, self._conn)
