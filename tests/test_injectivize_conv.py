"""injectivize on networks with convolutional layers (issue 16, item 3).

A stride-1 convolution that keeps its spatial size carries the input in
extra channels (one identity tap each) and stays a convolution; any other
convolution is densified through its operator, or refused with the size when
that would be too large.  Every result must pass the exact checker (the carry
proof, certify/carry.py), keep the original outputs exactly, and give the
input back from the carried outputs; the densified form of each result is
compared with an independent evaluation (tests/reference_network.py), and on
one-input networks the independent brute-force decision agrees.
"""

from __future__ import annotations

import json
import pathlib
import random
from fractions import Fraction

import pytest

import exact_inj
from exact_inj.certify.check import check
from exact_inj.certify.schema import Certificate, Status
from exact_inj.cli.app import main
from exact_inj.errors import InputError
from exact_inj.io import load_network
from exact_inj.io.json import network_from_json, network_to_json
from exact_inj.model import ConvLayer, ConvSpec, Domain, KernelSpec, Layer, Network
from exact_inj.network.injectivize import MAX_DENSE_ENTRIES, append_carry, find_carry, injectivize

from reference_network import decide_network_1d, evaluate as reference_evaluate

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _q(rng: random.Random) -> Fraction:
    return Fraction(rng.randint(-30, 30), rng.randint(1, 7))


def _kernel(rng, out_c, in_c, ks, zero=False):
    if not ks:
        return 0 if zero else rng.randint(-3, 3)
    return [_kernel(rng, out_c, in_c, ks[1:], zero) for _ in range(ks[0])]


def _conv(rng, in_c, out_c, size, k, padding="zero", pad="same", act="relu", zero=False):
    kernel = [[_kernel(rng, out_c, in_c, (k,) * len(size), zero) for _ in range(in_c)] for _ in range(out_c)]
    bias = [rng.randint(-2, 2) for _ in range(out_c)]
    return ConvSpec.build(kernel, in_c, out_c, list(size), padding, pad, bias).layer(act)


def _dense(rng, n_in, n_out, act="relu"):
    return Layer.from_rows([[rng.randint(-3, 3) for _ in range(n_in)] for _ in range(n_out)],
                           [rng.randint(-2, 2) for _ in range(n_out)], act)


def _as_reference(net: Network):
    # Every layer densified (ConvLayer.weight is the exact operator): the
    # reference evaluates plain matrices, independently of the kernel code.
    return [([list(r) for r in L.weight], list(L.bias), L.activation) for L in net.layers]


def _slope(net: Network) -> Fraction:
    s = Fraction(1)
    for layer in net.layers:
        s *= {"relu": Fraction(0), "linear": Fraction(1)}.get(layer.activation, layer.slope)
    return s


def _assert_injectivized(net: Network, conv_kept: list[bool], draws: int = 8, seed: int = 0):
    r = injectivize(net)
    assert r.verdict.status is Status.INJECTIVE and r.verdict.route == "carry"
    assert check(r.certificate).valid
    # The certificate and the network survive their JSON forms.
    again = Certificate.from_json(json.loads(json.dumps(r.certificate.to_json())))
    assert again == r.certificate and check(again).valid
    assert network_from_json(json.loads(json.dumps(network_to_json(r.network)))) == r.network
    assert [isinstance(L, ConvLayer) for L in r.network.layers] == conv_kept
    n, p = net.input_dim, net.output_dim
    assert [L.out_dim for L in r.network.layers] == [L.out_dim + 2 * n for L in net.layers]
    assert find_carry(r.network) == append_carry(net)[1]
    rng = random.Random(seed)
    s = _slope(net)
    ref = _as_reference(r.network) if r.network.layers[0].in_dim * r.network.output_dim < 200_000 else None
    for _ in range(draws):
        x = tuple(_q(rng) for _ in range(n))
        out = r.network.evaluate(x)
        assert out[:p] == net.evaluate(x)  # the original outputs, exactly
        assert tuple((out[p + j] - out[p + n + j]) / (1 + s) for j in range(n)) == x
        if ref is not None:
            assert tuple(reference_evaluate(ref, x)) == out
    return r


def test_same_size_convolutions_stay_convolutions():
    rng = random.Random(1)
    cases = [
        Network((_conv(rng, 2, 3, (4, 4), 3), _conv(rng, 3, 2, (4, 4), 3, act="linear"))),
        Network((_conv(rng, 1, 2, (5,), 3, "periodic"), _conv(rng, 2, 2, (5,), 2, "periodic"),
                 _conv(rng, 2, 1, (5,), 3, act="linear"))),
        # An even kernel: "same" puts its extra position behind, the identity tap at offset 1.
        Network((_conv(rng, 1, 2, (3, 3), 4), _dense(rng, 18, 4, "linear"))),
    ]
    for k, net in enumerate(cases):
        _assert_injectivized(net, [isinstance(L, ConvLayer) for L in net.layers], seed=k)


def test_dense_then_convolution_carries_whole_channels():
    rng = random.Random(2)
    # n = 8 inputs, 2n = 16 carried units = 4 channels of 2 x 2: stays a convolution.
    net = Network((_dense(rng, 8, 8), _conv(rng, 2, 3, (2, 2), 3), _dense(rng, 12, 3, "linear")))
    _assert_injectivized(net, [False, True, False])
    # n = 3, 2n = 6 units are not whole 2 x 2 channels: the convolution is densified.
    net = Network((_dense(rng, 3, 8), _conv(rng, 2, 2, (2, 2), 3, act="linear")))
    _assert_injectivized(net, [False, False])


