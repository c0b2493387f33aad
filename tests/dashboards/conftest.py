"""Fixtures of the dashboard tests: a real SQLite store filled with scored documents."""

from __future__ import annotations

import pytest
from dashboard_helpers import CORPUS_END, corpus, episode_alert

from finsentry.streams.sinks.sqlite import SqliteStore


@pytest.fixture
async def filled_store(tmp_path):
    docs = corpus(CORPUS_END)
    store = SqliteStore(tmp_path / "store.db")
    await store.open()
    result = await store.upsert_many(docs)
    assert result.stored == len(docs) and not result.rejected
    await store.put_alert(episode_alert(CORPUS_END, docs))
    store.corpus = docs  # type: ignore[attr-defined]  # what the tests compare against
    yield store
    await store.close()
