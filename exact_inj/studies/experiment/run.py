"""The Gaussian experiment: P(injective) of iid N(0,1) bias-free layers, decided exactly.

``exact-inj experiment gaussian`` (docs/experiment.md) draws, for each input
dimension n and row count m = round(ratio * n), ``trials`` weight matrices W with
iid N(0, 1) entries and no bias, decides each layer x -> ReLU(Wx) exactly with
:func:`exact_inj.verify`, and estimates P(injective) with a Wilson interval.

Design points, each for a reason:

* **Per-trial seeds.** Trial t of the point (n, m) draws its matrix from
  ``numpy.random.default_rng([seed, n, m, t])``.  No generator is shared between
  trials, so results cannot depend on the worker count, the scheduling order or
  on which trials an interrupted run had already done; and any single trial can
  be rebuilt on its own (``exact-inj construct gaussian --seed S --n N --m M
  --trial T`` writes it).
* **Exact inputs.** Each float is converted with ``Fraction(float)``, its exact
  binary value, so the layer decided is exactly the layer drawn.
* **Exact answers only.** A trial counts as injective or not injective only
  with a certificate that passed the exact checker (``verify`` guarantees it);
  anything else is ``unknown`` and is reported, never guessed.  The MILP side
  search is switched off (``milp="none"``): it adds a process per trial and
  nothing a small layer needs.
* **Resumable.** Every finished trial is appended to ``trials.jsonl`` in the
  output folder at once; running the same command again skips the trials it
  holds.  Decided trials are exact, so a resumed run gives the same totals.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Callable, Iterable, Iterator, Sequence, TextIO

import numpy as np

from ...cli.argtypes import nonneg_int as _nonneg_int
from ...cli.argtypes import positive_float as _pos_float
from ...cli.argtypes import pos_int as _pos_int
from ...errors import InputError

__all__ = [
    "CSV_HEADER",
    "BRACKET_HEADER",
    "SIGNPOSTS",
    "Point",
    "TrialResult",
    "ExperimentResult",
    "parse_ns",
    "parse_ratios",
    "parse_trials",
    "grid",
    "trial_weight",
    "trial_network",
    "decide_trial",
    "wilson",
    "closed_form",
    "crossings",
    "acceptance",
    "run_experiment",
    "write_csv",
    "read_csv",
    "plot",
    "add_parser",
    "run",
]

CSV_HEADER = ("n", "m", "ratio", "trials", "injective", "not_injective", "unknown", "p", "lo", "hi")
# The bracket [injective/T, (injective+unknown)/T]: unknowns are mostly hard
# injective cases, so p (over decided trials only) is biased down when there are
# any; the bracket is what the data says without that assumption.
BRACKET_HEADER = ("n", "m", "ratio", "trials", "unknown", "low", "high")

CSV_NAME = "gaussian.csv"
BRACKET_NAME = "bracket.csv"
TRIALS_NAME = "trials.jsonl"
PLOT_NAME = "gaussian.png"

# Vertical lines on the plot (theory section 7): m = 2n (fewer rows are never
# injective), the paper's bounds 3.4 and 10.5, and the sharp threshold 6.698.
SIGNPOSTS = (
    (2.0, "m = 2n"),
    (3.4, "3.4 (P -> 0 below)"),
    (6.698, "6.698 (threshold)"),
    (10.5, "10.5 (P -> 1 above)"),
)

Z95 = 1.959963984540054  # the standard normal 97.5% quantile
_FORMAT = 1
_GENERATOR = "numpy.random.default_rng([seed, n, m, trial]).standard_normal((m, n))"


# --------------------------------------------------------------------------
# Parsing the grid
# --------------------------------------------------------------------------


def _positive_int(text: str, what: str) -> int:
    try:
        v = int(text.strip())
    except ValueError:
        raise ValueError(f"{what}: {text.strip()!r} is not an integer") from None
    if v < 1:
        raise ValueError(f"{what}: {v} must be at least 1")
    return v


def parse_ns(text: str) -> tuple[int, ...]:
    """Input dimensions from ``"2,3,4"`` or ``"2-6"`` (mixable), sorted, unique.

    >>> parse_ns("2,3,4"), parse_ns("2-4,7"), parse_ns("3,1,3")
    ((2, 3, 4), (2, 3, 4, 7), (1, 3))
    """
    out: set[int] = set()
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise ValueError(f"empty item in {text!r}")
        if "-" in item:
            a, _, b = item.partition("-")
            lo, hi = _positive_int(a, "n"), _positive_int(b, "n")
            if hi < lo:
                raise ValueError(f"empty range {item!r}")
            out.update(range(lo, hi + 1))
        else:
            out.add(_positive_int(item, "n"))
    return tuple(sorted(out))


def _ratio(text: str) -> Fraction:
    # Ratios are read as exact decimals so that 0.5-steps land exactly on
    # half-integers and rounding m = ratio * n never depends on float error.
    try:
        r = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"{text.strip()!r} is not a number") from None
    if r <= 0:
        raise ValueError(f"ratio {text.strip()} must be positive")
    return r


def parse_ratios(text: str) -> tuple[Fraction, ...]:
    """Ratios m/n from ``"START:STOP:STEP"`` (STOP included) or a list ``"2,3.4,6.7"``.

    >>> [str(r) for r in parse_ratios("1:3:0.5")]
    ['1', '3/2', '2', '5/2', '3']
    >>> [float(r) for r in parse_ratios("6.7, 2")]
    [2.0, 6.7]
    """
    text = text.strip()
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise ValueError(f"{text!r}: a range is START:STOP:STEP")
        start, stop, step = (_ratio(p) for p in parts)
        if stop < start:
            raise ValueError(f"{text!r}: STOP is below START")
        count = int((stop - start) / step) + 1
        if count > 10_000:
            raise ValueError(f"{text!r}: {count} ratios is too many")
        return tuple(start + k * step for k in range(count))
    return tuple(sorted({_ratio(p) for p in text.split(",")}))


@dataclass(frozen=True)
class TrialsSpec:
    """Trials per input dimension: a default and per-n overrides."""

    default: int | None
    per_n: tuple[tuple[int, int], ...] = ()

    def for_n(self, n: int) -> int:
        for k, t in self.per_n:
            if k == n:
                return t
        if self.default is None:
            raise ValueError(f"--trials gives no count for n = {n} (add a bare number as the default, or {n}=T)")
        return self.default


def parse_trials(text: str) -> TrialsSpec:
    """``"200"`` for every n, or per-n counts ``"200,5=50,6=20"`` (a bare number is the default).

    The cost of one exact decision grows about 4^n, so a fixed CPU budget
    wants fewer trials at larger n.

    >>> s = parse_trials("200,6=20")
    >>> s.for_n(2), s.for_n(6)
    (200, 20)
    """
    default: int | None = None
    per: dict[int, int] = {}
    for item in text.split(","):
        item = item.strip()
        if "=" in item:
            a, _, b = item.partition("=")
            per[_positive_int(a, "n")] = _positive_int(b, "trials")
        else:
            if default is not None:
                raise ValueError(f"{text!r} gives two defaults")
            default = _positive_int(item, "trials")
    return TrialsSpec(default, tuple(sorted(per.items())))


def round_half_up(x: Fraction) -> int:
    """round(x) with halves rounded up (Python's round() would send 2.5 to 2).

    >>> [round_half_up(Fraction(k, 2)) for k in (3, 5, 7)]
    [2, 3, 4]
    """
    return math.floor(x + Fraction(1, 2))


def grid(ns: Sequence[int], ratios: Sequence[Fraction]) -> tuple[tuple[int, int], ...]:
    """The (n, m) points, m = round_half_up(ratio * n) >= 1; equal m are merged.

    >>> grid([1, 2], [Fraction(1), Fraction(3, 2), Fraction(2)])
    ((1, 1), (1, 2), (2, 2), (2, 3), (2, 4))
    """
    pts = {(n, round_half_up(r * n)) for n in ns for r in ratios}
    return tuple(sorted(p for p in pts if p[1] >= 1))


# --------------------------------------------------------------------------
# One trial
# --------------------------------------------------------------------------


def trial_weight(seed: int, n: int, m: int, trial: int) -> np.ndarray:
    """The m x n float64 matrix of one trial, from its own generator.

    >>> a = trial_weight(7, 2, 8, 3)
    >>> a.shape, bool((a == trial_weight(7, 2, 8, 3)).all()), bool((a == trial_weight(7, 2, 8, 4)).all())
    ((8, 2), True, False)
    """
    return np.random.default_rng([seed, n, m, trial]).standard_normal((m, n))


def trial_network(seed: int, n: int, m: int, trial: int):
    """The exact bias-free layer of one trial (every float at its exact value)."""
    from ...model.network import Layer, Network

    W = trial_weight(seed, n, m, trial)
    zero = Fraction(0)
    layer = Layer(tuple(tuple(Fraction(float(x)) for x in row) for row in W), tuple(zero for _ in range(m)))
    return Network((layer,), name=f"gaussian seed={seed} n={n} m={m} trial={trial}")


@dataclass(frozen=True)
class Task:
    seed: int
    n: int
    m: int
    trial: int
    time_limit: float


@dataclass(frozen=True)
class TrialResult:
    """One decided (or undecided) trial, as stored in trials.jsonl."""

    n: int
    m: int
    trial: int
    status: str  # "injective", "not_injective" or "unknown"
    seconds: float
    route: str
    time_limit: float


def decide_trial(task: Task) -> TrialResult:
    """Decide one trial exactly.  Module level, so process pools can pickle it.

    >>> decide_trial(Task(seed=7, n=1, m=1, trial=0, time_limit=10)).status
    'not_injective'
    """
    from ...api import verify

    v = verify(trial_network(task.seed, task.n, task.m, task.trial), time_limit=task.time_limit, milp="none")
    return TrialResult(task.n, task.m, task.trial, v.status.value, round(v.seconds, 6), v.route, task.time_limit)


def _run_batch(tasks: Sequence[Task]) -> list[TrialResult]:
    # Small layers decide in milliseconds: batching keeps the per-task
    # overhead of a pool (pickling, a round trip) below the work itself.
    return [decide_trial(t) for t in tasks]


def _batch_size(n: int) -> int:
    return 64 if n <= 2 else 16 if n == 3 else 4 if n == 4 else 1


# --------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------


def wilson(k: int, total: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in ``total`` trials.

    lo is exactly 0 when k = 0 and hi exactly 1 when k = total (floating point
    would otherwise leave 1e-17 where the data say "none").

    >>> wilson(0, 20)[0], wilson(20, 20)[1]
    (0.0, 1.0)
    >>> lo, hi = wilson(50, 100); round(lo, 4), round(hi, 4)
    (0.4038, 0.5962)
    """
    if total <= 0:
        raise ValueError("no trials")
    p = k / total
    z2 = z * z
    denom = 1 + z2 / total
    centre = (p + z2 / (2 * total)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total))
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == total else min(1.0, centre + half)
    return lo, hi


