"""Solver back ends: HiGHS (through highspy) and CBC (through PuLP).

Everything a solver says is a hint.  This module only maps each solver's raw
status onto :class:`Outcome`; a raw status the map does not know becomes
``Outcome.UNKNOWN`` (as cvxpy does), so a new solver release can never turn an
unexpected status into a verdict.  Verdicts come from exact checks elsewhere.
"""

from __future__ import annotations

import contextlib
import enum
import os
import sys
import threading
import warnings

import highspy
import numpy as np

INF = highspy.kHighsInf


class Outcome(enum.Enum):
    """What a solver run produced, as far as the engine cares."""

    OPTIMAL = "optimal"
    """An optimal (LP) or feasible-and-proven-optimal (MILP) point is available."""

    FEASIBLE = "feasible"
    """A feasible point is available but the run stopped early (MILP limits)."""

    INFEASIBLE = "infeasible"
    """The solver claims infeasibility.  It carries no certificate: never a proof."""

    LIMIT = "limit"
    """A time, iteration or interrupt limit stopped the run with no point."""

    UNKNOWN = "unknown"
    """Anything else, including raw statuses this map does not know."""


_HS = highspy.HighsModelStatus
HIGHS_STATUS = {
    _HS.kOptimal: Outcome.OPTIMAL,
    _HS.kInfeasible: Outcome.INFEASIBLE,
    _HS.kTimeLimit: Outcome.LIMIT,
    _HS.kIterationLimit: Outcome.LIMIT,
    _HS.kSolutionLimit: Outcome.FEASIBLE,
    _HS.kInterrupt: Outcome.LIMIT,
}


def highs_outcome(h: "highspy.Highs") -> Outcome:
    """Map a finished HiGHS run to an Outcome (a MIP that stopped at a limit
    with an incumbent is FEASIBLE)."""
    out = HIGHS_STATUS.get(h.getModelStatus(), Outcome.UNKNOWN)
    if out is Outcome.LIMIT and h.getInfo().primal_solution_status == 2:
        return Outcome.FEASIBLE
    return out


_banner_lock = threading.Lock()
_banner_done = False


def new_highs(time_limit: float | None = None) -> "highspy.Highs":
    """A quiet single-threaded HiGHS instance.

    HiGHS prints a banner to the process's stdout the first time an instance
    is created, before any option can be set.  stdout belongs to --json, so
    that one creation happens with file descriptor 1 pointed at /dev/null.
    Threads stay at 1: the count is global to the process (docs/theory.md,
    section 6) and our two cores go to the proof search and the MILP process.
    """
    global _banner_done
    with _banner_lock:
        if not _banner_done:
            with _stdout_silenced():
                h = highspy.Highs()
            _banner_done = True
        else:
            h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    if time_limit is not None:
        h.setOptionValue("time_limit", max(float(time_limit), 0.01))
    return h


@contextlib.contextmanager
def _stdout_silenced():
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):
        # stdout is not a real file (pytest capture, notebooks): nothing to protect.
        yield
        return
    sys.stdout.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def pass_lp(
    h: "highspy.Highs",
    cost: np.ndarray,
    col_lower: np.ndarray,
    col_upper: np.ndarray,
    A: np.ndarray,
    row_lower: np.ndarray,
    row_upper: np.ndarray,
    integrality: np.ndarray | None = None,
    maximize: bool = False,
) -> None:
    """Load a dense model into HiGHS (column-wise, zeros dropped)."""
    lp = highspy.HighsLp()
    nrow, ncol = A.shape
    lp.num_col_ = ncol
    lp.num_row_ = nrow
    lp.col_cost_ = np.asarray(cost, dtype=float)
    lp.col_lower_ = np.asarray(col_lower, dtype=float)
    lp.col_upper_ = np.asarray(col_upper, dtype=float)
    lp.row_lower_ = np.asarray(row_lower, dtype=float)
    lp.row_upper_ = np.asarray(row_upper, dtype=float)
    starts, index, value = [0], [], []
    for j in range(ncol):
        nz = np.nonzero(A[:, j])[0]
        index.extend(nz.tolist())
        value.extend(A[nz, j].tolist())
        starts.append(len(index))
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.array(starts, dtype=np.int32)
    lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
    lp.a_matrix_.value_ = np.array(value, dtype=float)
    if maximize:
        lp.sense_ = highspy.ObjSense.kMaximize
    if integrality is not None:
        lp.integrality_ = [highspy.HighsVarType.kInteger if f else highspy.HighsVarType.kContinuous for f in integrality]
    h.passModel(lp)


