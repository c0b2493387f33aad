"""A process that owns an outbox, for the restart tests: optionally enqueues alerts given as
JSON files, then delivers until it is killed.

    python outbox_process.py OUTBOX_DB APPRISE_URL [ALERT_JSON ...]
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from finsentry.alerting.notifiers import AppriseNotifier
from finsentry.alerting.outbox import Outbox
from finsentry.records import Alert


async def main(db: str, url: str, alert_files: list[str]) -> None:
    outbox = Outbox(db, [AppriseNotifier(url)], retry_min_s=0.1, retry_max_s=0.2)
    await outbox.start()
    for path in alert_files:
        await outbox.enqueue(Alert.model_validate_json(Path(path).read_text()))
    print("ready", flush=True)
    await asyncio.Event().wait()  # deliver until killed


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
