"""The case split behind :func:`exact_inj.network.inverse.invert`: over the
hidden ReLUs of the lifted system, backwards from the output, each node closed
by an exact Farkas certificate, a pin or a region (docs/inverse.md).

Untrusted: HiGHS (through :mod:`exact_inj.solver`) only says which exact
certificate to try; every leaf is solved in rationals, and the answer is
checked by :func:`exact_inj.certify.inverse.check_inverse` before it is returned.
"""

from __future__ import annotations

import time
from fractions import Fraction
import numpy as np

from ..certify.inverse import Infeasible, Pin, Region, determines_x, is_preimage, pinned_point, verify_infeasible
from ..certify.lifted import LiftedSystem, Row, combine
from ..exact import linalg
from ..exact.lp import equations_as_rows, motzkin_rows
from ..model import Domain
from ..solver import INF, Outcome, highs_outcome, largest_tight_combination, new_highs, pass_lp

__all__ = ["EXACT_FALLBACK_MAX_DIM", "PreimageSearch", "SLACK_TOL", "SUPPORT_TOL", "Stop", "USE_FLOATS"]


# Float thresholds only choose which exact certificate to try; a wrong choice
# costs time (the exact fallback runs), never a wrong answer.
SLACK_TOL = 1e-9


SUPPORT_TOL = 1e-9


# Tests set this to False to take the exact route at every node (no LP at all).
USE_FLOATS = True


# The exact simplex is pure Python: above this many variables it is not tried
# (the node stays open and the answer may be unknown).
EXACT_FALLBACK_MAX_DIM = 400


class Stop(Exception):
    pass


class PreimageSearch:
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
                    raise Stop("time limit")
                if self.stats["nodes"] >= self.max_nodes:
                    raise Stop(f"{self.max_nodes} nodes")
                if len(self.regions) > self.max_pieces and len(self.points) >= 2:
                    raise Stop(f"more than {self.max_pieces} pieces")
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
        except (Stop, AssertionError) as e:
            # AssertionError: an exact step that should not fail did (a bug);
            # the answer then says so instead of claiming anything.
            self.stopped = str(e) if isinstance(e, Stop) else f"internal error: {e}"
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
            except (Stop, AssertionError):
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
                raise Stop("a node too large for the exact fallback")
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
        st = highs_outcome(h)
        if st is Outcome.INFEASIBLE:
            _, has, ray = h.getDualRay()
            return "empty", None, (np.array(ray) if has else None)
        if st is not Outcome.OPTIMAL:
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
        A, c, E, d = self._arrays(rows, eqs)
        R = len(rows)
        self.stats["lps"] += 1
        hint = largest_tight_combination(self.h, A, c, E, d)
        if hint is None:
            return None
        lam_f, mu_f = hint
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
        # The exact simplex can take minutes on a wide node: it stops at the
        # search's deadline (review: invert(time_limit=30) ran past 200 s here).
        kind, a, b = motzkin_rows([t_row], drows + pairs, self.deadline)
        if kind == "limit":
            raise Stop("time limit")
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
            kind, l1, l2 = motzkin_rows([drows[i] for i in open_] + [t_row], [drows[i] for i in closed] + pairs,
                                        self.deadline)
            if kind == "limit":
                raise Stop("time limit")
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
