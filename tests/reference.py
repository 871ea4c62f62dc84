"""An independent, brute-force reference decision for ReLU-layer injectivity.

This module deliberately shares no code with ``exact_inj`` (it never imports
it): a differential test is only worth something if the two sides can be wrong
independently.  Everything is pure Python over :class:`fractions.Fraction`:
no solver, no floats, no numpy.  It is written to be obviously correct, not
fast; it is meant for n <= 3 and m up to about 10.

Two independent procedures live here.

``reference_decide`` / ``reference_injective`` use the finite reduction of
theory section 3: f(x) = ReLU(Wx + b) is NOT injective iff rank W < n, or some
hyperplane H through 0 spanned by n-1 linearly independent rows of W makes the
strict system { w_i.x + b_i < 0 : w_i not in H } solvable.  Solvability is
decided exactly by Fourier-Motzkin elimination with strictness tracking, and a
solvable system is turned into an explicit colliding pair (theory section 4),
which is re-evaluated exactly before it is returned.

``reference_injective_cells`` (n = 1 and n = 2 only) uses instead the pointwise
criterion of theory section 1 -- f is injective iff the rows of
A(z) = { i : w_i.z + b_i >= 0 } span R^n for every z -- evaluated at one
sample point in every open cell of the arrangement of the lines
{ w_i.z + b_i = 0 }.  It shares only the exact evaluation helpers with the
first procedure, and no rank or elimination code.
"""

from __future__ import annotations

from fractions import Fraction
from itertools import combinations
from typing import Optional, Sequence

Vec = list[Fraction]
Mat = list[list[Fraction]]

ZERO = Fraction(0)
ONE = Fraction(1)


# --------------------------------------------------------------------------
# exact evaluation (also used by the tests to re-verify engine witnesses)
# --------------------------------------------------------------------------


def as_fraction_matrix(W: Sequence[Sequence[object]]) -> Mat:
    # Refuse floats for the same reason the engine's model does: a float has
    # no single "intended" rational, and the tests must be exact throughout.
    out = []
    for row in W:
        r = []
        for v in row:
            if isinstance(v, float):
                raise TypeError("reference refuses floats; pass Fractions")
            r.append(Fraction(v))
        out.append(r)
    return out


def as_fraction_vector(b: Sequence[object]) -> Vec:
    return as_fraction_matrix([b])[0]


def dot(u: Sequence[Fraction], v: Sequence[Fraction]) -> Fraction:
    return sum((a * c for a, c in zip(u, v)), ZERO)


def pre_activation(W: Mat, b: Vec, x: Sequence[Fraction]) -> Vec:
    return [dot(row, x) + bi for row, bi in zip(W, b)]


def relu_layer(W: Mat, b: Vec, x: Sequence[Fraction]) -> Vec:
    return [a if a > 0 else ZERO for a in pre_activation(W, b, x)]


def is_collision(W: Mat, b: Vec, x: Sequence[Fraction], y: Sequence[Fraction]) -> bool:
    """True iff x != y and ReLU(Wx+b) == ReLU(Wy+b), in exact arithmetic."""
    x = [Fraction(v) for v in x]
    y = [Fraction(v) for v in y]
    if len(x) != len(W[0]) or len(y) != len(W[0]):
        return False
    return x != y and relu_layer(W, b, x) == relu_layer(W, b, y)


# --------------------------------------------------------------------------
# exact linear algebra (Gauss-Jordan over Fractions)
# --------------------------------------------------------------------------


def rref(rows: Sequence[Sequence[Fraction]], ncols: int) -> tuple[Mat, list[int]]:
    """Reduced row echelon form and pivot columns."""
    M = [list(r) for r in rows]
    pivots: list[int] = []
    r = 0
    for c in range(ncols):
        p = next((i for i in range(r, len(M)) if M[i][c] != 0), None)
        if p is None:
            continue
        M[r], M[p] = M[p], M[r]
        piv = M[r][c]
        M[r] = [v / piv for v in M[r]]
        for i in range(len(M)):
            if i != r and M[i][c] != 0:
                f = M[i][c]
                M[i] = [a - f * e for a, e in zip(M[i], M[r])]
        pivots.append(c)
        r += 1
        if r == len(M):
            break
    return M, pivots


