"""Exact preimages of a ReLU network's output (docs/inverse.md).

``invert(net, y)`` answers, on the input domain (R^n, the orthant or a box):

- ``empty``: no x has N(x) = y;
- ``point``: exactly one x does;
- ``set``: at least two do (two exact points, and a description of the whole
  preimage as activation-pattern pieces when it is small enough to list);
- ``unknown``: undecided within the limits, with what was tried.

How (theory notes, sections 1 and 8).  Known outputs turn a ReLU layer into
linear constraints: y_i > 0 gives w_i h + b_i = y_i, y_i = 0 gives
w_i h + b_i <= 0.  When the equations determine the layer's input, exact
linear algebra recovers it, and so on backwards through the network.  In
general the preimage of a layer is a polyhedron and the layer below must be
searched: a case split over the hidden ReLU neurons in the *lifted* system of
:mod:`exact_inj.inverse_check` (variables x and every hidden output h, with
h >= 0 and h >= pre for the neurons not fixed yet), branching backwards from
the output.  A node is closed by

- an exact Farkas certificate (no preimage there),
- a *pin*: the node's equations, with rows proved tight on it, determine x
  exactly; the pinned point is then evaluated exactly (it is the branch's only
  possible preimage, or there is none), or
- a *region*: every neuron is fixed, so the node is a piece of the preimage,
  with an exact point in it (and a second one unless it is a pin).

HiGHS (through exact_inj.backend) says which case to try and which rows a
certificate should use; every certificate is solved in rationals, and the
exact phase-1 simplex of :mod:`exact_inj.exact_lp` decides what the floats
could not.  Before it is returned, every answer goes through
:func:`exact_inj.inverse_check.check_inverse`, the solver-free checker; an
answer it rejects becomes ``unknown``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable, Sequence

import flint
import numpy as np

from . import linalg
from .certificate import Domain
from .exact_lp import equations_as_rows, motzkin_rows
from .inverse_check import (FORMAT, VERSION, Infeasible, LiftedSystem, Pin, Region, Row, check_inverse, combine,
                            determines_x, is_preimage, leaf_to_json, pinned_point, verify_infeasible)
from .io import fraction_to_str, network_to_json, parse_exact
from .model import Network

# Float thresholds only choose which exact certificate to try; a wrong choice
# costs time (the exact fallback runs), never a wrong answer.
SLACK_TOL = 1e-9
SUPPORT_TOL = 1e-9
# Tests set this to False to take the exact route at every node (no LP at all).
USE_FLOATS = True
# The exact simplex is pure Python: above this many variables it is not tried
# (the node stays open and the answer may be unknown).
EXACT_FALLBACK_MAX_DIM = 400
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

    def to_json(self, include_network: bool = False) -> dict:
        out: dict[str, Any] = {"format": FORMAT, "version": VERSION, "preimage": self.preimage,
                               "points": [[fraction_to_str(v) for v in p] for p in self.points],
                               "decimals": [[float(v) for v in p] for p in self.points],
                               "y": [fraction_to_str(v) for v in self.y], "domain": self.domain.to_json()}
        if self.preimage in ("set", "unknown"):
            out["pieces"] = self.pieces
            out["complete"] = self.complete
        out["certificate"] = self.certificate
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
    progress: Callable[[str], None] | None = None,
) -> InverseResult:
    """The exact preimage of ``y`` under ``net`` on ``domain`` (default R^n).

    ``y`` holds exact numbers (Fractions, ints or strings such as "-3/7";
    floats are refused).  ``max_pieces`` bounds how many pieces of a ``set``
    are listed before the search stops with an incomplete description;
    ``use_verify`` lets an unfinished search with one preimage fall back to
    a proof that the network is injective (exact_inj.verify).

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
    t0 = time.perf_counter()
    deadline = t0 + time_limit
    domain = domain or Domain.reals()
    yv = tuple(parse_exact(v, f"y[{i}]") for i, v in enumerate(y))
    if len(yv) != net.output_dim:
        raise ValueError(f"y has {len(yv)} entries but the network has {net.output_dim} outputs")
    if not domain.dim_ok(net.input_dim):
        raise ValueError(f"the domain has {len(domain.lower)} coordinates but the network {net.input_dim} inputs")
    system = LiftedSystem(net, yv, domain)
    size = system.dim * (len(system.base_rows) + len(system.base_eqs))
    if size > MAX_DENSE_ENTRIES:
        return InverseResult("unknown", [], net, yv, domain, seconds=time.perf_counter() - t0,
                             stats={"variables": system.dim, "hidden_relus": len(system.neurons)},
                             reason=f"too large for the dense route: {system.dim} variables x "
                                    f"{len(system.base_rows) + len(system.base_eqs)} rows > {MAX_DENSE_ENTRIES:,} entries")
    search = _Search(system, domain, deadline, max_nodes, max_pieces, progress or (lambda s: None))
    search.run()
    res = _answer(search, net, yv, domain, deadline, use_verify)
    res.seconds = time.perf_counter() - t0
    return _certified(res)


