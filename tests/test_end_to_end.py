"""The end-to-end route (docs/theory.md, section 8): pieces, the engine, its certificates,
and the checker's rejection of mutated proofs.

Everything the engine and the checker claim is re-derived here independently
of exact_inj.model.pieces and exact_inj.certify.check: a plain Fraction evaluation of the
network, the closed prefix rows of an activation pattern built straight from
the layer definitions, and a small reference checker written from the
docstrings of certificate.EndToEndProof / Infeasible / Tight / Bound / Flat.
A mutant must be rejected by exact_inj.check, and the reference checker must
say *where* it is wrong (the mutated part), so that a mutant is not rejected
only by accident.
"""

from __future__ import annotations

import dataclasses
import json
import time
from fractions import Fraction as F

import numpy as np
import pytest

import exact_inj
from exact_inj.network import endtoend
from exact_inj.certify.schema import COLLAPSE, REGION, SPLIT, Bound, Certificate, EndToEndProof, Flat, Infeasible, Tight
from exact_inj.model.domain import Domain
from exact_inj.certify.network import verify_tight
from exact_inj.io import InputError
from exact_inj.model import Layer, Network
from exact_inj.model.pieces import Walker
from exact_inj.verdict import Status

# --------------------------------------------------------------------------------------
# Independent reference: evaluation, prefix rows, and an end-to-end proof checker
# --------------------------------------------------------------------------------------


def plain_eval(net: Network, x) -> tuple[F, ...]:
    """The network's value at x from the layer definitions alone."""
    h = [F(v) for v in x]
    for layer in net.layers:
        pre = [sum((F(w) * v for w, v in zip(row, h)), F(0)) + F(b) for row, b in zip(layer.weight, layer.bias)]
        h = [max(a, F(0)) for a in pre] if layer.activation == "relu" else pre
    return tuple(h)


def plain_pre(net: Network, x) -> list[F]:
    """Every ReLU neuron's pre-activation at x, layer by layer (the global order)."""
    h = [F(v) for v in x]
    out = []
    for layer in net.layers:
        pre = [sum((F(w) * v for w, v in zip(row, h)), F(0)) + F(b) for row, b in zip(layer.weight, layer.bias)]
        if layer.activation == "relu":
            out += pre
            h = [max(a, F(0)) for a in pre]
        else:
            h = pre
    return out


def relu_count(net: Network) -> int:
    return sum(layer.out_dim for layer in net.layers if layer.activation == "relu")


def in_domain(dom: Domain, x) -> bool:
    if dom.kind == "orthant":
        return all(v >= 0 for v in x)
    if dom.kind == "box":
        return all(lo <= v <= hi for lo, v, hi in zip(dom.lower, x, dom.upper))
    return True


def dom_rows(dom: Domain, n: int):
    """The domain as rows (a, c), a.x + c <= 0, in the documented order
    (box: x_j <= u_j for every j, then -x_j <= -l_j; orthant: -x_j <= 0)."""
    e = [tuple(F(int(i == j)) for j in range(n)) for i in range(n)]
    if dom.kind == "reals":
        return []
    if dom.kind == "orthant":
        return [(tuple(-v for v in e[j]), F(0)) for j in range(n)]
    return ([(e[j], -F(dom.upper[j])) for j in range(n)]
            + [(tuple(-v for v in e[j]), F(dom.lower[j])) for j in range(n)])


def _aff(w, b, h, n):
    coef = [F(0)] * n
    const = F(b)
    for wi, (hc, h0) in zip(w, h):
        const += F(wi) * h0
        for t in range(n):
            coef[t] += F(wi) * hc[t]
    return tuple(coef), const


def ref_prefix(net: Network, dom: Domain, pattern):
    """(rows, output, next_pre) of the closed region where the first
    len(pattern) ReLU neurons (layer by layer) have the given signs; output is
    the network as affine maps when the pattern is complete, else None, and
    next_pre the next neuron's pre-activation (None when complete)."""
    n = net.input_dim
    rows = dom_rows(dom, n)
    h = [(tuple(F(int(i == j)) for j in range(n)), F(0)) for i in range(n)]
    p = 0
    zero = ((F(0),) * n, F(0))
    for layer in net.layers:
        pre = [_aff(w, b, h, n) for w, b in zip(layer.weight, layer.bias)]
        if layer.activation == "linear":
            h = pre
            continue
        out = []
        for a, c in pre:
            if p == len(pattern):
                return rows, None, (a, c)
            if pattern[p]:
                rows.append((tuple(-v for v in a), -c))
                out.append((a, c))
            else:
                rows.append((a, c))
                out.append(zero)
            p += 1
        h = out
    assert p == len(pattern)
    return rows, h, None


def comb(rows, eqs, support, lam, eq):
    dim = len(rows[0][0]) if rows else len(eqs[0][0])
    coef = [F(0)] * dim
    const = F(0)
    for r, lv in zip(support, lam):
        a, c = rows[r]
        coef = [u + lv * v for u, v in zip(coef, a)]
        const += lv * c
    for (e, d), mu in zip(eqs, eq):
        coef = [u + mu * v for u, v in zip(coef, e)]
        const += mu * d
    return coef, const


def ref_pair_system(rows_i, out_i, rows_j, out_j, n):
    """v = (x, y): x's rows, then y's rows, then N_i(x) - N_j(y) = 0."""
    z = (F(0),) * n
    ineq = [(tuple(a) + z, c) for a, c in rows_i] + [(z + tuple(a), c) for a, c in rows_j]
    eqs = [(tuple(a) + tuple(-v for v in b), c - d) for (a, c), (b, d) in zip(out_i, out_j)]
    return ineq, eqs


def _support_ok(support, lam, m, strict):
    return (len(support) == len(lam) and len(set(support)) == len(support)
            and all(0 <= r < m for r in support) and all((v > 0) if strict else (v >= 0) for v in lam))


def ref_infeasible(rows, eqs, c) -> bool:
    if not isinstance(c, Infeasible) or len(c.eq) != len(eqs) or not _support_ok(c.support, c.lam, len(rows), False):
        return False
    coef, const = comb(rows, eqs, c.support, c.lam, c.eq)
    return not any(coef) and const > 0


def ref_tight(rows, c) -> bool:
    if not isinstance(c, Tight) or not rows or not _support_ok(c.support, c.lam, len(rows), False):
        return False
    if not any(v > 0 and any(rows[r][0]) for r, v in zip(c.support, c.lam)):
        return False
    coef, const = comb(rows, [], c.support, c.lam, ())
    return not any(coef) and const == 0


