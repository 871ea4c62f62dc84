"""Exact solutions of big sparse grid systems from a nested-dissection factorisation.

:func:`exact_inj.exact.ndrank.rows_factor` eliminates a convolution's square
operator A modulo a prime p and keeps the block LU factors node by node.
:class:`Factor` solves A x = b modulo p with them (one sweep up the
dissection tree, one down), and :func:`solve_exact` lifts that to the exact
rational solution by Dixon's p-adic lifting: with X_k = x_0 + x_1 p + ... +
x_(k-1) p^(k-1) and the integer residual r_k, the identity

    A X_k = b - p^k r_k

holds exactly at every step (each x_i solves A x_i = r_i mod p, and
r_(i+1) = (r_i - A x_i) / p is an exact division).  A candidate V / d is
read off X_k by rational reconstruction, and it is kept only if A V = d b,
which by the identity is A E = d r_k with E = (V - d X_k) / p^k, checked in
exact integer arithmetic.  So every solution returned solves the system
exactly; None means it was not found within the steps allowed.

Untrusted search code (the answer goes through the checker like every other):
it is here because it is exact linear algebra.

>>> from exact_inj.model.kernels import KernelSpec
>>> from exact_inj.exact import ndrank
>>> from fractions import Fraction
>>> spec = KernelSpec.build([[[1, 2], [3, 4]]], 2, 1, [3], strides=[2], transposed=True)   # 6 x 6
>>> op, p, nodes = ndrank.rows_factor(spec, range(6))
>>> F = Factor(op[0], p, nodes)
>>> x = solve_exact(6, *coo_matvec(op), F, [1, 2, 3, 4, 5, 6])
>>> x
(Fraction(1, 1), Fraction(0, 1), Fraction(-1, 1), Fraction(0, 1), Fraction(1, 1), Fraction(2, 1))
>>> [sum(Fraction(int(v)) * x[c] for r, c, v in zip(*op[1:4]) if r == i) for i in range(6)]
[Fraction(1, 1), Fraction(2, 1), Fraction(3, 1), Fraction(4, 1), Fraction(5, 1), Fraction(6, 1)]
"""

from __future__ import annotations

import threading
import time
import weakref
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from fractions import Fraction
from math import isqrt
from typing import Sequence

import numpy as np

from . import ndrank
# The factors are laid out in the elimination's pivot blocks: densemod's
# triangular solves read them.
from .densemod import lower_solve, matvec_mod, one_blas_thread, reduce_mod, upper_solve
from .linalg import product_by_digits
from .quadrant import QuadrantFactor

__all__ = ["FACTOR_CACHE_BYTES", "FACTOR_THREADS", "Factor", "coo_matvec", "factor_for", "prefetch", "solve_exact"]

# Bits of one digit when an exact integer vector is multiplied by A in
# float64 pieces (A's entries and the row lengths bound the rest).
_LIMB = 19

# Entries tried first by the rational reconstruction.
_HEAD = 64


class Factor:
    """The block LU factors of a square matrix modulo p, node by node in
    elimination order, as :func:`exact_inj.exact.ndrank.nonsingular` leaves
    them (``factors``): pivot rows and columns, boundary rows and columns,
    the front's first s columns and its first s rows past them."""

    def __init__(self, n: int, p: int, nodes: list) -> None:
        self.n, self.p, self.nodes = n, p, nodes

    @property
    def nbytes(self) -> int:
        """Memory held by the factors."""
        return sum(a.nbytes for node in self.nodes for a in node)

    def solve(self, b: np.ndarray) -> np.ndarray:
        """x with A x = b modulo p (b and x reduced float64 residues, indexed
        by A's rows and columns)."""
        p = self.p
        r = np.array(b, dtype=np.float64)
        ws = []
        for Rs, _, Rb, _, Lp, _ in self.nodes:
            s = len(Rs)
            v = r[Rs]
            lower_solve(Lp, v, p)
            if len(Rb):
                w = r[Rb] - matvec_mod(Lp[s:], v, p)
                reduce_mod(w, p)
                r[Rb] = w
            ws.append(v)
        x = np.zeros(self.n)
        for (_, Cs, _, Cb, Lp, Up), v in zip(reversed(self.nodes), reversed(ws)):
            if len(Cb):
                v -= matvec_mod(Up, x[Cb], p)
                reduce_mod(v, p)
            upper_solve(Lp, v, p)
            x[Cs] = v
        return x


# Factors are kept per operator object and rows, most recent last, while they
# hold at most this many bytes in all: inverting a second output of the same
# network then skips the elimination (a full-size generator's four stages
# hold about 1.1 GB by nested dissection, 0.2 GB through their Toeplitz
# structure).
FACTOR_CACHE_BYTES = 2 << 30

# Background factorisations run at once (two cores: a full-size generator's
# stages factored two at a time took its first inversion from 10.4 s to
# 8.9 s, one run each: docs/performance.md).
FACTOR_THREADS = 2

