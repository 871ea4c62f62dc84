"""Nonsingularity of a stride-2 transposed convolution's square rows through
its Toeplitz structure, modulo a prime (docs/theory.md, section 14,
"One Toeplitz elimination instead of a dissection").

The rows are output positions (Y, X) (one channel each) of a 2-D transposed
convolution whose output grid is twice its input grid (h x w -> 2h x 2w,
strides 2), the columns its inputs (pixel b, channel c).  Row (Y, X) goes to
the *cell* a = ((Y + 1) // 2, (X + 1) // 2).  Three kinds of rows and two of
columns:

- interior rows, in cells a >= (1, 1) of the h x w grid; interior columns,
  at pixels b >= (1, 1);
- N rows, in the first row or column of cells (a_0 = 0 or a_1 = 0); B
  columns, at pixels in the first row or column.  Each B cell's columns are
  split into P (as many as its N rows, where those rows are independent
  modulo p) and Q (the rest);
- W rows, whose cell falls off the grid (Y = 2h - 1 or X = 2w - 1).

With rows ordered (N, interior, W) and columns (P, interior, Q), and with
the structure checked on the entries, not assumed:

1. N rows have entries only in B columns, in their own cell or earlier
   ones along the chain (0,0), (0,1), ..., (0,w-1), (1,0), ..., (h-1,0):
   M[N, P] is block lower triangular with square diagonal blocks and
   M[N, interior] = 0;
2. the interior block M[I, I] is the same c x c block T_d at every
   interior row cell a and column cell a - d, d in {0, 1}^2, and zero
   elsewhere: a two-level block lower-triangular Toeplitz matrix, whose
   inverse is the two-level Toeplitz matrix of the truncated power series
   V = T^-1 (V_0 = T_0^-1, V_k = -T_0^-1 sum_{d != 0} T_d V_(k-d)), when
   T_0 is invertible;
3. so K = M[(N, I), (P, I)] is block lower triangular, det K = prod
   det M[N_b, P_b] * det(T_0)^(number of interior cells), and
   det M = +-det K * det S with the Schur complement
   S = M[W, Q] - Z M[N, Q] - G M[I, Q], where G = M[W, I] M[I, I]^-1 and
   Z = (M[W, P] - G M[I, P]) M[N, P]^-1.

Every diagonal block of M[N, P], T_0 and S is shown nonsingular modulo p
(:func:`~exact_inj.exact.densemod.block_inverse` and
:func:`~exact_inj.exact.densemod.eliminate` raise
:class:`~exact_inj.exact.densemod.SingularBlock` otherwise), so det M != 0
mod p, so M has full rank over Q.  Only G's columns at the interior cells
next to the first row and column are needed (M[I, B] vanishes elsewhere),
and each is a sum over the few cells W rows touch: the cost is that of S,
whose side is about (2h + 2w) times the channels of a row class, far below
the fronts of a nested dissection.  The same factors solve M x = r modulo p
for :mod:`exact_inj.exact.ndsolve` (:class:`QuadrantFactor`).

Trusted: this module searches nothing and imports no solver.

>>> from exact_inj.model.kernels import KernelSpec
>>> import numpy as np
>>> K = np.random.default_rng(1).integers(-4, 5, size=(2, 8, 4, 4)).tolist()
>>> spec = KernelSpec.build(K, 8, 2, [3, 3], strides=[2, 2], pads=[1, 1], transposed=True)   # 72 x 72
>>> qf = factor(spec, range(spec.out_dim), 1048573)
>>> qf.n, qf.p, len(qf.w_rows)
(72, 1048573, 22)
"""

from __future__ import annotations

import time
from typing import Sequence

import flint
import numpy as np

from .densemod import MAX_INNER, SingularBlock, block_inverse, eliminate, lu_solve, reduce_mod
from .modrank import is_prime, pivot_columns

__all__ = ["MAX_BYTES", "MAX_SCHUR", "QuadrantFactor", "factor"]

