"""Optimisation models for one ReLU layer, kept apart from any solver.

All models encode docs/theory.md, section 1's disjunction: f is non-injective iff there
are z and v != 0 such that each row is orthogonal to v or strictly negative at
z.  Homogenising z with t >= 0 (z/t is the point; t = 0 is a direction along
which the point can be pushed far out) makes "strictly negative" scale-free,
so a margin of 1 costs no generality in the node LP.

The models use float copies of the rows, each scaled so that its largest entry
(bias included) is 1; that scaling changes no answer (docs/theory.md, section 7) and
keeps HiGHS's tolerances meaningful across magnitudes from 1e-9 to 1e9.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np

INF = float("inf")


def float_rows(W: Sequence[Sequence[Fraction | int]], b: Sequence[Fraction | int]) -> tuple[np.ndarray, np.ndarray]:
    """Rows (w_i, b_i) as floats, each scaled by a positive number to max-abs 1.

    Scaling is done in exact arithmetic before rounding, so a row of entries
    near 1e-9 is not flushed towards zero.  Zero rows stay zero.
    """
    m = len(W)
    n = len(W[0]) if m else 0
    Wf = np.zeros((m, n))
    bf = np.zeros(m)
    for i, (row, bi) in enumerate(zip(W, b)):
        if all(type(x) is int for x in row) and type(bi) is int:
            # Integer rows (the engine's usual input): int / int is a correctly
            # rounded float division, no Fraction needed.
            big = max(max(abs(x) for x in row), abs(bi))
            if big:
                Wf[i] = [x / big for x in row]
                bf[i] = bi / big
            continue
        big = max([abs(Fraction(x)) for x in row] + [abs(Fraction(bi))])
        if big == 0:
            continue
        Wf[i] = [float(Fraction(x) / big) for x in row]
        bf[i] = float(Fraction(bi) / big)
    return Wf, bf


@dataclass(frozen=True)
class Milp:
    """A dense MILP: min cost.x, row_lower <= A x <= row_upper, bounds, integrality."""

    cost: np.ndarray
    col_lower: np.ndarray
    col_upper: np.ndarray
    integrality: np.ndarray
    A: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray
    n: int
    m: int

    @property
    def num_cols(self) -> int:
        return len(self.cost)

    def delta(self, x: np.ndarray) -> np.ndarray:
        """The row indicators (1 = strictly negative) of a solution vector."""
        return x[2 * self.n + 1 : 2 * self.n + 1 + self.m]

    def point(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        return x[: self.n], float(x[self.n])


def witness_milp(Wf: np.ndarray, bf: np.ndarray, box: float = 1e4) -> Milp:
    """The big-M witness model (the "textbook" MILP, for witnesses only).

    Columns: z (n, in [-box, box]), t in [0, 1], v (n, in [-1, 1]),
    delta (m binaries: 1 = row strictly negative at z/t), sigma+/sigma- (2n
    binaries choosing a coordinate where v = +1 or -1, so v != 0).
    Rows: delta_i = 1 forces w_i z + b_i t <= -1; delta_i = 0 forces w_i v = 0.

    The box is NOT without loss of generality (docs/theory.md, section 6): this model's
    infeasibility never proves anything.  Its solutions are hints that the
    engine repairs and checks exactly.
    """
    m, n = Wf.shape
    nz, nt, nv, nd, ns = n, 1, n, m, 2 * n
    N = nz + nt + nv + nd + ns
    iz, it, iv, idl, isg = 0, n, n + 1, 2 * n + 1, 2 * n + 1 + m
    rows, lo, hi = [], [], []

    def row():
        r = np.zeros(N)
        rows.append(r)
        return r

    for i in range(m):
        Mi = 1.0 + np.abs(Wf[i]).sum() * box + abs(bf[i])
        r = row()
        r[iz : iz + n] = Wf[i]
        r[it] = bf[i]
        r[idl + i] = Mi
        lo.append(-INF)
        hi.append(Mi - 1.0)
        Ci = np.abs(Wf[i]).sum()
        for sign in (1.0, -1.0):
            r = row()
            r[iv : iv + n] = sign * Wf[i]
            r[idl + i] = -Ci
            lo.append(-INF)
            hi.append(0.0)
    r = row()
    r[isg : isg + 2 * n] = 1.0
    lo.append(1.0)
    hi.append(1.0)
    for j in range(n):
        r = row()  # sigma+_j = 1  =>  v_j >= 1
        r[iv + j] = 1.0
        r[isg + j] = -2.0
        lo.append(-1.0)
        hi.append(INF)
        r = row()  # sigma-_j = 1  =>  v_j <= -1
        r[iv + j] = 1.0
        r[isg + n + j] = 2.0
        lo.append(-INF)
        hi.append(1.0)
    col_lower = np.array([-box] * nz + [0.0] + [-1.0] * nv + [0.0] * (nd + ns))
    col_upper = np.array([box] * nz + [1.0] + [1.0] * nv + [1.0] * (nd + ns))
    integrality = np.array([0] * (nz + nt + nv) + [1] * (nd + ns))
    return Milp(np.zeros(N), col_lower, col_upper, integrality, np.array(rows), np.array(lo), np.array(hi), n, m)


def node_lp(Wf: np.ndarray, bf: np.ndarray, k: int = 0) -> dict:
    """The homogenised node LP of docs/theory.md, section 11, with every row switched on.

    Columns (z, t, s): maximise s subject to w_i.z + b_i t + s <= 0 for the
    rows in play, t >= 0, s <= 1.  The optimum is exactly 0 or 1 by scaling,
    so no tolerance decides between "some point makes all these rows strictly
    negative" (s = 1) and "a Motzkin multiplier exists" (s = 0, from the duals).
    A row is taken out of play by raising its upper bound to +inf.

    The last k rows of (Wf, bf) are a domain's constraints G z - h t <= 0:
    they also appear once more, without s and always on, because z must lie
    in the domain whether or not the constraint is in play as a strict row.
    """
    m, n = Wf.shape
    A = np.hstack([Wf, bf[:, None], np.ones((m, 1))])
    if k:
        A = np.vstack([A, np.hstack([Wf[m - k:], bf[m - k:, None], np.zeros((k, 1))])])
    cost = np.zeros(n + 2)
    cost[-1] = 1.0
    return dict(
        cost=cost,
        col_lower=np.array([-INF] * n + [0.0, -INF]),
        col_upper=np.array([INF] * n + [INF, 1.0]),
        A=A,
        row_lower=np.full(m + k, -INF),
        row_upper=np.zeros(m + k),
        maximize=True,
    )


def core_lp(Wf: np.ndarray, bf: np.ndarray, k: int = 0) -> dict:
    """The multiplier LP used to strengthen cores (docs/theory.md, section 11).

    Columns lambda_i >= 0 (one per row) and, on a domain, mu_j >= 0 for the
    last k rows used non-strictly; rows sum lambda_i w_i + sum mu_j g_j = 0,
    sum lambda_i b_i + sum mu_j (-h_j) >= 0, sum_i lambda_i = 1.  The caller
    sets which rows may carry weight (column upper bounds) and prices the
    undecided rows, so the optimum is a multiplier leaning on rows already
    fixed negative.
    """
    m, n = Wf.shape
    Wk, bk = Wf[m - k:], bf[m - k:]
    A = np.vstack([
        np.hstack([Wf.T, Wk.T]),
        np.concatenate([bf, bk])[None, :],
        np.concatenate([np.ones(m), np.zeros(k)])[None, :],
    ])
    return dict(
        cost=np.zeros(m + k),
        col_lower=np.zeros(m + k),
        col_upper=np.full(m + k, INF),
        A=A,
        row_lower=np.array([0.0] * n + [0.0, 1.0]),
        row_upper=np.array([0.0] * n + [INF, 1.0]),
        maximize=False,
    )
