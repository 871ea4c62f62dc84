"""Benchmark: the end-to-end route on small networks where layerwise reasoning fails.

Family (injective by construction, never layerwise): stage k computes
ReLU([B_k P; -B_k P; C_k P] h + [b_k; -b_k; c_k]) with P = [I, -I, 0] picking
u_{k-1} = B_{k-1} u_{k-2} + b_{k-1} out of the previous stage (P = I on the
input), B_k invertible, C_k random extra rows; the last layer is linear
[P; r] (n + 1 outputs).  Its first n outputs are an invertible affine map of
z, so it is injective; the final linear stage has rank n + 1 < 2n + extra,
so the layerwise route fails and only the end-to-end route decides it.
ReLUs: depth * (2n + extra).  The "broken" variant replaces the last B by a
singular matrix; then it is usually not injective.

Usage:
    python benchmarks/bench_end_to_end.py [--seeds 3] [--configs 2:1:2,2:2:3,3:2:3] [--broken]
    python benchmarks/bench_end_to_end.py --write-instance PATH --config 2:1:3 --seed 0

Prints one line per run and per config the median decide time, the median
check time, pieces, pairs, and the share of pairs separated by output bounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import exact_inj  # noqa: E402
from exact_inj.io import network_to_json  # noqa: E402
from exact_inj.model import Layer, Network  # noqa: E402


def family(seed: int, n: int, extra: int, depth: int, broken: bool = False) -> Network:
    rng = np.random.default_rng(seed)
    layers = []
    P = np.eye(n, dtype=int)
    for k in range(depth):
        B = rng.integers(-4, 5, size=(n, n))
        while abs(np.linalg.det(B)) < 0.5:
            B = rng.integers(-4, 5, size=(n, n))
        if broken and k == depth - 1:
            B[-1] = B[0]  # singular: the last stage can merge points
        C = rng.integers(-4, 5, size=(extra, n))
        b = rng.integers(-3, 4, size=n)
        c = rng.integers(-3, 4, size=extra)
        W = np.vstack([B @ P, -B @ P, C @ P])
        layers.append(Layer.from_rows(W.astype(int).tolist(), np.r_[b, -b, c].astype(int).tolist()))
        P = np.hstack([np.eye(n), -np.eye(n), np.zeros((n, extra))]).astype(int)
    r = rng.integers(-3, 4, size=(1, P.shape[1]))
    layers.append(Layer.from_rows(np.vstack([P, r]).astype(int).tolist(), activation="linear"))
    return Network(tuple(layers))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--configs", default="2:1:2,2:2:3,3:2:3", help="n:extra:depth, comma separated")
    ap.add_argument("--broken", action="store_true")
    ap.add_argument("--time-limit", type=float, default=600)
    ap.add_argument("--write-instance")
    ap.add_argument("--config", default="2:1:3")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.write_instance:
        n, extra, depth = (int(v) for v in a.config.split(":"))
        net = family(a.seed, n, extra, depth, a.broken)
        Path(a.write_instance).write_text(json.dumps(network_to_json(net)) + "\n")
        return
    for cfg in a.configs.split(","):
        n, extra, depth = (int(v) for v in cfg.split(":"))
        times, checks, rows = [], [], []
        for seed in range(a.seeds):
            net = family(seed, n, extra, depth, a.broken)
            v = exact_inj.verify(net, time_limit=a.time_limit, milp="none")
            e2e = v.info.get("end_to_end", {}) if v.info else {}
            chk = v.info.get("check_seconds") if v.info else None
            size = len(json.dumps(v.certificate.to_json())) if v.certificate else 0
            print(f"n={n} relus={depth * (2 * n + extra)} depth={depth} seed={seed}: {v.status.value} "
                  f"route={v.route} {v.seconds:.2f} s (check {chk}) pieces={e2e.get('pieces')} "
                  f"pairs={e2e.get('pairs')} separated={e2e.get('separated_pairs')} cert={size // 1000} KB",
                  flush=True)
            times.append(v.seconds)
            if chk is not None:
                checks.append(chk)
            rows.append(e2e)
        print(f"== n={n} extra={extra} depth={depth} ({depth * (2 * n + extra)} ReLUs): median {statistics.median(times):.2f} s, "
              f"max {max(times):.2f} s, median check {statistics.median(checks) if checks else float('nan'):.2f} s",
              flush=True)


if __name__ == "__main__":
    main()
