"""Certified stability constants of one ReLU layer (theory notes, section 9).

For f(x) = ReLU(Wx + b) and A(z) = { i : w_i.z + b_i >= 0 }, this module
computes

    s* = min over z of sigma_min(W_{A(z)})

as a certified bracket lower <= s* <= upper, and from it two lower Lipschitz
constants, |f(x) - f(y)| >= C |x - y|:

- ``half``:  C = (1/2) s*.  Valid with bias: for i in A((x+y)/2) the two
  pre-activations a, c have a + c >= 0, so |ReLU(a) - ReLU(c)| >= |a - c| / 2.
- ``paper``: C(W) = (2m)^(-1/2) s*, the paper's Theorem 3, which the paper
  states for bias-free layers only.  For a biased layer the same formula is
  evaluated over the biased arrangement's cells; it is never larger than the
  ``half`` constant when s* > 0 (then m >= 2), so it is a valid bound there too,
  but it is not the paper's theorem.

and the inverse Lipschitz bound 1/C.  Every figure is a rational number proved
exactly; floats appear only as display copies and as guidance for the search.

Why a minimum over the cells suffices.  For any z, a generic direction d and
small e > 0 put z + e d in an open cell of the arrangement of the nonzero rows,
whose active set is contained in A(z) (rows strictly negative at z stay
negative, rows that are zero at z go either way).  Adding rows only raises
sigma_min (W_T^T W_T = W_S^T W_S + a PSD matrix when S is in T).  So s* is the
minimum over the open cells.  Zero rows (w_i = 0) have a constant sign and add
nothing to any Gram matrix; they are never split.

The method (:data:`METHOD`).  A depth-first case split over the nonzero rows:
a node fixes rows P to "w.x + b > 0" and N to "w.x + b < 0".

- A child that is empty (no x has those strict signs) is closed by an exact
  Motzkin multiplier (theory section 4): lambda >= 0, lambda != 0, with
  sum_N lambda_i (w_i, b_i) - sum_P lambda_i (w_i, b_i) = (0, s), s >= 0.
- A node with every nonzero row decided and a rational point strictly inside
  is an open cell; its active set is exactly P.
- Every cell below a node has active set containing P, hence sigma_min at least
  sigma_min(W_P).  A node whose sigma_min(W_P) is already at least that of the
  best cell found is closed on that bound (branch and bound).
- Every closed-by-bound node and every cell is a leaf whose P carries the
  certificate sigma_min(W_P)^2 > t: an exact LDL^T factorisation of
  W_P^T W_P - t I with every pivot > 0 (so the matrix is positive definite).

Every open cell of the arrangement follows one root-to-leaf path (its strict
sign decides each split), the leaf it reaches is not empty (the cell's points
satisfy its system), so it is a bound leaf or a cell with P contained in the
cell's active set: sigma_min(cell)^2 >= sigma_min(W_P)^2 > t.  Hence s* >=
sqrt(t), and the reported lower bound is a rational r with r^2 <= t.  The
upper bound comes from one exact point x* and a rational vector v:
s* <= sigma_min(W_{A(x*)}) <= |W_{A(x*)} v| / |v|.

HiGHS only guides (which side is empty, where a point is); points are checked
exactly and multipliers are repaired exactly, with the rational simplex of
:mod:`exact_inj.exact.lp` as the fallback.  :func:`check_stability` re-derives
everything from the certificate with rational arithmetic and flint's exact
matrices only, and imports no solver.

Limit.  The number of cells of m generic hyperplanes in R^n is
sum_{k <= n} C(m, k) (about m^n / n!), and the search visits each cell that
the bound does not prune.  When the time or node limit is reached, the open
nodes become leaves certified by their own sigma_min(W_P) (usually 0: too few
rows are fixed), the status is ``partial``, and the lower bound stays a
guaranteed one, however weak.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from math import isqrt
from typing import Any, Callable

import flint
import numpy as np

from ...cli.argtypes import positive_float as _positive_float
from ...errors import InputError
from ...numbers import fraction_to_str, parse_exact
from ...io.json import load_json_file, network_from_json, network_to_json
from ...io.load import load_network
from ...model.network import Layer, Network

FORMAT = "exact_inj/stability-certificate"
VERSION = 1

METHOD = ("cell enumeration by exact case splitting on the rows, LP-guided, with branch and bound "
          "(a subtree is closed once its forced-active rows have sigma_min above the best cell found)")

PAPER_NOTE = ("Theorem 3 of the paper is stated for bias-free layers. For a biased layer this is the same formula "
              "over the biased arrangement's cells; it never exceeds the (1/2) constant when min sigma_min > 0, so "
              "it is still a valid (weaker) bound, but it is not the paper's theorem.")
HALF_NOTE = ("|f(x) - f(y)| >= (1/2) min sigma_min |x - y| for all x, y, bias included "
             "(theory notes, section 9)")

# Relative margins tried when choosing t below a float estimate of sigma_min^2.
_MARGINS = (1e-9, 1e-6, 1e-3, 0.1, 0.5)
# A float multiplier entry counts as support above this fraction of the largest.
_SUPPORT_TOL = 1e-9


# --- exact numbers ---------------------------------------------------------------


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


def _t_below(lam: float, rel: float) -> Fraction:
    """A simple dyadic rational a little below lam * (1 - rel) (0 if that is not positive)."""
    x = lam * (1.0 - rel)
    if not (x > 0 and math.isfinite(x)):
        return Fraction(0)
    _, e = math.frexp(x)
    k = 40 - e  # about 40 significant bits
    F = Fraction(x) * Fraction(2) ** k
    return Fraction(math.floor(F)) / Fraction(2) ** k


def _float_down(x: Fraction) -> float:
    f = float(x)
    return math.nextafter(f, -math.inf) if Fraction(f) > x else f


def _float_up(x: Fraction) -> float:
    f = float(x)
    return math.nextafter(f, math.inf) if Fraction(f) < x else f


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


def _fmt(x: Fraction | None) -> str | None:
    return None if x is None else fraction_to_str(Fraction(x))


# --- the result ------------------------------------------------------------------


@dataclass
class StabilityResult:
    """What :func:`stability` found.  Every Fraction is proved; floats are for display."""

    status: str  # "complete", "not_injective" or "partial"
    n: int
    m: int
    biased: bool
    t: Fraction  # every cell has sigma_min^2 > t (>= when t = 0)
    sigma_lower: Fraction  # r with r^2 <= t
    sigma_upper: Fraction | None  # min sigma_min <= this
    inv_sqrt_2m_lower: Fraction
    half_lower: Fraction
    paper_lower: Fraction
    inverse_lipschitz_half: Fraction | None  # 1 / half_lower, or None (unbounded / unknown)
    inverse_lipschitz_paper: Fraction | None
    cell_point: tuple[Fraction, ...] | None
    cell_active: tuple[int, ...] | None
    cell_signs: str | None
    witness: tuple[tuple[Fraction, ...], tuple[Fraction, ...]] | None
    certificate: dict
    stats: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    check: "StabilityCheck | None" = None
    seconds: float = 0.0
    min_cell_pivots: list[Fraction] | None = None

    def to_json(self) -> dict:
        """The summary object printed by ``exact-inj stability --json``."""
        out: dict[str, Any] = {
            "status": self.status,
            "n": self.n,
            "m": self.m,
            "bias": self.biased,
            "method": METHOD,
            "min_sigma": {
                "lower": _fmt(self.sigma_lower),
                "lower_float": _float_down(self.sigma_lower),
                "upper": _fmt(self.sigma_upper),
                "upper_float": None if self.sigma_upper is None else _float_up(self.sigma_upper),
                "t": _fmt(self.t),
                "meaning": "lower <= min over z of sigma_min(W_A(z)) <= upper; every cell has sigma_min^2 > t "
                           "(exact LDL^T), lower^2 <= t",
            },
            "minimising_cell": None if self.cell_point is None else {
                "point": [fraction_to_str(v) for v in self.cell_point],
                "active_rows": list(self.cell_active),
                "signs": self.cell_signs,
                "ldl_pivots": None if self.min_cell_pivots is None else [_fmt(p) for p in self.min_cell_pivots],
            },
            "constants": {
                "half": {
                    "formula": "(1/2) min sigma_min",
                    "lower": _fmt(self.half_lower),
                    "lower_float": _float_down(self.half_lower),
                    "valid_with_bias": True,
                    "note": HALF_NOTE,
                },
                "paper": {
                    "formula": "C(W) = (2m)^(-1/2) min sigma_min",
                    "lower": _fmt(self.paper_lower),
                    "lower_float": _float_down(self.paper_lower),
                    "inv_sqrt_2m_lower": _fmt(self.inv_sqrt_2m_lower),
                    "stated_for_bias_free_layers": True,
                    "note": PAPER_NOTE if self.biased else "Theorem 3 of the paper (bias-free layer).",
                },
            },
            "inverse_lipschitz_upper": {
                "from_half": _fmt(self.inverse_lipschitz_half),
                "from_half_float": None if self.inverse_lipschitz_half is None
                else _float_up(self.inverse_lipschitz_half),
                "from_paper": _fmt(self.inverse_lipschitz_paper),
                "from_paper_float": None if self.inverse_lipschitz_paper is None
                else _float_up(self.inverse_lipschitz_paper),
            },
            "not_injective": None if self.witness is None else {
                "x": [fraction_to_str(v) for v in self.witness[0]],
                "y": [fraction_to_str(v) for v in self.witness[1]],
            },
            "certificate": {
                "valid": None if self.check is None else self.check.valid,
                "reason": None if self.check is None else self.check.reason,
                "check_seconds": None if self.check is None else round(self.check.seconds, 6),
                "tree_entries": len(self.certificate.get("tree", [])),
                **({} if self.check is None else self.check.counts),
            },
            "stats": self.stats,
            "seconds": round(self.seconds, 6),
            "notes": self.notes,
        }
        return out


@dataclass
class StabilityCheck:
    valid: bool
    reason: str
    seconds: float = 0.0
    counts: dict = field(default_factory=dict)


# --- the search ------------------------------------------------------------------


class _Point:
    """An exact point with its exact pre-activations."""

    __slots__ = ("x", "pre")

    def __init__(self, layer: Layer, x):
        self.x = tuple(Fraction(v) for v in x)
        self.pre = layer.pre_activation(self.x)


class _NodeLP:
    """HiGHS guidance for one node: maximise s subject to s_i (w_i.z + b_i t) + s <= 0
    for the node's signed rows, t >= 0, s <= 1 (theory section 11's homogenised LP;
    the optimum is 0 or 1 by scaling).  Rows 0..m-1 carry sign +1 ("< 0"), rows
    m..2m-1 sign -1 ("> 0"); a row is switched off by an infinite upper bound.
    Nothing it says is trusted: points are checked and multipliers repaired exactly."""

    def __init__(self, Wi: list[list[int]], bi: list[int], n: int):
        from ... import solver

        self.solver = solver
        m = len(Wi)
        Wf = np.zeros((m, n))
        bf = np.zeros(m)
        for i in range(m):
            big = max([abs(v) for v in Wi[i]] + [abs(bi[i])])
            if big:  # each row scaled to max-abs 1 (exactly, before rounding)
                Wf[i] = [float(Fraction(v, big)) for v in Wi[i]]
                bf[i] = float(Fraction(bi[i], big))
        A = np.vstack([np.hstack([Wf, bf[:, None], np.ones((m, 1))]),
                       np.hstack([-Wf, -bf[:, None], np.ones((m, 1))])])
        cost = np.zeros(n + 2)
        cost[-1] = 1.0
        self.h = solver.new_highs()
        inf = solver.INF
        solver.pass_lp(self.h, cost, np.array([-inf] * n + [0.0, -inf]), np.array([inf] * n + [inf, 1.0]), A,
                        np.full(2 * m, -inf), np.full(2 * m, inf), maximize=True)
        self.on = np.zeros(2 * m, dtype=bool)
        self.n = n
        self.lps = 0

    def solve(self, on: np.ndarray):
        """('point', z, t), ('multiplier', |duals|) or ('fail',)."""
        diff = np.nonzero(on != self.on)[0]
        if len(diff):
            inf = self.solver.INF
            self.h.changeRowsBounds(len(diff), diff.astype(np.int32), np.full(len(diff), -inf),
                                    np.where(on[diff], 0.0, inf))
            self.on = on.copy()
        self.lps += 1
        self.h.run()
        if self.solver.highs_outcome(self.h) is not self.solver.Outcome.OPTIMAL:
            return ("fail",)
        s = self.h.getInfo().objective_function_value
        sol = self.h.getSolution()
        if s >= 0.5:
            x = np.array(sol.col_value)
            return ("point", x[: self.n], float(x[self.n]))
        if abs(s) <= 1e-6:
            lam = np.abs(np.array(sol.row_dual))
            lam[~on] = 0.0
            return ("multiplier", lam)
        return ("fail",)


class _Limit(Exception):
    pass


class _Search:
    def __init__(self, layer: Layer, seed: int, deadline: float, max_nodes: int | None,
                 progress: Callable[[str], None] | None, prune: bool = True):
        from ...exact import linalg

        self.layer = layer
        self.n, self.m = layer.in_dim, layer.out_dim
        # Integer rows (Wi_i, bi_i) = scale_i (w_i, b_i), scale_i > 0: the same sign
        # conditions, and exact arithmetic on integers.
        self.Wi, self.bi, self.scale = linalg.scaled_integer_rows(layer.weight, layer.bias)
        self.Wd = np.array([[_to_float(v) for v in r] for r in layer.weight], dtype=float).reshape(self.m, self.n)
        self.bd = np.array([_to_float(v) for v in layer.bias], dtype=float)
        self.nonzero = [i for i in range(self.m) if any(layer.weight[i])]
        self.nzmask = sum(1 << i for i in self.nonzero)
        self.Wq = [list(r) for r in layer.weight]
        self.grams = Grams(layer.weight)
        self.lp = _NodeLP(self.Wi, self.bi, self.n)
        self.rng = np.random.default_rng(seed)
        self.deadline = deadline
        self.max_nodes = max_nodes
        self.progress = progress
        self.prune = prune
        self.stats = dict(nodes=0, cells=0, empty=0, pruned=0, open=0, lps=0, exact_lps=0,
                          repairs=0, pool_points=0, pool_hits=0, inherited=0)
        self.best = math.inf  # float sigma_min^2 of the best real cell found
        self.best_pt: _Point | None = None
        self.deficient: _Point | None = None
        self._sig_cache: dict[int, float] = {}

    # float guidance ------------------------------------------------------------

    def rows_of(self, mask: int) -> list[int]:
        return [i for i in self.nonzero if mask >> i & 1]

    def sig2(self, mask: int) -> float:
        """Float sigma_min(W_mask)^2 (0 with fewer than n rows); guidance only."""
        v = self._sig_cache.get(mask)
        if v is None:
            rows = self.rows_of(mask)
            if len(rows) < self.n:
                v = 0.0
            else:
                try:
                    v = float(np.linalg.svd(self.Wd[rows], compute_uv=False)[-1]) ** 2
                except np.linalg.LinAlgError:  # pragma: no cover
                    v = 0.0
                if not math.isfinite(v):
                    v = 0.0
            if len(self._sig_cache) < 200000:
                self._sig_cache[mask] = v
        return v

    def exact_rank(self, mask: int) -> int:
        rows = [self.Wi[i] for i in self.rows_of(mask)]
        return int(flint.fmpz_mat(rows).rank()) if rows else 0

    def active_mask(self, pt: _Point) -> int:
        return sum(1 << i for i in range(self.m) if pt.pre[i] >= 0)

    def is_cell_point(self, pt: _Point) -> bool:
        return all(pt.pre[i] != 0 for i in self.nonzero)

    def note_cell(self, pt: _Point) -> None:
        """pt lies in an open cell: update the incumbent; detect rank deficiency exactly."""
        mask = self.active_mask(pt) & self.nzmask
        s2 = self.sig2(mask)
        scale = float(np.max(np.abs(self.Wd))) ** 2 if self.Wd.size else 1.0
        if s2 <= 1e-12 * max(scale, 1e-300) and self.exact_rank(mask) < self.n:
            self.deficient = pt
            raise _Limit
        if s2 < self.best:
            self.best, self.best_pt = s2, pt

    # the pool of sample points ---------------------------------------------------

    def build_pool(self) -> None:
        n, m = self.n, self.m
        rng = self.rng
        K = int(min(20000, max(2000, 100 * m)))
        verts = []
        nz = self.nonzero
        if len(nz) >= n:
            for _ in range(60):
                idx = rng.choice(nz, n, replace=False)
                A = self.Wd[idx]
                with np.errstate(all="ignore"):
                    if np.linalg.cond(A) < 1e8:
                        verts.append(np.linalg.solve(A, -self.bd[idx]))
        norms = [float(np.linalg.norm(v)) for v in verts if np.all(np.isfinite(v))]
        R = max(1.0, 2.0 * float(np.median(norms))) if norms else 1.0
        R = min(R, 1e12)
        k1, k2 = K // 2, K // 4
        parts = [rng.standard_normal((k1, n)) * R]
        if verts:
            V = np.array(verts)[rng.integers(0, len(verts), k2)]
            parts.append(V + rng.standard_normal((k2, n)) * (0.02 * R) * rng.exponential(1.0, (k2, 1)))
        d = rng.standard_normal((K - sum(len(p) for p in parts), n))
        parts.append(d / np.linalg.norm(d, axis=1, keepdims=True) * (100.0 * R))
        X = np.vstack(parts)
        X = X[np.all(np.isfinite(X), axis=1)]
        D = 10.0 ** (6 - math.floor(math.log10(R)))
        Xi = np.round(X * D)
        self.pool_D = int(round(D)) if D >= 1 else Fraction(D).limit_denominator(10**6)
        self.pool_Xi = Xi
        Xr = Xi / D
        Z = Xr @ self.Wd.T + self.bd
        tol = 1e-9 * (np.abs(Xr) @ np.abs(self.Wd).T + np.abs(self.bd)) + 1e-300
        self.pool_sg = np.where(Z > tol, 1, np.where(Z < -tol, -1, 0)).astype(np.int8)
        self.pool_exact: dict[int, _Point] = {}
        self.stats["pool_points"] = len(Xi)
        # Incumbent from the sampled cells.
        sg = self.pool_sg[:, nz] if nz else np.zeros((len(Xi), 0), dtype=np.int8)
        ok = np.nonzero(np.all(sg != 0, axis=1))[0]
        if len(ok):
            pats, first = np.unique(sg[ok], axis=0, return_index=True)
            vals = []
            for p, j in zip(pats, first):
                mask = sum(1 << nz[c] for c in range(len(nz)) if p[c] > 0)
                vals.append((self.sig2(mask), int(ok[j])))
            vals.sort()
            for s2, j in vals[:3]:
                pt = self.pool_point(j)
                if self.is_cell_point(pt):
                    self.note_cell(pt)

    def pool_point(self, j: int) -> _Point:
        pt = self.pool_exact.get(j)
        if pt is None:
            D = self.pool_D
            pt = _Point(self.layer, [Fraction(int(v)) / D for v in self.pool_Xi[j]])
            self.pool_exact[j] = pt
        return pt

    # exact feasibility of a node's strict system ---------------------------------

    def satisfies(self, pt: _Point, P: int, N: int) -> bool:
        pre = pt.pre
        return all(pre[i] > 0 for i in self.rows_of(P)) and all(pre[i] < 0 for i in self.rows_of(N))

    def signed(self, P: int, N: int) -> list[tuple[int, int]]:
        """(row, s): s = +1 for "w.x + b < 0" (N), -1 for "w.x + b > 0" (P), as "s (w.x + b) < 0"."""
        return [(i, 1 if N >> i & 1 else -1) for i in self.nonzero if (P | N) >> i & 1]

    def point_from_homogeneous(self, sig: list[tuple[int, int]], X: list, T) -> _Point | None:
        """The point X/T (T > 0) or, for T = 0, a point far out along X; verified by the caller."""
        Wi, bi = self.Wi, self.bi
        if T > 0:
            return _Point(self.layer, [Fraction(v) / T for v in X])
        lam = Fraction(1)
        for i, s in sig:
            wd = s * sum(a * c for a, c in zip(Wi[i], X))
            if wd >= 0:
                return None
            if s * bi[i] > 0:
                lam = max(lam, Fraction(s * bi[i], -wd) + 1)
        return _Point(self.layer, [lam * v for v in X])

    def round_point(self, z: np.ndarray, t: float, P: int, N: int) -> _Point | None:
        sig = self.signed(P, N)
        scale = max(float(np.abs(z).max(initial=0.0)), t, 1e-300)
        zt = np.append(z, t) / scale
        Wi, bi = self.Wi, self.bi
        for den in (1, 10, 100, 10**4, 10**8, None):
            if den is None:
                vals = [Fraction(float(v)) for v in zt]
                L = math.lcm(*(v.denominator for v in vals))
                XT = [int(v * L) for v in vals]
            else:
                XT = [round(float(v) * den) for v in zt]
            X, T = XT[:-1], max(XT[-1], 0)
            if all(s * (sum(a * c for a, c in zip(Wi[i], X)) + bi[i] * T) < 0 for i, s in sig):
                pt = self.point_from_homogeneous(sig, X, T)
                if pt is not None and self.satisfies(pt, P, N):
                    return pt
        return None

    def repair(self, lam: np.ndarray, P: int, N: int) -> dict[int, Fraction] | None:
        """An exact Motzkin multiplier (over the layer's rational rows) from a float one."""
        from ...exact import lp as exact_lp, linalg

        m = self.m
        if lam.max() <= 0:
            return None
        supp = []
        for k in np.nonzero(lam > _SUPPORT_TOL * lam.max())[0].tolist():
            i, s = (k, 1) if k < m else (k - m, -1)
            if (N if s == 1 else P) >> i & 1:
                supp.append((i, s))
        if not supp:
            return None
        Wi, bi = self.Wi, self.bi
        cols = [[s * Wi[i][j] for i, s in supp] for j in range(self.n)]
        basis = linalg.nullspace(cols, len(supp))
        if len(basis) > 1:
            # With bias the LP usually makes lambda.b >= 0 tight, so the support has
            # one row more than W's null space pins down: add the bias row.
            basis = linalg.nullspace(cols + [[s * bi[i] for i, s in supp]], len(supp))
        if len(basis) == 1:
            v = basis[0]
            if all(x <= 0 for x in v):
                v = [-x for x in v]
            if all(x >= 0 for x in v) and any(v) and sum(x * s * bi[i] for x, (i, s) in zip(v, supp)) >= 0:
                return self._mult(supp, v)
        self.stats["exact_lps"] += 1
        kind, a, _ = exact_lp.strict_or_motzkin([[s * c for c in Wi[i]] for i, s in supp], [s * bi[i] for i, s in supp])
        if kind == "multiplier":
            return self._mult(supp, a)
        return None

    def _mult(self, supp, v) -> dict[int, Fraction]:
        return {i: Fraction(x) * self.scale[i] for x, (i, _) in zip(v, supp) if x != 0}

    def decide(self, P: int, N: int) -> tuple[_Point | None, dict[int, Fraction] | None]:
        """A point strictly inside the node's region, or an exact multiplier proving it empty."""
        from ...exact import lp as exact_lp

        on = np.zeros(2 * self.m, dtype=bool)
        for i in self.rows_of(N):
            on[i] = True
        for i in self.rows_of(P):
            on[self.m + i] = True
        self.stats["lps"] += 1
        res = self.lp.solve(on)
        if res[0] == "point":
            pt = self.round_point(res[1], res[2], P, N)
            if pt is not None:
                return pt, None
        elif res[0] == "multiplier":
            mult = self.repair(res[1], P, N)
            if mult is not None:
                return None, mult
        self.stats["repairs"] += 1
        self.stats["exact_lps"] += 1
        sig = self.signed(P, N)
        Wi, bi = self.Wi, self.bi
        kind, a, b = exact_lp.strict_or_motzkin([[s * c for c in Wi[i]] for i, s in sig], [s * bi[i] for i, s in sig])
        if kind == "multiplier":
            return None, self._mult(sig, a)
        XT = [Fraction(v) for v in list(a) + [b]]
        L = math.lcm(*(v.denominator for v in XT))
        XT = [int(v * L) for v in XT]
        pt = self.point_from_homogeneous(sig, XT[:-1], XT[-1])
        if pt is None or not self.satisfies(pt, P, N):  # pragma: no cover - exact_lp is exact
            raise RuntimeError("exact LP returned a point that fails the exact check")
        return pt, None

    # the case split ---------------------------------------------------------------

    def run(self) -> None:
        """Build self.tree: id -> entry; entries are
        ("split", r, pos_id, neg_id), ("cell", P, N, point), ("bound", P, N), ("open", P, N),
        ("empty", P, N, multiplier)."""
        self.tree: list[tuple] = []
        self.build_pool()
        root_pt = self.pool_point(0) if len(self.pool_Xi) else _Point(self.layer, [0] * self.n)
        if self.exact_rank(self.nzmask) < self.n:
            self.deficient = root_pt
            raise _Limit
        self.tree.append(None)
        stack = [(0, 0, 0, root_pt, np.arange(len(self.pool_Xi)))]
        n = self.n
        last = time.perf_counter()
        while stack:
            nid, P, N, pt, cand = stack.pop()
            self.stats["nodes"] += 1
            if (self.max_nodes is not None and self.stats["nodes"] > self.max_nodes) or (
                    self.stats["nodes"] % 32 == 0 and time.perf_counter() > self.deadline):
                self.tree[nid] = ("open", P, N)
                for e in stack:
                    self.tree[e[0]] = ("open", e[1], e[2])
                self.stats["open"] = len(stack) + 1
                return
            if self.progress is not None and self.stats["nodes"] % 256 == 0 and time.perf_counter() - last > 2:
                last = time.perf_counter()
                self.progress(f"{self.stats['nodes']} nodes, {self.stats['cells']} cells, "
                              f"{self.stats['empty']} empty cases, {len(stack)} open")
            und = self.nzmask & ~(P | N)
            if not und:
                self.stats["cells"] += 1
                self.tree[nid] = ("cell", P, N, pt)
                self.note_cell(pt)
                continue
            if self.prune and bin(P).count("1") >= n and self.best < math.inf:
                if self.sig2(P) >= self.best * (1 - 1e-12):
                    self.stats["pruned"] += 1
                    self.tree[nid] = ("bound", P, N)
                    continue
            r = (und & -und).bit_length() - 1
            bit = 1 << r
            kids = []
            for side in (1, -1):
                P2, N2 = (P | bit, N) if side == 1 else (P, N | bit)
                cid = len(self.tree)
                self.tree.append(None)
                ccand = cand[self.pool_sg[cand, r] == side]
                cpt = None
                if pt is not None and (pt.pre[r] > 0 if side == 1 else pt.pre[r] < 0):
                    cpt = pt
                    self.stats["inherited"] += 1
                else:
                    for j in ccand[:3].tolist():
                        q = self.pool_point(j)
                        if self.satisfies(q, P2, N2):
                            cpt = q
                            self.stats["pool_hits"] += 1
                            break
                    if cpt is None:
                        cpt, mult = self.decide(P2, N2)
                        if cpt is None:
                            self.stats["empty"] += 1
                            self.tree[cid] = ("empty", P2, N2, mult)
                            continue
                    if self.is_cell_point(cpt):
                        self.note_cell(cpt)
                kids.append((cid, P2, N2, cpt, ccand))
            # Children: "> 0" at len - 2, "< 0" at len - 1.  The stack pops the "< 0"
            # side first: fewer active rows, smaller sigma_min, an early incumbent.
            self.tree[nid] = ("split", r, len(self.tree) - 2, len(self.tree) - 1)
            stack.extend(kids)

    def serialise(self) -> list:
        out = []
        stack = [0]
        while stack:
            e = self.tree[stack.pop()]
            kind = e[0]
            if kind == "split":
                out.append(["split", e[1]])
                stack.append(e[3])
                stack.append(e[2])
            elif kind == "cell":
                out.append(["cell", [fraction_to_str(v) for v in e[3].x]])
            elif kind in ("bound", "open"):
                out.append([kind])
            else:
                out.append(["empty", [[i, fraction_to_str(x)] for i, x in sorted(e[3].items())]])
        return out


def _to_float(x: Fraction) -> float:
    try:
        return float(x)
    except OverflowError:
        return math.copysign(math.inf, x)


# --- certification ----------------------------------------------------------------


def _certify_leaves(S: _Search) -> tuple[Fraction, dict[int, Fraction]]:
    """The largest t (from float guidance) such that every leaf's Gram(P) - t I is
    positive definite, proved by exact LDL^T; and the per-P certified values."""
    leaves = {}
    for e in S.tree:
        if e is not None and e[0] in ("cell", "bound", "open"):
            leaves[e[1]] = S.sig2(e[1])
    if not leaves:  # pragma: no cover - a tree always has a leaf
        return Fraction(0), {}
    cands = {P: _t_below(s2, _MARGINS[0]) for P, s2 in leaves.items()}
    t = min(cands.values())
    done: dict[int, Fraction] = {}
    # Smallest first: once t has settled, the rest pass at the first try.
    for P in sorted(leaves, key=lambda P: cands[P]):
        if t <= 0:
            break
        rows = S.rows_of(P)
        if S.grams.positive_definite(rows, t):
            done[P] = t
            continue
        # The float estimate was off (ill-conditioned rows): walk t down.
        got = Fraction(0)
        if S.exact_rank(P) == S.n:
            tries = [min(t, _t_below(leaves[P], rel)) for rel in _MARGINS[1:]]
            x = tries[-1]
            for _ in range(200):
                x = x / 4 if x > 0 else Fraction(1, 2**40)
                tries.append(x)
            for x in tries:
                if x > 0 and S.grams.positive_definite(rows, x):
                    got = x
                    break
        t = min(t, got)
        done[P] = got
    return max(t, Fraction(0)), done


def _upper(S: _Search, pt: _Point) -> tuple[Fraction, list[Fraction], tuple[int, ...]]:
    """(R, v, A): min sigma_min <= sigma_min(W_A) <= |W_A v| / |v| <= R, A = A(pt), exactly."""
    A = tuple(i for i in range(S.m) if pt.pre[i] >= 0)
    rows = [i for i in A if i in set(S.nonzero)]
    n = S.n
    if len(rows) < n:
        v = [Fraction(0)] * n
        if rows:
            from ...exact import linalg
            basis = linalg.nullspace([S.Wi[i] for i in rows], n)
            v = [Fraction(x) for x in basis[0]]
        else:
            v[0] = Fraction(1)
        return Fraction(0), v, A
    _, _, Vt = np.linalg.svd(S.Wd[rows])
    vf = Vt[-1]
    vf = vf / np.abs(vf).max()
    v = [Fraction(round(float(x) * 2**40), 2**40) for x in vf]
    if not any(v):  # pragma: no cover
        v[0] = Fraction(1)
    num = sum((sum(w * c for w, c in zip(S.Wq[i], v))) ** 2 for i in rows)
    den = sum(c * c for c in v)
    return sqrt_upper(num / den), v, A


def _collision(S: _Search, pt: _Point):
    """x = pt and y = x + e v, v orthogonal to the active rows (rank < n), e small
    enough that the inactive rows stay strictly negative; verified exactly."""
    from ...exact import linalg

    act = [S.Wi[i] for i in range(S.m) if pt.pre[i] >= 0]
    basis = linalg.nullspace(act, S.n)
    if not basis:  # pragma: no cover - the caller found rank < n
        return None
    v = linalg.primitive(basis[0])
    bound = None
    for i in range(S.m):
        if pt.pre[i] < 0:
            wv = sum(Fraction(w) * c for w, c in zip(S.layer.weight[i], v))
            if wv:
                r = -pt.pre[i] / abs(wv)
                bound = r if bound is None or r < bound else bound
    eps = Fraction(1) if bound is None or bound > 1 else Fraction(1, int(1 / bound) + 1)
    y = tuple(a + eps * c for a, c in zip(pt.x, v))
    if y == pt.x or S.layer.apply(pt.x) != S.layer.apply(y):  # pragma: no cover
        return None
    return pt.x, y


def stability(layer: Layer | Network, time_limit: float = 60.0, max_nodes: int | None = None, seed: int = 0,
              progress: Callable[[str], None] | None = None, prune: bool = True) -> StabilityResult:
    """Certified min over cells of sigma_min(W_A), the two Lipschitz constants and 1/C.

    ``prune=False`` turns the branch and bound off, so that every open cell of
    the arrangement becomes a "cell" leaf of the certificate (slower; used to
    test that the enumeration is complete).  The seed only moves the sample
    points that guide the search; no figure depends on it beyond the last
    digits of the float-guided t.

    >>> from exact_inj.model import Layer
    >>> res = stability(Layer.from_rows([[1, 0], [0, 1], [-1, 0], [0, -1]]))
    >>> res.status, float(res.sigma_lower) <= 1.0 <= float(res.sigma_upper), res.check.valid
    ('complete', True, True)
    """
    if isinstance(layer, Network):
        if not layer.is_single_relu_layer:
            raise ValueError("stability takes a single ReLU layer")
        layer = layer.layers[0]
    if layer.activation != "relu":
        raise ValueError("stability takes a ReLU layer")
    t0 = time.perf_counter()
    # The search gets most of the time; certifying and checking its leaves
    # take the rest (they grow with the number of leaves).
    S = _Search(layer, seed, t0 + 0.85 * time_limit, max_nodes, progress, prune)
    n, m = S.n, S.m
    biased = any(b != 0 for b in layer.bias)
    notes: list[str] = []
    q = inv_sqrt_lower(2 * m)
    try:
        S.run()
    except _Limit:
        pass
    S.stats["lps"] = S.lp.lps
    net = Network((layer,))
    cert: dict[str, Any] = {"format": FORMAT, "version": VERSION, "network": network_to_json(net), "method": METHOD}

    if S.deficient is not None:
        pt = S.deficient
        A = tuple(i for i in range(m) if pt.pre[i] >= 0)
        signs = "".join("+" if i in A else "-" for i in range(m))
        witness = _collision(S, pt)
        cert.update(status="not_injective", t="0", sigma_lower="0", sigma_upper="0",
                    inv_sqrt_2m_lower=fraction_to_str(q), half_lower="0", paper_lower="0",
                    inverse_lipschitz_half=None, inverse_lipschitz_paper=None,
                    cell={"point": [fraction_to_str(v) for v in pt.x]},
                    witness=None if witness is None else {"x": [fraction_to_str(v) for v in witness[0]],
                                                          "y": [fraction_to_str(v) for v in witness[1]]})
        notes.append(f"not injective: at the point given, the active rows {list(A)} have rank < {n}, so "
                     "min sigma_min = 0 exactly, every Lipschitz lower constant is 0 and the inverse is unbounded")
        res = StabilityResult("not_injective", n, m, biased, Fraction(0), Fraction(0), Fraction(0), q, Fraction(0),
                              Fraction(0), None, None, pt.x, A, signs, witness, cert, notes=notes)
    else:
        t, _ = _certify_leaves(S)
        r = sqrt_lower(t)
        half = r / 2
        paper = r * q
        status = "partial" if S.stats["open"] else "complete"
        best = S.best_pt
        R = v = A = None
        pivots = None
        if best is not None:
            R, v, A = _upper(S, best)
            if t > 0:
                pivots = S.grams.ldl_pivots(list(A), t)
        inv_h = 1 / half if half > 0 else None
        inv_p = 1 / paper if paper > 0 else None
        cert.update(status=status, t=fraction_to_str(t), sigma_lower=fraction_to_str(r),
                    sigma_upper=_fmt(R), inv_sqrt_2m_lower=fraction_to_str(q), half_lower=fraction_to_str(half),
                    paper_lower=fraction_to_str(paper), inverse_lipschitz_half=_fmt(inv_h),
                    inverse_lipschitz_paper=_fmt(inv_p),
                    upper=None if best is None else {"point": [fraction_to_str(x) for x in best.x],
                                                      "vector": [fraction_to_str(x) for x in v]},
                    tree=S.serialise())
        signs = None if A is None else "".join("+" if i in A else "-" for i in range(m))
        if status == "partial":
            notes.append(f"limit reached with {S.stats['open']} open cases: each is closed only by its own forced "
                         "rows, so the lower bound is guaranteed but may be far from the minimum "
                         "(0 when an open case fixes fewer than n independent rows); raise --time-limit")
        if t == 0 and status == "complete":  # pragma: no cover - numerically degenerate rows
            notes.append("a leaf could not be certified with t > 0; the lower bound falls back to 0")
        res = StabilityResult(status, n, m, biased, t, r, R, q, half, paper, inv_h, inv_p,
                              None if best is None else best.x, A, signs, None, cert, notes=notes,
                              min_cell_pivots=pivots)
    if biased:
        notes.append("biased layer: the figures are over the biased arrangement's cells; the (1/2) constant is "
                     "proved with bias, the paper's C(W) is stated without bias (see constants.paper.note)")
    res.stats = dict(S.stats)
    res.check = check_stability(cert)
    res.seconds = time.perf_counter() - t0
    if not res.check.valid:  # pragma: no cover - a bug; never report an unchecked figure
        raise RuntimeError(f"internal error: the stability certificate failed its own check: {res.check.reason}")
    return res


# --- the checker ------------------------------------------------------------------


class _Bad(Exception):
    pass


def _num(obj: dict, key: str, nullable: bool = False) -> Fraction | None:
    if key not in obj:
        raise _Bad(f"missing {key!r}")
    v = obj[key]
    if v is None:
        if nullable:
            return None
        raise _Bad(f"{key!r} is null")
    try:
        return parse_exact(v, key)
    except InputError as e:
        raise _Bad(str(e)) from None


def _fast_exact(x: Any) -> Fraction:
    """parse_exact, with a fast path for integer strings (most multipliers)."""
    if isinstance(x, str) and x.isascii() and x.lstrip("-").isdigit():
        return Fraction(int(x))
    try:
        return parse_exact(x, "multiplier")
    except InputError as e:
        raise _Bad(str(e)) from None


def _vec(v: Any, n: int, where: str) -> tuple[Fraction, ...]:
    if not isinstance(v, list) or len(v) != n:
        raise _Bad(f"{where}: expected {n} numbers")
    try:
        return tuple(parse_exact(x, where) for x in v)
    except InputError as e:
        raise _Bad(str(e)) from None


def check_stability(cert: dict) -> StabilityCheck:
    """Verify a stability certificate with exact arithmetic only (no solver, no search).

    Re-derives: that the case-split tree covers every open cell (each split
    covers both strict signs of an undecided nonzero row, the tree is complete),
    every empty case's Motzkin multiplier, every cell point's strict signs, the
    positive definiteness of W_P^T W_P - t I at every other leaf by exact
    LDL^T, r^2 <= t, the constants and inverse bounds as stated, and the upper
    bound's Rayleigh quotient.  A not-injective certificate is a point whose
    active rows have rank < n (and, when given, a verified collision).
    """
    t0 = time.perf_counter()
    counts: dict[str, int] = {}
    try:
        reason = _check(cert, counts)
        ok = True
    except _Bad as e:
        reason, ok = str(e), False
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, ZeroDivisionError) as e:
        reason, ok = f"malformed certificate: {type(e).__name__}: {e}", False
    return StabilityCheck(ok, reason, time.perf_counter() - t0, counts)


