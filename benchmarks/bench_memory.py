#!/usr/bin/env python
"""Memory of ``verify`` and ``check`` against the certificate's size (issue 17,
item 3), one process per command, as a user runs them.

    python benchmarks/bench_memory.py --n 12 --m 80 --seeds 0          # about 8 minutes
    python benchmarks/bench_memory.py --n 10 --m 67 --seeds 0,1,2
    python benchmarks/bench_memory.py --n 10 --m 67 --seeds 0 --old /tmp/old   # also an older checkout

For each seed it writes ``g{n}_{seed}.json`` (``exact-inj construct gaussian``),
runs ``exact-inj verify ... --certificate c.json.gz --workers W`` and
``exact-inj check c.json.gz --workers W`` in fresh processes, and reports
each one's wall time and peak resident memory (the largest of the process
and its workers: ``ru_maxrss`` of the waited-for children, read per command
from a wrapper process), the certificate's size compressed and as JSON text,
and the baseline: the peak of ``check`` on a certificate of one rank leaf
(the interpreter with numpy, python-flint and exact_inj loaded).  With
``--old DIR`` every command is run a second time with ``PYTHONPATH=DIR`` (an
older checkout), its ``check`` on the certificate the current code wrote.
Results go to ``--out`` as JSON and to stdout as a table.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time

_WRAP = r"""
import resource, subprocess, sys, time
t = time.perf_counter()
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
wall = time.perf_counter() - t
print(rc, wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def _run(cmd: list[str], env: dict) -> dict:
    """Wall seconds and peak RSS (MB) of ``cmd`` and its descendants, measured
    by a wrapper of its own so that no earlier command counts."""
    out = subprocess.run([sys.executable, "-c", _WRAP, *cmd], env=env, capture_output=True, text=True, check=True)
    rc, wall, kb = out.stdout.split()
    if int(rc) != 0:  # injective, or a valid certificate: anything else is not what is measured
        raise SystemExit(f"{' '.join(cmd)} exited {rc}")
    return {"exit": int(rc), "seconds": round(float(wall), 2), "max_rss_mb": round(int(kb) / 1024, 1)}


def _tiny_certificate(folder: str, env: dict) -> str:
    net = os.path.join(folder, "tiny.json")
    with open(net, "w") as f:
        # [B; -B]: injective, with a structural certificate of four integers.
        json.dump({"layers": [{"weight": [[1, 0], [0, 1], [-1, 0], [0, -1]], "bias": [0, 0, 0, 0]}]}, f)
    cert = os.path.join(folder, "tiny_cert.json")
    subprocess.run(["exact-inj", "verify", net, "--certificate", cert, "--quiet"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return cert


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--m", type=int, default=80)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--time-limit", type=float, default=3000)
    ap.add_argument("--old", help="an older checkout to run as well (its folder, put on PYTHONPATH)")
    ap.add_argument("--folder", help="where the networks and certificates go (default: a temporary folder)")
    ap.add_argument("--out", default="benchmarks/results/memory.json")
    args = ap.parse_args()
    folder = args.folder or tempfile.mkdtemp(prefix="bench_memory_")
    os.makedirs(folder, exist_ok=True)
    envs = {"new": dict(os.environ)}
    if args.old:
        envs["old"] = {**os.environ, "PYTHONPATH": os.path.abspath(args.old)}
    rows = []
    for label, env in envs.items():
        tiny = _tiny_certificate(folder, env)
        base = _run(["exact-inj", "check", tiny], env)
        rows.append({"code": label, "what": "baseline check", **base})
    for seed in [int(s) for s in args.seeds.split(",")]:
        net = os.path.join(folder, f"g{args.n}_{seed}.json")
        subprocess.run(["exact-inj", "construct", "gaussian", "--n", str(args.n), "--m", str(args.m),
                        "--seed", str(seed), "-o", net], check=True, stdout=subprocess.DEVNULL)
        cert_new = None
        for label, env in envs.items():
            cert = os.path.join(folder, f"c{args.n}_{seed}_{label}.json.gz")
            t = time.strftime("%H:%M:%S")
            v = _run(["exact-inj", "verify", net, "--certificate", cert, "--workers", str(args.workers),
                      "--time-limit", str(args.time_limit), "--quiet"], env)
            if label == "new":
                cert_new = cert
            with open(cert, "rb") as f:
                gz = f.seek(0, 2)
            with gzip.open(cert, "rb") as f:
                text = sum(len(b) for b in iter(lambda: f.read(1 << 24), b""))
            c = _run(["exact-inj", "check", cert_new or cert, "--workers", str(args.workers)], env)
            for what, r in (("verify", v), ("check", c)):
                rows.append({"code": label, "what": what, "seed": seed, "started": t, **r,
                             "certificate_gz_mb": round(gz / 1e6, 1), "certificate_json_mb": round(text / 1e6, 1)})
            print(json.dumps(rows[-2]), json.dumps(rows[-1]), flush=True)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"n": args.n, "m": args.m, "workers": args.workers, "load": os.getloadavg(), "rows": rows}, f,
                  indent=1)
    print(f"\n{'code':5} {'what':15} {'seed':>4} {'wall s':>8} {'max RSS MB':>10} {'cert gz MB':>10} {'JSON MB':>8}")
    for r in rows:
        print(f"{r['code']:5} {r['what']:15} {r.get('seed', ''):>4} {r['seconds']:8.1f} {r['max_rss_mb']:10.1f} "
              f"{r.get('certificate_gz_mb', ''):>10} {r.get('certificate_json_mb', ''):>8}")


if __name__ == "__main__":
    main()
