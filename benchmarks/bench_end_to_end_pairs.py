"""Which pairs of end-to-end pieces need a certificate: cost before and after open_pairs (issue #18).

An end-to-end proof lists a certificate for every pair of pieces i <= j that
its output bounds do not separate (docs/certificates.md).  The checker used
to test every pair on every output: R(R+1)/2 x p comparisons.  It now sorts
each output's bounds once and collects separated pieces as R-bit masks
(exact_inj.certify.network.open_pairs).  Worst case for the old loop: boxes
that overlap on every output but the last, where each pair is separated, so
nothing is listed and the certificate holds only the R x p bounds.

    python benchmarks/bench_end_to_end_pairs.py --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import flint

    from exact_inj.certify.network import open_pairs
    from exact_inj.model.pieces import separated

    def pairwise(box):
        R = len(box)
        return [(i, j) for i in range(R) for j in range(i, R) if not separated(box[i], box[j])]

    print("| R pieces | p outputs | R p bounds | pair by pair s | open_pairs s | ratio |")
    print("|---|---|---|---|---|---|")
    for R, p in ((500, 1), (500, 16), (500, 64), (2000, 1), (2000, 16), (2000, 64)):
        box = [[(flint.fmpq(0), flint.fmpq(1))] * (p - 1) + [(flint.fmpq(3 * i), flint.fmpq(3 * i + 1))]
               for i in range(R)]
        fast = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            got = list(open_pairs(box))
            fast.append(time.perf_counter() - t0)
        assert got == [(i, i) for i in range(R)]
        # The old loop is timed once above 10 s of expected work (it is the slow side).
        slow = []
        for _ in range(args.repeats if R * R * p < 2e7 else 1):
            t0 = time.perf_counter()
            old = pairwise(box)
            slow.append(time.perf_counter() - t0)
        assert old == got
        s, f = statistics.median(slow), statistics.median(fast)
        print(f"| {R:,} | {p} | {R * p:,} | {s:.2f} | {f:.3f} | {s / f:.0f}x |")


if __name__ == "__main__":
    main()
