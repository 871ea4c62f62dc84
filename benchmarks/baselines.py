"""Three baseline deciders for single ReLU layers, kept out of the package.

They exist to be compared with exact_inj's engine by bench_layer.py.  None of
them produces a checkable proof of injectivity; each says how far its answer
can be trusted in the ``soundness`` field of its result:

milp
    The textbook big-M MILP (docs/theory.md, sections 1 and 6): x in a box
    [-R, R]^n, a binary per row (1 = "w_i.x + b_i <= -eps"), otherwise
    "w_i.v = 0", and v in [-1, 1]^n with some |v_j| = 1.  HiGHS solves it.
    *Its "injective" (MILP infeasible) is NOT sound*: the box and the margin
    are not without loss of generality (docs/theory.md, section 6), and HiGHS gives no
    certificate of infeasibility.  Its "not_injective" comes with a point,
    which is re-verified here in exact arithmetic (``exact_witness``).

hyperplanes
    Exhaustive enumeration of row-spanned hyperplanes (docs/theory.md, section 3): the
    layer is non-injective iff rank W < n or some hyperplane H spanned by n-1
    independent rows admits x with w_i.x + b_i < 0 for every row not in H.
    Each strict system is decided by a homogenised HiGHS LP (float LP: its
    optimum is exactly 0 or 1, read with tolerances).  rank W is computed
    exactly (python-flint).  A "not_injective" answer is re-verified exactly
    (the rows not strictly negative at the LP's point have exact rank < n);
    an "injective" answer rests on float LPs ("float LP").

depth
    Exact halfspace (Tukey) depth of the origin among the rows, from the
    ``data-depth`` package (``depth.model.multivariate.halfspace(x, data,
    exact=True)``, Dyckerhoff-Mozharovskyi's combinatorial algorithm in C++,
    float arithmetic).  For b = 0 and rows in general position (iid Gaussian W,
    almost surely) the layer is injective iff the depth is >= n rows (docs/theory.md,
    section 5).  Only for bias-free layers; its answer assumes general position.

Every decider takes float64 arrays W (m x n) and b (m); the benchmark's
instances are float64 to begin with, so the baselines see exactly the same
numbers as the engine, which gets their exact rational values.

Each decider returns a dict with at least ``verdict`` ("injective",
"not_injective", "unknown", "timeout") and ``seconds`` (solve time, not
counting interpreter start-up or imports).
"""

from __future__ import annotations

import math
import os
import time
from fractions import Fraction
from itertools import combinations

import numpy as np

METHODS = ("milp", "hyperplanes", "depth")

SOUNDNESS = {
    "milp": "injective: UNSOUND (box and margin not WLOG, no certificate); not_injective: exact-verified point",
    "hyperplanes": "injective: float LP; not_injective: exact-verified point",
    "depth": "float (C++ exact combinatorial algorithm), b = 0 and general position only",
}


# --- shared helpers ----------------------------------------------------------------


def _new_highs(time_limit: float | None):
    # The package's quiet, single-threaded HiGHS (its banner would go to stdout).
    from exact_inj.solver import new_highs

    return new_highs(time_limit)


def _pass_model(h, cost, col_lower, col_upper, A, row_lower, row_upper, integrality=None, maximize=False):
    from exact_inj.solver import pass_lp

    pass_lp(h, cost, col_lower, col_upper, np.asarray(A, dtype=float), row_lower, row_upper, integrality, maximize)


def _integer_rows(W: np.ndarray, b: np.ndarray) -> tuple[list[list[int]], list[int]]:
    """Each row (w_i, b_i), scaled by a positive integer to be integral (exact)."""
    Wi, bi = [], []
    for row, bb in zip(W, b):
        fr = [Fraction(float(x)) for x in row] + [Fraction(float(bb))]
        den = math.lcm(*(x.denominator for x in fr))
        ints = [int(x * den) for x in fr]
        Wi.append(ints[:-1])
        bi.append(ints[-1])
    return Wi, bi


