#!/usr/bin/env python
"""The engine against the peers a user would pick, in one run (issue 17).

    python benchmarks/bench_peers.py                       # n = 6, 7, 8; seeds 0-2
    python benchmarks/bench_peers.py --sizes 6 --seeds 1   # a quick look
    python benchmarks/bench_peers.py --sizes 6,7,8 --methods cli,inproc,milp,depth --time-limit 120

Instances: W = numpy.random.default_rng([seed, n, m, 0]).standard_normal((m, n)),
m = round(6.7 n) (half up), b = 0; the engine gets the doubles' exact values.

Methods (each instance is run by every method before the next instance, so
load drifts hit all of them alike):

cli
    ``python -m exact_inj verify layer.npz --certificate cert.json --quiet``
    as a user runs it: wall time of the whole process (interpreter start,
    imports, the decision, the engine's own exact check, writing the
    certificate).
inproc
    ``exact_inj.verify(net)`` in this process (imports done beforehand);
    includes the engine's exact check of its certificate.  Both engine
    methods use the engine's defaults (tree search plus the MILP side process).
milp
    The strongest feasibility MILP we know for layers in general position,
    HiGHS 1 thread, presolve on: x in [-R, R]^n, binaries s_i,
    w_i.x - M_i s_i <= -1 with M_i = 1 + R ||w_i||_1, and sum_i s_i <= n - 1.
    Feasible means some x leaves at most n - 1 rows not below -1: non-injective
    in general position (the point is re-verified exactly here: the rows with
    w_i.x >= 0 must have rank < n).  Infeasible is read as "injective", which is
    NOT certified: the box is not without loss of generality (theory notes,
    section 6) and HiGHS gives no certificate.
milp-cli
    The same MILP as a user runs it: ``python benchmarks/milp_script.py
    layer.npz`` in a fresh process (interpreter start, importing numpy and
    highspy, reading the file, building and solving), timed like ``cli``.
    ``milp`` above runs warm; ``cli`` against ``milp-cli`` compares both
    tools the way a user meets them.
depth
    data-depth's exact halfspace depth, ``halfspace(0, W, exact=True,
    method="plane")`` (float arithmetic, general position, b = 0 only):
    injective iff depth * m >= n (docs/theory.md, section 5).  "n/a" if the
    package is not installed.

Before any timing the engine's sources (and --baseline-root's) are compiled to
bytecode (compileall), as ``pip install`` does for an installed package:
otherwise, where PYTHONDONTWRITEBYTECODE is set (it is on our machines), every
CLI process and every worker process it starts recompiles about 100 modules,
0.15-0.2 s each time.

Baselines run in long-lived worker processes (imports not timed; data-depth
pulls in torch) and are killed at --time-limit.  Reported: per-instance rows
on stderr, then a table of medians over seeds and of median ratios
(peer seconds / engine seconds on the same instance; > 1 means the engine is
faster), and the geometric mean of those ratios over all instances.
"""

# Imports use the flat module names of 0.1 (exact_inj.search, exact_inj.checker, ...): they
# still work in this checkout (exact_inj/legacy.py), so the same script times an older checkout.
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# This checkout's exact_inj, whatever is installed (the CLI runs with cwd=ROOT too), and
# milp_script beside this file (the MILP's arrays, shared by the milp and milp-cli methods).
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)


def m67(n: int) -> int:
    return int(math.floor(6.7 * n + 0.5))


