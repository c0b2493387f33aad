"""Stores for scored documents, alerts and analyst labels (one interface, several backends)."""

from finsentry.store.base import (
    AggregateQuery,
    Bucket,
    ReadOnlyStore,
    Rejected,
    SearchQuery,
    Store,
    StoreMissing,
    StoreUnavailable,
    UnknownDocument,
    UpsertResult,
)
from finsentry.store.factory import open_store
from finsentry.store.retry import write_with_retry

__all__ = [
    "AggregateQuery",
    "Bucket",
    "ReadOnlyStore",
    "Rejected",
    "SearchQuery",
    "Store",
    "StoreMissing",
    "StoreUnavailable",
    "UnknownDocument",
    "UpsertResult",
    "open_store",
    "write_with_retry",
]
