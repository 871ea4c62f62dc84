"""Deciding networks with irrational batch normalisations (untrusted search;
docs/theory.md, section 12, "Irrational batch normalisation").

Routes, cheapest first, every answer checked by :mod:`exact_inj.certify.surd`
through :meth:`exact_inj.run.Run.certified`:

- first_layer: layer 0's rational affine map (before any root) has a null
  vector on the domain: two inputs with equal pre-activations, hence equal
  outputs of the whole network, with no root evaluated.  A layer 0 without a
  normalisation is decided by the plain routes, and its collision is the
  network's as usual.
- layerwise: each layer injective on a set containing what it receives; a
  normalised ReLU layer by the structural rule on its pulled-out rows
  (:func:`surd_structural`), a plain layer by the plain routes on the orthant.

Anything else is ``unknown``, with the reason: a collision of a later stage on
a superset of what it receives would have to be lifted through irrational
factors, which is not attempted.
"""

from __future__ import annotations

from fractions import Fraction
from math import prod

from ..certify.schema import (EmptyDomainProof, LayerwiseProof, LinearRankProof, StageProof, SurdStructuralProof,
                              Witness)
from ..certify.surd import surd_sign
from ..exact import modrank
from ..layer.convproof import full_column_rank, kernel_null_vector, named_row_pairs, opposite_pairs
from ..layer.decide import decide_layer_run
from ..model import MAX_OPERATOR_ENTRIES, ConvLayer, Domain, Layer, Network
from ..model.normalised import NormalisedNetwork, SurdRow, surd_rows
from ..model.stages import linear_rank, linear_witness, pair_along
from ..run import Progress, Run
from ..verdict import Status, Verdict

__all__ = ["decide_normalised", "surd_structural"]

_ZERO = Fraction(0)


def _condition(c: Fraction, ri: SurdRow, rj: SurdRow) -> bool:
    """c b_i + b_j >= 0 for the surd biases, exactly."""
    return surd_sign(c * ri.p + rj.p, c * ri.q, ri.root, rj.q, rj.root) >= 0


def _pair_rows(vectors: list[tuple | None], rows: list[SurdRow], cand: list[int]) -> list[tuple[int, int]]:
    """Disjoint pairs (i, j) among ``cand`` with v_j = -c v_i (c > 0) and the
    surd bias condition; ``vectors[i]`` is the pulled-out row (or kernel) i."""
    groups: dict[tuple, list[int]] = {}
    for i in cand:
        v = vectors[i]
        piv = next((x for x in v if x != 0), None)
        if piv is not None:
            groups.setdefault(tuple(x / abs(piv) for x in v), []).append(i)
    return opposite_pairs(groups, vectors, lambda i, j, c: _condition(c, rows[i], rows[j]))


def surd_structural(layer, rows: list[SurdRow], deadline: float | None = None
                    ) -> tuple[SurdStructuralProof | None, str]:
    """The structural rule on the pulled-out rows, or None and why."""
    n = layer.in_dim
    if isinstance(layer, ConvLayer):
        spec = layer.spec
        per = prod(spec.output_size)
        # Biases are constant over a channel's positions: pair whole channels.
        # That needs each conv channel inside one normalisation channel (a
        # Flatten between the conv and a BatchNorm1d can normalise each
        # position apart): otherwise the pairs read off row o * per would not
        # hold for the channel's other rows, and the checker would refuse them.
        if any(rows[o * per + r] != rows[o * per] for o in range(spec.out_channels) for r in range(1, per)):
            return None, ("the normalisation's channels do not follow the convolution's (rows of one conv channel "
                          "are normalised differently): channel pairs are not defined")
        ch_rows = [rows[o * per] for o in range(spec.out_channels)]
        kern = [None if r.sign == 0 else tuple(r.sign * v for v in spec.channel_kernel(o))
                for o, r in enumerate(ch_rows)]
        ch_pairs = _pair_rows(kern, ch_rows, [o for o in range(spec.out_channels) if kern[o] is not None])
        if not ch_pairs:
            return None, "no pair of channels [K; -cK] (after the normalisation's signs) meets the surd bias condition"
        chans = [o for o, _ in ch_pairs]
        how, what = full_column_rank(spec, chans, deadline)
        if how != "rows":
            return None, what if how is None else "the periodic (frequency) form is not implemented for surd biases"
        return SurdStructuralProof(named_row_pairs(spec, ch_pairs, what)), "named rows"
    vecs = [None if r.sign == 0 else tuple(r.sign * v for v in layer.weight[i]) for i, r in enumerate(rows)]
    pairs = _pair_rows(vecs, rows, [i for i, v in enumerate(vecs) if v is not None])
    if len(pairs) < n:
        return None, f"{len(pairs)} row pairs [w; -cw] meet the surd bias condition, fewer than n = {n}"
    sparse = [layer.sparse_row(i) for i, _ in pairs]
    for attempt in range(3):
        p, _ = modrank.primes_with_roots([1], skip=attempt)
        picked = modrank.independent_rows(sparse, n, p)
        if picked is not None:
            return SurdStructuralProof(tuple(pairs[k] for k in picked)), "named rows"
    return None, "the paired rows have rank < n modulo 3 primes"


def _first_layer_pair(layer, domain: Domain):
    """x != y in the domain with equal rational pre-activations of ``layer``, or None."""
    if isinstance(layer, ConvLayer):
        v = kernel_null_vector(layer)
        return None if v is None else pair_along(v, domain)
    return linear_witness(Layer(layer.weight, layer.bias, "linear"), domain)


