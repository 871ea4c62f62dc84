"""``exact-inj injectivize`` (docs/injectivize.md): write an injective network
built from a given one, and its certificate beside it, only after the exact
checker accepted the certificate."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

from ..errors import InputError
from ..io import load_network
from ..io.json import network_to_json
from ..network.injectivize import injectivize
from ..network.project import project

__all__ = ["add_parser", "certificate_path", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``injectivize`` on the CLI's subparsers object."""
    p = subparsers.add_parser(
        "injectivize",
        help="write an injective network that keeps the given network's outputs first, with its certificate",
        description="Build an injective network from the network in FILE: its outputs are kept exactly as the "
                    "first outputs, and the input is carried to 2n extra outputs (+2n units per layer). The "
                    "result is certified by the exact checker before OUT and its certificate are written "
                    "(docs/injectivize.md).",
    )
    p.add_argument("file", metavar="FILE", help="network file (.json, .npz, .onnx, .pt/.safetensors)")
    p.add_argument("-o", "--output", metavar="OUT", required=True, help="where to write the network (JSON)")
    p.add_argument("--mode", choices=("append", "project"), default="append",
                   help="append: keep the outputs, carry the input through (default); project: Corollary 3's random "
                        "projection of that to --width K >= 2n + 1 outputs, certified by the engine")
    p.add_argument("--width", metavar="K", type=int, default=None, help="outputs of --mode project (>= 2n + 1)")
    p.add_argument("--seed", metavar="S", type=int, default=0, help="first seed of --mode project (default: 0)")
    p.add_argument("--tries", metavar="T", type=int, default=5,
                   help="seeds tried by --mode project before giving up (default: 5)")
    p.add_argument("--time-limit", metavar="S", type=float, default=60.0,
                   help="seconds for all the tries of --mode project (default: 60)")
    p.add_argument("--certificate", metavar="CERT",
                   help="where to write the certificate (default: OUT with .json replaced by .cert.json)")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    return p


def certificate_path(out: str) -> str:
    """The default certificate file beside OUT.

    >>> certificate_path("net_inj.json"), certificate_path("out")
    ('net_inj.cert.json', 'out.cert.json')
    """
    return (out[:-5] if out.endswith(".json") else out) + ".cert.json"


def _write(path: str, obj) -> None:
    # Whole or not at all: a temporary file in the same folder, then a rename.
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError(path, "cannot write here: the directory does not exist")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".exact-inj-")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, separators=(",", ":"))
            f.write("\n")
        os.replace(tmp, path)
    except OSError as e:
        raise InputError(path, f"cannot write: {e.strerror}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def run(args) -> int:
    """Carry out ``exact-inj injectivize``; exit 0 when written, 3 when no projection was certified."""
    if not args.output.endswith(".json"):
        raise InputError(args.output, "injectivize writes JSON networks: name the output *.json")
    net = load_network(args.file)
    if args.mode == "project":
        if args.width is None or args.width < 2 * net.input_dim + 1:
            raise InputError("--width", f"--mode project needs --width K >= 2n + 1 = {2 * net.input_dim + 1}")
        try:
            r = project(net, args.width, seed=args.seed, tries=args.tries, time_limit=args.time_limit)
        except InputError as e:  # a convolution too large to carry: name the file it came from
            raise InputError(args.file, e.message) from None
        if r is None:
            print(f"{args.file}: no projection to {args.width} outputs was certified injective (seeds {args.seed} to "
                  f"{args.seed + args.tries - 1}, {args.time_limit:g} s); nothing written. The engine certifies such "
                  "networks on small sizes only (docs/injectivize.md)")
            return 3
    else:
        try:
            r = injectivize(net, args.mode)
        except InputError as e:  # about the network: name the file it came from
            raise InputError(args.file, e.message) from None
    cert_path = args.certificate or certificate_path(args.output)
    if os.path.abspath(cert_path) == os.path.abspath(args.output):
        raise InputError(cert_path, "the certificate and the network would be the same file")
    _write(args.output, network_to_json(r.network))
    _write(cert_path, r.certificate.to_json())
    n = net.input_dim
    if args.json:
        print(json.dumps({"file": args.file, "output": args.output, "certificate": cert_path, "mode": args.mode,
                          "verdict": r.verdict.status.value, "kept_outputs": r.kept_outputs,
                          "outputs": r.network.output_dim, "added_units_per_layer": r.added_units,
                          "check": r.verdict.info.get("check"), "route": r.verdict.route,
                          "seed": r.verdict.info.get("seed")}))
    elif args.mode == "project":
        print(f"{args.file}: wrote {args.output} ({n} inputs -> {r.network.output_dim} outputs, seed "
              f"{r.verdict.info['seed']})\n  certificate: {cert_path} (INJECTIVE by the {r.verdict.route} route, "
              f"checked exactly: {r.verdict.info.get('check')})")
    else:
        print(f"{args.file}: wrote {args.output} ({n} inputs -> {r.network.output_dim} outputs: the "
              f"{r.kept_outputs} original outputs first, then {2 * n} carried; +{r.added_units} units in each of "
              f"{len(net.layers)} layers)\n  certificate: {cert_path} (INJECTIVE, checked exactly: "
              f"{r.verdict.info.get('check')})", file=sys.stdout)
    return 0
