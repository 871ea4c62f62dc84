"""The convolution operator against a direct numpy convolution, and the JSON conv layer."""

from __future__ import annotations

import json
from fractions import Fraction as F
from itertools import product

import numpy as np
import pytest

from exact_inj.model.conv import MAX_OPERATOR_ENTRIES, ConvLayer, ConvSpec, conv_operator, normalize_pads
from exact_inj.io import InputError, load_network
from exact_inj.model import Layer


def direct_conv(x: np.ndarray, K: np.ndarray, padding: str, pads) -> np.ndarray:
    """Cross-correlation of x (C, *N) with K (M, C, *k), written independently of conv.py:
    pad with numpy (zeros or wrap-around), then slide the kernel."""
    mode = "constant" if padding == "zero" else "wrap"
    xp = np.pad(x, [(0, 0)] + [tuple(p) for p in pads], mode=mode)
    M, C, *k = K.shape
    out_size = [xp.shape[1 + t] - k[t] + 1 for t in range(len(k))]
    y = np.zeros([M, *out_size], dtype=object)
    for o in range(M):
        for pos in product(*map(range, out_size)):
            window = xp[(slice(None),) + tuple(slice(p, p + kk) for p, kk in zip(pos, k))]
            y[(o,) + pos] = int((window * K[o]).sum())
    return y


CASES = [
    # (in_channels, out_channels, input_size, kernel_size, padding, pad)
    (1, 1, [7], [3], "zero", 0),
    (1, 1, [7], [3], "zero", 1),
    (2, 3, [6], [2], "zero", [[2, 1]]),
    (2, 3, [5], [3], "periodic", 1),
    (3, 2, [4], [4], "periodic", "same"),
    (1, 1, [3], [5], "periodic", 2),  # kernel longer than the input: taps wrap onto one input
    (1, 1, [4, 5], [3, 3], "zero", 1),
    (2, 2, [4, 3], [2, 3], "zero", [0, [1, 2]]),
    (2, 3, [4, 4], [3, 3], "periodic", 1),
    (3, 2, [3, 5], [2, 2], "periodic", "same"),
    (1, 2, [2, 2], [3, 3], "periodic", 1),
]


@pytest.mark.parametrize("cin,cout,size,ksize,padding,pad", CASES)
def test_operator_matches_direct_convolution(cin, cout, size, ksize, padding, pad):
    rng = np.random.default_rng(7)
    K = rng.integers(-4, 5, size=[cout, cin, *ksize])
    rows = conv_operator(K.tolist(), cin, cout, size, padding, pad)
    A = np.array([[int(v) for v in r] for r in rows], dtype=object)
    pads = normalize_pads(pad, ksize)
    for _ in range(3):
        x = rng.integers(-9, 10, size=[cin, *size])
        # The operator acts on the channel-major (C-order) flattening.
        want = direct_conv(x.astype(object), K.astype(object), padding, pads).ravel()
        got = A.dot(x.ravel().astype(object))
        assert list(got) == list(want)


def test_operator_is_exact_with_fractions():
    rows = conv_operator([[["1/3", "-2/7"]]], 1, 1, [3], "periodic", [[0, 1]])
    assert rows == [(F(1, 3), F(-2, 7), F(0)), (F(0), F(1, 3), F(-2, 7)), (F(-2, 7), F(0), F(1, 3))]
    assert all(type(v) is F for r in rows for v in r)


def test_same_padding_periodic_is_square_circulant():
    # The paper's N x N convolution operator: each row a cyclic shift of the last.
    rows = conv_operator([[[1, 2, 3]]], 1, 1, [5], "periodic", "same")
    assert len(rows) == 5
    for i in range(1, 5):
        assert rows[i] == rows[i - 1][-1:] + rows[i - 1][:-1]


def test_spec_layer_bias_repeated_per_position():
    spec = ConvSpec.build([[[1]], [[2]]], 1, 2, [3], "zero", 0, [5, "-1/2"])
    layer = spec.layer("linear")
    assert isinstance(layer, ConvLayer) and layer.activation == "linear"
    assert isinstance(layer.dense(), Layer) and layer.dense().weight == layer.weight
    assert layer.bias == (F(5),) * 3 + (F(-1, 2),) * 3
    assert layer.weight[4] == (F(0), F(2), F(0))


@pytest.mark.parametrize(
    "args, msg",
    [
        (([[[1, 2]]], 2, 1, [3]), "kernel has shape [1, 1, 2]"),
        (([[[1, 2]]], 1, 1, [3, 3]), "must be a non-empty list"),
        (([[[1, 2], [3]]], 1, 1, [3]), "ragged"),
        (([[[1, 2, 3, 4]]], 1, 1, [2]), "does not fit"),
        (([[[1]]], 1, 1, [0]), "positive integers"),
        (([[[1]]], 1, 1, [3], "reflect"), "padding 'reflect'"),
        (([[[1]]], 1, 1, [3], "zero", -1), "negative"),
        (([[[1]]], 1, 1, [3], "zero", [1, 1]), "pad has 2 entries"),
        (([[[1.5]]], 1, 1, [3]), "refusing float"),
    ],
)
def test_bad_specs(args, msg):
    with pytest.raises((ValueError, TypeError), match=None) as info:
        conv_operator(*args)
    assert msg in str(info.value)