def rank(rows: Sequence[Sequence[Fraction]], ncols: int) -> int:
    return len(rref(rows, ncols)[1])


def nullspace(rows: Sequence[Sequence[Fraction]], ncols: int) -> list[Vec]:
    """A basis of { v : row.v = 0 for every row }.  Works for zero rows too."""
    R, pivots = rref(rows, ncols)
    free = [c for c in range(ncols) if c not in pivots]
    basis = []
    for f in free:
        v = [ZERO] * ncols
        v[f] = ONE
        for i, pc in enumerate(pivots):
            v[pc] = -R[i][f]
        basis.append(v)
    return basis


def solve_square(A: Mat, rhs: Vec) -> Vec:
    """Solve A x = rhs for invertible square A (used by metamorphic tests)."""
    n = len(A)
    R, pivots = rref([list(A[i]) + [rhs[i]] for i in range(n)], n + 1)
    if pivots != list(range(n)):
        raise ValueError("matrix is singular")
    return [R[i][n] for i in range(n)]


# --------------------------------------------------------------------------
# Fourier-Motzkin elimination with strictness tracking
# --------------------------------------------------------------------------
#
# A constraint is (a, c, strict) meaning  a.x + c < 0  (strict) or
# a.x + c <= 0  (non-strict).


def _normalise(a: tuple, c: Fraction, strict: bool):
    """Scale by a positive number so the first nonzero coefficient is +-1.

    Positive scaling never changes the solution set, and it lets parallel
    constraints be compared so only the tightest is kept (see _tighten)."""
    lead = next((v for v in a if v != 0), None)
    if lead is None:
        return a, c, strict
    s = abs(lead)
    return tuple(v / s for v in a), c / s, strict


def _tighten(cons):
    """Among constraints with identical (normalised) a, keep one that implies the rest.

    a.x + c1 < 0 implies a.x + c2 < 0 whenever c1 >= c2, so the largest
    constant wins; at equal constants the strict one implies the non-strict.
    Constant constraints (a = 0) are returned separately."""
    best: dict = {}
    consts = []
    for a, c, strict in cons:
        a, c, strict = _normalise(a, c, strict)
        if all(v == 0 for v in a):
            consts.append((c, strict))
            continue
        old = best.get(a)
        if old is None or c > old[0] or (c == old[0] and strict and not old[1]):
            best[a] = (c, strict)
    return [(a, c, s) for a, (c, s) in best.items()], consts


def _constants_ok(consts) -> bool:
    # 0 + c < 0 needs c < 0;  0 + c <= 0 needs c <= 0.
    return all((c < 0) if strict else (c <= 0) for c, strict in consts)


def _pick_in_interval(lowers, uppers) -> Fraction:
    """A value t with t > / >= every lower bound and t < / <= every upper bound.

    Bounds are (value, strict).  The caller has established (by FM) that such
    a t exists; the result is re-checked by the caller anyway."""
    if lowers:
        lo = max(v for v, _ in lowers)
        lo_strict = any(s for v, s in lowers if v == lo)
    if uppers:
        hi = min(v for v, _ in uppers)
        hi_strict = any(s for v, s in uppers if v == hi)
    if not lowers and not uppers:
        return ZERO
    if not uppers:
        return lo + 1
    if not lowers:
        return hi - 1
    if lo < hi:
        return (lo + hi) / 2
    if lo == hi and not lo_strict and not hi_strict:
        return lo
    raise AssertionError("Fourier-Motzkin said feasible but the interval is empty")