def exact_rank(rows: list[list[int]], n: int) -> int:
    if not rows:
        return 0
    import flint

    return flint.fmpz_mat(rows).rank()


def verify_point(W: np.ndarray, b: np.ndarray, z, t) -> bool:
    """Exact check that (z, t) proves non-injectivity.

    With t > 0, x = z/t; with t = 0, x = lambda*z for large lambda.  The rows
    that are not strictly negative at x (for t = 0: those with w_i.z >= 0, a
    superset) must have exact rank < n; by docs/theory.md, section 1 (=>) x and x + eps*v
    then collide for v in their null space.
    """
    n = W.shape[1]
    Wi, bi = _integer_rows(W, b)
    zq = [Fraction(float(x)) for x in z]
    tq = Fraction(float(t))
    if tq < 0:
        return False
    if tq == 0 and not any(zq):
        return False
    active = []
    for row, bb in zip(Wi, bi):
        val = sum(w * x for w, x in zip(row, zq)) + (bb * tq if tq > 0 else 0)
        if val >= 0:
            active.append(row)
    return exact_rank(active, n) < n


# --- (a) the textbook big-M MILP ----------------------------------------------------


def milp(W: np.ndarray, b: np.ndarray, time_limit: float, box: float = 1e4, margin: float = 1.0) -> dict:
    """Feasibility MILP: x in [-box, box]^n, rows strictly negative by ``margin``
    (binary delta_i = 1) or orthogonal to v (delta_i = 0), v != 0."""
    t0 = time.perf_counter()
    m, n = W.shape
    INF = math.inf
    # columns: x (n), v (n), delta (m), sigma+ (n), sigma- (n)
    ix, iv, idl, isp, ism = 0, n, 2 * n, 2 * n + m, 3 * n + m
    N = 4 * n + m
    rows, lo, hi = [], [], []
    for i in range(m):
        w, bb = W[i], b[i]
        Mi = box * np.abs(w).sum() + abs(bb) + margin
        r = np.zeros(N)  # w.x + b <= -margin + M (1 - delta)
        r[ix:ix + n] = w
        r[idl + i] = Mi
        rows.append(r); lo.append(-INF); hi.append(Mi - margin - bb)
        Ci = np.abs(w).sum()  # |w.v| <= C delta
        for s in (1.0, -1.0):
            r = np.zeros(N)
            r[iv:iv + n] = s * w
            r[idl + i] = -Ci
            rows.append(r); lo.append(-INF); hi.append(0.0)
    r = np.zeros(N)
    r[isp:isp + 2 * n] = 1.0
    rows.append(r); lo.append(1.0); hi.append(1.0)
    for j in range(n):
        r = np.zeros(N)  # sigma+_j = 1 => v_j >= 1
        r[iv + j] = 1.0
        r[isp + j] = -2.0
        rows.append(r); lo.append(-1.0); hi.append(INF)
        r = np.zeros(N)  # sigma-_j = 1 => v_j <= -1
        r[iv + j] = 1.0
        r[ism + j] = 2.0
        rows.append(r); lo.append(-INF); hi.append(1.0)
    col_lower = np.array([-box] * n + [-1.0] * n + [0.0] * (m + 2 * n))
    col_upper = np.array([box] * n + [1.0] * n + [1.0] * (m + 2 * n))
    integrality = [0] * (2 * n) + [1] * (m + 2 * n)
    h = _new_highs(max(time_limit - (time.perf_counter() - t0), 0.01))
    _pass_model(h, np.zeros(N), col_lower, col_upper, np.array(rows), np.array(lo), np.array(hi), integrality)
    h.run()
    import highspy

    st = h.getModelStatus()
    HS = highspy.HighsModelStatus
    has_point = h.getInfo().primal_solution_status == 2
    out = {"seconds": time.perf_counter() - t0, "raw_status": h.modelStatusToString(st),
           "soundness": SOUNDNESS["milp"], "box": box, "margin": margin}
    if st == HS.kOptimal or (has_point and st in (HS.kTimeLimit, HS.kSolutionLimit, HS.kInterrupt)):
        x = np.array(h.getSolution().col_value)[:n]
        out["verdict"] = "not_injective"
        out["exact_witness"] = verify_point(W, b, x, 1.0)
    elif st == HS.kInfeasible:
        out["verdict"] = "injective"
        out["exact_witness"] = None
    elif st in (HS.kTimeLimit, HS.kInterrupt):
        out["verdict"] = "timeout"
    else:
        out["verdict"] = "unknown"
    return out