def decide_normalised(net: NormalisedNetwork, time_limit: float = 300.0, max_nodes: int | None = None,
                      milp: str = "highs", progress: Progress | None = None, domain: Domain | None = None,
                      workers: int = 1, scheduler=None) -> Verdict:
    """Decide a network with irrational batch normalisations (module docstring)."""
    run = Run.start(net, time_limit, max_nodes=max_nodes, milp=milp, progress=progress, domain=domain,
                    workers=workers, scheduler=scheduler)
    domain, tried = run.domain, run.tried
    layers = net.layers
    dims = " -> ".join([str(net.input_dim)] + [str(layer.out_dim) for layer in layers])
    unit = (f" (the output unit {net.output_unit} is strictly increasing, so this holds for the network with it "
            "too)") if net.output_unit else ""

    def finish(status, route, reason, evidence, info) -> Verdict:
        return run.certified(status, route, f"{dims}: {reason}{unit}", evidence, info)

    if domain.is_empty():
        return finish(Status.INJECTIVE, "instant", f"{domain.describe()} is empty", EmptyDomainProof(), {})
    info: dict = {"stages": len(layers), "normalised_layers": [k for k, n in enumerate(net.norms) if n is not None]}
    tried.append("first_layer_affine")
    pair = _first_layer_pair(layers[0], domain)
    if pair is not None and pair[0] != pair[1]:
        return finish(Status.NOT_INJECTIVE, "first_layer",
                      "layer 1's rational affine map (before any normalisation) is not injective on "
                      f"{domain.describe()}: two inputs with equal pre-activations, so equal outputs of the whole "
                      "network, exactly (no square root is evaluated)", Witness(tuple(pair[0]), tuple(pair[1])), info)
    proofs = []
    received = domain
    for k, (layer, norm) in enumerate(zip(layers, net.norms)):
        if run.remaining() <= 0:
            info["open_stage"] = k
            return run.unknown(f"{dims}: time limit reached at stage {k}", info)
        tried.append(f"stage{k}")
        run.say(f"layer {k + 1}: {layer.in_dim} -> {layer.out_dim} {layer.activation}"
                f"{' with an irrational batch normalisation' if norm else ''}")
        if norm is not None:
            if layer.activation == "linear":
                # Outputs d_o (z_i - mean_o) + beta_o, d_o != 0, or constants (gamma = 0):
                # the rank of the rows with gamma != 0 decides (docs/theory.md, section 12).
                kept = [i for i, r in enumerate(surd_rows(layer, norm)) if r.sign != 0]
                if len(kept) * layer.in_dim > MAX_OPERATOR_ENTRIES:
                    info["open_stage"] = k
                    return run.unknown(f"{dims}: the last layer's rank needs a dense matrix of {len(kept)} x "
                                       f"{layer.in_dim} entries, above {MAX_OPERATOR_ENTRIES}", info)
                rows = tuple(tuple(layer.sparse_row(i).get(c, _ZERO) for c in range(layer.in_dim)) for i in kept)
                rows = rows or ((_ZERO,) * layer.in_dim,)
                sub = Layer(rows, (_ZERO,) * len(rows), "linear")
                if linear_rank(sub, received) != layer.in_dim:
                    info["open_stage"] = k
                    return run.unknown(f"{dims}: the last layer's rows with gamma != 0 have rank < "
                                       f"{layer.in_dim} on {received.describe()}, a superset of what it receives",
                                       info)
                proofs.append(StageProof(k, k + 1, received, LinearRankProof()))
                continue
            proof, note = surd_structural(layer, surd_rows(layer, norm), run.deadline)
            info[f"stage{k}"] = note
            if proof is None:
                info["open_stage"] = k
                return run.unknown(f"{dims}: layer {k + 1} (followed by a batch normalisation with irrational "
                                   f"roots) was not shown injective: {note}; the routes that need its biases "
                                   "as rationals are not used (a root is never rounded)", info)
            proofs.append(StageProof(k, k + 1, received, proof))
        elif layer.activation in ("linear", "leaky_relu"):
            if linear_rank(layer, received) != layer.in_dim:
                info["open_stage"] = k
                return run.unknown(f"{dims}: layer {k + 1}'s affine map is not injective on "
                                   f"{received.describe()}, a superset of what it receives", info)
            proofs.append(StageProof(k, k + 1, received, LinearRankProof()))
        else:
            v = decide_layer_run(run.sub(Network((layer,)), received))
            info[f"stage{k}"] = {"verdict": v.status.value, "route": v.route}
            if v.status is Status.INJECTIVE:
                proofs.append(StageProof(k, k + 1, received, v.proof))
            elif k == 0 and v.status is Status.NOT_INJECTIVE:
                return finish(Status.NOT_INJECTIVE, "first_layer",
                              f"layer 1 (no normalisation) is not injective on {domain.describe()} ({v.reason}), "
                              "so neither is the network", v.witness, info)
            else:
                info["open_stage"] = k
                return run.unknown(f"{dims}: layer {k + 1} undecided on {received.describe()}, a superset of "
                                   f"what it receives: {v.reason}", info)
        received = Domain.orthant() if layer.activation == "relu" else Domain.reals()
    return finish(Status.INJECTIVE, "layerwise",
                  "every layer is injective on a convex set containing what it receives; each normalised layer "
                  "by the structural rule on its rows with the positive factors pulled out, the bias conditions "
                  "(quadratic surds) decided exactly", LayerwiseProof(tuple(proofs)), info)