def _answer(search: "_Search", net, y, domain, deadline, use_verify) -> InverseResult:
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
        from .api import verify
        from .verdict import Status

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


class _Stop(Exception):
    pass


class _Search:
    """Depth-first case split over the hidden ReLU neurons (preorder tree)."""

    def __init__(self, system: LiftedSystem, domain: Domain, deadline: float, max_nodes: int, max_pieces: int, say):
        self.system = system
        self.domain = domain
        self.n, self.D = system.n, system.dim
        self.G = len(system.neurons)
        self.deadline, self.max_nodes, self.max_pieces, self.say = deadline, max_nodes, max_pieces, say
        self.tree: list[int] = []
        self.leaves: list = []
        self.points: list[tuple[Fraction, ...]] = []
        self.pins_hit: list[tuple[Fraction, ...]] = []
        self.regions: list[tuple[tuple, list]] = []
        self.finished = False
        self.stopped = ""
        self.open_nodes: list = []
        self.stats = {"nodes": 0, "leaves": 0, "infeasible": 0, "pins": 0, "regions": 0, "lps": 0,
                      "exact_fallbacks": 0, "hidden_relus": self.G, "variables": self.D}
        self._h = None

    @property
    def h(self):
        if self._h is None:
            from .backend import new_highs

            self._h = new_highs()
        return self._h

    # --- driver --------------------------------------------------------------------------

    def run(self) -> None:
        stack: list[tuple] = [()]
        last = time.perf_counter()
        path = None  # the node being processed, if any
        try:
            while stack:
                if time.perf_counter() > self.deadline:
                    raise _Stop("time limit")
                if self.stats["nodes"] >= self.max_nodes:
                    raise _Stop(f"{self.max_nodes} nodes")
                if len(self.regions) > self.max_pieces and len(self.points) >= 2:
                    raise _Stop(f"more than {self.max_pieces} pieces")
                path = stack.pop()
                self.stats["nodes"] += 1
                kind, what = self._node(path)
                done, path = path, None
                if kind == "split":
                    self.tree.append(what)
                    stack.append(done + ((what, False),))
                    stack.append(done + ((what, True),))
                else:
                    self.tree.append(-1 - len(self.leaves))
                    self.leaves.append(what)
                    self.stats["leaves"] += 1
                now = time.perf_counter()
                if now - last > 2.0:
                    last = now
                    self.say(f"invert: {self.stats['nodes']} nodes, {len(stack)} open, {len(self.points)} points")
            self.finished = True
        except (_Stop, AssertionError) as e:
            # AssertionError: an exact step that should not fail did (a bug);
            # the answer then says so instead of claiming anything.
            self.stopped = str(e) if isinstance(e, _Stop) else f"internal error: {e}"
            self.open_nodes = stack + ([path] if path is not None else [])

    def dive(self, deadline: float, budget: int = 200) -> None:
        """After a stopped search: a small depth-first descent from the open
        branches (one LP per node, the child the LP point lies in first; at
        most ``budget`` LPs) to a complete pattern, and an exact point of it.
        Finds preimages only; proves nothing about the rest."""
        if not USE_FLOATS:
            return
        lps0 = self.stats["lps"]
        stack = list(self.open_nodes)
        while stack and not self.points:
            if time.perf_counter() > deadline or self.stats["lps"] - lps0 > budget:
                return
            path = stack.pop()
            rows, eqs = self.system.system(path)
            try:
                if len(path) == self.G:
                    got = self._exact(rows, eqs)
                    if isinstance(got, list):
                        self._region_points(path, got)
                    elif isinstance(got, Pin):
                        self._count_pin(got, rows, eqs)
                    continue
                kind, v, _ = self._max_slack(rows, eqs, ())
            except (_Stop, AssertionError):
                continue
            if kind not in ("inside", "thin"):
                continue
            g = self._choose(path, v)
            a, c = self.system.pre(*self.system.neurons[g])
            first = float(c) + sum(float(w) * v[t] for t, w in a.items()) > 1e-7
            stack.append(path + ((g, not first),))
            stack.append(path + ((g, first),))

    def _add_point(self, x: tuple[Fraction, ...]) -> None:
        if x not in self.points:
            self.points.append(x)

    def _node(self, path):
        """('split', neuron) or ('leaf', Infeasible | Pin | Region)."""
        sysm = self.system
        rows, eqs = sysm.system(path)
        complete = len(path) == self.G
        # 1. Layer by layer: do the equations alone determine x?  (Exact.)
        pin = _pin_on(rows, eqs, (), (), [Fraction(0)] * len(eqs), self.D, self.n)
        if pin is not None:
            return "leaf", self._count_pin(pin, rows, eqs)
        # 2. The max-slack LP says empty, inside (all rows strict at once) or thin.
        kind, v, hint = self._max_slack(rows, eqs, ()) if USE_FLOATS else ("unsure", None, None)
        if kind == "empty":
            cert = _farkas(rows, eqs, hint)
            if cert is not None:
                self.stats["infeasible"] += 1
                return "leaf", cert
            kind = "unsure"
        if kind == "thin" and not complete:
            # The LP's dual is a tight combination: try to pin x with its rows.
            got = self._pin_from(rows, eqs, hint)
            if got is not None:
                return "leaf", self._count_pin(got, rows, eqs)
        if kind == "thin" and complete:
            got = self._implicit_pin(rows, eqs)
            if isinstance(got, Pin):
                return "leaf", self._count_pin(got, rows, eqs)
            if got is not None:
                tight, lam, mu = got
                pts = self._two_points(rows, eqs, tight)
                if pts is not None:
                    return "leaf", self._region(path, pts)
        if kind == "inside" and complete:
            pts = self._two_points(rows, eqs, ())
            if pts is not None:
                return "leaf", self._region(path, pts)
        if complete or kind in ("unsure", "unknown"):
            # Exactly: empty, pinned, or two points.
            got = self._exact(rows, eqs)
            if got is None:
                raise _Stop("a node too large for the exact fallback")
            if isinstance(got, Infeasible):
                self.stats["infeasible"] += 1
                return "leaf", got
            if isinstance(got, Pin):
                return "leaf", self._count_pin(got, rows, eqs)
            if complete:
                return "leaf", self._region(path, got)
            v = np.array([float(t) for t in got[0]])
        return "split", self._choose(path, v)

    # --- leaves ----------------------------------------------------------------------------

    def _count_pin(self, pin: Pin, rows, eqs) -> Pin:
        p = pinned_point(rows, eqs, pin, self.n)
        if p is None:  # pragma: no cover - built to be valid; the checker would reject it
            raise AssertionError("a pin built by the search does not verify")
        self.stats["pins"] += 1
        if is_preimage(self.system.net, self.domain, self.system.y, p):
            if p not in self.pins_hit:
                self.pins_hit.append(p)
            self._add_point(p)
        return pin

    def _region(self, path, pts) -> Region:
        xs = self._region_points(path, pts)
        self.regions.append((path, xs))
        self.stats["regions"] += 1
        return Region(xs[0])

    def _region_points(self, path, pts) -> list[tuple[Fraction, ...]]:
        xs = [tuple(v[: self.n]) for v in pts]
        for x in xs:
            if not (is_preimage(self.system.net, self.domain, self.system.y, x)
                    and self.system.pattern_holds(x, path)):  # pragma: no cover - exact points of a complete node
                raise AssertionError("a region point failed exact evaluation")
            self._add_point(x)
        return xs

    # --- choices ---------------------------------------------------------------------------

    def _choose(self, path, v) -> int:
        """The next neuron: the one whose relaxation h >= ReLU(pre) is most
        violated at the LP point v (h - max(pre, 0), per unit of the row's
        norm); ties (and exact-route nodes, without v) go to the latest layer,
        nearest the known output."""
        fixed = {g for g, _ in path}
        best, key = None, None
        for g, (k, j) in enumerate(self.system.neurons):
            if g in fixed:
                continue
            gap = 0.0
            if v is not None:
                a, c = self.system.pre(k, j)
                pre = float(c) + sum(float(w) * v[t] for t, w in a.items())
                norm = sum(float(w) ** 2 for w in a.values()) ** 0.5 or 1.0
                gap = (v[self.system.hvar(k, j)] - max(pre, 0.0)) / norm
            if key is None or (gap, k) > key:
                best, key = g, (gap, k)
        return best

    # --- floats (hints only) -------------------------------------------------------------

    def _arrays(self, rows, eqs):
        D = self.D
        A = np.zeros((len(rows), D))
        c = np.zeros(len(rows))
        for i, (a, cc) in enumerate(rows):
            for t, w in a.items():
                A[i, t] = float(w)
            c[i] = float(cc)
        E = np.zeros((len(eqs), D))
        d = np.zeros(len(eqs))
        for i, (a, cc) in enumerate(eqs):
            for t, w in a.items():
                E[i, t] = float(w)
            d[i] = float(cc)
        return A, c, E, d

    def _max_slack(self, rows, eqs, as_eq):
        """max s with a_r v + c_r + s |a_r| <= 0 (rows not in ``as_eq``), the
        rows in ``as_eq`` and the equations as equalities, s <= 1:
        ('empty', None, dual hint) | ('inside', v, None) | ('thin', v, None) | ('unknown', None, None)."""
        import highspy

        from .backend import INF, pass_lp

        A, c, E, d = self._arrays(rows, eqs)
        D = self.D
        as_eq = set(as_eq)
        w = np.linalg.norm(A, axis=1)
        w[w == 0] = 1.0
        slack_col = np.array([0.0 if i in as_eq else w[i] for i in range(len(rows))])
        M = np.vstack([np.hstack([A, slack_col[:, None]]), np.hstack([E, np.zeros((len(eqs), 1))])])
        lo = np.r_[[(-c[i] if i in as_eq else -INF) for i in range(len(rows))], -d]
        up = np.r_[-c, -d]
        h = self.h
        pass_lp(h, np.r_[np.zeros(D), 1.0], np.r_[np.full(D, -INF), -INF], np.r_[np.full(D, INF), 1.0],
                M.reshape(len(rows) + len(eqs), D + 1), lo, up, maximize=True)
        h.run()
        self.stats["lps"] += 1
        st = h.getModelStatus()
        if st == highspy.HighsModelStatus.kInfeasible:
            _, has, ray = h.getDualRay()
            return "empty", None, (np.array(ray) if has else None)
        if st != highspy.HighsModelStatus.kOptimal:
            return "unknown", None, None
        sol = h.getSolution()
        x = np.array(sol.col_value)
        s = x[D]
        if s > SLACK_TOL:
            return "inside", x[:D], None
        if s < -SLACK_TOL:
            return "empty", None, np.array(sol.row_dual)
        return "thin", x[:D], np.array(sol.row_dual)

    def _implicit_pin(self, rows, eqs):
        """Float hint for the rows tight on the whole node (a combination lam >= 0,
        free mu, identically 0, of largest support), made exact; then a Pin if
        they and the equations determine x, else (tight, lam, mu), or None."""
        from .backend import INF, pass_lp

        A, c, E, d = self._arrays(rows, eqs)
        D, R, P = self.D, len(rows), len(eqs)
        top = np.zeros((D + 1, 2 * R + P))
        top[:D, :R] = A.T
        top[D, :R] = c
        top[:D, 2 * R:] = E.T
        top[D, 2 * R:] = d
        link = np.hstack([-np.eye(R), np.eye(R), np.zeros((R, P))])
        M = np.vstack([top, link])
        cost = np.r_[np.zeros(R), np.ones(R), np.zeros(P)]
        lo = np.r_[np.zeros(R), np.zeros(R), np.full(P, -INF)]
        up = np.r_[np.full(R, INF), np.ones(R), np.full(P, INF)]
        h = self.h
        pass_lp(h, cost, lo, up, M, np.r_[np.zeros(D + 1), np.full(R, -INF)], np.zeros(D + 1 + R), maximize=True)
        h.run()
        self.stats["lps"] += 1
        import highspy

        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        x = np.array(h.getSolution().col_value)
        lam_f, mu_f = x[:R], x[2 * R:]
        tight = [r for r in range(R) if lam_f[r] > SUPPORT_TOL]
        if not tight:
            return None
        comb = _positive_combination(rows, eqs, tight, [float(lam_f[r]) for r in tight], list(map(float, mu_f)))
        if comb is None:
            return None
        lam, mu = comb
        pin = _pin_on(rows, eqs, tight, lam, mu, self.D, self.n)
        return pin if pin is not None else (tight, lam, mu)

    def _pin_from(self, rows, eqs, dual) -> Pin | None:
        """A Pin from the max-slack LP's dual at a thin node (rows with a
        positive dual are tight on the whole node once made exact), or None."""
        if dual is None or len(dual) != len(rows) + len(eqs):
            return None
        dual = np.abs(np.asarray(dual, dtype=float))
        scale = dual[: len(rows)].max(initial=0.0) or 1.0
        tight = [r for r in range(len(rows)) if dual[r] / scale > SUPPORT_TOL]
        if not tight:
            return None
        # Quick exact test first: can these rows and the equations determine x at all?
        if not determines_x([rows[r] for r in tight] + list(eqs), self.D, self.n):
            return None
        comb = _positive_combination(rows, eqs, tight, [float(dual[r]) for r in tight], [0.0] * len(eqs))
        if comb is None:
            return None
        return _pin_on(rows, eqs, tight, comb[0], comb[1], self.D, self.n)

    def _two_points(self, rows, eqs, tight):
        """Two exact points of the node with different x, from a float point in
        the relative interior (the rows in ``tight`` as equalities), or None."""
        kind, v, _ = self._max_slack(rows, eqs, tight)
        if kind != "inside":
            return None
        B = [rows[r] for r in tight] + list(eqs)
        Bd = [_dense(a, self.D) for a, _ in B]
        p = linalg.solve_affine(Bd, [-cc for _, cc in B], self.D, guess=list(v))
        if p is None or not _satisfies(rows, p):
            return None
        for dvec in _directions(Bd, self.D, self.n):
            for sgn in (1, -1):
                dd = [sgn * t for t in dvec]
                q = _step(rows, p, dd)
                if q is not None:
                    return [p, q]
        return None

    # --- exact fallback ----------------------------------------------------------------

    def _exact(self, rows, eqs):
        """Exactly: Infeasible, Pin, or two points with different x; None if too large."""
        if self.D > EXACT_FALLBACK_MAX_DIM:
            return None
        self.stats["exact_fallbacks"] += 1
        D = self.D
        drows = [(_dense(a, D), c) for a, c in rows]
        deqs = [(_dense(a, D), c) for a, c in eqs]
        pairs = equations_as_rows(deqs)
        t_row = ((Fraction(0),) * D, Fraction(-1))
        kind, a, b = motzkin_rows([t_row], drows + pairs)
        if kind == "multiplier":
            lam, mu = _split_multiplier(b, len(drows), len(deqs))
            cert = _infeasible(rows, eqs, lam, mu)
            return cert  # verified in _infeasible (None would be a bug in the exact simplex)
        p = tuple(z / b for z in a)
        # Implicit equalities, one Motzkin multiplier at a time.
        open_ = list(range(len(rows)))
        lam = [Fraction(0)] * len(rows)
        mu = [Fraction(0)] * len(eqs)
        interior = p
        while open_:
            closed = [i for i in range(len(rows)) if i not in open_]
            kind, l1, l2 = motzkin_rows([drows[i] for i in open_] + [t_row], [drows[i] for i in closed] + pairs)
            if kind == "point":
                interior = tuple(z / l2 for z in l1)
                break
            hit = [open_[t] for t in range(len(open_)) if l1[t] > 0]
            if not hit:  # pragma: no cover - only t's row: the node would be empty, but p is in it
                raise AssertionError("exact fallback: inconsistent Motzkin answer")
            for t, i in enumerate(open_):
                lam[i] += l1[t]
            for t, i in enumerate(closed):
                lam[i] += l2[t]
            for q in range(len(eqs)):
                mu[q] += l2[len(closed) + 2 * q] - l2[len(closed) + 2 * q + 1]
            open_ = [i for i in open_ if i not in hit]
        tight = [i for i in range(len(rows)) if i not in open_]
        pin = _pin_on(rows, eqs, tight, [lam[r] for r in tight], mu, D, self.n)
        if pin is not None:
            return pin
        Bd = [drows[r][0] for r in tight] + [e for e, _ in deqs]
        for dvec in _directions(Bd, D, self.n):
            q = _step(rows, list(interior), dvec)
            if q is not None:
                return [list(interior), q]
        raise AssertionError("exact fallback: no second point along a free direction")  # pragma: no cover


