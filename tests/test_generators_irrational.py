"""Batch normalisation with irrational roots (docs/theory.md, section 12,
"Irrational batch normalisation"): exact surd signs against a separate
high-precision reference, the known answers of instances/generators/irrational_*,
certificate mutants rejected for a mathematical reason, and the symbolic import
checked against onnxruntime's float forward."""

from __future__ import annotations

import json
import math
import os
import random
from decimal import Decimal, getcontext
from fractions import Fraction as F

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from exact_inj import api  # noqa: E402
from exact_inj.certify.check import check  # noqa: E402
from exact_inj.certify.schema import Certificate, LayerwiseProof, SurdStructuralProof, Witness  # noqa: E402
from exact_inj.certify.surd import surd_sign  # noqa: E402
from exact_inj.errors import InputError  # noqa: E402
from exact_inj.io.json import network_from_json  # noqa: E402
from exact_inj.io.onnx import load_onnx, network_from_onnx_model  # noqa: E402
from exact_inj.model.normalised import NormalisedNetwork  # noqa: E402
from exact_inj.verdict import Status  # noqa: E402

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "instances", "generators")


# -- surd signs ----------------------------------------------------------------

def _reference_sign(a, b, R, c, S) -> int:
    """sign(a + b sqrt R + c sqrt S) with 90 significant digits: the values
    below have small heights, so a non-zero one is far above 1e-60."""
    getcontext().prec = 90

    def d(x):
        return Decimal(x.numerator) / Decimal(x.denominator)

    v = d(a) + d(b) * d(R).sqrt() + d(c) * d(S).sqrt()
    return 0 if abs(v) < Decimal(10) ** -60 else (1 if v > 0 else -1)


def test_surd_sign_agrees_with_a_high_precision_reference():
    rng = random.Random(15)
    roots = [F(0), F(1, 4), F(2), F(3), F(8), F(9, 4), F(5, 7), F(50)]
    zeros = 0
    for _ in range(4000):
        R, S = rng.choice(roots), rng.choice(roots)
        b, c = F(rng.randint(-6, 6), rng.randint(1, 4)), F(rng.randint(-6, 6), rng.randint(1, 4))
        a = F(rng.randint(-20, 20), rng.randint(1, 6))
        if rng.random() < 0.3:
            # Make exact cancellations likely: a = -(b sqrt R + c sqrt S) when that is rational.
            sR, sS = F(math.isqrt(R.numerator), math.isqrt(R.denominator)), F(math.isqrt(S.numerator),
                                                                              math.isqrt(S.denominator))
            if sR * sR == R and sS * sS == S:
                a = -(b * sR + c * sS)
            elif R == S:
                c = -b
                a = F(0) if rng.random() < 0.5 else a
        want = _reference_sign(a, b, R, c, S)
        zeros += want == 0
        assert surd_sign(a, b, R, c, S) == want, (a, b, R, c, S)
    assert zeros > 100  # the zero cases, where only an exact test is right, were exercised


def test_surd_sign_is_exact_where_floats_cannot_tell():
    # sqrt(10^20 + 1) - 10^10 = 1/(sqrt(10^20 + 1) + 10^10) ~ 5e-11 > 0; float64 gives 0.
    assert math.sqrt(10 ** 20 + 1) - 10 ** 10 == 0
    assert surd_sign(F(-10 ** 10), F(1), F(10 ** 20 + 1)) == 1
    # 2 sqrt 2 - sqrt 8 = 0 exactly, 3 sqrt 2 - sqrt 18 + 10^-30 > 0.
    assert surd_sign(F(0), F(2), F(2), F(-1), F(8)) == 0
    assert surd_sign(F(1, 10 ** 30), F(3), F(2), F(-1), F(18)) == 1


# -- known answers -------------------------------------------------------------

def _verify(name):
    net = load_onnx(os.path.join(HERE, name))
    assert isinstance(net, NormalisedNetwork)
    return net, api.verify(net, time_limit=60)


def test_irrational_keep_is_injective_with_surd_proofs():
    net, v = _verify("irrational_keep.onnx")
    assert v.status is Status.INJECTIVE, v.reason
    ev = v.certificate.evidence
    assert isinstance(ev, LayerwiseProof)
    assert [type(st.proof).__name__ for st in ev.stages][:2] == ["SurdStructuralProof"] * 2
    # Re-read from JSON (the network keeps its normalisations) and re-checked.
    text = json.dumps(v.certificate.to_json())
    again = Certificate.from_json(json.loads(text))
    assert isinstance(again.network, NormalisedNetwork) and again == v.certificate
    assert check(again).valid


