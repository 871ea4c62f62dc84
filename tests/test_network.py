"""Networks: stages and folds, the first-layer, layerwise and singular-piece routes.

Every verdict is asserted together with its checked certificate, and every
witness is re-evaluated here with plain Fractions (not Network.evaluate).
"""

from __future__ import annotations

import json
from fractions import Fraction as F
from pathlib import Path

import pytest

import exact_inj
from exact_inj import network as netmod
from exact_inj.certify.schema import Certificate
from exact_inj.model.domain import Domain
from exact_inj.model import Layer, Network

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "onnx"
B_INJ = [[2, 1], [-2, 1], [-2, -1], [2, -1]]  # the paper's injective Figure 2 layer
I4 = [[int(i == j) for j in range(4)] for i in range(4)]


def own_eval(layers, x):
    h = [F(v) for v in x]
    for W, b, act in layers:
        pre = [sum((F(w) * hv for w, hv in zip(row, h)), F(bb)) for row, bb in zip(W, b)]
        h = [max(p, F(0)) for p in pre] if act == "relu" else pre
    return h


def spec(net: Network):
    return [(L.weight, L.bias, L.activation) for L in net.layers]


def decided(net, domain=None, **kw):
    v = exact_inj.verify(net, time_limit=60, milp="none", domain=domain, **kw)
    if v.certificate is not None:
        assert exact_inj.check(v.certificate).valid
        roundtrip = Certificate.from_json(json.loads(json.dumps(v.certificate.to_json())))
        assert exact_inj.check(roundtrip).valid
    if v.witness is not None:
        x, y = v.witness.x, v.witness.y
        assert x != y and own_eval(spec(net), x) == own_eval(spec(net), y)
        if domain is not None:
            assert domain.contains(x) and domain.contains(y)
    return v


def test_linear_layers_fold_exactly_and_never_across_relu():
    net = Network((Layer.from_rows([[1, 2], [3, 4]], [1, -1], activation="linear"),
                   Layer.from_rows([[1, 0], [0, 1]], [0, 5]),
                   Layer.from_rows([[2, 0]], [1], activation="linear")))
    st = netmod.stages(net)
    assert [(s.start, s.stop) for s in st] == [(0, 2), (2, 3)]
    assert st[0].layer.weight == ((F(1), F(2)), (F(3), F(4))) and st[0].layer.bias == (F(1), F(4))
    for x in ([F(1), F(-2)], [F(1, 3), F(5)]):
        h = st[0].layer.apply(x)
        assert st[1].layer.apply(h) == net.evaluate(x)


def test_interval_box_contains_the_image():
    layer = Layer.from_rows([[1, -2], [-1, -1]], [F(1, 2), -3])
    dom = Domain.box([-1, 0], [1, 2])
    box = netmod.image_box(layer, dom)
    assert box.lower == (F(0), F(0)) and box.upper == (F(3, 2), F(0))
    for x in ([F(-1), F(0)], [F(1), F(2)], [F(1, 3), F(1)]):
        assert box.contains(layer.apply(x))


def test_relu_identity_after_injective_layer_is_layerwise_injective():
    net = Network((Layer.from_rows(B_INJ), Layer.from_rows(I4)))
    for dom in (None, Domain.box([-1, -1], [1, 1])):
        v = decided(net, dom)
        assert v.status.value == "injective" and v.route == "layerwise"


