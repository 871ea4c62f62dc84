"""Inverting a network layer by layer, when it allows it (docs/inverse.md, "The peel").

From the known output z of the last layer back to the input: the rows the
output fixes (:func:`exact_inj.certify.peel.equations`) are solved exactly
when they span the layer's input, and the solution is the known output of
the layer below.  The answer is

- ``("point", x)``: the chain reached the input with a preimage x; the
  checker (:func:`exact_inj.certify.peel.check_peel_point`) re-derives the
  chain from x by exact evaluation and re-ranks every layer's rows;
- ``("empty", chain, u)``: the chain forced an input that is not a preimage,
  or a negative ReLU output, or inconsistent equations (``u`` proves it);
- ``("partial", chain)``: the layers from the output down to some layer j
  peeled, the next one's fixed rows do not span (or are too many to rank
  densely), and chain[-1] maps to y through the peeled layers: the preimage
  of y is that of chain[-1] under layers 0..j-1, for the case split of
  :mod:`exact_inj.network.preimage`;
- ``None``: already the last layer does not allow it.

A convolution too large for dense linear algebra (a full-size generator
stage) is solved through its kernel: one row per position and class of
proportional channels (:func:`exact_inj.certify.peel.square_rows`), a
nested-dissection factorisation modulo a prime, kept for the next output of
the same network, and Dixon lifting to the exact solution
(:mod:`exact_inj.exact.ndsolve`).

Untrusted like every search: the rows are chosen modulo a prime, the solve is
exact, and the answer still goes through the checker.
"""

from __future__ import annotations

import os
from fractions import Fraction
from math import lcm
from typing import Callable, Sequence

import flint
import numpy as np

from ..certify.inverse import is_preimage
from ..certify.peel import MAX_PEEL_ENTRIES, equations, integer_rows, square_rows
from ..exact import densemod, linalg, ndsolve
from ..exact.modrank import pivot_columns
from ..model import Domain, Network

__all__ = ["peel"]

_P = (1 << 61) - 1


def peel(net: Network, y: Sequence[Fraction], domain: Domain, deadline: float | None = None,
         progress: Callable[[str], None] | None = None) -> tuple | None:
    """("point", x), ("empty", chain, u) or None (see the module docstring).
    Past ``deadline`` (perf_counter) a kernel factorisation stops and the
    peel ends there, as at a layer that does not allow it.

    >>> from exact_inj.model import Layer, Network
    >>> net = Network((Layer.from_rows([[1], [-2]], [1, -2]),
    ...                Layer.from_rows([[1, 1], [1, -1]], activation="linear")))
    >>> peel(net, net.evaluate([Fraction(3)]), Domain.reals())
    ('point', (Fraction(3, 1),))
    >>> peel(net, [Fraction(-1), Fraction(0)], Domain.reals())   # forces h = (-1/2, -1/2): no ReLU output
    ('empty', [(Fraction(-1, 2), Fraction(-1, 2))], None)
    """
    ahead = _jobs_ahead(net)
    if not ahead:
        return _peel(net, y, domain, deadline, progress)
    # Two eliminations at once: BLAS on one thread for both, set before the
    # background one starts (OpenBLAS's thread count changed under a running
    # product could stay at one for good: review).
    with densemod.one_blas_thread():
        started = [ndsolve.prefetch(spec, reps, deadline) for spec, reps in ahead]
        try:
            return _peel(net, y, domain, deadline, progress)
        finally:
            # A peel that stopped early (no preimage, a layer that does not
            # span) leaves jobs it no longer needs: those not yet started are
            # dropped, so that they neither take the cores nor hold up the
            # interpreter's exit (review).
            for job in started:
                if job is not None:
                    job.cancel()


def _peel(net: Network, y: Sequence[Fraction], domain: Domain, deadline: float | None,
          progress: Callable[[str], None] | None) -> tuple | None:
    z = tuple(y)
    chain: list[tuple[Fraction, ...]] = []
    for k in reversed(range(len(net.layers))):
        layer = net.layers[k]
        eq = equations(layer, z)
        if eq is None:
            return "empty", chain, None
        idx, t = eq
        n = layer.in_dim
        if len(idx) < n:
            return _stuck(net, y, chain)
        if len(idx) * n > MAX_PEEL_ENTRIES:
            if progress is not None:
                progress(f"peel: layer {k}, {n:,} unknowns from {len(idx):,} equations, through the kernel")
            try:
                h = _kernel_solve(layer, idx, t, deadline)
            except TimeoutError:
                h = None
            if h is None:
                # Not solved, or inconsistent equations (y is no output: saying
                # so needs the multipliers u, not computed at this size).
                return _stuck(net, y, chain)
            chain.append(h)
            z = h
            continue
        rows = integer_rows(layer, idx, n)
        piv = _independent(rows, n)
        if piv is None:
            return _stuck(net, y, chain)
        A = [rows[p][0] for p in piv]
        b = layer.bias
        h = linalg.solve_square(A, [rows[p][1] * (t[p] - b[idx[p]]) for p in piv])
        if h is None:  # pragma: no cover - independent modulo p means independent over Q
            return None
        h = tuple(h)
        pre = layer.pre_activation(h)
        bad = next((q for q, i in enumerate(idx) if pre[i] != t[q]), None)
        if bad is not None:
            return "empty", chain, _inconsistency(rows, piv, bad)
        chain.append(h)
        z = h
    if is_preimage(net, domain, y, z):
        return "point", z
    return "empty", chain, None


