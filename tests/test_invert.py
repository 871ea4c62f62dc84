"""Exact preimages (exact_inj.network.inverse) against an independent brute force.

The reference below imports nothing from exact_inj: it enumerates every
complete activation pattern (closed regions) of a small network, composes the
affine map of each pattern exactly, and classifies the polyhedron
{ x in D : pattern signs, A_s x + c_s = y } by Gauss-Jordan elimination and
Fourier-Motzkin elimination in Fractions: empty, a single point, or more.
The preimage is the union of those polyhedra.

Mutation tests only count a mutant as "must be rejected" when an independent
check says it is invalid (docs/theory.md, section 6): the leaf checks here
rebuild the lifted rows from the documented format (docs/inverse.md) on their
own.
"""

from __future__ import annotations

import copy
import glob
import itertools
import json
import os
import random
from fractions import Fraction as F

import pytest

from exact_inj.network import preimage as inv_search
from exact_inj.model import Domain
from exact_inj.cli import app as cli
from exact_inj.network.inverse import invert
from exact_inj.certify.inverse import check_inverse, check_inverse_file
from exact_inj.io import load_network
from exact_inj.model import Layer, Network

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- the independent reference ------------------------------------------------------------


def _rref_solve(E, e, n):
    """Solutions of E x = e (Fractions) as (x0, N) with x = x0 + N t, or None."""
    rows = [list(r) + [v] for r, v in zip(E, e)]
    piv_cols, r = [], 0
    for c in range(n):
        p = next((i for i in range(r, len(rows)) if rows[i][c] != 0), None)
        if p is None:
            continue
        rows[r], rows[p] = rows[p], rows[r]
        pv = rows[r][c]
        rows[r] = [v / pv for v in rows[r]]
        for i in range(len(rows)):
            if i != r and rows[i][c] != 0:
                f = rows[i][c]
                rows[i] = [a - f * b for a, b in zip(rows[i], rows[r])]
        piv_cols.append(c)
        r += 1
    if any(all(v == 0 for v in row[:n]) and row[n] != 0 for row in rows):
        return None
    free = [c for c in range(n) if c not in piv_cols]
    x0 = [F(0)] * n
    for i, c in enumerate(piv_cols):
        x0[c] = rows[i][n]
    N = []
    for f in free:
        v = [F(0)] * n
        v[f] = F(1)
        for i, c in enumerate(piv_cols):
            v[c] = -rows[i][f]
        N.append(v)
    return x0, N


def _fm_interval(rows, k, j):
    """Fourier-Motzkin: project {t : a.t + c <= 0} onto t_j: (empty, lo, hi)."""
    rows = [(list(a), c) for a, c in rows]
    for v in range(k):
        if v == j:
            continue
        P = [r for r in rows if r[0][v] > 0]
        M = [r for r in rows if r[0][v] < 0]
        Z = [r for r in rows if r[0][v] == 0]
        new = list(Z)
        for (a, c) in P:
            for (b, d) in M:
                s, t = -b[v], a[v]
                new.append(([s * x + t * y for x, y in zip(a, b)], s * c + t * d))
        rows = new
    lo, hi = None, None
    for a, c in rows:
        if a[j] == 0:
            if c > 0:
                return True, None, None
        elif a[j] > 0:
            b = -c / a[j]
            hi = b if hi is None or b < hi else hi
        else:
            b = -c / a[j]
            lo = b if lo is None or b > lo else lo
    if lo is not None and hi is not None and lo > hi:
        return True, None, None
    return False, lo, hi


def _classify(ineqs, eqs, n):
    """'empty', ('point', x) or 'more' for { a.x + c <= 0, e.x + d = 0 }."""
    sol = _rref_solve([e for e, _ in eqs], [-d for _, d in eqs], n)
    if sol is None:
        return "empty"
    x0, N = sol
    k = len(N)
    sub = [([sum(a[i] * N[t][i] for i in range(n)) for t in range(k)],
             c + sum(a[i] * x0[i] for i in range(n))) for a, c in ineqs]
    if k == 0:
        return ("point", tuple(x0)) if all(c <= 0 for _, c in sub) else "empty"
    fixed = []
    for j in range(k):
        empty, lo, hi = _fm_interval(sub, k, j)
        if empty:
            return "empty"
        if lo is None or hi is None or lo < hi:
            return "more"
        fixed.append(lo)
    return ("point", tuple(x0[i] + sum(fixed[t] * N[t][i] for t in range(k)) for i in range(n)))