_CACHE: dict[tuple[int, int], tuple[weakref.ref, tuple[int, ...], Factor]] = {}
# Factorisations started ahead (prefetch), by the same key, with a weak
# reference to their operator (a key's id may be reused once it is freed),
# and the background threads that run them; the lock guards both
# dictionaries (reentrant: a finished future's callback may run at once).
_PENDING: dict[tuple[int, int], tuple[weakref.ref, tuple[int, ...], Future]] = {}
_LOCK = threading.RLock()
_POOL: list[ThreadPoolExecutor] = []


def factor_for(spec, indices: Sequence[int], deadline: float | None = None) -> Factor | QuadrantFactor | None:
    """The factors of the rows ``indices`` of ``spec``'s operator (as
    :func:`exact_inj.exact.ndrank.rows_factor`), kept for the next call
    with the same object and rows; None when the elimination does not
    show them nonsingular.  Raises TimeoutError past ``deadline``.  A
    factorisation :func:`prefetch` started is waited for, not repeated."""
    indices = tuple(int(i) for i in indices)
    key = (id(spec), hash(indices))
    with _LOCK:
        hit = _CACHE.pop(key, None)
        if hit is not None and hit[0]() is spec and hit[1] == indices:
            _CACHE[key] = hit
            return hit[2]
        ahead = _PENDING.get(key)
        if ahead is not None and (ahead[0]() is not spec or ahead[1] != indices):
            ahead = None   # another object's, at a reused address: not ours
    if ahead is not None:
        # Its own deadline may be later than ours: stop waiting at ours.
        wait = None if deadline is None else max(deadline - time.perf_counter(), 0.0)
        try:
            factor = ahead[2].result(timeout=wait)
        except FutureTimeout:
            raise TimeoutError("time limit reached waiting for a factorisation") from None
        except CancelledError:
            # The peel that started it no longer needed it: done here instead.
            factor = _factor(spec, indices, deadline)
        if factor is not None:
            _keep(key, spec, indices, factor)
        return factor
    factor = _factor(spec, indices, deadline)
    if factor is not None:
        _keep(key, spec, indices, factor)
    return factor


def prefetch(spec, indices: Sequence[int], deadline: float | None = None) -> Future | None:
    """Start factoring the rows ``indices`` of ``spec`` in a background
    thread (:data:`FACTOR_THREADS` of them, first come first served), for a
    later :func:`factor_for`: the peel of a network factors its kernel
    layers two at a time, and waits for the one it needs (the eliminations'
    matrix products release the GIL).  The
    result is kept as factor_for keeps its own, even if nobody asks.
    Nothing happens when the factors are kept or already on their way.
    Returns the job started (None if none was), for its caller to
    ``cancel()`` if it turns out not to need it before it starts."""
    indices = tuple(int(i) for i in indices)
    key = (id(spec), hash(indices))
    ref = weakref.ref(spec)
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None and hit[0]() is spec and hit[1] == indices:
            return None
        ahead = _PENDING.get(key)
        if ahead is not None and ahead[0]() is spec and ahead[1] == indices:
            return None
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(max_workers=FACTOR_THREADS, thread_name_prefix="exact-inj-factor"))
        future = _POOL[0].submit(_factor_quietly, spec, indices, deadline)
        _PENDING[key] = (ref, indices, future)
        future.add_done_callback(lambda f: _settle(key, ref, indices, f))
    return future


def _settle(key, ref: weakref.ref, indices: tuple[int, ...], future: Future) -> None:
    """A prefetch finished: off the pending list, and its factors kept if
    its operator still exists (so nothing is held for a discarded one)."""
    with _LOCK:
        ahead = _PENDING.get(key)
        if ahead is not None and ahead[2] is future:
            del _PENDING[key]
    spec = ref()
    if spec is not None and not future.cancelled() and future.exception() is None and future.result() is not None:
        _keep(key, spec, indices, future.result())


def _factor(spec, indices: tuple[int, ...], deadline: float | None) -> Factor | QuadrantFactor | None:
    got = ndrank.rows_factor(spec, indices, deadline)
    if got is None:
        return None
    op, p, nodes = got
    # Shown through the Toeplitz structure: its factors solve as they are.
    return nodes if op is None else Factor(op[0], p, nodes)


def _factor_quietly(spec, indices: tuple[int, ...], deadline: float | None) -> Factor | QuadrantFactor | None:
    """_factor for the background thread: past the deadline, nothing.  BLAS
    stays on one thread throughout (the peel that starts it holds the same
    limit), so that its thread count never changes under a running product."""
    try:
        with one_blas_thread():
            return _factor(spec, indices, deadline)
    except TimeoutError:
        return None


