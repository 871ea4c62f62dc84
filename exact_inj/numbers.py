"""Exact number text: the one place that says what a number in a file means.

A JSON number or a string is the decimal it spells or the ``"p/q"`` it
writes; nothing here rounds.  Readers (:mod:`exact_inj.io`), the certificate
schema (:mod:`exact_inj.certify`) and the command line all parse and write
numbers through these functions, so that "exact" means the same everywhere.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import re
import sys
from dataclasses import dataclass, fields, replace
from decimal import Decimal
from fractions import Fraction
from typing import Any

from .errors import InputError

__all__ = [
    "MAX_EXPONENT", "Limits", "Rejected", "digit_count", "digits_to_int", "exact", "fraction_to_str", "int_to_str",
    "limits", "over_limit", "parse_exact", "parse_number_text", "quote", "raised_limits", "short_number",
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


@dataclass(frozen=True)
class Limits:
    """What one input document may hold before it is refused (docs/cli.md, "Limits").

    Every limit is checked before the work it bounds, and a document past one
    is refused as bad input (exit 2) with a message naming the limit and the
    option that raises it (``--limit NAME=N``).  The defaults are far above
    every network and certificate the project has met (docs/cli.md gives the
    sizes), and low enough that the work they allow is seconds, not hours.
    """

    max_bytes: int = 256 * 2**20
    """Bytes of one JSON document (a network or a certificate)."""
    max_depth: int = 64
    """Nesting depth of lists and objects in one JSON document (a certificate needs about 10)."""
    max_entries: int = 50_000_000
    """Values (numbers, strings, lists, objects) in one JSON document or NPZ archive."""
    max_digits: int = 100_000
    """Characters of one number (digits, sign, point and exponent; both parts of p/q)."""
    max_conv_size: int = 1 << 18
    """A conv layer's channels, each input dimension, each pad, and in_channels x the product of its
    input sizes (the positions its checks visit: about 80 us each, docs/cli.md)."""
    max_pieces: int = 2000
    """Pieces of an end-to-end certificate: its check visits every pair of pieces once."""

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


_LIMITS: contextvars.ContextVar[Limits] = contextvars.ContextVar("exact_inj_limits", default=Limits())


def limits() -> Limits:
    """The limits in force (the defaults unless :func:`raised_limits` changed them)."""
    return _LIMITS.get()


@contextlib.contextmanager
def raised_limits(**changes: int):
    """Run a block with some limits changed: ``with raised_limits(max_digits=10**6): ...``.

    >>> with raised_limits(max_depth=100):
    ...     limits().max_depth
    100
    >>> limits().max_depth
    64
    """
    token = _LIMITS.set(replace(_LIMITS.get(), **changes))
    try:
        yield _LIMITS.get()
    finally:
        _LIMITS.reset(token)


def over_limit(name: str, found: str) -> str:
    """The message for a document past a limit: what was found, the limit and how to raise it.

    >>> over_limit("max_depth", "nesting depth 65")
    'nesting depth 65 is beyond the limit max_depth = 64 (raise it with --limit max_depth=N; docs/cli.md, Limits)'
    """
    value = getattr(limits(), name)
    return f"{found} is beyond the limit {name} = {value} (raise it with --limit {name}=N; docs/cli.md, Limits)"


# A long integer in a message shows this many leading and trailing digits.
_SHOWN_DIGITS = 6
# Up to this many bits (about 38 digits) an integer is shown in full.
_FULL_BITS = 128


def digit_count(n: int) -> int:
    """Decimal digits of abs(n), without str() (which Python refuses past 4,300 digits).

    >>> digit_count(0), digit_count(-999), digit_count(10**5000)
    (1, 3, 5001)
    """
    n = abs(n)
    if n < 10:
        return 1
    # (bits - 1) log10(2) is a lower bound up to float rounding; correct both ways.
    d = int((n.bit_length() - 1) * 0.30102999566398120) + 1
    while d > 1 and n < 10 ** (d - 1):
        d -= 1
    while n >= 10**d:
        d += 1
    return d


def short_number(x: int | Fraction) -> str:
    """A number for a message: in full when short, else head, tail and the digit count.

    Never fails, whatever the size (``str`` of an int over 4,300 digits does).

    >>> short_number(Fraction(-3, 7)), short_number(10**5000 + 7)
    ('-3/7', '100000...000007 (5001 digits)')
    >>> short_number(Fraction(1, 3 * 10**50))
    '1/300000...000000 (51 digits)'
    """
    if isinstance(x, Fraction) and x.denominator != 1:
        return f"{short_number(x.numerator)}/{short_number(x.denominator)}"
    n = int(x)
    if n.bit_length() <= _FULL_BITS:
        return str(n)
    sign = "-" if n < 0 else ""
    n = abs(n)
    d = digit_count(n)
    head = n // 10 ** (d - _SHOWN_DIGITS)
    tail = n % 10**_SHOWN_DIGITS
    return f"{sign}{head}...{tail:0{_SHOWN_DIGITS}d} ({d} digits)"


def quote(value: Any) -> str:
    """repr() of an offending value, shortened so the message stays one line.

    Never raises: a huge integer is shown by its first and last digits and its
    digit count, and an object whose repr fails by its type.

    >>> quote(10**5000), quote("abc"), quote(Fraction(1, 3)), quote([1])
    ('100000...000000 (5001 digits)', "'abc'", '1/3', 'a list')
    """
    if isinstance(value, Rejected):
        text = value.text
        if len(text) > _MAX_QUOTE:
            text = _short_text(text)
    elif isinstance(value, bool) or value is None:
        # Spelled as in the JSON file the user is looking at.
        text = json.dumps(value)
    elif isinstance(value, (int, Fraction)):
        text = short_number(value)
    elif isinstance(value, str):
        text = repr(value[: _MAX_QUOTE + 1])
    elif isinstance(value, list):
        text = "a list" if value else "an empty list"
    elif isinstance(value, dict):
        text = "an object"
    else:
        try:
            text = repr(value)
        except Exception:  # a repr that fails (a huge number inside) must not turn bad input into a crash
            text = f"a {type(value).__name__}"
    text = " ".join(text.split())
    if len(text) > _MAX_QUOTE:
        text = text[: _MAX_QUOTE - 3] + "..."
    return text


def _short_text(text: str) -> str:
    # Number text too long to show: its ends and its length.
    return f"{text[:12]}...{text[-6:]} ({len(text)} characters)"


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
    if len(s) > limits().max_digits:
        raise ValueError(over_limit("max_digits", f"a number of {len(s)} characters"))
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
        # An exponent of many digits is beyond the limit whatever it says, and
        # int() of it could itself fail: measure it first.
        if exp is not None and len(exp.lstrip("+-").lstrip("0")) > len(str(MAX_EXPONENT)):
            raise ValueError(f"exponent {_short_text(exp) if len(exp) > 20 else exp} is beyond +-{MAX_EXPONENT}")
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
        return quote(self)


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
        raise InputError(path, f"{where}: {quote(value)} is not an exact number: {value.reason}")
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


def nested_to_str(x):
    """A nested list of exact numbers (a kernel) as the same nesting of
    :func:`fraction_to_str` strings.  Each distinct value is written once: a
    generator's kernels hold millions of entries but only a few hundred
    distinct float32 values (shared objects), and writing each entry took 8 s
    of a 41 MB certificate.

    >>> nested_to_str([[Fraction(1, 2), 3], [Fraction(1, 2), Fraction(-1, 3)]])
    [['1/2', '3'], ['1/2', '-1/3']]
    """
    memo: dict = {}

    def text(v) -> str:
        # Keyed by identity: a kernel read from a model file shares one
        # Fraction object per distinct value, and every object stays alive
        # (held by x) while this runs, so an id names one object throughout.
        # (Fraction.__hash__ costs a modular inverse: 5 s over 4.9 M entries.)
        s = memo.get(id(v))
        if s is None:
            s = memo[id(v)] = fraction_to_str(v)  # refuses floats and bools
        return s

    def walk(y):
        if isinstance(y, (Fraction, int)):
            return text(y)
        items = list(y)
        if items and isinstance(items[0], (Fraction, int)) and not isinstance(items[0], bool):
            return [text(v) for v in items]
        return [walk(v) for v in items]

    return walk(x)


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
    if isinstance(v, int):
        return Fraction(v)
    if isinstance(v, Fraction):
        # From its parts, which normalises it: Fraction(x) keeps an
        # unnormalised x (Fraction(n, d, _normalize=False) with d < 0), which
        # compares the wrong way round.  The checker reads API values here.
        return Fraction(v.numerator, v.denominator)
    if isinstance(v, str):
        return Fraction(v.strip())
    raise TypeError(f"cannot read {v!r} as an exact number")
