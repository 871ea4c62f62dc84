"""VNN-COMP conventions: the result file, and ``exact-inj batch`` over a
benchmark folder (docs/cli.md, "VNN-COMP conventions").

A VNN-COMP benchmark folder holds ``instances.csv``, one instance a line:
``onnx path, vnnlib path, timeout in seconds`` (paths relative to the
folder; each file may be gzipped, as the competition's repositories ship
them).  ``batch`` decides each network's injectivity on its property's
input box and writes one row per instance, resumably: a row already in
``results.csv`` is not decided again.

The question differs from the competition's: VNN-COMP asks whether some
input in the box violates the output property; exact-inj asks whether two
inputs in the box collide.  The result file keeps the competition's words
with this meaning: ``unsat`` = injective on the box (no colliding pair),
``sat`` = a colliding pair exists (given, with their common output),
``timeout`` = the time limit stopped the decision, ``unknown`` = undecided
for another reason (a size limit, a node limit), ``error`` = the instance
could not be read.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from fractions import Fraction

from ..api import verify
from ..certify.schema import Status
from ..io.load import as_domain, load_network
from ..io.vnnlib import load_vnnlib
from ..errors import InputError
from ..numbers import fraction_to_str
from ..run import work_done
from ..verdict import Verdict, approx

__all__ = ["RESULT_COLUMNS", "TIMEOUT_FRACTION", "add_parser", "decimal_text", "read_instances", "result_text", "run",
           "write_atomic", "write_results"]

# An unknown that used at least this share of its time limit is a timeout.
TIMEOUT_FRACTION = 0.95

RESULT_COLUMNS = ("onnx", "vnnlib", "timeout", "result", "verdict", "seconds", "route", "certificate", "reason")


def decimal_text(v: Fraction) -> str:
    """A value as the competition's files write it: the exact decimal when it
    has one, else the nearest double (the exact value is in the certificate).

    >>> decimal_text(Fraction(1, 4)), decimal_text(Fraction(-3)), decimal_text(Fraction(1, 3))
    ('0.25', '-3', '0.3333333333333333')
    """
    d = v.denominator
    k = 0
    while d % 2 == 0:
        d //= 2
        k += 1
    j = 0
    while d % 5 == 0:
        d //= 5
        j += 1
    if d != 1:
        return repr(approx(v))
    places = max(k, j)
    if places == 0:
        return fraction_to_str(v)
    scaled = abs(v.numerator) * (10**places // v.denominator)
    digits = str(scaled).rjust(places + 1, "0")
    sign = "-" if v < 0 else ""
    return f"{sign}{digits[:-places]}.{digits[-places:]}".rstrip("0").rstrip(".")


def _assignment(x, out) -> str:
    items = [f"(X_{i} {decimal_text(v)})" for i, v in enumerate(x)] + [f"(Y_{j} {decimal_text(v)})" for j, v in enumerate(out)]
    return "(" + "\n ".join(items) + ")"


def result_text(net, verdict: Verdict, time_limit: float | None = None) -> str:
    """The VNN-COMP result file for this verdict.

    >>> from exact_inj.model import Layer, Network
    >>> from exact_inj.certify.schema import Certificate, Witness
    >>> from exact_inj.model import Domain
    >>> net = Network((Layer.from_rows([[1], [-1]], [-1, -1]),))
    >>> w = Witness((Fraction(-1),), (Fraction(1, 2),))
    >>> v = Verdict(Status.NOT_INJECTIVE, 0.1, "instant", "", Certificate(net, Domain(), Status.NOT_INJECTIVE, w))
    >>> print(result_text(net, v))
    sat
    ((X_0 -1)
     (Y_0 0)
     (Y_1 0))
    ((X_0 0.5)
     (Y_0 0)
     (Y_1 0))
    <BLANKLINE>
    """
    if verdict.status is Status.INJECTIVE:
        return "unsat\n"
    if verdict.status is Status.NOT_INJECTIVE:
        w = verdict.witness
        out = net.evaluate(w.x)
        return f"sat\n{_assignment(w.x, out)}\n{_assignment(w.y, out)}\n"
    limit = time_limit if time_limit is not None else verdict.info.get("time_limit")
    timed_out = "abandoned" in verdict.info or (limit is not None and verdict.seconds >= TIMEOUT_FRACTION * limit)
    return "timeout\n" if timed_out else "unknown\n"


def write_results(path: str, net, verdict: Verdict, time_limit: float | None = None) -> None:
    write_atomic(path, result_text(net, verdict, time_limit))


def write_atomic(path: str, text: str) -> None:
    """Write via a temporary file in the same folder, so a killed run leaves
    the old file or the new one, never half of one."""
    d = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".exact-inj-")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        raise InputError(path, f"cannot write: {e.strerror or e}") from None


# ------------------------------------------------------------------ batch


def read_instances(folder: str) -> list[tuple[str, str, float]]:
    """(onnx, vnnlib, timeout) per line of FOLDER/instances.csv (paths as written).

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = open(os.path.join(d, "instances.csv"), "w").write("onnx/a.onnx,vnnlib/p.vnnlib,116\\n")
    ...     read_instances(d)
    [('onnx/a.onnx', 'vnnlib/p.vnnlib', 116.0)]
    """
    path = os.path.join(folder, "instances.csv")
    if not os.path.isfile(path):
        raise InputError(folder, "no instances.csv here (a VNN-COMP benchmark folder has one: onnx,vnnlib,timeout)")
    rows = []
    with open(path, newline="") as f:
        for k, row in enumerate(csv.reader(f), 1):
            row = [c.strip() for c in row]
            if not row or not any(row) or row[0].startswith("#"):
                continue
            if len(row) != 3:
                raise InputError(path, f"line {k}: expected onnx,vnnlib,timeout, got {len(row)} fields")
            try:
                t = float(row[2])
            except ValueError:
                raise InputError(path, f"line {k}: timeout {row[2][:20]!r} is not a number") from None
            if not t > 0 or t == float("inf"):
                raise InputError(path, f"line {k}: timeout must be a positive finite number of seconds")
            rows.append((row[0], row[1], t))
    if not rows:
        raise InputError(path, "lists no instances")
    return rows


def _locate(folder: str, rel: str) -> str:
    """The file, or its gzipped twin (the competition ships ``.onnx.gz``)."""
    p = os.path.join(folder, rel)
    if not os.path.exists(p) and os.path.exists(p + ".gz"):
        return p + ".gz"
    return p


def _done(path: str) -> dict[tuple[str, str], dict]:
    if not os.path.exists(path):
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and set(RESULT_COLUMNS) - set(rows[0]):
        raise InputError(path, "not a results.csv written by exact-inj batch; use another --out")
    return {(r["onnx"], r["vnnlib"]): r for r in rows}


def batch(folder: str, out: str, *, scale: float = 1.0, progress=None, milp: str = "highs") -> list[dict]:
    """Decide every instance of a benchmark folder; rows of results.csv."""
    instances = read_instances(folder)
    os.makedirs(os.path.join(out, "certificates"), exist_ok=True)
    os.makedirs(os.path.join(out, "results"), exist_ok=True)
    table = os.path.join(out, "results.csv")
    done = _done(table)
    say = progress or (lambda s: None)
    new_file = not os.path.exists(table)
    rows = []
    todo = sum(1 for onnx, vnnlib, _ in instances if (onnx, vnnlib) not in done)  # a resumed run skips the rest
    decided, started = 0, time.perf_counter()
    with open(table, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=RESULT_COLUMNS)
        if new_file:
            writer.writeheader()
        for k, (onnx, vnnlib, timeout) in enumerate(instances):
            if (onnx, vnnlib) in done:
                rows.append(done[(onnx, vnnlib)])
                continue
            limit = timeout * scale
            t0 = time.perf_counter()
            row = {"onnx": onnx, "vnnlib": vnnlib, "timeout": f"{timeout:g}", "certificate": "", "route": ""}
            try:
                net = load_network(_locate(folder, onnx))
                domain = as_domain(load_vnnlib(_locate(folder, vnnlib)), net.input_dim, where=vnnlib)
                left = limit - (time.perf_counter() - t0)
                v = (verify(net, time_limit=left, milp=milp, domain=domain) if left > 0 else
                     Verdict(Status.UNKNOWN, time.perf_counter() - t0, "limit", "the time limit was used up reading",
                             None, {"time_limit": limit}))
                seconds = time.perf_counter() - t0
                result = result_text(net, v, limit).split("\n", 1)[0]
                stem = f"{k:04d}"
                write_atomic(os.path.join(out, "results", stem + ".txt"), result_text(net, v, limit))
                if v.certificate is not None:
                    cert = os.path.join("certificates", stem + ".json")
                    write_atomic(os.path.join(out, cert), json.dumps(v.certificate.to_json(), separators=(",", ":"))
                                  + "\n")
                    row["certificate"] = cert
                row.update(result=result, verdict=v.status.value, seconds=f"{seconds:.3f}", route=v.route,
                           reason=v.reason[:300])
            except InputError as e:
                row.update(result="error", verdict="error", seconds=f"{time.perf_counter() - t0:.3f}",
                           reason=str(e)[:300])
            writer.writerow(row)
            f.flush()
            rows.append(row)
            decided += 1
            say(f"[{k + 1}/{len(instances)}] {onnx} {vnnlib}: {row['result']} ({row['seconds']} s); "
                f"{work_done(decided, todo, time.perf_counter() - started, 'instances decided')}")
    return rows


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "batch",
        help="decide every instance of a VNN-COMP benchmark folder (instances.csv), resumably",
        description="Read FOLDER/instances.csv (onnx,vnnlib,timeout per line; files may be gzipped) and decide "
        "each network's injectivity on its property's input box, within the instance's timeout. Writes "
        "OUT/results.csv (one row per instance: result, verdict, seconds, route, certificate path), "
        "OUT/results/NNNN.txt (VNN-COMP result files: unsat = injective on the box, sat = a colliding pair, "
        "timeout, unknown) and OUT/certificates/. A file that cannot be read becomes a row with result "
        "'error' and the run goes on. Re-running with the same OUT skips the instances already in results.csv.",
    )
    p.add_argument("folder", metavar="FOLDER", help="benchmark folder holding instances.csv")
    p.add_argument("--out", metavar="DIR", default="batch-out", help="output folder (default: batch-out)")
    p.add_argument("--timeout-scale", metavar="F", type=float, default=1.0,
                   help="multiply every instance's timeout by F (default: 1)")
    p.add_argument("--milp", choices=("highs", "cbc", "none"), default="highs",
                   help="solver for the side witness search (default: highs)")
    p.add_argument("--json", action="store_true", help="print the rows as one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def run(args) -> int:
    """Carry out ``exact-inj batch``: exit 0, or 2 when some instance could not be read."""
    if not args.timeout_scale > 0:
        raise InputError("--timeout-scale", "must be a positive number")
    progress = None if args.quiet else (lambda msg: print(f"exact-inj batch: {msg}", file=sys.stderr, flush=True))
    rows = batch(args.folder, args.out, scale=args.timeout_scale, progress=progress, milp=args.milp)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["result"]] = counts.get(r["result"], 0) + 1
    if args.json:
        print(json.dumps({"folder": args.folder, "out": args.out, "counts": counts, "rows": rows}))
    else:
        print(f"{args.folder}: {len(rows)} instances: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
              + f"; table in {os.path.join(args.out, 'results.csv')}")
    return 2 if counts.get("error") else 0
