"""What only the Elasticsearch store has: template, daily indices behind an alias, the
OpenSearch media-type node, URL options, and staying unavailable (not failing) while the
cluster refuses writes.

osmem-server stands in for Elasticsearch (an in-memory OpenSearch-compatible server);
a real Elasticsearch is used instead where ES_URL is set.
"""

from __future__ import annotations

import os

import pytest
from elastic_transport import HttpHeaders

from finsentry.streams.sinks.base import StoreUnavailable
from finsentry.streams.sinks.elasticsearch import ElasticsearchStore
from finsentry.streams.sinks.opensearch_compat import _as_product, plain_media_types
from finsentry.streams.sinks.retry import write_with_retry
from store_helpers import alert, http_json, scored, store_settings

ES_BACKENDS = ["osmem"] + (["elasticsearch"] if os.environ.get("ES_URL") else [])


@pytest.fixture(params=ES_BACKENDS)
async def es_store(request, make_store):
    store = make_store(request.param)
    await store.open()
    yield store
    await store.close()


async def test_daily_indices_behind_the_alias_with_the_explicit_mapping(es_store):
    c, names = es_store.client, es_store.names
    template = (await c.indices.get_index_template(name=names.docs_template))["index_templates"][0]["index_template"]
    assert template["index_patterns"] == [names.docs_pattern]
    day2 = 24 * 60
    await es_store.upsert_many([scored(0), scored(1, minutes=day2 + 1), scored(2, minutes=day2 + 2)])
    await es_store.upsert_many([scored(1, minutes=day2 + 1, title="again")])  # re-delivery: same day index
    await es_store.refresh()
    counts = {row["index"]: int(row["docs.count"]) for row in
              await c.cat.indices(index=names.docs_pattern, format="json", h="index,docs.count")}
    assert counts == {f"{names.prefix}-docs-2024.03.04": 1, f"{names.prefix}-docs-2024.03.05": 2}
    aliases = await c.indices.get_alias(name=names.docs_alias)
    assert set(aliases.body) == set(counts)
    mapping = (await c.indices.get_mapping(index=f"{names.prefix}-docs-2024.03.05")).body
    props = next(iter(mapping.values()))["mappings"]["properties"]
    assert props["sentiment"]["properties"]["score"]["type"] == "double"
    assert props["entities"]["type"] == "keyword"
    assert props["title"]["type"] == "text" and props["title"]["fields"]["raw"]["type"] == "keyword"
    assert props["published_at"]["type"] == "date"
    assert props["explanation"]["enabled"] is False
    for index in (names.alerts, names.labels):
        assert await c.indices.exists(index=index)


async def test_alert_evidence_with_explanations_is_kept_verbatim(es_store):
    from finsentry.streams.records import Evidence

    evidence = [Evidence(id="doc-1", title="Plant fire", score=-0.9, explanation=[("fire", -0.7), ("plant", 0.1)])]
    await es_store.put_alert(alert(0, evidence=evidence))
    (stored,) = await es_store.alerts()
    assert stored["evidence"][0]["explanation"] == [["fire", -0.7], ["plant", 0.1]]


def test_plain_media_types_replace_only_the_vendor_types():
    headers = HttpHeaders({"Accept": "application/vnd.elasticsearch+json; compatible-with=9",
                           "Content-Type": "application/vnd.elasticsearch+x-ndjson; compatible-with=9",
                           "X-Opaque-Id": "abc"})
    plain = plain_media_types(headers)
    assert (plain["accept"], plain["content-type"], plain["x-opaque-id"]) == (
        "application/json", "application/x-ndjson", "abc")
    assert headers["accept"].startswith("application/vnd")  # the caller's headers are not modified


