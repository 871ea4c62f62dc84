"""Heuristic checkers (exact_inj/heuristics.py): each one right somewhere and wrong somewhere.

"Wrong" means refuted by a checked engine certificate on the claim's own domain
(compare.refute), or, for the two rules that are theorems on their domain
(expansivity_2n on R^n, ball_bias_bound on the ball), wrong only when read as a
statement about another domain, which compare correctly declines to refute.

The curated set instances/heuristics/ is checked three ways: the expected
verdict, the engine's checked certificate, and tests/reference.py's independent
Fourier-Motzkin decision.
"""

from __future__ import annotations

import json
from fractions import Fraction as F
from pathlib import Path

import numpy as np
import pytest

import exact_inj
from exact_inj.studies.compare import refute
from exact_inj.studies.heuristics import HEURISTICS, INJECTIVE, NO_COUNTEREXAMPLE, NOT_INJECTIVE, Claim, lemma1_reduction, run_heuristic
from exact_inj.io import load_network
from exact_inj.model import Layer, Network
from exact_inj.verdict import Status
from reference import is_collision, reference_injective

SET = Path(__file__).resolve().parent.parent / "instances" / "heuristics"
EXPECTED = json.loads((SET / "expected.json").read_text())
SEED = 0

_verdicts: dict[str, object] = {}


def net_of(name: str) -> Network:
    return load_network(SET / name)


def layer_of(name: str) -> Layer:
    return net_of(name).layers[0]


def verdict_of(name: str):
    if name not in _verdicts:
        _verdicts[name] = exact_inj.verify(net_of(name), time_limit=30, milp="none")
    return _verdicts[name]


def claim(heuristic: str, name: str, **kw) -> Claim:
    return run_heuristic(heuristic, layer_of(name), SEED, **kw)


def assert_refuted(c: Claim, name: str):
    net = net_of(name)
    res = refute(c, verdict_of(name), net)
    assert res["refuted"], (c, res["reason"])
    assert not res["conflict"]
    assert exact_inj.check(res["certificate"]).valid
    assert res["certificate"].network == net
    return res


def assert_not_refuted(c: Claim, name: str):
    res = refute(c, verdict_of(name), net_of(name))
    assert not res["refuted"], (c, res["reason"])
    assert not res["conflict"]
    return res


def assert_supported_collision(c: Claim, name: str):
    """The claim's witness collides, by tests/reference.py's own evaluation."""
    L = layer_of(name)
    assert c.claim == NOT_INJECTIVE and c.supported and c.witness is not None
    assert is_collision(L.weight, L.bias, c.witness.x, c.witness.y)


# --------------------------------------------------------------------------- the curated set


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_curated_set_engine_and_reference_agree(name):
    L = layer_of(name)
    assert L.in_dim <= 4
    v = verdict_of(name)
    want = EXPECTED[name]["verdict"]
    assert v.status.value == want, EXPECTED[name]["why"]
    assert exact_inj.check(v.certificate).valid
    assert v.seconds < 2.0
    assert reference_injective(L.weight, L.bias) == (want == "injective")


def test_curated_set_has_no_unlisted_files():
    files = {p.name for p in SET.iterdir() if p.suffix in (".json", ".npz")} - {"expected.json"}
    assert files == set(EXPECTED)


# --------------------------------------------------------------------------- sampling


def test_sampling_right_with_exact_collision():
    c = claim("sampling", "gaussian_n3_m7_not_injective.json")
    assert_supported_collision(c, "gaussian_n3_m7_not_injective.json")
    assert_not_refuted(c, "gaussian_n3_m7_not_injective.json")


def test_sampling_wrong_float_rank_refuted():
    # In doubles the rows (1, 0) and (1, 1e-17) have numerical rank 1.
    c = claim("sampling", "near_parallel_n2.json")
    assert c.claim == NOT_INJECTIVE and not c.supported and c.witness is None
    assert "unsupported" in c.note
    assert_refuted(c, "near_parallel_n2.json")


