"""Layer-by-layer ("peel") certificates of preimage answers (docs/inverse.md,
"The peel"; docs/theory.md, section 8).

Trusted: imports no solver and searches nothing.

Read a layer L(h) = act(W h + b) from its known output z.  Row i is an
*equation* W_i h + b_i = t_i when the output determines its pre-activation:
every row of a linear layer (t_i = z_i) and of a LeakyReLU layer (t_i = z_i
if z_i >= 0, else z_i / slope: the unit is strictly increasing), and the rows
of a ReLU layer with z_i > 0 (t_i = z_i; ReLU(s) = z_i > 0 forces s = z_i).
A ReLU output z_i < 0 is impossible.  If the equation rows have rank equal to
the layer's input dimension, at most one input h gives z.

So for y = N(x'), every preimage x' has layer values h'_K = y, h'_{K-1}, ...,
h'_0 = x'; if the chain h_{K-1}, ..., h_j of the certificate satisfies, at
every layer k >= j, "the equation rows read off h_{k+1} span and h_k solves
them", then h'_k = h_k for every k >= j, by induction from the output.  The
checker verifies exactly that, and then:

- ``point``: the chain is the exact evaluation of the answer's point p
  (nothing is read from the certificate): every preimage equals p;
- ``empty``: the chain ends at the input with a point that is not a
  preimage (outside the domain, or N(x) != y), or its last value does not
  map to y through the peeled layers, or it ends at a layer whose output
  would be a negative ReLU value, or at a layer whose equations are
  inconsistent, shown by u with u^T W_E = 0 and u^T (t - b_E) != 0;
- a partial peel (``then``): the chain's last value h_j maps to y through
  the peeled layers, so the preimage of y is exactly the preimage of h_j
  under layers 0..j-1, which the nested answer describes.

Ranks are of integer rows (each row scaled by its common denominator, which
leaves the rank unchanged), computed modulo a prime first: the rank mod p
never exceeds the rank over Q, so rank mod p = input dimension settles it;
only otherwise is the exact rank computed (:func:`exact_inj.exact.linalg.rank`).

A convolution too large to rank densely (a full-size generator stage) is
ranked through its kernel (:func:`square_rows`): channels whose kernels are
proportional give proportional rows at every output position, so the
equation rows span exactly what one row per (position, class of
proportional channels) spans; when those rows are square, their
nested-dissection elimination modulo a prime (:mod:`exact_inj.exact.ndrank`,
docs/theory.md section 14) showing them nonsingular proves the span.
"""

from __future__ import annotations

from fractions import Fraction
from math import lcm, prod
from typing import Any, Sequence

import numpy as np

from ..exact import linalg, ndrank
from ..model import Domain, Network
from ..model.network import activate
from .base import Invalid

__all__ = ["MAX_PEEL_ENTRIES", "check_peel_empty", "check_peel_point", "check_peel_prefix", "equations", "forward",
           "integer_row", "integer_rows", "pre_activations", "spans", "square_rows"]

# Dense rank of a layer's equation rows: above this many entries (rows x input
# dimension) the checker refuses the peel (the search then does not offer it).
MAX_PEEL_ENTRIES = 20_000_000

_EXACT = (Fraction, int)


def equations(layer: Any, z: Sequence[Fraction]) -> tuple[list[int], list[Fraction]] | None:
    """The rows of ``layer`` that its output ``z`` turns into equations, with
    their targets t_i (W_i h + b_i = t_i); None if z is not an output of the
    activation at all (a negative ReLU value).

    >>> from exact_inj.model import Layer
    >>> equations(Layer.from_rows([[1], [-1]]), [Fraction(2), Fraction(0)])
    ([0], [Fraction(2, 1)])
    >>> equations(Layer.from_rows([[1]]), [Fraction(-1)]) is None
    True
    """
    act = layer.activation
    if act == "relu":
        # Signs from numerators when every value is a Fraction or an int (a
        # Fraction's denominator is positive): 20 times faster than
        # comparing Fractions with 0, on a generator's 10^5 outputs.
        sign = [v.numerator for v in z] if all(type(v) in _EXACT for v in z) else z
        if any(v < 0 for v in sign):
            return None
        idx = [i for i, v in enumerate(sign) if v > 0]
        return idx, [z[i] for i in idx]
    if act == "leaky_relu":
        return list(range(len(z))), [v if v >= 0 else v / layer.slope for v in z]
    if act == "linear":
        return list(range(len(z))), list(z)
    raise Invalid(f"the peel does not know the activation {act!r}")  # pragma: no cover - Layer refuses others


