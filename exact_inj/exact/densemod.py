"""Dense linear algebra modulo a prime below 2^20, exactly, in float64 BLAS.

The building blocks of the eliminations of :mod:`exact_inj.exact.ndrank`
and :mod:`exact_inj.exact.quadrant`: reduction, an exact matrix product
update, block inverses and a blocked elimination that either shows its
pivot blocks nonsingular or raises :class:`SingularBlock`.

**Arithmetic.**  Residues are kept in [-(p+1)/2, (p+1)/2] as float64 numbers
with a prime p < 2^20, so that every product of two residues is an integer
below 2^38 and every matrix product of inner dimension <= 2^13 is a sum of
integers below 2^51 < 2^53: float64 represents each partial sum exactly
whatever the summation order, and BLAS does exact modular arithmetic at
full speed.  A reduction subtracts an integer multiple of p (any multiple is
correct; the rounded quotient only keeps the numbers small).

>>> import numpy as np
>>> A = np.array([[2.0, 1.0], [1.0, 1.0]])
>>> (block_inverse(A, 7) @ A % 7).tolist()
[[1.0, 0.0], [0.0, 1.0]]
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

__all__ = ["MAX_INNER", "PIVOT_BLOCK", "SingularBlock", "block_inverse", "eliminate", "gemm_sub", "lower_solve",
           "lu_solve", "matvec_mod", "one_blas_thread", "reduce_mod", "upper_solve"]


# Inner dimension of one exact float64 matrix product: 2^13 * (2^19)^2 = 2^51.
MAX_INNER = 1 << 13

# Pivot blocks: the front's pivot block is eliminated PIVOT_BLOCK columns at a
# time (one matrix product updates everything after them), each such
# diagonal block inverted by block Gauss-Jordan in _INNER blocks, each of
# those by Gauss-Jordan with row pivoting inside it.  Pivoting never
# crosses an _INNER block: a singular one is "not shown" (rows and columns
# come cell by cell, where the diagonal blocks are generically dense).
PIVOT_BLOCK = 256
_INNER = 32

# Unreduced matrix-product updates a trailing block may accumulate: each
# adds at most PIVOT_BLOCK * 2^38 = 2^46, so 64 of them stay below 2^52.
_LAZY = 64

class SingularBlock(Exception):
    """A pivot block is singular modulo p: nothing is shown (an unlucky
    prime, or an order that would need pivoting across blocks)."""


def reduce_mod(X: np.ndarray, p: int) -> None:
    """X := X - p * round(X / p), twice: exact for integers of magnitude
    at most 2^53 - p (then p * round(X / p), within p/2 + 1 of X, is below
    2^53 and exact; nearer 2^53 it can round by one for some primes, which
    changes the residue), and afterwards every entry is in
    [-(p+1)/2, (p+1)/2].  The lazy updates of eliminate stay below
    2^52 + 2^19."""
    q = np.empty_like(X)
    for _ in range(2):
        np.multiply(X, 1.0 / p, out=q)
        np.rint(q, out=q)
        q *= p
        X -= q


def gemm_sub(C: np.ndarray, A: np.ndarray, B: np.ndarray, p: int) -> None:
    """C := C - A B mod p (all three reduced), exactly."""
    k = A.shape[1]
    for lo in range(0, k, MAX_INNER):
        C -= A[:, lo:lo + MAX_INNER] @ B[lo:lo + MAX_INNER]
        reduce_mod(C, p)


def _gj_inverse(P: np.ndarray, p: int) -> np.ndarray:
    """P^-1 mod p for a small reduced P (Gauss-Jordan with row pivoting
    inside P, in int64: residues in [0, p), products below 2^40); raises
    SingularBlock.  Returned reduced, as float64."""
    k = len(P)
    A = np.zeros((k, 2 * k), dtype=np.int64)
    A[:, :k] = P.astype(np.int64) % p
    A[np.arange(k), k + np.arange(k)] = 1
    for j in range(k):
        nz = np.flatnonzero(A[j:, j])
        if nz.size == 0:
            raise SingularBlock(j)
        r = j + int(nz[0])
        if r != j:
            A[[j, r]] = A[[r, j]]
        A[j] = A[j] * pow(int(A[j, j]), p - 2, p) % p
        c = A[:, j].copy()
        c[j] = 0
        A -= np.outer(c, A[j])
        A %= p
    out = A[:, k:].astype(np.float64)
    reduce_mod(out, p)
    return out


def block_inverse(D: np.ndarray, p: int) -> np.ndarray:
    """D^-1 mod p (D reduced, up to PIVOT_BLOCK square): block Gauss-Jordan on
    [D | I] with _INNER x _INNER pivot blocks; raises SingularBlock."""
    k = len(D)
    if k <= _INNER:
        return _gj_inverse(D, p)
    A = np.zeros((k, 2 * k))
    A[:, :k] = D
    A[np.arange(k), k + np.arange(k)] = 1.0
    for j0 in range(0, k, _INNER):
        j1 = min(j0 + _INNER, k)
        X = _gj_inverse(A[j0:j1, j0:j1], p) @ A[j0:j1]
        reduce_mod(X, p)
        A[j0:j1] = X
        for rows in (slice(0, j0), slice(j1, k)):
            if A[rows].size:
                A[rows] -= A[rows, j0:j1] @ X
                reduce_mod(A[rows], p)
    return A[:, k:].copy()


_CONTROLLER: list = []
_LIMIT_LOCK = threading.Lock()
_LIMIT: list = []   # [the active limiter, how many eliminations are inside it]


@contextlib.contextmanager
def one_blas_thread():
    """A context in which BLAS uses one thread (threadpoolctl, a dependency;
    an install without it only runs slower).
    Small matrix products are many times slower with two threads on a
    loaded machine (measured: 216 us against 2.6 ms for 224 x 32 x 512).
    The controller, which finds the BLAS libraries by reading the process's
    memory map (about 2 ms), is made once: per front it cost 1.2 s of an
    11 s elimination.  The limit is process-wide, so it is counted: set by
    the first elimination thread to enter, restored by the last to leave
    (two threads restoring each other's saved limits could leave BLAS on
    one thread for good)."""
    with _LIMIT_LOCK:
        if not _CONTROLLER:
            try:
                from threadpoolctl import ThreadpoolController  # noqa: PLC0415 - made once, when first needed
            except ImportError:  # pragma: no cover - installed without its dependencies: only slower
                _CONTROLLER.append(None)
            else:
                _CONTROLLER.append(ThreadpoolController())
        if _CONTROLLER[0] is not None:
            if not _LIMIT:
                _LIMIT[:] = [_CONTROLLER[0].limit(limits=1, user_api="blas"), 0]
            _LIMIT[1] += 1
    try:
        yield
    finally:
        with _LIMIT_LOCK:
            if _LIMIT:
                _LIMIT[1] -= 1
                if _LIMIT[1] == 0:
                    _LIMIT.pop(1)
                    _LIMIT.pop().restore_original_limits()


def eliminate(F: np.ndarray, s: int, p: int, keep: bool = False) -> np.ndarray:
    """Eliminate the leading s x s pivot block of the front F, PIVOT_BLOCK
    columns at a time (block Gaussian elimination: each diagonal block of
    the current Schur complement is inverted, its block row multiplied by
    the inverse and subtracted from the rows below); returns the Schur
    complement on the other rows and columns.  Raises SingularBlock if a
    diagonal block is singular mod p (then nothing is shown).  The trailing
    part is reduced lazily: only the block row and column about to be used
    are reduced before use, the rest every _LAZY updates.

    With ``keep``, F's first s rows and columns are left holding the block
    LU factors that :mod:`exact_inj.exact.ndsolve` solves with: each
    diagonal block's inverse in its place, the block row right of it
    multiplied by that inverse, the block column below it as eliminated."""
    pending = 0
    for j0 in range(0, s, PIVOT_BLOCK):
        j1 = min(j0 + PIVOT_BLOCK, s)
        if pending:
            reduce_mod(F[j0:j1, j0:], p)
            reduce_mod(F[j1:, j0:j1], p)
        with one_blas_thread():
            Dinv = block_inverse(F[j0:j1, j0:j1], p)
        X = Dinv @ F[j0:j1, j1:]
        reduce_mod(X, p)
        if keep:
            F[j0:j1, j0:j1] = Dinv
            F[j0:j1, j1:] = X
        if F.shape[0] > j1 and F.shape[1] > j1:
            F[j1:, j1:] -= F[j1:, j0:j1] @ X
            pending += 1
            if pending == _LAZY:
                reduce_mod(F[j1:, j1:], p)
                pending = 0
    if pending:
        reduce_mod(F[s:, s:], p)
    return F[s:, s:]


def matvec_mod(A: np.ndarray, x: np.ndarray, p: int) -> np.ndarray:
    """A x mod p, exactly (reduced inputs, A float64 or float32; inner
    dimension in pieces of at most MAX_INNER, so that every partial sum is
    an integer below 2^53)."""
    k = A.shape[1]
    if k <= MAX_INNER:
        y = A @ x
        reduce_mod(y, p)
        return y
    y = np.zeros(A.shape[0])
    for lo in range(0, k, MAX_INNER):
        y += A[:, lo:lo + MAX_INNER] @ x[lo:lo + MAX_INNER]
        reduce_mod(y, p)
    return y


def lower_solve(F: np.ndarray, v: np.ndarray, p: int) -> None:
    """v := L^-1 v mod p in place, for the s = len(v) pivots :func:`eliminate`
    left in F's first s rows and columns (``keep``): each diagonal block's
    inverse, then the block column below it."""
    s = len(v)
    for j0 in range(0, s, PIVOT_BLOCK):
        j1 = min(j0 + PIVOT_BLOCK, s)
        v[j0:j1] = matvec_mod(F[j0:j1, j0:j1], v[j0:j1], p)
        if j1 < s:
            v[j1:] -= matvec_mod(F[j1:s, j0:j1], v[j0:j1], p)
            reduce_mod(v[j1:], p)


def upper_solve(F: np.ndarray, v: np.ndarray, p: int) -> None:
    """v := U^-1 v mod p in place, the unit upper factor being the block rows
    right of each diagonal block (already multiplied by its inverse)."""
    s = len(v)
    for j0 in reversed(range(0, s, PIVOT_BLOCK)):
        j1 = min(j0 + PIVOT_BLOCK, s)
        if j1 < s:
            v[j0:j1] -= matvec_mod(F[j0:j1, j1:s], v[j1:s], p)
            reduce_mod(v[j0:j1], p)


def lu_solve(F: np.ndarray, b: np.ndarray, p: int) -> np.ndarray:
    """x with A x = b mod p, where F holds the factors :func:`eliminate`
    left (``keep``) after eliminating all of a square A (b reduced; F may
    be float32, which holds residues below 2^20 exactly)."""
    v = np.array(b, dtype=np.float64)
    lower_solve(F, v, p)
    upper_solve(F, v, p)
    return v
