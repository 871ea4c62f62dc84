"""The ``exact-inj`` command line (docs/cli.md).

The names below come from cli/app.py on first use (PEP 562): importing
``exact_inj.cli.launch``, the command's entry point, must stay light, so that
it can start the search workers before numpy, python-flint and HiGHS load.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = [
    "EXIT_BAD_INPUT", "EXIT_INJECTIVE", "EXIT_INTERNAL", "EXIT_INVALID", "EXIT_NOT_INJECTIVE", "EXIT_UNKNOWN",
    "EXIT_VALID", "VERDICT_EXIT", "main", "parse_domain",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and editors only
    from .app import (EXIT_BAD_INPUT, EXIT_INJECTIVE, EXIT_INTERNAL, EXIT_INVALID, EXIT_NOT_INJECTIVE,
                      EXIT_UNKNOWN, EXIT_VALID, VERDICT_EXIT, main, parse_domain)


def __getattr__(name: str):
    if name not in __all__:
        # A submodule by its attribute (exact_inj.cli.app), as before the lazy exports.
        if name.startswith("__"):
            raise AttributeError(f"module 'exact_inj.cli' has no attribute {name!r}")
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module 'exact_inj.cli' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(".app", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