def fm_solve(cons, n: int) -> Optional[Vec]:
    """A solution x of the constraint list, or None if there is none.

    cons: iterable of (a, c, strict) with a of length n."""
    stages = []  # stages[k]: constraints in variables k..n-1 (before eliminating k)
    cur, consts = _tighten([(tuple(a), Fraction(c), bool(s)) for a, c, s in cons])
    if not _constants_ok(consts):
        return None
    for k in range(n):
        stages.append(cur)
        pos = [t for t in cur if t[0][k] > 0]
        neg = [t for t in cur if t[0][k] < 0]
        nxt = [t for t in cur if t[0][k] == 0]
        for ap, cp, sp in pos:
            for aq, cq, sq in neg:
                # Positive multipliers (-aq[k]) and ap[k] cancel variable k;
                # the sum is strict as soon as either summand is strict.
                lp, lq = -aq[k], ap[k]
                a = tuple(lp * u + lq * w for u, w in zip(ap, aq))
                nxt.append((a, lp * cp + lq * cq, sp or sq))
        cur, consts = _tighten(nxt)
        if not _constants_ok(consts):
            return None
    # Every variable eliminated and every constant constraint holds: feasible.
    # Back-substitute: fix x_{n-1}, then x_{n-2}, ..., each inside the bounds
    # that its stage's constraints give once the later variables are fixed.
    x = [ZERO] * n
    for k in reversed(range(n)):
        lowers, uppers = [], []
        for a, c, strict in stages[k]:
            rest = c + sum((a[j] * x[j] for j in range(k + 1, n)), ZERO)
            if a[k] > 0:  # a_k x_k + rest < 0  ->  x_k < -rest/a_k
                uppers.append((-rest / a[k], strict))
            elif a[k] < 0:  # x_k > -rest/a_k
                lowers.append((-rest / a[k], strict))
            else:
                assert (rest < 0) if strict else (rest <= 0)
        x[k] = _pick_in_interval(lowers, uppers)
    for a, c, strict in cons:
        val = dot(a, x) + c
        assert (val < 0) if strict else (val <= 0), "FM back-substitution failed"
    return x


def strict_solution(rows: Sequence[Vec], consts: Sequence[Fraction], n: int) -> Optional[Vec]:
    """x with rows[i].x + consts[i] < 0 for every i, or None."""
    return fm_solve([(r, c, True) for r, c in zip(rows, consts)], n)


# --------------------------------------------------------------------------
# procedure 1: the hyperplane reduction of theory section 3
# --------------------------------------------------------------------------


def reference_decide(W, b) -> tuple[bool, Optional[tuple[Vec, Vec]]]:
    """(injective?, witness).  The witness (x, y) is given iff not injective,
    and has been checked to collide exactly."""
    W = as_fraction_matrix(W)
    b = as_fraction_vector(b)
    m, n = len(W), len(W[0])
    assert len(b) == m and all(len(r) == n for r in W)

    if rank(W, n) < n:
        # A null vector v gives Wv = 0, so 0 and v have identical outputs.
        v = nullspace(W, n)[0]
        x, y = [ZERO] * n, v
        assert is_collision(W, b, x, y)
        return False, (x, y)

    seen = set()
    # n-1 rows at a time; for n = 1 this is the single empty subset, which
    # spans H = {0} with normal 1, and the rows "in H" are the zero rows.
    for S in combinations(range(m), n - 1):
        sub = [W[i] for i in S]
        if rank(sub, n) < n - 1:
            continue
        (v,) = nullspace(sub, n)  # exactly one: n-1 independent rows
        # Different subsets can span the same H; decide each H once.
        key = tuple(i for i in range(m) if dot(W[i], v) == 0)
        if key in seen:
            continue
        seen.add(key)
        outside = [i for i in range(m) if dot(W[i], v) != 0]
        x0 = strict_solution([W[i] for i in outside], [b[i] for i in outside], n)
        if x0 is None:
            continue
        # Theory section 4: move along v by eps small enough that every row
        # outside H stays strictly negative; rows in H do not see the move.
        eps = ONE
        for i in outside:
            slack = -(dot(W[i], x0) + b[i])
            eps = min(eps, slack / (2 * abs(dot(W[i], v))))
        y = [xi + eps * vi for xi, vi in zip(x0, v)]
        assert is_collision(W, b, x0, y), "reference built a bad witness"
        return False, (x0, y)
    return True, None


