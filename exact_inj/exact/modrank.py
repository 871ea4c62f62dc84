"""Ranks of big operators modulo a prime: exact lower bounds, cheaply.

The one fact everything here rests on: for an integer matrix A and a prime
p, rank over F_p of (A mod p) <= rank over Q of A, because a non-zero minor
mod p is a non-zero integer.  So "rank mod p = number of columns" proves full
column rank over Q exactly; a smaller rank mod p proves nothing (the prime
may be unlucky) and callers treat it as "not shown".  Rows are scaled to
integers first, which changes no rank.

Two ways to get that rank without the rational matrix:

* **named rows** (:func:`independent_rows`, :func:`rows_have_full_rank`): the
  rows are read sparsely, reduced mod p and handed to python-flint's
  ``nmod_mat``, which eliminates in C; nothing is ever a Fraction matrix;
* **frequencies** (:func:`symbol_rank_deficiency`): a convolution with periodic
  padding whose outputs cover every shift is block-circulant.  If p = 1 mod N
  and r has order N mod p, the discrete Fourier transform over F_p (built
  from r) is invertible and block-diagonalises the operator, so its rank mod
  p is the sum, over the N frequencies, of the ranks of the small symbol
  matrices K^(j)[o, c] = sum_q K[o, c, q] r^(j q).  That is the paper's
  frequency picture (its Theorem 4) made exact: each of N tiny matrices
  instead of one N-times-larger one.

The prime and the roots of unity are part of a certificate; the checker
verifies them (``fmpz.is_prime`` is python-flint's proven primality test, and
an order is checked against every prime factor) rather than trusting them.
"""

from __future__ import annotations

import time
from fractions import Fraction
from math import lcm, prod
from itertools import product
from typing import Iterable, Mapping, Sequence

import flint
import numpy as np

# nmod_mat works with word-size moduli; primes just below 2^62 keep every
# product of two residues inside the 128-bit intermediate flint uses, and
# make an unlucky prime (one dividing a non-zero minor) vanishingly rare.
PRIME_FLOOR = 1 << 61
PRIME_CEILING = 1 << 62

# Building the nmod_mat goes through a Python list of its entries: ~30 bytes
# and ~0.3 us an entry.  Above this many entries a route that needs it says
# so and gives up (the engine answers unknown) instead of exhausting memory.
MAX_MODULAR_ENTRIES = 40_000_000


def is_prime(p: int) -> bool:
    """A proven primality test (python-flint's ``fmpz.is_prime``).

    >>> is_prime((1 << 61) - 1), is_prime(91)
    (True, False)
    """
    return p >= 2 and bool(flint.fmpz(p).is_prime())


def prime_factors(n: int) -> list[int]:
    """The distinct prime factors of a small positive integer, by trial division.

    >>> prime_factors(360)
    [2, 3, 5]
    """
    out, d = [], 2
    while d * d <= n:
        if n % d == 0:
            out.append(d)
            while n % d == 0:
                n //= d
        d += 1
    if n > 1:
        out.append(n)
    return out


