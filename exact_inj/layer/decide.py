"""The decision procedure for one ReLU layer on R^n.

Order of work, cheapest first (each stage either ends with exact evidence or
passes on):
1. instant rules of R^n: rank W < n, and m < 2n (docs/theory.md, section 7), each with
   an explicit witness;
2. the structural rule [B; -DB] with its bias condition (docs/theory.md, section 4);
3. a witness LP: a few reweighted hinge LPs that look for a point where the
   rows not strictly negative fail to span (fast on wide, non-injective layers);
4. the case-split proof search (:mod:`exact_inj.layer.search`), with the big-M MILP running in a
   separate process side by side as a second witness source.

Every verdict leaving this module has passed the exact checker (through
:meth:`exact_inj.run.Run.certified`); otherwise the answer is UNKNOWN with a
note.
"""

from __future__ import annotations

from fractions import Fraction

from ..certify.schema import EmptyDomainProof, StructuralProof, Witness
from ..exact import linalg
from ..model import MAX_OPERATOR_ENTRIES, ConvLayer, Domain, Network
from ..model.stages import pair_along
from ..run import Progress, Run
from ..verdict import Status, Verdict
from . import convproof
from .milp import MilpSide
from .cluster import cluster_tree_search
from .psearch import parallel_tree_search
from .rules import few_rows_witness, find_structural_pairs, hinge_witness
from .data import LayerData
from .repair import finish_witness
from .search import SearchStats, tree_search

__all__ = ["MILP_EAGER_N", "MILP_LATE_SECONDS", "MILP_WITH_WORKERS", "decide_layer", "decide_layer_run"]

# Start the MILP side process at once for layers with at least this many
# inputs; smaller layers are almost always decided by the tree in well under
# a second, less than the ~0.5 s a spawned interpreter needs to start.
MILP_EAGER_N = 6


# For smaller layers, start it only if the tree is still running after this.
MILP_LATE_SECONDS = 2.0

# Whether the MILP side process also runs beside K > 1 local search
# processes (it always does beside a cluster search: this machine's cores
# are then free).  Measured in docs/performance.md, "Cluster search (issue 17)".
MILP_WITH_WORKERS = False


def decide_layer(
    net: Network,
    time_limit: float = 300.0,
    max_nodes: int | None = None,
    milp: str = "highs",
    progress: Progress | None = None,
    domain: Domain | None = None,
    workers: int = 1,
    scheduler=None,
) -> Verdict:
    """Decide injectivity of a one-layer ReLU network on R^n or a domain (see verify())."""
    return decide_layer_run(Run.start(net, time_limit, max_nodes=max_nodes, milp=milp, progress=progress,
                                      domain=domain, workers=workers, scheduler=scheduler))