def ref_flat(rows, eqs, c, n) -> bool:
    if not isinstance(c, Flat) or len(c.eq) != len(eqs) or not _support_ok(c.support, c.lam, len(rows), True):
        return False
    coef, const = comb(rows, eqs, c.support, c.lam, c.eq)
    if any(coef) or const != 0:
        return False
    B = [rows[r] for r in c.support] + list(eqs)
    if len(c.solve) != n or any(len(m) != len(B) for m in c.solve):
        return False
    for k, m in enumerate(c.solve):
        coef, const = comb(B, [], range(len(B)), m, ())
        if const != 0 or coef != [F(int(t == k) - int(t == n + k)) for t in range(2 * n)]:
            return False
    return True


def ref_bound(rows, out, c, upper):
    if not isinstance(c, Bound) or not _support_ok(c.support, c.lam, len(rows), False):
        return None
    o, o0 = out
    coef, const = comb(rows, [], c.support, c.lam, ())
    if coef != [v if upper else -v for v in o]:
        return None
    return o0 - const if upper else o0 + const


class RefInvalid(Exception):
    """Where the reference checker found the proof wrong: a tag tuple."""


def ref_replay(net, tree):
    """Preorder replay of the tree codes: [(position, pattern, code)]; SPLIT's
    active child first."""
    out = []
    pos = 0
    neurons = relu_count(net)

    def rec(pattern):
        nonlocal pos
        if pos >= len(tree):
            raise RefInvalid(("tree", "short"))
        code = tree[pos]
        out.append((pos, pattern, code))
        pos += 1
        if code in (SPLIT, COLLAPSE) and len(pattern) < neurons:
            if code == SPLIT:
                rec(pattern + (True,))
            rec(pattern + (False,))

    rec(())
    if pos != len(tree):
        raise RefInvalid(("tree", "long"))
    return out


def ref_check(net: Network, dom: Domain, proof: EndToEndProof):
    """The rules of certificate.EndToEndProof, re-implemented; returns the
    number of pieces and of separated pairs, or raises RefInvalid(tag)."""
    n = net.input_dim
    neurons = relu_count(net)
    full = dom.kind != "box" or all(lo < hi for lo, hi in zip(dom.lower, dom.upper))
    pieces = []
    for pos, pattern, code in ref_replay(net, proof.tree):
        rows, out, nxt = ref_prefix(net, dom, pattern)
        if code == REGION:
            if len(pattern) != neurons:
                raise RefInvalid(("tree", pos, "incomplete region"))
            pieces.append((rows, out))
        elif code in (SPLIT, COLLAPSE):
            if len(pattern) == neurons:
                raise RefInvalid(("tree", pos, "nothing to split"))
            if code == COLLAPSE and (any(nxt[0]) or nxt[1] != 0):
                raise RefInvalid(("tree", pos, "collapse of a live neuron"))
        elif 0 <= code < len(proof.leaves):
            leaf = proof.leaves[code]
            if isinstance(leaf, Tight):
                if not full:
                    raise RefInvalid(("leaf", pos, "tight on a degenerate domain"))
                if not ref_tight(rows, leaf):
                    raise RefInvalid(("leaf", pos, "not tight"))
            elif not ref_infeasible(rows, [], leaf):
                raise RefInvalid(("leaf", pos, "not infeasible"))
        else:
            raise RefInvalid(("tree", pos, "bad code"))
    R = len(pieces)
    if len(proof.bounds) != R:
        raise RefInvalid(("bounds", "count"))
    box = []
    for i, ((rows, out), piece) in enumerate(zip(pieces, proof.bounds)):
        if len(piece) != len(out):
            raise RefInvalid(("bounds", i, "outputs"))
        vals = []
        for k, (lu, o) in enumerate(zip(piece, out)):
            lo = None if lu[0] is None else ref_bound(rows, o, lu[0], False)
            hi = None if lu[1] is None else ref_bound(rows, o, lu[1], True)
            if (lu[0] is not None and lo is None) or (lu[1] is not None and hi is None):
                raise RefInvalid(("bound", i, k))
            vals.append((lo, hi))
        box.append(vals)
    k = 0
    separated = 0
    for i in range(R):
        for j in range(i, R):
            if any((bi[1] is not None and bj[0] is not None and bi[1] < bj[0])
                   or (bj[1] is not None and bi[0] is not None and bj[1] < bi[0])
                   for bi, bj in zip(box[i], box[j])):
                separated += 1
                continue
            if k >= len(proof.pairs):
                raise RefInvalid(("pairs", "too few"))
            ineq, eqs = ref_pair_system(pieces[i][0], pieces[i][1], pieces[j][0], pieces[j][1], n)
            c = proof.pairs[k]
            if not (ref_flat(ineq, eqs, c, n) or ref_infeasible(ineq, eqs, c)):
                raise RefInvalid(("pair", k, (i, j)))
            k += 1
    if k != len(proof.pairs):
        raise RefInvalid(("pairs", "too many"))
    return R, separated


def ref_tag(net, dom, proof):
    try:
        ref_check(net, dom, proof)
    except RefInvalid as e:
        return e.args[0]
    return None


def ref_pairs_needed(net, dom, proof):
    """The (i, j) of the pairs the proof must close, in order (bounds assumed valid)."""
    pieces = [ref_prefix(net, dom, pat)[:2] for _, pat, code in ref_replay(net, proof.tree) if code == REGION]
    box = [[(None if lu[0] is None else ref_bound(r, o, lu[0], False),
             None if lu[1] is None else ref_bound(r, o, lu[1], True)) for lu, o in zip(b, out)]
           for (r, out), b in zip(pieces, proof.bounds)]
    need, sep = [], []
    for i in range(len(pieces)):
        for j in range(i, len(pieces)):
            s = any((a[1] is not None and b[0] is not None and a[1] < b[0])
                    or (b[1] is not None and a[0] is not None and b[1] < a[0]) for a, b in zip(box[i], box[j]))
            (sep if s else need).append((i, j))
    return pieces, need, sep


# --------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------


def bneg(B, b=None, final=None) -> Network:
    """ReLU([B; -B] z + [b; -b]) followed by the linear [I, -I] (= B z + b), or by ``final``."""
    m = len(B)
    rows = [list(r) for r in B] + [[-F(v) for v in r] for r in B]
    bias = None if b is None else [F(v) for v in b] + [-F(v) for v in b]
    fin = final or [[int(i == j) for j in range(m)] + [-int(i == j) for j in range(m)] for i in range(m)]
    return Network((Layer.from_rows(rows, bias), Layer.from_rows(fin, activation="linear")))


ABS = Network((Layer.from_rows([[1], [-1]]), Layer.from_rows([[1, 1]], activation="linear")))  # |x|


