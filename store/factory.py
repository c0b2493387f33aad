"""Pick the store backend from its URL."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from finsentry.settings import Settings, get_settings
from finsentry.store.base import Store

SQLITE_PREFIX = "sqlite:///"


def sqlite_path(url: str) -> Path:
    """`sqlite:///var/x.db` → var/x.db (relative); `sqlite:////data/x.db` → /data/x.db."""
    path = url[len(SQLITE_PREFIX) :].split("?", 1)[0]
    if not path or path.endswith("/"):
        raise ValueError(f"store URL {url!r} names no database file (sqlite:///path/to/file.db)")
    return Path(path)


def open_store(url: str | None = None, settings: Settings | None = None, read_only: bool = False) -> Store:
    """The store for `url` (default: settings.store), not yet opened: `await store.open()`.

    `read_only`: for commands that only read. Opening creates nothing (no database file,
    schema, index template or index) and raises StoreMissing when there is no store at
    the URL; a write raises ReadOnlyStore.

    - `sqlite:///path.db` — the embedded SQLite store (relative path; four slashes for an
      absolute one, as in SQLAlchemy); parent directories are created on open.
    - `http(s)://[user:password@]host:9200[?compat=opensearch&prefix=name]` — Elasticsearch,
      or OpenSearch with `compat=opensearch`; auth and TLS from the FINSENTRY_ES_* settings.
    """
    if settings is None:
        settings = get_settings()
    url = url or settings.store
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        if not url.startswith(SQLITE_PREFIX):
            raise ValueError(f"store URL {url!r}: write sqlite:///relative.db or sqlite:////absolute.db")
        from finsentry.store.sqlite import SqliteStore

        return SqliteStore(sqlite_path(url), busy_timeout_s=settings.sqlite_busy_timeout_s, read_only=read_only)
    if scheme in ("http", "https"):
        from finsentry.store.elasticsearch import ElasticsearchStore

        return ElasticsearchStore(url, settings, read_only=read_only)
    shown = url.split("@")[-1]  # never echo credentials
    raise ValueError(f"unsupported store URL {shown!r}: expected sqlite:///path.db or http(s)://host:9200")