# --- (b) exhaustive enumeration of row-spanned hyperplanes ---------------------------

S_ONE, S_ZERO = 0.5, 1e-6
IN_H_TOL = 1e-12


def hyperplanes(W: np.ndarray, b: np.ndarray, time_limit: float) -> dict:
    """The finite reduction of docs/theory.md, section 3, by brute force: one warm-started HiGHS LP per hyperplane."""
    t0 = time.perf_counter()
    deadline = t0 + time_limit
    m, n = W.shape
    out = {"soundness": SOUNDNESS["hyperplanes"], "hyperplanes_total": math.comb(m, n - 1)}
    Wi, bi = _integer_rows(W, b)
    if exact_rank(Wi, n) < n:
        out.update(verdict="not_injective", seconds=time.perf_counter() - t0, reason="rank W < n",
                   lps=0, exact_witness=True)
        return out
    # max s  s.t.  w_i.z + b_i t + s <= 0 (rows outside H), t >= 0, s <= 1.
    A = np.hstack([W, b[:, None], np.ones((m, 1))])
    cost = np.zeros(n + 2)
    cost[-1] = 1.0
    INF = math.inf
    h = _new_highs(None)
    _pass_model(h, cost, [-INF] * n + [0.0, -INF], [INF] * n + [INF, 1.0], A,
                np.full(m, -INF), np.zeros(m), maximize=True)
    on = np.ones(m, dtype=bool)
    norms = np.linalg.norm(W, axis=1)
    seen: set[frozenset] = set()
    lps = unsure = dependent = 0
    for k, S in enumerate(combinations(range(m), n - 1)):
        if k & 255 == 0 and time.perf_counter() > deadline:
            out.update(verdict="timeout", seconds=time.perf_counter() - t0, lps=lps, hyperplanes_done=k)
            return out
        if n == 1:
            v = np.ones(1)
        else:
            _, sv, vt = np.linalg.svd(W[list(S)], full_matrices=True)
            if sv[-1] <= 1e-9 * sv[0]:
                dependent += 1
                continue
            v = vt[-1]
        inH = np.abs(W @ v) <= IN_H_TOL * norms
        inH[list(S)] = True
        if inH.sum() > n - 1:  # degenerate: several subsets span the same H
            key = frozenset(np.nonzero(inH)[0].tolist())
            if key in seen:
                continue
            seen.add(key)
        want = ~inH
        diff = np.nonzero(want != on)[0]
        if len(diff):
            upper = np.where(want[diff], 0.0, INF)
            h.changeRowsBounds(len(diff), diff.astype(np.int32), np.full(len(diff), -INF), upper)
            on = want
        h.run()
        lps += 1
        s = h.getInfo().objective_function_value
        if s >= S_ONE:
            x = np.array(h.getSolution().col_value)
            ok = verify_point(W, b, x[:n], max(x[n], 0.0))
            out.update(verdict="not_injective", seconds=time.perf_counter() - t0, lps=lps,
                       hyperplanes_done=k + 1, exact_witness=ok)
            return out
        if abs(s) > S_ZERO:
            unsure += 1
    out.update(verdict="injective" if not unsure else "unknown", seconds=time.perf_counter() - t0,
               lps=lps, hyperplanes_done=math.comb(m, n - 1), dependent_subsets=dependent, unsure_lps=unsure)
    return out


