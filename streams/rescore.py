"""Re-score stored documents with another model (after a promotion): `finsentry rescore`.

Documents of a time range are read oldest first, scored in batches exactly as the score
agent scores them, and written back by id, so each stays one record; `model_version`
tells which model scored it. A document already scored by this model version is skipped,
which makes a run resumable: run it again after an interruption and it goes on where it
stopped. `dup_of` is kept (it depends on the order the stream brought stories in, not on
the model); a word-level explanation of the old score is dropped. Alerts are not
recomputed: `finsentry alerts replay` on an export does that offline.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass
from typing import Any, Callable

from pydantic import ValidationError

from finsentry.records import ScoredDocument, ValidDocument
from finsentry.store.base import SearchQuery, Store
from finsentry.streams.agents.score import score_documents

log = logging.getLogger("finsentry.rescore")

_SCORED_FIELDS = set(ScoredDocument.model_fields) - set(ValidDocument.model_fields)


@dataclass
class RescoreReport:
    model_version: str
    scanned: int = 0  # documents of the range read
    rescored: int = 0  # written back with this model's scores
    skipped: int = 0  # already scored by this model version
    rejected: int = 0  # refused by the store, or no longer a valid record (left as they were)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rescored(engine, stored: list[dict[str, Any]], entities_csv) -> list[ScoredDocument]:
    docs = [
        ValidDocument.model_validate({k: v for k, v in d.items() if k not in _SCORED_FIELDS and k != "stored_at"})
        for d in stored
    ]
    fresh = score_documents(engine, docs, entities_csv=entities_csv)
    return [
        record.model_copy(
            update={"dup_of": old.get("dup_of"), "ingested_at": old.get("ingested_at", record.ingested_at)}
        )
        for record, old in zip(fresh, stored)
    ]


async def rescore(
    store: Store,
    engine,
    query: SearchQuery,
    batch_size: int = 64,
    entities_csv=None,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
    executor=None,
) -> RescoreReport:
    """Re-score the documents matching `query` (its filters; every match, oldest first).
    `limit`: stop after re-scoring this many. `progress(n)`: n more documents scanned."""
    report = RescoreReport(model_version=engine.version)
    loop = asyncio.get_running_loop()
    pending: list[dict[str, Any]] = []

    async def flush() -> None:
        if not pending:
            return
        batch, good = list(pending), []
        pending.clear()
        for doc in batch:
            try:
                ValidDocument.model_validate(
                    {k: v for k, v in doc.items() if k not in _SCORED_FIELDS and k != "stored_at"}
                )
                good.append(doc)
            except ValidationError as exc:
                report.rejected += 1
                log.error(
                    "rescore: stored document not valid, left as it is id=%s error=%s",
                    doc.get("id"),
                    exc.errors()[0]["msg"],
                )
        if not good:
            return
        records = await loop.run_in_executor(executor, _rescored, engine, good, entities_csv)
        result = await store.upsert_many(records)
        report.rescored += result.stored
        report.rejected += len(result.rejected)
        for rejected in result.rejected:
            log.error("rescore: the store refused id=%s reason=%s", rejected.id, rejected.reason)

    async for doc in store.export(query):
        report.scanned += 1
        if progress is not None:
            progress(1)
        if doc.get("model_version") == engine.version:
            report.skipped += 1
            continue
        pending.append(doc)
        room = None if limit is None else limit - report.rescored - len(pending)
        if len(pending) >= batch_size or room == 0:
            await flush()
            if limit is not None and report.rescored >= limit:
                break
    await flush()
    return report