def reference_preimage(layers, y, n, domain=("reals",)):
    """('empty', None) | ('point', x) | ('set', None), by brute force over patterns."""
    relu = [(k, j) for k, (W, b, act) in enumerate(layers) if act == "relu" for j in range(len(W))]
    dom = []
    if domain[0] == "orthant":
        dom = [([F(-int(i == j)) for i in range(n)], F(0)) for j in range(n)]
    elif domain[0] == "box":
        lo, hi = domain[1], domain[2]
        dom = ([([F(int(i == j)) for i in range(n)], -hi[j]) for j in range(n)]
               + [([F(-int(i == j)) for i in range(n)], lo[j]) for j in range(n)])
    found = []
    for bits in itertools.product((True, False), repeat=len(relu)):
        act = dict(zip(relu, bits))
        M = [[F(int(i == j)) for j in range(n)] for i in range(n)]
        m = [F(0)] * n
        ineqs = list(dom)
        for k, (W, b, a) in enumerate(layers):
            PM = [[sum(W[i][t] * M[t][j] for t in range(len(M))) for j in range(n)] for i in range(len(W))]
            pm = [sum(W[i][t] * m[t] for t in range(len(m))) + b[i] for i in range(len(W))]
            if a == "relu":
                for i in range(len(W)):
                    if act[(k, i)]:
                        ineqs.append(([-v for v in PM[i]], -pm[i]))
                    else:
                        ineqs.append((PM[i], pm[i]))
                        PM[i], pm[i] = [F(0)] * n, F(0)
            M, m = PM, pm
        eqs = [(M[i], m[i] - y[i]) for i in range(len(y))]
        c = _classify(ineqs, eqs, n)
        if c == "more":
            return "set", None
        if c != "empty":
            found.append(c[1])
    pts = set(found)
    if not pts:
        return "empty", None
    if len(pts) == 1:
        return "point", pts.pop()
    return "set", None


def as_lists(net):
    return [([list(r) for r in L.weight], list(L.bias), L.activation) for L in net.layers]


def ref_domain(domain):
    if domain.kind == "box":
        return ("box", domain.lower, domain.upper)
    return (domain.kind,)


def random_net(rng, n, widths, out, last="linear", wmax=2):
    dims = [n] + widths + [out]
    layers = []
    for k in range(len(dims) - 1):
        act = "relu" if k < len(dims) - 2 else last
        W = [[rng.randint(-wmax, wmax) for _ in range(dims[k])] for _ in range(dims[k + 1])]
        b = [rng.randint(-1, 1) for _ in range(dims[k + 1])]
        layers.append(Layer.from_rows(W, b, act))
    return Network(tuple(layers))


# --- the reference on its own ----------------------------------------------------------------


def test_reference_knows_the_small_cases():
    lemma1 = [([[F(1)], [F(-1)]], [F(1), F(-1)], "relu")]
    assert reference_preimage(lemma1, (F(3), F(0)), 1) == ("point", (F(2),))
    assert reference_preimage(lemma1, (F(0), F(0)), 1) == ("point", (F(-1),))
    assert reference_preimage(lemma1, (F(1), F(1)), 1)[0] == "empty"
    relu = [([[F(1)]], [F(0)], "relu")]
    assert reference_preimage(relu, (F(0),), 1)[0] == "set"
    assert reference_preimage(relu, (F(0),), 1, ("box", (F(0),), (F(1),))) == ("point", (F(0),))
    absval = [([[F(1)], [F(-1)]], [F(0), F(0)], "relu"), ([[F(1), F(1)]], [F(0)], "linear")]
    assert reference_preimage(absval, (F(2),), 1)[0] == "set"
    assert reference_preimage(absval, (F(0),), 1) == ("point", (F(0),))
    assert reference_preimage(absval, (F(-1),), 1)[0] == "empty"


