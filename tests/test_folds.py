"""Fold witnesses (exact_inj.network.folds): known folds, injective networks, domains, ACAS Xu.

Every witness is re-checked here with a plain Fraction evaluation written in
this file, so a bug in Network.evaluate could not make a wrong pair pass.
"""

from __future__ import annotations

import os
import statistics
import time
from fractions import Fraction as F

import numpy as np
import pytest

from exact_inj.network import folds
from exact_inj.model.domain import Domain
from exact_inj.network.folds import fold_witness
from exact_inj.model import Layer, Network

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data", "onnx"))


def plain_eval(net: Network, x) -> tuple[F, ...]:
    """The network's value at x, from the layer definition and nothing else."""
    h = [F(v) for v in x]
    for layer in net.layers:
        pre = [sum((F(w) * v for w, v in zip(row, h)), F(0)) + F(b) for row, b in zip(layer.weight, layer.bias)]
        h = [max(a, F(0)) for a in pre] if layer.activation == "relu" else pre
    return tuple(h)


def in_domain(domain: Domain, x) -> bool:
    if domain.kind == "orthant":
        return all(v >= 0 for v in x)
    if domain.kind == "box":
        return all(lo <= v <= hi for lo, v, hi in zip(domain.lower, x, domain.upper))
    return True


def assert_witness(net: Network, domain: Domain, pair) -> None:
    assert pair is not None
    x, y = pair
    assert all(type(v) is F for v in x + y)
    assert len(x) == len(y) == net.input_dim
    assert x != y
    assert in_domain(domain, x) and in_domain(domain, y)
    assert plain_eval(net, x) == plain_eval(net, y)


def linear(rows, bias=None) -> Layer:
    return Layer.from_rows(rows, bias, activation="linear")


# N(x) = |x| = ReLU(x) + ReLU(-x): slopes -1 and 1 meet at 0.
ABS = Network((Layer.from_rows([[1], [-1]]), linear([[1, 1]])))

# N(x) = x - 2 w ReLU(a.x + 1/2) on R^2 with a = (1, 2), w = (1/3, 1/3): a.w = 1,
# so the piece beyond the line a.x = -1/2 has det(I - 2 w a^T) = 1 - 2 = -1.
# The identity part goes through ReLU(x) - ReLU(-x) to keep the map exact.
FOLD2 = Network(
    (
        Layer.from_rows([[1, 0], [-1, 0], [0, 1], [0, -1], [1, 2]], [0, 0, 0, 0, "1/2"]),
        linear([[1, -1, 0, 0, "-2/3"], [0, 0, 1, -1, "-2/3"]]),
    )
)

# The identity as ReLU([I; -I]) followed by [I, -I]: injective.
IDENT2 = Network(
    (
        Layer.from_rows([[1, 0], [0, 1], [-1, 0], [0, -1]]),
        linear([[1, 0, -1, 0], [0, 1, 0, -1]]),
    )
)


def leaky(M, slope="1/2") -> Network:
    """x -> M phi(x) with phi_i(x) = ReLU(x_i) - slope ReLU(-x_i): injective for
    invertible M and slope > 0 (every piece's det has the sign of det M)."""
    n = len(M)
    eye = [[int(i == j) for j in range(n)] for i in range(n)]
    first = Layer.from_rows(eye + [[-v for v in r] for r in eye])
    mix = [[F(M[i][j]) for j in range(n)] + [-F(slope) * F(M[i][j]) for j in range(n)] for i in range(n)]
    return Network((first, linear(mix)))


# --------------------------------------------------------------------------
# Known folds
# --------------------------------------------------------------------------


def test_abs_on_the_line():
    pair = fold_witness(ABS, Domain.reals())
    assert_witness(ABS, Domain.reals(), pair)
    (x,), (y,) = pair
    assert x * y < 0  # one point on each side of the fold at 0


def test_abs_in_boxes():
    inside = Domain.box(["-1"], ["2"])
    assert_witness(ABS, inside, fold_witness(ABS, inside))
    # |x| is injective on [0, 1] (the fold is on its boundary) and on [1, 2].
    assert fold_witness(ABS, Domain.box([0], [1])) is None
    assert fold_witness(ABS, Domain.box([1], [2])) is None


def test_abs_on_the_orthant():
    shifted = Network((Layer.from_rows([[1], [-1]], [-1, 1]), linear([[1, 1]])))  # |x - 1|
    assert_witness(shifted, Domain.orthant(), fold_witness(shifted, Domain.orthant()))
    assert fold_witness(ABS, Domain.orthant()) is None  # |x| on x >= 0 is x


def test_two_dimensional_fold():
    pair = fold_witness(FOLD2, Domain.reals())
    assert_witness(FOLD2, Domain.reals(), pair)
    # The points lie on opposite sides of the fold line x1 + 2 x2 = -1/2.
    side = [x[0] + 2 * x[1] + F(1, 2) for x in pair]
    assert side[0] * side[1] < 0


def test_two_dimensional_fold_and_boxes():
    around = Domain.box([-1, -1], [1, 1])
    assert_witness(FOLD2, around, fold_witness(FOLD2, around))
    # On [0, 1]^2, x1 + 2 x2 + 1/2 > 0: one piece, the identity; no fold there.
    assert fold_witness(FOLD2, Domain.box([0, 0], [1, 1])) is None
    # A box touching the fold line only at its corner (-1/2, 0): no interior fold.
    assert fold_witness(FOLD2, Domain.box(["-1/2", 0], [1, 1])) is None


def test_deeper_fold_with_a_relu_output():
    # ReLU(ReLU(x) + ReLU(-x) + 1) = |x| + 1: the output layer is a ReLU layer.
    net = Network((Layer.from_rows([[1], [-1]]), Layer.from_rows([[1, 1]], [1])))
    assert_witness(net, Domain.reals(), fold_witness(net, Domain.reals()))