def make_layer(n: int, seed: int, biased: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """W, then (if biased) b, from numpy.random.default_rng([seed, n, m, 0])."""
    m = m67(n)
    rng = np.random.default_rng([seed, n, m, 0])
    W = rng.standard_normal((m, n))
    b = rng.standard_normal(m) if biased else np.zeros(m)
    return W, b


def to_network(W: np.ndarray, b: np.ndarray):
    from exact_inj.model import Layer, Network

    weight = tuple(tuple(Fraction(float(x)) for x in row) for row in W)
    return Network((Layer(weight, tuple(Fraction(float(x)) for x in b)),))


# --- peers (run in a worker process) ---------------------------------------------------


def exact_rank_of_active(W: np.ndarray, x: np.ndarray) -> int:
    """Exact rank of the rows with w_i.x >= 0 at the double x (b = 0)."""
    import flint

    xq = [Fraction(float(v)) for v in x]
    act = []
    for row in W:
        rq = [Fraction(float(v)) for v in row]
        if sum(a * c for a, c in zip(rq, xq)) >= 0:
            act.append(rq)
    if not act:
        return 0
    den = math.lcm(*(v.denominator for r in act for v in r))
    return flint.fmpz_mat([[int(v * den) for v in r] for r in act]).rank()


def milp(W: np.ndarray, time_limit: float, R: float = 1e3) -> dict:
    import highspy

    from exact_inj.backend import new_highs, pass_lp
    from milp_script import formulation

    t0 = time.perf_counter()
    m, n = W.shape
    cost, col_lower, col_upper, A, lo, hi = formulation(W, R)
    h = new_highs(time_limit)
    h.setOptionValue("presolve", "on")
    pass_lp(h, cost, col_lower, col_upper, A, lo, hi, integrality=[0] * n + [1] * m)
    h.run()
    st = h.getModelStatus()
    HS = highspy.HighsModelStatus
    out = {"seconds": time.perf_counter() - t0, "status": h.modelStatusToString(st), "R": R}
    if st == HS.kOptimal:
        x = np.array(h.getSolution().col_value)[:n]
        out["verdict"] = "not_injective"
        out["exact_witness"] = exact_rank_of_active(W, x) < n
    elif st == HS.kInfeasible:
        out["verdict"] = "injective"
    elif st == HS.kTimeLimit:
        out["verdict"] = "timeout"
    else:
        out["verdict"] = "unknown"
    return out


def depth(W: np.ndarray, time_limit: float) -> dict:
    from depth.model.multivariate import halfspace

    m, n = W.shape
    t0 = time.perf_counter()
    d = halfspace(np.zeros((1, n)), np.ascontiguousarray(W), exact=True, method="plane")
    secs = time.perf_counter() - t0
    k = int(round(float(np.ravel(d)[0]) * m))
    return {"seconds": secs, "verdict": "injective" if k >= n else "not_injective", "depth_rows": k}


PEERS = {"milp": milp, "depth": depth}


def _worker(conn, method: str) -> None:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    import warnings

    warnings.filterwarnings("ignore")
    try:
        if method == "depth":
            import depth.model.multivariate  # noqa: F401
        else:
            import highspy  # noqa: F401
        conn.send(("ready", None))
    except Exception as e:  # not installed
        conn.send(("error", repr(e)))
        return
    while True:
        msg = conn.recv()
        if msg is None:
            return
        W, limit, opts = msg
        try:
            conn.send(("ok", PEERS[method](W, limit, **opts)))
        except Exception as e:
            conn.send(("ok", {"verdict": "error", "seconds": 0.0, "error": repr(e)}))


class Worker:
    def __init__(self, method: str):
        self.method, self.proc, self.conn, self.broken = method, None, None, None

    def run(self, W, limit: float, **opts) -> dict:
        import multiprocessing as mp

        if self.proc is None:
            ctx = mp.get_context("spawn")
            self.conn, child = ctx.Pipe()
            self.proc = ctx.Process(target=_worker, args=(child, self.method), daemon=True)
            self.proc.start()
            child.close()
            kind, info = self.conn.recv() if self.conn.poll(300) else ("error", "no start")
            if kind != "ready":
                self.broken = str(info)
        if self.broken:
            return {"verdict": "n/a", "seconds": 0.0, "error": self.broken}
        t0 = time.perf_counter()
        self.conn.send((W, limit, opts))
        if self.conn.poll(limit + 2):
            return self.conn.recv()[1]
        self.stop()
        return {"verdict": "timeout", "seconds": time.perf_counter() - t0}

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.join()
            self.proc = None


# --- the engine -------------------------------------------------------------------------


def engine_inproc(W: np.ndarray, b: np.ndarray, limit: float, workers: int | None) -> dict:
    import exact_inj

    net = to_network(W, b)
    kw = {} if workers is None else {"workers": workers}
    t0 = time.perf_counter()
    v = exact_inj.verify(net, time_limit=limit, **kw)
    secs = time.perf_counter() - t0
    return {"seconds": secs, "verdict": v.status.value, "check_seconds": v.info.get("check_seconds"),
            "nodes": v.info.get("nodes"), "route": v.route}


def milp_cli(W: np.ndarray, limit: float, tmp: str, R: float) -> dict:
    path = os.path.join(tmp, "milp_layer.npz")
    np.savez(path, weight_0=W)
    cmd = [sys.executable, os.path.join(HERE, "milp_script.py"), path, "--time-limit", str(limit), "--box", str(R)]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=limit + 30)
    except subprocess.TimeoutExpired:
        return {"seconds": time.perf_counter() - t0, "verdict": "timeout"}
    secs = time.perf_counter() - t0
    lines = p.stdout.strip().splitlines()
    # The banner HiGHS prints when it starts comes first; the answer is the line after it.
    answer = next((ln for ln in lines if ln in ("injective", "not_injective")), lines[-1] if lines else "error")
    verdict = answer if answer in ("injective", "not_injective") else "timeout" if "limit" in answer.lower() else "unknown"
    out = {"seconds": secs, "verdict": verdict}
    if verdict == "not_injective":
        x = np.array([float(v) for v in lines[lines.index(answer) + 1].split()])
        out["exact_witness"] = exact_rank_of_active(W, x) < W.shape[1]
    return out


