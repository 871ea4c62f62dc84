"""The cheap routes of a single layer, tried before any search: the instant
rule for fewer than 2n rows, the structural [B; -DB] rule, and the witness LP
(docs/theory.md, sections 4 and 7).

Untrusted: each returns evidence (or None) that the caller sends through the
exact checker; floats from the LP only pick candidates.
"""

from __future__ import annotations

import time
from fractions import Fraction
from math import gcd
from typing import Callable

import numpy as np

from .. import solver
from ..certify.schema import Witness
from ..exact import linalg, modrank
from ..model import Layer
from .data import LayerData
from .repair import make_witness, strict_point
from .search import NodeLP

__all__ = ["HINGE_TOL", "find_structural_pairs", "few_rows_witness", "hinge_witness", "witness_from_negative_set"]


# Rows of the hinge LP with a slack above this are counted as "not strictly
# negative".  A guess only: the candidate set is then checked exactly.
HINGE_TOL = 1e-7


def few_rows_witness(data: LayerData) -> Witness | None:
    """Witness for fewer than 2n nonzero rows (docs/theory.md, section 7).

    Take u with no nonzero row orthogonal to it (the moment curve (1, k, k^2,
    ...) works for all but finitely many k).  One of u, -u has fewer than n
    rows positive; far out along it, the other rows are strictly negative and
    the positive ones (with the zero rows) cannot span.
    """
    n = data.n
    rows = [r for r in data.Wi if any(r)]
    for k in range(1, len(rows) * n + 2):
        u = [k**j for j in range(n)]
        dots = [sum(a * c for a, c in zip(r, u)) for r in data.Wi]
        if all(d != 0 for d, r in zip(dots, data.Wi) if any(r)):
            break
    else:  # pragma: no cover - impossible by counting roots
        return None
    for sign in (1, -1):
        neg = sum(1 << i for i, d in enumerate(dots) if any(data.Wi[i]) and sign * d < 0)
        others = [data.Wi[i] for i in range(data.m) if not neg >> i & 1]
        if linalg.rank(others, n) < n:
            t = Fraction(1)
            for i in range(data.m):
                if neg >> i & 1 and data.bi[i] >= 0:
                    t = max(t, Fraction(data.bi[i], -sign * dots[i]) + 1)
            x = [sign * t * c for c in u]
            return make_witness(data, x, neg)
    return None


