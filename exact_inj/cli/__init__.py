"""The ``exact-inj`` command line (docs/cli.md)."""

from .app import (
    EXIT_BAD_INPUT,
    EXIT_INJECTIVE,
    EXIT_INTERNAL,
    EXIT_INVALID,
    EXIT_NOT_INJECTIVE,
    EXIT_UNKNOWN,
    EXIT_VALID,
    VERDICT_EXIT,
    main,
    parse_domain,
)

__all__ = [
    "EXIT_BAD_INPUT", "EXIT_INJECTIVE", "EXIT_INTERNAL", "EXIT_INVALID", "EXIT_NOT_INJECTIVE", "EXIT_UNKNOWN",
    "EXIT_VALID", "VERDICT_EXIT", "main", "parse_domain",
]
