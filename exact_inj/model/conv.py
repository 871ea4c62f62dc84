"""Convolutional layers as exact linear operators.

A multi-channel convolution with stride 1 at a fixed input size is a linear
map x -> C x (docs/theory.md, section 8).  A :class:`ConvLayer` keeps it as its
kernel: it evaluates by direct convolution, hands out single rows sparsely,
and builds the dense operator C only when a route asks for ``weight``.  The
JSON reader (``"type": "conv"``), the ONNX importer (``Conv``) and the PyTorch
importer (``Conv1d``/``Conv2d``) all go through :class:`ConvSpec`, so the
three agree on one definition; docs/conv.md says how such layers are decided.

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
from functools import cached_property
from fractions import Fraction
from itertools import product
from math import prod
from typing import Any, Sequence

from ..errors import OperatorTooLarge
from ..exact.linalg import common_denominator
from ..numbers import exact, fraction_to_str, nested_to_str
from .network import ACTIVATIONS, Layer, activate, check_slope

__all__ = ["KernelTaps", "PADDINGS", "MAX_OPERATOR_ENTRIES", "ConvLayer", "ConvSpec", "OperatorTooLarge", "conv_operator", "normalize_pads"]

PADDINGS = ("zero", "periodic")

# The dense operator is built only for the routes that need a matrix (the
# kernel routes of convproof.py never do).  On a real image it would take
# minutes and gigabytes before those routes failed anyway, so above this size
# it is refused (OperatorTooLarge), with the size in the message.
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


def leaves(x: Any):
    """The numbers of a nested tuple (a kernel), in order."""
    if isinstance(x, tuple):
        for v in x:
            yield from leaves(v)
    else:
        yield x


class KernelTaps:
    """What an operator held as its kernel reads off that kernel, shared by
    :class:`ConvSpec` and :class:`~exact_inj.model.kernels.KernelSpec` (the
    strided and transposed forms).  Needs ``kernel``, ``in_channels``,
    ``out_channels`` and ``kernel_size``."""

    @cached_property
    def taps(self) -> tuple[tuple[tuple[int, tuple[int, ...], Fraction], ...], ...]:
        """Per output channel, its non-zero taps (input channel, offset, value).

        Zero taps are skipped so that sparse kernels cost nothing."""
        out = []
        for o in range(self.out_channels):
            taps = []
            for c in range(self.in_channels):
                for q in product(*map(range, self.kernel_size)):
                    w = self.kernel[o][c]
                    for i in q:
                        w = w[i]
                    if w:
                        taps.append((c, q, w))
            out.append(tuple(taps))
        return tuple(out)

    def channel_kernel(self, o: int) -> list[Fraction]:
        """Output channel o's kernel, flattened (input channel, then offsets)."""
        return list(leaves(self.kernel[o]))


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
class ConvSpec(KernelTaps):
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

    def __post_init__(self) -> None:
        # What build() guarantees, re-checked here so that no malformed spec
        # can exist however it was made (as Layer does): the checker reads
        # kernels, biases and pads from a spec, and a ragged kernel or a
        # float bias would make its comparisons mean something else.
        if not (_is_int(self.in_channels) and _is_int(self.out_channels) and self.in_channels >= 1
                and self.out_channels >= 1):
            raise ValueError("in_channels and out_channels must be positive integers")
        if not isinstance(self.input_size, tuple) or len(self.input_size) not in (1, 2) or not all(
                _is_int(v) and v >= 1 for v in self.input_size):
            raise ValueError(f"input_size must be a tuple of 1 or 2 positive integers, got {self.input_size!r}")
        d = len(self.input_size)
        shape = _nested_shape(self.kernel, 2 + d, "kernel")
        if shape[:2] != (self.out_channels, self.in_channels):
            raise ValueError(f"kernel has shape {list(shape)}, not [{self.out_channels}, {self.in_channels}, ...]")
        # Frozen all the way down: the taps and integer taps are cached on
        # this object, so a kernel held in lists that its caller mutates
        # afterwards would be checked as the old one (as in KernelSpec).
        object.__setattr__(self, "kernel", _frozen(self.kernel, 2 + d))
        if not all(type(v) is Fraction for v in leaves(self.kernel)):
            raise TypeError("kernel entries must be fractions.Fraction")
        if not isinstance(self.bias, tuple) or len(self.bias) != self.out_channels or not all(
                type(v) is Fraction for v in self.bias):
            raise ValueError(f"bias must be {self.out_channels} fractions.Fraction, one per output channel")
        if self.padding not in PADDINGS:
            raise ValueError(f"padding {self.padding!r} is not one of {', '.join(map(repr, PADDINGS))}")
        if not isinstance(self.pads, tuple) or len(self.pads) != d or not all(
                isinstance(pr, tuple) and len(pr) == 2 and all(_is_int(v) and v >= 0 for v in pr) for pr in self.pads):
            raise ValueError(f"pads must be {d} (before, after) pairs of non-negative integers, got {self.pads!r}")

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
            return exact(x) if depth == 0 else tuple(conv(v, depth - 1) for v in x)

        K = conv(kernel, 2 + d)
        if bias is None:
            B = tuple(_ZERO for _ in range(out_channels))
        else:
            if len(bias) != out_channels:
                raise ValueError(f"bias has {len(bias)} entries but there are {out_channels} output channels")
            B = tuple(exact(v) for v in bias)
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

    def describe(self) -> str:
        """E.g. "2-D convolution 3 -> 12 channels on 32x32, periodic padding".

        >>> ConvSpec.build([[[1, -1]]], 1, 1, [3], "periodic", 0).describe()
        '1-D convolution 1 -> 1 channels on 3, periodic padding'
        """
        return (f"{len(self.input_size)}-D convolution {self.in_channels} -> {self.out_channels} channels on "
                f"{'x'.join(map(str, self.input_size))}, {self.padding} padding")

    @property
    def out_dim(self) -> int:
        return self.out_channels * prod(self.output_size)

    def _columns(self, p: tuple[int, ...], q: tuple[int, ...], c: int) -> int | None:
        """The input index tap q of channel c reads at output position p, or
        None where it reads a zero-padding position."""
        N, pads = self.input_size, self.pads
        idx = c
        for t in range(len(N)):
            s = p[t] + q[t] - pads[t][0]  # position in the unpadded input
            if self.padding == "periodic":
                s %= N[t]
            elif not 0 <= s < N[t]:
                return None
            idx = idx * N[t] + s
        return idx

    def sparse_row(self, i: int) -> dict[int, Fraction]:
        """Row ``i`` of the operator as {column: non-zero value}, built from
        the kernel alone (cost: the taps of one output channel)."""
        per = prod(self.output_size)
        o, r = divmod(i, per)
        p = []
        for size in reversed(self.output_size):
            r, s = divmod(r, size)
            p.append(s)
        p = tuple(reversed(p))
        row: dict[int, Fraction] = {}
        for c, q, w in self.taps[o]:
            idx = self._columns(p, q, c)
            if idx is not None:
                # "+=", not "=": with periodic padding a kernel longer than
                # the input wraps several taps onto one input.
                v = row.get(idx, _ZERO) + w
                if v:
                    row[idx] = v
                else:
                    row.pop(idx, None)
        return row

    def position_major(self, indices: Sequence[int]) -> list[dict[int, Fraction]]:
        """The named rows, sorted by output position then channel, with the
        columns renumbered position-major (input position, then channel).

        A rank or determinant is unchanged by permuting rows and columns, and
        in this order a convolution's rows form a band about (kernel rows /
        2) x width x channels wide (exact_inj/modrank.py banded_full_rank),
        where channel-major order spreads each row over the whole matrix.
        """
        per = prod(self.output_size)
        plane = prod(self.input_size)
        cin = self.in_channels
        order = sorted(indices, key=lambda i: (i % per, i // per))
        return [{(c % plane) * cin + c // plane: v for c, v in self.sparse_row(i).items()} for i in order]

    def operator(self) -> list[tuple[Fraction, ...]]:
        """The dense operator, ``out_dim`` rows of ``in_dim`` Fractions (order: module doc)."""
        n_in, n_out = self.in_dim, self.out_dim
        if n_in * n_out > MAX_OPERATOR_ENTRIES:
            raise OperatorTooLarge(
                f"the convolution operator would be {n_out} x {n_in} = {n_in * n_out} entries, "
                f"more than the {MAX_OPERATOR_ENTRIES} this tool densifies"
            )
        rows: list[tuple[Fraction, ...]] = []
        for i in range(n_out):
            row = [_ZERO] * n_in
            for c, v in self.sparse_row(i).items():
                row[c] = v
            rows.append(tuple(row))
        return rows

    @cached_property
    def _integer_taps(self) -> tuple[tuple[int, tuple[tuple[int, tuple[int, ...], int], ...], int], ...]:
        """Per output channel: scale s, the taps times s (integers), bias times s."""
        out = []
        for o, taps in enumerate(self.taps):
            ints, s = common_denominator([w for _, _, w in taps] + [self.bias[o]])
            out.append((s, tuple((c, q, v) for (c, q, _), v in zip(taps, ints)), ints[-1]))
        return tuple(out)

    def apply_operator(self, x: Sequence[Fraction]) -> tuple[Fraction, ...]:
        """C x + bias, exactly, by direct convolution (the dense operator is
        never built): integers over one common denominator, one division per
        output."""
        if len(x) != self.in_dim:
            raise ValueError(f"input has {len(x)} entries, expected {self.in_dim}")
        X, D = common_denominator([Fraction(v) for v in x])
        out: list[Fraction] = []
        for s, taps, b in self._integer_taps:
            for p in product(*map(range, self.output_size)):
                acc = b * D
                for c, q, w in taps:
                    idx = self._columns(p, q, c)
                    if idx is not None:
                        acc += w * X[idx]
                out.append(Fraction(acc, s * D))
        return tuple(out)

    def bias_vector(self) -> tuple[Fraction, ...]:
        """The bias of each output row: a channel's bias repeated at every position."""
        per = prod(self.output_size)
        return tuple(b for b in self.bias for _ in range(per))

    def layer(self, activation: str = "relu", slope: Fraction = _ZERO) -> "ConvLayer":
        """This convolution as a network layer, kept in structured form."""
        return ConvLayer(self, activation, slope)

    def to_json(self) -> dict:
        """The ``"type": "conv"`` layer object (docs/formats.md), numbers as strings."""
        return {
            "type": "conv",
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "input_size": list(self.input_size),
            "padding": self.padding,
            "pad": [list(p) for p in self.pads],
            "kernel": nested_to_str(self.kernel),
            "bias": [fraction_to_str(b) for b in self.bias],
        }


def _frozen(x: Any, depth: int) -> Any:
    """``depth`` nested levels of lists or tuples, as tuples."""
    if depth == 0 or not isinstance(x, (list, tuple)):
        return x
    return tuple(_frozen(v, depth - 1) for v in x)


@dataclass(frozen=True)
class ConvLayer:
    """A convolutional layer x -> act(C x + b), kept as its kernel.

    It offers what :class:`~exact_inj.model.Layer` offers (``in_dim``,
    ``out_dim``, ``bias``, ``pre_activation``, ``apply``, ``sparse_row``), and
    evaluation never builds the operator.  ``weight``, the dense operator, is
    built on first use only, by the routes that need a dense matrix, and
    raises :class:`OperatorTooLarge` above :data:`MAX_OPERATOR_ENTRIES`.

    >>> L = ConvSpec.build([[[1, -1]]], 1, 1, [3], "periodic", 0).layer()
    >>> L.in_dim, L.out_dim, L.sparse_row(1)
    (3, 2, {1: Fraction(1, 1), 2: Fraction(-1, 1)})
    >>> L.apply((Fraction(1), Fraction(5), Fraction(2)))
    (Fraction(0, 1), Fraction(3, 1))
    """

    spec: ConvSpec
    activation: str = "relu"
    slope: Fraction = _ZERO
    """The negative-side slope of a ``"leaky_relu"`` layer (> 0); 0 otherwise."""

    def __post_init__(self) -> None:
        # ``spec`` is a ConvSpec or a KernelSpec (model/kernels.py: strides,
        # dilations, transposed convolutions); both read rows off the kernel.
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {self.activation!r} (expected one of {', '.join(ACTIVATIONS)})"
            )
        check_slope(self.activation, self.slope)

    @property
    def in_dim(self) -> int:
        return self.spec.in_dim

    @property
    def out_dim(self) -> int:
        return self.spec.out_dim

    @cached_property
    def bias(self) -> tuple[Fraction, ...]:
        return self.spec.bias_vector()

    @cached_property
    def weight(self) -> tuple[tuple[Fraction, ...], ...]:
        return tuple(self.spec.operator())

    @property
    def dense_entries(self) -> int:
        return self.in_dim * self.out_dim

    def dense(self) -> Layer:
        """The same layer as a dense :class:`~exact_inj.model.Layer`."""
        return Layer(self.weight, self.bias, self.activation, self.slope)

    def sparse_row(self, i: int) -> dict[int, Fraction]:
        return self.spec.sparse_row(i)

    def pre_activation(self, x: Sequence[Fraction]) -> tuple[Fraction, ...]:
        return self.spec.apply_operator(x)

    def apply(self, x: Sequence[Fraction]) -> tuple[Fraction, ...]:
        return activate(self.pre_activation(x), self.activation, self.slope)


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
