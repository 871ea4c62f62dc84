"""verify --property surjective|bijective (issue 16, item 2): cheap exact cases only.

The 'yes' and 'no' answers are compared with an independent reference on
one-input, one-output networks: the image of a continuous piecewise-linear
map R -> R is an interval, onto R iff the function is unbounded above and
below, read here from its slopes beyond every breakpoint (small integer
weights keep the breakpoints well inside +-10^6).
"""

from __future__ import annotations

import json
import random
from fractions import Fraction

import pytest

from exact_inj import verify
from exact_inj.cli.app import main
from exact_inj.model import Domain, Layer, Network
from exact_inj.network.properties import decide_property

BIG = Fraction(10**6)


def _onto_reference(net: Network) -> bool:
    f = lambda x: net.evaluate((Fraction(x),))[0]  # noqa: E731
    right = f(2 * BIG) - f(BIG)   # the slope times BIG beyond the last breakpoint
    left = f(-BIG) - f(-2 * BIG)
    limits = {("+" if right > 0 else "-") if right else "0", ("-" if left > 0 else "+") if left else "0"}
    return {"+", "-"} <= limits


def _random_1d(rng: random.Random) -> Network:
    k = rng.randint(1, 3)
    return Network((Layer.from_rows([[rng.randint(-3, 3)] for _ in range(k)], [rng.randint(-3, 3) for _ in range(k)]),
                    Layer.from_rows([[rng.randint(-3, 3) for _ in range(k)]], [rng.randint(-2, 2)],
                                    rng.choice(["linear", "linear", "relu"]))))


@pytest.mark.parametrize("prop", ["surjective", "bijective"])
def test_against_reference_on_one_dimensional_networks(prop):
    rng = random.Random(13)
    answered = {"yes": 0, "no": 0}
    for _ in range(40):
        net = _random_1d(rng)
        a = decide_property(net, prop, Domain(), lambda: verify(net, time_limit=30))
        onto = _onto_reference(net)
        if a.answer == "yes":
            assert onto, net
        elif a.answer == "no" and prop == "surjective":
            assert not onto, net
        if a.answer != "unknown":
            answered[a.answer] += 1
        if a.outside is not None:  # a shown non-output: below every output after a final ReLU
            assert net.layers[-1].activation == "relu" and a.outside[0] < 0
    assert answered["yes"] > 0 and answered["no"] > 0


def test_square_injective_is_bijective():
    # x -> (ReLU(x1) - ReLU(-x1) + x2, ...): [B; -B] then a linear map of full rank.
    net = Network((Layer.from_rows([[1, 0], [0, 1], [-1, 0], [0, -1]]),
                   Layer.from_rows([[1, 1, -1, -1], [0, 1, 0, -1]], activation="linear")))
    for prop in ("surjective", "bijective"):
        a = decide_property(net, prop, Domain(), lambda: verify(net))
        assert a.answer == "yes" and a.injectivity.status.value == "injective"


def test_cheap_no_cases():
    wide = Network((Layer.from_rows([[1], [-1]]), Layer.from_rows([[1, 0], [0, 1]], activation="linear")))
    assert decide_property(wide, "surjective", Domain(), None).answer == "no"        # p = 2 > n = 1
    tanh = Network((Layer.from_rows([[1]], activation="linear"),), output_unit="tanh")
    a = decide_property(tanh, "bijective", Domain(), None)
    assert a.answer == "no" and a.outside == (Fraction(2),)
    line = Network((Layer.from_rows([[1]], activation="linear"),))
    assert decide_property(line, "surjective", Domain("box", (Fraction(0),), (Fraction(1),)), None).answer == "no"
    assert decide_property(line, "surjective", Domain("orthant"), None).answer == "unknown"
    assert decide_property(line, "surjective", Domain(), lambda: verify(line)).answer == "yes"


def test_cli(tmp_path, capsys):
    f = tmp_path / "fold.json"
    f.write_text(json.dumps({"layers": [{"weight": [[1], [-1]], "bias": [0, 0]},
                                        {"weight": [[1, 1]], "bias": [0], "activation": "linear"}]}))
    assert main(["verify", str(f), "--property", "bijective", "--json", "--quiet"]) == 1  # |x|
    out = json.loads(capsys.readouterr().out)
    assert out["answer"] == "no" and out["injectivity"]["verdict"] == "not_injective"
    assert main(["verify", str(f), "--property", "surjective", "--quiet"]) == 3
    assert "UNKNOWN" in capsys.readouterr().out
