"""Case-split proof search for one ReLU layer on R^n (docs/theory.md, sections 4 and 11).

A node fixes rows P ("orthogonal to v") and N ("strictly negative at z").
It closes when the P rows have rank n (a rank leaf) or when a *core* (rows
that cannot all be strictly negative, proved by an exact Motzkin multiplier)
lies inside N (a core leaf).  Otherwise one undecided row of a core is split.

HiGHS only chooses: every core is repaired into an exact multiplier before it
is stored, and a point the LP finds becomes a witness only after exact
evaluation.  What leaves this module is exact or nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from operator import mul
from typing import Callable

import flint
import numpy as np

from .. import solver
from ..exact import lp as exact_lp, linalg
from ..layer import formulation
from ..certify.schema import CORE_BASE, RANK_LEAF, Core, TreeProof, Witness
from ..model.domain import Domain
from ..model.network import Layer

# A multiplier entry counts as part of the LP's support above this fraction of
# the largest entry.  It only chooses which rows to try: the support is then
# checked exactly, so a wrong choice costs a retry, never a wrong answer.
SUPPORT_TOL = 1e-9

# A stored core is reused without an LP only when at most this many of its
# rows are undecided; otherwise a fresh (strengthened) core from the node's
# own LP usually splits into far fewer cases.
STORE_REST_MAX = 3

# The same for the core a node's parent split on (its N-child inherits it).
HINT_REST_MAX = 5

# A safety valve: past this many nodes per LP (plus 100 LPs of slack) the
# search stops reusing stored cores with more than one undecided row.
REUSE_VALVE = 300

# How many of the most recent cores a node scans for reuse.
STORE_WINDOW = 512

# Cores are strengthened at nodes whose P rows have rank <= n - this.
STRENGTHEN_RANK_GAP = 1

# The prime of the modular null-space bases in LayerData.extend (2^28 - 57).
_SPAN_P = 268435399

# The node LP's optimum is 0 or 1 in exact arithmetic (docs/theory.md, section 11).
# Anything between these two cut-offs is treated as "solver confused".
S_ZERO, S_ONE = 1e-6, 0.5


class LayerData:
    """Integer, rational and float views of one layer's rows, built once.

    On a domain { x : G x <= h } (docs/theory.md, section 1b), the constraint rows
    (g_j, -h_j) are appended after the m layer rows: they take part in the
    case split exactly like layer rows (orthogonal to v, or strictly slack
    at z), and G z <= h holds in every system.  ``M`` counts all rows.
    """

    def __init__(self, layer: Layer, domain: Domain | None = None):
        self.layer = layer
        self.domain = domain or Domain()
        self.n = layer.in_dim
        self.m = layer.out_dim
        G, h = self.domain.constraints(self.n)
        self.k = len(G)
        self.M = self.m + self.k
        # (Wi_i, bi_i) = scale_i * (row_i, offset_i) with integers scale_i > 0.
        self.Wi, self.bi, self.scale = linalg.scaled_integer_rows(
            list(layer.weight) + G, list(layer.bias) + [-v for v in h])
        self.Wf, self.bf = formulation.float_rows(self.Wi, self.bi)
        self.Wfl = flint.fmpz_mat(self.Wi)
        self.all = (1 << self.M) - 1
        self.domain_rows = self.all & ~((1 << self.m) - 1)
        self.zero_rows = sum(1 << i for i in range(self.m) if not any(self.Wi[i]))
        self.nbytes = (self.M + 7) // 8
        self.base = self.domain.base_point(self.n)
        # The rows modulo a prime below 2^28, for null spaces in numpy int64:
        # a product of two residues is below 2^56, so a dot product of up to
        # 127 of them cannot overflow.  Wider layers keep exact integer bases.
        self.modular = self.n < 128
        self.Wp = np.array([[x % _SPAN_P for x in row] for row in self.Wi], dtype=np.int64) if self.modular else None

    def mask_to_bool(self, mask: int) -> np.ndarray:
        raw = np.frombuffer(mask.to_bytes(self.nbytes, "little"), dtype=np.uint8)
        return np.unpackbits(raw, bitorder="little")[: self.M].astype(bool)

    def values(self, X: list[int], T: int, idx) -> list[int]:
        """Wi_i.X + bi_i T for i in idx: the pre-activation at X/T (T > 0), or
        the homogenised one (T = 0), times a positive number."""
        return [sum(map(mul, self.Wi[i], X)) + self.bi[i] * T for i in idx]

    def rows_of(self, mask: int) -> list[int]:
        return [i for i in range(self.M) if mask >> i & 1]

    def extend(self, span: int, basis: list[list[int]], r: int) -> tuple[int, int, list[list[int]]]:
        """span_info for P + {r}, from P's span mask and null-space basis.

        Row r is outside span(P), so one basis vector is used up: with
        c_j = w_r.V_j and a pivot c_p != 0, the vectors c_p V_j - c_j V_p
        (j != p) span the new null space (fraction-free, then divided by
        their gcd).  A row joins the span when it is orthogonal to all of
        them; floats rule out the rows that clearly are not, and the rest is
        decided in exact integers, so the mask is exact.

        For n < 128 the basis is kept modulo the prime _SPAN_P instead (an
        int64 array, n x k), and so are the rank and the span mask.  That is
        safe because of how each is used: the rank mod p never exceeds the
        rank over Q, so a rank leaf (rank mod p = n) has rank n exactly, and
        the checker recomputes it anyway; the span mask only chooses which
        rows a node puts in play, and every core and witness built from that
        choice is verified exactly.  An unlucky prime can only cost a retry.
        """
        if self.modular:
            # Here ``basis`` is S = Wp V mod p (M x k): every row's products
            # with a null-space basis V of P.  Eliminating with row r's
            # products updates S directly; V itself is never needed.
            k = basis.shape[1]
            if k == 1 and basis[r, 0]:
                # The last null vector is used up: rank n (the common case,
                # every rank leaf's parent).
                return self.n, self.all, basis[:, :0]
            if not k:
                return self.n, self.all, basis
            c = basis[r]
            piv = int(c.argmax())
            if not c[piv]:  # r is in the span modulo p: nothing is used up
                return self.n - k, span | (1 << r), basis
            f = (c * pow(int(c[piv]), _SPAN_P - 2, _SPAN_P)) % _SPAN_P
            new = (basis - (basis[:, piv:piv + 1] * f) % _SPAN_P) % _SPAN_P
            new[:, piv] = new[:, -1]
            new = new[:, :-1]
            zero = ~new.any(axis=1)
            mask = int.from_bytes(np.packbits(zero, bitorder="little").tobytes(), "little")
            return self.n - (k - 1), span | mask | (1 << r), new
        k = len(basis)
        if k <= 1:
            return self.n, self.all, []
        w = self.Wi[r]
        c = [sum(map(mul, w, v)) for v in basis]
        p = next(j for j in range(k) if c[j])
        vp, cp = basis[p], c[p]
        new = [
            linalg.primitive([cp * a - c[j] * b for a, b in zip(basis[j], vp)])
            for j in range(k) if j != p
        ]
        # Null-space integers can pass float range (1024 bits) on wide layers;
        # shifting each vector keeps its direction, which is all the filter needs.
        Vf = np.array([_to_float_dir(v) for v in new]).T
        Vf /= np.abs(Vf).max(axis=0)
        # |Wf_i . Vf_j| is at most n; a true zero evaluates to about n * 1e-16.
        maybe = ~(np.abs(self.Wf @ Vf) > 1e-9).any(axis=1)
        span2 = span | (1 << r)
        for i in np.nonzero(maybe)[0].tolist():
            if not span2 >> i & 1 and all(sum(map(mul, self.Wi[i], v)) == 0 for v in new):
                span2 |= 1 << i
        return self.n - len(new), span2, new

    def span_info(self, P: int) -> tuple[int, int, list[list[int]]]:
        """(rank of the P rows, mask of rows in their span, null-space basis)."""
        prow = [self.Wi[i] for i in self.rows_of(P)]
        basis = linalg.nullspace(prow, self.n)
        if not basis:
            return self.n, self.all, np.zeros((self.M, 0), dtype=np.int64) if self.modular else []
        V = flint.fmpz_mat([[basis[c][r] for c in range(len(basis))] for r in range(self.n)])
        prod = (self.Wfl * V).tolist()
        span = 0
        for i, r in enumerate(prod):
            if not any(r):
                span |= 1 << i
        if self.modular:
            # extend() keeps S = Wp V mod _SPAN_P (M x k, int64) instead of V,
            # and the span mask modulo p too (rows whose products all vanish),
            # so that the two always agree.
            # The null space is taken modulo p itself, so that n - k is the
            # rank mod p (never above the rank over Q).
            if prow:
                X, k = flint.nmod_mat([[x % _SPAN_P for x in r] for r in prow], _SPAN_P).nullspace()
                V = np.array([[int(X[r, c]) for c in range(k)] for r in range(self.n)], dtype=np.int64)
                V = V.reshape(self.n, k)
            else:
                V = np.eye(self.n, dtype=np.int64)
            S = (self.Wp @ V) % _SPAN_P
            zero = ~S.any(axis=1)
            return self.n - S.shape[1], int.from_bytes(np.packbits(zero, bitorder="little").tobytes(), "little"), S
        return self.n - len(basis), span, basis


def _to_float_dir(v: list[int]) -> list[float]:
    """A float vector with the direction of the integer vector v."""
    shift = max(max(abs(x) for x in v).bit_length() - 60, 0)
    return [float(x >> shift) if x >= 0 else -float((-x) >> shift) for x in v]


# --- exact repair -------------------------------------------------------------


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
        B = np.array([_to_float_dir(b) for b in basis], dtype=float).T  # |idx| x k
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


def exact_node(data: LayerData, in_play: int) -> Witness | Core | None:
    """Decide a node's strict system exactly (exact_lp), for when the float
    LP's answer could not be repaired.  Returns a witness, a core, or None
    (a point exists but the rows outside ``in_play`` span, so no witness)."""
    idx = data.rows_of(in_play)
    dom = list(range(data.m, data.M))
    kind, a, b = exact_lp.strict_or_motzkin(
        [data.Wi[i] for i in idx], [data.bi[i] for i in idx],
        [data.Wi[i] for i in dom], [data.bi[i] for i in dom])
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


# --- warm-started LPs ------------------------------------------------------------


class _WarmLP:
    """A HiGHS model whose rows (or columns) are switched on and off by bounds."""

    def __init__(self, model: dict, by_rows: bool, size: int):
        self.h = solver.new_highs()
        solver.pass_lp(
            self.h, model["cost"], model["col_lower"], model["col_upper"], model["A"],
            model["row_lower"], model["row_upper"], maximize=model["maximize"],
        )
        self.by_rows = by_rows
        self.size = size  # the first `size` rows (columns) are switchable
        self.on = np.ones(self.size, dtype=bool)
        self.lps = 0
        # Set by the search: one LP on a wide layer can take minutes, so
        # each solve gets only the time left (a timed-out solve is "fail").
        self.deadline: float | None = None

    def switch(self, on: np.ndarray) -> None:
        diff = np.nonzero(on != self.on)[0]
        if len(diff):
            lower = np.full(len(diff), -solver.INF if self.by_rows else 0.0)
            upper = np.where(on[diff], 0.0 if self.by_rows else solver.INF, solver.INF if self.by_rows else 0.0)
            if self.by_rows:
                self.h.changeRowsBounds(len(diff), diff.astype(np.int32), lower, upper)
            else:
                self.h.changeColsBounds(len(diff), diff.astype(np.int32), lower, upper)
            self.on = on.copy()

    def run(self) -> solver.Outcome:
        self.lps += 1
        if self.deadline is not None:
            self.h.setOptionValue("time_limit", max(self.deadline - time.perf_counter(), 0.001))
        self.h.run()
        return solver.highs_outcome(self.h)


class NodeLP(_WarmLP):
    def __init__(self, data: LayerData):
        super().__init__(formulation.node_lp(data.Wf, data.bf, data.k), by_rows=True, size=data.M)
        self.n = data.n

    def solve(self, on: np.ndarray):
        """('point', z, t) if the rows can all be strictly negative,
        ('multiplier', lam) if not, ('fail',) if the solver is unsure."""
        self.switch(on)
        out = self.run()
        if out is not solver.Outcome.OPTIMAL:
            return ("fail",)
        s = self.h.getInfo().objective_function_value
        sol = self.h.getSolution()
        if s >= S_ONE:
            x = np.array(sol.col_value)
            return ("point", x[: self.n], float(x[self.n]))
        if abs(s) <= S_ZERO:
            # HiGHS signs duals by objective sense (>= 0 here, as we maximise);
            # the magnitude is all we use, and the exact repair checks signs.
            duals = np.abs(np.array(sol.row_dual))
            lam, mu = duals[: self.size], duals[self.size:]
            lam[~on] = 0.0
            return ("multiplier", lam, mu)
        return ("fail",)


class CoreLP(_WarmLP):
    def __init__(self, data: LayerData):
        super().__init__(formulation.core_lp(data.Wf, data.bf, data.k), by_rows=False, size=data.M)

    def solve(self, on: np.ndarray, price: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(lambda, mu) minimising the priced rows' weight, or None."""
        self.switch(on)
        self.h.changeColsCost(len(price), np.arange(len(price), dtype=np.int32), price.astype(float))
        if self.run() is not solver.Outcome.OPTIMAL:
            return None
        x = np.maximum(np.array(self.h.getSolution().col_value), 0.0)
        return x[: self.size], x[self.size:]


