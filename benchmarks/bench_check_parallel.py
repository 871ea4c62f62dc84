"""Reading and checking a large case-split tree certificate, one process
against K (issue 17, item 3).

For one seeded Gaussian layer (W = numpy.random.default_rng([seed, n, m, 0])
.standard_normal((m, n)), as `exact-inj construct gaussian` writes it), this
decides the layer with `verify --workers K` (certificate written packed,
gzip-compressed), then, in fresh processes so that each figure has its own
peak memory:

- ``read``: `load_certificate` alone (seconds, max RSS);
- ``check@1`` and ``check@K``: `exact-inj check CERT --workers k` (wall seconds
  including the read, the check's own seconds, max RSS of the checking process
  and of its workers).

    python benchmarks/bench_check_parallel.py --n 10 --workers 2 --repeats 3

Prints a Markdown table; medians over the repeats.  Load on the machine is
printed before and after (os.getloadavg): figures from a loaded machine are
not comparable with an idle one.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

_READ = """
import resource, sys, time
from exact_inj.api import load_certificate
t = time.perf_counter()
c = load_certificate(sys.argv[1])
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, len(c.evidence.tree))
"""


def _run(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, max RSS (MB) of the command's process tree, stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if out.returncode not in (0,):
        sys.exit(f"failed ({out.returncode}): {' '.join(cmd)}\n{out.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(before, after) / 1024, out.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--m", type=int, default=None, help="rows (default round(6.7 n))")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--keep", metavar="DIR", help="keep the layer and certificate in DIR")
    args = ap.parse_args()
    m = args.m or round(6.7 * args.n)
    folder = args.keep or tempfile.mkdtemp()
    os.makedirs(folder, exist_ok=True)
    layer = os.path.join(folder, f"g{args.n}_{m}_{args.seed}.json")
    cert = layer.replace(".json", ".cert.json.gz")
    py = [sys.executable, "-m", "exact_inj"]
    print(f"load average at the start: {os.getloadavg()}", file=sys.stderr)
    _run(py + ["construct", "gaussian", "--n", str(args.n), "--m", str(m), "--seed", str(args.seed), "-o", layer])
    wall, _, out = _run(py + ["verify", layer, "--workers", str(args.workers), "--certificate", cert, "--quiet",
                              "--time-limit", "100000", "--json"])
    v = json.loads(out)
    print(f"verify@{args.workers}: {v['verdict']} in {wall:.1f} s wall, check inside {v['info']['check_seconds']:.1f} s, "
          f"{os.path.getsize(cert) / 1e6:.1f} MB", file=sys.stderr)
    rows = {"read": [], "check@1": [], f"check@{args.workers}": []}
    for _ in range(args.repeats):
        # Each measurement in its own process tree: RUSAGE_CHILDREN keeps the
        # largest child seen so far, so a fresh interpreter runs each.
        for name, cmd in (("read", [sys.executable, "-c", _READ, cert]),
                          ("check@1", py + ["check", cert, "--workers", "1", "--json"]),
                          (f"check@{args.workers}", py + ["check", cert, "--workers", str(args.workers), "--json"])):
            probe = subprocess.run([sys.executable, "-c",
                                    "import resource, subprocess, sys, time, json\n"
                                    "t = time.perf_counter()\n"
                                    "o = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
                                    "w = time.perf_counter() - t\n"
                                    "r = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
                                    "print(json.dumps([o.returncode, w, r, o.stdout]))", *cmd],
                                   capture_output=True, text=True, check=True)
            code, w, rss, stdout = json.loads(probe.stdout)
            if code != 0:
                sys.exit(f"{name} failed ({code}): {stdout}")
            inner = float(stdout.split()[0]) if name == "read" else json.loads(stdout)["seconds"]
            rows[name].append((w, inner, rss))
    print(f"load average at the end: {os.getloadavg()}", file=sys.stderr)
    print(f"n = {args.n}, m = {m}, seed {args.seed}: verify@{args.workers} {wall:.1f} s "
          f"(check inside {v['info']['check_seconds']:.1f} s), certificate {os.path.getsize(cert) / 1e6:.1f} MB\n")
    print("| step | wall s | own s | max RSS MB |\n|---|---|---|---|")
    for name, vals in rows.items():
        med = [statistics.median(x[i] for x in vals) for i in range(3)]
        print(f"| {name} | {med[0]:.2f} | {med[1]:.2f} | {med[2]:.0f} |")


if __name__ == "__main__":
    main()
