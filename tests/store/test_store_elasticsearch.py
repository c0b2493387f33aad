"""What only the Elasticsearch store has: template, daily indices behind an alias, the
OpenSearch media-type node, URL options, retries of 429/5xx, refused credentials, staying
unavailable (not failing) while the cluster refuses writes, and the retention policy.

osmem-server stands in for Elasticsearch (an in-memory OpenSearch-compatible server);
a real Elasticsearch is used instead where ES_URL is set. Overload, restarts and security
come from es_fault_proxy, a proxy in front of osmem-server that answers errors on cue.
"""

from __future__ import annotations

import logging

import pytest
from elastic_transport import HttpHeaders
from es_fault_proxy import FaultProxy, LifecycleProxy
from prometheus_client import REGISTRY
from store_helpers import alert, http_json, require_real_elasticsearch, scored, store_settings

from finsentry.store.base import StoreUnavailable
from finsentry.store.elasticsearch import ElasticsearchStore
from finsentry.store.opensearch_compat import _as_product, plain_media_types
from finsentry.store.retry import write_with_retry

ES_BACKENDS = ["osmem", "elasticsearch"]


@pytest.fixture(params=ES_BACKENDS)
async def es_store(request, make_store):
    require_real_elasticsearch(request.param)
    store = make_store(request.param)
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def proxied(osmem_server):
    """make(**settings) → (proxy, open store) on a fresh osmem clone behind a FaultProxy."""
    opened = []

    async def make(**settings):
        clone = osmem_server.clone()
        proxy = await FaultProxy(clone.url).start()
        store = ElasticsearchStore(f"{proxy.url}?compat=opensearch", store_settings(**settings))
        opened.append((clone, proxy, store))
        await store.open()
        return proxy, store

    yield make
    for clone, proxy, store in opened:
        await store.close()
        await proxy.close()
        clone.close()


@pytest.fixture
async def behind_lifecycle_api(osmem_server):
    """make(api, **settings) → (proxy, unopened store): a fresh osmem clone behind a
    LifecycleProxy answering the "ilm" (as Elasticsearch) or "ism" (as OpenSearch) API."""
    made = []

    async def make(api: str, **settings):
        clone = osmem_server.clone()
        proxy = LifecycleProxy(clone.url, api)
        made.append((clone, proxy))
        await proxy.start()
        compat = "elasticsearch" if api == "ilm" else "opensearch"
        store = ElasticsearchStore(f"{proxy.url}?compat={compat}", store_settings(**settings))
        made[-1] += (store,)
        return proxy, store

    yield make
    for clone, proxy, store in made:
        await store.close()
        await proxy.close()
        clone.close()


def store_errors(kind: str) -> float:
    return REGISTRY.get_sample_value("finsentry_store_errors_total", {"kind": kind}) or 0.0


async def test_daily_indices_behind_the_alias_with_the_explicit_mapping(es_store):
    c, names = es_store.client, es_store.names
    template = (await c.indices.get_index_template(name=names.docs_template))["index_templates"][0]["index_template"]
    assert template["index_patterns"] == [names.docs_pattern]
    day2 = 24 * 60
    await es_store.upsert_many([scored(0), scored(1, minutes=day2 + 1), scored(2, minutes=day2 + 2)])
    await es_store.upsert_many([scored(1, minutes=day2 + 1, title="again")])  # re-delivery: same day index
    await es_store.refresh()
    counts = {
        row["index"]: int(row["docs.count"])
        for row in await c.cat.indices(index=names.docs_pattern, format="json", h="index,docs.count")
    }
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


async def test_a_re_dated_copy_the_store_rejects_leaves_the_first_copy_in_place(es_store):
    later = 2 * 24 * 60
    await es_store.upsert_many([scored(0), scored(1, meta={"rank": 4}), scored(5, minutes=later, meta={"rank": 1})])
    # doc 1 moves to the day where meta.rank is mapped as a number, with a string: refused there.
    result = await es_store.upsert_many(
        [scored(1, minutes=later, meta={"rank": "top"}), scored(0, minutes=later, title="moved")]
    )
    await es_store.refresh()
    assert result.stored == 1 and [r.id for r in result.rejected] == ["doc-00001"]
    kept = await es_store.get("doc-00001")
    assert kept["meta"] == {"rank": 4} and kept["published_at"].startswith("2024-03-04")
    assert (await es_store.get("doc-00000"))["title"] == "moved"
    assert await es_store.count() == 3


async def test_alert_evidence_with_explanations_is_kept_verbatim(es_store):
    from finsentry.records import Evidence

    evidence = [Evidence(id="doc-1", title="Plant fire", score=-0.9, explanation=[("fire", -0.7), ("plant", 0.1)])]
    await es_store.put_alert(alert(0, evidence=evidence))
    (stored,) = await es_store.alerts()
    assert stored["evidence"][0]["explanation"] == [["fire", -0.7], ["plant", 0.1]]


