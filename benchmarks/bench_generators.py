"""Generators end to end (issue #15): construct, import, verify and check the
DCGAN generators of docs/generators.md, small and full size.

For each variant: the seconds to construct the ONNX model and write it, to
import it (exact), to verify it (api.verify with --time-limit), to write its
certificate as JSON and to check it from that file; medians over --reps (the
full-size runs once: --full-reps).  The irrational-BN small instances of
instances/generators are timed too.

    python benchmarks/bench_generators.py --reps 3                  # small only
    python benchmarks/bench_generators.py --reps 3 --full --time-limit 120
    python benchmarks/bench_generators.py --ranks      # the nested-dissection rank of each full-size C alone
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SMALL = {"latent": 4, "widths": (8, 4)}
FULL = {"latent": 256, "widths": (512, 256, 128, 64)}
VARIANTS = [("keep", {}), ("deficient", {"deficient": True}), ("rgb", {"output": "rgb"})]


def _time(f):
    t = time.perf_counter()
    out = f()
    return time.perf_counter() - t, out


def run_one(path_of, build, time_limit: float, cert_dir: str) -> dict:
    import onnx

    from exact_inj import api
    from exact_inj.io.onnx import load_onnx

    row = {}
    if build is not None:
        row["construct"], model = _time(build)
        row["construct"] += _time(lambda: onnx.save(model, path_of))[0]
    row["import"], net = _time(lambda: load_onnx(path_of))
    row["verify"], v = _time(lambda: api.verify(net, time_limit=time_limit))
    row["verdict"], row["route"] = v.status.value, v.route
    if v.certificate is not None:
        cpath = os.path.join(cert_dir, os.path.basename(path_of) + ".cert.json")
        row["write_cert"] = _time(lambda: Path(cpath).write_text(json.dumps(v.certificate.to_json())))[0]
        row["cert_bytes"] = os.path.getsize(cpath)
        row["check"], res = _time(lambda: api.check(cpath))
        row["check_valid"] = res.valid
    else:
        row["reason"] = v.reason[:160]
    return row


def median_rows(rows: list[dict]) -> dict:
    out = dict(rows[-1])
    for key in ("construct", "import", "verify", "write_cert", "check"):
        vals = [r[key] for r in rows if key in r]
        if vals:
            out[key] = statistics.median(vals)
    return out


def show(name: str, r: dict, reps: int) -> None:
    cells = [f"{r[k]:.2f}" if k in r else "" for k in ("construct", "import", "verify", "check")]
    extra = f"{r.get('cert_bytes', '')}"
    print(f"| {name} | {r['verdict']} ({r['route']}) | {' | '.join(cells)} | {extra} | {reps} |", flush=True)


def time_ranks() -> None:
    """The full-size stages' square C (random kernels of the generator's
    shapes: C_in -> C_in / 4 channels, stride 2, kernel 4, padding 1), built
    from the kernel and shown nonsingular by exact_inj/exact/ndrank.py."""
    import numpy as np

    from exact_inj.exact import ndrank
    from exact_inj.model.kernels import KernelSpec

    rng = np.random.default_rng(0)
    print("| C_in | grid | columns | operator s | elimination s | shown |")
    print("|---|---|---|---|---|---|")
    for cin, N in ((512, 4), (256, 8), (128, 16), (64, 32)):
        K = rng.integers(-8, 9, size=(cin // 4, cin, 4, 4))
        spec = KernelSpec.build(K.tolist(), cin, cin // 4, [N, N], strides=[2, 2], pads=[1, 1], transposed=True)
        t_op, op = _time(lambda: spec.grid_operator(range(spec.in_dim)))
        t_el, (ok, _) = _time(lambda: ndrank.nonsingular(*op))
        print(f"| {cin} | {N}x{N} | {spec.in_dim} | {t_op:.2f} | {t_el:.2f} | {ok} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--full", action="store_true", help="also the full-size generators (minutes)")
    ap.add_argument("--full-reps", type=int, default=1)
    ap.add_argument("--time-limit", type=float, default=120.0)
    ap.add_argument("--only", default="", help="comma-separated variant names to run (default: all)")
    ap.add_argument("--ranks", action="store_true", help="only time the nested-dissection rank of each full-size C")
    args = ap.parse_args()
    if args.ranks:
        time_ranks()
        return
    only = set(filter(None, args.only.split(",")))

    from exact_inj.studies.generator import dcgan_generator

    print("| generator | verdict (route) | construct s | import s | verify s | check s | certificate bytes | runs |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        sizes = [("small", SMALL, args.reps)] + ([("full", FULL, args.full_reps)] if args.full else [])
        for size, dims, reps in sizes:
            for name, kw in VARIANTS:
                label = f"{size}_{name}"
                if only and label not in only:
                    continue
                p = os.path.join(d, f"{label}.onnx")
                rows = [run_one(p, lambda: dcgan_generator(dims["latent"], dims["widths"], **kw), args.time_limit, d)
                        for _ in range(reps)]
                show(label, median_rows(rows), reps)
        for name in ("irrational_keep", "irrational_deficient", "irrational_dead_zone"):
            if only and name not in only:
                continue
            p = str(ROOT / "instances" / "generators" / f"{name}.onnx")
            rows = [run_one(p, None, args.time_limit, d) for _ in range(args.reps)]
            show(name, median_rows(rows), args.reps)


if __name__ == "__main__":
    main()
