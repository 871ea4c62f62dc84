"""Adversarial review of the nested-dissection rank (exact_inj/exact/ndrank.py,
docs/theory.md section 14): inputs on which ``nonsingular`` used to call a
singular matrix nonsingular, each checked against the exact determinant.

Every matrix here is singular over Q (det computed exactly by flint), so
"shown" would be a wrong proof of full rank.
"""

from __future__ import annotations

from fractions import Fraction

import flint
import numpy as np
import pytest

from exact_inj.exact import ndrank
from exact_inj.model.kernels import KernelSpec

ROWS, COLS = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])
ONE_CELL = np.array([0, 0])


def det2(vals) -> int:
    a, b, c, d = (int(v) for v in vals)
    return int(flint.fmpz_mat([[a, b], [c, d]]).det())


def test_a_composite_modulus_is_refused():
    # mod 15, 3 has no inverse; pow(3, 13, 15) = 3 made the elimination of
    # the singular [[3, 1], [3, 1]] find a "pivot" in the second row.
    vals = np.array([3, 1, 3, 1])
    assert det2(vals) == 0
    with pytest.raises(ValueError):
        ndrank.nonsingular(2, ROWS, COLS, vals, ONE_CELL, ONE_CELL, (1,), p=15)


@pytest.mark.parametrize("vals", [np.array([0.5, 1.0, 1.0, 2.0]),
                                  np.array([Fraction(1, 2), 1, 1, 2], dtype=object)])
def test_non_integer_entries_are_refused(vals):
    # [[1/2, 1], [1, 2]] is singular; its 1/2 used to be truncated to 0 in
    # the pivot inversion, leaving the nonsingular [[0, 1], [1, 2]].
    assert Fraction(1, 2) * 2 - 1 * 1 == 0
    with pytest.raises(TypeError):
        ndrank.nonsingular(2, ROWS, COLS, vals, ONE_CELL, ONE_CELL, (1,))


@pytest.mark.parametrize("p", [1048423, 1048357, 1048291])
def test_entries_just_below_2_53_are_reduced_exactly_for_every_prime(p):
    # v = 2^53 - 2: for these primes the multiple of p nearest v is odd and
    # above 2^53, so float64 rounded it by one and v mod p came out off by
    # one.  [[v, 2], [v / 2, 1]] is singular, and was "shown" nonsingular.
    v = (1 << 53) - 2
    vals = np.array([v, 2, v // 2, 1], dtype=np.int64)
    assert det2(vals) == 0
    got, _ = ndrank.nonsingular(2, ROWS, COLS, vals, ONE_CELL, ONE_CELL, (1,), p=p)
    assert not got
    # And the genuine residue is still used: det [[v + 1, 2], [v / 2, 1]] = 1.
    vals[0] += 1
    assert det2(vals) == 1
    assert ndrank.nonsingular(2, ROWS, COLS, vals, ONE_CELL, ONE_CELL, (1,), p=p)[0]


def test_entries_near_2_53_for_the_primes_in_use():
    # The same matrices across the whole band below 2^53 that the float
    # path used to take, for the primes rows_nonsingular tries.
    for p in ndrank.PRIMES:
        for v in range((1 << 53) - 2 * p, 1 << 53, 65537 * 2):
            vals = np.array([v, 2, v // 2, 1], dtype=np.int64)
            assert not ndrank.nonsingular(2, ROWS, COLS, vals, ONE_CELL, ONE_CELL, (1,), p=p)[0]


def _exact_rank(spec, idx) -> int:
    rows = [spec.sparse_row(i) for i in idx]
    return flint.fmpq_mat([[flint.fmpq(v.numerator, v.denominator)
                            for v in (Fraction(r.get(c, 0)) for c in range(spec.in_dim))] for r in rows]).rank()


def test_a_kernel_given_in_lists_cannot_change_under_the_memo():
    # KernelSpec is frozen, but its kernel was kept as given: outer lists
    # that the caller mutates after a rank was remembered (by identity,
    # rows_nonsingular) and cached (the integer kernel) made the object
    # claim a nonsingular C while its kernel now had two identical input
    # channels (a null vector).  The kernel is frozen into tuples now.
    rng = np.random.default_rng(3)
    K = rng.integers(-8, 9, size=(1, 4, 4, 4))
    given = [[tuple(tuple(Fraction(int(v)) for v in r) for r in c) for c in o] for o in K]
    spec = KernelSpec(given, 4, 1, (3, 3), (2, 2), (1, 1), ((1, 1), (1, 1)), (0, 0), True, (Fraction(0),))
    assert ndrank.rows_nonsingular(spec, range(36)) is True
    given[0][1] = given[0][0]          # the caller's list, mutated afterwards
    now = KernelSpec.build(spec.kernel, 4, 1, [3, 3], strides=[2, 2], pads=[1, 1], transposed=True)
    assert _exact_rank(now, range(36)) == 36          # what the spec holds is still the nonsingular C
    assert ndrank.rows_nonsingular(spec, range(36)) is True
    assert type(spec.kernel) is tuple and type(spec.kernel[0]) is tuple


def test_a_conv_spec_kernel_given_in_lists_is_frozen():
    """The review's open concern: ConvSpec caches its taps on the object, so a
    kernel list mutated after construction must not change what it checks."""
    from fractions import Fraction as F

    from exact_inj.model.conv import ConvSpec

    k = [[[F(1), F(2)]], [[F(3), F(4)]]]
    spec = ConvSpec(k, 1, 2, (3,), "zero", ((0, 0),), (F(0), F(0)))
    k[1][0][0] = F(9)
    assert spec.kernel[1][0][0] == F(3)
    assert isinstance(spec.kernel[1][0], tuple)