def test_sampling_misses_thin_cone_and_is_never_refuted():
    c = claim("sampling", "thin_n3_broken.json")
    assert c.claim == NO_COUNTEREXAMPLE
    res = assert_not_refuted(c, "thin_n3_broken.json")
    assert "never refuted" in res["reason"]
    assert verdict_of("thin_n3_broken.json").status is Status.NOT_INJECTIVE


# --------------------------------------------------------------------------- gradient


def test_gradient_right_with_exact_collision():
    c = claim("gradient", "gaussian_n4_m9_not_injective.json")
    assert_supported_collision(c, "gaussian_n4_m9_not_injective.json")


def test_gradient_wrong_near_collision_refuted():
    c = claim("gradient", "near_parallel_n2.json")
    assert c.claim == NOT_INJECTIVE and not c.supported
    assert_refuted(c, "near_parallel_n2.json")


def test_gradient_misses_far_slab():
    c = claim("gradient", "far_slab_n2.json")
    assert c.claim == NO_COUNTEREXAMPLE
    assert_not_refuted(c, "far_slab_n2.json")


# --------------------------------------------------------------------------- jacobian rank


def test_jacobian_rank_right_with_exact_collision():
    c = claim("jacobian_rank", "gaussian_n4_m9_not_injective.json")
    assert_supported_collision(c, "gaussian_n4_m9_not_injective.json")
    assert "local" in c.note


def test_jacobian_rank_wrong_refuted():
    c = claim("jacobian_rank", "near_parallel_n2.json")
    assert c.claim == NOT_INJECTIVE and not c.supported
    assert_refuted(c, "near_parallel_n2.json")


def test_jacobian_rank_full_rank_is_only_local():
    # Full rank at every sample, yet the layer is not injective.
    c = claim("jacobian_rank", "thin_n2_broken_m5.json")
    assert c.claim == NO_COUNTEREXAMPLE and "local injectivity only" in c.note


# --------------------------------------------------------------------------- expansivity


def test_expansivity_2n_right_with_exact_collision():
    c = claim("expansivity_2n", "ball_three_rows.json")
    assert_supported_collision(c, "ball_three_rows.json")
    assert c.domain == "R^n"
    assert_not_refuted(c, "ball_three_rows.json")


def test_expansivity_2n_counts_nonzero_rows_and_is_exact_on_reals():
    # 4 rows but one is zero: 3 nonzero rows < 2n = 4.
    L = Layer.from_rows([[1, 0], [0, 1], [-1, -1], [0, 0]], [0, 0, 0, 5])
    c = run_heuristic("expansivity_2n", L, 3)
    assert c.claim == NOT_INJECTIVE and c.supported
    assert is_collision(L.weight, L.bias, c.witness.x, c.witness.y)


def test_expansivity_2n_wrong_off_reals():
    # The rule is exact on R^n only (docs/theory.md, section 1b): W = [1], b = 0 is
    # injective on [1, 2] (f(x) = x there), yet the rule says "not injective".
    L = Layer.from_rows([[1]], [0])
    c = run_heuristic("expansivity_2n", L, 0)
    assert c.claim == NOT_INJECTIVE and c.domain == "R^n"
    assert "does not carry over to bounded domains" in c.note
    xs = [F(1) + F(k, 7) for k in range(8)]  # points of [1, 2]
    outs = [L.apply((x,)) for x in xs]
    assert len(set(outs)) == len(xs)
    # ...and its collision lies outside [1, 2].
    assert not all(1 <= p[0] <= 2 for p in (c.witness.x, c.witness.y))


def test_expansivity_2_1n_right():
    c = claim("expansivity_2_1n", "gaussian_n3_m12_injective.json")
    assert c.claim == INJECTIVE
    res = assert_not_refuted(c, "gaussian_n3_m12_injective.json")
    assert "agrees" in res["reason"]


@pytest.mark.parametrize("name", ["gaussian_n2_m5_not_injective.json", "gaussian_n3_m7_not_injective.json",
                                  "gaussian_n4_m9_not_injective.json", "thin_n3_broken_m7.json"])
def test_expansivity_2_1n_wrong_refuted(name):
    c = claim("expansivity_2_1n", name)
    L = layer_of(name)
    assert 10 * L.out_dim >= 21 * L.in_dim
    assert c.claim == INJECTIVE
    assert_refuted(c, name)


