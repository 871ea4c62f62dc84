"""The files of the Gaussian experiment: gaussian.csv, bracket.csv (written
atomically) and the plot."""

from __future__ import annotations

import csv
import io
import math
import os
import sys
from typing import Iterable, Sequence, TextIO

from ...errors import InputError
from .crossing import CrossingEstimate, closed_form_crossing
from .stats import Point, closed_form, fmt_prob, fmt_ratio

__all__ = ["BRACKET_HEADER", "CROSSINGS_HEADER", "CSV_HEADER", "SIGNPOSTS", "plot", "plot_crossings", "read_csv",
           "write_bracket_csv", "write_crossings_csv", "write_csv"]

CSV_HEADER = ("n", "m", "ratio", "trials", "injective", "not_injective", "unknown", "p", "lo", "hi")
# The bracket [injective/T, (injective+unknown)/T]: unknowns are mostly hard
# injective cases, so p (over decided trials only) is biased down when there are
# any; the bracket is what the data says without that assumption.
BRACKET_HEADER = ("n", "m", "ratio", "trials", "unknown", "low", "high")

# Vertical lines on the plot (docs/theory.md, section 7): m = 2n (fewer rows are
# never injective), the paper's bounds 3.4 and 10.5, and the sharp threshold 6.698.
SIGNPOSTS = (
    (2.0, "m = 2n"),
    (3.4, "3.4 (P -> 0 below)"),
    (6.698, "6.698 (threshold)"),
    (10.5, "10.5 (P -> 1 above)"),
)


def _write_rows(path: str, header: Sequence[str], rows: Iterable[Sequence[str]], quote: bool = False) -> None:
    # Write a temporary file and rename: an interruption never leaves a torn CSV.
    # ``quote``: cells may hold commas (free text), so use the csv module's quoting.
    tmp = path + ".tmp"
    try:
        with open(tmp, "w", newline="") as f:
            f.write(",".join(header) + "\n")
            for row in rows:
                if quote:
                    buf = io.StringIO()
                    csv.writer(buf, lineterminator="\n").writerow(row)
                    f.write(buf.getvalue())
                else:
                    f.write(",".join(row) + "\n")
        os.replace(tmp, path)
    except OSError as e:
        raise InputError(path, f"cannot write: {e.strerror}") from None


def write_csv(path: str, points: Sequence[Point]) -> None:
    """The main CSV, header ``n,m,ratio,trials,injective,not_injective,unknown,p,lo,hi``.

    p, lo and hi are empty for a point with no decided trial.
    """
    _write_rows(path, CSV_HEADER, (p.csv_row() for p in points))


def write_bracket_csv(path: str, points: Sequence[Point]) -> None:
    """``n,m,ratio,trials,unknown,low,high`` with [low, high] = [inj/T, (inj+unk)/T]."""
    rows = []
    for p in points:
        br = p.bracket
        rows.append([str(p.n), str(p.m), fmt_ratio(p.ratio), str(p.trials), str(p.unknown),
                     "" if br is None else fmt_prob(br[0]), "" if br is None else fmt_prob(br[1])])
    _write_rows(path, BRACKET_HEADER, rows)


# One row per n: the fit window, what it holds, the logistic crossing with its
# 95% interval (inf when unbounded) and the fit's goodness (deviance on dof,
# fit_p = P(chi2 > deviance)); note says why a crossing is missing.
CROSSINGS_HEADER = ("n", "window_lo", "window_hi", "points", "trials", "unknown", "crossing", "lo", "hi", "slope",
                    "deviance", "dof", "fit_p", "note")


def _num(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}f}"


def write_crossings_csv(path: str, estimates: Sequence[CrossingEstimate]) -> None:
    """``crossings.csv`` (header :data:`CROSSINGS_HEADER`), one row per n."""
    rows = []
    for e in estimates:
        rows.append([str(e.n), _num(e.window[0]), _num(e.window[1]), str(e.points), str(e.trials), str(e.unknown),
                     _num(e.crossing), _num(e.lo), _num(e.hi), _num(e.slope, 3), _num(e.deviance, 3),
                     "" if e.dof is None else str(e.dof), _num(e.fit_p, 3), e.note])
    _write_rows(path, CROSSINGS_HEADER, rows, quote=True)


