"""The generator ops of the ONNX importer, op by op (docs/model-files.md).

Each op is imported and evaluated exactly, and compared with onnxruntime on
seeded random inputs (onnxruntime rounds in float32, so agreement is within
that rounding).  Strided and transposed convolutions are also compared, in
exact arithmetic, with a direct evaluator written here from the ONNX
definitions (independent of exact_inj.model.kernels).  Refusals are one line
naming the node.
"""

from __future__ import annotations

from fractions import Fraction as F
from itertools import product

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from exact_inj.io import InputError  # noqa: E402
from exact_inj.io.onnx import network_from_onnx_model  # noqa: E402
from exact_inj.model import ConvLayer, KernelSpec  # noqa: E402
from exact_inj.model.normalised import NormalisedNetwork  # noqa: E402


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def model(nodes, inits, in_shape, out_shape=None, opset=17):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def run_ort(m, x):
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {"x": x})[0], dtype=np.float64).ravel()


def agree(m, trials=3, seed=0, unit=None):
    """Exact import vs onnxruntime; with an output unit, the unit is applied to
    the exact values in floats (exact_inj never evaluates it)."""
    net = network_from_onnx_model(m)
    shape = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    rng = np.random.default_rng(seed)
    for _ in range(trials):
        x = rng.standard_normal(shape).astype(np.float32)
        ref = run_ort(m, x)
        got = np.array([float(v) for v in net.evaluate([F(float(v)) for v in x.ravel()])])
        if unit == "tanh":
            got = np.tanh(got)
        elif unit == "sigmoid":
            got = 1 / (1 + np.exp(-got))
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() <= 1e-4 * (1 + np.abs(ref).max()), (got, ref)
    return net


def f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


# -- simple affine ops, each followed by a Relu so it is one layer -------------------------------

@pytest.mark.parametrize("op,const_first", [("Mul", False), ("Mul", True), ("Div", False), ("Sub", True),
                                            ("Add", False)])
def test_binary_ops_with_constants(op, const_first):
    rng = np.random.default_rng(1)
    K = f32(rng, 1, 3, 1, 1) + np.float32(2)  # per-channel, broadcast; away from 0 for Div
    ins = ["K", "x"] if const_first else ["x", "K"]
    m = model([helper.make_node(op, ins, ["a"]), helper.make_node("Relu", ["a"], ["y"])], [init("K", K)],
              [1, 3, 2, 2])
    agree(m)


def test_neg_constant_unsqueeze_squeeze_transpose():
    rng = np.random.default_rng(2)
    nodes = [
        helper.make_node("Constant", [], ["ax"], value=numpy_helper.from_array(np.array([0], np.int64))),
        helper.make_node("Neg", ["x"], ["a"]),
        helper.make_node("Squeeze", ["a", "ax"], ["b"]),           # (3, 4, 2)
        helper.make_node("Transpose", ["b"], ["c"], perm=[2, 0, 1]),  # (2, 3, 4)
        helper.make_node("Unsqueeze", ["c", "ax"], ["d"]),          # (1, 2, 3, 4)
        helper.make_node("MatMul", ["d", "W"], ["y"]),
    ]
    m = model(nodes, [init("W", f32(rng, 4, 2))], [1, 3, 4, 2])
    net = agree(m)
    assert len(net.layers) == 1 and net.layers[0].activation == "linear"


def test_constant_folding_of_new_ops():
    # Mul, Div, Neg, Transpose on constants only are computed once, exactly.
    nodes = [
        helper.make_node("Mul", ["A", "B"], ["ab"]),
        helper.make_node("Div", ["ab", "B"], ["a2"]),
        helper.make_node("Neg", ["a2"], ["na"]),
        helper.make_node("Transpose", ["na"], ["t"]),
        helper.make_node("MatMul", ["x", "t"], ["y"]),
    ]
    A = np.array([[1, 2], [3, 4], [5, 6]], np.float32)
    m = model(nodes, [init("A", A), init("B", np.float32(3))], [1, 2])
    net = agree(m)
    assert net.layers[0].weight == ((F(-1), F(-2)), (F(-3), F(-4)), (F(-5), F(-6)))


def test_pad_concat_with_constant_and_average_pool():
    rng = np.random.default_rng(3)
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["p"], mode="constant"),
        helper.make_node("Concat", ["p", "K"], ["c"], axis=1),
        helper.make_node("AveragePool", ["c"], ["y"], kernel_shape=[2, 2], strides=[2, 1], pads=[0, 1, 1, 0]),
    ]
    pads = np.array([0, 0, 1, 0, 0, 0, 0, 2], np.int64)
    m = model(nodes, [init("pads", pads), init("K", f32(rng, 1, 1, 4, 5))], [1, 2, 3, 3])
    agree(m)


@pytest.mark.parametrize("ctm,nearest", [("half_pixel", "round_prefer_floor"), ("asymmetric", "floor"),
                                         ("asymmetric", "round_prefer_ceil"), ("align_corners", "round_prefer_floor")])
