"""Regressions from the soundness review of the generator support (issue #15).

Each test is a case where exact_inj computed a different function than the
file (checked against onnxruntime) and could answer wrongly, or where a
LeakyReLU network made the search crash or give up.  Each names the
mathematical reason the old behaviour was wrong.
"""

from __future__ import annotations

from fractions import Fraction as F

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from exact_inj import api  # noqa: E402
from exact_inj.certify.check import check  # noqa: E402
from exact_inj.io import InputError  # noqa: E402
from exact_inj.io.onnx import network_from_onnx_model  # noqa: E402
from exact_inj.model import Domain, Layer, Network  # noqa: E402
from exact_inj.verdict import Status  # noqa: E402


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def model(nodes, inits, in_shape, opset=17):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def run_ort(m, x):
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {"x": np.asarray(x, np.float32)})[0], dtype=np.float64).ravel()


def refused(m, fragment):
    with pytest.raises(InputError) as e:
        network_from_onnx_model(m, "m.onnx")
    assert fragment in str(e.value) and "\n" not in str(e.value), str(e.value)


# -- attribute defaults are float32; PRelu's slope -----------------------------------------------------

def test_leaky_relu_default_alpha_is_the_float32_value():
    # h = LeakyRelu([x, -x]) with the default alpha, y = h0 + 100 h1: for x > 0,
    # y = (1 - 100 a) x; for x < 0, y = (a - 100) x.  With the file's alpha (the
    # float32 0.01, just below 1/100) y > 0 on both sides of 0: a fold, not
    # injective.  The double 0.01 (just above 1/100) made y < 0 for x > 0, a
    # monotone map, and exact_inj proved "injective" for a function the file
    # does not compute.
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["a"]), helper.make_node("LeakyRelu", ["a"], ["h"]),
             helper.make_node("MatMul", ["h", "W2"], ["y"])]
    m = model(nodes, [init("W1", np.array([[1, -1]], np.float32)), init("W2", np.array([[1], [100]], np.float32))],
              [1, 1])
    net = network_from_onnx_model(m)
    assert net.layers[0].slope == F(float(np.float32(0.01)))
    assert float(net.evaluate([F(1)])[0]) > 0 and run_ort(m, [[1]])[0] > 0  # the sign the file gives
    v = api.verify(net, time_limit=30)
    assert v.status is Status.NOT_INJECTIVE and check(v.certificate).valid


def test_batch_norm_default_epsilon_is_the_float32_value():
    # var + eps32 = 2^-16 exactly (a rational root 2^-8) with the float32
    # default epsilon; with the double 1e-5 the sum is another number (here not
    # a square, in general a different factor than the file's).
    eps32 = F(float(np.float32(1e-5)))
    var = np.array([float(F(1, 2 ** 16) - eps32)], np.float32)
    assert F(float(var[0])) + eps32 == F(1, 2 ** 16)
    nodes = [helper.make_node("BatchNormalization", ["x", "g", "b", "mu", "var"], ["y"])]
    one = np.ones(1, np.float32)
    m = model(nodes, [init("g", one), init("b", one), init("mu", one), init("var", var)], [1, 1, 2])
    net = network_from_onnx_model(m)
    assert net.layers[0].weight[0][0] == 256
    x = [[[3, -5]]]
    assert np.allclose([float(v) for v in net.evaluate([F(3), F(-5)])], run_ort(m, x), rtol=1e-6)


def test_prelu_slope_that_grows_the_output_refused():
    # Unidirectional broadcasting: the slope may not change X's shape.
    s = np.full((2, 1, 1, 1, 1), 0.5, np.float32)
    refused(model([helper.make_node("PRelu", ["x", "s"], ["y"])], [init("s", s)], [1, 2, 2, 2]), "does not broadcast")


# -- integer constants ------------------------------------------------------------------------