# --- (c) exact halfspace depth (data-depth) -----------------------------------------


def depth_available() -> tuple[bool, str]:
    try:
        from importlib.metadata import version

        v = version("data-depth")
    except Exception:
        return False, "data-depth not installed"
    return True, f"data-depth {v}"


def depth(W: np.ndarray, b: np.ndarray, time_limit: float) -> dict:
    """Injective iff the halfspace depth of 0 among the rows is >= n rows (b = 0,
    general position).  ``time_limit`` is enforced by the caller (kill)."""
    if np.any(b != 0):
        return {"verdict": "n/a", "seconds": 0.0, "reason": "biased layer"}
    from depth.model.multivariate import halfspace

    m, n = W.shape
    t0 = time.perf_counter()
    d = halfspace(np.zeros((1, n)), np.ascontiguousarray(W, dtype=float), exact=True)
    secs = time.perf_counter() - t0
    rows = float(d[0]) * m
    k = int(round(rows))
    return {"verdict": "injective" if k >= n else "not_injective", "seconds": secs,
            "depth": float(d[0]), "depth_rows": k, "depth_rows_float": rows,
            "soundness": SOUNDNESS["depth"]}


DECIDERS = {"milp": milp, "hyperplanes": hyperplanes, "depth": depth}


# --- running a decider in a killable process -----------------------------------------


def _worker_main(conn, method: str) -> None:
    # stdout belongs to the benchmark; HiGHS and the C++ depth code may print.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
    except OSError:
        pass
    try:
        if method == "depth":
            import depth.model.multivariate  # noqa: F401  (slow: pulls in torch)
        else:
            import highspy  # noqa: F401
            import flint  # noqa: F401
        conn.send(("ready", None))
    except Exception as e:
        conn.send(("error", repr(e)))
        return
    fn = DECIDERS[method]
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        W, b, limit, opts = msg
        try:
            conn.send(("ok", fn(W, b, limit, **opts)))
        except Exception as e:
            conn.send(("ok", {"verdict": "error", "seconds": 0.0, "error": repr(e)}))


class Worker:
    """One baseline in its own long-lived process, killed and restarted on timeout.

    The process imports its libraries once (data-depth pulls in torch: ~4 s),
    so start-up is not charged to any instance.  ``run`` waits at most
    ``limit + grace`` seconds of wall time for an answer.
    """

    def __init__(self, method: str, startup_timeout: float = 120.0):
        self.method = method
        self.startup_timeout = startup_timeout
        self.proc = None
        self.conn = None
        self.broken: str | None = None

    def _start(self) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, self.method), daemon=True)
        self.proc.start()
        child.close()
        if not self.conn.poll(self.startup_timeout):
            self.stop()
            self.broken = "worker did not start"
            return
        try:
            kind, info = self.conn.recv()
        except EOFError:
            kind, info = "error", "worker died on start-up"
        if kind != "ready":
            self.stop()
            self.broken = str(info)

    def run(self, W: np.ndarray, b: np.ndarray, limit: float, grace: float = 2.0, **opts) -> dict:
        if self.proc is None or not self.proc.is_alive():
            self.broken = None
            self._start()
        if self.broken:
            return {"verdict": "error", "seconds": 0.0, "error": self.broken}
        t0 = time.perf_counter()
        self.conn.send((W, b, limit, opts))
        if self.conn.poll(limit + grace):
            try:
                kind, res = self.conn.recv()
                return res
            except EOFError:
                pass
            self.stop()
            return {"verdict": "error", "seconds": time.perf_counter() - t0, "error": "worker died"}
        self.stop()
        return {"verdict": "timeout", "seconds": time.perf_counter() - t0, "killed": True}

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.is_alive():
                self.proc.terminate()
                self.proc.join(timeout=5)
                if self.proc.is_alive():
                    self.proc.kill()
                    self.proc.join(timeout=5)
            self.proc = None
        if self.conn is not None:
            self.conn.close()
            self.conn = None
