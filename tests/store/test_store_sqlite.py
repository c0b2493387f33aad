"""What only the embedded SQLite store has: WAL, a writer and readers at once, locks held by
another process, and the URL → store factory."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest
from store_helpers import scored, store_settings

from finsentry.store import open_store
from finsentry.store.base import AggregateQuery, SearchQuery, StoreUnavailable
from finsentry.store.elasticsearch import ElasticsearchStore
from finsentry.store.retry import write_with_retry
from finsentry.store.sqlite import SqliteStore


async def test_wal_mode_and_schema_on_disk(tmp_path):
    async with SqliteStore(tmp_path / "deep" / "dir" / "s.db") as store:
        await store.upsert_many([scored(1)])
    conn = sqlite3.connect(tmp_path / "deep" / "dir" / "s.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
    assert {"documents", "document_entities", "documents_fts", "alerts", "labels"} <= tables


async def test_readers_go_on_while_another_process_holds_the_write_lock(tmp_path):
    path = tmp_path / "s.db"
    async with SqliteStore(path, busy_timeout_s=0.2) as store:
        await store.upsert_many([scored(1)])
        other = sqlite3.connect(path, isolation_level=None)  # e.g. a CLI process writing
        other.execute("BEGIN IMMEDIATE")
        try:
            assert await store.count() == 1  # WAL: reading needs no lock
            with pytest.raises(StoreUnavailable, match="locked"):
                await store.upsert_many([scored(2)])
            writing = asyncio.create_task(
                write_with_retry(store, [scored(2)], initial_backoff_s=0.05, max_backoff_s=0.1)
            )
            await asyncio.sleep(0.5)
            assert not writing.done()  # waiting, not failing
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert (await asyncio.wait_for(writing, 10)).stored == 1
        assert await store.count() == 2


async def test_write_with_retry_gives_up_only_when_told_to_stop(tmp_path):
    path = tmp_path / "s.db"
    async with SqliteStore(path, busy_timeout_s=0.05) as store:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        attempts = []
        try:
            with pytest.raises(StoreUnavailable):
                await write_with_retry(
                    store,
                    [scored(1)],
                    initial_backoff_s=0.01,
                    should_stop=lambda: attempts.append(1) or len(attempts) >= 3,
                )
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert len(attempts) == 3 and await store.count() == 0


async def test_a_worker_writing_and_a_page_reading_the_same_file_at_once(tmp_path):
    path = tmp_path / "s.db"
    async with SqliteStore(path) as worker, SqliteStore(path) as page:

        async def write():
            for n in range(30):
                await worker.upsert_many([scored(n * 10 + i, entities=["XOM"]) for i in range(10)])
                await asyncio.sleep(0)

        async def read():
            seen = []
            while len(seen) < 2 or seen[-1] < 300:
                seen.append(await page.count())
                await page.search(SearchQuery(entity="XOM", limit=5))
                await page.aggregate(AggregateQuery(by="entity"))
            return seen

        _, seen = await asyncio.gather(write(), asyncio.wait_for(read(), 30))
        assert seen == sorted(seen) and seen[-1] == 300  # never a torn or shrinking view


async def test_calls_off_the_event_loop_keep_it_responsive(tmp_path):
    async with SqliteStore(tmp_path / "s.db") as store:
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await store.upsert_many([scored(i) for i in range(2000)])
        task.cancel()
        assert ticks > 1  # the loop ran other tasks while the write was in its thread


async def test_use_before_open_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="open"):
        await SqliteStore(tmp_path / "s.db").count()


def test_open_store_by_url(tmp_path, monkeypatch):
    settings = store_settings()
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:///var/x.db", settings)
    assert isinstance(relative, SqliteStore) and relative.path == Path("var/x.db")
    absolute = open_store(f"sqlite:///{tmp_path}/a/b.db", settings)
    assert absolute.path == tmp_path / "a" / "b.db"
    assert isinstance(open_store("http://127.0.0.1:9200", settings), ElasticsearchStore)
    assert open_store("https://es:9200?compat=opensearch", settings).compat == "opensearch"
    assert isinstance(open_store(None, store_settings(store=f"sqlite:///{tmp_path}/d.db")), SqliteStore)
    with pytest.raises(ValueError, match="unsupported store URL 'db:5432'") as err:
        open_store("postgres://user:secret@db:5432", settings)
    assert "secret" not in str(err.value)
    with pytest.raises(ValueError, match="no database file"):
        open_store("sqlite:///", settings)


async def test_relative_url_creates_parent_directories(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    async with open_store("sqlite:///var/data/store.db", store_settings()) as store:
        assert (await store.upsert_many([scored(1)])).stored == 1
    assert (tmp_path / "var" / "data" / "store.db").is_file()


def test_queries_refuse_bad_input_with_a_reason():
    with pytest.raises(ValueError, match="time zone"):
        SearchQuery(since=datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="sentiment"):
        SearchQuery(sentiment="angry")
    with pytest.raises(ValueError, match="limit"):
        SearchQuery(limit=0)
    with pytest.raises(ValueError, match="sort"):
        SearchQuery(sort="relevance")
    with pytest.raises(ValueError, match="interval_s"):
        AggregateQuery(interval_s=0)
    with pytest.raises(ValueError, match="by must be"):
        AggregateQuery(by="source")
    q = SearchQuery(since=datetime(2024, 1, 1, 12, tzinfo=timezone.utc).astimezone())
    assert q.since.tzinfo == timezone.utc
