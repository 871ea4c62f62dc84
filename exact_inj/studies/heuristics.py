"""Heuristic injectivity checkers from the literature, to compare with the exact engine.

None of these decides anything.  Each one returns a :class:`Claim`: what the
heuristic *says* ("injective", "not_injective" or "no_counterexample"), on which
domain, how long it took and with what budget.  ``exact-inj compare``
(exact_inj/compare.py) then holds every claim against the engine's checked
verdict (theory notes, section 10).

Rules every checker here keeps:

- **Seeded.**  Each takes a ``numpy.random.Generator``; :func:`run_heuristic`
  derives it from one integer seed and the heuristic's name, so a claim does not
  depend on which other heuristics ran, or in which order.
- **A collision is evidence only once it is exact.**  A "not_injective" claim
  carries a :class:`~exact_inj.certify.schema.Witness` only after
  :func:`exact_inj.certify.check.check` has accepted it as a certificate about the very
  layer given (``supported=True``).  A float rank deficiency, a near-collision
  from gradient descent, or a collision of some other layer (the Lemma 1
  reduction) is recorded as an *unsupported* claim, and the engine may refute it.
- **"no_counterexample" is not a claim of injectivity** (theory section 10), and
  it is also what a rule reports when its condition does not apply ("no claim").
- **The domain is part of the claim.**  The ball heuristics speak about the
  closed ball of radius r around 0, never about R^n.

What each heuristic's authors actually claim is in docs/heuristics.md.
"""

from __future__ import annotations

import itertools
import time
import zlib
from dataclasses import dataclass
from fractions import Fraction
from math import comb
from typing import Callable

import numpy as np

from ..exact import linalg
from ..certify.schema import Certificate, Witness
from ..model.domain import Domain
from ..certify.check import check
from ..numbers import fraction_to_str
from ..model.network import Layer, Network
from ..layer.search import LayerData, make_witness
from ..certify.schema import Status

INJECTIVE = "injective"
NOT_INJECTIVE = "not_injective"
NO_COUNTEREXAMPLE = "no_counterexample"
CLAIMS = (INJECTIVE, NOT_INJECTIVE, NO_COUNTEREXAMPLE)

REALS = "R^n"

# Lei et al.'s rule of thumb, as an exact ratio: m >= 2.1 n  <=>  10 m >= 21 n.
LEI_RATIO = Fraction(21, 10)

LEI_NOTE = (
    "rule of thumb read from Lei, Jalal, Dhillon, Dimakis (2019): their result is that an iid Gaussian "
    "layer with m >= 2.1n is invertible ABOUT A GIVEN POINT with high probability (recovery of one input), "
    "not that it is globally injective; the paper's Appendix A.3 shows 2.1n does not give injectivity "
    "(theory notes, section 10)"
)


@dataclass(frozen=True)
class Claim:
    """What one heuristic says about one layer.

    ``claim`` is "injective", "not_injective" or "no_counterexample" (which is
    also "no claim": a rule whose condition does not apply).  ``domain`` is
    ``"R^n"`` or ``"ball(center=0, radius=r)"``; for a ball, ``ball_radius``
    holds r exactly.  ``witness`` is an exact collision inside the domain, present
    only when it passed the exact checker, and then ``supported`` is True;
    ``supported`` is False for every claim without exact evidence.  ``note`` says
    in one or two sentences what the heuristic did and how far it can be trusted;
    ``refutable`` says what evidence would refute the claim.
    """

    name: str
    claim: str
    seconds: float
    budget: str
    domain: str
    witness: Witness | None
    supported: bool
    note: str
    ball_radius: Fraction | None = None
    refutable: str = ""

    def __post_init__(self) -> None:
        if self.claim not in CLAIMS:
            raise ValueError(f"unknown claim {self.claim!r}")
        if self.supported and self.witness is None:
            raise ValueError("a supported claim needs its exact witness")

    def to_json(self) -> dict:
        out = {
            "claim": self.claim,
            "seconds": round(self.seconds, 6),
            "domain": self.domain,
            "supported": self.supported,
            "budget": self.budget,
            "note": self.note,
            "refutable": self.refutable,
        }
        if self.witness is not None:
            out["witness"] = {"x": [fraction_to_str(v) for v in self.witness.x],
                              "y": [fraction_to_str(v) for v in self.witness.y]}
        return out