# --- exact helpers -----------------------------------------------------------------------------


def _dense(a: dict, D: int) -> tuple[Fraction, ...]:
    out = [Fraction(0)] * D
    for t, v in a.items():
        out[t] = v
    return tuple(out)


def _value(row: Row, v) -> Fraction:
    a, c = row
    return c + sum((w * v[t] for t, w in a.items()), Fraction(0))


def _satisfies(rows, v) -> bool:
    return all(_value(r, v) <= 0 for r in rows)


def _directions(Bd, D: int, n: int):
    """Null vectors of the rows Bd whose x-part is not zero (exact)."""
    if not Bd:
        return [[Fraction(int(t == k)) for t in range(D)] for k in range(n)]
    ints = [linalg.common_denominator(list(r))[0] for r in Bd]
    basis = linalg.nullspace(ints, D)
    return [[Fraction(c) for c in linalg.primitive(b)] for b in basis if any(b[:n])]


def _step(rows, p, d):
    """p + eps d inside every row (eps > 0 exact, half the room, at most 1), or None."""
    eps = None
    for a, c in rows:
        ad = sum((w * d[t] for t, w in a.items()), Fraction(0))
        if ad > 0:
            slack = -_value((a, c), p)
            if slack <= 0:
                return None
            r = slack / ad
            eps = r if eps is None or r < eps else eps
    eps = Fraction(1) if eps is None else min(eps / 2, Fraction(1))
    q = [pv + eps * dv for pv, dv in zip(p, d)]
    return q if _satisfies(rows, q) else None


