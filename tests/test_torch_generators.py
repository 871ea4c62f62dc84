"""The PyTorch importer's generator modules (exact_inj/io/torch_modules.py),
each checked against torch's own float forward on random inputs, and the
small DCGAN generator read from PyTorch equal to the same model read from
ONNX (the two importers build the same exact objects)."""

from __future__ import annotations

import os
from fractions import Fraction as F

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from exact_inj import api  # noqa: E402
from exact_inj.errors import InputError  # noqa: E402
from exact_inj.io.torch import load_torch, network_from_sequential, save_sequential  # noqa: E402
from exact_inj.model import ConvLayer, KernelSpec  # noqa: E402
from exact_inj.model.normalised import NormalisedNetwork  # noqa: E402
from exact_inj.verdict import Status  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Using padding=.same.:UserWarning")


def _set_dyadic(model, seed):
    """Small dyadic weights (exact in float32), and BN statistics whose
    roots are rational unless ``irrational``."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randint(-8, 9, p.shape, generator=gen) / 8)
            if "weight" in name and isinstance(dict(model.named_modules())[name.rsplit(".", 1)[0]], nn.PReLU):
                p.fill_(0.25)
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.copy_(torch.randint(-4, 5, m.running_mean.shape, generator=gen) / 8)
                m.running_var.copy_(torch.tensor([0.25, 1.0, 4.0])[torch.randint(0, 3, m.running_var.shape,
                                                                                  generator=gen)])
                m.eps = 0.0
    return model.eval()


def _agrees(model, shape, trials=3, seed=0, unit=None):
    """The exact import against torch in float64 (the dyadic weights widen exactly)."""
    net = network_from_sequential(model, shape)
    m64 = model.double()
    gen = torch.Generator().manual_seed(seed)
    for _ in range(trials):
        x = torch.randn((1, *shape), generator=gen, dtype=torch.float64)
        want = m64(x).detach().numpy().ravel()
        got = np.array([float(v) for v in net.evaluate([F(float(v)) for v in x.numpy().ravel()])])
        if unit is not None:
            got = unit(got)
        assert got.shape == want.shape and np.allclose(got, want, atol=1e-9), (got[:5], want[:5])
    return net


MODULES = [
    (lambda: nn.Sequential(nn.Conv1d(2, 3, 3, stride=2, dilation=2, padding=1), nn.ReLU()), (2, 9)),
    (lambda: nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1)), (2, 5, 5)),
    (lambda: nn.Sequential(nn.Conv2d(2, 2, 3, dilation=2, padding="same"), nn.ReLU()), (2, 5, 5)),
    (lambda: nn.Sequential(nn.ConvTranspose1d(2, 3, 4, stride=2, padding=1, output_padding=1)), (2, 4)),
    (lambda: nn.Sequential(nn.ConvTranspose2d(3, 2, 4, stride=2, padding=1), nn.ReLU()), (3, 3, 3)),
    (lambda: nn.Sequential(nn.ConvTranspose2d(2, 2, 3, stride=2, dilation=2)), (2, 2, 3)),
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU()), (3,)),
    (lambda: nn.Sequential(nn.ConvTranspose2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU()), (2, 2, 2)),
    (lambda: nn.Sequential(nn.Conv1d(2, 3, 2), nn.BatchNorm1d(3, affine=False)), (2, 5)),
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.LeakyReLU(0.2), nn.Linear(4, 2)), (3,)),
    (lambda: nn.Sequential(nn.Conv1d(1, 2, 2), nn.PReLU()), (1, 5)),
    (lambda: nn.Sequential(nn.Conv1d(1, 2, 2), nn.PReLU(2)), (1, 5)),
    (lambda: nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(1, 1, 2)), (1, 3, 3)),
    (lambda: nn.Sequential(nn.Upsample(scale_factor=3)), (2, 4)),
    (lambda: nn.Sequential(nn.Upsample(scale_factor=(3, 2))), (1, 3, 2)),
    (lambda: nn.Sequential(nn.AvgPool1d(2)), (2, 6)),
    (lambda: nn.Sequential(nn.AvgPool2d(3, stride=2, padding=1)), (2, 5, 5)),
    (lambda: nn.Sequential(nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)), (1, 5, 4)),
    (lambda: nn.Sequential(nn.ZeroPad2d((1, 0, 2, 1)), nn.Conv2d(1, 1, 2)), (1, 3, 3)),
    (lambda: nn.Sequential(nn.ConstantPad1d((1, 2), 0.0)), (2, 3)),
    (lambda: nn.Sequential(nn.ZeroPad1d(2)), (1, 3)),
    (lambda: nn.Sequential(nn.Flatten(), nn.Linear(8, 18), nn.Unflatten(1, (2, 3, 3)), nn.Conv2d(2, 1, 2)),
     (2, 2, 2)),
]


@pytest.mark.parametrize("k", range(len(MODULES)))
def test_module_matches_torch(k):
    build, shape = MODULES[k]
    _agrees(_set_dyadic(build(), k), shape, seed=k)


@pytest.mark.parametrize("unit,f", [(nn.Tanh, np.tanh), (nn.Sigmoid, lambda v: 1 / (1 + np.exp(-v)))])
def test_output_units(unit, f):
    net = _agrees(_set_dyadic(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 3), unit()), 1), (2,), unit=f)
    assert net.output_unit == unit.__name__.lower()
    with pytest.raises(InputError, match="only as the last module"):
        network_from_sequential(nn.Sequential(nn.Linear(2, 2), unit(), nn.Linear(2, 2)), (2,))


def test_strided_and_transposed_convolutions_stay_kernels():
    net = network_from_sequential(_set_dyadic(nn.Sequential(
        nn.ConvTranspose2d(3, 2, 4, stride=2, padding=1), nn.BatchNorm2d(2), nn.ReLU(),
        nn.Conv2d(2, 2, 3, stride=2)), 0), (3, 3, 3))
    assert all(isinstance(L, ConvLayer) and isinstance(L.spec, KernelSpec) for L in net.layers)
    assert net.layers[0].spec.transposed and not net.layers[1].spec.transposed


def test_refusals_name_the_module():
    for model, shape, frag in [
        (nn.Sequential(nn.Linear(2, 2), nn.LeakyReLU(-0.5)), (2,), "non-monotone"),
        (nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear")), (1, 2, 2), "nearest"),
        (nn.Sequential(nn.Upsample(scale_factor=1.5)), (1, 2, 2), "not a positive integer"),
        (nn.Sequential(nn.ConstantPad1d(1, 0.5)), (1, 3), "value of 0"),
        (nn.Sequential(nn.AvgPool1d(2, ceil_mode=True)), (1, 5), "ceil_mode"),
        (nn.Sequential(nn.ConvTranspose1d(2, 2, 2, groups=2)), (2, 3), "groups=1"),
        (nn.Sequential(nn.BatchNorm1d(2, track_running_stats=False)), (2,), "running statistics"),
    ]:
        with pytest.raises(InputError) as e:
            network_from_sequential(model, shape)
        assert frag in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_batch_norm_in_training_mode_is_refused_not_read_as_eval():
    # In training mode the module divides by each batch's statistics: reading
    # its running statistics instead would answer for another function.
    model = nn.Sequential(nn.ConvTranspose2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    assert model.training
    with pytest.raises(InputError) as e:
        network_from_sequential(model, (2, 2, 2))
    msg = str(e.value)
    assert "module 1 (BatchNorm2d)" in msg and "training mode" in msg and "model.eval()" in msg, msg
    assert "\n" not in msg
    with torch.no_grad():  # sqrt(var + eps) = 2: a rational network to evaluate exactly
        model[1].running_var.fill_(4.0)
        model[1].eps = 0.0
    net = network_from_sequential(model.eval(), (2, 2, 2))
    x = torch.randn((1, 2, 2, 2), generator=torch.Generator().manual_seed(1))
    want = model(x).detach().numpy().ravel()
    got = [float(v) for v in net.evaluate([F(float(v)) for v in x.numpy().ravel()])]
    assert np.allclose(got, want, atol=1e-5), (got, want)


def test_irrational_batch_norm_is_symbolic_and_matches_torch():
    model = nn.Sequential(nn.ConvTranspose2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
    _set_dyadic(model, 3)
    with torch.no_grad():
        model[1].running_var.copy_(torch.tensor([2.0, 3.0, 0.5, 5.0]))
        model[1].eps = 1e-5
    net = network_from_sequential(model, (2, 2, 2))
    assert isinstance(net, NormalisedNetwork)
    eps = F(float(np.float32(1e-5)))  # a float32 model computes with float32(eps)
    assert net.norms[0].root == (2 + eps, 3 + eps, F(1, 2) + eps, 5 + eps)
    x = torch.randn((1, 2, 2, 2), generator=torch.Generator().manual_seed(0))
    want = model(x).detach().numpy().ravel()
    L, norm = net.layers[0], net.norms[0]
    pre = np.array([float(v) for v in L.pre_activation([F(float(v)) for v in x.numpy().ravel()])])
    per = L.out_dim // 4
    g, b, m, r = (np.repeat([float(v) for v in t], per) for t in (norm.gamma, norm.beta, norm.mean, norm.root))
    assert np.allclose(np.maximum(g * (pre - m) / np.sqrt(r) + b, 0), want, atol=1e-5)


def test_small_dcgan_from_torch_equals_the_onnx_import(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    from exact_inj.io.onnx import load_onnx

    path = os.path.join(os.path.dirname(__file__), "..", "instances", "generators", "small_keep.onnx")
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}
    eps = 2.0 ** -17
    model = nn.Sequential(
        nn.ConvTranspose2d(4, 8, 4, stride=1, bias=False), nn.BatchNorm2d(8, eps=eps), nn.ReLU(),
        nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(4, eps=eps), nn.ReLU(),
        nn.ConvTranspose2d(4, 1, 4, stride=2, padding=1, bias=False), nn.Tanh()).eval()
    with torch.no_grad():
        for k, conv, bn in ((0, 0, 1), (1, 3, 4)):
            model[conv].weight.copy_(torch.from_numpy(inits[f"w{k}"].copy()))
            for attr, key in (("weight", "g"), ("bias", "b"), ("running_mean", "m"), ("running_var", "v")):
                getattr(model[bn], attr).copy_(torch.from_numpy(inits[f"{key}{k}"].copy()))
        model[6].weight.copy_(torch.from_numpy(inits["w_out"].copy()))
    ref = load_onnx(path)
    # The (1, latent, 1, 1) ONNX input is the (latent, 1, 1) torch input: the same C-order entries.
    assert network_from_sequential(model, (4, 1, 1)) == ref
    save_sequential(model, tmp_path / "gen.safetensors", (4, 1, 1))
    back = load_torch(tmp_path / "gen.safetensors")
    assert back == ref and back.output_unit == "tanh"
    assert api.verify(back, time_limit=60).status is Status.INJECTIVE
