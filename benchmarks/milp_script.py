#!/usr/bin/env python
"""The feasibility MILP of issue 17 as a user runs it: one script, one process.

    python benchmarks/milp_script.py layer.npz [--time-limit S] [--box R]

Reads ``weight_0`` (an m x n layer, b = 0) from an NPZ file, builds the MILP
x in [-R, R]^n, binaries s_i, w_i.x - M_i s_i <= -1 with M_i = 1 + R ||w_i||_1
and sum_i s_i <= n - 1 in HiGHS (one thread, presolve on), solves it and
prints ``injective`` (infeasible: NOT certified, see bench_peers.py),
``not_injective`` (feasible; the point is on the next line) or the solver's
status.  It imports numpy and highspy only, as a script written for the job
would, so that ``bench_peers.py --methods milp-cli`` times the MILP the same
way it times ``exact-inj verify``: interpreter start and imports included.
"""

import argparse
import sys

import highspy
import numpy as np


def formulation(W: np.ndarray, R: float):
    """The MILP's dense arrays (cost, column bounds, A, row bounds): columns x
    (n) then the binaries s (m); rows w_i.x - M_i s_i <= -1, then sum s <= n - 1.
    bench_peers.py's warm ``milp`` method solves the same arrays."""
    m, n = W.shape
    A = np.zeros((m + 1, n + m))
    A[:m, :n] = W
    A[np.arange(m), n + np.arange(m)] = -(1.0 + R * np.abs(W).sum(axis=1))
    A[m, n:] = 1.0
    return (np.zeros(n + m), np.concatenate([np.full(n, -R), np.zeros(m)]),
            np.concatenate([np.full(n, R), np.ones(m)]), A, np.full(m + 1, -highspy.kHighsInf),
            np.concatenate([np.full(m, -1.0), [n - 1.0]]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("npz")
    ap.add_argument("--time-limit", type=float, default=120.0)
    ap.add_argument("--box", type=float, default=1e3)
    args = ap.parse_args()
    W = np.load(args.npz)["weight_0"]
    m, n = W.shape
    R = args.box
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("presolve", "on")
    h.setOptionValue("time_limit", args.time_limit)
    cost, col_lower, col_upper, A, row_lower, row_upper = formulation(W, R)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n + m, m + 1
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = cost, col_lower, col_upper
    lp.row_lower_, lp.row_upper_ = row_lower, row_upper
    cols = A.T  # column-wise storage
    nz = cols != 0
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.concatenate([[0], np.cumsum(nz.sum(axis=1))]).astype(np.int32)
    lp.a_matrix_.index_ = np.nonzero(nz)[1].astype(np.int32)
    lp.a_matrix_.value_ = cols[nz]
    lp.integrality_ = [highspy.HighsVarType.kContinuous] * n + [highspy.HighsVarType.kInteger] * m
    h.passModel(lp)
    h.run()
    st = h.getModelStatus()
    if st == highspy.HighsModelStatus.kInfeasible:
        print("injective")
    elif st == highspy.HighsModelStatus.kOptimal:
        print("not_injective")
        print(" ".join(repr(float(v)) for v in h.getSolution().col_value[:n]))
    else:
        print(h.modelStatusToString(st))
    return 0


if __name__ == "__main__":
    sys.exit(main())
