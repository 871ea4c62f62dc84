"""Argument types shared by the command-line subcommands (one place for each)."""

from __future__ import annotations

import argparse


def positive_float(s: str) -> float:
    """A finite number > 0 (time limits).

    >>> positive_float("2.5")
    2.5
    """
    try:
        x = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {s!r}") from None
    if not x > 0 or x == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number: {s!r}")
    return x


def nonneg_int(text: str) -> int:
    """An integer >= 0 (seeds, counts)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return v


def pos_int(text: str) -> int:
    """An integer >= 1 (dimensions, worker counts)."""
    v = nonneg_int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text!r}")
    return v