# --- round trips on the instances -------------------------------------------------------------


def _instances():
    with open(os.path.join(ROOT, "instances", "networks", "expected.json")) as f:
        nets = json.load(f)
    out = [(os.path.join("instances", "networks", k), v["verdict"]) for k, v in sorted(nets.items())]
    with open(os.path.join(ROOT, "instances", "expected.json")) as f:
        single = json.load(f)
    for k, v in sorted(single.items()):
        verdict = v["verdict"] if isinstance(v, dict) else v
        path = os.path.join("instances", k)
        if os.path.exists(os.path.join(ROOT, path)) and verdict in ("injective", "not_injective"):
            out.append((path, verdict))
    return out


INSTANCES = _instances()


@pytest.mark.parametrize("path,verdict", INSTANCES, ids=[os.path.basename(p) for p, _ in INSTANCES])
def test_round_trip_on_instances(path, verdict):
    net = load_network(os.path.join(ROOT, path))
    rng = random.Random(hash(path) % 1000)
    x = tuple(F(rng.randint(-9, 9), rng.randint(1, 4)) for _ in range(net.input_dim))
    y = net.evaluate(x)
    r = invert(net, y, time_limit=20)
    assert r.preimage in ("point", "set"), r.reason
    assert all(net.evaluate(p) == y for p in r.points)
    if verdict == "injective":
        assert r.preimage == "point" and r.points == [x]
    else:
        assert r.preimage == "set" or r.points == [x]
    ok, why = check_inverse(net, y, r.to_json())
    assert ok, why
    if net.input_dim <= 2 and sum(L.out_dim for L in net.layers[:-1]) + net.output_dim <= 10:
        ref, pt = reference_preimage(as_lists(net), y, net.input_dim)
        assert ref == r.preimage and (pt is None or r.points == [pt])


@pytest.mark.parametrize("path", ["instances/networks/first_layer_not_injective.json",
                                  "instances/networks/fig2_then_full_rank_linear.json",
                                  "instances/networks/abs_value_fold.json",
                                  "instances/networks/symmetric_hinges.json",
                                  "instances/networks/deep_bminusb_15relu.json"])
def test_outputs_off_the_range_are_empty_with_a_checked_certificate(path):
    net = load_network(os.path.join(ROOT, path))
    rng = random.Random(7)
    tried = 0
    for _ in range(20):
        y = tuple(F(rng.randint(-7, 7), rng.randint(1, 3)) for _ in range(net.output_dim))
        r = invert(net, y, time_limit=20)
        assert r.preimage != "unknown", r.reason
        assert check_inverse(net, y, r.to_json())[0]
        if net.input_dim <= 2 and len(net.layers) <= 2:
            assert reference_preimage(as_lists(net), y, net.input_dim)[0] == r.preimage
        if r.preimage == "empty":
            assert r.points == [] and r.certificate["kind"] in ("cover", "peel")
            tried += 1
            if tried == 3:
                break
    assert tried >= 1


def test_negative_output_of_a_relu_layer_is_empty():
    net = load_network(os.path.join(ROOT, "instances", "networks", "relu_identity_after_fig2.json"))
    y = (F(1), F(-1, 2), F(0), F(3))
    r = invert(net, y)
    assert r.preimage == "empty"
    assert check_inverse(net, y, r.to_json())[0]


# --- random small networks against the reference ----------------------------------------------


