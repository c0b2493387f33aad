"""The scrapers' persistent memory of what they already published (SQLite).

An item is identified by up to three keys — its URL, its GUID (or a review id), and a hash
of its normalised title + text — and counts as seen when any of them is known: a feed that
rewrites GUIDs or adds tracking parameters to links still matches on another key. Keys are
namespaced by source, because GUIDs are only unique within a feed; telling syndicated
copies from different sources apart is the pipeline's near-duplicate check, not this one.

Each key remembers when it was last listed; `prune` forgets keys by that, so an item a
source still lists is never forgotten and republished, however old it is.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

_SPACE = re.compile(r"\s+")


def content_hash(title: str | None, text: str) -> str:
    normalised = _SPACE.sub(" ", f"{title or ''}\n{text}").strip().lower()
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def identity_keys(
    source: str, *, url: str | None = None, guid: str | None = None, title: str | None = None, text: str | None = None
) -> tuple[str, ...]:
    keys = []
    if url:
        keys.append(f"url:{url}")
    if guid:
        keys.append(f"guid:{guid}")
    if text:
        keys.append(f"hash:{content_hash(title, text)}")
    return tuple(f"{source}\x1f{key}" for key in keys)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()[:16]  # fixed width; URLs can be long


class SeenSet:
    """Safe to share between threads (one connection behind a lock)."""

    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.time):
        path = Path(path)
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS seen (key BLOB PRIMARY KEY, source TEXT NOT NULL, "
            "first_seen REAL NOT NULL, last_seen REAL NOT NULL) WITHOUT ROWID"
        )
        self._add_last_seen()

    def _add_last_seen(self) -> None:
        """Databases written before last_seen existed get it set to now, not to first_seen:
        the prune at start-up would otherwise forget items their sources still list."""
        self._db.execute("BEGIN IMMEDIATE")  # one process migrates, any other waits and sees it done
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(seen)")}
        if "last_seen" not in columns:
            self._db.execute("ALTER TABLE seen ADD COLUMN last_seen REAL NOT NULL DEFAULT 0")
            self._db.execute("UPDATE seen SET last_seen = ?", (self._clock(),))
        self._db.execute("COMMIT")

    def seen(self, keys: Iterable[str]) -> bool:
        """Whether any key is known; the known ones are marked as listed now."""
        digests = [_digest(k) for k in keys]
        if not digests:
            return False
        marks = ",".join("?" * len(digests))
        with self._lock:
            cur = self._db.execute(f"UPDATE seen SET last_seen = ? WHERE key IN ({marks})", [self._clock(), *digests])
        return cur.rowcount > 0

    def add(self, keys: Iterable[str], source: str) -> None:
        now = self._clock()
        rows = [(_digest(k), source, now, now) for k in keys]
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO seen (key, source, first_seen, last_seen) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET last_seen = excluded.last_seen",
                rows,
            )
            self._db.execute("COMMIT")

    def count(self, source: str | None = None) -> int:
        with self._lock:
            if source is None:
                return self._db.execute("SELECT COUNT(*) FROM seen").fetchone()[0]
            return self._db.execute("SELECT COUNT(*) FROM seen WHERE source = ?", (source,)).fetchone()[0]

    def prune(self, older_than_s: float) -> int:
        """Forget keys last listed longer ago than this (feeds stop listing old items)."""
        with self._lock:
            cur = self._db.execute("DELETE FROM seen WHERE last_seen < ?", (self._clock() - older_than_s,))
            return cur.rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "SeenSet":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
