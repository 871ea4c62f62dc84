"""An injective network built from any given one (the paper's Theorem 5 /
Corollary 3; docs/injectivize.md).

``append`` mode keeps the network's p outputs exactly as the first p outputs
and carries the input through every layer as 2n extra units, g(x_j) and
g(-x_j), output last: x_j = (out_a - out_b) / (1 + s).  Width: +2n units in
every layer, +2n outputs; no other weight changes.  A convolution that keeps
its spatial size stays a convolution with extra channels; other convolutions
are densified within MAX_DENSE_ENTRIES, refused above.  The result is certified
with a carry proof (docs/theory.md, section 4, "Carry proof") through the
exact checker before it is returned: nothing here is trusted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from math import prod

from ..certify.schema import CarryProof, Certificate, Status
from ..errors import InputError
from ..model import ConvLayer, ConvSpec, Domain, Layer, Network
from ..model.conv import MAX_OPERATOR_ENTRIES
from ..model.normalised import require_plain
from ..verdict import Verdict, certified

__all__ = ["Injectivized", "MAX_DENSE_ENTRIES", "append_carry", "find_carry", "injectivize"]

ONE, ZERO = Fraction(1), Fraction(0)

# A convolution that cannot carry the input in extra channels is densified
# through its operator; above this many entries (rows x columns of the
# carried dense layer, the model's own limit for a dense operator) the
# written network would be gigabytes of JSON and is refused instead.
MAX_DENSE_ENTRIES = MAX_OPERATOR_ENTRIES


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

    Dense layers get 2n extra rows; a stride-1 convolution that keeps its
    spatial size stays a convolution with 2n / (H W) extra channels (identity
    taps, below); any other convolution is densified through its operator when
    the carried dense layer has at most :data:`MAX_DENSE_ENTRIES` entries, and
    refused (InputError, one line with the size) above that.

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
        m = layer.out_dim
        spec = getattr(layer, "spec", None)
        if spec is not None and _channel_carry_fits(spec, k, n):
            layers.append(ConvLayer(_carried_spec(spec, k, n), layer.activation, layer.slope))
        else:
            layers.append(_carried_dense(net, k, layer, n))
        # The carried units follow the original ones in both forms: +x_j at
        # m + j, -x_j at m + n + j (channel-major order keeps a conv's too).
        units.append(tuple((m + j, m + n + j) for j in range(n)))
    name = f"{net.name} (injectivized)" if net.name else "injectivized"
    return Network(tuple(layers), name, net.output_unit), CarryProof(tuple(units))


def _carried_dense(net: Network, k: int, layer, n: int) -> Layer:
    """Layer k as a dense layer with 2n carried rows (and columns, k > 0)."""
    m, w = layer.out_dim, layer.in_dim
    if type(layer) is not Layer:
        size = (m + 2 * n) * (w + (2 * n if k else 0))
        if not isinstance(layer, ConvLayer):
            raise InputError(net.name or "network", f"layer {k} is a {type(layer).__name__}: injectivize builds "
                                                   "dense and convolutional layers only")
        if size > MAX_DENSE_ENTRIES:
            raise InputError(net.name or "network",
                             f"layer {k} ({layer.spec.describe()}) cannot carry the input in extra channels "
                             f"({_why_not_channels(layer.spec, k, n)}), and densified with the {2 * n:,} carried "
                             f"units it would be {m + 2 * n:,} x {w + (2 * n if k else 0):,} = {size:,} entries, above "
                             f"the limit of {MAX_DENSE_ENTRIES:,}")
        layer = layer.dense()
    if k == 0:
        extra = [tuple(ONE if c == j else ZERO for c in range(n)) for j in range(n)]
        extra += [tuple(-ONE if c == j else ZERO for c in range(n)) for j in range(n)]
        weight = layer.weight + tuple(extra)
    else:
        # The original units of the previous layer come first, its carried ones after.
        weight = tuple(row + (ZERO,) * (2 * n) for row in layer.weight)
        weight += tuple(tuple(ONE if c == w + t else ZERO for c in range(w + 2 * n)) for t in range(2 * n))
    return Layer(weight, layer.bias + (ZERO,) * (2 * n), layer.activation, layer.slope)


def _why_not_channels(spec, k: int, n: int) -> str:
    """Why :func:`_channel_carry_fits` said no, in words."""
    if type(spec) is not ConvSpec:
        return "it is strided, dilated or transposed"
    if spec.output_size != spec.input_size:
        return (f"its output {'x'.join(map(str, spec.output_size))} is not its input "
                f"{'x'.join(map(str, spec.input_size))}")
    if any(not before < size for (before, _), size in zip(spec.pads, spec.kernel_size)):
        return "its kernel has no tap at the output's own position"
    return f"the {2 * n} carried units are not whole channels of {prod(spec.input_size)} positions"


def _channel_carry_fits(spec, k: int, n: int) -> bool:
    """A stride-1 convolution that keeps the spatial size carries the input
    in extra channels: each reads one carried channel through one tap at the
    output's own position (offset = the leading pad), so its rows are unit
    rows.  That needs the 2n carried units to be whole channels."""
    plane = prod(spec.input_size)
    return (type(spec) is ConvSpec and spec.output_size == spec.input_size
            and all(before < size for (before, _), size in zip(spec.pads, spec.kernel_size))
            and (k > 0 or n == spec.in_dim) and (2 * n) % plane == 0)


def _carried_spec(spec: ConvSpec, k: int, n: int) -> ConvSpec:
    """The convolution with 2n / (H W) carried channels after its own.

    Layer 0 reads the input: carried channel t < C_in is +x[t], t >= C_in is
    -x[t - C_in] (x is n = C_in H W values, so unit m + t H W + p is x_j or
    -x_j with j = (t mod C_in) H W + p, as in the dense form).  A later layer
    copies its input's carried channels, which come after the original ones."""
    plane = prod(spec.input_size)
    cc = 2 * n // plane
    ks = spec.kernel_size
    centre = tuple(before for before, _ in spec.pads)
    zero = _tap(ks, None, ZERO)
    c_in = spec.in_channels + (cc if k else 0)
    kernel = tuple(spec.kernel[o] + (zero,) * (c_in - spec.in_channels) for o in range(spec.out_channels))
    for t in range(cc):
        if k == 0:
            src, v = t % spec.in_channels, (ONE if t < spec.in_channels else -ONE)
        else:
            src, v = spec.in_channels + t, ONE
        kernel += (tuple(_tap(ks, centre, v) if c == src else zero for c in range(c_in)),)
    return ConvSpec(kernel, c_in, spec.out_channels + cc, spec.input_size, spec.padding, spec.pads,
                    spec.bias + (ZERO,) * cc)


