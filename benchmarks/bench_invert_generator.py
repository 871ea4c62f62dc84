#!/usr/bin/env python
"""Exact inversion of the full-size generator (issue 16's target), in one process.

    python benchmarks/bench_invert_generator.py [--latents 3] [--onnx full_keep.onnx] [--json OUT] [--per-stage]

Builds the full-size injectivity-keeping generator (``exact-inj construct
dcgan-generator``: latent 256 -> 1 x 16 x 64 x 64, five transposed
convolutions) or loads it from ``--onnx``, draws float32 latents
z ~ N(0, I) from ``numpy.random.default_rng([0, k])``, evaluates y = N(z)
exactly and inverts y with :func:`exact_inj.invert` on the same network
object, one latent after another.  The first inversion factors every
stage's kernel rows (nested dissection modulo a prime); later ones find the
factors kept for that object and pay the lifting, the checker's exact
evaluation and its rank facts from memory.  Each answer must be ``point``
with the latent itself, checked by the solver-free checker before it is
returned.  Prints a Markdown table; ``--json`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from fractions import Fraction

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from exact_inj import invert  # noqa: E402
from exact_inj.certify.peel import MAX_PEEL_ENTRIES, square_rows  # noqa: E402
from exact_inj.exact import ndsolve  # noqa: E402
from exact_inj.io import load_network  # noqa: E402
from exact_inj.io.onnx import network_from_onnx_model  # noqa: E402
from exact_inj.studies.generator import dcgan_generator  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latents", type=int, default=3, help="how many latents to invert, in order (default 3)")
    ap.add_argument("--onnx", help="load the generator from this file instead of building it")
    ap.add_argument("--json", help="write the figures to this file")
    ap.add_argument("--time-limit", type=float, default=600.0)
    ap.add_argument("--no-background", action="store_true",
                    help="factor every stage in the foreground (the peel's background factorisations off), "
                         "for the comparison in docs/performance.md")
    ap.add_argument("--no-toeplitz", action="store_true",
                    help="rank and factor every stage by nested dissection (exact.quadrant off), the route "
                         "before the Toeplitz elimination, for the comparison in docs/performance.md")
    ap.add_argument("--per-stage", action="store_true",
                    help="before inverting, time each kernel stage's factorisation alone, one after another "
                         "(exact.ndrank.rows_factor on all its representative rows; --no-toeplitz for the "
                         "dissection); the inversions then find those factors kept")
    args = ap.parse_args()
    if args.no_toeplitz:
        import exact_inj.exact.quadrant as quadrant  # noqa: PLC0415 - only for this comparison

        quadrant.factor = lambda *a, **k: None  # "not this structure": ndrank falls back to the dissection
    if args.no_background:
        import exact_inj.network.peel as npeel  # noqa: PLC0415 - only for this comparison

        npeel._jobs_ahead = lambda net: []  # the peel then starts no background job

    t = time.perf_counter()
    net = load_network(args.onnx) if args.onnx else network_from_onnx_model(dcgan_generator())
    load_s = time.perf_counter() - t
    print(f"network: {net.input_dim} -> {net.output_dim}, {len(net.layers)} layers, loaded in {load_s:.2f} s",
          flush=True)
    stages = []
    if args.per_stage:
        for i, layer in enumerate(net.layers):
            if layer.in_dim * layer.out_dim <= MAX_PEEL_ENTRIES:
                continue
            reps = square_rows(layer, range(layer.out_dim))[0]
            t = time.perf_counter()
            factor = ndsolve.factor_for(layer.spec, reps)
            took = time.perf_counter() - t
            stages.append({"layer": i, "unknowns": layer.in_dim, "factor_s": round(took, 3),
                           "route": type(factor).__name__, "factor_gb": round(factor.nbytes / 1e9, 3)})
            print(f"stage {i}: {layer.in_dim:,} unknowns, factored in {took:.2f} s ({type(factor).__name__}, "
                  f"{factor.nbytes / 1e9:.2f} GB)", flush=True)
    rows = []
    for k in range(args.latents):
        z = tuple(Fraction(float(v)) for v in
                  np.random.default_rng([0, k]).standard_normal(net.input_dim).astype(np.float32))
        t = time.perf_counter()
        y = net.evaluate(z)
        eval_s = time.perf_counter() - t
        t = time.perf_counter()
        r = invert(net, y, time_limit=args.time_limit)
        inv_s = time.perf_counter() - t
        ok = r.preimage == "point" and r.points == [z]
        rows.append({"latent": k, "evaluate_s": round(eval_s, 3), "invert_s": round(inv_s, 3),
                     "peel_s": r.stats.get("peel_seconds"), "check_s": r.stats.get("check_seconds"),
                     "answer": r.preimage, "latent_back": ok})
        print(f"latent {k}: {r.preimage}, latent back exactly: {ok}, invert {inv_s:.2f} s", flush=True)
        if not ok:
            print(f"  reason: {r.reason}", flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print("\n| latent | exact evaluation s | invert s | of which peel s | check s | answer |\n|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['latent']} | {row['evaluate_s']:.2f} | {row['invert_s']:.2f} | {row['peel_s']:.2f} | "
              f"{row['check_s']:.2f} | {row['answer']}{'' if row['latent_back'] else ' (WRONG)'} |")
    print(f"\nload {load_s:.2f} s; max RSS {rss:.2f} GB; load average {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"options": {"no_toeplitz": args.no_toeplitz, "no_background": args.no_background},
                       "load_s": round(load_s, 3), "max_rss_gb": round(rss, 3), "stages": stages, "rows": rows,
                       "loadavg": os.getloadavg()}, f, indent=1)
    return 0 if all(r["latent_back"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
