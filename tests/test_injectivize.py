"""injectivize (issue 16, item 3) and the carry proof it is certified with
(docs/theory.md, section 4, "Carry proof").

- every network under instances/ is injectivized; the certificate passes the
  checker, also after a JSON round trip; the kept outputs equal the original
  network's exactly on seeded random rational inputs, and the input is read
  back from the carried outputs;
- on small one-input networks the independent brute-force reference
  (tests/reference_network.py) agrees that the result is injective;
- mutants of the proof or of the carried units are rejected, and for the ones
  that break injectivity an exact collision is shown, so the rejection is
  for a mathematical reason.
"""

from __future__ import annotations

import json
import pathlib
import random
from fractions import Fraction

import pytest

import exact_inj
from exact_inj.certify.check import check
from exact_inj.certify.schema import CarryProof, Certificate, Status
from exact_inj.cli.app import main
from exact_inj.errors import InputError
from exact_inj.io import load_network
from exact_inj.model import Domain, Layer, Network
from exact_inj.network.injectivize import append_carry, find_carry, injectivize

from reference_network import decide_network as reference_decide

ROOT = pathlib.Path(__file__).resolve().parent.parent
INSTANCES = sorted(p for p in list((ROOT / "instances").glob("*.json")) + list((ROOT / "instances" / "networks").glob("*.json"))
                   if p.name != "expected.json")


def _rand_q(rng: random.Random) -> Fraction:
    return Fraction(rng.randint(-40, 40), rng.randint(1, 9))


def _negative_slope(net: Network) -> Fraction:
    # s in out_a - out_b = (1 + s) x_j, computed here independently of the checker.
    s = Fraction(1)
    for layer in net.layers:
        s *= {"relu": Fraction(0), "linear": Fraction(1)}.get(layer.activation, layer.slope)
    return s


@pytest.mark.parametrize("path", INSTANCES, ids=lambda p: p.name)
def test_instances_injectivized_checked_and_outputs_kept(path):
    net = load_network(str(path))  # convolutional ones too (tests/test_injectivize_conv.py has more)
    r = injectivize(net)
    assert r.verdict.status is Status.INJECTIVE
    assert check(r.certificate).valid
    again = Certificate.from_json(json.loads(json.dumps(r.certificate.to_json())))
    assert again == r.certificate and check(again).valid
    n, p = net.input_dim, net.output_dim
    assert r.network.output_dim == p + 2 * n
    assert [L.out_dim for L in r.network.layers] == [L.out_dim + 2 * n for L in net.layers]
    rng = random.Random(16)
    s = _negative_slope(net)
    for _ in range(20):
        x = tuple(_rand_q(rng) for _ in range(n))
        out = r.network.evaluate(x)
        assert out[:p] == net.evaluate(x)
        assert tuple((out[p + j] - out[p + n + j]) / (1 + s) for j in range(n)) == x


def _small(rng: random.Random) -> Network:
    act = rng.choice(["relu", "linear"])
    return Network((Layer.from_rows([[rng.randint(-2, 2)] for _ in range(2)], [rng.randint(-2, 2) for _ in range(2)]),
                    Layer.from_rows([[rng.randint(-2, 2), rng.randint(-2, 2)]], [rng.randint(-1, 1)], act)))


def _as_reference(net: Network):
    return [([list(r) for r in L.weight], list(L.bias), L.activation) for L in net.layers]


def test_reference_agrees_on_small_networks():
    rng = random.Random(7)
    originals_not_injective = 0
    for _ in range(6):
        net = _small(rng)
        originals_not_injective += reference_decide(_as_reference(net))[0] == "not_injective"
        assert reference_decide(_as_reference(injectivize(net).network))[0] == "injective"
    assert originals_not_injective > 0  # the construction did some work


# A network whose own outputs carry nothing: every collision of a mutant is
# then a collision of the carried units alone.
FLAT = Network((Layer.from_rows([[0, 0]]), Layer.from_rows([[1]])))


def _cert(net: Network, proof: CarryProof) -> Certificate:
    return Certificate(net, Domain(), Status.INJECTIVE, proof)


