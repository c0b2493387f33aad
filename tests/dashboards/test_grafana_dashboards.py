"""The generated Grafana dashboards and provisioning: consistent with each other, with the
store's Elasticsearch mapping and with the metrics, and committed as `build` writes them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from finsentry import metrics
from finsentry.dashboards.grafana import build, datasources, market, pipeline, queries
from finsentry.store.es_schema import ALERT_MAPPING, DOCUMENT_MAPPING
from finsentry.training import telemetry

DASHBOARDS = build.dashboards()
KNOWN_PANEL_TYPES = {"row", "timeseries", "table", "stat", "state-timeline", "barchart", "bargauge"}


def mapped_fields(mapping: dict, prefix: str = "") -> set[str]:
    fields = set()
    for name, spec in mapping.get("properties", {}).items():
        path = f"{prefix}{name}"
        fields.add(path)
        fields |= mapped_fields(spec, f"{path}.")
        fields |= {f"{path}.{sub}" for sub in spec.get("fields", {})}
    return fields


def test_committed_files_are_exactly_what_build_writes(tmp_path):
    build.write(tmp_path)
    fresh = {p.relative_to(tmp_path): p.read_text() for p in tmp_path.rglob("*") if p.is_file()}
    committed = {
        p.relative_to(build.GENERATED_DIR): p.read_text() for p in build.GENERATED_DIR.rglob("*") if p.is_file()
    }
    assert set(fresh) == set(committed), (
        "run `finsentry dashboards build -o dashboards/grafana/generated` and commit the result"
    )
    for path, content in fresh.items():
        assert committed[path] == content, (
            f"{path} differs: run `finsentry dashboards build -o dashboards/grafana/generated` and commit"
        )


def test_every_panel_datasource_is_provisioned_with_that_uid():
    provisioned = {d["uid"]: d["type"] for d in datasources.provisioning()["datasources"]}
    seen = set()
    for dashboard in DASHBOARDS:
        model = dashboard.to_json()
        refs = [p["datasource"] for p in model["panels"] if "datasource" in p]
        refs += [t["datasource"] for p in model["panels"] for t in p.get("targets", [])]
        refs += [v["datasource"] for v in model["templating"]["list"]]
        refs += [a["datasource"] for a in model["annotations"]["list"] if not a.get("builtIn")]
        for ref in refs:
            assert provisioned.get(ref["uid"]) == ref["type"], f"{dashboard.uid}: {ref} is not provisioned"
            seen.add(ref["uid"])
    assert seen == set(provisioned), "a provisioned datasource no dashboard uses"


def test_the_dashboard_provider_loads_the_generated_folder():
    provider = yaml.safe_load((build.GENERATED_DIR / "provisioning/dashboards/finsentry.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == datasources.DASHBOARDS_PATH
    files = sorted(p.name for p in (build.GENERATED_DIR / "dashboards").glob("*.json"))
    assert files == sorted(f"{d.uid}.json" for d in DASHBOARDS)


def test_panels_have_known_types_unique_ids_and_fit_the_grid():
    for dashboard in DASHBOARDS:
        panels = dashboard.to_json()["panels"]
        assert len({p["id"] for p in panels}) == len(panels)
        for p in panels:
            assert p["type"] in KNOWN_PANEL_TYPES, p["title"]
            g = p["gridPos"]
            assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
            if p["type"] != "row":
                assert p["targets"], f"{p['title']} has no query"
                assert p["description"], f"{p['title']} has no description"
        # No two panels overlap.
        cells = set()
        for p in panels:
            g = p["gridPos"]
            mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not cells & mine, f"{p['title']} overlaps another panel"
            cells |= mine


def test_the_issue_asks_for_these_panels():
    titles = {d.uid: {p.title for p in d.panels} for d in DASHBOARDS}
    assert {
        "Sentiment trend per topic",
        "Negative share per topic",
        "Volume per topic",
        "Sentiment per entity",
        "Negative share per watched entity",
        "Latest most negative headlines",
    } <= titles[market.UID]
    assert {
        "Throughput",
        "Ingest → stored latency",
        "Consumer lag",
        "Batch size",
        "Dead letters by stage and reason",
        "Store errors",
        "Model version timeline",
        "Retrain runs",
    } <= titles[pipeline.UID]
    variables = {v.name for v in market.dashboard().variables}
    assert variables == {"topic", "entity", "source"}
    assert market.dashboard().annotations and market.dashboard().annotations[0].datasource == datasources.ALERTS


def test_elasticsearch_fields_exist_in_the_store_mapping():
    mappings = {
        datasources.DOCUMENTS.uid: mapped_fields(DOCUMENT_MAPPING),
        datasources.ALERTS.uid: mapped_fields(ALERT_MAPPING),
    }
    field_in_query = re.compile(r"([a-z_][a-z_.]*):")
    dashboard = market.dashboard()
    for item in queries.targets(dashboard):
        target = item.target
        if target["datasource"]["type"] != "elasticsearch":
            continue
        known = mappings[target["datasource"]["uid"]]
        used = {m["field"] for m in target["metrics"] if "field" in m} | {b["field"] for b in target["bucketAggs"]}
        without_variables = re.sub(r"\$\{[^}]*\}", "", target["query"])  # ${entity:regex} names no field
        used |= set(field_in_query.findall(without_variables)) | {target["timeField"]}
        assert used <= known, f"{item.panel}: {used - known} not in the mapping"
    for variable in dashboard.variables:
        assert variable.query["field"] in mappings[datasources.DOCUMENTS.uid]
    for annotation in dashboard.annotations:
        t = annotation.target
        assert {t["timeField"], t["timeEndField"], t["textField"], t["tagsField"]} <= mappings[datasources.ALERTS.uid]
    # Table columns the headline panel keeps are stored fields.
    headline = next(p for p in dashboard.panels if p.title == "Latest most negative headlines")
    kept = set(headline.transformations[0]["options"]["includeByName"])
    assert kept <= mappings[datasources.DOCUMENTS.uid]


def prometheus_metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(finsentry_[a-z_]+)", expr))


def exported_names() -> set[str]:
    names = set()
    for value in [*vars(metrics).values(), *vars(telemetry).values()]:
        if not isinstance(value, MetricWrapperBase):
            continue
        for family in value.describe():
            names.add(family.name)
            names |= {f"{family.name}{suffix}" for suffix in ("_total", "_bucket", "_sum", "_count", "_created")}
    return names


def test_every_prometheus_metric_a_panel_or_rule_reads_is_defined_in_the_metrics_modules():
    exported = exported_names()
    exprs = [t.target["expr"] for d in DASHBOARDS for t in queries.targets(d) if "expr" in t.target]
    rules_dir = Path(build.__file__).resolve().parents[1] / "prometheus" / "rules"
    for path in rules_dir.glob("*.yml"):
        exprs += [r["expr"] for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]
    for expr in exprs:
        unknown = prometheus_metric_names(expr) - exported
        assert not unknown, f"{unknown} in {expr!r} is not a metric of finsentry/metrics.py or training/telemetry.py"


@pytest.mark.parametrize(
    "values, expected",
    [
        (["Earnings"], "Earnings"),
        (["Energy / Oil"], r"Energy\ \/\ Oil"),
        (["Earnings", 'say "hi"'], r'("Earnings" OR "say\ \"hi\"")'),
    ],
)
def test_lucene_formatting_matches_grafana(values, expected):
    assert queries.format_lucene(values) == expected


def test_all_expands_to_every_option_unless_a_custom_all_value_is_set():
    dashboard = market.dashboard()
    item = next(t for t in queries.targets(dashboard) if t.panel == "Sentiment trend per topic")
    selections = {
        "topic": queries.Selection([queries.ALL], ["Earnings", "Macro"]),
        "source": queries.Selection([queries.ALL], ["wire-a"]),
    }
    target = queries.interpolated_target(item, dashboard, selections)
    assert target["query"] == 'topic.label:("Earnings" OR "Macro") AND source:*'
    prom = next(t for t in queries.targets(dashboard) if t.panel == "Negative share per topic")
    assert (
        queries.interpolated_target(prom, dashboard, selections)["expr"]
        == 'max by (topic) (finsentry_negative_share{topic=~"(Earnings|Macro)"})'
    )


def test_the_entity_variable_filters_the_watched_entity_panel_and_the_document_panels():
    dashboard = market.dashboard()
    share = next(t for t in queries.targets(dashboard) if t.panel == "Negative share per watched entity")
    volume = next(t for t in queries.targets(dashboard) if t.panel == "Volume per entity")
    every = {"entity": queries.Selection([queries.ALL], ["AAPL", "XOM"]), "source": queries.Selection([queries.ALL])}
    # "All" must be a regex that matches everything, for PromQL and for the Lucene /regex/ alike.
    assert (
        queries.interpolated_target(share, dashboard, every)["expr"]
        == 'max by (entity) (finsentry_entity_negative_share{entity=~".*"})'
    )
    assert queries.interpolated_target(volume, dashboard, every)["query"] == "entities:/.*/ AND source:*"
    two = {"entity": queries.Selection(["AAPL", "XOM"]), "source": queries.Selection(["wire-a"])}
    assert (
        queries.interpolated_target(share, dashboard, two)["expr"]
        == 'max by (entity) (finsentry_entity_negative_share{entity=~"(AAPL|XOM)"})'
    )
    assert queries.interpolated_target(volume, dashboard, two)["query"] == r"entities:/(AAPL|XOM)/ AND source:wire\-a"


def test_generated_json_parses_and_names_the_panels_datasource_uids():
    for path in (build.GENERATED_DIR / "dashboards").glob("*.json"):
        model = json.loads(path.read_text())
        assert model["uid"] == path.stem and model["schemaVersion"] >= 36
