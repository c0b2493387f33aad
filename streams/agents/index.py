"""index: docs.scored → the store in bulk, acknowledged only after the store accepted it.

When the store is unavailable the agent retries the same batch with capped exponential
back-off and does not move on: offsets stay uncommitted, the topic backs up, nothing is
dropped. Records the store rejects for their content go to the dlq with the store's reason.
Every write is an upsert by document id, so re-delivery after a crash never duplicates.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
from pydantic import ValidationError

from finsentry import metrics
from finsentry.records import DeadReason, ScoredDocument
from finsentry.store.retry import write_with_retry
from finsentry.streams.runtime import Runtime

log = logging.getLogger("finsentry.index")


def register(app: faust.App, rt: Runtime) -> Any:
    topics = rt.require_topics()

    @app.agent(topics.scored, name="finsentry.index")
    async def index(stream: Any) -> None:  # a faust Stream (take_events is not on StreamT)
        await rt.ready.wait()
        async for batch in stream.take(rt.settings.store_batch_size, within=0.1):
            records: dict[str, ScoredDocument] = {}
            for payload in batch:
                try:
                    record = ScoredDocument.model_validate_json(payload)
                except ValidationError as exc:
                    reason = f"invalid scored record: {exc.errors()[0]['msg']}"
                    await rt.dead_letter(payload, reason, "index", DeadReason.INVALID_RECORD)
                    continue
                records[record.id] = record  # a re-delivered copy in the same batch collapses here
            if not records:
                continue
            result = await write_with_retry(
                rt.store, list(records.values()), max_backoff_s=rt.settings.store_retry_max_s
            )
            now = time.time()
            rejected = {r.id: r.reason for r in result.rejected}
            for record in records.values():
                if record.id in rejected:
                    reason = f"store rejected the document: {rejected[record.id]}"
                    await rt.dead_letter(
                        record.model_dump_json(), reason, "index", DeadReason.STORE_REJECTED, key=record.key
                    )
                else:
                    metrics.INGEST_TO_STORED.observe(max(0.0, now - record.ingested_at))
            metrics.DOCS_STORED.inc(len(records) - len(rejected))

    return index