def _cases(count, seed):
    rng = random.Random(seed)
    shapes = [(1, [2], 1, "linear"), (1, [3], 2, "linear"), (2, [3], 2, "linear"), (2, [2, 2], 2, "linear"),
              (2, [3], 2, "relu"), (2, [], 3, "relu"), (2, [2], 3, "relu"), (1, [2, 2], 1, "relu")]
    doms = [Domain.reals(), Domain.orthant(), Domain.box([-1, 0], [2, 1]), Domain.box([0, 0], [0, 3])]
    for i in range(count):
        n, widths, out, last = shapes[i % len(shapes)]
        net = random_net(rng, n, widths, out, last)
        dom = doms[rng.randrange(len(doms))]
        if dom.kind == "box":
            dom = Domain.box(dom.lower[:n], dom.upper[:n])
        how = rng.randrange(3)
        if how == 0:  # an output in the range: the image of a (degenerate-prone) small point
            x = [F(rng.randint(-2, 2), rng.choice((1, 2))) for _ in range(n)]
            if dom.kind == "orthant":
                x = [abs(v) for v in x]
            elif dom.kind == "box":
                x = [min(max(v, lo), hi) for v, lo, hi in zip(x, dom.lower, dom.upper)]
            y = net.evaluate(x)
        elif how == 1:
            y = tuple(F(rng.randint(-2, 3), rng.choice((1, 2))) for _ in range(out))
        else:
            y = tuple(F(0) for _ in range(out))
        yield net, tuple(y), dom


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_networks_agree_with_the_reference(seed):
    tally = {"empty": 0, "point": 0, "set": 0}
    for net, y, dom in _cases(24, seed):
        ref, pt = reference_preimage(as_lists(net), y, net.input_dim, ref_domain(dom))
        for use_peel in (True, False):  # the layer-by-layer route (when it applies) and the case split
            r = invert(net, y, dom, time_limit=20, use_peel=use_peel)
            assert r.preimage == ref, (as_lists(net), y, dom, r.reason, use_peel)
            if ref == "point":
                assert r.points == [pt]
            if ref == "set":
                assert len(r.points) >= 2 and r.complete
            ok, why = check_inverse(net, y, r.to_json(), dom)
            assert ok, why
        tally[ref] += 1
    assert all(tally.values()), tally  # every answer kind was exercised


def test_exact_route_without_floats_agrees(monkeypatch):
    """Every node decided by the exact simplex alone (no LP): same answers."""
    monkeypatch.setattr(inv_search, "USE_FLOATS", False)
    for net, y, dom in itertools.islice(_cases(40, 11), 16):
        r = invert(net, y, dom, time_limit=20, use_peel=False)
        ref, pt = reference_preimage(as_lists(net), y, net.input_dim, ref_domain(dom))
        assert r.preimage == ref and (pt is None or r.points == [pt])
        assert r.stats["lps"] == 0
        assert check_inverse(net, y, r.to_json(), dom)[0]


def test_domains_change_the_answer():
    relu = Network((Layer.from_rows([[1]]),))
    assert invert(relu, ["0"]).preimage == "set"
    r = invert(relu, ["0"], Domain.box([0], [1]))
    assert r.preimage == "point" and r.points == [(F(0),)]
    r = invert(relu, ["2"], Domain.box([0], [1]))
    assert r.preimage == "empty" and check_inverse(relu, ["2"], r.to_json(), Domain.box([0], [1]))[0]
    empty_box = Domain.box([1], [0])
    r = invert(relu, ["0"], empty_box)
    assert r.preimage == "empty" and check_inverse(relu, ["0"], r.to_json(), empty_box)[0]
    # The answer is about its own domain: checking it as an answer about R^n fails.
    assert not check_inverse(relu, ["2"], invert(relu, ["2"], Domain.box([0], [1])).to_json())[0]


# --- the checker rejects what it must ----------------------------------------------------------