def closed_form(n: int, m: int) -> Fraction | None:
    """Exact P(injective) for iid Gaussian bias-free layers, n = 1 or 2 (theory section 7).

    n = 1: 1 - 2^(1-m).  n = 2: 1 - m(m-2)/2^(m-1) for m >= 4, 0 for m <= 3.
    None for other n.

    >>> closed_form(1, 3), closed_form(2, 5), closed_form(2, 3), closed_form(3, 9)
    (Fraction(3, 4), Fraction(1, 16), Fraction(0, 1), None)
    """
    if n == 1:
        return 1 - Fraction(1, 2 ** (m - 1))
    if n == 2:
        return Fraction(0) if m <= 3 else 1 - Fraction(m * (m - 2), 2 ** (m - 1))
    return None


@dataclass(frozen=True)
class Point:
    """Totals at one (n, m)."""

    n: int
    m: int
    trials: int
    injective: int
    not_injective: int
    unknown: int

    @property
    def ratio(self) -> float:
        return self.m / self.n

    @property
    def decided(self) -> int:
        return self.injective + self.not_injective

    @property
    def p(self) -> float | None:
        """Fraction injective among decided trials (None if none decided)."""
        return self.injective / self.decided if self.decided else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson(self.injective, self.decided) if self.decided else None

    @property
    def bracket(self) -> tuple[float, float] | None:
        """[injective/T, (injective + unknown)/T]: P's range whatever the unknowns are."""
        if not self.trials:
            return None
        return self.injective / self.trials, (self.injective + self.unknown) / self.trials

    def csv_row(self) -> list[str]:
        iv = self.interval
        p = self.p
        return [str(self.n), str(self.m), _fmt_ratio(self.ratio), str(self.trials), str(self.injective),
                str(self.not_injective), str(self.unknown),
                "" if p is None else _fmt(p), "" if iv is None else _fmt(iv[0]), "" if iv is None else _fmt(iv[1])]