def test_size_cap():
    n = int(MAX_OPERATOR_ENTRIES**0.5) + 1
    with pytest.raises(ValueError, match="more than"):
        conv_operator([[[1]]], 1, 1, [n], "zero", 0)


# --------------------------------------------------------------------------
# JSON conv layers
# --------------------------------------------------------------------------


def write(tmp_path, obj, name="net.json"):
    p = tmp_path / name
    p.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return str(p)


def test_json_conv_layer(tmp_path):
    p = write(
        tmp_path,
        '{"layers": [{"type": "conv", "kernel": [[[[1, "-1/2"], [0, 0.25]]], [[[2, 0], [0, 0]]]],'
        ' "in_channels": 1, "out_channels": 2, "input_size": [3, 3], "padding": "periodic", "pad": "same",'
        ' "bias": [1, "-3/7"], "activation": "relu"},'
        ' {"type": "dense", "weight": [[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]], "activation": "linear"}]}',
    )
    net = load_network(p)
    spec = ConvSpec.build([[[[1, "-1/2"], [0, "1/4"]]], [[[2, 0], [0, 0]]]], 1, 2, [3, 3], "periodic", "same", [1, "-3/7"])
    assert net.layers[0] == spec.layer("relu")
    assert (net.layers[0].in_dim, net.layers[0].out_dim) == (9, 18)
    assert net.layers[0].bias[:9] == (F(1),) * 9 and net.layers[0].bias[9:] == (F(-3, 7),) * 9
    assert net.layers[1].in_dim == 18


def test_json_conv_defaults(tmp_path):
    # padding "zero", pad 0, bias zeros, activation relu
    p = write(tmp_path, {"layers": [{"type": "conv", "kernel": [[[1, 1]]], "in_channels": 1, "out_channels": 1, "input_size": [3]}]})
    layer = load_network(p).layers[0]
    assert layer.weight == ((F(1), F(1), F(0)), (F(0), F(1), F(1)))
    assert layer.bias == (F(0), F(0)) and layer.activation == "relu"


def test_json_dense_type_is_accepted(tmp_path):
    p = write(tmp_path, {"layers": [{"type": "dense", "weight": [[1], [-1]]}]})
    assert load_network(p).layers[0].weight == ((F(1),), (F(-1),))


BASE = {"type": "conv", "kernel": [[[1, -1]]], "in_channels": 1, "out_channels": 1, "input_size": [3]}


@pytest.mark.parametrize(
    "change, msg",
    [
        ({"type": "cnn"}, "layers[0].type: 'cnn' is not one of 'dense', 'conv'"),
        ({"pads": 1}, "unknown key 'pads' in a conv layer"),
        ({"weight": [[1]]}, "unknown key 'weight' in a conv layer"),
        ({"in_channels": 2}, "kernel has shape [1, 1, 2] but (out_channels, in_channels) = (1, 2)"),
        ({"in_channels": 1.0}, "layers[0].in_channels: expected an integer >= 1"),
        ({"input_size": [3, 3, 3]}, "layers[0].input_size: expected [L] or [H, W]"),
        ({"input_size": [0]}, "layers[0].input_size[0]: expected an integer >= 1"),
        ({"padding": "circular"}, "layers[0].padding: 'circular' is not one of 'zero', 'periodic'"),
        ({"pad": 1.5}, "pad 3/2 is not an integer"),
        ({"pad": "full"}, "pad 'full' is not an integer"),
        ({"kernel": [[[1, "x"]]]}, "layers[0].kernel[0][0][1]: 'x' is not an exact number"),
        ({"kernel": [[1, 2]]}, "layers[0].kernel[0][0]: expected a non-empty list"),
        ({"bias": [1, 2]}, "bias has 2 entries but there are 1 output channels"),
        ({"bias": 1}, "layers[0].bias: expected a list of numbers"),
        ({"activation": "ReLU"}, "layers[0].activation: 'ReLU' is not one of"),
        ({"kernel": [[[1, 2, 3, 4]]]}, "does not fit the padded input [3]"),
    ],
)
def test_json_conv_errors(tmp_path, change, msg):
    layer = {**BASE, **change}
    p = write(tmp_path, {"layers": [layer]})
    with pytest.raises(InputError) as info:
        load_network(p)
    text = str(info.value)
    assert msg in text and "\n" not in text and text.startswith(p + ": ")


def test_json_conv_missing_key(tmp_path):
    layer = dict(BASE)
    del layer["input_size"]
    with pytest.raises(InputError, match="conv layer is missing 'input_size'"):
        load_network(write(tmp_path, {"layers": [layer]}))


def test_json_conv_dimension_mismatch_with_next_layer(tmp_path):
    p = write(tmp_path, {"layers": [BASE, {"weight": [[1, 2, 3]]}]})
    with pytest.raises(InputError, match=r"layers\[1\] expects 3 inputs but layers\[0\] gives 2 outputs"):
        load_network(p)