def reference_injective(W, b) -> bool:
    return reference_decide(W, b)[0]


# --------------------------------------------------------------------------
# procedure 2 (n <= 2): the pointwise criterion, one point per open cell
# --------------------------------------------------------------------------


def _spans(rows: Sequence[Vec], n: int) -> bool:
    # Own tiny rank tests, independent of rref above.
    if n == 1:
        return any(r[0] != 0 for r in rows)
    assert n == 2
    return any(p[0] * q[1] - p[1] * q[0] != 0 for p, q in combinations(rows, 2))


def _cell_points_1d(W: Mat, b: Vec) -> list[Vec]:
    # Breakpoints of the nonzero rows; one point in every open piece.
    bps = sorted({-bi / r[0] for r, bi in zip(W, b) if r[0] != 0})
    if not bps:
        return [[ZERO]]
    pts = [bps[0] - 1, bps[-1] + 1]
    pts += [(p + q) / 2 for p, q in zip(bps, bps[1:])]
    return [[p] for p in pts]


def _cell_points_2d(W: Mat, b: Vec) -> list[Vec]:
    lines = [i for i, r in enumerate(W) if r != [ZERO, ZERO]]
    if not lines:
        return [[ZERO, ZERO]]
    pts = []
    for l in lines:
        w = W[l]
        nn = dot(w, w)
        p0 = [-b[l] * w[0] / nn, -b[l] * w[1] / nn]  # a point on line l
        d = [-w[1], w[0]]  # direction of line l
        # Parameters where other lines cross line l.
        cross = sorted(
            {-(dot(W[j], p0) + b[j]) / dot(W[j], d) for j in lines if dot(W[j], d) != 0}
        )
        if cross:
            ss = [cross[0] - 1, cross[-1] + 1] + [(s + t) / 2 for s, t in zip(cross, cross[1:])]
        else:
            ss = [ZERO]
        for s in ss:
            # q lies on an edge of the arrangement (no other line crosses there).
            q = [p0[0] + s * d[0], p0[1] + s * d[1]]
            # Step off the line along its normal by less than half the distance
            # at which any row that is nonzero at q could change sign, so both
            # points land in the two open cells that share this edge.
            delta = ONE
            for j in range(len(W)):
                val = dot(W[j], q) + b[j]
                rate = dot(W[j], w)
                if val != 0 and rate != 0:
                    delta = min(delta, abs(val) / (2 * abs(rate)))
            pts.append([q[0] + delta * w[0], q[1] + delta * w[1]])
            pts.append([q[0] - delta * w[0], q[1] - delta * w[1]])
    return pts


def reference_injective_cells(W, b) -> bool:
    """Second, independent decision for n in {1, 2} (see module docstring).

    The active set only shrinks when moving from a boundary point into an
    adjacent open cell, so the criterion of theory section 1 fails somewhere
    iff it fails at a point inside some open cell; every open cell of a line
    arrangement is adjacent to an edge, and every edge is sampled on both sides."""
    W = as_fraction_matrix(W)
    b = as_fraction_vector(b)
    n = len(W[0])
    if n not in (1, 2):
        raise ValueError("reference_injective_cells handles n = 1 and n = 2 only")
    pts = _cell_points_1d(W, b) if n == 1 else _cell_points_2d(W, b)
    for z in pts:
        pre = pre_activation(W, b, z)
        # Every nonzero row must be nonzero at a cell point; if not, the
        # sampling above is broken and the answer would be meaningless.
        assert all(v != 0 for v, r in zip(pre, W) if any(e != 0 for e in r))
        active = [r for r, v in zip(W, pre) if v >= 0]
        if not _spans(active, n):
            return False
    return True
