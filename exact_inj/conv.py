"""Convolutional layers as exact linear operators.

A multi-channel convolution with stride 1 at a fixed input size is a linear
map, so it is one ordinary :class:`~exact_inj.model.Layer` whose weight is the
convolution operator (theory notes, section 8).  This module builds that
operator exactly; the JSON reader (``"type": "conv"``), the ONNX importer
(``Conv``) and the PyTorch importer (``Conv1d``/``Conv2d``) all go through it,
so the three agree on one definition.

Definition (cross-correlation, as in ONNX, PyTorch and most frameworks; the
kernel is *not* flipped)::

    y[o, p] = sum_{c, q} K[o, c, q] * xpad[c, p + q]

for every output channel ``o``, input channel ``c``, output position ``p`` and
kernel offset ``q`` (``p`` and ``q`` are multi-indices: one coordinate for 1-D,
two for 2-D).  ``xpad`` is the input extended by ``before[t]`` positions in
front and ``after[t]`` behind in each spatial dimension ``t``:

* ``"zero"`` padding: the added positions hold 0;
* ``"periodic"`` (circular) padding: ``xpad[c, s] = x[c, (s - before) mod N]``,
  PyTorch's ``padding_mode="circular"``.  With ``pad="same"`` the operator is
  the paper's square N x N convolution operator (its Definition 2) on the
  torus.

The output size in dimension ``t`` is ``N[t] + before[t] + after[t] - k[t] + 1``.

**Flattening (channel-major, row-major).**  The operator acts on the input
flattened as ``index = c * (H * W) + h * W + w`` (1-D: ``c * L + l``), i.e. a
C-order ``ravel()`` of an array of shape ``(in_channels, *input_size)``; its
rows are the outputs in the same order for shape ``(out_channels,
*output_size)``.  This is the order of an NCHW tensor with N = 1, which is what
ONNX ``Flatten`` and ``torch.nn.Flatten`` produce, so a dense layer after a
convolution reads it the same way here as in those frameworks.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from itertools import product
from math import prod
from typing import Any, Sequence

from .model import Layer

__all__ = ["PADDINGS", "MAX_OPERATOR_ENTRIES", "ConvSpec", "conv_operator", "normalize_pads"]

PADDINGS = ("zero", "periodic")

# The operator is built dense (a Layer is a dense matrix).  A convolution on a
# real image is far larger than anything the exact engine can decide, and
# densifying it would take minutes and gigabytes before failing; refuse it
# early instead, with its size in the message.
MAX_OPERATOR_ENTRIES = 4_000_000

_ZERO = Fraction(0)


def normalize_pads(pad: Any, kernel_size: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """``(before, after)`` for every spatial dimension, from the accepted forms.

    ``pad`` is an int ``k`` (k on both sides of every dimension), the string
    ``"same"`` (``before = (k-1)//2``, ``after = k-1-before``: the output has
    the input's size; the extra position of an even kernel goes behind, as in
    ONNX ``SAME_UPPER`` and PyTorch ``padding="same"``), or a list with one
    entry per spatial dimension, each an int or a ``[before, after]`` pair.
    Raises ValueError.

    >>> normalize_pads(1, (3, 3))
    ((1, 1), (1, 1))
    >>> normalize_pads("same", (4,))
    ((1, 2),)
    >>> normalize_pads([0, [1, 2]], (3, 3))
    ((0, 0), (1, 2))
    """
    d = len(kernel_size)
    if isinstance(pad, str):
        if pad != "same":
            raise ValueError(f"pad {_show(pad)} is not an integer, a list or 'same'")
        return tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel_size)
    if _is_int(pad):
        if pad < 0:
            raise ValueError(f"pad {pad} is negative")
        return tuple((int(pad), int(pad)) for _ in range(d))
    if isinstance(pad, (list, tuple)):
        if len(pad) != d:
            raise ValueError(f"pad has {len(pad)} entries but the kernel has {d} spatial dimensions")
        out = []
        for t, p in enumerate(pad):
            if _is_int(p):
                pair = (p, p)
            elif isinstance(p, (list, tuple)) and len(p) == 2 and all(_is_int(v) for v in p):
                pair = (p[0], p[1])
            else:
                raise ValueError(f"pad[{t}] is {_show(p)}; expected an integer or a [before, after] pair")
            if pair[0] < 0 or pair[1] < 0:
                raise ValueError(f"pad[{t}] is negative")
            out.append((int(pair[0]), int(pair[1])))
        return tuple(out)
    raise ValueError(f"pad {_show(pad)} is not an integer, a list or 'same'")


def _show(v: Any) -> str:
    # Values from the JSON reader are Fractions: show 3/2, not Fraction(3, 2).
    if isinstance(v, Fraction):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    return repr(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _nested_shape(x: Any, depth: int, where: str) -> tuple[int, ...]:
    """Shape of a rectangular nested list of the given depth; ValueError if ragged."""
    if depth == 0:
        return ()
    if not isinstance(x, (list, tuple)) or not x:
        raise ValueError(f"{where} must be a non-empty list")
    shapes = {_nested_shape(v, depth - 1, f"{where}[{i}]") for i, v in enumerate(x)}
    if len(shapes) != 1:
        raise ValueError(f"{where} is ragged (its entries have different shapes)")
    return (len(x), *shapes.pop())


@dataclass(frozen=True)
class ConvSpec:
    """One convolution at a fixed input size; :meth:`operator` is its exact matrix.

    ``kernel`` has shape ``(out_channels, in_channels, *kernel_size)`` (the
    ONNX/PyTorch weight layout) as nested tuples of Fractions; ``pads`` holds
    ``(before, after)`` per spatial dimension.

    >>> F = Fraction
    >>> s = ConvSpec.build([[[1, -1]]], 1, 1, [3], "periodic", 0)
    >>> s.output_size, s.out_dim, s.in_dim
    ((2,), 2, 3)
    >>> [[str(v) for v in r] for r in s.operator()]
    [['1', '-1', '0'], ['0', '1', '-1']]
    """

    kernel: tuple
    in_channels: int
    out_channels: int
    input_size: tuple[int, ...]
    padding: str
    pads: tuple[tuple[int, int], ...]
    bias: tuple[Fraction, ...]

    @classmethod
    def build(
        cls,
        kernel: Any,
        in_channels: int,
        out_channels: int,
        input_size: Sequence[int],
        padding: str = "zero",
        pad: Any = 0,
        bias: Sequence[Any] | None = None,
    ) -> "ConvSpec":
        """Validate and normalise; entries may be Fractions, ints or strings
        (``Layer.from_rows`` rules: floats are refused).  Raises ValueError."""
        from .model import _exact

        if not _is_int(in_channels) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
        if not _is_int(out_channels) or out_channels < 1:
            raise ValueError(f"out_channels must be a positive integer, got {out_channels!r}")
        if not isinstance(input_size, (list, tuple)) or len(input_size) not in (1, 2):
            raise ValueError(f"input_size must be [L] or [H, W], got {input_size!r}")
        if not all(_is_int(v) and v >= 1 for v in input_size):
            raise ValueError(f"input_size entries must be positive integers, got {list(input_size)!r}")
        d = len(input_size)
        shape = _nested_shape(kernel, 2 + d, "kernel")
        if shape[0] != out_channels or shape[1] != in_channels:
            raise ValueError(
                f"kernel has shape {list(shape)} but (out_channels, in_channels) = "
                f"({out_channels}, {in_channels}); expected [{out_channels}, {in_channels}, "
                + ", ".join("k" for _ in range(d)) + "]"
            )
        if padding not in PADDINGS:
            raise ValueError(f"padding {padding!r} is not one of {', '.join(map(repr, PADDINGS))}")
        ksize = shape[2:]
        pads = normalize_pads(pad, ksize)

        def conv(x: Any, depth: int) -> Any:
            return _exact(x) if depth == 0 else tuple(conv(v, depth - 1) for v in x)

        K = conv(kernel, 2 + d)
        if bias is None:
            B = tuple(_ZERO for _ in range(out_channels))
        else:
            if len(bias) != out_channels:
                raise ValueError(f"bias has {len(bias)} entries but there are {out_channels} output channels")
            B = tuple(_exact(v) for v in bias)
        spec = cls(K, in_channels, out_channels, tuple(int(v) for v in input_size), padding, pads, B)
        spec.output_size  # noqa: B018 - validates that the output is non-empty
        return spec

    @property
    def kernel_size(self) -> tuple[int, ...]:
        k = self.kernel[0][0]
        size = []
        while isinstance(k, tuple):
            size.append(len(k))
            k = k[0]
        return tuple(size)

    @property
    def output_size(self) -> tuple[int, ...]:
        out = tuple(
            n + b + a - k + 1 for n, (b, a), k in zip(self.input_size, self.pads, self.kernel_size)
        )
        if any(s < 1 for s in out):
            raise ValueError(
                f"the kernel {list(self.kernel_size)} does not fit the padded input "
                f"{[n + b + a for n, (b, a) in zip(self.input_size, self.pads)]}"
            )
        return out

    @property
    def in_dim(self) -> int:
        return self.in_channels * prod(self.input_size)

    @property
    def out_dim(self) -> int:
        return self.out_channels * prod(self.output_size)

    def operator(self) -> list[tuple[Fraction, ...]]:
        """The dense operator, ``out_dim`` rows of ``in_dim`` Fractions (order: module doc)."""
        n_in, n_out = self.in_dim, self.out_dim
        if n_in * n_out > MAX_OPERATOR_ENTRIES:
            raise ValueError(
                f"the convolution operator would be {n_out} x {n_in} = {n_in * n_out} entries, "
                f"more than the {MAX_OPERATOR_ENTRIES} this tool densifies"
            )
        N, out_size, pads = self.input_size, self.output_size, self.pads
        periodic = self.padding == "periodic"
        # Row-major strides of one input channel, e.g. (W, 1) for (H, W).
        strides = tuple(prod(N[t + 1 :]) for t in range(len(N)))
        plane = prod(N)
        rows: list[tuple[Fraction, ...]] = []
        for o in range(self.out_channels):
            # Non-zero taps of output channel o: (input channel, offset, value).
            # Zero taps are skipped so that sparse kernels cost nothing.
            taps = []
            for c in range(self.in_channels):
                for q in product(*map(range, self.kernel_size)):
                    w = self.kernel[o][c]
                    for i in q:
                        w = w[i]
                    if w:
                        taps.append((c, q, w))
            for p in product(*map(range, out_size)):
                row = [_ZERO] * n_in
                for c, q, w in taps:
                    idx = c * plane
                    for t in range(len(N)):
                        s = p[t] + q[t] - pads[t][0]  # position in the unpadded input
                        if periodic:
                            s %= N[t]
                        elif not 0 <= s < N[t]:
                            break  # a zero-padding position contributes nothing
                        idx += s * strides[t]
                    else:
                        # "+=", not "=": with periodic padding a kernel longer
                        # than the input wraps several taps onto one input.
                        row[idx] += w
                rows.append(tuple(row))
        return rows

    def bias_vector(self) -> tuple[Fraction, ...]:
        """The bias of each output row: a channel's bias repeated at every position."""
        per = prod(self.output_size)
        return tuple(b for b in self.bias for _ in range(per))

    def layer(self, activation: str = "relu") -> Layer:
        # The convolution becomes an ordinary dense Layer.  Its structure
        # (shared kernels, sparsity, Toeplitz/circulant blocks) is dropped
        # here; the engine may later exploit it by keeping the ConvSpec beside
        # the Layer, but every verdict stays about this exact dense operator.
        return Layer(tuple(self.operator()), self.bias_vector(), activation)


