"""The `exact-inj` command line (docs/cli.md is the reference).

stdout carries results only (exactly one JSON object with --json); progress
and diagnostics go to stderr.  Exit codes are part of the contract.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time

from .. import __version__
from .argtypes import pos_int
from .argtypes import positive_float as _positive_float
from ..errors import InputError
from ..errors import OperatorTooLarge
from ..certify.schema import Status
from ..io.load import as_domain, parse_domain
from .report import human, plural

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
  invert: 0 answered (empty, point or set), 3 unknown
  any:    2 bad input or usage, 4 internal error

examples:
  exact-inj verify instances/lemma1_counterexample.json
  exact-inj verify instances/fig2_not_injective.json --json --certificate cert.json --time-limit 60
  exact-inj verify instances/conv/dcgan_periodic_32x32.json
  exact-inj verify net.onnx prop.vnnlib --timeout 116 --results out.txt     (VNN-COMP style)
  exact-inj batch BENCHMARK_FOLDER --out batch-out
  exact-inj check cert.json
  exact-inj invert instances/networks/b_minus_b_difference.json --from-input 1/2,-3
"""


class _Parser(argparse.ArgumentParser):
    """No abbreviated options (``--time`` for ``--time-limit`` would let a
    typo pass silently as another option), and a suggestion for a mistyped one."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # one line, documented code
        import difflib

        known = [o for a in self._actions for o in a.option_strings]
        for a in self._actions:  # the top parser reports its subcommands' unknown options
            choices = getattr(a, "choices", None)
            for sub in (choices.values() if isinstance(choices, dict) else ()):
                if isinstance(sub, argparse.ArgumentParser):
                    known += [o for b in sub._actions for o in b.option_strings]
        for word in message.replace(",", " ").split():
            if word.startswith("--") and word not in known:
                close = difflib.get_close_matches(word.split("=")[0], known, n=1)
                if close:
                    message += f" (did you mean {close[0]}?)"
                    break
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


# Subcommands whose parsers live in their own modules (studies/, cli/invert.py,
# cli/injectivize.py): importing those takes about 0.1 s, which `verify` and
# `check` do not pay (see _parser).
_OTHER_COMMANDS = ("compare", "batch", "stability", "experiment", "construct", "invert", "injectivize")


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; for ``command`` verify, check or export-milp, the
    other subcommands only by name (argparse names them in its errors), without
    importing their modules."""
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
    v.add_argument("file", metavar="FILE",
                   help="network file (.json, .npz, .onnx, .pt/.safetensors; any of them gzipped as .gz; '-' reads "
                        "JSON or NPZ from stdin)")
    v.add_argument("prop", metavar="PROP", nargs="?", default=None,
                   help="optional VNN-LIB property (.vnnlib or .vnnlib.gz), VNN-COMP style: its input box is the "
                        "domain; its output constraints are ignored (and reported)")
    v.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    v.add_argument("--certificate", metavar="OUT", help="write the self-contained certificate to OUT")
    v.add_argument("--time-limit", "--timeout", dest="time_limit", metavar="S", type=_positive_float, default=300.0,
                   help="seconds, counted from the start of the command (reading the file included), before "
                        "answering 'unknown'; honoured within 1 s (docs/cli.md). --timeout is VNN-COMP's name "
                        "(default: 300)")
    v.add_argument("--max-nodes", metavar="N", type=int, default=None,
                   help="stop the proof search after N tree nodes (a resource limit; default: none)")
    v.add_argument("--milp", choices=("highs", "cbc", "none"), default="highs",
                   help="solver for the side witness search: HiGHS (default), PuLP's CBC, or none")
    v.add_argument("--domain", metavar="D", default=None,
                   help="input domain: 'reals' (all of R^n, default), 'orthant' (x >= 0), "
                        "'box:L1:U1,L2:U2,...' (exact numbers such as -1/2 or 0.25), 'box:FILE' "
                        "(JSON {\"lower\": [...], \"upper\": [...]}), or 'vnnlib:FILE' (the input box of a "
                        "VNN-LIB property; a union of boxes is refused as not convex)")
    v.add_argument("--allow-empty-domain", action="store_true",
                   help="accept an empty box (some lower bound above its upper bound; refused by default as a "
                        "likely typo, since every network is injective on the empty set)")
    v.add_argument("--results", metavar="FILE",
                   help="also write VNN-COMP's result file: unsat (injective), sat with the colliding pair, "
                        "timeout or unknown (docs/cli.md, \"VNN-COMP conventions\")")
    v.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    v.add_argument("--workers", metavar="K", type=pos_int, default=None,
                   help="run a layer's proof search in K processes (default: all cores; with K > 1 the MILP side "
                        "search is not started; the certificate is checked the same way)")
    v.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="run a layer's proof search on the Dask cluster at ADDRESS instead of local processes "
                        "(needs the [dask] extra; --workers is then unused)")
    v.add_argument("--property", choices=("injective", "surjective", "bijective"), default="injective",
                   help="what to decide (default: injective); surjective and bijective onto R^p only in the cheap "
                        "exact cases, else unknown (docs/theory.md, section 13)")
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
    c.add_argument("--workers", metavar="K", type=pos_int, default=None,
                   help="processes for a large case-split tree (default: all cores; the same checks "
                   "either way, docs/certificates.md)")
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

    if command in ("verify", "check", "export-milp"):
        for name in _OTHER_COMMANDS:
            sub.add_parser(name)
        return p

    from ..studies import construct
    from ..studies.experiment import cli as experiment
    from ..studies.compare import add_parser as _add_compare
    from ..studies.stability.cli import add_parser as _add_stability
    from ..studies.batch import add_parser as _add_batch

    _add_compare(sub)
    _add_batch(sub)
    _add_stability(sub)
    experiment.add_parser(sub)
    construct.add_parser(sub)
    from . import invert

    invert.add_parser(sub)
    from . import injectivize

    injectivize.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    args = _parser(words[0] if words else None).parse_args(words)
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
        if args.command == "batch":
            from ..studies.batch import run as _run_batch

            return _run_batch(args)
        if args.command == "compare":
            from ..studies.compare import run as _run_compare

            return _run_compare(args)
        if args.command == "invert":
            from . import invert

            return invert.run(args)
        if args.command == "injectivize":
            from . import injectivize

            return injectivize.run(args)
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