def test_irrational_deficient_collides_before_any_root():
    net, v = _verify("irrational_deficient.onnx")
    assert v.status is Status.NOT_INJECTIVE and v.route == "first_layer", v.reason
    w = v.witness
    assert net.layers[0].pre_activation(w.x) == net.layers[0].pre_activation(w.y) and w.x != w.y
    # The float forward of onnxruntime agrees: the images coincide.
    sess = ort.InferenceSession(os.path.join(HERE, "irrational_deficient.onnx"), providers=["CPUExecutionProvider"])
    outs = [sess.run(None, {"z": np.array([float(t) for t in p], np.float32).reshape(1, 4, 1, 1)})[0]
            for p in (w.x, w.y)]
    assert np.array_equal(outs[0], outs[1])


def test_irrational_dead_zone_is_unknown_naming_the_layer():
    _, v = _verify("irrational_dead_zone.onnx")
    assert v.status is Status.UNKNOWN
    assert "layer 2" in v.reason and "irrational" in v.reason


# -- mutants -------------------------------------------------------------------

@pytest.fixture(scope="module")
def keep_cert():
    return api.verify(load_onnx(os.path.join(HERE, "irrational_keep.onnx")), time_limit=60).certificate.to_json()


def _mutant(obj, edit):
    obj = json.loads(json.dumps(obj))
    edit(obj)
    return check(Certificate.from_json(obj))


def test_mutant_mean_past_sqrt2_breaks_the_surd_bias_condition(keep_cert):
    def edit(o):
        # Layer 2, channel 0: mean one float32 step above sqrt 2 (the dead-zone instance).
        o["network"]["normalisations"][1]["mean"][0] = "1.414213657379150390625"
    res = _mutant(keep_cert, edit)
    assert not res.valid and "bias condition" in res.reason


def test_mutant_root_square_4_flips_the_condition_sign(keep_cert):
    def edit(o):
        # var + eps = 1 instead of 2: 4 (1 - 1.414...) < 0; still an exact rational root.
        o["network"]["normalisations"][1]["root"][0] = "1"
    res = _mutant(keep_cert, edit)
    assert not res.valid and "bias condition" in res.reason


def test_mutant_negative_gamma_unpairs_the_rows(keep_cert):
    def edit(o):
        # A negative factor flips the pulled-out row: [K; -4K] becomes [-K; -4K], not a pair.
        g = o["network"]["normalisations"][1]["gamma"]
        g[0] = "-" + g[0]
    res = _mutant(keep_cert, edit)
    assert not res.valid and "negative multiple" in res.reason


def test_mutant_zero_gamma_makes_a_constant_row(keep_cert):
    def edit(o):
        o["network"]["normalisations"][1]["gamma"][0] = "0"
    res = _mutant(keep_cert, edit)
    assert not res.valid and "gamma = 0" in res.reason


def test_mutant_dependent_rows_are_refused(keep_cert):
    def edit(o):
        st = o["proof"]["stages"][1]["proof"]
        # Pair rows (i, j) with (i', j') where i' = i: B would repeat a row.
        st["pairs"][1] = [st["pairs"][0][0], st["pairs"][1][1]]
    res = _mutant(keep_cert, edit)
    assert not res.valid and "repeat" in res.reason


def test_mutant_plain_structural_proof_is_refused_for_a_normalised_layer(keep_cert):
    def edit(o):
        o["proof"]["stages"][0]["proof"]["kind"] = "structural"
    res = _mutant(keep_cert, edit)
    assert not res.valid and "surd_structural" in res.reason


def test_mutant_witness_after_the_first_map_is_refused():
    net, v = _verify("irrational_deficient.onnx")
    w = v.witness
    bad = Certificate(net, v.certificate.domain, Status.NOT_INJECTIVE, Witness(w.x, tuple(t + 1 for t in w.x)))
    res = check(bad)
    assert not res.valid and "different values" in res.reason


def test_plain_reader_refuses_the_normalised_network(keep_cert):
    # The base network alone is not the network: a reader that does not know
    # normalisations must refuse it, not check a different network.
    with pytest.raises(InputError, match="normalisations"):
        network_from_json(keep_cert["network"])


