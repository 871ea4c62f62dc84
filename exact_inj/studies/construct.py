"""Instance construction: injective [B; -DB; M] layers and Gaussian layers.

``exact-inj construct`` (docs/construct.md) writes single-layer files in the
JSON format of docs/formats.md, every number an exact string, so that what the
engine later decides is exactly what was constructed.

* ``bminusdb``: rows B (random invertible rational n x n, or given), -DB (D
  positive diagonal) and M extra rows.  Injective by the structural rule
  (docs/theory.md, sections 4 and 7): B's rows are independent, each is paired
  with a negative multiple, and extra rows never break injectivity.  With biases, the
  pair k satisfies d_k b_{i_k} + b_{j_k} >= 0; half the pairs, drawn at random,
  meet it with equality, the boundary case where any smaller b_{j_k} makes an
  interval of inputs collapse.
* ``gaussian``: iid N(0, 1) weights from ``numpy.random.default_rng([seed, n,
  m, trial])``, the very generator of trial ``trial`` of ``exact-inj experiment
  gaussian``, so any trial of an experiment can be written out and inspected.

All randomness comes from seeded numpy Generators.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np

from ..cli.argtypes import nonneg_int as _nonneg_int
from ..cli.argtypes import pos_int as _pos_int
from ..errors import InputError
from ..numbers import fraction_to_str, parse_exact
from ..io.json import network_to_json
from ..exact.linalg import rank_q
from ..layer.convproof import full_column_rank
from ..model.conv import ConvSpec
from ..model.network import Layer, Network
from .generator import dcgan_generator

__all__ = [
    "BMinusDB", "bminusdb", "gaussian", "dumps_network", "exact_str", "parse_matrix", "parse_vector",
    "add_parser", "run",
]

# Small numerators and denominators keep the files readable and the engine's
# integer arithmetic small; the structure, not the size, is what is tested.
_NUM = 9
_DEN = 4


def _rational(rng: np.random.Generator, positive: bool = False) -> Fraction:
    den = int(rng.integers(1, _DEN + 1))
    num = int(rng.integers(1, _NUM + 1)) if positive else int(rng.integers(-_NUM, _NUM + 1))
    return Fraction(num, den)


def _rank(rows: Sequence[Sequence[Fraction]], n: int) -> int:
    return rank_q(rows, n)


@dataclass(frozen=True)
class BMinusDB:
    """The parts of a [B; -DB; M] layer, kept so that tests and docs can name them.

    ``pairs[k] = (i_k, j_k)``: row j_k = -d_k * row i_k in ``network``.
    """

    network: Network
    B: tuple[tuple[Fraction, ...], ...]
    D: tuple[Fraction, ...]
    pairs: tuple[tuple[int, int], ...]
    extra_rows: tuple[int, ...]


def bminusdb(
    n: int | None = None,
    *,
    extra: int = 0,
    bias: bool = False,
    seed: int = 0,
    B: Sequence[Sequence[Fraction]] | None = None,
    D: Sequence[Fraction] | None = None,
    shuffle: bool = False,
) -> BMinusDB:
    """An injective layer [B; -DB; M] on R^n, random where B or D is not given.

    With ``shuffle`` the rows are permuted (a seeded permutation), so that a
    checker cannot rely on the order.

    >>> c = bminusdb(2, extra=1, bias=True, seed=3)
    >>> c.network.layers[0].out_dim, c.pairs
    (5, ((0, 2), (1, 3)))
    >>> from exact_inj import verify, check
    >>> v = verify(c.network, milp="none")
    >>> v.status.value, v.route, check(v.certificate).valid
    ('injective', 'structural', True)
    """
    if B is not None:
        B = tuple(tuple(Fraction(x) for x in row) for row in B)
        if n is not None and n != len(B):
            raise InputError(None, f"--B has {len(B)} rows but --n is {n}")
        n = len(B)
        if any(len(row) != n for row in B):
            raise InputError(None, f"--B must be square ({n} x {n})")
        if _rank(B, n) < n:
            raise InputError(None, "--B is singular; B must be invertible")
    if n is None or n < 1:
        raise InputError(None, "--n must be at least 1")
    if extra < 0:
        raise InputError(None, "--extra must be >= 0")
    if D is not None:
        D = tuple(Fraction(x) for x in D)
        if len(D) != n:
            raise InputError(None, f"--D has {len(D)} entries, expected n = {n}")
        if any(d <= 0 for d in D):
            raise InputError(None, "--D entries must be positive")
    rng = np.random.default_rng(seed)
    if B is None:
        while True:  # a random integer-ish matrix is singular rarely; redraw if so
            B = tuple(tuple(_rational(rng) for _ in range(n)) for _ in range(n))
            if _rank(B, n) == n:
                break
    if D is None:
        D = tuple(_rational(rng, positive=True) for _ in range(n))
    rows = [*B, *(tuple(-d * x for x in row) for d, row in zip(D, B))]
    rows += [tuple(_rational(rng) for _ in range(n)) for _ in range(extra)]
    m = len(rows)
    if bias:
        bB = [_rational(rng) for _ in range(n)]
        # Slack s_k >= 0 in d_k b_i + b_j = s_k; zero for a random half of the
        # pairs, the boundary where the bias condition only just holds.
        slack = [Fraction(0) if rng.random() < 0.5 else _rational(rng, positive=True) for _ in range(n)]
        bDB = [-d * bi + s for d, bi, s in zip(D, bB, slack)]
        b = [*bB, *bDB, *(_rational(rng) for _ in range(extra))]
    else:
        b = [Fraction(0)] * m
    order = list(range(m))
    if shuffle:
        order = [int(i) for i in rng.permutation(m)]
    where = {old: new for new, old in enumerate(order)}
    layer = Layer(tuple(rows[i] for i in order), tuple(b[i] for i in order))
    parts = [f"n={n}", f"extra={extra}", f"seed={seed}"]
    parts += (["bias"] if bias else []) + (["shuffled"] if shuffle else [])
    net = Network((layer,), name="bminusdb " + " ".join(parts))
    pairs = tuple((where[k], where[n + k]) for k in range(n))
    return BMinusDB(net, B, D, pairs, tuple(sorted(where[2 * n + k] for k in range(extra))))


def gaussian(n: int, m: int, *, seed: int = 0, trial: int = 0, bias: bool = False,
             decimals: int | None = None) -> Network:
    """An iid N(0, 1) layer: trial ``trial`` of ``exact-inj experiment gaussian --seed seed``.

    Numbers are the floats' exact binary values, or with ``decimals`` the
    floats rounded to that many decimal places (then the layer is the rounded
    one, exactly as written).  With ``bias`` the biases are drawn after the
    weights from the same generator, so the weights do not change.

    >>> from exact_inj.studies.experiment import trial_network
    >>> gaussian(2, 8, seed=7, trial=3).layers == trial_network(7, 2, 8, 3).layers
    True
    >>> gaussian(1, 2, seed=0, decimals=2).layers[0].weight
    ((Fraction(7, 100),), (Fraction(61, 100),))
    """
    if n < 1 or m < 1:
        raise InputError(None, "--n and --m must be at least 1")
    if seed < 0 or trial < 0:
        raise InputError(None, "--seed and --trial must be >= 0")
    rng = np.random.default_rng([seed, n, m, trial])
    W = rng.standard_normal((m, n))  # drawn first: the experiment's trial matrix
    b = rng.standard_normal(m) if bias else np.zeros(m)

    def exact(x: float) -> Fraction:
        if decimals is None:
            return Fraction(float(x))
        return Fraction(f"{float(x):.{decimals}f}")

    layer = Layer(tuple(tuple(exact(x) for x in row) for row in W), tuple(exact(x) for x in b))
    parts = [f"n={n}", f"m={m}", f"seed={seed}", f"trial={trial}"] + (["bias"] if bias else [])
    if decimals is not None:
        parts.append(f"decimals={decimals}")
    return Network((layer,), name="gaussian " + " ".join(parts))


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


def dcgan(
    in_channels: int, channels: int, size: Sequence[int], kernel: int, *, s: Fraction = Fraction(1),
    padding: str = "periodic", bias: bool = False, seed: int = 0, near_miss: Fraction | None = None,
) -> dict:
    """A DCGAN-style convolution layer with filters [C; -s^2 C], as a JSON layer.

    Theory section 8: it is injective when the operator of C has full column
    rank at this size and padding (n independent rows of C are B, D = s^2 I,
    and the sub-layer rule), with bias when s^2 b_k + b_(k+c) >= 0 for every
    channel pair.  C is redrawn (seeded) until its operator has full column
    rank, checked exactly.  ``near_miss`` adds that amount to one kernel entry
    of the -s^2 C half, which breaks the antiparallel pairs of that channel.

    >>> obj = dcgan(1, 1, [5], 3, seed=0)
    >>> obj["layers"][0]["out_channels"], len(obj["layers"][0]["kernel"])
    (2, 2)
    """
    if in_channels < 1 or channels < 1 or kernel < 1 or not size or s == 0:
        raise InputError(None, "dcgan needs positive channels, kernel and size, and s != 0")
    rng = np.random.default_rng([seed, in_channels, channels, kernel, *size])
    shape = [channels, in_channels] + [kernel] * len(size)
    for _ in range(100):
        C = rng.integers(-3, 4, size=shape).tolist()
        # Shown modulo a prime through the kernel (exact_inj/convproof.py):
        # no dense operator, so DCGAN-sized layers can be built too.
        spec = ConvSpec.build(C, in_channels, channels, list(size), padding, "same")
        if full_column_rank(spec, list(range(channels)))[0] is not None:
            break
    else:
        raise InputError(None, "no kernel with a full-column-rank operator found: use more channels")
    s2 = Fraction(s) ** 2
    neg = (-s2 * np.array(C, dtype=object)).tolist()
    if near_miss is not None:
        flat = neg[0]
        while isinstance(flat[0], list):
            flat = flat[0]
        flat[0] = flat[0] + Fraction(near_miss)
    kernels = [[_nest_str(k) for k in C_out] for C_out in C] + [[_nest_str(k) for k in C_out] for C_out in neg]
    layer: dict = {"type": "conv", "in_channels": in_channels, "out_channels": 2 * channels,
                   "input_size": list(size), "kernel": kernels, "padding": padding, "pad": "same",
                   "activation": "relu"}
    if bias:
        b = [_rational(rng) for _ in range(channels)]
        # s^2 b_k + b_(k+c) >= 0: equality for even k, slack for odd k.
        b2 = [-s2 * bk + (abs(_rational(rng)) if k % 2 else 0) for k, bk in enumerate(b)]
        layer["bias"] = [exact_str(v) for v in b + b2]
    name = f"dcgan_c{in_channels}x{channels}_{'x'.join(map(str, size))}_k{kernel}" + ("_near_miss" if near_miss else "")
    return {"name": name, "layers": [layer]}


def _nest_str(x):
    return [_nest_str(v) for v in x] if isinstance(x, list) else exact_str(Fraction(x))


def exact_str(x: Fraction, decimal: bool = False) -> str:
    """An exact spelling of x: a decimal string when ``decimal`` is set and x
    has a finite decimal expansion, or when that is no longer than "p/q".

    Rounded Gaussian entries then read as decimals, while exact binary floats
    (53-digit decimals) stay "p/q".

    >>> [exact_str(F) for F in (Fraction(-343, 1000), Fraction(7, 16), Fraction(3), Fraction(1, 3), Fraction(1, 2))]
    ['-0.343', '7/16', '3', '1/3', '0.5']
    >>> exact_str(Fraction(1, 8), decimal=True)
    '0.125'
    """
    ratio = fraction_to_str(x)
    d = x.denominator
    twos = fives = 0
    while d % 2 == 0:
        d //= 2
        twos += 1
    while d % 5 == 0:
        d //= 5
        fives += 1
    if d != 1 or x.denominator == 1:
        return ratio
    k = max(twos, fives)  # x * 10^k is an integer
    digits = str(abs(x.numerator) * 10**k // x.denominator).rjust(k + 1, "0")
    dec = ("-" if x < 0 else "") + digits[:-k] + "." + digits[-k:]
    return dec if decimal or len(dec) <= len(ratio) else ratio


def dumps_network(net: Network, decimal: bool = False) -> str:
    """docs/formats.md JSON, numbers as exact strings, one weight row per line.

    ``decimal`` writes every number with a finite decimal expansion as a
    decimal (see :func:`exact_str`).

    >>> print(dumps_network(Network((Layer.from_rows([[1, "1/2"]], [-1]),), name="t")))
    {
      "name": "t",
      "layers": [
        {
          "weight": [
            ["1", "0.5"]
          ],
          "bias": ["-1"],
          "activation": "relu"
        }
      ]
    }
    """
    # network_to_json is the format's reference writer; only the spelling of
    # each number (see exact_str) and the layout differ here.
    obj = network_to_json(net)
    for layer, L in zip(obj["layers"], net.layers):
        layer["weight"] = [[exact_str(v, decimal) for v in row] for row in L.weight]
        layer["bias"] = [exact_str(v, decimal) for v in L.bias]
    out = ["{"]
    if "name" in obj:
        out.append(f'  "name": {json.dumps(obj["name"])},')
    out.append('  "layers": [')
    for k, layer in enumerate(obj["layers"]):
        out.append("    {")
        out.append('      "weight": [')
        rows = [f"        {json.dumps(row)}" for row in layer["weight"]]
        out.append(",\n".join(rows))
        out.append("      ],")
        out.append(f'      "bias": {json.dumps(layer["bias"])},')
        out.append(f'      "activation": {json.dumps(layer["activation"])}')
        out.append("    }" + ("," if k + 1 < len(obj["layers"]) else ""))
    out.append("  ]")
    out.append("}")
    return "\n".join(out)


def _write(net: Network, path: str | None, decimal: bool = False) -> None:
    text = dumps_network(net, decimal) + "\n"
    if path is None or path == "-":
        sys.stdout.write(text)
        return
    if path.lower().endswith(".npz"):
        raise InputError(path, "construct writes JSON (docs/formats.md); give a .json name")
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise InputError(path, "cannot write here: the directory does not exist")
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as e:
        raise InputError(path, f"cannot write: {e.strerror}") from None


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def parse_vector(text: str, what: str) -> tuple[Fraction, ...]:
    """Exact numbers from ``"1, -3/7, 0.5"``.

    >>> parse_vector("1, -3/7, 0.5", "--D")
    (Fraction(1, 1), Fraction(-3, 7), Fraction(1, 2))
    """
    return tuple(parse_exact(x.strip(), f"{what}[{k}]") for k, x in enumerate(text.split(",")))


def parse_matrix(text: str, what: str) -> tuple[tuple[Fraction, ...], ...]:
    """Rows separated by ``;``, entries by ``,``: ``"1,0;0,1/2"``.

    >>> parse_matrix("1,0; 0,1/2", "--B")
    ((Fraction(1, 1), Fraction(0, 1)), (Fraction(0, 1), Fraction(1, 2)))
    """
    rows = tuple(parse_vector(r, f"{what} row {i}") for i, r in enumerate(text.split(";")))
    if any(len(r) != len(rows[0]) for r in rows):
        raise InputError(None, f"{what}: rows have different lengths")
    return rows


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``construct`` (kinds ``bminusdb``, ``gaussian`` and ``dcgan``) to the CLI's subparsers."""
    c = subparsers.add_parser(
        "construct",
        help="write instance files: injective [B; -DB; M] layers, Gaussian layers, DCGAN-style conv filters",
        description="Write a single-layer instance (docs/formats.md JSON, every number an exact string).",
    )
    kinds = c.add_subparsers(dest="construct", metavar="KIND", required=True)
    b = kinds.add_parser(
        "bminusdb",
        help="an injective [B; -DB; M] layer",
        description="Rows B (invertible n x n), -DB (D positive diagonal) and M extra rows: injective by the "
        "structural rule. With --bias, d_k b_(i_k) + b_(j_k) >= 0 for every pair (with equality for a random "
        "half of them) and random biases on the extra rows.",
    )
    b.add_argument("--n", type=_pos_int, help="input dimension (may be omitted with --B)")
    b.add_argument("--extra", type=_nonneg_int, default=0, metavar="M", help="extra random rows (default 0)")
    b.add_argument("--bias", action="store_true", help="biases satisfying the bias condition (default: none)")
    b.add_argument("--seed", type=_nonneg_int, default=0, help="seed (default 0)")
    b.add_argument("--B", dest="B", metavar="ROWS", help='B instead of a random one, e.g. "1,2;0,1/3"')
    b.add_argument("--D", dest="D", metavar="DIAG", help='D\'s diagonal instead of a random one, e.g. "1,1/2"')
    b.add_argument("--shuffle", action="store_true", help="permute the rows (seeded)")
    b.add_argument("-o", "--output", metavar="FILE", help="output file (default: stdout)")

    g = kinds.add_parser(
        "gaussian",
        help="a layer with iid N(0,1) weights",
        description="iid N(0,1) weights from numpy.random.default_rng([seed, n, m, trial]): trial TRIAL of "
        "'exact-inj experiment gaussian --seed SEED'. Numbers are the floats' exact values as p/q strings, "
        "or with --decimals K the floats rounded to K decimals.",
    )
    g.add_argument("--n", type=_pos_int, required=True, help="input dimension")
    g.add_argument("--m", type=_pos_int, required=True, help="rows")
    g.add_argument("--seed", type=_nonneg_int, default=0, help="seed (default 0)")
    g.add_argument("--trial", type=_nonneg_int, default=0, help="trial index in the experiment (default 0)")
    g.add_argument("--bias", action="store_true", help="iid N(0,1) biases too (default: none)")
    g.add_argument("--decimals", type=_nonneg_int, metavar="K",
                   help="round to K decimals and write decimals (default: exact float values)")
    g.add_argument("-o", "--output", metavar="FILE", help="output file (default: stdout)")

    d = kinds.add_parser(
        "dcgan",
        help="a DCGAN-style convolution layer with filters [C; -s^2 C]",
        description="A stride-1 convolution layer (JSON, docs/formats.md) whose 2c output channels are C and "
        "-s^2 C. C is drawn (seeded) until its operator has full column rank at this size and padding, so the "
        "layer is injective by the structural rule; --near-miss EPS moves one entry of -s^2 C by EPS.",
    )
    d.add_argument("--in-channels", type=_pos_int, default=1)
    d.add_argument("--channels", type=_pos_int, default=1, help="channels of C (the layer has twice as many)")
    d.add_argument("--size", required=True, help="input size: L or H,W")
    d.add_argument("--kernel", type=_pos_int, default=3, help="kernel width (default 3)")
    d.add_argument("--s", default="1", help="the scale s of -s^2 C, an exact number (default 1)")
    d.add_argument("--padding", choices=("periodic", "zero"), default="periodic")
    d.add_argument("--bias", action="store_true", help="biases meeting s^2 b_k + b_(k+c) >= 0")
    d.add_argument("--near-miss", metavar="EPS", help="move one entry of -s^2 C by EPS (breaks the pairing of that channel only: with one channel in C the layer is then usually not injective, with more it may still be; verify decides)")
    d.add_argument("--seed", type=_nonneg_int, default=0)
    d.add_argument("-o", "--output", metavar="FILE", help="output file (default: stdout)")

    gen = kinds.add_parser(
        "dcgan-generator",
        help="the paper's section-4 DCGAN generator with [C; -s^2 C] filters, as ONNX",
        description="Latent -> transposed convolutions 1 -> 4 -> 8 -> ... (stride 2), hidden stages [C; -s^2 C] "
        "with exact batch normalisation (rational roots) and ReLU, Tanh output (docs/generators.md).",
    )
    gen.add_argument("--latent", type=_pos_int, default=256, help="latent dimension (default 256)")
    gen.add_argument("--widths", default="512,256,128,64", help="hidden widths (default 512,256,128,64)")
    gen.add_argument("--output-stage", choices=("keep", "rgb"), default="keep",
                     help="keep: last width / 4 channels, a square last stage; rgb: 3 channels (default keep)")
    gen.add_argument("--deficient", action="store_true", help="latent coordinates 0 and 1 enter identically")
    gen.add_argument("--plain", action="store_true", help="the unmodified DCGAN (no [C; -s^2 C] pairing)")
    gen.add_argument("--seed", type=_nonneg_int, default=0)
    gen.add_argument("-o", "--output", metavar="FILE", required=True, help="the .onnx file to write")
    return c