def _jobs_ahead(net: Network) -> list[tuple]:
    """The kernel layers to factor in the background, last layer first,
    with their rows: those whose representative rows are the same whatever
    y is, those of all their rows, when square (every row of a linear
    layer; a [C; -s^2 C] stage, one row of each pair being an equation at
    every output that has a preimage).  Two are factored at a time while
    the peel waits for the one it needs; a guess that turns out wrong only
    costs the background threads' time.  None on one core."""
    if (os.cpu_count() or 1) < 2:
        return []
    jobs = []
    for layer in reversed(net.layers):
        if layer.in_dim * layer.out_dim <= MAX_PEEL_ENTRIES or not hasattr(getattr(layer, "spec", None), "grid_operator"):
            continue
        sq = square_rows(layer, range(layer.out_dim))
        if sq is not None and len(sq[0]) == layer.in_dim:
            jobs.append((layer.spec, sq[0]))
    return jobs


def _kernel_solve(layer, idx: list[int], t: list[Fraction], deadline: float | None) -> tuple[Fraction, ...] | None:
    """The input h solving the equations (rows ``idx``, targets ``t``) of a
    convolution too large for dense algebra, through one row per position
    and class of proportional channels; None if those rows are not square
    or not shown nonsingular, the lifting does not finish, or the other
    equations contradict them."""
    sq = square_rows(layer, idx)
    if sq is None or len(sq[0]) != layer.in_dim:
        return None
    reps, _, stand, lams = sq
    # Row idx[q] = lam * (the row standing for it): that row's equation is
    # rep . h = (t[q] - b) / lam, and every row standing for the same one
    # must give it the same value (a zero row: b = t[q]); then the solution
    # of the representatives' system solves all the equations.
    # In integers: with L the common denominator of the targets and biases,
    # N_q = L (t[q] - b) and lam = a / c (c > 0), the value is N_q c / (a L);
    # two rows standing for one agree when their cross products do.
    bias = layer.bias
    L = lcm(*{v.denominator for v in t}, *{bias[i].denominator for i in idx})
    value: dict[int, tuple[int, int]] = {}
    for q, (i, r, lam) in enumerate(zip(idx, stand, lams)):
        tq, bq = t[q], bias[i]
        n = tq.numerator * (L // tq.denominator) - bq.numerator * (L // bq.denominator)
        if r < 0:
            if n:
                return None
            continue
        num, den = n * lam.denominator, lam.numerator
        first = value.setdefault(r, (num, den))
        if first[0] * den != num * first[1]:
            return None
    spec = layer.spec
    factor = ndsolve.factor_for(spec, reps, deadline)
    if factor is None:
        return None
    # The factored rows are S times the operator's (S = integer_scale), so
    # the integer system is A (D h) = S D rhs with D = L A' (A' the lcm of
    # the values' denominators a), and A x is the kernel's float64 product
    # at the representatives.
    rhs = [value[r] for r in reps]
    Ap = lcm(*{abs(a) for _, a in rhs})
    S = spec.integer_scale
    at = np.asarray(reps, dtype=np.int64)
    x = ndsolve.solve_exact(len(reps), lambda v: spec.apply_float(v)[at], spec.float_bound(), factor,
                            [S * num * (Ap // a) for num, a in rhs], as_integers=True)
    if x is None:
        return None
    V, d = x
    D = d * L * Ap
    return tuple(Fraction(int(v), D) for v in V)


def _stuck(net: Network, y: Sequence[Fraction], chain: list) -> tuple | None:
    """A layer does not allow the peel.  Nothing peeled: None.  Otherwise every
    preimage has the chain's values; if the last of them does not map to y
    through the peeled layers, there is none ("empty"), else ("partial", chain):
    the preimage of y is the preimage of chain[-1] under the layers below."""
    if not chain:
        return None
    h = chain[-1]
    for layer in net.layers[len(net.layers) - len(chain):]:
        h = layer.apply(h)
    if h != tuple(y):
        return "empty", chain, None
    return "partial", chain


def _independent(rows: list[tuple[list[int], int]], n: int) -> list[int] | None:
    """n positions of rows independent modulo a prime (so over Q), or None.
    2n rows spread over all of them are tried first: generic rows are
    independent already there, and the matrix is a fraction of the size
    (a generator's first stage: 4,096 rows of 256, 0.5 s in all)."""
    m = len(rows)
    try:
        A = np.array([r for r, _ in rows], dtype=np.int64)
    except OverflowError:
        A = None
    picks = [np.unique(np.linspace(0, m - 1, 2 * n).astype(np.int64))] if m > 4 * n else []
    for sel in picks + [np.arange(m)]:
        if A is not None:
            entries = (A[sel].T % _P).ravel().tolist()
        else:
            entries = [rows[q][0][c] % _P for c in range(n) for q in sel.tolist()]
        R, rk = flint.nmod_mat(n, len(sel), entries, _P).rref()  # the transpose
        if rk == n:
            return [int(sel[j]) for j in pivot_columns(R, n)]
    return None


def _inconsistency(rows, piv: list[int], bad: int) -> list[Fraction]:
    """u over the equation rows with u^T W = 0 and u^T (t - b) != 0: row ``bad``
    (which the solution of the pivot rows misses) minus its expression in them."""
    A = [rows[p][0] for p in piv]
    n = len(A)
    At = [[A[j][c] for j in range(n)] for c in range(n)]
    coef = linalg.solve_square(At, rows[bad][0])
    u = [Fraction(0)] * len(rows)
    u[bad] = Fraction(rows[bad][1])
    for j, p in enumerate(piv):
        u[p] -= coef[j] * rows[p][1]
    return u