def integer_row(layer: Any, i: int, n: int) -> tuple[list[int], int]:
    """Row i of the layer's weight as integers, and the scale d (integer row = d W_i)."""
    sp = layer.sparse_row(i)
    d = lcm(*(v.denominator for v in sp.values())) if sp else 1
    row = [0] * n
    for c, v in sp.items():
        row[c] = v.numerator * (d // v.denominator)
    return row, d


def square_rows(layer: Any, idx: Sequence[int]) -> tuple[list[int], list[int], list[int], list] | None:
    """For a layer kept as a kernel (a convolution): one row per (output
    position, class of proportional channels) met in ``idx``, the class's
    first channel at that position.  Returns (those rows, ascending; for
    each, the position in ``idx`` of the first row it stands for; for every
    row of ``idx``, the row standing for it, -1 for a zero row; and the
    factor lam with that row = lam times the one standing for it, None for
    a zero row), or None for other layers or kernels too large for int64.

    Channel o's kernel is lam times channel c's, so row (o, t) is lam times
    row (c, t) at every output position t: the rows returned span what the
    rows ``idx`` span (zero rows, of all-zero channels, span nothing).

    >>> from exact_inj.model.kernels import KernelSpec
    >>> L = KernelSpec.build([[[1, 2]], [[-2, -4]]], 1, 2, [2], strides=[2], transposed=True).layer()
    >>> reps, picks, stand, lam = square_rows(L, [4, 0, 5, 6, 7])   # channel 1 = -2 x channel 0
    >>> reps, picks, stand, [str(v) for v in lam]
    ([0, 1, 2, 3], [0, 2, 3, 4], [0, 0, 1, 2, 3], ['-2', '1', '-2', '-2', '-2'])
    """
    spec = getattr(layer, "spec", None)
    if spec is None or not hasattr(spec, "grid_operator") or not hasattr(spec, "channel_array"):
        return None
    K = spec.channel_array()
    if K is None:
        return None
    rep = np.full(len(K), -1, dtype=np.int64)
    lam: dict[int, Fraction] = {}
    first: dict[bytes, int] = {}
    for o, row in enumerate(K):
        nz = np.flatnonzero(row)
        if nz.size == 0:
            continue
        prim = row // int(np.gcd.reduce(np.abs(row)))
        if prim[nz[0]] < 0:
            prim = -prim
        c = first.setdefault(prim.tobytes(), o)
        rep[o] = c
        lam[o] = Fraction(int(row[nz[0]]), int(K[c][nz[0]]))
    per = prod(spec.output_size)
    ix = np.asarray(list(idx), dtype=np.int64)
    o_of = ix // per
    keep = rep[o_of] >= 0
    stand = np.flatnonzero(keep)
    rows = rep[o_of[stand]] * per + ix[stand] % per
    reps, at = np.unique(rows, return_index=True)
    full = np.full(len(ix), -1, dtype=np.int64)
    full[stand] = rows
    return reps.tolist(), stand[at].tolist(), full.tolist(), [lam.get(o) for o in o_of.tolist()]


def integer_rows(layer: Any, idx: Sequence[int], n: int) -> list[tuple[list[int], int]]:
    """:func:`integer_row` for each row of ``idx``; a layer kept as a kernel
    gives all of them at once from its integer kernel (every row scaled by
    the kernel's common factor), instead of tap by tap per row.

    >>> from exact_inj.model.kernels import KernelSpec
    >>> L = KernelSpec.build([[["1/2", 1]]], 1, 1, [2], strides=[2], transposed=True).layer()
    >>> integer_rows(L, [1, 2], 2), [integer_row(L, i, 2) for i in (1, 2)]   # rows (1, 0) and (0, 1/2)
    ([([2, 0], 2), ([0, 1], 2)], [([1, 0], 1), ([0, 1], 2)])
    """
    spec = getattr(layer, "spec", None)
    op = spec.grid_operator(idx) if idx and hasattr(spec, "grid_operator") else None
    if op is None or len(op[1]) and int(np.abs(op[3]).max()) >= 1 << 40:
        return [integer_row(layer, i, n) for i in idx]
    # Entries below 2^40, at most a kernel's taps of them per position: the
    # sums stay far inside int64.
    M = np.zeros((len(idx), n), dtype=np.int64)
    np.add.at(M, (op[1], op[2]), op[3])
    d = spec.integer_scale
    return [(row, d) for row in M.tolist()]


def spans(layer: Any, idx: Sequence[int]) -> bool:
    """Exactly: do the rows ``idx`` of the layer have rank = its input
    dimension?  Above :data:`MAX_PEEL_ENTRIES` only a convolution whose
    :func:`square_rows` are square and shown nonsingular modulo a prime is
    answered (True); anything else there raises Invalid."""
    n = layer.in_dim
    if len(idx) < n:
        return False
    if len(idx) * n > MAX_PEEL_ENTRIES:
        sq = square_rows(layer, idx)
        if sq is not None and len(sq[0]) == n and ndrank.rows_nonsingular(layer.spec, sq[0]):
            return True
        raise Invalid(f"{len(idx)} equation rows of {n} columns are too many to rank densely "
                      f"(> {MAX_PEEL_ENTRIES:,} entries), and their kernel's rows were not shown "
                      f"nonsingular by nested dissection")
    return linalg.rank([row for row, _ in integer_rows(layer, idx, n)], n) == n


def pre_activations(net: Network, x: Sequence[Fraction]) -> list[tuple[Fraction, ...]]:
    """Every layer's pre-activation at input x, exactly (one evaluation of
    the network: the last layer's activation of the last of them is N(x))."""
    pres = []
    h = tuple(x)
    for k, layer in enumerate(net.layers):
        pres.append(tuple(layer.pre_activation(h)))
        if k + 1 < len(net.layers):
            h = activate(pres[-1], layer.activation, layer.slope)
    return pres


def _descend(net: Network, y: Sequence[Fraction], chain: Sequence[Sequence[Fraction]],
             pres: Sequence[Sequence[Fraction]] | None = None) -> Sequence[Fraction]:
    """Check that each h in ``chain`` (inputs of layers K-1, K-2, ..., in that
    order) is the only possible value there; returns the last known value.
    ``pres``: the pre-activations at the chain's values, when known."""
    z = tuple(y)
    K = len(net.layers)
    if len(chain) > K:
        raise Invalid(f"the chain has {len(chain)} values for {K} layers")
    for step, h in enumerate(chain):
        k = K - 1 - step
        layer = net.layers[k]
        if len(h) != layer.in_dim:
            raise Invalid(f"chain value {step} has {len(h)} entries, layer {k} takes {layer.in_dim}")
        eq = equations(layer, z)
        if eq is None:
            raise Invalid(f"layer {k}'s output has a negative ReLU value; the chain cannot continue below it")
        idx, t = eq
        pre = layer.pre_activation(h) if pres is None else pres[step]
        if any(pre[i] != ti for i, ti in zip(idx, t)):
            raise Invalid(f"chain value {step} does not solve layer {k}'s equations")
        if not spans(layer, idx):
            raise Invalid(f"layer {k}: the {len(idx)} rows its output fixes do not span its {layer.in_dim} inputs")
        z = tuple(h)
    return z


def check_peel_point(net: Network, y: Sequence[Fraction], point: Sequence[Fraction],
                     pres: Sequence[Sequence[Fraction]] | None = None) -> str:
    """``point`` (already checked: in the domain, N(point) = y) is the only
    preimage if, at its exact evaluation, every layer's equation rows span.
    ``pres``: :func:`pre_activations` at the point, when already computed."""
    if pres is None:
        pres = pre_activations(net, point)
    values = [tuple(point)]
    for layer, pre in zip(net.layers[:-1], pres):
        values.append(activate(pre, layer.activation, layer.slope))
    # The layers too large for dense ranks are ranked through their kernels,
    # several at a time, before the descent asks for each (from memory then).
    outputs = values[1:] + [tuple(y)]
    big = []
    for layer, z in zip(net.layers, outputs):
        eq = equations(layer, z)
        if eq is not None and len(eq[0]) * layer.in_dim > MAX_PEEL_ENTRIES:
            sq = square_rows(layer, eq[0])
            if sq is not None and len(sq[0]) == layer.in_dim:
                big.append((layer.spec, sq[0]))
    if len(big) > 1:
        ndrank.rows_nonsingular_all(big)
    _descend(net, y, values[::-1], pres[::-1])
    return f"the rows fixed by the known outputs span at all {len(net.layers)} layers"


def forward(net: Network, peeled: int, h: Sequence[Fraction]) -> tuple[Fraction, ...]:
    """The last ``peeled`` layers applied to h, exactly."""
    for layer in net.layers[len(net.layers) - peeled:]:
        h = layer.apply(h)
    return tuple(h)


def check_peel_prefix(net: Network, y: Sequence[Fraction], chain: Sequence[Sequence[Fraction]]) -> Network:
    """A partial peel: every preimage of y has the chain's values (checked), and
    the last of them maps to y through the peeled layers (checked), so the
    preimage of y under ``net`` is that of chain[-1] under the returned prefix
    (the layers below the peeled ones)."""
    K = len(net.layers)
    if not 1 <= len(chain) < K:
        raise Invalid(f"a partial peel peels between 1 and {K - 1} layers, not {len(chain)}")
    z = _descend(net, y, chain)
    if forward(net, len(chain), z) != tuple(y):
        raise Invalid("the chain's last value does not map to y through the peeled layers")
    return Network(net.layers[: K - len(chain)])


def check_peel_empty(net: Network, y: Sequence[Fraction], domain: Domain,
                     chain: Sequence[Sequence[Fraction]], u: Sequence[Fraction] | None) -> str:
    """An ``empty`` answer's peel: the chain (inputs of layers K-1, K-2, ...),
    then why it stops (``u``: the inconsistency multipliers, if that is why)."""
    z = _descend(net, y, chain)
    K = len(net.layers)
    if len(chain) == K:
        x = z
        if domain.contains(x) and net.evaluate(x) == tuple(y):
            raise Invalid("the chain ends at a preimage of y, so y has one")
        return "the only candidate input, forced layer by layer, is not a preimage"
    if chain and forward(net, len(chain), z) != tuple(y):
        return f"the forced input of layer {K - len(chain)} does not map to y through the layers above"
    k = K - 1 - len(chain)
    layer = net.layers[k]
    eq = equations(layer, z)
    if eq is None:
        return f"layer {k} would have to output a negative ReLU value"
    idx, t = eq
    if u is None:
        raise Invalid(f"the chain stops at layer {k} without a reason (no u)")
    if len(u) != len(idx):
        raise Invalid(f"u has {len(u)} entries for layer {k}'s {len(idx)} equation rows")
    n = layer.in_dim
    comb = [Fraction(0)] * n
    rhs = Fraction(0)
    for ui, i, ti in zip(u, idx, t):
        if ui:
            for c, w in layer.sparse_row(i).items():
                comb[c] += ui * w
            rhs += ui * (ti - layer.bias[i])
    if any(comb) or rhs == 0:
        raise Invalid(f"u does not prove layer {k}'s equations inconsistent")
    return f"layer {k}'s equations at the forced output are inconsistent"

