"""The layer-by-layer inversion ("peel", docs/inverse.md) and its certificate.

Answers are compared with the independent brute force of tests/test_invert.py
(imports nothing from exact_inj) and with the case split (``use_peel=False``);
certificate mutants are required to be rejected when an independent reason
says they are invalid (a layer whose fixed rows do not span, a point that
does not map to y, a moved coordinate, a chain that does not solve its
layer, a u that proves nothing).
"""

from __future__ import annotations

import copy
import os
import random
import time
from fractions import Fraction as F

import pytest

from exact_inj.certify.inverse import check_inverse, check_inverse_file
from exact_inj.cli import app as cli
from exact_inj.io import load_network
from exact_inj.model import Domain, Layer, Network
from exact_inj.network.inverse import invert
from test_invert import as_lists, random_net, ref_domain, reference_preimage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rank(rows):
    """Rank over Q by plain Gaussian elimination in Fractions (independent of exact_inj)."""
    M = [list(map(F, r)) for r in rows]
    rank, col = 0, 0
    ncols = len(M[0]) if M else 0
    while rank < len(M) and col < ncols:
        p = next((i for i in range(rank, len(M)) if M[i][col] != 0), None)
        if p is None:
            col += 1
            continue
        M[rank], M[p] = M[p], M[rank]
        for i in range(len(M)):
            if i != rank and M[i][col] != 0:
                f = M[i][col] / M[rank][col]
                M[i] = [a - f * b for a, b in zip(M[i], M[rank])]
        rank += 1
        col += 1
    return rank


def _all_layers_span(net, x):
    """The peel's condition at x, recomputed here: rows with positive ReLU
    output (all rows of a linear or LeakyReLU layer) of rank = input dimension."""
    h = list(map(F, x))
    for L in net.layers:
        pre = [sum((w * v for w, v in zip(row, h)), F(0)) + b for row, b in zip(L.weight, L.bias)]
        rows = [row for row, p in zip(L.weight, pre) if L.activation != "relu" or p > 0]
        if _rank(rows) != L.in_dim:
            return False
        h = list(L.apply(tuple(h)))
    return True


def bmdb_net(rng, widths, last="linear", leaky=False):
    """Layers ReLU([B; -D B] h + [c; -D c]) with B of full column rank and D > 0 diagonal,
    then a square invertible linear (or another [B; -DB]) output layer."""
    layers = []
    n_in = widths[0]
    for n_u in widths[1:]:
        n_u = max(n_u, n_in)  # B needs full column rank
        while True:
            B = [[F(rng.randint(-3, 3), rng.choice((1, 2))) for _ in range(n_in)] for _ in range(n_u)]
            if _rank(B) == n_in:
                break
        d = [F(rng.randint(1, 4), rng.choice((1, 3))) for _ in range(n_u)]
        c = [F(rng.randint(-2, 2)) for _ in range(n_u)]
        W = B + [[-di * v for v in row] for di, row in zip(d, B)]
        act = "leaky_relu" if leaky and rng.random() < 0.5 else "relu"
        if act == "leaky_relu":
            layers.append(Layer(tuple(map(tuple, B)), tuple(c), "leaky_relu", F(1, rng.randint(2, 5))))
        else:
            layers.append(Layer.from_rows(W, c + [-di * v for di, v in zip(d, c)]))
        n_in = layers[-1].out_dim
    n = layers[-1].out_dim
    if last == "linear":
        while True:
            A = [[rng.randint(-3, 3) for _ in range(n)] for _ in range(n)]
            if _rank(A) == n:
                break
        layers.append(Layer.from_rows(A, [rng.randint(-2, 2) for _ in range(n)], "linear"))
    return Network(tuple(layers))


@pytest.mark.parametrize("seed", range(4))
def test_round_trips_on_random_bmdb_networks(seed):
    rng = random.Random(seed)
    for i in range(6):
        widths = [rng.randint(1, 3)]
        for _ in range(rng.randint(1, 3)):
            widths.append(widths[-1] + rng.randint(0, 2))
        net = bmdb_net(rng, widths, last=rng.choice(("linear", "relu")), leaky=(i % 3 == 2))
        x = tuple(F(rng.randint(-9, 9), rng.randint(1, 4)) for _ in range(net.input_dim))
        y = net.evaluate(x)
        r = invert(net, y)
        # [B; -DB] with D > 0: one row of each pair is positive unless B_i h + c_i = 0, so the
        # fixed rows span whenever no pre-activation of B is 0; check that reading independently.
        if _all_layers_span(net, x):
            assert r.stats["route"] == "peel" and r.certificate == {"kind": "peel"}
        assert r.preimage == "point" and r.points == [x], r.reason
        assert check_inverse(net, y, r.to_json())[0]