def find_structural_pairs(layer: Layer, deadline: float | None = None, rows: list[list[int]] | None = None,
                          tick: Callable[[int, int], None] | None = None) -> tuple[tuple[int, int], ...] | None:
    """Rows i_k, j_k with w_j = -d w_i (d > 0), d b_i + b_j >= 0 and the i_k
    independent, chosen greedily; None if no n such pairs exist (or the
    deadline passed first: this route only ever proves, so giving up is safe).

    ``rows`` may pass the layer's rows already scaled to integers (a positive
    multiple of each row, as :class:`LayerData` holds them), ``tick`` receives
    (rows done, rows) for the progress line.

    >>> L = Layer.from_rows([[1, 0], [0, 1], [-2, 0], [0, -3]])
    >>> find_structural_pairs(L)
    ((0, 2), (1, 3))
    """
    n, m = layer.in_dim, layer.out_dim
    W, b = layer.weight, layer.bias
    if rows is None:
        rows = linalg.scaled_integer_rows(W, b)[0]
    # Group rows by their direction up to positive scaling: the integer row
    # divided by the gcd of its entries.  Hashing tuples of ints, not of
    # Fractions, is what keeps this cheap on wide layers (a 2000 x 1000
    # Gaussian layer spent 40 s here hashing Fractions).
    groups: dict[tuple, list[int]] = {}
    for i in range(m):
        if i & 63 == 0:
            if deadline is not None and time.perf_counter() > deadline:
                return None
            if tick is not None:
                tick(i, m)
        row = rows[i]
        g = gcd(*row)
        if g == 0:
            continue
        groups.setdefault(tuple(x // g for x in row), []).append(i)
    if tick is not None:
        tick(m, m)  # grouping done; the rank step after it is not counted
    candidates: list[tuple[int, int]] = []
    for key, idx in groups.items():
        opp = groups.get(tuple(-x for x in key))
        if not opp or key < tuple(-x for x in key):
            continue
        used: set[int] = set()
        for i in idx:
            for j in opp:
                if j in used:
                    continue
                piv = next(c for c in range(n) if W[i][c] != 0)
                d = -W[j][piv] / W[i][piv]
                if d * b[i] + b[j] >= 0:
                    candidates.append((i, j))
                    used.add(j)
                    break
            if candidates and candidates[-1][0] == i:
                break  # one pair per direction is all a basis can use
    if len(candidates) >= n and len(candidates) * n <= modrank.MAX_MODULAR_ENTRIES:
        # One elimination mod a prime picks n independent rows among the
        # candidates (independent mod p implies independent over Q); the
        # greedy exact loop below costs a rank per candidate, O(n^4) in all.
        picked = modrank.independent_rows([layer.sparse_row(i) for i, _ in candidates], n, (1 << 61) - 1)
        if picked is not None:
            return tuple(candidates[k] for k in picked)
    chosen: list[tuple[int, int]] = []
    for i, j in candidates:
        if deadline is not None and time.perf_counter() > deadline:
            return None
        if linalg.rank_q([W[p] for p, _ in chosen] + [W[i]], n) == len(chosen) + 1:
            chosen.append((i, j))
            if len(chosen) == n:
                return tuple(chosen)
    return None


def hinge_witness(data: LayerData, deadline: float, rounds: int = 4) -> tuple[Witness | None, int | None]:
    """Look for a point whose non-negative rows fail to span, by LP.

    Minimise sum_i c_i e_i subject to w_i.z + b_i t + 1 <= e_i, e >= 0,
    t >= 0: rows with e_i = 0 are strictly negative at z/t.  The rows left
    over are a candidate active set; reweighting (c_i = 1/(e_i + 0.1)) pushes
    towards fewer of them.  Returns a verified witness or None, and the
    fewest rows found non-negative at an exactly evaluated point.
    """
    n, m = data.n, data.m
    Wf, bf = data.Wf, data.bf
    A = np.hstack([Wf, bf[:, None], -np.eye(m)])
    h = solver.new_highs(max(deadline - time.perf_counter(), 0.01))
    INF = solver.INF
    solver.pass_lp(h, np.concatenate([np.zeros(n + 1), np.ones(m)]),
                    np.concatenate([np.full(n, -INF), np.zeros(1 + m)]), np.full(n + 1 + m, INF),
                    A, np.full(m, -INF), np.full(m, -1.0))
    best = None
    for _ in range(rounds):
        if time.perf_counter() > deadline:
            break
        h.run()
        if solver.highs_outcome(h) is not solver.Outcome.OPTIMAL:
            break
        x = np.array(h.getSolution().col_value)
        z, t, e = x[:n], x[n], x[n + 1:]
        # Rows clearly negative at the point, whatever their hinge slack: the
        # others are the candidate active set, which must fail to span.
        vals = Wf @ z + bf * t
        negative = sum(1 << i for i in range(m) if vals[i] < -HINGE_TOL * max(1.0, abs(t), np.abs(z).max()))
        pt = strict_point(data, negative, z, t)
        if pt is not None:
            X, D = linalg.common_denominator(pt)
            active = sum(1 for v in data.values(X, D, range(m)) if v >= 0)
            best = active if best is None else min(best, active)
            w = make_witness(data, pt, negative)
            if w is not None:
                return w, best
        h.changeColsCost(m, np.arange(n + 1, n + 1 + m, dtype=np.int32), 1.0 / (e + 0.1))
    return None, best


def witness_from_negative_set(data: LayerData, negative: int) -> Witness | None:
    """Given rows believed strictly negative at some point (and the rest not
    spanning), find such a point exactly and build the witness."""
    others = [data.Wi[i] for i in range(data.m) if not negative >> i & 1]
    if linalg.rank(others, data.n) >= data.n:
        return None
    lp = NodeLP(data)
    res = lp.solve(data.mask_to_bool(negative))
    if res[0] != "point":
        return None
    x = strict_point(data, negative, res[1], res[2])
    return make_witness(data, x, negative) if x is not None else None
