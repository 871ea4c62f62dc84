"""PyTorch import: live nn.Sequential, safetensors and weights-only .pt files.

The tests that need torch (or safetensors) skip cleanly when it is not
installed; those on :func:`network_from_state_dict` with numpy arrays run
without it.  Exact networks
are compared with the model run in float64, where they agree to ~1e-12.
"""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction as F
from itertools import product

import numpy as np
import pytest

try:
    import torch
except ImportError:  # the tests marked needs_torch skip; network_from_state_dict on numpy arrays still runs
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")
pytestmark = pytest.mark.filterwarnings("ignore:Using padding=.same.:UserWarning")
nn = torch.nn if torch is not None else None

from exact_inj.model.conv import MAX_OPERATOR_ENTRIES, ConvLayer, ConvSpec  # noqa: E402
from exact_inj.io import InputError, load_network  # noqa: E402
from exact_inj.model import Layer  # noqa: E402
from exact_inj.io.torch import architecture_of, load_torch, network_from_sequential, network_from_state_dict, save_sequential


def assert_matches_model(net, model, input_shape, trials=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    m64 = model.double()  # the float32 weights widen exactly
    for _ in range(trials):
        x = torch.randn((1, *input_shape), generator=gen, dtype=torch.float64)
        ref = m64(x).detach().numpy().ravel()
        got = np.array([float(v) for v in net.evaluate([F(float(v)) for v in x.numpy().ravel()])])
        assert np.abs(got - ref).max() <= 1e-9 * (1 + np.abs(ref).max())


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 4), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))


@needs_torch
def test_mlp_folds_adjacent_linears():
    model = mlp()
    net = network_from_sequential(model)
    assert [(L.in_dim, L.out_dim, L.activation) for L in net.layers] == [(3, 5, "relu"), (5, 4, "relu"), (4, 2, "linear")]
    assert_matches_model(net, model, (3,))


@needs_torch
def test_exact_float32_values():
    lin = nn.Linear(1, 1)
    with torch.no_grad():
        lin.weight.fill_(0.1)
        lin.bias.fill_(-0.3)
    net = network_from_sequential(nn.Sequential(lin, nn.ReLU()))
    assert net.layers[0].weight == ((F(13421773, 2**27),),)
    assert net.layers[0].bias == (F(float(np.float32(-0.3))),)
    assert net.layers[0].activation == "relu"


@pytest.mark.parametrize(
    "layers, shape",
    [
        (lambda: [nn.Conv1d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(18, 2)], (2, 6)),
        (lambda: [nn.Conv1d(1, 2, 4, padding=2, padding_mode="circular"), nn.ReLU(), nn.Flatten(), nn.Linear(14, 3)], (1, 6)),
        (lambda: [nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular"), nn.ReLU(),
                  nn.Conv2d(3, 2, (2, 3), padding="same"), nn.ReLU(), nn.Flatten(), nn.Linear(40, 3)], (2, 5, 4)),
        (lambda: [nn.Conv2d(1, 2, 2, bias=False), nn.Identity(), nn.ReLU(), nn.Flatten(), nn.Linear(18, 2)], (1, 4, 4)),
    ],
)
@needs_torch
def test_conv_models(layers, shape):
    torch.manual_seed(1)
    model = nn.Sequential(*layers())
    net = network_from_sequential(model, shape)
    assert net.input_dim == int(np.prod(shape))
    # Every model here starts with Conv -> (Identity ->) ReLU: a structured layer.
    assert isinstance(net.layers[0], ConvLayer) and isinstance(net.layers[-1], Layer)
    assert_matches_model(net, model, shape)


@needs_torch
def test_safetensors_roundtrip_with_architecture(tmp_path):
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="circular"), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3))
    want = network_from_sequential(model, (1, 4, 4))
    for name in ("m.safetensors", "m.pt"):
        p = str(tmp_path / name)
        save_sequential(model, p, (1, 4, 4))
        assert load_torch(p) == want
        assert load_network(p) == want  # io dispatches by extension


