"""Layers on which the search's modular span (the prime SPAN_P = 2^28 - 57,
layer/data.py) is wrong: entries shifted by multiples of SPAN_P make rows that
are independent over Q dependent mod p.  The search must still decide them
(docs/how-it-works.md: a node left with nothing to split is settled over Q),
and agree with the independent reference (tests/reference.py).  Found by
review: about 11% of such layers were `unknown` before."""

from __future__ import annotations

import random
from fractions import Fraction

import exact_inj
from exact_inj.layer.data import SPAN_P
from exact_inj.model import Domain, Layer, Network
from exact_inj.verdict import Status
from reference import orthant_constraints, reference_injective, reference_injective_on


def _decide(W, b, domain):
    v = exact_inj.verify(Network((Layer.from_rows(W, b),)), domain=domain, workers=1, milp="none", time_limit=30)
    assert v.status is not Status.UNKNOWN, (W, b, v.reason)
    assert exact_inj.check(v.certificate).valid
    return v.status is Status.INJECTIVE


def test_rows_parallel_only_mod_p_are_decided():
    # Row 0 = (SPAN_P + 1, -1) is (1, -1) mod p: parallel to row 1 mod p only.
    W = [[SPAN_P + 1, -1], [-1, 1], [-2, 2]]
    assert _decide(W, [0, 0, 0], Domain.orthant()) is False
    G, h = orthant_constraints(2)
    assert reference_injective_on(W, [0, 0, 0], G, h, 2) is False


def test_random_layers_with_unlucky_entries_match_the_reference():
    rng = random.Random(20261205)
    seen = {True: 0, False: 0}
    for _ in range(150):
        n = rng.randint(2, 3)
        m = rng.randint(2 * n - 1, 3 * n + 1)
        W = [[rng.randint(-2, 2) for _ in range(n)] for _ in range(m)]
        for _ in range(rng.randint(1, 3)):
            W[rng.randrange(m)][rng.randrange(n)] += SPAN_P * rng.choice([1, -1, 2])
        b = [rng.choice([0, 0, 1, -1]) for _ in range(m)]
        if rng.random() < 0.5:
            got, want = _decide(W, b, Domain()), reference_injective(W, b)
        else:
            G, h = orthant_constraints(n)
            got, want = _decide(W, b, Domain.orthant()), reference_injective_on(W, b, G, h, n)
        assert got == want, (W, b)
        seen[got] += 1
    assert seen[True] >= 5 and seen[False] >= 5, seen
