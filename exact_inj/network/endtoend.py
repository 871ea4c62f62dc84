"""The end-to-end route for small networks: pieces, then pairs of pieces (docs/theory.md, section 8).

Layerwise reasoning fails when a later stage is not injective on a convex
superset of what it receives, although the collision it finds there has no
preimages.  This route looks at the network as a whole:

1. **Pieces.**  A case-split tree fixes the ReLU neurons in the order of
   :mod:`exact_inj.model.pieces`.  A prefix whose closed region is empty is closed
   by an exact Farkas certificate; a complete pattern is a *piece* P_s, on
   which the network is affine, N(x) = A_s x + c_s.  The pieces cover the
   domain (closed halves cover their parent).
2. **Pairs.**  A collision x != y has x in some piece i and y in some piece j.
   For each i <= j (swapping x and y gives j > i) the pair system
   S = { x in P_i, y in P_j, A_i x + c_i = A_j y + c_j } is a polyhedron in
   v = (x, y), and either
   - S is empty: an exact Farkas certificate (``Infeasible``), or
   - x = y on all of S: the rows tight on all of S, proved tight by one
     strictly positive combination, cut out an affine set on which x - y is
     an exact linear combination of the equations, equal to 0 (``Flat``), or
   - some point of S has x_k != y_k: an exact point found by the exact
     simplex with the strict row x_k - y_k > 0 (or < 0) is a witness.

HiGHS only guides: a max-slack LP per node or pair says which case to try
and which rows a certificate should use; every certificate is then built in
rationals (python-flint) from that support and verified before it is kept,
and the exact phase-1 simplex of :mod:`exact_inj.exact.lp` decides whatever
the floats could not.  A gap |x - y| >= delta is never used.

Cost: one LP and a small exact solve per pair, and the pairs grow with the
square of the pieces, so this is for small networks (docs/networks.md has the
measured reach).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from ..exact import linalg
from ..solver import INF, Outcome, highs_outcome, largest_tight_combination, new_highs, pass_lp
from ..certify.schema import COLLAPSE, REGION, SPLIT, Bound, EndToEndProof, Flat, Infeasible, Tight
from ..model.domain import Domain
from ..exact.lp import equations_as_rows, motzkin_rows
from ..model.network import Network
from ..certify.network import bound_value, verify_infeasible, verify_tight
from ..model.pieces import Prefix, Row, Walker, combine, pair_system, separated

# Float thresholds: they only choose which exact certificate to try first.
# A wrong choice costs time (the exact fallback runs), never a wrong verdict.
SLACK_TOL = 1e-9
"""A max-slack optimum within this of 0 is treated as "thin": implicit equalities."""
SUPPORT_TOL = 1e-9
"""Dual values below this are left out of a certificate's support."""


_NO_FLOATS = "a number of the network is beyond the float range the search's hints use"


class _Stop(Exception):
    """The time or size limit stopped the search."""


@dataclass
class EndToEndResult:
    """What the route found: a proof, a witness, or why it stopped."""

    status: str  # "injective", "not_injective" or "unknown"
    proof: EndToEndProof | None = None
    witness: tuple[tuple[Fraction, ...], tuple[Fraction, ...]] | None = None
    pieces: int = 0
    pairs_done: int = 0
    pairs_total: int = 0
    reason: str = ""
    stats: dict = field(default_factory=dict)