def _fmt(x: float) -> str:
    # Six decimals, but 0 and 1 only when exact: lo = 0 and hi = 1 are
    # statements about the data (see wilson()), so 0.9999997 must not print
    # as 1.000000.
    if x == 0:
        return "0"
    if x == 1:
        return "1"
    s = f"{x:.6f}"
    return repr(x) if s in ("0.000000", "1.000000") else s


def _fmt_ratio(x: float) -> str:
    return f"{x:.6f}".rstrip("0").rstrip(".")


def tally(results: Iterable[TrialResult], points: Sequence[tuple[int, int]],
          trials_for: Callable[[int], int]) -> list[Point]:
    """Totals per point over trials 0 .. T-1 (results outside that range are ignored)."""
    counts = {p: [0, 0, 0] for p in points}
    col = {"injective": 0, "not_injective": 1, "unknown": 2}
    for r in results:
        c = counts.get((r.n, r.m))
        if c is not None and r.trial < trials_for(r.n):
            c[col[r.status]] += 1
    return [Point(n, m, sum(c), *c) for (n, m), c in sorted(counts.items())]


@dataclass(frozen=True)
class Crossing:
    """Where the estimated curve for one n crosses 1/2, between two grid points."""

    n: int
    left: float  # m/n of the last point on one side
    right: float  # m/n of the first point on the other side
    at: float | None  # linear interpolation of p in m/n (None if a point in between straddles 1/2)
    upward: bool


