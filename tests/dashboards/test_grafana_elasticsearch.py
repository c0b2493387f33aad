"""Every Elasticsearch query of the "Market sentiment" dashboard — panels, template
variables, annotations — rendered as Grafana sends it and run against osmem-server, an
in-memory OpenSearch-compatible server that stands in for Elasticsearch here. The index is
created and filled by the real ElasticsearchStore (store/elasticsearch.py), so the
dashboards read the mapping the pipeline writes."""

from __future__ import annotations

import json
import urllib.request
from datetime import timedelta

import pytest
from dashboard_helpers import CORPUS_END, corpus, episode_alert

from finsentry.dashboards.grafana import datasources, market, queries
from finsentry.settings import Settings
from finsentry.store.elasticsearch import ElasticsearchStore

START, END = CORPUS_END - timedelta(hours=6), CORPUS_END + timedelta(minutes=1)
PREFIX = "finsentry"


@pytest.fixture(scope="module")
def es_url():
    from osmem_server import OsmemServer

    server = OsmemServer.start(japanese=False)
    try:
        yield server.url
    finally:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="module")
def filled(es_url):
    import asyncio

    async def fill() -> int:
        settings = Settings(_env_file=None, es_replicas=0, es_compat="opensearch", es_index_prefix=PREFIX)
        async with ElasticsearchStore(es_url, settings) as store:
            docs = corpus(CORPUS_END)
            result = await store.upsert_many(docs)
            assert not result.rejected
            await store.put_alert(episode_alert(CORPUS_END, docs))
            await store.refresh()
            return len(docs)

    return asyncio.run(fill())


def search(es_url: str, datasource_uid: str, body: dict) -> dict:
    index = next(
        d["jsonData"]["index"] for d in datasources.provisioning(PREFIX)["datasources"] if d["uid"] == datasource_uid
    )
    request = urllib.request.Request(
        f"{es_url}/{index}/_search",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())


def variable_options(es_url: str, name: str) -> list[str]:
    variable = next(v for v in market.dashboard().variables if v.name == name)
    answer = search(
        es_url, variable.datasource.uid, queries.variable_body(variable, START, END, datasources.DOCUMENTS_TIME_FIELD)
    )
    return [b["key"] for b in answer["aggregations"]["1"]["buckets"]]


def test_template_variables_list_the_stored_values(es_url, filled):
    assert set(variable_options(es_url, "topic")) == {"Earnings", "Macro", "Energy / Oil", "M&A / Investments"}
    assert set(variable_options(es_url, "entity")) == {"AAPL", "MSFT", "XOM"}
    assert set(variable_options(es_url, "source")) == {"wire-a", "wire-b", "reviews-c"}


def filled_buckets(node: dict, bucket_ids: list[str], metric_ids: list[str]) -> list[dict]:
    """The innermost buckets of a nested aggregation answer that hold documents."""
    if not bucket_ids:
        return [node] if node.get("doc_count", 0) > 0 and all(node[m]["value"] is not None for m in metric_ids) else []
    out = []
    for bucket in node[bucket_ids[0]]["buckets"]:
        out += filled_buckets(bucket, bucket_ids[1:], metric_ids)
    return out


def selections(es_url: str, all_values: bool) -> dict[str, queries.Selection]:
    if all_values:
        return {
            name: queries.Selection([queries.ALL], variable_options(es_url, name))
            for name in ("topic", "entity", "source")
        }
    # One value each (AAPL appears in wire-a documents); a topic with characters Lucene must escape.
    return {
        "topic": queries.Selection(["Energy / Oil"]),
        "entity": queries.Selection(["AAPL"]),
        "source": queries.Selection(["wire-a"]),
    }


ES_TARGETS = [t for t in queries.targets(market.dashboard()) if t.target["datasource"]["type"] == "elasticsearch"]


@pytest.mark.parametrize("all_values", [True, False], ids=["all", "one-value-each"])
@pytest.mark.parametrize("item", ES_TARGETS, ids=[t.panel for t in ES_TARGETS])
def test_every_elasticsearch_panel_query_returns_buckets(es_url, filled, item, all_values):
    dashboard = market.dashboard()
    target = queries.interpolated_target(item, dashboard, selections(es_url, all_values))
    answer = search(es_url, target["datasource"]["uid"], queries.elasticsearch_body(target, START, END, "5m"))
    if any(m["type"] == "raw_data" for m in target["metrics"]):
        hits = answer["hits"]["hits"]
        assert hits, f"{item.panel}: no rows for {target['query']}"
        kept = item.panel == "Latest most negative headlines"
        for hit in hits:
            source = hit["_source"]
            if kept:
                assert source["sentiment"]["label"] == "negative" and source["title"] and source["url"]
                if not all_values:
                    assert source["topic"]["label"] == "Energy / Oil" and source["source"] == "wire-a"
        return
    bucket_ids = [b["id"] for b in target["bucketAggs"]]
    metric_ids = [m["id"] for m in target["metrics"] if m["type"] != "count"]
    buckets = filled_buckets(answer["aggregations"], bucket_ids, metric_ids)
    assert buckets, f"{item.panel}: no buckets with data for {target['query']}"
    if not all_values:  # the filter really filters: only the chosen topic or entity comes back
        outer_field = target["bucketAggs"][0]["field"]
        keys = {b["key"] for b in answer["aggregations"][bucket_ids[0]]["buckets"]}
        assert keys == {"topic.label": {"Energy / Oil"}, "entities": {"AAPL"}}[outer_field]


def test_the_topic_episode_shows_in_the_negative_documents_panel(es_url, filled):
    dashboard = market.dashboard()
    item = next(t for t in queries.targets(dashboard) if t.panel == "Negative documents per topic")
    target = queries.interpolated_target(item, dashboard, selections(es_url, True))
    answer = search(es_url, target["datasource"]["uid"], queries.elasticsearch_body(target, START, END, "30m"))
    per_topic = {b["key"]: [h["doc_count"] for h in b["3"]["buckets"]] for b in answer["aggregations"]["2"]["buckets"]}
    earnings = [n for n in per_topic["Earnings"] if n]
    assert earnings[-1] > 2 * max(earnings[:-1])  # the last half hour is the negative episode


def test_alert_annotations_come_from_the_alerts_index(es_url, filled):
    [annotation] = market.dashboard().annotations
    answer = search(es_url, annotation.datasource.uid, queries.annotation_body(annotation.target, START, END))
    [hit] = answer["hits"]["hits"]
    source = hit["_source"]
    t = annotation.target
    assert source[t["textField"]] == "Earnings" and source[t["tagsField"]] == "critical"
    assert source[t["timeField"]] < source[t["timeEndField"]]
