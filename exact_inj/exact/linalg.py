"""Exact linear algebra on integer and rational matrices, through python-flint.

Why flint: exact rank and null spaces are the inner loop of both the search and
the checker, and flint is 30-100x faster than sympy's rref there (docs/theory.md,
section 4).  Everything here is exact; there is no tolerance in this module.
"""

from __future__ import annotations

from fractions import Fraction
from math import gcd, lcm
from typing import Callable, Sequence

import flint


def integer_rows(weight: Sequence[Sequence[Fraction]], bias: Sequence[Fraction]) -> tuple[list[list[int]], list[int]]:
    """Scale each row (w_i, b_i) by a positive integer so that it is integral.

    Scaling a row together with its bias by c > 0 changes neither the layer's
    injectivity nor any collision (ReLU(c a) = c ReLU(a)), so the engine may
    work with these integer rows throughout.

    >>> integer_rows([[Fraction(1, 2), Fraction(1, 3)]], [Fraction(1, 4)])
    ([[6, 4]], [3])
    """
    Wi, bi, _ = scaled_integer_rows(weight, bias)
    return Wi, bi


def scaled_integer_rows(
    weight: Sequence[Sequence[Fraction]], bias: Sequence[Fraction]
) -> tuple[list[list[int]], list[int], list[int]]:
    """integer_rows, plus the positive scale c_i with (Wi_i, bi_i) = c_i (w_i, b_i)."""
    Wi: list[list[int]] = []
    bi: list[int] = []
    scales: list[int] = []
    for row, b in zip(weight, bias):
        den = lcm(*(x.denominator for x in row), b.denominator)
        Wi.append([x.numerator * (den // x.denominator) for x in row])
        bi.append(b.numerator * (den // b.denominator))
        scales.append(den)
    return Wi, bi, scales


def common_denominator(x: Sequence[Fraction]) -> tuple[list[int], int]:
    """(X, D) with x = X / D, D > 0.

    >>> common_denominator([Fraction(1, 2), Fraction(-1, 3)])
    ([3, -2], 6)
    """
    D = lcm(*(v.denominator for v in x)) if x else 1
    return [v.numerator * (D // v.denominator) for v in x], D


# A prime for the modular rank shortcut (2^61 - 1).
_P = (1 << 61) - 1
# Below this many entries the plain exact rank is cheap enough.
_MODULAR_MIN_ENTRIES = 2000


def rank(rows: Sequence[Sequence[int]], ncols: int) -> int:
    """Exact rank of an integer matrix given by its rows (0 for no rows).

    On large matrices the rank modulo a prime is computed first: it never
    exceeds the rank over Q, so when it already equals min(rows, columns)
    that is the exact rank.  Only otherwise is the (much slower, for wide
    matrices with big entries) exact integer rank computed.

    >>> rank([[1, 2], [2, 4]], 2), rank([[1, 0], [0, 1]], 2)
    (1, 2)
    """
    if not rows:
        return 0
    if len(rows) * ncols >= _MODULAR_MIN_ENTRIES:
        full = min(len(rows), ncols)
        # Many more rows than columns: about 2 ncols of them, spread over
        # all, usually have the full rank already (and a subset's rank never
        # exceeds the whole's): a generator's first stage, 4,096 rows of
        # 256, in a tenth of the time.
        if len(rows) > 4 * ncols:
            some = rows[:: len(rows) // (2 * ncols)]
            if flint.nmod_mat([[x % _P for x in r] for r in some], _P).rank() == full:
                return full
        if flint.nmod_mat([[x % _P for x in r] for r in rows], _P).rank() == full:
            return full
    return flint.fmpz_mat([list(r) for r in rows]).rank()


def rank_q(rows: Sequence[Sequence[Fraction]], ncols: int) -> int:
    """Exact rank of a rational matrix."""
    if not rows:
        return 0
    return flint.fmpq_mat(len(rows), ncols, [flint.fmpq(x.numerator, x.denominator) for r in rows for x in r]).rank()


def nullspace(rows: Sequence[Sequence[int]], ncols: int) -> list[list[int]]:
    """Integer basis of { v : rows . v = 0 } (the whole space if rows is empty).

    The vectors are not normalised (the search only needs some basis); use
    :func:`primitive` where a small vector matters, as in a witness.
    """
    if not rows:
        return [[1 if i == j else 0 for j in range(ncols)] for i in range(ncols)]
    X, nullity = flint.fmpz_mat([list(r) for r in rows]).nullspace()
    if not nullity:
        return []
    L = X.tolist()
    return [[int(L[i][j]) for i in range(ncols)] for j in range(nullity)]


def primitive(v: Sequence[int]) -> list[int]:
    """v divided by the gcd of its entries.

    >>> primitive([4, -6, 0])
    [2, -3, 0]
    """
    g = gcd(*v)
    return [x // g for x in v] if g > 1 else list(v)


def solve_square(A: Sequence[Sequence[int | Fraction]], rhs: Sequence[int | Fraction]) -> list[Fraction] | None:
    """Solve A x = rhs exactly for square A; None if A is singular."""
    n = len(A)
    M = flint.fmpq_mat(n, n, [to_fmpq(x) for r in A for x in r])
    if M.rank() < n:
        return None
    sol = M.solve(flint.fmpq_mat(n, 1, [to_fmpq(x) for x in rhs]))
    return [Fraction(int(sol[i, 0].p), int(sol[i, 0].q)) for i in range(n)]


def to_fmpq(x: int | Fraction) -> "flint.fmpq":
    """An exact rational as python-flint's fmpq."""
    if isinstance(x, Fraction):
        return flint.fmpq(x.numerator, x.denominator)
    return flint.fmpq(int(x))


def solve_affine(
    A: Sequence[Sequence[Fraction]], rhs: Sequence[Fraction], ncols: int, guess: Sequence[float] | None = None
) -> list[Fraction] | None:
    """One exact solution of A x = rhs, or None if there is none.

    Free variables take ``guess`` (a float hint, rounded to a nearby rational)
    or 0, so a float solution from a solver is *repaired* onto the exact
    solution set rather than replaced.  The caller still checks any sign
    conditions it needs exactly.

    >>> solve_affine([[Fraction(1), Fraction(1)]], [Fraction(1)], 2, guess=[0.25, 0.75])
    [Fraction(1, 4), Fraction(3, 4)]
    >>> solve_affine([[Fraction(1)], [Fraction(1)]], [Fraction(0), Fraction(1)], 1) is None
    True
    """
    rows = len(A)
    if rows == 0:
        return [Fraction(round_hint(guess[j])) if guess is not None else Fraction(0) for j in range(ncols)]
    M = flint.fmpq_mat(rows, ncols + 1, [to_fmpq(x) for r, b in zip(A, rhs) for x in (*r, b)])
    R, rk = M.rref()
    pivots: list[int] = []
    for i in range(rk):
        j = next(j for j in range(ncols + 1) if R[i, j] != 0)
        if j == ncols:
            return None  # 0 = nonzero: inconsistent
        pivots.append(j)
    x = [Fraction(0)] * ncols
    pivot_set = set(pivots)
    for j in range(ncols):
        if j not in pivot_set and guess is not None:
            x[j] = round_hint(guess[j])
    for i, j in enumerate(pivots):
        v = Fraction(int(R[i, ncols].p), int(R[i, ncols].q))
        for f in range(ncols):
            if f not in pivot_set and x[f]:
                e = R[i, f]
                if e != 0:
                    v -= Fraction(int(e.p), int(e.q)) * x[f]
        x[j] = v
    return x


def product_by_digits(matvec: Callable, x, width: int):
    """M x exactly, for a vector x of Python ints (a numpy object array),
    when ``matvec(d)`` is M d computed in float64 and exact for integer
    vectors d with entries in [-2^(width-1), 2^(width-1)): x is cut into such
    signed digits, x = sum_k d_k 2^(k width), and the products are added up
    as Python ints (an object array).  Each pass costs big-integer work over
    the whole vector, so it suits inputs of a few digits.

    >>> import numpy as np
    >>> M = np.array([[3.0, -1.0], [2.0, 5.0]])
    >>> x = np.array([2 ** 70 + 5, -(3 ** 40)], dtype=object)
    >>> product_by_digits(lambda d: M @ d, x, 20).tolist() == [3 * x[0] - x[1], 2 * x[0] + 5 * x[1]]
    True
    """
    import numpy as np  # noqa: PLC0415 - numpy is imported by every caller already

    xs = x.copy()
    out = None
    shift, half, mod = 0, 1 << (width - 1), 1 << width
    while xs.any():
        digit = (xs + half) % mod - half
        part = matvec(digit.astype(np.float64)).astype(np.int64).astype(object) << shift
        out = part if out is None else out + part
        xs = (xs - digit) >> width
        shift += width
    return out if out is not None else matvec(np.zeros(len(x))).astype(np.int64).astype(object)


def round_hint(v: float) -> Fraction:
    """A short rational near a float hint (hints only; never a verdict)."""
    return Fraction(float(v)).limit_denominator(1 << 24)
