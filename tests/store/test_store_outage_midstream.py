"""The store goes away mid-stream and comes back: every document stored exactly once.

osmem-server stands in for Elasticsearch. A writer streams batches through
`write_with_retry` (what the index agent calls) while the server is stopped and started
again on the same port. osmem holds everything in memory, so the test carries the indices
across the restart through osmem's seed directory, as a real node's data directory would
(first freezing the server, so no write can land between the copy and the stop). It
deliberately does not carry the index template: the stream crosses into a new day after
the restart, and the daily index created then must still get the explicit mapping, which
shows the store putting its template back after an outage instead of letting the cluster
guess the mapping.

Not run against a real ES_URL cluster: the test has to stop the server.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from osmem_server import OsmemServer
from prometheus_client import REGISTRY
from store_helpers import dump_as_seed, free_port, scored, store_settings

from finsentry.store.elasticsearch import ElasticsearchStore
from finsentry.store.retry import write_with_retry

BATCH = 25
BATCHES = 24
DAY = 24 * 60


def stream():
    """600 documents over three days; the third day starts after the outage."""
    docs = []
    for i in range(BATCH * BATCHES):
        day = 0 if i < 200 else 1 if i < 400 else 2
        docs.append(scored(i, minutes=day * DAY + i % 200))
    return [docs[n : n + BATCH] for n in range(0, len(docs), BATCH)]


def unavailable_count() -> float:
    return REGISTRY.get_sample_value("finsentry_store_errors_total", {"kind": "unavailable"}) or 0.0


async def test_store_stopped_and_restarted_mid_stream_keeps_every_document_exactly_once(tmp_path):
    addr = f"127.0.0.1:{free_port()}"
    server = OsmemServer.start(addr=addr, japanese=False)
    settings = store_settings(store_retry_budget_s=0.2, es_request_timeout_s=2.0)
    store = ElasticsearchStore(f"http://{addr}?compat=opensearch", settings)
    batches = stream()
    acknowledged: list[int] = []
    halfway = asyncio.Event()
    errors_before = unavailable_count()

    async def writer():
        for n, batch in enumerate(batches):
            result = await write_with_retry(store, batch, initial_backoff_s=0.05, max_backoff_s=0.2)
            assert result.rejected == [] and result.stored == len(batch)
            acknowledged.append(n)
            if n == BATCHES // 3:
                halfway.set()
            await asyncio.sleep(0.02)  # a live stream, not a tight loop

    try:
        await store.open()
        task = asyncio.create_task(writer())
        await asyncio.wait_for(halfway.wait(), 30)

        # Stop: refuse writes (403, like a read-only cluster), copy the data, stop the process.
        await asyncio.to_thread(server.freeze)
        seed = await asyncio.to_thread(dump_as_seed, server.url, f"{store.names.prefix}-*", tmp_path / "data")
        await asyncio.to_thread(server.close)
        stopped_at = len(acknowledged)
        await asyncio.sleep(1.0)  # down for a while: the writer keeps retrying the same batch
        assert not task.done() and len(acknowledged) == stopped_at < BATCHES
        assert unavailable_count() > errors_before

        # Start again on the same port with the data but without the template.
        server = await asyncio.to_thread(OsmemServer.start, seed=[str(seed)], addr=addr, japanese=False)
        await asyncio.wait_for(task, 60)
        assert acknowledged == list(range(BATCHES))

        await store.refresh()
        expected = [doc.id for batch in batches for doc in batch]
        exported = [doc["id"] async for doc in store.export()]
        assert len(exported) == len(expected) == await store.count()
        assert sorted(exported) == sorted(expected)  # each once: no loss, no copy in another index

        third_day = store.names.daily(batches[-1][0].published_at)
        mapping = (await store.client.indices.get_mapping(index=third_day)).body[third_day]["mappings"]
        assert mapping["properties"]["sentiment"]["properties"]["score"]["type"] == "double"
        assert mapping["properties"]["explanation"]["enabled"] is False
        assert third_day in (await store.client.indices.get_alias(name=store.names.docs_alias)).body
        assert batches[-1][0].published_at - batches[0][0].published_at > timedelta(days=2)
    finally:
        await store.close()
        server.close()
