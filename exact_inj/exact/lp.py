"""An exact decision of one strict system, for when floating point cannot tell.

Decides whether { w_i.z + b_i t < 0 : i in S, t >= 0 } has a solution, by an
exact phase-1 simplex (Bland's rule, rational tableau) on the Motzkin system

    lambda >= 0,  sum_i lambda_i w_i = 0,  sum_i lambda_i = 1,  sum_i lambda_i b_i >= 0.

A feasible lambda is a Motzkin multiplier: the rows cannot all be strictly
negative.  If phase 1 ends with a positive objective, its dual vector y is a
Farkas certificate of infeasibility, and y's components give (z, t) with w_i.z + b_i t < 0 for every row.  Both answers are exact.

This is the fallback for thin cells (docs/theory.md, section 6), where HiGHS's
tolerances cannot separate a 1e-9-wide cone from nothing.  It is slow in
pure Python, so the search calls it only after the float route failed.
Callers still verify what it returns.
"""

from __future__ import annotations

import time
from fractions import Fraction
from math import lcm
from typing import Sequence


def strict_or_motzkin(
    rows: Sequence[Sequence[int]],
    bias: Sequence[int],
    nonstrict_rows: Sequence[Sequence[int]] = (),
    nonstrict_bias: Sequence[int] = (),
    deadline: float | None = None,
) -> tuple[str, list[Fraction], Fraction | list[Fraction]] | tuple[str, None, None]:
    """Decide { w_i.z + b_i t < 0 (strict rows), g_j.z + c_j t <= 0
    (non-strict rows), t >= 0 } exactly.

    Returns ('point', z, t), or ('multiplier', lam, mu) with lam >= 0,
    lam != 0, mu >= 0, sum lam_i w_i + sum mu_j g_j = 0 and
    sum lam_i b_i + sum mu_j c_j >= 0.  (The non-strict rows describe a
    nonempty domain, so a multiplier with lam = 0 cannot arise.)

    With a ``deadline`` (a ``time.perf_counter()`` value), returns
    ('limit', None, None) once a pivot starts past it: one call on a wide
    layer can take seconds, and a search abandoned at its time limit must
    not keep a core busy in here.

    >>> strict_or_motzkin([[1], [-1]], [0, 0])[0]
    'multiplier'
    >>> kind, z, t = strict_or_motzkin([[1], [-1]], [-1, -1])
    >>> kind, all(w * z[0] + b * t < 0 for w, b in ((1, -1), (-1, -1)))
    ('point', True)
    >>> strict_or_motzkin([[1]], [0], [[-1]], [0])[0]   # x < 0 and x >= 0
    'multiplier'
    """
    k = len(rows)
    q = len(nonstrict_rows)
    n = len(rows[0]) if k else (len(nonstrict_rows[0]) if q else 0)
    if k == 0:
        return ("point", [Fraction(0)] * n, Fraction(0))
    # Equality rows: n rows of [W^T G^T], the normalisation (lambda only),
    # and b.lambda + c.mu - sigma = 0.
    R = n + 2
    ncols = k + q + 1  # lambda_1..lambda_k, mu_1..mu_q, sigma
    A: list[list[Fraction]] = []
    for j in range(n):
        A.append([Fraction(rows[i][j]) for i in range(k)] + [Fraction(nonstrict_rows[i][j]) for i in range(q)]
                 + [Fraction(0)])
    A.append([Fraction(1)] * k + [Fraction(0)] * q + [Fraction(0)])
    A.append([Fraction(bias[i]) for i in range(k)] + [Fraction(nonstrict_bias[i]) for i in range(q)] + [Fraction(-1)])
    rhs = [Fraction(0)] * n + [Fraction(1), Fraction(0)]
    # Tableau with artificials a_r (columns ncols..ncols+R-1), basis = artificials.
    T = [A[r] + [Fraction(1 if c == r else 0) for c in range(R)] + [rhs[r]] for r in range(R)]
    width = ncols + R
    basis = [ncols + r for r in range(R)]
    # Phase-1 cost: minimise the sum of artificials.  Reduced costs d_j = c_j - sum_r T[r][j].
    cost = [Fraction(0)] * ncols + [Fraction(1)] * R
    while True:
        if deadline is not None and time.perf_counter() > deadline:
            return ("limit", None, None)
        cb = [cost[b] for b in basis]
        enter = None
        for j in range(width):
            d = cost[j] - sum(cb[r] * T[r][j] for r in range(R))
            if d < 0:
                enter = j  # Bland: the lowest index
                break
        if enter is None:
            break
        leave = None
        best = None
        for r in range(R):
            a = T[r][enter]
            if a > 0:
                ratio = T[r][-1] / a
                if best is None or ratio < best or (ratio == best and basis[r] < basis[leave]):
                    best, leave = ratio, r
        if leave is None:  # unbounded cannot happen in phase 1 (objective >= 0)
            raise AssertionError("phase 1 unbounded")
        piv = T[leave][enter]
        T[leave] = [x / piv for x in T[leave]]
        for r in range(R):
            if r != leave and T[r][enter] != 0:
                f = T[r][enter]
                T[r] = [x - f * y for x, y in zip(T[r], T[leave])]
        basis[leave] = enter
    cb = [cost[b] for b in basis]
    objective = sum(cb[r] * T[r][-1] for r in range(R))
    if objective == 0:
        vals = [Fraction(0)] * ncols
        for r, b in enumerate(basis):
            if b < ncols:
                vals[b] = T[r][-1]
        return ("multiplier", vals[:k], vals[k:k + q])
    # Duals y_r = c_B B^{-1} e_r: the artificial columns of the tableau hold B^{-1}.
    y = [sum(cb[i] * T[i][ncols + r] for i in range(R)) for r in range(R)]
    # Optimal phase 1: reduced costs c_j - y.A_j >= 0, so y.A_j <= 0 for every
    # original column, and y.rhs = objective > 0.  Column lambda_i says
    # w_i.y_W + y_1 + b_i y_b <= 0 with y_1 = y.rhs > 0; column mu_j says
    # g_j.y_W + c_j y_b <= 0; column sigma says y_b >= 0.
    z = [y[j] for j in range(n)]
    t = y[n + 1]
    return ("point", z, t)


