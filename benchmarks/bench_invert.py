"""Exact inversion of injective generators: the layer-by-layer peel against
the case split (docs/performance.md, "Exact inversion (invert)").

    PYTHONPATH=. python benchmarks/bench_invert.py --net random --latents 5
    PYTHONPATH=. python benchmarks/bench_invert.py --net gan-mlp --latents 5     # needs torch (the gan extra)
    PYTHONPATH=. python benchmarks/bench_invert.py --net gan-conv --latents 5

Networks (seeded):
* ``random``: latent 8 -> ReLU([C1; -C1]) 32 -> ReLU([C2; -C2]) 64 -> linear 64,
  C1 16 x 8, C2 32 x 32 and the last 64 x 64 with float32 N(0, 1/fan_in) entries
  (taken at their exact binary value), biases likewise;
* ``gan-mlp`` / ``gan-conv``: benchmarks/gan_digits.py's injective generators
  (s^2 = 1) at torch's seeded initialisation, through its ONNX export.

For each of ``--latents`` float32 latents z (N(0, I), seeded), y = N(z) is
computed exactly and ``exact_inj.invert(net, y)`` is timed with the peel
(default) and without it (``use_peel=False``: the case split alone); both
must return z.  Prints one line per call and the medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from fractions import Fraction

import numpy as np

from exact_inj.model import Layer, Network
from exact_inj.network.inverse import invert


def random_generator(seed: int = 0) -> Network:
    rng = np.random.default_rng(seed)

    def f32(shape, fan_in):
        return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)

    def pair(n_in, n_u):
        C, b = f32((n_u, n_in), n_in), f32(n_u, n_in)
        return Layer(np.vstack([C, -C]), np.concatenate([b, -b]))  # exact float32 values

    return Network((pair(8, 16), pair(32, 32), Layer(f32((64, 64), 64), f32(64, 64), "linear")),
                   name="random [C; -C] 8-32-64-64")


def gan_generator(arch: str, seed: int = 0) -> Network:
    sys.path.insert(0, "benchmarks")
    import gan_digits  # noqa: PLC0415 - optional (torch)

    torch = gan_digits._torch()
    torch.manual_seed(seed)
    G, _, _ = gan_digits.build("injective", arch=arch)
    G = torch.nn.Sequential(*list(G)[:-1])  # before tanh, as gan_digits compares
    net, _ = gan_digits.to_exact_network(G)
    return net


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--net", choices=("random", "gan-mlp", "gan-conv"), default="random")
    p.add_argument("--latents", type=int, default=5)
    p.add_argument("--modes", default="peel,search", help="peel, search, or both (comma-separated)")
    p.add_argument("--time-limit", type=float, default=120.0)
    a = p.parse_args(argv)
    net = random_generator() if a.net == "random" else gan_generator(a.net.split("-")[1])
    print(f"{a.net}: " + ", ".join(f"{type(L).__name__} {L.in_dim}->{L.out_dim} {L.activation}" for L in net.layers))
    rng = np.random.default_rng(1)
    times: dict[str, list[float]] = {}
    for i in range(a.latents):
        z = tuple(Fraction(float(t)) for t in rng.standard_normal(net.input_dim).astype(np.float32))
        y = net.evaluate(z)
        for mode in a.modes.split(","):
            t0 = time.perf_counter()
            r = invert(net, y, time_limit=a.time_limit, use_peel=(mode == "peel"), use_verify=False)
            dt = time.perf_counter() - t0
            ok = r.preimage == "point" and r.points == [z]
            times.setdefault(mode, []).append(dt)
            print(f"  latent {i} {mode:6s}: {r.preimage} {'= z' if ok else '!= z'} in {dt:.3f} s "
                  f"(certificate {r.certificate['kind'] if r.certificate else None}, "
                  f"check {r.stats.get('check_seconds', 0):.3f} s, nodes {r.stats.get('nodes', 0)})", flush=True)
            if not ok:
                return 1
    for mode, ts in times.items():
        print(f"{mode}: median {statistics.median(ts):.3f} s over {len(ts)} latents (max {max(ts):.3f} s)")
    if len(times) == 2:
        m = [statistics.median(ts) for ts in times.values()]
        print(f"ratio search/peel: {m[1] / m[0]:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
