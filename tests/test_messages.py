"""Messages a user reads: they name what was meant (issue 14's friction list)."""

from __future__ import annotations

import json

import pytest

from exact_inj import verify
from exact_inj.errors import InputError
from exact_inj.io import load_network


def test_capitalised_activation_is_refused_with_the_spelling_meant(tmp_path):
    p = tmp_path / "n.json"
    p.write_text(json.dumps({"layers": [{"weight": [[1]], "activation": "ReLU"}]}))
    with pytest.raises(InputError) as e:
        load_network(p)
    assert "did you mean 'relu'?" in str(e.value) and str(e.value).startswith(str(p))


def test_network_reasons_count_layers_from_one_not_engine_stages():
    v = verify("instances/networks/b_minus_b_difference.json")
    assert "layer 2 of 2 is not injective" in v.reason and "stage 1 (layers" not in v.reason
