"""finsentry: a real-time financial opinion monitor."""

import os as _os

# oneDNN caches a primitive (with its packed bf16 weights) per input shape; with dynamic
# padding shapes vary per batch and the default capacity (1,024) grew a worker past its
# 1 GB budget (~1.1 GB vs ~0.89 GB capped, bench_pipeline). Read by oneDNN at first use,
# so it is set here, before anything imports torch; an operator's own value wins.
_os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")

# Hugging Face libraries draw a progress bar on every model load ("Loading weights", 101
# steps in milliseconds), into the log stream of a service: a JSON-lines log gets lines
# that are not JSON. Read when huggingface_hub is imported; an operator's own value wins.
_os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

__version__ = "0.1.0"