def run(args: argparse.Namespace) -> int:
    """Run the subcommand parsed by :func:`add_parser`; exit code 0 on success."""
    if args.construct == "dcgan-generator":
        try:
            widths = [int(v) for v in args.widths.split(",")]
            model = dcgan_generator(args.latent, widths, args.output_stage, args.deficient, args.plain, args.seed)
        except (ValueError, ImportError) as e:
            raise InputError(None, str(e)) from None
        with open(args.output, "wb") as f:
            f.write(model.SerializeToString())
        out = model.graph.output[0].type.tensor_type.shape.dim
        print(f"exact-inj: wrote {args.output}: latent {args.latent} -> {'x'.join(str(d.dim_value) for d in out)}",
              file=sys.stderr)
        return 0
    if args.construct == "bminusdb":
        B = parse_matrix(args.B, "--B") if args.B else None
        D = parse_vector(args.D, "--D") if args.D else None
        if args.n is None and B is None:
            raise InputError(None, "give --n, or --B")
        net = bminusdb(args.n, extra=args.extra, bias=args.bias, seed=args.seed, B=B, D=D,
                       shuffle=args.shuffle).network
    elif args.construct == "dcgan":
        try:
            size = [int(v) for v in args.size.split(",")]
            sval = parse_exact(args.s, "--s")
            eps = parse_exact(args.near_miss, "--near-miss") if args.near_miss else None
        except (ValueError, ZeroDivisionError) as e:
            raise InputError(None, str(e)) from None
        obj = dcgan(args.in_channels, args.channels, size, args.kernel, s=sval, padding=args.padding,
                    bias=args.bias, seed=args.seed, near_miss=eps)
        text = json.dumps(obj, indent=1) + "\n"
        if args.output and args.output != "-":
            with open(args.output, "w") as f:
                f.write(text)
            print(f"exact-inj: wrote {args.output}: {obj['name']}", file=sys.stderr)
        else:
            sys.stdout.write(text)
        return 0
    else:
        net = gaussian(args.n, args.m, seed=args.seed, trial=args.trial, bias=args.bias, decimals=args.decimals)
    _write(net, args.output, decimal=getattr(args, "decimals", None) is not None)
    if args.output and args.output != "-":
        L = net.layers[0]
        print(f"exact-inj: wrote {args.output}: {net.name} ({L.out_dim} x {L.in_dim})", file=sys.stderr)
    return 0
