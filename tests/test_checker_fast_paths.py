"""The checker's fast paths for rank leaves must reject what the exact rank rejects.

A rank leaf is settled by a rank modulo a prime, or by one dot product with
the null vector of its parent's rows; either may only ever say "rank n" when
the exact rank is n.  These cases put a dependent row last, where the fast
path sees a one-dimensional null space and must fall back to the exact rank.
"""

from fractions import Fraction

from exact_inj.certify.schema import RANK_LEAF, Certificate, TreeProof
from exact_inj.model import Domain
from exact_inj.certify.check import check
from exact_inj.model import Layer, Network
from exact_inj.certify.schema import Status


def _cert(rows, tree):
    layer = Layer(tuple(tuple(Fraction(x) for x in r) for r in rows), tuple(Fraction(0) for _ in rows))
    return Certificate(Network((layer,)), Domain(), Status.INJECTIVE, TreeProof((), tuple(tree)))


def test_dependent_last_row_is_not_a_rank_leaf():
    # P = {0, 1}: [1, 0] and [2, 0] have rank 1 < 2; Q = {0} has the null vector (0, 1).
    res = check(_cert([[1, 0], [2, 0], [0, 1]], [0, 1, RANK_LEAF]))
    assert not res.valid and "rank leaf" in res.reason


def test_dependent_rows_in_three_dimensions():
    # P = {0, 1, 2} with row 2 = row 0 + row 1: rank 2 < 3.
    res = check(_cert([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1]], [0, 1, 2, RANK_LEAF]))
    assert not res.valid and "rank leaf" in res.reason


def test_independent_rows_pass_the_fast_path():
    # Both children of every split closed by rank leaves where possible: a
    # tree over rows e1, e2 whose leaves with P = {0, 1} are valid; the other
    # branches are left open, so the check fails later, not at the rank leaf.
    res = check(_cert([[1, 0], [0, 1], [1, 1]], [0, 1, RANK_LEAF]))
    assert not res.valid and "rank leaf" not in res.reason


# --- the batched rank test (exact/modrank.nonsingular_mod) --------------------------------

import random

import numpy as np
import pytest

from exact_inj.exact.modrank import nonsingular_mod

Q31 = (1 << 31) - 1


def _det(rows):
    """Exact determinant by Fraction elimination, written here independently."""
    A = [[Fraction(x) for x in r] for r in rows]
    n, det = len(A), Fraction(1)
    for k in range(n):
        piv = next((i for i in range(k, n) if A[i][k] != 0), None)
        if piv is None:
            return Fraction(0)
        if piv != k:
            A[k], A[piv] = A[piv], A[k]
            det = -det
        det *= A[k][k]
        for i in range(k + 1, n):
            f = A[i][k] / A[k][k]
            A[i] = [a - f * c for a, c in zip(A[i], A[k])]
    return det


@pytest.mark.parametrize("p", [7, 101, Q31])
def test_nonsingular_mod_matches_the_exact_determinant(p):
    # Small entries make singular matrices (mod p and over Q) common; "True"
    # must always mean a non-zero determinant, and mod p the two must agree.
    rng = random.Random(p)
    for n in (1, 2, 3, 5, 8):
        mats = []
        for _ in range(300):
            A = [[rng.randint(-3, 3) for _ in range(n)] for _ in range(n)]
            if rng.random() < 0.2:  # a repeated or scaled row
                i, j = rng.sample(range(n), 2) if n > 1 else (0, 0)
                A[i] = [2 * x for x in A[j]]
            mats.append(A)
        got = nonsingular_mod(np.array([[[x % p for x in r] for r in A] for A in mats], dtype=np.int64), p)
        for A, ok in zip(mats, got.tolist()):
            d = _det(A)
            assert ok == (d % p != 0), (A, d)
            if ok:
                assert d != 0


