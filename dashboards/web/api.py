"""The JSON API behind the built-in page: query parameters in, JSON-ready dicts out, over
the Store interface. No web framework here, so the same functions serve any view layer
and are tested on their own.

Time windows are anchored at the newest stored document (or now, whichever is earlier),
not at the wall clock: a replayed historical stream shows its own last hours instead of
an empty chart. Text fields pass through untouched; the page renders them as text.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from finsentry.errors import FinsentryError
from finsentry.records import Alert
from finsentry.store.base import AggregateQuery, SearchQuery, Store

Params = Mapping[str, str]

NICE_INTERVALS_S = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
MAX_POINTS = 120  # buckets per series on the page
MIN_BUCKET_COUNT = 3  # a share of one or two documents is noise, not a value worth drawing
TEXT_PREVIEW_CHARS = 400
SENTIMENTS = ("negative", "neutral", "positive")


class BadRequest(FinsentryError, ValueError):
    """A query parameter is missing or malformed; the message says which and why."""


def parse_int(params: Params, name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, not {raw!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}, not {value}")
    return value


def parse_time(params: Params, name: str) -> datetime | None:
    """ISO 8601 with a zone (2024-05-01T12:00:00Z) or epoch seconds."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return datetime.fromtimestamp(float(raw), timezone.utc)
    except ValueError:
        pass
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be ISO 8601 (e.g. 2024-05-01T12:00:00Z) or epoch seconds, not {raw!r}") from None
    if value.tzinfo is None:
        raise BadRequest(f"{name} has no time zone; add Z or an offset")
    return value.astimezone(timezone.utc)


def parse_choice(params: Params, name: str, choices: tuple[str, ...], default: str | None) -> str | None:
    raw = params.get(name) or default
    if raw is not None and raw not in choices:
        raise BadRequest(f"{name} must be one of {', '.join(choices)}, not {raw!r}")
    return raw


def iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if value else None


def filters(params: Params) -> dict[str, Any]:
    """The document filters the page sends, as SearchQuery keyword arguments."""
    return dict(
        source=params.get("source") or None,
        kind=params.get("kind") or None,
        topic=params.get("topic") or None,
        entity=(params.get("entity") or "").upper() or None,
        sentiment=parse_choice(params, "sentiment", SENTIMENTS, None),
        since=parse_time(params, "since"),
        until=parse_time(params, "until"),
    )


