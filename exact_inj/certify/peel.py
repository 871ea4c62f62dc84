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
"""

from __future__ import annotations

from fractions import Fraction
from math import lcm
from typing import Any, Sequence

from ..exact import linalg
from ..model import Domain, Network
from .base import Invalid

__all__ = ["MAX_PEEL_ENTRIES", "check_peel_empty", "check_peel_point", "check_peel_prefix", "equations", "forward",
           "integer_row", "spans"]

# Dense rank of a layer's equation rows: above this many entries (rows x input
# dimension) the checker refuses the peel (the search then does not offer it).
MAX_PEEL_ENTRIES = 20_000_000


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
        if any(v < 0 for v in z):
            return None
        idx = [i for i, v in enumerate(z) if v > 0]
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


def spans(layer: Any, idx: Sequence[int]) -> bool:
    """Exactly: do the rows ``idx`` of the layer have rank = its input dimension?"""
    n = layer.in_dim
    if len(idx) < n:
        return False
    if len(idx) * n > MAX_PEEL_ENTRIES:
        raise Invalid(f"{len(idx)} equation rows of {n} columns are too many to rank densely "
                      f"(> {MAX_PEEL_ENTRIES:,} entries)")
    return linalg.rank([integer_row(layer, i, n)[0] for i in idx], n) == n


def _descend(net: Network, y: Sequence[Fraction], chain: Sequence[Sequence[Fraction]]) -> Sequence[Fraction]:
    """Check that each h in ``chain`` (inputs of layers K-1, K-2, ..., in that
    order) is the only possible value there; returns the last known value."""
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
        pre = layer.pre_activation(h)
        if any(pre[i] != ti for i, ti in zip(idx, t)):
            raise Invalid(f"chain value {step} does not solve layer {k}'s equations")
        if not spans(layer, idx):
            raise Invalid(f"layer {k}: the {len(idx)} rows its output fixes do not span its {layer.in_dim} inputs")
        z = tuple(h)
    return z


def check_peel_point(net: Network, y: Sequence[Fraction], point: Sequence[Fraction]) -> str:
    """``point`` (already checked: in the domain, N(point) = y) is the only
    preimage if, at its exact evaluation, every layer's equation rows span."""
    values = [tuple(point)]
    for layer in net.layers[:-1]:
        values.append(layer.apply(values[-1]))
    _descend(net, y, values[::-1])
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

