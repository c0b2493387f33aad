"""The base of finsentry's own exceptions.

`except FinsentryError` catches every failure the project raises on purpose, apart from
the library's and Python's own. Each subclass keeps the built-in base it had (ValueError,
LookupError, RuntimeError …), so code that caught those still does.
"""

from __future__ import annotations


class FinsentryError(Exception):
    """Something finsentry reports by raising: bad input, an unavailable service, a refused step."""