def motzkin_rows(strict, nonstrict, deadline: float | None = None):
    """:func:`strict_or_motzkin` on rows given as pairs (a, c) of Fractions,
    meaning a.z + c t < 0 (strict) or <= 0 (non-strict); ('limit', None,
    None) past ``deadline``, as there.

    Each row is scaled by a positive integer to integers first; the
    multipliers returned are those of the rows as given.

    >>> F = Fraction
    >>> motzkin_rows([((F(1, 2),), F(0))], [((F(-1, 3),), F(0))])[0]   # x/2 < 0 and -x/3 <= 0
    'multiplier'
    """
    S = [_scaled(r) for r in strict]
    T = [_scaled(r) for r in nonstrict]
    kind, p, q = strict_or_motzkin([g[:-1] for g, _ in S], [g[-1] for g, _ in S],
                                   [g[:-1] for g, _ in T], [g[-1] for g, _ in T], deadline)
    if kind in ("point", "limit"):
        return kind, p, q
    # Multipliers of the scaled rows are multipliers of the original rows times s.
    return kind, [v * s for v, (_, s) in zip(p, S)], [v * s for v, (_, s) in zip(q, T)]


def equations_as_rows(eqs):
    """Each equation e.z + d = 0 as the two rows e.z + d <= 0 and -e.z - d <= 0
    (a free multiplier of the equation is the difference of theirs)."""
    return [r for e, d in eqs for r in ((e, d), (tuple(-v for v in e), -d))]


def _scaled(row) -> tuple[list[int], int]:
    """An integer row (g, c) = s (a, c) with s > 0, and s."""
    a, c = row
    s = lcm(*(v.denominator for v in a), c.denominator)
    return [int(v * s) for v in a] + [int(c * s)], s