def crossings(points: Sequence[Point]) -> list[Crossing]:
    """Crossings of 1/2, only between points whose brackets lie on one side of 1/2.

    A point is below when (injective + unknown)/T < 1/2 and above when
    injective/T > 1/2; points whose bracket straddles 1/2 decide nothing.

    >>> pts = [Point(2, m, 100, k, 100 - k, 0) for m, k in ((6, 20), (7, 40), (8, 70))]
    >>> c, = crossings(pts); (c.left, c.right, round(c.at, 4), c.upward)
    (3.5, 4.0, 3.6667, True)
    """
    out: list[Crossing] = []
    by_n: dict[int, list[Point]] = {}
    for p in points:
        if p.trials:
            by_n.setdefault(p.n, []).append(p)
    for n, pts in sorted(by_n.items()):
        pts.sort(key=lambda q: q.m)
        last: tuple[Point, int] | None = None  # last definite point and its side
        straddled = False
        for q in pts:
            lo, hi = q.bracket
            side = -1 if hi < 0.5 else 1 if lo > 0.5 else 0
            if side == 0:
                straddled = True
                continue
            if last is not None and side != last[1]:
                a = last[0]
                at = None
                if not straddled:
                    # p lies inside each bracket, so it is on the same side of 1/2.
                    pa, pb = a.p, q.p
                    at = a.ratio + (0.5 - pa) / (pb - pa) * (q.ratio - a.ratio)
                out.append(Crossing(n, a.ratio, q.ratio, at, side > 0))
            last = (q, side)
            straddled = False
    return out


