"""How inference shares the CPU: batches at once ("streams") and threads per batch.

Kept apart from the engine so settings can resolve the plan without importing torch.
"""

from __future__ import annotations

import os


def thread_plan(threads: int = 0, streams: int = 0) -> tuple[int, int]:
    """(streams, intra-op threads per stream) for `threads` cores in all (0 = every core)
    and `streams` batches at once (0 = one per core)."""
    total = threads or os.cpu_count() or 1
    streams = max(1, min(streams or total, total))
    return streams, max(1, total // streams)
