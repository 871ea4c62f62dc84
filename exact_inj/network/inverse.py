"""Exact preimages of a ReLU network's output (docs/inverse.md).

``invert(net, y)`` answers, on the input domain (R^n, the orthant or a box):

- ``empty``: no x has N(x) = y;
- ``point``: exactly one x does;
- ``set``: at least two do (two exact points, and a description of the whole
  preimage as activation-pattern pieces when it is small enough to list);
- ``unknown``: undecided within the limits, with what was tried.

How (docs/theory.md, sections 1 and 8).  Known outputs turn a ReLU layer into
linear constraints: y_i > 0 gives w_i h + b_i = y_i, y_i = 0 gives
w_i h + b_i <= 0.  When the equations determine the layer's input, exact
linear algebra recovers it, and so on backwards through the network.  In
general the preimage of a layer is a polyhedron and the layer below must be
searched: a case split over the hidden ReLU neurons in the *lifted* system of
:mod:`exact_inj.certify.inverse` (variables x and every hidden output h, with
h >= 0 and h >= pre for the neurons not fixed yet), branching backwards from
the output.  A node is closed by

- an exact Farkas certificate (no preimage there),
- a *pin*: the node's equations, with rows proved tight on it, determine x
  exactly; the pinned point is then evaluated exactly (it is the branch's only
  possible preimage, or there is none), or
- a *region*: every neuron is fixed, so the node is a piece of the preimage,
  with an exact point in it (and a second one unless it is a pin).

HiGHS (through exact_inj.solver) says which case to try and which rows a
certificate should use; every certificate is solved in rationals, and the
exact phase-1 simplex of :mod:`exact_inj.exact.lp` decides what the floats
could not.  Before it is returned, every answer goes through
:func:`exact_inj.certify.inverse.check_inverse`, the solver-free checker; an
answer it rejects becomes ``unknown``.

The search itself is :mod:`exact_inj.network.preimage`; the command line is
:mod:`exact_inj.cli.invert`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable, Sequence

from ..api import verify
from ..certify.inverse import FORMAT, VERSION, check_inverse, leaf_to_json
from ..certify.lifted import LiftedSystem
from ..io import network_to_json
from ..model import Domain, Network
from ..model.monotone import relu_form
from ..model.normalised import require_plain
from ..numbers import fraction_to_str, parse_exact
from ..verdict import Status, json_approx
from .peel import peel
from .preimage import PreimageSearch

__all__ = ["InverseResult", "MAX_DENSE_ENTRIES", "invert"]

# The lifted system is handled densely (LPs, exact ranks): above this many
# matrix entries (variables x rows) invert answers unknown at once.
MAX_DENSE_ENTRIES = 10_000_000


@dataclass
class InverseResult:
    """The answer of :func:`invert`; ``to_json`` is the documented JSON form."""

    preimage: str  # "empty", "point", "set" or "unknown"
    points: list[tuple[Fraction, ...]]
    network: Network
    y: tuple[Fraction, ...]
    domain: Domain
    certificate: dict | None = None
    pieces: list[dict] = field(default_factory=list)
    complete: bool = False
    reason: str = ""
    seconds: float = 0.0
    stats: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A network with an output unit (tanh, sigmoid) is inverted at the
        # values before the unit (docs/inverse.md): said in every answer, so
        # that nobody reads "point" as a solution of tanh(N(x)) = y.
        unit = getattr(self.network, "output_unit", "")
        if unit and "output unit" not in self.reason:
            self.reason = (f"{self.reason} " if self.reason else "") + \
                f"(y is the value before the {unit} output unit; docs/inverse.md)"

    def to_json(self, include_network: bool = False) -> dict:
        out: dict[str, Any] = {"format": FORMAT, "version": VERSION, "preimage": self.preimage,
                               "points": [[fraction_to_str(v) for v in p] for p in self.points],
                               "decimals": [json_approx(p) for p in self.points],   # null beyond floats
                               "y": [fraction_to_str(v) for v in self.y], "domain": self.domain.to_json()}
        if self.preimage in ("set", "unknown"):
            out["pieces"] = self.pieces
            out["complete"] = self.complete
        out["certificate"] = self.certificate
        if getattr(self.network, "output_unit", ""):
            out["before_output_unit"] = self.network.output_unit
        out["reason"] = self.reason
        out["seconds"] = round(self.seconds, 6)
        out["stats"] = self.stats
        if include_network:
            out["network"] = network_to_json(self.network)
        return out


def invert(
    net: Network,
    y: Sequence[Any],
    domain: Domain | None = None,
    time_limit: float = 60.0,
    *,
    max_nodes: int = 200_000,
    max_pieces: int = 64,
    use_verify: bool = True,
    use_peel: bool = True,
    progress: Callable[[str], None] | None = None,
) -> InverseResult:
    """The exact preimage of ``y`` under ``net`` on ``domain`` (default R^n).

    ``y`` holds exact numbers (Fractions, ints or strings such as "-3/7";
    floats are refused).  ``max_pieces`` bounds how many pieces of a ``set``
    are listed before the search stops with an incomplete description;
    ``use_verify`` lets an unfinished search with one preimage fall back to
    a proof that the network is injective (exact_inj.verify).  ``use_peel``
    (default) tries the layer-by-layer inversion first (docs/inverse.md, "The
    peel"); the case split runs only when some layer's fixed rows do not span.

    >>> from exact_inj.model import Layer, Network
    >>> lemma1 = Network((Layer.from_rows([[1], [-1]], [1, -1]),))   # x -> (ReLU(x+1), ReLU(-x-1))
    >>> r = invert(lemma1, ["3", "0"])
    >>> r.preimage, r.points
    ('point', [(Fraction(2, 1),)])
    >>> invert(lemma1, ["1", "1"]).preimage
    'empty'
    >>> r = invert(lemma1, ["0", "0"])       # only x = -1
    >>> r.preimage, r.points
    ('point', [(Fraction(-1, 1),)])
    >>> relu = Network((Layer.from_rows([[1]]),))
    >>> r = invert(relu, ["0"])                # every x <= 0
    >>> r.preimage, len(r.points) >= 2, r.complete
    ('set', True, True)
    """
    require_plain(net, "invert")  # irrational batch normalisations: docs/theory.md, section 12
    t0 = time.perf_counter()
    deadline = t0 + time_limit
    domain = domain or Domain.reals()
    yv = tuple(parse_exact(v, f"y[{i}]") for i, v in enumerate(y))
    if len(yv) != net.output_dim:
        raise ValueError(f"y has {len(yv)} entries but the network has {net.output_dim} outputs")
    if not domain.dim_ok(net.input_dim):
        raise ValueError(f"the domain has {len(domain.lower)} coordinates but the network {net.input_dim} inputs")
    got = peel(net, yv, domain, deadline, progress) if use_peel else None
    if got is not None and got[0] == "partial":
        # The layers above peeled: the preimage of y is that of the forced value below them.
        chain = got[1]
        prefix = Network(net.layers[: len(net.layers) - len(chain)])
        sub = invert(prefix, chain[-1], domain, max(deadline - time.perf_counter(), 0.5), max_nodes=max_nodes,
                     max_pieces=max_pieces, use_verify=use_verify, use_peel=False, progress=progress)
        cert = None if sub.certificate is None else {"kind": "peel", "chain": _strings(chain), "then": sub.certificate}
        res = InverseResult(sub.preimage, sub.points, net, yv, domain, certificate=cert, pieces=sub.pieces,
                            complete=sub.complete, stats={**sub.stats, "route": "peel+split", "peeled": len(chain)},
                            reason=f"{len(chain)} layers peeled, then the case split below them: {sub.reason}")
        res.seconds = time.perf_counter() - t0
        return _certified(res)
    if got is not None:
        res = _peeled(net, yv, domain, got, t0)
        if res is not None:
            return res
    # The lifted system's size, counted before it is built (building it is already slow
    # when it is far too large): variables x (domain rows + 2 per hidden ReLU, 1 per
    # hidden linear unit, 1 per output).
    rf = relu_form(net)
    dim = rf.input_dim + sum(L.out_dim for L in rf.layers[:-1])
    nrows = 2 * rf.input_dim + sum(L.out_dim * (2 if L.activation == "relu" else 1) for L in rf.layers[:-1]) \
        + rf.output_dim
    if dim * nrows > MAX_DENSE_ENTRIES:
        return InverseResult("unknown", [], net, yv, domain, seconds=time.perf_counter() - t0,
                             stats={"variables": dim},
                             reason=f"too large for the dense route: {dim} variables x about {nrows} rows > "
                                    f"{MAX_DENSE_ENTRIES:,} entries" + ("" if not use_peel else
                                    ", and the layer-by-layer peel did not apply (docs/inverse.md)"))
    system = LiftedSystem(net, yv, domain)
    search = PreimageSearch(system, domain, deadline, max_nodes, max_pieces, progress or (lambda s: None))
    search.run()
    res = _answer(search, net, yv, domain, deadline, use_verify)
    res.seconds = time.perf_counter() - t0
    return _certified(res)


def _strings(chain) -> list[list[str]]:
    return [[fraction_to_str(v) for v in h] for h in chain]


def _peeled(net: Network, y, domain: Domain, got: tuple, t0: float) -> InverseResult | None:
    """The layer-by-layer answer, checked (None if the checker refused it)."""
    stats = {"route": "peel", "layers": len(net.layers), "peel_seconds": round(time.perf_counter() - t0, 6)}
    if got[0] == "point":
        res = InverseResult("point", [got[1]], net, y, domain, certificate={"kind": "peel"}, complete=True,
                            stats=stats, reason="layer by layer: the rows each known output fixes span the "
                                                "layer's input, so this is the only preimage")
    else:
        _, chain, u = got
        cert: dict[str, Any] = {"kind": "peel", "chain": _strings(chain)}
        if u is not None:
            cert["u"] = [fraction_to_str(v) for v in u]
        why = ("the only candidate input is not a preimage" if len(chain) == len(net.layers) else
               f"layer {len(net.layers) - 1 - len(chain)} cannot produce its forced output, or it does "
               "not map to y")
        res = InverseResult("empty", [], net, y, domain, certificate=cert, complete=True, stats=stats,
                            reason=f"layer by layer: {why}")
    res.seconds = time.perf_counter() - t0
    res = _certified(res)
    return None if res.preimage == "unknown" else res  # pragma: no branch - a rejected peel falls back


def _answer(search: "PreimageSearch", net, y, domain, deadline, use_verify) -> InverseResult:
    stats = search.stats
    points = search.points
    pieces = [{"pattern": search.system.patterns(path), "point": [fraction_to_str(v) for v in pts[0]]}
              for path, pts in search.regions]
    base = dict(points=list(points), network=net, y=y, domain=domain, stats=stats)
    if search.finished:
        cert = {"kind": "cover", "tree": search.tree, "leaves": [leaf_to_json(lf) for lf in search.leaves]}
        if not search.regions and not search.pins_hit:
            return InverseResult("empty", **{**base, "points": []}, certificate=cert, complete=True,
                                 reason=f"every branch is infeasible or pinned to a non-preimage "
                                        f"({stats['leaves']} leaves)")
        if not search.regions and len(search.pins_hit) == 1:
            return InverseResult("point", **{**base, "points": list(search.pins_hit)}, certificate=cert,
                                 complete=True, reason=f"every branch is infeasible or pinned to this point "
                                                       f"({stats['leaves']} leaves)")
        if len(points) >= 2:
            return InverseResult("set", **base, certificate=cert, pieces=pieces, complete=True,
                                 reason=f"{len(search.regions)} pieces and {len(search.pins_hit)} pinned points "
                                        f"make up the whole preimage")
        return InverseResult("unknown", **base, pieces=pieces,  # pragma: no cover - regions carry two points
                             reason="the cover is complete but fewer than two points were found")
    stop = search.stopped
    if len(points) >= 2:
        return InverseResult("set", **base, pieces=pieces, complete=False,
                             reason=f"two distinct exact preimages; the description stopped ({stop}) after "
                                    f"{len(search.regions)} pieces")
    if not points and use_verify:
        search.dive(deadline)
        points = search.points
        base["points"] = list(points)
    if len(points) == 1 and use_verify and time.perf_counter() < deadline:
        v = verify(net, time_limit=max(deadline - time.perf_counter(), 0.5), milp="none", domain=domain)
        stats["verify"] = v.status.value
        if v.status is Status.INJECTIVE:
            cert = {"kind": "injective", "certificate": v.certificate.to_json()}
            return InverseResult("point", **base, certificate=cert, complete=True,
                                 reason=f"one exact preimage, and the network is injective ({v.route})")
    return InverseResult("unknown", **base, pieces=pieces,
                         reason=f"the search stopped ({stop}) with {len(search.open_nodes)} open branches and "
                                f"{len(points)} exact preimage(s) found")


def _certified(res: InverseResult) -> InverseResult:
    """Run the solver-free checker on the answer; a failure becomes unknown."""
    if res.preimage == "unknown":
        return res
    t0 = time.perf_counter()
    ok, why = check_inverse(res.network, res.y, res.to_json(), res.domain)
    res.stats["check_seconds"] = round(time.perf_counter() - t0, 6)
    res.stats["check"] = why
    if not ok:  # pragma: no cover - a bug in the search, caught here
        return InverseResult("unknown", res.points, res.network, res.y, res.domain, stats=res.stats,
                             seconds=res.seconds, reason=f"internal error: the answer failed the checker: {why}")
    return res