@dataclass(frozen=True)
class Acceptance:
    """The issue's acceptance test on the n = 1, 2 points (closed forms known)."""

    inside: int  # points with 0 < P < 1 whose Wilson interval holds P
    interior: int  # points with 0 < P < 1
    zero_points: int  # points with P = 0
    zero_violations: int  # of those, points with an injective trial

    @property
    def passed(self) -> bool:
        return self.interior > 0 and self.inside >= 0.85 * self.interior and self.zero_violations == 0


def acceptance(points: Sequence[Point]) -> Acceptance | None:
    """None when the points hold no n = 1 or n = 2 data.

    >>> acceptance([Point(1, 1, 10, 0, 10, 0), Point(1, 2, 100, 48, 52, 0)])
    Acceptance(inside=1, interior=1, zero_points=1, zero_violations=0)
    """
    inside = interior = zeros = bad = 0
    for p in points:
        cf = closed_form(p.n, p.m)
        if cf is None or not p.decided:
            continue
        if cf == 0:
            zeros += 1
            bad += p.injective > 0
        elif cf < 1:
            interior += 1
            lo, hi = p.interval
            inside += lo <= cf <= hi
    if not interior and not zeros:
        return None
    return Acceptance(inside, interior, zeros, bad)


# --------------------------------------------------------------------------
# The sidecar of finished trials
# --------------------------------------------------------------------------


class TrialStore:
    """trials.jsonl: a header line, then one JSON object per finished trial.

    Appends are flushed line by line, so an interruption loses at most the
    trial being written; a torn last line is cut off when the file is reopened.
    A later record for the same trial replaces an earlier one (an unknown
    re-run with a longer time limit).
    """

    def __init__(self, path: str, seed: int) -> None:
        self.path = path
        self.seed = seed
        self.results: dict[tuple[int, int, int], TrialResult] = {}
        if os.path.exists(path):
            self._load()
        else:
            header = {"experiment": "gaussian", "format": _FORMAT, "seed": seed, "generator": _GENERATOR,
                      "numpy": np.__version__}
            with open(path, "w") as f:
                f.write(json.dumps(header) + "\n")
        self._f: TextIO | None = None

    def _load(self) -> None:
        with open(self.path, "rb") as f:
            data = f.read()
        if data and not data.endswith(b"\n"):
            # A run killed mid-write: drop the torn line so appends start clean.
            cut = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as f:
                f.truncate(cut)
            data = data[:cut]
        lines = data.decode("utf-8", "replace").splitlines()
        if not lines:
            raise InputError(self.path, "empty trials file; delete it to start afresh")
        try:
            header = json.loads(lines[0])
        except json.JSONDecodeError:
            raise InputError(self.path, "line 1 is not a trials-file header; delete the file to start afresh") from None
        if not isinstance(header, dict) or header.get("experiment") != "gaussian" or header.get("format") != _FORMAT:
            raise InputError(self.path, "not a trials file of the gaussian experiment (format 1)")
        if header.get("seed") != self.seed:
            raise InputError(self.path, f"written with --seed {header.get('seed')}, not {self.seed}; "
                                        "use the same seed to resume, or another --out folder")
        if header.get("numpy") != np.__version__:
            # NumPy keeps PCG64 streams fixed but may change how distributions
            # are sampled: say so instead of silently mixing draws.
            print(f"exact-inj: warning: {self.path} was written with numpy {header.get('numpy')}, "
                  f"this is numpy {np.__version__}; if its normal sampler changed, old and new trials differ",
                  file=sys.stderr)
        for k, line in enumerate(lines[1:], start=2):
            try:
                r = TrialResult(**json.loads(line))
            except (json.JSONDecodeError, TypeError) as e:
                raise InputError(self.path, f"line {k} is not a trial record ({e})") from None
            self.results[(r.n, r.m, r.trial)] = r

    def needs(self, task: Task) -> bool:
        r = self.results.get((task.n, task.m, task.trial))
        # A decided trial is final; an unknown one is retried only when given
        # more time than it had.
        return r is None or (r.status == "unknown" and task.time_limit > r.time_limit)

    def add(self, r: TrialResult) -> None:
        if self._f is None:
            self._f = open(self.path, "a")
        self._f.write(json.dumps(asdict(r), separators=(",", ":")) + "\n")
        self._f.flush()
        self.results[(r.n, r.m, r.trial)] = r

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


