"""Nonsingularity of big sparse grid operators modulo a prime, by nested dissection.

A square matrix A whose rows and columns sit on the cells of a grid (a
convolution's outputs and inputs: docs/theory.md, section 14), with a
non-zero A[r, c] only when the cells of r and c are within a small ``reach``
of each other, is eliminated block by block in a *nested dissection* order:
a slab of cells one reach wide cuts the grid in two halves that no entry
couples, each half is cut again, and the halves are eliminated before the
slab.  The elimination is multifrontal: each node of the dissection tree
(its *pivot* rows and columns, those of its cells) gets a dense front holding
the current Schur complement on its pivots and on the not yet eliminated
rows and columns they touch; eliminating the pivots leaves a contribution
block that its parent adds into its own front.

**What is proved.**  If every node's pivot block (a square block of the
successive Schur complements) is nonsingular mod p, then det A is, up to
sign, the product of their determinants mod p, so det A != 0 mod p, so
det A != 0 over Z (A has integer entries: scale rows first), so A has full
rank over Q.  The order is only a matter of speed: every structural fact the
argument needs is *checked* while eliminating, not assumed (each row and
column is a pivot of exactly one node, pivot blocks are square, and every row
or column a node's front passes upwards is a pivot of one of its ancestors,
so that no update is lost).  A pivot block singular mod p proves nothing
(unlucky prime, or an order that needs pivoting across nodes): the answer is
then "not shown", never "singular".

**Arithmetic**: modulo a prime below 2^20 in float64, exactly
(:mod:`exact_inj.exact.densemod`).

>>> import numpy as np
>>> rows, cols = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])
>>> nonsingular(2, rows, cols, np.array([1, 2, 3, 4]), np.array([0, 1]), np.array([0, 1]), (2,))[0]
True
>>> nonsingular(2, rows, cols, np.array([1, 2, 2, 4]), np.array([0, 1]), np.array([0, 1]), (2,))[0]
False
"""

from __future__ import annotations

import os
import time
import weakref
from math import prod
from typing import Sequence

import numpy as np

from . import quadrant
from .densemod import SingularBlock, eliminate, one_blas_thread, reduce_mod
from .modrank import is_prime

__all__ = ["PRIMES", "nonsingular", "rows_factor", "rows_nonsingular", "rows_nonsingular_all"]


def _primes_below(bound: int, count: int) -> tuple[int, ...]:
    out, q = [], bound - 1
    while len(out) < count:
        if is_prime(q):
            out.append(q)
        q -= 2 if q % 2 else 1
    return tuple(out)


# Primes just below 2^20 (the arithmetic bound above); the second and third
# are retries after an unlucky first.
PRIMES = _primes_below(1 << 20, 3)

# Dissection stops at boxes of at most this many unknowns (their fronts are
# small dense eliminations).
LEAF_UNKNOWNS = 256


_TRACE: list | None = None

# Fronts up to this many entries are eliminated with one BLAS thread.
_SMALL_FRONT = 1 << 21


def dissection(shape: Sequence[int], reach: Sequence[int], cell_unknowns: np.ndarray,
               leaf: int = LEAF_UNKNOWNS) -> tuple[np.ndarray, list[int], list[int]]:
    """A nested dissection of the grid ``shape``: (node of each cell, the
    parent of each node, the first node of each node's subtree), nodes in
    post-order (children before parents; the root is last).

    A box is cut across its longest side by a slab ``reach`` cells wide
    (cells of the two halves are then more than ``reach`` apart), down to
    boxes of at most ``leaf`` unknowns.

    >>> node, parent, low = dissection((5,), (1,), np.ones(5, dtype=np.int64), leaf=1)
    >>> node.tolist(), parent, low   # cell 2 last, after the halves 0-1 and 3-4 (cut again)
    ([1, 0, 4, 3, 2], [1, 4, 3, 4, -1], [0, 0, 2, 2, 0])
    """
    d = len(shape)
    counts = cell_unknowns.reshape(shape)
    node = np.full(prod(shape), -1, dtype=np.int64)
    parent: list[int] = []
    low: list[int] = []

    def cells_of(lo, hi) -> np.ndarray:
        grids = np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij")
        return np.ravel_multi_index([g.ravel() for g in grids], shape) if grids[0].size else np.zeros(0, np.int64)

    def build(lo: list[int], hi: list[int]) -> int:
        first = len(parent)
        ext = [b - a for a, b in zip(lo, hi)]
        size = int(counts[tuple(slice(a, b) for a, b in zip(lo, hi))].sum())
        t = max(range(d), key=lambda i: ext[i])
        w = reach[t]
        children = []
        if size > leaf and ext[t] >= max(w + 1, 2):
            # (With ext = w + 1 one half is empty: the box is eliminated
            # as a chain, its far end first.)
            mid = lo[t] + (ext[t] - w) // 2
            hi1, lo2 = list(hi), list(lo)
            hi1[t], lo2[t] = mid, mid + w
            sep_lo, sep_hi = list(lo), list(hi)
            sep_lo[t], sep_hi[t] = mid, mid + w
            children = [build(a, b) for a, b in ((lo, hi1), (lo2, hi)) if all(x < y for x, y in zip(a, b))]
            own = cells_of(sep_lo, sep_hi)
        else:
            own = cells_of(lo, hi)
        me = len(parent)
        parent.append(-1)
        low.append(first)
        node[own] = me
        for c in children:
            parent[c] = me
        return me

    build([0] * d, list(shape))
    return node, parent, low