def decide_layer_run(run: Run) -> Verdict:
    """:func:`decide_layer` for a run already started (a network's stage uses this)."""
    layer = run.net.layers[0]
    domain = run.domain
    tried = run.tried
    done = run.certified

    if domain.is_empty():
        return done(Status.INJECTIVE, "instant", f"{domain.describe()} is empty, so nothing in it can collide",
                    EmptyDomainProof())
    if isinstance(layer, ConvLayer):
        # Structured first: the kernel alone can prove [C; -DC] injective,
        # at sizes whose dense operator could never be built.  Certificates
        # stay about `net`, the convolution as given; only the dense routes
        # below see its operator, and only when it is small enough.
        if domain.kind == "reals" and layer.out_dim < 2 * layer.in_dim:
            tried.append("conv_few_rows")
            pair = convproof.few_rows_witness(layer)
            if pair is not None:
                return done(Status.NOT_INJECTIVE, "instant",
                            f"a {layer.spec.describe()}: {layer.in_dim} inputs -> {layer.out_dim} ReLU units, fewer "
                            f"than 2n = {2 * layer.in_dim}: far out along a generic direction fewer than n rows are "
                            "active, and moving along their null space (found on a small patch of the input) keeps "
                            "the output fixed (the paper's Corollary 2; docs/theory.md, section 7)",
                            Witness(*pair))
        # The two witness routes read a small matrix off the kernel and take
        # milliseconds; the structural proof may run modular eliminations for
        # minutes, and cannot succeed when they find C v = 0.  So they go
        # first (with the structural proof first, a 48 x 48 layer whose two
        # input channels enter identically was "unknown" at a 60 s limit and
        # "not injective" at 2 s, when the elimination was skipped).
        tried.append("conv_null_image")
        null = convproof.periodic_null_vector(layer)
        pair = pair_along(null[0], domain) if null is not None else None
        if pair is not None:
            return done(Status.NOT_INJECTIVE, "instant",
                        f"a {layer.spec.describe()}: it maps {null[1]} (with a suitable value per input "
                        "channel) to zero, so adding it to any input changes no output: C v = 0 for v != 0, "
                        "read off the kernel at one of the frequencies whose Fourier vectors are rational",
                        Witness(*pair))
        tried.append("kernel_null_vector")
        v = convproof.kernel_null_vector(layer)
        pair = pair_along(v, domain) if v is not None else None
        if pair is not None:
            return done(Status.NOT_INJECTIVE, "instant",
                        f"a {layer.spec.describe()}: some channel values u satisfy K[o, :, q] . u = 0 for every "
                        "output channel o and tap q, so the image holding u at one position and 0 elsewhere is "
                        "mapped to zero (C v = 0, v != 0), and adding it to any input changes no output",
                        Witness(*pair))
        tried.append("conv_structural")
        proof, how = convproof.structural_proof(layer, run.deadline)
        if proof is not None:
            return done(Status.INJECTIVE, "structural",
                        f"a {layer.spec.describe()}: its output channels pair up as [C; -DC] with D > 0 and the "
                        f"bias condition, and the operator C of the first channel of each pair has full column "
                        f"rank {layer.in_dim}, shown by {how} modulo a prime; so the layer is injective on R^n"
                        + ("" if domain.kind == "reals" else f" and hence on {domain.describe()}"),
                        proof, {"conv": how})
        if layer.dense_entries > MAX_OPERATOR_ENTRIES or run.past_deadline():
            why = (f"its dense operator ({layer.out_dim} x {layer.in_dim}) is above the {MAX_OPERATOR_ENTRIES} "
                   "entries the general routes build" if layer.dense_entries > MAX_OPERATOR_ENTRIES
                   else "and the time limit was reached")
            return run.unknown(f"a {layer.spec.describe()}: {how}; {why}",
                               {"conv": how, "operator_entries": layer.dense_entries, "time_limit": run.time_limit})
        layer = layer.dense()
    data = LayerData(layer, domain)
    n, m = data.n, data.m
    if run.past_deadline():
        return run.unknown("the time limit was reached while reading the layer's rows", {"time_limit": run.time_limit})
    if domain.kind != "reals":
        return _decide_on_domain(run, data)

    # 1. Instant rules (of R^n only: docs/theory.md, section 1b).
    tried.append("rank")
    if m < n:
        # Fewer rows than inputs: rank W <= m < n without computing it, and a
        # null vector already lives on any m + 1 columns (a small system even
        # for wide layers such as 784 -> 256).
        sub = [row[: m + 1] for row in data.Wi[:m]]
        v = linalg.primitive(linalg.nullspace(sub, m + 1)[0]) + [0] * (n - m - 1)
        w = finish_witness(layer, tuple(Fraction(0) for _ in range(n)), tuple(Fraction(c) for c in v))
        return done(Status.NOT_INJECTIVE, "instant",
                    f"{n} inputs -> {m} ReLU units: W has rank at most {m} < {n}, so W v = 0 for some v != 0 "
                    "and x, x + v always collide (on any full-dimensional domain)", w)
    rk = linalg.rank(data.Wi, n)
    if rk < n:
        v = linalg.primitive(linalg.nullspace(data.Wi, n)[0])
        w = finish_witness(layer, tuple(Fraction(0) for _ in range(n)), tuple(Fraction(c) for c in v))
        return done(Status.NOT_INJECTIVE, "instant",
                    f"rank W = {rk} < {n} = n: W v = 0 for v != 0, so x and x + v always collide", w)
    if run.past_deadline():
        return run.unknown(f"the time limit was reached after the rank of W (= {n}, full)", {"time_limit": run.time_limit})
    nonzero = sum(1 for row in data.Wi if any(row))
    if nonzero < 2 * n:
        tried.append("m<2n")
        w = few_rows_witness(data)
        if w is not None:
            return done(Status.NOT_INJECTIVE, "instant",
                        f"only {nonzero} nonzero rows < 2n = {2 * n}: a generic direction leaves fewer than n rows "
                        "active on one side (the paper's Corollary 2, which holds with bias)", w)

    # 2. Structural rule.
    tried.append("structural")
    pairs = find_structural_pairs(layer, run.deadline, data.Wi[:m], run.rows_done)
    if pairs is not None:
        return done(Status.INJECTIVE, "structural",
                    f"{2 * n} of the {m} rows form [B; -DB] with B invertible, D > 0 and the bias condition, "
                    "and adding rows never breaks injectivity", StructuralProof(pairs))

    # 3. Witness LP.
    if run.past_deadline():
        return run.unknown("the time limit was reached after the instant and structural rules", {"time_limit": run.time_limit})
    tried.append("witness_lp")
    w, best_active = hinge_witness(data, run.deadline)
    if w is not None:
        return done(Status.NOT_INJECTIVE, "witness_lp",
                    f"at the midpoint z of x and y the rows with w.z + b >= 0 have rank {w.active_rank} < {n}; along their "
                    "null space every other row stays strictly negative, so x and y collide", w)

    # 4. Tree search with the MILP alongside.
    tried.append(_tree_route(run))
    # With several local workers the cores go to the proof search, not the
    # MILP (MILP_WITH_WORKERS); with a cluster this machine's cores are free for it.
    side = (MilpSide(data, run.milp, run.deadline) if run.milp != "none" and (
        run.workers <= 1 or run.scheduler is not None or MILP_WITH_WORKERS) else None)
    if side is not None and n >= MILP_EAGER_N:
        side.start()
        tried.append(f"milp:{run.milp}")

    def poll() -> Witness | None:
        if side is None:
            return None
        if not side.started and run.elapsed() > MILP_LATE_SECONDS:
            side.start()
            tried.append(f"milp:{run.milp}")
        return side.poll()

    try:
        res, extra = _search(run, data, poll=poll)
    finally:
        if side is not None:
            side.stop()
    return _tree_verdict(run, res, data, best_active, extra)


