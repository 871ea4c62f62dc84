"""The decision procedure for a network: stage by stage, then witnesses that
sample, then end to end (docs/theory.md, section 8; docs/networks.md).

Every verdict leaving this module has passed the exact checker (through
:meth:`exact_inj.run.Run.certified`); otherwise the answer is UNKNOWN.
"""

from __future__ import annotations

import time
from dataclasses import replace

from ..certify.schema import EmptyDomainProof, LayerwiseProof, LinearRankProof, StageProof, Witness
from ..errors import OperatorTooLarge
from ..layer.decide import decide_layer_run
from ..model import Domain, Network
from ..model.monotone import relu_form
from ..model.normalised import NormalisedNetwork
from ..model.stages import image_box, linear_rank, linear_witness, stages
from ..run import Progress, Run
from ..verdict import Status, Verdict
from . import endtoend, folds
from .injectivize import find_carry
from .normalised import decide_normalised
from .witness import lifted_witness, narrow_witness, singular_piece_witness

__all__ = ["END_TO_END_MAX_INPUTS", "END_TO_END_MAX_NEURONS", "decide_network"]


def decide_network(
    net: Network,
    time_limit: float = 300.0,
    max_nodes: int | None = None,
    milp: str = "highs",
    progress: Progress | None = None,
    domain: Domain | None = None,
    workers: int = 1,
    scheduler=None,
) -> Verdict:
    """Decide a network (docs/theory.md, section 8), cheapest routes first.

    - first_layer: the first stage sees the real domain; its collision is the network's.
    - layerwise: each later stage is proved injective on a convex superset of
      what it receives (the paper's Corollary 1).
    - When a later stage fails there (its collision may have no preimages):
      lifted (stage 1's collision has preimages), singular_piece and fold
      witnesses, then the end_to_end route (pieces and pairs of pieces, exact
      certificates for every pair) on small networks.
    """
    if isinstance(net, NormalisedNetwork):
        # Irrational batch normalisations: its base layers are not its function.
        return decide_normalised(net, time_limit, max_nodes, milp, progress, domain, workers, scheduler)
    run = Run.start(net, time_limit, max_nodes=max_nodes, milp=milp, progress=progress, domain=domain,
                    workers=workers, scheduler=scheduler)
    run.tried.append("stages")
    try:
        return _decide_network(run)
    except OperatorTooLarge as e:
        # Only the structured conv routes avoid the dense operator; a route
        # past them that needs it stops here, with the reason.
        return Verdict(Status.UNKNOWN, run.elapsed(), "limit",
                       f"a route needs a convolution's dense operator: {e}", None, {"tried": ["stages"]})