def test_linear_end_with_full_rank_is_injective():
    net = Network((Layer.from_rows(B_INJ), Layer.from_rows([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
                                                             activation="linear")))
    assert decided(net).status.value == "injective"


def test_first_layer_collision_is_the_networks():
    net = Network((Layer.from_rows([[1, 0], [0, 1]]), Layer.from_rows([[1, 0], [0, 1]])))
    v = decided(net)
    assert v.status.value == "not_injective" and v.route == "first_layer"


def test_singular_piece_witness_when_a_later_stage_collapses():
    # Stage 0 is injective (Figure 2), stage 1 maps R^4 to R: every piece has rank <= 1 < 2.
    net = Network((Layer.from_rows(B_INJ), Layer.from_rows([[1, 2, 3, 4]], activation="linear")))
    v = decided(net)
    assert v.status.value == "not_injective" and v.route == "singular_piece"


def test_layerwise_failure_goes_end_to_end():
    # [I, -I] after ReLU([B; -B] z) computes B z (injective), but stage 1 alone is not
    # injective on the orthant: only an end-to-end argument decides this (docs/theory.md, section 8).
    B = [[2, 1], [1, 1]]
    first = Layer.from_rows(B + [[-v for v in r] for r in B])
    net = Network((first, Layer.from_rows([[1, 0, -1, 0], [0, 1, 0, -1]], activation="linear")))
    for x in ([F(1), F(-2)], [F(3, 4), F(1, 5)]):
        assert net.evaluate(x) == tuple(sum((F(b) * xi for b, xi in zip(r, x)), F(0)) for r in B)
    v = decided(net)
    assert v.status.value == "injective" and v.route == "end_to_end"
    assert "layerwise route fails" in v.reason and v.proof.pairs


def test_linear_stage_on_a_degenerate_box():
    # W = [[1, 0]] has rank 1 < 2, but the box fixes x_2: injective there, and not on a full box.
    net = Network((Layer.from_rows([[1, 0]], activation="linear"),))
    assert decided(net, Domain.box([0, 1], [1, 1])).status.value == "injective"
    v = decided(net, Domain.box([0, 0], [1, 1]))
    assert v.status.value == "not_injective"


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/onnx is absent")
@pytest.mark.parametrize("name, verdict, route", [
    ("test_nano.onnx", "not_injective", "instant"),
    ("test_tiny.onnx", "not_injective", "first_layer"),
    ("test_small.onnx", "not_injective", "first_layer"),
    ("mnist-net_256x2.onnx", "not_injective", "first_layer"),
])
def test_shared_onnx_networks(name, verdict, route):
    pytest.importorskip("onnx")
    v = exact_inj.verify(SHARED / name, time_limit=120, milp="none")
    assert v.status.value == verdict and v.route == route
    assert exact_inj.check(v.certificate).valid


NETS = Path(__file__).resolve().parents[1] / "instances" / "networks"
NET_EXPECTED = json.loads((NETS / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(NET_EXPECTED))
def test_network_instances(name):
    net = exact_inj.load_network(NETS / name)
    v = decided(net)
    assert v.status.value == NET_EXPECTED[name]["verdict"] and v.route == NET_EXPECTED[name]["route"]


def test_every_network_instance_has_an_expected_answer():
    files = {p.name for p in NETS.glob("*.json")} - {"expected.json"}
    assert files == set(NET_EXPECTED)


def test_lifted_witness_when_stage_one_collides_inside_the_range():
    # ReLU(I z) maps the orthant onto itself, so a collision of stage 1 found on the
    # orthant has preimages: it lifts to a network witness without any end-to-end work,
    # even at 30 inputs and 90 ReLUs (far beyond the end-to-end route's reach).
    import numpy as np

    rng = np.random.default_rng(0)
    n = 30
    W = rng.integers(-3, 4, size=(2 * n, n))
    W[-1] = W[0]
    net = Network((Layer.from_rows(np.eye(n, dtype=int).tolist()), Layer.from_rows(W.tolist()),
                   Layer.from_rows(rng.integers(-2, 3, size=(n, 2 * n)).tolist(), activation="linear")))
    v = decided(net, Domain.orthant())
    assert v.status.value == "not_injective" and v.route == "lifted"
    assert all(c >= 0 for c in v.witness.x + v.witness.y)


def test_lift_refuses_points_without_preimages():
    # ReLU([B; -B] z) never outputs two positive entries of a +/- pair, so (1, 0, 1, 0)
    # has no preimage and must not lift.
    B = [[2, 1], [1, 1]]
    net = Network((Layer.from_rows(B + [[-v for v in r] for r in B]),
                   Layer.from_rows([[1, 0, -1, 0], [0, 1, 0, -1]], activation="linear")))
    h = (F(1), F(0), F(1), F(0))
    h2 = (F(2), F(0), F(2), F(0))
    assert netmod.lifted_witness(net, Domain(), 1, h, h2) is None
    # Both of these have preimages, but they are not a collision of stage 1
    # (B z = (3, 2) and (-3, -2)): the lifted pair fails the exact re-evaluation.
    assert netmod.lifted_witness(net, Domain(), 1, (F(3), F(2), F(0), F(0)), (F(0), F(0), F(3), F(2))) is None
