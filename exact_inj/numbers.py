"""Exact number text: the one place that says what a number in a file means.

A JSON number or a string is the decimal it spells or the ``"p/q"`` it
writes; nothing here rounds.  Readers (:mod:`exact_inj.io`), the certificate
schema (:mod:`exact_inj.certify`) and the command line all parse and write
numbers through these functions, so that "exact" means the same everywhere.
"""

from __future__ import annotations

import json
import os
import re
import sys
from decimal import Decimal
from fractions import Fraction
from typing import Any

from .errors import InputError

__all__ = [
    "MAX_EXPONENT", "Rejected", "digits_to_int", "exact", "fraction_to_str", "int_to_str", "parse_exact",
    "parse_number_text", "quote",
]

# A decimal exponent is expanded into an exact integer power of ten, so
# "1e999999999" (eleven bytes) would stall the loader; no meaningful weight
# needs more than this.
MAX_EXPONENT = 10_000

# Offending values are quoted in messages; a runaway value must not turn a
# one-line error into a screenful.
_MAX_QUOTE = 60

_RATIO_RE = re.compile(r"([+-]?)([0-9]+)/([0-9]+)")
_DECIMAL_RE = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?")


def quote(value: Any) -> str:
    """repr() of an offending value, shortened so the message stays one line."""
    if isinstance(value, Rejected):
        text = value.text
    elif isinstance(value, list):
        text = "a list" if value else "an empty list"
    elif isinstance(value, dict):
        text = "an object"
    elif isinstance(value, bool) or value is None:
        # Spelled as in the JSON file the user is looking at.
        text = json.dumps(value)
    else:
        text = repr(value)
    text = " ".join(text.split())
    if len(text) > _MAX_QUOTE:
        text = text[: _MAX_QUOTE - 3] + "..."
    return text


def digits_to_int(digits: str) -> int:
    # int() refuses more than sys.get_int_max_str_digits() digits (a guard
    # against quadratic conversion); an exact certificate may legitimately hold
    # such a number, so convert in balanced halves, each below the limit.
    limit = sys.get_int_max_str_digits() or len(digits) + 1
    if len(digits) < limit:
        return int(digits)
    half = len(digits) // 2
    return digits_to_int(digits[:half]) * 10 ** (len(digits) - half) + digits_to_int(digits[half:])


