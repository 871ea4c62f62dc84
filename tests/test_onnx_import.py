"""ONNX import: the shared real networks, hand-built graphs (Conv included), and errors.

Every loaded network is compared with onnx's own reference evaluator on seeded
random inputs.  The exact network uses the file's weights at their exact values
with exact arithmetic, the evaluator rounds in the model's float type, so they
agree within that rounding (a relative tolerance), not bit for bit.
"""

from __future__ import annotations

import os
import time
from fractions import Fraction as F
from itertools import product
from math import prod

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from exact_inj.model.conv import MAX_OPERATOR_ENTRIES, ConvLayer, ConvSpec  # noqa: E402
from exact_inj.io import InputError, load_network  # noqa: E402
from exact_inj.model import Layer  # noqa: E402
from exact_inj.io.onnx import load_onnx, network_from_onnx_model  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data", "onnx"))

# name -> (input dim, [(out dim, activation), ...])
ACAS = (5, [(50, "relu")] * 6 + [(5, "linear")])
EXPECTED = {
    "ACASXU_run2a_1_1_batch_2000.onnx": ACAS,
    "ACASXU_run2a_2_3_batch_2000.onnx": ACAS,
    "ACASXU_run2a_4_5_batch_2000.onnx": ACAS,
    "mnist-net_256x2.onnx": (784, [(256, "relu"), (256, "relu"), (10, "linear")]),
    "test_nano.onnx": (1, [(1, "relu")]),
    "test_tiny.onnx": (1, [(1, "relu"), (1, "linear")]),
    "test_small.onnx": (1, [(2, "relu"), (2, "relu"), (1, "linear")]),
}


def graph_input(model):
    inits = {t.name for t in model.graph.initializer}
    (inp,) = [i for i in model.graph.input if i.name not in inits]
    shape = [d.dim_value if d.dim_value > 0 else 1 for d in inp.type.tensor_type.shape.dim]
    dtype = helper.tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type)
    return inp.name, shape, dtype


def assert_matches_reference(net, model, trials=3, seed=0, scale=1.0, rtol=1e-4):
    name, shape, dtype = graph_input(model)
    ev = ReferenceEvaluator(model)
    rng = np.random.default_rng(seed)
    for _ in range(trials):
        x = (rng.standard_normal(shape) * scale).astype(dtype)
        ref = np.asarray(ev.run(None, {name: x})[0], dtype=np.float64).ravel()
        got = net.evaluate([F(float(v)) for v in x.ravel()])
        assert all(type(v) is F for v in got)
        got = np.array([float(v) for v in got])
        assert got.shape == ref.shape
        tol = rtol * (1 + np.abs(ref).max())
        assert np.abs(got - ref).max() <= tol, (got, ref)


def check_file(path):
    net = load_onnx(path)
    n_in, layers = EXPECTED[os.path.basename(path)]
    assert net.input_dim == n_in
    assert [(L.out_dim, L.activation) for L in net.layers] == layers
    model = onnx.load(path)
    assert_matches_reference(net, model)
    return net


@pytest.mark.parametrize("name", ["test_nano.onnx", "test_tiny.onnx", "test_small.onnx"])
def test_bundled_tiny_nets(name):
    net = check_file(os.path.join(DATA, name))
    assert net.name == name[:-5]


def shared_files():
    if not os.path.isdir(SHARED):
        return []
    return sorted(f for f in os.listdir(SHARED) if f.endswith(".onnx"))


@pytest.mark.skipif(not os.path.isdir(SHARED), reason="../shared/data/onnx is absent")
@pytest.mark.parametrize("name", shared_files() or ["(none)"])
def test_shared_networks(name):
    if name not in EXPECTED:
        pytest.fail(f"unexpected file {name} in {SHARED}: add its dimensions to EXPECTED")
    check_file(os.path.join(SHARED, name))


@pytest.mark.skipif(not os.path.isdir(SHARED), reason="../shared/data/onnx is absent")
def test_acas_on_normalised_inputs():
    # ACAS Xu's inputs are normalised to about [-0.5, 0.5]: there many ReLUs
    # switch, unlike far out where the output is often constant.
    for name in shared_files():
        if name.startswith("ACASXU"):
            path = os.path.join(SHARED, name)
            assert_matches_reference(load_onnx(path), onnx.load(path), trials=5, seed=1, scale=0.3)


def test_load_network_dispatches_onnx():
    net = load_network(os.path.join(DATA, "test_small.onnx"))
    assert [L.out_dim for L in net.layers] == [2, 2, 1]