def test_integer_div_of_constants_truncates_as_onnx_does():
    # sizes = (A / B) * B with int64 A = [1, 1, 1, 3], B = [1, 1, 1, 2]: ONNX
    # gives [1, 1, 1, 2] (3 / 2 = 1), so the Resize drops an entry and the
    # network is not injective.  Exact division gave sizes 3, an identity, and
    # the verdict "injective" for a file that loses x[1].
    nodes = [helper.make_node("Div", ["A", "B"], ["q"]), helper.make_node("Mul", ["q", "B"], ["sz"]),
             helper.make_node("Resize", ["x", "", "", "sz"], ["y"], mode="nearest")]
    m = model(nodes, [init("A", np.array([1, 1, 1, 3], np.int64)), init("B", np.array([1, 1, 1, 2], np.int64))],
              [1, 1, 1, 3])
    net = network_from_onnx_model(m)
    assert [float(v) for v in net.evaluate([F(1), F(2), F(3)])] == list(run_ort(m, [[[[1, 2, 3]]]])) == [1, 3]
    assert api.verify(net, time_limit=30).status is Status.NOT_INJECTIVE


def test_fractional_axes_or_sizes_are_refused_not_truncated():
    nodes = [helper.make_node("Div", ["A", "B"], ["q"]),
             helper.make_node("Resize", ["x", "", "", "q"], ["y"], mode="nearest")]
    m = model(nodes, [init("A", np.array([1, 1, 1, 3], np.float32)), init("B", np.array([1, 1, 1, 2], np.float32))],
              [1, 1, 1, 3])
    refused(m, "sizes must be integers")


# -- Resize: refuse what runtimes read differently ----------------------------------------------

def resize(n, ctm, nearest, scale=None, size=None):
    inits = [init("roi", np.array([], np.float32))]
    if size is not None:
        inits += [init("sc", np.array([], np.float32)), init("sz", np.array([1, 1, 1, size], np.int64))]
        ins = ["x", "roi", "sc", "sz"]
    else:
        inits.append(init("sc", np.array([1, 1, 1, scale], np.float32)))
        ins = ["x", "roi", "sc"]
    node = helper.make_node("Resize", ins, ["y"], mode="nearest", coordinate_transformation_mode=ctm,
                            nearest_mode=nearest)
    return model([node], inits, [1, 1, 1, n], opset=13)


@pytest.mark.parametrize("n,ctm,nearest,scale,size,fragment", [
    # 3 x 1.3 = 3.9: the ONNX reference reads inputs [0, 0, 1] (scale 1.3),
    # onnxruntime [0, 1, 2] (scale 3/3 from the floored length).
    (3, "half_pixel", "floor", 1.3, None, "not an integer"),
    # 10 -> 6: coordinate (4 + 1/2) 5/3 - 1/2 = 7 exactly; float32 gives 6.99...
    (10, "half_pixel", "floor", None, 6, "rounding tie"),
    # scale 1: onnxruntime keeps the axis; the formula (o + 1/2) with ceil shifts it.
    (3, "tf_half_pixel_for_nn", "ceil", 1.0, None, "scale 1"),
])
def test_resize_conventions_runtimes_disagree_on_are_refused(n, ctm, nearest, scale, size, fragment):
    refused(resize(n, ctm, nearest, scale, size), fragment)


def test_upsample_below_one_is_refused():
    nodes = [helper.make_node("Upsample", ["x", "sc"], ["y"], mode="nearest")]
    refused(model(nodes, [init("sc", np.array([1, 1, 1, 0.5], np.float32))], [1, 1, 1, 4], opset=9), "below 1")


def resize_cases(sizes_up_to):
    for ctm in ("half_pixel", "pytorch_half_pixel", "asymmetric", "align_corners", "tf_half_pixel_for_nn"):
        for nearest in ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil"):
            for n in range(1, sizes_up_to + 1):
                for m in range(1, sizes_up_to + 3):
                    yield resize(n, ctm, nearest, size=m)
                    s = F(m, n)
                    if s.denominator & (s.denominator - 1) == 0:  # a float32 scale with n * s = m
                        yield resize(n, ctm, nearest, scale=float(s))


def check_resize_cases(sizes_up_to):
    accepted = 0
    for m in resize_cases(sizes_up_to):
        n = m.graph.input[0].type.tensor_type.shape.dim[3].dim_value
        try:
            net = network_from_onnx_model(m)
        except InputError:
            continue
        x = list(range(n))
        assert [float(v) for v in net.evaluate([F(v) for v in x])] == list(run_ort(m, [[[x]]])), m.graph.node[0]
        accepted += 1
    return accepted