def test_other_convolutions_are_densified():
    rng = random.Random(3)
    valid = _conv(rng, 1, 2, (5, 5), 3, pad=0)               # 5x5 -> 3x3: no room for the carried channels
    strided = KernelSpec.build(_kernel_list(rng, 2, 2, (3, 3)), 2, 2, [3, 3], strides=[2, 2], pads=[[1, 1], [1, 1]],
                               bias=[1, -1]).layer()
    transposed = KernelSpec.build(_kernel_list(rng, 1, 2, (4,)), 2, 1, [2], strides=[2], pads=[[1, 1]],
                                  transposed=True).layer("linear")
    _assert_injectivized(Network((valid, strided, _dense(rng, 8, 3, "linear"))), [False, False, False])
    _assert_injectivized(Network((_dense(rng, 3, 4), transposed)), [False, False])


def _kernel_list(rng, out_c, in_c, ks):
    return [[_kernel(rng, out_c, in_c, ks) for _ in range(in_c)] for _ in range(out_c)]


def test_too_large_to_densify_is_refused_with_the_size(tmp_path, capsys):
    # 4 x 32 x 32 = 4,096 inputs through a "valid" 3x3 convolution: the carried
    # dense layer would be (900 + 8,192) x 4,096 entries.
    spec = ConvSpec.build([[[[1, 0, 0], [0, 0, 0], [0, 0, 0]]] * 4], 4, 1, [32, 32], "zero", 0)
    net = Network((spec.layer(),), name="big")
    with pytest.raises(InputError) as e:
        injectivize(net)
    msg = str(e.value)
    assert "\n" not in msg and "9,092 x 4,096 = 37,240,832 entries" in msg
    assert f"above the limit of {MAX_DENSE_ENTRIES:,}" in msg and "output 30x30 is not its input 32x32" in msg
    src = tmp_path / "big.json"
    src.write_text(json.dumps(network_to_json(net)))
    assert main(["injectivize", str(src), "-o", str(tmp_path / "out.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{src}: layer 0" in err and "37,240,832" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out.json").exists()
    assert main(["injectivize", str(src), "-o", str(tmp_path / "out.json"), "--mode", "project", "--width", "8193"]) == 2
    assert f"{src}: layer 0" in capsys.readouterr().err


def test_large_same_convolution_stays_structured():
    # 768 inputs: the dense form would be 2,304 x 768 entries before carrying;
    # the channel carry never builds it, and the carry proof is checked row by row.
    net = load_network(str(ROOT / "instances" / "conv" / "dcgan_zero_16x16.json"))
    r = _assert_injectivized(net, [True], draws=2)
    assert r.network.layers[0].spec.out_channels == net.layers[0].spec.out_channels + 6


def test_reference_agrees_on_one_input_convolutions():
    rng = random.Random(5)
    not_injective = 0
    for _ in range(8):
        net = Network((_conv(rng, 1, 2, (1,), 3), _conv(rng, 2, 1, (1,), 3, act=rng.choice(["relu", "linear"]))))
        not_injective += decide_network_1d(_as_reference(net))[0] == "not_injective"
        r = injectivize(net)
        assert all(isinstance(L, ConvLayer) for L in r.network.layers)
        assert decide_network_1d(_as_reference(r.network))[0] == "injective"
    assert not_injective > 0  # the construction did some work


def test_conv_mutant_off_centre_tap_rejected():
    # A network whose own outputs carry nothing (a zero kernel): a carried
    # channel reading the neighbour instead of the position itself loses x at
    # the border, and two inputs differing only there collide.
    rng = random.Random(6)
    net = Network((_conv(rng, 1, 1, (3,), 3, zero=True),))
    new, proof = append_carry(net)
    spec = new.layers[0].spec
    shifted = [list(map(list, spec.kernel[o])) for o in range(spec.out_channels)]
    shifted[1][0] = [0, 0, 1]  # +x channel: tap at offset 2 reads x[p + 1]
    bad = Network((ConvSpec.build(shifted, 1, 3, [3], "zero", "same", list(spec.bias)).layer(),))
    x, y = (Fraction(0), Fraction(0), Fraction(0)), (Fraction(1), Fraction(0), Fraction(0))
    assert bad.evaluate(x) == bad.evaluate(y) and new.evaluate(x) != new.evaluate(y)
    res = check(Certificate(bad, Domain(), Status.INJECTIVE, proof))
    assert not res.valid and "layer 0, unit 3" in res.reason


def test_verify_finds_the_conv_carry_and_cli_writes_kernels(tmp_path, capsys):
    rng = random.Random(7)
    net = Network((_conv(rng, 1, 2, (3, 3), 3), _conv(rng, 2, 1, (3, 3), 3)))
    src = tmp_path / "c.json"
    src.write_text(json.dumps(network_to_json(net)))
    out = tmp_path / "inj.json"
    assert main(["injectivize", str(src), "-o", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["verdict"] == "injective" and summary["outputs"] == 9 + 18
    assert all(L["type"] == "conv" for L in json.loads(out.read_text())["layers"])
    v = exact_inj.verify(str(out), time_limit=30)
    assert v.status is Status.INJECTIVE and v.route == "carry" and check(v.certificate).valid
    assert main(["check", str(tmp_path / "inj.cert.json")]) == 0


def test_project_mode_on_a_convolutional_network():
    from exact_inj.network.project import project

    net = Network((ConvSpec.build([[[1, 1, 1]], [[1, -1, 0]]], 1, 2, [2], "zero", "same", [0, 1]).layer(),
                   ConvSpec.build([[[1, 2, 1], [0, 1, 0]]], 2, 1, [2], "zero", "same").layer("linear")))
    r = project(net, 5, time_limit=30)
    assert r is not None and r.network.output_dim == 5 and check(r.certificate).valid
    assert r.certificate.network == r.network