def has_order(r: int, order: int, p: int) -> bool:
    """r has multiplicative order exactly ``order`` modulo p.

    >>> has_order(2, 4, 5), has_order(4, 4, 5)
    (True, False)
    """
    if order < 1 or not 0 < r < p or pow(r, order, p) != 1:
        return False
    return all(pow(r, order // q, p) != 1 for q in prime_factors(order))


def primes_with_roots(orders: Sequence[int], skip: int = 0) -> tuple[int, tuple[int, ...]]:
    """A prime p = 1 mod lcm(orders) in [2^61, 2^62) and, for each order, an
    element of exactly that order; ``skip`` picks a later prime (for retries
    after an unlucky one).

    >>> p, roots = primes_with_roots([4, 6])
    >>> (p - 1) % 12, [has_order(r, k, p) for r, k in zip(roots, [4, 6])]
    (0, [True, True])
    """
    L = lcm(*orders)
    k = (PRIME_FLOOR - 1) // L + 1
    while True:
        p = k * L + 1
        if p >= PRIME_CEILING:  # pragma: no cover - needs an astronomically large L
            raise ValueError(f"no prime below 2^62 is 1 mod {L}")
        if is_prime(p):
            if skip == 0:
                break
            skip -= 1
        k += 1
    roots = []
    for order in orders:
        a = 2
        while not has_order(pow(a, (p - 1) // order, p), order, p):
            a += 1
        roots.append(pow(a, (p - 1) // order, p))
    return p, tuple(roots)


def _integer_row(row: Mapping[int, Fraction]) -> dict[int, int]:
    """The row times the lcm of its denominators (same rank, integer entries)."""
    D = lcm(*(v.denominator for v in row.values())) if row else 1
    return {c: int(v * D) for c, v in row.items()}


def _nmod_rows(rows: Sequence[Mapping[int, Fraction]], ncols: int, p: int) -> "flint.nmod_mat":
    entries = [0] * (len(rows) * ncols)
    for i, row in enumerate(rows):
        base = i * ncols
        for c, v in _integer_row(row).items():
            entries[base + c] = v % p
    return flint.nmod_mat(len(rows), ncols, entries, p)


def _transposed_nmod(rows: Sequence[Mapping[int, Fraction]], ncols: int, p: int) -> "flint.nmod_mat":
    m = len(rows)
    entries = [0] * (m * ncols)
    for i, row in enumerate(rows):
        for c, v in _integer_row(row).items():
            entries[c * m + i] = v % p
    return flint.nmod_mat(ncols, m, entries, p)


def check_size(nrows: int, ncols: int, what: str) -> None:
    """Raise ValueError if an nmod_mat of this shape is over the memory budget."""
    if nrows * ncols > MAX_MODULAR_ENTRIES:
        raise ValueError(
            f"{what}: {nrows} x {ncols} = {nrows * ncols} entries mod p, more than the "
            f"{MAX_MODULAR_ENTRIES} this tool builds"
        )


def rows_have_full_rank(rows: Sequence[Mapping[int, Fraction]], ncols: int, p: int) -> bool:
    """True if the sparse rows ({column: value}) have rank ``ncols`` mod p,
    which proves rank ``ncols`` over Q.  False proves nothing.

    >>> F = Fraction
    >>> rows_have_full_rank([{0: F(1, 2)}, {0: F(1), 1: F(3)}], 2, (1 << 61) - 1)
    True
    >>> rows_have_full_rank([{0: F(1)}, {0: F(2)}], 2, (1 << 61) - 1)
    False
    """
    if len(rows) < ncols:
        return False
    check_size(len(rows), ncols, "rank check")
    return _nmod_rows(rows, ncols, p).rank() == ncols


def independent_rows(rows: Sequence[Mapping[int, Fraction]], ncols: int, p: int) -> list[int] | None:
    """Indices of ``ncols`` rows independent mod p (hence over Q), or None if
    the rows have rank < ncols mod p.  One elimination of the transpose: its
    pivot columns are the rows wanted.

    >>> F = Fraction
    >>> independent_rows([{0: F(1)}, {0: F(2)}, {1: F(1)}], 2, (1 << 61) - 1)
    [0, 2]
    """
    if len(rows) < ncols:
        return None
    check_size(len(rows), ncols, "row selection")
    R, rk = _transposed_nmod(rows, ncols, p).rref()
    if rk < ncols:
        return None
    return pivot_columns(R, rk)


def pivot_columns(R: "flint.nmod_mat", rank: int) -> list[int]:
    """The pivot column of each of the first ``rank`` rows of a reduced row
    echelon form (as ``nmod_mat.rref`` returns it).

    >>> R, rk = flint.nmod_mat(2, 3, [0, 1, 2, 0, 2, 4], 7).rref()
    >>> pivot_columns(R, rk)
    [1]
    """
    pivots, j = [], 0
    for i in range(rank):
        while int(R[i, j]) == 0:
            j += 1
        pivots.append(j)
        j += 1
    return pivots


def nonsingular_mod(A: np.ndarray, p: int) -> np.ndarray:
    """For a batch of square matrices mod p (int64, shape (B, n, n), entries
    in [0, p), p prime below 2^31), True where the matrix is nonsingular mod
    p, which proves it nonsingular over Q.  False proves nothing.

    Elimination without division, all matrices at once: a pivot row is swapped
    into place and every row below becomes pivot * row - factor * pivot row
    (mod p).  With the pivot non-zero mod p each step is invertible, so the rank
    mod p is kept; products of residues stay below 2^62 and their differences
    fit an int64.

    >>> A = np.array([[[0, 1], [1, 0]], [[2, 4], [1, 2]], [[7, 0], [0, 7]]], dtype=np.int64)
    >>> nonsingular_mod(A, 7).tolist()
    [True, False, False]
    """
    if p >= 1 << 31:
        raise ValueError("nonsingular_mod needs a prime below 2^31")
    A = np.array(A, dtype=np.int64, copy=True)
    B, n, _ = A.shape
    ok = np.ones(B, dtype=bool)
    for k in range(n):
        # Rows are swapped only in the matrices whose diagonal entry is 0 here
        # (rare for dense rows, so usually none).
        zero = np.flatnonzero(A[:, k, k] == 0)
        if len(zero):
            nz = A[zero, k:, k] != 0
            ok[zero[~nz.any(axis=1)]] = False
            j = k + nz.argmax(axis=1)
            row_k = A[zero, k].copy()
            A[zero, k] = A[zero, j]
            A[zero, j] = row_k
        if k + 1 < n:
            # Column k below the pivot becomes 0 and is never read again.
            piv = A[:, k, k][:, None, None]
            f = A[:, k + 1:, k][:, :, None]
            A[:, k + 1:, k + 1:] = (piv * A[:, k + 1:, k + 1:] - f * A[:, None, k, k + 1:]) % p
    return ok


# Frequencies the symbol test visits at most (about 50 us each for a small
# kernel): a certificate is a few numbers whatever the layer's size, so the
# checker's cost is bounded here rather than by the certificate.
MAX_FREQUENCIES = 1 << 20


def symbol_rank_deficiency(
    kernel: Sequence, in_channels: int, channels: Iterable[int], sizes: Sequence[int], p: int, roots: Sequence[int],
    deadline: float | None = None,
) -> tuple[int, ...] | None:
    """The first frequency at which the symbol of the convolution restricted
    to output ``channels`` has rank < ``in_channels`` mod p, or None if it has
    full column rank at every frequency (then the periodic operator of those
    channels has full column rank over Q; module docstring).

    ``kernel[o][c]`` is a nested tuple over the kernel offsets (1-D or 2-D),
    ``sizes`` the input size N_t per dimension, ``roots[t]`` an element of
    order N_t mod p (checked by the caller).  Entries are scaled to integers
    by one common denominator, which changes no rank.  Raises ValueError above
    :data:`MAX_FREQUENCIES`, TimeoutError past ``deadline`` (perf_counter).

    >>> F = Fraction
    >>> p, roots = primes_with_roots([3])
    >>> symbol_rank_deficiency([[(F(1), F(1))]], 1, [0], [3], p, roots) is None   # 1 + z: no zero at cube roots
    True
    >>> symbol_rank_deficiency([[(F(1), F(-1))]], 1, [0], [3], p, roots)          # 1 - z vanishes at j = 0
    (0,)
    """
    channels = list(channels)
    ksize = _shape(kernel[0][0])
    offsets = list(product(*map(range, ksize)))
    flat = {(o, c): [_at(kernel[o][c], q) for q in offsets] for o in channels for c in range(in_channels)}
    D = lcm(*(v.denominator for vals in flat.values() for v in vals)) if flat else 1
    ints = {key: [int(v * D) % p for v in vals] for key, vals in flat.items()}
    # Powers r_t^(j q) for every frequency j_t and offset q_t, per dimension.
    powers = [[[pow(r, (j * q) % N, p) for q in range(k)] for j in range(N)]
              for r, N, k in zip(roots, sizes, ksize)]
    if prod(sizes) > MAX_FREQUENCIES:
        raise ValueError(f"{prod(sizes)} frequencies, more than the {MAX_FREQUENCIES} this tool visits")
    for count, freq in enumerate(product(*map(range, sizes))):
        if deadline is not None and count % 256 == 0 and time.perf_counter() > deadline:
            raise TimeoutError("time limit reached in the frequency test")
        weights = [prod(powers[t][freq[t]][q[t]] for t in range(len(q))) % p for q in offsets]
        entries = [sum(w * v for w, v in zip(weights, ints[(o, c)])) % p
                   for o in channels for c in range(in_channels)]
        if flint.nmod_mat(len(channels), in_channels, entries, p).rank() < in_channels:
            return freq
    return None


def _shape(x) -> tuple[int, ...]:
    out = []
    while isinstance(x, (tuple, list)):
        out.append(len(x))
        x = x[0]
    return tuple(out)


def _at(x, q: tuple[int, ...]):
    for i in q:
        x = x[i]
    return x


# A prime below 2^31: residues multiply inside int64 without overflow, so the
# banded elimination below runs in numpy.
SMALL_PRIME = (1 << 31) - 1


def banded_full_rank(rows: Sequence[Mapping[int, Fraction]], p: int = SMALL_PRIME,
                     max_window: int = 2_000_000, deadline: float | None = None) -> bool | None:
    """Is the square matrix of these sparse rows (n rows over columns 0..n-1,
    in the order given) nonsingular mod p?  Gaussian elimination with partial
    pivoting inside the band, as LAPACK's gbtrf does it.

    The bandwidths are read off the rows themselves (bl = max(i - j), bu =
    max(j - i) over the non-zeros), so the band is a fact about this matrix,
    not an assumption.  With row swaps, each row of U reaches at most bl + bu
    past its diagonal, and the rows still active at step i are original rows
    <= i + bl; so a window of bl + 1 rows by bl + bu + 1 columns holds every
    non-zero the elimination can touch.  n non-zero pivots mod p mean det != 0
    mod p, hence rank n over Q (module docstring).  Returns False when a
    column has no pivot (singular mod p: proves nothing), None when the
    window would exceed ``max_window`` entries (use another method).
    Raises TimeoutError past ``deadline`` (perf_counter).

    Cost: n steps of O(bl (bl + bu)) numpy work, against O(n^3) for a dense
    elimination; a "same" convolution ordered position-major has bl, bu of
    about (kernel rows / 2) x width x channels.

    >>> F = Fraction
    >>> banded_full_rank([{0: F(0), 1: F(1)}, {0: F(1), 1: F(1)}])   # needs a row swap
    True
    >>> banded_full_rank([{0: F(1), 1: F(2)}, {0: F(2), 1: F(4)}])
    False
    """
    n = len(rows)
    ints = [{c: v % p for c, v in _integer_row(r).items() if v % p} for r in rows]
    if any(c >= n or c < 0 for r in ints for c in r):
        raise ValueError("banded_full_rank needs a square matrix")
    bl = max((i - c for i, r in enumerate(ints) for c in r), default=0)
    bu = max((c - i for i, r in enumerate(ints) for c in r), default=0)
    bl, bu = max(bl, 0), max(bu, 0)
    width = bl + bu + 1
    if (bl + 1) * width > max_window:
        return None

    def window_row(r: int, start: int) -> "np.ndarray":
        out = np.zeros(width, dtype=np.int64)
        if r < n:
            for c, v in ints[r].items():
                if not start <= c < start + width:  # pragma: no cover - excluded by the bandwidths
                    raise AssertionError("a non-zero outside the band")
                out[c - start] = v
        return out

    # Active rows r = i .. i + bl, columns i .. i + bl + bu.
    W = np.stack([window_row(r, 0) for r in range(bl + 1)])
    for i in range(n):
        if deadline is not None and i % 256 == 0 and time.perf_counter() > deadline:
            raise TimeoutError("time limit reached in the banded elimination")
        nz = np.flatnonzero(W[:, 0])
        if len(nz) == 0:
            return False
        k = int(nz[0])
        if k:
            W[[0, k]] = W[[k, 0]]
        inv = pow(int(W[0, 0]), p - 2, p)
        f = (W[1:, 0] * inv) % p
        # Residues < 2^31: each product < 2^62 fits in int64.
        W[1:] = (W[1:] - (f[:, None] * W[0][None, :]) % p) % p
        # Drop row 0 and column 0; the next original row enters at the bottom.
        W[:-1, :-1] = W[1:, 1:]
        W[:-1, -1] = 0
        W[-1] = window_row(i + bl + 1, i + 1)
    return True