def staged(seed: int, n: int = 2, n_stages: int = 3, extra: int = 2) -> Network:
    """Stages ReLU([B; -B; C] h + bias) then linear [I, -I, 0]: B z is recovered after
    every stage, so the network is injective, but each later ReLU stage sees a
    rank-n map of a 2n+extra dimensional input (layerwise fails)."""
    rng = np.random.default_rng(seed)
    layers = []
    for _ in range(n_stages):
        while True:
            B = rng.integers(-3, 4, size=(n, n))
            if round(np.linalg.det(B)) != 0:
                break
        C = rng.integers(-2, 3, size=(extra, n))
        b = rng.integers(-2, 3, size=n)
        c = rng.integers(-2, 3, size=extra)
        rows = [list(map(int, r)) for r in B] + [[-int(v) for v in r] for r in B] + [list(map(int, r)) for r in C]
        bias = list(map(int, b)) + [-int(v) for v in b] + list(map(int, c))
        layers.append(Layer.from_rows(rows, bias))
        fin = [[int(i == j) for j in range(n)] + [-int(i == j) for j in range(n)] + [0] * extra for i in range(n)]
        layers.append(Layer.from_rows(fin, activation="linear"))
    return Network(tuple(layers))


def random_net(rng, n, widths, last_relu=False, middle_linear=False, leading_linear=False, trailing=1,
               out=2) -> Network:
    layers = []
    d = n
    if leading_linear:
        layers.append(Layer.from_rows(rng.integers(-2, 3, size=(n + 1, n)).tolist(),
                                      rng.integers(-2, 3, size=n + 1).tolist(), activation="linear"))
        d = n + 1
    for k, w in enumerate(widths):
        if middle_linear and k > 0:
            layers.append(Layer.from_rows(rng.integers(-2, 3, size=(d + 1, d)).tolist(),
                                          rng.integers(-2, 3, size=d + 1).tolist(), activation="linear"))
            d = d + 1
        layers.append(Layer.from_rows(rng.integers(-2, 3, size=(w, d)).tolist(), rng.integers(-2, 3, size=w).tolist()))
        d = w
    if not last_relu:
        for t in range(trailing):
            w = out if t == trailing - 1 else d + 1
            layers.append(Layer.from_rows(rng.integers(-2, 3, size=(w, d)).tolist(),
                                          rng.integers(-2, 3, size=w).tolist(), activation="linear"))
            d = w
    return Network(tuple(layers))


def e2e(net, dom, limit=60):
    return endtoend.decide(net, dom, time.perf_counter() + limit)


def cert_of(net, dom, proof) -> Certificate:
    return Certificate(net, dom, Status.INJECTIVE, proof)


def rejected(net, dom, proof) -> str:
    res = exact_inj.check(cert_of(net, dom, proof))
    assert not res.valid, "the checker accepted a mutated proof"
    return res.reason


# --------------------------------------------------------------------------------------
# 1. pieces.py against exact evaluation
# --------------------------------------------------------------------------------------


PIECE_NETS = [
    ("two relu layers + linear", lambda rng: random_net(rng, 2, [3, 3])),
    ("last layer relu", lambda rng: random_net(rng, 2, [3, 2], last_relu=True)),
    ("middle linear layers", lambda rng: random_net(rng, 3, [3, 3, 2], middle_linear=True)),
    ("1-d, three relu layers", lambda rng: random_net(rng, 1, [2, 3, 2])),
    ("leading and two trailing linear layers", lambda rng: random_net(rng, 2, [3, 2], leading_linear=True, trailing=2)),
]


@pytest.mark.parametrize("name,make", PIECE_NETS, ids=[p[0] for p in PIECE_NETS])
@pytest.mark.parametrize("dom_kind", ["reals", "orthant", "box"])
def test_prefix_rows_and_outputs_match_exact_evaluation(name, make, dom_kind):
    rng = np.random.default_rng(len(name) * 7 + len(dom_kind))
    net = make(rng)
    n = net.input_dim
    dom = {"reals": Domain(), "orthant": Domain.orthant(),
           "box": Domain.box([-2] * n, [3] * n)}[dom_kind]
    walker = Walker(net, dom)
    assert walker.neurons == relu_count(net)
    zeros_seen = 0
    for t in range(40):
        # Small-denominator points hit pre-activations that are exactly 0.
        den = int(rng.integers(1, 4))
        lo = 0 if dom_kind == "orthant" else -2 * den
        x = tuple(F(int(v), den) for v in rng.integers(lo, 3 * den + 1, size=n))
        pre = plain_pre(net, x)
        node = walker.root()
        for a, c in node.rows():
            assert sum((ai * xi for ai, xi in zip(a, x)), c) <= 0
        for p in range(walker.neurons):
            a, c = node.next_pre()
            val = sum((ai * xi for ai, xi in zip(a, x)), c)
            assert val == pre[p], f"neuron {p}: pieces gives {val}, evaluation {pre[p]}"
            if val == 0:
                zeros_seen += 1
                # A closed region: x lies in both children when the neuron is exactly 0.
                other = node.child(False)
                assert all(sum((ai * xi for ai, xi in zip(a2, x)), c2) <= 0 for a2, c2 in other.rows())
            else:
                # The wrong child's last row excludes x.
                a2, c2 = node.child(val < 0).rows()[-1]
                assert sum((ai * xi for ai, xi in zip(a2, x)), c2) > 0
            node = node.child(val >= 0)
            for a2, c2 in node.rows():
                assert sum((ai * xi for ai, xi in zip(a2, x)), c2) <= 0
        assert node.complete
        out = node.output()
        got = tuple(sum((ai * xi for ai, xi in zip(a, x)), c) for a, c in out)
        assert got == plain_eval(net, x) == net.evaluate(x)
        # The rows are exactly those of the independent construction.
        rows, ref_out, _ = ref_prefix(net, dom, node.pattern)
        assert [(tuple(a), c) for a, c in node.rows()] == [(tuple(a), c) for a, c in rows]
        assert [(tuple(a), c) for a, c in out] == [(tuple(a), c) for a, c in ref_out]
    assert zeros_seen > 0 or name.startswith("1-d"), "no point hit a neuron's zero set; the boundary case went untested"


def test_prefix_output_refused_before_complete():
    walker = Walker(ABS, Domain())
    with pytest.raises(ValueError):
        walker.root().child(True).output()


# --------------------------------------------------------------------------------------
# 2. Known answers through the end-to-end route
# --------------------------------------------------------------------------------------


BNEG_CASES = [
    ([[1]], None), ([[-3]], [2]), ([[2, 1], [1, 1]], None), ([[2, 1], [1, 1]], [1, -2]),
    ([[1, 2, 0], [0, 1, 1], [1, 0, 1]], None), ([[1, 2, 0], [0, 1, 1], [1, 0, 1]], [0, "1/2", -1]),
]


@pytest.mark.parametrize("B,b", BNEG_CASES)
def test_bneg_then_identity_difference_is_injective_end_to_end(B, b):
    net = bneg(B, b)
    v = exact_inj.verify(net, time_limit=60, milp="none", domain=Domain())
    assert v.status.value == "injective"
    assert v.route == "end_to_end"
    assert isinstance(v.proof, EndToEndProof)
    assert exact_inj.check(v.certificate).valid
    assert ref_check(net, Domain(), v.proof)[0] >= 1