def _pin_on(rows, eqs, tight, lam, mu, D: int, n: int) -> Pin | None:
    """The Pin of rows ``tight`` (lam > 0, mu: an identically zero combination)
    if they and the equations determine x and have a common solution."""
    B = [rows[r] for r in tight] + list(eqs)
    if not determines_x(B, D, n):
        return None
    v = linalg.solve_affine([_dense(a, D) for a, _ in B], [-c for _, c in B], D)
    if v is None:
        return None  # inconsistent: the node is empty, and a Farkas leaf closes it
    return Pin(tuple(tight), tuple(lam), tuple(range(len(eqs))), tuple(mu), tuple(v))


def _split_multiplier(mu, nrows: int, neqs: int):
    lam = list(mu[:nrows])
    eq = [mu[nrows + 2 * q] - mu[nrows + 2 * q + 1] for q in range(neqs)]
    return lam, eq


def _infeasible(rows, eqs, lam, mu) -> Infeasible | None:
    ri = [r for r in range(len(rows)) if lam[r]]
    qi = [q for q in range(len(eqs)) if mu[q]]
    cert = Infeasible(tuple(ri), tuple(lam[r] for r in ri), tuple(qi), tuple(mu[q] for q in qi))
    return cert if verify_infeasible(rows, eqs, cert) else None


