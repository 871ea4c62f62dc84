"""The paper's GAN experiment (its section 4) at a size this machine trains:
a regular and an injective generator on scikit-learn's 8 x 8 digits, each
with an inference network, compared by W2 between N(0, I) and the Gaussian
fitted to Inet(G(z)); then the injective generator is certified by exact_inj
and inverted exactly (docs/gan-experiment.md has the results and the command).

    PYTHONPATH=. python benchmarks/gan_digits.py                 # the default (mlp) run
    PYTHONPATH=. python benchmarks/gan_digits.py --arch conv --lr 2e-4   # the DCGAN-like run
    PYTHONPATH=. python benchmarks/gan_digits.py --epochs 2 --seeds 1 --samples-exact 1 --no-figures  # smoke

Needs the ``gan`` extra (torch, scikit-learn; CPU only, one thread, no
download: the digits ship inside scikit-learn).

Architectures (no batch norm; both generators of a pair have the same layer
widths, latent 8 -> 32 -> 64 -> 64 pixels, and tanh on the pixels):

* ``mlp`` regular:   Linear(8, 32), ReLU, Linear(32, 64), ReLU, Linear(64, 64);
  ``mlp`` injective: every ReLU layer is ReLU([C; -s^2 C] h + [b; -s^2 b]), with
  C from Linear(8, 16) and Linear(32, 32): the layer outputs the 16 (32) values
  u = C h + b next to -s^2 u, so its width is the regular layer's;
* ``conv`` (the paper's DCGAN shrunk to 8 x 8) regular: Linear(8, 32), ReLU,
  reshape 8 x 2 x 2, ConvTranspose(8 -> 4, k 4, stride 2, pad 1), ReLU,
  ConvTranspose(4 -> 1, k 4, stride 2, pad 1); injective: C from Linear(8, 16)
  and ConvTranspose(8 -> 2), as above.

Why these sizes: a [C; -s^2 C] layer is injective when C has full column
rank, so C needs at least as many rows as the layer has inputs; the widths at
least double per layer, and the linear output layer (64 pixels) is injective
only if it has at most 64 inputs.  So with 64 pixels the last hidden layer has
at most 64 units and the latent is small.  s^2 is a power of two (default 1):
then -s^2 C is exact in float32, and the exported weights are exactly a
[B; -DB] layer (any other s would round -s^2 c differently from c and the
pair would no longer be an exact negative multiple).

The exact part: the trained injective generator is exported to ONNX (its
[C; -s^2 C] weights materialised into plain Linear/ConvTranspose weights) and
read by exact_inj's ONNX importer, which takes every float32 weight at its
exact binary value; exact_inj.verify certifies it (the verdict counts only
with a certificate exact_inj.check accepts), and exact_inj.invert inverts
(a) the exact outputs N(z) of that network at the float32 latents z and
(b) torch's float32 outputs G(z), taken as exact rationals.  The network is
compared before tanh (tanh is strictly increasing; exact_inj evaluates the
values it is applied to, docs/inverse.md).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import time
from fractions import Fraction

import numpy as np

LATENT = 8
PIXELS = 64


def _torch():
    try:
        import torch  # noqa: PLC0415 - optional dependency (the gan extra)
    except ImportError:
        sys.exit("benchmarks/gan_digits.py needs torch: pip install 'exact_inj[gan]'")
    return torch


def load_digits_scaled() -> np.ndarray:
    """The 1,797 digits as float32 rows of 64 pixels in [-1, 1] (tanh's range)."""
    try:
        from sklearn.datasets import load_digits  # noqa: PLC0415 - optional dependency
    except ImportError:
        sys.exit("benchmarks/gan_digits.py needs scikit-learn: pip install 'exact_inj[gan]'")
    x = load_digits().data.astype(np.float32) / 16.0
    return x * 2.0 - 1.0


# --------------------------------------------------------------------------
# Gaussian W2 (the paper's metric)
# --------------------------------------------------------------------------


def _psd_sqrt(S: np.ndarray) -> np.ndarray:
    # Symmetric eigen decomposition; negative round-off eigenvalues are 0.
    w, V = np.linalg.eigh((S + S.T) / 2)
    return (V * np.sqrt(np.clip(w, 0, None))) @ V.T


def w2_gaussians(mu1, S1, mu2, S2) -> float:
    """W2 between N(mu1, S1) and N(mu2, S2), closed form:
    W2^2 = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2).

    >>> round(w2_gaussians(np.zeros(2), np.eye(2), np.ones(2), np.eye(2)), 6)   # a shift by (1, 1)
    1.414214
    >>> round(w2_gaussians(np.zeros(1), np.eye(1), np.zeros(1), 4 * np.eye(1)), 6)   # sd 1 vs 2
    1.0
    """
    r1 = _psd_sqrt(np.asarray(S1, dtype=np.float64))
    cross = _psd_sqrt(r1 @ np.asarray(S2, dtype=np.float64) @ r1)
    d2 = float(np.sum((np.asarray(mu1) - np.asarray(mu2)) ** 2) + np.trace(S1) + np.trace(S2) - 2 * np.trace(cross))
    return math.sqrt(max(d2, 0.0))


def w2_to_standard(samples: np.ndarray) -> float:
    """W2 between N(0, I) and the Gaussian fitted to the rows of ``samples``
    (mean and maximum-likelihood covariance, in float64)."""
    s = np.asarray(samples, dtype=np.float64)
    mu = s.mean(axis=0)
    S = np.cov(s, rowvar=False, bias=True)
    d = s.shape[1]
    return w2_gaussians(np.zeros(d), np.eye(d), mu, np.atleast_2d(S))


# --------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------


def build(kind: str, latent: int = LATENT, s2: float = 1.0, arch: str = "conv"):
    """(G, D, Inet) for ``kind`` "regular" or "injective"; D and Inet are the same for both.
    ``arch`` "conv" is the DCGAN-like generator of the module docstring; "mlp"
    has the same widths with Linear layers only."""
    torch = _torch()
    nn, F = torch.nn, torch.nn.functional

    class View(nn.Module):
        def __init__(self, *shape):
            super().__init__()
            self.shape = shape

        def forward(self, x):
            return x.reshape((-1,) + self.shape)

    class PairLinear(nn.Module):
        """x -> [u; -s^2 u], u = C x + b: half the free rows, the full width."""

        def __init__(self, n_in, n_u):
            super().__init__()
            self.lin = nn.Linear(n_in, n_u)

        def forward(self, x):
            u = self.lin(x)
            return torch.cat([u, -s2 * u], dim=1)

        def plain(self):
            m = nn.Linear(self.lin.in_features, 2 * self.lin.out_features)
            with torch.no_grad():
                m.weight.copy_(torch.cat([self.lin.weight, -s2 * self.lin.weight], 0))
                m.bias.copy_(torch.cat([self.lin.bias, -s2 * self.lin.bias], 0))
            return m

    class PairConvT(nn.Module):
        """ConvTranspose whose 2c output channels are [u; -s^2 u]."""

        def __init__(self, c_in, c_u):
            super().__init__()
            self.conv = nn.ConvTranspose2d(c_in, c_u, 4, 2, 1)

        def forward(self, x):
            u = self.conv(x)
            return torch.cat([u, -s2 * u], dim=1)

        def plain(self):
            c = self.conv
            m = nn.ConvTranspose2d(c.in_channels, 2 * c.out_channels, 4, 2, 1)
            with torch.no_grad():  # a ConvTranspose weight is (in, out, k, k): out channels on axis 1
                m.weight.copy_(torch.cat([c.weight, -s2 * c.weight], 1))
                m.bias.copy_(torch.cat([c.bias, -s2 * c.bias], 0))
            return m

    if arch == "mlp":
        first, second, last = ((nn.Linear(latent, 32), nn.Linear(32, 64)) if kind == "regular"
                               else (PairLinear(latent, 16), PairLinear(32, 32))) + (nn.Linear(64, PIXELS),)
        G = nn.Sequential(first, nn.ReLU(), second, nn.ReLU(), last, nn.Tanh())
    elif kind == "regular":
        G = nn.Sequential(nn.Linear(latent, 32), nn.ReLU(), View(8, 2, 2),
                          nn.ConvTranspose2d(8, 4, 4, 2, 1), nn.ReLU(),
                          nn.ConvTranspose2d(4, 1, 4, 2, 1), nn.Flatten(), nn.Tanh())
    elif kind == "injective":
        G = nn.Sequential(PairLinear(latent, 16), nn.ReLU(), View(8, 2, 2),
                          PairConvT(8, 2), nn.ReLU(),
                          nn.ConvTranspose2d(4, 1, 4, 2, 1), nn.Flatten(), nn.Tanh())
    else:
        raise ValueError(kind)
    D = nn.Sequential(nn.Linear(PIXELS, 128), nn.LeakyReLU(0.2), nn.Linear(128, 64), nn.LeakyReLU(0.2),
                      nn.Linear(64, 1))
    inet = nn.Sequential(nn.Linear(PIXELS, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, latent))
    del F
    return G, D, inet


def plain_generator(G):
    """The same function as ``G`` with every [C; -s^2 C] pair materialised
    into one plain module (what is exported and certified)."""
    torch = _torch()
    return torch.nn.Sequential(*[m.plain() if hasattr(m, "plain") else m for m in G])


def train(G, D, inet, data: np.ndarray, epochs: int, seed: int, latent: int = LATENT, batch: int = 64,
          lr: float = 2e-4) -> dict:
    """DCGAN training (non-saturating loss, Adam 2e-4, betas (0.5, 0.999)); the
    inference network is trained jointly on (G(z), z) pairs with a squared loss,
    as in the paper's section 4 (Inet learns to invert G on its range)."""
    torch = _torch()
    F = torch.nn.functional
    gen = torch.Generator().manual_seed(seed)
    X = torch.from_numpy(data)
    opt_g = torch.optim.Adam(G.parameters(), lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr, betas=(0.5, 0.999))
    opt_i = torch.optim.Adam(inet.parameters(), 1e-3)
    ones, zeros = torch.ones(batch, 1), torch.zeros(batch, 1)
    t0 = time.perf_counter()
    last = {}
    for _ in range(epochs):
        perm = torch.randperm(len(X), generator=gen)
        for k in range(0, len(X) - batch + 1, batch):
            real = X[perm[k:k + batch]]
            z = torch.randn(batch, latent, generator=gen)
            fake = G(z)
            loss_d = (F.binary_cross_entropy_with_logits(D(real), ones)
                      + F.binary_cross_entropy_with_logits(D(fake.detach()), zeros))
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            loss_g = F.binary_cross_entropy_with_logits(D(fake), ones)
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            loss_i = F.mse_loss(inet(fake.detach()), z)
            opt_i.zero_grad()
            loss_i.backward()
            opt_i.step()
        last = {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "loss_inet": loss_i.item()}
    last["seconds"] = time.perf_counter() - t0
    return last


def inet_w2(G, inet, z) -> float:
    torch = _torch()
    with torch.no_grad():
        return w2_to_standard(inet(G(z)).numpy())


# --------------------------------------------------------------------------
# exact_inj: certify and invert
# --------------------------------------------------------------------------


def to_exact_network(G, latent: int = LATENT):
    """The plain generator through ONNX into exact_inj (exact float32 weights)."""
    torch = _torch()
    import warnings  # noqa: PLC0415

    from exact_inj.io.onnx import network_from_onnx_bytes  # noqa: PLC0415

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(plain_generator(G).eval(), torch.zeros(1, latent), buf, dynamo=False,
                          input_names=["z"], output_names=["x"])
    return network_from_onnx_bytes(buf.getvalue(), "injective_generator.onnx"), buf.getvalue()


def exact_part(G, inet, latent: int, n_exact: int, n_float: int, seed: int, time_limit: float) -> dict:
    """Certify the injective generator, invert exact and float outputs, and
    compare the W2 of exact inversion with the inference network's on the same z."""
    torch = _torch()
    import exact_inj  # noqa: PLC0415

    out: dict = {}
    t0 = time.perf_counter()
    net, onnx_bytes = to_exact_network(G, latent)
    out["import_seconds"] = time.perf_counter() - t0
    out["layers"] = [f"{type(layer).__name__} {layer.in_dim}->{layer.out_dim} {layer.activation}" for layer in net.layers]
    t0 = time.perf_counter()
    v = exact_inj.verify(net, time_limit=time_limit)
    out["verify_seconds"] = time.perf_counter() - t0
    out["verdict"], out["route"] = v.status.value, v.route
    checked = v.certificate is not None and exact_inj.check(v.certificate).valid
    out["certificate_checked"] = bool(checked)
    out["reason"] = v.reason
    injective = v.status.value == "injective" and checked

    gen = torch.Generator().manual_seed(seed + 1)
    z = torch.randn(max(n_exact, n_float), latent, generator=gen)
    G.eval()
    with torch.no_grad():
        pre = G[:-1](z).double().numpy()  # torch's float32 values before tanh
        z_inet = inet(G(z)).numpy()
    answers, recovered, times = {}, [], []
    for i in range(n_exact):
        zi = [Fraction(float(t)) for t in z[i]]  # the float32 latent's exact value
        y = net.evaluate(zi)                      # the exact output of the certified network
        t1 = time.perf_counter()
        r = exact_inj.invert(net, y, time_limit=time_limit)
        times.append(time.perf_counter() - t1)
        answers[r.preimage] = answers.get(r.preimage, 0) + 1
        print(f"  exact output {i}: {r.preimage} in {times[-1]:.1f} s ({r.stats.get('nodes')} nodes)", flush=True)
        if r.preimage == "point":
            if tuple(r.points[0]) != tuple(zi):
                raise RuntimeError(f"sample {i}: exact inversion returned another point than z")  # never expected
            recovered.append([float(t) for t in r.points[0]])
    out["exact_outputs"] = {"answers": answers, "seconds": [round(t, 2) for t in times],
                            "seconds_median": float(np.median(times)) if times else None,
                            "seconds_max": max(times) if times else None, "n": n_exact}
    if recovered and injective:
        out["w2_exact_inversion"] = w2_to_standard(np.array(recovered))
    out["w2_inet_same_z"] = w2_to_standard(z_inet[:n_exact]) if n_exact > 1 else None
    out["w2_z_itself"] = w2_to_standard(z[:n_exact].numpy()) if n_exact > 1 else None
    # (b) torch's float outputs, exactly: rounding moves them off the exact
    # network's range, and exact inversion says so (with a checked certificate).
    fanswers, ftimes, fdist = {}, [], []
    for i in range(n_float):
        y = [Fraction(float(np.float32(t))) for t in pre[i]]
        t1 = time.perf_counter()
        r = exact_inj.invert(net, y, time_limit=time_limit)
        ftimes.append(time.perf_counter() - t1)
        fanswers[r.preimage] = fanswers.get(r.preimage, 0) + 1
        if r.preimage == "point":
            fdist.append(max(abs(float(a) - float(b)) for a, b in zip(r.points[0], z[i])))
    out["float_outputs"] = {"answers": fanswers, "n": n_float,
                            "seconds_median": float(np.median(ftimes)) if ftimes else None,
                            "max_abs_error_of_points": max(fdist) if fdist else None}
    out["onnx_bytes"] = len(onnx_bytes)
    return out


# --------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------


def grid_png(images: np.ndarray, path: str, title: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    k = int(math.isqrt(len(images)))
    tiles = images[:k * k].reshape(k, k, 8, 8)
    pad = np.full((k, k, 10, 10), 0.35, dtype=np.float32)  # grey frames between the black-background digits
    pad[:, :, 1:9, 1:9] = (np.clip(tiles, -1, 1) + 1) / 2
    big = pad.transpose(0, 2, 1, 3).reshape(k * 10, k * 10)
    fig, ax = plt.subplots(figsize=(3.2, 3.4), dpi=100)
    ax.imshow(big, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", choices=("mlp", "conv"), default="mlp",
                   help="mlp: Linear layers (default); conv: the DCGAN-like transposed convolutions")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate of G and D")
    p.add_argument("--seeds", type=int, default=3, help="training runs per generator (seeds 0, 1, ...)")
    p.add_argument("--s2", type=float, default=1.0, help="s^2 of the [C; -s^2 C] layers (a power of two)")
    p.add_argument("--samples-inet", type=int, default=10_000, help="z samples for the Inet metric")
    p.add_argument("--samples-exact", type=int, default=1000, help="exact outputs inverted by exact_inj (layer by layer, about 0.02-0.06 s each)")
    p.add_argument("--samples-float", type=int, default=10, help="float outputs inverted by exact_inj")
    p.add_argument("--time-limit", type=float, default=60.0, help="seconds per verify / invert call")
    p.add_argument("--img-dir", default="docs/img")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = p.parse_args(argv)
    if math.frexp(args.s2)[0] != 0.5:
        p.error("--s2 must be a power of two (so that -s^2 C is exact in float32)")
    torch = _torch()
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    data = load_digits_scaled()
    res: dict = {"args": vars(args), "torch": torch.__version__, "runs": []}
    z_eval = torch.randn(args.samples_inet, LATENT, generator=torch.Generator().manual_seed(10_007))
    models = {}
    for seed in range(args.seeds):
        for kind in ("regular", "injective"):
            torch.manual_seed(seed)
            G, D, inet = build(kind, LATENT, args.s2, args.arch)
            stats = train(G, D, inet, data, args.epochs, seed, lr=args.lr)
            G.eval()
            stats.update(kind=kind, seed=seed, w2_inet=inet_w2(G, inet, z_eval),
                         parameters_G=sum(t.numel() for t in G.parameters()))
            res["runs"].append(stats)
            if seed == 0:
                models[kind] = (G, inet)
            print(json.dumps(stats), flush=True)
    res["w2_z_itself"] = w2_to_standard(z_eval.numpy())
    G, inet = models["injective"]
    res["exact"] = exact_part(G, inet, LATENT, args.samples_exact, args.samples_float, 0, args.time_limit)
    print(f"exact: {json.dumps(res['exact'])}", flush=True)
    if not args.no_figures:
        os.makedirs(args.img_dir, exist_ok=True)
        zg = torch.randn(64, LATENT, generator=torch.Generator().manual_seed(11))
        with torch.no_grad():
            for kind, (G, _) in models.items():
                grid_png(G(zg).numpy(), os.path.join(args.img_dir, f"gan_{args.arch}_{kind}.png"),
                         f"{kind} generator ({args.arch}, seed 0)")
        grid_png(data[:64], os.path.join(args.img_dir, "gan_data.png"), "training digits")
    res["wall_seconds"] = time.perf_counter() - t_start
    for kind in ("regular", "injective"):
        w = [r["w2_inet"] for r in res["runs"] if r["kind"] == kind]
        print(f"{kind}: W2(N(0,I), fit Inet(G(z))) = " + ", ".join(f"{v:.3f}" for v in w)
              + f" (mean {np.mean(w):.3f})")
    print(f"W2 of the {args.samples_inet} z themselves (sampling floor): {res['w2_z_itself']:.4f}")
    print(f"wall time: {res['wall_seconds']:.1f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
