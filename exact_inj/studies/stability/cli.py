"""``exact-inj stability``: certify a layer's stability constants, or check a
stability certificate (docs/stability.md)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from decimal import Decimal
from fractions import Fraction

from ...certify.stability import check_stability
from ...cli.argtypes import positive_float
from ...errors import InputError
from ...io.json import load_json_file
from ...io.load import load_network
from ...numbers import fraction_to_str
from .bounds import stability
from .result import StabilityResult

__all__ = ["add_parser", "format_result", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``stability`` on the CLI's subparsers object."""
    p = subparsers.add_parser(
        "stability",
        help="certified lower Lipschitz constants of x -> ReLU(Wx + b) (paper's Theorem 3 and the 1/2 constant)",
        description="Certify min over the cells of sigma_min(W_A(x)), the constants C(W) = (2m)^(-1/2) min "
        "sigma_min (the paper's Theorem 3, stated bias-free) and (1/2) min sigma_min (valid with bias), and the "
        "upper bound 1/C on the inverse Lipschitz constant. Every figure is a rational lower bound (upper for "
        "1/C) proved exactly: a case-split tree covering every cell, exact Motzkin multipliers and exact LDL^T "
        "factorisations (docs/stability.md). Exit 0 complete, 1 not injective (min sigma_min = 0), 3 limit "
        "reached (partial, still guaranteed), 2 bad input; with --check: 0 valid, 1 invalid.",
    )
    p.add_argument("file", metavar="FILE", help="layer file (.json or .npz); with --check, a stability certificate")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    p.add_argument("--certificate", metavar="OUT", help="write the self-contained stability certificate to OUT")
    p.add_argument("--check", action="store_true", help="FILE is a stability certificate: verify it exactly")
    p.add_argument("--time-limit", metavar="S", type=positive_float, default=60.0,
                   help="seconds before stopping with a partial (still guaranteed) result (default: 60)")
    p.add_argument("--max-nodes", metavar="N", type=int, default=None, help="stop after N case-split nodes")
    p.add_argument("--seed", metavar="S", type=int, default=0, help="seed of the sample points that guide the search")
    p.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    return p


def _dec(x: Fraction | None, up: bool = False, digits: int = 10) -> str:
    """x in decimal with `digits` significant digits, rounded down (up=True: up), so
    that a displayed lower bound is still a lower bound.

    >>> _dec(Fraction(2, 3)), _dec(Fraction(2, 3), up=True)
    ('0.6666666666', '0.6666666667')
    """
    if x is None:
        return "unbounded"
    x = Fraction(x)
    if x == 0:
        return "0"
    e = math.floor(math.log10(abs(float(x)))) if math.isfinite(float(x)) and float(x) != 0 else (
        len(str(abs(x.numerator))) - len(str(x.denominator)))
    k = digits - 1 - e
    scaled = x * Fraction(10) ** k
    v = math.ceil(scaled) if up else math.floor(scaled)
    d = Decimal(v).scaleb(-k).normalize()
    return format(d, "f") if -7 <= e <= 15 else str(d)