def _verify(args) -> int:
    from ..api import verify
    from ..io.load import load_network
    from ..io.vnnlib import load_vnnlib
    from ..studies.batch import write_results

    t_start = time.perf_counter()
    notes: list[str] = []
    for out in (args.certificate, args.results):
        if out:
            check_writable(out)
    progress = None if (args.quiet or args.json) else (lambda msg: print(f"exact-inj: {msg}", file=sys.stderr,
                                                                         flush=True))
    # Reading counts against the limit, and a huge file could take longer
    # than it: the reader runs under the same watchdog as the decision.
    net = _read_within(lambda: load_network(args.file), args.file, args.time_limit, progress)
    if net is None:
        msg = (f"time limit of {args.time_limit:g} s reached while reading {args.file}; nothing was decided")
        if args.json:
            print(json.dumps({"verdict": "unknown", "seconds": round(time.perf_counter() - t_start, 6),
                              "route": "limit", "reason": msg, "file": args.file,
                              "info": {"tried": [], "time_limit": args.time_limit}}))
        else:
            print(f"{args.file}: UNKNOWN  ({msg})")
        if args.results:
            from ..studies.batch import write_atomic

            write_atomic(args.results, "timeout\n")
        _exit_now(EXIT_UNKNOWN)
    if args.prop is not None:
        if args.domain is not None:
            raise InputError(args.prop, "give the domain either as PROP or as --domain, not both")
        region = load_vnnlib(args.prop)
        domain = as_domain(region, net.input_dim, where=args.prop, allow_empty=args.allow_empty_domain)
        k = getattr(region, "output_asserts", 0)
        if k:
            notes.append(f"{args.prop}: its input box is the domain; {plural(k, 'output constraint')} ignored "
                         "(injectivity does not read the property's output part)")
    else:
        domain = parse_domain(args.domain or "reals", net.input_dim, allow_empty=args.allow_empty_domain)
    if args.property != "injective":
        from .property import run_property

        return run_property(args, net, domain, lambda: verify(
            net, time_limit=args.time_limit, max_nodes=args.max_nodes, milp=args.milp, progress=progress,
            domain=domain, allow_empty_domain=args.allow_empty_domain, clock_start=t_start), write_json)
    # The limit counts from the start of the command: reading a large file
    # is part of what the user waits for.
    verdict = verify(net, time_limit=args.time_limit, max_nodes=args.max_nodes, milp=args.milp, progress=progress,
                     domain=domain, allow_empty_domain=args.allow_empty_domain, clock_start=t_start,
                     workers=args.workers, scheduler=args.scheduler)
    if args.certificate:
        if verdict.certificate is None:
            print(f"exact-inj: no certificate written to {args.certificate}: the verdict is unknown",
                  file=sys.stderr)
        else:
            write_json(args.certificate, verdict.certificate.to_json(streamed=True))
    if args.results:
        write_results(args.results, net, verdict)
    if args.json:
        out = verdict.to_json()
        out["file"] = args.file
        if args.certificate and verdict.certificate is not None:
            out["certificate_file"] = args.certificate
        if notes:
            out["notes"] = notes
        print(json.dumps(out))
    else:
        print(human(args.file, net, verdict, args.certificate, notes))
    if "abandoned" in verdict.info:
        _exit_now(VERDICT_EXIT[verdict.status])
    return VERDICT_EXIT[verdict.status]


