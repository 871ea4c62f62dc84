"""``exact-inj experiment``: the command line of the Gaussian experiment."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from ...cli.argtypes import nonneg_int, pos_int, positive_float
from ...errors import InputError
from .params import parse_ns, parse_ratio_specs, parse_ratios, parse_trials
from .run import ExperimentResult, run_experiment
from .stats import acceptance, closed_form, crossings

__all__ = ["EPILOG", "add_parser", "run", "summary"]


def _arg(parse: Callable[[str], object]) -> Callable[[str], object]:
    def convert(text: str):
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = parse.__name__.replace("parse_", "")
    return convert


def _ratio_item(text: str) -> str:
    # Checked one --ratio at a time (a usage error names the bad one); the
    # list is combined in run(), where a repeated n is an input error.
    parse_ratio_specs([text])
    return text


EPILOG = """\
examples:
  exact-inj experiment gaussian --n 1,2 --ratio 1:12:0.5 --trials 2000 --seed 7 --out runs/acceptance
  exact-inj experiment gaussian --n 2-6 --ratio 1:12:0.5 --trials 200,5=60,6=20 --seed 7 --workers 2
  exact-inj experiment gaussian --n 3 --ratio 6.7 --trials 100 --scheduler tcp://127.0.0.1:8786
  exact-inj experiment gaussian --n 7,8 --ratio 7=5:6.43:0.143 --ratio 8=5:6.5:0.125 --trials 100 --workers 2

Each n's crossing of 1/2 is fitted (logistic in m/n, 95% profile-likelihood interval)
and written to OUT/crossings.csv and OUT/crossings.png.

Interrupted?  Run the same command again: finished trials are read back from
OUT/trials.jsonl and skipped.  Results do not depend on --workers or --scheduler.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``experiment`` (with its ``gaussian`` kind) to the CLI's subparsers."""
    e = subparsers.add_parser(
        "experiment",
        help="estimate P(injective) of random layers with exact decisions",
        description="Experiments whose every trial is an exact, certified decision.",
    )
    kinds = e.add_subparsers(dest="experiment", metavar="KIND", required=True)
    g = kinds.add_parser(
        "gaussian",
        help="iid N(0,1) bias-free layers over a grid of n and m/n",
        description="Estimate P(injective) of x -> ReLU(Wx), W with iid N(0,1) entries, for each n and "
        "m = round(ratio * n) (halves round up; ratios giving the same m are merged). Writes OUT/gaussian.csv "
        "(Wilson 95% intervals), OUT/bracket.csv, OUT/crossings.csv (where each curve crosses 1/2, with a 95% "
        "interval), OUT/trials.jsonl (per trial, for resuming), OUT/gaussian.png and OUT/crossings.png.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g.add_argument("--n", type=_arg(parse_ns), required=True, metavar="NS",
                   help="input dimensions: 2,3,4 or 2-6")
    g.add_argument("--ratio", action="append", type=_arg(_ratio_item), metavar="[N=]R",
                   help="m/n ratios: START:STOP:STEP (STOP included) or a list 2,3.4,6.7 (default 1:12:0.5); "
                   "repeat with N=R to give one n its own ratios")
    g.add_argument("--trials", type=_arg(parse_trials), required=True, metavar="T",
                   help="trials per point: 200, or per n as 200,5=50,6=20 (bare number = default)")
    g.add_argument("--seed", type=nonneg_int, default=0, help="base seed (default 0)")
    g.add_argument("--workers", type=pos_int, default=1, metavar="K",
                   help="local worker processes (default 1)")
    g.add_argument("--out", default="gaussian-experiment", metavar="DIR",
                   help="output folder (default ./gaussian-experiment); an existing one is resumed")
    g.add_argument("--time-limit", type=positive_float, default=60.0, metavar="S",
                   help="seconds per trial before it counts as unknown (default 60)")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on a Dask cluster at ADDRESS (needs the [dask] extra) instead of local processes")
    g.add_argument("--fit-window", type=positive_float, default=1.0, metavar="H",
                   help="the crossing fit uses points within H of the curve's rough centre, in m/n (default 1)")
    g.add_argument("--no-plot", action="store_true", help="write the CSV files only")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    return e


def run(args: argparse.Namespace) -> int:
    """Run the subcommand parsed by :func:`add_parser`; the summary table goes to stdout."""
    try:
        ratios = parse_ratio_specs(args.ratio or ["1:12:0.5"])
    except ValueError as e:
        raise InputError(None, f"--ratio: {e}") from None
    res = run_experiment(args.n, ratios, args.trials, args.seed, args.out, workers=args.workers,
                         time_limit=args.time_limit, scheduler=args.scheduler, make_plot=not args.no_plot,
                         progress=None if args.quiet else sys.stderr, fit_window=args.fit_window)
    print(summary(res))
    return 0


def summary(res: ExperimentResult) -> str:
    """The table printed at the end of a run."""
    lines = [f"{'n':>3} {'m':>4} {'m/n':>6} {'T':>6} {'inj':>6} {'not':>6} {'unk':>4} "
             f"{'p':>7}  {'95% interval':<17} {'closed form':>11}"]
    for p in res.points:
        iv = p.interval
        cf = closed_form(p.n, p.m)
        lines.append(f"{p.n:>3} {p.m:>4} {p.ratio:>6.3f} {p.trials:>6} {p.injective:>6} {p.not_injective:>6} "
                     f"{p.unknown:>4} {'' if p.p is None else f'{p.p:.4f}':>7}  "
                     f"{'' if iv is None else f'[{iv[0]:.4f}, {iv[1]:.4f}]':<17} "
                     f"{'' if cf is None else f'{float(cf):.4f}':>11}")
    acc = acceptance(res.points)
    if acc is not None:
        verdict = "PASS" if acc.passed else "FAIL"
        lines.append(f"closed form inside the 95% interval at {acc.inside} of {acc.interior} points with 0 < P < 1; "
                     f"{acc.zero_violations} of {acc.zero_points} points with P = 0 have an injective trial "
                     f"(acceptance: {verdict})")
    for c in crossings(res.points):
        where = f"m/n ~ {c.at:.3f}" if c.at is not None else "(a point in between straddles 1/2)"
        lines.append(f"n = {c.n}: crosses 1/2 {'upward' if c.upward else 'downward'} between m/n = "
                     f"{c.left:.3f} and {c.right:.3f}, {where}")
    for e in res.crossings:
        if e.ok:
            fit = "" if e.fit_p is None else f", logistic fit p = {e.fit_p:.2f}"
            lines.append(f"n = {e.n}: logistic crossing m/n = {e.crossing:.3f}, 95% interval "
                         f"[{e.lo:.3f}, {e.hi:.3f}] ({e.points} points, {e.trials} trials{fit})"
                         + (f"; {e.note}" if e.note else ""))
        else:
            lines.append(f"n = {e.n}: no crossing estimate: {e.note}")
    files = [res.csv, res.bracket_csv] + [f for f in (res.crossings_csv, res.plot, res.crossings_plot) if f]
    lines.append(f"{res.ran} trials run, {res.reused} reused, {res.seconds:.1f} s; wrote {', '.join(files)}")
    return "\n".join(lines)