def test_every_accepted_small_resize_reads_what_onnxruntime_reads():
    assert check_resize_cases(3) > 150


@pytest.mark.slow
def test_every_accepted_resize_reads_what_onnxruntime_reads():
    assert check_resize_cases(9) > 1500


# -- input checks that crashed or coerced ---------------------------------------------------------

@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [1], "pads": [1, 1]},                  # a window of padding only: 1/0
    {"kernel_shape": [2], "pads": [0]},                     # pads too short: IndexError
    {"kernel_shape": [2], "strides": [1, 1]},               # strides for another rank
    {"kernel_shape": [2], "strides": [0]},
])
def test_average_pool_bad_attributes_refused(attrs):
    refused(model([helper.make_node("AveragePool", ["x"], ["y"], **attrs)], [], [1, 1, 3]), "AveragePool node")


def test_unsqueeze_axis_out_of_range_refused():
    nodes = [helper.make_node("Unsqueeze", ["x", "a"], ["y"])]
    refused(model(nodes, [init("a", np.array([-5], np.int64))], [1, 2, 3], opset=13), "axes [-5]")


def test_npz_leaky_relu_without_a_slope_is_bad_input(tmp_path):
    from exact_inj.io.load import load_network

    p = tmp_path / "n.npz"
    np.savez(p, weight_0=np.array([[1.0]]), bias_0=np.array([0.0]), activation_0=np.array("leaky_relu"))
    with pytest.raises(InputError) as e:
        load_network(p)
    assert "slope" in str(e.value)


# -- the layerwise route after a LeakyReLU stage --------------------------------------------------

def leaky(rows, slope, bias=None):
    W = tuple(tuple(F(v) for v in r) for r in rows)
    return Layer(W, tuple(F(0) for _ in rows) if bias is None else tuple(map(F, bias)), "leaky_relu", F(slope))


def test_stage_after_a_leaky_stage_receives_its_image():
    # leaky(-x) maps the box [1, 2]^2 to [-1, -1/2]^2, where the ReLU that
    # follows is 0: not injective.  The next stage used to receive the box
    # itself, its proof failed the checker's recomputation, and the answer
    # was "unknown (please report)".
    relu = Layer.from_rows([[1, 0], [0, 1]])
    for dom in (Domain.box([1, 1], [2, 2]), Domain.orthant()):
        v = api.verify(Network((leaky([[-1, 0], [0, -1]], F(1, 2)), relu)), time_limit=30, domain=dom)
        assert v.status is Status.NOT_INJECTIVE and check(v.certificate).valid, v.reason


def test_stage_after_a_leaky_stage_of_another_width():
    # 1 -> 2 -> 1 -> 1: the second stage used to receive the 1-D box (IndexError).
    net = Network((leaky([[1], [2]], F(1, 2)), leaky([[1, -1]], F(1, 3)), Layer.from_rows([[1]])))
    v = api.verify(net, time_limit=30, domain=Domain.box([0], [1]))
    # x >= 0: leaky(x) - leaky(2x) = -x, then leaky gives -x/3, and the ReLU 0.
    assert v.status is Status.NOT_INJECTIVE and check(v.certificate).valid


# -- stability bounds do not survive an output unit ----------------------------------------------

def test_stability_refuses_a_network_with_an_output_unit(tmp_path, capsys):
    # tanh(ReLU([x; -x])) saturates: no C > 0 has |f(x) - f(y)| >= C |x - y|,
    # but the layer's bound (C = 1/2) was printed as the network's.
    import json

    from exact_inj.cli import main
    from exact_inj.studies.stability import stability

    p = tmp_path / "t.json"
    p.write_text(json.dumps({"layers": [{"weight": [["1"], ["-1"]], "bias": ["0", "0"], "activation": "relu"}],
                             "output_unit": "tanh"}))
    assert main(["stability", str(p), "--quiet"]) == 2
    assert "output unit" in capsys.readouterr().err
    with pytest.raises(ValueError):
        stability(Network((Layer.from_rows([[1], [-1]]),), "", "tanh"))