def int_to_str(n: int) -> str:
    # The inverse of digits_to_int, for the same reason.
    try:
        return str(n)
    except ValueError:
        pass
    if n < 0:
        return "-" + int_to_str(-n)
    k = max(1, int(n.bit_length() * 0.30103) // 2)
    hi, lo = divmod(n, 10**k)
    return int_to_str(hi) + int_to_str(lo).rjust(k, "0")


def parse_number_text(text: str) -> Fraction:
    """Parse the exact-number grammar; ValueError (with a reason) otherwise.

    Grammar: optional sign, then ``digits/digits`` (denominator > 0) or a
    decimal ``digits[.digits][e[sign]digits]`` (``.5`` and ``5.`` allowed).
    No underscores, no ``nan``/``inf``, no hexadecimal, nothing else.
    """
    s = text.strip()
    m = _RATIO_RE.fullmatch(s)
    if m:
        sign, num, den = m.groups()
        d = digits_to_int(den)
        if d == 0:
            raise ValueError("division by zero")
        value = Fraction(digits_to_int(num), d)
        return -value if sign == "-" else value
    m = _DECIMAL_RE.fullmatch(s)
    if m and (m.group(2) or m.group(3)):
        sign, whole, frac, exp = m.groups()
        frac = frac or ""
        e = int(exp) if exp is not None else 0
        if abs(e) > MAX_EXPONENT:
            raise ValueError(f"exponent {exp} is beyond +-{MAX_EXPONENT}")
        mantissa = digits_to_int((whole + frac) or "0")
        e -= len(frac)
        value = Fraction(mantissa * 10**e) if e >= 0 else Fraction(mantissa, 10**-e)
        return -value if sign == "-" else value
    raise ValueError("not an exact number (expected an integer, a decimal or 'p/q')")


class Rejected:
    """Stand-in the JSON hooks leave where a number cannot be taken exactly.

    json.loads gives no position for an exception raised inside a hook, so the
    hooks record the problem here and :func:`loads_exact` then reports where in
    the document it sits.  Deliberately not a str or a number, so that nothing
    downstream can mistake it for a value.
    """

    __slots__ = ("text", "reason")

    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason

    def __repr__(self) -> str:
        return self.text


def parse_exact(value: Any, where: str, path: str | os.PathLike | None = None) -> Fraction:
    """The exact rational a parsed JSON value stands for.

    Accepts a Fraction or an int (what :func:`loads_exact` makes of JSON
    numbers), a finite Decimal, or a string holding an integer, a decimal or
    ``"p/q"``.  Anything else -- booleans, null, lists, binary floats, ``"nan"``,
    ``"1/0"``, ``""`` -- raises :class:`InputError` naming ``where`` and the
    value (``path`` becomes the error's path).

    >>> parse_exact("-3/7", "w")
    Fraction(-3, 7)
    >>> parse_exact("1e-3", "w"), parse_exact(" 2 ", "w"), parse_exact(5, "w")
    (Fraction(1, 1000), Fraction(2, 1), Fraction(5, 1))
    >>> parse_exact("1/0", "layers[0].bias[1]")
    Traceback (most recent call last):
      ...
    exact_inj.errors.InputError: layers[0].bias[1]: '1/0' is not an exact number: division by zero
    >>> parse_exact(0.1, "w")
    Traceback (most recent call last):
      ...
    exact_inj.errors.InputError: w: got the binary float 0.1; read JSON with loads_exact/load_json_file so that numbers stay exact
    """
    # bool is a subclass of int: true/false in a weight is a mistake, not 1/0.
    if isinstance(value, bool):
        raise InputError(path, f"{where}: expected a number, got {quote(value)}")
    if type(value) is Fraction:
        return value
    if isinstance(value, Fraction):
        return Fraction(value)
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, str):
        try:
            return parse_number_text(value)
        except ValueError as e:
            raise InputError(path, f"{where}: {quote(value)} is not an exact number: {e}") from None
    if isinstance(value, Rejected):
        raise InputError(path, f"{where}: {value.text} is not an exact number: {value.reason}")
    if isinstance(value, float):
        # Which rational a float means is a decision the JSON text already made
        # (the decimal it spells); by now that text is gone, so refuse.
        raise InputError(
            path,
            f"{where}: got the binary float {quote(value)}; read JSON with "
            "loads_exact/load_json_file so that numbers stay exact",
        )
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InputError(path, f"{where}: {quote(str(value))} is not finite")
        return Fraction(value)
    raise InputError(path, f"{where}: expected a number, got {quote(value)}")


def fraction_to_str(x: Fraction | int) -> str:
    """Write an exact number as ``"p/q"``, or ``"n"`` when it is an integer.

    >>> fraction_to_str(Fraction(-3, 7)), fraction_to_str(Fraction(4, 2)), fraction_to_str(0)
    ('-3/7', '2', '0')
    >>> parse_exact(fraction_to_str(Fraction(10**5000 + 1, 3)), "x") == Fraction(10**5000 + 1, 3)
    True
    """
    if isinstance(x, bool) or not isinstance(x, (int, Fraction)):
        raise TypeError(f"fraction_to_str needs a Fraction or an int, got {type(x).__name__}")
    x = Fraction(x)
    if x.denominator == 1:
        return int_to_str(x.numerator)
    return f"{int_to_str(x.numerator)}/{int_to_str(x.denominator)}"


def exact(v: object) -> Fraction:
    """An int, Fraction or number string as a Fraction; floats and bools are refused.

    >>> exact("-3/7"), exact(2)
    (Fraction(-3, 7), Fraction(2, 1))
    """
    if isinstance(v, bool) or isinstance(v, float):
        raise TypeError(f"refusing {type(v).__name__} {v!r}: give an int, Fraction or string")
    if isinstance(v, (int, Fraction)):
        return Fraction(v)
    if isinstance(v, str):
        return Fraction(v.strip())
    raise TypeError(f"cannot read {v!r} as an exact number")
