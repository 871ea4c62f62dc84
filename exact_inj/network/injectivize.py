"""An injective network built from any given one (the paper's Theorem 5 /
Corollary 3; docs/injectivize.md).

``append`` mode keeps the network's p outputs exactly as the first p outputs
and carries the input through every layer as 2n extra units, g(x_j) and
g(-x_j), output last: x_j = (out_a - out_b) / (1 + s).  Width: +2n units in
every layer, +2n outputs; no other weight changes.  The result is certified
with a carry proof (docs/theory.md, section 4, "Carry proof") through the
exact checker before it is returned: nothing here is trusted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction

from ..certify.schema import CarryProof, Certificate, Status
from ..errors import InputError
from ..model import Domain, Layer, Network
from ..model.normalised import require_plain
from ..verdict import Verdict, certified

__all__ = ["Injectivized", "append_carry", "find_carry", "injectivize"]

ONE, ZERO = Fraction(1), Fraction(0)


@dataclass(frozen=True)
class Injectivized:
    """An injective network, its checked verdict, and how it was built."""

    network: Network
    verdict: Verdict
    kept_outputs: int
    """The first ``kept_outputs`` outputs are the original network's, exactly."""
    added_units: int
    """Units added in every layer (2n in append mode)."""

    @property
    def certificate(self) -> Certificate:
        return self.verdict.certificate


def append_carry(net: Network) -> tuple[Network, CarryProof]:
    """The network with the input carried to its last 2n outputs, and the proof.

    >>> from exact_inj.model import Layer
    >>> net = Network((Layer.from_rows([[1, 1]]),))          # ReLU(x1 + x2): far from injective
    >>> new, proof = append_carry(net)
    >>> new.layers[0].weight
    ((Fraction(1, 1), Fraction(1, 1)), (Fraction(1, 1), Fraction(0, 1)), (Fraction(0, 1), Fraction(1, 1)), (Fraction(-1, 1), Fraction(0, 1)), (Fraction(0, 1), Fraction(-1, 1)))
    >>> proof.units
    (((1, 3), (2, 4)),)
    """
    n = net.input_dim
    layers = []
    units = []
    for k, layer in enumerate(net.layers):
        if type(layer) is not Layer:
            raise InputError(net.name or "network", f"layer {k} is a {type(layer).__name__}: injectivize builds "
                                                   "dense layers only")
        m = layer.out_dim
        if k == 0:
            extra = [tuple(ONE if c == j else ZERO for c in range(n)) for j in range(n)]
            extra += [tuple(-ONE if c == j else ZERO for c in range(n)) for j in range(n)]
            weight = layer.weight + tuple(extra)
        else:
            w = layer.in_dim  # the original units of the previous layer come first
            weight = tuple(row + (ZERO,) * (2 * n) for row in layer.weight)
            weight += tuple(tuple(ONE if c == w + t else ZERO for c in range(w + 2 * n)) for t in range(2 * n))
        layers.append(Layer(weight, layer.bias + (ZERO,) * (2 * n), layer.activation, layer.slope))
        units.append(tuple((m + j, m + n + j) for j in range(n)))
    name = f"{net.name} (injectivized)" if net.name else "injectivized"
    return Network(tuple(layers), name, net.output_unit), CarryProof(tuple(units))


def find_carry(net: Network) -> CarryProof | None:
    """Carried pairs in a network, if every layer has them (untrusted: the
    checker verifies what this finds).

    >>> from exact_inj.model import Layer
    >>> find_carry(append_carry(Network((Layer.from_rows([[1, 1]]),)))[0]).units
    (((1, 3), (2, 4)),)
    >>> find_carry(Network((Layer.from_rows([[1, 1]]),))) is None
    True
    """
    if any(type(layer) is not Layer for layer in net.layers):
        return None  # injectivize writes dense layers; a convolution's rows are not scanned here
    n = net.input_dim
    # chains[k][(j, sign)]: {unit of layer k carrying g(sign x_j): its predecessor}.
    chains: list[dict[tuple[int, int], dict[int, int]]] = []
    for k, layer in enumerate(net.layers):
        by_key: dict[tuple[int, Fraction], list[int]] = {}  # bias-0 rows with one non-zero entry
        for i in range(layer.out_dim):
            if layer.bias[i] == 0:
                row = layer.sparse_row(i)
                if len(row) == 1:
                    by_key.setdefault(next(iter(row.items())), []).append(i)
        here = {}
        for j in range(n):
            for sign in (1, -1):
                if k == 0:
                    found = {u: -1 for u in by_key.get((j, Fraction(sign)), ())}
                else:
                    found = {u: a for a in chains[-1][(j, sign)] for u in by_key.get((a, ONE), ())}
                if not found:
                    return None
                here[(j, sign)] = found
        chains.append(here)
    # One chain per (j, sign), walked back from the smallest last unit.
    units = []
    pick = {key: min(found) for key, found in chains[-1].items()}
    for here in reversed(chains):
        units.append(tuple((pick[(j, 1)], pick[(j, -1)]) for j in range(n)))
        pick = {key: here[key][u] for key, u in pick.items()}
    return CarryProof(tuple(reversed(units)))


def injectivize(net: Network, mode: str = "append") -> Injectivized:
    """An injective network whose first outputs are ``net``'s, certified.

    The certificate is checked by :func:`exact_inj.check` before this
    returns; a certificate that failed would raise RuntimeError (an engine
    bug), never return an uncertified network.

    >>> from exact_inj.model import Layer
    >>> from exact_inj import check
    >>> net = Network((Layer.from_rows([[1, 1]]), Layer.from_rows([[2]], activation="linear")))
    >>> r = injectivize(net)
    >>> r.verdict.status.value, check(r.certificate).valid, r.network.output_dim
    ('injective', True, 5)
    >>> x = (Fraction(-3), Fraction(1, 2))
    >>> r.network.evaluate(x)[:1] == net.evaluate(x)
    True
    """
    require_plain(net, "injectivize")  # irrational batch normalisations: docs/theory.md, section 12
    if mode != "append":
        raise ValueError(f"unknown mode {mode!r} (this version builds 'append' only)")
    t0 = time.perf_counter()
    new, proof = append_carry(net)
    n = net.input_dim
    v = certified(new, Domain(), Status.INJECTIVE, "carry",
                  f"the input is carried through every layer as {n} pairs of units, so x_j = (out_a - out_b) / (1 + s) "
                  "for every input (docs/theory.md, section 4, \"Carry proof\")", proof,
                  {"kept_outputs": net.output_dim, "added_units_per_layer": 2 * n}, t0)
    if v.status is not Status.INJECTIVE:  # pragma: no cover - would be a construction bug
        raise RuntimeError(f"the injectivized network failed its own check: {v.info.get('internal_error')}")
    return Injectivized(new, v, net.output_dim, 2 * n)
