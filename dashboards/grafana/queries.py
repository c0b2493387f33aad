"""The requests Grafana sends for the dashboards' queries, rendered without Grafana.

Grafana interpolates template variables and then turns a panel target into a PromQL query
(Prometheus) or a `_search` body (Elasticsearch). Doing the same here lets the queries be
run against real datasources outside Grafana: the tests run every panel's query against a
live Prometheus and the Elasticsearch stand-in and require data
(tests/dashboards/test_prometheus_live.py, test_grafana_elasticsearch.py).

The rendering follows Grafana's rules for what these dashboards use: the `regex` format for
Prometheus and the `lucene` format for Elasticsearch, "All" expanding to every value unless
the variable has a custom all value, and the bucket/metric nesting of the Elasticsearch
datasource (buckets outermost first, metrics innermost, `count` read from doc_count).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator, Mapping, Sequence

from finsentry.dashboards.grafana.model import Dashboard, Variable

ALL = "$__all"
_LUCENE_SPECIAL = re.compile(r'([!*+\-=<>\s&|()\[\]{}^~?:\\/"])')
_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")


def lucene_escape(value: str) -> str:
    return _LUCENE_SPECIAL.sub(r"\\\1", value)


def format_lucene(values: Sequence[str]) -> str:
    if len(values) == 1:
        return lucene_escape(values[0])
    if not values:
        return "__empty__"
    return "(" + " OR ".join(f'"{lucene_escape(v)}"' for v in values) + ")"


def format_regex(values: Sequence[str]) -> str:
    escaped = [re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


@dataclass
class Selection:
    """The chosen values of one variable: a list, or ALL with the options "All" stands for."""

    values: Sequence[str]
    options: Sequence[str] = ()

    def resolve(self, variable: Variable | None) -> tuple[list[str], str | None]:
        if list(self.values) == [ALL]:
            if variable is not None and variable.all_value is not None:
                return [], variable.all_value
            return list(self.options), None
        return list(self.values), None


def interpolate(
    text: str,
    selections: Mapping[str, Selection],
    variables: Mapping[str, Variable],
    default_format: str,
    builtins: Mapping[str, str] | None = None,
) -> str:
    """Replace $var / ${var} / ${var:format} as Grafana does for the given datasource format."""
    builtins = builtins or {}

    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(3)
        fmt = match.group(2) or default_format
        if name.startswith("__"):  # $__rate_interval, $__range, ...
            return builtins.get(f"${name}", match.group(0))
        if name not in selections:
            return match.group(0)
        values, raw_all = selections[name].resolve(variables.get(name))
        if raw_all is not None:
            return raw_all  # a custom all value goes in unformatted
        return format_lucene(values) if fmt == "lucene" else format_regex(values)

    return _VARIABLE.sub(replace, text)


def _epoch_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _range_filter(time_field: str, start: datetime, end: datetime) -> dict[str, Any]:
    return {"range": {time_field: {"gte": _epoch_ms(start), "lte": _epoch_ms(end), "format": "epoch_millis"}}}


def _bucket_agg(bucket: dict[str, Any], start: datetime, end: datetime, interval: str) -> dict[str, Any]:
    settings = bucket.get("settings", {})
    if bucket["type"] == "terms":
        order_by = settings.get("orderBy", "_count")
        return {
            "terms": {
                "field": bucket["field"],
                "size": int(settings.get("size", 10)),
                "order": {order_by: settings.get("order", "desc")},
                "min_doc_count": int(settings.get("min_doc_count", 1)),
            }
        }
    if bucket["type"] == "date_histogram":
        chosen = settings.get("interval", "auto")
        return {
            "date_histogram": {
                "field": bucket["field"],
                "fixed_interval": interval if chosen == "auto" else chosen,
                "min_doc_count": int(settings.get("min_doc_count", 0)),
                "extended_bounds": {"min": _epoch_ms(start), "max": _epoch_ms(end)},
                "format": "epoch_millis",
            }
        }
    raise ValueError(f"bucket aggregation {bucket['type']!r} is not rendered here")


def elasticsearch_body(target: dict[str, Any], start: datetime, end: datetime, interval: str = "1m") -> dict[str, Any]:
    """The `_search` body for a (variable-interpolated) Elasticsearch panel target."""
    query = {
        "bool": {
            "filter": [
                _range_filter(target["timeField"], start, end),
                {"query_string": {"analyze_wildcard": True, "query": target["query"] or "*"}},
            ]
        }
    }
    metrics = target["metrics"]
    if any(m["type"] == "raw_data" for m in metrics):
        size = int(metrics[0].get("settings", {}).get("size", 500))
        return {
            "size": size,
            "query": query,
            "sort": [{target["timeField"]: {"order": "desc", "unmapped_type": "boolean"}}, {"_doc": {"order": "desc"}}],
        }
    leaf: dict[str, Any] = {}
    for metric in metrics:
        if metric["type"] != "count":
            leaf[metric["id"]] = {metric["type"]: {"field": metric["field"]}}
    aggs = leaf
    for bucket in reversed(target["bucketAggs"]):
        node = _bucket_agg(bucket, start, end, interval)
        if aggs:
            node["aggs"] = aggs
        aggs = {bucket["id"]: node}
    return {"size": 0, "query": query, "aggs": aggs}


def variable_body(variable: Variable, start: datetime, end: datetime, time_field: str) -> dict[str, Any]:
    """The terms query Grafana runs to list an Elasticsearch variable's options."""
    spec = variable.query
    return {
        "size": 0,
        "query": {"bool": {"filter": [_range_filter(time_field, start, end)]}},
        "aggs": {
            "1": {"terms": {"field": spec["field"], "size": int(spec.get("size", 500)), "order": {"_key": "asc"}}}
        },
    }


def annotation_body(annotation: dict[str, Any], start: datetime, end: datetime) -> dict[str, Any]:
    query = {
        "bool": {
            "filter": [
                _range_filter(annotation["timeField"], start, end),
                {"query_string": {"query": annotation["query"]}},
            ]
        }
    }
    return {"size": 10000, "query": query}


@dataclass
class PanelTarget:
    dashboard: str
    panel: str
    panel_type: str
    target: dict[str, Any]  # the target as in the dashboard JSON


def targets(dashboard: Dashboard) -> Iterator[PanelTarget]:
    """Every query target of every panel, as the dashboard JSON holds it."""
    for panel_json in dashboard.to_json()["panels"]:
        for target in panel_json.get("targets", []):
            yield PanelTarget(dashboard.uid, panel_json["title"], panel_json["type"], target)


def interpolated_target(
    item: PanelTarget,
    dashboard: Dashboard,
    selections: Mapping[str, Selection],
    rate_interval: str = "1m",
    range_: str = "1h",
) -> dict[str, Any]:
    """The target with variables replaced: `expr` in the regex format, `query` in lucene."""
    variables = {v.name: v for v in dashboard.variables}
    builtins = {"$__rate_interval": rate_interval, "$__interval": rate_interval, "$__range": range_}
    target = json.loads(json.dumps(item.target))
    if "expr" in target:
        target["expr"] = interpolate(target["expr"], selections, variables, "regex", builtins)
    if "query" in target:
        target["query"] = interpolate(target["query"], selections, variables, "lucene", builtins)
    return target
