"""Small witnesses: among the collisions a network has, find one whose numbers
a person can read (issue #14; docs/cli.md, "Witnesses").

A route's witness is correct but often unreadable: the null vector of 256
rows of a float-trained layer has 2,500-digit entries.  Any collision will
do, so this module looks for one with small heights, in this order:

1. **a dead layer**: a point x with small coordinates at which every ReLU of
   some layer is strictly negative.  Every layer after it then sees zeros,
   and so does it at y = x + eps e_j for a small enough step: the network is
   constant near x.  The first layer's dead region is an LP (minimum L1 norm,
   so the point is sparse and rounds to short decimals); deeper layers are
   tried at sampled points.
2. **the same piece, a short step**: round the given witness's points to
   few decimals; where every pre-activation is nonzero the network is affine
   with Jacobian J near the rounded point, and a short integer vector of the
   null space of J (LLL-reduced, primitive) times the simplest step that
   keeps the pattern is a collision.

Untrusted: floats and LLL only propose; each candidate is evaluated exactly
here (equal outputs, distinct points, inside the domain), and the caller
sends the winner through the exact checker (:meth:`exact_inj.run.Run.certified`)
like any other evidence.  A candidate is kept only if it is smaller than the
witness it replaces.
"""

from __future__ import annotations

import time
from fractions import Fraction
from typing import Sequence

import flint
import numpy as np

from .. import solver
from ..exact import linalg
from ..layer import formulation
from ..model import Domain, Layer, Network
from ..model.network import activate
from . import witness

__all__ = ["BUDGET", "MAX_LLL_ENTRIES", "height", "shorter_pair"]

# LLL runs on the null-space basis only when basis vectors x coordinates is
# at most this; beyond, the primitive basis vector is taken as it is.
MAX_LLL_ENTRIES = 20_000

# Seconds the shortening may spend at most (and never past the run's
# deadline): a readable witness is a nicety, the route's own one stands.
BUDGET = 20.0

# Decimal places tried when rounding a point (then the exact point itself).
_PLACES = (0, 1, 2, 3, 4, 6, 8, 12)

# Random points tried for a dead deeper layer.
_SAMPLES = 400


def height(v: Sequence[Fraction]) -> int:
    """The most decimal digits in any numerator or denominator of v.

    >>> height([Fraction(1, 3), Fraction(-12345, 7)])
    5
    """
    return max((max(_digits(a.numerator), _digits(a.denominator)) for a in v), default=0)


def _digits(k: int) -> int:
    # str() refuses ints above 4300 digits; the bit length is enough here.
    k = abs(k)
    return len(str(k)) if k.bit_length() < 10_000 else int(k.bit_length() * 0.30103) + 1


def shorter_pair(net: Network, domain: Domain, x: Sequence[Fraction], y: Sequence[Fraction],
                 deadline: float) -> tuple[tuple[Fraction, ...], tuple[Fraction, ...]] | None:
    """A collision (x', y') of ``net`` in ``domain`` smaller than (x, y), or None.

    Checked here in exact arithmetic (the caller still certifies it).

    >>> from exact_inj.model import Layer
    >>> net = Network((Layer.from_rows([[1, 1]], [-1]),))
    >>> x = (Fraction(-10**30, 7), Fraction(3, 10**29))
    >>> y = (x[0] + Fraction(1, 10**40), x[1])
    >>> shorter_pair(net, Domain(), x, y, time.perf_counter() + 10)
    ((Fraction(0, 1), Fraction(0, 1)), (Fraction(1, 2), Fraction(0, 1)))
    """
    if net.input_dim == 0:
        return None
    deadline = min(deadline, time.perf_counter() + BUDGET)
    best = max(height(x), height(y))
    if best <= 2:
        return None
    dense = all(type(L) is Layer for L in net.layers)
    # With a convolution the dense proposals would build its operator (an
    # image layer's has millions of entries); these read exact evaluations
    # and sparse rows only.
    makers = (_dead_first_layer, _dead_sampled, _same_piece) if dense else (_dead_structured, _narrow_step)
    for make in makers:
        if time.perf_counter() > deadline:
            return None
        try:
            pair = make(net, domain, tuple(x), tuple(y), deadline)
        except (ArithmeticError, ValueError, np.linalg.LinAlgError):
            pair = None  # a proposal failed; the given witness stands
        if pair is not None and max(height(pair[0]), height(pair[1])) < best and _collides(net, domain, *pair):
            return pair
    return None


def _collides(net: Network, domain: Domain, x, y) -> bool:
    return x != y and domain.contains(x) and domain.contains(y) and net.evaluate(x) == net.evaluate(y)


# ---------------------------------------------------------------- 1. dead layers


