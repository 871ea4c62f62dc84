"""Heuristic injectivity checkers from the literature, to compare with the exact engine.

None of these decides anything.  Each one returns a :class:`Claim`: what the
heuristic *says* ("injective", "not_injective" or "no_counterexample"), on which
domain, how long it took and with what budget.  ``exact-inj compare``
(exact_inj/studies/compare.py) then holds every claim against the engine's
checked verdict (docs/theory.md, section 10).

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
- **"no_counterexample" is not a claim of injectivity** (docs/theory.md,
  section 10), and it is also what a rule reports when its condition does not apply ("no claim").
- **The domain is part of the claim.**  The ball heuristics speak about the
  closed ball of radius r around 0, never about R^n.

The heuristics on R^n are here, with the registry (:data:`HEURISTICS`); the
ball heuristics are in :mod:`exact_inj.studies.ball` and the claim vocabulary
in :mod:`exact_inj.studies.claim`, both re-exported here.  What each
heuristic's authors actually claim is in docs/heuristics.md.
"""

from __future__ import annotations

import time
import zlib
from fractions import Fraction
from typing import Callable

import numpy as np

from ..api import verify
from ..certify.check import check
from ..certify.schema import Certificate, Status, Witness
from ..exact import linalg
from ..layer.data import LayerData
from ..layer.repair import make_witness
from ..model.domain import Domain
from ..model.network import Layer, Network
from .ball import ball_bias_bound, ball_sampled
from .claim import (
    CLAIMS, INJECTIVE, NO_COUNTEREXAMPLE, NOT_INJECTIVE, REALS, REFUTABLE_BALL, REFUTABLE_NEVER, REFUTABLE_REALS_INJ,
    REFUTABLE_REALS_NOT, Claim, as_floats, ball_domain,
)

# The claim vocabulary (from .claim) is re-exported: callers know this module.
__all__ = [
    "BALL_HEURISTICS", "CLAIMS", "HEURISTICS", "INJECTIVE", "LEI_NOTE", "LEI_RATIO", "NOT_INJECTIVE",
    "NO_COUNTEREXAMPLE", "REALS", "REFUTABLE_BALL", "REFUTABLE_NEVER", "REFUTABLE_REALS_INJ", "REFUTABLE_REALS_NOT",
    "Claim", "Heuristic", "ball_bias_bound", "ball_domain", "ball_sampled", "exact_witness_at", "expansivity_2_1n",
    "expansivity_2n", "gradient", "jacobian_rank", "lemma1", "lemma1_reduction", "rng_for", "run_heuristic",
    "sampling", "verified_witness",
]

# Lei et al.'s rule of thumb, as an exact ratio: m >= 2.1 n  <=>  10 m >= 21 n.
LEI_RATIO = Fraction(21, 10)

LEI_NOTE = (
    "rule of thumb read from Lei, Jalal, Dhillon, Dimakis (2019): their result is that an iid Gaussian "
    "layer with m >= 2.1n is invertible ABOUT A GIVEN POINT with high probability (recovery of one input), "
    "not that it is globally injective; the paper's Appendix A.3 shows 2.1n does not give injectivity "
    "(docs/theory.md, section 10)"
)


# --------------------------------------------------------------------------- shared helpers


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
    (docs/theory.md, section 1, "=>"), built and verified by layer.repair.make_witness.
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
    Wf, _ = as_floats(layer)
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
    """Random sampling of the spanning criterion (docs/theory.md, section 1).

    Gaussian points z at several scales (far-out points see the layer's
    bias-free cone structure); at each, the rows with w.z + b >= 0 in floats and
    their float rank.  A rank-deficient sample is made exact if it can be.
    """
    t0 = time.perf_counter()
    Wf, bf = as_floats(layer)
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
    Jacobian on an open piece does give a collision inside that piece
    (docs/theory.md, section 8, "folds"), once made exact.
    """
    t0 = time.perf_counter()
    Wf, bf = as_floats(layer)
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
    Wf, bf = as_floats(layer)
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
    Corollary 2, which holds with bias: docs/theory.md, section 7).

    Exact on R^n, so a control; it is wrong on a bounded domain (docs/theory.md,
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

    The lemma is false (docs/theory.md, section 2): only "reduction injective => layer
    injective" holds, so its "injective" claims are right and its "not
    injective" claims can be wrong.  The reduction's collision is a collision of
    the reduced layer; it supports the claim only if the exact checker accepts
    the same pair for the original layer.
    """
    t0 = time.perf_counter()
    reduced = lemma1_reduction(layer)
    zeroed = sum(1 for b in layer.bias if b < 0)
    budget = f"exact engine on the reduced layer, time limit {time_limit:g} s"
    v = verify(Network((reduced,)), time_limit=time_limit, milp="none")
    head = f"the reduction zeroes {zeroed} row(s) with b_i < 0 and drops the bias; the engine finds it {v.status.value}"
    if v.status is Status.INJECTIVE:
        return Claim("lemma1", INJECTIVE, time.perf_counter() - t0, budget, REALS, None, False,
                     head + "; this direction of the lemma is true (docs/theory.md, section 2), though no certificate for "
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
                     "unsupported (the lemma is false, docs/theory.md, section 2)", refutable=REFUTABLE_REALS_NOT)
    return Claim("lemma1", NO_COUNTEREXAMPLE, time.perf_counter() - t0, budget, REALS, None, False,
                 head + " within the time limit: no claim", refutable=REFUTABLE_NEVER)


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