def test_plain_media_types_replace_only_the_vendor_types():
    headers = HttpHeaders(
        {
            "Accept": "application/vnd.elasticsearch+json; compatible-with=9",
            "Content-Type": "application/vnd.elasticsearch+x-ndjson; compatible-with=9",
            "X-Opaque-Id": "abc",
        }
    )
    plain = plain_media_types(headers)
    assert (plain["accept"], plain["content-type"], plain["x-opaque-id"]) == (
        "application/json",
        "application/x-ndjson",
        "abc",
    )
    assert headers["accept"].startswith("application/vnd")  # the caller's headers are not modified


def test_responses_are_marked_as_the_product_only_when_the_server_did_not_say():
    from elastic_transport import ApiResponseMeta, NodeConfig
    from elastic_transport._node import NodeApiResponse

    def response(headers):
        meta = ApiResponseMeta(
            status=200,
            http_version="1.1",
            headers=HttpHeaders(headers),
            duration=0.0,
            node=NodeConfig("http", "localhost", 9200),
        )
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


async def test_429_and_503_for_the_request_or_one_item_are_retried_and_each_document_stored_once(proxied):
    proxy, store = await proxied(store_retry_budget_s=5.0)
    transient = store_errors("transient")
    proxy.request_faults += [("/_bulk", 429), ("/_bulk", 503)]  # the whole bulk request, twice
    proxy.item_faults["doc-00002"] = [429, 503]  # then one item of the bulk answer, twice
    result = await store.upsert_many([scored(i) for i in range(5)])
    assert (result.stored, result.rejected) == (5, [])
    assert store_errors("transient") - transient == 4
    # Each document reached the server once: a retry re-sends only what is not stored yet.
    assert proxy.forwarded == {f"doc-{i:05d}": 1 for i in range(5)}
    await store.refresh()
    assert await store.count() == 5 and (await store.get("doc-00002"))["title"] == "Story 2"


async def test_an_item_failing_past_the_budget_is_unavailable_then_the_retry_stores_it_once(proxied):
    proxy, store = await proxied(store_retry_budget_s=0.2)
    unavailable = store_errors("unavailable")
    proxy.item_faults["doc-00001"] = [503] * 8  # more failures than one call retries
    result = await write_with_retry(store, [scored(0), scored(1), scored(2)], initial_backoff_s=0.01)
    assert (result.stored, result.rejected) == (3, [])
    assert store_errors("unavailable") > unavailable and not proxy.item_faults["doc-00001"]
    # The caller re-sends the whole batch (an upsert by id); the failing item got through once.
    assert proxy.forwarded["doc-00001"] == 1 and proxy.forwarded["doc-00000"] > 1
    await store.refresh()
    assert await store.count() == 3


async def test_refused_credentials_keep_the_batch_waiting_logged_and_counted_as_auth(proxied, caplog):
    proxy, store = await proxied(store_retry_budget_s=5.0)
    auth, transient = store_errors("auth"), store_errors("transient")
    proxy.request_faults += [("/_bulk", 401), ("/_bulk", 403)]  # bad password, then missing privilege
    proxy.item_faults["doc-00001"] = [403]  # a privilege missing on one index
    with caplog.at_level(logging.ERROR, logger="finsentry.store"):
        result = await write_with_retry(store, [scored(0), scored(1)], initial_backoff_s=0.01)
    assert (result.stored, result.rejected) == (2, [])
    assert store_errors("auth") - auth == 3 and store_errors("transient") == transient
    refusals = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.ERROR and "authentication or authorization failed" in r.getMessage()
    ]
    assert [m.split("error=")[1][:3] for m in refusals] == ["401", "403", "403"]
    assert proxy.forwarded["doc-00001"] == 1
    await store.refresh()
    assert await store.count() == 2


async def test_a_cluster_refusing_writes_makes_the_store_unavailable_then_the_retry_writes_once():
    """osmem's frozen base answers writes with 403, as a read-only cluster block does."""
    from osmem_server import OsmemServer

    server = OsmemServer.start(japanese=False)
    try:
        async with ElasticsearchStore(
            f"{server.url}?compat=opensearch", store_settings(store_retry_budget_s=0.3)
        ) as store:
            await store.upsert_many([scored(0)])
            server.freeze()
            auth = store_errors("auth")
            with pytest.raises(StoreUnavailable, match="403"):
                await store.upsert_many([scored(1)])
            assert store_errors("auth") == auth  # a write block, not refused credentials
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

    store = ElasticsearchStore(
        f"http://127.0.0.1:{free_port()}?compat=opensearch", store_settings(store_retry_budget_s=0.5)
    )
    with pytest.raises(StoreUnavailable, match="127.0.0.1"):
        await store.open()


