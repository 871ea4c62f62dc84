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