def _peel_cases(count, seed):
    """Small networks whose layers widen (so the peel often applies), outputs in the range,
    off it, and 0; every domain kind."""
    rng = random.Random(seed)
    shapes = [(1, [2], 2, "linear"), (1, [2], 2, "relu"), (2, [4], 2, "linear"), (2, [3], 3, "relu"),
              (1, [2, 3], 3, "relu"), (2, [], 3, "relu"), (1, [3], 1, "linear")]
    doms = [Domain.reals(), Domain.orthant(), Domain.box([-1, 0], [2, 1]), Domain.box([0, 0], [0, 3])]
    for i in range(count):
        n, widths, out, last = shapes[i % len(shapes)]
        net = random_net(rng, n, widths, out, last)
        dom = doms[rng.randrange(len(doms))]
        if dom.kind == "box":
            dom = Domain.box(dom.lower[:n], dom.upper[:n])
        how = rng.randrange(3)
        if how == 0:
            x = [F(rng.randint(-7, 7), rng.choice((1, 3, 5))) for _ in range(n)]
            y = net.evaluate(x)
        elif how == 1:
            y = tuple(F(rng.randint(-2, 3), rng.choice((1, 2))) for _ in range(out))
        else:
            y = tuple(F(0) for _ in range(out))
        yield net, tuple(y), dom


@pytest.mark.parametrize("seed", [0, 1])
def test_peel_answers_equal_the_reference_and_the_case_split(seed):
    peeled = {"point": 0, "empty": 0}
    for net, y, dom in _peel_cases(60, seed):
        ref, pt = reference_preimage(as_lists(net), y, net.input_dim, ref_domain(dom))
        r = invert(net, y, dom, time_limit=20)
        s = invert(net, y, dom, time_limit=20, use_peel=False)
        assert r.preimage == ref == s.preimage, (as_lists(net), y, dom, r.reason, s.reason)
        if ref == "point":
            assert r.points == [pt] == s.points
        ok, why = check_inverse(net, y, r.to_json(), dom)
        assert ok, why
        if r.stats.get("route") == "peel":
            peeled[r.preimage] += 1
    assert peeled["point"] >= 2 and peeled["empty"] >= 3, peeled  # the peel itself was exercised


def test_leaky_relu_networks_are_inverted_by_both_routes():
    """A LeakyReLU layer is invertible unit by unit; the case split reads it in its ReLU form.
    (Before the fix, the lifted system took it as linear and certified a wrong 'empty'.)"""
    L = Layer(((F(1),), (F(2),)), (F(0), F(1)), "leaky_relu", F(1, 4))
    net = Network((L, Layer.from_rows([[1, 0]], activation="linear")))
    for x in (F(-4), F(3), F(-1, 2)):
        y = net.evaluate([x])
        for use_peel in (True, False):
            r = invert(net, y, use_peel=use_peel)
            assert r.preimage == "point" and r.points == [(x,)], (use_peel, r.reason)
            assert check_inverse(net, y, r.to_json())[0]
    # Wrong-way: y = -1 has the preimage x = -4 (leaky(-4) = -1); an 'empty' answer is refused.
    ans = invert(Network((L,)), [F(-1), F(-7, 4)]).to_json()
    assert ans["preimage"] == "point"
    bad = {**ans, "preimage": "empty", "points": [], "certificate": {"kind": "peel", "chain": [["-4"]]}}
    assert not check_inverse(Network((L,)), [F(-1), F(-7, 4)], bad)[0]


def _wide(seed):
    rng = random.Random(seed)
    return bmdb_net(rng, [2, 3, 5], last="linear")


