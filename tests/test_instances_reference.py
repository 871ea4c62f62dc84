"""The instances' expected answers against the INDEPENDENT references in tests/
(issue #18, item 7): instances/expected.json with tests/reference.py (single
layers; conv layers densified by tests/test_conv_structured.py's in-test
convolution) and instances/networks/expected.json with
tests/reference_network.py.  Before this, those answers were compared with the
engine only, so an error in a file's expected answer and the same error in the
engine would have agreed.  The larger ones run with -m slow.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

import reference
import reference_network as refnet
from fuzzing import _dense_layers

INSTANCES = Path(__file__).resolve().parent.parent / "instances"


def _layers(path: Path):
    doc = json.loads(path.read_text(), parse_float=Fraction)
    return _dense_layers(doc)


def _cases(folder: Path):
    expected = json.loads((folder / "expected.json").read_text())
    out = []
    for name, want in sorted(expected.items()):
        layers = _layers(folder / name)
        if layers is None:  # a conv layer too big to densify here
            continue
        n = len(layers[0][0][0])
        relus = sum(len(W) for W, _, act in layers if act == "relu")
        small = n <= 3 and relus <= 12 if len(layers) > 1 else n <= 4 and len(layers[0][0]) <= 16
        marks = () if small else (pytest.mark.slow,)
        out.append(pytest.param(name, want["verdict"], layers, id=name, marks=marks))
    return out


@pytest.mark.parametrize("name, verdict, layers", _cases(INSTANCES))
def test_layer_instances_agree_with_reference(name, verdict, layers):
    assert len(layers) == 1 and layers[0][2] == "relu", name
    W, b, _ = layers[0]
    injective, pair = reference.reference_decide(W, b)
    assert ("injective" if injective else "not_injective") == verdict, f"{name}: the reference finds {pair}"
    if pair is not None:
        assert reference.is_collision(W, b, *pair)


@pytest.mark.parametrize("name, verdict, layers", _cases(INSTANCES / "networks"))
def test_network_instances_agree_with_reference(name, verdict, layers):
    got, pair = refnet.decide_network(layers, "reals")
    assert got == verdict, f"{name}: the reference finds {pair}"
