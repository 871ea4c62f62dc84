"""Adversarial review of the end-to-end certificate checker (checker._check_end_to_end).

Every test here builds an ``injective`` end-to-end certificate for a network
that is NOT injective on the stated domain (a collision is exhibited and
re-evaluated with plain Fractions, independently of exact_inj), or an
otherwise malformed certificate, and asserts that ``exact_inj.check``
rejects it.  Most attacks are "almost valid": every part of the proof is
correct except the one being attacked, so a rejection cannot be an accident.

The "almost valid" proofs are built by :func:`near_proof`: the piece tree
is grown by the engine (or given by hand), every pair the engine can close
is closed with its exact certificate, and the pairs that collide get a
placeholder; each attack then forges only the placeholder or one tree leaf.

Most attacks (sections 9 and 10, and the rebuilt ones of sections 1, 2, 5-8)
start instead from a VALID proof the engine made for an injective network,
change one thing, and assert the checker's exact reason, so that each fails
when the check it aims at is removed (docs/testing.md, "Tests that can fail").
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from fractions import Fraction as F

import numpy as np
import pytest

import exact_inj
from exact_inj.network import endtoend
from exact_inj.certify.schema import COLLAPSE, REGION, SPLIT, Bound, Certificate, EndToEndProof, Flat, Infeasible, Tight
from exact_inj.model.domain import Domain
from exact_inj.certify.network import verify_flat, verify_tight
from exact_inj.io import InputError, loads_exact
from exact_inj.model import Layer, Network
from exact_inj.model.pieces import Walker, pair_system
from exact_inj.verdict import Status

Z, ONE = F(0), F(1)


# --------------------------------------------------------------------------------------
# Independent helpers
# --------------------------------------------------------------------------------------


def plain_eval(net: Network, x) -> tuple[F, ...]:
    h = [F(v) for v in x]
    for layer in net.layers:
        pre = [sum((F(w) * v for w, v in zip(row, h)), F(0)) + F(b) for row, b in zip(layer.weight, layer.bias)]
        h = [max(a, F(0)) for a in pre] if layer.activation == "relu" else pre
    return tuple(h)


def in_dom(dom: Domain, x) -> bool:
    if dom.kind == "orthant":
        return all(v >= 0 for v in x)
    if dom.kind == "box":
        return all(F(lo) <= v <= F(hi) for lo, v, hi in zip(dom.lower, x, dom.upper))
    return True


def assert_collision(net: Network, dom: Domain, x, y) -> None:
    """The network is not injective on dom: x != y, both in dom, equal outputs."""
    x, y = tuple(map(F, x)), tuple(map(F, y))
    assert x != y and in_dom(dom, x) and in_dom(dom, y)
    assert plain_eval(net, x) == plain_eval(net, y)


def cert(net, dom, proof) -> Certificate:
    return Certificate(net, dom, Status.INJECTIVE, proof)


def reject(net, dom, proof) -> str:
    res = exact_inj.check(cert(net, dom, proof))
    assert not res.valid, f"UNSOUND: the checker accepted it ({res.reason})"
    return res.reason


def accept(net, dom, proof) -> None:
    res = exact_inj.check(cert(net, dom, proof))
    assert res.valid, res.reason


def replay(net: Network, dom: Domain, tree):
    """The pieces (Prefix objects) and the closed prefixes of a tree, by its own walk."""
    w = Walker(net, dom)
    pieces, closed = [], []
    it = iter(tree)

    def rec(node):
        tok = next(it)
        if tok == REGION:
            pieces.append(node)
        elif tok == SPLIT:
            rec(node.child(True))
            rec(node.child(False))
        elif tok == COLLAPSE:
            rec(node.child(False))
        else:
            closed.append((tok, node))

    rec(w.root())
    return pieces, closed


def near_proof(net: Network, dom: Domain, tree=None, leaves=None, limit=30):
    """(proof, open_pairs): a proof whose tree, leaves, bounds and pair
    certificates are exact and valid, except that every pair the engine
    cannot close (a collision) holds an Infeasible placeholder.  ``open_pairs``
    lists (index in proof.pairs, i, j) of those."""
    search = endtoend._Search(Walker(net, dom), time.perf_counter() + limit, lambda s: None, 10_000)
    if tree is None:
        tree, leaves, pieces = search.pieces()
    else:
        pieces, _ = replay(net, dom, tree)
    rows = [p.rows() for p in pieces]
    outs = [p.output() for p in pieces]
    fl = [search.floats(r, o) for r, o in zip(rows, outs)]
    bounds, box = [], []
    for i in range(len(pieces)):
        b, v = search.bounds(rows[i], outs[i], fl[i])
        bounds.append(b)
        box.append(v)
    p = len(outs[0]) if outs else 0
    pairs, open_pairs = [], []
    for i in range(len(pieces)):
        for j in range(i, len(pieces)):
            bi, bj = box[i], box[j]
            if any((bi[t][1] is not None and bj[t][0] is not None and bi[t][1] < bj[t][0])
                   or (bj[t][1] is not None and bi[t][0] is not None and bj[t][1] < bi[t][0]) for t in range(p)):
                continue
            kind, ev = search.pair(rows[i], outs[i], rows[j], outs[j], fl[i], fl[j])
            if kind in ("infeasible", "flat"):
                pairs.append(ev)
            else:
                open_pairs.append((len(pairs), i, j))
                pairs.append(Infeasible((), (), (Z,) * p))
    return EndToEndProof(tuple(tree), tuple(leaves), tuple(bounds), tuple(pairs)), open_pairs


def with_pair(proof, k, c):
    pairs = list(proof.pairs)
    pairs[k] = c
    return dataclasses.replace(proof, pairs=tuple(pairs))


# --------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------

# |x| = ReLU(x) + ReLU(-x): x and -x collide on R.
ABS = Network((Layer.from_rows([[1], [-1]]), Layer.from_rows([[1, 1]], activation="linear")))
# ReLU(x) alone (a final ReLU layer): -1 and -2 collide on R.
RELU1 = Network((Layer.from_rows([[1]]),))
# (|x1|, x2) on R^2 through a hidden layer of four: (1, 0) and (-1, 0) collide.
ABS2 = Network((Layer.from_rows([[1, 0], [-1, 0], [0, 1], [0, -1]]),
                Layer.from_rows([[1, 1, 0, 0], [0, 0, 1, -1]], activation="linear")))
# Two ReLU stages: ReLU(ReLU(x) - ReLU(-x)) ... then |.|-like stage: ||x| - 1|.
TWO_STAGE = Network((Layer.from_rows([[1], [-1]]),
                     Layer.from_rows([[1, 1], [-1, -1]], [-1, 1]),
                     Layer.from_rows([[1, 1]], activation="linear")))


def test_collisions_are_real():
    assert_collision(ABS, Domain(), [1], [-1])
    assert_collision(ABS, Domain.box([-1], [2]), [1], [-1])
    assert_collision(RELU1, Domain(), [-1], [-2])
    assert_collision(ABS2, Domain(), [1, 0], [-1, 0])
    assert_collision(TWO_STAGE, Domain(), [2], [0])
    assert_collision(TWO_STAGE, Domain.orthant(), [2], [0])


# A hand-made proof for ABS on R that is valid except for pair (0, 1).
# Pieces: A = {x >= 0} (output x), B = {x <= 0} (output -x); the two
# lower-dimensional prefixes {x = 0} are dropped as Tight.  Pair system
# (0, 1) over (x, y): rows 0, 1: -x <= 0; rows 2, 3: y <= 0; eq: x + y = 0.
ABS_TREE = (SPLIT, SPLIT, 0, REGION, SPLIT, REGION, 0)
ABS_LEAVES = (Tight((0, 1), (ONE, ONE)),)
ABS_NONE_BOUNDS = (((None, None),), ((None, None),))
PAIR00 = Flat((), (), (Z,), ((ONE,),))
PAIR11 = Flat((), (), (Z,), ((F(-1),),))
# x - y = (x + y) - 2 y = eq - 2 * row 2; every listed row must be tight, but
# here lam = 0 (rows 0, 2 are NOT tight on the system: x = 1, y = -1 lies in it).
ZERO_LAM_FLAT = Flat((0, 2), (Z, Z), (Z,), ((Z, F(-2), ONE),))


def abs_proof(p01=ZERO_LAM_FLAT, **kw):
    return EndToEndProof(kw.get("tree", ABS_TREE), kw.get("leaves", ABS_LEAVES), kw.get("bounds", ABS_NONE_BOUNDS),
                         kw.get("pairs", (PAIR00, p01, PAIR11)))


def test_abs_hand_proof_is_valid_except_pair_01():
    # Sanity of the template: the other pair certificates are right (ABS on
    # the orthant-like pieces alone), and pair (0, 1) is the only flaw.
    pieces, _ = replay(ABS, Domain(), ABS_TREE)
    assert len(pieces) == 2
    for (i, j), c in (((0, 0), PAIR00), ((1, 1), PAIR11)):
        ineq, eqs = pair_system(pieces[i].rows(), pieces[i].output(), pieces[j].rows(), pieces[j].output(), 1)
        assert verify_flat(ineq, eqs, c, 1)
    assert "pair (0, 1)" in reject(ABS, Domain(), abs_proof())


# --------------------------------------------------------------------------------------
# 1. Flat / Infeasible pair certificates
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("p01", [
    ZERO_LAM_FLAT,                                                   # lam = 0: rows not tight
    Flat((0, 2), (ONE, ONE), (Z,), ((Z, F(-2), ONE),)),              # lam > 0 but sum != 0
    Flat((0, 2), (ONE, F(-1)), (ONE,), ((Z, F(-2), ONE),)),          # a negative lam
    Flat((), (), (Z,), ((ONE,),)),                                   # x - y from eq only: wrong
    Flat((2,), (ONE,), (Z,), ((F(-2), ONE),)),                       # not identically 0
    Flat((), (), (), ((ONE,),)),                                     # eq multipliers too short
    Flat((), (), (Z, Z), ((ONE, Z, Z),)),                            # eq multipliers too long
    Flat((), (), (Z,), ()),                                          # solve has no row
    Flat((), (), (Z,), ((ONE,), (ONE,))),                            # solve has too many rows
    Flat((-4, -2), (Z, Z), (Z,), ((Z, F(-2), ONE),)),                # negative (Python) indices
    Flat((4,), (ONE,), (Z,), ((Z, ONE),)),                           # index past the end
    Infeasible((), (), (Z,)),                                        # constant 0, not > 0
    Infeasible((0, 2), (ONE, ONE), (ONE,)),                          # coefficients don't cancel
    Infeasible((0, 2), (F(-1), F(-1)), (ONE,)),                      # negative lam
    Infeasible((-1,), (ONE,), (Z,)),                                 # negative index
    Infeasible((0, 0), (ONE, ONE), (Z,)),                            # repeated index
    Infeasible((), (), ()),                                          # eq too short
    Tight((0, 1), (ONE, ONE)),                                       # a Tight as a pair
    Bound((0,), (ONE,)),                                             # a Bound as a pair
    None,
], ids=lambda c: repr(c)[:60])
def test_abs_pair_01_forgeries(p01):
    # Pairs (0, 0) and (1, 1), the tree and the leaf are valid
    # (test_abs_hand_proof_is_valid_except_pair_01): the reason must name (0, 1).
    assert_collision(ABS, Domain(), [1], [-1])
    assert reject(ABS, Domain(), abs_proof(p01)) == "pair (0, 1): its certificate does not close it"


def test_zero_lam_flat_is_exactly_what_lambda_positive_guards():
    # Without the lam > 0 requirement, ZERO_LAM_FLAT would pass every other test of verify_flat.
    pieces, _ = replay(ABS, Domain(), ABS_TREE)
    ineq, eqs = pair_system(pieces[0].rows(), pieces[0].output(), pieces[1].rows(), pieces[1].output(), 1)
    assert not verify_flat(ineq, eqs, ZERO_LAM_FLAT, 1)
    # x = 1, y = -1 satisfies the pair system: the rows named are not tight there.
    x, y = (F(1),), (F(-1),)
    v = x + y
    assert all(sum(a * t for a, t in zip(ineq[r][0], v)) + ineq[r][1] <= 0 for r in range(len(ineq)))
    assert all(sum(a * t for a, t in zip(e, v)) + d == 0 for e, d in eqs)


@pytest.mark.parametrize("name", ["ident_R", "sep_R", "sep_box"])
def test_pairs_missing_extra_or_reordered(valid, name):
    # A valid proof's pair list with one pair dropped from the middle, or two
    # neighbours swapped, or each certificate rewritten for the reversed pair
    # (j, i).  The expected reason is predicted by the independent re-check
    # (independent_closes): the first slot whose new certificate does not
    # close its pair; when every moved certificate still closes its new slot
    # (two pairs can share a system up to names), the proof must stay valid.
    net, dom, proof = valid[name]
    slots = pair_slots(net, dom, proof)
    pieces, _ = replay(net, dom, proof.tree)
    n = len(net.layers[0].weight[0])
    systems = []
    for sl in slots:
        i, j = map(int, sl.strip("()").split(","))
        systems.append(pair_system(pieces[i].rows(), pieces[i].output(), pieces[j].rows(), pieces[j].output(), n))

    def expect(pairs):
        for t, c in enumerate(pairs[:len(slots)]):
            if not independent_closes(*systems[t], c, n):
                return f"pair {slots[t]}: its certificate does not close it"
        if len(pairs) < len(slots):
            return f"pair {slots[len(pairs)]} has no certificate (the proof has {len(pairs)})"
        return None

    variants = []
    for k in range(len(proof.pairs) - 1):
        variants.append(proof.pairs[:k] + proof.pairs[k + 1:])                              # k dropped
        variants.append(proof.pairs[:k] + (proof.pairs[k + 1], proof.pairs[k]) + proof.pairs[k + 2:])  # swapped
    variants.append(tuple(reversed_pair(c, *systems[t]) for t, c in enumerate(proof.pairs)))  # orientation
    refused = 0
    for pairs in variants:
        want = expect(pairs)
        res = exact_inj.check(cert(net, dom, dataclasses.replace(proof, pairs=pairs)))
        if want is None:
            assert res.valid, res.reason
        else:
            refused += 1
            assert not res.valid and res.reason == want, (res.reason, want)
    assert refused >= len(proof.pairs) - 1


def reversed_pair(c, ineq, eqs):
    """c rewritten for the pair with x and y exchanged: x's rows come second.
    The rows split at the middle (both pieces' rows have the same count in a
    pair of one network's pieces), and the flat solve changes sign."""
    half = len(ineq) // 2
    sup = tuple(r + half if r < half else r - half for r in c.support)
    if isinstance(c, Flat):
        return Flat(sup, c.lam, tuple(-v for v in c.eq), tuple(tuple(-v for v in row) for row in c.solve))
    return Infeasible(sup, c.lam, tuple(-v for v in c.eq))


def independent_closes(ineq, eqs, c, n) -> bool:
    """Flat (independent_flat) or Infeasible, re-checked here in plain Fractions."""
    if isinstance(c, Flat):
        return independent_flat(ineq, eqs, c, n)
    if not isinstance(c, Infeasible) or len(c.support) != len(c.lam) or len(c.eq) != len(eqs):
        return False
    if len(set(c.support)) != len(c.support) or any(not 0 <= r < len(ineq) for r in c.support):
        return False
    if any(F(v) < 0 for v in c.lam):
        return False
    B = [ineq[r] for r in c.support] + list(eqs)
    mult = list(c.lam) + list(c.eq)
    if any(sum(F(m) * F(b[0][t]) for m, b in zip(mult, B)) != 0 for t in range(2 * n)):
        return False
    return sum(F(m) * F(b[1]) for m, b in zip(mult, B)) > 0


# --------------------------------------------------------------------------------------
# 2. Output bounds and separation
# --------------------------------------------------------------------------------------


SEPARATIONS = [
    # A's output x: upper "-1" from the row -x <= 0 (sum lam a = -1 != o = 1): not a bound.
    (((None, Bound((0,), (ONE,))),), ((Bound((0,), (ONE,)), None),)),
    # B's output -x >= 0 is valid (lower 0); A's forged upper bound via a negative lam.
    (((None, Bound((0,), (F(-1),))),), ((Bound((0,), (ONE,)), None),)),
    # negative index into the rows (rows[-1] would be a real row in Python)
    (((None, Bound((-1,), (ONE,))),), ((Bound((0,), (ONE,)), None),)),
    (((None, Bound((0, 0), (ONE, ONE))),), ((Bound((0,), (ONE,)), None),)),
    # a Tight or an Infeasible where a Bound belongs
    (((None, Tight((0,), (ONE,))),), ((Bound((0,), (ONE,)), None),)),
    (((None, Infeasible((0,), (ONE,), ())),), ((Bound((0,), (ONE,)), None),)),
    # wrong number of outputs
    (((None, None), (None, None)), ((None, None),)),
    ((), ((None, None),)),
    (((None, None),),),
    (((None, None),), ((None, None),), ((None, None),)),
]


@pytest.mark.parametrize("k", range(10))
def test_abs_forged_separation(k):
    bounds = SEPARATIONS[k]
    # Pair (0, 1) dropped by a claimed separation of the two pieces' outputs.
    p = EndToEndProof(ABS_TREE, ABS_LEAVES, bounds, (PAIR00, PAIR11))
    # The bounds are checked before any pair: the forged bound itself must be named.
    expected = (["piece 0, output 0: the upper bound's certificate is not valid"] * 6
                + ["piece 0 has 1 outputs but 2 bound pairs", "piece 0 has 1 outputs but 0 bound pairs",
                   "2 pieces need 2 lists of output bounds, the proof has 1",
                   "2 pieces need 2 lists of output bounds, the proof has 3"])
    assert reject(ABS, Domain(), p) == expected[k]


def test_valid_bounds_that_touch_do_not_separate():
    # On [-1, 2] the pieces of |x| have outputs in [0, 2] and [0, 1]: valid
    # bounds, touching/overlapping; (0, 1) still needs its certificate.
    dom = Domain.box([-1], [2])
    assert_collision(ABS, dom, [1], [-1])
    proof, open_pairs = near_proof(ABS, dom)
    assert open_pairs, "the engine should not close the colliding pair"
    reject(ABS, dom, proof)
    for k, _, _ in open_pairs:
        reject(ABS, dom, dataclasses.replace(proof, pairs=proof.pairs[:k] + proof.pairs[k + 1:]))


def test_identity_touching_bounds_still_need_the_pair():
    # ReLU(x) - ReLU(-x) = x on [-1, 1]: pieces' outputs [0, 1] and [-1, 0]
    # touch at 0, which is NOT a strict separation; the pair must be certified.
    net = Network((Layer.from_rows([[1], [-1]]), Layer.from_rows([[1, -1]], activation="linear")))
    dom = Domain.box([-1], [1])
    proof, open_pairs = near_proof(net, dom)
    assert not open_pairs
    accept(net, dom, proof)
    R = len(replay(net, dom, proof.tree)[0])
    assert len(proof.pairs) == R * (R + 1) // 2  # nothing separated, touching included
    for k in range(len(proof.pairs)):
        reject(net, dom, dataclasses.replace(proof, pairs=proof.pairs[:k] + proof.pairs[k + 1:]))


def test_piece_cannot_separate_from_itself_unless_empty(valid):
    # A (lower > upper) claim on a nonempty piece needs a forged bound: on a
    # valid proof, a piece's lower-bound certificate given as its upper bound
    # too (it proves o >= l, not o <= u) is refused for that bound.
    net, dom, proof = valid["sep_R"]
    i, k = next((i, k) for i, pc in enumerate(proof.bounds) for k, lu in enumerate(pc) if lu[0] is not None)
    lower = proof.bounds[i][k][0]
    piece = proof.bounds[i][:k] + ((lower, lower),) + proof.bounds[i][k + 1:]
    bounds = proof.bounds[:i] + (piece,) + proof.bounds[i + 1:]
    assert reject(net, dom, dataclasses.replace(proof, bounds=bounds)) == \
        f"piece {i}, output {k}: the upper bound's certificate is not valid"


# --------------------------------------------------------------------------------------
# 3. Tree coverage: REGION, COLLAPSE, leaves, Tight on full vs degenerate domains
# --------------------------------------------------------------------------------------


TREE_FORGERIES = [
    (REGION,),                                  # a piece before any neuron is fixed
    (SPLIT, REGION, REGION),                    # pieces with neuron 1 unfixed
    (SPLIT, SPLIT, 0, REGION, SPLIT, REGION),   # ends early
    ABS_TREE + (REGION,),                       # code after the last node
    (SPLIT, SPLIT, 0, REGION, SPLIT, REGION, 1),   # leaf index out of range
    (SPLIT, SPLIT, 0, REGION, SPLIT, REGION, -4),  # unknown negative code
    (SPLIT, SPLIT, 0, REGION, SPLIT, REGION, 10 ** 40),
    (COLLAPSE, COLLAPSE, REGION),               # collapsing live neurons: one piece {x = 0}
    (SPLIT, COLLAPSE, REGION, SPLIT, REGION, 0),   # collapse only where it helps
    (SPLIT, SPLIT, 0, REGION, 0),               # B = {x <= 0} dropped as "Tight"
    (SPLIT, SPLIT, 0, REGION, SPLIT, 0, 0),     # B's neuron split, both halves "Tight"
    (0,),                                       # the whole domain "Tight"
    (SPLIT, 0, 0),                              # every prefix "Tight"
]


TREE_REASONS = [
    "tree code 0: a piece must fix every neuron (0 of 2 fixed)",
    "tree code 1: a piece must fix every neuron (1 of 2 fixed)",
    "the piece tree ends before every node is closed",
    "the piece tree has 1 codes after its last node",
    "tree code 6 = 1 is not a valid code",
    "tree code 6 = -4 is not a valid code",
    "tree code 6 = 100000...000000 (41 digits) is not a valid code",
    "tree code 0: collapsing neuron 0 needs a pre-activation that is identically 0",
    "tree code 1: collapsing neuron 1 needs a pre-activation that is identically 0",
    "tree code 4: leaf certificate 0 does not put its prefix in a hyperplane",
    "tree code 5: leaf certificate 0 does not put its prefix in a hyperplane",
    "tree code 0: leaf certificate 0 does not put its prefix in a hyperplane",
    "tree code 1: leaf certificate 0 does not put its prefix in a hyperplane",
]


@pytest.mark.parametrize("k", range(13))
def test_abs_tree_forgeries(k):
    # The tree is checked before any pair, so the (false) pairs below are never
    # reached: the reason must be the tree's, which makes each case able to fail.
    tree = TREE_FORGERIES[k]
    # Whatever the tree, give it the pieces' true (ABS on x >= 0) pair certificates
    # for as many pairs as it has pieces: acceptance would drop the collision.
    pieces, _ = replay(ABS, Domain(), tree) if _replayable(tree) else ([], [])
    R = max(1, len(pieces))
    pairs = tuple(PAIR00 for _ in range(R * (R + 1) // 2))
    bounds = tuple(((None, None),) for _ in range(R))
    assert reject(ABS, Domain(), EndToEndProof(tuple(tree), ABS_LEAVES, bounds, pairs)) == TREE_REASONS[k]


def _replayable(tree) -> bool:
    try:
        pieces, closed = replay(ABS, Domain(), tree)
        return all(p.complete for p in pieces)
    except (StopIteration, ValueError, IndexError):
        return False


def test_collapse_of_live_neurons_is_the_only_flaw():
    # (COLLAPSE, COLLAPSE, REGION) leaves one piece {x = 0} (rows x <= 0 and -x <= 0
    # after the collapses), whose pair (0, 0) is genuinely Flat.
    tree = (COLLAPSE, COLLAPSE, REGION)
    pieces, _ = replay(ABS, Domain(), tree)
    ineq, eqs = pair_system(pieces[0].rows(), pieces[0].output(), pieces[0].rows(), pieces[0].output(), 1)
    flat = Flat((0, 1, 2, 3), (ONE, ONE, ONE, ONE), (Z,), ((ONE, Z, F(-1), Z, Z),))
    assert verify_flat(ineq, eqs, flat, 1)
    assert "collapsing" in reject(ABS, Domain(), EndToEndProof(tree, (), (((None, None),),), (flat,)))


FORGED_LEAVES = [
    Tight((0,), (ONE,)),                       # a single row with a != 0 cannot cancel
    Tight((0,), (Z,)),                         # lam = 0 everywhere
    Tight((), ()),                             # nothing
    Tight((0, 0), (ONE, ONE)),                 # repeated row
    Tight((0, -1), (ONE, ONE)),                # negative index (rows[-1] exists in Python)
    Tight((0, 5), (ONE, ONE)),
    Tight((0,), (ONE, ONE)),                   # length mismatch
    Infeasible((0,), (ONE,), ()),
    Infeasible((0,), (ONE,), (Z,)),            # eq on a prefix
    Flat((), (), (), ()),
    Bound((0,), (ONE,)),
    None,
]


@pytest.mark.parametrize("leaf", FORGED_LEAVES, ids=lambda c: repr(c)[:50])
def test_abs_drop_piece_b_with_forged_leaf(leaf):
    # Piece B = {x <= 0} closed by leaf 1; A alone is injective (pair (0, 0) Flat).
    tree = (SPLIT, SPLIT, 0, REGION, 1)
    p = EndToEndProof(tree, ABS_LEAVES + (leaf,), (((None, None),),), (PAIR00,))
    # Everything else is valid (PAIR00 closes A with itself): the leaf is what fails.
    words = "does not put its prefix in a hyperplane" if isinstance(leaf, Tight) else "does not close its prefix"
    assert reject(ABS, Domain(), p) == f"tree code 4: leaf certificate 1 {words}"


def test_tight_on_zero_row_only():
    # N(x) = (ReLU(x), ReLU(0 x)) on R: -1 and -2 collide.  The zero neuron is
    # split (not collapsed); its rows (0, 0) give sum lam a = 0 and sum lam c = 0
    # with lam > 0 -- but only on a zero row, which puts nothing in a hyperplane.
    net = Network((Layer.from_rows([[1], [0]]),))
    assert_collision(net, Domain(), [-1], [-2])
    # rows of a full pattern: 0: neuron 0's row, 1: neuron 1's row (0, 0).
    zero_tight = Tight((1,), (ONE,))
    zero_plus = Tight((0, 1), (Z, ONE))           # lam = 0 on the row with a != 0
    for leaf in (zero_tight, zero_plus):
        tree = (SPLIT, SPLIT, REGION, 0, SPLIT, 0, 0)
        pieces, closed = replay(net, Domain(), tree)
        assert len(pieces) == 1
        assert all(not verify_tight(node.rows(), leaf) for _, node in closed)
        pair = Flat((), (), (Z, Z), ((ONE, Z),))   # x - y = eq_0 on the piece x >= 0
        ineq, eqs = pair_system(pieces[0].rows(), pieces[0].output(), pieces[0].rows(), pieces[0].output(), 1)
        assert verify_flat(ineq, eqs, pair, 1)
        reject(net, Domain(), EndToEndProof(tree, (leaf,), (((None, None), (None, None)),), (pair,)))


def _deg_net_and_box():
    # N(x1, x2) = ReLU(x2) on [0, 1] x [0, 0]: (0, 0) and (1, 0) collide.
    net = Network((Layer.from_rows([[0, 1]]),))
    dom = Domain.box([0, 0], [1, 0])
    assert_collision(net, dom, [0, 0], [1, 0])
    return net, dom


def test_degenerate_box_whole_domain_tight():
    # Box rows: 0: x1 <= 1, 1: x2 <= 0, 2: -x1 <= 0, 3: -x2 <= 0.  Rows 1 and 3
    # cancel with constant 0: the domain lies in {x2 = 0}, a valid Tight
    # certificate; dropping it leaves no pieces and no pairs.
    net, dom = _deg_net_and_box()
    leaf = Tight((1, 3), (ONE, ONE))
    assert verify_tight(Walker(net, dom).root().rows(), leaf)
    assert "full-dimensional" in reject(net, dom, EndToEndProof((0,), (leaf,), (), ()))


def test_degenerate_box_every_prefix_tight():
    net, dom = _deg_net_and_box()
    leaf = Tight((1, 3), (ONE, ONE))
    reject(net, dom, EndToEndProof((SPLIT, 0, 0), (leaf,), (), ()))
    # Same on a box degenerate in the OTHER coordinate only (x1 fixed, x2 free):
    # N(x1, x2) = ReLU(x1) on {1} x [0, 1] collides (1, 0) and (1, 1).
    net2 = Network((Layer.from_rows([[1, 0]]),))
    dom2 = Domain.box([1, 0], [1, 1])
    assert_collision(net2, dom2, [1, 0], [1, 1])
    leaf2 = Tight((0, 2), (ONE, ONE))
    assert verify_tight(Walker(net2, dom2).root().rows(), leaf2)
    reject(net2, dom2, EndToEndProof((0,), (leaf2,), (), ()))
    reject(net2, dom2, EndToEndProof((SPLIT, 0, 0), (leaf2,), (), ()))


def test_degenerate_box_linear_network():
    # No ReLU at all: N(x1, x2) = x1 on {0} x [0, 1]; (0, 0) and (0, 1) collide.
    net = Network((Layer.from_rows([[1, 0]], activation="linear"),))
    dom = Domain.box([0, 0], [0, 1])
    assert_collision(net, dom, [0, 0], [0, 1])
    reject(net, dom, EndToEndProof((0,), (Tight((0, 2), (ONE, ONE)),), (), ()))
    # One piece; rows 0: x1 <= 0, 1: x2 <= 1, 2: -x1 <= 0, 3: -x2 <= 0 (then y's 4..7).
    # x2 - y2 from "tight" rows 1, 3 / 5, 7 is impossible (1 + 0 != 0): forge with lam = 0 on them.
    forged = Flat((1, 7), (Z, Z), (Z,), ((Z, Z, ONE), (ONE, ONE, Z)))
    reject(net, dom, EndToEndProof((REGION,), (), (((None, None),),), (forged,)))


def test_full_domains_cannot_be_dropped_whole():
    # Orthant: rows -x_j <= 0 are independent; a full box: x <= u, -x <= -l
    # cancel only with constant l - u < 0.
    for net, dom, x, y in ((ABS2, Domain.orthant(), None, None),
                           (TWO_STAGE, Domain.orthant(), [2], [0]),
                           (ABS, Domain.box([-1], [2]), [1], [-1]),
                           (ABS, Domain(), [1], [-1])):
        if x is not None:
            assert_collision(net, dom, x, y)
        m = len(Walker(net, dom).domain_rows)
        for leaf in (Tight(tuple(range(m)), (ONE,) * m), Tight((0,), (ONE,)), Tight((), ()),
                     Infeasible(tuple(range(m)), (ONE,) * m, ())):
            reject(net, dom, EndToEndProof((0,), (leaf,), (), ()))
    # (ABS2 on the orthant is injective -- (|x1|, x2) = (x1, x2) there -- and dropping is refused all the same.)


def test_empty_pieces_list_needs_no_pairs_only_if_truly_covered():
    # RELU1 on R: pieces {x >= 0} and {x <= 0}; drop the inactive one.
    assert_collision(RELU1, Domain(), [-1], [-2])
    for leaf in (Tight((0,), (ONE,)), Infeasible((0,), (ONE,), ()), Infeasible((), (), ())):
        reject(RELU1, Domain(), EndToEndProof((SPLIT, REGION, 0), (leaf,), (((None, None),),),
                                              (Flat((), (), (Z,), ((ONE,),)),)))


# --------------------------------------------------------------------------------------
# 4. Engine-built near proofs: forge only the colliding pairs / pieces
# --------------------------------------------------------------------------------------

NEAR_CASES = [
    ("abs_R", ABS, Domain(), [1], [-1]),
    ("abs_box", ABS, Domain.box([-1], [2]), [1], [-1]),
    ("relu_R", RELU1, Domain(), [-1], [-2]),
    ("abs2_R", ABS2, Domain(), [1, 0], [-1, 0]),
    ("abs2_box", ABS2, Domain.box([-1, -1], [1, 1]), [1, 0], [-1, 0]),
    ("two_stage_R", TWO_STAGE, Domain(), [2], [0]),
    ("two_stage_orthant", TWO_STAGE, Domain.orthant(), [2], [0]),
]


@pytest.fixture(scope="module")
def near():
    return {name: (net, dom, x, y) + near_proof(net, dom) for name, net, dom, x, y in NEAR_CASES}


@pytest.mark.parametrize("name", [c[0] for c in NEAR_CASES])
def test_near_proof_forge_open_pairs(near, name):
    net, dom, x, y, proof, open_pairs = near[name]
    assert_collision(net, dom, x, y)
    assert open_pairs
    reject(net, dom, proof)
    # Every other pair certificate, and every leaf, tried in every open slot.
    donors = [c for c in proof.pairs] + [c for c in proof.leaves]
    for k, _, _ in open_pairs:
        for c in donors:
            reject(net, dom, with_pair(proof, k, c))
    # The FIRST open slot is the first flaw the checker meets (pairs come in
    # order, every earlier pair is valid): a donor there must be refused for
    # that very pair, not for a placeholder further on.
    k0, i0, j0 = open_pairs[0]
    for c in donors:
        assert reject(net, dom, with_pair(proof, k0, c)) == f"pair ({i0}, {j0}): its certificate does not close it"
    # Drop the open pairs altogether.
    drop = {k for k, _, _ in open_pairs}
    reject(net, dom, dataclasses.replace(proof, pairs=tuple(c for t, c in enumerate(proof.pairs) if t not in drop)))


@pytest.mark.parametrize("name", [c[0] for c in NEAR_CASES])
def test_near_proof_drop_colliding_piece(near, name):
    # Replace one colliding piece's REGION by a leaf (each existing leaf, or a
    # fresh Tight / Infeasible over all rows) and re-close every remaining pair
    # honestly: only the forged leaf is wrong.
    net, dom, x, y, proof, open_pairs = near[name]
    bad_pieces = sorted({i for _, i, _ in open_pairs} | {j for _, _, j in open_pairs})
    region_pos = [t for t, c in enumerate(proof.tree) if c == REGION]
    for piece in bad_pieces[:2]:
        pos = region_pos[piece]
        candidates = list(range(len(proof.leaves))) + [len(proof.leaves)]
        for leaf_idx in candidates:
            tree = proof.tree[:pos] + (leaf_idx,) + proof.tree[pos + 1:]
            pieces, closed = replay(net, dom, tree)
            node = [nd for t, nd in closed if t == leaf_idx][-1]
            m = len(node.rows())
            extra = (Tight(tuple(range(m)), (ONE,) * m),) if leaf_idx == len(proof.leaves) else ()
            leaves = proof.leaves + extra
            p, _ = near_proof(net, dom, tree=tree, leaves=leaves)
            # The tree is checked before any pair, so the placeholders further on
            # are never reached: the forged leaf itself must be named.
            assert reject(net, dom, p).startswith(f"tree code {pos}: "), (pos, leaf_idx)


@pytest.mark.parametrize("name", [c[0] for c in NEAR_CASES])
def test_near_proof_random_mutations(near, name):
    # Random integer / multiplier perturbations of the near proof: a non-injective
    # network must never get an accepted certificate.
    net, dom, x, y, proof, open_pairs = near[name]
    rng = random.Random(sum(map(ord, name)))  # str hash is salted per process

    def mutate_comb(c):
        if c is None:
            return Bound((0,), (ONE,))
        fields = {f.name: getattr(c, f.name) for f in dataclasses.fields(c)}
        key = rng.choice(list(fields))
        val = fields[key]
        if key == "support":
            val = tuple(v + rng.choice([-1, 1, -5]) if rng.random() < 0.5 else v for v in val) or (rng.randrange(-2, 6),)
        elif key == "solve":
            val = tuple(tuple(v + rng.choice([-1, 1, F(1, 2)]) if rng.random() < 0.3 else v for v in r) for r in val)
        else:
            val = tuple(v * rng.choice([0, -1, 2, F(1, 3)]) + rng.choice([0, 0, 1]) for v in val) or (ONE,)
        fields[key] = val
        return type(c)(**fields)

    for _ in range(60):
        p = proof
        for _ in range(rng.randint(1, 3)):
            what = rng.choice(["tree", "leaf", "bound", "pair", "pair", "swap"])
            if what == "tree":
                t = list(p.tree)
                t[rng.randrange(len(t))] = rng.choice([SPLIT, COLLAPSE, REGION, 0, 1, len(p.leaves)])
                p = dataclasses.replace(p, tree=tuple(t))
            elif what == "leaf" and p.leaves:
                k = rng.randrange(len(p.leaves))
                p = dataclasses.replace(p, leaves=p.leaves[:k] + (mutate_comb(p.leaves[k]),) + p.leaves[k + 1:])
            elif what == "bound" and p.bounds:
                i = rng.randrange(len(p.bounds))
                k = rng.randrange(len(p.bounds[i]))
                lu = list(p.bounds[i][k])
                s = rng.randrange(2)
                lu[s] = mutate_comb(lu[s])
                piece = p.bounds[i][:k] + (tuple(lu),) + p.bounds[i][k + 1:]
                p = dataclasses.replace(p, bounds=p.bounds[:i] + (piece,) + p.bounds[i + 1:])
            elif what == "pair" and p.pairs:
                k = rng.randrange(len(p.pairs))
                p = with_pair(p, k, mutate_comb(p.pairs[k]))
            elif what == "swap" and len(p.pairs) > 1:
                a, b = rng.sample(range(len(p.pairs)), 2)
                pr = list(p.pairs)
                pr[a], pr[b] = pr[b], pr[a]
                p = dataclasses.replace(p, pairs=tuple(pr))
        res = exact_inj.check(cert(net, dom, p))
        assert not res.valid, f"UNSOUND: accepted mutant {p}"


def test_transplant_proofs_across_domains_and_networks():
    # Valid proofs for injective (network, domain) pairs, moved onto
    # non-injective ones with the same architecture.
    def proof_of(net, dom):
        r = endtoend.decide(net, dom, time.perf_counter() + 30)
        assert r.status == "injective", r.reason
        accept(net, dom, r.proof)
        return r.proof

    p_orth = proof_of(ABS, Domain.orthant())
    p_box = proof_of(ABS, Domain.box([0], [2]))
    for p in (p_orth, p_box):
        reject(ABS, Domain(), p)
        reject(ABS, Domain.box([-1], [2]), p)
    # x = ReLU(x) - ReLU(-x) is injective on R; |x| has the same pieces.
    ident = Network((Layer.from_rows([[1], [-1]]), Layer.from_rows([[1, -1]], activation="linear")))
    p_id = proof_of(ident, Domain())
    reject(ABS, Domain(), p_id)
    # With bounds stripped (outputs changed), and pairs re-counted.
    R = len(replay(ABS, Domain(), p_id.tree)[0])
    stripped = dataclasses.replace(p_id, bounds=tuple(((None, None),) for _ in range(R)))
    reject(ABS, Domain(), stripped)
    for cs in (p_id.pairs * 3)[: R * (R + 1) // 2], tuple(PAIR00 for _ in range(R * (R + 1) // 2)):
        reject(ABS, Domain(), dataclasses.replace(stripped, pairs=tuple(cs)))
    # TWO_STAGE on [1, 3] is injective (||x| - 1| = x - 1); on the orthant it is not.
    p2 = proof_of(TWO_STAGE, Domain.box([1], [3]))
    reject(TWO_STAGE, Domain.orthant(), p2)
    reject(TWO_STAGE, Domain.box([0], [3]), p2)


# --------------------------------------------------------------------------------------
# 5. Types: bool, float, numpy, strings, huge numbers
# --------------------------------------------------------------------------------------


TYPE_MUTANTS = [
    lambda p: dataclasses.replace(p, tree=(True,) + p.tree[1:]),                       # bool code
    lambda p: dataclasses.replace(p, tree=tuple(np.int64(t) for t in p.tree)),
    lambda p: dataclasses.replace(p, tree=tuple(float(t) for t in p.tree)),
    lambda p: dataclasses.replace(p, leaves=(Tight((True, 1), (ONE, ONE)),)),
    lambda p: dataclasses.replace(p, leaves=(Tight((0, 1), (1.0, 1.0)),)),
    lambda p: dataclasses.replace(p, leaves=(Tight((0, 1), ("1", "1")),)),
    lambda p: dataclasses.replace(p, leaves=(Tight((0, 1), (np.int64(1), np.int64(1))),)),
    lambda p: dataclasses.replace(p, leaves=(Tight((np.int64(0), np.int64(1)), (ONE, ONE)),)),
    lambda p: dataclasses.replace(p, leaves=(Tight((0, 1), (True, True)),)),
    lambda p: with_pair(p, 1, Flat((0, 2), (1e-300, 1e-300), (0.0,), ((0.0, -2.0, 1.0),))),
    lambda p: with_pair(p, 1, Infeasible((0, 2), (np.float64(1), np.float64(1)), (np.float64(-1),))),
]


@pytest.mark.parametrize("k", range(len(TYPE_MUTANTS)))
def test_type_confusion(k):
    # Refused for the type, before any mathematics (so the base's own flaw at
    # pair (0, 1) is never reached; the reason says which type check refused).
    expected = ["tree codes must be plain integers"] * 3 + [
        "leaf support must be plain integers", "leaf multiplier must be exact (int or Fraction), not float",
        "leaf multiplier must be exact (int or Fraction), not str",
        "leaf multiplier must be exact (int or Fraction), not int64", "leaf support must be plain integers",
        "leaf multiplier must be exact (int or Fraction), not bool",
        "pair multiplier must be exact (int or Fraction), not float",
        "pair multiplier must be exact (int or Fraction), not float64"]
    assert reject(ABS, Domain(), TYPE_MUTANTS[k](abs_proof())) == expected[k]


@pytest.mark.parametrize("scale", [F(10 ** 400), F(1, 10 ** 400)], ids=["10^400", "10^-400"])
def test_exact_huge_multipliers_on_a_valid_proof(valid, scale):
    # Well-typed huge numbers: a valid flat pair of a valid proof with lam and
    # eq scaled together stays valid (exact arithmetic, no overflow or
    # rounding); lam scaled alone no longer cancels the equations' part, and
    # the reason names the pair.
    net, dom, proof = valid["ident_R"]
    slots = pair_slots(net, dom, proof)
    k = next(k for k, c in enumerate(proof.pairs) if isinstance(c, Flat) and c.lam and any(c.eq))
    c = proof.pairs[k]
    both = dataclasses.replace(c, lam=tuple(scale * v for v in c.lam), eq=tuple(scale * v for v in c.eq))
    accept(net, dom, with_pair(proof, k, both))
    lam_only = dataclasses.replace(c, lam=tuple(scale * v for v in c.lam))
    assert reject(net, dom, with_pair(proof, k, lam_only)) == f"pair {slots[k]}: its certificate does not close it"


def test_valid_proof_with_exact_huge_multipliers_still_checks(valid):
    # Not an attack: a valid proof whose Tight leaves are scaled by 10**400
    # stays valid (exact arithmetic), and scaling one multiplier of a leaf
    # with two alone breaks it, with the leaf's reason.
    net, dom, proof = valid["sep_R"]
    big = 10 ** 400
    scaled = tuple(dataclasses.replace(c, lam=tuple(big * v for v in c.lam)) if isinstance(c, Tight) else c
                   for c in proof.leaves)
    assert scaled != proof.leaves
    accept(net, dom, dataclasses.replace(proof, leaves=scaled))
    idx = next(i for i, c in enumerate(proof.leaves) if isinstance(c, Tight) and len(c.lam) == 2)
    t = proof.tree.index(idx)
    one = dataclasses.replace(proof.leaves[idx], lam=(big * proof.leaves[idx].lam[0], proof.leaves[idx].lam[1]))
    leaves = proof.leaves[:idx] + (one,) + proof.leaves[idx + 1:]
    assert reject(net, dom, dataclasses.replace(proof, leaves=leaves)) == \
        f"tree code {t}: leaf certificate {idx} does not put its prefix in a hyperplane"


# --------------------------------------------------------------------------------------
# 6. JSON parsing
# --------------------------------------------------------------------------------------


def _abs_json(p01=ZERO_LAM_FLAT):
    return cert(ABS, Domain(), abs_proof(p01)).to_json()


def _load(obj):
    return Certificate.from_json(loads_exact(json.dumps(obj)))


def test_json_round_trip_of_forged_proof_still_rejected(valid):
    # A valid proof survives a JSON round trip; the same file with one flat
    # pair's multipliers all negated (in the text) is refused for that pair:
    # the combination is still 0 and the solve unchanged, so only lam > 0
    # (every listed row tight) refuses it.
    net, dom, proof = valid["sep_R"]
    d = cert(net, dom, proof).to_json()
    assert exact_inj.check(_load(d)).valid
    k = next(k for k, c in enumerate(d["proof"]["pairs"]) if c["lam"] and "solve" in c)
    pair = d["proof"]["pairs"][k]
    pair["lam"] = [str(-F(v)) for v in pair["lam"]]
    pair["eq"] = [str(-F(v)) for v in pair["eq"]]
    res = exact_inj.check(_load(d))
    assert not res.valid and res.reason == f"pair {pair_slots(net, dom, proof)[k]}: its certificate does not close it"


@pytest.mark.parametrize("edit", [
    lambda d: d["proof"]["pairs"][1].update(tight=True),                 # pair "tight": parse error
    lambda d: d["proof"]["leaves"].__setitem__(0, {"support": [0, 1], "lam": ["1", "1"], "solve": [["1"]]}),
    lambda d: d["proof"].pop("pairs"),
    lambda d: d["proof"].__setitem__("tree", [True] + d["proof"]["tree"][1:]),
    lambda d: d["proof"].__setitem__("tree", [-1.0] + d["proof"]["tree"][1:]),
    lambda d: d["proof"]["pairs"][1].__setitem__("support", [0, True]),
    lambda d: d["proof"]["pairs"][1].__setitem__("lam", ["nan", "0"]),
    lambda d: d["proof"]["pairs"][1].__setitem__("lam", ["1/0", "0"]),
    lambda d: d["proof"]["pairs"][1].__setitem__("lam", [True, False]),
    lambda d: d["proof"]["bounds"][0].__setitem__(0, [None]),            # [lower] only
    lambda d: d["proof"]["bounds"][0].__setitem__(0, [None, None, None]),
    lambda d: d["proof"]["pairs"][1].pop("lam"),
    # "tight" must be exactly true, and a tight leaf carries no "eq" or "solve".
    lambda d: d["proof"]["leaves"][0].update(tight="yes"),
    lambda d: d["proof"]["leaves"][0].update(tight=1),
    lambda d: d["proof"]["leaves"][0].update(tight=True, solve=[["1"]]),
], ids=range(15))
def test_json_edits_are_refused_at_parse_time(edit):
    d = _abs_json()
    edit(d)
    with pytest.raises(InputError):
        _load(d)


def _tight_bound(d):
    # The first bound the proof gives, marked "tight" (which makes it a Tight, not a Bound).
    for i, piece in enumerate(d["proof"]["bounds"]):
        for k, lu in enumerate(piece):
            for s, b in enumerate(lu):
                if b is not None:
                    b["tight"] = True
                    return f"piece {i}, output {k}: the {('lower', 'upper')[s]} bound's certificate is not valid"
    raise AssertionError("no bound")


def _drop_eq(d, slots):
    # eq dropped from the first flat pair with a nonzero one (it then defaults to []).
    k = next(k for k, c in enumerate(d["proof"]["pairs"]) if "solve" in c and any(v != "0" for v in c["eq"]))
    d["proof"]["pairs"][k].pop("eq")
    return f"pair {slots[k]}: its certificate does not close it"


JSON_EDITS = [
    ("sep_R", lambda d, slots: _tight_bound(d)),
    # missing leaves / bounds default to empty lists
    ("sep_R", lambda d, slots: d["proof"].pop("leaves") and "tree code 2 = 0 is not a valid code"),
    ("sep_R", lambda d, slots: d["proof"].pop("bounds") and "4 pieces need 4 lists of output bounds, the proof has 0"),
    ("ident_R", _drop_eq),
]


@pytest.mark.parametrize("k", range(len(JSON_EDITS)))
def test_json_edits_parse_but_are_rejected(valid, k):
    # A valid proof written as JSON, one edit, read back: the reason is the edit's.
    name, edit = JSON_EDITS[k]
    net, dom, proof = valid[name]
    d = cert(net, dom, proof).to_json()
    assert exact_inj.check(_load(d)).valid
    reason = edit(d, pair_slots(net, dom, proof))
    res = exact_inj.check(_load(d))
    assert not res.valid and res.reason == reason, res.reason


def test_json_unknown_domain_keys_on_a_valid_proof(valid):
    # A valid proof for x on R stays valid with stray bounds in a "reals"
    # domain (they are ignored, the domain stays R^n) ...
    net, dom, proof = valid["ident_R"]
    d = cert(net, dom, proof).to_json()
    d["domain"] = {"kind": "reals", "lower": ["1"], "upper": ["1"]}
    c = _load(d)
    assert c.domain == Domain() and exact_inj.check(c).valid
    # ... and the same proof read as a proof on the box [1, 1] is refused: that
    # box is a point, so its Tight leaves may no longer drop anything.
    d["domain"] = {"kind": "box", "lower": ["1"], "upper": ["1"]}
    res = exact_inj.check(_load(d))
    assert not res.valid and res.reason.startswith("tree code 2: a lower-dimensional prefix may be dropped only on a "
                                                   "full-dimensional domain"), res.reason


def test_json_degenerate_box_tight_rejected():
    net, dom = _deg_net_and_box()
    d = cert(net, dom, EndToEndProof((0,), (Tight((1, 3), (ONE, ONE)),), (), ())).to_json()
    assert d["proof"]["leaves"][0]["tight"] is True
    assert not exact_inj.check(_load(d)).valid


# --------------------------------------------------------------------------------------
# 7. Domains
# --------------------------------------------------------------------------------------


def _valid_2d_box_proof():
    # (x1, x2) through three ReLUs on [-1, 1] x [0, 1]: injective there, and
    # the engine's proof drops a lower-dimensional prefix as Tight.
    net = Network((Layer.from_rows([[1, 0], [-1, 0], [0, 1]]),
                   Layer.from_rows([[1, -1, 0], [0, 0, 1]], activation="linear")))
    dom = Domain.box([-1, 0], [1, 1])
    r = endtoend.decide(net, dom, time.perf_counter() + 30)
    assert r.status == "injective", r.reason
    accept(net, dom, r.proof)
    return net, dom, r.proof


DOMAIN_ATTACKS = [
    (Domain("box", (-1.0, 0.0), (1.0, 1.0)), "box bound must be exact (int or Fraction), not float"),
    (Domain("box", (np.int64(-1), 0), (1, 1)), "box bound must be exact (int or Fraction), not int64"),
    (Domain("box", (F(-1),), (F(1),)), "the domain has 1 coordinates but the network 2 inputs"),
    (Domain("box", (F(-1), F(0), F(0)), (F(1), F(1), F(1))), "the domain has 3 coordinates but the network 2 inputs"),
    (Domain("box", (), ()), "the domain has 0 coordinates but the network 2 inputs"),
    (Domain("box", None, None), "a box needs lower and upper bounds of equal length"),
    (Domain("cube"), "unknown domain kind 'cube'"),
    # Only the box changes, to one where the proof's Tight leaf drops a prefix
    # that is no longer negligible (a flat box, an empty one).
    (Domain("box", (F(-1), F(2, 4)), (F(1), F(1, 2))), "tree code 2: a lower-dimensional prefix may be dropped only "
     "on a full-dimensional domain, and the box [-1, 1] x [1/2, 1/2] is not one"),
    (Domain("box", (F(1), F(0)), (F(-1), F(1))), "tree code 2: a lower-dimensional prefix may be dropped only on a "
     "full-dimensional domain, and the box [1, -1] x [0, 1] is not one"),
]


@pytest.mark.parametrize("k", range(len(DOMAIN_ATTACKS)))
def test_domain_dimension_and_type_attacks(k):
    # A valid proof; only its domain is replaced, and the reason is asserted.
    net, dom, proof = _valid_2d_box_proof()
    bad, reason = DOMAIN_ATTACKS[k]
    assert reject(net, bad, proof) == reason


# --------------------------------------------------------------------------------------
# 8. Malformed Python-built proofs must be rejected, not crash
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("bounds", [
    ((None,),),           # [lower] only
    ((),),                # no bound at all
], ids=["one", "zero"])
def test_short_bound_pairs_are_rejected_not_raised(valid, bounds):
    # One piece's bounds of a valid proof replaced by a malformed list.
    net, dom, proof = valid["ident_R"]
    res = exact_inj.check(cert(net, dom, dataclasses.replace(proof, bounds=(bounds,) + proof.bounds[1:])))
    assert not res.valid and res.reason == "piece 0, output 0: bounds must be a (lower, upper) pair", res.reason


NONE_FIELDS = [
    ("bounds-None", lambda p: dataclasses.replace(p, bounds=(None,) + p.bounds[1:])),
    ("leaves-None", lambda p: dataclasses.replace(p, leaves=None)),
    ("pairs-None", lambda p: dataclasses.replace(p, pairs=None)),
    ("solve-None", lambda p: with_pair(p, 0, dataclasses.replace(p.pairs[0], solve=None))),
    ("solve-row-None", lambda p: with_pair(p, 0, dataclasses.replace(p.pairs[0], solve=(None,)))),
    ("tree-None", lambda p: dataclasses.replace(p, tree=None)),
]


@pytest.mark.parametrize("k", range(len(NONE_FIELDS)), ids=[n for n, _ in NONE_FIELDS])
def test_none_fields_are_rejected_not_raised(valid, k):
    # One field of a valid proof (the first pair a Flat) set to None: an
    # invalid result with a one-line reason, never an exception.
    net, dom, proof = valid["ident_R"]
    assert isinstance(proof.pairs[0], Flat)
    res = exact_inj.check(cert(net, dom, NONE_FIELDS[k][1](proof)))
    assert not res.valid and res.reason and "\n" not in res.reason, res.reason


# --------------------------------------------------------------------------------------
# 9. One change to a VALID proof (issue 18, item 7)
#
# The attacks above start from proofs of non-injective networks, so they are
# rejected whatever happens; these start from a proof the engine produced for
# an INJECTIVE (network, domain), asserted valid first, change exactly one
# thing, and assert that the reason names the check that failed.  Deleting
# that check from exact_inj/certify/network.py makes the test fail (recorded
# in docs/testing.md, "Tests that can fail").
# --------------------------------------------------------------------------------------

IDENT = Network((Layer.from_rows([[1], [-1]]), Layer.from_rows([[1, -1]], activation="linear")))
# x through four neurons with kinks at -1, 0, 1: pieces x <= -1 and x >= 1 are
# separated by their output bounds (x <= -1 < 1 <= x), so bounds are exercised.
SEP = Network((Layer.from_rows([[1], [-1], [1], [-1]], [-1, -1, 0, 0]),
               Layer.from_rows([[0, 0, 1, -1]], activation="linear")))
VALID_CASES = [
    ("ident_R", IDENT, Domain()),
    ("abs_orthant", ABS, Domain.orthant()),
    ("two_stage_box", TWO_STAGE, Domain.box([1], [3])),
    ("sep_R", SEP, Domain()),
    ("sep_box", SEP, Domain.box([-3], [3])),
]


@pytest.fixture(scope="module")
def valid():
    out = {}
    for name, net, dom in VALID_CASES:
        r = endtoend.decide(net, dom, time.perf_counter() + 30)
        assert r.status == "injective", r.reason
        accept(net, dom, r.proof)
        out[name] = (net, dom, r.proof)
    return out


def pair_slots(net, dom, proof) -> list[str]:
    """'(i, j)' for each slot of proof.pairs, read from the checker's own
    message on the proof cut short before that slot (no engine internals)."""
    names = []
    for k in range(len(proof.pairs)):
        reason = reject(net, dom, dataclasses.replace(proof, pairs=proof.pairs[:k]))
        assert "has no certificate" in reason, reason
        names.append(reason[reason.index("pair (") + 5:reason.index(")") + 1])
    return names


def _neg_first(vals):
    """The first positive entry made negative (or the first entry -1): never
    valid where lam >= 0 or > 0 is required."""
    t = next((t for t, v in enumerate(vals) if v > 0), 0)
    return vals[:t] + (-vals[t] if vals[t] > 0 else F(-1),) + vals[t + 1:]


def test_valid_bases_exercise_every_kind_of_evidence(valid):
    # The bases together contain Tight and Infeasible leaves, lower and upper
    # bounds, separated pairs and Flat pairs: each check below has a target.
    kinds = set()
    for net, dom, p in valid.values():
        kinds |= {type(c).__name__ + "-leaf" for c in p.leaves} | {type(c).__name__ + "-pair" for c in p.pairs}
        kinds |= {("lower", "upper")[s] for pc in p.bounds for lu in pc for s in range(2) if lu[s] is not None}
    assert {"Tight-leaf", "Infeasible-leaf", "Flat-pair", "lower", "upper"} <= kinds
    assert "3 pairs separated" in exact_inj.check(cert(*valid["sep_R"])).reason


@pytest.mark.parametrize("name", [c[0] for c in VALID_CASES])
def test_valid_base_one_pair_forged(valid, name):
    net, dom, proof = valid[name]
    slots = pair_slots(net, dom, proof)
    for k, c in enumerate(proof.pairs):
        muts = []
        if c.lam:
            muts.append(dataclasses.replace(c, lam=_neg_first(c.lam)))          # lam > 0 / lam >= 0
        if isinstance(c, Flat) and c.lam:
            muts.append(dataclasses.replace(c, lam=(Z,) + c.lam[1:]))          # lam = 0: row not tight
            row0 = c.solve[0]
            muts.append(dataclasses.replace(c, solve=((row0[0] + 1,) + row0[1:],) + c.solve[1:]))  # solve != [I, -I]
            muts.append(dataclasses.replace(c, solve=c.solve[:-1]))         # too few solve rows
        if c.eq:
            muts.append(dataclasses.replace(c, eq=(c.eq[0] + 1,) + c.eq[1:]))  # combination no longer 0
        # One multiplier more than there are equations, 0 (the combination is
        # unchanged): only the count of eq multipliers refuses it.
        muts.append(dataclasses.replace(c, eq=c.eq + (Z,)))
        muts.append(dataclasses.replace(c, support=c.support + (10 ** 6,), lam=c.lam + (ONE,)))  # row past the end
        muts.append(Bound(c.support, c.lam))                                   # not a pair certificate
        for m in muts:
            if m == c:
                continue
            reason = reject(net, dom, with_pair(proof, k, m))
            assert reason == f"pair {slots[k]}: its certificate does not close it", (k, m, reason)


def independent_flat(ineq, eqs, c, n) -> bool:
    """Flat's definition (docs/theory.md, section 8) re-checked here with plain
    Fractions, written apart from exact_inj.certify.network.verify_flat."""
    if not isinstance(c, Flat) or len(c.support) != len(c.lam) or len(c.eq) != len(eqs):
        return False
    if len(set(c.support)) != len(c.support) or any(not 0 <= r < len(ineq) for r in c.support):
        return False
    if any(F(v) <= 0 for v in c.lam):
        return False
    B = [ineq[r] for r in c.support] + list(eqs)
    if not B or len(c.solve) != n or any(len(m) != len(B) for m in c.solve):
        return False
    mult = list(c.lam) + list(c.eq)
    if any(sum(F(m) * F(b[0][t]) for m, b in zip(mult, B)) != 0 for t in range(2 * n)):
        return False
    if sum(F(m) * F(b[1]) for m, b in zip(mult, B)) != 0:
        return False
    for k, row in enumerate(c.solve):
        if sum(F(m) * F(b[1]) for m, b in zip(row, B)) != 0:
            return False
        if any(sum(F(m) * F(b[0][t]) for m, b in zip(row, B)) != (t == k) - (t == n + k) for t in range(2 * n)):
            return False
    return True


@pytest.mark.parametrize("name", [c[0] for c in VALID_CASES])
def test_valid_base_pair_donors(valid, name):
    # Another slot's certificate (or a leaf) in slot k.  Some donors are
    # genuinely valid there (two pairs can share a system up to names); the
    # checker must agree with the independent re-check above on every donor,
    # and name the slot when it refuses.
    net, dom, proof = valid[name]
    slots = pair_slots(net, dom, proof)
    pieces, _ = replay(net, dom, proof.tree)
    n = len(net.layers[0].weight[0])
    donors = list(proof.pairs) + list(proof.leaves)
    refused = 0
    only = {"combination": 0, "solve": 0}
    for k, c in enumerate(proof.pairs):
        i, j = map(int, slots[k].strip("()").split(","))
        ineq, eqs = pair_system(pieces[i].rows(), pieces[i].output(), pieces[j].rows(), pieces[j].output(), n)
        assert independent_flat(ineq, eqs, c, n)
        # Half-donors: slot k's own multipliers with a donor's solve rows, and
        # a donor's multipliers with slot k's own rows and solve.  Where one
        # half is right for slot k and the other is not, only that half's
        # equation can refuse it, so each of verify_flat's two equations is
        # needed on its own (docs/testing.md, "Tests that can fail").
        halves = []
        for d in proof.pairs:
            if isinstance(c, Flat) and isinstance(d, Flat) and d is not c:
                halves.append(dataclasses.replace(c, solve=d.solve))
                if len(d.lam) == len(c.lam) and len(d.eq) == len(c.eq):
                    halves.append(dataclasses.replace(c, lam=d.lam, eq=d.eq))
        for d in donors + halves:
            res = exact_inj.check(cert(net, dom, with_pair(proof, k, d)))
            assert res.valid == independent_flat(ineq, eqs, d, n), (k, d, res.reason)
            if not res.valid:
                refused += 1
                assert res.reason == f"pair {slots[k]}: its certificate does not close it", (k, d, res.reason)
                comb_ok, solve_ok = flat_equations(ineq, eqs, d, n)
                if comb_ok != solve_ok:
                    only["solve" if comb_ok else "combination"] += 1
    assert refused >= len(proof.leaves) * len(proof.pairs)
    if name.startswith("sep"):
        # These bases hold donors that fail exactly one of the two equations.
        assert only["combination"] and only["solve"], only


def flat_equations(ineq, eqs, c, n) -> tuple[bool, bool]:
    """(combination = 0 with constant 0, solve = [I, -I] with constant 0) for a
    well-shaped Flat c, in plain Fractions (independent of verify_flat)."""
    if not isinstance(c, Flat) or len(c.support) != len(c.lam) or len(c.eq) != len(eqs) \
            or any(not 0 <= r < len(ineq) for r in c.support):
        return False, False
    B = [ineq[r] for r in c.support] + list(eqs)
    mult = list(c.lam) + list(c.eq)
    comb = all(sum(F(m) * F(b[0][t]) for m, b in zip(mult, B)) == 0 for t in range(2 * n)) \
        and sum(F(m) * F(b[1]) for m, b in zip(mult, B)) == 0
    solve = len(c.solve) == n and all(
        len(row) == len(B) and sum(F(m) * F(b[1]) for m, b in zip(row, B)) == 0
        and all(sum(F(m) * F(b[0][t]) for m, b in zip(row, B)) == (t == k) - (t == n + k) for t in range(2 * n))
        for k, row in enumerate(c.solve))
    return comb, solve


@pytest.mark.parametrize("name", [c[0] for c in VALID_CASES])
def test_valid_base_pair_count(valid, name):
    net, dom, proof = valid[name]
    slots = pair_slots(net, dom, proof)
    # One pair dropped (the last: nothing shifts), one extra, the list emptied.
    assert reject(net, dom, dataclasses.replace(proof, pairs=proof.pairs[:-1])).startswith(
        f"pair {slots[-1]} has no certificate")
    assert "1 pair certificates more than" in reject(net, dom, dataclasses.replace(
        proof, pairs=proof.pairs + proof.pairs[:1]))
    assert reject(net, dom, dataclasses.replace(proof, pairs=())).startswith(f"pair {slots[0]} has no certificate")


@pytest.mark.parametrize("name", [c[0] for c in VALID_CASES])
def test_valid_base_one_leaf_forged(valid, name):
    net, dom, proof = valid[name]
    for idx, leaf in enumerate(proof.leaves):
        codes = [t for t, c in enumerate(proof.tree) if c == idx]
        assert codes
        muts = [dataclasses.replace(leaf, lam=_neg_first(leaf.lam)),
                dataclasses.replace(leaf, support=leaf.support + (10 ** 6,), lam=leaf.lam + (ONE,)),
                dataclasses.replace(leaf, support=leaf.support + leaf.support[:1], lam=leaf.lam + leaf.lam[:1])]
        if isinstance(leaf, Tight):
            muts.append(dataclasses.replace(leaf, lam=tuple(Z for _ in leaf.lam)))   # nothing positive
            words = "does not put its prefix in a hyperplane"
        else:
            muts.append(dataclasses.replace(leaf, lam=tuple(2 * v for v in leaf.lam), eq=(ONE,)))  # eq on a prefix
            words = "does not close its prefix"
        for m in muts:
            leaves = proof.leaves[:idx] + (m,) + proof.leaves[idx + 1:]
            reason = reject(net, dom, dataclasses.replace(proof, leaves=leaves))
            assert reason == f"tree code {codes[0]}: leaf certificate {idx} {words}", (idx, m, reason)


@pytest.mark.parametrize("name", [c[0] for c in VALID_CASES])
def test_valid_base_one_bound_forged(valid, name):
    net, dom, proof = valid[name]
    n_bounds = 0
    for i, piece in enumerate(proof.bounds):
        for k, lu in enumerate(piece):
            for s, b in enumerate(lu):
                if b is None:
                    continue
                n_bounds += 1
                side = ("lower", "upper")[s]
                # A negative multiplier; a doubled one (a different, false bound
                # value: sum lam a = 2 o != o); a row past the end; a Tight instead.
                for m in (Bound(b.support, _neg_first(b.lam)), Bound(b.support, tuple(2 * v for v in b.lam)),
                          Bound(b.support + (10 ** 6,), b.lam + (ONE,)), Tight(b.support, b.lam)):
                    new_lu = lu[:s] + (m,) + lu[s + 1:]
                    bounds = proof.bounds[:i] + (piece[:k] + (new_lu,) + piece[k + 1:],) + proof.bounds[i + 1:]
                    reason = reject(net, dom, dataclasses.replace(proof, bounds=bounds))
                    assert reason == f"piece {i}, output {k}: the {side} bound's certificate is not valid", reason
    assert n_bounds
    R = len(proof.bounds)
    assert reject(net, dom, dataclasses.replace(proof, bounds=proof.bounds[:-1])).startswith(
        f"{R} pieces need {R} lists of output bounds")


def test_valid_base_separation_is_what_drops_the_pairs(valid):
    # SEP: 3 of its 10 pairs are dropped because the output bounds separate
    # them.  Without the bounds the same pairs are no longer separated, so the
    # proof runs out of pair certificates: the count follows the bounds.
    net, dom, proof = valid["sep_R"]
    bare = dataclasses.replace(proof, bounds=tuple(tuple((None, None) for _ in pc) for pc in proof.bounds))
    reason = reject(net, dom, bare)
    assert "has no certificate" in reason or "does not close it" in reason, reason


@pytest.mark.parametrize("name", [c[0] for c in VALID_CASES])
def test_valid_base_one_tree_code_changed(valid, name):
    net, dom, proof = valid[name]
    tree = proof.tree
    nl = len(proof.leaves)

    def at(t, code):
        return reject(net, dom, dataclasses.replace(proof, tree=tree[:t] + (code,) + tree[t + 1:]))

    for t, c in enumerate(tree):
        if c == REGION:
            assert at(t, SPLIT) == f"tree code {t}: no neuron is left to split"
            assert at(t, COLLAPSE) == f"tree code {t}: no neuron is left to split"
        elif c == SPLIT:
            assert at(t, REGION).startswith(f"tree code {t}: a piece must fix every neuron")
            assert at(t, COLLAPSE).startswith(f"tree code {t}: collapsing neuron")
        assert at(t, nl) == f"tree code {t} = {nl} is not a valid code"
        assert at(t, -7) == f"tree code {t} = -7 is not a valid code"
    assert reject(net, dom, dataclasses.replace(proof, tree=tree + (REGION,))) == \
        "the piece tree has 1 codes after its last node"
    assert reject(net, dom, dataclasses.replace(proof, tree=tree[:-1])) == \
        "the piece tree ends before every node is closed"


def test_valid_base_tight_leaf_needs_a_full_dimensional_domain():
    # The same network and a Tight-closed tree on a full box (valid), then on a
    # box flattened in one coordinate: only the domain changes.
    net = Network((Layer.from_rows([[1, 0], [-1, 0], [0, 1]]),
                   Layer.from_rows([[1, -1, 0], [0, 0, 1]], activation="linear")))
    full = Domain.box([-1, 0], [1, 1])
    r = endtoend.decide(net, full, time.perf_counter() + 30)
    assert r.status == "injective", r.reason
    accept(net, full, r.proof)
    t = next(t for t, c in enumerate(r.proof.tree) if c >= 0 and isinstance(r.proof.leaves[c], Tight))
    flat_dom = Domain.box([-1, 0], [1, 0])
    reason = reject(net, flat_dom, r.proof)
    assert reason.startswith(f"tree code {t}: a lower-dimensional prefix may be dropped only on a full-dimensional")


@pytest.mark.parametrize("name", [c[0] for c in VALID_CASES])
def test_valid_base_random_single_mutations(valid, name):
    # Seeded random choices among the one-change attacks above, each on the
    # valid proof, each with its reason.
    net, dom, proof = valid[name]
    slots = pair_slots(net, dom, proof)
    rng = random.Random(sum(map(ord, name)))
    for _ in range(40):
        k = rng.randrange(len(proof.pairs))
        c = proof.pairs[k]
        what = rng.choice(["neg", "index", "dup", "scale-one"])
        if what == "neg" and c.lam:
            m = dataclasses.replace(c, lam=_neg_first(c.lam))
        elif what == "index":
            m = dataclasses.replace(c, support=c.support + (rng.randrange(10 ** 3, 10 ** 9),), lam=c.lam + (ONE,))
        elif what == "dup" and c.support:
            m = dataclasses.replace(c, support=c.support + c.support[:1], lam=c.lam + c.lam[:1])
        else:
            # One multiplier scaled, the others kept: the combination stops cancelling.
            if len(c.lam) < 2:
                continue
            t = rng.randrange(len(c.lam))
            m = dataclasses.replace(c, lam=c.lam[:t] + (c.lam[t] * rng.choice([2, 3, F(1, 2)]),) + c.lam[t + 1:])
        reason = reject(net, dom, with_pair(proof, k, m))
        assert reason == f"pair {slots[k]}: its certificate does not close it", (what, m, reason)


@pytest.mark.parametrize("name", [c[0] for c in VALID_CASES])
def test_valid_base_negative_multiplier_that_balances(valid, name):
    # Multipliers that satisfy every EQUATION of an Infeasible leaf or a Bound
    # (the bases are over R^1, so any two rows are parallel) but one of them is
    # negative: only lam >= 0 refuses them.  A negative multiplier flips an
    # inequality, which is how a false bound or a false emptiness would be forged.
    net, dom, proof = valid[name]
    assert len(net.layers[0].weight[0]) == 1
    pieces, closed = replay(net, dom, proof.tree)
    tried = 0
    codes = [t for t, c in enumerate(proof.tree) if c >= 0]
    for (tok, node), t in zip(closed, codes):
        if not isinstance(proof.leaves[tok], Infeasible) or proof.tree.count(tok) != 1:
            continue
        rows = node.rows()
        for r in range(len(rows)):
            for s in range(r + 1, len(rows)):
                (ar,), cr = rows[r]
                (as_,), cs = rows[s]
                const = F(as_) * F(cr) - F(ar) * F(cs)
                if ar == 0 or as_ == 0 or const == 0:
                    continue
                sg = 1 if const > 0 else -1
                lam = (sg * F(as_), -sg * F(ar))
                if min(lam) >= 0:
                    continue                            # a genuine certificate: not an attack
                leaves = proof.leaves[:tok] + (Infeasible((r, s), lam, ()),) + proof.leaves[tok + 1:]
                reason = reject(net, dom, dataclasses.replace(proof, leaves=leaves))
                assert reason == f"tree code {t}: leaf certificate {tok} does not close its prefix", reason
                tried += 1
    for i, piece in enumerate(pieces):
        rows, outs = piece.rows(), piece.output()
        for k, ((o,), _) in enumerate(outs):
            for side in (0, 1):
                for s, ((as_,), _) in enumerate(rows):
                    if as_ == 0 or o == 0:
                        continue
                    lam = F(o) / F(as_) * (1 if side else -1)
                    if lam >= 0:
                        continue
                    lu = list(proof.bounds[i][k])
                    lu[side] = Bound((s,), (lam,))
                    bounds = proof.bounds[:i] + (proof.bounds[i][:k] + (tuple(lu),) + proof.bounds[i][k + 1:],) \
                        + proof.bounds[i + 1:]
                    reason = reject(net, dom, dataclasses.replace(proof, bounds=bounds))
                    assert reason == f"piece {i}, output {k}: the {('lower', 'upper')[side]} bound's certificate " \
                                     "is not valid", reason
                    tried += 1
    assert tried


def _kernel_moves(rows):
    """Vectors v with sum v_r (a_r, c_r) = 0 (sympy's nullspace of the rows):
    adding one to a Tight multiplier keeps both of its equations."""
    import sympy

    M = sympy.Matrix([[sympy.Rational(str(v)) for v in a] + [sympy.Rational(str(c))] for a, c in rows]).T
    return [[F(int(x.p), int(x.q)) for x in v] for v in M.nullspace()]


@pytest.mark.parametrize("name", [c[0] for c in VALID_CASES])
def test_valid_base_tight_leaf_with_a_negative_multiplier(valid, name):
    # A Tight leaf's multipliers moved along a dependency of its prefix's rows
    # until one is negative: sum lam a = 0 and sum lam c = 0 still hold, and
    # a positive multiplier still sits on a row with a != 0 (checked below), so
    # lam >= 0 is the only check of verify_tight that refuses it.  With a
    # negative multiplier "sum lam (a.x + c) = 0" no longer forces each row to
    # be tight, which is what dropping the prefix relies on (docs/theory.md,
    # section 8).
    net, dom, proof = valid[name]
    pieces, closed = replay(net, dom, proof.tree)
    codes = [t for t, c in enumerate(proof.tree) if c >= 0]
    tried = 0
    for (tok, node), t in zip(closed, codes):
        leaf = proof.leaves[tok]
        if not isinstance(leaf, Tight) or proof.tree.count(tok) != 1:
            continue
        rows = node.rows()
        lam = [F(0)] * len(rows)
        for r, v in zip(leaf.support, leaf.lam):
            lam[r] = F(v)
        for v in _kernel_moves(rows):
            for s in (1, -1, 2, -2):
                new = [a + s * b for a, b in zip(lam, v)]
                if min(new) >= 0 or not any(x > 0 and any(rows[r][0]) for r, x in enumerate(new)):
                    continue
                assert all(sum(x * F(rows[r][0][q]) for r, x in enumerate(new)) == 0 for q in range(len(rows[0][0])))
                assert sum(x * F(rows[r][1]) for r, x in enumerate(new)) == 0
                support = tuple(r for r, x in enumerate(new) if x != 0)
                forged = Tight(support, tuple(new[r] for r in support))
                leaves = proof.leaves[:tok] + (forged,) + proof.leaves[tok + 1:]
                reason = reject(net, dom, dataclasses.replace(proof, leaves=leaves))
                assert reason == f"tree code {t}: leaf certificate {tok} does not put its prefix in a hyperplane", \
                    reason
                tried += 1
    # ident_R's Tight prefixes have two rows and a one-dimensional dependency
    # (the leaf itself): no sign can be flipped there.
    assert tried or name == "ident_R"


def test_negative_tight_multiplier_would_drop_a_colliding_piece():
    # ReLU(x) twice on R is not injective (-1 and -2 collide).  The piece
    # {x <= 0} (both neurons inactive) has the same row x <= 0 twice, and
    # lam = (1, -1) cancels it exactly: without lam >= 0 it would "put the
    # piece in a hyperplane", drop it, and leave {x >= 0}, which is injective.
    # Everything else in this proof is valid (asserted), so the forged leaf is
    # the only thing between the checker and a false "injective".
    net = Network((Layer.from_rows([[1], [1]]),))
    dom = Domain()
    assert_collision(net, dom, [-1], [-2])
    genuine = Tight((0, 1), (ONE, ONE))
    forged = Tight((0, 1), (ONE, F(-1)))
    tree = (SPLIT, SPLIT, REGION, 0, SPLIT, 0, 1)
    pieces, closed = replay(net, dom, tree)
    assert len(pieces) == 1 and [tok for tok, _ in closed] == [0, 0, 1]
    for tok, node in closed:
        if tok == 0:
            assert verify_tight(node.rows(), genuine)
        else:
            assert node.rows()[0] == node.rows()[1] and any(node.rows()[0][0])
    proof, open_pairs = near_proof(net, dom, tree=tree, leaves=(genuine, forged))
    assert not open_pairs
    assert reject(net, dom, proof) == "tree code 6: leaf certificate 1 does not put its prefix in a hyperplane"


# --------------------------------------------------------------------------------------
# 10. Which pairs need a certificate: open_pairs against every pair tested directly
# --------------------------------------------------------------------------------------


def _naive_separated(bi, bj) -> bool:
    # The definition (docs/certificates.md, end-to-end proof), written here.
    return any((ui is not None and lj is not None and ui < lj) or (uj is not None and li is not None and uj < li)
               for (li, ui), (lj, uj) in zip(bi, bj))


@pytest.mark.parametrize("seed", range(40))
def test_open_pairs_are_exactly_the_pairs_not_separated(seed):
    # The checker finds the pairs to close by sorting and bit masks
    # (certify.network.open_pairs); a pair it wrongly called separated would
    # be skipped, so it is compared with the pair-by-pair definition on random
    # boxes: missing bounds, ties, touching intervals, empty ones (u < l).
    from exact_inj.certify.network import open_pairs

    rng = random.Random(seed)
    R, p = rng.randint(1, 30), rng.randint(1, 4)
    vals = [F(v, rng.choice([1, 2])) for v in range(-4, 5)]

    def side():
        return None if rng.random() < 0.2 else rng.choice(vals)

    box = []
    for _ in range(R):
        piece = []
        for _ in range(p):
            lo, up = side(), side()
            if lo is not None and up is not None and lo > up and rng.random() < 0.8:
                lo, up = up, lo
            piece.append((lo, up))
        box.append(piece)
    want = [(i, j) for i in range(R) for j in range(i, R) if not _naive_separated(box[i], box[j])]
    assert list(open_pairs(box)) == want


def test_more_pieces_than_max_pieces_is_refused(valid, tmp_path):
    # sep_R's valid proof has 4 pieces: under max_pieces = 3 the reader refuses
    # the file (exit 2, naming the limit and the option), and the checker
    # refuses the Python object the same way, before any pair is looked at.
    from exact_inj.numbers import raised_limits

    from fuzzing import run_cli

    net, dom, proof = valid["sep_R"]
    R = len(replay(net, dom, proof.tree)[0])
    assert R == 4
    path = tmp_path / "sep.json"
    path.write_text(json.dumps(cert(net, dom, proof).to_json()))
    assert run_cli(["check", str(path), "--limit", "max_pieces=4"])[0] == 0
    rc, out, err, _ = run_cli(["check", str(path), "--limit", "max_pieces=3"])
    assert rc == 2 and str(path) in err and "max_pieces = 3" in err and "--limit max_pieces=N" in err, err
    with raised_limits(max_pieces=3):
        res = exact_inj.check(cert(net, dom, proof))
    assert not res.valid and res.reason == ("cannot be checked: 4 pieces is beyond the limit max_pieces = 3 "
                                            "(raise it with --limit max_pieces=N; docs/cli.md, Limits)"), res.reason
