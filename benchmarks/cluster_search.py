#!/usr/bin/env python
"""The `--workers` default and the cluster search (issue 17), in one run.

    python benchmarks/cluster_search.py                        # every part below
    python benchmarks/cluster_search.py --parts small --reps 3 # one part

Instances: W = numpy.random.default_rng([seed, n, m, 0]).standard_normal((m, n)),
b = 0, m = round(6.7 n) unless said; the engine gets the doubles' exact values.

Parts:

small
    ``python -m exact_inj verify layer.npz --quiet`` as a user runs it, with
    ``--workers 1`` and with the default (all cores), n = 3..7, seeds 0-2,
    alternating, --reps times each: median wall seconds per n, and the ratio
    default / K=1 per instance (median).  Does the default slow small layers?
milp
    In this process, ``verify(net)`` with K = 1 (tree plus the MILP side
    process, the old default), K = all cores without the MILP side process,
    and K = all cores with it (exact_inj.layer.decide.MILP_WITH_WORKERS), on
    n = 8 layers at m = 44, 48, 54 (below and at the threshold: witnesses and
    proofs), seeds 0-2.
cluster
    n = --n (default 10), m = round(6.7 n), seed 0: the search alone
    (tree_search's answer; the exact check is the same for any split and is
    timed once) sequentially in this process, with psearch (K = 2 local
    processes), and on Dask LocalClusters of 2, 4 and 8 worker processes (one
    thread each).  Speed-up = sequential / parallel wall time, per worker =
    speed-up / workers.  On a 2-core machine workers beyond 2 measure the
    overhead of more tasks and processes, not speed.  Then one more 2-worker
    run with every slice at --fine-slice seconds (a finer split), whose
    per-subtree CPU seconds and dependencies (a subtree exists once the
    subtree that handed it back has finished) are list-scheduled on 16 and 64
    workers, each subtree paying the measured round trip of an empty task
    times tasks / subtrees (a task carries several): the projection (with --fine-slice 0, from the last run instead).  The last
    run's proof is checked exactly (unless --no-check).

Results go to --out (JSON) and a summary to stdout.
"""

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
sys.path.insert(0, ROOT)
# Dask's worker processes and the CLI import this checkout too.
os.environ["PYTHONPATH"] = ROOT + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")


def m67(n: int) -> int:
    return int(math.floor(6.7 * n + 0.5))


def weights(n: int, m: int, seed: int) -> np.ndarray:
    return np.random.default_rng([seed, n, m, 0]).standard_normal((m, n))


def network(W: np.ndarray):
    from exact_inj.model import Layer, Network

    m = W.shape[0]
    return Network((Layer(tuple(tuple(Fraction(float(x)) for x in r) for r in W), (Fraction(0),) * m),))


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "n/a"


