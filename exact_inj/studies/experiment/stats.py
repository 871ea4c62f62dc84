"""Statistics of the Gaussian experiment: Wilson intervals, the closed forms
for n = 1, 2, totals per point, crossings of 1/2 and the acceptance test."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterable, Sequence

from .trials import TrialResult

__all__ = [
    "Acceptance", "Crossing", "Point", "Z95", "acceptance", "closed_form", "crossings", "fmt_prob", "fmt_ratio",
    "tally", "wilson",
]

Z95 = 1.959963984540054  # the standard normal 97.5% quantile


def wilson(k: int, total: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in ``total`` trials.

    lo is exactly 0 when k = 0 and hi exactly 1 when k = total (floating point
    would otherwise leave 1e-17 where the data say "none").

    >>> wilson(0, 20)[0], wilson(20, 20)[1]
    (0.0, 1.0)
    >>> lo, hi = wilson(50, 100); round(lo, 4), round(hi, 4)
    (0.4038, 0.5962)
    """
    if total <= 0:
        raise ValueError("no trials")
    p = k / total
    z2 = z * z
    denom = 1 + z2 / total
    centre = (p + z2 / (2 * total)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total))
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == total else min(1.0, centre + half)
    return lo, hi


def closed_form(n: int, m: int) -> Fraction | None:
    """Exact P(injective) for iid Gaussian bias-free layers, n = 1 or 2 (docs/theory.md, section 7).

    n = 1: 1 - 2^(1-m).  n = 2: 1 - m(m-2)/2^(m-1) for m >= 4, 0 for m <= 3.
    None for other n.

    >>> closed_form(1, 3), closed_form(2, 5), closed_form(2, 3), closed_form(3, 9)
    (Fraction(3, 4), Fraction(1, 16), Fraction(0, 1), None)
    """
    if n == 1:
        return 1 - Fraction(1, 2 ** (m - 1))
    if n == 2:
        return Fraction(0) if m <= 3 else 1 - Fraction(m * (m - 2), 2 ** (m - 1))
    return None


@dataclass(frozen=True)
class Point:
    """Totals at one (n, m)."""

    n: int
    m: int
    trials: int
    injective: int
    not_injective: int
    unknown: int

    @property
    def ratio(self) -> float:
        return self.m / self.n

    @property
    def decided(self) -> int:
        return self.injective + self.not_injective

    @property
    def p(self) -> float | None:
        """Fraction injective among decided trials (None if none decided)."""
        return self.injective / self.decided if self.decided else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson(self.injective, self.decided) if self.decided else None

    @property
    def bracket(self) -> tuple[float, float] | None:
        """[injective/T, (injective + unknown)/T]: P's range whatever the unknowns are."""
        if not self.trials:
            return None
        return self.injective / self.trials, (self.injective + self.unknown) / self.trials

    def csv_row(self) -> list[str]:
        iv = self.interval
        p = self.p
        return [str(self.n), str(self.m), fmt_ratio(self.ratio), str(self.trials), str(self.injective),
                str(self.not_injective), str(self.unknown),
                "" if p is None else fmt_prob(p), "" if iv is None else fmt_prob(iv[0]), "" if iv is None else fmt_prob(iv[1])]


def fmt_prob(x: float) -> str:
    # Six decimals, but 0 and 1 only when exact: lo = 0 and hi = 1 are
    # statements about the data (see wilson()), so 0.9999997 must not print
    # as 1.000000.
    if x == 0:
        return "0"
    if x == 1:
        return "1"
    s = f"{x:.6f}"
    return repr(x) if s in ("0.000000", "1.000000") else s


def fmt_ratio(x: float) -> str:
    return f"{x:.6f}".rstrip("0").rstrip(".")


def tally(results: Iterable[TrialResult], points: Sequence[tuple[int, int]],
          trials_for: Callable[[int], int]) -> list[Point]:
    """Totals per point over trials 0 .. T-1 (results outside that range are ignored)."""
    counts = {p: [0, 0, 0] for p in points}
    col = {"injective": 0, "not_injective": 1, "unknown": 2}
    for r in results:
        c = counts.get((r.n, r.m))
        if c is not None and r.trial < trials_for(r.n):
            c[col[r.status]] += 1
    return [Point(n, m, sum(c), *c) for (n, m), c in sorted(counts.items())]


@dataclass(frozen=True)
class Crossing:
    """Where the estimated curve for one n crosses 1/2, between two grid points."""

    n: int
    left: float  # m/n of the last point on one side
    right: float  # m/n of the first point on the other side
    at: float | None  # linear interpolation of p in m/n (None if a point in between straddles 1/2)
    upward: bool


def crossings(points: Sequence[Point]) -> list[Crossing]:
    """Crossings of 1/2, only between points whose brackets lie on one side of 1/2.

    A point is below when (injective + unknown)/T < 1/2 and above when
    injective/T > 1/2; points whose bracket straddles 1/2 decide nothing.

    >>> pts = [Point(2, m, 100, k, 100 - k, 0) for m, k in ((6, 20), (7, 40), (8, 70))]
    >>> c, = crossings(pts); (c.left, c.right, round(c.at, 4), c.upward)
    (3.5, 4.0, 3.6667, True)
    """
    out: list[Crossing] = []
    by_n: dict[int, list[Point]] = {}
    for p in points:
        if p.trials:
            by_n.setdefault(p.n, []).append(p)
    for n, pts in sorted(by_n.items()):
        pts.sort(key=lambda q: q.m)
        last: tuple[Point, int] | None = None  # last definite point and its side
        straddled = False
        for q in pts:
            lo, hi = q.bracket
            side = -1 if hi < 0.5 else 1 if lo > 0.5 else 0
            if side == 0:
                straddled = True
                continue
            if last is not None and side != last[1]:
                a = last[0]
                at = None
                if not straddled:
                    # p lies inside each bracket, so it is on the same side of 1/2.
                    pa, pb = a.p, q.p
                    at = a.ratio + (0.5 - pa) / (pb - pa) * (q.ratio - a.ratio)
                out.append(Crossing(n, a.ratio, q.ratio, at, side > 0))
            last = (q, side)
            straddled = False
    return out


@dataclass(frozen=True)
class Acceptance:
    """The issue's acceptance test on the n = 1, 2 points (closed forms known)."""

    inside: int  # points with 0 < P < 1 whose Wilson interval holds P
    interior: int  # points with 0 < P < 1
    zero_points: int  # points with P = 0
    zero_violations: int  # of those, points with an injective trial

    @property
    def passed(self) -> bool:
        return self.interior > 0 and self.inside >= 0.85 * self.interior and self.zero_violations == 0


def acceptance(points: Sequence[Point]) -> Acceptance | None:
    """None when the points hold no n = 1 or n = 2 data.

    >>> acceptance([Point(1, 1, 10, 0, 10, 0), Point(1, 2, 100, 48, 52, 0)])
    Acceptance(inside=1, interior=1, zero_points=1, zero_violations=0)
    """
    inside = interior = zeros = bad = 0
    for p in points:
        cf = closed_form(p.n, p.m)
        if cf is None or not p.decided:
            continue
        if cf == 0:
            zeros += 1
            bad += p.injective > 0
        elif cf < 1:
            interior += 1
            lo, hi = p.interval
            inside += lo <= cf <= hi
    if not interior and not zeros:
        return None
    return Acceptance(inside, interior, zeros, bad)

