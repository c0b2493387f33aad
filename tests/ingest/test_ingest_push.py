"""The HTTP push endpoint on loopback, publishing to the real embedded broker."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer
from ingest_helpers import read_topic
from prometheus_client.parser import text_string_to_metric_families

from finsentry import metrics
from finsentry.ingest.producer import DocumentProducer
from finsentry.ingest.push import PushConfigError, push_app, push_app_from_settings, serve_push
from finsentry.records import document_id

TOKEN = "s3cret-token"  # the `settings` fixture's push_token
GOOD = {"source": "crm", "title": "Client complaint", "text": "The advisor never called back."}


@pytest.fixture
async def client(settings):
    producer = DocumentProducer(settings)
    test_client = TestClient(TestServer(push_app_from_settings(settings, producer), host="127.0.0.1"))
    await test_client.start_server()
    yield test_client
    await test_client.close()
    producer.close()


def published(settings, broker):
    return [json.loads(r.value) for r in read_topic(broker.address, settings.topic("docs.raw"))]


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}", TOKEN, "Bearer "])
async def test_missing_or_wrong_token_is_401(client, settings, broker, header):
    headers = {"Authorization": header} if header is not None else {}
    answer = await client.post("/documents", json=GOOD, headers=headers)
    assert answer.status == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert TOKEN not in await answer.text()
    assert published(settings, broker) == []


async def test_right_token_is_202_with_ids_after_the_broker_acknowledged(client, settings, broker):
    before = metrics.PUSH_REQUESTS.labels(status="202")._value.get()
    answer = await client.post("/documents", json=GOOD, headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status == 202
    body = await answer.json()
    expected_id = document_id("crm", None, GOOD["title"], GOOD["text"])
    assert body == {"accepted": 1, "ids": [expected_id]}
    (doc,) = published(settings, broker)
    assert doc["id"] == expected_id and doc["text"] == GOOD["text"]
    assert metrics.PUSH_REQUESTS.labels(status="202")._value.get() == before + 1


async def push_requests_served(client) -> dict[str, float]:
    """finsentry_push_requests_total by status, as Prometheus reads it from GET /metrics."""
    answer = await client.get("/metrics")  # no token: Prometheus scrapes it like the worker's
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/plain")
    return {
        sample.labels["status"]: sample.value
        for family in text_string_to_metric_families(await answer.text())
        for sample in family.samples
        if sample.name == "finsentry_push_requests_total"
    }


async def test_metrics_count_rejected_and_accepted_requests(client, settings, broker):
    before = await push_requests_served(client)
    rejected = await client.post("/documents", json=GOOD, headers={"Authorization": "Bearer wrong-token"})
    accepted = await client.post("/documents", json=GOOD, headers={"Authorization": f"Bearer {TOKEN}"})
    assert (rejected.status, accepted.status) == (401, 202)
    after = await push_requests_served(client)
    assert after["401"] == before.get("401", 0) + 1
    assert after["202"] == before.get("202", 0) + 1


async def test_an_array_is_accepted_whole(client, settings, broker):
    batch = [GOOD, {"id": "given-7", "source": "crm", "kind": "review", "text": "Slow app", "rating": 2}]
    answer = await client.post("/documents", json=batch, headers={"Authorization": f"bearer {TOKEN}"})
    assert answer.status == 202
    assert (await answer.json())["ids"][1] == "given-7"
    assert sorted(d["text"] for d in published(settings, broker)) == ["Slow app", GOOD["text"]]


async def test_bad_documents_are_400_with_reasons_and_nothing_is_published(client, settings, broker):
    batch = [GOOD, {"source": "crm"}, {"source": "crm", "text": "x", "kind": "rumour"}, "text"]
    answer = await client.post("/documents", json=batch, headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status == 400
    errors = (await answer.json())["errors"]
    assert [e["index"] for e in errors] == [1, 2, 3]
    assert "text" in errors[0]["reason"] and "kind" in errors[1]["reason"] and "JSON object" in errors[2]["reason"]
    malformed = await client.post("/documents", data=b"{nope", headers={"Authorization": f"Bearer {TOKEN}"})
    assert malformed.status == 400 and "malformed JSON" in (await malformed.json())["errors"][0]["reason"]
    assert published(settings, broker) == []


async def test_body_over_the_limit_is_413(settings):
    producer = DocumentProducer(settings)
    app = push_app(producer, TOKEN, max_text_bytes=1000, max_body_bytes=2000)
    async with TestClient(TestServer(app, host="127.0.0.1")) as small:
        answer = await small.post("/documents", data=b"x" * 5000, headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status == 413
    producer.close()


async def test_refuses_to_start_without_a_token(settings):
    for empty in ("", "   "):
        with pytest.raises(PushConfigError):
            push_app(object(), empty, max_text_bytes=10, max_body_bytes=10)
    with pytest.raises(PushConfigError):
        await asyncio.wait_for(serve_push(settings.model_copy(update={"push_token": None})), 5)


async def test_serve_push_binds_loopback_and_stops(settings, broker):
    import aiohttp

    from finsentry.streams.broker import free_port

    port = free_port()
    stop = asyncio.Event()
    server = asyncio.create_task(serve_push(settings.model_copy(update={"push_port": port}), stop))
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as answer:
                        assert answer.status == 200
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            else:
                pytest.fail("the push endpoint did not come up")
            async with session.post(
                f"http://127.0.0.1:{port}/documents", json=GOOD, headers={"Authorization": f"Bearer {TOKEN}"}
            ) as answer:
                assert answer.status == 202
    finally:
        stop.set()
        await asyncio.wait_for(server, 10)
    assert len(published(settings, broker)) == 1
