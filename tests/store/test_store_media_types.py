"""Both media-type modes of the Elasticsearch store, against osmem-server.

- Elasticsearch mode (the default): the client sends the vendor media type
  `application/vnd.elasticsearch+json; compatible-with=<client major>`. An Elasticsearch
  server accepts its own major and the one before, so the client's major must be one the
  oldest supported server (8.x) accepts: MediaTypeCheckingProxy stands in for an
  Elasticsearch 8 and 9 server's check in front of osmem-server (which cannot run
  Elasticsearch's REST compatibility layer); with ES_URL set, the store tests in
  test_store_elasticsearch.py run against a real cluster too.
- OpenSearch mode (`compat=opensearch`): plain application/json, straight to osmem-server.
"""

from __future__ import annotations

import importlib.metadata

import aiohttp
import pytest
from es_fault_proxy import MediaTypeCheckingProxy
from store_helpers import scored, store_settings

from finsentry.store.elasticsearch import ElasticsearchStore

SUPPORTED_SERVERS = (8, 9)  # docs/deployment.md, "Supported versions"


@pytest.fixture
async def server_of(osmem_server):
    made = []

    async def make(major: int) -> MediaTypeCheckingProxy:
        clone = osmem_server.clone()
        proxy = await MediaTypeCheckingProxy(clone.url, major).start()
        made.append((clone, proxy))
        return proxy

    yield make
    for clone, proxy in made:
        await proxy.close()
        clone.close()


async def write_and_count(url: str, **settings) -> int:
    async with ElasticsearchStore(url, store_settings(**settings)) as store:
        assert (await store.upsert_many([scored(1), scored(2)])).stored == 2
        await store.refresh()
        return await store.count()


@pytest.mark.parametrize("server_major", SUPPORTED_SERVERS)
async def test_the_client_speaks_a_media_type_every_supported_server_accepts(server_of, server_major):
    proxy = await server_of(server_major)
    assert await write_and_count(f"{proxy.url}?compat=elasticsearch") == 2
    vendor = [v for v in proxy.seen if "compatible-with" in v]
    assert vendor, "the Elasticsearch mode sends the vendor media type"
    assert all(f"compatible-with={server_major}" in v or f"compatible-with={server_major - 1}" in v for v in vendor)


async def test_the_stand_in_refuses_a_newer_client_as_elasticsearch_8_does(server_of):
    """What the 9.x client met on an 8.x cluster: the check the test above relies on bites."""
    proxy = await server_of(8)
    vendor9 = "application/vnd.elasticsearch+json; compatible-with=9"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{proxy.url}/", headers={"Accept": vendor9}) as answer:
            assert answer.status == 400
            assert (await answer.json())["error"]["type"] == "media_type_header_exception"


def test_the_installed_client_is_in_the_supported_range():
    major = int(importlib.metadata.version("elasticsearch").split(".")[0])
    assert all(server - 1 <= major <= server for server in SUPPORTED_SERVERS), (
        f"elasticsearch {major}.x sends compatible-with={major}, which a {SUPPORTED_SERVERS} server refuses"
    )


async def test_opensearch_mode_sends_plain_json(server_of, osmem_server):
    proxy = await server_of(9)
    assert await write_and_count(f"{proxy.url}?compat=opensearch") == 2
    assert proxy.seen and not [v for v in proxy.seen if "vnd.elasticsearch" in v]
    clone = osmem_server.clone()  # and straight to osmem-server, which refuses the vendor type
    try:
        assert await write_and_count(f"{clone.url}?compat=opensearch") == 2
    finally:
        clone.close()
