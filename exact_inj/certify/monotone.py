"""Checks for stages whose activation is strictly increasing (docs/theory.md, section 12).

A stage x -> psi(W x + b) with psi a LeakyReLU of slope a > 0 (applied to
every coordinate) is injective on a convex domain D iff x -> W x + b is: psi
is a bijection of R, so psi(u) = psi(v) iff u = v, coordinate by coordinate.
The affine map is injective on D iff rank [W; E] = n (the linear-rank test
of section 4, E the unit rows of the coordinates D fixes).  So a
``linear_rank`` proof carries over unchanged; this module checks it for such
a stage, recomputing the rank exactly.  Rational arithmetic only.
"""

from __future__ import annotations

from ..model import Domain, Network
from ..model.stages import linear_rank
from .base import Invalid

__all__ = ["MONOTONE_ACTIVATIONS", "check_monotone_rank"]

# Activations a linear_rank proof may cover besides "linear": strictly
# increasing on R (the model refuses a leaky_relu slope <= 0).
MONOTONE_ACTIVATIONS = ("leaky_relu",)


def check_monotone_rank(net: Network, dom: Domain) -> str:
    """A ``linear_rank`` proof for one layer with a strictly increasing activation.

    >>> from fractions import Fraction as F
    >>> from exact_inj.model import Layer
    >>> L = Layer(((F(1), F(0)), (F(0), F(2))), (F(0), F(1)), "leaky_relu", F(1, 5))
    >>> check_monotone_rank(Network((L,)), Domain())[:31]
    'leaky_relu (slope 1/5 > 0, stri'
    """
    if len(net.layers) != 1 or net.layers[0].activation not in MONOTONE_ACTIVATIONS:
        raise Invalid("this linear_rank check applies to a single strictly increasing (leaky_relu) layer")
    layer = net.layers[0]
    if layer.slope <= 0:  # pragma: no cover - Layer refuses it
        raise Invalid(f"slope {layer.slope} is not > 0: the unit is not strictly increasing")
    if dom.is_empty():
        return f"{dom.describe()} is empty"
    r = linear_rank(layer, dom)
    if r != layer.in_dim:
        raise Invalid(f"rank [W; E] = {r} < {layer.in_dim}: the affine part is not injective on {dom.describe()}")
    return (f"leaky_relu (slope {layer.slope} > 0, strictly increasing) after an affine map of rank {r} = n "
            f"on {dom.describe()}")
