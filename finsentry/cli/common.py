"""What several command groups share: a one-line error exit, and reading analyst labels."""

from __future__ import annotations

import asyncio
from typing import NoReturn

import typer

from finsentry.records import Label
from finsentry.settings import Settings


def fail(message: str, code: int = 2) -> NoReturn:
    """A command's one-line error on stderr, and its exit status (2: usage, as Click's)."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def read_store_labels(settings: Settings) -> list[Label]:
    """The analyst labels in the store for a command; none (with a note) while a SQLite store
    does not exist yet, since reading must not create one; a failure ends the command."""
    from finsentry.store.factory import SQLITE_PREFIX, sqlite_path
    from finsentry.training.feedback import store_labels

    if settings.store.startswith(SQLITE_PREFIX) and not sqlite_path(settings.store).exists():
        typer.echo(f"note: no store at {settings.store}: no analyst labels", err=True)
        return []  # reading must not create an empty database
    try:
        return asyncio.run(store_labels(settings))
    except Exception as exc:  # noqa: BLE001 - report any store failure as a usable message
        fail(
            f"cannot read analyst labels from the store {settings.store.split('@')[-1]}: {exc} "
            f"(use --no-labels to leave them out)"
        )