# The four offsets d of a row cell from the column cells its rows reach, as
# an index 2 d_0 + d_1.
_OFFSETS = ((0, 0), (0, 1), (1, 0), (1, 1))

# The Schur complement S is dense, m x m with m about (2h + 2w) times the
# channels of a row class: above this side (0.5 GB as float64) the
# dissection is left to do it.
MAX_SCHUR = 8192

# Nor above this many bytes of dense arrays in all (a full-size generator
# stage needs under 0.1 GB; 256 channels on a 32 x 32 grid would need 2 GB).
MAX_BYTES = 1 << 30


def _mod(X: np.ndarray, p: int) -> np.ndarray:
    reduce_mod(X, p)
    return X


def _residues(K: np.ndarray, p: int) -> np.ndarray:
    """Integer entries (int64) as reduced float64 residues; entries already
    inside (-p/2, p/2), a kernel's usual small integers, are their own."""
    if K.size == 0 or int(np.abs(K).max()) < p // 2:
        return K.astype(np.float64)
    return _mod((K % p).astype(np.float64), p)


def _prod(A: np.ndarray, B: np.ndarray, p: int) -> np.ndarray:
    """A B mod p for reduced A, B whose inner dimension is at most MAX_INNER
    (checked by the caller): every partial sum is an integer below 2^51."""
    return _mod(A @ B, p)


class QuadrantFactor:
    """The factors of :func:`factor`: enough to solve M x = r modulo p
    (:meth:`solve`); building them is the nonsingularity proof."""

    def __init__(self, **parts) -> None:
        self.__dict__.update(parts)

    @property
    def nbytes(self) -> int:
        """Memory held by the factors (the dense blocks)."""
        total = self.S.nbytes + self.T.nbytes + self.Dinv.nbytes
        for blocks in (self.nb, self.ib):
            total += sum(B.nbytes for B in blocks.values())
        total += sum(B.nbytes for _, B in self.wi.values()) + sum(B.nbytes for _, B in self.wb.values())
        return total + sum(B.nbytes for B in self.inv)

    def _k_solve(self, rn: list[np.ndarray], ri: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """K (xP, xI) = (rn, ri) mod p: along the chain, then across the
        interior anti-diagonal by anti-diagonal (ri: interior cells x c)."""
        p = self.p
        xp: list[np.ndarray] = []
        for b, rows in enumerate(rn):
            v = rows.copy()
            for b2 in self.nb_left[b]:
                v = _mod(v - _prod(self.nb[b, b2][:, self.pcols[b2]], xp[b2], p), p)
            xp.append(_prod(self.inv[b], v, p))
        y = ri.copy()
        for (c, b), B in self.ib.items():
            y[c] = _mod(y[c] - _prod(B[:, self.pcols[b]], xp[b], p), p)
        hi, wi = self.interior
        x = np.zeros((hi, wi, y.shape[1]))
        y = y.reshape(hi, wi, -1)
        for s in range(hi + wi - 1):
            k0 = np.arange(max(0, s - wi + 1), min(s, hi - 1) + 1)
            k1 = s - k0
            acc = y[k0, k1].copy()
            for di, (d0, d1) in enumerate(_OFFSETS):
                if di == 0:
                    continue
                ok = (k0 >= d0) & (k1 >= d1)
                if ok.any():
                    prev = x[k0[ok] - d0, k1[ok] - d1]
                    acc[ok] = _mod(acc[ok] - _mod(prev @ self.T[di].T, p), p)
            x[k0, k1] = _mod(acc @ self.Dinv.T, p)
        return xp, x.reshape(hi * wi, -1)

    def solve(self, b: np.ndarray) -> np.ndarray:
        """x with M x = b modulo p (b and x reduced float64 residues, indexed
        by the rows and columns of M)."""
        p = self.p
        r = np.asarray(b, dtype=np.float64)
        rn = [r[rows] for rows in self.n_rows]
        ri = r[self.i_rows].reshape(self.i_cols.shape)
        up, ui = self._k_solve(rn, ri)
        rhs = r[self.w_rows].copy()
        for b_, (at, B) in self.wb.items():
            rhs[at] -= _prod(B[:, self.pcols[b_]], up[b_], p)
        for d, (at, B) in self.wi.items():
            rhs[at] -= _prod(B, ui[d], p)
        xq = lu_solve(self.S, _mod(rhs, p), p)
        xq_b = [xq[o:o + len(q)] for o, q in zip(self.qoff, self.qcols)]
        for (b_, b2), B in self.nb.items():
            rn[b_] = _mod(rn[b_] - _prod(B[:, self.qcols[b2]], xq_b[b2], p), p)
        for (c, b_), B in self.ib.items():
            ri[c] = _mod(ri[c] - _prod(B[:, self.qcols[b_]], xq_b[b_], p), p)
        xp, xi = self._k_solve(rn, ri)
        x = np.zeros(self.n)
        x[self.i_cols] = xi
        for b_ in range(len(xp)):
            x[self.b_cols[b_][self.pcols[b_]]] = xp[b_]
            x[self.b_cols[b_][self.qcols[b_]]] = xq_b[b_]
        return x


def _blocks(keys: np.ndarray, rloc: np.ndarray, vals: np.ndarray, nrows, p: int) -> dict:
    """Dense blocks (rows x channels) from pieces grouped by ``keys``: piece
    j adds the channel row vals[j] to row rloc[j] of block keys[j] (rows
    given twice add up); reduced mod p."""
    out = {}
    if keys.size == 0:
        return out
    order = np.argsort(keys, kind="stable")
    keys, rloc, vals = keys[order], rloc[order], vals[order]
    cuts = np.flatnonzero(np.diff(keys)) + 1
    for lo, hi in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [keys.size]])):
        k = int(keys[lo])
        B = np.zeros((nrows(k), vals.shape[1]))
        np.add.at(B, rloc[lo:hi], vals[lo:hi])
        out[k] = _mod(B, p)
    return out


