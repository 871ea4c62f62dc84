"""Issue #14 figures: the structural rule on a wide Gaussian layer, the wall
time of `verify --time-limit` past its limit, and witness sizes on the shared
ONNX networks.  Run it with PYTHONPATH pointing at the checkout to measure
(before: the old checkout; after: this one) and compare the printed medians.

    PYTHONPATH=. python benchmarks/bench_ux.py [--reps 3] [--onnx ONNX_DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def structural(m: int, n: int, reps: int) -> float:
    from exact_inj.layer.rules import find_structural_pairs
    from exact_inj.model import Layer

    rng = np.random.default_rng(0)
    layer = Layer.from_rows(rng.standard_normal((m, n)).tolist(), rng.standard_normal(m).tolist()) \
        if _floats_ok() else None
    if layer is None:
        from fractions import Fraction
        W = [[Fraction(v) for v in r] for r in rng.standard_normal((m, n)).tolist()]
        layer = Layer(tuple(map(tuple, W)), tuple(Fraction(v) for v in rng.standard_normal(m).tolist()))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        find_structural_pairs(layer)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _floats_ok() -> bool:
    from exact_inj.model import Layer
    try:
        Layer.from_rows([[0.5]])
        return True
    except TypeError:
        return False


def wall(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "exact_inj", *args], capture_output=True, timeout=900)
    return time.perf_counter() - t0


def digits(path: str) -> tuple[int, int]:
    r = subprocess.run([sys.executable, "-m", "exact_inj", "verify", path, "--json", "--quiet"],
                       capture_output=True, text=True, timeout=900)
    w = json.loads(r.stdout).get("witness") or {"x": [], "y": []}
    big = max((len(p) for s in w["x"] + w["y"] for p in s.lstrip("-").split("/")), default=0)
    return big, len(r.stdout.encode())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--onnx", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "onnx"))
    a = ap.parse_args()
    print(f"structural rule, 1000 x 500 Gaussian: median {structural(1000, 500, a.reps):.2f} s over {a.reps}")
    with tempfile.TemporaryDirectory() as d:
        rng = np.random.default_rng(0)
        p = os.path.join(d, "g.npz")
        np.savez(p, weight_0=rng.standard_normal((2000, 1000)), bias_0=rng.standard_normal(2000))
        ws = [wall(["verify", p, "--time-limit", "5", "--quiet"]) for _ in range(a.reps)]
        print(f"verify 2000 x 1000 --time-limit 5: wall median {statistics.median(ws):.2f} s over {a.reps}")
        K = np.random.default_rng(1).integers(-3, 4, size=(3, 3, 3, 3))
        c = os.path.join(d, "conv.json")
        with open(c, "w") as f:
            json.dump({"layers": [{"type": "conv", "in_channels": 3, "out_channels": 6, "input_size": [160, 160],
                                   "padding": "zero", "pad": "same", "kernel": np.concatenate([K, -K]).tolist(),
                                   "bias": [0] * 6}]}, f)
        ws = [wall(["verify", c, "--time-limit", "3", "--quiet"]) for _ in range(a.reps)]
        print(f"verify [K; -K] conv 160x160x3 --time-limit 3: wall median {statistics.median(ws):.2f} s over {a.reps}")
    here = os.path.join(os.path.dirname(__file__), "..", "instances", "conv")
    for name in ("same_3to3_32x32.json", "cnn_binary_classifier_28x28.json"):
        big, size = digits(os.path.join(here, name))
        print(f"instances/conv/{name}: largest witness number {big} digits, --json output {size} bytes")
    for name in ("mnist-net_256x2.onnx", "ACASXU_run2a_1_1_batch_2000.onnx", "ACASXU_run2a_2_3_batch_2000.onnx",
                 "ACASXU_run2a_4_5_batch_2000.onnx"):
        path = os.path.join(a.onnx, name)
        if os.path.exists(path):
            big, size = digits(path)
            print(f"{name}: largest witness number {big} digits, --json output {size} bytes")


if __name__ == "__main__":
    main()
