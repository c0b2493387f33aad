"""Command-line flags on top of the settings, checked by the settings' own types.

Every command that lets a flag override a setting goes through `settings_from_flags`, so
`--backend bogus` fails at once with the flag's name and the allowed values, exactly as
`FINSENTRY_BACKEND=bogus` would, instead of reaching the code that uses it.
"""

from __future__ import annotations

from typing import Any

import typer
from pydantic import ValidationError

from finsentry.settings import Settings, SettingsOverrideError, get_settings, settings_with


def environment_settings() -> Settings:
    """The settings from FINSENTRY_* and .env; a bad value is a one-line usage error."""
    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"FINSENTRY_{str(e['loc'][0]).upper() if e.get('loc') else '?'}: "
            f"{str(e['msg']).removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise typer.BadParameter(problems, param_hint="the environment (FINSENTRY_* or .env)") from None


def settings_from_flags(flags: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """The environment's settings with the flags that were given (non-None) on top.

    `flags` names the flag of a setting where it is not `--` + the setting's name with
    dashes (e.g. {"model_path": "--model"}), so the error names what the user typed.
    """
    try:
        return settings_with(environment_settings(), **overrides)
    except SettingsOverrideError as exc:
        flag = (flags or {}).get(exc.field, "--" + exc.field.replace("_", "-"))
        raise typer.BadParameter(exc.message, param_hint=f"'{flag}'") from None
