"""What every check shares: the rejection it raises and exact-type guards.

A check either returns a one-line reason why the evidence holds or raises
:class:`Invalid` with a one-line reason why not; numbers in messages are
shortened so that a huge one cannot break the line (or ``str()``).
"""

from __future__ import annotations

from fractions import Fraction

from ..numbers import exact, short_number

__all__ = ["Invalid", "ints", "is_int", "num", "num_exact", "nums", "pair"]


class Invalid(Exception):
    pass


def num(x) -> str:
    """A number for a message; a huge one by its first and last digits and its size.

    Python refuses str() of integers over 4,300 digits, and a one-line reason
    should stay one line anyway.

    >>> num(Fraction(-3, 7)), num(10**500)
    ('-3/7', '100000...000000 (501 digits)')
    """
    try:
        return short_number(Fraction(x))
    except (TypeError, ValueError):  # not a number (a malformed certificate built in Python)
        return f"<a {type(x).__name__}>"


def nums(xs) -> str:
    xs = list(xs)
    shown = ", ".join(num(x) for x in xs[:20])
    return f"[{shown}{', ...' if len(xs) > 20 else ''}]"


def is_int(v) -> bool:
    return type(v) is int  # not bool, not numpy integers (1 << np.int64(64) == 0)


def num_exact(v, what: str) -> Fraction:
    # Exactly int or Fraction: a float would make Fraction arithmetic inexact,
    # and strings or numpy scalars compare differently from the numbers they spell.
    if type(v) is int or type(v) is Fraction:
        return exact(v)   # normalised, as every Fraction read from outside
    raise Invalid(f"{what} must be exact (int or Fraction), not {type(v).__name__}")


def pair(vs, what: str) -> tuple[int, int]:
    t = ints(vs, what)
    if len(t) != 2:
        raise Invalid(f"a {what} must have two entries, got {len(t)}")
    return t


def ints(vs, what: str) -> tuple[int, ...]:
    vs = tuple(vs)
    if not set(map(type, vs)) <= {int}:  # exactly int: not bool, not numpy integers (see is_int)
        raise Invalid(f"{what} must be plain integers")
    return vs