def _dead_first_layer(net: Network, domain: Domain, x, y, deadline: float):
    """Every ReLU of the first layer strictly negative, at a sparse point."""
    layer = net.layers[0]
    if layer.activation != "relu":
        return None
    n = layer.in_dim
    Wi, bi, _ = linalg.scaled_integer_rows(layer.weight, layer.bias)
    Wf, bf = formulation.float_rows(Wi, bi)
    # min sum s  s.t.  Wf x <= -1 - bf,  -s <= x <= s  (columns x then s).
    m = len(Wi)
    A = np.zeros((m + 2 * n, 2 * n))
    A[:m, :n] = Wf
    eye = np.eye(n)
    A[m:m + n, :n], A[m:m + n, n:] = eye, -eye
    A[m + n:, :n], A[m + n:, n:] = -eye, -eye
    lo_x, hi_x = _bounds(domain, n)
    h = solver.new_highs(max(min(deadline - time.perf_counter(), 5.0), 0.01))
    solver.pass_lp(h, np.concatenate([np.zeros(n), np.ones(n)]), np.concatenate([lo_x, np.zeros(n)]),
                   np.concatenate([hi_x, np.full(n, solver.INF)]), A,
                   np.full(m + 2 * n, -solver.INF), np.concatenate([-1.0 - bf, np.zeros(2 * n)]))
    h.run()
    if solver.highs_outcome(h) is not solver.Outcome.OPTIMAL:
        return None
    z = np.array(h.getSolution().col_value[:n])
    for p in _roundings(z, domain):
        if time.perf_counter() > deadline:
            return None
        if all(v < 0 for v in layer.pre_activation(p)):
            return _nudge(net, domain, p, lambda q: all(v < 0 for v in layer.pre_activation(q)))
    return None


def _dead_sampled(net: Network, domain: Domain, x, y, deadline: float):
    """A deeper layer all negative at a sampled point (floats find, exact decides)."""
    relus = [k for k, L in enumerate(net.layers) if L.activation == "relu" and k > 0]
    if not relus:
        return None
    n = net.input_dim
    rng = np.random.default_rng(0)  # seeded: the same network gives the same witness
    Ws = [np.array([[float(v) for v in r] for r in L.weight]) for L in net.layers]
    bs = [np.array([float(v) for v in L.bias]) for L in net.layers]
    lo, hi = _bounds(domain, n)
    for s in range(_SAMPLES):
        if s % 32 == 0 and time.perf_counter() > deadline:
            return None
        radius = 10.0 ** (s % 4)
        p = rng.standard_normal(n) * radius
        p = np.clip(p, lo, hi)
        if domain.kind == "box":
            p = lo + (hi - lo) * rng.random(n)
        h = p
        for k, L in enumerate(net.layers):
            with np.errstate(over="ignore", invalid="ignore"):  # a float guide only: inf/nan just fail the test below
                pre = Ws[k] @ h + bs[k]
            if k in relus and (pre < -1e-6 * max(1.0, np.abs(pre).max())).all():
                for q in _roundings(p, domain):
                    if _layer_negative(net, k, q):
                        return _nudge(net, domain, q, lambda r, k=k: _layer_negative(net, k, r))
                break
            h = np.maximum(pre, 0) if L.activation == "relu" else pre
    return None


def _dead_structured(net: Network, domain: Domain, x, y, deadline: float):
    """A layer all negative at a point with tiny coordinates: 0 and the
    constant images +-1, +-10, +-100, +-1000 (clipped into the domain),
    checked exactly; cheap on any size, since it only evaluates the network.
    Images whose kernels lean one way (a blur, a positive filter with a
    negative bias) are dead far enough along the constant image."""
    n = net.input_dim
    seen = set()
    for c in (0, -1, 1, -10, 10, -100, 100, -1000, 1000):
        p = _clip(tuple(Fraction(c) for _ in range(n)), domain)
        if p in seen or not domain.contains(p):
            continue
        seen.add(p)
        if time.perf_counter() > deadline:
            return None
        h = p
        for k, L in enumerate(net.layers):
            pre = L.pre_activation(h)
            if L.activation == "relu" and all(v < 0 for v in pre):
                return _nudge(net, domain, p, lambda r, k=k: _layer_negative(net, k, r))
            h = pre if L.activation == "linear" else activate(pre, L.activation, L.slope)
    return None


def _narrow_step(net: Network, domain: Domain, x, y, deadline: float):
    """Fewer outputs than inputs: the narrow route's step (a null vector of
    the Jacobian on p + 1 columns, from sparse rows, a power-of-1/2 step) at
    the route's points rounded to few decimals."""
    if net.output_dim >= net.input_dim:
        return None
    rows_of = [[layer.sparse_row(i) for i in range(layer.out_dim)] for layer in net.layers]
    mid = [(a + b) / 2 for a, b in zip(x, y)]
    for src in (mid, x, y):
        zf = np.array([_approx(a) for a in src])
        for p in _roundings(zf, domain):
            if time.perf_counter() > deadline:
                return None
            pair = witness.narrow_pair_at(net, domain, p, rows_of, ties=True)
            if pair is not None:
                return pair
    return None


