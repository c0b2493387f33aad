"""Giving freed memory back to the system between batches.

With dynamic padding every batch has another shape; glibc's allocator keeps the freed
buffers of earlier shapes (per thread arena) and a worker's RSS creeps past its budget.
`malloc_trim` after a batch returns them. Measured on 2 cores, bf16, two streams: 884 MB →
693 MB after two passes over 3,000 texts, at most a few per cent slower. ONNX Runtime keeps
its own arena, shrunk after each run instead (see backends.OnnxBackend).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache
from typing import Callable


@lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim") if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


def release_free_memory() -> bool:
    """Return the allocator's free memory to the system; False where that is not possible."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