def _farkas(rows, eqs, hint) -> Infeasible | None:
    """An exact Farkas certificate from a float dual hint (rows, then equations)."""
    if hint is None or len(hint) != len(rows) + len(eqs):
        return None
    hint = np.asarray(hint, dtype=float)
    scale = np.max(np.abs(hint)) or 1.0
    hr = np.abs(hint[: len(rows)]) / scale
    sup = [r for r in range(len(rows)) if hr[r] > SUPPORT_TOL]
    eqi = [q for q in range(len(eqs)) if abs(hint[len(rows) + q]) / scale > SUPPORT_TOL]
    for eq_set in (eqi, list(range(len(eqs)))):
        B = [rows[r] for r in sup] + [eqs[q] for q in eq_set]
        if not B:
            continue
        dims = sorted({t for a, _ in B for t in a})
        A = [[a.get(t, Fraction(0)) for a, _ in B] for t in dims]
        A.append([c for _, c in B])
        sol = linalg.solve_affine(A, [Fraction(0)] * len(dims) + [Fraction(1)], len(B))
        if sol is None or any(v < 0 for v in sol[: len(sup)]):
            continue
        lam = [Fraction(0)] * len(rows)
        mu = [Fraction(0)] * len(eqs)
        for r, v in zip(sup, sol):
            lam[r] = v
        for q, v in zip(eq_set, sol[len(sup):]):
            mu[q] = v
        cert = _infeasible(rows, eqs, lam, mu)
        if cert is not None:
            return cert
    return None