def say(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


# --- small: the --workers default on small layers, by CLI --------------------------------


def part_small(args) -> dict:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(3, 8):
            m = m67(n)
            for seed in range(3):
                path = os.path.join(tmp, f"l{n}_{seed}.npz")
                np.savez(path, weight_0=weights(n, m, seed), bias_0=np.zeros(m))
                times = {"k1": [], "default": []}
                verdicts = set()
                for _ in range(args.reps):
                    for key, extra in (("k1", ["--workers", "1"]), ("default", [])):
                        t = time.perf_counter()
                        p = subprocess.run([sys.executable, "-m", "exact_inj", "verify", path, "--quiet", "--json",
                                            *extra], capture_output=True, text=True, cwd=ROOT)
                        times[key].append(time.perf_counter() - t)
                        out = json.loads(p.stdout)
                        verdicts.add((out["verdict"], out["info"].get("tried", [])[-1]))
                row = {"n": n, "m": m, "seed": seed, "k1": statistics.median(times["k1"]),
                       "default": statistics.median(times["default"]), "verdicts": sorted(map(list, verdicts))}
                say("small", row)
                rows.append(row)
    return {"uptime": uptime(), "reps": args.reps, "rows": rows}


# --- milp: the MILP side process beside K > 1 workers ----------------------------------


def part_milp(args) -> dict:
    from exact_inj import verify
    from exact_inj.api import default_workers
    from exact_inj.layer import decide

    k = default_workers()
    rows = []
    for m in (44, 48, 54):
        for seed in range(3):
            net = network(weights(8, m, seed))
            row = {"n": 8, "m": m, "seed": seed}
            for key, workers, with_milp in (("k1_milp", 1, False), ("kall", k, False), ("kall_milp", k, True)):
                decide.MILP_WITH_WORKERS = with_milp
                t = time.perf_counter()
                v = verify(net, time_limit=args.time_limit, workers=workers)
                row[key] = time.perf_counter() - t
                row[key + "_verdict"] = f"{v.status.value}/{v.route}"
            decide.MILP_WITH_WORKERS = False
            say("milp", row)
            rows.append(row)
    return {"uptime": uptime(), "workers": k, "rows": rows}


# --- cluster ----------------------------------------------------------------------------


def schedule(subtrees: list, processors: int, overhead: float) -> float:
    """List-schedule the measured subtrees on ``processors`` workers: the
    root first (here), then each subtree in the order it was handed back,
    ready once the subtree that handed it back has finished, costing its CPU
    seconds plus ``overhead``.  Returns the finishing time."""
    import heapq

    rows = sorted(subtrees)  # by subtree number: donors come before what they hand back
    finish: dict[int, float] = {rows[0][0]: rows[0][5]}
    free = [rows[0][5]] * processors
    heapq.heapify(free)
    for tid, donor, _, _, _, cpu in rows[1:]:
        start = max(heapq.heappop(free), finish[donor])
        finish[tid] = start + cpu + overhead
        heapq.heappush(free, finish[tid])
    return max(finish.values())


def critical_path(subtrees: list, overhead: float) -> float:
    rows = sorted(subtrees)
    length = {rows[0][0]: rows[0][5]}
    for tid, donor, _, _, _, cpu in rows[1:]:
        length[tid] = length[donor] + cpu + overhead
    return max(length.values())


def round_trip(client, layer) -> float:
    """Median seconds of an empty task (no subtrees) sent and read back."""
    from exact_inj.layer.cluster import search_subtrees
    from exact_inj.model import Domain

    lf = client.scatter(layer, broadcast=True, hash=False)
    df = client.scatter(Domain(), broadcast=True, hash=False)
    out = []
    for _ in range(20):
        t = time.perf_counter()
        client.submit(search_subtrees, lf, df, [], 10.0, 1.0, None, pure=False).result()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def part_cluster(args) -> dict:
    from distributed import Client, LocalCluster

    from exact_inj.certify.check import check
    from exact_inj.certify.schema import Certificate, Status
    from exact_inj.layer import cluster, psearch, search
    from exact_inj.layer.data import LayerData

    n = args.n
    m = m67(n)
    net = network(weights(n, m, 0))
    layer = net.layers[0]
    data = LayerData(layer)
    res: dict = {"n": n, "m": m, "seed": 0, "uptime_start": uptime(), "runs": []}
    limit = args.time_limit

    def record(name: str, workers: int, t: float, cpu: float | None, r, rep=None) -> None:
        row = {"name": name, "workers": workers, "seconds": t, "kind": r.kind, "nodes": r.stats.nodes,
               "this_process_cpu": cpu}
        if rep is not None:
            j = rep.to_json()
            row["tasks"] = len(j["tasks"])
            row["subtrees"] = len(j["subtrees"])
            row["task_cpu"] = sum(x[4] for x in j["tasks"])
            row["subtree_cpu"] = sum(x[5] for x in j["subtrees"])
            row["report"] = j
        say("cluster", {k: v for k, v in row.items() if k != "report"})
        res["runs"].append(row)

    if not args.skip_sequential:
        t, c = time.perf_counter(), time.process_time()
        r = search.tree_search(data, time.perf_counter() + limit)
        record("sequential", 1, time.perf_counter() - t, time.process_time() - c, r)
        tc = time.perf_counter()
        chk = check(Certificate(net, data.domain, Status.INJECTIVE, r.proof))
        res["check_seconds"] = time.perf_counter() - tc
        res["check_valid"] = chk.valid
        del r, chk
    if not args.skip_psearch:
        psearch.shutdown()
        t = time.perf_counter()
        r = psearch.parallel_tree_search(data, time.perf_counter() + limit, 2)
        record("psearch", 2, time.perf_counter() - t, None, r)
        psearch.shutdown()
    runs = [(w, args.slice) for w in args.workers] + ([(2, args.fine_slice)] if args.fine_slice > 0 else [])
    for w, sl in runs:
        with LocalCluster(n_workers=w, threads_per_worker=1, processes=True, dashboard_address=None) as lc, \
                Client(lc) as client:
            # Warm the workers (imports) before timing; measure an empty task's round trip.
            rt = round_trip(client, layer)
            t, c = time.perf_counter(), time.process_time()
            r, rep = cluster.cluster_tree_search(data, time.perf_counter() + limit, client, slice_seconds=sl)
            name = f"dask{w}" if sl == cluster.SLICE_SECONDS else f"dask{w}_slice{sl:g}"
            if (w, sl) == runs[-1]:
                res["uptime_last_run_end"] = uptime()
            record(name, w, time.perf_counter() - t, time.process_time() - c, r, rep)
            res["runs"][-1]["round_trip"] = rt
            res["runs"][-1]["slice"] = sl
            if r.kind == "proof" and (w, sl) == runs[-1] and not args.no_check:
                tc = time.perf_counter()
                chk = check(Certificate(net, data.domain, Status.INJECTIVE, r.proof))
                res["runs"][-1]["check_valid"] = chk.valid
                res["runs"][-1]["check_seconds"] = time.perf_counter() - tc
            del r
    res["uptime_end"] = uptime()
    seq = next((x["seconds"] for x in res["runs"] if x["name"] == "sequential"), None)
    fine = res["runs"][-1]
    subs = fine["report"]["subtrees"]
    # A task's round trip, shared by the subtrees it carried (tasks batch them).
    ov = fine["round_trip"] * len(fine["report"]["tasks"]) / len(subs)
    res["projection"] = {
        "from": fine["name"], "round_trip": fine["round_trip"], "overhead_per_subtree": ov,
        "total_cpu": sum(x[5] for x in subs), "subtrees": len(subs),
        "largest_subtree_cpu": max(x[5] for x in subs), "critical_path": critical_path(subs, ov),
        **{f"P{p}": schedule(subs, p, ov) for p in (1, 2, 4, 8, 16, 64)},
        "sequential_seconds": seq,
    }
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="small,milp,cluster")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--workers", default="2,4,8")
    ap.add_argument("--slice", type=float, default=2.0, help="the slice of the 2/4/8-worker runs (seconds)")
    ap.add_argument("--fine-slice", type=float, default=0.25,
                    help="one more 2-worker run with this slice, for the projection (0: none; project from the last run)")
    ap.add_argument("--no-check", action="store_true", help="do not check the last run's proof")
    ap.add_argument("--time-limit", type=float, default=3600.0)
    ap.add_argument("--skip-sequential", action="store_true")
    ap.add_argument("--skip-psearch", action="store_true")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "cluster_search.json"))
    args = ap.parse_args()
    args.workers = [int(x) for x in args.workers.split(",") if x]
    parts = args.parts.split(",")
    out: dict = {"command": " ".join(sys.argv), "uptime": uptime()}
    if "small" in parts:
        out["small"] = part_small(args)
    if "milp" in parts:
        out["milp"] = part_milp(args)
    if "cluster" in parts:
        out["cluster"] = part_cluster(args)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f)
    summary(out)