def test_exact_weights():
    # 0.1 as float32 is 13421773 / 2^27, and that is what the layer holds.
    model = make_model(
        [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")],
        [numpy_helper.from_array(np.array([[0.1]], dtype=np.float32), "W")],
        [1, 1], [1, 1],
    )
    net = network_from_onnx_model(model)
    assert net.layers[0].weight == ((F(13421773, 2**27),),)
    assert net.layers[0].activation == "linear"


# --------------------------------------------------------------------------
# Hand-built graphs
# --------------------------------------------------------------------------


def make_model(nodes, inits, in_shape, out_shape, dtype=TensorProto.FLOAT, opset=17):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", dtype, in_shape)],
        [helper.make_tensor_value_info("y", dtype, out_shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def arr(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def init(name, a):
    return numpy_helper.from_array(a, name)


def test_affine_chain_folds_exactly():
    # Sub(const), Flatten, MatMul, Add, Relu, Gemm(alpha, beta, transB), Identity,
    # Reshape, MatMul, Add: two layers, the affine ops folded.
    rng = np.random.default_rng(1)
    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["a"], name="norm"),
        helper.make_node("Flatten", ["a"], ["b"], name="flat", axis=1),
        helper.make_node("MatMul", ["b", "W1"], ["c"], name="mm1"),
        helper.make_node("Add", ["c", "b1"], ["d"], name="add1"),
        helper.make_node("Relu", ["d"], ["e"], name="relu1"),
        helper.make_node("Gemm", ["e", "W2", "b2"], ["f"], name="gemm", alpha=0.5, beta=2.0, transB=1),
        helper.make_node("Identity", ["f"], ["g"], name="id"),
        helper.make_node("Reshape", ["g", "shape"], ["h"], name="rs"),
        helper.make_node("MatMul", ["h", "W3"], ["i"], name="mm3"),
        helper.make_node("Add", ["i", "b3"], ["y"], name="add3"),
    ]
    inits = [
        init("mean", arr(rng, 1, 2, 1, 3)),
        init("W1", arr(rng, 6, 8)),
        init("b1", arr(rng, 8)),
        init("W2", arr(rng, 5, 8)),
        init("b2", arr(rng, 5)),
        init("shape", np.array([-1], dtype=np.int64)),
        init("W3", arr(rng, 5, 4)),
        init("b3", arr(rng, 4)),
    ]
    model = make_model(nodes, inits, [1, 2, 1, 3], [4])
    net = network_from_onnx_model(model)
    assert [(L.in_dim, L.out_dim, L.activation) for L in net.layers] == [(6, 8, "relu"), (8, 4, "linear")]
    assert_matches_reference(net, model, trials=5)
    # The first layer is exactly W1^T (x - mean) + b1 in rationals.
    W1 = [[F(float(v)) for v in row] for row in numpy_helper.to_array(inits[1]).tolist()]
    mean = [F(float(v)) for v in numpy_helper.to_array(inits[0]).ravel()]
    b1 = [F(float(v)) for v in numpy_helper.to_array(inits[2])]
    L0 = net.layers[0]
    for j in range(8):
        assert L0.weight[j] == tuple(W1[i][j] for i in range(6))
        assert L0.bias[j] == b1[j] - sum(W1[i][j] * mean[i] for i in range(6))


def test_float64_model_matches_tightly():
    rng = np.random.default_rng(2)
    nodes = [
        helper.make_node("Gemm", ["x", "W", "b"], ["a"], name="g1"),
        helper.make_node("Relu", ["a"], ["r"], name="r1"),
        helper.make_node("Gemm", ["r", "V"], ["y"], name="g2", transB=1, alpha=-1.5),
    ]
    inits = [init("W", arr(rng, 3, 4, dtype=np.float64)), init("b", arr(rng, 1, 4, dtype=np.float64)),
             init("V", arr(rng, 2, 4, dtype=np.float64))]
    model = make_model(nodes, inits, [1, 3], [1, 2], dtype=TensorProto.DOUBLE)
    net = network_from_onnx_model(model)
    assert_matches_reference(net, model, rtol=1e-12)


def test_gemm_transposes_and_constant_left_operand():
    rng = np.random.default_rng(3)
    nodes = [
        # x is (3, 1); transA makes it (1, 3)
        helper.make_node("Gemm", ["x", "W"], ["a"], name="g1", transA=1),
        helper.make_node("Relu", ["a"], ["r"], name="r1"),
        # constant A on the left, the chain (1, 4) transposed to (4, 1) by transB
        helper.make_node("Gemm", ["A", "r", "C"], ["y"], name="g2", transB=1, beta=0.25),
    ]
    inits = [init("W", arr(rng, 3, 4)), init("A", arr(rng, 2, 4)), init("C", arr(rng, 2, 1))]
    model = make_model(nodes, inits, [3, 1], [2, 1])
    net = network_from_onnx_model(model)
    assert [(L.in_dim, L.out_dim) for L in net.layers] == [(3, 4), (4, 2)]
    assert_matches_reference(net, model)


def test_matmul_batched_and_left_operand():
    rng = np.random.default_rng(4)
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["a"], name="m1"),  # (2, 3) @ (3, 4): batch of 2 rows
        helper.make_node("Relu", ["a"], ["r"], name="r1"),
        helper.make_node("MatMul", ["V", "r"], ["b"], name="m2"),  # (5, 2) @ (2, 4)
        helper.make_node("Sub", ["c", "b"], ["y"], name="s"),  # const - chain
    ]
    inits = [init("W", arr(rng, 3, 4)), init("V", arr(rng, 5, 2)), init("c", arr(rng, 4))]
    model = make_model(nodes, inits, [2, 3], [5, 4])
    net = network_from_onnx_model(model)
    assert [(L.in_dim, L.out_dim) for L in net.layers] == [(6, 8), (8, 20)]
    assert_matches_reference(net, model)