def _tap(size: tuple[int, ...], at: tuple[int, ...] | None, v: Fraction):
    """A kernel of ``size`` (nested tuples) holding v at ``at`` and 0 elsewhere."""
    if not size:
        return v if at == () else ZERO
    return tuple(_tap(size[1:], at[1:] if at is not None and at[0] == i else None, v) for i in range(size[0]))


def find_carry(net: Network) -> CarryProof | None:
    """Carried pairs in a network, if every layer has them (untrusted: the
    checker verifies what this finds).

    >>> from exact_inj.model import Layer
    >>> find_carry(append_carry(Network((Layer.from_rows([[1, 1]]),)))[0]).units
    (((1, 3), (2, 4)),)
    >>> find_carry(Network((Layer.from_rows([[1, 1]]),))) is None
    True
    """
    if any(type(layer) is not Layer and not isinstance(layer, ConvLayer) for layer in net.layers):
        return None
    n = net.input_dim
    # chains[k][(j, sign)]: {unit of layer k carrying g(sign x_j): its predecessor}.
    chains: list[dict[tuple[int, int], dict[int, int]]] = []
    for k, layer in enumerate(net.layers):
        by_key: dict[tuple[int, Fraction], list[int]] = {}  # bias-0 rows with one non-zero entry
        for i in _single_tap_rows(layer):
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


def _single_tap_rows(layer):
    """The rows that may be unit rows: all of a dense layer's; of a
    convolution, only those of channels with one tap and bias 0 (read off the
    kernel, so that `verify` on a large conv network does not build every
    row to find none)."""
    spec = getattr(layer, "spec", None)
    if spec is None:
        return range(layer.out_dim)
    per = layer.out_dim // spec.out_channels  # rows are channel-major
    return (o * per + r for o in range(spec.out_channels) if len(spec.taps[o]) == 1 and spec.bias[o] == 0
            for r in range(per))


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