# --------------------------------------------------------------------------
# Injective networks and what fold_witness refuses
# --------------------------------------------------------------------------


@pytest.mark.parametrize("domain", [Domain.reals(), Domain.orthant(), Domain.box([-2, -3], [1, 5])])
def test_identity_is_injective(domain):
    assert fold_witness(IDENT2, domain, tries=100) is None


@pytest.mark.parametrize("M", [[[2, 1], [1, 1]], [[0, 1], [1, 0]], [[1, 2, 0], [0, 1, 3], [1, 0, 1]]])
def test_leaky_networks_are_injective(M):
    net = leaky(M)
    assert fold_witness(net, Domain.reals(), tries=100) is None


def test_deep_injective_network():
    # Two leaky stages composed: still one det sign everywhere.
    a, b = leaky([[2, 1], [1, 1]]), leaky([[1, -1], [1, 2]], slope="1/3")
    net = Network(a.layers + b.layers)
    assert fold_witness(net, Domain.reals(), tries=100) is None


def test_not_square_or_degenerate():
    wide = Network((Layer.from_rows([[1], [-1]]),))  # R -> R^2
    assert fold_witness(wide, Domain.reals()) is None
    assert fold_witness(FOLD2, Domain.box([-1, 0], [1, 0])) is None  # no interior
    assert fold_witness(FOLD2, Domain.box([1, 0], [-1, 1])) is None  # empty


def test_seeded_and_deadline():
    assert fold_witness(FOLD2, Domain.reals(), seed=3) == fold_witness(FOLD2, Domain.reals(), seed=3)
    assert fold_witness(FOLD2, Domain.reals(), deadline=time.perf_counter() - 1) is None


# --------------------------------------------------------------------------
# Random networks: every witness verifies, and single-neuron folds always build
# --------------------------------------------------------------------------


def random_net(rng, n, widths) -> Network:
    layers, k = [], n
    for m in widths:
        W = rng.integers(-4, 5, size=(m, k))
        b = rng.integers(-3, 4, size=m)
        layers.append(Layer.from_rows([[int(v) for v in r] for r in W], [int(v) for v in b]))
        k = m
    W = rng.integers(-4, 5, size=(n, k))
    layers.append(linear([[int(v) for v in r] for r in W]))
    return Network(tuple(layers))


def test_random_networks(monkeypatch):
    # On R^n, when the walk crosses one neuron's hyperplane between pieces
    # with determinants of opposite sign, Sherman-Morrison says the pair
    # construction cannot fail: record every attempt and check that.
    attempts = []
    real = folds._fold_pair

    def spy(pieces, net, domain, f, p, tied, s_piece, t_piece):
        out = real(pieces, net, domain, f, p, tied, s_piece, t_piece)
        attempts.append((len(tied), out is not None))
        return out

    monkeypatch.setattr(folds, "_fold_pair", spy)
    rng = np.random.default_rng(7)
    found = 0
    for trial in range(40):
        n = int(rng.integers(1, 4))
        net = random_net(rng, n, [int(rng.integers(n, 2 * n + 3)) for _ in range(int(rng.integers(1, 3)))])
        for domain in (Domain.reals(), Domain.box([-1] * n, [1] * n)):
            pair = fold_witness(net, domain, seed=trial, tries=30)
            if pair is not None:
                assert_witness(net, domain, pair)
                found += 1
    assert found >= 20
    single = [ok for k, ok in attempts if k == 1]
    assert single and all(single)


# --------------------------------------------------------------------------
# ACAS Xu (../shared/data/onnx): R^5 -> R^5, decided not injective by folds
# --------------------------------------------------------------------------

# VNN-COMP ACAS Xu property 1's input box, and the whole normalised input
# range (distance [0, 60760] ft, angles [-pi, pi], speeds [100, 1200] and
# [0, 1200] ft/s, minus the means, over the ranges, as in the .nnet files).
ACAS_PROP1 = Domain.box(["3/5", "-1/2", "-1/2", "9/20", "-1/2"], ["0.679857769", "1/2", "1/2", "1/2", "-9/20"])
ACAS_FULL = Domain.box(["-0.328422877", "-1/2", "-1/2", "-1/2", "-1/2"], ["0.679857769", "1/2", "1/2", "1/2", "1/2"])


def acas_files() -> list[str]:
    if not os.path.isdir(SHARED):
        return []
    return sorted(os.path.join(SHARED, f) for f in os.listdir(SHARED) if "acas" in f.lower() and f.endswith(".onnx"))


# R^5 takes about 1 s for the three nets (with the exact re-checks); the
# boxes 1-3 s each, so they run with -m slow.
@pytest.mark.skipif(not acas_files(), reason="../shared/data/onnx (ACAS Xu) is absent")
@pytest.mark.parametrize(
    "domain",
    [
        pytest.param(Domain.reals(), id="R5"),
        pytest.param(ACAS_FULL, id="normalised-box", marks=pytest.mark.slow),
        pytest.param(ACAS_PROP1, id="prop1-box", marks=pytest.mark.slow),
    ],
)
def test_acas_xu_folds(domain):
    pytest.importorskip("onnx")
    from exact_inj.io import load_network

    times = []
    for path in acas_files():
        net = load_network(path)
        assert net.input_dim == net.output_dim == 5
        t = time.perf_counter()
        pair = fold_witness(net, domain, seed=0, deadline=time.perf_counter() + 60)
        times.append(time.perf_counter() - t)
        assert_witness(net, domain, pair)
    print(f"ACAS Xu folds on {domain.describe()}: {len(times)} nets, median {statistics.median(times):.2f} s")
