"""Strided, dilated and transposed convolutions, kept as their kernels.

:class:`KernelSpec` is the exact linear operator of an ONNX ``Conv`` with any
stride and dilation, or of a ``ConvTranspose`` (PyTorch ``Conv1d``/``Conv2d``
and ``ConvTranspose1d``/``ConvTranspose2d``), always with zero padding and one
group.  It offers what :class:`~exact_inj.model.conv.ConvSpec` offers to the
rest of the package (``sparse_row``, ``apply_operator``, ``operator``,
``bias_vector``, ``channel_kernel``, ``position_major``, ``to_json``,
``padding == "zero"``), so a :class:`~exact_inj.model.conv.ConvLayer` built on
it is decided and checked through its kernel like a stride-1 convolution
(docs/theory.md, section 12).

Definitions (``x`` of shape ``(in_channels, *input_size)``, ``K`` stored as
``(out_channels, in_channels, *kernel_size)``, ``s`` the strides, ``g`` the
dilations, ``before`` the leading pads; multi-indices per spatial dimension):

* convolution (cross-correlation, as ONNX and PyTorch)::

      y[o, p] = bias[o] + sum_{c, q} K[o, c, q] * x[c, p*s + q*g - before]

  (positions outside the input read 0); output size
  ``floor((N + before + after - g*(k-1) - 1) / s) + 1``.

* transposed convolution (the adjoint of the above, as ONNX ``ConvTranspose``;
  ONNX and PyTorch store its weight as ``(in, out, *k)``, the importers swap
  the two axes)::

      y[o, t] = bias[o] + sum_{c, i, q : i*s + q*g - before = t} K[o, c, q] * x[c, i]

  output size ``s*(N-1) + output_padding + g*(k-1) + 1 - before - after``.

  Grouping the outputs t by their phase ``(t + before) mod s`` gives ``s^d``
  stride-1 convolutions of the input (its polyphase components): output
  ``t = s*m + a`` receives input ``i`` through taps ``q`` with ``q*g = s*(m - i)
  + a + before``.

Flattening is channel-major and row-major, as for ``ConvSpec`` (an NCHW tensor
with N = 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from itertools import product
from math import lcm, prod
from typing import Any, Sequence

import flint
import numpy as np

from ..errors import OperatorTooLarge
from ..exact.linalg import common_denominator, product_by_digits
from ..numbers import exact, fraction_to_str, nested_to_str
from .conv import MAX_OPERATOR_ENTRIES, ConvLayer, KernelTaps

__all__ = ["KernelSpec"]

_ZERO = Fraction(0)

# apply_operator cuts its input into at most this many float64 digits;
# larger inputs take the python-flint product.
_MAX_DIGITS = 8


def _ints(v: Any, d: int, what: str, minimum: int) -> tuple[int, ...]:
    if not isinstance(v, (list, tuple)) or len(v) != d:
        raise ValueError(f"{what} must have {d} entries, got {v!r}")
    if not all(isinstance(x, int) and not isinstance(x, bool) and x >= minimum for x in v):
        raise ValueError(f"{what} entries must be integers >= {minimum}, got {list(v)!r}")
    return tuple(int(x) for x in v)


def _nested(x: Any, depth: int, memo: dict | None = None) -> Any:
    if memo is None:
        memo = {}
    if depth == 1:
        # The innermost lists hold most entries: a Fraction is kept as it is
        # (exact() would rebuild it; this was a third of a full-size import),
        # and a number string (a certificate's kernel) is parsed once per
        # distinct string.
        return tuple(v if type(v) is Fraction else _exact_memo(v, memo) for v in x)
    return exact(x) if depth == 0 else tuple(_nested(v, depth - 1, memo) for v in x)


def _exact_memo(v: Any, memo: dict) -> Fraction:
    if type(v) is not str:
        return exact(v)
    r = memo.get(v)
    if r is None:
        r = memo[v] = exact(v)
    return r


def _shape(x: Any, depth: int, where: str) -> tuple[int, ...]:
    """The shape of ``depth`` levels of non-empty, non-ragged lists or
    tuples (level by level: a recursion per entry cost seconds on a
    full-size generator's kernels)."""
    return _shape_and_tuples(x, depth, where)[0]


def _shape_and_tuples(x: Any, depth: int, where: str) -> tuple[tuple[int, ...], bool]:
    """:func:`_shape`, and whether every level is a tuple (in the same pass)."""
    level, shape, tuples = [x], [], True
    for _ in range(depth):
        if not (tuples and all(type(t) is tuple and t for t in level)):
            tuples = False
            if not all(isinstance(t, (list, tuple)) and t for t in level):
                raise ValueError(f"{where} must be a non-empty list")
        lens = {len(t) for t in level}
        if len(lens) != 1:
            raise ValueError(f"{where} is ragged (its entries have different shapes)")
        shape.append(lens.pop())
        level = [v for t in level for v in t]
    return tuple(shape), tuples


def _freeze(x: Any, depth: int) -> Any:
    """``depth`` nested levels of lists or tuples as tuples (others kept, for
    the shape checks to name)."""
    if depth == 0 or not isinstance(x, (list, tuple)):
        return x
    return tuple(_freeze(v, depth - 1) for v in x)


def _flat(x: Any, depth: int) -> list:
    """The entries of ``depth`` nested levels, in order (as ``leaves``, level by level)."""
    level = [x]
    for _ in range(depth):
        level = [v for t in level for v in t]
    return level


@dataclass(frozen=True)
class KernelSpec(KernelTaps):
    """A strided/dilated convolution or a transposed convolution at a fixed input size.

    >>> s = KernelSpec.build([[[1, 2]]], 1, 1, [3], strides=[2], transposed=True)
    >>> s.output_size, [[int(v) for v in r] for r in s.operator()]
    ((6,), [[1, 0, 0], [2, 0, 0], [0, 1, 0], [0, 2, 0], [0, 0, 1], [0, 0, 2]])
    >>> c = KernelSpec.build([[[1, -1]]], 1, 1, [5], strides=[2])
    >>> [[int(v) for v in r] for r in c.operator()]
    [[1, -1, 0, 0, 0], [0, 0, 1, -1, 0]]
    """

    kernel: tuple
    in_channels: int
    out_channels: int
    input_size: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    output_padding: tuple[int, ...]
    transposed: bool
    bias: tuple[Fraction, ...]

    # Only zero padding: the name lets routes written for ConvSpec (which
    # test ``padding == "periodic"`` before any Fourier argument) treat this
    # operator as the zero-padded one it is.
    padding = "zero"

    def __post_init__(self) -> None:
        # Frozen all the way down: results derived from this object are
        # cached on it (taps, the integer kernel) and remembered by identity
        # (exact/ndrank.py rows_nonsingular), so a kernel held in lists that
        # its caller mutates afterwards would be checked as the old one.
        # (The kernel is frozen below, once its shape is checked.)
        for name in ("input_size", "strides", "dilations", "output_padding", "bias"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        d = len(self.input_size)
        if d not in (1, 2):
            raise ValueError(f"input_size must have 1 or 2 entries, got {self.input_size!r}")
        _ints(self.input_size, d, "input_size", 1)
        _ints(self.strides, d, "strides", 1)
        _ints(self.dilations, d, "dilations", 1)
        _ints(self.output_padding, d, "output_padding", 0)
        if not self.transposed and any(self.output_padding):
            raise ValueError("output_padding applies to transposed convolutions only")
        if self.transposed and any(op >= max(s, g) for op, s, g in zip(self.output_padding, self.strides,
                                                                          self.dilations)):
            raise ValueError("output_padding must be smaller than the stride or the dilation")
        if not isinstance(self.pads, tuple) or len(self.pads) != d or not all(
                isinstance(p, tuple) and len(p) == 2 and all(isinstance(v, int) and v >= 0 for v in p)
                for p in self.pads):
            raise ValueError(f"pads must be {d} (before, after) pairs of non-negative integers")
        shape, tuples = _shape_and_tuples(self.kernel, 2 + d, "kernel")
        if not tuples:
            object.__setattr__(self, "kernel", _freeze(self.kernel, 2 + d))
        if shape[:2] != (self.out_channels, self.in_channels):
            raise ValueError(f"kernel has shape {list(shape)}, not [{self.out_channels}, {self.in_channels}, ...]")
        if not all(type(v) is Fraction for v in _flat(self.kernel, 2 + d)):
            raise TypeError("kernel entries must be fractions.Fraction")
        if len(self.bias) != self.out_channels or not all(type(v) is Fraction for v in self.bias):
            raise ValueError(f"bias must be {self.out_channels} fractions.Fraction, one per output channel")
        if any(s < 1 for s in self.output_size):
            raise ValueError(f"the output would be empty (size {list(self.output_size)})")

    @classmethod
    def build(cls, kernel: Any, in_channels: int, out_channels: int, input_size: Sequence[int],
              strides: Sequence[int] | None = None, dilations: Sequence[int] | None = None,
              pads: Any = None, output_padding: Sequence[int] | None = None, transposed: bool = False,
              bias: Sequence[Any] | None = None) -> "KernelSpec":
        """Validate and normalise (entries: Fractions, ints or exact strings;
        ``kernel`` in (out, in, *k) layout; ``pads`` per dimension an int or a
        (before, after) pair).  Raises ValueError."""
        d = len(input_size)
        ones = [1] * d
        if pads is None:
            pads = [0] * d
        if not isinstance(pads, (list, tuple)) or len(pads) != d:
            raise ValueError(f"pads must have one entry per spatial dimension ({d})")
        pp = []
        for p in pads:
            pair = (p, p) if isinstance(p, int) else tuple(p)
            if len(pair) != 2 or not all(isinstance(v, int) and v >= 0 for v in pair):
                raise ValueError(f"pad {p!r} is not a non-negative integer or a (before, after) pair")
            pp.append((int(pair[0]), int(pair[1])))
        K = _nested(kernel, 2 + d)
        B = tuple(_ZERO for _ in range(out_channels)) if bias is None else tuple(exact(v) for v in bias)
        return cls(K, in_channels, out_channels, tuple(int(v) for v in input_size),
                   tuple(strides or ones), tuple(dilations or ones), tuple(pp),
                   tuple(output_padding or [0] * d), bool(transposed), B)

    # -- sizes ------------------------------------------------------------

    @property
    def kernel_size(self) -> tuple[int, ...]:
        k, size = self.kernel[0][0], []
        while isinstance(k, tuple):
            size.append(len(k))
            k = k[0]
        return tuple(size)

    @cached_property
    def output_size(self) -> tuple[int, ...]:
        out = []
        for N, s, g, (b, a), k, op in zip(self.input_size, self.strides, self.dilations, self.pads,
                                          self.kernel_size, self.output_padding):
            if self.transposed:
                out.append(s * (N - 1) + op + g * (k - 1) + 1 - b - a)
            else:
                span = N + b + a - g * (k - 1) - 1
                out.append(span // s + 1 if span >= 0 else 0)
        return tuple(out)

    @property
    def in_dim(self) -> int:
        return self.in_channels * prod(self.input_size)

    @property
    def out_dim(self) -> int:
        return self.out_channels * prod(self.output_size)

    def describe(self) -> str:
        """E.g. "2-D transposed convolution 8 -> 4 channels on 4x4, stride 2".

        >>> KernelSpec.build([[[1, 2]]], 1, 1, [3], strides=[2], transposed=True).describe()
        '1-D transposed convolution 1 -> 1 channels on 3, stride 2, zero padding'
        """
        kind = "transposed convolution" if self.transposed else "convolution"
        extra = f", stride {'x'.join(map(str, self.strides))}"
        if any(g != 1 for g in self.dilations):
            extra += f", dilation {'x'.join(map(str, self.dilations))}"
        return (f"{len(self.input_size)}-D {kind} {self.in_channels} -> {self.out_channels} channels on "
                f"{'x'.join(map(str, self.input_size))}{extra}, zero padding")

    # -- rows -------------------------------------------------------------

    def _source(self, p: Sequence[int], q: Sequence[int]) -> tuple[int, ...] | None:
        """The input position that output position p reads through tap q, or None."""
        src = []
        for t in range(len(p)):
            s, g, b, N = self.strides[t], self.dilations[t], self.pads[t][0], self.input_size[t]
            if self.transposed:
                num = p[t] + b - q[t] * g
                if num % s:
                    return None
                i = num // s
            else:
                i = p[t] * s + q[t] * g - b
            if not 0 <= i < N:
                return None
            src.append(i)
        return tuple(src)

    def _position(self, r: int) -> tuple[int, ...]:
        p = []
        for size in reversed(self.output_size):
            r, s = divmod(r, size)
            p.append(s)
        return tuple(reversed(p))

    def _flat(self, c: int, pos: Sequence[int], sizes: Sequence[int] | None = None) -> int:
        """Channel-major, row-major index of (c, pos) on the input grid (or on ``sizes``)."""
        idx = c
        for t, N in zip(pos, sizes or self.input_size):
            idx = idx * N + t
        return idx

    def sparse_row(self, i: int) -> dict[int, Fraction]:
        """Row i of the operator as {column: non-zero value}, from the kernel."""
        o, r = divmod(i, prod(self.output_size))
        p = self._position(r)
        row: dict[int, Fraction] = {}
        for c, q, w in self.taps[o]:
            src = self._source(p, q)
            if src is not None:
                # Two taps may reach one input (a dilation dividing a stride).
                col = self._flat(c, src)
                v = row.get(col, _ZERO) + w
                if v:
                    row[col] = v
                else:
                    row.pop(col, None)
        return row

    def _anchor(self, r: int) -> tuple[int, ...]:
        """Where row position r sits on the input grid (for a banded order)."""
        p = self._position(r)
        if self.transposed:
            return tuple((pt + b) // s for pt, s, (b, _) in zip(p, self.strides, self.pads))
        return tuple(pt * s for pt, s in zip(p, self.strides))

    def position_major(self, indices: Sequence[int]) -> list[dict[int, Fraction]]:
        """The named rows ordered by where they sit on the input grid, then
        by channel, with the columns renumbered position-major (input
        position, then channel): a permutation of rows and columns, so the
        rank is unchanged, and the matrix becomes banded for
        :func:`~exact_inj.exact.modrank.banded_full_rank` (which reads the
        band off the rows; the order is only a matter of speed)."""
        per = prod(self.output_size)
        plane = prod(self.input_size)
        cin = self.in_channels
        order = sorted(indices, key=lambda i: (self._anchor(i % per), i % per, i // per))
        return [{(c % plane) * cin + c // plane: v for c, v in self.sparse_row(i).items()} for i in order]

    def rows_by_tap(self, indices: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None:
        """The rows ``indices`` of the operator times the common factor S,
        tap by tap: for each kernel tap, (the positions in ``indices`` of the
        rows it reaches, the input pixel each of them reads through it, and
        their int64 entries there, one column per input channel).  Row
        ``indices[k]`` is the sum over taps of its entries at its pixels
        (the entries of :meth:`grid_operator`, kept dense per tap).  None
        when the integer kernel does not fit in int64.

        >>> s = KernelSpec.build([[[1, 2]]], 1, 1, [2], strides=[2], transposed=True)
        >>> [(k.tolist(), src.tolist(), V.tolist()) for k, src, V in s.rows_by_tap([0, 1, 2, 3])]
        [([0, 2], [0, 1], [[1], [1]]), ([1, 3], [0, 1], [[2], [2]])]
        """
        per = prod(self.output_size)
        idx = np.asarray(list(indices), dtype=np.int64)
        o_of, r_of = idx // per, idx % per
        out = []
        for q, K in self._tap_arrays.items():
            if K.dtype.kind == "O":
                if any(abs(v) >= 1 << 62 for v in K.ravel().tolist()):
                    return None
                K = K.astype(np.int64)
            # The input position each output position reads through tap q (-1: none).
            srcflat = np.full(per, -1, dtype=np.int64)
            srcflat[self._tap_links[q][1]] = self._tap_links[q][0]
            ks = np.flatnonzero(srcflat[r_of] >= 0)
            if ks.size:
                out.append((ks, srcflat[r_of[ks]], K[o_of[ks]]))
        return out

    def grid_operator(self, indices: Sequence[int]):
        """The rows ``indices`` (in that order, renumbered 0, 1, ...) of the
        operator times one positive common factor, as numpy arrays for
        :func:`~exact_inj.exact.ndrank.nonsingular`: ``(n, rows, cols, vals,
        row_cell, col_cell, shape)`` with n = in_dim, entries (int64) at
        (rows, cols), and a grid cell for every row and column.

        The cells (docs/theory.md, section 14): for a transposed
        convolution the input grid, input pixel i holding its in_channels
        columns and output position t the cell t // s (clipped to the grid):
        at stride 2, kernel 4 and padding 1 each pixel holds as many rows
        as columns and rows reach the cells next to their own only.  For a
        convolution the output grid, with input position i in cell i // s.
        Returns None when the integer kernel does not fit in int64.

        >>> s = KernelSpec.build([[[1, 2]]], 1, 1, [2], strides=[2], transposed=True)
        >>> n, r, c, v, rc, cc, shape = s.grid_operator([0, 1, 2, 3])
        >>> n, r.tolist(), c.tolist(), v.tolist(), rc.tolist(), cc.tolist(), shape
        (2, [0, 2, 1, 3], [0, 1, 0, 1], [1, 1, 2, 2], [0, 0, 1, 1], [0, 1], (2,))
        """
        d = len(self.input_size)
        per, plane = prod(self.output_size), prod(self.input_size)
        idx = np.asarray(list(indices), dtype=np.int64)
        r_of = idx % per
        opos = np.unravel_index(np.arange(per), self.output_size)
        ipos = np.unravel_index(np.arange(plane), self.input_size)
        if self.transposed:
            shape = self.input_size
            rcell = np.ravel_multi_index([np.minimum(opos[t] // self.strides[t], shape[t] - 1) for t in range(d)], shape)
            ccell = np.arange(plane)
        else:
            shape = self.output_size
            rcell = np.arange(per)
            ccell = np.ravel_multi_index([np.minimum(ipos[t] // self.strides[t], shape[t] - 1) for t in range(d)],
                                         shape)
        rows, cols, vals = [], [], []
        cin = self.in_channels
        taps = self.rows_by_tap(idx)
        if taps is None:
            return None
        for ks, src, V in taps:
            C = np.arange(cin)[None, :] * plane + src[:, None]
            R = np.broadcast_to(ks[:, None], V.shape)
            nz = V != 0
            rows.append(R[nz])
            cols.append(C[nz])
            vals.append(V[nz])
        if rows:
            rows_a, cols_a, vals_a = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
        else:
            rows_a = cols_a = vals_a = np.zeros(0, dtype=np.int64)
        col_cell = np.tile(ccell, cin)  # column c * plane + pos
        return self.in_dim, rows_a, cols_a, vals_a, rcell[r_of], col_cell, tuple(shape)

    def operator(self) -> list[tuple[Fraction, ...]]:
        n_in, n_out = self.in_dim, self.out_dim
        if n_in * n_out > MAX_OPERATOR_ENTRIES:
            raise OperatorTooLarge(
                f"the convolution operator would be {n_out} x {n_in} = {n_in * n_out} entries, "
                f"more than the {MAX_OPERATOR_ENTRIES} this tool densifies")
        rows = []
        for i in range(n_out):
            row = [_ZERO] * n_in
            for c, v in self.sparse_row(i).items():
                row[c] = v
            rows.append(tuple(row))
        return rows

    def bias_vector(self) -> tuple[Fraction, ...]:
        per = prod(self.output_size)
        return tuple(b for b in self.bias for _ in range(per))

    # -- exact evaluation ---------------------------------------------------

    @cached_property
    def _integer_kernel(self):
        """Per tap offset q: the (out x in) integer matrix of K[:, :, q] times
        the common scale S of kernel and bias; and the bias times S."""
        flat, S = self._scaled_entries
        kin = prod(self.kernel_size)
        per_tap = {}
        for k, q in enumerate(product(*map(range, self.kernel_size))):
            M = [[flat[(o * self.in_channels + c) * kin + k] for c in range(self.in_channels)]
                 for o in range(self.out_channels)]
            if any(v for row in M for v in row):
                per_tap[q] = flint.fmpz_mat(M)
        return per_tap, flat[-self.out_channels:], S

    @cached_property
    def _scaled_entries(self) -> tuple[list[int], int]:
        """The kernel's entries (flat, (out, in, *k) order) then the bias,
        times their common denominator S, as a list; and S."""
        arr, S = self._scaled
        return arr.tolist(), S

    @cached_property
    def _scaled(self) -> tuple[np.ndarray, int]:
        """:attr:`_scaled_entries` as a numpy array (int64 when every entry
        fits, else of Python ints).  A kernel has few distinct values (a
        full-size generator stage: 2M entries, about 150 values), and the
        importers share one object per value, so each object is scaled once,
        found by identity: hashing 4.9 M Fractions took seconds."""
        vals = _flat(self.kernel, 2 + len(self.input_size)) + list(self.bias)
        ids = np.fromiter(map(id, vals), dtype=np.uint64, count=len(vals))
        _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
        objs = [vals[i] for i in first.tolist()]
        S = lcm(1, *{v.denominator for v in objs})
        table = [v.numerator * (S // v.denominator) for v in objs]
        wide = any(abs(t) >= 1 << 62 for t in table)
        return np.array(table, dtype=object if wide else np.int64)[inverse.ravel()], S

    @property
    def integer_scale(self) -> int:
        """The positive common factor S of kernel and bias by which
        :meth:`grid_operator` and :meth:`channel_array` scale them to integers."""
        return self._scaled[1]

    def channel_array(self):
        """The integer kernel (times the positive common factor S) as an
        int64 numpy array of shape (out_channels, in_channels * taps), one
        row per output channel, or None if an entry does not fit in int32
        (so that products of two entries stay exact in int64).  The array
        is made once and is read-only."""
        return self._channel_ints

    @cached_property
    def _channel_ints(self):
        arr, _ = self._scaled
        K = arr[:len(arr) - self.out_channels]
        if K.size and any(abs(int(v)) >= 1 << 31 for v in (K.max(), K.min())):
            return None
        A = K.astype(np.int64).reshape(self.out_channels, -1)
        A.flags.writeable = False
        return A

    @cached_property
    def _tap_arrays(self) -> dict:
        """Per tap offset q with a non-zero entry: K[:, :, q] times S as an
        (out x in) numpy array, int64 when the kernel fits in int32, else
        of Python ints."""
        A = self._channel_ints
        if A is None:
            arr, _ = self._scaled
            A = arr[:len(arr) - self.out_channels].astype(object).reshape(self.out_channels, -1)
        A = A.reshape(self.out_channels, self.in_channels, -1)
        taps = {}
        for k, q in enumerate(product(*map(range, self.kernel_size))):
            Kq = np.ascontiguousarray(A[:, :, k])
            if Kq.any():
                taps[q] = Kq
        return taps

    @cached_property
    def _tap_links(self) -> dict:
        """Per tap offset q: (input positions, output positions) it links,
        as flat position indices (each input to at most one output)."""
        d = len(self.input_size)
        opos = np.unravel_index(np.arange(prod(self.output_size)), self.output_size)
        links = {}
        for q in self._tap_arrays:
            ok = np.ones(len(opos[0]), dtype=bool)
            src = []
            for t in range(d):
                s, g, b, N = self.strides[t], self.dilations[t], self.pads[t][0], self.input_size[t]
                if self.transposed:
                    num = opos[t] + b - q[t] * g
                    ok &= num % s == 0
                    i = num // s
                else:
                    i = opos[t] * s + q[t] * g - b
                ok &= (i >= 0) & (i < N)
                src.append(np.clip(i, 0, N - 1))
            out = np.flatnonzero(ok)
            links[q] = (np.ravel_multi_index([a[out] for a in src], self.input_size), out)
        return links

    def float_bound(self) -> float:
        """A bound B such that :meth:`apply_float` of a vector with entries
        of magnitude at most m is exact in float64 when m * B < 2^53: the
        largest integer kernel entry times the taps and channels summed."""
        A = self._channel_ints
        if A is None or A.size == 0:
            return float("inf") if A is None else 1.0
        return float(np.abs(A).max()) * self.in_channels * max(len(self._tap_arrays), 1)

    def apply_float(self, x):
        """S C x for an integer-valued float64 vector x (no bias; S =
        :attr:`integer_scale`), in float64: every product and partial sum
        is an integer below 2^53 when max |x| * :meth:`float_bound` < 2^53,
        so the result is then exact (the caller's bound to keep)."""
        plane, per = prod(self.input_size), prod(self.output_size)
        X = np.asarray(x, dtype=np.float64).reshape(self.in_channels, plane)
        out = np.zeros((self.out_channels, per))
        for q, Kq in self._tap_arrays.items():
            src, dst = self._tap_links[q]
            if src.size:
                out[:, dst] += Kq.astype(np.float64) @ X[:, src]
        return out.ravel()

    def tap_rows(self) -> list[list[int]]:
        """The rows K[o, :, q] (one per output channel o and tap offset q with
        a non-zero entry), as integers (all scaled by one positive common
        factor): u with every row . u = 0 is a kernel null vector
        (:func:`exact_inj.layer.convproof.kernel_null_vector`)."""
        return [[int(v) for v in row] for Kq in self._tap_arrays.values() for row in Kq.tolist()]

    def apply_operator(self, x: Sequence[Fraction]) -> tuple[Fraction, ...]:
        """C x + bias, exactly: the dense operator is never built.  The
        input is scaled to integers and cut into digits small enough for
        :meth:`apply_float` to be exact on each (one float64 matrix product
        per tap offset and digit), and the digits' results are added up as
        Python integers; a kernel too large for that takes one integer
        matrix product per tap offset (python-flint)."""
        if len(x) != self.in_dim:
            raise ValueError(f"input has {len(x)} entries, expected {self.in_dim}")
        X, D = common_denominator([Fraction(v) for v in x])
        bits = 52 - int(self.float_bound()).bit_length() if self._channel_ints is not None else 0
        # Each pass costs big-integer arithmetic over the whole vector: past a
        # few dozen digits (inputs of hundreds of bits) one python-flint
        # product per tap is faster (review: 292 s against 21.8 s at 200-bit
        # denominators), so the digits serve the common case only.
        top = max((abs(v) for v in X), default=0).bit_length()
        if bits >= 8 and top <= _MAX_DIGITS * (bits - 1):
            # Digits in [-2^(bits-2), 2^(bits-2)): |digit| * float_bound < 2^50.
            acc = product_by_digits(self.apply_float, np.array(X, dtype=object), bits - 1)
            arr, S = self._scaled
            per = prod(self.output_size)
            bias = np.repeat(np.array([int(b) * D for b in arr[len(arr) - self.out_channels:]], dtype=object), per)
            SD = S * D
            return tuple(Fraction(int(v), SD) for v in (acc + bias).tolist())
        per_tap, bias, S = self._integer_kernel
        plane, per = prod(self.input_size), prod(self.output_size)
        Xm = flint.fmpz_mat([X[c * plane:(c + 1) * plane] for c in range(self.in_channels)])
        acc = [[b * D] * per for b in bias]
        in_pos = list(product(*map(range, self.input_size)))
        out_pos = list(product(*map(range, self.output_size)))
        for q, Kq in per_tap.items():
            P = Kq * Xm  # out x (input positions): K[:, :, q] x[:, i] for every input position i
            # Tap q links input position i to at most one output position;
            # list the (input, output) links once, then add the products.
            links = []
            if self.transposed:
                for a, i in enumerate(in_pos):
                    t = tuple(it * s + qt * g - b for it, s, qt, g, (b, _) in
                              zip(i, self.strides, q, self.dilations, self.pads))
                    if all(0 <= tt < n for tt, n in zip(t, self.output_size)):
                        links.append((a, self._flat(0, t, self.output_size)))
            else:
                for r, p in enumerate(out_pos):
                    src = self._source(p, q)
                    if src is not None:
                        links.append((self._flat(0, src), r))
            ent = [int(v) for v in P.entries()]
            cols = P.ncols()
            for o in range(self.out_channels):
                row, base = acc[o], o * cols
                for a, r in links:
                    row[r] += ent[base + a]
        return tuple(Fraction(v, S * D) for row in acc for v in row)

    def layer(self, activation: str = "relu", slope: Fraction = _ZERO) -> ConvLayer:
        """This operator as a network layer, kept as its kernel."""
        return ConvLayer(self, activation, slope)

    # -- JSON ---------------------------------------------------------------

    def to_json(self) -> dict:
        """The ``"type": "conv_transpose"`` or ``"type": "strided_conv"`` layer object."""
        out = {
            "type": "conv_transpose" if self.transposed else "strided_conv",
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "input_size": list(self.input_size),
            "strides": list(self.strides),
            "dilations": list(self.dilations),
            "pad": [list(p) for p in self.pads],
            "kernel": nested_to_str(self.kernel),
            "bias": [fraction_to_str(b) for b in self.bias],
        }
        if self.transposed:
            out["output_padding"] = list(self.output_padding)
        return out

    JSON_KEYS = ("type", "in_channels", "out_channels", "input_size", "strides", "dilations", "pad",
                 "output_padding", "kernel", "bias", "activation", "slope")

    @classmethod
    def from_json(cls, obj: dict) -> "KernelSpec":
        """The inverse of :meth:`to_json` (numbers already exact or exact
        strings); raises ValueError naming the key."""
        for key in obj:
            if key not in cls.JSON_KEYS:
                raise ValueError(f"unknown key {key!r} in a {obj.get('type')} layer")
        transposed = obj.get("type") == "conv_transpose"
        for key in ("kernel", "in_channels", "out_channels", "input_size"):
            if key not in obj:
                raise ValueError(f"missing {key!r}")
        size = obj["input_size"]
        if not isinstance(size, list) or len(size) not in (1, 2):
            raise ValueError(f"input_size must be [L] or [H, W], got {size!r}")
        d = len(size)
        for key in ("in_channels", "out_channels"):
            v = obj[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{key} must be a positive integer, got {v!r}")
        shape = _shape(obj["kernel"], 2 + d, "kernel")
        if shape[:2] != (obj["out_channels"], obj["in_channels"]):
            raise ValueError(f"kernel has shape {list(shape)}, not [out_channels, in_channels, ...]")
        if not transposed and "output_padding" in obj:
            raise ValueError("output_padding applies to conv_transpose layers only")
        bias = obj.get("bias")
        if bias is not None and (not isinstance(bias, list) or len(bias) != obj["out_channels"]):
            raise ValueError("bias must have one entry per output channel")
        return cls.build(obj["kernel"], obj["in_channels"], obj["out_channels"], size,
                         obj.get("strides"), obj.get("dilations"), obj.get("pad"),
                         obj.get("output_padding"), transposed, bias)
