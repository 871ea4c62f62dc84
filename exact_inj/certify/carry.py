"""Check of a carry proof: the network passes its input through to its outputs.

A carry proof names, in every layer, two units per input coordinate j.  In the
first layer their rows are exactly +e_j and -e_j with bias 0; in each later
layer their rows are exactly the unit vector selecting the previous layer's
pair, with bias 0.  Then the last layer's pair (a, b) satisfies
out_a - out_b = (1 + s) x_j with s >= 0 fixed by the activations, for EVERY
input x, so equal outputs force equal inputs (docs/theory.md, section 4,
"Carry proof").  The check is structural: it reads 2n rows per layer and does
no arithmetic beyond comparing entries with 0 and +-1.
"""

from __future__ import annotations

from fractions import Fraction

from ..model import Network
from .base import Invalid, ints
from .schema import CarryProof

__all__ = ["carry_slope", "check_carry"]

# Activations whose action on a carried value is known (docs/theory.md,
# section 4, "Carry proof"): each maps t to t for t >= 0 and to tau * t for
# t < 0, with tau = 0 (relu), 1 (linear) or the layer's slope (leaky_relu).
_TAU = {"relu": lambda layer: Fraction(0), "linear": lambda layer: Fraction(1),
        "leaky_relu": lambda layer: layer.slope}


def carry_slope(layer) -> Fraction:
    """tau of a layer's activation: t -> t (t >= 0), tau * t (t < 0).

    >>> from exact_inj.model import Layer
    >>> carry_slope(Layer.from_rows([[1]])), carry_slope(Layer.from_rows([[1]], activation="linear"))
    (Fraction(0, 1), Fraction(1, 1))
    """
    act = getattr(layer, "activation", None)
    if act not in _TAU:
        raise Invalid(f"a carry proof cannot pass through a {act!r} activation")
    tau = _TAU[act](layer)
    if type(tau) is not Fraction or tau < 0:  # a LeakyReLU slope is > 0 by construction; never trusted here
        raise Invalid(f"a carry proof needs a non-negative negative-side slope, not {tau!r}")
    return tau


def check_carry(net: Network, proof: CarryProof) -> str:
    """Verify every carried unit's row and bias; the verdict holds on R^n.

    >>> from exact_inj.model import Layer
    >>> net = Network((Layer.from_rows([[2], [1], [-1]]), Layer.from_rows([[5, 0, 0], [0, 1, 0], [0, 0, 1]])))
    >>> check_carry(net, CarryProof((((1, 2),), ((1, 2),))))[:39]
    'carry proof: each of the 1 inputs is x_'
    """
    n = net.input_dim
    if len(proof.units) != len(net.layers):
        raise Invalid(f"the network has {len(net.layers)} layers, the carry proof {len(proof.units)}")
    sigma = Fraction(1)  # the carried value after no layer is +-x_j itself: slope 1 on both sides
    prev = None
    for k, (layer, pairs) in enumerate(zip(net.layers, proof.units)):
        pairs = tuple(ints(p, f"layer {k} carry pair") for p in pairs)
        if len(pairs) != n:
            raise Invalid(f"layer {k} carries {len(pairs)} pairs, but the network has {n} inputs")
        if any(len(p) != 2 for p in pairs):
            raise Invalid(f"layer {k}: a carry pair must have two unit indices")
        flat = [u for p in pairs for u in p]
        if len(set(flat)) != len(flat):
            raise Invalid(f"layer {k}: a unit is named twice among the carried units")
        bad = [u for u in flat if not 0 <= u < layer.out_dim]
        if bad:
            raise Invalid(f"layer {k}: unit {bad[0]} does not exist (the layer has {layer.out_dim} units)")
        tau = carry_slope(layer)
        for j, (a, b) in enumerate(pairs):
            # Layer 0 reads x: +e_j and -e_j.  Later layers read the previous
            # pair's values, which are g(x_j) and g(-x_j): +1 on each.
            want_a = {j: Fraction(1)} if k == 0 else {prev[j][0]: Fraction(1)}
            want_b = {j: Fraction(-1)} if k == 0 else {prev[j][1]: Fraction(1)}
            for unit, want, sign in ((a, want_a, "+"), (b, want_b, "-")):
                row = layer.sparse_row(unit)
                if row != want:
                    col, val = next(iter(want.items()))
                    raise Invalid(f"layer {k}, unit {unit} (input {j}, {sign} side): its row must be exactly "
                                  f"{val} at column {col} and 0 elsewhere")
                if layer.bias[unit] != 0:
                    raise Invalid(f"layer {k}, unit {unit} (input {j}, {sign} side): its bias must be 0")
        # After this layer a carried value is g(t) = t (t >= 0), sigma * t (t < 0),
        # with sigma >= 0; the next activation multiplies the negative side by tau.
        sigma = sigma * tau
        prev = pairs
    return (f"carry proof: each of the {n} inputs is x_j = (out_a - out_b) / {1 + sigma} for a pair of outputs "
            f"carried through all {len(net.layers)} layers with unit rows and bias 0, so equal outputs "
            "force equal inputs")
