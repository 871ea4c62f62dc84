"""One layer as the search sees it: exact integer rows, float rows for the
LPs, and the span of the rows fixed orthogonal kept modulo a prime
(docs/how-it-works.md).  Built once per decision from the exact layer."""

from __future__ import annotations

from operator import mul

import flint
import numpy as np

from ..exact import linalg
from . import formulation
from ..model.domain import Domain
from ..model.network import Layer

__all__ = ["LayerData", "SPAN_P", "to_float_dir"]


# The prime of the modular null-space bases in LayerData.extend (2^28 - 57).
SPAN_P = 268435399


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
        self.Wp = np.array([[x % SPAN_P for x in row] for row in self.Wi], dtype=np.int64) if self.modular else None

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

        For n < 128 the basis is kept modulo the prime SPAN_P instead (an
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
            # Fraction-free, as in the exact branch below: column j becomes
            # c_p S_j - c_j S_p, which scales the new basis vector by c_p != 0
            # (no modular inverse).  Both products are below 2^56, so their
            # difference fits an int64.
            new = (basis * c[piv] - basis[:, piv:piv + 1] * c) % SPAN_P
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
        Vf = np.array([to_float_dir(v) for v in new]).T
        Vf /= np.abs(Vf).max(axis=0)
        # |Wf_i . Vf_j| is at most n; a true zero evaluates to about n * 1e-16.
        maybe = ~(np.abs(self.Wf @ Vf) > 1e-9).any(axis=1)
        span2 = span | (1 << r)
        for i in np.nonzero(maybe)[0].tolist():
            if not span2 >> i & 1 and all(sum(map(mul, self.Wi[i], v)) == 0 for v in new):
                span2 |= 1 << i
        return self.n - len(new), span2, new

    def exact_span(self, P: int) -> tuple[int, int, list[list[int]]]:
        """(rank over Q of the P rows, mask of the rows in their span over Q,
        an integer null-space basis), with no prime involved."""
        prow = [self.Wi[i] for i in self.rows_of(P)]
        basis = linalg.nullspace(prow, self.n)
        if not basis:
            return self.n, self.all, []
        V = flint.fmpz_mat([[basis[c][r] for c in range(len(basis))] for r in range(self.n)])
        span = 0
        for i, r in enumerate((self.Wfl * V).tolist()):
            if not any(r):
                span |= 1 << i
        return self.n - len(basis), span, basis

    def span_info(self, P: int) -> tuple[int, int, list[list[int]]]:
        """(rank of the P rows, mask of rows in their span, null-space basis)."""
        rank, span, basis = self.exact_span(P)
        if not basis:
            return self.n, self.all, np.zeros((self.M, 0), dtype=np.int64) if self.modular else []
        prow = [self.Wi[i] for i in self.rows_of(P)]
        if self.modular:
            # extend() keeps S = Wp V mod SPAN_P (M x k, int64) instead of V,
            # and the span mask modulo p too (rows whose products all vanish),
            # so that the two always agree.
            # The null space is taken modulo p itself, so that n - k is the
            # rank mod p (never above the rank over Q).
            if prow:
                X, k = flint.nmod_mat([[x % SPAN_P for x in r] for r in prow], SPAN_P).nullspace()
                V = np.array([[int(X[r, c]) for c in range(k)] for r in range(self.n)], dtype=np.int64)
                V = V.reshape(self.n, k)
            else:
                V = np.eye(self.n, dtype=np.int64)
            S = (self.Wp @ V) % SPAN_P
            zero = ~S.any(axis=1)
            return self.n - S.shape[1], int.from_bytes(np.packbits(zero, bitorder="little").tobytes(), "little"), S
        return rank, span, basis


def to_float_dir(v: list[int]) -> list[float]:
    """A float vector with the direction of the integer vector v."""
    shift = max(max(abs(x) for x in v).bit_length() - 60, 0)
    return [float(x >> shift) if x >= 0 else -float((-x) >> shift) for x in v]
