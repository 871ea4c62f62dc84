"""Where P(injective) crosses 1/2, with a 95% interval: a local logistic fit
of the counts against m/n and its profile-likelihood interval.

The model (an assumption, stated in docs/experiment.md): near its crossing,
the curve of one n is P(r) = sigma(b (r - c)) in r = m/n, with sigma the
logistic function, b >= 0 and c the crossing.  Trials are independent (each
has its own generator), so the injective count at a point is binomial.

* **Estimate.** c maximises the profile log-likelihood
  lp(c) = max over b >= 0 of l(c, b).  For fixed c, l is concave in b (the
  logistic log-likelihood is concave in the linear predictor, which is linear
  in b), so the inner maximum is a bisection on the sign of dl/db.  The
  superlevel sets of lp are intervals (images of convex sets of (a, b) under
  the continuous map c = -a/b), so lp is unimodal and a grid plus zooming
  finds its maximum and its level crossings.
* **Interval.** {c : 2 (lp(c_hat) - lp(c)) <= chi2_1(0.95) = 3.84}, the
  profile-likelihood interval; its coverage is checked by simulation
  (tests/test_crossing.py).  As c runs off to +-infinity, lp tends to the
  best constant fit (b -> 0), so when the data cannot exclude that, the
  interval is unbounded on that side and says so (+-inf).
* **Separation.** Points with no injective trial below points with only
  injective ones make the MLE of b infinite; b is capped at a value where the
  fitted curve is a step to within 1e-10 between grid points, and the
  interval then covers the gap between the separating points.
* **Unknown trials** are neither dropped nor guessed: the estimate uses the
  decided trials, and the interval is the union of the intervals with every
  unknown counted injective and with every unknown counted not injective.
* **No crossing** (every point on one side of 1/2) is refused with
  :class:`NoCrossing`: an extrapolated crossing would be the model speaking,
  not the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .stats import Point, closed_form

__all__ = ["CHI2_95", "CrossingFit", "CrossingEstimate", "LogisticFit", "NoCrossing", "chi2_sf",
           "closed_form_crossing", "crossing_estimates", "fit_logistic", "fit_window", "known_zero", "step_centre"]

CHI2_95 = 3.841458820694124  # the 95% quantile of chi-square with 1 degree of freedom (1.959964^2)
_GRID = 65  # profile evaluations per zoom level (6 levels: a factor 32 each)
_BISECT = 56  # bisection steps for b (b_max / 2^56 is far below what l can see)


class NoCrossing(ValueError):
    """The data have no point on one side of 1/2, so they hold no crossing."""


def _loglik(eta: np.ndarray, k: np.ndarray, t: np.ndarray) -> np.ndarray:
    # k log sigma(eta) + (t - k) log sigma(-eta), stably; summed over the last axis.
    return -(k * np.logaddexp(0.0, -eta) + (t - k) * np.logaddexp(0.0, eta)).sum(axis=-1)


def _profile(cs: np.ndarray, x: np.ndarray, k: np.ndarray, t: np.ndarray, bmax: float) -> tuple[np.ndarray, np.ndarray]:
    """lp(c) and the maximising b for every c in ``cs`` (vectorised bisection on dl/db)."""
    d = x[None, :] - cs[:, None]  # G x K
    lo = np.zeros(len(cs))
    hi = np.full(len(cs), bmax)

    def slope(b: np.ndarray) -> np.ndarray:
        p = 0.5 * (1.0 + np.tanh(0.5 * b[:, None] * d))  # sigma, without overflow
        return ((k - t * p) * d).sum(axis=1)

    # dl/db is decreasing in b (concavity): keep [lo, hi] around its zero, or
    # at an end of [0, bmax] when it has none there.
    at_zero = slope(lo) <= 0
    at_cap = slope(hi) >= 0
    for _ in range(_BISECT):
        mid = 0.5 * (lo + hi)
        up = slope(mid) > 0
        lo = np.where(up, mid, lo)
        hi = np.where(up, hi, mid)
    b = np.where(at_zero, 0.0, np.where(at_cap, bmax, 0.5 * (lo + hi)))
    return _loglik(b[:, None] * d, k, t), b


def _argmax(f, a: float, z: float) -> float:
    """Maximiser of the unimodal f on [a, z] by grid zooming."""
    for _ in range(6):
        cs = np.linspace(a, z, _GRID)
        i = int(np.argmax(f(cs)))
        a, z = cs[max(i - 1, 0)], cs[min(i + 1, _GRID - 1)]
    return float(0.5 * (a + z))


def _level(f, inside: float, outside: float, level: float) -> float:
    """The point between ``inside`` (f >= level) and ``outside`` (f < level) where f = level."""
    for _ in range(6):
        cs = np.linspace(inside, outside, _GRID)
        below = np.nonzero(f(cs) < level)[0]
        j = int(below[0])  # exists: f(outside) < level
        inside, outside = cs[j - 1], cs[j]
    return float(0.5 * (inside + outside))


def chi2_sf(x: float, dof: int) -> float:
    """P(chi-square with ``dof`` degrees of freedom > x), exactly for integer dof.

    >>> round(chi2_sf(3.841458820694124, 1), 6), round(chi2_sf(2.0, 2), 6)
    (0.05, 0.367879)
    """
    if dof < 1:
        raise ValueError("dof must be at least 1")
    if x <= 0:
        return 1.0
    h = x / 2
    if dof % 2 == 0:
        term = total = math.exp(-h)
        for j in range(1, dof // 2):
            term *= h / j
            total += term
        return min(1.0, total)
    total = math.erfc(math.sqrt(h))
    term = math.exp(-h) * math.sqrt(h) / math.gamma(1.5)
    for j in range(0, (dof - 1) // 2):
        total += term
        term *= h / (j + 1.5)
    return min(1.0, total)


@dataclass(frozen=True)
class LogisticFit:
    """The fit of P(r) = sigma(slope (r - crossing)) to counts at ratios r."""

    crossing: float
    lo: float  # 95% profile-likelihood interval; -inf / inf when the data cannot bound it
    hi: float
    slope: float  # the MLE of b at the crossing (capped under separation)
    deviance: float  # against the saturated model
    dof: int  # points - 2
    separated: bool  # the MLE slope hit the cap (a step between grid points)

    @property
    def fit_p(self) -> float | None:
        """Goodness of fit: P(chi2_dof > deviance); None with fewer than 3 points."""
        return chi2_sf(self.deviance, self.dof) if self.dof > 0 else None


def fit_logistic(ratios: Sequence[float], injective: Sequence[float], trials: Sequence[float],
                 chi2: float = CHI2_95) -> LogisticFit:
    """Fit the logistic model to (ratio, injective count, trials) points.

    Counts may be fractional (expected counts of a known curve give the
    curve's own logistic crossing).  Raises :class:`NoCrossing` when no point
    lies below 1/2 or none above, and ValueError with fewer than two ratios.

    >>> f = fit_logistic([4.0, 4.5, 5.0, 5.5], [5, 12, 30, 37], [40, 40, 40, 40])
    >>> round(f.crossing, 3), round(f.lo, 3), round(f.hi, 3)
    (4.696, 4.564, 4.826)
    >>> fit_logistic([4.0, 4.5], [0, 0], [10, 10])
    Traceback (most recent call last):
    ...
    exact_inj.studies.experiment.crossing.NoCrossing: no crossing of 1/2 in the data: no point has P above 1/2 (2 points, m/n 4 to 4.5); add points at larger m/n
    """
    x = np.asarray(ratios, dtype=float)
    k = np.asarray(injective, dtype=float)
    t = np.asarray(trials, dtype=float)
    keep = t > 0
    x, k, t = x[keep], k[keep], t[keep]
    if len(np.unique(x)) < 2:
        raise ValueError("a crossing needs trials at two or more ratios")
    where = f"{len(x)} points, m/n {x.min():g} to {x.max():g}"
    # A point exactly at 1/2 counts on both sides (n = 1, m = 2 has P = 1/2
    # exactly), but the data must not sit at 1/2 everywhere.
    below, above = k < t / 2, k > t / 2
    at = ~below & ~above
    if not (below | at).any():
        raise NoCrossing(f"no crossing of 1/2 in the data: no point has P below 1/2 ({where}); "
                         "add points at smaller m/n")
    if not (above | at).any():
        raise NoCrossing(f"no crossing of 1/2 in the data: no point has P above 1/2 ({where}); "
                         "add points at larger m/n")
    if at.all():
        raise NoCrossing(f"no crossing of 1/2 in the data: every point has P = 1/2 exactly ({where})")
    xs = np.unique(x)
    span = float(xs[-1] - xs[0])
    # The cap on b: sigma(b * gap / 2) within 1e-10 of 1 for the smallest gap
    # between ratios, i.e. a step as sharp as the grid can see.
    gap = float(np.diff(xs).min())
    bmax = 2 * 23.1 / gap + 1.0

    def lp(cs: np.ndarray) -> np.ndarray:
        return _profile(cs, x, k, t, bmax)[0]

    c = _argmax(lp, float(xs[0]) - span, float(xs[-1]) + span)
    top, b = (float(v[0]) for v in _profile(np.array([c]), x, k, t, bmax))
    level = top - chi2 / 2
    ends = []
    for direction in (-1.0, 1.0):
        # The profile flattens to the best constant fit far out: look that far
        # (100 spans) and call the side unbounded if the level is not crossed.
        far = c + direction * 100 * span
        if lp(np.array([far]))[0] >= level:
            ends.append(direction * math.inf)
        else:
            ends.append(_level(lp, c, far, level))
    with np.errstate(divide="ignore", invalid="ignore"):
        ph = 0.5 * (1.0 + np.tanh(0.5 * b * (x - c)))
        sat = np.where(k > 0, k * np.log(k / (t * ph)), 0.0) + np.where(t > k, (t - k) * np.log((t - k) / (t * (1 - ph))), 0.0)
    deviance = max(0.0, 2 * float(sat.sum()))
    return LogisticFit(c, float(ends[0]), float(ends[1]), b, deviance, len(x) - 2, b >= bmax)


def known_zero(n: int, m: int) -> bool:
    """P(injective) = 0 for a Gaussian bias-free layer: m < 2n always, and m = 2n
    for n >= 2, which needs the probability-zero [B; -DB] structure (docs/theory.md, section 7).
    For n = 1, m = 2 is injective with probability 1/2.

    >>> known_zero(3, 6), known_zero(1, 2), known_zero(3, 7)
    (True, False, False)
    """
    return m < 2 * n or (m == 2 * n and n >= 2)


def step_centre(points: Sequence[Point]) -> float:
    """Where a step from 0 to 1 fits the decided counts best (fewest trials on
    the wrong side); the middle of the best gap, averaged over ties.  Only
    centres the fit's window.

    >>> step_centre([Point(2, m, 10, k, 10 - k, 0) for m, k in ((6, 1), (7, 3), (8, 8), (9, 10))])
    3.75
    """
    pts = sorted(points, key=lambda p: p.m)
    rs = [p.ratio for p in pts]
    cuts = [rs[0] - 0.5] + [(a + b) / 2 for a, b in zip(rs, rs[1:])] + [rs[-1] + 0.5]
    best, where = None, []
    for i, c in enumerate(cuts):
        wrong = sum(p.injective for p in pts[:i]) + sum(p.not_injective for p in pts[i:])
        if best is None or wrong < best:
            best, where = wrong, [c]
        elif wrong == best:
            where.append(c)
    return sum(where) / len(where)


def fit_window(points: Sequence[Point], half_width: float) -> tuple[tuple[float, float], list[Point]]:
    """The points of one n that the fit uses: ratio within ``half_width`` of
    :func:`step_centre`, known zeros left out (they hold no information on
    the curve's shape near 1/2, and the logistic never reaches 0)."""
    usable = [p for p in points if p.trials and not known_zero(p.n, p.m)]
    if not usable:
        return (math.nan, math.nan), []
    decided = [p for p in usable if p.decided]
    centre = step_centre(decided or usable)
    lo, hi = centre - half_width, centre + half_width
    return (lo, hi), [p for p in usable if lo - 1e-12 <= p.ratio <= hi + 1e-12]


@dataclass(frozen=True)
class CrossingEstimate:
    """The 1/2-crossing of one n's curve, or why there is none (``note``)."""

    n: int
    window: tuple[float, float]  # ratios the fit may use
    points: int  # points in the window
    trials: int  # trials in the window
    unknown: int  # of which undecided
    crossing: float | None  # from the decided trials
    lo: float | None  # 95% interval, widened over every way the unknowns could go
    hi: float | None
    slope: float | None
    deviance: float | None
    dof: int | None
    fit_p: float | None
    note: str  # "" or why there is no estimate / what to read with care

    @property
    def ok(self) -> bool:
        return self.crossing is not None


# Kept for the name the docs use: one fit.
CrossingFit = LogisticFit


def _fit_points(pts: Sequence[Point], unknown_as: str | None) -> LogisticFit:
    xs = [p.ratio for p in pts]
    if unknown_as is None:
        return fit_logistic(xs, [p.injective for p in pts], [p.decided for p in pts])
    add = unknown_as == "injective"
    return fit_logistic(xs, [p.injective + (p.unknown if add else 0) for p in pts], [p.trials for p in pts])


def crossing_estimates(points: Sequence[Point], half_width: float = 1.0) -> list[CrossingEstimate]:
    """One :class:`CrossingEstimate` per n in ``points``.

    >>> pts = [Point(3, m, 40, k, 40 - k, 0) for m, k in ((12, 4), (13, 9), (14, 20), (15, 27), (16, 35))]
    >>> e, = crossing_estimates(pts)
    >>> round(e.crossing, 3), round(e.lo, 3), round(e.hi, 3), e.points, e.note
    (4.715, 4.603, 4.83, 5, '')
    """
    by_n: dict[int, list[Point]] = {}
    for p in points:
        by_n.setdefault(p.n, []).append(p)
    out = []
    for n, pts in sorted(by_n.items()):
        window, used = fit_window(pts, half_width)
        trials = sum(p.trials for p in used)
        unknown = sum(p.unknown for p in used)
        blank = dict(crossing=None, lo=None, hi=None, slope=None, deviance=None, dof=None, fit_p=None)
        try:
            fit = _fit_points(used, None)
        except ValueError as e:  # NoCrossing or too few ratios
            msg = str(e) if used else "no trials at m > 2n"
            out.append(CrossingEstimate(n, window, len(used), trials, unknown, note=msg, **blank))
            continue
        lo, hi = fit.lo, fit.hi
        notes = []
        if unknown:
            for way in ("injective", "not_injective"):
                try:
                    f = _fit_points(used, way)
                    lo, hi = min(lo, f.lo), max(hi, f.hi)
                except NoCrossing:
                    # Counted this way the unknowns leave no point on one side:
                    # the crossing could lie beyond the data on that side.
                    if way == "injective":
                        lo = -math.inf
                    else:
                        hi = math.inf
            notes.append(f"interval widened over {unknown} unknown trials")
        if fit.separated:
            notes.append("separated data: a step between grid points")
        out.append(CrossingEstimate(n, window, len(used), trials, unknown, fit.crossing, lo, hi, fit.slope,
                                    fit.deviance, fit.dof, fit.fit_p, "; ".join(notes)))
    return out


def closed_form_crossing(n: int, half_width: float = 1.0, ms: Sequence[int] | None = None) -> float:
    """What :func:`crossing_estimates` converges to for n = 1, 2 as the trials
    grow: the fit applied to the exact P of docs/theory.md, section 7, at
    every m (or at ``ms``), with 10^12 trials per point standing in for
    infinitely many.  Differences from another convention (the logit-linear
    interpolation between the two m on either side of 1/2) are the model's
    bias, not noise.

    >>> round(closed_form_crossing(1), 6), round(closed_form_crossing(2, 0.5), 4)
    (2.0, 3.6345)
    """
    if closed_form(n, 1) is None:
        raise ValueError(f"no closed form for n = {n}")
    big = 10 ** 12
    pts = []
    for m in ms if ms is not None else range(1, 12 * n + 1):
        k = int(closed_form(n, m) * big)
        pts.append(Point(n, m, big, k, big - k, 0))
    e, = crossing_estimates(pts, half_width)
    if e.crossing is None:
        raise ValueError(e.note)
    return float(e.crossing)