# -- the import against onnxruntime ----------------------------------------------

def _float_forward(net: NormalisedNetwork, z):
    """An in-test float evaluator of the normalised network (written from the
    definition in model/normalised.py, not from the importer)."""
    h = np.asarray(z, float)
    for layer, norm in zip(net.layers, net.norms):
        pre = np.array([float(v) for v in layer.pre_activation([F(t) for t in h])])
        if norm is not None:
            per = layer.out_dim // norm.channels
            g, b, m, r = (np.repeat([float(v) for v in t], per) for t in (norm.gamma, norm.beta, norm.mean, norm.root))
            pre = g * (pre - m) / np.sqrt(r) + b
        h = np.maximum(pre, 0) if layer.activation == "relu" else pre
    return np.tanh(h) if net.output_unit == "tanh" else h


def test_symbolic_import_matches_onnxruntime():
    path = os.path.join(HERE, "irrational_keep.onnx")
    net = load_onnx(path)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    for _ in range(3):
        z = rng.integers(-8, 9, size=4) / 8
        want = sess.run(None, {"z": z.astype(np.float32).reshape(1, 4, 1, 1)})[0].ravel()
        assert np.allclose(_float_forward(net, z), want, atol=1e-5)


def _bn_then(op):
    from onnx import TensorProto, helper, numpy_helper
    inits = [numpy_helper.from_array(np.ones((2, 2), np.float32), "W")]
    for nm, v in (("g", [1, 1]), ("b", [0, 0]), ("m", [0, 0]), ("v", [2, 3])):
        inits.append(numpy_helper.from_array(np.array(v, np.float32), nm))
    nodes = [helper.make_node("MatMul", ["x", "W"], ["t"]),
             helper.make_node("BatchNormalization", ["t", "g", "b", "m", "v"], ["n"], epsilon=0.0),
             helper.make_node(op, ["n"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_irrational_bn_then_relu_is_symbolic_then_leaky_is_refused():
    net = network_from_onnx_model(_bn_then("Relu"))
    assert isinstance(net, NormalisedNetwork) and net.norms[0].root == (F(2), F(3))
    with pytest.raises(InputError, match="irrational roots"):
        network_from_onnx_model(_bn_then("LeakyRelu"))
    with pytest.raises(InputError, match="irrational roots"):
        network_from_onnx_model(_bn_then("Neg"))


def _relu_then_bn(gamma):
    from onnx import TensorProto, helper, numpy_helper
    W = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], np.float32).T.copy()
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(np.eye(4, dtype=np.float32), "W2")]
    for nm, v in (("g", gamma), ("b", [0, 0, 0, 0]), ("m", [0, 0, 0, 0]), ("v", [2, 3, 5, 7])):
        inits.append(numpy_helper.from_array(np.array(v, np.float32), nm))
    nodes = [helper.make_node("MatMul", ["x", "W"], ["t"]), helper.make_node("Relu", ["t"], ["r"]),
             helper.make_node("MatMul", ["r", "W2"], ["t2"]),
             helper.make_node("BatchNormalization", ["t2", "g", "b", "m", "v"], ["y"], epsilon=0.0)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    return network_from_onnx_model(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))


def test_normalised_linear_last_layer_by_the_rank_of_its_gamma_rows():
    v = api.verify(_relu_then_bn([1, 1, 1, 1]), time_limit=30)
    assert v.status is Status.INJECTIVE, v.reason
    # gamma = 0 turns a row into a constant: rank 3 < 4 on the orthant, so layerwise cannot conclude.
    assert api.verify(_relu_then_bn([0, 1, 1, 1]), time_limit=30).status is Status.UNKNOWN

    def edit(o):
        o["network"]["normalisations"][1]["gamma"][0] = "0"
    res = _mutant(v.certificate.to_json(), edit)
    assert not res.valid and "rank 3 < 4" in res.reason


def test_invert_and_injectivize_refuse_a_normalised_network():
    # Their answers would be about the base layers, a different function.
    from exact_inj.network.injectivize import injectivize
    from exact_inj.network.inverse import invert

    net = _relu_then_bn([1, 1, 1, 1])
    with pytest.raises(InputError, match="irrational"):
        invert(net, ["0"] * 4)
    with pytest.raises(InputError, match="irrational"):
        injectivize(net)