def test_abs_not_injective_on_reals():
    v = exact_inj.verify(ABS, time_limit=60, milp="none", domain=Domain())
    assert v.status.value == "not_injective"
    x, y = v.witness.x, v.witness.y
    assert x != y and plain_eval(ABS, x) == plain_eval(ABS, y)
    assert exact_inj.check(v.certificate).valid
    # The end-to-end engine alone finds one too.
    r = e2e(ABS, Domain())
    assert r.status == "not_injective"
    x, y = r.witness
    assert x != y and plain_eval(ABS, x) == plain_eval(ABS, y)


@pytest.mark.parametrize("dom", [Domain.orthant(), Domain.box([1], [2]), Domain.box([0], [2])],
                         ids=["orthant", "box12", "box02"])
def test_abs_injective_on_orthant_and_positive_boxes(dom):
    v = exact_inj.verify(ABS, time_limit=60, milp="none", domain=dom)
    assert v.status.value == "injective"
    assert exact_inj.check(v.certificate).valid
    r = e2e(ABS, dom)
    assert r.status == "injective"
    assert exact_inj.check(cert_of(ABS, dom, r.proof)).valid
    ref_check(ABS, dom, r.proof)


def test_abs_not_injective_on_a_box_across_zero():
    dom = Domain.box([-1], [2])
    r = e2e(ABS, dom)
    assert r.status == "not_injective"
    x, y = r.witness
    assert x != y and in_domain(dom, x) and in_domain(dom, y) and plain_eval(ABS, x) == plain_eval(ABS, y)


def test_injective_only_end_to_end_on_a_box():
    # z -> (ReLU(z), ReLU(-z)) -> ReLU(z) - ReLU(-z) = z.  On [-1, 2] the
    # hidden box [0, 2] x [0, 1] is full-dimensional and [1, -1] has rank 1 < 2,
    # so the layerwise route fails; end to end it is the identity.
    net = bneg([[1]])
    dom = Domain.box([-1], [2])
    v = exact_inj.verify(net, time_limit=60, milp="none", domain=dom)
    assert v.status.value == "injective" and v.route == "end_to_end"
    assert exact_inj.check(v.certificate).valid
    ref_check(net, dom, v.proof)


def test_not_injective_found_end_to_end_when_no_fold_applies():
    # x -> (|x|, ReLU(|x| - 1)): output dimension 2 != 1, no fold rule, no
    # singular piece; layerwise fails at stage 1, end to end collides x and -x.
    net = Network((Layer.from_rows([[1], [-1]]), Layer.from_rows([[1, 1], [1, 1]], [0, -1])))
    v = exact_inj.verify(net, time_limit=60, milp="none", domain=Domain())
    assert v.status.value == "not_injective"
    assert v.route == "end_to_end"
    x, y = v.witness.x, v.witness.y
    assert x != y and plain_eval(net, x) == plain_eval(net, y)
    assert exact_inj.check(v.certificate).valid


def _degenerate_case():
    # (x1, x2) -> (x1 + x2, x1 - x2) through ReLU pairs, on [-1, 2] x [1/2, 1/2].
    net = bneg([[1, 1], [1, -1]])
    return net, Domain.box([-1, "1/2"], [2, "1/2"])


# Regression (found by these tests at b81d8ee, fixed in 52bed13): on a
# degenerate nonempty box the root's max-slack optimum is 0, and the engine
# took the domain for empty, stopping with "unknown".


def test_full_box_uses_tight_leaves():
    # The contrast case for the degenerate tests: on the full box the engine drops thin prefixes.
    net, _ = _degenerate_case()
    full = Domain.box([-1, 0], [2, 1])
    r = e2e(net, full)
    assert r.status == "injective" and any(isinstance(c, Tight) for c in r.proof.leaves)
    assert exact_inj.check(cert_of(net, full, r.proof)).valid
    ref_check(net, full, r.proof)


def test_degenerate_box_decides_without_tight_leaves():
    net, dom = _degenerate_case()
    r = e2e(net, dom)
    assert r.status == "injective", r.reason
    assert not any(isinstance(c, Tight) for c in r.proof.leaves)
    assert exact_inj.check(cert_of(net, dom, r.proof)).valid
    ref_check(net, dom, r.proof)


@pytest.mark.parametrize("lo,hi", [(["1/2"], ["1/2"]), ([0], [0])])
def test_degenerate_box_one_point(lo, hi):
    # One point: trivially injective.
    r = e2e(ABS, Domain.box(lo, hi))
    assert r.status == "injective", r.reason


def test_degenerate_box_non_injective_network_found():
    # (x1, x2) -> (|x1|, x2) on [-1, 1] x [0, 0]: (-1, 0) and (1, 0) collide.
    net = Network((Layer.from_rows([[1, 0], [-1, 0], [0, 1], [0, -1]]),
                   Layer.from_rows([[1, 1, 0, 0], [0, 0, 1, -1]], activation="linear")))
    dom = Domain.box([-1, 0], [1, 0])
    r = e2e(net, dom)
    assert r.status == "not_injective", r.reason
    x, y = r.witness
    assert x != y and in_domain(dom, x) and in_domain(dom, y) and plain_eval(net, x) == plain_eval(net, y)


@pytest.mark.parametrize("which", ["injective", "not_injective"])
def test_degenerate_box_through_verify(which):
    # Layerwise fails on the hidden box (x1's sign is not fixed on it), so
    # verify falls through to the end-to-end route.
    if which == "injective":
        net, dom = _degenerate_case()
    else:
        net = bneg([[1, 1], [1, -1]], final=[[1, 0, 1, 0], [0, 1, 0, 1]])  # (|x1+x2|, |x1-x2|)
        dom = Domain.box([-1, 0], [1, 0])                                   # = (|x1|, |x1|)
        assert plain_eval(net, (F(-1), F(0))) == plain_eval(net, (F(1), F(0))) == (F(1), F(1))
    v = exact_inj.verify(net, time_limit=60, milp="none", domain=dom)
    assert v.status.value == which, v.reason
    assert exact_inj.check(v.certificate).valid
    if which == "injective":
        assert v.route == "end_to_end"
        assert not any(isinstance(c, Tight) for c in v.proof.leaves)
        ref_check(net, dom, v.proof)
    if which == "not_injective":
        x, y = v.witness.x, v.witness.y
        assert x != y and in_domain(dom, x) and in_domain(dom, y) and plain_eval(net, x) == plain_eval(net, y)