def _decide_on_domain(run: Run, data: LayerData) -> Verdict:
    """The criterion of docs/theory.md, section 1b: constraint rows join the split.

    The instant rules of R^n do not carry over (W = [1] is injective on
    [1, 2]); the structural rule does, since a layer injective on R^n is
    injective on every subset.  The witness LP and the MILP are R^n models
    and are not used here yet.
    """
    n = data.n
    where = run.domain.describe()
    run.tried.append("structural")
    pairs = find_structural_pairs(data.layer, run.deadline, data.Wi[:data.m], run.rows_done)
    if pairs is not None:
        return run.certified(Status.INJECTIVE, "structural",
                    f"{2 * n} of the {data.m} rows form [B; -DB] with B invertible, D > 0 and the bias condition, so "
                    f"the layer is injective on R^n and hence on {where}", StructuralProof(pairs))
    run.tried.append(_tree_route(run))
    res, extra = _search(run, data)
    return _tree_verdict(run, res, data, None, extra)


def _tree_route(run: Run) -> str:
    if run.scheduler is not None:
        return "tree:cluster"
    return "tree" if run.workers <= 1 else f"tree:{run.workers}"


def _search(run: Run, data: LayerData, poll=None):
    """The proof search, sequential, in ``run.workers`` processes or on the
    Dask cluster ``run.scheduler``; whichever, the tree it returns is checked
    like any other.  Returns (SearchResult, info for the verdict)."""
    if run.scheduler is not None:
        res, report = cluster_tree_search(data, run.deadline, run.scheduler, max_nodes=run.max_nodes, poll=poll,
                                          progress=_reporter(run))
        return res, {"cluster": report.to_json()}
    if run.workers <= 1:
        return tree_search(data, run.deadline, max_nodes=run.max_nodes, poll=poll, progress=_reporter(run)), {}
    return parallel_tree_search(data, run.deadline, run.workers, max_nodes=run.max_nodes, poll=poll,
                                progress=_reporter(run)), {}


def _reporter(run: Run):
    def report(stats: SearchStats, now: float) -> None:
        run.say(f"nodes {stats.nodes}  leaves {stats.leaves}  cores {stats.cores}  "
                f"open {stats.open_cases}  lps {stats.lps}")
        if stats.closed is not None:  # the sequential search counts it (docs/cli.md, "Time limits")
            run.share(stats.closed, "of the case tree closed (a case weighs 2^-depth)")

    return report


def _tree_verdict(run: Run, res, data: LayerData, best_active: int | None = None, extra: dict | None = None
                  ) -> Verdict:
    n = data.n
    domain = run.domain
    on = "" if domain.kind == "reals" else f" on {domain.describe()}"
    st = res.stats
    info = {
        "nodes": st.nodes, "leaves": st.leaves, "lps": st.lps, "core_lps": st.core_lps,
        "cores": st.cores, "max_depth": st.max_depth, "repair_failures": st.repair_failures,
        "exact_lps": st.exact_lps, **(extra or {}),
    }
    if st.notes:
        info["notes"] = st.notes
    if res.kind == "proof":
        return run.certified(Status.INJECTIVE, "tree",
                    f"every case of the disjunction 'row orthogonal to v or strictly negative at z' is closed{on}: "
                    f"{st.leaves} leaves, each by n independent orthogonal rows or an exact Motzkin multiplier",
                    res.proof, info)
    if res.kind == "witness":
        route = "milp" if st.notes and "MILP" in st.notes[-1] else "tree"
        return run.certified(Status.NOT_INJECTIVE, route,
                    f"at the midpoint z of x and y the rows with w.z + b >= 0 have rank {res.witness.active_rank} < {n}, so x and a "
                    f"nearby y along their null space collide{on and ', both' + on}", res.witness, info)
    info["open_cases"] = st.open_cases
    if best_active is not None:
        info["fewest_active_rows_found"] = best_active
    info["time_limit"] = run.time_limit if domain.kind == "reals" else None
    reason = (f"limit reached after {run.elapsed():.1f} s: {st.nodes} nodes explored, "
              f"{st.open_cases} cases still open, no collision found")
    if st.notes:
        reason += f" ({st.notes[-1]})"
    return run.unknown(reason, info)