def document_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The fields the page shows, from a stored document (the ScoredDocument JSON shape)."""
    sentiment = doc.get("sentiment") or {}
    topic = doc.get("topic") or {}
    text = doc.get("text") or ""
    return {
        "id": doc.get("id"),
        "title": doc.get("title"),
        "text": text[:TEXT_PREVIEW_CHARS],
        "text_truncated": len(text) > TEXT_PREVIEW_CHARS,
        "url": doc.get("url"),
        "source": doc.get("source"),
        "kind": doc.get("kind"),
        "published_at": doc.get("published_at"),
        "sentiment": sentiment.get("label"),
        "score": sentiment.get("score"),
        "probabilities": sentiment.get("probabilities"),
        "topic": topic.get("label"),
        "topic_probability": topic.get("probability"),
        "entities": doc.get("entities") or [],
        "model_version": doc.get("model_version"),
        "explanation": doc.get("explanation"),
        "dup_of": doc.get("dup_of"),
    }


def alert_view(raw: Mapping[str, Any]) -> dict[str, Any]:
    alert = Alert.model_validate(raw)
    view = alert.model_dump(mode="json")
    view["summary"] = alert.summary
    return view


async def newest_time(store: Store) -> datetime | None:
    newest = await store.search(SearchQuery(sort="published_at", limit=1))
    if not newest or not newest[0].get("published_at"):
        return None
    return datetime.fromisoformat(newest[0]["published_at"].replace("Z", "+00:00"))


async def anchor(store: Store, params: Params) -> datetime:
    """The end of the window: ?until=, else the newest document (not in the future), else now."""
    now = datetime.now(timezone.utc)
    explicit = parse_time(params, "until")
    if explicit is not None:
        return explicit
    newest = await newest_time(store)
    return min(newest, now) if newest else now


def pick_interval(range_s: int) -> int:
    for interval in NICE_INTERVALS_S:
        if range_s / interval <= MAX_POINTS:
            return interval
    return NICE_INTERVALS_S[-1]


async def documents(store: Store, params: Params) -> dict[str, Any]:
    """Latest scored documents, newest first (or most negative first with sort=score)."""
    query = SearchQuery(
        sort=parse_choice(params, "sort", ("published_at", "score"), "published_at"),
        limit=parse_int(params, "limit", 50, 1, 500),
        **filters(params),
    )
    return {"documents": [document_view(d) for d in await store.search(query)]}


async def search(store: Store, params: Params) -> dict[str, Any]:
    """Full-text search over title and text (every word must match; `word*` is a prefix)."""
    q = (params.get("q") or "").strip()
    if not re.search(r"[^\W_]", q):
        raise BadRequest("q must contain at least one word")
    if len(q) > 200:
        raise BadRequest(f"q is {len(q)} characters; at most 200")
    query = SearchQuery(text=q, limit=parse_int(params, "limit", 50, 1, 500), **filters(params))
    return {"q": q, "documents": [document_view(d) for d in await store.search(query)]}


async def alerts(store: Store, params: Params) -> dict[str, Any]:
    """Recent alerts with their evidence, most recently updated first."""
    rows = await store.alerts(since=parse_time(params, "since"), limit=parse_int(params, "limit", 50, 1, 500))
    return {"alerts": [alert_view(r) for r in rows]}


async def series(store: Store, params: Params) -> dict[str, Any]:
    """Mean score and negative share per topic (or entity) over time, on one shared time axis.

    Only the `top` keys by volume are returned. Buckets with fewer than `min_count`
    documents have null mean and share (their count is kept), so the chart shows gaps
    rather than invented zeros or the 0 %/100 % swings of a single document.
    """
    by = parse_choice(params, "by", ("topic", "entity", "none"), "topic")
    range_s = parse_int(params, "range_s", 6 * 3600, 300, 90 * 86400)
    top = parse_int(params, "top", 8, 1, 50)
    interval = parse_int(params, "interval_s", pick_interval(range_s), 10, 86400)
    min_count = parse_int(params, "min_count", MIN_BUCKET_COUNT, 1, 1000)
    keys = [k for k in (params.get("keys") or "").split(",") if k] or None
    end = await anchor(store, params)
    # Align to the bucket grid, and end one bucket after the anchor so its bucket is included.
    until = datetime.fromtimestamp((int(end.timestamp()) // interval + 1) * interval, timezone.utc)
    since = until - timedelta(seconds=(range_s // interval + 1) * interval)
    buckets = await store.aggregate(AggregateQuery(by=by, interval_s=interval, since=since, until=until, keys=keys))

    grid = list(range(int(since.timestamp()), int(until.timestamp()), interval))
    slot = {t: i for i, t in enumerate(grid)}
    per_key: dict[str, dict[str, list]] = defaultdict(
        lambda: {"count": [0] * len(grid), "mean_score": [None] * len(grid), "negative_share": [None] * len(grid)}
    )
    for b in buckets:
        i = slot.get(int(b.start.timestamp()))
        if i is None:
            continue
        row = per_key[b.key]
        row["count"][i] = b.count
        if b.count >= min_count:
            row["mean_score"][i] = round(b.mean_score, 4)
            row["negative_share"][i] = round(b.negative_share, 4)
    ranked = sorted(per_key.items(), key=lambda kv: (-sum(kv[1]["count"]), kv[0]))[:top]
    # Start at the first bucket with data: a stream younger than the range fills the chart.
    first = min((next(i for i, n in enumerate(row["count"]) if n) for _, row in ranked if any(row["count"])), default=0)
    if first:
        grid = grid[first:]
        since = datetime.fromtimestamp(grid[0], timezone.utc)
        for _, row in ranked:
            for name in ("count", "mean_score", "negative_share"):
                row[name] = row[name][first:]
    return {
        "by": by,
        "interval_s": interval,
        "min_count": min_count,
        "since": iso(since),
        "until": iso(until),
        "t": grid,
        "series": [{"key": key, "total": sum(row["count"]), **row} for key, row in ranked],
    }


async def stats(store: Store, params: Params, model_versions: list[str] | None = None) -> dict[str, Any]:
    """Headline numbers: stored documents, the last hour's volume and negative share, alerts firing."""
    window_s = parse_int(params, "window_s", 3600, 60, 30 * 86400)
    end = await anchor(store, params)
    since = end - timedelta(seconds=window_s)
    # `until` is exclusive: one second past the anchor keeps the newest document in.
    window = dict(since=since, until=end + timedelta(seconds=1))
    total = await store.count()
    in_window = await store.count(SearchQuery(**window))
    negative = await store.count(SearchQuery(sentiment="negative", **window))
    recent = [alert_view(a) for a in await store.alerts(limit=200)]
    return {
        "documents": total,
        "window_s": window_s,
        "window_end": iso(end),
        "window_documents": in_window,
        "window_negative_share": round(negative / in_window, 4) if in_window else None,
        "alerts_firing": sum(1 for a in recent if a["status"] == "firing"),
        "model_versions": model_versions or [],
    }
