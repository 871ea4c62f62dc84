"""``exact-inj invert`` (docs/inverse.md); its answers are re-checked by ``exact-inj check``."""

from __future__ import annotations

import argparse
import json
import sys
from fractions import Fraction

from ..errors import InputError
from ..io import load_network
from ..io.json import load_json_file
from ..network.inverse import InverseResult, invert
from ..numbers import fraction_to_str, parse_exact
from .argtypes import positive_float
from .app import check_writable, parse_domain, write_json

__all__ = ["add_parser", "format_result", "read_vector_file", "run"]


def _parse_vector(text: str, what: str) -> list[Fraction]:
    try:
        return [parse_exact(t.strip(), f"{what}[{i}]") for i, t in enumerate(text.split(","))]
    except (ValueError, ZeroDivisionError) as e:
        raise InputError(what, str(e)) from None


def read_vector_file(path: str, length: int | None = None, what: str = "entries") -> list[Fraction]:
    """The numbers of a vector file for ``--y-file`` / ``--from-input-file``:
    a JSON list of exact numbers (a JSON number is the decimal it spells,
    a string may be "p/q"), or the "y" list of a JSON object (an invert
    answer), or a NumPy .npy array of floats or integers (each float's exact
    binary value; any shape, read in C order).  Bad content raises
    InputError naming the file; so does a .npy array of other than
    ``length`` numbers, before any of them is converted.

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "y.json")
    ...     _ = open(p, "w").write('[0.1, "-3/7", 2]')
    ...     read_vector_file(p)
    [Fraction(1, 10), Fraction(-3, 7), Fraction(2, 1)]
    """
    if path.endswith(".npy"):
        import numpy as np  # noqa: PLC0415 - only for .npy files

        a = _npy(path)
        if length is not None and a.size != length:
            raise InputError(path, f"{a.size} numbers for {length} {what}")
        a = np.asarray(a).ravel()
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise InputError(path, f"entry {int(np.flatnonzero(~np.isfinite(a))[0])} is not finite")
        return [Fraction(v) for v in a.tolist()]
    obj = load_json_file(path)
    if isinstance(obj, dict) and "y" in obj:
        obj = obj["y"]
    if not isinstance(obj, list):
        raise InputError(path, "expected a JSON list of numbers (or an object with a list \"y\")")
    return [parse_exact(v, f"[{i}]", path) for i, v in enumerate(obj)]


def _npy(path: str):
    """The .npy array, memory-mapped (its header read and its type checked,
    none of its data): a wrong file is refused before a big network loads,
    and a wrong length before millions of numbers are converted."""
    import numpy as np  # noqa: PLC0415 - only for .npy files

    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError, MemoryError) as e:
        raise InputError(path, f"not a readable .npy array ({type(e).__name__}: {str(e)[:80]})") from None
    if a.dtype.kind not in "fiu" or (a.dtype.kind == "f" and a.dtype.itemsize > 8):
        raise InputError(path, f"a .npy vector must hold float16/32/64 or integers, not {a.dtype}")
    return a


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``invert`` on the CLI's subparsers object (docs/inverse.md)."""
    p = subparsers.add_parser(
        "invert",
        help="the exact preimage of an output y: empty, one point, or a set, with a certificate",
        description="Compute the exact preimage {x in D : N(x) = y} of the network in FILE: 'empty', 'point' or "
                    "'set', each checked by the solver-free checker before it is printed (docs/inverse.md).",
    )
    p.add_argument("file", metavar="FILE", help="network file (.json, .npz, .onnx, .pt/.safetensors)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--y", metavar="Y1,Y2,...", help="the output, exact numbers such as 3/7 or 0.25")
    g.add_argument("--from-input", metavar="X1,X2,...", help="use y = N(x) for this input (a round trip)")
    g.add_argument("--y-file", metavar="PATH",
                   help="the output from a file: a JSON list of exact numbers (or an object with a list \"y\"), "
                        "or a .npy array (each float's exact value); for outputs too long for a command line")
    g.add_argument("--from-input-file", metavar="PATH", help="as --from-input, the input read as for --y-file")
    p.add_argument("--domain", metavar="D", default="reals", help="input domain, as for verify (default: reals)")
    p.add_argument("--time-limit", metavar="S", type=positive_float, default=60.0,
                   help="seconds before answering 'unknown' (default: 60)")
    p.add_argument("--max-pieces", metavar="K", type=int, default=64,
                   help="list at most K pieces of a set before stopping (default: 64)")
    p.add_argument("--certificate", metavar="OUT",
                   help="write the self-contained answer (with the network) to OUT; `exact-inj check OUT` re-checks it")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    return p


