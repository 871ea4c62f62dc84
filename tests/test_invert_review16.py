"""Adversarial review of the preimage checker (issue 16): claims in an answer that
the checker used to accept without checking them.

Each mutant below is false for a reason computed here, by hand, not by exact_inj.
"""

from __future__ import annotations

import copy
from fractions import Fraction as F

import pytest

from exact_inj.certify.inverse import check_inverse
from exact_inj.model import Layer, Network
from exact_inj.network.inverse import invert

# x -> h = (ReLU(x), ReLU(-x)) -> h_0 = ReLU(x).  The preimage of 0 is x <= 0:
# the pin x = 0 and the piece where neuron 0 is inactive ('-') and neuron 1 active ('+').
NET = Network((Layer.from_rows([[1], [-1]]), Layer.from_rows([[1, 0]], activation="linear")))


def _answer():
    r = invert(NET, ["0"])
    a = r.to_json()
    assert r.preimage == "set" and r.complete and a["pieces"] and check_inverse(NET, ["0"], a)[0]
    return a


def test_a_piece_with_a_wrong_pattern_is_rejected():
    a = _answer()
    pt = F(a["pieces"][0]["point"][0])
    assert pt < 0 and a["pieces"][0]["pattern"] == ["-+"]  # neuron 0's pre-activation x < 0: not '+'
    bad = copy.deepcopy(a)
    bad["pieces"][0]["pattern"] = ["++"]
    assert not check_inverse(NET, ["0"], bad)[0]


def test_a_claimed_complete_description_without_a_certificate_is_rejected():
    a = _answer()
    bad = copy.deepcopy(a)
    bad["certificate"] = None  # nothing backs "complete": the preimage is not only this piece...
    bad["pieces"] = [{"pattern": ["++"], "point": ["5"]}]  # ...and N(5) = 5 != 0: not even a preimage
    assert not check_inverse(NET, ["0"], bad)[0]
    bad["complete"] = False  # an incomplete description may not list a non-preimage either
    assert not check_inverse(NET, ["0"], bad)[0]
    ok = copy.deepcopy(a)  # the true pieces, with no certificate and no completeness claim: fine
    ok["certificate"], ok["complete"] = None, False
    assert check_inverse(NET, ["0"], ok)[0]


@pytest.mark.parametrize("key,value", [("version", 2), ("version", "1"), ("version", True), ("format", "other")])
def test_other_versions_and_formats_are_refused(key, value):
    a = _answer()
    a[key] = value  # a later version may mean something else: never read as version 1
    assert not check_inverse(NET, ["0"], a)[0]


def test_an_output_unit_is_named_in_the_reason():
    """x -> tanh(x): y = 2 has no preimage through tanh, but 2 is the value before it at
    x = 2; the answer is about that value and must say so, not pass for the image."""
    net = Network((Layer.from_rows([[1]], activation="linear"),), output_unit="tanh")
    r = invert(net, ["2"])
    ok, why = check_inverse(net, ["2"], r.to_json())
    assert r.preimage == "point" and ok and "before the tanh output unit" in why
    assert "before" not in check_inverse(Network(net.layers), ["2"], r.to_json())[1]
    # The answer itself says it too, in its reason and its JSON.
    assert "before the tanh output unit" in r.reason and r.to_json()["before_output_unit"] == "tanh"
    plain = invert(Network(net.layers), ["2"])
    assert "output unit" not in plain.reason and "before_output_unit" not in plain.to_json()