def factor(spec, indices: Sequence[int], p: int, deadline: float | None = None) -> QuadrantFactor | None:
    """The rows ``indices`` of ``spec``'s operator (a 2-D transposed
    convolution with strides 2 and an output grid twice its input grid, at
    least 3 x 3 pixels) shown nonsingular modulo the prime p (< 2^20), with
    the factors that solve them; None when the rows do not have the
    structure of the module docstring (nothing is said then).  Raises
    :class:`~exact_inj.exact.densemod.SingularBlock` when a pivot block is
    singular mod p (nothing is shown) and TimeoutError past ``deadline``."""
    # The float64 arithmetic is exact for primes below 2^20 only, and a
    # composite modulus has no inverses to pivot with.
    if not (2 < p < (1 << 20)) or not is_prime(p):
        raise ValueError("the float64 arithmetic needs a prime below 2^20")
    if not getattr(spec, "transposed", False) or len(spec.input_size) != 2 or tuple(spec.strides) != (2, 2):
        return None
    h, w = spec.input_size
    H2, W2 = spec.output_size
    cin = spec.in_channels
    if (H2, W2) != (2 * h, 2 * w) or h < 3 or w < 3 or cin > MAX_INNER:
        return None
    idx = np.asarray(list(indices), dtype=np.int64)
    taps = spec.rows_by_tap(idx)
    if not taps:   # too large for int64, or a kernel of zeros
        return None
    n = spec.in_dim
    plane, per = h * w, H2 * W2
    if n != cin * plane or len(idx) != n:
        return None
    # The operator as pieces: row r of M reads input pixel src through a
    # tap with the channel row V (residues mod p).  A (row, pixel) given
    # twice adds up in the blocks below; in the Toeplitz part, where
    # pieces are compared one by one, it is refused (fact 2's count).
    r_all = np.concatenate([t[0] for t in taps])
    src = np.concatenate([t[1] for t in taps])
    V = np.concatenate([_residues(t[2], p) for t in taps])
    del taps
    # Rows: cell, label inside the cell (class of channels, then the offset
    # of (Y, X) from the cell's first position), kind.
    o, q = idx // per, idx % per
    Y, X = q // W2, q % W2
    a0, a1 = (Y + 1) // 2, (X + 1) // 2
    classes, rank = np.unique(o, return_inverse=True)
    if 4 * len(classes) != cin:
        return None
    label = rank * 4 + (Y - 2 * a0 + 1) * 2 + (X - 2 * a1 + 1)
    wrapped = (a0 == h) | (a1 == w)
    inner = ~wrapped & (a0 >= 1) & (a1 >= 1)
    edge = ~wrapped & ~inner
    hi, wi = h - 1, w - 1
    icell = np.where(inner, (a0 - 1) * wi + (a1 - 1), -1)
    chain = np.where(a0 == 0, a1, wi + a0)  # (0, j) -> j, (i, 0) -> w - 1 + i
    # Pixels: interior or B, their cell and place on the chain.
    b0, b1 = np.arange(plane) // w, np.arange(plane) % w
    pinner = (b0 >= 1) & (b1 >= 1)
    pcell = np.where(pinner, (b0 - 1) * wi + (b1 - 1), -1)
    pchain = np.where(b0 == 0, b1, wi + b0)
    nb_cells = h + w - 1
    # Every interior cell holds each label once (c rows).
    if inner.sum() != hi * wi * cin or \
            np.bincount(icell[inner] * cin + label[inner], minlength=hi * wi * cin).max(initial=0) != 1:
        return None
    kind = np.where(inner, 1, np.where(edge, 0, 2))[r_all]   # 0 N, 1 interior, 2 W
    # Fact 1: N rows reach B pixels only, their own cell's or earlier ones on the chain.
    en = kind == 0
    if pinner[src[en]].any() or (pchain[src[en]] > chain[r_all[en]]).any():
        return None
    # Interior rows reach the cells a - d, d in {0, 1}^2, only.
    ei = kind == 1
    ri, si, vi = r_all[ei], src[ei], V[ei]
    d0 = a0[ri] - b0[si]
    d1 = a1[ri] - b1[si]
    if ((d0 < 0) | (d0 > 1) | (d1 < 0) | (d1 > 1)).any():
        return None
    di = 2 * d0 + d1
    both = pinner[si]
    # Fact 2: the Toeplitz blocks T_d, read at the last interior cell, equal
    # every interior cell's channel row for channel row; a row a piece
    # does not give is zero, so it must be zero in T_d too.
    ref = both & (icell[ri] == hi * wi - 1)
    T = np.zeros((4, cin, cin))
    T[di[ref], label[ri[ref]]] = vi[ref]
    if not np.array_equal(T[di[both], label[ri[both]]], vi[both]):
        return None
    present = np.bincount(ri[both] * 4 + di[both], minlength=n * 4).reshape(n, 4)[inner]
    Tzero = ~T.any(axis=2)   # (offset, label)
    ra0, ra1, rl = a0[inner], a1[inner], label[inner]
    for t, (o0, o1) in enumerate(_OFFSETS):
        valid = (ra0 - o0 >= 1) & (ra1 - o1 >= 1)
        if not np.all(~valid | (present[:, t] == 1) | Tzero[t, rl]):
            return None
    del present, ref
    if deadline is not None and time.perf_counter() > deadline:
        raise TimeoutError("time limit reached in the Toeplitz elimination")
    Dinv = block_inverse(T[0], p)
    # Rows and columns per cell, in label and channel order.
    order = np.lexsort((label, icell))
    i_rows = order[inner[order]]
    chans = np.arange(cin) * plane
    i_cols = (chans[None, :] + np.flatnonzero(pinner)[np.argsort(pcell[pinner], kind="stable")][:, None])
    bpix = np.flatnonzero(~pinner)
    bpix = bpix[np.argsort(pchain[bpix], kind="stable")]
    b_cols = [chans + int(x) for x in bpix]
    nr = np.flatnonzero(edge)
    nr = nr[np.lexsort((label[nr], chain[nr]))]
    n_rows = np.split(nr, np.searchsorted(chain[nr], np.arange(1, nb_cells)))
    w_rows = np.flatnonzero(wrapped)
    nloc = np.full(n, -1, dtype=np.int64)
    nloc[nr] = np.arange(len(nr)) - np.searchsorted(chain[nr], chain[nr])
    wloc = np.full(n, -1, dtype=np.int64)
    wloc[w_rows] = np.arange(len(w_rows))
    # The blocks: N rows x B cells, interior rows x B cells, W rows x cells
    # (for W, the rows of each block are those W rows with a piece there).
    nb = _blocks(chain[r_all[en]] * nb_cells + pchain[src[en]], nloc[r_all[en]], V[en],
                 lambda k: len(n_rows[k // nb_cells]), p)
    nb = {divmod(k, nb_cells): B for k, B in nb.items()}
    eb = ~both
    ib = _blocks(icell[ri[eb]] * nb_cells + pchain[si[eb]], label[ri[eb]], vi[eb], lambda k: cin, p)
    ib = {divmod(k, nb_cells): B for k, B in ib.items()}
    del ri, si, vi, di, d0, d1, both, eb
    ew = kind == 2
    wr, ws, wv = wloc[r_all[ew]], src[ew], V[ew]
    del r_all, src, V
    wi_blocks, wb_blocks = {}, {}
    for target, cellid, mask in ((wi_blocks, pcell, pinner[ws]), (wb_blocks, pchain, ~pinner[ws])):
        if not mask.any():   # W rows reading no pixel of this kind (review: an empty group)
            continue
        r_, s_, v_ = wr[mask], ws[mask], wv[mask]
        order = np.lexsort((r_, cellid[s_]))
        r_, cells, v_ = r_[order], cellid[s_[order]], v_[order]
        cuts = np.flatnonzero(np.diff(cells)) + 1
        for lo, hi_ in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [cells.size]])):
            at, loc = np.unique(r_[lo:hi_], return_inverse=True)
            B = np.zeros((len(at), cin))
            np.add.at(B, loc, v_[lo:hi_])
            target[int(cells[lo])] = (at, _mod(B, p))
    # P: for each B cell, columns where its N rows are independent mod p.
    pcols, qcols, inv = [], [], []
    for b in range(nb_cells):
        k = len(n_rows[b])
        A = nb.get((b, b))
        if k == 0:
            pcols.append(np.zeros(0, dtype=np.int64))
        else:
            if A is None:
                raise SingularBlock(f"B cell {b}'s rows have no entry in its columns")
            R, rk = flint.nmod_mat(k, cin, (A.astype(np.int64) % p).ravel().tolist(), p).rref()
            if rk < k:
                raise SingularBlock(f"B cell {b}'s {k} rows are dependent modulo {p}")
            pcols.append(np.array(pivot_columns(R, k), dtype=np.int64))
        qcols.append(np.setdiff1d(np.arange(cin), pcols[-1]))
        inv.append(block_inverse(A[:, pcols[-1]], p) if k else np.zeros((0, 0)))
    m = len(w_rows)
    # The dense arrays: V (one block per interior offset), G (one column
    # block per interior cell next to the first row or column) and S.
    if m > MAX_SCHUR or 8 * (hi * wi * cin * cin + (hi + wi - 1) * m * cin + m * m) > MAX_BYTES:
        return None
    qoff = np.concatenate([[0], np.cumsum([len(qc) for qc in qcols])]).astype(np.int64)
    if qoff[-1] != m or sum(len(r) for r in n_rows) != sum(len(pc) for pc in pcols):
        return None
    # V = T^-1 as a truncated power series, anti-diagonal by anti-diagonal.
    V = np.zeros((hi, wi, cin, cin))
    V[0, 0] = Dinv
    for s in range(1, hi + wi - 1):
        if deadline is not None and time.perf_counter() > deadline:
            raise TimeoutError("time limit reached in the Toeplitz elimination")
        k0 = np.arange(max(0, s - wi + 1), min(s, hi - 1) + 1)
        k1 = s - k0
        acc = np.zeros((len(k0), cin, cin))
        for t, (o0, o1) in enumerate(_OFFSETS):
            if t == 0:
                continue
            ok = (k0 >= o0) & (k1 >= o1)
            if ok.any():
                acc[ok] = _mod(acc[ok] + _mod(T[t] @ V[k0[ok] - o0, k1[ok] - o1], p), p)
        V[k0, k1] = _mod(-(Dinv @ acc), p)
    # G's columns at the interior cells whose rows reach B columns: for
    # each cell d that W rows reach, their block times V_(d - c) for all
    # those c at once (zero where d - c is not >= 0).
    gc = sorted({c for c, _ in ib})
    c0, c1 = np.divmod(np.array(gc, dtype=np.int64), wi)
    G = np.zeros((len(gc), m, cin))
    for d, (at, B) in wi_blocks.items():
        e0, e1 = d // wi - c0, d % wi - c1
        ok = (e0 >= 0) & (e1 >= 0)
        if ok.any():
            G[np.ix_(np.flatnonzero(ok), at)] = _mod(G[np.ix_(np.flatnonzero(ok), at)] + _mod(B @ V[e0[ok], e1[ok]], p), p)
    G = dict(zip(gc, G))
    # H = M[W, P] - G M[I, P], then Z = H M[N, P]^-1 backwards along the chain.
    H = [np.zeros((m, len(pc))) for pc in pcols]
    for b, (at, B) in wb_blocks.items():
        H[b][at] = B[:, pcols[b]]
    for (c, b), B in ib.items():
        H[b] = _mod(H[b] - _prod(G[c], B[:, pcols[b]], p), p)
    nb_left = [[] for _ in range(nb_cells)]
    nb_below = [[] for _ in range(nb_cells)]
    for b, b2 in nb:
        if b2 != b:
            nb_left[b].append(b2)
            nb_below[b2].append(b)
    Z: list = [None] * nb_cells
    for b in reversed(range(nb_cells)):
        Hb = H[b]
        for b2 in nb_below[b]:
            Hb = _mod(Hb - _prod(Z[b2], nb[b2, b][:, pcols[b]], p), p)
        Z[b] = _prod(Hb, inv[b], p)
    # S = M[W, Q] - Z M[N, Q] - G M[I, Q].
    S = np.zeros((m, m))
    for b, (at, B) in wb_blocks.items():
        S[at, qoff[b]:qoff[b + 1]] = B[:, qcols[b]]
    for (b, b2), B in nb.items():
        S[:, qoff[b2]:qoff[b2 + 1]] = _mod(S[:, qoff[b2]:qoff[b2 + 1]] - _prod(Z[b], B[:, qcols[b2]], p), p)
    for (c, b), B in ib.items():
        S[:, qoff[b]:qoff[b + 1]] = _mod(S[:, qoff[b]:qoff[b + 1]] - _prod(G[c], B[:, qcols[b]], p), p)
    del G, H, Z
    if deadline is not None and time.perf_counter() > deadline:
        raise TimeoutError("time limit reached in the Toeplitz elimination")
    eliminate(S, m, p, keep=True)
    return QuadrantFactor(n=n, p=p, interior=(hi, wi), T=T, Dinv=Dinv, S=S.astype(np.float32), nb=nb, ib=ib,
                          wi=wi_blocks, wb=wb_blocks, inv=inv, pcols=pcols, qcols=qcols, qoff=qoff.tolist(),
                          nb_left=nb_left, n_rows=n_rows, i_rows=i_rows, i_cols=i_cols.reshape(hi * wi, cin),
                          b_cols=b_cols, w_rows=w_rows)