def conv_operator(
    kernels: Any,
    in_channels: int,
    out_channels: int,
    input_size: Sequence[int],
    padding: str = "zero",
    pad: Any = 0,
) -> list[tuple[Fraction, ...]]:
    """The exact convolution operator as a dense list of rows.

    ``kernels``: nested lists of shape ``(out_channels, in_channels, k)`` (1-D)
    or ``(out_channels, in_channels, kh, kw)`` (2-D) of ints, Fractions or exact
    number strings.  ``input_size``: ``[L]`` or ``[H, W]``.  ``padding``:
    ``"zero"`` or ``"periodic"``.  ``pad``: see :func:`normalize_pads`.  The
    operator acts on the channel-major flattened input (module docstring).

    >>> rows = conv_operator([[[1, 2, 3]]], 1, 1, [3], "periodic", "same")
    >>> [[int(v) for v in r] for r in rows]
    [[2, 3, 1], [1, 2, 3], [3, 1, 2]]
    >>> [[int(v) for v in r] for r in conv_operator([[[1, 2, 3]]], 1, 1, [3], "zero", 1)]
    [[2, 3, 0], [1, 2, 3], [0, 1, 2]]
    """
    return ConvSpec.build(kernels, in_channels, out_channels, input_size, padding, pad).operator()
