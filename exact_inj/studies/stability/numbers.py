"""Float copies of exact numbers: guidance for the stability search and
display copies in its reports.

Nothing here proves anything.  Where a float is shown next to a bound, it is
rounded the safe way (a lower bound down, an upper bound up), so that reading
the float never overstates what was proved.  The exact bounds themselves are in
:mod:`exact_inj.exact.sigma`.
"""

from __future__ import annotations

import math
from fractions import Fraction

from ...numbers import fraction_to_str

__all__ = ["exact_str", "float_down", "float_up", "t_below", "to_float"]


def t_below(lam: float, rel: float) -> Fraction:
    """A simple dyadic rational a little below lam * (1 - rel) (0 if that is not positive)."""
    x = lam * (1.0 - rel)
    if not (x > 0 and math.isfinite(x)):
        return Fraction(0)
    _, e = math.frexp(x)
    k = 40 - e  # about 40 significant bits
    F = Fraction(x) * Fraction(2) ** k
    return Fraction(math.floor(F)) / Fraction(2) ** k


def float_down(x: Fraction) -> float:
    """The largest float <= x (for a lower bound shown as a float).

    >>> float_down(Fraction(1, 3)) <= Fraction(1, 3) <= float_up(Fraction(1, 3))
    True
    """
    f = float(x)
    return math.nextafter(f, -math.inf) if Fraction(f) > x else f


def float_up(x: Fraction) -> float:
    """The smallest float >= x (for an upper bound shown as a float)."""
    f = float(x)
    return math.nextafter(f, math.inf) if Fraction(f) < x else f


def exact_str(x: Fraction | None) -> str | None:
    """x as the exact string of certificates and JSON reports; None stays None."""
    return None if x is None else fraction_to_str(Fraction(x))


def to_float(x: Fraction) -> float:
    """float(x), saturating to +-inf where float() overflows (guidance only)."""
    try:
        return float(x)
    except OverflowError:
        return math.copysign(math.inf, x)

