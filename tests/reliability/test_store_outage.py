"""The store goes away while documents keep arriving, and comes back: nothing lost, nothing
duplicated.

osmem-server (an in-memory OpenSearch-compatible server from PyPI) stands in for
Elasticsearch, which cannot run here; the worker talks to it through the real
ElasticsearchStore (`?compat=opensearch`). The outage: osmem is frozen (writes refused
with 403, as a read-only cluster answers), its indices are copied out the way a node's data
directory would keep them, the process is stopped, and it is started again on the same
port with that copy a minute later (RELIABILITY_STORE_OUTAGE_S overrides the length for a
quicker local run). Documents are published throughout the outage.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

import pytest
from osmem_server import OsmemServer
from reliability_harness import Stories, doc_id, event_time_origin, steady_stream

from finsentry.streams.broker import free_port

pytestmark = [pytest.mark.reliability, pytest.mark.drill]

OUTAGE_S = float(os.environ.get("RELIABILITY_STORE_OUTAGE_S", "60"))


def _get(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method="POST" if body is not None else "GET", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read() or b"{}")


def copy_indices(url: str, prefix: str, directory: Path) -> Path:
    """The indices named `prefix*` as an osmem seed directory: per index its settings,
    mappings and aliases (<index>.index.json) and its documents as a bulk body (.ndjson)."""
    directory.mkdir(parents=True, exist_ok=True)
    for row in _get(f"{url}/_cat/indices/{prefix}*?format=json&h=index"):
        index = row["index"]
        info = _get(f"{url}/{index}")[index]
        shape = {
            k: v
            for k, v in info["settings"]["index"].items()
            if k in ("number_of_shards", "number_of_replicas", "analysis")
        }
        (directory / f"{index}.index.json").write_text(
            json.dumps({"settings": shape, "mappings": info["mappings"], "aliases": info.get("aliases", {})})
        )
        hits = _get(f"{url}/{index}/_search", {"size": 10_000, "query": {"match_all": {}}})["hits"]["hits"]
        bulk = [
            line for hit in hits for line in (json.dumps({"index": {"_id": hit["_id"]}}), json.dumps(hit["_source"]))
        ]
        if bulk:
            (directory / f"{index}.ndjson").write_text("\n".join(bulk) + "\n")
    return directory


def test_store_outage_mid_stream_loses_and_duplicates_nothing(pipeline, tmp_path):
    addr = f"127.0.0.1:{free_port()}"
    server = OsmemServer.start(addr=addr, japanese=False)
    try:
        p = pipeline(
            store=f"http://{addr}?compat=opensearch",
            es_username="finsentry",
            es_replicas=0,
            store_retry_budget_s=1.0,
            es_request_timeout_s=3.0,
            store_retry_max_s=2.0,
            alert_min_count=1_000_000,
        )
        stories = Stories()
        t0 = event_time_origin()
        before = steady_stream(stories, t0, range(6))  # 30 documents
        during = steady_stream(stories, t0, range(6, 12))  # 30 more, published while it is down
        after = steady_stream(stories, t0, range(12, 14))  # and 10 once it is back
        ids = {doc_id(d) for d in before + during + after}

        p.start_worker()
        p.publish(before)
        p.wait(lambda: p.count() == len(before), 120, "the first documents stored")

        # The store goes away.
        server.freeze()
        seed = copy_indices(server.url, "finsentry", tmp_path / "es-data")
        server.close()
        down_at = time.monotonic()
        errors_before = p.workers[-1].metrics().get("finsentry_store_errors_total", 0.0)
        p.publish(during[:1])
        errors_noticed = p.wait(
            lambda: (
                p.workers[-1].metrics().get("finsentry_store_errors_total", 0.0) > errors_before
                and p.workers[-1].metrics().get("finsentry_store_errors_total")
            ),
            120,
            "the worker to notice the outage",
        )
        p.publish(during[1:], pace_s=0.75 * OUTAGE_S / len(during))  # spread over most of the outage
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        assert p.workers[-1].proc.poll() is None, "the worker must ride out the outage"
        # Still retrying at the end of the outage: it never gave up on the batch. (A wait, not
        # one scrape: a scrape can time out on a loaded machine; the store stays down meanwhile.)
        p.wait(
            lambda: p.workers[-1].metrics().get("finsentry_store_errors_total", 0.0) > errors_noticed,
            120,
            "another failed store attempt at the end of the outage",
        )

        # ... and returns, on the same port, with its data.
        server = OsmemServer.start(seed=[str(seed)], addr=addr, japanese=False)
        p.publish(after)
        p.wait(lambda: p.count() == len(ids), 120, "every document stored after the store returned")

        exported = p.export_ids()
        assert len(exported) == len(set(exported)), "a document is stored twice"
        assert set(exported) == ids
        assert p.dead_letters() == []
        stored = p.stored()
        assert all(stored[i]["model_version"] and stored[i]["sentiment"]["label"] for i in ids)
    finally:
        server.close()