def _with_row(net: Network, k: int, i: int, row=None, bias=None, activation=None) -> Network:
    layers = list(net.layers)
    L = layers[k]
    W = list(L.weight)
    b = list(L.bias)
    if row is not None:
        W[i] = tuple(Fraction(v) for v in row)
    if bias is not None:
        b[i] = Fraction(bias)
    layers[k] = Layer(tuple(W), tuple(b), activation or L.activation, L.slope)
    return Network(tuple(layers))


def _collide(net: Network, x, y) -> bool:
    x, y = tuple(map(Fraction, x)), tuple(map(Fraction, y))
    return x != y and net.evaluate(x) == net.evaluate(y)


def test_the_flat_construction_checks():
    net, proof = append_carry(FLAT)
    assert proof.units == (((1, 3), (2, 4)), ((1, 3), (2, 4)))
    assert check(_cert(net, proof)).valid


def test_mutant_wrong_column_rejected():
    net, proof = append_carry(FLAT)
    bad = _with_row(net, 0, 2, row=[1, 0])  # the + unit of input 1 reads x_0
    assert _collide(bad, (0, 1), (0, 2))      # x_1 > 0 is now lost
    assert "row must be exactly 1 at column 1" in check(_cert(bad, proof)).reason


def test_mutant_wrong_weight_rejected():
    net, proof = append_carry(FLAT)
    bad = _with_row(net, 1, 1, row=[0, 2, 0, 0, 0])  # still injective, but not the claimed unit row
    res = check(_cert(bad, proof))
    assert not res.valid and "layer 1, unit 1" in res.reason


def test_mutant_negated_later_row_rejected():
    net, proof = append_carry(FLAT)
    bad = _with_row(net, 1, 1, row=[0, -1, 0, 0, 0])  # ReLU(-ReLU(x_0)) = 0
    assert _collide(bad, (1, 0), (2, 0))
    assert not check(_cert(bad, proof)).valid


def test_mutant_bias_rejected():
    net, proof = append_carry(FLAT)
    bad = _with_row(net, 0, 1, bias=-1)       # ReLU(x_0 - 1) and ReLU(-x_0) are both 0 on [0, 1]
    assert _collide(bad, (0, 0), (Fraction(1, 2), 0))
    assert "bias must be 0" in check(_cert(bad, proof)).reason


def test_mutant_missing_pair_rejected():
    net, proof = append_carry(FLAT)
    short = CarryProof(tuple(layer[:1] for layer in proof.units))
    assert "carries 1 pairs" in check(_cert(net, short)).reason
    # The network without input 1's units: x_1 reaches no output.
    cut = Network((Layer(tuple(r for i, r in enumerate(net.layers[0].weight) if i not in (2, 4)), (Fraction(0),) * 3),
                   Layer(((1, 0, 0), (0, 1, 0), (0, 0, 1)), (0, 0, 0))))
    assert _collide(cut, (0, 1), (0, 2))
    assert not check(_cert(cut, CarryProof((((1, 2), (1, 2)), ((1, 2), (1, 2)))))).valid


def test_mutant_wrong_activation_rejected():
    net, proof = append_carry(FLAT)
    L = net.layers[0]
    odd = Layer(L.weight, L.bias)
    object.__setattr__(odd, "activation", "square")  # not a ReLU, linear or LeakyReLU: nothing is known of it
    res = check(_cert(Network((odd, net.layers[1])), proof))
    assert not res.valid and "activation" in res.reason


def test_mutant_indices_rejected():
    net, proof = append_carry(FLAT)
    for units, why in [((((1, 1), (2, 4)), ((1, 3), (2, 4))), "named twice"),
                       ((((1, 3), (2, 9)), ((1, 3), (2, 4))), "does not exist"),
                       ((((1, 3), (2, 4)),), "layers"),
                       ((((3, 1), (2, 4)), ((3, 1), (2, 4))), "row must be exactly")]:
        res = check(_cert(net, CarryProof(units)))
        assert not res.valid and why in res.reason, (units, res.reason)


