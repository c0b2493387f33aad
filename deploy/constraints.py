"""Write constraints.txt: the exact versions of every distribution installed in this
environment (the tested one), for `pip install -c constraints.txt`.

Run through `make constraints`, which builds a fresh environment from pyproject.toml's
ranges first. Local version labels (torch's `+cpu`) are dropped, so the same file serves
the CPU and the CUDA build of a release.
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from datetime import datetime, timezone

from packaging.utils import canonicalize_name
from packaging.version import Version

LEFT_OUT = {"finsentry", "pip", "setuptools", "wheel"}  # the project itself and the installers


def pins() -> list[str]:
    found = {}
    for dist in importlib.metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        if name not in LEFT_OUT:
            found[name] = Version(dist.version).public
    return [f"{name}=={version}" for name, version in sorted(found.items())]


def main() -> int:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    sys.stdout.write(
        "# The tested environment: every distribution `pip install -e .[test]` brought, exactly.\n"
        "# make install and the Docker image install with `-c constraints.txt`.\n"
        "# Regenerate (after changing a range in pyproject.toml): make constraints\n"
        f"# Written {stamp} on Python {platform.python_version()} ({sys.platform}).\n"
    )
    sys.stdout.write("\n".join(pins()) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