def _layer_negative(net: Network, k: int, q) -> bool:
    h = tuple(q)
    for L in net.layers[:k]:
        h = L.apply(h)
    return all(v < 0 for v in net.layers[k].pre_activation(h))


def _nudge(net: Network, domain: Domain, p, still):
    """p and p + eps e_j with the simplest eps = 1/2^k that keeps ``still``."""
    lo, hi = _bounds(domain, len(p))
    for j in range(len(p)):
        if lo[j] == hi[j]:
            continue
        sign = 1 if hi[j] > float(p[j]) else -1
        eps = Fraction(1, 2)
        for _ in range(60):
            q = list(p)
            q[j] += sign * eps
            q = tuple(q)
            if domain.contains(q) and still(q):
                return tuple(p), q
            eps /= 2
        return None
    return None


# ------------------------------------------------------ 2. same piece, short step


def _same_piece(net: Network, domain: Domain, x, y, deadline: float):
    mid = [(a + b) / 2 for a, b in zip(x, y)]
    for src in (mid, x, y):
        zf = np.array([_approx(a) for a in src])
        for p in _roundings(zf, domain, exact=tuple(src)):
            if time.perf_counter() > deadline:
                return None
            pair = _step_in_piece(net, domain, p)
            if pair is not None:
                return pair
    return None


def _step_in_piece(net: Network, domain: Domain, p):
    """At p with no pre-activation zero, a short null vector of the Jacobian."""
    pattern = _pattern(net, p)
    if pattern is None:
        return None
    n = net.input_dim
    J = flint.fmpq_mat(n, n, [int(i == j) for i in range(n) for j in range(n)])
    for L, on in zip(net.layers, pattern):
        W = flint.fmpq_mat(L.out_dim, L.in_dim, [flint.fmpq(v.numerator, v.denominator) for r in L.weight for v in r])
        J = W * J
        if on is not None:
            J = flint.fmpq_mat(L.out_dim, n, [e if on[i] else 0 for i, r in enumerate(J.tolist()) for e in r])
    rows = []
    for r in J.tolist():
        fr = [Fraction(int(e.p), int(e.q)) for e in r]
        if any(fr):
            rows.append(linalg.common_denominator(fr)[0])
    basis = linalg.nullspace(rows, n)
    if not basis:
        return None
    v = _shortest(basis, n)
    for sign in (1, -1):
        eps = Fraction(1)
        for _ in range(80):
            q = tuple(a + sign * eps * c for a, c in zip(p, v))
            if domain.contains(q) and _pattern(net, q) == pattern:
                return tuple(p), q
            eps /= 2
    return None


def _pattern(net: Network, p):
    """Which ReLUs are on at p (None for a linear layer); None when some
    pre-activation is exactly zero at p (a boundary between pieces)."""
    h = tuple(p)
    pattern = []
    for L in net.layers:
        pre = L.pre_activation(h)
        if L.activation == "relu":
            if any(v == 0 for v in pre):
                return None
            on = tuple(v > 0 for v in pre)
            pattern.append(on)
            h = tuple(v if v > 0 else Fraction(0) for v in pre)
        else:
            pattern.append(None)
            h = pre
    return tuple(pattern)


def _shortest(basis: list[list[int]], n: int) -> list[int]:
    """A short primitive vector of the lattice the basis spans (LLL when small)."""
    if len(basis) * n <= MAX_LLL_ENTRIES:
        red = flint.fmpz_mat(basis).lll().tolist()
        vecs = [[int(c) for c in r] for r in red if any(r)]
    else:
        vecs = basis
    v = min(vecs, key=lambda r: max(abs(c) for c in r))
    return linalg.primitive(v)


# ---------------------------------------------------------------- helpers


def _bounds(domain: Domain, n: int) -> tuple[np.ndarray, np.ndarray]:
    if domain.kind == "box":
        return np.array([_approx(a) for a in domain.lower]), np.array([_approx(a) for a in domain.upper])
    lo = np.zeros(n) if domain.kind == "orthant" else np.full(n, -solver.INF)
    return lo, np.full(n, solver.INF)


def _clip(p: tuple, domain: Domain) -> tuple:
    if domain.kind == "box":
        return tuple(min(max(a, lo), hi) for a, lo, hi in zip(p, domain.lower, domain.upper))
    if domain.kind == "orthant":
        return tuple(max(a, Fraction(0)) for a in p)
    return p


def _roundings(z: np.ndarray, domain: Domain, exact: tuple | None = None):
    """z rounded to 0, 1, 2, ... decimal places (clipped into a box), then ``exact``."""
    seen = set()
    for k in _PLACES:
        p = _clip(tuple(Fraction(round(float(v) * 10**k), 10**k) for v in z), domain)
        if p not in seen:
            seen.add(p)
            yield p
    if exact is not None and exact not in seen:
        yield exact


def _approx(v: Fraction) -> float:
    try:
        return v.numerator / v.denominator
    except OverflowError:
        return float("inf") if v > 0 else float("-inf")
