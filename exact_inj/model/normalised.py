"""Networks with batch normalisations whose square roots are irrational
(docs/theory.md, section 12, "Irrational batch normalisation").

A :class:`NormalisedNetwork` is a rational :class:`~exact_inj.model.Network`
(its ``base``: every affine map and activation, exactly) with, per layer, an
optional :class:`ChannelNorm` applied between the layer's affine map and its
activation::

    layer k:  h -> act( N_k( W_k h + b_k ) ),
    N_k(z)_i = gamma_o (z_i - mean_o) / sqrt(root_o) + beta_o   (o = channel of row i)

with ``root_o = var_o + eps`` a positive rational whose square root is, in
general, irrational.  Nothing here evaluates such a root, and nothing rounds it.
What the routes and the checker use instead is the *pulled-out form* of a
normalised row (:func:`surd_rows`): with d = gamma / sqrt(root) and sigma the
sign of gamma,

    ReLU(d (z - mean) + beta) = |d| * ReLU(sigma (z - mean) + (beta / |gamma|) sqrt(root)),

so the row's output is a positive factor |d| (a bijection of R that keeps the
sign of every number) times a ReLU unit with the rational weight row
``sigma * w_i`` and the bias ``p + q sqrt(root)`` (p, q rational): a
quadratic surd, whose comparisons are decided exactly
(:mod:`exact_inj.certify.surd`).  A channel with gamma = 0 outputs the
constant act(beta).

Rows are channel-major (``rows_per_channel`` consecutive rows per channel),
as a convolution's flattened output is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ..errors import InputError
from ..numbers import exact, fraction_to_str
from .network import Network

__all__ = ["ChannelNorm", "NormalisedNetwork", "SurdRow", "require_plain", "surd_rows"]

_ZERO = Fraction(0)


@dataclass(frozen=True)
class ChannelNorm:
    """z -> gamma_o (z - mean_o) / sqrt(root_o) + beta_o on each of the
    channels (``root`` = var + eps > 0, exact rationals).

    >>> n = ChannelNorm.build([1, -2], [0, 1], [0, 0], [2, "1/4"])
    >>> n.channels, n.to_json()["root"]
    (2, ['2', '1/4'])
    """

    gamma: tuple[Fraction, ...]
    beta: tuple[Fraction, ...]
    mean: tuple[Fraction, ...]
    root: tuple[Fraction, ...]

    def __post_init__(self) -> None:
        C = len(self.gamma)
        if C == 0 or any(len(v) != C for v in (self.beta, self.mean, self.root)):
            raise ValueError("gamma, beta, mean and root must have one entry per channel (and at least one)")
        if not all(type(v) is Fraction for t in (self.gamma, self.beta, self.mean, self.root) for v in t):
            raise TypeError("normalisation entries must be fractions.Fraction")
        bad = next((o for o, r in enumerate(self.root) if r <= 0), None)
        if bad is not None:
            raise ValueError(f"channel {bad}: var + eps = {self.root[bad]} is not positive")

    @classmethod
    def build(cls, gamma, beta, mean, root) -> "ChannelNorm":
        """From ints, Fractions or exact number strings."""
        return cls(*(tuple(exact(v) for v in t) for t in (gamma, beta, mean, root)))

    @property
    def channels(self) -> int:
        return len(self.gamma)

    KEYS = ("gamma", "beta", "mean", "root")

    def to_json(self) -> dict:
        return {k: [fraction_to_str(v) for v in getattr(self, k)] for k in self.KEYS}

    @classmethod
    def from_json(cls, obj: Any) -> "ChannelNorm":
        """Raises ValueError (or TypeError) naming the problem."""
        if not isinstance(obj, dict):
            raise ValueError("a normalisation must be an object with gamma, beta, mean, root")
        for k in obj:
            if k not in cls.KEYS:
                raise ValueError(f"unknown key {k!r} in a normalisation (allowed: {', '.join(cls.KEYS)})")
        missing = [k for k in cls.KEYS if k not in obj]
        if missing or not all(isinstance(obj[k], list) for k in cls.KEYS):
            raise ValueError("a normalisation needs the lists gamma, beta, mean and root")
        return cls.build(*(obj[k] for k in cls.KEYS))


@dataclass(frozen=True)
class SurdRow:
    """Row i of a normalised layer in pulled-out form: output = scale *
    act(sign * (w_i . h + b_i - mean) + q * sqrt(root)), scale > 0 (never
    computed: only its sign is used).  ``sign`` 0 marks a constant row
    (gamma = 0, output act(beta), here q = beta, root = 1)."""

    sign: int
    p: Fraction
    q: Fraction
    root: Fraction


def surd_rows(layer, norm: ChannelNorm) -> list[SurdRow]:
    """The pulled-out form of every row of ``layer`` followed by ``norm``
    (module docstring): bias p + q sqrt(root) with p = sigma (b_i - mean_o),
    q = beta_o / |gamma_o|.

    >>> from exact_inj.model import Layer
    >>> L = Layer.from_rows([[1], [2]], [3, 0])
    >>> [(r.sign, r.p, r.q, r.root) for r in surd_rows(L, ChannelNorm.build([-2, 0], [4, 5], [1, 0], [2, 3]))]
    [(-1, Fraction(-2, 1), Fraction(2, 1), Fraction(2, 1)), (0, Fraction(0, 1), Fraction(5, 1), Fraction(1, 1))]
    """
    m, C = layer.out_dim, norm.channels
    if m % C:
        raise ValueError(f"{m} rows do not split into {C} channels")
    per = m // C
    out = []
    for i, b in enumerate(layer.bias):
        o = i // per
        g = norm.gamma[o]
        if g == 0:
            out.append(SurdRow(0, _ZERO, norm.beta[o], Fraction(1)))
            continue
        s = 1 if g > 0 else -1
        out.append(SurdRow(s, s * (b - norm.mean[o]), norm.beta[o] / abs(g), norm.root[o]))
    return out


@dataclass(frozen=True)
class NormalisedNetwork:
    """A rational network with a per-layer :class:`ChannelNorm` (or None)
    between each layer's affine map and its activation (module docstring).

    Every layer but the last has a (non-linear) activation, so each layer is
    one stage.  A normalised layer's activation is ReLU or linear (a
    LeakyReLU does not commute with a negative factor).  It is never
    evaluated: ``base`` alone is NOT the network's function.
    """

    base: Network
    norms: tuple[ChannelNorm | None, ...]
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.base, Network):
            raise TypeError("base must be a Network")
        layers = self.base.layers
        if len(self.norms) != len(layers):
            raise ValueError(f"{len(self.norms)} normalisations for {len(layers)} layers")
        for k, (layer, norm) in enumerate(zip(layers, self.norms)):
            if k < len(layers) - 1 and layer.activation == "linear":
                raise ValueError(f"layer {k} is linear: only the last layer of a normalised network may be")
            if norm is None:
                continue
            if not isinstance(norm, ChannelNorm):
                raise TypeError(f"normalisation {k} is a {type(norm).__name__}, not a ChannelNorm")
            if layer.activation not in ("relu", "linear"):
                raise ValueError(f"layer {k}: a normalisation must be followed by a ReLU or nothing, "
                                 f"not a {layer.activation}")
            if layer.out_dim % norm.channels:
                raise ValueError(f"layer {k}: {layer.out_dim} outputs do not split into {norm.channels} channels")
        if all(n is None for n in self.norms):
            raise ValueError("no normalisation: this is a plain Network")

    @property
    def layers(self):
        return self.base.layers

    @property
    def input_dim(self) -> int:
        return self.base.input_dim

    @property
    def output_dim(self) -> int:
        return self.base.output_dim

    @property
    def output_unit(self) -> str:
        return self.base.output_unit

    @property
    def is_single_relu_layer(self) -> bool:
        # Never the single-layer routes: those read ``base`` as the function.
        return False

    def norms_to_json(self) -> list:
        return [None if n is None else n.to_json() for n in self.norms]


def require_plain(net: Any, what: str) -> None:
    """Refuse a NormalisedNetwork where its values would be needed (inverting,
    building on it): its ``base`` alone is a different function, and its own
    values involve irrational roots.  Only ``verify`` decides it."""
    if isinstance(net, NormalisedNetwork):
        raise InputError(None, f"{what} needs the network's values, and its batch normalisation has irrational "
                               "square roots (never rounded); only verify decides such a network")
