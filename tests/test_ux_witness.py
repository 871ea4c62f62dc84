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