def _positive_combination(rows, eqs, tight, lam_f, mu_f):
    """Exact lam > 0 on ``tight`` and free mu with the combination identically
    zero (coefficients and constant), near the float hint; None if not found."""
    B = [rows[r] for r in tight] + list(eqs)
    dims = sorted({t for a, _ in B for t in a})
    A = [[a.get(t, Fraction(0)) for a, _ in B] for t in dims]
    A.append([c for _, c in B])
    A.append([Fraction(1)] * len(tight) + [Fraction(0)] * len(eqs))
    rhs = [Fraction(0)] * (len(dims) + 1) + [linalg.round_hint(sum(lam_f)) or Fraction(1)]
    sol = linalg.solve_affine(A, rhs, len(B), guess=list(lam_f) + list(mu_f))
    if sol is None or any(v <= 0 for v in sol[: len(tight)]):
        return None
    lam, mu = sol[: len(tight)], sol[len(tight):]
    a1, c1 = combine(rows, tight, lam)
    a2, c2 = combine(eqs, range(len(eqs)), mu)
    if any((a1.get(t, 0) + a2.get(t, 0)) != 0 for t in set(a1) | set(a2)) or c1 + c2 != 0:
        return None  # pragma: no cover - solve_affine solved exactly these equations
    return lam, mu