def _decide_network(run: Run) -> Verdict:
    net, domain, tried = run.net, run.domain, run.tried
    st_list = stages(net)
    dims = " -> ".join([str(net.input_dim)] + [str(st.layer.out_dim) for st in st_list])

    unit = ""
    if net.output_unit:
        # docs/theory.md, section 12: the unit is strictly increasing, so the
        # network is injective iff the part before it is; it is never evaluated.
        unit = (f" (the output unit {net.output_unit} is strictly increasing, so this holds for the network with "
                f"it too; the verdict and certificate are about the values before {net.output_unit})")

    def finish(status, route, reason, evidence, info) -> Verdict:
        return run.certified(status, route, f"{dims}: {reason}{unit}", evidence, info)

    if domain.is_empty():
        return finish(Status.INJECTIVE, "instant", f"{domain.describe()} is empty", EmptyDomainProof(), {})
    # Linear in the network's size, so before the stage searches: what
    # `exact-inj injectivize` writes has carried units (layerwise fails on it
    # whenever the original hidden units collide).  One layer is left to the
    # stage routes, which answer it at once (a rank, or the structural rule).
    carry = find_carry(net) if len(net.layers) > 1 else None
    if carry is not None:
        tried.append("carry")
        return finish(Status.INJECTIVE, "carry", "the input is carried to the outputs through every layer by unit "
                      "rows with bias 0, so x is read back exactly from two outputs per coordinate (docs/theory.md, "
                      "section 4, \"Carry proof\")", carry, {})
    proofs = []
    received = domain
    info: dict = {"stages": len(st_list)}
    for k, st in enumerate(st_list):
        if run.remaining() <= 0:
            info["open_stage"] = k
            return run.unknown(f"{dims}: time limit reached at stage {k}", info)
        sub = Network((st.layer,))
        label = _stage_label(st, len(net.layers))
        tried.append(f"stage{k}")
        run.say(f"{label}: {st.layer.in_dim} -> {st.layer.out_dim} {st.layer.activation} on {received.describe()}")
        if st.layer.activation in ("linear", "leaky_relu"):
            # A LeakyReLU (slope > 0) is a bijection of R applied per
            # coordinate: the stage is injective iff its affine part is
            # (docs/theory.md, section 12).
            rank = linear_rank(st.layer, received)
            if rank == st.layer.in_dim:
                proofs.append(StageProof(st.start, st.stop, received, LinearRankProof()))
                # A LeakyReLU stage is now a middle stage: the next one
                # receives its image, as after a ReLU stage.
                received = image_box(st.layer, received)
                continue
            v = None
            pair = linear_witness(st.layer, received)
        else:
            # A convolution stage tries its cheap kernel witnesses (a kernel
            # null vector: two latent coordinates entering identically) before
            # its structural proof, in decide_layer_run itself; a witness of
            # the first stage is the network's (below).
            v = decide_layer_run(run.sub(sub, received))
            info[f"stage{k}"] = {"verdict": v.status.value, "route": v.route, "seconds": round(v.seconds, 4)}
            if v.status is Status.INJECTIVE:
                proofs.append(StageProof(st.start, st.stop, received, v.proof))
                received = image_box(st.layer, received)
                continue
            if v.status is Status.UNKNOWN:
                info["open_stage"] = k
                return _after_layerwise(run, info, finish, dims, f"{label} undecided: {v.reason}")
            pair = (v.witness.x, v.witness.y)
        if k == 0 and pair is not None:
            # The first stage sees the network's own domain: equal stage
            # outputs stay equal through the rest of the network.
            why = v.reason if v is not None else f"its affine map has rank {rank} < {st.layer.in_dim}"
            return finish(Status.NOT_INJECTIVE, "first_layer",
                          f"the first stage is not injective on {domain.describe()} ({why}), "
                          "so neither is the network", Witness(tuple(pair[0]), tuple(pair[1])), info)
        # A collision on a superset of the received set: not a network witness
        # unless both points have preimages (a lifted witness).
        info["layerwise_failed_at"] = k
        why = (f"{label} is not injective on {received.describe()}, a convex superset of what it receives, so "
               "the layerwise route fails")

        if pair is not None:
            tried.append("lift")
            try:
                lifted = lifted_witness(net, domain, k, tuple(pair[0]), tuple(pair[1]))
            except OperatorTooLarge:
                lifted = None  # it solves in stage 0's dense rows; the routes below may still answer
            if lifted is not None:
                return finish(Status.NOT_INJECTIVE, "lifted",
                              f"{why}; but both points of its collision have preimages in {domain.describe()}, "
                              "and those collide through the whole network", Witness(lifted[0], lifted[1]), info)
        return _after_layerwise(run, info, finish, dims, f"{why} (that collision need not have preimages)")
    return finish(Status.INJECTIVE, "layerwise",
                  f"every stage is injective on a convex set containing what it receives "
                  f"(the paper's Corollary 1), starting from {domain.describe()}",
                  LayerwiseProof(tuple(proofs)), info)


# The end-to-end route closes every pair of pieces, so its cost grows with the
# square of the number of pieces; beyond these sizes it is not attempted
# (docs/networks.md has the measured reach).
END_TO_END_MAX_NEURONS = 64


END_TO_END_MAX_INPUTS = 4