def test_answers_about_a_network_with_irrational_batch_norm_are_rejected():
    """Review (2026-12-05, fourth session): once the checker evaluated net.layers
    instead of calling net.evaluate, a NormalisedNetwork's answers were checked
    on its base layers alone (the irrational norms skipped), and these false
    answers passed.  Such networks have no rational values: every answer is
    rejected, as invert refuses them."""
    from exact_inj import check_inverse
    from exact_inj.model.normalised import ChannelNorm, NormalisedNetwork

    base = Network((Layer.from_rows([[1], [-1]], [0, 0]), Layer.from_rows([[1, 0], [0, 1]], [0, 0], activation="linear")))
    net = NormalisedNetwork(base, (None, ChannelNorm.build([1, 1], [1, 1], [0, 0], [2, 2])))
    ok, why = check_inverse(net, ["3", "0"], {"preimage": "point", "points": [["3"]], "certificate": {"kind": "peel"}})
    assert not ok and "NormalisedNetwork" in why
    base1 = Network((Layer.from_rows([[1]], [0]), Layer.from_rows([[1]], [0], activation="linear")))
    net1 = NormalisedNetwork(base1, (None, ChannelNorm.build([1], [1], [0], [2])))
    ok, _ = check_inverse(net1, ["0"], {"preimage": "set", "points": [["-1"], ["-2"]], "complete": False})
    assert not ok
    # Older (also before the session): x -> -ReLU(x)/sqrt(2) maps sqrt(2) to -1, yet
    # an empty answer checked on the base alone passed.
    net2 = NormalisedNetwork(base1, (None, ChannelNorm.build([-1], [0], [0], [2])))
    ok, _ = check_inverse(net2, ["-1"], {"preimage": "empty", "points": [],
                                         "certificate": {"kind": "peel", "chain": [["-1"]]}})
    assert not ok


def test_relu_still_takes_floats_and_numpy_scalars():
    """Review note: relu reads a Fraction's or int's sign off its numerator;
    other numbers are compared as before."""
    import numpy as np

    from exact_inj.model.network import relu

    assert relu(0.5) == 0.5 and relu(np.float64(-1.0)) == 0 and relu(np.int64(4)) == 4
    assert relu(F(-1, 3)) == 0 and relu(F(2, 3)) == F(2, 3) and relu(-2) == 0 and relu(True) is True


def test_a_point_beyond_the_float_range_is_answered_with_a_null_decimal():
    """Review note (older): an output beyond the float range gave an internal error from
    float() in the answer's decimals; JSON has no infinity, so it is null."""
    import json

    big = F(10 ** 400)
    net = Network((Layer.from_rows([[1], [-1]]),))
    r = invert(net, [str(big), "0"])
    out = json.loads(json.dumps(r.to_json()))
    assert r.preimage == "point" and r.points == [(big,)] and out["decimals"] == [[None]]


@pytest.mark.slow
def test_the_case_split_fallback_keeps_the_time_limit(monkeypatch):
    # Review: a small generator (kernel route forced), one output moved off
    # the range: at time_limit=15 the case split's exact fallback (an exact
    # simplex on a wide node) ran more than a minute past the limit.
    import json
    import os
    import time

    import exact_inj.certify.peel as cpeel
    import exact_inj.network.peel as npeel
    from exact_inj.io.json import network_from_json
    from exact_inj.numbers import parse_number_text

    monkeypatch.setattr(cpeel, "MAX_PEEL_ENTRIES", 0)
    monkeypatch.setattr(npeel, "MAX_PEEL_ENTRIES", 0)
    with open(os.path.join(os.path.dirname(__file__), "data", "invert_overrun_case.json")) as f:
        case = json.load(f)
    net = network_from_json(case["network"])
    y = [parse_number_text(v) for v in case["y"]]
    t = time.perf_counter()
    r = invert(net, y, time_limit=15)
    assert time.perf_counter() - t < 25
    assert r.preimage == "unknown" and "time limit" in r.reason


def test_unnormalised_fractions_are_normalised_by_the_checker():
    # Review: Fraction(-1, -1, _normalize=False) is 1 but compares with 0 the
    # wrong way round; as a chain value it made a false "empty" answer (the
    # only candidate "outside" the orthant) pass.
    from exact_inj.certify.base import num_exact
    from exact_inj.model import Domain

    x = F(-1, -1, _normalize=False)
    assert x.denominator < 0   # the value the review used: 1, unnormalised
    net = Network((Layer.from_rows([[1]], activation="linear"),))   # y = x
    ans = {"preimage": "empty", "certificate": {"kind": "peel", "chain": [[x]]}}
    ok, _ = check_inverse(net, [F(1)], ans, Domain.orthant())
    assert not ok
    assert num_exact(x, "v").denominator == 1 and num_exact(x, "v") >= 0


def test_exact_normalises_fraction_objects():
    from exact_inj.numbers import exact

    v = exact(F(3, -6, _normalize=False))
    assert v == F(-1, 2) and v.denominator == 2 and v < 0