def test_resize_nearest(ctm, nearest):
    scales = np.array([1, 1, 2, 3], np.float32)
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest",
                              coordinate_transformation_mode=ctm, nearest_mode=nearest)]
    agree(model(nodes, [init("scales", scales)], [1, 2, 3, 2]))


def test_upsample_opset9():
    nodes = [helper.make_node("Upsample", ["x", "scales"], ["y"], mode="nearest")]
    agree(model(nodes, [init("scales", np.array([1, 1, 2, 2], np.float32))], [1, 2, 2, 3], opset=9))


def test_batch_norm_with_rational_roots_folds_into_the_conv():
    rng = np.random.default_rng(4)
    C = 3
    var = np.array([1 - 2.0 ** -17, 4 - 2.0 ** -17, 0.25 - 2.0 ** -17], np.float32)  # + eps = 1, 4, 1/4
    nodes = [
        helper.make_node("ConvTranspose", ["x", "W"], ["c"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "g", "b", "mu", "var"], ["n"], epsilon=2.0 ** -17),
        helper.make_node("Relu", ["n"], ["y"]),
    ]
    inits = [init("W", f32(rng, 2, C, 4, 4)), init("g", f32(rng, C)), init("b", f32(rng, C)),
             init("mu", f32(rng, C)), init("var", var)]
    net = agree(model(nodes, inits, [1, 2, 3, 3]))
    (L,) = net.layers
    assert isinstance(L, ConvLayer) and isinstance(L.spec, KernelSpec) and L.spec.transposed


def test_batch_norm_with_an_irrational_root_is_kept_symbolic_never_rounded():
    nodes = [helper.make_node("BatchNormalization", ["x", "g", "b", "mu", "var"], ["y"], name="bn")]
    one = np.ones(2, np.float32)
    inits = [init("g", one), init("b", one), init("mu", one), init("var", np.array([1, 2], np.float32))]
    net = network_from_onnx_model(model(nodes, inits, [1, 2, 2]), "m.onnx")
    eps = F(float(np.float32(1e-5)))
    assert isinstance(net, NormalisedNetwork) and net.norms[0].root == (1 + eps, 2 + eps)
    # An op between the normalisation and the activation is refused, naming the node.
    nodes = [helper.make_node("BatchNormalization", ["x", "g", "b", "mu", "var"], ["n"], name="bn"),
             helper.make_node("Mul", ["n", "g"], ["y"], name="mul")]
    with pytest.raises(InputError) as e:
        network_from_onnx_model(model(nodes, inits, [1, 2, 2]), "m.onnx")
    assert "'bn'" in str(e.value) and "irrational" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("alpha", [0.2, 1.0, 3.0])
def test_leaky_relu(alpha):
    rng = np.random.default_rng(5)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["a"]), helper.make_node("LeakyRelu", ["a"], ["y"], alpha=alpha)]
    net = agree(model(nodes, [init("W", f32(rng, 3, 4))], [1, 3]))
    assert net.layers[0].activation == "leaky_relu" and net.layers[0].slope == F(float(np.float32(alpha)))


def test_prelu_one_slope_and_refusals():
    rng = np.random.default_rng(6)
    nodes = [helper.make_node("PRelu", ["x", "s"], ["y"])]
    agree(model(nodes, [init("s", np.full((2, 1, 1), 0.25, np.float32))], [1, 2, 2, 2]))
    for s, frag in [(np.array([[[0.1]], [[0.2]]], np.float32), "per-channel slopes"),
                    (np.full((2, 1, 1), -0.5, np.float32), "non-monotone")]:
        with pytest.raises(InputError) as e:
            network_from_onnx_model(model(nodes, [init("s", s)], [1, 2, 2, 2]), "m.onnx")
        assert frag in str(e.value)


@pytest.mark.parametrize("unit", ["Tanh", "Sigmoid"])
def test_output_units(unit):
    rng = np.random.default_rng(7)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["a"]), helper.make_node(unit, ["a"], ["y"])]
    net = agree(model(nodes, [init("W", f32(rng, 3, 4))], [1, 3]), unit=unit.lower())
    assert net.output_unit == unit.lower()


def test_tanh_in_the_middle_and_maxpool_and_residual_refused():
    rng = np.random.default_rng(8)
    cases = [
        ([helper.make_node("Tanh", ["x"], ["a"], name="t"), helper.make_node("Relu", ["a"], ["y"], name="r")],
         [], "only as the network's last op"),
        ([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], name="mp")], [], "not affine"),
        ([helper.make_node("Relu", ["x"], ["r"], name="r"), helper.make_node("Add", ["x", "r"], ["y"], name="res")],
         [], "residual"),
        ([helper.make_node("Div", ["K", "x"], ["y"], name="d")], [init("K", f32(rng, 1))], "not affine"),
    ]
    for nodes, inits, frag in cases:
        with pytest.raises(InputError) as e:
            network_from_onnx_model(model(nodes, inits, [1, 1, 2, 2]), "m.onnx")
        assert frag in str(e.value) and "\n" not in str(e.value), str(e.value)


# -- strided and transposed convolutions: onnxruntime and an in-test evaluator -------------------