@needs_torch
def test_bare_state_dict_mlp_convention(tmp_path):
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 1))
    p = str(tmp_path / "sd.pt")
    torch.save(model.state_dict(), p)
    assert load_network(p) == network_from_sequential(model)


@needs_torch
def test_bare_state_dict_ambiguous_layouts_refused(tmp_path):
    # Flatten first (indices start at 1), Dropout after ReLU (gap of 2), a
    # convolution (needs the input size): all need the architecture.
    cases = [
        nn.Sequential(nn.Flatten(), nn.Linear(2, 2)),
        nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Dropout(), nn.Linear(2, 1)),
        nn.Sequential(nn.Conv1d(1, 1, 2), nn.ReLU(), nn.Flatten(), nn.Linear(3, 1)),
    ]
    for k, model in enumerate(cases):
        p = str(tmp_path / f"sd{k}.pt")
        torch.save(model.state_dict(), p)
        with pytest.raises(InputError) as info:
            load_network(p)
        assert "does not record ReLU or Flatten" in str(info.value) and "\n" not in str(info.value)


@needs_torch
def test_explicit_architecture_for_bare_state_dict(tmp_path):
    torch.manual_seed(4)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU())  # trailing ReLU: invisible in the state dict
    p = str(tmp_path / "sd.pt")
    torch.save(model.state_dict(), p)
    arch = architecture_of(model, (2, 2))
    net = load_torch(p, architecture=arch)
    assert [L.activation for L in net.layers] == ["relu"]
    assert net == network_from_sequential(model, (2, 2))


@needs_torch
def test_whole_pickled_model_is_never_unpickled(tmp_path):
    p = str(tmp_path / "whole.pt")
    torch.save(mlp(), p)
    with pytest.raises(InputError, match="never unpickled"):
        load_network(p)


@needs_torch
def test_unsupported_modules_and_options():
    for model, fragment in [
        (nn.Sequential(nn.Linear(2, 2), nn.MaxPool1d(2)), "module 1 is a MaxPool1d"),
        (nn.Sequential(nn.Conv1d(1, 1, 2, stride=2, padding=1, padding_mode="circular")), "circular padding"),
        (nn.Sequential(nn.Conv1d(2, 2, 2, groups=2)), "groups=2"),
        (nn.Sequential(nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect")), "padding_mode 'reflect'"),
    ]:
        with pytest.raises(InputError, match=None) as info:
            network_from_sequential(model, (1, 4, 4) if "Conv2d" in repr(model) else (2, 4))
        assert fragment in str(info.value)


@needs_torch
def test_shape_errors():
    with pytest.raises(InputError, match="missing Flatten"):
        network_from_sequential(nn.Sequential(nn.Conv1d(1, 1, 2), nn.Linear(3, 1)), (1, 4))
    with pytest.raises(InputError, match="give input_shape"):
        network_from_sequential(nn.Sequential(nn.Conv1d(1, 1, 2)))
    with pytest.raises(InputError, match="belong to no module"):
        network_from_state_dict({"0.weight": torch.ones(2, 2), "5.weight": torch.ones(1, 2)},
                                {"input_shape": None, "modules": [{"type": "Linear"}]})


@needs_torch
def test_corrupt_files(tmp_path):
    for name, data in [("x.pt", b"not a zip"), ("x.safetensors", b"\x05\x00\x00\x00\x00\x00\x00\x00{bad}")]:
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(InputError) as info:
            load_network(str(p))
        assert str(info.value).startswith(str(p) + ": ") and "\n" not in str(info.value)


@needs_torch
def test_safetensors_without_torch(tmp_path):
    # A safetensors file needs neither torch nor pickle: load it with torch hidden.
    pytest.importorskip("safetensors")
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2))
    p = str(tmp_path / "m.safetensors")
    save_sequential(model, p)
    want = network_from_sequential(model)
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from exact_inj.io import load_network, network_to_json\n"
        "import json; print(json.dumps(network_to_json(load_network(sys.argv[1]))))\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code, p], capture_output=True, text=True, cwd=root, timeout=120)
    assert out.returncode == 0, out.stderr
    from exact_inj.io import network_from_json, loads_exact

    assert network_from_json(loads_exact(out.stdout)) == want


