"""The `finsentry` command: one module per command group, each parsing flags and calling
into the packages below (commands hold no logic of their own).

Imports of the packages sit inside the commands, so that `finsentry --help` and a command
that needs no model do not load torch, Faust or the store drivers.
"""

from finsentry.cli.main import app, main

__all__ = ["app", "main"]