def test_point_mutants_are_rejected_for_a_reason():
    net = _wide(1)
    x = (F(3, 2), F(-2))
    y = net.evaluate(x)
    ans = invert(net, y).to_json()
    assert ans["certificate"] == {"kind": "peel"} and check_inverse(net, y, ans)[0]
    # A changed coordinate: no longer maps to y (the peel's chain is the evaluation of the point).
    bad = copy.deepcopy(ans)
    bad["points"][0][1] = str(F(bad["points"][0][1]) + F(1, 3))
    assert net.evaluate(tuple(map(F, bad["points"][0]))) != y
    assert not check_inverse(net, y, bad)[0]
    # A point that does not map to this y: the answer about another y.
    y2 = net.evaluate((F(0), F(0)))
    assert not check_inverse(net, y2, {**ans, "y": [str(v) for v in y2]})[0]
    # Layers whose fixed rows do not span: x -> ReLU(x) at y = 0 has every x <= 0 as preimage,
    # and x = -1 maps to 0 exactly, but no row is fixed.
    relu = Network((Layer.from_rows([[1]]),))
    fake = {"preimage": "point", "points": [["-1"]], "certificate": {"kind": "peel"}}
    assert _rank([]) == 0
    ok, why = check_inverse(relu, ["0"], fake)
    assert not ok and "do not span" in why
    # Two layers: the first spans, the last does not (2 hidden values, 1 linear output).
    net2 = Network((Layer.from_rows([[1], [-1]], [0, 0]), Layer.from_rows([[1, 1]], activation="linear")))
    assert not _all_layers_span(net2, [F(2)])
    ok, why = check_inverse(net2, net2.evaluate([F(2)]), {**fake, "points": [["2"]]})
    assert not ok and "layer 1" in why
    assert invert(net2, net2.evaluate([F(2)])).preimage == "set"  # indeed x = -2 maps there too


def test_empty_mutants_are_rejected_for_a_reason():
    net = _wide(2)
    rng = random.Random(5)
    seen = set()
    for _ in range(40):
        y = tuple(F(rng.randint(-5, 5), rng.randint(1, 3)) for _ in range(net.output_dim))
        r = invert(net, y)
        if r.preimage != "empty" or r.certificate.get("kind") != "peel":
            continue
        ans = r.to_json()
        cert = ans["certificate"]
        assert check_inverse(net, y, ans)[0]
        kind = "u" if "u" in cert else ("full" if len(cert["chain"]) == len(net.layers) else "negative")
        seen.add(kind)
        if cert["chain"]:
            bad = copy.deepcopy(ans)  # a chain value moved: it no longer solves its layer's equations
            h = bad["certificate"]["chain"][0]
            h[0] = str(F(h[0]) + 1)
            assert not check_inverse(net, y, bad)[0]
            bad = copy.deepcopy(ans)  # truncated, with no reason where it stops
            bad["certificate"]["chain"].pop()
            bad["certificate"].pop("u", None)
            if kind != "negative" or len(bad["certificate"]["chain"]) != len(cert["chain"]):
                ok, _ = check_inverse(net, y, bad)
                layer = net.layers[len(net.layers) - 1 - len(bad["certificate"]["chain"])]
                z = [F(v) for v in (bad["certificate"]["chain"][-1] if bad["certificate"]["chain"] else y)]
                if not (layer.activation == "relu" and any(v < 0 for v in z)):
                    assert not ok
        if "u" in cert:
            bad = copy.deepcopy(ans)
            bad["certificate"]["u"] = ["0"] * len(cert["u"])  # proves nothing: 0 = 0
            assert not check_inverse(net, y, bad)[0]
    assert seen, "no peel-certified empty answer was produced"
    # A chain that ends at a real preimage cannot certify 'empty'.
    x = (F(1), F(1))
    y = net.evaluate(x)
    chain = []
    h = [x]
    for L in net.layers[:-1]:
        h.append(L.apply(h[-1]))
    chain = [[str(v) for v in hv] for hv in reversed(h)]
    ans = {"preimage": "empty", "points": [], "certificate": {"kind": "peel", "chain": chain}}
    ok, why = check_inverse(net, y, ans)
    assert not ok and "preimage" in why


def test_inconsistent_equations_give_an_empty_answer_with_u():
    # x -> (x + 1, 2x + 1) linear: y = (1, 2) would need x = 0 and x = 1/2.
    net = Network((Layer.from_rows([[1], [2]], [1, 1], activation="linear"),))
    r = invert(net, [F(1), F(2)])
    assert r.preimage == "empty" and r.certificate["kind"] == "peel" and "u" in r.certificate
    assert check_inverse(net, [F(1), F(2)], r.to_json())[0]
    assert invert(net, [F(1), F(2)], use_peel=False).preimage == "empty"


def test_dense_generator_is_inverted_fast_by_the_peel():
    """The [C; -C] 8 -> 32 -> 64 -> 64 generator of docs/performance.md (the case split takes
    about 18 s per latent there; the peel about 0.03 s)."""
    import sys
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from bench_invert import random_generator

    net = random_generator()
    rng = random.Random(0)
    for _ in range(3):
        z = tuple(F(rng.randint(-2 ** 20, 2 ** 20), 2 ** 18) for _ in range(8))
        y = net.evaluate(z)
        t0 = time.perf_counter()
        r = invert(net, y)
        assert time.perf_counter() - t0 < 5  # about 0.03 s; generous for 2 shared cores
        assert r.preimage == "point" and r.points == [z] and r.stats["route"] == "peel"