EXIT = {"empty": 0, "point": 0, "set": 0, "unknown": 3}


def run(args) -> int:
    """Carry out ``exact-inj invert``; exit 0 when answered, 3 when unknown."""
    # The vector and the certificate's place first: a malformed vector, or
    # a folder that does not exist, is reported before a big network loads
    # (a .npy file by its header: its numbers once their count is known).
    if args.certificate:
        check_writable(args.certificate)
    from_input = args.from_input is not None or args.from_input_file is not None
    path = args.from_input_file if from_input else args.y_file
    if args.from_input is not None or args.y is not None:
        where = "--from-input" if from_input else "--y"
        vec = _parse_vector(args.from_input if from_input else args.y, where)
    elif path.endswith(".npy"):
        where, vec = path, None
        _npy(path)
    else:
        where, vec = path, read_vector_file(path)
    net = load_network(args.file)
    domain = parse_domain(args.domain, net.input_dim)
    if vec is None:
        vec = read_vector_file(path, *((net.input_dim, "inputs") if from_input else (net.output_dim, "outputs")))
    if from_input:
        x = vec
        if len(x) != net.input_dim:
            raise InputError(where, f"{len(x)} numbers for {net.input_dim} inputs")
        y = net.evaluate(x)
    else:
        y = vec
        if len(y) != net.output_dim:
            raise InputError(where, f"{len(y)} numbers for {net.output_dim} outputs")
    say = None if args.quiet else (lambda m: print(f"exact-inj: {m}", file=sys.stderr, flush=True))
    res = invert(net, y, domain, time_limit=args.time_limit, max_pieces=args.max_pieces, progress=say)
    if args.certificate:
        # Whole or not at all, .gz compressed when so named, and fast for a
        # full-size generator's embedded network (write_json: json.dumps, not
        # json.dump's pure-Python encoder).
        write_json(args.certificate, res.to_json(include_network=True))
    if args.json:
        out = res.to_json()
        out["file"] = args.file
        print(json.dumps(out))
    else:
        print(format_result(args.file, res))
    return EXIT[res.preimage]


def format_result(path: str, res: InverseResult) -> str:
    def vec(p):
        s = ", ".join(fraction_to_str(v) for v in p[:24])
        return f"({s}{', ...' if len(p) > 24 else ''})"

    on = "" if res.domain.kind == "reals" else f" on {res.domain.describe()}"
    lines = [f"{path}: preimage of y = {vec(res.y)}{on}: {res.preimage.upper()}  ({res.seconds:.3f} s)",
             f"  why: {res.reason}"]
    for i, p in enumerate(res.points[:4]):
        lines.append(f"  x{i} = {vec(p)}")
    if len(res.points) > 4:
        lines.append(f"  ... {len(res.points) - 4} more points")
    if res.pieces:
        lines.append(f"  pieces: {len(res.pieces)} ({'complete' if res.complete else 'so far'})")
    if "check" in res.stats:
        lines.append(f"  checked exactly: {res.stats['check']}")
    st = res.stats
    if st.get("route") == "peel":
        lines.append(f"  route: layer by layer (peel) through {st.get('layers')} layers, no case split")
        return "\n".join(lines)
    lines.append(f"  search: {st.get('nodes')} nodes, {st.get('leaves')} leaves ({st.get('infeasible')} infeasible, "
                 f"{st.get('pins')} pins, {st.get('regions')} regions), {st.get('lps')} LPs, "
                 f"{st.get('exact_fallbacks')} exact fallbacks")
    return "\n".join(lines)
