"""The store interface every backend implements, and the query types it takes.

Semantics every backend keeps (the contract tests in tests/store check them):
- every write is an upsert by id: re-delivering a record never creates a second one;
- `upsert_many` either accepts the batch (returning per-record content rejections, which
  the caller dead-letters) or raises `StoreUnavailable` for a transient outage, in which
  case nothing may be assumed stored and the caller retries the whole batch;
- reads see every acknowledged write once `refresh()` returned, and without it after the
  backend's refresh interval (SQLite: at once; Elasticsearch: about a second);
- alerts and labels are versioned (an alert by its `update` sequence number, a label by
  its time `at`): an older copy that arrives late never overwrites a newer one;
- stored documents come back as dicts in the `ScoredDocument` JSON shape plus `stored_at`
  (ISO 8601, UTC).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Literal, Sequence

from finsentry.errors import FinsentryError
from finsentry.records import Alert, Label, ScoredDocument
from finsentry.textnorm import model_input

MAX_SEARCH_LIMIT = 10_000  # Elasticsearch's default max_result_window; export() pages past it
SENTIMENTS = ("negative", "neutral", "positive")


class StoreUnavailable(FinsentryError):
    """Transient: the store cannot take writes now (down, 429, 5xx). Retry later."""


class StoreMissing(FinsentryError, LookupError):
    """A store opened for reading does not exist (a mistyped path or index prefix): reads
    never create one."""


class ReadOnlyStore(FinsentryError, RuntimeError):
    """A write on a store opened for reading only."""


class UnknownDocument(FinsentryError, LookupError):
    """A label names a document the store does not hold."""


@dataclass
class Rejected:
    id: str
    reason: str


@dataclass
class UpsertResult:
    stored: int  # distinct ids written (a batch holding one id twice stores it once)
    rejected: list[Rejected] = field(default_factory=list)


def _utc(name: str, value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"{name} has no time zone; give an aware datetime (UTC)")
    return value.astimezone(timezone.utc)


@dataclass
class SearchQuery:
    text: str | None = None  # full text over title + text: every word must match; `word*` is a prefix
    since: datetime | None = None  # published_at >= since
    until: datetime | None = None  # published_at < until
    source: str | None = None
    kind: str | None = None
    topic: str | None = None
    entity: str | None = None
    sentiment: str | None = None  # negative | neutral | positive
    sort: Literal["published_at", "score"] = "published_at"  # newest first | most negative first
    limit: int = 50

    def __post_init__(self) -> None:
        self.since = _utc("since", self.since)
        self.until = _utc("until", self.until)
        if self.sort not in ("published_at", "score"):
            raise ValueError(f"sort must be 'published_at' or 'score', not {self.sort!r}")
        if self.sentiment is not None and self.sentiment not in SENTIMENTS:
            raise ValueError(f"sentiment must be one of {', '.join(SENTIMENTS)}, not {self.sentiment!r}")
        if not 1 <= self.limit <= MAX_SEARCH_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_SEARCH_LIMIT} (use export for more), not {self.limit}")


@dataclass
class AggregateQuery:
    by: Literal["topic", "entity", "none"] = "topic"
    interval_s: int = 60
    since: datetime | None = None
    until: datetime | None = None
    keys: Sequence[str] | None = None  # restrict to these topics/entities
    count_duplicates: bool = False  # near-duplicates (dup_of set) are counted once by default

    def __post_init__(self) -> None:
        self.since = _utc("since", self.since)
        self.until = _utc("until", self.until)
        if self.by not in ("topic", "entity", "none"):
            raise ValueError(f"by must be 'topic', 'entity' or 'none', not {self.by!r}")
        if int(self.interval_s) != self.interval_s or self.interval_s < 1:
            raise ValueError(f"interval_s must be a whole number of seconds >= 1, not {self.interval_s}")


@dataclass
class Bucket:
    key: str  # topic, entity, or "all"
    start: datetime  # UTC, a multiple of interval_s since the epoch
    count: int
    mean_score: float  # mean sentiment score (p_pos - p_neg)
    negative_share: float


class Store(abc.ABC):
    """Async store. Implementations: SqliteStore (embedded), ElasticsearchStore."""

    url: str  # credentials removed: safe to log

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and create schema / index templates if absent. Idempotent."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def upsert_many(self, records: Sequence[ScoredDocument]) -> UpsertResult: ...

    @abc.abstractmethod
    async def get(self, doc_id: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    async def count(self, query: SearchQuery | None = None) -> int:
        """Documents matching the filters of `query` (its sort and limit are ignored)."""

    @abc.abstractmethod
    async def search(self, query: SearchQuery) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    async def aggregate(self, query: AggregateQuery) -> list[Bucket]:
        """Non-empty buckets ordered by key, then start."""

    @abc.abstractmethod
    async def put_alert(self, alert: Alert) -> None: ...

    @abc.abstractmethod
    async def alerts(self, since: datetime | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Alerts updated at or after `since`, most recently updated first."""

    async def put_label(self, label: Label) -> None:
        """Store one label per (document, analyst), the newest by `at` winning.

        A label without text gets the document's model input (title + lead, as the model
        saw it) from the store; `UnknownDocument` if the store does not hold the document.
        """
        if label.text is None:
            doc = await self.get(label.doc_id)
            if doc is None:
                raise UnknownDocument(f"no stored document with id {label.doc_id!r}")
            label = label.model_copy(update={"text": model_input(doc.get("title"), doc.get("text"))})
        await self._write_label(label)

    @abc.abstractmethod
    async def _write_label(self, label: Label) -> None: ...

    @abc.abstractmethod
    async def labels(self, limit: int | None = None) -> list[Label]:
        """Labels, newest first; all of them when `limit` is None."""

    @abc.abstractmethod
    def export(self, query: SearchQuery | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every matching document, oldest first (by published_at, then id); no limit."""

    @abc.abstractmethod
    async def prune(self, before: datetime) -> int:
        """Delete documents published before the UTC day of `before`; return how many.

        Whole days go at once (Elasticsearch drops daily indices), so both backends keep
        the same documents.
        """

    @abc.abstractmethod
    async def prune_alerts(self, before: datetime) -> int:
        """Delete alerts last updated before `before`; return how many."""

    @abc.abstractmethod
    async def prune_plan(self, before: datetime) -> list[tuple[str, int]]:
        """What `prune(before)` would delete, without deleting: (UTC day YYYY-MM-DD,
        documents) per day, oldest first."""

    @abc.abstractmethod
    async def count_alerts_before(self, before: datetime) -> int:
        """Alerts `prune_alerts(before)` would delete."""

    async def refresh(self) -> None:
        """Make every acknowledged write visible to reads now (a no-op where it already is)."""

    async def __aenter__(self) -> "Store":
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