# --------------------------------------------------------------------------
# Structured convolutions, without torch: network_from_state_dict reads numpy
# arrays with an explicit architecture.  A Conv module that starts a layer and
# is followed by a ReLU (or the end) stays a ConvLayer; otherwise it is dense.
# --------------------------------------------------------------------------


def exact_array(a):
    out = np.empty(a.size, dtype=object)
    out[:] = [F(float(v)) for v in a.ravel()]
    return out.reshape(a.shape)


def direct_conv(x, w, b, pads, periodic):
    """Stride-1 cross-correlation of x (C, *N) with w (O, C, *k), zero or periodic
    padding, in Fractions, independently of exact_inj.model.conv."""
    N, k = x.shape[1:], w.shape[2:]
    xp = x
    for t, (n, (a, e)) in enumerate(zip(N, pads)):
        if periodic:
            xp = np.take(xp, [(s - a) % n for s in range(n + a + e)], axis=1 + t)
        else:
            shape = list(xp.shape)
            shape[1 + t] = n + a + e
            z = np.full(shape, F(0), dtype=object)
            index = [slice(None)] * len(shape)
            index[1 + t] = slice(a, a + n)
            z[tuple(index)] = xp
            xp = z
    out_size = tuple(xp.shape[1 + t] - k[t] + 1 for t in range(len(N)))
    y = np.empty((w.shape[0], *out_size), dtype=object)
    for o in range(w.shape[0]):
        for p in product(*map(range, out_size)):
            window = xp[(slice(None), *(slice(p[t], p[t] + k[t]) for t in range(len(N))))]
            y[(o, *p)] = b[o] + sum((w[o] * window).ravel().tolist(), F(0))
    return y


def rational_inputs(rng, n, trials=3):
    return [[F(int(rng.integers(-9, 10)), int(rng.integers(1, 8))) for _ in range(n)] for _ in range(trials)]


def relu_all(v):
    return [max(a, F(0)) for a in v]


def conv_module(d, padding, mode="zeros"):
    return {"type": f"Conv{d}d", "padding": padding, "padding_mode": mode}


@pytest.mark.parametrize("mode", ["zeros", "circular"])
def test_state_dict_conv_relu_linear_is_structured(mode):
    rng = np.random.default_rng(30)
    w, b = rng.standard_normal((3, 2, 3, 2)).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    V, c = rng.standard_normal((2, 3 * 4 * 5)).astype(np.float32), rng.standard_normal(2).astype(np.float32)
    pads = [[1, 1], [1, 0]]
    arch = {"input_shape": [2, 4, 5], "modules": [conv_module(2, pads, mode), {"type": "ReLU"},
                                                   {"type": "Flatten"}, {"type": "Linear"}]}
    net = network_from_state_dict({"0.weight": w, "0.bias": b, "3.weight": V, "3.bias": c}, arch)
    assert [type(L) for L in net.layers] == [ConvLayer, Layer]
    L = net.layers[0]
    assert "weight" not in L.__dict__ and L.activation == "relu"
    wx, bx, Vx, cx = map(exact_array, (w, b, V, c))
    padding = "periodic" if mode == "circular" else "zero"
    assert L.spec == ConvSpec.build(wx.tolist(), 2, 3, [4, 5], padding, pads, bx.tolist())
    # The dense operator is what the former dense import built: columns are
    # the direct convolution of unit vectors.
    zero = [F(0)] * 3
    for j in range(40):
        e = np.full(40, F(0), dtype=object)
        e[j] = F(1)
        col = direct_conv(e.reshape(2, 4, 5), wx, zero, pads, mode == "circular").ravel().tolist()
        assert [row[j] for row in L.weight] == col
    for x in rational_inputs(rng, 40):
        h = relu_all(direct_conv(np.array(x, dtype=object).reshape(2, 4, 5), wx, bx, pads, mode == "circular").ravel())
        want = [sum((Vx[i, j] * h[j] for j in range(60)), cx[i]) for i in range(2)]
        assert list(net.evaluate(x)) == want