def _lifted_rows(net, y, dom, path):
    """The node's rows and equations, rebuilt from docs/inverse.md (dense, Fractions)."""
    n = net.input_dim
    K = len(net.layers)
    offs, off = [0], n
    for k in range(K - 1):
        offs.append(off)
        off += net.layers[k].out_dim
    D = off

    def vec(pairs):
        v = [F(0)] * D
        for t, w in pairs:
            v[t] += w
        return v

    def pre(k, j):
        L = net.layers[k]
        return [(offs[k] + c, w) for c, w in enumerate(L.weight[j])], L.bias[j]

    rows, eqs = [], []
    if dom.kind == "orthant":
        rows += [(vec([(j, F(-1))]), F(0)) for j in range(n)]
    elif dom.kind == "box":
        rows += [(vec([(j, F(1))]), -dom.upper[j]) for j in range(n)]
        rows += [(vec([(j, F(-1))]), dom.lower[j]) for j in range(n)]
    neurons = []
    for k in range(K - 1):
        for j in range(net.layers[k].out_dim):
            a, c = pre(k, j)
            h = offs[k + 1] + j
            if net.layers[k].activation == "relu":
                neurons.append((k, j))
                rows.append((vec([(h, F(-1))]), F(0)))
                rows.append((vec(a + [(h, F(-1))]), c))
            else:
                eqs.append((vec([(h, F(1))] + [(t, -w) for t, w in a]), -c))
    last = net.layers[-1]
    for j in range(last.out_dim):
        a, c = pre(K - 1, j)
        if last.activation == "linear" or y[j] > 0:
            eqs.append((vec(a), c - y[j]))
        elif y[j] == 0:
            rows.append((vec(a), c))
        else:
            rows.append((vec([]), -y[j]))
    for g, active in path:
        k, j = neurons[g]
        a, c = pre(k, j)
        h = offs[k + 1] + j
        if active:
            rows.append((vec([(t, -w) for t, w in a]), -c))
            eqs.append((vec([(h, F(1))] + [(t, -w) for t, w in a]), -c))
        else:
            rows.append((vec(a), c))
            eqs.append((vec([(h, F(1))]), F(0)))
    return rows, eqs, D


def _leaf_valid(net, y, dom, path, leaf):
    """Independent check of one infeasible or pin leaf (None for other kinds)."""
    rows, eqs, D = _lifted_rows(net, y, dom, path)
    if leaf.get("kind") not in ("infeasible", "pin"):
        return None
    try:
        R, Q = leaf["rows"], leaf["eqs"]
        lam, mu = [F(v) for v in leaf["lam"]], [F(v) for v in leaf["mu"]]
        if len(R) != len(lam) or len(Q) != len(mu) or len(set(R)) != len(R) or len(set(Q)) != len(Q):
            return False
        if any(not 0 <= i < len(rows) for i in R) or any(not 0 <= i < len(eqs) for i in Q):
            return False
        B = [rows[i] for i in R] + [eqs[i] for i in Q]
        coef = [sum(m * b[0][t] for m, b in zip(lam + mu, B)) for t in range(D)]
        const = sum(m * b[1] for m, b in zip(lam + mu, B))
        if leaf["kind"] == "infeasible":
            return all(v >= 0 for v in lam) and not any(coef) and const > 0
        if any(v <= 0 for v in lam) or any(coef) or const != 0:
            return False
        v = [F(t) for t in leaf["point"]]
        if len(v) != D or any(sum(a * b for a, b in zip(r, v)) + c != 0 for r, c in B):
            return False
        sol = _rref_solve([r for r, _ in B], [-c for _, c in B], D)  # every solution: v0 + span N
        return sol is not None and all(not any(w[:net.input_dim]) for w in sol[1])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return False


def _leaf_paths(tree):
    """The path of every leaf occurrence, replaying the documented preorder."""
    out, stack, pos = [], [()], 0
    while stack:
        path = stack.pop()
        code = tree[pos]
        pos += 1
        if code >= 0:
            stack.append(path + ((code, False),))
            stack.append(path + ((code, True),))
        else:
            out.append((path, -1 - code))
    return out


def _answers_with_certificates():
    out = []
    for net, y, dom in _cases(30, 5):
        r = invert(net, y, dom, time_limit=20, use_peel=False)  # the case split's certificates
        if r.certificate is not None:
            out.append((net, y, dom, r.to_json()))
    return out