def decide(
    net: Network,
    domain: Domain,
    deadline: float,
    progress=None,
    max_pieces: int = 20000,
    count=None,
) -> EndToEndResult:
    """Decide ``net`` on ``domain`` by pieces and pairs of pieces.

    >>> from exact_inj.model import Layer
    >>> B = [[2, 1], [1, 1]]
    >>> net = Network((Layer.from_rows(B + [[-v for v in r] for r in B]),          # ReLU([B; -B] z)
    ...                Layer.from_rows([[1, 0, -1, 0], [0, 1, 0, -1]], activation="linear")))  # = B z
    >>> r = decide(net, Domain(), time.perf_counter() + 60)
    >>> r.status, r.pieces
    ('injective', 4)
    """
    say = progress or (lambda s: None)
    walker = Walker(net, domain)
    search = _Search(walker, deadline, say, max_pieces)
    t0 = time.perf_counter()
    try:
        tree, empty, pieces = search.pieces()
    except _Stop as e:
        return EndToEndResult("unknown", reason=f"stopped while enumerating pieces: {e}",
                              pieces=search.n_pieces, stats=search.stats)
    except OverflowError:
        # The float hints cannot hold a number past ~1e308 (a weight of 5000
        # digits): this route gives up instead of failing (found by fuzzing).
        return EndToEndResult("unknown", reason=_NO_FLOATS, pieces=search.n_pieces, stats=search.stats)
    R = len(pieces)
    total = R * (R + 1) // 2
    say(f"end to end: {R} pieces, {total} pairs ({time.perf_counter() - t0:.1f} s)")
    certs: list = []
    done = 0
    if count is not None:
        count(0, total, "pairs of pieces closed")
    n_separated = 0
    last = time.perf_counter()
    try:
        outs = [p.output() for p in pieces]
        rows = [p.rows() for p in pieces]
        fl = [search.floats(r, o) for r, o in zip(rows, outs)]
        bounds, box = [], []
        for i in range(R):
            if time.perf_counter() > deadline:
                raise _Stop("time limit while bounding the pieces' outputs")
            b, v = search.bounds(rows[i], outs[i], fl[i])
            bounds.append(b)
            box.append(v)
        for i in range(R):
            for j in range(i, R):
                if time.perf_counter() > deadline:
                    raise _Stop("time limit")
                if separated(box[i], box[j]):  # the checker's own test
                    n_separated += 1
                    done += 1
                    continue
                kind, ev = search.pair(rows[i], outs[i], rows[j], outs[j], fl[i], fl[j])
                if kind == "witness":
                    x, y = ev
                    if (x != y and domain.contains(x) and domain.contains(y)
                            and net.evaluate(x) == net.evaluate(y)):
                        return EndToEndResult("not_injective", witness=(x, y), pieces=R, pairs_done=done,
                                              pairs_total=total, stats=search.stats,
                                              reason=f"pieces {i} and {j} collide")
                    raise _Stop(f"pair ({i}, {j}): a witness failed exact re-evaluation")  # pragma: no cover
                if kind == "open":
                    raise _Stop(f"pair ({i}, {j}) could not be closed exactly")
                certs.append(ev)
                done += 1
                now = time.perf_counter()
                if now - last > 1.0:
                    last = now
                    say(f"end to end: {done}/{total} pairs closed ({now - t0:.1f} s)")
                    if count is not None:  # (done, total, unit) for the progress line's estimate
                        count(done, total, "pairs of pieces closed")
    except _Stop as e:
        return EndToEndResult("unknown", pieces=R, pairs_done=done, pairs_total=total, stats=search.stats,
                              reason=f"{e} after {done} of {total} pairs of {R} pieces")
    except OverflowError:
        return EndToEndResult("unknown", pieces=R, pairs_done=done, pairs_total=total, stats=search.stats,
                              reason=_NO_FLOATS)
    search.stats["separated_pairs"] = n_separated
    return EndToEndResult("injective", EndToEndProof(tuple(tree), tuple(empty), tuple(bounds), tuple(certs)),
                          pieces=R, pairs_done=done, pairs_total=total, stats=search.stats)