def test_constant_nodes_and_broadcast_growth():
    rng = np.random.default_rng(5)
    W = arr(rng, 2, 3)
    nodes = [
        helper.make_node("Constant", [], ["W"], name="cw", value=numpy_helper.from_array(W)),
        helper.make_node("Constant", [], ["k"], name="ck", value_floats=[0.5, -1.0, 2.0]),
        helper.make_node("Constant", [], ["z"], name="cz", value_float=0.0),
        helper.make_node("Add", ["k", "z"], ["k2"], name="fold"),  # folded exactly
        helper.make_node("MatMul", ["x", "W"], ["a"], name="m"),  # (2,) @ (2, 3) -> (3,)
        helper.make_node("Add", ["a", "big"], ["b"], name="grow"),  # (3,) + (2, 3) -> (2, 3)
        helper.make_node("Sub", ["b", "k2"], ["y"], name="s"),
    ]
    model = make_model(nodes, [init("big", arr(rng, 2, 3))], [2], [2, 3])
    net = network_from_onnx_model(model)
    assert (net.input_dim, net.output_dim) == (2, 6)
    assert_matches_reference(net, model)


def test_selection_form_negation_and_growth():
    # On the raw input (before any product) the map is a selection: check that
    # broadcasting growth and "constant - chain" stay exact there too.
    rng = np.random.default_rng(9)
    nodes = [
        helper.make_node("Add", ["x", "big"], ["a"], name="grow"),  # (2,) + (3, 2) -> (3, 2)
        helper.make_node("Sub", ["c", "a"], ["b"], name="flip"),  # c - chain
        helper.make_node("Relu", ["b"], ["r"], name="relu"),
        helper.make_node("Relu", ["r"], ["r2"], name="relu_again"),  # relu(relu(v)) adds no layer
        helper.make_node("Flatten", ["r2"], ["f"], name="flat", axis=0),
        helper.make_node("MatMul", ["f", "W"], ["y"], name="mm"),
    ]
    inits = [init("big", arr(rng, 3, 2)), init("c", arr(rng, 2)), init("W", arr(rng, 6, 2))]
    model = make_model(nodes, inits, [2], [1, 2])
    net = network_from_onnx_model(model)
    assert [(L.in_dim, L.out_dim, L.activation) for L in net.layers] == [(2, 6, "relu"), (6, 2, "linear")]
    assert net.layers[0].weight[0] == (F(-1), F(0)) and net.layers[0].weight[3] == (F(0), F(-1))
    assert_matches_reference(net, model, trials=5)