def test_responses_are_marked_as_the_product_only_when_the_server_did_not_say():
    from elastic_transport import ApiResponseMeta, NodeConfig
    from elastic_transport._node import NodeApiResponse

    def response(headers):
        meta = ApiResponseMeta(status=200, http_version="1.1", headers=HttpHeaders(headers), duration=0.0,
                               node=NodeConfig("http", "localhost", 9200))
        return NodeApiResponse(meta, b"{}")

    assert _as_product(response({})).meta.headers["x-elastic-product"] == "Elasticsearch"
    assert _as_product(response({"X-Elastic-Product": "Other"})).meta.headers["x-elastic-product"] == "Other"


async def test_without_compat_opensearch_refuses_the_vendor_media_type_with_a_clear_error(osmem_server):
    clone = osmem_server.clone()
    try:
        store = ElasticsearchStore(clone.url, store_settings())
        with pytest.raises(ValueError, match="compat=opensearch"):
            await store.open()
        # The same server through the compatibility node: accepted.
        async with ElasticsearchStore(clone.url, store_settings(es_compat="opensearch")) as store:
            assert (await store.upsert_many([scored(1)])).stored == 1
    finally:
        clone.close()


def test_url_options_and_credentials_never_shown():
    store = ElasticsearchStore("https://user:s3cret@es.example:9243?compat=opensearch&prefix=team-a", store_settings())
    assert store.url == "https://es.example:9243?compat=opensearch&prefix=team-a"
    assert (store.compat, store.names.docs_alias, store.names.alerts) == ("opensearch", "team-a-docs", "team-a-alerts")
    options = store._client_options()
    assert options["basic_auth"] == ("user", "s3cret") and options["hosts"] == ["https://es.example:9243"]
    with pytest.raises(ValueError, match="unknown store URL option"):
        ElasticsearchStore("http://localhost:9200?shards=3", store_settings())
    with pytest.raises(ValueError, match="compat"):
        ElasticsearchStore("http://localhost:9200?compat=solr", store_settings())
    with pytest.raises(ValueError, match="lowercase"):
        ElasticsearchStore("http://localhost:9200?prefix=Team", store_settings())


def test_auth_and_tls_come_from_settings():
    from pydantic import SecretStr

    settings = store_settings(es_api_key=SecretStr("k3y"), es_verify_certs=False, es_ca_certs="/etc/ca.pem")
    options = ElasticsearchStore("https://es:9200", settings)._client_options()
    assert (options["api_key"], options["verify_certs"], options["ca_certs"]) == ("k3y", False, "/etc/ca.pem")
    assert "basic_auth" not in options
    settings = store_settings(es_username="elastic", es_password=SecretStr("pw"))
    options = ElasticsearchStore("http://es:9200", settings)._client_options()
    assert options["basic_auth"] == ("elastic", "pw") and "verify_certs" not in options


async def test_a_cluster_refusing_writes_makes_the_store_unavailable_then_the_retry_writes_once():
    """osmem's frozen base answers writes with 403, as a read-only cluster block does."""
    from osmem_server import OsmemServer

    server = OsmemServer.start(japanese=False)
    try:
        async with ElasticsearchStore(f"{server.url}?compat=opensearch", store_settings(store_retry_budget_s=0.3)) as store:
            await store.upsert_many([scored(0)])
            server.freeze()
            with pytest.raises(StoreUnavailable, match="403"):
                await store.upsert_many([scored(1)])
            assert await store.count() == 1  # reads still answer
            http_json("POST", f"{server.url}/_osmem/base/unfreeze")
            result = await write_with_retry(store, [scored(1), scored(2)], initial_backoff_s=0.01)
            assert result.stored == 2
            await store.refresh()
            assert await store.count() == 3
    finally:
        server.close()


async def test_an_unreachable_cluster_is_unavailable_within_the_budget():
    from store_helpers import free_port

    store = ElasticsearchStore(f"http://127.0.0.1:{free_port()}?compat=opensearch", store_settings(store_retry_budget_s=0.5))
    with pytest.raises(StoreUnavailable, match="127.0.0.1"):
        await store.open()