# --- the core store ----------------------------------------------------------------


class CoreStore:
    """Exact cores, as bit masks, scanned with numpy."""

    def __init__(self, m: int):
        self.words = (m + 63) // 64
        self.cores: list[Core] = []
        self.masks: list[int] = []
        self.arr = np.zeros((16, self.words), dtype=np.uint64)
        self.index: dict[int, int] = {}

    def _words(self, mask: int) -> np.ndarray:
        return np.array([(mask >> (64 * k)) & 0xFFFFFFFFFFFFFFFF for k in range(self.words)], dtype=np.uint64)

    def add(self, core: Core) -> int:
        mask = sum(1 << i for i in core.support)
        if mask in self.index:
            return self.index[mask]
        k = len(self.cores)
        if k == len(self.arr):
            self.arr = np.vstack([self.arr, np.zeros_like(self.arr)])
        self.arr[k] = self._words(mask)
        self.cores.append(core)
        self.masks.append(mask)
        self.index[mask] = k
        return k

    def lookup(self, lam: np.ndarray, allowed: int) -> int | None:
        """The stored core whose support is exactly the float multiplier's
        support, if any: it was verified exactly when it was stored, so the
        repair need not run again (about 40% of supports recur)."""
        if lam.max() <= 0:
            return None
        mask = 0
        for i in np.nonzero(lam > SUPPORT_TOL * lam.max())[0].tolist():
            mask |= 1 << i
        if mask & ~allowed:
            return None
        return self.index.get(mask)

    def best(self, blocked: int, N: int) -> tuple[int, int] | None:
        """The applicable core (no row blocked) with the fewest rows outside N."""
        K = len(self.cores)
        if not K:
            return None
        # Only the most recent cores are scanned: the depth-first search finds
        # its reusable cores nearby, and a scan over every core (10^5 at
        # n = 10) would cost more per node than the LP it saves.
        lo = max(0, K - STORE_WINDOW)
        if self.words <= 2:
            # One or two words (M <= 128 rows): the same scan with fewer
            # numpy calls.  rest <= 128 fits a uint16 with room for the
            # "blocked" flag 256 above it.
            W0 = 0xFFFFFFFFFFFFFFFF
            A = self.arr[lo:K]
            C0 = A[:, 0]
            bad = C0 & np.uint64(blocked & W0)
            rest = np.bitwise_count(C0 & np.uint64(~N & W0)).astype(np.uint16)
            if self.words == 2:
                C1 = A[:, 1]
                bad |= C1 & np.uint64(blocked >> 64)
                rest += np.bitwise_count(C1 & np.uint64(~(N >> 64) & W0))
            rest[bad != 0] = 256
            k = int(rest.argmin())
            r = int(rest[k])
            return None if r >= 256 else (lo + k, r)
        C = self.arr[lo:K]
        ok = ~((C & self._words(blocked)) != 0).any(axis=1)
        if not ok.any():
            return None
        rest = np.bitwise_count(C & ~self._words(N)).sum(axis=1, dtype=np.int64)
        rest = np.where(ok, rest, np.iinfo(np.int64).max)
        k = int(rest.argmin())
        return lo + k, int(rest[k])