class _Search:
    def __init__(self, walker: Walker, deadline: float, say, max_pieces: int):
        self.w = walker
        self.n = walker.n
        self.deadline = deadline
        self.say = say
        self.max_pieces = max_pieces
        self.h = new_highs()
        self.n_pieces = 0
        self.stats = {"lp": 0, "exact_fallback": 0, "infeasible_pairs": 0, "flat_pairs": 0, "thin_prefixes": 0}
        dom = walker.domain
        # Lower-dimensional prefixes may be dropped only on a full-dimensional
        # domain (certificate.Tight says why); on a degenerate box every
        # prefix is lower-dimensional, so all are split.
        self.full = dom.kind != "box" or all(lo < hi for lo, hi in zip(dom.lower, dom.upper))

    # --- pieces ---------------------------------------------------------------------

    def pieces(self):
        tree: list[int] = []
        empty: list[Infeasible] = []
        pieces: list[Prefix] = []
        root = self.w.root()
        kind, hint = self._max_slack(root.rows())
        if kind == "empty":  # the domain looks empty (callers rule this out)
            cert = _farkas(root.rows(), [], hint)
            if cert is not None:
                tree.append(len(empty))
                empty.append(cert)
                return tree, empty, pieces
        self._grow(root, hint if kind == "inside" else None, tree, empty, pieces)
        return tree, empty, pieces

    def _grow(self, node: Prefix, point, tree, empty, pieces) -> None:
        if time.perf_counter() > self.deadline:
            raise _Stop("time limit")
        if node.complete:
            tree.append(REGION)
            pieces.append(node)
            self.n_pieces += 1
            if self.n_pieces > self.max_pieces:
                raise _Stop(f"more than {self.max_pieces} pieces")
            return
        a, c = node.next_pre()
        if not any(a) and c == 0:
            tree.append(COLLAPSE)
            self._grow(node.child(False), point, tree, empty, pieces)
            return
        tree.append(SPLIT)
        af = np.array([float(v) for v in a])
        val = float(af @ point) + float(c) if point is not None else None
        for active in (True, False):
            child = node.child(active)
            if val is not None and ((val > 1e-7) if active else (val < -1e-7)):
                p = point  # the parent's interior point lies strictly inside this half
            else:
                rows = child.rows()
                kind, hint = self._max_slack(rows)
                p = hint if kind == "inside" else None
                # Clearly negative slack: try emptiness first.  Otherwise try
                # "lies in a hyperplane" (full domains only; on a degenerate
                # box every prefix is thin, so split on).
                cert = _farkas(rows, [], hint) if kind == "empty" else None
                if cert is None and kind != "inside" and self.full:
                    cert = _tight(rows, hint)
                    if isinstance(cert, Tight):
                        self.stats["thin_prefixes"] += 1
                if cert is not None:
                    tree.append(len(empty))
                    empty.append(cert)
                    continue
                # The floats said empty or thin but no exact certificate
                # exists: keep splitting (sound, only slower).
            self._grow(child, p, tree, empty, pieces)

    def _max_slack(self, rows: list[Row]):
        """Max-slack LP over a prefix: ('inside', a point deep inside), ('empty',
        dual hint) for clearly negative slack, ('thin', dual hint) for slack
        near 0, or ('unknown', None) if HiGHS gave no optimum."""
        n = self.n
        if not rows:
            return "inside", np.zeros(n)
        A = np.array([[float(v) for v in a] for a, _ in rows]).reshape(len(rows), n)
        c = np.array([float(cc) for _, cc in rows])
        wts = np.linalg.norm(A, axis=1)
        wts[wts == 0] = 1.0
        M = np.hstack([A, wts[:, None]])
        h = self.h
        pass_lp(h, np.r_[np.zeros(n), 1.0], np.r_[np.full(n, -INF), -INF], np.r_[np.full(n, INF), 1.0],
                M, np.full(len(rows), -INF), -c, maximize=True)
        h.run()
        self.stats["lp"] += 1
        if highs_outcome(h) is not Outcome.OPTIMAL:
            return "unknown", None
        sol = h.getSolution()
        x = np.array(sol.col_value)
        if x[n] > SLACK_TOL:
            return "inside", x[:n]
        return ("thin" if x[n] >= -SLACK_TOL else "empty"), np.abs(np.array(sol.row_dual))

    # --- output bounds -----------------------------------------------------------------

    def bounds(self, rows: list[Row], outs: list[Row], fl):
        """Exact (lower, upper) Bounds of every output over a piece, and their values."""
        A, c, O, _ = fl
        certs, vals = [], []
        for (o, o0), of in zip(outs, O):
            pair_c, pair_v = [], []
            for upper in (False, True):
                cert = self._bound(rows, A, c, o, of, upper)
                v = bound_value(rows, (o, o0), cert, upper) if cert is not None else None
                pair_c.append(cert if v is not None else None)
                pair_v.append(v)
            certs.append(tuple(pair_c))
            vals.append(tuple(pair_v))
        return tuple(certs), vals

    def _bound(self, rows, A, c, o, of, upper: bool) -> Bound | None:
        n = self.n
        h = self.h
        pass_lp(h, of if upper else -of, np.full(n, -INF), np.full(n, INF), A, np.full(len(rows), -INF), -c,
                maximize=True)
        h.run()
        self.stats["lp"] += 1
        if highs_outcome(h) is not Outcome.OPTIMAL:
            return None
        y = np.abs(np.array(h.getSolution().row_dual))
        sup = [r for r in range(len(rows)) if y[r] > SUPPORT_TOL]
        target = list(o) if upper else [-v for v in o]
        Aeq = [[rows[r][0][t] for r in sup] for t in range(n)]
        sol = linalg.solve_affine(Aeq, target, len(sup), [float(y[r]) for r in sup])
        if sol is None or any(v < 0 for v in sol):
            return None
        keep = [(r, v) for r, v in zip(sup, sol) if v != 0]
        return Bound(tuple(r for r, _ in keep), tuple(v for _, v in keep))

    # --- pairs ------------------------------------------------------------------------

    def floats(self, rows: list[Row], outs: list[Row]):
        """A piece's rows and outputs as float arrays, converted once (hints only)."""
        n = self.n
        A = np.array([[float(v) for v in a] for a, _ in rows]).reshape(len(rows), n)
        c = np.array([float(cc) for _, cc in rows])
        O = np.array([[float(v) for v in o] for o, _ in outs]).reshape(len(outs), n)
        o0 = np.array([float(oo) for _, oo in outs])
        return A, c, O, o0

    def pair(self, rows_i, out_i, rows_j, out_j, fi, fj):
        """('infeasible' | 'flat', certificate), ('witness', (x, y)) or ('open', None)."""
        ineq, eqs = pair_system(rows_i, out_i, rows_j, out_j, self.n)
        (Ai, ci, Oi, oi), (Aj, cj, Oj, oj) = fi, fj
        n = self.n
        A = np.block([[Ai, np.zeros((len(Ai), n))], [np.zeros((len(Aj), n)), Aj]])
        floats = (A, np.r_[ci, cj], np.hstack([Oi, -Oj]), oi - oj)
        kind, info = self._pair_lp(*floats)
        if kind == "empty":
            cert = _farkas(ineq, eqs, info)
            if cert is not None:
                self.stats["infeasible_pairs"] += 1
                return "infeasible", cert
        elif kind == "open":
            cert = _flat(ineq, eqs, (), None, self.n)
            if cert is not None:
                self.stats["flat_pairs"] += 1
                return "flat", cert
        elif kind == "thin":
            support, guess = self._implicit(*floats)
            if support is not None:
                cert = _flat(ineq, eqs, support, guess, self.n)
                if isinstance(cert, Infeasible):
                    self.stats["infeasible_pairs"] += 1
                    return "infeasible", cert
                if cert is not None:
                    self.stats["flat_pairs"] += 1
                    return "flat", cert
        # Either a collision, or the floats misled us: decide exactly.
        self.stats["exact_fallback"] += 1
        pt = _exact_distinct_point(ineq, eqs, self.n)
        if pt is not None:
            return "witness", pt
        cert = _exact_pair(ineq, eqs, self.n)
        return ("open", None) if cert is None else ("infeasible" if isinstance(cert, Infeasible) else "flat", cert)

    def _pair_lp(self, A, c, E, d):
        """Max-slack LP over the pair system: 'empty' (with dual hint), 'open'
        (every inequality strictly satisfiable at once) or 'thin'."""
        N = 2 * self.n
        wts = np.linalg.norm(A, axis=1)
        wts[wts == 0] = 1.0
        M = np.vstack([np.hstack([A, wts[:, None]]), np.hstack([E, np.zeros((len(d), 1))])])
        lo = np.r_[np.full(len(c), -INF), -d]
        up = np.r_[-c, -d]
        h = self.h
        pass_lp(h, np.r_[np.zeros(N), 1.0], np.r_[np.full(N, -INF), -INF], np.r_[np.full(N, INF), 1.0],
                M, lo, up, maximize=True)
        h.run()
        self.stats["lp"] += 1
        st = highs_outcome(h)
        if st is Outcome.INFEASIBLE:
            _, has, ray = h.getDualRay()
            return "empty", (np.abs(np.array(ray)) if has else None)
        if st is not Outcome.OPTIMAL:
            return "thin", None
        sol = h.getSolution()
        s = sol.col_value[N]
        if s > SLACK_TOL:
            return "open", None
        if s < -SLACK_TOL:
            return "empty", np.abs(np.array(sol.row_dual))
        return "thin", None

    def _implicit(self, A, c, E, d):
        """Float hint for the rows tight on all of S: a combination lam >= 0,
        free mu with sum lam a + sum mu e = 0 and sum lam c + sum mu d = 0,
        of largest support (max sum min(lam_r, 1))."""
        R = len(c)
        self.stats["lp"] += 1
        hint = largest_tight_combination(self.h, A, c, E, d)
        if hint is None:
            return None, None
        lam, mu = hint
        support = tuple(r for r in range(R) if lam[r] > SUPPORT_TOL)
        return support, (lam, mu)


