"""Issue #14, items 2 and 8 ("network witnesses lack the active neurons and
direction that cli.md promises"; small witnesses for convolutions).

Every claim the description makes is recomputed here with our own Fraction
code (relu_eval below) and sympy's rank, independently of exact_inj.collision.
"""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction as F

import numpy as np
import pytest
import sympy

import exact_inj
from exact_inj import Layer, Network


def run(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "exact_inj", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def pre(W, b, x):
    return [sum(F(w) * xi for w, xi in zip(row, x)) + F(bi) for row, bi in zip(W, b)]


def relu(v):
    return [max(a, F(0)) for a in v]


def check_description(layers, x, y, d):
    """Every field of the description recomputed from the weights."""
    moved = [j for j in range(len(x)) if x[j] != y[j]]
    assert d["direction"]["changed"] == len(moved) and d["direction"]["indices"] == moved[:64]
    assert [F(s) for s in d["direction"]["values"]] == [y[j] - x[j] for j in moved[:64]]
    u, v = list(x), list(y)
    collapse = None
    for k, ((W, b, act), e) in enumerate(zip(layers, d["layers"])):
        pu, pv = pre(W, b, u), pre(W, b, v)
        hu, hv = (relu(pu), relu(pv)) if act == "relu" else (pu, pv)
        assert e["layer"] == k + 1 and e["units"] == len(W) and e["activation"] == act
        if act == "relu":
            on_x = [i for i, a in enumerate(pu) if a > 0]
            on_y = [i for i, a in enumerate(pv) if a > 0]
            assert e["active_at_x"]["count"] == len(on_x) and e["active_at_x"]["indices"] == on_x[:64]
            assert e["active_at_y"]["count"] == len(on_y) and e["active_at_y"]["indices"] == on_y[:64]
            assert e["active_at_x"]["capped"] == (len(on_x) > 64)
        assert e["outputs_differ"] == sum(1 for a, c in zip(hu, hv) if a != c)
        if collapse is None and hu == hv and u != v:
            collapse = k + 1
            mid = [(a + c) / 2 for a, c in zip(u, v)]
            rows = [i for i, a in enumerate(pre(W, b, mid)) if a >= 0] if act == "relu" else list(range(len(W)))
            c = e["collision"]
            assert c["active"]["count"] == len(rows) and c["inputs"] == len(W[0])
            rk = sympy.Matrix([[sympy.Rational(str(F(W[i][j]))) for j in range(len(W[0]))] for i in rows]).rank() \
                if rows else 0
            assert c["rank"] == rk < len(W[0])
        else:
            assert "collision" not in e
        u, v = hu, hv
    assert d["collapse_layer"] == collapse is not None


def test_network_witness_json_names_active_neurons_per_layer(tmp_path):
    # 3 -> 4 -> 2 ReLU network: not injective (the first stage has 4 < 6 rows).
    W1, b1 = [[1, 2, 3], [-1, 0, 2], [2, 1, -1], [0, 1, 1]], [0, 1, -1, 0]
    W2, b2 = [[1, -1, 0, 2], [1, 1, -1, 0]], [0, 0]
    p = tmp_path / "n.json"
    p.write_text(json.dumps({"layers": [{"weight": W1, "bias": b1}, {"weight": W2, "bias": b2}]}))
    r = run("verify", p, "--json")
    assert r.returncode == 1, r.stderr
    w = json.loads(r.stdout)["witness"]
    x, y = [F(a) for a in w["x"]], [F(a) for a in w["y"]]
    check_description([(W1, b1, "relu"), (W2, b2, "relu")], x, y, w)
    r = run("verify", p)
    assert "direction y - x: changes" in r.stdout and "layer 2 (dense, 2 relu): active at x" in r.stdout
    assert "the collision happens here" in r.stdout and "at the midpoint of its inputs" in r.stdout


def test_collision_deeper_than_the_first_layer_is_described():
    # The first layer is injective (I; -I), the second collapses: the witness
    # differs after layer 1 and is equal after layer 2.
    W1, b1 = [[1, 0], [0, 1], [-1, 0], [0, -1]], [0, 0, 0, 0]
    W2, b2 = [[1, 1, 0, 0]], [0]
    net = Network((Layer.from_rows(W1, b1), Layer.from_rows(W2, b2, activation="linear")))
    v = exact_inj.verify(net, time_limit=60)
    assert v.status == "not_injective" and exact_inj.check(v.certificate).valid
    d = v.to_json()["witness"]
    check_description([(W1, b1, "relu"), (W2, b2, "linear")], v.witness.x, v.witness.y, d)
    assert d["collapse_layer"] in (1, 2) and "active_at_x" not in d["layers"][1]
    # A pair chosen to collapse only at layer 2: (1, 0) and (0, 1).
    from exact_inj.collision import describe

    x, y = (F(1), F(0)), (F(0), F(1))
    d = describe(net, x, y)
    check_description([(W1, b1, "relu"), (W2, b2, "linear")], x, y, d)
    assert d["collapse_layer"] == 2 and d["layers"][0]["outputs_differ"] == 2
    assert d["layers"][1]["collision"]["rank"] == 1


def test_description_is_capped_on_wide_layers():
    # 2 inputs -> 300 ReLUs -> 1 linear output: more than 64 active neurons,
    # listed up to 64 and said to be capped.
    rng = np.random.default_rng(7)
    W1 = rng.integers(-5, 6, size=(300, 2)).tolist()
    b1 = [abs(int(a)) + 100 for a in rng.integers(-5, 6, size=300)]  # active near 0
    W2 = [rng.integers(-3, 4, size=300).tolist()]
    net = Network((Layer.from_rows(W1, b1), Layer.from_rows(W2, [0], activation="linear")))
    v = exact_inj.verify(net, time_limit=120)
    assert v.status == "not_injective" and exact_inj.check(v.certificate).valid
    d = v.to_json()["witness"]
    check_description([(W1, b1, "relu"), (W2, [0], "linear")], v.witness.x, v.witness.y, d)
    first = d["layers"][0]
    assert first["active_at_x"]["count"] > 64 and first["active_at_x"]["capped"]
    assert len(first["active_at_x"]["indices"]) == 64


def test_single_layer_description_matches_its_certificate():
    v = exact_inj.verify([[2, 1], [-2, 2], ["-1.5", -2], [2, -1]])
    w = v.to_json()["witness"]
    c = w["layers"][0]["collision"]
    assert c["active"]["indices"] == w["active_rows"] and c["rank"] == w["active_rank"]


# ------------------------------------------------ small witnesses for convolutions


def conv_same_3x3(K, b, x, C, H, W):
    """Our own 'same' zero-padded 3x3 cross-correlation, channel-major layout."""
    out = []
    for o in range(len(K)):
        for i in range(H):
            for j in range(W):
                s = F(b[o])
                for c in range(C):
                    for di in range(3):
                        for dj in range(3):
                            ii, jj = i + di - 1, j + dj - 1
                            if 0 <= ii < H and 0 <= jj < W:
                                s += F(K[o][c][di][dj]) * x[c * H * W + ii * W + jj]
                out.append(max(s, F(0)))
    return out


def test_conv_layer_witness_is_small():
    # 3 -> 3 channels, 'same' zero padding, 12 x 12: m = n < 2n, not injective.
    # The few-rows witness used to move every input by 7-digit integers and
    # step by 17-digit fractions; now its numbers have at most 4 digits.
    from exact_inj.model import ConvSpec

    rng = np.random.default_rng(11)
    K = rng.integers(-3, 4, size=(3, 3, 3, 3)).tolist()
    L = ConvSpec.build(K, 3, 3, [12, 12], "zero", "same").layer()
    probe = [F(int(a)) for a in rng.integers(-5, 6, size=L.in_dim)]
    assert conv_same_3x3(K, [0] * 3, probe, 3, 12, 12) == list(L.apply(probe))  # the reference reads the layout
    v = exact_inj.verify(Network((L,)), time_limit=60)
    assert v.status == "not_injective" and exact_inj.check(v.certificate).valid
    x, y = v.witness.x, v.witness.y
    assert x != y and conv_same_3x3(K, [0] * 3, x, 3, 12, 12) == conv_same_3x3(K, [0] * 3, y, 3, 12, 12)
    from exact_inj.network.shorten import height

    assert height(x) <= 4 and height(y) <= 4, (height(x), height(y))


def test_conv_network_witness_is_shortened():
    # The shipped CNN classifier (conv 1 -> 8 on 28x28, ReLU, 2 linear
    # outputs), answered by the narrow-piece route from float sample points
    # (19 digits); the shown pair has at most 6.
    from pathlib import Path

    from exact_inj.network.shorten import height

    path = Path(__file__).resolve().parents[1] / "instances" / "conv" / "cnn_binary_classifier_28x28.json"
    v = exact_inj.verify(str(path), time_limit=120)
    assert v.status == "not_injective" and exact_inj.check(v.certificate).valid
    assert max(height(v.witness.x), height(v.witness.y)) <= 6
    s = v.info["witness_shortened"]
    assert s["digits_after"] < s["digits_before"]
    d = v.to_json()["witness"]
    assert d["layers"][0]["type"] == "conv" and d["collapse_layer"] == 2


def test_shorter_pair_on_a_conv_network_finds_a_dead_layer():
    # A blur with bias -1 is all negative at the zero image: the given pair
    # (huge, far out in the dead region) is replaced by one at 0, checked here
    # with our own convolution.
    import time

    from exact_inj.model import ConvSpec, Domain
    from exact_inj.network.shorten import height, shorter_pair

    K = [[[[1, 2, 1], [2, 4, 2], [1, 2, 1]]]]
    L = ConvSpec.build(K, 1, 1, [6, 6], "zero", "same", bias=[-1]).layer()
    net = Network((L, Layer.from_rows([[1] * 36], activation="linear")))
    x = tuple(F(-10**20, 3) for _ in range(36))
    y = (x[0] + F(1, 10**25),) + x[1:]
    pair = shorter_pair(net, Domain(), x, y, time.perf_counter() + 30)
    assert pair is not None
    a, b = pair
    assert a != b and max(height(a), height(b)) <= 2
    assert conv_same_3x3(K, [-1], a, 1, 6, 6) == conv_same_3x3(K, [-1], b, 1, 6, 6) == [0] * 36


def test_narrow_step_with_ties_only_returns_collisions():
    # Integer points of integer networks put many ReLUs exactly at 0; whatever
    # the tie choices, a returned pair collides (our own evaluation) and two
    # thirds of the tries at least find one.
    from exact_inj.model import Domain
    from exact_inj.network.witness import narrow_pair_at

    rng = np.random.default_rng(21)
    found = 0
    for _ in range(30):
        W1, b1 = rng.integers(-2, 3, size=(6, 4)).tolist(), rng.integers(-1, 2, size=6).tolist()
        W2 = rng.integers(-2, 3, size=(2, 6)).tolist()
        net = Network((Layer.from_rows(W1, b1), Layer.from_rows(W2, [0, 0], activation="linear")))
        x = tuple(F(int(a)) for a in rng.integers(-1, 2, size=4))
        pair = narrow_pair_at(net, Domain(), x, ties=True)
        if pair is None:
            continue
        found += 1
        a, b = pair
        out = [pre(W2, [0, 0], relu(pre(W1, b1, z))) for z in (a, b)]
        assert a != b and out[0] == out[1]
    assert found >= 20, found


def test_description_leaves_out_layers_above_the_weight_cap(monkeypatch):
    import exact_inj.collision as collision

    net = Network((Layer.from_rows([[1, 0], [0, 1]]), Layer.from_rows([[1, 1]], activation="linear")))
    x, y = (F(1), F(0)), (F(0), F(1))
    assert collision.weights(net) == 6 and collision.describe(net, x, y)["collapse_layer"] == 2
    monkeypatch.setattr(collision, "MAX_DESCRIBED_WEIGHTS", 5)
    d = collision.describe(net, x, y)
    assert d["layers"] is None and "6 weights" in d["layers_note"] and d["direction"]["changed"] == 2
