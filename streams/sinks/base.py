"""The store interface every backend implements, and the query types it takes.

Semantics every backend keeps (the contract tests in tests/streams/sinks check them):
- every write is an upsert by id: re-delivering a record never creates a second one;
- `upsert_many` either accepts the batch (returning per-record content rejections, which
  the caller dead-letters) or raises `StoreUnavailable` for a transient outage, in which
  case nothing may be assumed stored and the caller retries the whole batch;
- reads see every acknowledged write.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, AsyncIterator, Literal, Sequence

from finsentry.streams.records import Alert, Label, ScoredDocument


class StoreUnavailable(Exception):
    """Transient: the store cannot take writes now (down, 429, 5xx). Retry later."""


@dataclass
class Rejected:
    id: str
    reason: str


@dataclass
class UpsertResult:
    stored: int
    rejected: list[Rejected] = field(default_factory=list)


@dataclass
class SearchQuery:
    text: str | None = None  # full text over title + text
    since: datetime | None = None  # published_at >= since
    until: datetime | None = None  # published_at < until
    source: str | None = None
    kind: str | None = None
    topic: str | None = None
    entity: str | None = None
    sentiment: str | None = None  # negative | neutral | positive
    sort: Literal["published_at", "score"] = "published_at"  # score: most negative first
    limit: int = 50


@dataclass
class AggregateQuery:
    by: Literal["topic", "entity", "none"] = "topic"
    interval_s: int = 60
    since: datetime | None = None
    until: datetime | None = None
    keys: Sequence[str] | None = None  # restrict to these topics/entities
    count_duplicates: bool = False  # near-duplicates (dup_of set) are counted once by default


@dataclass
class Bucket:
    key: str  # topic, entity, or "all"
    start: datetime
    count: int
    mean_score: float  # mean sentiment score (p_pos - p_neg)
    negative_share: float


class Store(abc.ABC):
    """Async store. Implementations: SqliteStore (embedded), ElasticsearchStore."""

    url: str

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and create schema / index templates if absent."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def upsert_many(self, records: Sequence[ScoredDocument]) -> UpsertResult: ...

    @abc.abstractmethod
    async def get(self, doc_id: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    async def count(self, query: SearchQuery | None = None) -> int: ...

    @abc.abstractmethod
    async def search(self, query: SearchQuery) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    async def aggregate(self, query: AggregateQuery) -> list[Bucket]: ...

    @abc.abstractmethod
    async def put_alert(self, alert: Alert) -> None: ...

    @abc.abstractmethod
    async def alerts(self, since: datetime | None = None, limit: int = 100) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    async def put_label(self, label: Label) -> None: ...

    @abc.abstractmethod
    async def labels(self, limit: int | None = None) -> list[Label]: ...

    @abc.abstractmethod
    def export(self, query: SearchQuery | None = None) -> AsyncIterator[dict[str, Any]]: ...

    async def __aenter__(self) -> "Store":
        await self.open()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