def _check(cert: dict, counts: dict) -> str:
    from ...exact.linalg import rank_q

    if not isinstance(cert, dict) or cert.get("format") != FORMAT or cert.get("version") != VERSION:
        raise _Bad(f"not a {FORMAT} version {VERSION} object")
    try:
        net = network_from_json(cert["network"], where="network")
    except InputError as e:
        raise _Bad(str(e)) from None
    if not net.is_single_relu_layer:
        raise _Bad("the network is not a single ReLU layer")
    L = net.layers[0]
    n, m = L.in_dim, L.out_dim
    W, b = L.weight, L.bias
    status = cert.get("status")
    if status not in ("complete", "partial", "not_injective"):
        raise _Bad(f"unknown status {status!r}")
    t = _num(cert, "t")
    r = _num(cert, "sigma_lower")
    q = _num(cert, "inv_sqrt_2m_lower")
    half = _num(cert, "half_lower")
    paper = _num(cert, "paper_lower")
    inv_h = _num(cert, "inverse_lipschitz_half", nullable=True)
    inv_p = _num(cert, "inverse_lipschitz_paper", nullable=True)
    if t < 0 or r < 0 or q < 0:
        raise _Bad("t, sigma_lower and inv_sqrt_2m_lower must be >= 0")
    if r * r > t:
        raise _Bad("sigma_lower^2 > t")
    if q * q * (2 * m) > 1:
        raise _Bad("inv_sqrt_2m_lower > 1/sqrt(2m)")
    if half != r / 2 or paper != r * q:
        raise _Bad("the constants are not (1/2) sigma_lower and inv_sqrt_2m_lower * sigma_lower")
    if inv_h != (1 / half if half > 0 else None) or inv_p != (1 / paper if paper > 0 else None):
        raise _Bad("the inverse Lipschitz bounds are not 1 / the constants")

    if status == "not_injective":
        if t != 0 or _num(cert, "sigma_upper") != 0:
            raise _Bad("a not-injective certificate claims min sigma_min = 0 exactly")
        x = _vec(cert["cell"]["point"], n, "cell.point")
        pre = L.pre_activation(x)
        A = [i for i in range(m) if pre[i] >= 0]
        if rank_q([W[i] for i in A], n) >= n:
            raise _Bad("the active rows at cell.point span R^n")
        wit = cert.get("witness")
        if wit is not None:
            xw, yw = _vec(wit["x"], n, "witness.x"), _vec(wit["y"], n, "witness.y")
            if xw == yw or L.apply(xw) != L.apply(yw):
                raise _Bad("the witness pair does not collide")
        counts.update(cells=0, empty_cases=0, bound_leaves=0, open_cases=0)
        return f"the active rows at the given point have rank < {n}: min sigma_min = 0"

    # Upper bound: min sigma_min <= sigma_min(W_A(x)) <= |W_A v| / |v| <= R.
    R = _num(cert, "sigma_upper", nullable=True)
    up = cert.get("upper")
    if (R is None) != (up is None):
        raise _Bad("sigma_upper and upper must be given together")
    if up is not None:
        x = _vec(up["point"], n, "upper.point")
        v = _vec(up["vector"], n, "upper.vector")
        pre = L.pre_activation(x)
        A = [i for i in range(m) if pre[i] >= 0]
        vv = sum(c * c for c in v)
        if R < 0 or vv == 0:
            raise _Bad("upper: R < 0 or v = 0")
        if sum(sum(w * c for w, c in zip(W[i], v)) ** 2 for i in A) > R * R * vv:
            raise _Bad("upper: |W_A v|^2 > R^2 |v|^2")
        if R < r:
            raise _Bad("sigma_upper < sigma_lower")

    tree = cert.get("tree")
    if not isinstance(tree, list):
        raise _Bad("missing tree")
    nonzero = [i for i in range(m) if any(W[i])]
    nzmask = sum(1 << i for i in nonzero)
    grams: dict[int, bool] = {}
    G = Grams(W)
    Lb = math.lcm(*(v.denominator for v in b))
    Bint = [int(v * Lb) for v in b]
    c = dict(cells=0, empty_cases=0, bound_leaves=0, open_cases=0)
    stack = [(0, 0)]
    pos = 0
    while stack:
        P, N = stack.pop()
        if pos >= len(tree):
            raise _Bad("the tree ends early: a case is not covered")
        e = tree[pos]
        pos += 1
        if not isinstance(e, list) or not e:
            raise _Bad(f"tree[{pos - 1}] is malformed")
        kind = e[0]
        if kind == "split":
            rr = e[1]
            if isinstance(rr, bool) or not isinstance(rr, int) or not 0 <= rr < m:
                raise _Bad(f"tree[{pos - 1}]: bad row {rr!r}")
            if not nzmask >> rr & 1 or (P | N) >> rr & 1:
                raise _Bad(f"tree[{pos - 1}]: row {rr} is zero or already decided")
            stack.append((P, N | 1 << rr))
            stack.append((P | 1 << rr, N))
            continue
        if kind == "empty":
            lam = e[1]
            if not isinstance(lam, list) or not lam:
                raise _Bad(f"tree[{pos - 1}]: empty multiplier")
            # In integers: with lambda = Lam / D, u_i = L w_i and c_i = Lb b_i, the
            # conditions sum s lambda w = 0 and sum s lambda b >= 0 are unchanged.
            items = []
            seen = set()
            for item in lam:
                i, x = item
                if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < m or i in seen:
                    raise _Bad(f"tree[{pos - 1}]: bad multiplier row {i!r}")
                seen.add(i)
                if N >> i & 1:
                    sgn = 1
                elif P >> i & 1:
                    sgn = -1
                else:
                    raise _Bad(f"tree[{pos - 1}]: multiplier row {i} is not decided at this node")
                x = _fast_exact(x)
                if x < 0:
                    raise _Bad(f"tree[{pos - 1}]: negative multiplier")
                items.append((i, sgn, x))
            D = math.lcm(*(x.denominator for _, _, x in items))
            tot = [0] * n
            s_b = 0
            pos_any = False
            for i, sgn, x in items:
                k = sgn * (x.numerator * (D // x.denominator))
                pos_any |= k != 0
                Ui = G.U[i]
                for j in range(n):
                    tot[j] += k * Ui[j]
                s_b += k * Bint[i]
            if not pos_any or any(tot) or s_b < 0:
                raise _Bad(f"tree[{pos - 1}]: not a Motzkin multiplier of the node's strict system")
            c["empty_cases"] += 1
            continue
        if kind == "cell":
            if (P | N) != nzmask:
                raise _Bad(f"tree[{pos - 1}]: a cell leaf with undecided rows")
            x = _vec(e[1], n, f"tree[{pos - 1}]")
            pre = L.pre_activation(x)
            if any(pre[i] <= 0 for i in range(m) if P >> i & 1) or any(pre[i] >= 0 for i in range(m) if N >> i & 1):
                raise _Bad(f"tree[{pos - 1}]: the cell point does not have the node's strict signs")
            c["cells"] += 1
        elif kind in ("bound", "open"):
            c["bound_leaves" if kind == "bound" else "open_cases"] += 1
        else:
            raise _Bad(f"tree[{pos - 1}]: unknown entry {kind!r}")
        if t > 0:
            ok = grams.get(P)
            if ok is None:
                ok = grams[P] = G.positive_definite([i for i in range(m) if P >> i & 1], t)
            if not ok:
                raise _Bad(f"tree[{pos - 1}]: W_P^T W_P - t I is not positive definite (sigma_min^2 <= t)")
    if pos != len(tree):
        raise _Bad("entries after the end of the tree")
    if status == "complete" and c["open_cases"]:
        raise _Bad("a complete certificate has open cases")
    counts.update(c)
    return (f"{c['cells']} cells, {c['empty_cases']} empty cases, {c['bound_leaves']} subtrees closed by bound, "
            f"{c['open_cases']} open cases; every leaf has sigma_min^2 > t (exact LDL^T)")


# --- the command line --------------------------------------------------------------


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``stability`` on the CLI's subparsers object."""
    p = subparsers.add_parser(
        "stability",
        help="certified lower Lipschitz constants of x -> ReLU(Wx + b) (paper's Theorem 3 and the 1/2 constant)",
        description="Certify min over the cells of sigma_min(W_A(x)), the constants C(W) = (2m)^(-1/2) min "
        "sigma_min (the paper's Theorem 3, stated bias-free) and (1/2) min sigma_min (valid with bias), and the "
        "upper bound 1/C on the inverse Lipschitz constant. Every figure is a rational lower bound (upper for "
        "1/C) proved exactly: a case-split tree covering every cell, exact Motzkin multipliers and exact LDL^T "
        "factorisations (docs/stability.md). Exit 0 complete, 1 not injective (min sigma_min = 0), 3 limit "
        "reached (partial, still guaranteed), 2 bad input; with --check: 0 valid, 1 invalid.",
    )
    p.add_argument("file", metavar="FILE", help="layer file (.json or .npz); with --check, a stability certificate")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    p.add_argument("--certificate", metavar="OUT", help="write the self-contained stability certificate to OUT")
    p.add_argument("--check", action="store_true", help="FILE is a stability certificate: verify it exactly")
    p.add_argument("--time-limit", metavar="S", type=_positive_float, default=60.0,
                   help="seconds before stopping with a partial (still guaranteed) result (default: 60)")
    p.add_argument("--max-nodes", metavar="N", type=int, default=None, help="stop after N case-split nodes")
    p.add_argument("--seed", metavar="S", type=int, default=0, help="seed of the sample points that guide the search")
    p.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    return p


def _dec(x: Fraction | None, up: bool = False, digits: int = 10) -> str:
    """x in decimal with `digits` significant digits, rounded down (up=True: up), so
    that a displayed lower bound is still a lower bound.

    >>> _dec(Fraction(2, 3)), _dec(Fraction(2, 3), up=True)
    ('0.6666666666', '0.6666666667')
    """
    if x is None:
        return "unbounded"
    x = Fraction(x)
    if x == 0:
        return "0"
    e = math.floor(math.log10(abs(float(x)))) if math.isfinite(float(x)) and float(x) != 0 else (
        len(str(abs(x.numerator))) - len(str(x.denominator)))
    k = digits - 1 - e
    scaled = x * Fraction(10) ** k
    v = math.ceil(scaled) if up else math.floor(scaled)
    d = Decimal(v).scaleb(-k).normalize()
    return format(d, "f") if -7 <= e <= 15 else str(d)


def format_result(path: str, res: StabilityResult) -> str:
    lines = []
    kind = "bias-free" if not res.biased else "biased"
    if res.status == "not_injective":
        lines.append(f"{path}: NOT INJECTIVE, so min over cells of sigma_min(W_A) = 0 exactly "
                     f"({res.n} inputs, {res.m} rows, {kind})")
        lines.append(f"  cell: point x = ({', '.join(fraction_to_str(v) for v in res.cell_point)}), "
                     f"sign pattern {res.cell_signs}, active rows {list(res.cell_active)} of rank < {res.n}")
        if res.witness:
            lines.append(f"  collision: f(x) = f(y) for y = ({', '.join(fraction_to_str(v) for v in res.witness[1])})")
        lines.append("  constants: (1/2) min sigma_min = 0, C(W) = 0; the inverse Lipschitz constant is unbounded")
    else:
        head = "CERTIFIED" if res.status == "complete" else "PARTIAL (limit reached; bounds still guaranteed)"
        lines.append(f"{path}: {head}  ({res.n} inputs, {res.m} rows, {kind})")
        lines.append(f"  min over cells of sigma_min(W_A):  {_dec(res.sigma_lower)} <= min <= "
                     f"{_dec(res.sigma_upper, up=True) if res.sigma_upper is not None else '?'}")
        if res.cell_point is not None:
            lines.append(f"  minimising cell: sign pattern {res.cell_signs}, active rows {list(res.cell_active)}, "
                         f"point ({', '.join(_short(v) for v in res.cell_point)})")
        lines.append(f"  proof: sigma_min(W_S)^2 > t = {_dec(res.t)} on every cell (exact LDL^T of W_S^T W_S - t I, "
                     f"all pivots > 0); lower bound r = {fraction_to_str(res.sigma_lower)} with r^2 <= t")
        lines.append(f"  (1/2) min sigma_min         >= {_dec(res.half_lower)}   "
                     "(|f(x)-f(y)| >= C |x-y|, valid with bias)")
        lines.append(f"  C(W) = (2m)^(-1/2) min      >= {_dec(res.paper_lower)}   "
                     + ("(the paper's Theorem 3)" if not res.biased else
                        "(paper's formula; Theorem 3 is stated bias-free, valid here as it is <= the 1/2 constant)"))
        lines.append(f"  inverse Lipschitz constant  <= {_dec(res.inverse_lipschitz_half, up=True)} (from 1/2 constant), "
                     f"<= {_dec(res.inverse_lipschitz_paper, up=True)} (from C(W))")
    st = res.stats
    lines.append(f"  method: cell enumeration by exact case splitting, LP-guided, branch and bound; {st.get('nodes', 0)} "
                 f"nodes, {st.get('cells', 0)} cells, {st.get('empty', 0)} empty cases, {st.get('pruned', 0)} pruned, "
                 f"{st.get('lps', 0)} LPs; {res.seconds:.3f} s")
    if res.check is not None:
        lines.append(f"  certificate checked exactly: {'VALID' if res.check.valid else 'INVALID'} "
                     f"({res.check.seconds:.4f} s): {res.check.reason}")
    for note in res.notes:
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def _short(x: Fraction) -> str:
    s = fraction_to_str(x)
    return s if len(s) <= 24 else f"{float(x):.6g}"


def run(args) -> int:
    """Carry out ``exact-inj stability``; returns the exit code."""
    try:
        if args.check:
            cert = load_json_file(args.file)
            res = check_stability(cert)
            if args.json:
                print(json.dumps({"valid": res.valid, "reason": res.reason, "seconds": round(res.seconds, 6),
                                  "file": args.file, **res.counts}))
            else:
                print(f"{args.file}: {'VALID' if res.valid else 'INVALID'} stability certificate: {res.reason} "
                      f"({res.seconds:.4f} s)")
            return 0 if res.valid else 1
        net = load_network(args.file)
        if not net.is_single_relu_layer:
            raise InputError(args.file, "stability takes a single ReLU layer")
        if args.certificate:
            import os
            d = os.path.dirname(os.path.abspath(args.certificate))
            if not os.path.isdir(d):
                raise InputError(args.certificate, "cannot write here: the directory does not exist")
        progress = None if args.quiet else (lambda msg: print(f"exact-inj stability: {msg}", file=sys.stderr,
                                                             flush=True))
        res = stability(net, time_limit=args.time_limit, max_nodes=args.max_nodes, seed=args.seed,
                        progress=progress)
        if args.certificate:
            try:
                with open(args.certificate, "w") as f:
                    json.dump(res.certificate, f, separators=(",", ":"))
                    f.write("\n")
            except OSError as e:
                raise InputError(args.certificate, f"cannot write: {e.strerror}") from None
        if args.json:
            out = res.to_json()
            out["file"] = args.file
            if args.certificate:
                out["certificate_file"] = args.certificate
            print(json.dumps(out))
        else:
            print(format_result(args.file, res))
        return {"complete": 0, "not_injective": 1, "partial": 3}[res.status]
    except InputError as e:
        print(f"exact-inj: {e}", file=sys.stderr)
        return 2
