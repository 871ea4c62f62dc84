"""An exact decision of one strict system, for when floating point cannot tell.

Decides whether { w_i.z + b_i t < 0 : i in S, t >= 0 } has a solution, by an
exact phase-1 simplex (Bland's rule, rational tableau) on the Motzkin system

    lambda >= 0,  sum_i lambda_i w_i = 0,  sum_i lambda_i = 1,  sum_i lambda_i b_i >= 0.

A feasible lambda is a Motzkin multiplier: the rows cannot all be strictly
negative.  If phase 1 ends with a positive objective, its dual vector y is a
Farkas certificate of infeasibility, and y's components give (z, t) with w_i.z + b_i t < 0 for every row.  Both answers are exact.

This is the fallback for thin cells (theory section 6), where HiGHS's
tolerances cannot separate a 1e-9-wide cone from nothing.  It is slow in
pure Python, so the search calls it only after the float route failed.
Callers still verify what it returns.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Sequence


def strict_or_motzkin(
    rows: Sequence[Sequence[int]], bias: Sequence[int]
) -> tuple[str, list[Fraction], Fraction | list[Fraction]]:
    """('point', z, t) with w_i.z + b_i t < 0 for all rows and t >= 0, or
    ('multiplier', lam, []) with lam >= 0, lam != 0, sum lam_i w_i = 0 and
    sum lam_i b_i >= 0.

    >>> strict_or_motzkin([[1], [-1]], [0, 0])[0]
    'multiplier'
    >>> kind, z, t = strict_or_motzkin([[1], [-1]], [-1, -1])
    >>> kind, all(w * z[0] + b * t < 0 for w, b in ((1, -1), (-1, -1)))
    ('point', True)
    """
    k = len(rows)
    n = len(rows[0]) if k else 0
    if k == 0:
        return ("point", [Fraction(0)] * n, Fraction(0))
    # Equality rows: n rows of W^T, the normalisation, and b.lambda - sigma = 0.
    R = n + 2
    ncols = k + 1  # lambda_1..lambda_k, sigma
    A: list[list[Fraction]] = []
    for j in range(n):
        A.append([Fraction(rows[i][j]) for i in range(k)] + [Fraction(0)])
    A.append([Fraction(1)] * k + [Fraction(0)])
    A.append([Fraction(bias[i]) for i in range(k)] + [Fraction(-1)])
    rhs = [Fraction(0)] * n + [Fraction(1), Fraction(0)]
    # Tableau with artificials a_r (columns ncols..ncols+R-1), basis = artificials.
    T = [A[r] + [Fraction(1 if c == r else 0) for c in range(R)] + [rhs[r]] for r in range(R)]
    width = ncols + R
    basis = [ncols + r for r in range(R)]
    # Phase-1 cost: minimise the sum of artificials.  Reduced costs d_j = c_j - sum_r T[r][j].
    cost = [Fraction(0)] * ncols + [Fraction(1)] * R
    while True:
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
        lam = [Fraction(0)] * ncols
        for r, b in enumerate(basis):
            if b < ncols:
                lam[b] = T[r][-1]
        return ("multiplier", lam[:k], [])
    # Duals y_r = c_B B^{-1} e_r = 1 - (reduced cost of artificial r).
    y = [sum(cb[i] * T[i][ncols + r] for i in range(R)) for r in range(R)]
    # Optimal phase 1: reduced costs c_j - y.A_j >= 0, so y.A_j <= 0 for every
    # original column, and y.rhs = objective > 0.  Column lambda_i says
    # w_i.y_W + y_1 + b_i y_b <= 0 with y_1 = y.rhs > 0; column sigma says y_b >= 0.
    z = [y[j] for j in range(n)]
    t = y[n + 1]
    return ("point", z, t)
