"""Store fixtures: every contract test runs against each backend.

- "sqlite": the embedded SqliteStore on a temporary file.
- "osmem": the ElasticsearchStore against osmem-server, an in-memory OpenSearch-compatible
  server (PyPI `osmem-server`). It stands in for Elasticsearch, which cannot run here; the
  store talks to it as to OpenSearch (plain JSON media types). Each test gets its own
  clone of one session server (its own port, its own indices).
- "elasticsearch": the same cases against a real cluster when ES_URL is set (e.g.
  http://elastic:pw@127.0.0.1:9200), each test under its own index prefix, removed
  afterwards; reported as skipped when it is not set, so its absence shows in every run.
"""

from __future__ import annotations

import os
import urllib.request
import uuid

import pytest
from store_helpers import require_real_elasticsearch, store_settings

from finsentry.store.elasticsearch import ElasticsearchStore
from finsentry.store.sqlite import SqliteStore

BACKENDS = ["sqlite", "osmem", "elasticsearch"]


@pytest.fixture(scope="session")
def osmem_server():
    """Overrides the osmem plugin's session server: no seed, no Japanese analysis (faster start)."""
    from osmem_server import OsmemServer

    server = OsmemServer.start(freeze=True, japanese=False)
    yield server
    server.close()


def _delete_prefix(es_url: str, prefix: str) -> None:
    """Remove a test's indices and template from a real cluster (best effort, by exact prefix)."""
    from urllib.parse import urlsplit

    from finsentry.store.es_schema import IndexNames

    parts = urlsplit(es_url)
    names = IndexNames(prefix)
    base = f"{parts.scheme}://{parts.hostname}:{parts.port or 9200}"
    headers = {"Content-Type": "application/json"}
    if parts.username:
        import base64

        token = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    for path in (
        f"/{names.docs_pattern},{names.alerts},{names.labels}?ignore_unavailable=true&allow_no_indices=true",
        f"/_index_template/{names.docs_template}",
        f"/_ilm/policy/{prefix}-docs-retention",
    ):
        request = urllib.request.Request(base + path, method="DELETE", headers=headers)
        try:
            urllib.request.urlopen(request, timeout=30).read()
        except Exception:
            pass


@pytest.fixture
def make_store(request, tmp_path):
    """make_store(backend, **settings) → an unopened store; closed and cleaned up after the test."""
    made = []

    def factory(backend: str, **overrides):
        settings = store_settings(**overrides)
        if backend == "sqlite":
            store = SqliteStore(tmp_path / f"store-{len(made)}.db", busy_timeout_s=settings.sqlite_busy_timeout_s)
        elif backend == "osmem":
            clone = request.getfixturevalue("osmem_server").clone()
            request.addfinalizer(clone.close)
            store = ElasticsearchStore(f"{clone.url}?compat=opensearch", settings)
        elif backend == "elasticsearch":
            prefix = f"finsentry-test-{uuid.uuid4().hex[:10]}"
            # The test documents are from 2024: the cluster's retention policy must not drop them mid-test.
            settings = store_settings(**({"es_retention_days": 36500} | overrides))
            es_url = os.environ["ES_URL"]
            sep = "&" if "?" in es_url else "?"
            store = ElasticsearchStore(f"{es_url}{sep}prefix={prefix}", settings)
            request.addfinalizer(lambda: _delete_prefix(es_url, prefix))
        else:
            raise ValueError(backend)
        made.append(store)
        return store

    yield factory


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    require_real_elasticsearch(request.param)
    return request.param


@pytest.fixture
async def store(backend, make_store):
    s = make_store(backend)
    await s.open()
    try:
        yield s
    finally:
        await s.close()
