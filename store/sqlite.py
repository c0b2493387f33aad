"""The embedded store: one SQLite file in WAL mode, FTS5 for full text.

The worker writes while the web page (same process) and `finsentry store ...` (another
process) read. WAL lets readers run beside the one writer; every call runs in a thread
off the event loop, the writes on one thread with one connection (SQLite has one writer
anyway), the reads on a small pool with a connection per thread. A write lock held too
long by another process surfaces as `StoreUnavailable` after the busy timeout, like an
Elasticsearch outage, so the caller retries instead of dropping the batch.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence, TypeVar
from urllib.parse import quote

from finsentry.records import Alert, Label, ScoredDocument
from finsentry.store.base import (
    AggregateQuery,
    Bucket,
    ReadOnlyStore,
    Rejected,
    SearchQuery,
    Store,
    StoreMissing,
    StoreUnavailable,
    UpsertResult,
)
from finsentry.store.shape import bucket_start, day_start, encode, label_id, search_terms, stored_document
from finsentry.store.sqlite_schema import SCHEMA, SCHEMA_VERSION, UPSERT_ALERT, UPSERT_DOCUMENT, UPSERT_LABEL

T = TypeVar("T")

# Errors of the environment, not of the statement: the store is unavailable, retry later.
_TRANSIENT = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_FULL",
    "SQLITE_IOERR",
    "SQLITE_CANTOPEN",
    "SQLITE_READONLY",
    "SQLITE_PROTOCOL",
)
_COLUMNS = "d.title, d.text, d.body"
_EXPORT_PAGE = 500


def _transient(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith(_TRANSIENT) or "locked" in str(exc)


def _fetchall(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(sql, params).fetchall()


def _row_to_doc(row: tuple[Any, ...]) -> dict[str, Any]:
    title, text, body = row
    doc: dict[str, Any] = json.loads(body)
    doc["title"] = title
    doc["text"] = text
    return doc


def _filters(query: SearchQuery | None) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if query is None:
        return clauses, params
    if query.text is not None:
        terms = search_terms(query.text)
        if not terms:
            clauses.append("0")  # no words to look for: nothing matches (as on Elasticsearch)
        else:
            # Each word quoted: user input never reaches FTS5's query syntax.
            match = " ".join(f'"{t[:-1]}"*' if t.endswith("*") else f'"{t}"' for t in terms)
            clauses.append("d.rowid IN (SELECT rowid FROM documents_fts WHERE documents_fts MATCH ?)")
            params.append(match)
    if query.since is not None:
        clauses.append("d.published_at >= ?")
        params.append(query.since.timestamp())
    if query.until is not None:
        clauses.append("d.published_at < ?")
        params.append(query.until.timestamp())
    for column, value in (
        ("source", query.source),
        ("kind", query.kind),
        ("topic", query.topic),
        ("sentiment", query.sentiment),
    ):
        if value is not None:
            clauses.append(f"d.{column} = ?")
            params.append(value)
    if query.entity is not None:
        clauses.append("d.id IN (SELECT doc_id FROM document_entities WHERE entity = ?)")
        params.append(query.entity)
    return clauses, params


def _where(clauses: list[str]) -> str:
    return f"WHERE {' AND '.join(clauses)}" if clauses else ""


class SqliteStore(Store):
    def __init__(self, path: str | Path, busy_timeout_s: float = 10.0, read_threads: int = 2, read_only: bool = False):
        self.path = Path(path)
        self.read_only = read_only
        self.url = f"sqlite:///{self.path}"
        self._busy_timeout_s = busy_timeout_s
        self._read_threads = read_threads
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writer: ThreadPoolExecutor | None = None
        self._readers: ThreadPoolExecutor | None = None

    # --- connections and threads --------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # check_same_thread=False only so close() can close it; each stays on its thread.
            target, uri = (
                (f"file:{quote(str(self.path.resolve()))}?mode=ro", True) if self.read_only else (self.path, False)
            )
            conn = sqlite3.connect(
                target, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False, uri=uri
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
            conn.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; WAL keeps it consistent
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    async def _run(self, pool: ThreadPoolExecutor | None, fn: Callable[..., T], *args: Any) -> T:
        if pool is None:
            raise RuntimeError("the store is not open; call open() first")

        def call() -> T:
            try:
                return fn(self._connection(), *args)
            except sqlite3.Error as exc:
                if _transient(exc):
                    raise StoreUnavailable(f"sqlite {self.path}: {exc}") from exc
                raise

        return await asyncio.get_running_loop().run_in_executor(pool, call)

    def _write(self, fn: Callable[..., T], *args: Any) -> Awaitable[T]:
        if self.read_only:
            raise ReadOnlyStore(f"{self.url} is open for reading only")
        return self._run(self._writer, fn, *args)

    def _read(self, fn: Callable[..., T], *args: Any) -> Awaitable[T]:
        return self._run(self._readers, fn, *args)

    async def open(self) -> None:
        if self._writer is not None:
            return
        if self.read_only:
            if not self.path.is_file():
                raise StoreMissing(f"no SQLite store at {self.path} (check --store or FINSENTRY_STORE)")
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-unused")  # marks it open
            self._readers = ThreadPoolExecutor(self._read_threads, thread_name_prefix="sqlite-read")
            try:
                await self._read(_check_schema, self.path)
            except BaseException:
                await self.close()
                raise
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-write")
        self._readers = ThreadPoolExecutor(self._read_threads, thread_name_prefix="sqlite-read")
        await self._write(_create_schema)

    async def close(self) -> None:
        pools, self._writer, self._readers = (self._writer, self._readers), None, None
        for pool in pools:
            if pool is not None:
                pool.shutdown(wait=True)
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    # --- documents ----------------------------------------------------------------------

    async def upsert_many(self, records: Sequence[ScoredDocument]) -> UpsertResult:
        return await self._write(_upsert_documents, list(records))

    async def get(self, doc_id: str) -> dict[str, Any] | None:
        def get(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute(f"SELECT {_COLUMNS} FROM documents d WHERE d.id = ?", (doc_id,)).fetchone()
            return None if row is None else _row_to_doc(row)

        return await self._read(get)

    async def count(self, query: SearchQuery | None = None) -> int:
        clauses, params = _filters(query)
        sql = f"SELECT COUNT(*) FROM documents d {_where(clauses)}"
        return int(await self._read(lambda conn: conn.execute(sql, params).fetchone()[0]))

    async def search(self, query: SearchQuery) -> list[dict[str, Any]]:
        clauses, params = _filters(query)
        order = (
            "d.score ASC, d.published_at DESC, d.id ASC" if query.sort == "score" else "d.published_at DESC, d.id ASC"
        )
        sql = f"SELECT {_COLUMNS} FROM documents d {_where(clauses)} ORDER BY {order} LIMIT ?"
        rows = await self._read(_fetchall, sql, [*params, query.limit])
        return [_row_to_doc(row) for row in rows]

    async def export(self, query: SearchQuery | None = None) -> AsyncIterator[dict[str, Any]]:
        clauses, params = _filters(query)
        after: tuple[float, str] | None = None
        while True:
            page_clauses, page_params = list(clauses), list(params)
            if after is not None:  # keyset paging: stable and cheap however deep the export goes
                page_clauses.append("(d.published_at, d.id) > (?, ?)")
                page_params += after
            sql = (
                f"SELECT {_COLUMNS}, d.published_at, d.id FROM documents d {_where(page_clauses)} "
                f"ORDER BY d.published_at, d.id LIMIT {_EXPORT_PAGE}"
            )
            rows = await self._read(_fetchall, sql, page_params)
            for row in rows:
                yield _row_to_doc(row[:3])
            if len(rows) < _EXPORT_PAGE:
                return
            after = (rows[-1][3], rows[-1][4])

    async def aggregate(self, query: AggregateQuery) -> list[Bucket]:
        key, join = {
            "topic": ("d.topic", ""),
            "entity": ("e.entity", "JOIN document_entities e ON e.doc_id = d.id"),
            "none": ("'all'", ""),
        }[query.by]
        clauses, params = _filters(SearchQuery(since=query.since, until=query.until))
        if not query.count_duplicates:
            clauses.append("d.dup_of IS NULL")
        if query.keys is not None and query.by != "none":
            clauses.append(f"{key} IN ({', '.join('?' * len(query.keys))})" if query.keys else "0")
            params += list(query.keys)
        interval = int(query.interval_s)
        sql = (
            f"SELECT {key} AS k, CAST(d.published_at AS INTEGER) / {interval} AS b, COUNT(*), "
            f"AVG(d.score), SUM(d.sentiment = 'negative') FROM documents d {join} {_where(clauses)} "
            f"GROUP BY k, b ORDER BY k, b"
        )
        rows = await self._read(_fetchall, sql, params)
        return [
            Bucket(key=k, start=bucket_start(b * interval, interval), count=n, mean_score=mean, negative_share=neg / n)
            for k, b, n, mean, neg in rows
        ]

    async def prune(self, before: datetime) -> int:
        cutoff = day_start(before).timestamp()

        def prune(conn: sqlite3.Connection) -> int:
            with _transaction(conn):
                conn.execute(
                    "DELETE FROM document_entities WHERE doc_id IN (SELECT id FROM documents WHERE published_at < ?)",
                    (cutoff,),
                )
                return conn.execute("DELETE FROM documents WHERE published_at < ?", (cutoff,)).rowcount

        return await self._write(prune)

    async def prune_plan(self, before: datetime) -> list[tuple[str, int]]:
        sql = (
            "SELECT strftime('%Y-%m-%d', CAST(published_at AS INTEGER), 'unixepoch') AS day, COUNT(*) "
            "FROM documents WHERE published_at < ? GROUP BY day ORDER BY day"
        )
        rows = await self._read(_fetchall, sql, [day_start(before).timestamp()])
        return [(day, n) for day, n in rows]

    async def count_alerts_before(self, before: datetime) -> int:
        return int(
            await self._read(
                lambda conn: conn.execute(
                    "SELECT COUNT(*) FROM alerts WHERE updated_at < ?", (before.timestamp(),)
                ).fetchone()[0]
            )
        )

    async def prune_alerts(self, before: datetime) -> int:
        cutoff = before.timestamp()
        return int(
            await self._write(lambda conn: conn.execute("DELETE FROM alerts WHERE updated_at < ?", (cutoff,)).rowcount)
        )

    # --- alerts and labels --------------------------------------------------------------

    async def put_alert(self, alert: Alert) -> None:
        body = encode(alert.model_dump(mode="json")).decode()
        row = (alert.id, alert.updated_at.timestamp(), alert.update, body)
        await self._write(lambda conn: conn.execute(UPSERT_ALERT, row))

    async def alerts(self, since: datetime | None = None, limit: int = 100) -> list[dict[str, Any]]:
        where, params = ("WHERE updated_at >= ?", [since.timestamp()]) if since is not None else ("", [])
        sql = f"SELECT body FROM alerts {where} ORDER BY updated_at DESC, id ASC LIMIT ?"
        rows = await self._read(_fetchall, sql, [*params, limit])
        return [json.loads(body) for (body,) in rows]

    async def _write_label(self, label: Label) -> None:
        row = (label_id(label), label.doc_id, label.at.timestamp(), encode(label.model_dump(mode="json")).decode())
        await self._write(lambda conn: conn.execute(UPSERT_LABEL, row))

    async def labels(self, limit: int | None = None) -> list[Label]:
        sql = "SELECT body FROM labels ORDER BY at DESC, id ASC" + ("" if limit is None else " LIMIT ?")
        params = [] if limit is None else [limit]
        rows = await self._read(_fetchall, sql, params)
        return [Label.model_validate_json(body) for (body,) in rows]


class _transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any error (the connection is in autocommit)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")  # take the write lock now, not half-way through

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def _create_schema(conn: sqlite3.Connection) -> None:
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode.lower() != "wal":
        raise StoreUnavailable(f"sqlite could not switch to WAL mode (got {mode})")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"the database has schema version {version}, newer than this finsentry ({SCHEMA_VERSION})")
    with _transaction(conn):
        for statement in _statements(SCHEMA):  # not executescript: it would COMMIT on its own
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    """For reading: the file must hold a finsentry store this finsentry can read."""
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise StoreMissing(f"{path} is not a SQLite database ({exc})") from None
    if version == 0:
        raise StoreMissing(f"{path} holds no finsentry store (no schema)")
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"the database has schema version {version}, newer than this finsentry ({SCHEMA_VERSION})")


def _statements(script: str) -> list[str]:
    """Split a DDL script into statements, keeping trigger bodies whole."""
    out, current = [], []
    for line in script.splitlines():
        current.append(line)
        if sqlite3.complete_statement("\n".join(current)):
            statement = "\n".join(current).strip()
            if statement:
                out.append(statement)
            current = []
    return out


def _upsert_documents(conn: sqlite3.Connection, records: list[ScoredDocument]) -> UpsertResult:
    stored_at = datetime.now(timezone.utc)
    rows: dict[str, tuple[Any, ...]] = {}
    entities: dict[str, list[str]] = {}
    rejected: list[Rejected] = []
    for record in records:
        try:
            doc = stored_document(record, stored_at)
            encode(doc)  # title and text included: SQLite would fail on them the same way
        except ValueError as exc:
            rejected.append(Rejected(record.id, str(exc)))
            continue
        title, text = doc["title"], doc["text"]
        doc["title"] = doc["text"] = None  # stored in their columns; the keys keep the record's field order
        rows[record.id] = (
            record.id,
            record.published_at.timestamp(),
            record.source,
            record.kind,
            record.topic.label,
            record.sentiment.label,
            record.sentiment.score,
            record.dup_of,
            title,
            text,
            encode(doc).decode(),
        )
        entities[record.id] = sorted(set(record.entities))
    if rows:
        with _transaction(conn):
            conn.executemany(UPSERT_DOCUMENT, rows.values())
            conn.executemany("DELETE FROM document_entities WHERE doc_id = ?", ((i,) for i in rows))
            conn.executemany(
                "INSERT INTO document_entities (entity, doc_id) VALUES (?, ?)",
                ((e, i) for i, names in entities.items() for e in names),
            )
    return UpsertResult(stored=len(rows), rejected=rejected)
