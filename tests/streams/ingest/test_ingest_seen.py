"""The persistent seen-set (real SQLite files)."""

from __future__ import annotations

from finsentry.streams.ingest.seen import SeenSet, content_hash, identity_keys


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


def test_content_hash_ignores_case_and_spacing_only():
    assert content_hash("Title", "Some  text") == content_hash("title", "some text\n")
    assert content_hash("Title", "Some text") != content_hash("Title", "Other text")
