"""What `finsentry store ...` does, as library calls: open a store, run one query, close."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, TextIO, TypeVar

from finsentry.settings import Settings
from finsentry.store.base import SearchQuery, Store
from finsentry.store.factory import open_store
from finsentry.store.shape import retention_cutoff

T = TypeVar("T")

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(value: str, now: datetime | None = None) -> datetime:
    """ISO 8601 (a time without zone is UTC) or an age such as 90s, 15m, 24h, 7d, 2w (that long ago)."""
    match = _RELATIVE.match(value)
    if match:
        ago = float(match.group(1)) * _UNITS[match.group(2)]
        return (now or datetime.now(timezone.utc)) - timedelta(seconds=ago)
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"not a time: {value!r} (ISO 8601 like 2024-05-01T12:00Z, or an age like 15m, 24h, 7d)"
        ) from None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


async def _with_store(
    url: str | None, settings: Settings, work: Callable[[Store], Awaitable[T]], read_only: bool = False
) -> T:
    store: Store = open_store(url, settings, read_only=read_only)
    await store.open()
    try:
        return await work(store)
    finally:
        await store.close()


async def count(url: str | None, settings: Settings, query: SearchQuery | None = None) -> int:
    return await _with_store(url, settings, lambda store: store.count(query), read_only=True)


async def search(url: str | None, settings: Settings, query: SearchQuery) -> list[dict[str, Any]]:
    return await _with_store(url, settings, lambda store: store.search(query), read_only=True)


async def export_jsonl(url: str | None, settings: Settings, query: SearchQuery | None, out: TextIO) -> int:
    """Every matching document as one JSON line, oldest first; returns how many."""

    async def work(store: Store) -> int:
        written = 0
        async for doc in store.export(query):
            out.write(json.dumps(doc, ensure_ascii=False) + "\n")
            written += 1
        return written

    return await _with_store(url, settings, work, read_only=True)


@dataclass
class PruneReport:
    cutoff: datetime  # documents published before this UTC day go
    alert_cutoff: datetime  # alerts last updated before this go
    days: list[tuple[str, int]]  # (UTC day, documents) that go, oldest first
    documents: int  # documents deleted (or, in a dry run, that would be)
    alerts: int


async def prune(
    url: str | None, settings: Settings, days: int, alert_days: int, dry_run: bool = False, now: datetime | None = None
) -> PruneReport:
    """Delete documents published before the UTC day `days` days ago (whole UTC days) and
    alerts last updated before the day `alert_days` days ago; `dry_run`: only count them,
    on a store opened for reading."""
    cutoff, alert_cutoff = retention_cutoff(days, now), retention_cutoff(alert_days, now)

    async def work(store: Store) -> PruneReport:
        plan = await store.prune_plan(cutoff)
        if dry_run:
            return PruneReport(
                cutoff, alert_cutoff, plan, sum(n for _, n in plan), await store.count_alerts_before(alert_cutoff)
            )
        documents = await store.prune(cutoff)
        return PruneReport(cutoff, alert_cutoff, plan, documents, await store.prune_alerts(alert_cutoff))

    return await _with_store(url, settings, work, read_only=dry_run)


_TABLE_COLUMNS = (
    ("published_at", 20),
    ("sentiment", 8),
    ("score", 6),
    ("topic", 18),
    ("entities", 14),
    ("source", 14),
    ("title", 60),
)


def _cell(doc: dict[str, Any], column: str) -> str:
    if column == "sentiment":
        return str(doc.get("sentiment", {}).get("label", ""))
    if column == "score":
        return f"{doc.get('sentiment', {}).get('score', 0.0):+.2f}"
    if column == "topic":
        return str(doc.get("topic", {}).get("label", ""))
    if column == "entities":
        return ",".join(doc.get("entities") or [])
    if column == "published_at":
        return str(doc.get("published_at", ""))[:19].replace("T", " ")
    if column == "title":
        return (doc.get("title") or doc.get("text") or "").replace("\n", " ")
    return str(doc.get(column) or "")


def format_table(docs: list[dict[str, Any]]) -> str:
    """A compact fixed-width table for a terminal, one document per line."""

    def fit(text: str, width: int) -> str:
        return text if len(text) <= width else text[: width - 1] + "…"

    lines = ["  ".join(name.ljust(width) for name, width in _TABLE_COLUMNS).rstrip()]
    for doc in docs:
        lines.append("  ".join(fit(_cell(doc, name), width).ljust(width) for name, width in _TABLE_COLUMNS).rstrip())
    return "\n".join(lines)