# --- exact certificates ------------------------------------------------------------------


def _farkas(ineq: list[Row], eqs: list[Row], hint) -> Infeasible | None:
    """An exact certificate that the rows and equations have no common point."""
    m = len(ineq)
    dim = len(ineq[0][0]) if ineq else (len(eqs[0][0]) if eqs else 0)
    candidates = []
    if hint is not None:
        hint = np.asarray(hint)
        sup = [r for r in range(m) if hint[r] > SUPPORT_TOL]
        if sup:
            candidates.append(sup)
    candidates.append(list(range(m)))
    # Fast path: on the hinted support the multipliers usually are the unique
    # solution of sum lam a + sum mu e = 0, sum lam c + sum mu d = 1.
    if len(candidates) > 1:
        sup = candidates[0]
        A = [[ineq[r][0][t] for r in sup] + [e[0][t] for e in eqs] for t in range(dim)]
        A.append([ineq[r][1] for r in sup] + [e[1] for e in eqs])
        sol = linalg.solve_affine(A, [Fraction(0)] * dim + [Fraction(1)], len(sup) + len(eqs))
        if sol is not None and all(v >= 0 for v in sol[:len(sup)]):
            # The equations hold by construction and lam >= 0 was just checked;
            # engine.certified runs the full checker on the finished proof.
            keep = [(r, v) for r, v in zip(sup, sol) if v != 0]
            return Infeasible(tuple(r for r, _ in keep), tuple(v for _, v in keep), tuple(sol[len(sup):]))
    t_row = ((Fraction(0),) * dim, Fraction(-1))  # -t < 0: the homogenising variable is positive
    for sup in candidates:
        kind, lam, mu = motzkin_rows([t_row], [ineq[r] for r in sup] + equations_as_rows(eqs))
        if kind != "multiplier":
            continue
        lam_r = mu[:len(sup)]
        eq = [mu[len(sup) + 2 * q] - mu[len(sup) + 2 * q + 1] for q in range(len(eqs))]
        keep = [(r, v) for r, v in zip(sup, lam_r) if v != 0]
        cert = Infeasible(tuple(r for r, _ in keep), tuple(v for _, v in keep), tuple(eq))
        if verify_infeasible(ineq, eqs, cert):
            return cert
    return None


