"""Parsing the grid of ``exact-inj experiment gaussian``: input dimensions,
ratios m/n, trials per n, and the (n, m) points they give."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

__all__ = ["RatiosSpec", "TrialsSpec", "grid", "parse_ns", "parse_ratio_specs", "parse_ratios", "parse_trials",
           "round_half_up"]


def _positive_int(text: str, what: str) -> int:
    try:
        v = int(text.strip())
    except ValueError:
        raise ValueError(f"{what}: {text.strip()!r} is not an integer") from None
    if v < 1:
        raise ValueError(f"{what}: {v} must be at least 1")
    return v


def parse_ns(text: str) -> tuple[int, ...]:
    """Input dimensions from ``"2,3,4"`` or ``"2-6"`` (mixable), sorted, unique.

    >>> parse_ns("2,3,4"), parse_ns("2-4,7"), parse_ns("3,1,3")
    ((2, 3, 4), (2, 3, 4, 7), (1, 3))
    """
    out: set[int] = set()
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise ValueError(f"empty item in {text!r}")
        if "-" in item:
            a, _, b = item.partition("-")
            lo, hi = _positive_int(a, "n"), _positive_int(b, "n")
            if hi < lo:
                raise ValueError(f"empty range {item!r}")
            out.update(range(lo, hi + 1))
        else:
            out.add(_positive_int(item, "n"))
    return tuple(sorted(out))


def _ratio(text: str) -> Fraction:
    # Ratios are read as exact decimals so that 0.5-steps land exactly on
    # half-integers and rounding m = ratio * n never depends on float error.
    try:
        r = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"{text.strip()!r} is not a number") from None
    if r <= 0:
        raise ValueError(f"ratio {text.strip()} must be positive")
    return r


def parse_ratios(text: str) -> tuple[Fraction, ...]:
    """Ratios m/n from ``"START:STOP:STEP"`` (STOP included) or a list ``"2,3.4,6.7"``.

    >>> [str(r) for r in parse_ratios("1:3:0.5")]
    ['1', '3/2', '2', '5/2', '3']
    >>> [float(r) for r in parse_ratios("6.7, 2")]
    [2.0, 6.7]
    """
    text = text.strip()
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise ValueError(f"{text!r}: a range is START:STOP:STEP")
        start, stop, step = (_ratio(p) for p in parts)
        if stop < start:
            raise ValueError(f"{text!r}: STOP is below START")
        count = int((stop - start) / step) + 1
        if count > 10_000:
            raise ValueError(f"{text!r}: {count} ratios is too many")
        return tuple(start + k * step for k in range(count))
    return tuple(sorted({_ratio(p) for p in text.split(",")}))


@dataclass(frozen=True)
class TrialsSpec:
    """Trials per input dimension: a default and per-n overrides."""

    default: int | None
    per_n: tuple[tuple[int, int], ...] = ()

    def for_n(self, n: int) -> int:
        for k, t in self.per_n:
            if k == n:
                return t
        if self.default is None:
            raise ValueError(f"--trials gives no count for n = {n} (add a bare number as the default, or {n}=T)")
        return self.default


def parse_trials(text: str) -> TrialsSpec:
    """``"200"`` for every n, or per-n counts ``"200,5=50,6=20"`` (a bare number is the default).

    The cost of one exact decision grows about 4^n, so a fixed CPU budget
    wants fewer trials at larger n.

    >>> s = parse_trials("200,6=20")
    >>> s.for_n(2), s.for_n(6)
    (200, 20)
    """
    default: int | None = None
    per: dict[int, int] = {}
    for item in text.split(","):
        item = item.strip()
        if "=" in item:
            a, _, b = item.partition("=")
            per[_positive_int(a, "n")] = _positive_int(b, "trials")
        else:
            if default is not None:
                raise ValueError(f"{text!r} gives two defaults")
            default = _positive_int(item, "trials")
    return TrialsSpec(default, tuple(sorted(per.items())))


@dataclass(frozen=True)
class RatiosSpec:
    """Ratios m/n per input dimension: a default list and per-n lists.

    A threshold study wants each n's points near that n's own crossing
    (docs/experiment.md), which one shared list cannot give without
    spending trials far from every crossing but one.
    """

    default: tuple[Fraction, ...] | None
    per_n: tuple[tuple[int, tuple[Fraction, ...]], ...] = ()

    def for_n(self, n: int) -> tuple[Fraction, ...]:
        for k, rs in self.per_n:
            if k == n:
                return rs
        if self.default is None:
            raise ValueError(f"--ratio gives no ratios for n = {n} (add one without N= as the default, or {n}=R)")
        return self.default


def parse_ratio_specs(items: Sequence[str]) -> RatiosSpec:
    """Ratios from repeated ``--ratio`` values: ``R`` for every n without its
    own, ``N=R`` for the one n (R as in :func:`parse_ratios`).

    >>> s = parse_ratio_specs(["1:3:1", "7=5.5:6:0.25"])
    >>> [str(r) for r in s.for_n(2)], [str(r) for r in s.for_n(7)]
    (['1', '2', '3'], ['11/2', '23/4', '6'])
    """
    default: tuple[Fraction, ...] | None = None
    per: dict[int, tuple[Fraction, ...]] = {}
    for text in items:
        head, eq, rest = text.partition("=")
        if eq:
            n = _positive_int(head, "n")
            if n in per:
                raise ValueError(f"--ratio gives n = {n} twice")
            per[n] = parse_ratios(rest)
        else:
            if default is not None:
                raise ValueError("--ratio gives two defaults (only one may omit N=)")
            default = parse_ratios(text)
    return RatiosSpec(default, tuple(sorted(per.items())))


def round_half_up(x: Fraction) -> int:
    """round(x) with halves rounded up (Python's round() would send 2.5 to 2).

    >>> [round_half_up(Fraction(k, 2)) for k in (3, 5, 7)]
    [2, 3, 4]
    """
    return math.floor(x + Fraction(1, 2))


def grid(ns: Sequence[int], ratios: Sequence[Fraction] | RatiosSpec) -> tuple[tuple[int, int], ...]:
    """The (n, m) points, m = round_half_up(ratio * n) >= 1; equal m are merged.

    >>> grid([1, 2], [Fraction(1), Fraction(3, 2), Fraction(2)])
    ((1, 1), (1, 2), (2, 2), (2, 3), (2, 4))
    >>> grid([1, 2], RatiosSpec((Fraction(1),), ((2, (Fraction(3), Fraction(4))),)))
    ((1, 1), (2, 6), (2, 8))
    """
    spec = ratios if isinstance(ratios, RatiosSpec) else RatiosSpec(tuple(ratios))
    pts = {(n, round_half_up(r * n)) for n in ns for r in spec.for_n(n)}
    return tuple(sorted(p for p in pts if p[1] >= 1))