def test_mutated_numbers_in_leaves_are_rejected_when_independently_invalid():
    rng = random.Random(3)
    rejected = 0
    for net, y, dom, ans in _answers_with_certificates():
        cert = ans["certificate"]
        for path, k in _leaf_paths(cert["tree"]):
            leaf = cert["leaves"][k]
            assert _leaf_valid(net, y, dom, path, leaf) in (True, None)
            fields = [f for f in ("lam", "mu", "point") if leaf.get(f)]
            for _ in range(3):
                if not fields:
                    break
                bad = copy.deepcopy(ans)
                bl = bad["certificate"]["leaves"][k]
                f = rng.choice(fields)
                if f == "point" and bl["kind"] == "pin":
                    i = rng.randrange(len(bl["point"]))
                    bl["point"][i] = str(F(bl["point"][i]) + rng.choice((1, -1, F(1, 2))))
                elif f != "point":
                    i = rng.randrange(len(bl[f]))
                    bl[f][i] = str(F(bl[f][i]) + rng.choice((1, -1, F(1, 2))) if rng.random() < 0.7
                                   else -F(bl[f][i]))
                if _leaf_valid(net, y, dom, path, bl) is False:
                    ok, why = check_inverse(net, y, bad, dom)
                    assert not ok, (f, why)
                    rejected += 1
    assert rejected >= 30


def test_structural_mutants_are_rejected():
    cases = _answers_with_certificates()
    kinds = set()
    for net, y, dom, ans in cases:
        assert check_inverse(net, y, ans, dom)[0]
        muts = []
        cert = ans["certificate"]
        if len(cert["tree"]) > 1:
            t = copy.deepcopy(ans)
            t["certificate"]["tree"] = cert["tree"][:-1]  # a node left open
            muts.append(("truncated", t))
            t = copy.deepcopy(ans)
            t["certificate"]["tree"] = cert["tree"] + [-1]
            muts.append(("trailing", t))
        t = copy.deepcopy(ans)
        t["certificate"]["leaves"] = cert["leaves"][:-1]
        muts.append(("missing leaf", t))
        t = copy.deepcopy(ans)
        t["y"] = [str(F(v) + 1) for v in ans["y"]]
        muts.append(("other y", t))
        t = copy.deepcopy(ans)
        t["domain"] = {"kind": "orthant"} if dom.kind != "orthant" else {"kind": "reals"}
        muts.append(("other domain", t))
        t = copy.deepcopy(ans)
        t["certificate"]["kind"] = "tree"
        muts.append(("kind", t))
        if ans["preimage"] == "point":
            t = copy.deepcopy(ans)
            t["points"][0][0] = str(F(t["points"][0][0]) + 1)  # the only preimage, moved
            muts.append(("moved point", t))
            t = copy.deepcopy(ans)
            t["preimage"], t["points"] = "empty", []  # it is not empty
            muts.append(("point called empty", t))
            t = copy.deepcopy(ans)
            t["points"][0] = [float(v) for v in ans["decimals"][0]]
            muts.append(("float point", t))
        if ans["preimage"] == "empty":
            t = copy.deepcopy(ans)
            t["preimage"], t["points"] = "point", [["0"] * net.input_dim]  # nothing maps to y
            muts.append(("empty called point", t))
            t = copy.deepcopy(ans)
            t["certificate"]["leaves"] = [{"kind": "infeasible", "rows": [], "lam": [], "eqs": [], "mu": []}
                                          for _ in cert["leaves"]]
            muts.append(("zero multipliers", t))
        if ans["preimage"] == "set":
            t = copy.deepcopy(ans)
            t["preimage"], t["points"] = "point", ans["points"][:1]  # there are other preimages
            muts.append(("set called point", t))
            t = copy.deepcopy(ans)
            t["preimage"], t["points"] = "empty", []
            muts.append(("set called empty", t))
            t = copy.deepcopy(ans)
            t["points"] = ans["points"][:1]
            muts.append(("one point", t))
            if ans.get("pieces"):
                t = copy.deepcopy(ans)
                t["pieces"] = ans["pieces"][1:]
                muts.append(("a piece dropped", t))
        for name, bad in muts:
            ok, why = check_inverse(net, y, bad, dom)
            assert not ok, (name, ans["preimage"])
            kinds.add(name)
    assert {"truncated", "moved point", "point called empty", "empty called point", "set called point",
            "zero multipliers", "a piece dropped"} <= kinds


