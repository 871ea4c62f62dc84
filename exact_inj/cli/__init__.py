"""The ``exact-inj`` command line (docs/cli.md).

The names below come from cli/app.py on first use (PEP 562): importing
``exact_inj.cli.launch``, the command's entry point, must stay light, so that
it can start the search workers before numpy, python-flint and HiGHS load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import lazy

__all__ = [
    "EXIT_BAD_INPUT", "EXIT_INJECTIVE", "EXIT_INTERNAL", "EXIT_INVALID", "EXIT_NOT_INJECTIVE", "EXIT_UNKNOWN",
    "EXIT_VALID", "VERDICT_EXIT", "main", "parse_domain",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and editors only
    from .app import (EXIT_BAD_INPUT, EXIT_INJECTIVE, EXIT_INTERNAL, EXIT_INVALID, EXIT_NOT_INJECTIVE,
                      EXIT_UNKNOWN, EXIT_VALID, VERDICT_EXIT, main, parse_domain)


def __getattr__(name: str):
    return lazy.export(__name__, {k: "app" for k in __all__}, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
