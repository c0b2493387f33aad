"""SearchQuery / AggregateQuery → Elasticsearch query DSL (the same semantics as sqlite.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from finsentry.store.base import AggregateQuery, SearchQuery
from finsentry.store.shape import search_terms

TEXT_FIELDS = ["title", "text"]
AGGREGATE_PAGE = 1000

_SORTS = {
    "published_at": [{"published_at": "desc"}, {"id": "asc"}],
    "score": [{"sentiment.score": "asc"}, {"published_at": "desc"}, {"id": "asc"}],
}
EXPORT_SORT = [{"published_at": "asc"}, {"id": "asc"}]


def _range(since: datetime | None, until: datetime | None) -> dict[str, Any] | None:
    bounds = {}
    if since is not None:
        bounds["gte"] = since.isoformat()
    if until is not None:
        bounds["lt"] = until.isoformat()
    return {"range": {"published_at": bounds}} if bounds else None


def document_query(query: SearchQuery | None) -> dict[str, Any]:
    if query is None:
        return {"match_all": {}}
    must: list[dict[str, Any]] = []
    filters: list[dict[str, Any]] = []
    if query.text is not None:
        terms = search_terms(query.text)
        if not terms:
            return {"match_none": {}}
        # One clause per word, any of title/text: every word must occur somewhere.
        must += [{"simple_query_string": {"query": term, "fields": TEXT_FIELDS, "flags": "PREFIX"}} for term in terms]
    time_range = _range(query.since, query.until)
    if time_range:
        filters.append(time_range)
    for field, value in (
        ("source", query.source),
        ("kind", query.kind),
        ("topic.label", query.topic),
        ("sentiment.label", query.sentiment),
        ("entities", query.entity),
    ):
        if value is not None:
            filters.append({"term": {field: value}})
    if not must and not filters:
        return {"match_all": {}}
    return {"bool": {"must": must, "filter": filters}}


def document_sort(query: SearchQuery) -> list[dict[str, str]]:
    return _SORTS[query.sort]


_KEY_FIELDS = {"topic": "topic.label", "entity": "entities"}


def aggregate_request(query: AggregateQuery, after: dict[str, Any] | None) -> dict[str, Any]:
    """One page of a composite aggregation: (key, time bucket) → count, mean score, negatives."""
    filters: list[dict[str, Any]] = []
    must_not: list[dict[str, Any]] = []
    time_range = _range(query.since, query.until)
    if time_range:
        filters.append(time_range)
    if not query.count_duplicates:
        must_not.append({"exists": {"field": "dup_of"}})
    sources: list[dict[str, Any]] = []
    if query.by != "none":
        field = _KEY_FIELDS[query.by]
        if query.keys is not None:
            filters.append({"terms": {field: list(query.keys)}})
        sources.append({"key": {"terms": {"field": field}}})
    sources.append(
        {"start": {"date_histogram": {"field": "published_at", "fixed_interval": f"{int(query.interval_s)}s"}}}
    )
    composite: dict[str, Any] = {"size": AGGREGATE_PAGE, "sources": sources}
    if after:
        composite["after"] = after
    return {
        "size": 0,
        "query": {"bool": {"filter": filters, "must_not": must_not}},
        "aggs": {
            "buckets": {
                "composite": composite,
                "aggs": {
                    "mean_score": {"avg": {"field": "sentiment.score"}},
                    "negative": {"filter": {"term": {"sentiment.label": "negative"}}},
                },
            }
        },
    }
