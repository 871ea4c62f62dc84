"""Exact repair: an LP's guess becomes an exact Motzkin core or an exact
witness, or nothing (docs/theory.md, section 4).  Untrusted like the rest of
the search (the checker re-verifies everything), but nothing inexact leaves.
"""

from __future__ import annotations

from fractions import Fraction

import flint
import numpy as np

from ..exact import lp as exact_lp, linalg
from ..certify.schema import Core, Witness
from ..model.domain import Domain
from ..model.network import Layer
from .data import LayerData, to_float_dir

__all__ = ["SUPPORT_TOL", "exact_core", "exact_node", "finish_witness", "make_witness", "strict_point"]


# A multiplier entry counts as part of the LP's support above this fraction of
# the largest entry.  It only chooses which rows to try: the support is then
# checked exactly, so a wrong choice costs a retry, never a wrong answer.
SUPPORT_TOL = 1e-9


def exact_core(data: LayerData, lam: np.ndarray, allowed: int, mu: np.ndarray | None = None) -> Core | None:
    """Turn a float Motzkin multiplier into an exact core, or None.

    ``lam`` weighs the strict rows (length M), ``mu`` the non-strict domain
    rows G z <= h (length k).  The support is read off the floats; the
    multiplier itself is recomputed exactly from it.
    """
    top = max(float(lam.max(initial=0.0)), float(mu.max(initial=0.0)) if mu is not None and len(mu) else 0.0)
    if top <= 0:
        return None
    S = [i for i in np.nonzero(lam > SUPPORT_TOL * top)[0].tolist() if allowed >> i & 1]
    T = [] if mu is None else [data.m + j for j in np.nonzero(mu > SUPPORT_TOL * top)[0].tolist()]
    if not S:
        return None
    guess = np.concatenate([lam[S], mu[[j - data.m for j in T]]]) if T else lam[S]
    return _exact_multiplier(data, S, T, guess)


def _valid(data: LayerData, S: list[int], T: list[int], v: list) -> bool:
    """The mixed Motzkin condition of docs/theory.md, section 4 for lambda = v[:|S|]
    (strict rows) and mu = v[|S|:] (non-strict domain rows); the caller made
    sure the rows cancel."""
    if any(x < 0 for x in v):
        return False
    s = sum(x * data.bi[i] for x, i in zip(v, S + T))
    return (any(v[: len(S)]) and s >= 0) or s > 0


def _exact_multiplier(data: LayerData, S: list[int], T: list[int], guess: np.ndarray) -> Core | None:
    idx = S + T
    n = data.n
    # The null space of the support's columns, in flint (the rows as an
    # |idx| x n matrix, transposed): no Python loop over the entries.
    X, nullity = flint.fmpz_mat([data.Wi[i] for i in idx]).transpose().nullspace()
    if not nullity:
        return None
    if nullity == 1:
        v = [int(X[r, 0]) for r in range(len(idx))]
        if all(x <= 0 for x in v):
            v = [-x for x in v]
        if _valid(data, S, T, v):
            if all(v):
                return Core(tuple(S), None, tuple(T))
            # Zero entries: the smaller support is the real core; its null
            # space is the restriction of this one, still one-dimensional.
            S2 = [i for x, i in zip(v, S) if x]
            T2 = [i for x, i in zip(v[len(S):], T) if x]
            return _exact_multiplier(data, S2, T2, np.ones(len(S2) + len(T2))) if S2 else None
        return None
    # With bias the multiplier LP usually makes lambda.b >= 0 tight, so the
    # support has one row more than the rows' null space pins down.  The
    # tight constraint pins it: try the null space of [rows^T; offsets^T].
    basis = [[int(X[r, c]) for r in range(len(idx))] for c in range(nullity)]
    cols = [[data.Wi[i][j] for i in idx] for j in range(n)]

    def candidates():
        tight = linalg.nullspace(cols + [[data.bi[i] for i in idx]], len(idx))
        if len(tight) == 1:
            yield tight[0]
            yield [-x for x in tight[0]]
        # Otherwise project the float multiplier onto the null space and
        # round (built only when needed: Fraction arithmetic is slow).
        B = np.array([to_float_dir(b) for b in basis], dtype=float).T  # |idx| x k
        coef, *_ = np.linalg.lstsq(B, guess, rcond=None)
        shifts = [max(max(abs(x) for x in b).bit_length() - 60, 0) for b in basis]
        for den in (10**3, 10**6, 10**9):
            c = [Fraction(float(x)).limit_denominator(den) / (1 << sh) for x, sh in zip(coef, shifts)]
            yield [sum(cj * basis[j][r] for j, cj in enumerate(c)) for r in range(len(idx))]

    for v in candidates():
        if _valid(data, S, T, v):
            # Express the multiplier over the rational rows the checker reads
            # (Wi_i = scale_i * row_i, so v_i * scale_i serves for row_i).
            keepS = [(i, Fraction(x) * data.scale[i]) for x, i in zip(v, S) if x]
            keepT = [(i, Fraction(x) * data.scale[i]) for x, i in zip(v[len(S):], T) if x]
            if keepS:
                return Core(tuple(i for i, _ in keepS), tuple(x for _, x in keepS + keepT),
                            tuple(i for i, _ in keepT))
    return None