def test_checker_refuses_unknown_and_garbage():
    relu = Network((Layer.from_rows([[1]]),))
    assert not check_inverse(relu, ["1"], {"preimage": "unknown"})[0]
    assert not check_inverse(relu, ["1"], [])[0]
    assert not check_inverse(relu, ["1"], {"preimage": "point", "points": [["1"]]})[0]  # no certificate
    assert not check_inverse(relu, ["1"], {"preimage": "point", "points": [["1e9999999"]],
                                           "certificate": {"kind": "cover", "tree": [-1], "leaves": []}})[0]


def test_point_backed_by_an_injectivity_certificate():
    import exact_inj

    net = load_network(os.path.join(ROOT, "instances", "networks", "fig2_then_full_rank_linear.json"))
    x = (F(1, 3), F(-2))
    y = net.evaluate(x)
    v = exact_inj.verify(net, time_limit=30, milp="none")
    ans = {"preimage": "point", "points": [[str(c) for c in x]],
           "certificate": {"kind": "injective", "certificate": v.certificate.to_json()}}
    assert check_inverse(net, y, ans) == (True, check_inverse(net, y, ans)[1])
    assert check_inverse(net, y, ans)[0]
    bad = copy.deepcopy(ans)
    bad["points"] = [["0", "0"]]
    assert not check_inverse(net, y, bad)[0]
    other = load_network(os.path.join(ROOT, "instances", "networks", "linear_then_relu.json"))
    assert not check_inverse(other, other.evaluate(x), {**ans, "points": [[str(c) for c in x]]})[0]
    # The search falls back on the same proof when it is stopped early with one point.
    r = invert(net, y, max_nodes=2, use_peel=False)
    assert r.preimage == "point" and r.points == [x] and r.certificate["kind"] == "injective"
    assert check_inverse(net, y, r.to_json())[0]


def test_a_set_too_large_to_list_stops_with_two_points():
    rng = random.Random(0)
    W = [[rng.randint(-3, 3) for _ in range(3)] for _ in range(7)]
    net = Network((Layer.from_rows(W, [rng.randint(-1, 1) for _ in W]),
                   Layer.from_rows([[1] * 7], activation="linear")))
    r = invert(net, ["4"], max_pieces=2)  # (sums below 3 are off the range)
    assert r.preimage == "set" and not r.complete and r.certificate is None
    assert len(r.points) >= 2 and check_inverse(net, ["4"], r.to_json())[0]


def test_cli_round_trip(tmp_path, capsys):
    path = os.path.join(ROOT, "instances", "networks", "b_minus_b_difference.json")
    out = tmp_path / "ans.json"
    code = cli.main(["invert", path, "--from-input", "1/2,-3", "--json", "--certificate", str(out), "--quiet"])
    ans = json.loads(capsys.readouterr().out)
    assert code == 0 and ans["preimage"] == "point" and ans["points"] == [["1/2", "-3"]]
    assert ans["decimals"] == [[0.5, -3.0]]
    assert check_inverse_file(json.loads(out.read_text()))[0]
    assert cli.main(["check", str(out)]) == 0
    bad = json.loads(out.read_text())
    bad["points"] = [["1/2", "-2"]]
    out.write_text(json.dumps(bad))
    assert cli.main(["check", str(out)]) == 1
    assert cli.main(["invert", path, "--y", "1,2,3"]) == 2  # three numbers for two outputs


