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
