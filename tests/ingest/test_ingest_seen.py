"""The persistent seen-set (real SQLite files)."""

from __future__ import annotations

import sqlite3

from finsentry.ingest.seen import SeenSet, content_hash, identity_keys


def test_an_item_is_seen_when_any_key_matches(tmp_path):
    with SeenSet(tmp_path / "seen.db") as seen:
        first = identity_keys("feed", url="https://x.test/a", guid="g1", title="T", text="Body")
        assert not seen.seen(first)
        seen.add(first, "feed")
        assert seen.seen(first)
        assert seen.seen(identity_keys("feed", url="https://x.test/a?utm=1", guid="g1"))  # same GUID
        assert seen.seen(identity_keys("feed", url="https://x.test/b", title="T", text="  body "))  # same content
        assert not seen.seen(identity_keys("feed", url="https://x.test/b", guid="g2", title="T", text="Other"))


def test_keys_are_per_source(tmp_path):
    with SeenSet(tmp_path / "seen.db") as seen:
        seen.add(identity_keys("a", guid="1"), "a")
        assert not seen.seen(identity_keys("b", guid="1"))
        assert seen.count("a") == 1 and seen.count("b") == 0


def test_it_survives_a_restart(tmp_path):
    keys = identity_keys("feed", url="https://x.test/a")
    with SeenSet(tmp_path / "seen.db") as seen:
        seen.add(keys, "feed")
    with SeenSet(tmp_path / "seen.db") as reopened:
        assert reopened.seen(keys)
        assert reopened.count() == 1


def test_no_keys_is_never_seen(tmp_path):
    with SeenSet(tmp_path / "seen.db") as seen:
        assert not seen.seen(())


def test_prune_forgets_old_keys(tmp_path):
    with SeenSet(tmp_path / "seen.db") as seen:
        seen.add(identity_keys("f", guid="old"), "f")
        assert seen.prune(older_than_s=3600) == 0
        assert seen.prune(older_than_s=-1) == 1
        assert not seen.seen(identity_keys("f", guid="old"))


class Clock:
    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


DAY = 86400.0


def test_prune_keeps_old_items_that_are_still_listed(tmp_path):
    """Retention counts from the last time a source listed an item, not the first: an item
    first seen long ago but still on the page must not be forgotten (and republished)."""
    clock = Clock()
    still_listed = identity_keys("f", url="https://x.test/evergreen", guid="e1")
    dropped = identity_keys("f", guid="gone")
    with SeenSet(tmp_path / "seen.db", clock=clock) as seen:
        seen.add(still_listed, "f")
        seen.add(dropped, "f")
        for _ in range(10):  # polled daily; only one of the two is still listed
            clock.now += DAY
            assert seen.seen(still_listed)
        assert seen.prune(older_than_s=5 * DAY) == 1
        assert seen.seen(still_listed)
        assert not seen.seen(dropped)


def test_marking_a_known_key_seen_again_refreshes_it(tmp_path):
    clock = Clock()
    keys = identity_keys("f", guid="again")
    with SeenSet(tmp_path / "seen.db", clock=clock) as seen:
        seen.add(keys, "f")
        clock.now += 10 * DAY
        seen.add(keys, "f")  # e.g. published again after a lost acknowledgement
        clock.now += 2 * DAY
        assert seen.prune(older_than_s=5 * DAY) == 0
        clock.now += 4 * DAY
        assert seen.prune(older_than_s=5 * DAY) == 1


def test_a_database_without_last_seen_is_migrated_without_forgetting_anything(tmp_path):
    """The schema before last_seen: its rows count as listed at the migration, so the prune at
    the first start after the upgrade does not empty it."""
    path = tmp_path / "seen.db"
    keys = identity_keys("f", url="https://x.test/old", guid="o1")
    with SeenSet(path) as seen:
        seen.add(keys, "f")
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE seen_v1 (key BLOB PRIMARY KEY, source TEXT NOT NULL, first_seen REAL NOT NULL) "
        "WITHOUT ROWID; INSERT INTO seen_v1 SELECT key, source, 0.0 FROM seen; DROP TABLE seen; "
        "ALTER TABLE seen_v1 RENAME TO seen;"
    )
    old.close()

    clock = Clock()
    with SeenSet(path, clock=clock) as migrated:
        assert migrated.prune(older_than_s=180 * DAY) == 0
        assert migrated.count() == 2 and migrated.seen(keys)
        clock.now += 181 * DAY
        assert migrated.prune(older_than_s=180 * DAY) == 2  # not listed since: forgotten in time
    with SeenSet(path) as reopened:  # opening a migrated database changes nothing
        assert reopened.count() == 0


def test_content_hash_ignores_case_and_spacing_only():
    assert content_hash("Title", "Some  text") == content_hash("title", "some text\n")
    assert content_hash("Title", "Some text") != content_hash("Title", "Other text")