def format_result(path: str, res: StabilityResult) -> str:
    """The human-readable report printed by ``exact-inj stability`` (without --json)."""
    lines = []
    kind = "bias-free" if not res.biased else "biased"
    if res.status == "not_injective":
        lines.append(f"{path}: NOT INJECTIVE, so min over cells of sigma_min(W_A) = 0 exactly "
                     f"({res.n} inputs, {res.m} rows, {kind})")
        lines.append(f"  cell: point x = ({', '.join(fraction_to_str(v) for v in res.cell_point)}), "
                     f"sign pattern {res.cell_signs}, active rows {list(res.cell_active)} of rank < {res.n}")
        if res.witness:
            lines.append(f"  collision: f(x) = f(y) for y = ({', '.join(fraction_to_str(v) for v in res.witness[1])})")
        lines.append("  constants: (1/2) min sigma_min = 0, C(W) = 0; the inverse Lipschitz constant is unbounded")
    else:
        head = "CERTIFIED" if res.status == "complete" else "PARTIAL (limit reached; bounds still guaranteed)"
        lines.append(f"{path}: {head}  ({res.n} inputs, {res.m} rows, {kind})")
        lines.append(f"  min over cells of sigma_min(W_A):  {_dec(res.sigma_lower)} <= min <= "
                     f"{_dec(res.sigma_upper, up=True) if res.sigma_upper is not None else '?'}")
        if res.cell_point is not None:
            lines.append(f"  minimising cell: sign pattern {res.cell_signs}, active rows {list(res.cell_active)}, "
                         f"point ({', '.join(_short(v) for v in res.cell_point)})")
        lines.append(f"  proof: sigma_min(W_S)^2 > t = {_dec(res.t)} on every cell (exact LDL^T of W_S^T W_S - t I, "
                     f"all pivots > 0); lower bound r = {fraction_to_str(res.sigma_lower)} with r^2 <= t")
        lines.append(f"  (1/2) min sigma_min         >= {_dec(res.half_lower)}   "
                     "(|f(x)-f(y)| >= C |x-y|, valid with bias)")
        lines.append(f"  C(W) = (2m)^(-1/2) min      >= {_dec(res.paper_lower)}   "
                     + ("(the paper's Theorem 3)" if not res.biased else
                        "(paper's formula; Theorem 3 is stated bias-free, valid here as it is <= the 1/2 constant)"))
        lines.append(f"  inverse Lipschitz constant  <= {_dec(res.inverse_lipschitz_half, up=True)} (from 1/2 constant), "
                     f"<= {_dec(res.inverse_lipschitz_paper, up=True)} (from C(W))")
    st = res.stats
    lines.append(f"  method: cell enumeration by exact case splitting, LP-guided, branch and bound; {st.get('nodes', 0)} "
                 f"nodes, {st.get('cells', 0)} cells, {st.get('empty', 0)} empty cases, {st.get('pruned', 0)} pruned, "
                 f"{st.get('lps', 0)} LPs; {res.seconds:.3f} s")
    if res.check is not None:
        lines.append(f"  certificate checked exactly: {'VALID' if res.check.valid else 'INVALID'} "
                     f"({res.check.seconds:.4f} s): {res.check.reason}")
    for note in res.notes:
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def _short(x: Fraction) -> str:
    s = fraction_to_str(x)
    return s if len(s) <= 24 else f"{float(x):.6g}"


def run(args) -> int:
    """Carry out ``exact-inj stability``; returns the exit code."""
    try:
        if args.check:
            cert = load_json_file(args.file)
            res = check_stability(cert)
            if args.json:
                print(json.dumps({"valid": res.valid, "reason": res.reason, "seconds": round(res.seconds, 6),
                                  "file": args.file, **res.counts}))
            else:
                print(f"{args.file}: {'VALID' if res.valid else 'INVALID'} stability certificate: {res.reason} "
                      f"({res.seconds:.4f} s)")
            return 0 if res.valid else 1
        net = load_network(args.file)
        if not net.is_single_relu_layer:
            raise InputError(args.file, "stability takes a single ReLU layer")
        if net.output_unit:
            # |f(x) - f(y)| >= C |x - y| fails after tanh or sigmoid (they
            # saturate): the bounds hold for the layer, not for this network.
            raise InputError(args.file, f"stability takes a single ReLU layer without an output unit (this one "
                             f"ends with {net.output_unit}, which no inverse Lipschitz bound survives)")
        if args.certificate:
            d = os.path.dirname(os.path.abspath(args.certificate))
            if not os.path.isdir(d):
                raise InputError(args.certificate, "cannot write here: the directory does not exist")
        progress = None if args.quiet else (lambda msg: print(f"exact-inj stability: {msg}", file=sys.stderr,
                                                             flush=True))
        res = stability(net, time_limit=args.time_limit, max_nodes=args.max_nodes, seed=args.seed,
                        progress=progress)
        if args.certificate:
            try:
                with open(args.certificate, "w") as f:
                    json.dump(res.certificate, f, separators=(",", ":"))
                    f.write("\n")
            except OSError as e:
                raise InputError(args.certificate, f"cannot write: {e.strerror}") from None
        if args.json:
            out = res.to_json()
            out["file"] = args.file
            if args.certificate:
                out["certificate_file"] = args.certificate
            print(json.dumps(out))
        else:
            print(format_result(args.file, res))
        return {"complete": 0, "not_injective": 1, "partial": 3}[res.status]
    except InputError as e:
        print(f"exact-inj: {e}", file=sys.stderr)
        return 2
