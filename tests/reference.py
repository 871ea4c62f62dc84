"""An independent, brute-force reference decision for ReLU-layer injectivity.

This module deliberately shares no code with ``exact_inj`` (it never imports
it): a differential test is only worth something if the two sides can be wrong
independently.  Everything is pure Python over :class:`fractions.Fraction`:
no solver, no floats, no numpy.  It is written to be obviously correct, not
fast; it is meant for n <= 3 and m up to about 10.

Two independent procedures live here.

``reference_decide`` / ``reference_injective`` use the finite reduction of
docs/theory.md, section 3: f(x) = ReLU(Wx + b) is NOT injective iff rank W < n, or some
hyperplane H through 0 spanned by n-1 linearly independent rows of W makes the
strict system { w_i.x + b_i < 0 : w_i not in H } solvable.  Solvability is
decided exactly by Fourier-Motzkin elimination with strictness tracking, and a
solvable system is turned into an explicit colliding pair (docs/theory.md, section 4),
which is re-evaluated exactly before it is returned.

``reference_injective_cells`` (n = 1 and n = 2 only) uses instead the pointwise
criterion of docs/theory.md, section 1 -- f is injective iff the rows of
A(z) = { i : w_i.z + b_i >= 0 } span R^n for every z -- evaluated at one
sample point in every open cell of the arrangement of the lines
{ w_i.z + b_i = 0 }.  It shares only the exact evaluation helpers with the
first procedure, and no rank or elimination code.

On a convex polyhedral domain D = { x : Gx <= h } (docs/theory.md, sections 1b and 3)
the same two routes exist:

``reference_decide_on`` / ``reference_injective_on`` run section 3's domain
reduction over the rows of [W; G] with Fourier-Motzkin (strictness tracked),
and return an exact colliding pair inside D, re-verified, when the answer is
"not injective".  ``reference_injective_box_cells`` (n <= 2, boxes with
possibly infinite sides, so also the orthant and R^n) evaluates section 1b's
pointwise criterion at one point of every open cell of the arrangement of the
layer's lines and the box's sides that lies inside the box, after cutting
degenerate sides (l_k = u_k) out by substitution.  Neither route uses "rank W
< n" as a verdict: on a domain it is not one.
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
# procedure 1: the hyperplane reduction of docs/theory.md, section 3
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
    adjacent open cell, so the criterion of docs/theory.md, section 1 fails somewhere
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


# --------------------------------------------------------------------------
# domains D = { x : G x <= h } (docs/theory.md, sections 1b and 3)
# --------------------------------------------------------------------------
#
# Constraint rows are kept apart from layer rows throughout: a W-row outside
# the hyperplane must be strictly NEGATIVE at z (it is inactive there), a
# G-row outside it strictly SLACK (g.z < h: not tight), a G-row inside it
# merely satisfied (g.z <= h: z must lie in D), and a W-row inside it is free.


def box_constraints(lower, upper) -> tuple[Mat, Vec]:
    """(G, h) of the box lower <= x <= upper; a bound of None is absent.

    So box_constraints([0]*n, [None]*n) is the nonnegative orthant and
    box_constraints([None]*n, [None]*n) is R^n (no rows)."""
    n = len(lower)
    assert len(upper) == n
    G, h = [], []
    for k in range(n):
        e = [ZERO] * n
        e[k] = ONE
        if upper[k] is not None:
            G.append(list(e))
            h.append(Fraction(upper[k]))
        if lower[k] is not None:
            G.append([-v for v in e])
            h.append(-Fraction(lower[k]))
    return G, h


def orthant_constraints(n: int) -> tuple[Mat, Vec]:
    return box_constraints([ZERO] * n, [None] * n)


def in_domain(G: Mat, h: Vec, x: Sequence[Fraction]) -> bool:
    x = [Fraction(v) for v in x]
    return all(dot(g, x) <= hj for g, hj in zip(G, h))


def domain_point(G: Mat, h: Vec, n: int) -> Optional[Vec]:
    """A point of D = { Gx <= h } (Fourier-Motzkin, non-strict), or None if D is empty."""
    return fm_solve([(g, -hj, False) for g, hj in zip(G, h)], n)


def _domain_inputs(W, b, G, h, n):
    W = as_fraction_matrix(W)
    b = as_fraction_vector(b)
    G = as_fraction_matrix(G)
    h = as_fraction_vector(h)
    if n is None:
        n = len(W[0]) if W else len(G[0])
    assert len(b) == len(W) and all(len(r) == n for r in W)
    assert len(h) == len(G) and all(len(r) == n for r in G)
    return W, b, G, h, n


def is_collision_on(W, b, G, h, x, y) -> bool:
    """True iff x != y, both in D = { Gx <= h }, and ReLU(Wx+b) == ReLU(Wy+b)."""
    W, b, G, h, _ = _domain_inputs(W, b, G, h, None if W else len(x))
    return in_domain(G, h, x) and in_domain(G, h, y) and is_collision(W, b, x, y)


def reference_decide_on(W, b, G, h, n: Optional[int] = None) -> tuple[bool, Optional[tuple[Vec, Vec]]]:
    """(injective on D?, witness) for D = { x : G x <= h }.

    Theory section 3 (domain paragraph): f is non-injective on D iff D is
    non-empty and either rank [W; G] < n, or some hyperplane H spanned by n-1
    independent rows of [W; G] admits z with the W-rows outside H strictly
    negative, the G-rows outside H strictly slack and the G-rows in H
    satisfied.  The witness (x, y), given iff not injective, has x != y, both
    in D, and equal outputs, all checked exactly here."""
    W, b, G, h, n = _domain_inputs(W, b, G, h, n)
    m = len(W)

    base = domain_point(G, h, n)
    if base is None:
        return True, None  # nothing in D, nothing collides

    R = W + G  # rows 0..m-1 from the layer, m.. from the domain
    if rank(R, n) < n:
        # v orthogonal to every row: Wv = 0 keeps the outputs, Gv = 0 keeps
        # base + v inside D.  (rank W < n alone would NOT be enough: see
        # docs/theory.md, section 1b, W = [1] on [1, 2].)
        v = nullspace(R, n)[0]
        x, y = base, [xi + vi for xi, vi in zip(base, v)]
        assert is_collision_on(W, b, G, h, x, y), "reference built a bad domain witness"
        return False, (x, y)

    seen = set()
    for S in combinations(range(len(R)), n - 1):
        sub = [R[i] for i in S]
        if rank(sub, n) < n - 1:
            continue
        (v,) = nullspace(sub, n)
        key = tuple(i for i in range(len(R)) if dot(R[i], v) == 0)
        if key in seen:
            continue
        seen.add(key)
        cons = []
        for i in range(m):
            if dot(W[i], v) != 0:
                cons.append((W[i], b[i], True))  # w.z + b < 0
        for j in range(len(G)):
            # g.z - h < 0 outside H (slack), g.z - h <= 0 inside H (in D)
            cons.append((G[j], -h[j], dot(G[j], v) != 0))
        z = fm_solve(cons, n)
        if z is None:
            continue
        eps = ONE
        for i in range(m):
            rate = abs(dot(W[i], v))
            if rate:
                eps = min(eps, -(dot(W[i], z) + b[i]) / (2 * rate))
        for j in range(len(G)):
            rate = abs(dot(G[j], v))
            if rate:
                eps = min(eps, (h[j] - dot(G[j], z)) / (2 * rate))
        assert eps > 0
        y = [zi + eps * vi for zi, vi in zip(z, v)]
        assert is_collision_on(W, b, G, h, z, y), "reference built a bad domain witness"
        return False, (z, y)
    return True, None


def reference_injective_on(W, b, G, h, n: Optional[int] = None) -> bool:
    return reference_decide_on(W, b, G, h, n)[0]


def reference_decide_box(W, b, lower, upper):
    """reference_decide_on for the box lower <= x <= upper (None = unbounded side)."""
    G, h = box_constraints(lower, upper)
    return reference_decide_on(W, b, G, h, len(lower))


# --------------------------------------------------------------------------
# second domain procedure (n <= 2, boxes): pointwise criterion on open cells
# --------------------------------------------------------------------------


def reference_injective_box_cells(W, b, lower, upper) -> bool:
    """Independent decision on a box (sides may be None = unbounded), n <= 2.

    - An empty box is injective.
    - A degenerate side l_k = u_k is substituted away: x_k is fixed, so the
      layer restricted to the box is a layer in the remaining coordinates
      (with the fixed column folded into the bias), on the remaining box.
      Zero remaining coordinates: one point, injective.
    - On a full-dimensional box, section 1b's criterion fails at some z in
      the box iff it fails at a point of an open cell of the arrangement of
      the layer's lines and the box's sides lying inside the box: moving
      from z into an adjacent such cell only removes active rows, and
      interior points have no tight sides.  Those cells are sampled with the
      cell generators above, run on the layer's rows together with the side
      rows; only the layer's rows decide activity."""
    W = as_fraction_matrix(W)
    b = as_fraction_vector(b)
    lower = [None if v is None else Fraction(v) for v in lower]
    upper = [None if v is None else Fraction(v) for v in upper]
    n = len(lower)
    if n not in (1, 2):
        raise ValueError("reference_injective_box_cells handles n = 1 and n = 2 only")
    if any(l is not None and u is not None and l > u for l, u in zip(lower, upper)):
        return True
    fixed = [k for k in range(n) if lower[k] is not None and lower[k] == upper[k]]
    if fixed:
        keep = [k for k in range(n) if k not in fixed]
        if not keep:
            return True
        b2 = [bi + sum((r[k] * lower[k] for k in fixed), ZERO) for r, bi in zip(W, b)]
        W2 = [[r[k] for k in keep] for r in W]
        return reference_injective_box_cells(W2, b2, [lower[k] for k in keep], [upper[k] for k in keep])
    # Side rows as extra "lines" g.x - h = 0 (only their arrangement is used).
    sides, sides_b = [], []
    for k in range(n):
        e = [ZERO] * n
        e[k] = ONE
        if upper[k] is not None:
            sides.append(e)
            sides_b.append(-upper[k])
        if lower[k] is not None:
            sides.append(list(e))
            sides_b.append(-lower[k])
    allW, allb = W + sides, b + sides_b
    pts = _cell_points_1d(allW, allb) if n == 1 else _cell_points_2d(allW, allb)

    def strictly_inside(z):
        return all((lower[k] is None or z[k] > lower[k]) and (upper[k] is None or z[k] < upper[k]) for k in range(n))

    inside = [z for z in pts if strictly_inside(z)]
    assert inside, "a full-dimensional box must contain a sampled open cell"
    for z in inside:
        pre = pre_activation(W, b, z)
        assert all(v != 0 for v, r in zip(pre, W) if any(e != 0 for e in r))
        active = [r for r, v in zip(W, pre) if v >= 0]
        if not _spans(active, n):
            return False
    return True