# --- retention policy ----------------------------------------------------------------------
# osmem-server has neither Elasticsearch's ILM API nor OpenSearch's ISM API: LifecycleProxy
# stands in for them (and, for ILM, for Elasticsearch itself) in front of it.

FALLBACK = "retention falls back to `finsentry store prune`"


def template_settings(proxy: LifecycleProxy) -> dict:
    return proxy.templates[-1]["template"]["settings"]


async def test_start_up_creates_an_ilm_policy_the_docs_template_names(behind_lifecycle_api):
    proxy, store = await behind_lifecycle_api("ilm", es_retention_days=30)
    await store.open()
    name = f"{store.names.prefix}-docs-retention"
    # One policy: the alerts share one index, which a lifecycle policy would delete whole.
    ((put_name, body),) = proxy.policy_puts
    assert put_name == name
    # The index of day D goes when the prune job would drop D: once today is more than 30 days after D.
    assert body["policy"]["phases"] == {"delete": {"min_age": "31d", "actions": {"delete": {}}}}
    settings = template_settings(proxy)
    assert settings["index.lifecycle.name"] == name
    assert settings["index.lifecycle.parse_origination_date"] is True  # age from the day in the index name
    assert (await store.upsert_many([scored(1)])).stored == 1
    await store.refresh()
    assert await store.count() == 1


async def test_start_up_creates_an_ism_policy_for_the_daily_indices_on_opensearch(behind_lifecycle_api):
    proxy, store = await behind_lifecycle_api("ism", es_retention_days=7)
    await store.open()
    ((put_name, body),) = proxy.policy_puts
    policy = body["policy"]
    assert put_name == f"{store.names.prefix}-docs-retention"
    states = {state["name"]: state for state in policy["states"]}
    assert states[policy["default_state"]]["transitions"] == [
        {"state_name": "delete", "conditions": {"min_index_age": "8d"}}
    ]
    assert states["delete"]["actions"] == [{"delete": {}}]
    assert [t["index_patterns"] for t in policy["ism_template"]] == [[store.names.docs_pattern]]
    assert not [key for key in template_settings(proxy) if key.startswith("index.lifecycle")]


@pytest.mark.parametrize("api", ["ilm", "ism"])
async def test_an_existing_retention_policy_is_left_as_the_operator_edited_it(behind_lifecycle_api, api):
    proxy, store = await behind_lifecycle_api(api, es_retention_days=30)
    name = f"{store.names.prefix}-docs-retention"
    edited = {"phases": {"delete": {"min_age": "400d", "actions": {"delete": {}}}}}
    proxy.policies[name] = edited
    await store.open()
    await store.close()
    await store.open()  # every start-up finds it
    assert proxy.policy_puts == [] and proxy.policies[name] is edited
    if api == "ilm":
        assert template_settings(proxy)["index.lifecycle.name"] == name


async def test_a_refused_ilm_api_falls_back_to_the_prune_job_without_counting_as_refused_credentials(
    behind_lifecycle_api, caplog
):
    proxy, store = await behind_lifecycle_api("ilm")
    # A user without the manage_ilm privilege: 403 security_exception on the policy.
    proxy.request_faults.append((f"/_ilm/policy/{store.names.prefix}-docs-retention", 403))
    auth = store_errors("auth")
    with caplog.at_level(logging.WARNING, logger="finsentry.store"):
        await store.open()
    (warning,) = [r.getMessage() for r in caplog.records if FALLBACK in r.getMessage()]
    assert "ILM" in warning and "403" in warning
    assert store_errors("auth") == auth and proxy.policy_puts == []
    assert "index.lifecycle.name" not in template_settings(proxy)  # no policy to name
    assert (await store.upsert_many([scored(1)])).stored == 1


async def test_without_a_lifecycle_api_start_up_goes_on_with_one_warning(proxied, caplog):
    """osmem as it is (the proxy forwards verbatim) answers 400 to the ISM API."""
    with caplog.at_level(logging.WARNING, logger="finsentry.store"):
        proxy, store = await proxied(store_retry_budget_s=5.0)
        proxy.request_faults.append(("/_bulk", 503))  # a transient failure: the schema is ensured again
        assert (await store.upsert_many([scored(1)])).stored == 1
    warnings = [r.getMessage() for r in caplog.records if FALLBACK in r.getMessage()]
    assert len(warnings) == 1 and "ISM" in warnings[0] and "400" in warnings[0]
    await store.refresh()
    assert await store.count() == 1