# --------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------


class _ProgressBar:
    """A text bar on stderr: redrawn in place on a terminal; otherwise (a log
    file) a line every 10% or every 30 s, whichever comes first."""

    def __init__(self, total: int, stream: TextIO | None) -> None:
        self.total = total
        self.stream = stream
        self.t0 = time.perf_counter()
        self.tty = bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())
        self.last_draw = self.t0
        self.last_decile = 0
        self.last_done = -1
        self.shown = 0

    def update(self, done: int, unknown: int, note: str, final: bool = False) -> None:
        if self.stream is None or self.total == 0:
            return
        now = time.perf_counter()
        frac = done / self.total
        decile = int(frac * 10)
        if self.tty:
            if not final and now - self.last_draw < 0.2:
                return
        elif final:
            if done == self.last_done:
                return
        elif decile == self.last_decile and now - self.last_draw < 30:
            return
        self.last_draw, self.last_decile, self.last_done = now, decile, done
        elapsed = now - self.t0
        eta = f"{elapsed / frac - elapsed:6.0f}s left" if 0 < frac < 1 else ""
        width = 30
        fill = int(frac * width)
        bar = "#" * fill + "." * (width - fill)
        unk = f"  {unknown} unknown" if unknown else ""
        text = f"[{bar}] {done}/{self.total} trials {100 * frac:5.1f}%  {elapsed:6.0f}s {eta}  {note}{unk}"
        if self.tty:
            # Pad over the previous, possibly longer, line.
            self.stream.write("\r" + text.ljust(self.shown) + ("\n" if final else ""))
            self.shown = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def _local_results(batches: Sequence[list[Task]], workers: int) -> Iterator[list[TrialResult]]:
    if workers == 1:
        # In-process: no pool start-up, nothing to pickle, and each trial is
        # saved as soon as it is decided (batches only matter across processes).
        for b in batches:
            for t in b:
                yield [decide_trial(t)]
        return
    import multiprocessing

    # spawn, not fork: a forked child would inherit the parent's solver and
    # thread state (highspy's thread count is process-global), which is not
    # safe to share; spawn is also what macOS and Windows use anyway.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as ex:
        todo = iter(batches)
        running = set()
        try:
            # A bounded number in flight, so an interruption cancels little work
            # and the progress bar follows what really finished.
            for b in todo:
                running.add(ex.submit(_run_batch, b))
                if len(running) >= 2 * workers:
                    break
            while running:
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    yield fut.result()
                    nxt = next(todo, None)
                    if nxt is not None:
                        running.add(ex.submit(_run_batch, nxt))
        except BrokenProcessPool:
            ex.shutdown(wait=False, cancel_futures=True)
            raise RuntimeError(
                "a worker process died (killed, out of memory, or started from a script that lacks an "
                "`if __name__ == '__main__':` guard, which spawned workers need); finished trials are saved, "
                "run again to resume") from None
        except BaseException:
            ex.shutdown(wait=False, cancel_futures=True)
            raise


def _dask_results(batches: Sequence[list[Task]], address: str) -> Iterator[list[TrialResult]]:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise InputError(None, "--scheduler needs Dask: pip install 'exact_inj[dask]'") from None
    try:
        client = Client(address, timeout=30)
    except (OSError, TimeoutError) as e:
        raise InputError(None, f"--scheduler {address}: cannot connect ({e})") from None
    try:
        nthreads = sum(client.nthreads().values()) or 1
        todo = iter(batches)
        ac = as_completed()
        for b in todo:
            ac.add(client.submit(_run_batch, b, pure=False))
            if ac.count() >= 2 * nthreads:
                break
        for fut in ac:
            yield fut.result()
            nxt = next(todo, None)
            if nxt is not None:
                ac.add(client.submit(_run_batch, nxt, pure=False))
    finally:
        client.close()


