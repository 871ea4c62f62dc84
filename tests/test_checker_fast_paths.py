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