def _tight(rows: list[Row], hint) -> Tight | Infeasible | None:
    """An exact certificate that a prefix region lies in a hyperplane (or is empty)."""
    dim = len(rows[0][0])
    if hint is not None:
        hint = np.asarray(hint)
        sup = [r for r in range(len(rows)) if hint[r] > SUPPORT_TOL]
        if sup:
            A = [[rows[r][0][t] for r in sup] for t in range(dim)]
            A.append([rows[r][1] for r in sup])
            A.append([Fraction(1)] * len(sup))
            rhs = [Fraction(0)] * (dim + 1) + [linalg.round_hint(float(sum(hint[sup]))) or Fraction(1)]
            sol = linalg.solve_affine(A, rhs, len(sup), [float(hint[r]) for r in sup])
            if sol is not None and all(v >= 0 for v in sol):
                keep = [(r, v) for r, v in zip(sup, sol) if v != 0]
                cert = Tight(tuple(r for r, _ in keep), tuple(v for _, v in keep))
                if verify_tight(rows, cert):
                    return cert
    # Exactly: the nonzero rows cannot all be strict at once (Motzkin), and the
    # multiplier's constant says tight (= 0) or empty (> 0).
    idx = [r for r in range(len(rows)) if any(rows[r][0])]
    if not idx:
        return None
    kind, lam, mu = motzkin_rows([rows[r] for r in idx], [rows[r] for r in range(len(rows)) if r not in idx])
    if kind != "multiplier":
        return None
    others = [r for r in range(len(rows)) if r not in idx]
    keep = [(r, v) for r, v in zip(idx + others, list(lam) + list(mu)) if v != 0]
    cert = Tight(tuple(r for r, _ in keep), tuple(v for _, v in keep))
    if verify_tight(rows, cert):
        return cert
    inf = Infeasible(cert.support, cert.lam, ())
    return inf if verify_infeasible(rows, [], inf) else None


