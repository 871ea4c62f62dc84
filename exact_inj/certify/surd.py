"""Checking certificates of networks with irrational batch normalisations
(docs/theory.md, section 12, "Irrational batch normalisation").

Every number such a check compares is a rational or a sum ``a + b sqrt(R) +
c sqrt(S)`` with a, b, c, R, S rational; its sign is decided exactly by
:func:`surd_sign` (squaring with the signs tracked: comparisons of
rationals, i.e. of cross-multiplied integers).  No root is ever evaluated,
no float and no interval decides anything.

What is accepted (the network is a :class:`~exact_inj.model.normalised.NormalisedNetwork`):

* ``not_injective``: a witness x != y in the domain with equal
  pre-activations of layer 0 (``W_0 x + b_0 = W_0 y + b_0``, rational), or,
  when layer 0 has no normalisation, equal outputs of layer 0.  Everything
  after layer 0 is a function of those values, so the network's outputs are
  equal, exactly, without evaluating a root.
* ``injective``: a layerwise proof with one stage per layer.  A layer with
  no normalisation carries any plain proof, checked by the plain checker on
  that layer alone; a normalised ReLU layer carries a ``surd_structural``
  proof (the [B; -DB] rule on the pulled-out rows, bias condition decided
  exactly); a normalised linear last layer a ``linear_rank`` proof (rank of
  its rows with gamma != 0).  Stage domains: stage 0's contains the
  network's domain; a later stage's is the orthant (after a ReLU layer: every
  output is a positive factor times a ReLU, or a constant ReLU(beta) >= 0) or
  R^n.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Callable

from ..exact import linalg
from ..model import Domain, Network
from ..model.normalised import NormalisedNetwork, SurdRow, surd_rows
from ..model.stages import contains, degenerate_rows
from .base import Invalid
from .layer import check_b_independent, check_pair_indices
from .schema import EmptyDomainProof, LayerwiseProof, LinearRankProof, Status, SurdStructuralProof, Witness

__all__ = ["check_normalised", "surd_sign"]

_ZERO = Fraction(0)


def _sign(x: Fraction) -> int:
    return (x > 0) - (x < 0)


def _sign_root_term(b: Fraction, R: Fraction) -> int:
    """The sign of b sqrt(R), R >= 0."""
    return _sign(b) if R > 0 else 0


def _sign_two(s1: int, sq1: Fraction, s2: int, sq2: Fraction) -> int:
    """The sign of t1 + t2 from their signs and squares (exact)."""
    if s1 == 0:
        return s2
    if s2 == 0 or s1 == s2:
        return s1
    # Opposite signs: the one with the larger square wins; equal squares cancel.
    return s1 if sq1 > sq2 else (s2 if sq2 > sq1 else 0)


def surd_sign(a: Fraction, b: Fraction = _ZERO, R: Fraction = _ZERO, c: Fraction = _ZERO,
              S: Fraction = _ZERO) -> int:
    """The sign (-1, 0, 1) of a + b sqrt(R) + c sqrt(S), R, S >= 0 rational, exactly.

    x = b sqrt(R) + c sqrt(S) has a sign from its two terms' signs and
    squares b^2 R and c^2 S; then a + x, when a and x have opposite signs,
    has the sign of the larger of a^2 and x^2 = b^2 R + c^2 S + 2bc sqrt(RS),
    i.e. the sign of (a^2 - b^2 R - c^2 S) - 2bc sqrt(RS), one root again.

    >>> F = Fraction
    >>> surd_sign(F(-7, 5), F(1), F(2))            # sqrt 2 - 1.4 > 0
    1
    >>> surd_sign(F(3), F(-1), F(9))                # 3 - sqrt 9 = 0
    0
    >>> surd_sign(F(0), F(1), F(2), F(-1), F(3))    # sqrt 2 - sqrt 3 < 0
    -1
    >>> surd_sign(F(-5), F(1), F(2), F(1), F(3))    # sqrt 2 + sqrt 3 - 5 < 0 (3.15 - 5)
    -1
    >>> surd_sign(F(1), F(1), F(8), F(-2), F(2))    # 1 + 2 sqrt 2 - 2 sqrt 2 = 1
    1
    """
    if R < 0 or S < 0:
        raise ValueError("square roots of negative numbers")
    s1, s2 = _sign_root_term(b, R), _sign_root_term(c, S)
    sx = _sign_two(s1, b * b * R, s2, c * c * S)
    sa = _sign(a)
    if sx == 0 and s1 == 0 and s2 == 0:
        return sa
    if sa == 0 or sa == sx:
        return sx if sa == 0 else sa
    if sx == 0:
        return sa
    # a and x have opposite signs: sign(|a| - |x|) = sign(a^2 - x^2).
    rest = a * a - b * b * R - c * c * S
    d = _sign_two(_sign(rest), rest * rest, _sign_root_term(-2 * b * c, R * S), 4 * b * b * c * c * R * S)
    return sa if d > 0 else (sx if d < 0 else 0)


def _check_witness(net: NormalisedNetwork, w: Witness, dom: Domain) -> str:
    n = net.input_dim
    if len(w.x) != n or len(w.y) != n:
        raise Invalid(f"the witness has {len(w.x)} and {len(w.y)} coordinates; the network has {n} inputs")
    if w.x == w.y:
        raise Invalid("the witness points are equal")
    if not (dom.contains(w.x) and dom.contains(w.y)):
        raise Invalid(f"a witness point is outside {dom.describe()}")
    layer = net.layers[0]
    if layer.pre_activation(w.x) == layer.pre_activation(w.y):
        return ("x != y with equal pre-activations of layer 1 (rational, before any normalisation), hence equal "
                "outputs of the whole network")
    if net.norms[0] is None and layer.apply(w.x) == layer.apply(w.y):
        return "x != y with equal outputs of layer 1 (which has no normalisation), hence of the whole network"
    raise Invalid("the witness points have different values after layer 1's affine map; with irrational "
                  "normalisations nothing later is compared")


def check_surd_structural(layer, rows: list[SurdRow], proof: SurdStructuralProof) -> str:
    """The structural rule (docs/theory.md, section 4) on the pulled-out rows
    sigma_i w_i with surd biases p_i + q_i sqrt(R_i): pairs (i, j) with
    sigma_j w_j = -c sigma_i w_i, c > 0, c (p_i + q_i sqrt R_i) + p_j + q_j sqrt R_j >= 0
    (decided exactly), and the rows i independent."""
    n, m = layer.in_dim, layer.out_dim
    check_pair_indices(proof.pairs, n, m, "surd_structural")
    B = []
    for k, (i, j) in enumerate(proof.pairs):
        ri, rj = rows[i], rows[j]
        if ri.sign == 0 or rj.sign == 0:
            raise Invalid(f"pair {k}: a row of a channel with gamma = 0 (a constant) cannot be paired")
        wi, wj = layer.sparse_row(i), layer.sparse_row(j)
        if not wi:
            raise Invalid(f"pair {k}: row {i} is zero")
        col = min(wi)
        # sigma_j w_j = -c sigma_i w_i
        c = -Fraction(rj.sign * wj.get(col, _ZERO), ri.sign) / wi[col]
        if c <= 0 or wj.keys() != wi.keys() or any(rj.sign * wj[t] != -c * ri.sign * v for t, v in wi.items()):
            raise Invalid(f"pair {k}: row {j} (pulled out) is not a negative multiple of row {i}")
        s = surd_sign(c * ri.p + rj.p, c * ri.q, ri.root, rj.q, rj.root)
        if s < 0:
            raise Invalid(f"pair {k}: bias condition c*b_{i} + b_{j} >= 0 fails (the surd "
                          f"{c * ri.p + rj.p} + {c * ri.q}*sqrt({ri.root}) + {rj.q}*sqrt({rj.root}) is negative)")
        B.append(wi)
    check_b_independent(layer, proof.pairs, B, n)
    return f"[B; -DB] on {2 * n} of {m} pulled-out rows, surd bias conditions decided exactly"


def check_normalised(net: NormalisedNetwork, dom: Domain, verdict: Status, ev,
                     check_plain: Callable[[Network, Domain, object], str]) -> str:
    """The certificate's claim about ``net`` (module docstring); ``check_plain``
    checks a plain proof of a one-layer Network on a domain (the plain checker)."""
    if not dom.dim_ok(net.input_dim):
        raise Invalid(f"the domain has {len(dom.lower)} coordinates but the network {net.input_dim} inputs")
    if verdict is Status.NOT_INJECTIVE:
        if not isinstance(ev, Witness):
            raise Invalid("a not_injective verdict needs a witness")
        return _check_witness(net, ev, dom)
    if verdict is not Status.INJECTIVE:
        raise Invalid(f"verdict {verdict!r} has nothing to check")
    if isinstance(ev, EmptyDomainProof):
        if not dom.is_empty():
            raise Invalid("the domain is not empty")
        return f"{dom.describe()} is empty"
    if not isinstance(ev, LayerwiseProof):
        raise Invalid("an injective verdict on a normalised network needs a layerwise proof")
    layers = net.layers
    if [(st.start, st.stop) for st in ev.stages] != [(k, k + 1) for k in range(len(layers))]:
        raise Invalid("the stages must be the layers, one each, in order")
    notes = []
    for k, (st, layer, norm) in enumerate(zip(ev.stages, layers, net.norms)):
        d = st.domain
        if not d.dim_ok(layer.in_dim):
            raise Invalid(f"stage {k}: its domain has the wrong dimension")
        if k == 0:
            if not contains(d, dom):
                raise Invalid(f"stage 0's domain {d.describe()} does not contain {dom.describe()}")
        elif d.kind != "reals" and not (d.kind == "orthant" and layers[k - 1].activation == "relu"):
            raise Invalid(f"stage {k}: domain {d.describe()} is not R^n, or the orthant after a ReLU layer")
        if norm is None:
            notes.append(check_plain(Network((layer,)), d, st.proof))
            continue
        rows = surd_rows(layer, norm)
        if layer.activation == "relu" and isinstance(st.proof, SurdStructuralProof):
            notes.append(check_surd_structural(layer, rows, st.proof))
        elif layer.activation == "linear" and isinstance(st.proof, LinearRankProof):
            # Each output is a non-zero factor times (w_i . h + b_i - mean) plus a
            # constant, or a constant (gamma = 0): injective on a convex set iff
            # the rows with gamma != 0 and the set's fixed coordinates span R^n.
            kept = [i for i, r in enumerate(rows) if r.sign != 0]
            dense = [[layer.sparse_row(i).get(c, _ZERO) for c in range(layer.in_dim)] for i in kept]
            r = linalg.rank_q(dense + degenerate_rows(d, layer.in_dim), layer.in_dim)
            if r != layer.in_dim and not d.is_empty():
                raise Invalid(f"stage {k}: rank {r} < {layer.in_dim}")
            notes.append(f"linear rank {r} (rows with gamma != 0)")
        else:
            raise Invalid(f"stage {k}: a normalised {layer.activation} layer needs a "
                          f"{'surd_structural' if layer.activation == 'relu' else 'linear_rank'} proof")
    return f"{len(layers)} stages, each injective on a set containing what it receives: " + "; ".join(notes)