def test_hand_made_proof_on_a_degenerate_box_checks():
    # |x| on [1/2, 1/2]: split x (active first), then -x; only Infeasible leaves.
    dom = Domain.box(["1/2"], ["1/2"])
    # rows: 0: x - 1/2 <= 0, 1: -x + 1/2 <= 0, then one per fixed neuron.
    leaves = (Infeasible((1, 3), (F(1), F(1))),   # x >= 0, -x >= 0 (x <= 0) with x >= 1/2
              Infeasible((1, 2), (F(1), F(1))))   # x <= 0 with x >= 1/2
    pair = Flat((), (), (F(0),), ((F(1),),))      # N = x on the piece: x - y = 1 * (x - y)
    proof = EndToEndProof((SPLIT, SPLIT, 0, REGION, 1), leaves, (((None, None),),), (pair,))
    assert ref_check(ABS, dom, proof) == (1, 0)
    assert exact_inj.check(cert_of(ABS, dom, proof)).valid
    # Swapping the leaves breaks it.
    bad = dataclasses.replace(proof, tree=(SPLIT, SPLIT, 1, REGION, 0))
    assert ref_tag(ABS, dom, bad)[0] == "leaf"
    rejected(ABS, dom, bad)


def test_zero_and_constant_neurons_collapse_and_close():
    # A zero neuron (COLLAPSE), one that is always on (bias 1) and one always
    # off (bias -1), and a second-stage neuron identically 0 in every pattern
    # (ReLU(x) - ReLU(x)).
    net = Network((
        Layer.from_rows([[1], [-1], [0], [0], [0], [1]], [0, 0, 0, 1, -1, 0]),
        Layer.from_rows([[1, 0, 0, 0, 0, -1], [1, -1, 0, 0, 0, 0]]),
        Layer.from_rows([[0, 1]], activation="linear"),
    ))
    # Output ReLU(ReLU(x) - ReLU(-x)) = ReLU(x): not injective on R, injective on [1, 2].
    r = e2e(net, Domain.box([1], [2]))
    assert r.status == "injective"
    assert COLLAPSE in r.proof.tree
    assert exact_inj.check(cert_of(net, Domain.box([1], [2]), r.proof)).valid
    ref_check(net, Domain.box([1], [2]), r.proof)
    r = e2e(net, Domain())
    assert r.status == "not_injective"
    x, y = r.witness
    assert x != y and plain_eval(net, x) == plain_eval(net, y)


# 1-d networks R -> R: injective on an interval iff strictly monotone there.
# The breakpoints are found layer by layer, exactly, without exact_inj.


def _breakpoints(net: Network) -> list[F]:
    pts: list[F] = []
    for k, layer in enumerate(net.layers):
        if layer.activation != "relu":
            continue
        sub = Network(net.layers[:k]) if k else None
        ends = [None] + sorted(pts) + [None]
        new = set()
        for a, b in zip(ends, ends[1:]):
            if a is None and b is None:
                p, q = F(0), F(1)
            elif a is None:
                p, q = b - 2, b - 1
            elif b is None:
                p, q = a + 1, a + 2
            else:
                p, q = a + (b - a) / 3, a + 2 * (b - a) / 3
            hp = plain_eval(sub, [p]) if sub else (p,)
            hq = plain_eval(sub, [q]) if sub else (q,)
            for w, bias in zip(layer.weight, layer.bias):
                vp = sum((wi * h for wi, h in zip(w, hp)), bias)
                vq = sum((wi * h for wi, h in zip(w, hq)), bias)
                if vp != vq:
                    r = p - vp * (q - p) / (vq - vp)
                    if (a is None or r > a) and (b is None or r < b):
                        new.add(r)
        pts = sorted(set(pts) | new)
    return pts


def monotone_oracle(net: Network, lo, hi) -> bool:
    """Strictly monotone on [lo, hi] (None = unbounded)?"""
    if lo is not None and hi is not None and lo == hi:
        return True
    keys = [p for p in _breakpoints(net) if (lo is None or p > lo) and (hi is None or p < hi)]
    if lo is not None:
        keys = [lo] + keys
    if hi is not None:
        keys = keys + [hi]
    if not keys:
        keys = [F(0)]
    if lo is None:
        keys = [keys[0] - 1] + keys
    if hi is None:
        keys = keys + [keys[-1] + 1]
    vals = [plain_eval(net, [p])[0] for p in keys]
    d = [v2 - v1 for v1, v2 in zip(vals, vals[1:])]
    return all(v > 0 for v in d) or all(v < 0 for v in d)