def test_state_dict_conv_without_relu_is_dense():
    rng = np.random.default_rng(31)
    w, V = rng.standard_normal((2, 1, 3)).astype(np.float32), rng.standard_normal((1, 12)).astype(np.float32)
    arch = {"input_shape": [1, 6], "modules": [conv_module(1, [[1, 1]]), {"type": "Flatten"}, {"type": "Linear"}]}
    net = network_from_state_dict({"0.weight": w, "2.weight": V}, arch)
    assert [(type(L), L.in_dim, L.out_dim, L.activation) for L in net.layers] == [(Layer, 6, 1, "linear")]
    wx, Vx = exact_array(w), exact_array(V)
    for x in rational_inputs(rng, 6):
        h = direct_conv(np.array(x, dtype=object).reshape(1, 6), wx, [F(0)] * 2, [(1, 1)], False).ravel()
        assert list(net.evaluate(x)) == [sum((Vx[0, j] * h[j] for j in range(12)), F(0))]


def test_state_dict_conv_conv_relu_is_dense_and_conv_at_end_is_linear_conv():
    rng = np.random.default_rng(32)
    w1, w2 = rng.standard_normal((2, 1, 2)).astype(np.float32), rng.standard_normal((1, 2, 2)).astype(np.float32)
    b1 = rng.standard_normal(2).astype(np.float32)
    arch = {"input_shape": [1, 5], "modules": [conv_module(1, [[1, 0]], "circular"), conv_module(1, 0),
                                                {"type": "ReLU"}, conv_module(1, [[0, 1]])]}
    net = network_from_state_dict({"0.weight": w1, "0.bias": b1, "1.weight": w2, "3.weight": w2[:, :1] * 2}, arch)
    # Conv -> Conv compose into one dense layer; the Conv after the ReLU
    # starts a layer and reaches the end: a linear ConvLayer.
    assert [(type(L), L.in_dim, L.out_dim, L.activation) for L in net.layers] == [
        (Layer, 5, 4, "relu"), (ConvLayer, 4, 4, "linear")]
    w1x, b1x, w2x = exact_array(w1), exact_array(b1), exact_array(w2)
    w3x = exact_array(w2[:, :1] * 2)
    for x in rational_inputs(rng, 5):
        h = direct_conv(np.array(x, dtype=object).reshape(1, 5), w1x, b1x, [(1, 0)], True)
        h = relu_all(direct_conv(h, w2x, [F(0)], [(0, 0)], False).ravel())
        want = direct_conv(np.array(h, dtype=object).reshape(1, 4), w3x, [F(0)], [(0, 1)], False).ravel().tolist()
        assert list(net.evaluate(x)) == want


def test_state_dict_big_conv_stays_structured_and_verifies():
    # 3 -> 12 channels on 32x32, circular: the operator (12288 x 3072) is far
    # over the densification cap, yet the [C; -C/4] layer is proved through
    # its kernel.
    import exact_inj

    rng = np.random.default_rng(33)
    half = rng.integers(-3, 4, size=(6, 3, 3, 3)).astype(np.float32)
    w = np.concatenate([half, -0.25 * half])
    arch = {"input_shape": [3, 32, 32], "modules": [conv_module(2, [[1, 1], [1, 1]], "circular"), {"type": "ReLU"}]}
    net = network_from_state_dict({"0.weight": w}, arch)
    (L,) = net.layers
    assert isinstance(L, ConvLayer) and L.dense_entries > MAX_OPERATOR_ENTRIES
    assert "weight" not in L.__dict__
    v = exact_inj.verify(net, time_limit=120)
    assert v.status.value == "injective" and v.route == "structural", (v.status, v.route)
    assert exact_inj.check(v.certificate).valid


def test_state_dict_too_large_dense_conv_names_the_module():
    w = np.ones((4, 4, 1, 1), np.float32)
    arch = {"input_shape": [4, 40, 40], "modules": [conv_module(2, 0), {"type": "Flatten"}, {"type": "Linear"}]}
    with pytest.raises(InputError) as info:
        network_from_state_dict({"0.weight": w, "2.weight": np.ones((1, 6400), np.float32)}, arch)
    assert "module 0 (Conv2d): the convolution operator would be" in str(info.value)