def conv_model(x_shape, w, b, y_shape, **attrs):
    nodes = [helper.make_node("Conv", ["x", "W"] + (["B"] if b is not None else []), ["c"], name="conv", **attrs),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Flatten", ["r"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "V"], ["y"], name="head", transB=1)]
    rng = np.random.default_rng(6)
    inits = [init("W", w), init("V", arr(rng, 3, prod(y_shape)))] + ([init("B", b)] if b is not None else [])
    return make_model(nodes, inits, x_shape, [1, 3])


@pytest.mark.parametrize(
    "x_shape, k, attrs, conv_out",
    [
        ([1, 2, 5, 4], (3, 2, 3, 3), {"pads": [1, 1, 1, 1]}, [3, 5, 4]),
        ([1, 2, 5, 4], (3, 2, 2, 3), {"pads": [0, 2, 1, 0]}, [3, 5, 4]),
        ([1, 1, 4, 4], (2, 1, 2, 2), {"auto_pad": "SAME_UPPER"}, [2, 4, 4]),
        ([1, 1, 4, 4], (2, 1, 2, 2), {"auto_pad": "SAME_LOWER", "kernel_shape": [2, 2]}, [2, 4, 4]),
        ([1, 2, 4, 4], (2, 2, 3, 3), {}, [2, 2, 2]),
        ([1, 3, 7], (2, 3, 3), {"pads": [1, 2], "strides": [1], "dilations": [1], "group": 1}, [2, 8]),
        ([1, 1, 6], (4, 1, 2), {"auto_pad": "VALID"}, [4, 5]),
    ],
)
@pytest.mark.parametrize("bias", [True, False])
def test_conv_models(x_shape, k, attrs, conv_out, bias):
    rng = np.random.default_rng(8)
    w = arr(rng, *k)
    b = arr(rng, k[0]) if bias else None
    model = conv_model(x_shape, w, b, conv_out, **attrs)
    net = network_from_onnx_model(model)
    assert [(L.in_dim, L.out_dim, L.activation) for L in net.layers] == [
        (prod(x_shape), prod(conv_out), "relu"), (prod(conv_out), 3, "linear")]
    # Conv -> Relu stays a structured ConvLayer; the Gemm after it is dense.
    assert [type(L) for L in net.layers] == [ConvLayer, Layer]
    assert_matches_reference(net, model, trials=4)


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


def expect_error(model, *fragments):
    with pytest.raises(InputError) as info:
        network_from_onnx_model(model, "m.onnx")
    text = str(info.value)
    assert "\n" not in text and text.startswith("m.onnx: ")
    for f in fragments:
        assert f in text, text
    return text


def test_unsupported_op_names_op_and_node():
    nodes = [helper.make_node("MatMul", ["x", "W"], ["a"], name="mm"),
             helper.make_node("Softplus", ["a"], ["y"], name="squash")]
    model = make_model(nodes, [init("W", np.ones((2, 2), np.float32))], [1, 2], [1, 2])
    expect_error(model, "unsupported op Softplus", "'squash'")


def test_unsupported_op_unnamed_node():
    nodes = [helper.make_node("Cos", ["x"], ["y"])]
    expect_error(make_model(nodes, [], [1, 2], [1, 2]), "unsupported op Cos", "#0 (unnamed)")


def test_unsupported_conv_variants():
    w = np.ones((1, 1, 2, 2), np.float32)
    # Strides and dilations are supported (tests/test_onnx_ops.py); malformed ones are not.
    for attrs, frag in [({"strides": [0, 2]}, "strides = [0, 2]"), ({"dilations": [2]}, "dilations"),
                        ({"pads": [1, 1]}, "pads has 2 entries")]:
        expect_error(conv_model([1, 1, 4, 4], w, None, [1, 3, 3], **attrs), "Conv node 'conv'", frag)
    w2 = np.ones((2, 1, 2, 2), np.float32)
    expect_error(conv_model([1, 2, 4, 4], w2, None, [2, 3, 3], group=2), "group = 2")


def test_unknown_attribute_refused():
    nodes = [helper.make_node("Add", ["x", "c"], ["y"], name="legacy", broadcast=1)]
    expect_error(make_model(nodes, [init("c", np.ones(2, np.float32))], [2], [2]), "attribute 'broadcast'")


def test_branching_graph_refused():
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="r"),
             helper.make_node("Add", ["x", "r"], ["y"], name="residual")]
    expect_error(make_model(nodes, [], [2], [2]), "'residual'", "used by node 'r'", "single chain")


def test_two_inputs_refused():
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "z"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]), helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    expect_error(helper.make_model(graph), "exactly one non-constant input, found 2")


def test_nonfinite_weight_refused():
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")]
    W = np.array([[1.0, np.nan]], np.float32)
    expect_error(make_model(nodes, [init("W", W)], [1], [2]), "constant 'W'", "nan")


def test_output_not_end_of_chain():
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="r"),
             helper.make_node("Identity", ["c"], ["y"], name="const_out")]
    expect_error(make_model(nodes, [init("c", np.ones(2, np.float32))], [2], [2]), "not the end of the chain")


def test_symbolic_inner_dimension_refused():
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "M"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "M"])])
    expect_error(helper.make_model(graph), "non-fixed dimension 1")