def _exit_now(code: int) -> None:
    """Exit at once, without waiting for an abandoned worker thread: it may
    be inside a solver's C++ code, which aborts the process if the
    interpreter shuts down around it (the answer is printed already)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _read_within(read, path: str, limit: float, progress):
    """read() in a worker thread; None if it has not finished by limit + GRACE."""
    import contextvars
    import threading

    from ..run import FIRST_REPORT, GRACE, REPORT_EVERY

    box: dict = {}

    def work() -> None:
        try:
            box["value"] = read()
        except BaseException as e:  # re-raised here, in the main thread
            box["error"] = e

    t0 = time.perf_counter()
    # In a copy of this context, so that the --limit values reach the reader.
    worker = threading.Thread(target=contextvars.copy_context().run, args=(work,), name="exact-inj-read",
                              daemon=True)
    worker.start()
    next_report = t0 + FIRST_REPORT
    while worker.is_alive():
        now = time.perf_counter()
        if now >= t0 + limit + GRACE:
            return None
        # Without progress lines there is nothing to wake up for before the
        # limit (waking at a report time that has passed would spin the loop,
        # taking the reading thread's CPU and the GIL: 12 s of a 41 MB read).
        wake = t0 + limit + GRACE if progress is None else min(next_report, t0 + limit + GRACE)
        worker.join(max(wake - now, 0.0))
        now = time.perf_counter()
        if worker.is_alive() and progress is not None and now >= next_report:
            progress(f"[{now - t0:6.1f}s] reading {path}: no estimate of the work left; "
                     f"{max(limit - (now - t0), 0):.0f} s left of the {limit:.3g} s limit")
            next_report = now + REPORT_EVERY
    if "error" in box:
        raise box["error"]
    return box["value"]


def _check(args) -> int:
    from ..api import certificate_from_document
    from ..certify.check import check
    from ..certify.inverse import FORMAT as INVERSE_FORMAT
    from ..certify.inverse import check_inverse_file, known_version
    from ..numbers import quote
    from ..io import load_json_file
    from ..io.spill import load_json_spilled

    # Long packed "data" strings stay in temporary files and the tree is
    # checked from there a window at a time (docs/certificates.md, "Checked
    # as a stream"); a preimage answer has no packed lists, and one with a
    # long "data" string anyway is read again whole for its own checker.
    spilled: list = []
    obj = load_json_spilled(args.cert, spilled)
    if isinstance(obj, dict) and obj.get("format") == INVERSE_FORMAT:
        if spilled:
            obj = load_json_file(args.cert)
        # A preimage answer written by `invert --certificate`: its own checker.
        if not known_version(obj):
            raise InputError(args.cert, f"unsupported preimage answer version {quote(obj.get('version'))} "
                                        "(this exact-inj reads version 1)")
        ok, why = check_inverse_file(obj)
        if args.json:
            print(json.dumps({"valid": ok, "reason": why, "preimage": obj.get("preimage")}))
        else:
            # quote: the "preimage" field may be anything, a 5000-digit integer included.
            print(f"{args.cert}: {'VALID' if ok else 'INVALID'} preimage answer ({quote(obj.get('preimage'))}): {why}")
        return EXIT_VALID if ok else EXIT_INVALID
    from ..certify.tree import check_workers
    from ..api import default_workers

    # The document read above, not the file again: a generator's certificate
    # is 36 MB of JSON, about 10 s to parse.
    cert = certificate_from_document(obj, args.cert)
    t0 = time.perf_counter()
    with check_workers(args.workers or default_workers()):
        res = check(cert)
    if args.json:
        print(json.dumps({"valid": res.valid, "reason": res.reason, "verdict": cert.verdict.value,
                          "seconds": round(time.perf_counter() - t0, 6)}))
    else:
        state = "VALID" if res.valid else "INVALID"
        print(f"{args.cert}: {state} certificate of '{cert.verdict.value}': {res.reason} ({res.seconds:.4f} s)")
    return EXIT_VALID if res.valid else EXIT_INVALID


def _export(args) -> int:
    from importlib.metadata import version

    from .. import solver
    from ..layer import formulation
    from ..io.load import load_network
    from ..layer.data import LayerData

    net = load_network(args.file)
    if not net.is_single_relu_layer:
        raise InputError(args.file, "export-milp takes a single ReLU layer")
    if not args.out.endswith((".lp", ".mps")):
        raise InputError(args.out, "output must end in .lp or .mps")
    data = LayerData(net.layers[0])
    model = formulation.witness_milp(data.Wf, data.bf)
    prob, _ = solver.to_pulp(model)
    check_writable(args.out)
    if args.out.endswith(".lp"):
        prob.writeLP(args.out)
    else:
        prob.writeMPS(args.out)
    print(f"wrote {args.out}: {model.num_cols} columns, {model.A.shape[0]} rows (pulp {version('pulp')})")
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


def check_writable(path: str) -> None:
    """Refuse OUT at once (InputError) when its folder does not exist, before any work."""
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise InputError(path, "cannot write here: the directory does not exist")


# Characters written at a time: a certificate's text is written in pieces of
# this size (under 64 MB more memory while it is encoded).
_WRITE_CHUNK = 1 << 24


def write_json(path: str, obj) -> None:
    """Write OUT whole or not at all: a temporary file in OUT's folder, then a rename.

    A SIGTERM, SIGINT or crash while writing leaves OUT as it was (absent, or
    the previous file), never a partial certificate; at worst a hidden
    ``.OUT.*.tmp`` file stays behind.  The rename is atomic on POSIX and on
    Windows (os.replace) when both names are on one file system, which the
    shared folder ensures.  A name ending in ``.gz`` gets gzip-compressed
    JSON, streamed as it is written (every JSON reader here reads it back).
    """
    import secrets

    from ..io.spill import dump_json

    folder, name = os.path.split(os.path.abspath(path))
    tmp = None
    try:
        # os.open with mode 0o666 (not mkstemp's 0o600): the certificate gets
        # the permissions the user's umask gives any new file, as before.
        candidate = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        tmp = candidate
        # dump_json runs json.dumps (json.dump to a file runs the pure-Python
        # encoder: 15 s for a generator's 36 MB certificate, against 0.4 s)
        # and writes, or compresses, the text in pieces, streaming any long
        # string kept in a temporary file (a TextSource) from its pieces.
        if str(path).endswith(".gz"):
            with os.fdopen(fd, "wb") as raw:
                # GzipFile leaves a file object it was given open: raw is
                # flushed and synced after the gzip trailer is written.
                with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6) as gz:
                    dump_json(obj, gz.write, piece=_WRITE_CHUNK)
                    gz.write(b"\n")
                raw.flush()
                os.fsync(raw.fileno())
        else:
            with os.fdopen(fd, "wb") as f:
                dump_json(obj, f.write, piece=_WRITE_CHUNK)
                # The same bytes as the text file this once was, whose "\n"
                # became os.linesep (the JSON itself holds no line break).
                f.write(os.linesep.encode("ascii"))
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