def nonsingular(n: int, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, row_cell: np.ndarray,
                col_cell: np.ndarray, shape: Sequence[int], p: int = PRIMES[0],
                deadline: float | None = None, leaf: int = LEAF_UNKNOWNS,
                factors: list | None = None) -> tuple[bool, str]:
    """Is the n x n integer matrix with entries ``vals`` at (``rows``,
    ``cols``) (repeated positions add up) nonsingular mod p?  Row r sits on
    grid cell ``row_cell[r]``, column c on ``col_cell[c]`` (flat indices into
    ``shape``).  Returns (True, note) when shown, which proves full rank over
    Q (module docstring); (False, why) otherwise, which proves nothing.
    Raises TimeoutError past ``deadline`` (perf_counter).

    Needs as many rows as columns on every cell (so that each node's pivot
    block is square); the reach of the coupling is read off the entries.

    ``factors``: a list to which each node's factors are appended, in
    elimination order, as (pivot rows, pivot columns, boundary rows,
    boundary columns, column panel, row panel) for
    :class:`exact_inj.exact.ndsolve.Factor` (float32 holds the residues,
    below 2^20, exactly: half the memory of float64).
    """
    # A composite modulus would make pow(a, p - 2, p) no inverse, and a
    # singular matrix could pass (p = 15: [[3, 1], [3, 1]] was "shown").
    if not (2 < p < (1 << 20)) or not is_prime(p):
        raise ValueError("the float64 arithmetic needs a prime below 2^20")
    ncell = prod(shape)
    rc = np.bincount(row_cell, minlength=ncell)
    if rc.size != ncell or not np.array_equal(rc, np.bincount(col_cell, minlength=ncell)):
        return False, "rows and columns are not balanced on the grid cells"
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    vals = np.asarray(vals)
    # Integer entries only: a float or Fraction entry (0.5) would be
    # truncated inside the elimination, and a singular matrix shown.
    if vals.dtype.kind == "O":
        if not all(type(x) is int or isinstance(x, np.integer) for x in vals.tolist()):
            raise TypeError("the matrix entries must be integers")
    elif vals.size and vals.dtype.kind not in "iu":
        raise TypeError(f"the matrix entries must be integers, not {vals.dtype}")
    if vals.size and vals.dtype.kind in "iu" and -(1 << 52) < int(vals.min()) and int(vals.max()) < 1 << 52:
        # Integers below 2^52 are exact in float64, and so is their
        # reduction (reduce_mod needs |x| <= 2^53 - p: up to 2^53 the rounded
        # quotient times p could exceed 2^53 and round, for some primes).
        v = vals.astype(np.float64)
        reduce_mod(v, p)
    else:
        v = (vals % p).astype(np.float64)
        reduce_mod(v, p)
    keep = v != 0
    rows, cols, v = rows[keep], cols[keep], v[keep]
    # The reach per dimension, read off the entries (cell coordinates
    # gathered per entry from a per-cell table, in 32 bits).
    pos = np.array(np.unravel_index(np.arange(ncell), shape), dtype=np.int32)
    rcell, ccell = row_cell.astype(np.int32)[rows], col_cell.astype(np.int32)[cols]
    reach = [int(np.abs(pos[t][rcell] - pos[t][ccell]).max()) if rows.size else 0 for t in range(len(shape))]
    del rcell, ccell
    node_of_cell, parent, low = dissection(shape, reach, rc, leaf)
    nnodes = len(parent)
    row_node, col_node = node_of_cell[row_cell], node_of_cell[col_cell]
    # Every row and column a pivot of exactly one node (a node per cell),
    # so that n pivots in all are eliminated.
    if len(row_node) != n or len(col_node) != n or (row_node < 0).any() or (col_node < 0).any():
        return False, "some rows or columns belong to no node of the dissection"
    if rows.size and (rows.min() < 0 or cols.min() < 0 or rows.max() >= n or cols.max() >= n):
        return False, "an entry lies outside the n x n matrix"
    # Each entry is assembled into the front of the first of its row and
    # column to be eliminated.
    enode = np.minimum(row_node[rows], col_node[cols])
    # Few nodes: a 16-bit key sorts by radix (an int64 key by merge sort, seconds).
    order = np.argsort(enode.astype(np.int16) if nnodes < 1 << 15 else enode, kind="stable")
    rows, cols, v, enode = rows[order], cols[order], v[order], enode[order]
    ebounds = np.searchsorted(enode, np.arange(nnodes + 1))
    # Pivots node by node, and inside a node cell by cell (rows and columns
    # alike), so that the diagonal blocks of a pivot block are the cells'
    # own, dense for a convolution (its central taps).
    rorder = np.lexsort((row_cell, row_node))
    corder = np.lexsort((col_cell, col_node))
    rb = np.searchsorted(row_node[rorder], np.arange(nnodes + 1))
    cb = np.searchsorted(col_node[corder], np.arange(nnodes + 1))
    low_a = np.array(low, dtype=np.int64)
    rloc = np.full(n, -1, dtype=np.int64)
    cloc = np.full(n, -1, dtype=np.int64)
    pending: dict[int, list] = {}
    biggest = 0
    for X in range(nnodes):
        if deadline is not None and time.perf_counter() > deadline:
            raise TimeoutError("time limit reached in the nested-dissection elimination")
        Rs, Cs = rorder[rb[X]:rb[X + 1]], corder[cb[X]:cb[X + 1]]
        if len(Rs) != len(Cs):  # pragma: no cover - excluded by the balance test above
            return False, f"node {X} has {len(Rs)} pivot rows and {len(Cs)} pivot columns"
        er, ec, ev = rows[ebounds[X]:ebounds[X + 1]], cols[ebounds[X]:ebounds[X + 1]], v[ebounds[X]:ebounds[X + 1]]
        kids = pending.pop(X, [])
        rloc[Rs] = np.arange(len(Rs))
        cloc[Cs] = np.arange(len(Cs))
        Rb = np.unique(np.concatenate([er[rloc[er] < 0]] + [k[0] for k in kids]).astype(np.int64))
        Rb = Rb[rloc[Rb] < 0]
        Cb = np.unique(np.concatenate([ec[cloc[ec] < 0]] + [k[1] for k in kids]).astype(np.int64))
        Cb = Cb[cloc[Cb] < 0]
        # What this front passes up must be eliminated by an ancestor, or an
        # update would be lost: the one structural fact the proof needs.
        for B, nd in ((Rb, row_node), (Cb, col_node)):
            if B.size:
                a = nd[B]
                if np.any(a <= X) or np.any(low_a[a] > X):
                    rloc[Rs] = -1
                    cloc[Cs] = -1
                    return False, "the dissection does not separate the grid (an entry couples two halves)"
        s = len(Rs)
        rloc[Rb] = s + np.arange(len(Rb))
        cloc[Cb] = s + np.arange(len(Cb))
        F = np.zeros((s + len(Rb), s + len(Cb)))
        biggest = max(biggest, F.shape[0], F.shape[1])
        if er.size:
            np.add.at(F.reshape(-1), rloc[er] * F.shape[1] + cloc[ec], ev)
        for kr, kc, U in kids:
            F[np.ix_(rloc[kr], cloc[kc])] += U
        reduce_mod(F, p)
        rloc[Rs] = -1
        cloc[Cs] = -1
        rloc[Rb] = -1
        cloc[Cb] = -1
        if _TRACE is not None:
            _TRACE.append((s, F.shape[0] - s, F.shape[1] - s))
        try:
            if F.size <= _SMALL_FRONT:
                with one_blas_thread():
                    U = eliminate(F, s, p, factors is not None)
            else:
                U = eliminate(F, s, p, factors is not None)
        except SingularBlock:
            return False, f"a pivot block of {s} unknowns is singular modulo {p} (not pivoted across blocks)"
        if factors is not None:
            factors.append((Rs, Cs, Rb, Cb, F[:, :s].astype(np.float32), F[:s, s:].astype(np.float32)))
        if Rb.size or Cb.size:
            pending.setdefault(parent[X], []).append((Rb, Cb, np.ascontiguousarray(U)))
    if pending:  # pragma: no cover - the ancestor test above excludes it
        return False, "contributions were left over"
    return True, f"{nnodes} pivot blocks nonsingular modulo {p} (nested dissection, largest front {biggest})"


