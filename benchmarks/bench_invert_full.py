#!/usr/bin/env python
"""Why a float-guided inversion of the full-size generator fails (issue 16).

    exact-inj construct dcgan-generator -o full_keep.onnx
    python benchmarks/bench_invert_full.py full_keep.onnx

Loads the network, evaluates a seeded float32 latent exactly (the time any
candidate preimage's exact check costs), then peels backwards in float64: per
stage, the rows the known output fixes (the linear output stage: all rows; a
[C; -s^2 C] stage: the larger of each pair's two outputs, the positive one)
are solved with SciPy's sparse LU (COLAMD, one step of refinement), the first
stage (more rows than inputs) by least squares.  Prints each step's seconds
and the relative error against the true values, and whether rounding the
recovered latent to float32 gives the latent back.  Nothing here decides
anything: it measures a method exact_inj does not use.  Needs SciPy (not a
dependency of exact_inj; install it to run this).
"""

from __future__ import annotations

import os
import sys
import time
from fractions import Fraction
from math import prod

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import exact_inj  # noqa: E402
from exact_inj.layer.convproof import channel_pairs  # noqa: E402


def stage_rows(layer, out_vals: np.ndarray) -> list[int]:
    """The rows whose pre-activation the known output gives."""
    if layer.activation == "linear":
        return list(range(layer.out_dim))
    per = prod(layer.spec.output_size)
    idx: list[int] = []
    for o, o2 in channel_pairs(layer):
        a, b = out_vals[o * per:(o + 1) * per], out_vals[o2 * per:(o2 + 1) * per]
        # One of the pair is positive (the bias condition); with float noise
        # on the zeros, the larger one is it.
        idx.extend(np.where(a >= b, o * per + np.arange(per), o2 * per + np.arange(per)).tolist())
    return idx


def solve_stage(layer, out_vals: np.ndarray, truth: list[Fraction]) -> np.ndarray:
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    idx = stage_rows(layer, out_vals)
    t0 = time.perf_counter()
    n, rows, cols, vals, _, _, _ = layer.spec.grid_operator(idx)
    # grid_operator's rows are the operator's times one positive factor S:
    # read S off one entry.
    S = float(Fraction(int(vals[0])) / layer.sparse_row(idx[int(rows[0])])[int(cols[0])])
    bias = layer.bias
    rhs = S * (out_vals[idx] - np.array([float(bias[i]) for i in idx]))
    A = sp.csc_matrix((vals.astype(float), (rows, cols)), shape=(len(idx), layer.in_dim))
    t1 = time.perf_counter()
    if len(idx) == layer.in_dim:
        lu = spla.splu(A, permc_spec="COLAMD")
        x = lu.solve(rhs)
        x = x + lu.solve(rhs - A @ x)
    else:
        x = np.linalg.lstsq(A.toarray(), rhs, rcond=None)[0]
    t2 = time.perf_counter()
    tr = np.array([float(v) for v in truth])
    err = np.abs(x - tr).max() / np.abs(tr).max()
    print(f"| {layer.in_dim} -> {layer.out_dim} {layer.activation} | {len(idx)} | {t1 - t0:.2f} | {t2 - t1:.2f} | "
          f"{err:.1e} |", flush=True)
    return x


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else "full_keep.onnx"
    t = time.perf_counter()
    net = exact_inj.load_network(path)
    print(f"import: {time.perf_counter() - t:.2f} s", flush=True)
    z32 = np.random.default_rng(0).standard_normal(net.layers[0].in_dim).astype(np.float32)
    z = [Fraction(float(v)) for v in z32]
    t = time.perf_counter()
    y = net.evaluate(z)
    print(f"exact evaluation of one latent: {time.perf_counter() - t:.2f} s", flush=True)
    values = [z]
    for layer in net.layers[:-1]:
        values.append(layer.apply(values[-1]))
    print("| stage | rows | build s | solve s | relative error |\n|---|---|---|---|---|")
    x = np.array([float(v) for v in y])
    for k in reversed(range(len(net.layers))):
        x = solve_stage(net.layers[k], x, values[k])
    print(f"latent: relative error {np.abs(x - z32).max() / np.abs(z32).max():.1e}; "
          f"rounded to float32 it is the latent: {bool(np.array_equal(x.astype(np.float32), z32))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
