"""Every exception class the project defines derives from FinsentryError, and keeps the
built-in base it had, so `except ValueError` around a call still catches it."""

from __future__ import annotations

import importlib
import inspect

from finsentry.errors import FinsentryError
from tests.test_layers import MODULES


def project_exceptions() -> dict[str, type[BaseException]]:
    found = {}
    for name in sorted(MODULES):
        if name.endswith("__main__") or ".samples." in name:
            continue
        module = importlib.import_module(name)
        for value in vars(module).values():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == name:
                found[f"{name}.{value.__qualname__}"] = value
    return found


def test_every_project_exception_is_a_finsentry_error():
    exceptions = project_exceptions()
    assert len(exceptions) >= 20
    strays = [name for name, cls in exceptions.items() if not issubclass(cls, FinsentryError)]
    assert not strays, f"not derived from FinsentryError: {strays}"


def test_the_built_in_bases_stay():
    from finsentry.ingest.replay import BadInput
    from finsentry.settings import SettingsOverrideError
    from finsentry.store.base import StoreMissing

    assert issubclass(BadInput, ValueError) and issubclass(SettingsOverrideError, ValueError)
    assert issubclass(StoreMissing, LookupError)