def test_expansivity_2_1n_states_what_lei_et_al_claim():
    for name in ("gaussian_n3_m7_not_injective.json", "thin_n3_injective.json"):
        note = claim("expansivity_2_1n", name).note
        assert "about a given point".upper() in note.upper() and "not that it is globally injective" in note


# --------------------------------------------------------------------------- lemma 1


def test_lemma1_reduction_as_stated():
    red = lemma1_reduction(layer_of("lemma1_n3_injective.json"))
    assert all(b == 0 for b in red.bias)
    assert sum(1 for row in red.weight if any(row)) == 3


@pytest.mark.parametrize("name", ["lemma1_counterexample.json", "lemma1_n2_injective.json",
                                  "lemma1_n3_injective.json"])
def test_lemma1_wrong_refuted(name):
    c = claim("lemma1", name)
    assert c.claim == NOT_INJECTIVE and not c.supported and c.witness is None
    assert "reduced layer" in c.note
    assert_refuted(c, name)


def test_lemma1_right_injective_direction():
    c = claim("lemma1", "lemma1_n2_nonneg_bias.json")
    assert c.claim == INJECTIVE
    assert_not_refuted(c, "lemma1_n2_nonneg_bias.json")


def test_lemma1_right_supported_when_the_pair_collides_in_the_original():
    c = claim("lemma1", "lemma1_dead_zone.json")
    assert_supported_collision(c, "lemma1_dead_zone.json")


# --------------------------------------------------------------------------- the ball


def _all_rows_active_on_ball(L: Layer, r: F) -> bool:
    # b_i > 0 and b_i^2 > |w_i|^2 r^2 give w_i.z + b_i > 0 for |z| <= r (Cauchy-Schwarz).
    return all(b > 0 and b * b > sum(w * w for w in row) * r * r for row, b in zip(L.weight, L.bias))


def test_ball_bias_bound_right_on_the_ball():
    L = layer_of("ball_three_rows.json")
    c = claim("ball_bias_bound", "ball_three_rows.json", radius=1)
    assert c.claim == INJECTIVE and c.domain == "ball(center=0, radius=1)" and c.ball_radius == 1
    # Independent reason it is right: every row is active on the ball, and the
    # rows have rank 2, so f is affine and injective there.
    assert _all_rows_active_on_ball(L, F(1))
    assert exact_inj.exact.linalg.rank_q(L.weight, 2) == 2


def test_ball_bias_bound_wrong_if_read_on_reals_and_not_refuted():
    c = claim("ball_bias_bound", "ball_three_rows.json", radius=1)
    v = verdict_of("ball_three_rows.json")
    assert v.status is Status.NOT_INJECTIVE  # on R^n
    res = assert_not_refuted(c, "ball_three_rows.json")
    assert "outside" in res["reason"] and "issue #7" in res["reason"]
    assert "says nothing about R^n" in c.note


def _decider(name):
    net = net_of(name)
    return lambda box: exact_inj.verify(net, time_limit=30, milp="none", domain=box)


def test_ball_bias_bound_claim_survives_the_box_inside_the_ball():
    # With domains, the engine decides the box [-1/2, 1/2]^2 inside the unit
    # ball: injective there, so nothing refutes the ball claim.
    c = claim("ball_bias_bound", "ball_three_rows.json", radius=1)
    res = refute(c, verdict_of("ball_three_rows.json"), net_of("ball_three_rows.json"),
                 _decider("ball_three_rows.json"))
    assert not res["refuted"] and "[-1/2, 1/2]" in res["reason"] and "injective" in res["reason"]


def test_ball_bias_bound_refuses_where_the_sampled_estimate_claims():
    # The bound needs b > 0 on a facet whose vertices correlate negatively, so
    # it makes no claim on the bias-free thin cell ...
    assert claim("ball_bias_bound", "thin_n3_broken.json").claim == NO_COUNTEREXAMPLE
    # ... and an enlarged radius asks for more bias.
    assert claim("ball_bias_bound", "ball_three_rows.json", radius=10).claim == NO_COUNTEREXAMPLE


