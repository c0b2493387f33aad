"""The retention policy of the daily document indices, created at start-up if absent.

Elasticsearch gets an ILM policy, OpenSearch the ISM equivalent, named
`<prefix>-docs-retention`: each deletes a daily index once the documents it holds are more
than FINSENTRY_ES_RETENTION_DAYS days old. Daily indices are never rolled over, so an
index's age counts from its creation; on Elasticsearch the template sets
`index.lifecycle.parse_origination_date`, which counts it from the day in the index name
instead, as `finsentry store prune` does. ISM has no such setting: an index back-filled
today with older documents is kept until the prune job drops it.

Alerts get no policy: they live in one index, and a lifecycle policy deletes whole
indices, so it would drop every alert at once; the prune job deletes them by `updated_at`.

Best effort: a cluster without the API, or a user without the privilege, keeps retention
with the prune job (which works on any cluster) after one warning. An existing policy is
left as it is, since an operator may have edited it.
"""

from __future__ import annotations

import logging
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, NotFoundError

from finsentry.store.es_schema import IndexNames

log = logging.getLogger("finsentry.store")

_JSON = {"accept": "application/json", "content-type": "application/json"}
_RETRIED = {401, 408, 429}  # refused credentials, timeout, overload: the store retries or reports them


def policy_name(names: IndexNames) -> str:
    return f"{names.prefix}-docs-retention"


def delete_after(days: int) -> str:
    """The index age at which the day's index goes. The index of day D holds documents
    published up to the end of D, and the prune job keeps D until today is more than
    `days` days after D: it goes at D + days + 1 day."""
    return f"{days + 1}d"


def ilm_policy(days: int) -> dict[str, Any]:
    return {
        "phases": {"delete": {"min_age": delete_after(days), "actions": {"delete": {}}}},
        "_meta": {"managed_by": "finsentry"},
    }


def ism_policy(names: IndexNames, days: int) -> dict[str, Any]:
    return {
        "description": f"finsentry: delete daily document indices {delete_after(days)} after creation",
        "default_state": "keep",
        "states": [
            {
                "name": "keep",
                "actions": [],
                "transitions": [{"state_name": "delete", "conditions": {"min_index_age": delete_after(days)}}],
            },
            {"name": "delete", "actions": [{"delete": {}}], "transitions": []},
        ],
        "ism_template": [{"index_patterns": [names.docs_pattern], "priority": 100}],
    }


def template_settings(compat: str, policy: str | None) -> dict[str, Any]:
    """Index settings the docs template adds for the policy (ISM attaches by its ism_template)."""
    if policy is None or compat != "elasticsearch":
        return {}
    return {"index.lifecycle.name": policy, "index.lifecycle.parse_origination_date": True}


async def ensure_policy(client: AsyncElasticsearch, compat: str, names: IndexNames, days: int) -> str:
    """The policy's name once it is in place, found or created. An ApiError for which
    `unsupported` holds means the cluster has no lifecycle API or refuses it."""
    name = policy_name(names)
    if compat == "elasticsearch":
        await _ensure_ilm(client, name, days)
    else:
        await _ensure_ism(client, name, names, days)
    return name


async def _ensure_ilm(client: AsyncElasticsearch, name: str, days: int) -> None:
    try:
        await client.ilm.get_lifecycle(name=name)
        log.debug("store retention policy exists, left as is policy=%s", name)
        return
    except NotFoundError:
        pass
    await client.ilm.put_lifecycle(name=name, policy=ilm_policy(days))
    log.info("store created retention policy ilm=%s delete_after=%s", name, delete_after(days))


async def _ensure_ism(client: AsyncElasticsearch, name: str, names: IndexNames, days: int) -> None:
    path = f"/_plugins/_ism/policies/{name}"
    try:
        await client.perform_request("GET", path, headers=_JSON)
        log.debug("store retention policy exists, left as is policy=%s", name)
        return
    except NotFoundError:
        pass
    try:
        await client.perform_request("PUT", path, headers=_JSON, body={"policy": ism_policy(names, days)})
    except ApiError as exc:
        if exc.status_code != 409:  # another worker created it first
            raise
    log.info("store created retention policy ism=%s delete_after=%s", name, delete_after(days))


def unsupported(exc: ApiError) -> bool:
    """The cluster answered that the lifecycle API is missing or not allowed (not an outage)."""
    return 400 <= exc.status_code < 500 and exc.status_code not in _RETRIED