def largest_tight_combination(h: "highspy.Highs", A: np.ndarray, c: np.ndarray, E: np.ndarray, d: np.ndarray
                              ) -> tuple[np.ndarray, np.ndarray] | None:
    """Float hint for the rows tight on all of {v : A v + c <= 0, E v + d = 0}:
    a combination lam >= 0, free mu with lam A + mu E = 0 and lam c + mu d = 0,
    of largest support (max sum min(lam_r, 1)); (lam, mu), or None when the LP
    gives no optimum.  Used by the end-to-end route and the preimage search;
    the callers turn it into exact certificates or drop it.
    """
    R, P, D = len(c), len(d), A.shape[1] if len(c) else E.shape[1]
    # Columns: lam (R), tau (R), mu (P).  Rows: D + 1 equations, then tau - lam <= 0.
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
    pass_lp(h, cost, lo, up, M, np.r_[np.zeros(D + 1), np.full(R, -INF)], np.zeros(D + 1 + R), maximize=True)
    h.run()
    if highs_outcome(h) is not Outcome.OPTIMAL:
        return None
    x = np.array(h.getSolution().col_value)
    return x[:R], x[2 * R:]


# --- PuLP / CBC: the second, independent route --------------------------------


def to_pulp(model):
    """The :class:`formulation.Milp` as a PuLP problem (for CBC, or LP/MPS export)."""
    # PuLP costs ~0.15 s to import and serves only --milp cbc and export: late.
    import pulp

    prob = pulp.LpProblem("exact_inj_witness", pulp.LpMinimize)
    xs = []
    # PuLP 3.3 warns that LpVariable(...) changes in PuLP 4; we pin PuLP 3.
    warnings.filterwarnings("ignore", message="Constructing LpVariable", category=DeprecationWarning)
    for j in range(model.num_cols):
        lo = None if model.col_lower[j] == -INF else float(model.col_lower[j])
        hi = None if model.col_upper[j] == INF else float(model.col_upper[j])
        cat = pulp.LpInteger if model.integrality[j] else pulp.LpContinuous
        xs.append(pulp.LpVariable(f"x{j}", lowBound=lo, upBound=hi, cat=cat))
    prob += pulp.lpSum(float(c) * x for c, x in zip(model.cost, xs) if c != 0)
    for i in range(model.A.shape[0]):
        expr = pulp.lpSum(float(a) * xs[j] for j, a in enumerate(model.A[i]) if a != 0)
        if model.row_lower[i] == model.row_upper[i]:
            prob += expr == float(model.row_lower[i]), f"r{i}"
            continue
        if model.row_lower[i] != -INF:
            prob += expr >= float(model.row_lower[i]), f"r{i}lo"
        if model.row_upper[i] != INF:
            prob += expr <= float(model.row_upper[i]), f"r{i}hi"
    return prob, xs


def solve_milp_pulp(model, time_limit: float) -> tuple[Outcome, np.ndarray | None]:
    """Solve a :class:`formulation.Milp` with PuLP's bundled CBC.

    PuLP's status is never read (PuLP 3 calls a HiGHS time limit "Optimal");
    we only look at whether every variable came back with a value, and the
    caller repairs and verifies any point exactly.
    """
    import pulp  # late, as in to_pulp

    prob, xs = to_pulp(model)
    solver = pulp.PULP_CBC_CMD(msg=False, timeLimit=max(1, int(time_limit)), threads=1)
    try:
        prob.solve(solver)
    except pulp.PulpSolverError:
        return Outcome.UNKNOWN, None
    # A variable that appears in no constraint (t, when every bias is zero)
    # comes back as None; any value in its bounds will do, and the caller
    # verifies the point exactly anyway.
    vals = [x.value() if x.value() is not None else _in_bounds(x.lowBound, x.upBound) for x in xs]
    if not prob.constraints or all(x.value() is None for x in xs):
        return Outcome.UNKNOWN, None
    return Outcome.FEASIBLE, np.array(vals, dtype=float)


def _in_bounds(lo, hi) -> float:
    if lo is not None and lo > 0:
        return float(lo)
    if hi is not None and hi < 0:
        return float(hi)
    return 0.0


def solve_milp_highs(model, time_limit: float) -> tuple[Outcome, np.ndarray | None]:
    """Solve a :class:`formulation.Milp` with HiGHS.

    The witness model is a pure feasibility problem (zero objective), so the
    first incumbent is optimal and HiGHS stops there.
    """
    h = new_highs(time_limit)
    pass_lp(h, model.cost, model.col_lower, model.col_upper, model.A, model.row_lower, model.row_upper, model.integrality)
    h.run()
    out = highs_outcome(h)
    if out in (Outcome.OPTIMAL, Outcome.FEASIBLE):
        return out, np.array(h.getSolution().col_value, dtype=float)
    return out, None