def test_symbolic_batch_dimension_is_one():
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])])
    net = network_from_onnx_model(helper.make_model(graph))
    assert [(L.in_dim, L.out_dim, L.activation) for L in net.layers] == [(3, 3, "relu")]


def test_corrupt_file(tmp_path):
    p = tmp_path / "bad.onnx"
    p.write_bytes(b"\x08\x07garbage that is not protobuf \xff\xfe")
    with pytest.raises(InputError) as info:
        load_network(str(p))
    assert str(info.value).startswith(str(p) + ": ") and "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_network(str(tmp_path / "none.onnx"))


def test_conv_relu_conv_chain():
    rng = np.random.default_rng(10)
    nodes = [
        helper.make_node("Conv", ["x", "K1", "B1"], ["a"], name="c1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["r1"], name="r1"),
        helper.make_node("Conv", ["r1", "K2"], ["b"], name="c2", kernel_shape=[2, 2]),
        helper.make_node("Relu", ["b"], ["r2"], name="r2"),
        helper.make_node("Reshape", ["r2", "s"], ["y"], name="flat"),
    ]
    inits = [init("K1", arr(rng, 3, 2, 3, 3)), init("B1", arr(rng, 3)), init("K2", arr(rng, 2, 3, 2, 2)),
             init("s", np.array([1, -1], dtype=np.int64))]
    model = make_model(nodes, inits, [1, 2, 4, 5], [1, 24])
    net = network_from_onnx_model(model)
    assert [(L.in_dim, L.out_dim, L.activation) for L in net.layers] == [(40, 60, "relu"), (60, 24, "relu")]
    assert_matches_reference(net, model, trials=4)


# --------------------------------------------------------------------------
# Structured convolutions: a Conv that starts a layer and is followed only by
# a per-channel bias and a Relu (or the end) stays a ConvLayer
# --------------------------------------------------------------------------


def exact_array(a):
    """An object array of the exact values of a float array."""
    out = np.empty(a.size, dtype=object)
    out[:] = [F(float(v)) for v in a.ravel()]
    return out.reshape(a.shape)


def direct_conv(x, w, b, pads):
    """Zero-padded stride-1 cross-correlation of x (C, *N) with w (O, C, *k), in Fractions,
    written independently of exact_inj.model.conv: y[o, p] = b[o] + sum(w[o] * window at p)."""
    N, k = x.shape[1:], w.shape[2:]
    xp = np.full((x.shape[0], *(n + a + e for n, (a, e) in zip(N, pads))), F(0), dtype=object)
    xp[(slice(None), *(slice(a, a + n) for n, (a, _) in zip(N, pads)))] = x
    out_size = tuple(xp.shape[1 + t] - k[t] + 1 for t in range(len(N)))
    y = np.empty((w.shape[0], *out_size), dtype=object)
    for o in range(w.shape[0]):
        for p in product(*map(range, out_size)):
            window = xp[(slice(None), *(slice(p[t], p[t] + k[t]) for t in range(len(N))))]
            y[(o, *p)] = b[o] + sum((w[o] * window).ravel().tolist(), F(0))
    return y


def direct_operator(w, in_shape, pads):
    """The convolution's matrix, column j = direct_conv of the j-th unit vector."""
    n = prod(in_shape)
    zero = [F(0)] * w.shape[0]
    cols = []
    for j in range(n):
        e = np.full(n, F(0), dtype=object)
        e[j] = F(1)
        cols.append(direct_conv(e.reshape(in_shape), w, zero, pads).ravel().tolist())
    return tuple(zip(*cols))


def rational_inputs(rng, n, trials=3):
    return [[F(int(rng.integers(-9, 10)), int(rng.integers(1, 8))) for _ in range(n)] for _ in range(trials)]


def relu_all(v):
    return [max(a, F(0)) for a in v]


@pytest.mark.parametrize(
    "x_shape, k, pads, bias_kind",
    [
        ([1, 2, 4, 3], (3, 2, 3, 3), [1, 1, 1, 1], "input"),  # Conv's own B
        ([1, 2, 4, 3], (3, 2, 2, 3), [0, 2, 1, 0], "none"),
        ([1, 1, 4, 4], (2, 1, 2, 2), [0, 0, 0, 0], "add_c11"),  # Conv, then Add of shape (C, 1, 1)
        ([1, 3, 6], (2, 3, 3), [1, 2], "add_1c1"),  # 1-D, Add of shape (1, C, 1)
        ([1, 2, 3, 3], (2, 2, 2, 2), [1, 0, 0, 1], "input+sub_1c11"),  # B, then Sub of (1, C, 1, 1)
    ],
)
def test_conv_relu_is_structured(x_shape, k, pads, bias_kind):
    rng = np.random.default_rng(11)
    w = arr(rng, *k)
    d = len(k) - 2
    B = arr(rng, k[0])
    K = arr(rng, *((1,) * (bias_kind != "add_c11") + (k[0],) + (1,) * d))  # per-channel constant
    nodes = [helper.make_node("Conv", ["x", "W"] + (["B"] if "input" in bias_kind else []), ["c"],
                              name="conv", pads=pads)]
    inits = [init("W", w), init("B", B), init("K", K)]
    tail = "c"
    if "add" in bias_kind or "sub" in bias_kind:
        nodes.append(helper.make_node("Sub" if "sub" in bias_kind else "Add", ["c", "K"], ["cb"], name="bias"))
        tail = "cb"
    nodes.append(helper.make_node("Relu", [tail], ["y"], name="relu"))
    out_size = [n + pads[t] + pads[t + d] - k[2 + t] + 1 for t, n in enumerate(x_shape[2:])]
    model = make_model(nodes, inits, x_shape, [1, k[0], *out_size])
    net = network_from_onnx_model(model)

    (L,) = net.layers
    assert isinstance(L, ConvLayer) and L.activation == "relu"
    assert "weight" not in L.__dict__  # nothing densified on import

    # The bias the ONNX graph adds, per output channel, exactly.
    b = [F(0)] * k[0]
    if "input" in bias_kind:
        b = [u + F(float(v)) for u, v in zip(b, B)]
    if "add" in bias_kind or "sub" in bias_kind:
        sign = -1 if "sub" in bias_kind else 1
        b = [u + sign * F(float(v)) for u, v in zip(b, K.ravel())]
    pad_pairs = [(pads[t], pads[t + d]) for t in range(d)]
    wx = exact_array(w)
    # Weight and bias are what the dense import produced: the exact operator.
    spec = ConvSpec.build(wx.tolist(), x_shape[1], k[0], x_shape[2:], "zero", pad_pairs, b)
    assert L.spec == spec
    assert L.weight == tuple(spec.operator()) == direct_operator(wx, x_shape[1:], pad_pairs)
    assert L.bias == tuple(v for v in b for _ in range(prod(out_size)))
    for x in rational_inputs(rng, prod(x_shape)):
        want = relu_all(direct_conv(np.array(x, dtype=object).reshape(x_shape[1:]), wx, b, pad_pairs).ravel())
        assert list(net.evaluate(x)) == want
    assert_matches_reference(net, model, trials=3)


def test_conv_relu_flatten_gemm_exact():
    rng = np.random.default_rng(12)
    w, B, V, c = arr(rng, 3, 2, 2, 2), arr(rng, 3), arr(rng, 4, 36), arr(rng, 4)
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["a"], name="conv", pads=[1, 0, 1, 0]),
             helper.make_node("Relu", ["a"], ["r"], name="relu"),
             helper.make_node("Flatten", ["r"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "V", "c"], ["y"], name="head", transB=1)]
    model = make_model(nodes, [init("W", w), init("B", B), init("V", V), init("c", c)], [1, 2, 3, 4], [1, 4])
    net = network_from_onnx_model(model)
    assert [type(L) for L in net.layers] == [ConvLayer, Layer]
    assert [(L.in_dim, L.out_dim, L.activation) for L in net.layers] == [(24, 36, "relu"), (36, 4, "linear")]
    wx, Bx, Vx, cx = map(exact_array, (w, B, V, c))
    assert net.layers[1].weight == tuple(tuple(r) for r in Vx.tolist())
    for x in rational_inputs(rng, 24):
        h = relu_all(direct_conv(np.array(x, dtype=object).reshape(2, 3, 4), wx, Bx, [(1, 1), (0, 0)]).ravel())
        want = [sum((Vx[i, j] * h[j] for j in range(36)), cx[i]) for i in range(4)]
        assert list(net.evaluate(x)) == want
    assert_matches_reference(net, model)


