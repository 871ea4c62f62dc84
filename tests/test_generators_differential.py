"""Differential test: small random generator-style ONNX networks (transposed
and strided convolutions, batch normalisation with rational roots, ReLU and
LeakyReLU, a Tanh output) decided by exact_inj and by the independent
brute-force reference of tests/reference_network.py.

The reference side never reads exact_inj's model: its dense matrices come
from tests/test_onnx_ops.py's direct sums of the ONNX definitions, batch
normalisation is folded by hand, and a LeakyReLU of slope a is written as
ReLU(t) - a ReLU(-t).  Required: 0 disagreements and 0 unknown.
"""

from __future__ import annotations

from fractions import Fraction as F
from math import prod

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from reference_network import decide_network as reference_decide  # noqa: E402
from reference_network import evaluate as reference_evaluate  # noqa: E402
from test_onnx_ops import direct_conv  # noqa: E402

from exact_inj import api  # noqa: E402
from exact_inj.io.onnx import network_from_onnx_model  # noqa: E402
from exact_inj.verdict import Status  # noqa: E402

EPS = 2.0 ** -4  # float32-exact; var = r^2 - EPS makes sqrt(var + EPS) = r rational


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)


def dense_of(fn, n):
    """The affine map fn (lists of Fractions) as (W, b), read off unit vectors."""
    b = fn([F(0)] * n)
    cols = [[a - c for a, c in zip(fn([F(int(j == k)) for j in range(n)]), b)] for k in range(n)]
    return [list(r) for r in zip(*cols)], list(b)


def random_case(rng):
    """(onnx model, reference layers): at most 6 ReLUs in the reference form."""
    nodes, inits, ref = [], [], []
    L = int(rng.integers(1, 3))  # input length, one channel
    shape = (1, L)
    name = "x"
    n_relu = 0
    for k in range(int(rng.integers(1, 3))):
        transposed = bool(rng.integers(0, 2)) or k == 0
        cin = shape[0]
        cout = int(rng.integers(1, 3))
        ksz = int(rng.integers(1, 3))
        s = int(rng.integers(1, 3))
        W = rng.integers(-2, 3, size=(cin, cout, ksz) if transposed else (cout, cin, ksz)).astype(np.float32)
        if transposed and cout == 2 and rng.integers(0, 2):
            W[:, 1] = -(s * s) * W[:, 0]  # a [C; -s^2 C] pair
        b = rng.integers(-1, 2, size=cout).astype(np.float32)
        attrs = {"strides": [s]}
        if transposed:
            out_len = s * (shape[1] - 1) + ksz
        else:
            out_len = (shape[1] - ksz) // s + 1
            if out_len < 1:
                continue
        units = cout * out_len
        act = ["Relu", "LeakyRelu", None][int(rng.integers(0, 3))]
        cost = units * (2 if act == "LeakyRelu" else 1 if act == "Relu" else 0)
        if n_relu + cost > 6:
            act, cost = None, 0
        n_relu += cost
        op = "ConvTranspose" if transposed else "Conv"
        nodes.append(helper.make_node(op, [name, f"W{k}", f"b{k}"], [f"c{k}"], **attrs))
        inits += [init(f"W{k}", W), init(f"b{k}", b)]
        x_shape = shape
        fn = (lambda W, b, s, t, xs: lambda v: list(direct_conv(np.array(v, dtype=object).reshape(xs), W, b, [s],
                                                                   [1], [0, 0], t, [0])))(W, b, s, transposed, x_shape)
        Wd, bd = dense_of(fn, prod(x_shape))
        name = f"c{k}"
        if rng.integers(0, 2):  # batch normalisation with rational roots
            g = rng.choice([-2, -1, 1, 2], size=cout).astype(np.float32)
            beta = rng.integers(-1, 2, size=cout).astype(np.float32)
            mu = rng.integers(-1, 2, size=cout).astype(np.float32)
            r = rng.choice([0.5, 1.0, 2.0], size=cout)
            var = (r * r - EPS).astype(np.float32)
            nodes.append(helper.make_node("BatchNormalization", [name, f"g{k}", f"be{k}", f"mu{k}", f"v{k}"],
                                          [f"n{k}"], epsilon=EPS))
            inits += [init(f"g{k}", g), init(f"be{k}", beta), init(f"mu{k}", mu), init(f"v{k}", var)]
            name = f"n{k}"
            fac = [F(float(gg)) / F(float(rr)) for gg, rr in zip(g, r)]
            Wd = [[fac[i // out_len] * v for v in row] for i, row in enumerate(Wd)]
            bd = [fac[i // out_len] * (v - F(float(mu[i // out_len]))) + F(float(beta[i // out_len]))
                  for i, v in enumerate(bd)]
        if act == "Relu":
            nodes.append(helper.make_node("Relu", [name], [f"a{k}"]))
            ref.append((Wd, bd, "relu"))
        elif act == "LeakyRelu":
            a = F(float(np.float32(0.25)))
            nodes.append(helper.make_node("LeakyRelu", [name], [f"a{k}"], alpha=0.25))
            ref.append(([*Wd, *[[-v for v in r] for r in Wd]], [*bd, *[-v for v in bd]], "relu"))
            m = len(Wd)
            ref.append(([[F(int(j == i)) - (a if j == m + i else 0) for j in range(2 * m)] for i in range(m)],
                        [F(0)] * m, "linear"))
        else:
            nodes.append(helper.make_node("Identity", [name], [f"a{k}"]))
            ref.append((Wd, bd, "linear"))
        name = f"a{k}"
        shape = (cout, out_len)
    if rng.integers(0, 2):
        nodes.append(helper.make_node("Tanh", [name], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", [name], ["y"]))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, L])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), ref


def run_cases(count, seed):
    rng = np.random.default_rng(seed)
    stats = {"injective": 0, "not_injective": 0}
    for case in range(count):
        model, ref = random_case(rng)
        net = network_from_onnx_model(model)
        # The two sides compute the same function (checked on a few points).
        for x in ([F(1)] * net.input_dim, [F(k - 1, 3) for k in range(net.input_dim)]):
            assert list(net.evaluate(x)) == list(reference_evaluate(ref, x)), case
        v = api.verify(net, time_limit=60)
        expected, _ = reference_decide(ref)
        assert v.status is not Status.UNKNOWN, (case, v.reason)
        assert v.status.value == expected, (case, v.status, expected, v.reason)
        stats[expected] += 1
    return stats


def test_generator_networks_against_brute_force():
    stats = run_cases(16, seed=0)
    assert stats["injective"] and stats["not_injective"], stats  # both answers exercised


@pytest.mark.slow
def test_generator_networks_against_brute_force_many():
    stats = run_cases(150, seed=1)
    assert stats["injective"] and stats["not_injective"], stats
