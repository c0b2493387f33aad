"""Stores for scored documents, alerts and analyst labels (one interface, several backends)."""

from finsentry.streams.sinks.base import (AggregateQuery, Bucket, ReadOnlyStore, Rejected, SearchQuery, Store,
                                          StoreMissing, StoreUnavailable, UnknownDocument, UpsertResult)
from finsentry.streams.sinks.factory import open_store
from finsentry.streams.sinks.retry import write_with_retry

__all__ = ["AggregateQuery", "Bucket", "ReadOnlyStore", "Rejected", "SearchQuery", "Store", "StoreMissing",
           "StoreUnavailable",
           "UnknownDocument", "UpsertResult", "open_store", "write_with_retry"]