def test_a_rank_leaf_singular_mod_the_batch_prime_is_still_accepted():
    # det [[Q31, 0], [0, 1]] = 2^31 - 1: zero modulo the batch's prime, not over Q.
    # The batch says "not shown"; the exact fallback must accept the leaf.
    rows = [[Q31, 0], [0, 1]]
    assert _det(rows) == Q31
    assert nonsingular_mod(np.array([[[x % Q31 for x in r] for r in rows]]), Q31).tolist() == [False]
    # Split on row 0: P-child splits on row 1 (P = {0, 1}: rank leaf, then N-child
    # {0} | {1}: core-free, left open) -- the check must get past the rank leaf.
    res = check(_cert(rows, [0, 1, RANK_LEAF]))
    assert not res.valid and "rank leaf" not in res.reason


def test_the_first_bad_rank_leaf_is_named_before_a_later_fault():
    # The rank leaf at node 2 is bad (rows 0 and 1 dependent) and the tree also
    # ends early; the batched test runs before the later fault is reported.
    res = check(_cert([[1, 0], [2, 0], [0, 1]], [0, 1, RANK_LEAF, 2]))
    assert not res.valid and "rank leaf at node 2" in res.reason


# --- a core row already in P (found by review, 2026-12-05) ---------------------------------

import json
from pathlib import Path

from exact_inj.certify.schema import Core
from exact_inj.certify.tree import Rows as _Rows

P61 = (1 << 61) - 1
DATA = Path(__file__).parent / "data"


def test_a_cached_null_vector_cannot_vouch_for_a_singular_rank_leaf():
    # A hand-made injectivity certificate for a layer that is NOT injective
    # (f(z) = f(z + t e3) at z = (1, 1, -1/2)).  A core leaf at P = {a, b, x}
    # whose core holds x (already in P) once made the checker cache the null
    # vector of P's rows under the key {a, b}; a later rank leaf {a, b, y}
    # (rank 2 over Q, singular mod 2^31 - 1) then passed with that vector.
    doc = json.loads((DATA / "false_injective_cached_null_vector.json").read_text())
    from exact_inj.api import certificate_from_document

    res = check(certificate_from_document(doc))
    assert not res.valid and "rank leaf at node 5" in res.reason
    net = certificate_from_document(doc).network
    from exact_inj.certify.schema import Witness

    wit = Certificate(net, Domain(), Status.NOT_INJECTIVE,
                      Witness((Fraction(1), Fraction(1), Fraction(-1, 2)), (Fraction(1), Fraction(1), Fraction(-1, 4))))
    assert check(wit).valid  # the layer really is not injective


def test_full_rank_ignores_the_caches_for_a_repeated_row():
    # a = (1, 0, 0) and b = (1, p, 0) are equal mod p = 2^61 - 1.  Rows
    # [a, b, x, x] repeat x: their null vector mod p must not be cached as
    # that of {a, b} (the set P minus its last row).
    W = [[0, 0, 1], [1, 0, 0], [1, P61, 0], [0, 1, 0]]
    ctx = _Rows(W, 3, [])
    assert ctx.full_rank(0b0111, [1, 2, 0, 0])  # a, b, x: rank 3 over Q
    assert not ctx.full_rank(0b1110, [1, 2, 3])  # a, b, y: rank 2


def test_a_core_row_in_P_passes_only_when_P_has_rank_n():
    # n = 2, rows e1, -e1, e2, -e2.  Core {0, 1} (e1, -e1) at the node P = {0}
    # (rank 1 < 2): row 0 is in P, not negative -- rejected.  At P = {0, 2}
    # (rank 2) the node is closed anyway, and the leaf passes.
    rows = [[1, 0], [-1, 0], [0, 1], [0, -1]]
    layer = _cert(rows, []).network
    cores = (Core(support=(0, 1)), Core(support=(2, 3)))

    def run(tree):
        return check(Certificate(layer, Domain(), Status.INJECTIVE, TreeProof(cores, tuple(tree))))

    C0, C1 = -2, -3
    # P{0}: core 0 (row 0 in P, rank 1) -- must fail.
    bad = run([0, C0, C0])
    assert not bad.valid and "row 0 of core 0 is not fixed negative" in bad.reason
    # P{0}: split 2 -> P{0,2}: core 0 (P has rank 2: closed); N{2}: core 1? row 3 outside N,
    # rank({0, 3}) = 2: a line leaf.  N{0}: split 1 -> P{1}: line leaf with core 1; N{0,1}: core 0.
    good = run([0, 2, C0, C1, 1, C1, C0])
    assert good.valid, good.reason