def test_checker_never_raises_on_garbage():
    rng = random.Random(9)
    junk = [None, [], {}, "x", "1/0", 1.5, True, -1, 10**6, [[]], {"kind": "pin"}, ["1"], "9" * 50]
    cases = _answers_with_certificates()[:12]

    def paths(obj, here=()):
        yield here
        if isinstance(obj, dict):
            for k, v in obj.items():
                yield from paths(v, here + (k,))
        elif isinstance(obj, list):
            for i, v in enumerate(obj[:4]):
                yield from paths(v, here + (i,))

    for net, y, dom, ans in cases:
        spots = [p for p in paths(ans) if p and p[0] not in ("reason", "stats", "seconds", "decimals", "format",
                                                            "version", "complete")]
        for _ in range(25):
            bad = copy.deepcopy(ans)
            where = rng.choice(spots)
            obj = bad
            for key in where[:-1]:
                obj = obj[key]
            obj[where[-1]] = rng.choice(junk)
            ok, why = check_inverse(net, y, bad, dom)  # must return, whatever the input
            assert isinstance(ok, bool) and isinstance(why, str)


def test_the_checker_imports_no_solver_and_nothing_that_searches(tmp_path):
    import subprocess
    import sys

    path = os.path.join(ROOT, "instances", "networks", "b_minus_b_difference.json")
    out = tmp_path / "ans.json"
    assert cli.main(["invert", path, "--from-input", "1/2,-3", "--certificate", str(out), "--quiet"]) == 0
    code = ("import json, sys; from exact_inj.certify.inverse import check_inverse_file; "
            f"ok, why = check_inverse_file(json.load(open({str(out)!r}))); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('highspy', 'pulp') or m in "
            "('exact_inj.solver', 'exact_inj.layer.decide', 'exact_inj.layer.search', 'exact_inj.network.endtoend', 'exact_inj.network.inverse', 'exact_inj.network.preimage')]; "
            "print(ok, bad)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.stdout.strip() == "True []", res.stdout + res.stderr


WIDE_SHAPES = [(1, [2], 1, "linear"), (1, [3], 2, "linear"), (2, [3], 2, "linear"), (2, [2, 2], 2, "linear"),
               (2, [3], 2, "relu"), (2, [], 3, "relu"), (2, [2], 3, "relu"), (1, [2, 2], 1, "relu"),
               (2, [4], 1, "linear"), (2, [3], 3, "linear"), (2, [2, 2], 1, "relu"), (3, [], 4, "relu"),
               (3, [3], 3, "linear"), (1, [3, 2], 2, "linear"), (2, [2], 2, "linear"), (3, [4], 2, "linear")]


@pytest.mark.slow
@pytest.mark.parametrize("exact,seed,count", [(False, 400, 1200), (False, 500, 1200), (True, 401, 200)])
def test_long_differential(monkeypatch, exact, seed, count):
    """The long run quoted in docs/inverse.md (about 30 s, 30 s and 60 s)."""
    if exact:
        monkeypatch.setattr(inv_search, "USE_FLOATS", False)
    rng = random.Random(seed)
    for _ in range(count):
        n, widths, out, last = rng.choice(WIDE_SHAPES)
        net = random_net(rng, n, widths, out, last, wmax=rng.choice((1, 2, 3)))
        dom = [Domain.reals(), Domain.orthant(),
               Domain.box([F(rng.randint(-2, 0)) for _ in range(n)], [F(rng.randint(0, 2)) for _ in range(n)]),
               Domain.box([F(-1)] * n, [F(-1)] + [F(1)] * (n - 1))][rng.randrange(4)]
        how = rng.randrange(3)
        if how == 0:
            x = [F(rng.randint(-2, 2), rng.choice((1, 2))) for _ in range(n)]
            if dom.kind == "orthant":
                x = [abs(v) for v in x]
            if dom.kind == "box":
                x = [min(max(v, lo), hi) for v, lo, hi in zip(x, dom.lower, dom.upper)]
            y = net.evaluate(x)
        elif how == 1:
            y = tuple(F(rng.randint(-2, 3), rng.choice((1, 2))) for _ in range(out))
        else:
            y = tuple(F(0) for _ in range(out))
        r = invert(net, y, dom, time_limit=60)
        ref, pt = reference_preimage(as_lists(net), y, n, ref_domain(dom))
        assert r.preimage == ref and (pt is None or r.points == [pt]) and (ref != "set" or r.complete)
        assert check_inverse(net, y, r.to_json(), dom)[0]
