"""A real network and real weight files in the repository, so that CI covers them
without ../shared (issue #18, item 7).

- tests/data/ACASXU_run2a_1_1_batch_2000.onnx (56 kB, VNN-COMP ACAS Xu): imported
  exactly and compared with onnxruntime (an independent evaluator) on seeded
  inputs, then decided through the CLI: not injective on R^5 by the fold route,
  with a witness replayed here by plain exact evaluation.
- a safetensors file written with safetensors.numpy (no torch), read back
  exactly and compared with numpy's evaluation at the float32 weights'
  exact values.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from fuzzing import run_cli

DATA = Path(__file__).resolve().parent / "data"
ACAS = DATA / "ACASXU_run2a_1_1_batch_2000.onnx"


def _exact_eval(net, x):
    h = [Fraction(v) for v in x]
    for L in net.layers:
        pre = [sum((a * v for a, v in zip(row, h)), b) for row, b in zip(L.weight, L.bias)]
        h = [max(p, Fraction(0)) for p in pre] if L.activation == "relu" else pre
    return h


def test_acas_xu_matches_onnxruntime():
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from exact_inj.io.load import load_network

    net = load_network(ACAS)
    assert net.input_dim == 5 and net.output_dim == 5 and len(net.layers) >= 6
    sess = ort.InferenceSession(str(ACAS), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    rng = np.random.default_rng(18)
    worst = 0.0
    for _ in range(20):
        x = rng.uniform(-0.5, 0.5, size=5).astype(np.float32)
        want = sess.run(None, {inp.name: x.reshape(shape)})[0].reshape(-1).astype(np.float64)
        got = np.array([float(v) for v in _exact_eval(net, [Fraction(float(v)) for v in x])])
        scale = max(1.0, float(np.abs(want).max()))
        worst = max(worst, float(np.abs(got - want).max()) / scale)
    # onnxruntime computes in float32; the exact evaluation is the true value.
    assert worst < 1e-4, worst


def test_acas_xu_fold_route_through_the_cli(tmp_path):
    pytest.importorskip("onnx")
    from exact_inj.io.load import load_network

    out = tmp_path / "cert.json"
    rc, stdout, err, secs = run_cli(["verify", str(ACAS), "--json", "--quiet", "--certificate", str(out),
                                     "--time-limit", "120"])
    assert rc == 1, err
    res = json.loads(stdout)
    assert res["verdict"] == "not_injective", res
    cert = json.loads(out.read_text())
    x = [Fraction(v) for v in cert["witness"]["x"]]
    y = [Fraction(v) for v in cert["witness"]["y"]]
    net = load_network(ACAS)
    assert x != y and _exact_eval(net, x) == _exact_eval(net, y)
    rc, _, err, _ = run_cli(["check", str(out)])
    assert rc == 0, err


def test_safetensors_file_without_torch(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    from exact_inj.io.load import load_network

    rng = np.random.default_rng(7)
    tensors = {"0.weight": rng.standard_normal((6, 3)).astype(np.float32),
               "0.bias": rng.standard_normal(6).astype(np.float32),
               "2.weight": rng.standard_normal((4, 6)).astype(np.float32),
               "2.bias": rng.standard_normal(4).astype(np.float32)}
    path = tmp_path / "mlp.safetensors"
    safetensors_numpy.save_file(tensors, str(path))
    net = load_network(path)
    assert [L.activation for L in net.layers] == ["relu", "linear"]
    # Every weight is the float32's exact value.
    assert net.layers[0].weight[2][1] == Fraction(float(tensors["0.weight"][2, 1]))
    x = rng.standard_normal(3)
    h = np.maximum(tensors["0.weight"].astype(np.float64) @ x + tensors["0.bias"], 0)
    want = tensors["2.weight"].astype(np.float64) @ h + tensors["2.bias"]
    got = np.array([float(v) for v in _exact_eval(net, [Fraction(float(v)) for v in x])])
    assert np.allclose(got, want, rtol=1e-12, atol=1e-12)
    rc, out, err, _ = run_cli(["verify", str(path), "--quiet", "--time-limit", "60"])
    assert rc in (0, 1), err


def test_acas_xu_fold_route():
    # The fold route itself (the CLI answers by an earlier route, singular_piece).
    pytest.importorskip("onnx")
    import time

    from exact_inj.io.load import load_network
    from exact_inj.model import Domain
    from exact_inj.network.folds import fold_witness

    net = load_network(ACAS)
    pair = fold_witness(net, Domain.reals(), seed=0, deadline=time.perf_counter() + 60)
    assert pair is not None, "no fold witness on R^5"
    x, y = pair
    assert x != y and _exact_eval(net, x) == _exact_eval(net, y)
