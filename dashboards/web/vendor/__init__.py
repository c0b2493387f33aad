"""Vendored front-end libraries (a package only so that they ship with finsentry)."""