def test_conv_layer_is_peeled():
    net = load_network(os.path.join(ROOT, "instances", "conv", "dcgan_zero_16x16.json"))
    rng = random.Random(3)
    x = tuple(F(rng.randint(-5, 5), rng.randint(1, 3)) for _ in range(net.input_dim))
    y = net.evaluate(x)
    r = invert(net, y)
    assert r.preimage == "point" and r.points == [x] and r.stats["route"] == "peel"


def test_cli_and_self_contained_file(tmp_path, capsys):
    net = _wide(3)
    path = tmp_path / "net.json"
    from exact_inj.io import network_to_json
    import json
    path.write_text(json.dumps(network_to_json(net)))
    out = tmp_path / "ans.json"
    code = cli.main(["invert", str(path), "--from-input", "1/7,-3/11", "--json", "--quiet", "--certificate", str(out)])
    got = json.loads(capsys.readouterr().out)
    assert code == 0 and got["preimage"] == "point" and got["points"] == [["1/7", "-3/11"]]
    assert got["certificate"] == {"kind": "peel"}
    assert check_inverse_file(json.loads(out.read_text()))[0]
    assert cli.main(["check", str(out)]) == 0


def test_answers_validate_against_the_inverse_schema():
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    import json
    from importlib.resources import files

    texts = {n: json.loads((files("exact_inj") / f"schemas/{n}.schema.json").read_text())
             for n in ("network", "certificate", "inverse")}
    # the worktree's own schema, when the installed package is another checkout
    texts["inverse"] = json.loads(open(os.path.join(ROOT, "exact_inj", "schemas", "inverse.schema.json")).read())
    registry = referencing.Registry().with_resources(
        (t["$id"], referencing.Resource.from_contents(t)) for t in texts.values())
    cls = jsonschema.validators.validator_for(texts["inverse"])
    cls.check_schema(texts["inverse"])
    v = cls(texts["inverse"], registry=registry)
    net = _wide(2)
    kinds = set()
    answers = [invert(net, net.evaluate((F(1, 7), F(2, 9)))).to_json(include_network=True),
               invert(Network((Layer.from_rows([[1], [2]], [1, 1], activation="linear"),)), [F(1), F(2)]).to_json(),
               invert(net, net.evaluate((F(1, 7), F(2, 9))), use_peel=False).to_json(),
               invert(Network((Layer.from_rows([[1]]),)), ["0"]).to_json()]
    for ans in answers:
        assert not list(v.iter_errors(ans)), ans
        kinds.add((ans["preimage"], (ans["certificate"] or {}).get("kind")))
    assert {("point", "peel"), ("empty", "peel"), ("point", "cover"), ("set", "cover")} <= kinds
    bad = copy.deepcopy(answers[1])
    bad["certificate"]["u"] = ["one half"]  # not a number
    assert list(v.iter_errors(bad))


def _narrow_then_bmdb(rng):
    """A first ReLU layer 2 -> 3 with small integer weights (its fixed rows often do not span),
    then a [B; -DB] layer 3 -> 6 and an invertible 6 x 6 linear layer: the top two layers peel."""
    while True:
        first = [[rng.randint(-2, 2) for _ in range(2)] for _ in range(3)]
        if _rank(first) == 2:
            break
    top = bmdb_net(rng, [3, 3], last="linear")
    return Network((Layer.from_rows(first, [rng.randint(-1, 1) for _ in range(3)]),) + top.layers)


