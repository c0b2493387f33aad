"""Let the official Elasticsearch client talk to OpenSearch.

elasticsearch-py (8.x and 9.x) turns every `application/json` / `application/x-ndjson`
Accept and Content-Type header into `application/vnd.elasticsearch+json;
compatible-with=N` just before the transport sends it. OpenSearch answers that media type
with 406 Not Acceptable. The client also refuses a server whose responses lack the
`X-Elastic-Product: Elasticsearch` header, which OpenSearch does not send.

The node classes here sit at the last step, the HTTP node of elastic_transport: they put
the plain media types back on the way out and, only when the server did not say what it
is, mark the response on the way in. Nothing global is patched; a store selects them with
`node_class=` only when configured for OpenSearch (`FINSENTRY_ES_COMPAT=opensearch` or
`?compat=opensearch` in the store URL).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from elastic_transport import AiohttpHttpNode, HttpHeaders, HttpxAsyncHttpNode
from elastic_transport._node import NodeApiResponse  # not re-exported at the top level

_VENDOR_MEDIA_TYPE = re.compile(r"application/vnd\.elasticsearch\+(json|x-ndjson)\s*(;\s*compatible-with=\d+)?")
_PRODUCT_HEADER = "x-elastic-product"


def plain_media_types(headers: HttpHeaders | None) -> HttpHeaders | None:
    """A copy with the vendor media types replaced by application/json | application/x-ndjson."""
    if not headers:
        return headers
    out = HttpHeaders(headers)
    for name in ("accept", "content-type"):
        value = out.get(name)
        if value:
            out[name] = _VENDOR_MEDIA_TYPE.sub(r"application/\1", value)
    return out


def _as_product(response: NodeApiResponse) -> NodeApiResponse:
    if _PRODUCT_HEADER in response.meta.headers:
        return response
    headers = HttpHeaders(response.meta.headers)
    headers[_PRODUCT_HEADER] = "Elasticsearch"
    return NodeApiResponse(dataclasses.replace(response.meta, headers=headers), response.body)


class _PlainMediaTypes:
    """Mixin over an async elastic_transport HTTP node."""

    _headers: HttpHeaders

    def __init__(self, config: Any) -> None:
        super().__init__(config)  # type: ignore[call-arg]  # the node class it is mixed into takes it
        self._headers = plain_media_types(self._headers) or self._headers

    async def perform_request(  # type: ignore[no-untyped-def]  # the node's own signature
        self, method, target, body=None, headers=None, **kwargs
    ):
        response = await super().perform_request(  # type: ignore[misc]
            method, target, body=body, headers=plain_media_types(headers), **kwargs
        )
        return _as_product(response)


class OpenSearchAiohttpNode(_PlainMediaTypes, AiohttpHttpNode):  # type: ignore[misc]
    """The client's default async node (aiohttp), speaking plain JSON."""


class OpenSearchHttpxNode(_PlainMediaTypes, HttpxAsyncHttpNode):  # type: ignore[misc]
    """The httpx async node, speaking plain JSON."""


def opensearch_node_class() -> type:
    try:
        import aiohttp  # noqa: F401 — the client's default transport when installed
    except ImportError:
        return OpenSearchHttpxNode
    return OpenSearchAiohttpNode
