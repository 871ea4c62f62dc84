"""The `exact-inj` command line (docs/cli.md is the reference).

stdout carries results only (exactly one JSON object with --json); progress
and diagnostics go to stderr.  Exit codes are part of the contract.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .. import __version__
from .argtypes import positive_float as _positive_float
from ..errors import InputError
from ..numbers import fraction_to_str
from ..errors import OperatorTooLarge
from ..certify.schema import Status

EXIT_INJECTIVE = 0
EXIT_NOT_INJECTIVE = 1
EXIT_BAD_INPUT = 2
EXIT_UNKNOWN = 3
EXIT_INTERNAL = 4
EXIT_VALID = 0
EXIT_INVALID = 1

VERDICT_EXIT = {
    Status.INJECTIVE: EXIT_INJECTIVE,
    Status.NOT_INJECTIVE: EXIT_NOT_INJECTIVE,
    Status.UNKNOWN: EXIT_UNKNOWN,
}

EPILOG = """\
exit codes:
  verify: 0 injective, 1 not injective, 3 unknown
  check:  0 certificate valid, 1 certificate invalid
  any:    2 bad input or usage, 4 internal error

examples:
  exact-inj verify instances/lemma1_counterexample.json
  exact-inj verify layer.json --json --certificate cert.json --time-limit 60
  exact-inj verify instances/conv/dcgan_periodic_32x32.json
  exact-inj check cert.json
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, documented code
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="exact-inj",
        description="Decide exactly whether a ReLU layer is injective, with a certificate anyone can re-check.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"exact-inj {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    v = sub.add_parser(
        "verify",
        help="decide injectivity of a ReLU layer or network on R^n or a domain",
        description="Decide injectivity of the layer or network in FILE (JSON, NPZ, ONNX or PyTorch; "
        "docs/formats.md, docs/model-files.md) on all of R^n or on --domain. Networks go by the cheapest route "
        "that decides them: first layer, layerwise, lifted, singular piece, fold, then end to end for small networks "
        "(docs/networks.md). Convolutional layers are decided through their kernels first, at any size "
        "(docs/conv.md). Every verdict is backed by a certificate that has passed the exact checker.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    v.add_argument("file", metavar="FILE", help="network file (.json, .npz, .onnx, .pt/.safetensors)")
    v.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    v.add_argument("--certificate", metavar="OUT", help="write the self-contained certificate to OUT")
    v.add_argument("--time-limit", metavar="S", type=_positive_float, default=300.0,
                   help="seconds before answering 'unknown' (default: 300)")
    v.add_argument("--max-nodes", metavar="N", type=int, default=None,
                   help="stop the proof search after N tree nodes (a resource limit; default: none)")
    v.add_argument("--milp", choices=("highs", "cbc", "none"), default="highs",
                   help="solver for the side witness search: HiGHS (default), PuLP's CBC, or none")
    v.add_argument("--domain", metavar="D", default="reals",
                   help="input domain: 'reals' (all of R^n, default), 'orthant' (x >= 0), "
                        "'box:L1:U1,L2:U2,...' (exact numbers such as -1/2 or 0.25), 'box:FILE' "
                        "(JSON {\"lower\": [...], \"upper\": [...]}), or 'vnnlib:FILE' (the input box of a "
                        "VNN-LIB property; a union of boxes is refused as not convex)")
    v.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    v.add_argument("--limit", metavar="NAME=N", action="append", default=[],
                   help="raise (or lower) one input limit, e.g. max_digits=1000000 (docs/cli.md, Limits)")

    c = sub.add_parser(
        "check",
        help="re-check a certificate exactly, with no solver",
        description="Re-check CERT in exact rational arithmetic against the network it contains. "
        "Exit 0 if and only if it is valid.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("cert", metavar="CERT", help="certificate file written by verify --certificate")
    c.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    c.add_argument("--limit", metavar="NAME=N", action="append", default=[],
                   help="raise (or lower) one input limit, e.g. max_pieces=5000 (docs/cli.md, Limits)")

    e = sub.add_parser(
        "export-milp",
        help="write the big-M witness MILP for a layer as an LP or MPS file (via PuLP)",
        description="Write the textbook big-M witness model for FILE's layer, for use with other solvers. "
        "Its box is not without loss of generality: infeasibility of this model proves nothing.",
    )
    e.add_argument("file", metavar="FILE")
    e.add_argument("out", metavar="OUT", help="output path ending in .lp or .mps")

    from ..studies import construct
    from ..studies.experiment import cli as experiment
    from ..studies.compare import add_parser as _add_compare
    from ..studies.stability.cli import add_parser as _add_stability

    _add_compare(sub)
    _add_stability(sub)
    experiment.add_parser(sub)
    construct.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help(sys.stderr)
        return EXIT_BAD_INPUT
    try:
        if args.command == "verify":
            return _with_limits(args, _verify)
        if args.command == "check":
            return _with_limits(args, _check)
        if args.command in ("experiment", "construct"):
            from ..studies import construct
            from ..studies.experiment import cli as experiment

            return {"experiment": experiment.run, "construct": construct.run}[args.command](args)
        if args.command == "stability":
            from ..studies.stability.cli import run as _run_stability

            return _run_stability(args)
        if args.command == "compare":
            from ..studies.compare import run as _run_compare

            return _run_compare(args)
        return _export(args)
    except InputError as e:
        print(f"exact-inj: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OperatorTooLarge as e:
        # verify answers unknown instead; the other commands need the dense
        # matrix of every layer, so a huge convolution is input they refuse.
        where = getattr(args, "file", None) or args.command
        print(f"exact-inj: {where}: {e}; `{args.command}` needs it dense", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("exact-inj: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout was closed early (e.g. piped into `head`): nothing left to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as e:  # a bug: say so on one line, traceback on request
        if os.environ.get("EXACT_INJ_DEBUG"):
            raise
        print(f"exact-inj: internal error: {type(e).__name__}: {e} (set EXACT_INJ_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL


# Longer vectors are shortened on screen (an image has thousands of inputs);
# --json and --certificate always hold every coordinate.
SHOWN_COORDINATES = 24


def _vector(v) -> str:
    """(1/2, 0, 3) in full, or the first coordinates of a long vector and a count."""
    head = ", ".join(fraction_to_str(a) for a in v[:SHOWN_COORDINATES])
    if len(v) <= SHOWN_COORDINATES:
        return f"({head})"
    return f"({head}, ...)  [{len(v)} coordinates; --json or --certificate gives all]"


def _verify(args) -> int:
    from ..api import verify
    from ..io.load import load_network

    net = load_network(args.file)
    domain = parse_domain(args.domain, net.input_dim)
    if args.certificate:
        _check_writable(args.certificate)
    progress = None if args.quiet else (lambda msg: print(f"exact-inj: {msg}", file=sys.stderr, flush=True))
    verdict = verify(net, time_limit=args.time_limit, max_nodes=args.max_nodes, milp=args.milp, progress=progress,
                     domain=domain)
    if args.certificate:
        if verdict.certificate is None:
            print(f"exact-inj: no certificate written to {args.certificate}: the verdict is unknown",
                  file=sys.stderr)
        else:
            _write_json(args.certificate, verdict.certificate.to_json())
    if args.json:
        out = verdict.to_json()
        out["file"] = args.file
        if args.certificate and verdict.certificate is not None:
            out["certificate_file"] = args.certificate
        print(json.dumps(out))
    else:
        print(_human(args.file, net, verdict))
    return VERDICT_EXIT[verdict.status]


def parse_domain(spec: str, n: int):
    """The --domain option as a Domain, checked against the input dimension.

    >>> parse_domain("box:0:1,-1/2:0.5", 2).describe()
    'the box [0, 1] x [-1/2, 1/2]'
    """
    from ..model.domain import Domain
    from ..io.json import load_json_file
    from ..numbers import parse_exact

    if spec in ("reals", "R^n"):
        return Domain.reals()
    if spec == "orthant":
        return Domain.orthant()
    if spec.startswith("vnnlib:"):
        from ..io.vnnlib import load_vnnlib

        path = spec[len("vnnlib:"):]
        region = load_vnnlib(path)
        if region.is_union:
            # A union of boxes is not convex; deciding box by box would be
            # wrong (a collision may straddle two boxes), so it is refused.
            bb = region.bounding_box
            raise InputError(path, f"the input region is a union of {len(region.boxes)} boxes, which is not convex; "
                                   "decide on their bounding box with --domain box:" +
                             ",".join(f"{fraction_to_str(a)}:{fraction_to_str(b)}" for a, b in zip(bb.lower, bb.upper))[:200])
        if region.dim != n:
            raise InputError(path, f"the property declares {region.dim} inputs but the network has {n}")
        return Domain.box(region.lower, region.upper)
    if not spec.startswith("box:"):
        raise InputError("--domain", f"unknown domain {spec[:60]!r} (reals, orthant, box:L:U,..., box:FILE)")
    body = spec[4:]
    if os.path.exists(body) or body.endswith(".json"):
        obj = load_json_file(body)
        if not isinstance(obj, dict) or not {"lower", "upper"} <= set(obj):
            raise InputError(body, 'a box file is {"lower": [...], "upper": [...]}')
        lo, hi = obj["lower"], obj["upper"]
        where = body
    else:
        try:
            pairs = [item.split(":") for item in body.split(",")]
            if any(len(p) != 2 for p in pairs):
                raise ValueError("each coordinate is L:U")
            lo, hi = [p[0] for p in pairs], [p[1] for p in pairs]
        except ValueError as e:
            raise InputError("--domain", f"{spec[:60]!r}: {e}") from None
        where = "--domain"
    if not isinstance(lo, list) or not isinstance(hi, list) or len(lo) != n or len(hi) != n:
        raise InputError(where, f"the box needs {n} lower and {n} upper bounds, one per input")
    try:
        lower = [parse_exact(v, f"lower[{k}]") for k, v in enumerate(lo)]
        upper = [parse_exact(v, f"upper[{k}]") for k, v in enumerate(hi)]
    except (ValueError, ZeroDivisionError) as e:
        raise InputError(where, str(e)) from None
    return Domain.box(lower, upper)


def _human(path: str, net, verdict) -> str:
    layer = net.layers[0]
    head = {
        Status.INJECTIVE: "INJECTIVE",
        Status.NOT_INJECTIVE: "NOT INJECTIVE",
        Status.UNKNOWN: "UNKNOWN",
    }[verdict.status]
    dom = verdict.certificate.domain if verdict.certificate is not None else None
    on = "" if dom is None or dom.kind == "reals" else f" on {dom.describe()}"
    if net.is_single_relu_layer and hasattr(layer, "spec"):
        shape = f"x -> ReLU(Cx + b), C a {layer.spec.describe()}, {layer.in_dim} inputs, {layer.out_dim} rows"
    elif net.is_single_relu_layer:
        shape = f"x -> ReLU(Wx + b), {layer.in_dim} inputs, {layer.out_dim} rows"
    else:
        acts = " -> ".join(f"{L.out_dim} {L.activation}" for L in net.layers)
        shape = f"network {net.input_dim} inputs -> {acts}"
    lines = [
        f"{path}: {head}{on}  ({shape}; route: {verdict.route}; {verdict.seconds:.3f} s)",
        f"  why: {verdict.reason}",
    ]
    info = verdict.info
    if verdict.status is Status.NOT_INJECTIVE:
        w = verdict.witness
        fx = net.evaluate(w.x)
        lines.append(f"  x      = {_vector(w.x)}")
        lines.append(f"  y      = {_vector(w.y)}")
        lines.append(f"  f(x) = f(y) = {_vector(fx)}")
    elif verdict.status is Status.INJECTIVE:
        lines.append(f"  meaning: {verdict.meaning()}")
    if verdict.certificate is not None:
        lines.append(f"  checked exactly: {info.get('check')} in {info.get('check_seconds', 0):.4f} s; "
                     f"certificate size {info.get('certificate_size')}")
    if "nodes" in info:
        lines.append(f"  search: {info['nodes']} nodes, {info.get('leaves')} leaves, {info.get('cores')} cores, "
                     f"{info.get('lps', 0) + info.get('core_lps', 0)} LPs")
    if verdict.status is Status.UNKNOWN:
        lines.append(f"  tried: {', '.join(info.get('tried', []))}")
        if info.get("fewest_active_rows_found") is not None:
            lines.append(f"  bound: the fewest rows active at any point found is {info['fewest_active_rows_found']}")
        if info.get("open_cases") is not None:
            lines.append(f"  open cases: {info['open_cases']}; raise --time-limit to go further")
    return "\n".join(lines)


def _check(args) -> int:
    from ..api import load_certificate
    from ..certify.check import check

    cert = load_certificate(args.cert)
    t0 = time.perf_counter()
    res = check(cert)
    if args.json:
        print(json.dumps({"valid": res.valid, "reason": res.reason, "verdict": cert.verdict.value,
                          "seconds": round(time.perf_counter() - t0, 6)}))
    else:
        state = "VALID" if res.valid else "INVALID"
        print(f"{args.cert}: {state} certificate of '{cert.verdict.value}': {res.reason} ({res.seconds:.4f} s)")
    return EXIT_VALID if res.valid else EXIT_INVALID


def _export(args) -> int:
    import pulp

    from .. import solver
    from ..layer import formulation
    from ..io.load import load_network
    from ..layer.search import LayerData

    net = load_network(args.file)
    if not net.is_single_relu_layer:
        raise InputError(args.file, "export-milp takes a single ReLU layer")
    if not args.out.endswith((".lp", ".mps")):
        raise InputError(args.out, "output must end in .lp or .mps")
    data = LayerData(net.layers[0])
    model = formulation.witness_milp(data.Wf, data.bf)
    prob, _ = solver.to_pulp(model)
    _check_writable(args.out)
    if args.out.endswith(".lp"):
        prob.writeLP(args.out)
    else:
        prob.writeMPS(args.out)
    print(f"wrote {args.out}: {model.num_cols} columns, {model.A.shape[0]} rows (pulp {pulp.__version__})")
    return 0


def _with_limits(args, command) -> int:
    """Run a command with the --limit changes in force (docs/cli.md, Limits)."""
    from ..numbers import Limits, raised_limits

    changes = {}
    for item in args.limit:
        name, _, value = item.partition("=")
        if name not in Limits.names() or not value.isascii() or not value.isdigit() or len(value) > 18:
            raise InputError("--limit", f"{item[:60]!r}: expected NAME=N with NAME one of {', '.join(Limits.names())} "
                                        "and N a positive integer")
        changes[name] = int(value)
    with raised_limits(**changes):
        return command(args)


def _check_writable(path: str) -> None:
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise InputError(path, "cannot write here: the directory does not exist")


def _write_json(path: str, obj) -> None:
    """Write OUT whole or not at all: a temporary file in OUT's folder, then a rename.

    A SIGTERM, SIGINT or crash while writing leaves OUT as it was (absent, or
    the previous file), never a partial certificate; at worst a hidden
    ``.OUT.*.tmp`` file stays behind.  The rename is atomic on POSIX and on
    Windows (os.replace) when both names are on one file system, which the
    shared folder ensures.
    """
    import secrets

    folder, name = os.path.split(os.path.abspath(path))
    tmp = None
    try:
        # os.open with mode 0o666 (not mkstemp's 0o600): the certificate gets
        # the permissions the user's umask gives any new file, as before.
        candidate = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        tmp = candidate
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, separators=(",", ":"))
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise InputError(path, f"cannot write: {e.strerror}") from None
    finally:
        if tmp is not None:  # interrupted or failed: remove the partial temporary file
            try:
                os.unlink(tmp)
            except OSError:
                pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