def compile_sources(root: str) -> None:
    """Bytecode for every module of the engine at ``root`` (see the docstring)."""
    import compileall

    compileall.compile_dir(os.path.join(root, "exact_inj"), quiet=1)


def engine_cli(W: np.ndarray, b: np.ndarray, limit: float, workers: int | None, tmp: str, root: str = ROOT) -> dict:
    path = os.path.join(tmp, "layer.npz")
    np.savez(path, weight_0=W, bias_0=b)
    cert = os.path.join(tmp, "cert.json")
    cmd = [sys.executable, "-m", "exact_inj", "verify", path, "--certificate", cert, "--quiet",
           "--time-limit", str(limit)]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    t0 = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=root)
    p = subprocess.run(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    secs = time.perf_counter() - t0
    verdict = {0: "injective", 1: "not_injective", 3: "unknown"}.get(p.returncode, f"error {p.returncode}")
    return {"seconds": secs, "verdict": verdict, "cert_bytes": os.path.getsize(cert) if os.path.exists(cert) else None}


# --- report --------------------------------------------------------------------------------


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, digits=3):
    if x is None:
        return "-"
    return f"{x:.{digits}g}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="6,7,8")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--methods", default="cli,inproc,milp,milp-cli,depth")
    ap.add_argument("--time-limit", type=float, default=120.0)
    ap.add_argument("--milp-box", type=float, default=1e3, help="R of the MILP's box [-R, R]^n")
    ap.add_argument("--workers", default=None,
                    help="comma-separated K: run each engine method once per K with --workers K "
                         "(method names become cli@K, inproc@K); default: the engine's default")
    ap.add_argument("--baseline-root", default=None, metavar="DIR",
                    help="also time the CLI of another checkout (e.g. `git archive REV | tar -x -C DIR`) "
                         "as method 'cli-base', with that checkout's defaults")
    ap.add_argument("--biased", action="store_true",
                    help="N(0, 1) biases drawn after W (engine only: the peers assume b = 0)")
    ap.add_argument("--out", default=None, help="JSON file for every row")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    methods = args.methods.split(",")
    if args.workers:
        ks = [int(k) for k in args.workers.split(",")]
        methods = [f"{meth}@{k}" if meth in ("cli", "inproc") else meth
                   for meth in methods for k in (ks if meth in ("cli", "inproc") else [None])]
    if args.baseline_root:
        methods = ["cli-base"] + methods
    if args.biased:
        methods = [meth for meth in methods if meth not in PEERS and meth != "milp-cli"]
    peers = {meth: Worker(meth) for meth in methods if meth in PEERS}
    rows = []
    compile_sources(ROOT)
    if args.baseline_root:
        compile_sources(os.path.abspath(args.baseline_root))
    with tempfile.TemporaryDirectory(prefix="bench_peers_") as tmp:
        if any(meth.startswith("inproc") for meth in methods):
            # Imports, and the worker processes of workers=K (kept for the
            # process's later calls), outside the timed region.
            import exact_inj

            for meth in methods:
                if meth.startswith("inproc@"):
                    exact_inj.verify(to_network(*make_layer(4, 99)), workers=int(meth.split("@")[1]))
        for n in sizes:
            for seed in range(args.seeds):
                W, b = make_layer(n, seed, args.biased)
                row = {"n": n, "m": len(W), "seed": seed, "biased": args.biased}
                for meth in methods:
                    base, _, k = meth.partition("@")
                    k = int(k) if k else None
                    if base == "cli-base":
                        r = engine_cli(W, b, args.time_limit, None, tmp, os.path.abspath(args.baseline_root))
                    elif base == "cli":
                        r = engine_cli(W, b, args.time_limit, k, tmp)
                    elif base == "inproc":
                        r = engine_inproc(W, b, args.time_limit, k)
                    elif meth == "milp-cli":
                        r = milp_cli(W, args.time_limit, tmp, args.milp_box)
                    elif meth == "milp":
                        r = peers[meth].run(W, args.time_limit, R=args.milp_box)
                    else:
                        r = peers[meth].run(W, args.time_limit)
                    row[meth] = r
                    print(f"n={n} m={len(W)} seed={seed} {meth:7s} {r['verdict']:14s} {r['seconds']:8.3f} s",
                          file=sys.stderr, flush=True)
                rows.append(row)
    for w in peers.values():
        w.stop()
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)

    # Verdict agreement: peers against the certified engine verdict.
    engines = [meth for meth in methods if meth.partition("@")[0] in ("cli", "inproc", "cli-base")]
    eng = next((meth for meth in engines if meth.startswith("inproc")), engines[0] if engines else None)
    bad = []
    for r in rows:
        if eng is None:
            break
        ev = r[eng]["verdict"]
        for meth in methods:
            pv = r[meth]["verdict"]
            if pv in ("injective", "not_injective") and ev in ("injective", "not_injective") and pv != ev:
                bad.append(f"n={r['n']} seed={r['seed']}: {meth} says {pv}, engine {ev}")
            if meth in engines and pv not in ("injective", "not_injective"):
                bad.append(f"n={r['n']} seed={r['seed']}: {meth} left it {pv}")

    def secs(r, meth):
        x = r[meth]
        return x["seconds"] if x["verdict"] not in ("n/a", "error") else None

    print(f"medians over seeds 0..{args.seeds - 1}; ratio = peer s / engine s on the same instance (median); "
          f"timeouts count as {args.time_limit:g} s (a lower bound)")
    head = "| n | m | verdicts |" + "".join(f" {meth} s |" for meth in methods)
    ref = engines
    others = [meth for meth in methods if meth in PEERS or meth == "milp-cli"]
    head += "".join(f" {p} / {e} |" for p in others for e in ref)
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    geo: dict[tuple[str, str], list[float]] = {}
    for n in sizes:
        rs = [r for r in rows if r["n"] == n]
        verdicts = "".join(r[eng]["verdict"][0].upper() if eng else "?" for r in rs)
        line = f"| {n} | {rs[0]['m']} | {verdicts} |"
        for meth in methods:
            line += f" {fmt(median([secs(r, meth) for r in rs]))} |"
        for p in others:
            for e in ref:
                rat = []
                for r in rs:
                    a, b = secs(r, p), secs(r, e)
                    if a is not None and b:
                        rat.append(a / b)
                        geo.setdefault((p, e), []).append(a / b)
                line += f" {fmt(median(rat), 2)}× |" if rat else " - |"
        print(line)
    for (p, e), rat in geo.items():
        gm = math.exp(sum(math.log(x) for x in rat) / len(rat))
        print(f"geometric mean of {p} / {e} over {len(rat)} instances: {gm:.2f}×")
    if bad:
        print("DISAGREEMENTS:\n" + "\n".join(bad))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