def plot_crossings(estimates: Sequence[CrossingEstimate], path: str, *, seed: int | None = None,
                   window: float = 1.0) -> bool:
    """Crossing of 1/2 against n with its 95% interval, the paper's bounds 3.4 and
    10.5 and the predicted threshold 6.698 as horizontal lines; False without
    matplotlib or without any crossing."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return False
    ok = [e for e in estimates if e.ok]
    if not ok:
        return False
    fig = Figure(figsize=(7.5, 5.5), dpi=110)
    ax = fig.add_subplot()
    top, bottom = 11.5, 1.5
    for y, style, label in ((10.5, "--", "10.5: P -> 1 above (paper, n -> inf)"),
                            (6.698, "-", "6.698: predicted sharp threshold (n -> inf)"),
                            (3.4, "--", "3.4: P -> 0 below (paper, n -> inf)")):
        ax.axhline(y, color="0.4" if style == "-" else "0.6", lw=1.0, ls=style, label=label)
    ns = [e.n for e in ok]
    cs = [e.crossing for e in ok]
    # An unbounded side is drawn to the edge of the axes with an arrow head.
    lo = [e.crossing - max(e.lo, bottom) for e in ok]
    hi = [min(e.hi, top) - e.crossing for e in ok]
    ax.errorbar(ns, cs, yerr=[lo, hi], fmt="o", ms=5, capsize=4, lw=1.4, color="C0",
                label="exact data: logistic crossing, 95% profile-likelihood interval")
    for e in ok:
        if math.isinf(e.hi):
            ax.annotate("", (e.n, top), (e.n, top - 0.4), arrowprops=dict(arrowstyle="->", color="C0"))
        if math.isinf(e.lo):
            ax.annotate("", (e.n, bottom), (e.n, bottom + 0.4), arrowprops=dict(arrowstyle="->", color="C0"))
    ref = [(n, closed_form_crossing(n, window)) for n in (1, 2) if n in ns]
    if ref:
        ax.plot([n for n, _ in ref], [c for _, c in ref], "kx", ms=8,
                label="closed form (docs/theory.md §7), same fit")
    ax.set_xlim(min(ns) - 0.6, max(ns) + 0.6)
    ax.set_xticks(range(min(ns), max(ns) + 1))
    ax.set_ylim(bottom, top)
    ax.set_xlabel("n (input dimension)")
    ax.set_ylabel("m/n where P(injective) = 1/2")
    title = "Where P(injective) crosses 1/2, iid N(0,1) bias-free layers"
    if seed is not None:
        title += f" (seed {seed})"
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=7.5)
    ax.grid(True, alpha=0.25)
    return _save(fig, path)


def read_csv(path: str) -> list[Point]:
    """Read the main CSV back into points (p, lo, hi are recomputed, not read)."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise InputError(path, f"cannot read: {e.strerror}") from None
    if not lines or tuple(lines[0].split(",")) != CSV_HEADER:
        raise InputError(path, f"not an experiment CSV (expected the header {','.join(CSV_HEADER)})")
    out = []
    for k, line in enumerate(lines[1:], start=2):
        cells = line.split(",")
        try:
            n, m, _, t, inj, nin, unk = (int(cells[i]) if i != 2 else 0 for i in range(7))
        except (ValueError, IndexError):
            raise InputError(path, f"line {k}: malformed row {line!r}") from None
        out.append(Point(n, m, t, inj, nin, unk))
    return out


def plot(points: Sequence[Point], path: str, *, seed: int | None = None, progress: TextIO | None = sys.stderr) -> bool:
    """Draw P(injective) against m/n with intervals, closed forms and signposts; False without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        if progress is not None:
            print("exact-inj: matplotlib is not installed, so no plot was drawn "
                  "(pip install 'exact_inj[plot]'); the CSV files are complete", file=progress)
        return False
    # Figure() without pyplot: no global backend is chosen or changed, and no
    # display is needed.
    fig = Figure(figsize=(10, 6), dpi=110)
    ax = fig.add_subplot()
    by_n: dict[int, list[Point]] = {}
    for p in points:
        if p.decided:
            by_n.setdefault(p.n, []).append(p)
    xmax = max((p.ratio for p in points), default=12.0)
    xmax = max(12.0, xmax)  # always show every signpost, up to 10.5
    for x, _ in SIGNPOSTS:
        ax.axvline(x, color="0.55", lw=0.9, ls=":")
    # The signposts are labelled on a top axis: text inside the axes would
    # collide with the curves, and 2 and 3.4 are too close for side-by-side labels.
    top = ax.secondary_xaxis("top")
    top.set_xticks([x for x, _ in SIGNPOSTS], labels=["2", "3.4", "6.698", "10.5"], fontsize=8)
    top.tick_params(length=3, colors="0.3")
    for n, pts in sorted(by_n.items()):
        pts.sort(key=lambda q: q.m)
        xs = [q.ratio for q in pts]
        ps = [q.p for q in pts]
        lo = [q.p - q.interval[0] for q in pts]
        hi = [q.interval[1] - q.p for q in pts]
        trials = sorted({q.trials for q in pts})
        tlabel = str(trials[0]) if len(trials) == 1 else f"{trials[0]}-{trials[-1]}"
        line = ax.errorbar(xs, ps, yerr=[lo, hi], marker="o", ms=3.5, lw=1.2, capsize=2,
                           label=f"n = {n} (T = {tlabel}, Wilson 95%)")
        colour = line[0].get_color()
        for q in pts:
            if q.unknown:
                b = q.bracket
                ax.vlines(q.ratio, b[0], b[1], color=colour, lw=6, alpha=0.3)
    bracket_drawn = any(q.unknown for q in points)
    for n, style in ((1, "k--"), (2, "k-.")):
        if n in by_n:
            ms = range(1, int(round(xmax * n)) + 1)
            ax.plot([m / n for m in ms], [float(closed_form(n, m)) for m in ms], style, lw=1, alpha=0.7,
                    label=f"closed form, n = {n}")
    if bracket_drawn:
        ax.plot([], [], color="0.5", lw=6, alpha=0.3, label="bracket [inj/T, (inj+unknown)/T]")
    ax.plot([], [], color="0.55", lw=0.9, ls=":",
            label="m = 2n; paper's bounds 3.4, 10.5; threshold 6.698")
    ax.axhline(0.5, color="0.8", lw=0.8)
    ax.set_xlim(0.5, xmax + 0.5)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("m / n (rows per input dimension)")
    ax.set_ylabel("P(injective)")
    title = "iid N(0,1) bias-free ReLU layers, exact decisions"
    if seed is not None:
        title += f" (seed {seed})"
    ax.set_title(title, pad=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(True, alpha=0.25)
    return _save(fig, path)


def _save(fig, path: str) -> bool:
    """Write a figure; a folder that cannot be written to is bad input (exit 2)."""
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as e:
        raise InputError(path, f"cannot write: {e.strerror}") from None
    return True