def exact_node(data: LayerData, in_play: int, deadline: float | None = None) -> Witness | Core | None:
    """Decide a node's strict system exactly (exact_lp), for when the float
    LP's answer could not be repaired.  Returns a witness, a core, or None
    (a point exists but the rows outside ``in_play`` span, so no witness;
    or the ``deadline`` passed first)."""
    idx = data.rows_of(in_play)
    dom = list(range(data.m, data.M))
    kind, a, b = exact_lp.strict_or_motzkin(
        [data.Wi[i] for i in idx], [data.bi[i] for i in idx],
        [data.Wi[i] for i in dom], [data.bi[i] for i in dom], deadline=deadline)
    if kind == "limit":
        return None
    if kind == "point":
        XT, _ = linalg.common_denominator(list(a) + [b])
        X, T = XT[:-1], XT[-1]
        if not (all(v < 0 for v in data.values(X, T, idx)) and all(v <= 0 for v in data.values(X, T, dom))):
            return None  # pragma: no cover - exact_lp's Farkas vector is exact
        return make_witness(data, _dehomogenise(data, idx, X, T), in_play)
    lam, mu = a, b
    S = [i for i, x in zip(idx, lam) if x > 0]
    T = [i for i, x in zip(dom, mu) if x > 0]
    if not S:
        return None  # pragma: no cover - lambda != 0 on a nonempty domain
    guess = np.array([float(x) for x in lam if x > 0] + [float(x) for x in mu if x > 0])
    core = _exact_multiplier(data, S, T, guess)
    if core is None:
        # exact_lp's own multiplier, over the rational rows the checker reads.
        mult = [x * data.scale[i] for i, x in zip(idx, lam) if x > 0] + \
               [x * data.scale[i] for i, x in zip(dom, mu) if x > 0]
        core = Core(tuple(S), tuple(mult), tuple(T))
    return core


def strict_point(data: LayerData, rows: int, z: np.ndarray, t: float) -> list[Fraction] | None:
    """A rational x in the domain with row.x + offset < 0 exactly for every
    row in ``rows``.

    (z, t) is the LP's homogenised point.  Rounded candidates are tried from
    simple to exact; each is checked in exact integer arithmetic.
    """
    idx = data.rows_of(rows)
    dom = range(data.m, data.M)
    scale = max(float(np.abs(z).max(initial=0.0)), t, 1e-300)
    zt = np.append(z, t) / scale
    for den in (1, 10, 100, 10**4, 10**8, None):
        if den is None:
            XT, _ = linalg.common_denominator([Fraction(float(v)) for v in zt])
        else:
            XT = [round(float(v) * den) for v in zt]
        X, T = XT[:-1], max(XT[-1], 0)
        if all(v < 0 for v in data.values(X, T, idx)) and all(v <= 0 for v in data.values(X, T, dom)):
            return _dehomogenise(data, idx, X, T)
    return None


def _dehomogenise(data: LayerData, idx: list[int], X: list, T) -> list[Fraction]:
    """The point X/T, or for T = 0 a point far enough out along direction X.

    With T = 0, X is a direction with row.X < 0 on these rows and G X <= 0,
    so from a point z0 of the (nonempty) domain, z0 + lam X stays in the
    domain and makes the rows strictly negative once lam is large enough.
    """
    if T > 0:
        return [Fraction(v) / T for v in X]
    z0 = data.base
    Z, D = linalg.common_denominator(z0)
    lam = Fraction(1)
    for i, at0, wd in zip(idx, data.values(Z, D, idx), data.values(X, 0, idx)):
        if at0 >= 0:
            lam = max(lam, Fraction(at0, D * -wd) + 1)
    return [a + lam * v for a, v in zip(z0, X)]


def make_witness(data: LayerData, x: list[Fraction], negative: int) -> Witness | None:
    """x makes every row in ``negative`` strictly negative and the other rows
    have rank < n: move along their null space and verify exactly."""
    others = [data.Wi[i] for i in data.rows_of(data.all & ~negative)]
    basis = linalg.nullspace(others, data.n)
    if not basis:
        return None
    v = linalg.primitive(basis[0])
    X, D = linalg.common_denominator(x)
    idx = data.rows_of(negative)
    bound = None
    # Row i stays strictly negative at x + eps v while eps |w_i.v| < -(w_i.x + b_i).
    for i, val, wv in zip(idx, data.values(X, D, idx), data.values(v, 0, idx)):
        if wv:
            r = Fraction(-val, D * abs(wv))
            bound = r if bound is None or r < bound else bound
    # The simplest rational in (0, bound): 1/q with q = floor(1/bound) + 1.
    eps = Fraction(1) if bound is None or bound > 1 else Fraction(1, int(1 / bound) + 1)
    y = [a + eps * c for a, c in zip(x, v)]
    return finish_witness(data.layer, tuple(x), tuple(y), data.domain)


def finish_witness(layer: Layer, x: tuple, y: tuple, domain: Domain | None = None) -> Witness | None:
    """Verify a candidate pair exactly and attach the midpoint's active rows."""
    x = tuple(Fraction(a) for a in x)
    y = tuple(Fraction(a) for a in y)
    if x == y or layer.apply(x) != layer.apply(y):
        return None
    if domain is not None and not (domain.contains(x) and domain.contains(y)):
        return None
    mid = tuple((a + b) / 2 for a, b in zip(x, y))
    active = tuple(i for i, a in enumerate(layer.pre_activation(mid)) if a >= 0)
    Wi = layer._integer_rows[0]  # rows scaled to integers: same rank, faster than rationals
    rk = linalg.rank([Wi[i] for i in active], layer.in_dim)
    return Witness(x, y, active, rk)
