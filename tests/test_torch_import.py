"""PyTorch import: live nn.Sequential, safetensors and weights-only .pt files.

Skips cleanly when torch (or safetensors) is not installed.  Exact networks
are compared with the model run in float64, where they agree to ~1e-12.
"""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction as F

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:Using padding=.same.:UserWarning")
nn = torch.nn

from exact_inj.io import InputError, load_network  # noqa: E402
from exact_inj.torch_import import (  # noqa: E402
    architecture_of,
    load_torch,
    network_from_sequential,
    network_from_state_dict,
    save_sequential,
)


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


def test_mlp_folds_adjacent_linears():
    model = mlp()
    net = network_from_sequential(model)
    assert [(L.in_dim, L.out_dim, L.activation) for L in net.layers] == [(3, 5, "relu"), (5, 4, "relu"), (4, 2, "linear")]
    assert_matches_model(net, model, (3,))


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
def test_conv_models(layers, shape):
    torch.manual_seed(1)
    model = nn.Sequential(*layers())
    net = network_from_sequential(model, shape)
    assert net.input_dim == int(np.prod(shape))
    assert_matches_model(net, model, shape)


def test_safetensors_roundtrip_with_architecture(tmp_path):
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="circular"), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3))
    want = network_from_sequential(model, (1, 4, 4))
    for name in ("m.safetensors", "m.pt"):
        p = str(tmp_path / name)
        save_sequential(model, p, (1, 4, 4))
        assert load_torch(p) == want
        assert load_network(p) == want  # io dispatches by extension


def test_bare_state_dict_mlp_convention(tmp_path):
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 1))
    p = str(tmp_path / "sd.pt")
    torch.save(model.state_dict(), p)
    assert load_network(p) == network_from_sequential(model)


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


def test_explicit_architecture_for_bare_state_dict(tmp_path):
    torch.manual_seed(4)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU())  # trailing ReLU: invisible in the state dict
    p = str(tmp_path / "sd.pt")
    torch.save(model.state_dict(), p)
    arch = architecture_of(model, (2, 2))
    net = load_torch(p, architecture=arch)
    assert [L.activation for L in net.layers] == ["relu"]
    assert net == network_from_sequential(model, (2, 2))


def test_whole_pickled_model_is_never_unpickled(tmp_path):
    p = str(tmp_path / "whole.pt")
    torch.save(mlp(), p)
    with pytest.raises(InputError, match="never unpickled"):
        load_network(p)


def test_unsupported_modules_and_options():
    for model, fragment in [
        (nn.Sequential(nn.Linear(2, 2), nn.Tanh()), "module 1 is a Tanh"),
        (nn.Sequential(nn.Conv1d(1, 1, 2, stride=2)), "stride (2,)"),
        (nn.Sequential(nn.Conv1d(2, 2, 2, groups=2)), "groups=2"),
        (nn.Sequential(nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect")), "padding_mode 'reflect'"),
    ]:
        with pytest.raises(InputError, match=None) as info:
            network_from_sequential(model, (1, 4, 4) if "Conv2d" in repr(model) else (2, 4))
        assert fragment in str(info.value)


def test_shape_errors():
    with pytest.raises(InputError, match="missing Flatten"):
        network_from_sequential(nn.Sequential(nn.Conv1d(1, 1, 2), nn.Linear(3, 1)), (1, 4))
    with pytest.raises(InputError, match="give input_shape"):
        network_from_sequential(nn.Sequential(nn.Conv1d(1, 1, 2)))
    with pytest.raises(InputError, match="belong to no Linear or Conv"):
        network_from_state_dict({"0.weight": torch.ones(2, 2), "5.weight": torch.ones(1, 2)},
                                {"input_shape": None, "modules": [{"type": "Linear"}]})


def test_corrupt_files(tmp_path):
    for name, data in [("x.pt", b"not a zip"), ("x.safetensors", b"\x05\x00\x00\x00\x00\x00\x00\x00{bad}")]:
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(InputError) as info:
            load_network(str(p))
        assert str(info.value).startswith(str(p) + ": ") and "\n" not in str(info.value)


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