def test_one_dimensional_differential_against_monotonicity():
    rng = np.random.default_rng(20240611)
    seen = {True: 0, False: 0}
    doms = [(Domain(), None, None), (Domain.orthant(), F(0), None), (Domain.box([-1], [2]), F(-1), F(2)),
            (Domain.box([0], [3]), F(0), F(3))]  # degenerate boxes: see the xfail tests above
    for t in range(36):
        w1, w2 = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        shape = t % 3
        if shape == 0:    # relu, relu, linear
            net = random_net(rng, 1, [w1, w2], out=1)
        elif shape == 1:  # relu, linear, relu, linear
            net = random_net(rng, 1, [w1, w2], middle_linear=True, out=1)
        else:             # relu, relu (width 1): the last layer is a ReLU
            net = random_net(rng, 1, [w1, 1], last_relu=True)
        dom, lo, hi = doms[(t // 3) % len(doms)]
        truth = monotone_oracle(net, lo, hi)
        r = e2e(net, dom)
        assert r.status == ("injective" if truth else "not_injective"), (t, net, dom)
        seen[truth] += 1
        if truth:
            assert exact_inj.check(cert_of(net, dom, r.proof)).valid
            ref_check(net, dom, r.proof)
        else:
            x, y = r.witness
            assert x != y and in_domain(dom, x) and in_domain(dom, y) and plain_eval(net, x) == plain_eval(net, y)
        if t % 4 == 0:  # the whole decision, whatever route it takes
            v = exact_inj.verify(net, time_limit=60, milp="none", domain=dom)
            assert v.status.value == r.status, (t, v.route, v.reason)
            assert exact_inj.check(v.certificate).valid
    assert seen[True] >= 3 and seen[False] >= 3, seen


def test_two_dimensional_random_networks_evidence_replays():
    # No oracle in 2-d: every injective answer's proof must pass the reference
    # checker here (an independent proof of injectivity), every other answer's
    # witness must replay.
    rng = np.random.default_rng(7)
    doms = [Domain(), Domain.orthant(), Domain.box([-1, -1], [2, 1]), Domain.box([-1, "1/3"], [1, "1/3"])]
    seen = {"injective": 0, "not_injective": 0}
    for t in range(16):
        if t % 2:
            net = random_net(rng, 2, [int(rng.integers(2, 4)), 2], middle_linear=bool(t % 4 == 1))
        else:
            # One [B; -B; C] stage; the final layer [I, -I, K] adds K ReLU(C z + c) to B z + b:
            # injective for some K, not for others.
            base = staged(int(rng.integers(0, 1000)), n_stages=1, extra=1)
            K = rng.integers(-2, 3, size=2).tolist()
            fin = [list(r[:4]) + [K[i]] for i, r in enumerate(base.layers[1].weight)]
            net = Network((base.layers[0], Layer.from_rows(fin, activation="linear")))
        dom = doms[(t // 2) % len(doms)]
        r = e2e(net, dom)
        assert r.status in seen, (t, r.reason)
        seen[r.status] += 1
        if r.status == "injective":
            ref_check(net, dom, r.proof)
            assert exact_inj.check(cert_of(net, dom, r.proof)).valid
            if dom.kind == "box" and dom.lower[1] == dom.upper[1]:
                assert not any(isinstance(c, Tight) for c in r.proof.leaves)
        else:
            x, y = r.witness
            assert x != y and in_domain(dom, x) and in_domain(dom, y) and plain_eval(net, x) == plain_eval(net, y)
    assert seen["injective"] >= 2 and seen["not_injective"] >= 2, seen


def test_oracle_itself():
    assert monotone_oracle(bneg([[1]]), None, None)
    assert not monotone_oracle(ABS, None, None)
    assert monotone_oracle(ABS, F(0), None) and monotone_oracle(ABS, F(1), F(2))
    assert not monotone_oracle(ABS, F(-1), F(2))


# --------------------------------------------------------------------------------------
# 3. Certificate round trip
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("net,dom", [(bneg([[2, 1], [1, 1]], [1, -2]), Domain()),
                                     (bneg([[1]]), Domain.box([-1], [2])),
                                     (ABS, Domain.orthant())], ids=["reals", "box", "orthant"])
def test_certificate_json_round_trip(net, dom):
    v = exact_inj.verify(net, time_limit=60, milp="none", domain=dom)
    assert v.status.value == "injective" and isinstance(v.proof, EndToEndProof)
    js = v.certificate.to_json()
    assert js["proof"]["kind"] == "end_to_end"
    text = json.dumps(js)
    assert '"end_to_end"' in text
    back = Certificate.from_json(json.loads(text))
    assert back == v.certificate
    assert exact_inj.check(back).valid
    # A pair certificate marked tight, or a leaf with "solve", is refused on input.
    bad = json.loads(text)
    bad["proof"]["pairs"][0]["tight"] = True
    with pytest.raises(InputError):
        Certificate.from_json(bad)


# --------------------------------------------------------------------------------------
# 4./5. Mutants
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mid():
    """The 3-stage instance, decided once (also the timing test's instance)."""
    net = staged(0)
    v = exact_inj.verify(net, time_limit=60, milp="none", domain=Domain())
    assert v.status.value == "injective" and v.route == "end_to_end"
    return net, Domain(), v


def test_mid_proof_valid_and_independently_valid(mid):
    net, dom, v = mid
    p = v.proof
    assert exact_inj.check(v.certificate).valid
    R, sep = ref_check(net, dom, p)
    assert R == v.info["end_to_end"]["pieces"] and sep > 0
    # The instance has every kind of evidence the mutants below rely on.
    assert any(isinstance(c, Infeasible) for c in p.pairs)
    assert any(isinstance(c, Flat) and c.support for c in p.pairs)
    assert any(isinstance(c, Tight) for c in p.leaves)
    assert any(isinstance(c, Infeasible) for c in p.leaves)


def test_mutant_drop_a_pair(mid):
    net, dom, v = mid
    p = v.proof
    _, need, _ = ref_pairs_needed(net, dom, p)
    assert len(need) == len(p.pairs)
    for k in (0, len(p.pairs) // 2, len(p.pairs) - 1):
        m = dataclasses.replace(p, pairs=p.pairs[:k] + p.pairs[k + 1:])
        rejected(net, dom, m)
    # Independently: dropping the first shifts pair 1's certificate onto pair (0, 0).
    m = dataclasses.replace(p, pairs=p.pairs[1:])
    assert ref_tag(net, dom, m)[0] in ("pair", "pairs")


def test_mutant_duplicate_a_pair(mid):
    net, dom, v = mid
    p = v.proof
    k = len(p.pairs) - 1
    m = dataclasses.replace(p, pairs=p.pairs + (p.pairs[k],))  # the last pair twice: alignment kept
    reason = rejected(net, dom, m)
    assert "more" in reason
    assert ref_tag(net, dom, m) == ("pairs", "too many")
    m = dataclasses.replace(p, pairs=p.pairs[:1] + p.pairs[:1] + p.pairs[1:-1])  # same count, shifted
    rejected(net, dom, m)
    assert ref_tag(net, dom, m)[0] == "pair"


def _first(seq, pred):
    return next(k for k, c in enumerate(seq) if pred(c))


def test_mutant_infeasible_pair_multiplier(mid):
    net, dom, v = mid
    p = v.proof
    k = _first(p.pairs, lambda c: isinstance(c, Infeasible) and len(c.lam) >= 2)
    c = p.pairs[k]
    pieces, need, _ = ref_pairs_needed(net, dom, p)
    i, j = need[k]
    ineq, eqs = ref_pair_system(pieces[i][0], pieces[i][1], pieces[j][0], pieces[j][1], net.input_dim)
    assert ref_infeasible(ineq, eqs, c)
    for t in range(len(c.lam)):
        if not any(ineq[c.support[t]][0]):
            continue  # a constant row: changing its weight keeps the coefficients zero
        lam = list(c.lam)
        lam[t] *= 2
        bad = dataclasses.replace(c, lam=tuple(lam))
        coef, _ = comb(ineq, eqs, bad.support, bad.lam, bad.eq)
        assert any(coef), "independently: the changed combination no longer cancels"
        m = dataclasses.replace(p, pairs=p.pairs[:k] + (bad,) + p.pairs[k + 1:])
        assert f"pair ({i}, {j})" in rejected(net, dom, m)
        assert ref_tag(net, dom, m) == ("pair", k, (i, j))
        break
    else:
        pytest.fail("no row with nonzero coefficients in the Infeasible certificate")


def test_mutant_flat_negative_lam_and_solve_entry(mid):
    net, dom, v = mid
    p = v.proof
    k = _first(p.pairs, lambda c: isinstance(c, Flat) and len(c.support) >= 1)
    c = p.pairs[k]
    pieces, need, _ = ref_pairs_needed(net, dom, p)
    i, j = need[k]
    n = net.input_dim
    ineq, eqs = ref_pair_system(pieces[i][0], pieces[i][1], pieces[j][0], pieces[j][1], n)
    assert ref_flat(ineq, eqs, c, n)
    # Negate one lam: the "tight on S" argument needs lam > 0.
    lam = list(c.lam)
    lam[0] = -lam[0]
    bad = dataclasses.replace(c, lam=tuple(lam))
    assert not ref_flat(ineq, eqs, bad, n)
    m = dataclasses.replace(p, pairs=p.pairs[:k] + (bad,) + p.pairs[k + 1:])
    assert f"pair ({i}, {j})" in rejected(net, dom, m)
    assert ref_tag(net, dom, m) == ("pair", k, (i, j))
    # Change one entry of solve: solve . [A_S; E] is no longer [I, -I].
    solve = [list(r) for r in c.solve]
    solve[0][0] += 1
    bad = dataclasses.replace(c, solve=tuple(tuple(r) for r in solve))
    B = [ineq[r] for r in c.support] + eqs
    coef, const = comb(B, [], range(len(B)), bad.solve[0], ())
    assert (coef, const) != ([F(int(t == 0) - int(t == n)) for t in range(2 * n)], F(0))
    m = dataclasses.replace(p, pairs=p.pairs[:k] + (bad,) + p.pairs[k + 1:])
    assert f"pair ({i}, {j})" in rejected(net, dom, m)
    assert ref_tag(net, dom, m) == ("pair", k, (i, j))


def test_mutant_tree_codes(mid):
    net, dom, v = mid
    p = v.proof
    replay = ref_replay(net, p.tree)
    # SPLIT -> REGION at the root: the root fixes no neuron.
    assert p.tree[0] == SPLIT
    m = dataclasses.replace(p, tree=(REGION,) + p.tree[1:])
    assert "must fix every neuron" in rejected(net, dom, m)
    # SPLIT -> COLLAPSE at a node whose neuron is live.
    pos = next(pos for pos, pat, code in replay if code == SPLIT and len(pat) > 0)
    pat = replay[pos][1]
    a, c = ref_prefix(net, dom, pat)[2]
    assert any(a) or c != 0  # independently: not identically 0
    m = dataclasses.replace(p, tree=p.tree[:pos] + (COLLAPSE,) + p.tree[pos + 1:])
    rejected(net, dom, m)
    # REGION -> COLLAPSE: a piece has no neuron left.
    pos = p.tree.index(REGION)
    m = dataclasses.replace(p, tree=p.tree[:pos] + (COLLAPSE,) + p.tree[pos + 1:])
    assert "no neuron is left" in rejected(net, dom, m)
    assert ref_tag(net, dom, m)[0] == "tree"
    # An unknown code, and a truncated tree.
    m = dataclasses.replace(p, tree=p.tree[:pos] + (-7,) + p.tree[pos + 1:])
    assert "not a valid code" in rejected(net, dom, m)
    m = dataclasses.replace(p, tree=p.tree[:-1])
    rejected(net, dom, m)
    m = dataclasses.replace(p, tree=p.tree + (REGION,))
    rejected(net, dom, m)


def test_mutant_collapse_of_a_live_neuron_is_the_only_flaw():
    # |x| on R with a forged proof: neuron 0 (x) "collapsed" to its inactive side
    # (x <= 0), then neuron 1 (-x) split; the active side is the one piece
    # x <= 0 with N = -x (injective there), the inactive side x <= 0, x >= 0 is
    # Tight.  Every other part is valid, so only the COLLAPSE rule rejects it.
    tight = Tight((0, 1), (F(1), F(1)))
    flat = Flat((), (), (F(0),), ((F(-1),),))
    proof = EndToEndProof((COLLAPSE, SPLIT, REGION, 0), (tight,), (((None, None),),), (flat,))
    rows, out, _ = ref_prefix(ABS, Domain(), (False, True))
    ineq, eqs = ref_pair_system(rows, out, rows, out, 1)
    assert ref_flat(ineq, eqs, flat, 1)
    assert ref_tight(ref_prefix(ABS, Domain(), (False, False))[0], tight)
    assert ref_tag(ABS, Domain(), proof) == ("tree", 0, "collapse of a live neuron")
    assert "identically 0" in rejected(ABS, Domain(), proof)
    # And the honest version (SPLIT at the root, same codes) fails: the codes
    # now close the x >= 0 side first, where leaf 0 is no hyperplane, and the
    # x <= 0 side would be left uncovered (|x| collides across the two).
    honest = dataclasses.replace(proof, tree=(SPLIT,) + proof.tree[1:])
    assert rejected(ABS, Domain(), honest) == "tree code 3: leaf certificate 0 does not put its prefix in a hyperplane"
    # With the x >= 0 side closed by a piece, the x <= 0 side has no codes left.
    assert rejected(ABS, Domain(), dataclasses.replace(proof, tree=(SPLIT, SPLIT, 0, REGION))) == \
        "the piece tree ends before every node is closed"
    assert plain_eval(ABS, [F(-1)]) == plain_eval(ABS, [F(1)])


def test_mutant_wrong_leaf_certificate(mid):
    net, dom, v = mid
    p = v.proof
    replay = ref_replay(net, p.tree)
    leaves = [(pos, pat, code) for pos, pat, code in replay if code >= 0]
    # Point a leaf at another leaf's certificate that does not close it.
    for pos, pat, code in leaves:
        rows = ref_prefix(net, dom, pat)[0]
        for other in range(len(p.leaves)):
            c = p.leaves[other]
            ok = ref_tight(rows, c) if isinstance(c, Tight) else ref_infeasible(rows, [], c)
            if other != code and not ok:
                m = dataclasses.replace(p, tree=p.tree[:pos] + (other,) + p.tree[pos + 1:])
                assert f"tree code {pos}" in rejected(net, dom, m)
                assert ref_tag(net, dom, m)[:2] == ("leaf", pos)
                return
    pytest.fail("every leaf certificate closes every leaf")


def test_mutant_tight_leaf_not_tight(mid):
    net, dom, v = mid
    p = v.proof
    replay = ref_replay(net, p.tree)
    pos, pat, code = next(t for t in replay if t[2] >= 0 and isinstance(p.leaves[t[2]], Tight))
    c = p.leaves[code]
    rows = ref_prefix(net, dom, pat)[0]
    assert ref_tight(rows, c)
    # Drop one support row: the rest no longer cancels (or no longer sums to 0).
    bad = Tight(c.support[1:], c.lam[1:])
    assert not ref_tight(rows, bad)
    leaves = p.leaves[:code] + (bad,) + p.leaves[code + 1:]
    m = dataclasses.replace(p, leaves=leaves)
    assert "hyperplane" in rejected(net, dom, m)
    assert ref_tag(net, dom, m)[:2] == ("leaf", replay[[t[2] for t in replay].index(code)][0])
    # Scale one multiplier instead.
    lam = list(c.lam)
    lam[0] *= 3
    bad = Tight(c.support, tuple(lam))
    assert not ref_tight(rows, bad)
    m = dataclasses.replace(p, leaves=p.leaves[:code] + (bad,) + p.leaves[code + 1:])
    rejected(net, dom, m)
    # The empty combination is 0 = 0 but uses no row with a != 0: it says nothing.
    empty_tight = Tight((), ())
    m = dataclasses.replace(p, leaves=p.leaves[:code] + (empty_tight,) + p.leaves[code + 1:])
    rejected(net, dom, m)


def test_mutant_bound_scaled(mid):
    net, dom, v = mid
    p = v.proof
    pieces, need, sep = ref_pairs_needed(net, dom, p)
    assert sep
    # A separated pair, and the bound that separates it.
    i, j = sep[0]
    found = None
    for t in range(len(p.bounds[i])):
        for (a, b) in ((i, j), (j, i)):
            up = p.bounds[a][t][1]
            lo = p.bounds[b][t][0]
            if up is not None and lo is not None:
                u = ref_bound(pieces[a][0], pieces[a][1][t], up, True)
                l = ref_bound(pieces[b][0], pieces[b][1][t], lo, False)
                if u < l:
                    found = (a, t)
                    break
        if found:
            break
    a, t = found
    up = p.bounds[a][t][1]
    bad = Bound(up.support, tuple(2 * x for x in up.lam))
    assert ref_bound(pieces[a][0], pieces[a][1][t], bad, True) is None  # sum lam a = 2 o != o
    bounds = list(p.bounds)
    piece = list(bounds[a])
    piece[t] = (piece[t][0], bad)
    bounds[a] = tuple(piece)
    m = dataclasses.replace(p, bounds=tuple(bounds))
    assert f"piece {a}, output {t}" in rejected(net, dom, m)
    assert ref_tag(net, dom, m) == ("bound", a, t)
    # Removing every bound of that piece (None is allowed) un-separates the pair,
    # which then has no certificate.
    bounds = list(p.bounds)
    bounds[a] = tuple((None, None) for _ in p.bounds[a])
    m = dataclasses.replace(p, bounds=tuple(bounds))
    _, need2, _ = ref_pairs_needed(net, dom, m)
    assert len(need2) > len(need) and (i, j) in need2
    rejected(net, dom, m)
    # Too few bound lists.
    m = dataclasses.replace(p, bounds=p.bounds[:-1])
    rejected(net, dom, m)


def test_mutant_tight_on_a_degenerate_box():
    # (x1, x2) -> (|x1|, x2) on [-1, 1] x [0, 0] is not injective; the forged
    # proof closes the root by the Tight certificate x2 <= 0, -x2 <= 0, which
    # really puts the domain in a hyperplane.  Only the full-dimension rule rejects it.
    net = Network((Layer.from_rows([[1, 0], [-1, 0], [0, 1], [0, -1]]),
                   Layer.from_rows([[1, 1, 0, 0], [0, 0, 1, -1]], activation="linear")))
    dom = Domain.box([-1, 0], [1, 0])
    x, y = (F(-1), F(0)), (F(1), F(0))
    assert in_domain(dom, x) and in_domain(dom, y) and plain_eval(net, x) == plain_eval(net, y)
    tight = Tight((1, 3), (F(1), F(1)))
    assert ref_tight(dom_rows(dom, 2), tight) and verify_tight(dom_rows(dom, 2), tight)
    proof = EndToEndProof((0,), (tight,), (), ())
    assert "full-dimensional" in rejected(net, dom, proof)
    assert ref_tag(net, dom, proof) == ("leaf", 0, "tight on a degenerate domain")
    # The same forgery one level down (after a genuine split).
    proof = EndToEndProof((SPLIT, 0, 0), (tight,), (), ())
    rejected(net, dom, proof)
    # Tight leaves that an honest engine proof would use on the full box are refused on the degenerate one.
    net2, ddom = _degenerate_case()
    full = Domain.box([-1, 0], [2, 1])
    r = e2e(net2, full)
    assert any(isinstance(c, Tight) for c in r.proof.leaves)
    rejected(net2, ddom, r.proof)


def test_mutant_proof_for_a_different_network():
    B, b = [[2, 1], [1, 1]], [1, -2]
    net = bneg(B, b)
    v = exact_inj.verify(net, time_limit=60, milp="none", domain=Domain())
    assert v.route == "end_to_end"
    # One weight of the final layer: -1 -> +1 gives (|2 z1 + z2 + 1|, z1 + z2 - 2).
    fin = [[1, 0, 1, 0], [0, 1, 0, -1]]
    other = bneg(B, b, final=fin)
    z1, z2 = F(0), F(0)   # 2 z1 + z2 + 1 = 1; the mirror point has 2 z1' + z2' + 1 = -1, z1' + z2' = 0
    w1, w2 = F(-2), F(2)
    assert plain_eval(other, (z1, z2)) == plain_eval(other, (w1, w2))
    assert not exact_inj.check(cert_of(other, Domain(), v.proof)).valid
    assert ref_tag(other, Domain(), v.proof) is not None
    # One weight of the first layer (B's first row loses its mirror): the old proof fails too.
    W = [list(r) for r in net.layers[0].weight]
    W[0][0] += 1
    changed = Network((Layer.from_rows(W, list(net.layers[0].bias)), net.layers[1]))
    assert not exact_inj.check(cert_of(changed, Domain(), v.proof)).valid
    vv = exact_inj.verify(other, time_limit=60, milp="none")
    assert vv.status.value == "not_injective"
    assert plain_eval(other, vv.witness.x) == plain_eval(other, vv.witness.y) and vv.witness.x != vv.witness.y


@pytest.mark.parametrize("B,b", [([[1]], None), ([[2, 1], [1, 1]], [1, -2]), ([[1, 2, 0], [0, 1, 1], [1, 0, 1]], None)])
def test_proof_does_not_check_for_final_layer_i_i(B, b):
    net = bneg(B, b)
    v = exact_inj.verify(net, time_limit=60, milp="none")
    assert v.route == "end_to_end"
    m = len(B)
    summed = bneg(B, b, final=[[int(i == j) for j in range(m)] * 2 for i in range(m)])  # [I, I]: |Bz + b|
    res = exact_inj.check(Certificate(summed, Domain(), Status.INJECTIVE, v.proof))
    assert not res.valid
    assert ref_tag(summed, Domain(), v.proof) is not None
    vv = exact_inj.verify(summed, time_limit=60, milp="none")
    assert vv.status.value == "not_injective"
    x, y = vv.witness.x, vv.witness.y
    assert x != y and plain_eval(summed, x) == plain_eval(summed, y)
    # And on the other domain kinds too: the orthant proof for the original net.
    v2 = exact_inj.verify(net, time_limit=60, milp="none", domain=Domain.box([-1] * m, [1] * m))
    if isinstance(v2.proof, EndToEndProof):
        assert not exact_inj.check(Certificate(summed, Domain.box([-1] * m, [1] * m), Status.INJECTIVE,
                                               v2.proof)).valid


# --------------------------------------------------------------------------------------
# 6. Checking costs less than deciding
# --------------------------------------------------------------------------------------


def test_check_faster_than_decide(mid):
    net, dom, v = mid
    res = exact_inj.check(v.certificate)
    assert res.valid
    assert res.seconds < v.seconds, (res.seconds, v.seconds)
    assert res.seconds < v.seconds / 2, (res.seconds, v.seconds)
