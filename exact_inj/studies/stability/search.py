"""The search behind certified stability constants of one ReLU layer (docs/theory.md, section 9).

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

The method (:data:`~exact_inj.studies.stability.result.METHOD`).  A depth-first case split over the nonzero rows:
a node fixes rows P to "w.x + b > 0" and N to "w.x + b < 0".

- A child that is empty (no x has those strict signs) is closed by an exact
  Motzkin multiplier (docs/theory.md, section 4): lambda >= 0, lambda != 0, with
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
:mod:`exact_inj.exact.lp` as the fallback.
:func:`exact_inj.certify.stability.check_stability` re-derives everything from
the certificate with rational arithmetic and flint's exact matrices only, and
imports no solver.

This module builds the case-split tree (:class:`Search`);
:mod:`exact_inj.studies.stability.bounds` turns it into the certified figures
and the certificate.

Limit.  The number of cells of m generic hyperplanes in R^n is
sum_{k <= n} C(m, k) (about m^n / n!), and the search visits each cell that
the bound does not prune.  When the time or node limit is reached, the open
nodes become leaves certified by their own sigma_min(W_P) (usually 0: too few
rows are fixed), the status is ``partial``, and the lower bound stays a
guaranteed one, however weak.
"""

from __future__ import annotations

import math
import time
from fractions import Fraction
from typing import Callable

import flint
import numpy as np

from ... import solver
from ...exact import linalg
from ...exact import lp as exact_lp
from ...exact.sigma import Grams
from ...model.network import Layer
from ...numbers import fraction_to_str
from .numbers import to_float

__all__ = ["ExactPoint", "Search", "StopSearch"]

# A float multiplier entry counts as support above this fraction of the largest.
_SUPPORT_TOL = 1e-9


class ExactPoint:
    """An exact point with its exact pre-activations."""

    __slots__ = ("x", "pre")

    def __init__(self, layer: Layer, x):
        self.x = tuple(Fraction(v) for v in x)
        self.pre = layer.pre_activation(self.x)


class _NodeLP:
    """HiGHS guidance for one node: maximise s subject to s_i (w_i.z + b_i t) + s <= 0
    for the node's signed rows, t >= 0, s <= 1 (docs/theory.md, section 11's homogenised LP;
    the optimum is 0 or 1 by scaling).  Rows 0..m-1 carry sign +1 ("< 0"), rows
    m..2m-1 sign -1 ("> 0"); a row is switched off by an infinite upper bound.
    Nothing it says is trusted: points are checked and multipliers repaired exactly."""

    def __init__(self, Wi: list[list[int]], bi: list[int], n: int):
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
            inf = solver.INF
            self.h.changeRowsBounds(len(diff), diff.astype(np.int32), np.full(len(diff), -inf),
                                    np.where(on[diff], 0.0, inf))
            self.on = on.copy()
        self.lps += 1
        self.h.run()
        if solver.highs_outcome(self.h) is not solver.Outcome.OPTIMAL:
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


class StopSearch(Exception):
    """Ends the search at once: a cell whose active rows have rank < n was found (min sigma_min = 0)."""


class Search:
    """The depth-first case split over the nonzero rows, with branch and bound (see the module docstring).

    :meth:`run` builds ``tree``; ``best_pt`` is the exact point of the best cell found and
    ``deficient`` a point of a rank-deficient cell, if one was found.
    """

    def __init__(self, layer: Layer, seed: int, deadline: float, max_nodes: int | None,
                 progress: Callable[[str], None] | None, prune: bool = True):
        self.layer = layer
        self.n, self.m = layer.in_dim, layer.out_dim
        # Integer rows (Wi_i, bi_i) = scale_i (w_i, b_i), scale_i > 0: the same sign
        # conditions, and exact arithmetic on integers.
        self.Wi, self.bi, self.scale = linalg.scaled_integer_rows(layer.weight, layer.bias)
        self.Wd = np.array([[to_float(v) for v in r] for r in layer.weight], dtype=float).reshape(self.m, self.n)
        self.bd = np.array([to_float(v) for v in layer.bias], dtype=float)
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
        self.best_pt: ExactPoint | None = None
        self.deficient: ExactPoint | None = None
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

    def active_mask(self, pt: ExactPoint) -> int:
        return sum(1 << i for i in range(self.m) if pt.pre[i] >= 0)

    def is_cell_point(self, pt: ExactPoint) -> bool:
        return all(pt.pre[i] != 0 for i in self.nonzero)

    def note_cell(self, pt: ExactPoint) -> None:
        """pt lies in an open cell: update the incumbent; detect rank deficiency exactly."""
        mask = self.active_mask(pt) & self.nzmask
        s2 = self.sig2(mask)
        scale = float(np.max(np.abs(self.Wd))) ** 2 if self.Wd.size else 1.0
        if s2 <= 1e-12 * max(scale, 1e-300) and self.exact_rank(mask) < self.n:
            self.deficient = pt
            raise StopSearch
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
        self.pool_exact: dict[int, ExactPoint] = {}
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

    def pool_point(self, j: int) -> ExactPoint:
        pt = self.pool_exact.get(j)
        if pt is None:
            D = self.pool_D
            pt = ExactPoint(self.layer, [Fraction(int(v)) / D for v in self.pool_Xi[j]])
            self.pool_exact[j] = pt
        return pt

    # exact feasibility of a node's strict system ---------------------------------

    def satisfies(self, pt: ExactPoint, P: int, N: int) -> bool:
        pre = pt.pre
        return all(pre[i] > 0 for i in self.rows_of(P)) and all(pre[i] < 0 for i in self.rows_of(N))

    def signed(self, P: int, N: int) -> list[tuple[int, int]]:
        """(row, s): s = +1 for "w.x + b < 0" (N), -1 for "w.x + b > 0" (P), as "s (w.x + b) < 0"."""
        return [(i, 1 if N >> i & 1 else -1) for i in self.nonzero if (P | N) >> i & 1]

    def point_from_homogeneous(self, sig: list[tuple[int, int]], X: list, T) -> ExactPoint | None:
        """The point X/T (T > 0) or, for T = 0, a point far out along X; verified by the caller."""
        Wi, bi = self.Wi, self.bi
        if T > 0:
            return ExactPoint(self.layer, [Fraction(v) / T for v in X])
        lam = Fraction(1)
        for i, s in sig:
            wd = s * sum(a * c for a, c in zip(Wi[i], X))
            if wd >= 0:
                return None
            if s * bi[i] > 0:
                lam = max(lam, Fraction(s * bi[i], -wd) + 1)
        return ExactPoint(self.layer, [lam * v for v in X])

    def round_point(self, z: np.ndarray, t: float, P: int, N: int) -> ExactPoint | None:
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

    def decide(self, P: int, N: int) -> tuple[ExactPoint | None, dict[int, Fraction] | None]:
        """A point strictly inside the node's region, or an exact multiplier proving it empty."""
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
        root_pt = self.pool_point(0) if len(self.pool_Xi) else ExactPoint(self.layer, [0] * self.n)
        if self.exact_rank(self.nzmask) < self.n:
            self.deficient = root_pt
            raise StopSearch
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