# The trusted rank facts already derived, per operator object: the search
# and the checker ask about the same immutable spec in one process (a stage
# is checked on its own and again inside the network's certificate), and the
# answer is a deterministic function of that object and the rows, computed
# here both times.  Keyed by identity, with a weak reference so that a new
# object at a reused address is never taken for the old one.
_MEMO: dict[tuple[int, int], tuple[weakref.ref, tuple[int, ...], bool]] = {}


def rows_nonsingular(spec, indices: Sequence[int], deadline: float | None = None) -> bool | None:
    """Do the rows ``indices`` of the operator of ``spec`` (anything with
    ``grid_operator``, as :class:`~exact_inj.model.kernels.KernelSpec`) form a
    nonsingular square matrix mod one of :data:`PRIMES`?  True proves that
    they are linearly independent over Q; None means not shown (not
    balanced on the grid, or singular pivot blocks for every prime tried).

    >>> from exact_inj.model.kernels import KernelSpec
    >>> s = KernelSpec.build([[[1, 2], [3, 4]]], 2, 1, [3], strides=[2], transposed=True)   # 6 x 6
    >>> rows_nonsingular(s, range(6))
    True
    >>> rows_nonsingular(KernelSpec.build([[[1, 2], [2, 4]]], 2, 1, [3], strides=[2], transposed=True), range(6))
    """
    return _rows(spec, indices, deadline, None)[0] or None


