"""Generators end to end (docs/generators.md): the known answers of
instances/generators, their certificates re-checked, mutants of the
structured certificates rejected for a mathematical reason, and the imported
generator checked against onnxruntime."""

from __future__ import annotations

import os
from dataclasses import replace
from fractions import Fraction as F

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from exact_inj import api  # noqa: E402
from exact_inj.certify.check import check  # noqa: E402
from exact_inj.certify.schema import LayerwiseProof, StructuralProof  # noqa: E402
from exact_inj.io.onnx import load_onnx, network_from_onnx_model  # noqa: E402
from exact_inj.model import ConvLayer, KernelSpec, Network  # noqa: E402
from exact_inj.studies.generator import dcgan_generator  # noqa: E402
from exact_inj.verdict import Status  # noqa: E402

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "instances", "generators")


def certificate(path, expected):
    net = load_onnx(os.path.join(HERE, path))
    v = api.verify(net, time_limit=60)
    assert v.status is expected, v.reason
    cert = v.certificate
    assert check(cert).valid
    return net, cert


def test_small_generator_is_injective_through_its_kernels():
    net, cert = certificate("small_keep.onnx", Status.INJECTIVE)
    assert net.output_unit == "tanh"
    assert all(isinstance(L, ConvLayer) and isinstance(L.spec, KernelSpec) for L in net.layers)
    assert isinstance(cert.evidence, LayerwiseProof)
    kinds = [type(st.proof).__name__ for st in cert.evidence.stages]
    assert kinds[:2] == ["StructuralProof", "StructuralProof"], kinds


def test_small_rgb_generator_is_injective():
    certificate("small_rgb.onnx", Status.INJECTIVE)


def test_deficient_generator_collides_in_latent_space():
    net, cert = certificate("small_deficient.onnx", Status.NOT_INJECTIVE)
    w = cert.evidence
    d = [a - b for a, b in zip(w.x, w.y)]
    # The witness moves along e_0 - e_1 in latent space, and the whole network maps both points alike.
    assert d[0] == -d[1] != 0 and not any(d[2:])
    assert net.evaluate(w.x) == net.evaluate(w.y)


def test_structured_certificate_mutants_are_rejected():
    net, cert = certificate("small_keep.onnx", Status.INJECTIVE)
    stages = cert.evidence.stages
    st0 = stages[0]
    pairs = list(st0.proof.pairs)
    # 1. A pair whose second row is not a negative multiple of the first.
    bad = [(pairs[0][0], pairs[1][1])] + pairs[1:]
    # 2. The same row of C named twice (B would be singular).
    dup = [pairs[0], (pairs[0][0], pairs[0][1])] + pairs[2:]
    # 3. Too few pairs: n independent rows are needed.
    short = pairs[:-1]
    for mutant in (bad, dup, short):
        ev = LayerwiseProof((replace(st0, proof=StructuralProof(tuple(mutant))), *stages[1:]))
        assert not check(replace(cert, evidence=ev)).valid
    # 4. The network changed: a bias that breaks the bias condition of a used pair.
    L = net.layers[0]
    o, o2 = 0, L.spec.out_channels // 2
    bias = list(L.spec.bias)
    bias[o2] = -100 - bias[o] * 100
    bad_net = Network((replace(L.spec, bias=tuple(bias)).layer("relu"),
                       *net.layers[1:]), net.name, net.output_unit)
    res = check(replace(cert, network=bad_net))
    assert not res.valid and "bias condition" in res.reason
    # 5. A witness whose two points differ after the network.
    _, wcert = certificate("small_deficient.onnx", Status.NOT_INJECTIVE)
    moved = replace(wcert.evidence, y=(wcert.evidence.y[0] + 1, *wcert.evidence.y[1:]))
    assert not check(replace(wcert, evidence=moved)).valid


def test_generator_matches_onnxruntime():
    m = dcgan_generator(8, (8, 4), output="rgb", seed=3)
    net = network_from_onnx_model(m)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for _ in range(2):
        z = rng.standard_normal((1, 8, 1, 1)).astype(np.float32)
        ref = np.asarray(sess.run(None, {"z": z})[0], dtype=np.float64).ravel()
        got = np.tanh([float(v) for v in net.evaluate([F(float(v)) for v in z.ravel()])])
        assert np.abs(got - ref).max() <= 1e-5


@pytest.mark.slow
def test_full_size_deficient_generator():
    m = dcgan_generator(output="keep", deficient=True)
    net = network_from_onnx_model(m)
    v = api.verify(net, time_limit=120)
    assert v.status is Status.NOT_INJECTIVE


@pytest.mark.slow
def test_full_size_keep_generator_is_certified_injective():
    """Issue #15's full-size known answer: the injectivity-keeping generator
    (latent 256 -> 16 x 64 x 64) is injective, every stage through its kernel
    (nested dissection mod p), and the certificate passes a fresh check."""
    m = dcgan_generator(output="keep")
    net = network_from_onnx_model(m)
    v = api.verify(net, time_limit=600)
    assert v.status is Status.INJECTIVE, v.reason
    assert api.check(v.certificate.to_json()).valid