def direct_conv(x, W, b, strides, dil, pads, transposed, out_pad=None):
    """The ONNX definitions, summed term by term in Fractions (no index
    algebra shared with the importer): x (Cin, *N), W in ONNX layout."""
    cin = x.shape[0]
    d = x.ndim - 1
    N = x.shape[1:]
    if transposed:
        cout, k = W.shape[1], W.shape[2:]
        size = [strides[t] * (N[t] - 1) + out_pad[t] + (k[t] - 1) * dil[t] + 1 - pads[t] - pads[t + d]
                for t in range(d)]
        y = np.full((cout, *size), F(0), dtype=object)
        for c, i in product(range(cin), product(*map(range, N))):
            for o, q in product(range(cout), product(*map(range, k))):
                t_ = [i[t] * strides[t] + q[t] * dil[t] - pads[t] for t in range(d)]
                if all(0 <= t_[t] < size[t] for t in range(d)):
                    y[(o, *t_)] += F(float(W[(c, o, *q)])) * x[(c, *i)]
    else:
        cout, k = W.shape[0], W.shape[2:]
        size = [(N[t] + pads[t] + pads[t + d] - dil[t] * (k[t] - 1) - 1) // strides[t] + 1 for t in range(d)]
        y = np.full((cout, *size), F(0), dtype=object)
        for o, p in product(range(cout), product(*map(range, size))):
            for c, q in product(range(cin), product(*map(range, k))):
                s = [p[t] * strides[t] + q[t] * dil[t] - pads[t] for t in range(d)]
                if all(0 <= s[t] < N[t] for t in range(d)):
                    y[(o, *p)] += F(float(W[(o, c, *q)])) * x[(c, *s)]
    for o in range(y.shape[0]):
        y[o] += F(float(b[o]))
    return y.ravel()


CONV_CASES = [
    # (transposed, in shape (C, *N), weight shape, attrs)
    (True, (2, 3, 3), (2, 3, 4, 4), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    (True, (3, 2, 2), (3, 2, 3, 2), {"strides": [3, 2], "pads": [0, 1, 2, 0], "output_padding": [1, 1]}),
    (True, (2, 4), (2, 3, 3), {"strides": [2], "dilations": [2], "pads": [1, 0], "output_padding": [1]}),
    (True, (1, 1, 1), (1, 4, 4, 4), {}),
    (False, (2, 5, 6), (3, 2, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    (False, (2, 7), (2, 2, 3), {"strides": [3], "dilations": [2], "pads": [2, 1]}),
    (False, (1, 6, 5), (2, 1, 2, 3), {"strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    (False, (1, 5, 5), (2, 1, 2, 3), {"strides": [2, 3], "auto_pad": "SAME_LOWER"}),
]


@pytest.mark.parametrize("transposed,xs,ws,attrs", CONV_CASES)
def test_conv_variants_against_onnxruntime_and_direct_sums(transposed, xs, ws, attrs):
    rng = np.random.default_rng(len(xs) * 7 + ws[0])
    W = f32(rng, *ws)
    cout = ws[1] if transposed else ws[0]
    b = f32(rng, cout)
    op = "ConvTranspose" if transposed else "Conv"
    m = model([helper.make_node(op, ["x", "W", "b"], ["y"], **attrs)], [init("W", W), init("b", b)], [1, *xs])
    net = agree(m)
    (L,) = net.layers
    assert isinstance(L, ConvLayer)  # kept as its kernel
    d = len(xs) - 1
    pads = attrs.get("pads", [0] * 2 * d)
    if "auto_pad" in attrs:  # the pads the importer derived (onnxruntime agreed above)
        pads = [(L.spec.pads[t][0]) for t in range(d)] + [L.spec.pads[t][1] for t in range(d)]
    x = np.empty(xs, dtype=object)
    x.ravel()[:] = [F(int(v), 7) for v in rng.integers(-20, 20, size=int(np.prod(xs)))]
    ref = direct_conv(x, W, b, attrs.get("strides", [1] * d), attrs.get("dilations", [1] * d), pads, transposed,
                      attrs.get("output_padding", [0] * d))
    assert list(L.apply(list(x.ravel()))) == list(ref)
    # The sparse rows are the same operator as the fast evaluation.
    xv = list(x.ravel())
    rows = [sum((w * xv[c] for c, w in L.sparse_row(i).items()), F(0)) + L.bias[i] for i in range(L.out_dim)]
    assert rows == list(ref)


def test_grouped_and_same_padded_conv_transpose_refused():
    W = np.ones((2, 1, 2, 2), np.float32)
    for attrs, frag in [({"group": 2}, "group = 2"), ({"auto_pad": "SAME_UPPER"}, "auto_pad")]:
        m = model([helper.make_node("ConvTranspose", ["x", "W"], ["y"], name="ct", **attrs)], [init("W", W)],
                  [1, 2, 3, 3])
        with pytest.raises(InputError) as e:
            network_from_onnx_model(m, "m.onnx")
        assert "'ct'" in str(e.value) and frag in str(e.value)