def summary(out: dict) -> None:
    if "small" in out:
        s = out["small"]
        print(f"## small ({s['uptime']})")
        print("| n | m | K=1 s | default s | default / K=1 |")
        print("|---|---|---|---|---|")
        for n in sorted({r["n"] for r in s["rows"]}):
            rs = [r for r in s["rows"] if r["n"] == n]
            print(f"| {n} | {rs[0]['m']} | {statistics.median(r['k1'] for r in rs):.2f} | "
                  f"{statistics.median(r['default'] for r in rs):.2f} | "
                  f"{statistics.median(r['default'] / r['k1'] for r in rs):.2f} |")
    if "milp" in out:
        s = out["milp"]
        k = s["workers"]
        print(f"## milp ({s['uptime']})")
        print(f"| n | m | seed | verdict | K=1 + MILP s | K={k} s | K={k} + MILP s |")
        print("|---|---|---|---|---|---|---|")
        for r in s["rows"]:
            print(f"| {r['n']} | {r['m']} | {r['seed']} | {r['kall_verdict']} | {r['k1_milp']:.2f} | "
                  f"{r['kall']:.2f} | {r['kall_milp']:.2f} |")
    if "cluster" in out:
        c = out["cluster"]
        print(f"## cluster n = {c['n']}, m = {c['m']} ({c['uptime_start']} ... {c['uptime_end']})")
        seq = c["projection"]["sequential_seconds"]
        print("| run | workers | seconds | speed-up | per worker | nodes | tasks |")
        print("|---|---|---|---|---|---|---|")
        for r in c["runs"]:
            sp = seq / r["seconds"] if seq else float("nan")
            print(f"| {r['name']} | {r['workers']} | {r['seconds']:.1f} | {sp:.2f} | {sp / r['workers']:.2f} | "
                  f"{r['nodes']} | {r.get('tasks', '')} |")
        if "check_seconds" in c:
            print(f"check of the sequential proof: {c['check_seconds']:.1f} s (valid: {c['check_valid']})")
        p = c["projection"]
        print(f"projection from {p['from']}: {p['subtrees']} subtrees, CPU {p['total_cpu']:.1f} s (largest "
              f"{p['largest_subtree_cpu']:.2f} s), round trip {p['round_trip'] * 1e3:.1f} ms "
              f"({p['overhead_per_subtree'] * 1e3:.1f} ms per subtree), critical path {p['critical_path']:.1f} s; " +
              ", ".join(f"{q}: {p[q]:.1f} s" for q in ("P1", "P2", "P4", "P8", "P16", "P64")))
        last = c["runs"][-1]
        if "check_valid" in last:
            print(f"check of {last['name']}'s spliced proof: {last['check_seconds']:.1f} s (valid: {last['check_valid']})")


if __name__ == "__main__":
    main()
