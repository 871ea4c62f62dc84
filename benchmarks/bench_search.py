#!/usr/bin/env python
"""Cost of the proof search and of its check, per instance, for one or two checkouts.

    python benchmarks/bench_search.py --sizes 7,8 --seeds 3
    python benchmarks/bench_search.py --sizes 8 --seeds 3 --baseline-root /tmp/before [--biased]

Runs search.tree_search (sequential, no MILP, no earlier stages) and then
checker.check on its proof, on issue 17's layers (numpy.random.default_rng(
[seed, n, m, 0]), m = round(6.7 n), W then b).  Reports tree nodes, leaves,
LPs, cores in the certificate, and CPU seconds (time.process_time: less
sensitive than wall time to other jobs on shared cores, though not immune)
for the search and the check.  Node, LP and core counts are deterministic.
With --baseline-root each instance is also run by that checkout's code (in a
subprocess with PYTHONPATH set to it), alternating with this one, so both see
the same load.
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
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def one(n: int, seed: int, biased: bool) -> dict:
    """Search and check one instance with whatever exact_inj is importable."""
    from fractions import Fraction

    import numpy as np

    from exact_inj import search
    from exact_inj.certificate import Certificate, Domain
    from exact_inj.checker import check
    from exact_inj.model import Layer, Network
    from exact_inj.verdict import Status

    m = int(math.floor(6.7 * n + 0.5))
    rng = np.random.default_rng([seed, n, m, 0])
    W = rng.standard_normal((m, n))
    b = rng.standard_normal(m) if biased else np.zeros(m)
    layer = Layer(tuple(tuple(Fraction(float(x)) for x in r) for r in W), tuple(Fraction(float(x)) for x in b))
    data = search.LayerData(layer)
    c0 = time.process_time()
    res = search.tree_search(data, time.perf_counter() + 3600)
    c1 = time.process_time()
    row = {"n": n, "m": m, "seed": seed, "kind": res.kind, "nodes": res.stats.nodes, "leaves": res.stats.leaves,
           "lps": res.stats.lps + res.stats.core_lps, "search_cpu": c1 - c0}
    if res.kind == "proof":
        cert = Certificate(Network((layer,)), Domain(), Status.INJECTIVE, res.proof)
        row["cores"] = len(res.proof.cores)
    else:
        cert = Certificate(Network((layer,)), Domain(), Status.NOT_INJECTIVE, res.witness)
    c2 = time.process_time()
    ok = check(cert).valid
    row["check_cpu"] = time.process_time() - c2
    row["valid"] = ok
    return row


def run_in(root: str, n: int, seed: int, biased: bool) -> dict:
    code = (f"import sys, json; sys.path.insert(0, {HERE!r}); import bench_search as b; "
            f"print(json.dumps(b.one({n}, {seed}, {biased})))")
    p = subprocess.run([sys.executable, "-c", code], cwd=root, env=dict(os.environ, PYTHONPATH=root),
                       capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="7,8")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--biased", action="store_true")
    ap.add_argument("--baseline-root", default=None, metavar="DIR")
    args = ap.parse_args(argv)
    roots = [("this", ROOT)] + ([("base", os.path.abspath(args.baseline_root))] if args.baseline_root else [])
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        for seed in range(args.seeds):
            for name, root in roots:
                r = run_in(root, n, seed, args.biased)
                r["code"] = name
                rows.append(r)
                print(json.dumps(r), file=sys.stderr, flush=True)
    print("| code | n | m | verdicts | nodes (median) | LPs | cores | search CPU s | check CPU s | check / search |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in sorted({r["n"] for r in rows}):
        for name, _ in roots:
            rs = [r for r in rows if r["n"] == n and r["code"] == name]
            med = lambda k: statistics.median(r[k] for r in rs if r.get(k) is not None)  # noqa: E731
            kinds = "".join("I" if r["kind"] == "proof" else "N" if r["kind"] == "witness" else "U" for r in rs)
            cores = med("cores") if any("cores" in r for r in rs) else "-"
            print(f"| {name} | {n} | {rs[0]['m']} | {kinds} | {med('nodes'):,.0f} | {med('lps'):,.0f} | "
                  f"{cores if cores == '-' else f'{cores:,.0f}'} | {med('search_cpu'):.2f} | {med('check_cpu'):.2f} | "
                  f"{med('check_cpu') / med('search_cpu'):.2f} |")
    bad = [r for r in rows if not r["valid"]]
    if bad:
        print("INVALID CERTIFICATES:", bad)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