def _after_layerwise(run: Run, info: dict, finish, dims: str, why: str) -> Verdict:
    """Cheap witnesses, then the end-to-end route, once layerwise reasoning has failed."""
    net, domain, tried, deadline = run.net, run.domain, run.tried, run.deadline
    if any(layer.activation == "leaky_relu" for layer in net.layers):
        # The routes below model ReLU and linear layers: they search the same
        # function written with ReLUs (model/monotone.py).  Witnesses are
        # checked on the network as written, an end-to-end proof on the
        # checker's own relu_form of it.
        net = relu_form(net)
        run = replace(run, net=net)
        tried.append("relu_form")
    if net.output_dim < net.input_dim:
        # Every piece is singular; this route reads sparse rows only, so it
        # also answers for convolutional stages too large to make dense.
        tried.append("narrow")
        pair = narrow_witness(net, domain)
        if pair is not None:
            return finish(Status.NOT_INJECTIVE, "singular_piece",
                          f"{why}; but the network has {net.output_dim} outputs for {net.input_dim} inputs: at x it "
                          f"is affine with a Jacobian of rank at most {net.output_dim} < {net.input_dim}, and moving "
                          "along its null space inside that piece keeps the output fixed", Witness(pair[0], pair[1]),
                          info)
    tried.append("singular_pieces")
    pair = singular_piece_witness(net, domain)
    if pair is not None:
        return finish(Status.NOT_INJECTIVE, "singular_piece",
                      f"{why}; and at x the network is affine with a Jacobian of rank < {net.input_dim}: moving "
                      "along its null space inside that piece keeps the output fixed", Witness(pair[0], pair[1]), info)
    if net.output_dim == net.input_dim:
        tried.append("folds")
        pair = folds.fold_witness(net, domain, deadline=min(deadline, time.perf_counter() + 30))
        if pair is not None:
            return finish(Status.NOT_INJECTIVE, "fold",
                          f"{why}; and two adjacent pieces have Jacobian determinants of opposite sign, so the "
                          "map folds over their common facet: points on either side of it collide",
                          Witness(pair[0], pair[1]), info)
    neurons = sum(st.layer.out_dim for st in stages(net) if st.layer.activation == "relu")
    if neurons > END_TO_END_MAX_NEURONS or net.input_dim > END_TO_END_MAX_INPUTS:
        return run.unknown(f"{dims}: {why}; the end-to-end route is for small networks (at most "
                           f"{END_TO_END_MAX_NEURONS} ReLUs and {END_TO_END_MAX_INPUTS} inputs; this one has {neurons} "
                           f"and {net.input_dim})", info)
    tried.append("end_to_end")
    run.say(f"end to end: {neurons} ReLUs on {domain.describe()}")
    r = endtoend.decide(net, domain, deadline, progress=run.progress, count=run.count)
    info["end_to_end"] = {"pieces": r.pieces, "pairs_closed": r.pairs_done, "pairs": r.pairs_total, **r.stats}
    if r.status == "injective":
        return finish(Status.INJECTIVE, "end_to_end",
                      f"{why}; end to end, the network's {r.pieces} closed pieces cover {domain.describe()}, and "
                      f"no pair of them (all {r.pairs_total}) holds two distinct points with equal outputs",
                      r.proof, info)
    if r.status == "not_injective":
        x, y = r.witness
        return finish(Status.NOT_INJECTIVE, "end_to_end",
                      f"{why}; end to end, two pieces of the network map distinct points to the same output "
                      f"({r.reason})", Witness(x, y), info)
    return run.unknown(f"{dims}: {why}; the end-to-end route stopped: {r.reason}", info)


def _stage_label(st, layers: int) -> str:
    """How a reason names a stage, for a reader rather than the engine:
    layers counted from 1, and a folded run of layers said as such.

    >>> from exact_inj.model.stages import Stage
    >>> from exact_inj.model import Layer
    >>> L = Layer.from_rows([[1]])
    >>> _stage_label(Stage(1, 2, L), 3), _stage_label(Stage(0, 2, L), 3)
    ('layer 2 of 3', 'layers 1-2 of 3 (folded into one affine map)')
    """
    if st.stop - st.start == 1:
        return f"layer {st.start + 1} of {layers}"
    return f"layers {st.start + 1}-{st.stop} of {layers} (folded into one affine map)"