def _flat(ineq, eqs, support, guess, n) -> Flat | Infeasible | None:
    """The Flat certificate for ``support`` (rows tight on all of S), from a float hint."""
    support = tuple(support)
    k, P, N = len(support), len(eqs), 2 * n
    if k:
        # Unknowns (lam_S, mu); equations: sum lam a + sum mu e = 0, sum lam c + sum mu d = 0, and
        # the normalisation sum lam = the hint's, so the repaired solution stays near the hint.
        A = [[ineq[r][0][t] for r in support] + [e[0][t] for e in eqs] for t in range(N)]
        A.append([ineq[r][1] for r in support] + [e[1] for e in eqs])
        rhs = [Fraction(0)] * (N + 1)
        lam_g = [float(guess[0][r]) for r in support] if guess is not None else [1.0] * k
        mu_g = list(guess[1]) if guess is not None else [0.0] * P
        A.append([Fraction(1)] * k + [Fraction(0)] * P)
        rhs.append(linalg.round_hint(sum(lam_g)) or Fraction(1))
        sol = linalg.solve_affine(A, rhs, k + P, lam_g + mu_g)
        if sol is None or any(v <= 0 for v in sol[:k]):
            sol = _positive_combination(ineq, eqs, support)
            if sol is None or any(v <= 0 for v in sol[:k]):
                return None
            coef, const = combine(ineq, eqs, support, sol[:k], sol[k:], N)
            if any(coef) or const != 0:  # a Motzkin sum with constant > 0: S is empty, not flat
                return None
        lam, mu = tuple(sol[:k]), tuple(sol[k:])
    else:
        lam, mu = (), tuple(Fraction(0) for _ in eqs)
    solve = _solve_difference(ineq, eqs, support, n)
    if solve is None:
        return None
    # By construction lam > 0, the combination is identically 0 and
    # solve . [A_S; E] = [I, -I]; what remains is solve . [c_S; d] = 0, which
    # fails exactly when x - y is not forced to 0 (a possible collision).
    consts = [ineq[r][1] for r in support] + [e[1] for e in eqs]
    if any(sum((m * c for m, c in zip(row, consts) if m), Fraction(0)) for row in solve):
        return None
    return Flat(support, lam, mu, solve)


