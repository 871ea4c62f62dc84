"""What `exact-inj check` costs per byte of certificate, and per pair of end-to-end pieces.

The constants behind docs/cli.md ("Limits"): for each instance certificate, the
median over --repeats of reading it (JSON + schema parse) and of checking it,
in microseconds per kilobyte; and the cost of the one step that is not linear
in the certificate's size, the separation test of an end-to-end proof, per
pair of pieces, so that max_pieces bounds it (R pieces: R(R+1)/2 pairs).

    python benchmarks/bench_check_cost.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

INSTANCES = ["fig2_not_injective.json", "quickstart.json", "gaussian_n3_m20_injective.json", "fig2_injective.json",
             "dcgan_1d_injective.json", "conv/dcgan_periodic_32x32.json", "conv/dcgan_zero_16x16.json",
             "conv/cnn_binary_classifier_28x28.json", "conv/same_3to3_32x32.json",
             "networks/relu_identity_after_fig2.json", "networks/b_minus_b_difference.json",
             "networks/deep_bminusb_15relu.json", "conv/two_dcgan_layers_32x32.json"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    import exact_inj
    from exact_inj.api import load_certificate
    from exact_inj.certify import check
    from exact_inj.io.load import load_network
    from exact_inj.model.pieces import separated

    print("| certificate | kind | bytes | read ms | check ms | read+check us/kB |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        for name in INSTANCES:
            v = exact_inj.verify(load_network(ROOT / "instances" / name), time_limit=120)
            if v.certificate is None:
                print(f"| {name} | (unknown) | | | | |")
                continue
            path = Path(d) / "c.json"
            path.write_text(json.dumps(v.certificate.to_json(), separators=(",", ":")) + "\n")
            size = path.stat().st_size
            reads, checks = [], []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                cert = load_certificate(path)
                t1 = time.perf_counter()
                res = check(cert)
                t2 = time.perf_counter()
                assert res.valid, res.reason
                reads.append(t1 - t0)
                checks.append(t2 - t1)
            obj = v.certificate.to_json()
            kind = obj["proof"]["kind"] if "proof" in obj else "witness"
            r, c = statistics.median(reads), statistics.median(checks)
            print(f"| {name} | {kind} | {size:,} | {r * 1e3:.2f} | {c * 1e3:.2f} | {(r + c) * 1e6 / (size / 1000):.0f} |")

    # The separation test: pieces with m outputs, bounds as flint rationals (as in the checker).
    import flint

    for m in (1, 4, 16):
        boxes = [[(flint.fmpq(i), flint.fmpq(i + 2)) for _ in range(m)] for i in range(400)]  # overlapping
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            k = 0
            for i in range(len(boxes)):
                for j in range(i, len(boxes)):
                    k += separated(boxes[i], boxes[j])
            times.append((time.perf_counter() - t0) / (len(boxes) * (len(boxes) + 1) / 2))
        print(f"separation test, {m} outputs: {statistics.median(times) * 1e6:.2f} us per pair of pieces "
              f"(max_pieces = 2000: {statistics.median(times) * 2000 * 2001 / 2:.1f} s)")


if __name__ == "__main__":
    main()
