"""An HTTP proxy in front of osmem-server that answers with errors on cue.

osmem-server never overloads, restarts or checks credentials, so this proxy stands in for
those behaviours of a real cluster: a whole request answered 429 / 503 (overload, a node
restarting) or 401 / 403 (bad credentials, missing privileges), and single items of a
`_bulk` answer failed the same way. A failed item is taken out of the request before it is
forwarded, so the server never sees it: only a retry can store it.
"""

from __future__ import annotations

import json
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
        for i, (suffix, status) in enumerate(self.request_faults):
            if request.path.endswith(suffix):
                del self.request_faults[i]
                return web.json_response({"error": error_body(status), "status": status}, status=status)
        body = await request.read()
        failed: list[tuple[int, dict]] = []
        if request.path.endswith("/_bulk"):
            body, failed = self._take_failing_items(body)
            if not body:  # every item failed: nothing to forward
                return self._bulk_response({"took": 0, "errors": False, "items": []}, failed)
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "accept")}
        async with self._session.request(request.method, self.upstream + request.path_qs,
                                         data=body or None, headers=headers) as resp:
            payload = await resp.read()
            if failed and resp.status == 200:
                return self._bulk_response(json.loads(payload), failed)
            return web.Response(body=payload, status=resp.status,
                                content_type=resp.content_type, charset=resp.charset)

    def _take_failing_items(self, body: bytes) -> tuple[bytes, list[tuple[int, dict]]]:
        """The bulk body without the items due to fail, and those items (position, answer)."""
        lines = [line for line in body.split(b"\n") if line.strip()]
        kept: list[bytes] = []
        failed: list[tuple[int, dict]] = []
        i = position = 0
        while i < len(lines):
            action = json.loads(lines[i])
            (op, meta), = action.items()
            item = lines[i:i + (1 if op == "delete" else 2)]
            i += len(item)
            statuses = self.item_faults.get(meta.get("_id"), [])
            if op == "index" and statuses:
                status = statuses.pop(0)
                failed.append((position, {op: {"_index": meta["_index"], "_id": meta["_id"], "status": status,
                                               "error": error_body(status)}}))
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
