"""HTTP push endpoint for systems that send documents (aiohttp).

    POST /documents   Authorization: Bearer <FINSENTRY_PUSH_TOKEN>
    body: one document (JSON object) or a JSON array of them
    GET /metrics      Prometheus (no token, like the worker's), GET /healthz

202 {"accepted": n, "ids": [...]} once the broker acknowledged every document; 400 with a
reason per bad document (then nothing of the request is published, so the sender can fix
and resend it whole); 401 on a missing or wrong token; 413 over push_max_body_bytes;
503 when the broker did not acknowledge. The token is compared in constant time and never
logged; the endpoint refuses to start without one and binds loopback unless told otherwise.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging

from aiohttp import web

from finsentry import metrics
from finsentry.errors import FinsentryError
from finsentry.ingest.metrics_page import metrics_page
from finsentry.ingest.producer import DeliveryError, DocumentProducer, with_stable_id
from finsentry.records import Document, parse_document
from finsentry.settings import Settings

log = logging.getLogger("finsentry.ingest.push")

PRODUCER_KEY = web.AppKey("producer", DocumentProducer)


class PushConfigError(FinsentryError, RuntimeError):
    pass


def validate_documents(body: bytes, max_text_bytes: int) -> tuple[list[Document], list[dict]]:
    """(documents, errors): errors name the index of each bad document and why."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return [], [{"index": None, "reason": f"malformed JSON: {exc}"}]
    items = data if isinstance(data, list) else [data]
    if not items:
        return [], [{"index": None, "reason": "an empty array carries no document"}]
    docs, errors = [], []
    for index, item in enumerate(items):
        try:  # the worker's own checks, item by item
            docs.append(parse_document(json.dumps(item).encode("utf-8"), max_text_bytes))
        except ValueError as exc:
            errors.append({"index": index, "reason": str(exc)})
    return docs, errors


def _authorized(header: str | None, token: bytes) -> bool:
    scheme, _, given = (header or "").partition(" ")
    # compare_digest even on a wrong scheme, so timing tells nothing
    matches = hmac.compare_digest(given.strip().encode("utf-8"), token)
    return scheme.lower() == "bearer" and matches


def push_app(
    producer: DocumentProducer,
    token: str,
    *,
    max_text_bytes: int,
    max_body_bytes: int,
    delivery_timeout_s: float = 130.0,
) -> web.Application:
    if not token or not token.strip():
        raise PushConfigError("the push endpoint needs a token (FINSENTRY_PUSH_TOKEN); refusing to start without one")
    secret = token.encode("utf-8")

    def answer(status: int, payload: dict) -> web.Response:
        metrics.PUSH_REQUESTS.labels(status=str(status)).inc()
        headers = {"WWW-Authenticate": 'Bearer realm="finsentry"'} if status == 401 else None
        return web.json_response(payload, status=status, headers=headers)

    async def receive(request: web.Request) -> web.Response:
        if not _authorized(request.headers.get("Authorization"), secret):
            return answer(401, {"error": "missing or wrong token (Authorization: Bearer <token>)"})
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return answer(413, {"error": f"body over {max_body_bytes} bytes"})
        docs, errors = validate_documents(body, max_text_bytes)
        if errors:
            return answer(400, {"errors": errors})
        docs = [with_stable_id(doc) for doc in docs]
        try:
            await asyncio.wait_for(asyncio.to_thread(_publish_all, producer, docs), delivery_timeout_s)
        except (DeliveryError, asyncio.TimeoutError) as exc:
            log.error("push not delivered documents=%d error=%s", len(docs), exc)
            return answer(503, {"error": "the broker did not acknowledge the documents; retry later"})
        log.info("push accepted documents=%d remote=%s", len(docs), request.remote)
        return answer(202, {"accepted": len(docs), "ids": [doc.id for doc in docs]})

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(client_max_size=max_body_bytes)
    app[PRODUCER_KEY] = producer
    app.router.add_post("/documents", receive)
    app.router.add_get("/healthz", health)
    app.router.add_get("/metrics", metrics_page)
    return app


def _publish_all(producer: DocumentProducer, docs: list[Document]) -> None:
    futures = [producer.publish(doc) for doc in docs]
    failed = []
    for future in futures:
        try:
            future.get()  # bounded by the producer's delivery timeout
        except Exception as exc:  # noqa: BLE001 — collected and raised as one DeliveryError
            failed.append(exc)
    if failed:
        raise DeliveryError(len(failed), failed[0])


def push_app_from_settings(settings: Settings, producer: DocumentProducer) -> web.Application:
    token = settings.push_token.get_secret_value() if settings.push_token else ""
    return push_app(
        producer,
        token,
        max_text_bytes=settings.max_text_bytes,
        max_body_bytes=settings.push_max_body_bytes,
        delivery_timeout_s=settings.producer_delivery_timeout_s + 10,
    )


async def serve_push(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run the endpoint on settings.push_host:push_port until `stop` is set (or forever)."""
    if not settings.push_token or not settings.push_token.get_secret_value().strip():
        raise PushConfigError("the push endpoint needs a token (FINSENTRY_PUSH_TOKEN); refusing to start without one")
    producer = await asyncio.to_thread(DocumentProducer, settings)
    runner = web.AppRunner(push_app_from_settings(settings, producer), access_log=None)
    try:
        await runner.setup()
        await web.TCPSite(runner, settings.push_host, settings.push_port).start()
        log.info("push endpoint listening url=http://%s:%d/documents", settings.push_host, settings.push_port)
        await (stop or asyncio.Event()).wait()
    finally:
        await runner.cleanup()
        await asyncio.to_thread(producer.close)
