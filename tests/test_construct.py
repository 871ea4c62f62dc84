"""`exact-inj construct`: [B; -DB; M] layers are certified injective, Gaussian files are exact and seeded.

What is asserted, and why it is evidence:
- every constructed [B; -DB; M] layer (random or given B and D, with and
  without bias, shuffled rows, extra rows) is decided INJECTIVE by
  exact_inj.verify, and its certificate passes exact_inj.check;
- the construction really has the claimed structure, recomputed here with plain
  Fractions: row j_k = -d_k row i_k, d_k > 0, B invertible, d_k b_i + b_j >= 0;
- the bias condition is the boundary: pushing one pair's bias below it
  (d_k b_i + b_j < 0) with no extra rows gives a verified NOT_INJECTIVE;
- Gaussian files load through the ordinary loader, hold exactly the float
  draws (or their rounded decimals), are byte-identical for one seed, differ
  across seeds, and match the experiment's trial matrices.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from fractions import Fraction as F

import numpy as np
import pytest
import sympy

import exact_inj
from exact_inj.studies import construct
from exact_inj.studies import experiment
from exact_inj.io import InputError, load_network
from exact_inj.model import Layer, Network


def cli(argv: list[str]) -> int:
    """The subcommand through its own add_parser/run, as cli.py wires it."""
    p = argparse.ArgumentParser(prog="exact-inj")
    sub = p.add_subparsers(dest="command")
    construct.add_parser(sub)
    return construct.run(p.parse_args(argv))


def assert_structure(c: construct.BMinusDB, bias: bool) -> None:
    L = c.network.layers[0]
    n = L.in_dim
    B = [L.weight[i] for i, _ in c.pairs]
    assert sympy.Matrix(B).rank() == n
    for (i, j), d in zip(c.pairs, c.D):
        assert d > 0
        assert L.weight[j] == tuple(-d * x for x in L.weight[i])
        assert d * L.bias[i] + L.bias[j] >= 0
    assert sorted([*sum(c.pairs, ()), *c.extra_rows]) == list(range(L.out_dim))
    if not bias:
        assert all(b == 0 for b in L.bias)


CASES = [
    # n, extra, bias, shuffle, seed
    (1, 0, False, False, 0),
    (1, 2, True, True, 1),
    (2, 0, True, False, 2),
    (2, 3, True, True, 3),
    (3, 0, False, True, 4),
    (3, 2, True, False, 5),
    (4, 0, True, True, 6),
    (4, 4, True, False, 7),
    (5, 1, True, True, 8),
]


@pytest.mark.parametrize("n,extra,bias,shuffle,seed", CASES)
def test_bminusdb_is_certified_injective(n, extra, bias, shuffle, seed):
    c = construct.bminusdb(n, extra=extra, bias=bias, seed=seed, shuffle=shuffle)
    assert_structure(c, bias)
    v = exact_inj.verify(c.network, time_limit=60, milp="none")
    assert v.status is exact_inj.Status.INJECTIVE, v.reason
    assert exact_inj.check(v.certificate).valid
    assert v.certificate.network == c.network


def test_bminusdb_through_the_file(tmp_path):
    out = tmp_path / "b.json"
    assert cli(["construct", "bminusdb", "--n", "3", "--extra", "2", "--bias", "--seed", "11",
                "--shuffle", "-o", str(out)]) == 0
    net = load_network(out)
    assert net == construct.bminusdb(3, extra=2, bias=True, seed=11, shuffle=True).network
    # Every number is an exact string, as docs/formats.md recommends for lossless files.
    layer = json.loads(out.read_text())["layers"][0]
    assert all(isinstance(x, str) for row in layer["weight"] for x in row)
    v = exact_inj.verify(out, time_limit=60, milp="none")
    assert v.status is exact_inj.Status.INJECTIVE
    assert exact_inj.check(v.certificate).valid


def test_bminusdb_given_B_and_D():
    B = [[1, 2, 0], [0, 1, F(1, 3)], [1, 0, 1]]
    c = construct.bminusdb(B=B, D=[1, F(1, 2), 3], bias=True, seed=0)
    assert c.B == tuple(tuple(F(x) for x in row) for row in B)
    assert c.D == (F(1), F(1, 2), F(3))
    assert_structure(c, bias=True)
    v = exact_inj.verify(c.network, time_limit=60, milp="none")
    assert v.status is exact_inj.Status.INJECTIVE and exact_inj.check(v.certificate).valid


def test_bminusdb_given_on_the_command_line(tmp_path, capsys):
    assert cli(["construct", "bminusdb", "--B", "2,1;0,-1/2", "--D", "1,3"]) == 0
    text = capsys.readouterr().out
    from exact_inj.io import loads_exact, network_from_json

    net = network_from_json(loads_exact(text))
    assert net.layers[0].weight == ((2, 1), (0, F(-1, 2)), (-2, -1), (0, F(3, 2)))


@pytest.mark.parametrize("seed", range(6))
def test_bias_condition_is_the_boundary(seed):
    """One pair pushed just below d b_i + b_j = 0, no extra rows: now not injective.

    This shows the bias condition the construction satisfies is not slack:
    without it, ReLU of that pair vanishes on an interval (docs/theory.md, section 4).
    """
    n = 1 + seed % 3
    c = construct.bminusdb(n, bias=True, seed=seed)
    L = c.network.layers[0]
    i, j = c.pairs[seed % n]
    d = c.D[seed % n]
    b = list(L.bias)
    b[j] = -d * b[i] - F(1, 1000)
    broken = Network((Layer(L.weight, tuple(b)),))
    v = exact_inj.verify(broken, time_limit=60, milp="none")
    assert v.status is exact_inj.Status.NOT_INJECTIVE, v.reason
    x, y = v.witness.x, v.witness.y
    assert x != y and broken.evaluate(x) == broken.evaluate(y)


def test_bminusdb_errors():
    with pytest.raises(InputError, match="singular"):
        construct.bminusdb(B=[[1, 2], [2, 4]])
    with pytest.raises(InputError, match="positive"):
        construct.bminusdb(2, D=[1, 0])
    with pytest.raises(InputError, match="entries"):
        construct.bminusdb(2, D=[1])
    with pytest.raises(InputError, match="--n is 3"):
        construct.bminusdb(3, B=[[1, 0], [0, 1]])
    with pytest.raises(InputError, match="square"):
        construct.bminusdb(B=[[1, 0, 0], [0, 1, 0]])
    with pytest.raises(InputError, match="not an exact number"):
        construct.parse_matrix("1,x;0,1", "--B")


def test_bminusdb_is_seeded():
    a = construct.bminusdb(3, extra=2, bias=True, seed=5, shuffle=True)
    assert a == construct.bminusdb(3, extra=2, bias=True, seed=5, shuffle=True)
    assert a.network != construct.bminusdb(3, extra=2, bias=True, seed=6, shuffle=True).network


# --------------------------------------------------------------------------- gaussian


def test_gaussian_file_is_exact_and_deterministic(tmp_path):
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    for path, seed in ((a, 3), (b, 3), (c, 4)):
        assert cli(["construct", "gaussian", "--n", "3", "--m", "20", "--seed", str(seed), "-o", str(path)]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    net = load_network(a)
    L = net.layers[0]
    assert (L.out_dim, L.in_dim) == (20, 3)
    # The exact binary values of the draws, independently of the module's code.
    W = np.random.default_rng([3, 3, 20, 0]).standard_normal((20, 3))
    assert L.weight == tuple(tuple(F(float(x)) for x in row) for row in W)
    assert all(x == 0 for x in L.bias)
    v = exact_inj.verify(net, time_limit=60, milp="none")
    assert v.status is not exact_inj.Status.UNKNOWN
    assert exact_inj.check(v.certificate).valid


def test_gaussian_matches_experiment_trials():
    for n, m, trial in ((1, 4, 0), (2, 9, 17), (3, 20, 5)):
        net = construct.gaussian(n, m, seed=7, trial=trial)
        assert net.layers == experiment.trial_network(7, n, m, trial).layers


def test_gaussian_bias_keeps_the_weights():
    plain = construct.gaussian(2, 6, seed=1)
    biased = construct.gaussian(2, 6, seed=1, bias=True)
    assert plain.layers[0].weight == biased.layers[0].weight
    assert any(b != 0 for b in biased.layers[0].bias)


def test_gaussian_decimals(tmp_path):
    out = tmp_path / "g.json"
    assert cli(["construct", "gaussian", "--n", "2", "--m", "5", "--seed", "2", "--decimals", "3",
                "-o", str(out)]) == 0
    raw = json.loads(out.read_text())["layers"][0]["weight"]
    W = np.random.default_rng([2, 2, 5, 0]).standard_normal((5, 2))
    assert [[F(s) for s in row] for row in raw] == [[F(f"{x:.3f}") for x in row] for row in W]
    assert all("/" not in s for row in raw for s in row)  # decimals, not p/q
    assert load_network(out).layers[0].weight == tuple(tuple(F(s) for s in row) for row in raw)


def test_exact_str_round_trips():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        x = F(int(rng.integers(-10**6, 10**6)), int(rng.choice([1, 2, 3, 8, 10, 25, 1000, 2**40, 5**9, 7])))
        assert F(construct.exact_str(x)) == x


def test_write_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        cli(["construct", "gaussian", "--n", "2", "--m", "4", "-o", str(tmp_path / "no" / "g.json")])
    with pytest.raises(InputError, match="JSON"):
        cli(["construct", "gaussian", "--n", "2", "--m", "4", "-o", str(tmp_path / "g.npz")])
    with pytest.raises(SystemExit):
        cli(["construct", "gaussian", "--n", "0", "--m", "4"])
    with pytest.raises(InputError, match="--n"):
        cli(["construct", "bminusdb"])


def test_wired_into_the_cli(tmp_path):
    """Through `python -m exact_inj`: the subcommand is listed and runs."""
    from exact_inj.cli import app as main_cli

    # The subcommand is wired in (it was once a skip here, which would have hidden its removal).
    assert "construct" in main_cli._parser().format_help()
    out = tmp_path / "b.json"
    r = subprocess.run([sys.executable, "-m", "exact_inj", "construct", "bminusdb", "--n", "2", "--bias",
                        "-o", str(out)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "exact_inj", "verify", str(out)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-m", "exact_inj", "construct", "bminusdb", "--n", "2", "--B", "1,2;2,4"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------- dcgan


@pytest.mark.parametrize("size, bias, s", [([6], False, "1"), ([3, 3], True, "1/2"), ([5], True, "2")])
def test_dcgan_filters_are_certified_injective(size, bias, s):
    from fractions import Fraction

    import exact_inj
    from exact_inj.studies.construct import dcgan
    from exact_inj.io import network_from_json

    obj = dcgan(1, 1, size, 3, s=Fraction(s), bias=bias, seed=3)
    net = network_from_json(json.loads(json.dumps(obj)))
    v = exact_inj.verify(net, time_limit=60, milp="none")
    assert v.status.value == "injective" and v.route == "structural"
    assert exact_inj.check(v.certificate).valid


def test_dcgan_near_miss_is_not_injective():
    from fractions import Fraction

    import exact_inj
    from exact_inj.studies.construct import dcgan
    from exact_inj.io import network_from_json

    net = network_from_json(dcgan(1, 1, [6], 3, seed=0, near_miss=Fraction(1, 1000)))
    v = exact_inj.verify(net, time_limit=60, milp="none")
    assert v.status.value == "not_injective" and exact_inj.check(v.certificate).valid
    layer = net.layers[0]
    assert v.witness.x != v.witness.y and layer.apply(v.witness.x) == layer.apply(v.witness.y)