@pytest.mark.parametrize("seed", [0, 1])
def test_partial_peel_then_case_split_agrees_with_the_reference(seed):
    rng = random.Random(seed)
    routes = {}
    for i in range(16):
        net = _narrow_then_bmdb(rng)
        dom = [Domain.reals(), Domain.orthant(), Domain.box([-1, -1], [1, 2])][i % 3]
        if i % 4 == 3:
            y = tuple(F(rng.randint(-3, 3), rng.choice((1, 2))) for _ in range(net.output_dim))
        else:
            x = [F(rng.randint(-4, 4), rng.choice((1, 2))) for _ in range(2)]
            y = net.evaluate(x)
        ref, pt = reference_preimage(as_lists(net), y, net.input_dim, ref_domain(dom))
        r = invert(net, y, dom, time_limit=20)
        assert r.preimage == ref, (as_lists(net), y, dom, r.reason)
        if ref == "point":
            assert r.points == [pt]
        if ref == "set":
            assert len(r.points) >= 2 and r.complete
        ok, why = check_inverse(net, y, r.to_json(), dom)
        assert ok, why
        routes[r.stats.get("route")] = routes.get(r.stats.get("route"), 0) + 1
        if r.stats.get("route") == "peel+split" and r.certificate is not None:
            ans = r.to_json()
            bad = copy.deepcopy(ans)  # a chain value moved off its layer's equations
            h = bad["certificate"]["chain"][-1]
            h[0] = str(F(h[0]) + 1)
            assert not check_inverse(net, y, bad, dom)[0]
            bad = copy.deepcopy(ans)  # the nested answer without the peel: about another network
            bad["certificate"] = ans["certificate"]["then"]
            assert not check_inverse(net, y, bad, dom)[0]
            if ans["preimage"] != "empty":
                bad = copy.deepcopy(ans)  # relabelled empty with the chain alone: the next layer is not stuck
                bad.update(preimage="empty", points=[])
                del bad["certificate"]["then"]
                assert not check_inverse(net, y, bad, dom)[0]
    assert routes.get("peel+split", 0) >= 3, routes


def test_forced_value_that_misses_y_is_empty():
    # Top layer h -> ReLU(h, h) of a 1-dim h: y = (2, 0) forces h = 2 (row 0), which maps to
    # (2, 2) != y; the layer below (2 -> 1) does not peel, so the chain stops there: empty.
    net = Network((Layer.from_rows([[1, 1]], [0]), Layer.from_rows([[1], [1]])))
    r = invert(net, [F(2), F(0)])
    assert r.preimage == "empty" and r.certificate == {"kind": "peel", "chain": [["2"]]}
    assert check_inverse(net, [F(2), F(0)], r.to_json())[0]
    assert invert(net, [F(2), F(0)], use_peel=False).preimage == "empty"
    # y = (2, 2): h = 2 maps to y; the layer below is a case split: every x with x1 + x2 = 2.
    r = invert(net, [F(2), F(2)])
    assert r.preimage == "set" and r.stats["route"] == "peel+split" and r.certificate["kind"] == "peel"
    assert all(net.evaluate(p) == (F(2), F(2)) for p in r.points)
    assert check_inverse(net, [F(2), F(2)], r.to_json())[0]
    # y = (2, 1): h = 2 and h = 1 at once: inconsistent, shown by u.
    r = invert(net, [F(2), F(1)])
    assert r.preimage == "empty" and "u" in r.certificate and check_inverse(net, [F(2), F(1)], r.to_json())[0]


def test_random_leaky_networks_agree_with_the_reference_on_their_relu_form():
    """LeakyReLU layers on both routes against the brute force of the same function written with
    ReLU and linear layers (x -> leaky(s) = ReLU(s) - a ReLU(-s), built here, not by exact_inj)."""
    rng = random.Random(4)
    seen = set()
    for i in range(24):
        n, m = rng.choice(((1, 2), (2, 2), (1, 1), (2, 3)))
        W = [[F(rng.randint(-2, 2)) for _ in range(n)] for _ in range(m)]
        b = [F(rng.randint(-1, 1)) for _ in range(m)]
        a = F(1, rng.randint(2, 4))
        out = [[F(rng.randint(-2, 2)) for _ in range(m)] for _ in range(rng.randint(1, 2))]
        net = Network((Layer(tuple(map(tuple, W)), tuple(b), "leaky_relu", a),
                       Layer.from_rows(out, [0] * len(out), "linear")))
        # the same function: ReLU([W; -W] x + [b; -b]), then out . [I, -a I]
        ref_layers = [([list(r) for r in W] + [[-v for v in r] for r in W], b + [-v for v in b], "relu"),
                      ([list(r) + [-a * v for v in r] for r in out], [F(0)] * len(out), "linear")]
        if i % 3:
            x = [F(rng.randint(-4, 4), rng.choice((1, 2, 3))) for _ in range(n)]
            y = net.evaluate(x)
        else:
            y = tuple(F(rng.randint(-2, 2)) for _ in range(len(out)))
        ref, pt = reference_preimage(ref_layers, y, n)
        for use_peel in (True, False):
            r = invert(net, y, use_peel=use_peel, time_limit=20)
            assert r.preimage == ref, (W, b, a, out, y, use_peel, r.reason)
            if ref == "point":
                assert r.points == [pt]
            assert check_inverse(net, y, r.to_json())[0]
        seen.add(ref)
    assert seen == {"empty", "point", "set"}, seen