def _tight_rows(ineq, eqs, support):
    """Exactly: the rows of ``support`` tight on all of {support rows, eqs}
    (assumed nonempty), with multipliers.

    Make the still-open rows strict: a Motzkin multiplier shows the rows it
    uses are tight (its combination is identically 0 with constant >= 0, and
    = 0 when the set is nonempty); repeat on the rest until the open rows can
    all be strict at once.  Returns (tight rows, lam over ``support`` (> 0
    exactly on the tight rows), mu over ``eqs``); the sum of the multipliers
    found is the combination.
    """
    pairs = equations_as_rows(eqs)
    lam = [Fraction(0)] * len(support)
    mu = [Fraction(0)] * len(eqs)
    open_ = list(range(len(support)))
    while open_:
        closed_ = [i for i in range(len(support)) if i not in open_]
        kind, l1, l2 = motzkin_rows([ineq[support[i]] for i in open_], [ineq[support[i]] for i in closed_] + pairs)
        hit = [open_[t] for t, v in enumerate(l1) if v > 0] if kind == "multiplier" else []
        if not hit:
            break
        for t, v in enumerate(l1):
            lam[open_[t]] += v
        for t, i in enumerate(closed_):
            lam[i] += l2[t]
        for q in range(len(eqs)):
            mu[q] += l2[len(closed_) + 2 * q] - l2[len(closed_) + 2 * q + 1]
        open_ = [i for i in open_ if i not in hit]
    return [support[i] for i in range(len(support)) if i not in open_], lam, mu


def _positive_combination(ineq, eqs, support):
    """lam > 0 on every support row and free mu with the combination
    identically zero (exactly), or None if some support row is not tight."""
    tight, lam, mu = _tight_rows(ineq, eqs, support)
    return lam + mu if len(tight) == len(support) else None


def _solve_difference(ineq, eqs, support, n):
    """Rows m_k with m_k . [A_S; E] = e_k - e_{n+k}, or None."""
    B = [ineq[r][0] for r in support] + [e[0] for e in eqs]
    q = len(B)
    if q == 0:
        return None
    Bt = [[B[i][t] for i in range(q)] for t in range(2 * n)]
    out = []
    for k in range(n):
        target = [Fraction(int(t == k)) - Fraction(int(t == n + k)) for t in range(2 * n)]
        m = linalg.solve_affine(Bt, target, q)
        if m is None:
            return None
        out.append(tuple(m))
    return tuple(out)


def _exact_distinct_point(ineq, eqs, n):
    """An exact point of S with x != y, or None if there is none (exact simplex)."""
    N = 2 * n
    non = list(ineq) + equations_as_rows(eqs)
    t_row = ((Fraction(0),) * N, Fraction(-1))
    for k in range(n):
        for sign in (1, -1):
            d = [Fraction(0)] * N
            d[k], d[n + k] = Fraction(-sign), Fraction(sign)  # -sign (x_k - y_k) < 0
            kind, z, t = motzkin_rows([(tuple(d), Fraction(0)), t_row], non)
            if kind == "point" and t > 0:
                v = [zz / t for zz in z]
                return tuple(v[:n]), tuple(v[n:])
    return None


def _exact_pair(ineq, eqs, n):
    """Infeasible or Flat, decided without floats (slow; the fallback)."""
    cert = _farkas(ineq, eqs, None)
    if cert is not None:
        return cert
    # S is nonempty: find the rows tight on all of it exactly.
    tight, _, _ = _tight_rows(ineq, eqs, list(range(len(ineq))))
    cert = _flat(ineq, eqs, tuple(sorted(tight)), None, n)
    return cert if isinstance(cert, Flat) else None


