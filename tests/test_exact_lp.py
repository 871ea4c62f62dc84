"""exact_inj.exact.lp: the exact phase-1 simplex reads its deadline.

A search abandoned at its time limit keeps running in its thread until it next
reads the deadline; one exact LP on a wide layer took seconds past it before
the deadline reached the pivot loop.
"""

import time
from fractions import Fraction

import numpy as np

from exact_inj.exact.lp import strict_or_motzkin


def _wide_system(seed=0, m=80, n=16):
    rng = np.random.default_rng([seed, n, m])
    W = rng.integers(-9, 10, size=(m, n)).tolist()
    return W, [0] * m


def test_answers_without_a_deadline_and_both_answers_are_exact():
    W, b = _wide_system()
    kind, lam, _ = strict_or_motzkin(W, b)
    # 80 generic rows in R^16 cannot all be negative at one point: a multiplier.
    assert kind == "multiplier"
    assert all(x >= 0 for x in lam) and sum(lam) == 1
    assert all(sum(Fraction(x) * W[i][j] for i, x in enumerate(lam)) == 0 for j in range(16))
    kind, z, t = strict_or_motzkin([[1, 0], [0, 1]], [-1, -1])
    assert kind == "point" and all(w[0] * z[0] + w[1] * z[1] - t < 0 for w in ([1, 0], [0, 1]))


def test_a_past_deadline_stops_before_the_first_pivot():
    W, b = _wide_system()
    start = time.perf_counter()
    assert strict_or_motzkin(W, b, deadline=start - 1.0) == ("limit", None, None)
    assert time.perf_counter() - start < 1.0


def test_a_deadline_mid_run_stops_it_within_a_pivot():
    # 120 x 24 takes about 6 s to the end on the 2-core machine (one pivot
    # a few milliseconds): stopped 0.2 s in, it must return well before that.
    W, b = _wide_system(m=120, n=24)
    t0 = time.perf_counter()
    res = strict_or_motzkin(W, b, deadline=t0 + 0.2)
    assert res == ("limit", None, None)
    assert time.perf_counter() - t0 < 1.2


def test_motzkin_rows_passes_its_deadline_on():
    # The preimage search's exact fallback calls motzkin_rows; without the
    # deadline it ran far past invert's time limit (review: > 200 s at 30 s).
    from exact_inj.exact.lp import motzkin_rows

    W, b = _wide_system()
    rows = [(tuple(Fraction(v) for v in w), Fraction(c)) for w, c in zip(W, b)]
    assert motzkin_rows(rows[:1], rows[1:], deadline=time.perf_counter() - 1.0) == ("limit", None, None)
    assert motzkin_rows(rows[:1], rows[1:])[0] in ("point", "multiplier")
