"""`python -m finsentry.cli`: the same as the `finsentry` command."""

from finsentry.cli.main import main

main()
