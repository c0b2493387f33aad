"""Typed builders for Grafana dashboard JSON (schemaVersion 39, Grafana 10/11).

Plain dataclasses, one per concept of the dashboard model, each with `to_json()`. They
cover what finsentry's dashboards use, nothing more; anything else goes through the
`options` / `field_config` dicts of a panel.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Literal, Union

SCHEMA_VERSION = 39


@dataclass(frozen=True)
class DatasourceRef:
    type: Literal["prometheus", "elasticsearch"]
    uid: str

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "uid": self.uid}


@dataclass
class PromQuery:
    expr: str
    legend: str = "__auto"
    instant: bool = False
    format: Literal["time_series", "table", "heatmap"] = "time_series"

    def to_json(self, ref_id: str, datasource: DatasourceRef) -> dict[str, Any]:
        return {
            "refId": ref_id,
            "datasource": datasource.to_json(),
            "expr": self.expr,
            "legendFormat": self.legend,
            "range": not self.instant,
            "instant": self.instant,
            "format": self.format,
            "editorMode": "code",
        }


@dataclass
class EsMetric:
    """One metric of an Elasticsearch query: count, avg, max, min, sum, cardinality, raw_data."""

    type: str
    field: str | None = None
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self, metric_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {"id": metric_id, "type": self.type}
        if self.field:
            out["field"] = self.field
        if self.settings:
            out["settings"] = dict(self.settings)
        return out


@dataclass
class EsBucket:
    """One bucket aggregation: terms or date_histogram (outermost first in a query)."""

    type: Literal["terms", "date_histogram"]
    field: str
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self, bucket_id: str) -> dict[str, Any]:
        return {"id": bucket_id, "type": self.type, "field": self.field, "settings": dict(self.settings)}


def terms(field_name: str, size: int = 10, order_by: str = "_count") -> EsBucket:
    return EsBucket(
        "terms", field_name, {"size": str(size), "order": "desc", "orderBy": order_by, "min_doc_count": "1"}
    )


def date_histogram(field_name: str, interval: str = "auto") -> EsBucket:
    return EsBucket("date_histogram", field_name, {"interval": interval, "min_doc_count": "0", "trimEdges": "0"})


@dataclass
class EsQuery:
    query: str
    metrics: list[EsMetric]
    buckets: list[EsBucket] = dataclasses.field(default_factory=list)
    time_field: str = "published_at"
    alias: str = ""

    def to_json(self, ref_id: str, datasource: DatasourceRef) -> dict[str, Any]:
        # Metric ids are 1..n, bucket ids continue after them, as Grafana's editor numbers them.
        metrics = [m.to_json(str(i + 1)) for i, m in enumerate(self.metrics)]
        buckets = [b.to_json(str(len(self.metrics) + i + 1)) for i, b in enumerate(self.buckets)]
        return {
            "refId": ref_id,
            "datasource": datasource.to_json(),
            "query": self.query,
            "alias": self.alias,
            "metrics": metrics,
            "bucketAggs": buckets,
            "timeField": self.time_field,
        }


Query = Union[PromQuery, EsQuery]


@dataclass
class Panel:
    title: str
    type: str  # timeseries, table, stat, state-timeline, barchart, bargauge, row
    datasource: DatasourceRef | None = None
    queries: list[Query] = dataclasses.field(default_factory=list)
    description: str = ""
    width: int = 12
    height: int = 8
    unit: str | None = None
    min: float | None = None
    max: float | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)  # extra fieldConfig.defaults
    overrides: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    transformations: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def to_json(self, panel_id: int, x: int, y: int) -> dict[str, Any]:
        grid = {"h": self.height, "w": self.width, "x": x, "y": y}
        if self.type == "row":
            return {
                "id": panel_id,
                "type": "row",
                "title": self.title,
                "collapsed": False,
                "gridPos": grid,
                "panels": [],
            }
        defaults: dict[str, Any] = dict(self.defaults)
        for key in ("unit", "min", "max"):
            if getattr(self, key) is not None:
                defaults[key] = getattr(self, key)
        out: dict[str, Any] = {
            "id": panel_id,
            "type": self.type,
            "title": self.title,
            "description": self.description,
            "gridPos": grid,
            "fieldConfig": {"defaults": defaults, "overrides": list(self.overrides)},
            "options": dict(self.options),
            "targets": [q.to_json(chr(ord("A") + i), self.datasource) for i, q in enumerate(self.queries)],
        }
        if self.datasource is not None:
            out["datasource"] = self.datasource.to_json()
        if self.transformations:
            out["transformations"] = list(self.transformations)
        return out


def row(title: str) -> Panel:
    return Panel(title=title, type="row", width=24, height=1)


@dataclass
class Variable:
    """A query variable (template variable) filled from a datasource."""

    name: str
    label: str
    datasource: DatasourceRef
    query: Any  # Elasticsearch: {"find": "terms", "field": ...}; Prometheus: "label_values(metric, label)"
    multi: bool = True
    include_all: bool = True
    all_value: str | None = None  # None: "All" means every value, formatted per datasource
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        query = self.query
        if isinstance(query, dict):
            # Grafana stores Elasticsearch variable queries as a JSON string.
            query = json.dumps(query, separators=(",", ":"))
        return {
            "name": self.name,
            "label": self.label,
            "type": "query",
            "description": self.description,
            "datasource": self.datasource.to_json(),
            "query": query,
            "definition": query,
            "refresh": 2,
            "sort": 1,
            "multi": self.multi,
            "includeAll": self.include_all,
            "allValue": self.all_value,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "options": [],
            "hide": 0,
            "regex": "",
        }


@dataclass
class Annotation:
    name: str
    datasource: DatasourceRef
    target: dict[str, Any]  # the datasource-specific annotation query
    color: str = "red"
    enabled: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "datasource": self.datasource.to_json(),
            "enable": self.enabled,
            "iconColor": self.color,
            **self.target,
        }


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    panels: list[Panel]
    tags: list[str] = dataclasses.field(default_factory=list)
    variables: list[Variable] = dataclasses.field(default_factory=list)
    annotations: list[Annotation] = dataclasses.field(default_factory=list)
    time_from: str = "now-6h"
    refresh: str = "30s"
    links: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def layout(self) -> list[tuple[Panel, int, int]]:
        """Place panels left to right in rows of 24 columns; a row panel starts a new line."""
        placed = []
        x = y = line_height = 0
        for panel in self.panels:
            if panel.type == "row" or x + panel.width > 24:
                y += line_height
                x = line_height = 0
            placed.append((panel, x, y))
            if panel.type == "row":
                y += panel.height
                continue
            x += panel.width
            line_height = max(line_height, panel.height)
        return placed

    def to_json(self) -> dict[str, Any]:
        builtin = {
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        }
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": list(self.tags),
            "timezone": "utc",
            "editable": True,
            "graphTooltip": 1,
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "refresh": self.refresh,
            "time": {"from": self.time_from, "to": "now"},
            "timepicker": {},
            "links": list(self.links),
            "templating": {"list": [v.to_json() for v in self.variables]},
            "annotations": {"list": [builtin] + [a.to_json() for a in self.annotations]},
            "panels": [p.to_json(i + 1, x, y) for i, (p, x, y) in enumerate(self.layout())],
        }
