"""Benchmark: convolutional layers through the kernel against the dense operator.

Instances come from `exact-inj construct dcgan` (exact_inj/construct.py): a
2-D layer with 2c output channels C and -s^2 C (s = 1/2) on an H x H input,
biases meeting the bias condition, so every one is injective.  Each size is
decided twice in the same run:

- **structured**: the layer as read from JSON (a ConvLayer); the engine
  proves [C; -DC] through the kernel (frequencies mod a prime for periodic
  padding, named rows mod a prime for zero padding);
- **dense**: the same layer turned into its dense operator first (what every
  conv layer was before), decided by the dense structural rule; skipped when
  the operator exceeds the 4M entries the tool densifies, or --dense-max.

The decide time includes the engine's own exact check of the certificate;
the check time (`exact-inj check` of the written certificate, in-process) and
the certificate size in bytes are reported for each route.

Usage:
    python benchmarks/bench_conv.py [--sizes 8,12,16,32,64] [--padding periodic] [--repeats 3]

Prints one line per (size, route) with the medians over the repeats and, for
sizes run both ways, the ratio dense / structured measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import exact_inj  # noqa: E402
from exact_inj.studies import construct
from exact_inj.certify.schema import Certificate  # noqa: E402
from exact_inj.model.conv import MAX_OPERATOR_ENTRIES  # noqa: E402
from exact_inj.io import network_from_json, loads_exact  # noqa: E402
from exact_inj.model import Network  # noqa: E402


def instance(size: int, padding: str, in_channels: int, channels: int) -> Network:
    obj = construct.dcgan(in_channels=in_channels, channels=channels, size=(size, size), kernel=3,
                          s=Fraction(1, 2), padding=padding, bias=True, seed=0)
    return network_from_json(loads_exact(json.dumps(obj)))


def run(net: Network, time_limit: float) -> tuple[float, float, int, str, str]:
    t = time.perf_counter()
    v = exact_inj.verify(net, time_limit=time_limit, milp="none")
    decide = time.perf_counter() - t
    if v.certificate is None:
        return decide, float("nan"), 0, v.status.value, v.route
    text = json.dumps(v.certificate.to_json())
    t = time.perf_counter()
    res = exact_inj.check(Certificate.from_json(loads_exact(text)))
    check = time.perf_counter() - t
    assert res.valid, res.reason
    return decide, check, len(text), v.status.value, v.route


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="8,12,16,32,64", help="input sizes H (H x H), comma-separated")
    ap.add_argument("--padding", choices=("periodic", "zero"), default="periodic")
    ap.add_argument("--in-channels", type=int, default=3)
    ap.add_argument("--channels", type=int, default=6, help="channels of C (the layer has twice as many)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dense-max", type=int, default=MAX_OPERATOR_ENTRIES,
                    help="run the dense route only up to this many operator entries")
    ap.add_argument("--time-limit", type=float, default=600.0)
    args = ap.parse_args()

    print(f"# padding {args.padding}, {args.in_channels} -> 2 x {args.channels} channels, kernel 3, "
          f"median of {args.repeats}")
    print(f"{'H':>4} {'n':>6} {'m':>6} {'route':>10} {'verdict':>10} {'decide s':>9} {'check s':>8} "
          f"{'cert bytes':>11}  ratio dense/structured")
    for size in (int(s) for s in args.sizes.split(",")):
        net = instance(size, args.padding, args.in_channels, args.channels)
        layer = net.layers[0]
        results = {}
        routes = [("structured", net)]
        if layer.dense_entries <= args.dense_max:
            routes.append(("dense", Network((layer.dense(),))))
        for name, model in routes:
            runs = [run(model, args.time_limit) for _ in range(args.repeats)]
            decide = statistics.median(r[0] for r in runs)
            check = statistics.median(r[1] for r in runs)
            results[name] = decide
            ratio = f"{results['dense'] / results['structured']:.1f}x" if name == "dense" else ""
            print(f"{size:>4} {layer.in_dim:>6} {layer.out_dim:>6} {name:>10} {runs[0][3]:>10} {decide:>9.3f} "
                  f"{check:>8.3f} {runs[0][2]:>11}  {ratio}", flush=True)


if __name__ == "__main__":
    main()