# --- command line ----------------------------------------------------------------------------


def _parse_vector(text: str, what: str) -> list[Fraction]:
    from .io import InputError

    try:
        return [parse_exact(t.strip(), f"{what}[{i}]") for i, t in enumerate(text.split(","))]
    except (ValueError, ZeroDivisionError) as e:
        raise InputError(what, str(e)) from None


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``invert`` on the CLI's subparsers object (docs/inverse.md)."""
    from .argtypes import positive_float

    p = subparsers.add_parser(
        "invert",
        help="the exact preimage of an output y: empty, one point, or a set, with a certificate",
        description="Compute the exact preimage {x in D : N(x) = y} of the network in FILE: 'empty', 'point' or "
                    "'set', each checked by the solver-free checker before it is printed (docs/inverse.md).",
    )
    p.add_argument("file", metavar="FILE", help="network file (.json, .npz, .onnx, .pt/.safetensors)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--y", metavar="Y1,Y2,...", help="the output, exact numbers such as 3/7 or 0.25")
    g.add_argument("--from-input", metavar="X1,X2,...", help="use y = N(x) for this input (a round trip)")
    p.add_argument("--domain", metavar="D", default="reals", help="input domain, as for verify (default: reals)")
    p.add_argument("--time-limit", metavar="S", type=positive_float, default=60.0,
                   help="seconds before answering 'unknown' (default: 60)")
    p.add_argument("--max-pieces", metavar="K", type=int, default=64,
                   help="list at most K pieces of a set before stopping (default: 64)")
    p.add_argument("--certificate", metavar="OUT", help="write the self-contained answer (with the network) to OUT")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    return p