def test_big_conv_imports_structured_and_verifies_through_kernel():
    # A DCGAN-style [C; -C/4] layer: channels 6..11 are -1/4 times channels
    # 0..5.  Its operator, 4800 x 1200, is over the densification cap, so
    # only the structured layer makes this decidable at all.
    import exact_inj

    rng = np.random.default_rng(13)
    half = rng.integers(-3, 4, size=(6, 3, 3, 3)).astype(np.float32)
    w = np.concatenate([half, -0.25 * half])  # -1/4 is exact in float32
    nodes = [helper.make_node("Conv", ["x", "W"], ["a"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["y"], name="relu")]
    model = make_model(nodes, [init("W", w)], [1, 3, 20, 20], [1, 12, 20, 20])
    t = time.perf_counter()
    net = network_from_onnx_model(model)
    elapsed = time.perf_counter() - t
    (L,) = net.layers
    assert isinstance(L, ConvLayer) and L.activation == "relu"
    assert L.dense_entries > MAX_OPERATOR_ENTRIES
    assert "weight" not in L.__dict__
    assert elapsed < 5, elapsed  # the kernel only: far below densifying 5.8M entries
    assert L.spec.kernel[6] == tuple(tuple(tuple(-v / 4 for v in r) for r in c) for c in L.spec.kernel[0])
    v = exact_inj.verify(net, time_limit=120)
    assert v.status.value == "injective" and v.route == "structural", (v.status, v.route)
    assert exact_inj.check(v.certificate).valid
    assert "weight" not in L.__dict__


def conv_chain_model(rng, tail_nodes, tail_inits, out_shape, in_shape=(1, 2, 3, 3), k=(2, 2, 2, 2), pads=(1, 0, 1, 0)):
    # By default the Conv maps (1, 2, 3, 3) to (1, 2, 4, 2): 18 -> 16 numbers.
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv", pads=list(pads))] + tail_nodes
    inits = [init("W", arr(rng, *k)), init("B", arr(rng, k[0]))] + tail_inits
    return make_model(nodes, inits, list(in_shape), out_shape)


def dense_reference(net, model, in_dim, ops):
    """Exact evaluation of the ONNX chain by an in-test direct convolution,
    then ``ops`` (functions on the flat exact vector)."""
    inits = {t.name: exact_array(numpy_helper.to_array(t)) for t in model.graph.initializer}
    conv = model.graph.node[0]
    pads = list(helper.get_attribute_value(conv.attribute[0]))
    d = len(pads) // 2
    in_shape = [v.dim_value for v in model.graph.input[0].type.tensor_type.shape.dim][1:]
    rng = np.random.default_rng(14)
    for x in rational_inputs(rng, in_dim):
        h = direct_conv(np.array(x, dtype=object).reshape(in_shape), inits["W"], inits["B"],
                        [(pads[t], pads[t + d]) for t in range(d)]).ravel().tolist()
        for op in ops:
            h = op(h, inits)
        assert list(net.evaluate(x)) == h


def test_conv_not_followed_by_relu_stays_dense():
    rng = np.random.default_rng(15)
    # Conv -> Flatten -> Gemm: one affine map, one dense linear layer.
    model = conv_chain_model(rng, [helper.make_node("Flatten", ["c"], ["f"], name="flat"),
                                   helper.make_node("Gemm", ["f", "V"], ["y"], name="head", transB=1)],
                             [init("V", arr(rng, 3, 16))], [1, 3])
    net = network_from_onnx_model(model)
    assert [(type(L), L.in_dim, L.out_dim, L.activation) for L in net.layers] == [(Layer, 18, 3, "linear")]
    gemm = lambda h, c: [sum((c["V"][i, j] * h[j] for j in range(16)), F(0)) for i in range(3)]  # noqa: E731
    dense_reference(net, model, 18, [gemm])
    assert_matches_reference(net, model)


def test_conv_then_non_channel_constant_is_dense():
    rng = np.random.default_rng(16)
    # An Add that varies over positions is not a bias of the convolution.
    model = conv_chain_model(rng, [helper.make_node("Add", ["c", "P"], ["a"], name="add"),
                                   helper.make_node("Relu", ["a"], ["y"], name="relu")],
                             [init("P", arr(rng, 1, 2, 4, 2))], [1, 2, 4, 2])
    net = network_from_onnx_model(model)
    assert [(type(L), L.activation) for L in net.layers] == [(Layer, "relu")]
    add = lambda h, c: relu_all([a + p for a, p in zip(h, c["P"].ravel())])  # noqa: E731
    dense_reference(net, model, 18, [add])
    assert_matches_reference(net, model)
    # An Add that broadcasts the tensor to a batch of 2 (it grows): dense too.
    model = conv_chain_model(rng, [helper.make_node("Add", ["c", "P"], ["a"], name="add"),
                                   helper.make_node("Relu", ["a"], ["y"], name="relu")],
                             [init("P", arr(rng, 2, 1, 1, 1))], [2, 2, 4, 2])
    net = network_from_onnx_model(model)
    assert [(type(L), L.in_dim, L.out_dim) for L in net.layers] == [(Layer, 18, 32)]
    grow = lambda h, c: relu_all([a + p for p in c["P"].ravel() for a in h])  # noqa: E731
    dense_reference(net, model, 18, [grow])
    assert_matches_reference(net, model)


def test_conv_then_constant_minus_chain_stays_a_kernel():
    rng = np.random.default_rng(17)
    model = conv_chain_model(rng, [helper.make_node("Sub", ["K", "c"], ["a"], name="flip"),
                                   helper.make_node("Relu", ["a"], ["y"], name="relu")],
                             [init("K", arr(rng, 2, 1, 1))], [1, 2, 4, 2])
    net = network_from_onnx_model(model)
    # K - conv(x) is a per-channel scale (-1) and shift: folded into the kernel.
    assert [type(L) for L in net.layers] == [ConvLayer]
    flip = lambda h, c: relu_all([c["K"][i // 8, 0, 0] - a for i, a in enumerate(h)])  # noqa: E731
    dense_reference(net, model, 18, [flip])


def test_conv_at_the_end_is_a_linear_conv_layer():
    rng = np.random.default_rng(18)
    model = conv_chain_model(rng, [helper.make_node("Identity", ["c"], ["y"], name="id")], [], [1, 2, 4, 2])
    net = network_from_onnx_model(model)
    assert [(type(L), L.activation) for L in net.layers] == [(ConvLayer, "linear")]
    dense_reference(net, model, 18, [])
    assert_matches_reference(net, model)


def test_conv_after_gemm_and_conv_after_conv_are_dense():
    rng = np.random.default_rng(19)
    # Gemm -> Reshape -> Conv -> Relu: the Conv does not read the layer's input.
    nodes = [helper.make_node("Gemm", ["x", "G"], ["g"], name="g"),
             helper.make_node("Reshape", ["g", "s"], ["gs"], name="rs"),
             helper.make_node("Conv", ["gs", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]
    inits = [init("G", arr(rng, 4, 8)), init("s", np.array([1, 2, 2, 2], dtype=np.int64)), init("W", arr(rng, 3, 2, 3, 3))]
    model = make_model(nodes, inits, [1, 4], [1, 3, 2, 2])
    net = network_from_onnx_model(model)
    assert [(type(L), L.in_dim, L.out_dim) for L in net.layers] == [(Layer, 4, 12)]
    assert_matches_reference(net, model)
    # Conv -> Conv -> Relu: the two compose into one dense layer.
    nodes = [helper.make_node("Conv", ["x", "W1", "B1"], ["a"], name="c1", pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["a", "W2"], ["b"], name="c2"),
             helper.make_node("Relu", ["b"], ["y"], name="relu")]
    inits = [init("W1", arr(rng, 3, 2, 3, 3)), init("B1", arr(rng, 3)), init("W2", arr(rng, 2, 3, 2, 2))]
    model = make_model(nodes, inits, [1, 2, 4, 4], [1, 2, 3, 3])
    net = network_from_onnx_model(model)
    assert [(type(L), L.in_dim, L.out_dim) for L in net.layers] == [(Layer, 32, 18)]
    assert_matches_reference(net, model)


def test_conv_then_flatten_relu_is_structured():
    # Shape-only ops move no entry, so Conv -> Flatten -> Relu is the conv layer.
    rng = np.random.default_rng(20)
    model = conv_chain_model(rng, [helper.make_node("Flatten", ["c"], ["f"], name="flat"),
                                   helper.make_node("Relu", ["f"], ["y"], name="relu")], [], [1, 16])
    net = network_from_onnx_model(model)
    assert [(type(L), L.activation) for L in net.layers] == [(ConvLayer, "relu")]
    dense_reference(net, model, 18, [lambda h, c: relu_all(h)])


def test_too_large_conv_that_must_be_dense_is_refused_naming_the_conv():
    # Conv -> Flatten -> Gemm composes densely: over the cap, the error names the Conv node.
    rng = np.random.default_rng(21)
    model = conv_chain_model(rng, [helper.make_node("Flatten", ["c"], ["f"], name="flat"),
                                   helper.make_node("Gemm", ["f", "V"], ["y"], name="head", transB=1)],
                             [init("V", np.ones((1, 4 * 40 * 40), np.float32))], [1, 1],
                             in_shape=(1, 4, 40, 40), k=(4, 4, 2, 1), pads=(1, 0, 0, 0))
    expect_error(model, "Conv node 'conv': the convolution operator would be", "more than")
