"""Networks as exact objects: the one place that says what a layer computes.

Every number is a :class:`fractions.Fraction`.  The same objects are evaluated
exactly (to re-verify witnesses) and handed to the engine, which derives its
integer and floating-point views from them, so there is no second definition
of "what the network computes" anywhere else.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from operator import mul
from typing import Any, Sequence

from ..exact.linalg import common_denominator, scaled_integer_rows
from ..numbers import exact

ACTIVATIONS = ("relu", "linear", "leaky_relu")

# Strictly increasing units a network may end with (docs/theory.md, section 12).
# exact_inj decides the network before the unit: the unit is injective, so the
# network is injective iff the part before it is, and a collision before it is
# a collision after it.  It is never evaluated (tanh of a rational is not
# rational): Network.evaluate stops before it.
OUTPUT_UNITS = ("", "tanh", "sigmoid")

Vector = tuple[Fraction, ...]
Matrix = tuple[Vector, ...]


_ZERO = Fraction(0)


def relu(a: Fraction) -> Fraction:
    # The sign of a Fraction or an int is its numerator's (denominators are
    # positive): far cheaper than Fraction's comparison on a full-size layer.
    # Other numbers (floats, numpy scalars) are compared as before.
    return a if (a.numerator if type(a) is Fraction or type(a) is int else a) > 0 else _ZERO


def activate(pre: Sequence[Fraction], activation: str, slope: Fraction) -> tuple[Fraction, ...]:
    """The activation applied to pre-activations, exactly: ReLU, the identity,
    or LeakyReLU t -> t (t >= 0), slope * t (t < 0)."""
    if activation == "relu":
        return tuple(relu(a) for a in pre)
    if activation == "leaky_relu":
        return tuple(a if a >= 0 else slope * a for a in pre)
    return tuple(pre)


def check_slope(activation: str, slope: object) -> None:
    """A LeakyReLU needs a rational slope > 0 (strictly increasing: docs/theory.md,
    section 12); the other activations carry slope 0."""
    if type(slope) is not Fraction:
        raise TypeError("slope must be a fractions.Fraction")
    if activation == "leaky_relu" and slope <= 0:
        raise ValueError(f"a leaky_relu needs a slope > 0, got {slope} (slope 0 is relu; a negative "
                         "slope is not monotone and is not supported)")
    if activation != "leaky_relu" and slope != 0:
        raise ValueError(f"a {activation} layer has no slope")


def exact_value(v: Any) -> Fraction:
    """A number as the exact rational it is: ints, Fractions and number
    strings ("-3/7", "0.1" = 1/10) as written, binary floats (Python, numpy,
    any width) at their exact binary value, as the NPZ reader takes them.

    >>> exact_value(0.5), exact_value("0.1"), exact_value(0.1) == Fraction(3602879701896397, 2**55)
    (Fraction(1, 2), Fraction(1, 10), True)
    >>> exact_value(float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: nan is not a finite number
    """
    if type(v) is Fraction:
        return v
    if isinstance(v, bool) or getattr(getattr(v, "dtype", None), "kind", "") == "b":
        raise TypeError(f"refusing the boolean {v!r} as a number")
    if isinstance(v, (int, Fraction)):
        return Fraction(v)
    if isinstance(v, str):
        try:
            return exact(v)
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"{v[:40]!r} is not a number") from None
    if isinstance(v, float) or hasattr(v, "as_integer_ratio"):
        if not math.isfinite(v):
            raise ValueError(f"{v!r} is not a finite number")
        # float.as_integer_ratio (and numpy's, for float16/32 and longdouble)
        # is the binary value exactly: no decimal is guessed.
        return Fraction(*v.as_integer_ratio())
    if hasattr(v, "__index__"):
        return Fraction(operator.index(v))
    raise TypeError(f"cannot read {type(v).__name__} {v!r} as a number")


def _exact_rows(weight: Any, bias: Any) -> tuple[Matrix, Vector]:
    """Weight and bias as tuples of Fractions (numpy arrays, lists, floats)."""
    if hasattr(weight, "tolist"):
        weight = weight.tolist()
    if hasattr(bias, "tolist"):
        bias = bias.tolist()
    if isinstance(weight, (str, bytes)) or not isinstance(weight, Sequence):
        raise ValueError("weight must be a matrix (a sequence of rows)")
    rows = []
    for row in weight:
        if isinstance(row, (str, bytes)) or not isinstance(row, Sequence):
            raise ValueError("weight must be a matrix (a sequence of rows), not a vector")
        rows.append(tuple(map(exact_value, row)))
    if isinstance(bias, (str, bytes)) or not isinstance(bias, Sequence):
        raise ValueError("bias must be a vector")
    return tuple(rows), tuple(map(exact_value, bias))


@dataclass(frozen=True)
class Layer:
    """One affine map followed by an activation: x -> act(W x + b).

    Entries are Fractions; anything else a number can be (ints, strings,
    floats at their exact binary value, numpy arrays) is converted on
    construction (:func:`exact_value`).

    >>> from fractions import Fraction as F
    >>> L = Layer(((F(1),), (F(-1),)), (F(0), F(0)))
    >>> L.apply((F(-2),))
    (Fraction(0, 1), Fraction(2, 1))
    >>> import numpy as np
    >>> Layer(np.array([[1.5], [-1.0]]), np.zeros(2)).weight
    ((Fraction(3, 2),), (Fraction(-1, 1),))
    """

    weight: Matrix
    bias: Vector
    activation: str = "relu"
    slope: Fraction = Fraction(0)
    """The negative-side slope of a ``"leaky_relu"`` layer (> 0); 0 otherwise."""

    def __post_init__(self) -> None:
        if type(self.weight) is not tuple or type(self.bias) is not tuple or not all(
                type(r) is tuple and all(type(x) is Fraction for x in r) for r in self.weight) or not all(
                type(x) is Fraction for x in self.bias):
            # Lists, numpy arrays, ints, strings, floats (at their exact
            # binary value): converted once, here, so every layer holds
            # tuples of Fractions whatever built it.
            W, b = _exact_rows(self.weight, self.bias)
            object.__setattr__(self, "weight", W)
            object.__setattr__(self, "bias", b)
        # Shape checks live here so that no malformed layer can exist, whatever
        # built it; io.py turns these messages into one-line input errors.
        if not self.weight or not self.weight[0]:
            raise ValueError("weight must be a non-empty matrix")
        n = len(self.weight[0])
        for i, row in enumerate(self.weight):
            if len(row) != n:
                raise ValueError(f"weight row {i} has {len(row)} entries, expected {n}")
        if len(self.bias) != len(self.weight):
            raise ValueError(
                f"bias has {len(self.bias)} entries but weight has {len(self.weight)} rows"
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {self.activation!r} (expected one of {', '.join(ACTIVATIONS)})"
            )
        check_slope(self.activation, self.slope)

    @classmethod
    def from_rows(
        cls,
        weight: Sequence[Sequence[object]],
        bias: Sequence[object] | None = None,
        activation: str = "relu",
    ) -> "Layer":
        """Build a layer from ints, Fractions, strings such as "-3/7" or "0.1"
        (the decimal they spell), or binary floats and numpy arrays (each
        float at its exact binary value, as the NPZ reader takes them: 0.1
        is 3602879701896397/2^55, not 1/10; write "0.1" to mean 1/10).

        >>> Layer.from_rows([[1, "1/2"], ["0.1", 0]]).weight[1][0]
        Fraction(1, 10)
        >>> Layer.from_rows([[0.5, -2.0]], [0.25]).weight, Layer.from_rows([[0.5]]).bias
        (((Fraction(1, 2), Fraction(-2, 1)),), (Fraction(0, 1),))
        """
        W, _ = _exact_rows(weight, [])
        b = _exact_rows([], bias)[1] if bias is not None else tuple(Fraction(0) for _ in W)
        return cls(W, b, activation)

    @property
    def out_dim(self) -> int:
        return len(self.weight)

    @property
    def in_dim(self) -> int:
        return len(self.weight[0])

    @cached_property
    def _integer_rows(self) -> tuple[list[list[int]], list[int], list[int]]:
        return scaled_integer_rows(self.weight, self.bias)

    def sparse_row(self, i: int) -> dict[int, Fraction]:
        """Row i as {column: non-zero value}: the form rows of a convolution
        (exact_inj/conv.py) are read in too, so checks that read a few rows
        work on both without building a dense operator."""
        return {c: v for c, v in enumerate(self.weight[i]) if v}

    def pre_activation(self, x: Sequence[Fraction]) -> Vector:
        """W x + b, exactly.

        Computed in integers (rows scaled to integers, x over a common
        denominator) with one division per row: the same value as the
        Fraction sum, tens of times faster on wide layers.
        """
        X, D = common_denominator([Fraction(v) for v in x])
        Wi, bi, scales = self._integer_rows
        return tuple(
            Fraction(sum(map(mul, row, X)) + b * D, c * D) for row, b, c in zip(Wi, bi, scales)
        )

    def apply(self, x: Sequence[Fraction]) -> Vector:
        return activate(self.pre_activation(x), self.activation, self.slope)


@dataclass(frozen=True)
class Network:
    """A stack of layers, evaluated exactly.

    >>> net = Network((Layer.from_rows([[1], [-1]], [1, -1]),))
    >>> net.input_dim, net.output_dim
    (1, 2)
    >>> net.evaluate([Fraction(-3)])
    (Fraction(0, 1), Fraction(2, 1))
    """

    layers: tuple[Layer, ...]
    name: str = field(default="", compare=False)
    output_unit: str = ""
    """A strictly increasing unit after the last layer ("tanh", "sigmoid"),
    or "" for none.  It is part of what the network means but is never
    evaluated: :meth:`evaluate` returns the values before it, which is all
    that injectivity depends on (docs/theory.md, section 12)."""

    def __post_init__(self) -> None:
        if not self.layers:
            raise ValueError("a network needs at least one layer")
        if self.output_unit not in OUTPUT_UNITS:
            raise ValueError(f"unknown output unit {self.output_unit!r} (expected tanh or sigmoid)")
        for k in range(1, len(self.layers)):
            prev, cur = self.layers[k - 1], self.layers[k]
            if cur.in_dim != prev.out_dim:
                raise ValueError(
                    f"layer {k} expects {cur.in_dim} inputs but layer {k - 1} gives {prev.out_dim}"
                )

    @property
    def input_dim(self) -> int:
        return self.layers[0].in_dim

    @property
    def output_dim(self) -> int:
        return self.layers[-1].out_dim

    @property
    def is_single_relu_layer(self) -> bool:
        return len(self.layers) == 1 and self.layers[0].activation == "relu"

    def evaluate(self, x: Sequence[Fraction]) -> Vector:
        """The output, exactly; with an ``output_unit``, the values it is applied to."""
        if len(x) != self.input_dim:
            raise ValueError(f"input has {len(x)} entries, expected {self.input_dim}")
        h: Sequence[Fraction] = tuple(x)
        for layer in self.layers:
            h = layer.apply(h)
        return tuple(h)