def rows_nonsingular_all(jobs: Sequence[tuple], deadline: float | None = None) -> list[bool | None]:
    """:func:`rows_nonsingular` for each (spec, indices) of ``jobs``, two at
    a time in threads when the machine has two cores or more (the
    eliminations' matrix products release the GIL; a full-size generator's
    four stages take about a third less time so), remembered as usual."""
    jobs = [(spec, tuple(int(i) for i in idx)) for spec, idx in jobs]
    if len(jobs) < 2 or (os.cpu_count() or 1) < 2:
        return [rows_nonsingular(spec, idx, deadline) for spec, idx in jobs]
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - only for several jobs

    # BLAS on one thread for the whole of it, set before either job starts:
    # changing OpenBLAS's thread count while another thread is inside a
    # multi-threaded call could leave it on one thread for good (review).
    with one_blas_thread(), ThreadPoolExecutor(max_workers=2, thread_name_prefix="exact-inj-rank") as pool:
        return list(pool.map(lambda job: rows_nonsingular(job[0], job[1], deadline), jobs))


def rows_factor(spec, indices: Sequence[int], deadline: float | None = None):
    """As :func:`rows_nonsingular`, keeping the elimination's factors:
    ``(op, p, nodes)`` when shown (``op`` the integer rows from
    ``spec.grid_operator``, ``nodes`` as the ``factors`` list of
    :func:`nonsingular` collects them, for
    :class:`exact_inj.exact.ndsolve.Factor`), or ``(None, p, solver)`` when
    shown through the Toeplitz structure (``solver`` a
    :class:`exact_inj.exact.quadrant.QuadrantFactor`); else None.  The result
    is remembered as :func:`rows_nonsingular`'s would be: the elimination is
    the same computation, so either call answers the other from memory."""
    shown, op, p, nodes = _rows(spec, indices, deadline, [])
    return (op, p, nodes) if shown else None


def _rows(spec, indices: Sequence[int], deadline: float | None, keep: list | None):
    """(shown, op, prime, kept factors or a QuadrantFactor) for
    :func:`rows_nonsingular` and :func:`rows_factor`; from memory when the same rows of the same object
    were shown before and no factors are asked for."""
    indices = tuple(int(i) for i in indices)
    key = (id(spec), hash(indices))
    hit = _MEMO.get(key)
    if keep is None and hit is not None and hit[0]() is spec and hit[1] == indices:
        return hit[2], None, None, None
    # A stride-2 transposed convolution is shown through its Toeplitz
    # structure first (exact.quadrant: seconds where the dissection takes
    # tens of them); anything else, or a pivot block singular there for
    # every prime, goes to the dissection.
    for prime in PRIMES:
        try:
            solver = quadrant.factor(spec, indices, prime, deadline)
        except SingularBlock:
            continue
        if solver is None:
            break
        _remember(key, spec, indices, True)
        return True, None, prime, solver
    op = spec.grid_operator(indices)
    if op is None:
        return False, None, None, None
    n, rows, cols, vals, row_cell, col_cell, shape = op
    if n != len(indices):
        return False, None, None, None
    shown, prime = False, None
    for prime in PRIMES:
        if keep is not None:
            keep.clear()
        shown, _ = nonsingular(n, rows, cols, vals, row_cell, col_cell, shape, prime, deadline, factors=keep)
        if shown:
            break
    _remember(key, spec, indices, shown)
    return shown, op, prime, keep


def _remember(key, spec, indices: tuple[int, ...], shown: bool) -> None:
    try:
        ref = weakref.ref(spec)
    except TypeError:  # pragma: no cover - every spec class takes weak references
        return
    if len(_MEMO) > 64:
        _MEMO.clear()
    _MEMO[key] = (ref, indices, shown)
