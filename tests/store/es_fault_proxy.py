"""An HTTP proxy in front of osmem-server that answers with errors on cue.

osmem-server never overloads, restarts or checks credentials, so this proxy stands in for
those behaviours of a real cluster: a whole request answered 429 / 503 (overload, a node
restarting) or 401 / 403 (bad credentials, missing privileges), and single items of a
`_bulk` answer failed the same way. A failed item is taken out of the request before it is
forwarded, so the server never sees it: only a retry can store it. LifecycleProxy adds the
lifecycle policy APIs (Elasticsearch ILM, OpenSearch ISM) osmem-server does not have.
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter

import aiohttp
from aiohttp import web

REASONS = {
    401: ("security_exception", "unable to authenticate user [finsentry] for REST request [/_bulk]"),
    403: ("security_exception", "action [indices:data/write/bulk] is unauthorized for user [finsentry]"),
    429: ("es_rejected_execution_exception", "rejected execution of coordinating operation"),
    503: ("unavailable_shards_exception", "primary shard is not active"),
}


def error_body(status: int) -> dict:
    kind, reason = REASONS[status]
    return {"type": kind, "reason": reason}


class FaultProxy:
    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.request_faults: list[tuple[str, int]] = []  # (path suffix, status): the next such request fails
        self.item_faults: dict[str, list[int]] = {}  # doc id → statuses its next bulk items get
        self.forwarded: Counter[str] = Counter()  # doc id → index actions that reached the server
        self.url = ""

    async def start(self) -> "FaultProxy":
        self._session = aiohttp.ClientSession()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        await self._runner.cleanup()
        await self._session.close()

    async def _handle(self, request: web.Request) -> web.Response:
        fault = self._injected_fault(request)
        if fault is not None:
            return fault
        body = await request.read()
        failed: list[tuple[int, dict]] = []
        if request.path.endswith("/_bulk"):
            body, failed = self._take_failing_items(body)
            if not body:  # every item failed: nothing to forward
                return self._bulk_response({"took": 0, "errors": False, "items": []}, failed)
        return await self._forward(request, body, failed)

    def _injected_fault(self, request: web.Request) -> web.Response | None:
        for i, (suffix, status) in enumerate(self.request_faults):
            if request.path.endswith(suffix):
                del self.request_faults[i]
                return web.json_response({"error": error_body(status), "status": status}, status=status)
        return None

    def _upstream_headers(self, request: web.Request) -> dict[str, str]:
        return {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "accept")}

    async def _forward(
        self, request: web.Request, body: bytes, failed: list[tuple[int, dict]] | None = None
    ) -> web.Response:
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=body or None, headers=self._upstream_headers(request)
        ) as resp:
            payload = await resp.read()
            if failed and resp.status == 200:
                return self._bulk_response(json.loads(payload), failed)
            return web.Response(body=payload, status=resp.status, content_type=resp.content_type, charset=resp.charset)

    def _take_failing_items(self, body: bytes) -> tuple[bytes, list[tuple[int, dict]]]:
        """The bulk body without the items due to fail, and those items (position, answer)."""
        lines = [line for line in body.split(b"\n") if line.strip()]
        kept: list[bytes] = []
        failed: list[tuple[int, dict]] = []
        i = position = 0
        while i < len(lines):
            action = json.loads(lines[i])
            ((op, meta),) = action.items()
            item = lines[i : i + (1 if op == "delete" else 2)]
            i += len(item)
            statuses = self.item_faults.get(meta.get("_id"), [])
            if op == "index" and statuses:
                status = statuses.pop(0)
                failed.append(
                    (
                        position,
                        {
                            op: {
                                "_index": meta["_index"],
                                "_id": meta["_id"],
                                "status": status,
                                "error": error_body(status),
                            }
                        },
                    )
                )
            else:
                kept += item
                if op == "index":
                    self.forwarded[meta["_id"]] += 1
            position += 1
        return (b"\n".join(kept) + b"\n" if kept else b""), failed

    @staticmethod
    def _bulk_response(answer: dict, failed: list[tuple[int, dict]]) -> web.Response:
        for position, item in failed:
            answer["items"].insert(position, item)
        answer["errors"] = answer["errors"] or bool(failed)
        return web.json_response(answer)


_VENDOR_MEDIA_TYPE = re.compile(r"application/vnd\.elasticsearch\+(json|x-ndjson)\s*(;\s*compatible-with=\d+)?")
_NOT_FOUND = {
    "ilm": ("resource_not_found_exception", "Lifecycle policy not found: {}"),
    "ism": ("status_exception", "Policy not found"),
}


class LifecycleProxy(FaultProxy):
    """Stands in for the lifecycle policy API osmem-server does not have: Elasticsearch's ILM
    (`_ilm/policy/<name>`) or OpenSearch's ISM (`_plugins/_ism/policies/<id>`). Policies live
    here; `policy_puts` records each PUT (name, body) and `templates` each index template as
    the store sent it.

    As "ilm" the proxy answers as Elasticsearch as a whole: vendor media types in, the
    product header out, and the `index.lifecycle.*` settings (unknown to osmem) taken out of
    a template before it is forwarded."""

    def __init__(self, upstream: str, api: str):
        super().__init__(upstream)
        self.api = api
        self.prefix = "/_ilm/policy/" if api == "ilm" else "/_plugins/_ism/policies/"
        self.policies: dict[str, dict] = {}
        self.policy_puts: list[tuple[str, dict]] = []
        self.templates: list[dict] = []

    async def _handle(self, request: web.Request) -> web.Response:
        response = self._injected_fault(request)
        if response is None and request.path.startswith(self.prefix):
            response = await self._policy(request, request.path[len(self.prefix) :])
        elif response is None and request.method == "PUT" and request.path.startswith("/_index_template/"):
            response = await self._template(request)
        elif response is None:
            response = await super()._handle(request)
        if self.api == "ilm":
            response.headers["X-Elastic-Product"] = "Elasticsearch"
        return response

    async def _policy(self, request: web.Request, name: str) -> web.Response:
        if request.method == "PUT":
            body = await request.json()
            self.policy_puts.append((name, body))
            self.policies[name] = body["policy"]
            return web.json_response(
                {"acknowledged": True} if self.api == "ilm" else {"_id": name, "_version": 1},
                status=200 if self.api == "ilm" else 201,
            )
        if request.method == "GET" and name in self.policies:
            policy = self.policies[name]
            return web.json_response(
                {name: {"version": 1, "policy": policy}}
                if self.api == "ilm"
                else {"_id": name, "_version": 1, "policy": policy}
            )
        kind, reason = _NOT_FOUND[self.api]
        error = {"type": kind, "reason": reason.format(name)}
        return web.json_response({"error": error | {"root_cause": [error]}, "status": 404}, status=404)

    async def _template(self, request: web.Request) -> web.Response:
        template = await request.json()
        self.templates.append(copy.deepcopy(template))
        settings = template.get("template", {}).get("settings", {})
        for key in [key for key in settings if key.startswith("index.lifecycle.")]:
            del settings[key]
        return await self._forward(request, json.dumps(template).encode())

    def _upstream_headers(self, request: web.Request) -> dict[str, str]:
        headers = super()._upstream_headers(request)
        return {k: _VENDOR_MEDIA_TYPE.sub(r"application/\1", v) for k, v in headers.items()}


_COMPATIBLE_WITH = re.compile(r"compatible-with=(\d+)")


class MediaTypeCheckingProxy(LifecycleProxy):
    """Elasticsearch `server_major` as far as media types go, in front of osmem-server: an
    Accept or Content-Type of `application/vnd.elasticsearch+json; compatible-with=N` is
    refused with 400 `media_type_header_exception` unless N is server_major or the one
    before (what Elasticsearch's REST API compatibility accepts); plain application/json is
    accepted. `seen` records every media type a request carried."""

    def __init__(self, upstream: str, server_major: int):
        super().__init__(upstream, "ilm")
        self.server_major = server_major
        self.seen: list[str] = []

    async def _handle(self, request: web.Request) -> web.Response:
        for name in ("Accept", "Content-Type"):
            value = request.headers.get(name)
            if not value:
                continue
            self.seen.append(value)
            match = _COMPATIBLE_WITH.search(value)
            if match and int(match.group(1)) not in (self.server_major, self.server_major - 1):
                reason = (
                    f"A compatible version is required on both Content-Type and Accept headers if either one "
                    f"has requested a compatible version. Accept={value}; only versions "
                    f"{self.server_major - 1} and {self.server_major} are supported"
                )
                response = web.json_response(
                    {"error": {"type": "media_type_header_exception", "reason": reason}, "status": 400}, status=400
                )
                response.headers["X-Elastic-Product"] = "Elasticsearch"
                return response
        return await super()._handle(request)


_READS = re.compile(r"/(_search|_count|_cat/indices.*|_refresh)$")


class ReadOnlyProxy(FaultProxy):
    """Stands in for read-only credentials (the `read` privilege only): searches, counts and
    GET/HEAD requests pass; anything else is refused with the 403 a real cluster's security
    layer gives, and recorded in `refused` as (method, path)."""

    def __init__(self, upstream: str):
        super().__init__(upstream)
        self.refused: list[tuple[str, str]] = []

    async def _handle(self, request: web.Request) -> web.Response:
        if request.method in ("GET", "HEAD") or (request.method == "POST" and _READS.search(request.path)):
            return await super()._handle(request)
        self.refused.append((request.method, request.path))
        error = {
            "type": "security_exception",
            "reason": f"action [{request.method} {request.path}] is unauthorized for user [analyst]",
        }
        return web.json_response({"error": error, "status": 403}, status=403)
