"""Exact singular-value bounds: sigma_min(W_S)^2 > t decided exactly, and
rational brackets of square roots.

W_S^T W_S - t I is positive definite iff sigma_min(W_S)^2 > t; :class:`Grams`
decides that on integer matrices by Sylvester's criterion (the leading
principal minors of a fraction-free elimination, :func:`leading_minors`), and
yields the LDL^T pivots as the certificate a reader can re-check.  The square
root bounds turn a certified t into a certified sigma: r^2 <= t <= R^2.

The stability search (:mod:`exact_inj.studies.stability`) and its trusted
checker (:mod:`exact_inj.certify.stability`) share these, so they live here
with the other exact kernels; numpy is used only for int64 products that
provably cannot overflow.
"""

from __future__ import annotations

import math
from fractions import Fraction
from math import isqrt

import numpy as np

__all__ = ["Grams", "inv_sqrt_lower", "leading_minors", "sqrt_lower", "sqrt_upper"]


def _decimal_scale(x: Fraction, digits: int) -> int:
    """10^k with x * 10^(2k) >= 10^(2 digits) (so sqrt(x) gets `digits` significant digits)."""
    if x <= 0:
        return 10 ** digits
    # log10(x) from bit lengths, to within one or two units: plenty for a scale.
    lg = (x.numerator.bit_length() - x.denominator.bit_length()) * 0.30103
    k = max(digits, math.ceil((2 * digits - lg) / 2) + 1)
    return 10 ** k


def sqrt_lower(x: Fraction, digits: int = 12) -> Fraction:
    """A rational r >= 0 with r^2 <= x (0 when x <= 0).

    >>> r = sqrt_lower(Fraction(2)); r * r <= 2 < (r + Fraction(1, 10**12)) ** 2
    True
    """
    x = Fraction(x)
    if x <= 0:
        return Fraction(0)
    D = _decimal_scale(x, digits)
    return Fraction(isqrt(x.numerator * D * D // x.denominator), D)


def sqrt_upper(x: Fraction, digits: int = 12) -> Fraction:
    """A rational R >= 0 with R^2 >= x.

    >>> R = sqrt_upper(Fraction(2)); R * R >= 2 > (R - Fraction(1, 10**12)) ** 2
    True
    """
    x = Fraction(x)
    if x <= 0:
        return Fraction(0)
    D = _decimal_scale(x, digits)
    c = -((-x.numerator * D * D) // x.denominator)  # ceil(x D^2)
    s = isqrt(c)
    if s * s < c:
        s += 1
    return Fraction(s, D)


def inv_sqrt_lower(k: int, digits: int = 12) -> Fraction:
    """A rational q >= 0 with q^2 * k <= 1, i.e. q <= 1/sqrt(k).

    >>> q = inv_sqrt_lower(8); q * q * 8 <= 1
    True
    """
    return sqrt_lower(Fraction(1, k), digits)


def leading_minors(M: list[list[int]]) -> list[int] | None:
    """The leading principal minors of a symmetric integer matrix by Bareiss's
    fraction-free elimination (no pivoting), or None at the first one <= 0.

    After step k the pivot M[k][k] is the (k+1)-th leading principal minor, and
    every division is exact.  All minors > 0 is Sylvester's criterion for
    positive definiteness; the LDL^T pivots are D_k = minor_k / minor_(k-1).

    >>> leading_minors([[2, 1], [1, 2]]), leading_minors([[1, 2], [2, 1]])
    ([2, 3], None)
    """
    n = len(M)
    A = [list(r) for r in M]
    prev = 1
    out = []
    for k in range(n):
        d = A[k][k]
        if d <= 0:
            return None
        out.append(d)
        Ak = A[k]
        for i in range(k + 1, n):
            Ai = A[i]
            f = Ai[k]
            for j in range(k + 1, n):
                Ai[j] = (Ai[j] * d - f * Ak[j]) // prev
        prev = d
    return out


class Grams:
    """Exact Gram matrices W_S^T W_S of row subsets, kept in integers.

    With L the lcm of every denominator of W, u_i = L w_i is an integer row and
    sum_{i in S} u_i u_i^T = L^2 W_S^T W_S.  So for t = p/q (q > 0),
    W_S^T W_S - t I is positive definite iff the integer matrix
    q sum u_i u_i^T - p L^2 I is, which :func:`leading_minors` decides.
    """

    def __init__(self, weight) -> None:
        rows = [[Fraction(v) for v in r] for r in weight]
        self.n = len(rows[0])
        L = math.lcm(*(v.denominator for r in rows for v in r))
        self.L2 = L * L
        self.U = [[int(v * L) for v in r] for r in rows]
        big = max((abs(v) for r in self.U for v in r), default=0)
        # numpy int64 products are exact while sum |u_ij u_ik| < 2^63.
        self.np = np.array(self.U, dtype=np.int64) if big * big * max(len(rows), 1) < 2**62 else None

    def gram(self, S: list[int]) -> list[list[int]]:
        """L^2 W_S^T W_S as Python integers."""
        n = self.n
        if not S:
            return [[0] * n for _ in range(n)]
        if self.np is not None:
            A = self.np[S]
            return [[int(v) for v in row] for row in (A.T @ A).tolist()]
        U = [self.U[i] for i in S]
        return [[sum(u[j] * u[k] for u in U) for k in range(n)] for j in range(n)]

    def minors(self, S: list[int], t: Fraction) -> list[int] | None:
        t = Fraction(t)
        G = self.gram(S)
        shift = t.numerator * self.L2
        M = [[t.denominator * G[j][k] - (shift if j == k else 0) for k in range(self.n)] for j in range(self.n)]
        return leading_minors(M)

    def positive_definite(self, S: list[int], t: Fraction) -> bool:
        """W_S^T W_S - t I is positive definite, i.e. sigma_min(W_S)^2 > t (exactly)."""
        return self.minors(S, t) is not None

    def ldl_pivots(self, S: list[int], t: Fraction) -> list[Fraction] | None:
        """The pivots D of W_S^T W_S - t I = L D L^T, all > 0, or None.

        >>> Grams([[1, 0], [0, 2]]).ldl_pivots([0, 1], Fraction(1, 2))
        [Fraction(1, 2), Fraction(7, 2)]
        """
        mins = self.minors(S, t)
        if mins is None:
            return None
        c = Fraction(t).denominator * self.L2  # the integer matrix is c (W_S^T W_S - t I)
        return [Fraction(d, p) / c for d, p in zip(mins, [1] + mins[:-1])]