def add_check_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``check-inverse`` (re-check a self-contained answer, no solver)."""
    p = subparsers.add_parser("check-inverse", help="re-check an answer written by invert --certificate",
                              description="Re-check a preimage answer exactly, with no solver. Exit 0 iff valid.")
    p.add_argument("cert", metavar="CERT")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    return p


EXIT = {"empty": 0, "point": 0, "set": 0, "unknown": 3}


def run(args) -> int:
    """Carry out ``exact-inj invert``; exit 0 when answered, 3 when unknown."""
    from .cli import parse_domain
    from .io import load_network

    net = load_network(args.file)
    domain = parse_domain(args.domain, net.input_dim)
    if args.from_input is not None:
        x = _parse_vector(args.from_input, "--from-input")
        if len(x) != net.input_dim:
            from .io import InputError

            raise InputError("--from-input", f"{len(x)} numbers for {net.input_dim} inputs")
        y = net.evaluate(x)
    else:
        y = _parse_vector(args.y, "--y")
        if len(y) != net.output_dim:
            from .io import InputError

            raise InputError("--y", f"{len(y)} numbers for {net.output_dim} outputs")
    say = None if args.quiet else (lambda m: print(f"exact-inj: {m}", file=sys.stderr, flush=True))
    res = invert(net, y, domain, time_limit=args.time_limit, max_pieces=args.max_pieces, progress=say)
    if args.certificate:
        with open(args.certificate, "w") as f:
            json.dump(res.to_json(include_network=True), f, separators=(",", ":"))
            f.write("\n")
    if args.json:
        out = res.to_json()
        out["file"] = args.file
        print(json.dumps(out))
    else:
        print(format_result(args.file, res))
    return EXIT[res.preimage]


def run_check(args) -> int:
    """Carry out ``exact-inj check-inverse``: 0 valid, 1 invalid."""
    from .inverse_check import check_inverse_file
    from .io import load_json_file

    ok, why = check_inverse_file(load_json_file(args.cert))
    if args.json:
        print(json.dumps({"valid": ok, "reason": why}))
    else:
        print(f"{args.cert}: {'VALID' if ok else 'INVALID'}: {why}")
    return 0 if ok else 1


def format_result(path: str, res: InverseResult) -> str:
    def vec(p):
        s = ", ".join(fraction_to_str(v) for v in p[:24])
        return f"({s}{', ...' if len(p) > 24 else ''})"

    on = "" if res.domain.kind == "reals" else f" on {res.domain.describe()}"
    lines = [f"{path}: preimage of y = {vec(res.y)}{on}: {res.preimage.upper()}  ({res.seconds:.3f} s)",
             f"  why: {res.reason}"]
    for i, p in enumerate(res.points[:4]):
        lines.append(f"  x{i} = {vec(p)}")
    if len(res.points) > 4:
        lines.append(f"  ... {len(res.points) - 4} more points")
    if res.pieces:
        lines.append(f"  pieces: {len(res.pieces)} ({'complete' if res.complete else 'so far'})")
    if "check" in res.stats:
        lines.append(f"  checked exactly: {res.stats['check']}")
    st = res.stats
    lines.append(f"  search: {st.get('nodes')} nodes, {st.get('leaves')} leaves ({st.get('infeasible')} infeasible, "
                 f"{st.get('pins')} pins, {st.get('regions')} regions), {st.get('lps')} LPs, "
                 f"{st.get('exact_fallbacks')} exact fallbacks")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m exact_inj.inverse invert ...`` until the CLI wires the subcommands in."""
    from .cli import EXIT_BAD_INPUT, _Parser
    from .io import InputError

    parser = _Parser(prog="exact-inj")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    add_parser(sub)
    add_check_parser(sub)
    args = parser.parse_args(argv)
    try:
        return run(args) if args.command == "invert" else run_check(args)
    except InputError as e:
        print(f"exact-inj: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
