"""What a collision looks like inside the network: the readable part of a
witness (docs/cli.md, "Witnesses"; issue #14).

A witness x != y with N(x) = N(y) is the answer; this module only describes
it, for a person or a script: the direction y - x, and layer by layer which
neurons are active at x and at y, where the two inputs first have equal
outputs, and there the rows active at the midpoint of that layer's inputs
and their rank.  Why that rank is below the layer's input dimension: with u
!= v the layer's inputs and ReLU(w.u + b) = ReLU(w.v + b) for every row, each
row either has w.u = w.v or both pre-activations <= 0; a row with w.z + b >=
0 at the midpoint z is of the first kind, so all those rows are orthogonal
to v - u != 0 (docs/theory.md, section 1, the pointwise criterion).

Exact (Fractions) and read-only: nothing here decides or certifies, the
certificate was checked before.  Kept cheap on big networks: index lists
stop at :data:`MAX_LISTED` entries (``capped`` says so) and the rank is
computed only when the active rows hold at most :data:`MAX_RANK_ENTRIES`
dense entries (else ``rank`` is null, with the reason).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Sequence

from .exact import linalg
from .model import Network
from .model.network import activate
from .model.normalised import NormalisedNetwork
from .numbers import fraction_to_str

__all__ = ["MAX_DESCRIBED_WEIGHTS", "MAX_LISTED", "MAX_RANK_ENTRIES", "describe", "indices", "weights"]

# The per-layer part evaluates the network exactly at x and at y (about a
# microsecond per weight on a convolution); above this many weights it is
# left out, with a note, so that printing an answer stays cheap.
MAX_DESCRIBED_WEIGHTS = 1_000_000

# Index lists (active neurons, moved inputs) show at most this many entries.
MAX_LISTED = 64

# The exact rank of the active rows is computed up to this many dense
# entries (rows x inputs); 256 x 784 takes about 0.1 s in flint.
MAX_RANK_ENTRIES = 250_000


def indices(flags: Sequence[bool]) -> dict[str, Any]:
    """{"count", "indices" (0-based, at most MAX_LISTED), "capped"} of the true flags.

    >>> indices([True, False, True])
    {'count': 2, 'indices': [0, 2], 'capped': False}
    """
    on = [i for i, f in enumerate(flags) if f]
    return {"count": len(on), "indices": on[:MAX_LISTED], "capped": len(on) > MAX_LISTED}


def describe(net: Network, x: Sequence[Fraction], y: Sequence[Fraction]) -> dict[str, Any]:
    """The JSON-ready description of the collision (x, y) of ``net``.

    Keys: ``direction`` (y - x: ``changed`` inputs, their ``indices`` and exact
    ``values``, ``capped``), ``collapse_layer`` (1-based: the first layer whose
    outputs at x and y are equal) and ``layers``, one entry per layer:
    ``layer`` (1-based), ``type`` ("dense" or "conv"), ``activation``,
    ``units``, ``active_at_x`` and ``active_at_y`` (neurons with pre-activation
    > 0 there; none for a linear layer), ``outputs_differ`` (outputs unequal at
    x and y), and on the collapse layer ``collision``: the rows active (w.z + b
    >= 0; every row for a linear layer) at the midpoint z of that layer's
    inputs at x and y, their exact ``rank`` and the layer's ``inputs``.  Above
    MAX_DESCRIBED_WEIGHTS weights ``layers`` is None and ``layers_note`` says why.

    >>> from exact_inj.model import Layer
    >>> net = Network((Layer.from_rows([[1, 0], [0, 1]]), Layer.from_rows([[1, 1], [1, -1]])))
    >>> d = describe(net, (Fraction(-1), Fraction(1)), (Fraction(-2), Fraction(1)))
    >>> d["direction"], d["collapse_layer"]
    ({'changed': 1, 'indices': [0], 'values': ['-1'], 'capped': False}, 1)
    >>> c = d["layers"][0]["collision"]
    >>> c["active"]["indices"], c["rank"], c["inputs"]
    ([1], 1, 2)
    """
    moved = [j for j, (a, b) in enumerate(zip(x, y)) if a != b]
    out: dict[str, Any] = {"direction": {"changed": len(moved), "indices": moved[:MAX_LISTED],
                                         "values": [fraction_to_str(y[j] - x[j]) for j in moved[:MAX_LISTED]],
                                         "capped": len(moved) > MAX_LISTED},
                           "collapse_layer": None, "layers": []}
    if isinstance(net, NormalisedNetwork):
        # Its layers' activity would need the normalised values, irrational
        # and never evaluated; the base layers' activity (without the
        # normalisations' shifts and signs) is not the network's.
        out["layers"] = None
        out["layers_note"] = ("not computed: the network has batch normalisations with irrational square roots, "
                              "never evaluated; the collision is in layer 1 (equal values after its affine map, "
                              "before any normalisation)")
        first = net.layers[0]
        pu, pv = first.pre_activation(x), first.pre_activation(y)
        if pu == pv or (net.norms[0] is None and first.apply(x) == first.apply(y)):
            out["collapse_layer"] = 1
        return out
    size = weights(net)
    if size > MAX_DESCRIBED_WEIGHTS:
        out["layers"] = None
        out["layers_note"] = (f"not computed: the network has about {size} weights, above {MAX_DESCRIBED_WEIGHTS} "
                              "(exact_inj.collision.MAX_DESCRIBED_WEIGHTS); call describe() to compute it")
        return out
    u, v = tuple(x), tuple(y)
    for k, layer in enumerate(net.layers):
        pu, pv = layer.pre_activation(u), layer.pre_activation(v)
        hu, hv = activate(pu, layer.activation, layer.slope), activate(pv, layer.activation, layer.slope)
        entry: dict[str, Any] = {"layer": k + 1, "type": "conv" if hasattr(layer, "spec") else "dense",
                                 "activation": layer.activation, "units": layer.out_dim}
        if layer.activation != "linear":
            entry["active_at_x"] = indices([a > 0 for a in pu])
            entry["active_at_y"] = indices([a > 0 for a in pv])
        entry["outputs_differ"] = sum(1 for a, b in zip(hu, hv) if a != b)
        if out["collapse_layer"] is None and hu == hv and u != v:
            out["collapse_layer"] = k + 1
            entry["collision"] = _at_midpoint(layer, pu, pv)
        out["layers"].append(entry)
        u, v = hu, hv
    return out


def weights(net: Network) -> int:
    """About how many non-zero weights an exact evaluation multiplies: the
    dense size of a dense layer, rows times one row's taps for a convolution.

    >>> from exact_inj.model import Layer
    >>> weights(Network((Layer.from_rows([[1, 0], [0, 1], [1, 1]]),)))
    6
    """
    total = 0
    for layer in net.layers:
        if hasattr(layer, "spec"):
            total += layer.out_dim * max(len(layer.sparse_row(0)), 1)
        else:
            total += layer.out_dim * layer.in_dim
    return total


def _at_midpoint(layer, pu, pv) -> dict[str, Any]:
    # The pre-activation is affine, so at the midpoint it is the mean.
    if layer.activation != "relu":
        # Linear or LeakyReLU (a bijection per coordinate): equal outputs
        # mean equal pre-activations, so every row is orthogonal to v - u.
        flags = [True] * layer.out_dim
    else:
        flags = [(a + b) / 2 >= 0 for a, b in zip(pu, pv)]
    act = indices(flags)
    n = layer.in_dim
    rows = [i for i, f in enumerate(flags) if f]
    res: dict[str, Any] = {"at": "the midpoint of this layer's inputs at x and y", "active": act, "inputs": n}
    if len(rows) * n > MAX_RANK_ENTRIES:
        res["rank"] = None
        res["rank_note"] = (f"not computed: {len(rows)} rows x {n} inputs is above {MAX_RANK_ENTRIES} entries; "
                            f"it is below {n} (the rows are orthogonal to the difference of the inputs)")
        return res
    dense = []
    for i in rows:
        r = layer.sparse_row(i)
        dense.append(linalg.common_denominator([r.get(c, Fraction(0)) for c in range(n)])[0])
    res["rank"] = linalg.rank(dense, n)
    return res