def ball_domain(radius: Fraction) -> str:
    return f"ball(center=0, radius={fraction_to_str(Fraction(radius))})"


REFUTABLE_REALS_INJ = "by an engine witness (a checked collision in R^n)"
REFUTABLE_REALS_NOT = "by an engine proof of injectivity on R^n, unless the claim carries a checked collision"
REFUTABLE_BALL = (
    "'injective on the ball' by a checked engine collision with both points in the ball: the R^n witness if "
    "it lies there, for a bias-free layer that witness scaled into the ball, or a witness on the box "
    "[-r/k, r/k]^n inside the ball (k = ceil(sqrt n)); 'not injective on the ball' by a checked engine proof "
    "on R^n or on the box [-r, r]^n that contains the ball (theory section 10)"
)
REFUTABLE_NEVER = "never: 'no counterexample found' claims nothing"


# --------------------------------------------------------------------------- shared helpers


def _floats(layer: Layer) -> tuple[np.ndarray, np.ndarray]:
    """The layer as a float user would hold it: every entry rounded to a double."""
    W = np.array([[float(v) for v in row] for row in layer.weight], dtype=float)
    b = np.array([float(v) for v in layer.bias], dtype=float)
    return W, b


def verified_witness(layer: Layer, x, y) -> Witness | None:
    """The pair as a witness about ``layer`` if the exact checker accepts it, else None.

    >>> L = Layer.from_rows([[1], [-1]], [-1, -1])
    >>> verified_witness(L, [Fraction(0)], [Fraction(1, 2)]) is not None
    True
    >>> verified_witness(L, [Fraction(0)], [Fraction(2)]) is None
    True
    """
    x = tuple(Fraction(v) for v in x)
    y = tuple(Fraction(v) for v in y)
    if len(x) != layer.in_dim or len(y) != layer.in_dim:
        return None
    cert = Certificate(Network((layer,)), Domain(), Status.NOT_INJECTIVE, Witness(x, y))
    return Witness(x, y) if check(cert).valid else None


def _recheck(layer: Layer, w: Witness | None) -> Witness | None:
    """Re-verify a witness built elsewhere with the checker, keeping its extras."""
    if w is None:
        return None
    cert = Certificate(Network((layer,)), Domain(), Status.NOT_INJECTIVE, w)
    return w if check(cert).valid else None


def exact_witness_at(data: LayerData, point) -> Witness | None:
    """Try to turn a float point into an exact collision.

    The point is taken at its exact binary value (Fraction(float) is exact).
    The rows strictly negative there are found exactly; if the other rows have
    exact rank < n, moving along their null space gives a collision
    (theory section 1, "=>"), built and verified by search.make_witness.
    """
    x = [Fraction(float(v)) for v in point]
    X, D = linalg.common_denominator(x)
    vals = data.values(X, D, range(data.m))
    negative = sum(1 << i for i, v in enumerate(vals) if v < 0)
    others = [data.Wi[i] for i in range(data.m) if not negative >> i & 1]
    if linalg.rank(others, data.n) >= data.n:
        return None
    return _recheck(data.layer, make_witness(data, x, negative))