def test_random_mutations_of_carried_rows_rejected():
    rng = random.Random(3)
    base = Network((Layer.from_rows([[1, -2], [3, 1]], [1, 0]), Layer.from_rows([[2, 1]], [0], "linear")))
    net, proof = append_carry(base)
    carried = [(k, u) for k, layer in enumerate(proof.units) for pr in layer for u in pr]
    for _ in range(30):
        k, u = rng.choice(carried)
        L = net.layers[k]
        if rng.random() < 0.5:
            row = list(L.weight[u])
            c = rng.randrange(len(row))
            row[c] += rng.choice([-1, 1, Fraction(1, 2)])
            bad = _with_row(net, k, u, row=row)
        else:
            bad = _with_row(net, k, u, bias=rng.choice([-1, 1, Fraction(-1, 3)]))
        assert not check(_cert(bad, proof)).valid


def test_leaky_and_linear_layers_carry():
    net = Network((Layer(((Fraction(1), Fraction(1)),), (Fraction(0),), "leaky_relu", Fraction(1, 4)),
                   Layer.from_rows([[1]], activation="linear")))
    r = injectivize(net)
    assert check(r.certificate).valid and "/ 5/4" in r.verdict.info["check"]
    x = (Fraction(-2), Fraction(3))
    out = r.network.evaluate(x)
    assert (out[1] - out[3]) / Fraction(5, 4) == x[0] and (out[2] - out[4]) / Fraction(5, 4) == x[1]


def test_find_carry():
    net, proof = append_carry(Network((Layer.from_rows([[1, 2], [0, 1]]), Layer.from_rows([[1, 1]]))))
    assert find_carry(net) == proof
    assert find_carry(load_network(str(ROOT / "instances" / "networks" / "abs_value_fold.json"))) is None


def test_carry_json_malformed_refused():
    net, proof = append_carry(FLAT)
    obj = _cert(net, proof).to_json()
    obj["proof"]["units"] = [[[1, "3"]]]
    with pytest.raises(InputError):
        Certificate.from_json(obj)


def test_api_and_cli(tmp_path, capsys):
    src = ROOT / "instances" / "networks" / "abs_value_fold.json"
    out = tmp_path / "inj.json"
    assert main(["injectivize", str(src), "-o", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["verdict"] == "injective" and summary["certificate"] == str(tmp_path / "inj.cert.json")
    written = load_network(str(out))
    assert written == exact_inj.injectivize(str(src)).network
    assert main(["check", str(tmp_path / "inj.cert.json")]) == 0
    assert main(["injectivize", str(src), "-o", str(tmp_path / "inj.onnx")]) == 2
    assert "name the output *.json" in capsys.readouterr().err


def test_verify_finds_the_carry_proof():
    # Layerwise fails on the injectivized network (the original hidden units
    # collide) and it is too large for the end-to-end route: the carry route answers.
    net = load_network(str(ROOT / "instances" / "networks" / "deep_bminusb_15relu.json"))
    v = exact_inj.verify(injectivize(net).network, time_limit=60)
    assert v.status is Status.INJECTIVE and v.route == "carry" and check(v.certificate).valid
    # And it does not claim a carry in a network without one.
    assert exact_inj.verify(net, time_limit=60).route != "carry"


def test_project_mode_certified_by_the_engine(tmp_path, capsys):
    from exact_inj.network.project import project

    net = load_network(str(ROOT / "instances" / "networks" / "b_minus_b_difference.json"))
    r = project(net, width=5, seed=3)
    assert r is not None and r.network.output_dim == 5 and r.verdict.info["seed"] >= 3
    assert check(r.certificate).valid and r.certificate.network == r.network
    # The recorded seed rebuilds the same network.
    assert project(net, width=5, seed=r.verdict.info["seed"], tries=1).network == r.network
    assert project(net, width=5, tries=0) is None
    with pytest.raises(ValueError):
        project(net, width=4)
    src = ROOT / "instances" / "networks" / "abs_value_fold.json"
    out = tmp_path / "p.json"
    assert main(["injectivize", str(src), "-o", str(out), "--mode", "project", "--width", "3", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["seed"] == 0 and summary["outputs"] == 3
    assert main(["check", str(tmp_path / "p.cert.json")]) == 0
    assert main(["injectivize", str(src), "-o", str(out), "--mode", "project", "--width", "2"]) == 2
