"""The ``exact-inj`` command line (docs/cli.md)."""

from .app import main

__all__ = ["main"]