def test_ball_sampled_right():
    c = claim("ball_sampled", "thin_n3_injective.json")
    assert c.claim == INJECTIVE and c.domain.startswith("ball(")
    res = assert_not_refuted(c, "thin_n3_injective.json")
    assert "agrees" in res["reason"]


@pytest.mark.parametrize("name", ["thin_n3_broken.json", "thin_n2_broken_m5.json"])
def test_ball_sampled_wrong_refuted_inside_the_ball(name):
    c = claim("ball_sampled", name, radius=F(1, 2))
    assert c.claim == INJECTIVE and c.ball_radius == F(1, 2)
    res = assert_refuted(c, name)
    w = res["certificate"].evidence
    r2 = F(1, 4)
    assert sum(v * v for v in w.x) <= r2 and sum(v * v for v in w.y) <= r2
    L = layer_of(name)
    assert is_collision(L.weight, L.bias, w.x, w.y)


# --------------------------------------------------------------------------- common rules


def test_registry_names():
    assert set(HEURISTICS) == {"sampling", "gradient", "jacobian_rank", "expansivity_2n", "expansivity_2_1n",
                               "lemma1", "ball_bias_bound", "ball_sampled"}


@pytest.mark.parametrize("heuristic", ["sampling", "gradient", "jacobian_rank", "ball_sampled"])
def test_seeded(heuristic):
    L = layer_of("gaussian_n2_m5_not_injective.json")
    a = run_heuristic(heuristic, L, 11)
    b = run_heuristic(heuristic, L, 11)
    strip = lambda c: {k: v for k, v in c.to_json().items() if k != "seconds"}  # noqa: E731
    assert strip(a) == strip(b)


def test_supported_claims_carry_checked_witnesses_everywhere():
    for name in sorted(EXPECTED):
        L = layer_of(name)
        for h in ("sampling", "gradient", "jacobian_rank", "expansivity_2n"):
            c = run_heuristic(h, L, SEED)
            assert c.claim in (INJECTIVE, NOT_INJECTIVE, NO_COUNTEREXAMPLE)
            assert c.seconds >= 0 and c.budget
            if c.supported:
                assert is_collision(L.weight, L.bias, c.witness.x, c.witness.y), (name, h)
                assert EXPECTED[name]["verdict"] == "not_injective"
            else:
                assert c.witness is None


def test_claim_rejects_supported_without_witness():
    with pytest.raises(ValueError):
        Claim("x", NOT_INJECTIVE, 0.0, "", "R^n", None, True, "")
    with pytest.raises(ValueError):
        Claim("x", "maybe", 0.0, "", "R^n", None, False, "")


def test_unknown_heuristic_name():
    with pytest.raises(KeyError):
        run_heuristic("nope", Layer.from_rows([[1]]), 0)


def test_rng_independent_of_other_heuristics():
    L = layer_of("gaussian_n3_m7_not_injective.json")
    a = run_heuristic("sampling", L, 5).to_json()
    np.random.default_rng(0).random(100)  # unrelated draws change nothing
    run_heuristic("gradient", L, 5)
    b = run_heuristic("sampling", L, 5).to_json()
    a.pop("seconds"), b.pop("seconds")
    assert a == b


def test_ball_sampled_wrong_refuted_by_a_witness_on_a_box_inside_the_ball():
    # Biased, so no scaling; the engine's R^n collision lies outside the ball,
    # but its collision on [-1/2, 1/2]^2 (inside the unit ball) refutes the claim.
    name = "thin_n2_biased_m5.json"
    c = claim("ball_sampled", name, radius=1)
    assert c.claim == INJECTIVE
    w = verdict_of(name).witness
    assert sum(v * v for v in w.x) > 1 or sum(v * v for v in w.y) > 1
    assert not refute(c, verdict_of(name), net_of(name))["refuted"]  # without domains: not refutable
    res = refute(c, verdict_of(name), net_of(name), _decider(name))
    assert res["refuted"] and exact_inj.check(res["certificate"]).valid
    assert res["certificate"].domain.kind == "box"
    w = res["certificate"].evidence
    assert sum(v * v for v in w.x) <= 1 and sum(v * v for v in w.y) <= 1
    L = layer_of(name)
    assert is_collision(L.weight, L.bias, w.x, w.y)