def _keep(key, spec, indices: tuple[int, ...], factor: Factor) -> None:
    try:
        ref = weakref.ref(spec)
    except TypeError:  # pragma: no cover - every spec class takes weak references
        return
    with _LOCK:
        _CACHE[key] = (ref, indices, factor)
        total = sum(v[2].nbytes for v in _CACHE.values())
        while total > FACTOR_CACHE_BYTES and len(_CACHE) > 1:
            total -= _CACHE.pop(next(iter(_CACHE)))[2].nbytes


def coo_matvec(op: tuple):
    """(matvec, bound) for the integer matrix of ``op`` (n, rows, cols,
    vals, ...) as :func:`solve_exact` takes them: A x in float64, exact for
    integer x with max |x| * bound < 2^53."""
    n, rows, cols, vals = op[0], op[1], op[2], op[3]
    valsf = np.asarray(vals, dtype=np.float64)
    row_len = int(np.bincount(rows, minlength=n).max()) if len(rows) else 0
    bound = float(np.abs(valsf).max()) * row_len if len(valsf) else 1.0

    def matvec(x: np.ndarray) -> np.ndarray:
        return np.bincount(rows, weights=valsf * x[cols], minlength=n)

    return matvec, bound


def solve_exact(n: int, matvec, bound: float, factor: Factor, b: Sequence[int],
                max_steps: int = 64, as_integers: bool = False):
    """The exact solution x of A x = b (b integers) by Dixon lifting with
    ``factor`` (A modulo factor.p).  ``matvec(x)`` is A x in float64 for an
    integer-valued x, exact when max |x| * ``bound`` < 2^53 (only such x are
    passed: digits below max(2^_LIMB, p)).  None if the rational
    reconstruction has not produced a verified solution after ``max_steps``
    lifting steps, or ``bound`` is too large for exact digits.  With
    ``as_integers``, the solution as (V, d): an object array of integers and
    one denominator, x = V / d (no Fraction made per entry)."""
    p = factor.p
    if bound * max(1 << _LIMB, p) >= 2.0 ** 52:
        return None

    r = np.array([int(v) for v in b], dtype=object)
    if len(r) != n:
        raise ValueError(f"b has {len(r)} entries for {n} rows")
    X = np.zeros(n, dtype=object)
    M = 1
    for step in range(max_steps):
        rm = (r % p).astype(np.float64)
        reduce_mod(rm, p)
        xi = factor.solve(rm)
        Ax = matvec(xi).astype(np.int64).astype(object)
        diff = r - Ax
        if (diff % p).any():  # pragma: no cover - the factors are wrong: give up
            return None
        r = diff // p
        X = X + xi.astype(np.int64).astype(object) * M
        M *= p
        if not np.any(r != 0):
            # A X = b exactly: an integer solution.
            return (X, 1) if as_integers else tuple(Fraction(int(v)) for v in X)
        if step >= 1:
            got = _reconstruct(X, M)
            if got is not None:
                V, d = got
                E = (V - d * X) // M
                if np.array_equal(product_by_digits(matvec, E, _LIMB), d * r):
                    return (V, d) if as_integers else tuple(Fraction(int(v), d) for v in V)
    return None


def _reconstruct(X: np.ndarray, M: int) -> tuple[np.ndarray, int] | None:
    """A common denominator d and numerators V with V = d X mod M, |V| and
    d at most sqrt(M / 2) (so the fractions V / d are the unique ones of
    that size congruent to X), or None."""
    bound = isqrt(M // 2)
    # A few entries first: while the lifting is short of the solution's size
    # they already fail, without a pass over the whole vector.
    got = _numerators(X[:_HEAD], 1, M, bound)
    return None if got is None else _numerators(X, got[1], M, bound)


def _numerators(X: np.ndarray, d: int, M: int, bound: int) -> tuple[np.ndarray, int] | None:
    """(V, d') for _reconstruct: d' a multiple of d with every |d' X mod M|
    (symmetric) at most ``bound``, found by reconstructing the first entry
    that is not, again and again; None past 64 rounds or the bound."""
    for _ in range(64):
        V = (X * d) % M
        V = np.where(V > M // 2, V - M, V)
        big = np.flatnonzero(np.abs(V) > bound)
        if big.size == 0:
            return V, d
        e = _denominator(int(V[big[0]]) % M, M, bound)
        if e is None or e == 1:
            return None
        d *= e
        if d > bound:
            return None
    return None


def _denominator(a: int, M: int, bound: int) -> int | None:
    """The denominator e <= bound of the fraction n / e with |n| <= bound
    and n = a e mod M (extended Euclid, stopped at the first remainder at
    most ``bound``), or None."""
    r0, r1, t0, t1 = M, a, 0, 1
    while r1 > bound:
        q = r0 // r1
        r0, r1 = r1, r0 - q * r1
        t0, t1 = t1, t0 - q * t1
    e = abs(t1)
    if e == 0 or e > bound:
        return None
    return e