@dataclass(frozen=True)
class ExperimentResult:
    points: tuple[Point, ...]
    ran: int  # trials decided in this run
    reused: int  # trials taken from trials.jsonl
    seconds: float
    csv: str
    bracket_csv: str
    trials_file: str
    plot: str | None


def run_experiment(
    ns: Sequence[int],
    ratios: Sequence[Fraction],
    trials: int | TrialsSpec,
    seed: int,
    out: str,
    *,
    workers: int = 1,
    time_limit: float = 60.0,
    scheduler: str | None = None,
    make_plot: bool = True,
    progress: TextIO | None = None,
) -> ExperimentResult:
    """Run (or resume) the experiment into the folder ``out``; returns the totals.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     r = run_experiment([1], [Fraction(1), Fraction(3)], 5, seed=1, out=d, make_plot=False)
    ...     again = run_experiment([1], [Fraction(1), Fraction(3)], 5, seed=1, out=d, make_plot=False)
    >>> [(p.m, p.trials, p.injective + p.not_injective + p.unknown) for p in r.points]
    [(1, 5, 5), (3, 5, 5)]
    >>> r.points[0].injective, again.ran, again.points == r.points
    (0, 0, True)
    """
    spec = trials if isinstance(trials, TrialsSpec) else TrialsSpec(int(trials))
    if seed < 0:
        raise InputError(None, "--seed must be a non-negative integer")
    if workers < 1:
        raise InputError(None, "--workers must be at least 1")
    if not time_limit > 0:
        raise InputError(None, "--time-limit must be positive")
    try:
        trials_for = {n: spec.for_n(n) for n in ns}
    except ValueError as e:
        raise InputError(None, str(e)) from None
    points = grid(ns, ratios)
    if not points:
        raise InputError(None, "the grid is empty: every ratio * n rounds to m = 0")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise InputError(out, f"cannot create the output folder: {e.strerror}") from None
    paths = {k: os.path.join(out, name) for k, name in
             (("csv", CSV_NAME), ("bracket", BRACKET_NAME), ("trials", TRIALS_NAME), ("plot", PLOT_NAME))}
    store = TrialStore(paths["trials"], seed)
    tasks = [Task(seed, n, m, t, time_limit) for n, m in points for t in range(trials_for[n])]
    todo = [t for t in tasks if store.needs(t)]
    reused = len(tasks) - len(todo)
    if progress is not None and reused:
        print(f"exact-inj: resuming from {paths['trials']}: {reused} of {len(tasks)} trials already done",
              file=progress, flush=True)

    batches: list[list[Task]] = []
    for t in todo:  # consecutive trials of one point share a batch
        last = batches[-1] if batches else None
        if last and (last[0].n, last[0].m) == (t.n, t.m) and len(last) < _batch_size(t.n):
            last.append(t)
        else:
            batches.append([t])

    bar = _ProgressBar(len(todo), progress)
    t0 = time.perf_counter()
    done = unknown = 0

    def totals() -> list[Point]:
        return tally(store.results.values(), points, lambda n: trials_for[n])

    source = _dask_results(batches, scheduler) if scheduler else _local_results(batches, workers)
    try:
        for res in source:
            for r in res:
                store.add(r)
                unknown += r.status == "unknown"
            done += len(res)
            bar.update(done, unknown, f"n={res[-1].n} m={res[-1].m}")
        bar.update(done, unknown, "done", final=True)
    except KeyboardInterrupt:
        # Save what is finished so that the CSV is current; the trials file
        # already holds every finished trial, and rerunning resumes from it.
        store.close()
        write_csv(paths["csv"], totals())
        write_bracket_csv(paths["bracket"], totals())
        if progress is not None:
            print(f"\nexact-inj: interrupted after {done} new trials; they are in {paths['trials']}. "
                  "Run the same command again to resume.", file=progress, flush=True)
        raise
    finally:
        store.close()

    final = totals()
    write_csv(paths["csv"], final)
    write_bracket_csv(paths["bracket"], final)
    png = None
    if make_plot:
        png = paths["plot"] if plot(final, paths["plot"], seed=seed, progress=progress) else None
    return ExperimentResult(tuple(final), done, reused, time.perf_counter() - t0,
                            paths["csv"], paths["bracket"], paths["trials"], png)


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------


