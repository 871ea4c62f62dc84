"""Timing of `injectivize` and of the carry proof (docs/performance.md, "injectivize").

    PYTHONPATH=. python benchmarks/injectivize.py [--repeats 3]

For seeded random dense ReLU networks n -> w -> w -> p (integer weights in
[-3, 3], linear last layer): the construction plus its exact check
(injectivize), the check alone of the written certificate, and `verify` of
the injectivized network (which must find the carry route).  Medians.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import exact_inj
from exact_inj.model import Layer, Network

SIZES = [(4, 16, 2), (16, 64, 4), (64, 256, 8), (256, 512, 16)]


def net_of(n: int, w: int, p: int, seed: int) -> Network:
    rng = random.Random(seed)
    def rows(r, c):
        return [[rng.randint(-3, 3) for _ in range(c)] for _ in range(r)]
    return Network((Layer.from_rows(rows(w, n), [rng.randint(-3, 3) for _ in range(w)]),
                    Layer.from_rows(rows(w, w), [rng.randint(-3, 3) for _ in range(w)]),
                    Layer.from_rows(rows(p, w), [0] * p, "linear")))


def median_time(f, repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print("| n -> w -> w -> p | outputs after | injectivize (build + check) | check alone | verify (route) |")
    print("|---|---|---|---|---|")
    for n, w, p in SIZES:
        net = net_of(n, w, p, seed=n)
        r = exact_inj.injectivize(net)
        t_inj = median_time(lambda: exact_inj.injectivize(net), args.repeats)
        t_chk = median_time(lambda: exact_inj.check(r.certificate), args.repeats)
        t0 = time.perf_counter()
        v = exact_inj.verify(r.network, time_limit=300)
        t_ver = time.perf_counter() - t0
        print(f"| {n} -> {w} -> {w} -> {p} | {r.network.output_dim} | {t_inj:.3f} s | {t_chk:.4f} s | "
              f"{t_ver:.2f} s ({v.status.value}, {v.route}) |", flush=True)


if __name__ == "__main__":
    main()
