"""exact_inj.check never raises on something that is not a certificate (issue 18, item 3)."""

from __future__ import annotations

import pytest

import exact_inj
from exact_inj.model import Layer, Network


@pytest.mark.parametrize("thing", [None, 3, 2.5, [], [1, 2], object(), b"bytes", {"verdict": "injective"},
                                   {"network": {"layers": []}, "verdict": "injective"}])
def test_check_returns_invalid_for_non_certificates(thing):
    res = exact_inj.check(thing)
    assert res.valid is False and res.reason


def test_check_accepts_the_json_object_of_a_valid_certificate():
    v = exact_inj.verify(Network((Layer.from_rows([[1], [-1]], [1, -1]),)))
    assert exact_inj.check(v.certificate.to_json()).valid
    bad = v.certificate.to_json()
    bad["verdict"] = "not_injective"  # an injectivity proof relabelled: no witness, so invalid
    assert not exact_inj.check(bad).valid