def _write_rows(path: str, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    # Write a temporary file and rename: an interruption never leaves a torn CSV.
    tmp = path + ".tmp"
    try:
        with open(tmp, "w", newline="") as f:
            f.write(",".join(header) + "\n")
            for row in rows:
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
        rows.append([str(p.n), str(p.m), _fmt_ratio(p.ratio), str(p.trials), str(p.unknown),
                     "" if br is None else _fmt(br[0]), "" if br is None else _fmt(br[1])])
    _write_rows(path, BRACKET_HEADER, rows)


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
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as e:
        raise InputError(path, f"cannot write: {e.strerror}") from None
    return True


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def _arg(parse: Callable[[str], object]) -> Callable[[str], object]:
    def convert(text: str):
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = parse.__name__.replace("parse_", "")
    return convert


EPILOG = """\
examples:
  exact-inj experiment gaussian --n 1,2 --ratio 1:12:0.5 --trials 2000 --seed 7 --out runs/acceptance
  exact-inj experiment gaussian --n 2-6 --ratio 1:12:0.5 --trials 200,5=60,6=20 --seed 7 --workers 2
  exact-inj experiment gaussian --n 3 --ratio 6.7 --trials 100 --scheduler tcp://127.0.0.1:8786

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
        "(Wilson 95% intervals), OUT/bracket.csv, OUT/trials.jsonl (per trial, for resuming) and "
        "OUT/gaussian.png.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g.add_argument("--n", type=_arg(parse_ns), required=True, metavar="NS",
                   help="input dimensions: 2,3,4 or 2-6")
    g.add_argument("--ratio", type=_arg(parse_ratios), default=parse_ratios("1:12:0.5"), metavar="R",
                   help="m/n ratios: START:STOP:STEP (STOP included) or a list 2,3.4,6.7 (default 1:12:0.5)")
    g.add_argument("--trials", type=_arg(parse_trials), required=True, metavar="T",
                   help="trials per point: 200, or per n as 200,5=50,6=20 (bare number = default)")
    g.add_argument("--seed", type=_nonneg_int, default=0, help="base seed (default 0)")
    g.add_argument("--workers", type=_pos_int, default=1, metavar="K",
                   help="local worker processes (default 1)")
    g.add_argument("--out", default="gaussian-experiment", metavar="DIR",
                   help="output folder (default ./gaussian-experiment); an existing one is resumed")
    g.add_argument("--time-limit", type=_pos_float, default=60.0, metavar="S",
                   help="seconds per trial before it counts as unknown (default 60)")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on a Dask cluster at ADDRESS (needs the [dask] extra) instead of local processes")
    g.add_argument("--no-plot", action="store_true", help="write the CSV files only")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    return e


def run(args: argparse.Namespace) -> int:
    """Run the subcommand parsed by :func:`add_parser`; the summary table goes to stdout."""
    res = run_experiment(args.n, args.ratio, args.trials, args.seed, args.out, workers=args.workers,
                         time_limit=args.time_limit, scheduler=args.scheduler, make_plot=not args.no_plot,
                         progress=None if args.quiet else sys.stderr)
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
    lines.append(f"{res.ran} trials run, {res.reused} reused, {res.seconds:.1f} s; wrote {res.csv}, "
                 f"{res.bracket_csv}" + (f", {res.plot}" if res.plot else ""))
    return "\n".join(lines)
