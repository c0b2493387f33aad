"""The Elasticsearch (and OpenSearch) store, on the official async client.

Writes go through `helpers.async_streaming_bulk` with `_id` = document id into the daily
index of the document's `published_at`, so a re-delivered document overwrites its first
copy; a copy left in another day's index (the document's `published_at` changed) is
deleted once the new copy is stored. Transient failures — connection errors, 429, 5xx,
and blocks such as a read-only cluster — are retried with jittered back-off inside
`store_retry_budget_s`; past it the call raises `StoreUnavailable` and the caller (the
index agent) retries the batch later, so nothing is dropped. A document refused for its
content (400: mapping conflict, bad value) comes back in `UpsertResult.rejected` with
Elasticsearch's reason.

Refused credentials (401, or 403 from the security layer) keep the batch waiting too, as
nothing is lost by waiting for a fixed password or privilege, but are no outage: each
refusal is logged as an error naming authentication/authorization and counted as
`finsentry_store_errors_total{kind="auth"}`, and the call gives up at once instead of
spending its retry budget on them.

After any transient failure the store re-creates its template and indices before the next
write: a cluster rebuilt meanwhile (or an in-memory stand-in restarted) must not
auto-create a daily index with guessed mappings.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence, TypeVar
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit, urlunsplit

from elastic_transport import SerializationError, TransportError
from elasticsearch import ApiError, AsyncElasticsearch, BadRequestError, ConflictError, NotFoundError
from elasticsearch.helpers import async_streaming_bulk

from finsentry import metrics
from finsentry.errors import FinsentryError
from finsentry.records import Alert, Label, ScoredDocument
from finsentry.settings import Settings, get_settings
from finsentry.store import es_retention
from finsentry.store.base import (
    MAX_SEARCH_LIMIT,
    AggregateQuery,
    Bucket,
    ReadOnlyStore,
    Rejected,
    SearchQuery,
    Store,
    StoreMissing,
    StoreUnavailable,
    UpsertResult,
)
from finsentry.store.es_query import AGGREGATE_PAGE, EXPORT_SORT, aggregate_request, document_query, document_sort
from finsentry.store.es_schema import ALERT_MAPPING, LABEL_MAPPING, IndexNames, docs_template, single_index
from finsentry.store.shape import day_start, encode, label_id, stored_document, version_ms

log = logging.getLogger("finsentry.store")
T = TypeVar("T")

_UNAVAILABLE_STATUS = {401, 403, 408, 429}  # auth, blocks (read-only cluster), timeout, overload
_SECURITY_ERROR = "security_exception"  # the 403 type of both Elasticsearch and OpenSearch security
_PAGE = 1000
_MAX_BULK_BYTES = 10 * 1024 * 1024  # well under http.max_content_length (100 MB)
_COMPAT = ("elasticsearch", "opensearch")


def _unavailable(exc: BaseException) -> bool:
    """Worth retrying later: the store, not the request, is the problem."""
    if isinstance(exc, ApiError):
        return exc.status_code in _UNAVAILABLE_STATUS or exc.status_code >= 500
    return isinstance(exc, TransportError) and not isinstance(exc, SerializationError)


def _refused_credentials(status: int, error_type: Any) -> bool:
    """401, or a 403 from the security layer (a 403 cluster block, e.g. read-only, is not)."""
    return status == 401 or (status == 403 and error_type == _SECURITY_ERROR)


def _auth_failure(exc: BaseException) -> bool:
    if isinstance(exc, _PendingItems):
        return exc.refused_credentials
    return isinstance(exc, ApiError) and _refused_credentials(exc.status_code, exc.error)


def _describe(exc: BaseException | str) -> str:
    if isinstance(exc, ApiError):
        return f"{exc.status_code} {exc.error}"
    return str(exc) or type(exc).__name__


def _item_reason(error: Any) -> str:
    if not isinstance(error, dict):
        return str(error)[:500]
    reason = f"{error.get('type', 'error')}: {error.get('reason', '')}"
    cause = error.get("caused_by")
    if isinstance(cause, dict) and cause.get("reason"):
        reason += f" (caused by {cause.get('type')}: {cause['reason']})"
    return reason[:500]


def _as_is(action: Any) -> Any:
    return action  # actions are already (header, body bytes): each document serialised once


class ElasticsearchStore(Store):
    """`http(s)://[user:password@]host:9200[?compat=opensearch&prefix=name]`."""

    def __init__(self, url: str, settings: Settings | None = None, read_only: bool = False):
        self.read_only = read_only
        if settings is None:
            settings = get_settings()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an Elasticsearch URL (http(s)://host:port): {self._redact(parts)}")
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(options) - {"compat", "prefix"}
        if unknown:
            raise ValueError(f"unknown store URL option(s) {sorted(unknown)}; known: compat, prefix")
        self.compat = options.get("compat", settings.es_compat)
        if self.compat not in _COMPAT:
            raise ValueError(f"compat must be one of {_COMPAT}, not {self.compat!r}")
        self.names = IndexNames(options.get("prefix", settings.es_index_prefix))
        netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        self._host = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        self._url_auth = (unquote(parts.username), unquote(parts.password or "")) if parts.username else None
        self.url = self._redact(parts)
        self._settings = settings
        self._budget_s = settings.store_retry_budget_s
        self._chunk = max(1, settings.store_batch_size)
        self._client: AsyncElasticsearch | None = None
        self._schema_ready = False
        self._retention_warned = False

    @staticmethod
    def _redact(parts: SplitResult) -> str:
        netloc = parts.netloc.rsplit("@", 1)[-1]
        return str(urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")))

    # --- connection and schema ----------------------------------------------------------

    def _client_options(self) -> dict[str, Any]:
        s = self._settings
        options: dict[str, Any] = {
            "hosts": [self._host],
            "request_timeout": s.es_request_timeout_s,
            "max_retries": 0,
            "retry_on_timeout": False,  # retrying is ours, bounded by the budget
        }
        if s.es_api_key is not None:
            options["api_key"] = s.es_api_key.get_secret_value()
        elif self._url_auth is not None:
            options["basic_auth"] = self._url_auth
        elif s.es_username:
            password = s.es_password.get_secret_value() if s.es_password is not None else ""
            options["basic_auth"] = (s.es_username, password)
        if self._host.startswith("https"):
            options["verify_certs"] = s.es_verify_certs
            if s.es_ca_certs is not None:
                options["ca_certs"] = str(s.es_ca_certs)
        if self.compat == "opensearch":
            from finsentry.store.opensearch_compat import opensearch_node_class

            options["node_class"] = opensearch_node_class()
        return options

    async def open(self) -> None:
        if self._client is None:
            self._client = AsyncElasticsearch(**self._client_options())
        try:
            if self.read_only:
                await self._check_exists()
                return
            await self._retrying("create index template", self._ensure_schema, ensure_schema=False)
        except ApiError as exc:
            await self.close()
            if exc.status_code == 406 and self.compat != "opensearch":
                raise ValueError(
                    f"{self.url} refused the Elasticsearch media type (406): if it is OpenSearch, "
                    "set FINSENTRY_ES_COMPAT=opensearch or add ?compat=opensearch to the store URL"
                ) from None
            raise
        except BaseException:
            await self.close()
            raise

    async def _check_exists(self) -> None:
        """For reading: every finsentry store has its alerts index (made on the first start);
        none means a wrong URL or prefix. Needs only the read privilege."""
        try:
            await self._retrying(
                "open for reading", lambda: self.client.count(index=self.names.alerts), ensure_schema=False
            )
        except NotFoundError:
            raise StoreMissing(
                f"no finsentry store at {self.url} with index prefix {self.names.prefix!r} "
                f"(no index {self.names.alerts}; check --store or FINSENTRY_STORE and "
                f"FINSENTRY_ES_INDEX_PREFIX)"
            ) from None

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    @property
    def client(self) -> AsyncElasticsearch:
        if self._client is None:
            raise RuntimeError("the store is not open; call open() first")
        return self._client

    async def _ensure_schema(self) -> None:
        """Idempotent: the template is put every time, the retention policy and the small
        indices created if absent."""
        s, c = self._settings, self.client
        policy = await self._ensure_retention_policy()
        await c.indices.put_index_template(
            name=self.names.docs_template,
            **docs_template(
                self.names, s.es_shards, s.es_replicas, es_retention.template_settings(self.compat, policy)
            ),
        )
        for index, mapping in ((self.names.alerts, ALERT_MAPPING), (self.names.labels, LABEL_MAPPING)):
            await self._create_index(index, **single_index(mapping, s.es_replicas))
        self._schema_ready = True

    async def _ensure_retention_policy(self) -> str | None:
        """The lifecycle policy's name, or None when the cluster has no such API or refuses it:
        then the prune job alone keeps retention, as on SQLite, and start-up goes on."""
        try:
            return await es_retention.ensure_policy(
                self.client, self.compat, self.names, self._settings.es_retention_days
            )
        except ApiError as exc:
            if not es_retention.unsupported(exc):
                raise
            if not self._retention_warned:
                self._retention_warned = True
                api = "ILM" if self.compat == "elasticsearch" else "ISM"
                log.warning(
                    "store created no retention policy: the cluster has no %s API or refused it, "
                    "retention falls back to `finsentry store prune` store=%s error=%s",
                    api,
                    self.url,
                    _describe(exc),
                )
            return None

    async def _create_index(self, index: str, **body: Any) -> None:
        if await self.client.indices.exists(index=index):
            return
        try:
            await self.client.indices.create(index=index, **body)
        except BadRequestError as exc:
            if exc.error != "resource_already_exists_exception":  # another worker was first
                raise

    async def _retrying(self, what: str, call: Callable[[], Awaitable[T]], ensure_schema: bool = True) -> T:
        """Run `call`, retrying while the store is unavailable, at most for the budget."""
        if self.read_only and ensure_schema:
            raise ReadOnlyStore(f"{self.url} is open for reading only: {what}")
        deadline = time.monotonic() + self._budget_s
        delay = 0.05
        while True:
            try:
                if ensure_schema and not self._schema_ready:
                    await self._ensure_schema()
                return await call()
            except Exception as exc:
                if not _unavailable(exc):
                    raise
                self._schema_ready = False
                if _auth_failure(exc):
                    metrics.STORE_ERRORS.labels(kind="auth").inc()
                    log.error(
                        "store refused the credentials: authentication or authorization failed, writes wait "
                        "until it is fixed (FINSENTRY_ES_USERNAME/_PASSWORD or _API_KEY, the user's index "
                        "privileges) store=%s what=%s error=%s",
                        self.url,
                        what,
                        _describe(exc),
                    )
                    raise StoreUnavailable(
                        f"{self.url}: {what}: authentication/authorization failed: {_describe(exc)}"
                    ) from exc
                metrics.STORE_ERRORS.labels(kind="transient").inc()
                if time.monotonic() + delay > deadline:
                    raise StoreUnavailable(f"{self.url}: {what}: {_describe(exc)}") from exc
                log.debug("store call failed, retrying what=%s error=%s", what, _describe(exc))
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 2.0)

    # --- documents ----------------------------------------------------------------------

    async def upsert_many(self, records: Sequence[ScoredDocument]) -> UpsertResult:
        stored_at = datetime.now(timezone.utc)
        pending: dict[str, tuple[dict[str, Any], bytes]] = {}
        rejected: list[Rejected] = []
        for record in records:
            try:
                body = encode(stored_document(record, stored_at))
            except ValueError as exc:
                rejected.append(Rejected(record.id, str(exc)))
                continue
            header = {"index": {"_index": self.names.daily(record.published_at), "_id": record.id}}
            pending[record.id] = (header, body)  # one id twice in a batch: the last copy wins
        if not pending:
            return UpsertResult(stored=0, rejected=rejected)
        targets = {doc_id: header["index"]["_index"] for doc_id, (header, _) in pending.items()}
        elsewhere = await self._copies_elsewhere(targets)
        stored = 0

        async def send() -> None:
            nonlocal stored
            missing: set[str] = set()
            failure: str | None = None
            refused_credentials = False
            async for ok, item in async_streaming_bulk(
                self.client,
                list[Any](pending.values()),
                chunk_size=self._chunk,
                max_chunk_bytes=_MAX_BULK_BYTES,
                expand_action_callback=_as_is,
                raise_on_error=False,
                raise_on_exception=False,
                max_retries=0,
            ):
                info = item["index"]
                doc_id = info["_id"]
                if ok:
                    pending.pop(doc_id, None)
                    stored += 1
                    continue
                status = info.get("status", 500)
                if "exception" in info:  # the whole bulk request failed
                    raise info["exception"]
                error = info.get("error")
                if status == 404 and isinstance(error, dict) and error.get("type") == "index_not_found_exception":
                    missing.add(info["_index"])  # auto-create is off on this cluster: create it ourselves
                elif 400 <= status < 500 and status not in _UNAVAILABLE_STATUS | {404}:
                    rejected.append(Rejected(doc_id, _item_reason(error)))
                    metrics.STORE_ERRORS.labels(kind="rejected").inc()
                    pending.pop(doc_id, None)
                else:
                    failure = f"{status} {_item_reason(error)}"
                    error_type = error.get("type") if isinstance(error, dict) else None
                    refused_credentials = refused_credentials or _refused_credentials(status, error_type)
            for index in missing:
                await self._create_index(index)
            if pending:
                raise _PendingItems(failure or f"{len(pending)} documents waiting for their index", refused_credentials)

        await self._retrying("bulk upsert", send)
        refused = {r.id for r in rejected}
        await self._delete_copies([(index, doc_id) for index, doc_id in elsewhere if doc_id not in refused])
        return UpsertResult(stored=stored, rejected=rejected)

    async def _copies_elsewhere(self, targets: dict[str, str]) -> list[tuple[str, str]]:
        """(index, id) of stored copies of these ids in another daily index than their target.

        A document whose `published_at` moved to another day goes to another index, so the
        first copy must go. One `ids` search per thousand ids; a search sees writes older
        than the refresh interval (about a second), which re-deliveries (same date) and real
        corrections (minutes or hours later) are.
        """
        ids = list(targets)
        found: list[tuple[str, str]] = []
        for i in range(0, len(ids), _PAGE):
            hits = await self._search_docs(
                {"query": {"ids": {"values": ids[i : i + _PAGE]}}, "source": False, "size": MAX_SEARCH_LIMIT}
            )
            found += [(hit["_index"], hit["_id"]) for hit in hits if hit["_index"] != targets[hit["_id"]]]
        return found

    async def _delete_copies(self, copies: list[tuple[str, str]]) -> None:
        """Delete superseded copies, only once their new copy is stored: a new copy the store
        rejected leaves the old one in place. A copy already gone (404) is fine."""
        if not copies:
            return
        operations = [{"delete": {"_index": index, "_id": doc_id}} for index, doc_id in copies]

        async def delete() -> None:
            resp = await self.client.bulk(operations=operations)
            failed = [item["delete"] for item in resp["items"] if item["delete"].get("status", 500) not in (200, 404)]
            if failed:
                raise _PendingItems(f"{failed[0].get('status')} {_item_reason(failed[0].get('error'))}")

        await self._retrying("delete superseded copies", delete)
        log.debug("store moved documents to another daily index count=%d", len(copies))

    async def get(self, doc_id: str) -> dict[str, Any] | None:
        hits = await self._search_docs({"query": {"ids": {"values": [doc_id]}}, "size": 1})
        return hits[0]["_source"] if hits else None

    async def count(self, query: SearchQuery | None = None) -> int:
        resp = await self._retrying(
            "count",
            lambda: self.client.count(
                index=self.names.docs_alias, query=document_query(query), ignore_unavailable=True, allow_no_indices=True
            ),
            ensure_schema=False,
        )
        return int(resp["count"])

    async def search(self, query: SearchQuery) -> list[dict[str, Any]]:
        hits = await self._search_docs(
            {"query": document_query(query), "sort": document_sort(query), "size": query.limit}
        )
        return [hit["_source"] for hit in hits]

    async def _search_docs(self, body: dict[str, Any], index: str | None = None) -> list[dict[str, Any]]:
        resp = await self._retrying(
            "search",
            lambda: self.client.search(
                index=index or self.names.docs_alias,
                ignore_unavailable=True,
                allow_no_indices=True,
                track_total_hits=False,
                **body,
            ),
            ensure_schema=False,
        )
        hits: list[dict[str, Any]] = resp["hits"]["hits"]
        return hits

    async def export(self, query: SearchQuery | None = None) -> AsyncIterator[dict[str, Any]]:
        # search_after on (published_at, id): no server-side context to expire or leak.
        after = None
        while True:
            body: dict[str, Any] = {"query": document_query(query), "sort": EXPORT_SORT, "size": _PAGE}
            if after is not None:
                body["search_after"] = after
            hits = await self._search_docs(body)
            for hit in hits:
                yield hit["_source"]
            if len(hits) < _PAGE:
                return
            after = hits[-1]["sort"]

    async def aggregate(self, query: AggregateQuery) -> list[Bucket]:
        keys = set(query.keys) if query.keys is not None and query.by == "entity" else None
        out: list[Bucket] = []
        after = None
        while True:
            body = aggregate_request(query, after)
            resp = await self._retrying(
                "aggregate",
                functools.partial(
                    self.client.search,
                    index=self.names.docs_alias,
                    ignore_unavailable=True,
                    allow_no_indices=True,
                    **body,
                ),
                ensure_schema=False,
            )
            agg = resp.get("aggregations", {}).get("buckets", {})
            for b in agg.get("buckets", []):
                key = b["key"].get("key", "all")
                if keys is not None and key not in keys:  # another entity of a matching document
                    continue
                n = b["doc_count"]
                out.append(
                    Bucket(
                        key=key,
                        start=datetime.fromtimestamp(b["key"]["start"] / 1000, timezone.utc),
                        count=n,
                        mean_score=b["mean_score"]["value"],
                        negative_share=b["negative"]["doc_count"] / n,
                    )
                )
            after = agg.get("after_key")
            if not after or len(agg.get("buckets", [])) < AGGREGATE_PAGE:
                return out

    async def _indices_before(self, before: datetime) -> list[str]:
        cutoff = day_start(before)
        rows: Any = await self._retrying(
            "list indices",
            lambda: self.client.cat.indices(index=self.names.docs_pattern, format="json", h="index"),
            ensure_schema=False,
        )
        return sorted(
            row["index"] for row in rows if (day := self.names.day_of(row["index"])) is not None and day < cutoff
        )

    async def prune_plan(self, before: datetime) -> list[tuple[str, int]]:
        plan = []
        for index in await self._indices_before(before):
            resp = await self._retrying("count", functools.partial(self.client.count, index=index), ensure_schema=False)
            plan.append((f"{self.names.day_of(index):%Y-%m-%d}", int(resp["count"])))
        return plan

    async def count_alerts_before(self, before: datetime) -> int:
        resp = await self._retrying(
            "count alerts",
            lambda: self.client.count(
                index=self.names.alerts,
                query={"range": {"updated_at": {"lt": before.isoformat()}}},
                ignore_unavailable=True,
                allow_no_indices=True,
            ),
            ensure_schema=False,
        )
        return int(resp["count"])

    async def prune(self, before: datetime) -> int:
        if self.read_only:
            raise ReadOnlyStore(f"{self.url} is open for reading only: prune")
        old = await self._indices_before(before)
        deleted = 0
        for i in range(0, len(old), 50):  # bounded URL length
            names = ",".join(old[i : i + 50])
            resp = await self._retrying("count", functools.partial(self.client.count, index=names), ensure_schema=False)
            await self._retrying(
                "delete indices", functools.partial(self.client.indices.delete, index=names), ensure_schema=False
            )
            deleted += int(resp["count"])
            log.info("store pruned indices=%s documents=%d", names, resp["count"])
        return deleted

    async def prune_alerts(self, before: datetime) -> int:
        if self.read_only:
            raise ReadOnlyStore(f"{self.url} is open for reading only: prune alerts")
        resp = await self._retrying(
            "prune alerts",
            lambda: self.client.delete_by_query(
                index=self.names.alerts,
                query={"range": {"updated_at": {"lt": before.isoformat()}}},
                conflicts="proceed",
                refresh=True,
                ignore_unavailable=True,
                allow_no_indices=True,
            ),
            ensure_schema=False,
        )
        log.info("store pruned alerts=%d updated_before=%s", resp["deleted"], before.isoformat())
        return int(resp["deleted"])

    async def refresh(self) -> None:
        await self._retrying(
            "refresh",
            lambda: self.client.indices.refresh(
                index=",".join([self.names.docs_alias, self.names.alerts, self.names.labels]),
                ignore_unavailable=True,
                allow_no_indices=True,
            ),
            ensure_schema=False,
        )

    # --- alerts and labels --------------------------------------------------------------

    async def _put_versioned(self, index: str, doc_id: str, document: dict[str, Any], version: int) -> None:
        """Index unless a copy at least as new is there (external_gte: an equal copy overwrites)."""

        async def put() -> None:
            try:
                await self.client.index(
                    index=index,
                    id=doc_id,
                    document=document,
                    version=version,
                    version_type="external_gte",
                    refresh=True,
                )
            except ConflictError:
                pass  # the stored copy is newer: a late re-delivery changes nothing

        await self._retrying(f"index into {index}", put)

    async def put_alert(self, alert: Alert) -> None:
        await self._put_versioned(self.names.alerts, alert.id, alert.model_dump(mode="json"), alert.update)

    async def alerts(self, since: datetime | None = None, limit: int = 100) -> list[dict[str, Any]]:
        query = {"range": {"updated_at": {"gte": since.isoformat()}}} if since is not None else {"match_all": {}}
        hits = await self._search_docs(
            {"query": query, "sort": [{"updated_at": "desc"}, {"id": "asc"}], "size": min(limit, MAX_SEARCH_LIMIT)},
            index=self.names.alerts,
        )
        return [hit["_source"] for hit in hits]

    async def _write_label(self, label: Label) -> None:
        document = label.model_dump(mode="json") | {"id": label_id(label)}  # the id is the sort tie-break
        await self._put_versioned(self.names.labels, label_id(label), document, version_ms(label.at))

    async def labels(self, limit: int | None = None) -> list[Label]:
        out: list[Label] = []
        after = None
        while limit is None or len(out) < limit:
            size = _PAGE if limit is None else min(_PAGE, limit - len(out))
            body: dict[str, Any] = {"query": {"match_all": {}}, "sort": [{"at": "desc"}, {"id": "asc"}], "size": size}
            if after is not None:
                body["search_after"] = after
            hits = await self._search_docs(body, index=self.names.labels)
            out += [Label.model_validate(hit["_source"]) for hit in hits]
            if len(hits) < size:
                break
            after = hits[-1]["sort"]
        return out


class _PendingItems(FinsentryError, TransportError):
    """Some bulk items failed transiently (429/5xx per item): retried like a lost connection.
    `refused_credentials`: one of them was a 401/403 security refusal."""

    def __init__(self, message: str, refused_credentials: bool = False):
        super().__init__(message)
        self.refused_credentials = refused_credentials