# --- the search ---------------------------------------------------------------------


@dataclass
class SearchStats:
    nodes: int = 0
    leaves: int = 0
    lps: int = 0
    core_lps: int = 0
    cores: int = 0
    repair_failures: int = 0
    exact_lps: int = 0
    open_cases: int = 0
    max_depth: int = 0
    min_active_rows: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class SearchResult:
    kind: str  # "proof", "witness", "limit"
    proof: TreeProof | None = None
    witness: Witness | None = None
    stats: SearchStats = field(default_factory=SearchStats)


def tree_search(
    data: LayerData,
    deadline: float,
    max_nodes: int | None = None,
    poll: Callable[[], Witness | None] | None = None,
    progress: Callable[[SearchStats, float], None] | None = None,
    root: tuple | None = None,
    store: "CoreStore | None" = None,
    donate: Callable[[list, "CoreStore"], None] | None = None,
) -> SearchResult:
    """Depth-first case-split search; returns a proof, a witness, or a limit.

    For the parallel search (psearch.py): ``root`` starts from that stack
    entry instead of the empty node, ``store`` keeps a worker's cores across
    subtrees, and ``donate(stack, store)``, called every 64 nodes, may take
    entries off the *bottom* of the stack.  A taken entry would have been
    explored last, so its subtree's codes belong after everything this call
    emits (entries taken later come before entries taken earlier).
    """
    n, M = data.n, data.M
    stats = SearchStats()
    lp = NodeLP(data)
    lp.deadline = deadline
    clp: CoreLP | None = None
    store = CoreStore(M) if store is None else store
    out: list[int] = []
    used: dict[int, int] = {}  # store index -> certificate index

    # On a domain, a stored core with two undecided rows is often much weaker
    # than the node's own LP core, whose constraint rows may be non-strict
    # (ReLU(I z) on the orthant, n = 30: 875 nodes with fresh cores, over 3M
    # reusing stored ones); so domains keep the old rule of at most one.
    store_rest_max = STORE_REST_MAX if not data.k else 1
    hint_rest_max = HINT_REST_MAX

    def leaf_core(k: int) -> None:
        j = used.setdefault(k, len(used))
        out.append(CORE_BASE - j)

    # stack entries: (P, N, rank P, span mask, null basis, hint core, depth)
    if root is None:
        rk0, span0, basis0 = data.span_info(0)
        stack = [(0, 0, rk0, span0 | data.zero_rows, basis0, -1, 0)]
    else:
        stack = [root]
    last_report = time.perf_counter()
    while stack:
        P, N, rk, span, basis, hint, depth = stack.pop()
        stats.nodes += 1
        if max_nodes is not None and stats.nodes > max_nodes:
            stats.open_cases = len(stack) + 1
            stats.lps, stats.cores = lp.lps, len(store.cores)
            stats.core_lps = clp.lps if clp else 0
            stats.notes.append(f"node limit {max_nodes} reached")
            return SearchResult("limit", stats=stats)
        # The deadline every node: on a wide layer one node (LPs, an exact
        # null space) can take a second, so 64 nodes would overrun by minutes.
        now = time.perf_counter()
        if now > deadline:
            stats.open_cases = len(stack) + 1
            stats.lps, stats.cores = lp.lps, len(store.cores)
            stats.core_lps = clp.lps if clp else 0
            return SearchResult("limit", stats=stats)
        if stats.nodes & 63 == 0:
            if hint_rest_max > 1 and stats.nodes > REUSE_VALVE * (lp.lps + (clp.lps if clp else 0) + 100):
                # Far more nodes per LP than reuse ever gives on generic layers
                # (about 30): stored cores are steering this tree badly, so
                # every node asks for its own core from here on.
                store_rest_max = hint_rest_max = 1
                stats.notes.append(f"core reuse narrowed after {stats.nodes} nodes")
            if donate is not None:
                donate(stack, store)
            if poll is not None:
                w = poll()
                if w is not None:
                    stats.lps, stats.cores = lp.lps, len(store.cores)
                    stats.notes.append("witness from the MILP side search")
                    return SearchResult("witness", witness=w, stats=stats)
            if progress is not None and now - last_report > 2.0:
                last_report = now
                stats.lps, stats.cores, stats.open_cases = lp.lps, len(store.cores), len(stack) + 1
                progress(stats, now)
        if depth > stats.max_depth:
            stats.max_depth = depth
        if rk == n:
            out.append(RANK_LEAF)
            stats.leaves += 1
            continue
        blocked = P | (span & ~N)
        choice = None
        if hint >= 0 and not store.masks[hint] & blocked:
            choice = (hint, (store.masks[hint] & ~N).bit_count())
        else:
            choice = store.best(blocked, N)
        if choice is not None and choice[1] == 0:
            leaf_core(choice[0])
            stats.leaves += 1
            continue
        if choice is None or choice[1] > (hint_rest_max if hint >= 0 and choice[0] == hint else store_rest_max):
            in_play = N | (data.all & ~blocked)
            on = data.mask_to_bool(in_play)
            k = None
            undecided = in_play & ~N
            if undecided and rk <= n - STRENGTHEN_RANK_GAP:
                # Core strengthening (docs/theory.md, section 11): ask directly for a
                # multiplier leaning on rows already fixed negative.  If none
                # exists the node LP below finds the point instead.
                if clp is None:
                    clp = CoreLP(data)
                    clp.deadline = deadline
                sol = clp.solve(on, data.mask_to_bool(undecided).astype(float))
                if sol is not None:
                    k = store.lookup(sol[0], in_play) if not data.k else None
                    if k is None:
                        core = exact_core(data, sol[0], in_play, sol[1])
                        if core is not None:
                            k = store.add(core)
            if k is None:
                res = lp.solve(on)
                if res[0] == "point":
                    x = strict_point(data, in_play, res[1], res[2])
                    if x is not None:
                        w = make_witness(data, x, in_play)
                        if w is not None:
                            stats.lps, stats.cores = lp.lps, len(store.cores)
                            stats.core_lps = clp.lps if clp else 0
                            return SearchResult("witness", witness=w, stats=stats)
                    stats.repair_failures += 1
                elif res[0] == "multiplier":
                    core = exact_core(data, res[1], in_play, res[2])
                    if core is not None:
                        k = store.add(core)
                    else:
                        stats.repair_failures += 1
                else:
                    stats.repair_failures += 1
            if k is None and time.perf_counter() > deadline:
                # The exact LP is pure Python and slow on wide layers: not
                # started once the time is up (the node stays open).
                stats.open_cases = len(stack) + 1
                stats.lps, stats.cores = lp.lps, len(store.cores)
                stats.core_lps = clp.lps if clp else 0
                return SearchResult("limit", stats=stats)
            if k is None:
                stats.exact_lps += 1
                ev = exact_node(data, in_play)
                if isinstance(ev, Witness):
                    stats.lps, stats.cores = lp.lps, len(store.cores)
                    stats.notes.append("witness from the exact LP (a thin cell)")
                    return SearchResult("witness", witness=ev, stats=stats)
                if isinstance(ev, Core):
                    k = store.add(ev)
            if k is None:
                # No exact evidence at this node: split any undecided row in
                # play, so the children are smaller problems.  With nothing
                # left to split, the case stays open and the answer unknown.
                rest_rows = in_play & ~N
                if not rest_rows:
                    stats.open_cases = len(stack) + 1
                    stats.notes.append("a fully decided case could not be closed exactly")
                    stats.lps, stats.cores = lp.lps, len(store.cores)
                    return SearchResult("limit", stats=stats)
                r = (rest_rows & -rest_rows).bit_length() - 1
                _split(data, stack, out, P, N, rk, span, basis, r, -1, depth)
                continue
            choice = (k, (store.masks[k] & ~N).bit_count())
            if choice[1] == 0:
                leaf_core(k)
                stats.leaves += 1
                continue
        k = choice[0]
        rest = store.masks[k] & ~N
        r = (rest & -rest).bit_length() - 1
        _split(data, stack, out, P, N, rk, span, basis, r, k, depth, stats)
    stats.lps, stats.cores = lp.lps, len(used)
    stats.core_lps = clp.lps if clp else 0
    cores = [None] * len(used)
    for k, j in used.items():
        cores[j] = store.cores[k]
    return SearchResult("proof", proof=TreeProof(tuple(cores), tuple(out)), stats=stats)


def _split(data, stack, out, P, N, rk, span, basis, r, hint, depth, stats=None) -> None:
    """Emit a split on row r: push the N-child, then the P-child on top.

    A P-child whose rows reach rank n is a rank leaf: with ``stats`` it is
    closed here (its code follows the split's in preorder) instead of being
    pushed and popped."""
    out.append(r)
    bit = 1 << r
    stack.append((P, N | bit, rk, span, basis, hint, depth + 1))
    P2 = P | bit
    if span >> r & 1:
        stack.append((P2, N, rk, span, basis, -1, depth + 1))
    else:
        rk2, span2, basis2 = data.extend(span, basis, r)
        if rk2 == data.n and stats is not None:
            out.append(RANK_LEAF)
            stats.nodes += 1
            stats.leaves += 1
            if depth + 1 > stats.max_depth:
                stats.max_depth = depth + 1
            return
        stack.append((P2, N, rk2, span2, basis2, -1, depth + 1))