def _pattern_ranks(Wf: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Float rank (numpy's default tolerance) of the active rows, per sample.

    Samples with the same active pattern share one SVD.
    """
    packed = np.packbits(active, axis=1)
    _, first, inverse = np.unique(packed, axis=0, return_index=True, return_inverse=True)
    ranks = np.empty(len(first), dtype=int)
    for k, idx in enumerate(first):
        rows = Wf[active[idx]]
        ranks[k] = np.linalg.matrix_rank(rows) if len(rows) else 0
    return ranks[np.asarray(inverse).reshape(-1)]


def _rank_deficiency_claim(name: str, layer: Layer, points: np.ndarray, active: np.ndarray, budget: str,
                           what: str, exact_tries: int, t0: float, extra_note: str = "") -> Claim:
    """Common tail of the sampling heuristics: float rank per sample, then an
    exact witness from the first few rank-deficient samples."""
    Wf, _ = _floats(layer)
    n = layer.in_dim
    ranks = _pattern_ranks(Wf, active)
    bad = np.nonzero(ranks < n)[0]
    if len(bad) == 0:
        return Claim(name, NO_COUNTEREXAMPLE, time.perf_counter() - t0, budget, REALS, None, False,
                     f"every sampled point had {what} of float rank n = {n}; this is no evidence of "
                     f"injectivity{extra_note}", refutable=REFUTABLE_NEVER)
    data = LayerData(layer)
    for k in bad[:exact_tries]:
        w = exact_witness_at(data, points[k])
        if w is not None:
            return Claim(name, NOT_INJECTIVE, time.perf_counter() - t0, budget, REALS, w, True,
                         f"{len(bad)} of {len(points)} samples had {what} of float rank < {n}; one of them "
                         f"gave an exact collision, checked exactly{extra_note}",
                         refutable=REFUTABLE_REALS_NOT)
    k = int(bad[0])
    return Claim(name, NOT_INJECTIVE, time.perf_counter() - t0, budget, REALS, None, False,
                 f"{len(bad)} of {len(points)} samples had {what} of float rank {int(ranks[k])} < {n}, but at "
                 f"the exact values of the first {min(len(bad), exact_tries)} of them the rows not strictly "
                 f"negative have exact rank n: unsupported (float rank is not evidence){extra_note}",
                 refutable=REFUTABLE_REALS_NOT)


# --------------------------------------------------------------------------- the heuristics


def sampling(layer: Layer, rng: np.random.Generator, points: int = 2000,
             scales: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0, 1e4), exact_tries: int = 20) -> Claim:
    """Random sampling of the spanning criterion (theory section 1).

    Gaussian points z at several scales (far-out points see the layer's
    bias-free cone structure); at each, the rows with w.z + b >= 0 in floats and
    their float rank.  A rank-deficient sample is made exact if it can be.
    """
    t0 = time.perf_counter()
    Wf, bf = _floats(layer)
    n = layer.in_dim
    sc = np.resize(np.asarray(scales, dtype=float), points)
    Z = rng.standard_normal((points, n)) * sc[:, None]
    active = (Z @ Wf.T + bf) >= 0
    budget = f"{points} Gaussian points at scales {', '.join(f'{s:g}' for s in scales)}"
    return _rank_deficiency_claim("sampling", layer, Z, active, budget, "rows with w.z + b >= 0",
                                  exact_tries, t0)


def jacobian_rank(layer: Layer, rng: np.random.Generator, points: int = 500, exact_tries: int = 20) -> Claim:
    """Jacobian-rank sampling: local injectivity only.

    At standard Gaussian points (unit scale, "near the data"), the Jacobian of
    f is the rows with w.z + b > 0.  Full rank at a point means f is injective
    on a small neighbourhood of it, and nothing more: a full-rank Jacobian at
    every sample says nothing about two distant points.  A rank-deficient
    Jacobian on an open piece does give a collision inside that piece (theory
    section 8, "folds"), once made exact.
    """
    t0 = time.perf_counter()
    Wf, bf = _floats(layer)
    Z = rng.standard_normal((points, layer.in_dim))
    active = (Z @ Wf.T + bf) > 0
    budget = f"{points} standard Gaussian points"
    return _rank_deficiency_claim("jacobian_rank", layer, Z, active, budget, "a Jacobian (rows with w.z + b > 0)",
                                  exact_tries, t0, "; local injectivity only: full rank at the samples never "
                                  "implies global injectivity")


def gradient(layer: Layer, rng: np.random.Generator, starts: int = 24, steps: int = 400,
             scales: tuple[float, ...] = (1.0, 10.0, 100.0), tol: float = 1e-7) -> Claim:
    """A gradient collision search in numpy.

    Minimises |f(x) - f(y)|^2 / |x - y|^2 over (x, d = y - x) with Adam, from
    ``starts`` random starts (batched).  A ratio below ``tol`` times the largest
    row norm is a near-collision; it becomes evidence only if the midpoint (or
    either end) gives an exact collision (exact_witness_at).
    """
    t0 = time.perf_counter()
    Wf, bf = _floats(layer)
    n = layer.in_dim
    budget = f"{starts} starts x {steps} Adam steps at scales {', '.join(f'{s:g}' for s in scales)}"
    s = np.resize(np.asarray(scales, dtype=float), starts)[:, None]
    X = rng.standard_normal((starts, n)) * s
    Dd = rng.standard_normal((starts, n)) * s * 0.1
    params = [X, Dd]
    mom = [np.zeros_like(X), np.zeros_like(Dd)]
    vel = [np.zeros_like(X), np.zeros_like(Dd)]
    lr = 0.01 * s
    b1, b2, eps = 0.9, 0.999, 1e-30

    def loss_grad(X, Dd):
        a = X @ Wf.T + bf
        c = (X + Dd) @ Wf.T + bf
        r = np.maximum(a, 0) - np.maximum(c, 0)
        dd = np.maximum(np.sum(Dd * Dd, axis=1), 1e-300)
        num = np.sum(r * r, axis=1)
        g = num / dd
        ga = (r * (a > 0)) @ Wf
        gc = (r * (c > 0)) @ Wf
        gX = 2 * (ga - gc) / dd[:, None]
        gD = -2 * gc / dd[:, None] - 2 * (num / dd**2)[:, None] * Dd
        return g, gX, gD

    best_g = np.full(starts, np.inf)
    best_x = X.copy()
    best_d = Dd.copy()
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(1, steps + 1):
            g, gX, gD = loss_grad(*params)
            better = g < best_g
            best_g[better] = g[better]
            best_x[better] = params[0][better]
            best_d[better] = params[1][better]
            for p, grad, mo, ve in zip(params, (gX, gD), mom, vel):
                grad = np.nan_to_num(grad)
                mo *= b1
                mo += (1 - b1) * grad
                ve *= b2
                ve += (1 - b2) * grad * grad
                p -= lr * (mo / (1 - b1**k)) / (np.sqrt(ve / (1 - b2**k)) + eps)
    scale = float(np.max(np.linalg.norm(Wf, axis=1))) if len(Wf) else 1.0
    ratio = np.sqrt(best_g)
    order = np.argsort(ratio)
    near = [int(i) for i in order if ratio[i] < tol * max(scale, 1e-300)]
    if not near:
        return Claim("gradient", NO_COUNTEREXAMPLE, time.perf_counter() - t0, budget, REALS, None, False,
                     f"smallest |f(x)-f(y)|/|x-y| found: {float(ratio[order[0]]):.3g}; no near-collision, "
                     "which is no evidence of injectivity", refutable=REFUTABLE_NEVER)
    data = LayerData(layer)
    for i in near[:10]:
        x, d = best_x[i], best_d[i]
        for p in (x + d / 2, x, x + d):
            w = exact_witness_at(data, p)
            if w is not None:
                return Claim("gradient", NOT_INJECTIVE, time.perf_counter() - t0, budget, REALS, w, True,
                             f"near-collision with |f(x)-f(y)|/|x-y| = {float(ratio[i]):.3g}; made exact at a "
                             "point where the rows not strictly negative have exact rank < n, checked exactly",
                             refutable=REFUTABLE_REALS_NOT)
    return Claim("gradient", NOT_INJECTIVE, time.perf_counter() - t0, budget, REALS, None, False,
                 f"near-collision with |f(x)-f(y)|/|x-y| = {float(ratio[near[0]]):.3g} < {tol:g}, but no exact "
                 "collision could be made from it: unsupported (a small ratio is not a collision)",
                 refutable=REFUTABLE_REALS_NOT)


def expansivity_2n(layer: Layer, rng: np.random.Generator) -> Claim:
    """Fewer than 2n nonzero rows means not injective on R^n (the paper's
    Corollary 2, which holds with bias: theory section 7).

    Exact on R^n, so a control; it is wrong on a bounded domain (theory
    section 1b: W = [1], b = 0 is injective on [1, 2]).  Its collision is built
    from a random integer direction u orthogonal to no nonzero row: on one side
    fewer than n rows are positive, and far enough out the others are strictly
    negative.
    """
    t0 = time.perf_counter()
    n, m = layer.in_dim, layer.out_dim
    data = LayerData(layer)
    nonzero = [i for i in range(m) if any(data.Wi[i])]
    budget = "exact row count"
    if len(nonzero) >= 2 * n:
        return Claim("expansivity_2n", NO_COUNTEREXAMPLE, time.perf_counter() - t0, budget, REALS, None, False,
                     f"{len(nonzero)} nonzero rows >= 2n = {2 * n}: the rule says nothing",
                     refutable=REFUTABLE_NEVER)
    w = None
    for _ in range(50):
        u = [int(v) for v in rng.integers(-1000, 1001, size=n)]
        dots = data.values(u, 0, range(m))
        if any(dots[i] == 0 for i in nonzero):
            continue
        for sign in (1, -1):
            neg = [i for i in nonzero if sign * dots[i] < 0]
            mask = sum(1 << i for i in neg)
            if linalg.rank([data.Wi[i] for i in range(m) if not mask >> i & 1], n) >= n:
                continue
            t = Fraction(1)
            for i in neg:
                if data.bi[i] >= 0:
                    t = max(t, Fraction(data.bi[i], -sign * dots[i]) + 1)
            w = _recheck(layer, make_witness(data, [sign * t * c for c in u], mask))
            if w is not None:
                break
        if w is not None:
            break
    note = (f"only {len(nonzero)} nonzero rows < 2n = {2 * n}: not injective on R^n (exact rule; it does not "
            "carry over to bounded domains)")
    return Claim("expansivity_2n", NOT_INJECTIVE, time.perf_counter() - t0, budget, REALS, w, w is not None,
                 note + ("" if w is not None else "; no witness was built (unsupported)"),
                 refutable=REFUTABLE_REALS_NOT)


def expansivity_2_1n(layer: Layer, rng: np.random.Generator) -> Claim:
    """"m >= 2.1n means injective", the rule of thumb drawn from Lei et al. (2019).

    Their theorem is about recovering a given input, not global injectivity;
    see LEI_NOTE.  m counts all rows, as in their setting.
    """
    t0 = time.perf_counter()
    n, m = layer.in_dim, layer.out_dim
    budget = "row count"
    if Fraction(m) >= LEI_RATIO * n:
        return Claim("expansivity_2_1n", INJECTIVE, time.perf_counter() - t0, budget, REALS, None, False,
                     f"m = {m} >= 2.1n = {float(LEI_RATIO * n):g}; " + LEI_NOTE, refutable=REFUTABLE_REALS_INJ)
    return Claim("expansivity_2_1n", NO_COUNTEREXAMPLE, time.perf_counter() - t0, budget, REALS, None, False,
                 f"m = {m} < 2.1n = {float(LEI_RATIO * n):g}: the rule makes no claim; " + LEI_NOTE,
                 refutable=REFUTABLE_NEVER)


def lemma1_reduction(layer: Layer) -> Layer:
    """The paper's Lemma 1 reduction: rows with b_i < 0 zeroed, bias dropped.

    >>> lemma1_reduction(Layer.from_rows([[1], [-1]], [1, -1])).weight
    ((Fraction(1, 1),), (Fraction(0, 1),))
    """
    zero = Fraction(0)
    W = tuple(row if b >= 0 else tuple(zero for _ in row) for row, b in zip(layer.weight, layer.bias))
    return Layer(W, tuple(zero for _ in W), layer.activation)


def lemma1(layer: Layer, rng: np.random.Generator, time_limit: float = 20.0) -> Claim:
    """The paper's Lemma 1 as stated: decide ReLU(W|_{b>=0} x) exactly and claim
    its verdict for ReLU(Wx + b).

    The lemma is false (theory section 2): only "reduction injective => layer
    injective" holds, so its "injective" claims are right and its "not
    injective" claims can be wrong.  The reduction's collision is a collision of
    the reduced layer; it supports the claim only if the exact checker accepts
    the same pair for the original layer.
    """
    from ..api import verify

    t0 = time.perf_counter()
    reduced = lemma1_reduction(layer)
    zeroed = sum(1 for b in layer.bias if b < 0)
    budget = f"exact engine on the reduced layer, time limit {time_limit:g} s"
    v = verify(Network((reduced,)), time_limit=time_limit, milp="none")
    head = f"the reduction zeroes {zeroed} row(s) with b_i < 0 and drops the bias; the engine finds it {v.status.value}"
    if v.status is Status.INJECTIVE:
        return Claim("lemma1", INJECTIVE, time.perf_counter() - t0, budget, REALS, None, False,
                     head + "; this direction of the lemma is true (theory section 2), though no certificate for "
                     "the original layer is produced", refutable=REFUTABLE_REALS_INJ)
    if v.status is Status.NOT_INJECTIVE:
        rw = v.witness
        w = verified_witness(layer, rw.x, rw.y)
        if w is not None:
            return Claim("lemma1", NOT_INJECTIVE, time.perf_counter() - t0, budget, REALS, w, True,
                         head + "; its collision also collides for the original layer (checked exactly)",
                         refutable=REFUTABLE_REALS_NOT)
        return Claim("lemma1", NOT_INJECTIVE, time.perf_counter() - t0, budget, REALS, None, False,
                     head + "; its collision is one of the reduced layer and not of the original layer: "
                     "unsupported (the lemma is false, theory section 2)", refutable=REFUTABLE_REALS_NOT)
    return Claim("lemma1", NO_COUNTEREXAMPLE, time.perf_counter() - t0, budget, REALS, None, False,
                 head + " within the time limit: no claim", refutable=REFUTABLE_NEVER)


# --------------------------------------------------------------------------- the ball


def _unit_rows(layer: Layer) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """Float unit rows, their norms and the biases divided by the norms, for the
    nonzero rows (whose indices are returned)."""
    Wf, bf = _floats(layer)
    norms = np.linalg.norm(Wf, axis=1)
    idx = [i for i in range(len(Wf)) if norms[i] > 0]
    U = Wf[idx] / norms[idx, None]
    return U, norms[idx], bf[idx] / norms[idx], idx


def _omnidirectional(U: np.ndarray) -> bool:
    """0 in the interior of conv(U): full rank and some strictly positive
    lambda with sum lambda_i u_i = 0.  A float LP (HiGHS): max t subject to
    U^T lambda = 0, sum lambda = 1, lambda_i >= t."""
    from .. import solver

    m, n = U.shape
    if m == 0 or np.linalg.matrix_rank(U) < n:
        return False
    # Columns: lambda_1..lambda_m, t.
    A = np.zeros((n + 1 + m, m + 1))
    A[:n, :m] = U.T
    A[n, :m] = 1.0
    for i in range(m):
        A[n + 1 + i, i] = 1.0
        A[n + 1 + i, m] = -1.0
    lo = np.concatenate([np.zeros(n), [1.0], np.zeros(m)])
    hi = np.concatenate([np.zeros(n), [1.0], np.full(m, solver.INF)])
    h = solver.new_highs(10.0)
    solver.pass_lp(h, np.concatenate([np.zeros(m), [1.0]]), np.zeros(m + 1),
                    np.concatenate([np.full(m, solver.INF), [1.0]]), A, lo, hi, maximize=True)
    h.run()
    if solver.highs_outcome(h) is not solver.Outcome.OPTIMAL:
        return False
    return float(h.getSolution().col_value[m]) > 1e-9


def _facets(U: np.ndarray, tol: float = 1e-9, max_subsets: int = 200_000) -> list[tuple[int, ...]] | None:
    """Vertex sets of the facets of conv(U) (0 in its interior), by brute force:
    every n-subset spanning a hyperplane a.x = 1 with all points on the side
    a.x <= 1.  None when there are more than ``max_subsets`` subsets."""
    m, n = U.shape
    if comb(m, n) > max_subsets:
        return None
    found: dict[tuple[int, ...], None] = {}
    for S in itertools.combinations(range(m), n):
        M = U[list(S)]
        if abs(np.linalg.det(M)) < 1e-12:
            continue
        a = np.linalg.solve(M, np.ones(n))
        vals = U @ a
        if vals.max() <= 1 + tol:
            found.setdefault(tuple(int(i) for i in np.nonzero(vals >= 1 - tol)[0]), None)
    return list(found)


def _cone_projection_norm(V: np.ndarray, u: np.ndarray, tol: float = 1e-10) -> float:
    """|P_K(u)| for the cone K generated by the rows of V, by enumerating the
    faces (subsets of at most n independent generators) and checking the KKT
    conditions: p = V_S^T c with c >= 0 and V (u - p) <= 0.  Then
    max over x in K, |x| <= 1 of u.x equals |P_K(u)|."""
    k, n = V.shape
    if np.all(V @ u <= tol):
        return 0.0
    for size in range(1, min(k, n) + 1):
        for S in itertools.combinations(range(k), size):
            VS = V[list(S)]
            if np.linalg.matrix_rank(VS) < size:
                continue
            c, *_ = np.linalg.lstsq(VS.T, u, rcond=None)
            if np.any(c < -tol):
                continue
            p = VS.T @ c
            if np.all(V @ (u - p) <= tol * max(1.0, np.linalg.norm(u))):
                return float(np.linalg.norm(p))
    # No face passed within tolerance: the conservative answer is |u|
    # (the largest possible value), which only makes the bound stricter.
    return float(np.linalg.norm(u))


def ball_bias_bound(layer: Layer, rng: np.random.Generator, radius: Fraction | int | str = 1) -> Claim:
    """The bias bound for injectivity on the closed ball B_r (after Haider, Ehler,
    Balazs, ICML 2023, "polytope bias estimation"), in this project's sign
    convention f(x) = ReLU(Wx + b).

    Normalise the nonzero rows to unit vectors u_i (b_i becomes b_i/|w_i|).  If
    0 is inside conv(u) (the rows are "omnidirectional"), every z != 0 lies in
    the cone over some facet F of that polytope, and the vertices of F span R^n.
    If every vertex i of every facet F is active on the whole cone(F) part of
    the ball, i.e.

        b_i / |w_i| >= r * max(0, -min{ u_i.x : x in cone(F), |x| = 1 }),

    then at every z in the ball the active rows span, so f is injective on B_r
    (the midpoint criterion of theory section 1b holds on any convex set).  The
    minimum is 0 or more when every vertex of F has u_i.u_j >= 0; otherwise it is
    -|P_cone(F)(-u_i)| (a projection onto a finitely generated cone).

    Floats throughout (it is a heuristic); the bound is a sufficient condition,
    so failing it is no claim.
    """
    t0 = time.perf_counter()
    r = Fraction(radius)
    dom = ball_domain(r)
    budget = "facets of conv(unit rows) by brute force over n-subsets"
    U, norms, bhat, idx = _unit_rows(layer)

    def no(msg):
        return Claim("ball_bias_bound", NO_COUNTEREXAMPLE, time.perf_counter() - t0, budget, dom, None, False,
                     msg + ": the bound makes no claim", ball_radius=r, refutable=REFUTABLE_NEVER)

    n = layer.in_dim
    if not _omnidirectional(U):
        return no("the rows are not omnidirectional (0 is not inside the convex hull of the unit rows)")
    facets = _facets(U)
    if facets is None:
        return no(f"C({len(U)}, {n}) subsets exceed the facet budget")
    need = np.zeros(len(U))
    for F in facets:
        V = U[list(F)]
        for i in F:
            corr = V @ U[i]
            if corr.min() >= 0:
                worst = 0.0
            else:
                worst = _cone_projection_norm(V, -U[i])
            need[i] = max(need[i], float(r) * worst)
    short = [k for k in range(len(U)) if any(k in F for F in facets) and bhat[k] < need[k] - 1e-12]
    if short:
        k = short[0]
        return no(f"row {idx[k]} has b/|w| = {bhat[k]:.6g} below the bound {need[k]:.6g} "
                  f"({len(short)} row(s) below)")
    return Claim("ball_bias_bound", INJECTIVE, time.perf_counter() - t0, budget, dom, None, False,
                 f"omnidirectional rows and every facet vertex's bias meets the bound on {dom} "
                 f"({len(facets)} facets); a sufficient condition for injectivity ON THE BALL only, "
                 "says nothing about R^n", ball_radius=r, refutable=REFUTABLE_BALL)


def ball_sampled(layer: Layer, rng: np.random.Generator, radius: Fraction | int | str = 1,
                 directions: int = 2000) -> Claim:
    """A sampled estimate of the ball bias bound, in the spirit of Eckert, Haider,
    Ehler, Balazs (2024, Monte Carlo bias estimation).

    Sample directions x uniformly on the unit sphere; at each, take the n rows
    most correlated with x (unit rows) and record, per row, the smallest
    correlation it was seen with.  The estimated requirement is
    b_i/|w_i| >= r * max(0, -min correlation) for every row (rows never
    selected: b_i >= 0, as for the ball in their estimator).  If every row meets
    it, claim injective on the ball.  The estimate only looks at sampled
    directions and assumes the selected rows span, so thin bad regions are
    missed: it can be wrong.
    """
    t0 = time.perf_counter()
    r = Fraction(radius)
    dom = ball_domain(r)
    n = layer.in_dim
    budget = f"{directions} uniform directions on the sphere"
    U, norms, bhat, idx = _unit_rows(layer)
    if len(U) < n or np.linalg.matrix_rank(U) < n:
        # The estimator presumes a frame (rows spanning R^n), as its authors do.
        return Claim("ball_sampled", NO_COUNTEREXAMPLE, time.perf_counter() - t0, budget, dom, None, False,
                     "the rows do not span R^n (float rank): not a frame, no claim", ball_radius=r,
                     refutable=REFUTABLE_NEVER)
    X = rng.standard_normal((directions, n))
    X /= np.linalg.norm(X, axis=1)[:, None]
    C = X @ U.T
    top = np.argsort(-C, axis=1)[:, :n]
    alpha = np.full(len(U), np.inf)
    for s in range(directions):
        for i in top[s]:
            alpha[i] = min(alpha[i], C[s, i])
    need = float(r) * np.maximum(0.0, -np.where(np.isfinite(alpha), alpha, 0.0))
    short = [k for k in range(len(U)) if bhat[k] < need[k] - 1e-12]
    if short:
        k = short[0]
        return Claim("ball_sampled", NO_COUNTEREXAMPLE, time.perf_counter() - t0, budget, dom, None, False,
                     f"row {idx[k]} has b/|w| = {bhat[k]:.6g} below the sampled bound {need[k]:.6g}: no claim",
                     ball_radius=r, refutable=REFUTABLE_NEVER)
    return Claim("ball_sampled", INJECTIVE, time.perf_counter() - t0, budget, dom, None, False,
                 f"every row meets the bias bound estimated from {directions} sampled directions: claims injective "
                 f"ON {dom} only (an estimate: directions between the samples are not checked)",
                 ball_radius=r, refutable=REFUTABLE_BALL)


# --------------------------------------------------------------------------- registry

Heuristic = Callable[..., Claim]

HEURISTICS: dict[str, Heuristic] = {
    "sampling": sampling,
    "gradient": gradient,
    "jacobian_rank": jacobian_rank,
    "expansivity_2n": expansivity_2n,
    "expansivity_2_1n": expansivity_2_1n,
    "lemma1": lemma1,
    "ball_bias_bound": ball_bias_bound,
    "ball_sampled": ball_sampled,
}

BALL_HEURISTICS = ("ball_bias_bound", "ball_sampled")


def rng_for(name: str, seed: int) -> np.random.Generator:
    """The generator a heuristic gets: from the seed and its own name only.

    >>> float(rng_for("sampling", 7).random()) == float(rng_for("sampling", 7).random())
    True
    """
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def run_heuristic(name: str, layer: Layer, seed: int = 0, **budget) -> Claim:
    """Run one registered heuristic with its own seeded generator.

    >>> c = run_heuristic("expansivity_2_1n", Layer.from_rows([[1], [-1], [2]]))
    >>> c.claim, c.domain
    ('injective', 'R^n')
    """
    if name not in HEURISTICS:
        raise KeyError(f"unknown heuristic {name!r} (known: {', '.join(HEURISTICS)})")
    return HEURISTICS[name](layer, rng_for(name, seed), **budget)
