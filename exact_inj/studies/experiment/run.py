"""Running the Gaussian experiment: :func:`run_experiment` decides every
trial of the grid not yet in trials.jsonl, in this process, in local worker
processes or on a Dask cluster, and writes the totals."""

from __future__ import annotations

import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator, Sequence, TextIO

from ...errors import InputError
from .crossing import CrossingEstimate, crossing_estimates
from .output import plot, plot_crossings, write_bracket_csv, write_crossings_csv, write_csv
from .params import RatiosSpec, TrialsSpec, grid
from .stats import Point, tally
from .store import TrialStore
from .trials import Task, TrialResult, batch_size, decide_trial, run_batch

__all__ = ["BRACKET_NAME", "CROSSINGS_NAME", "CROSSINGS_PLOT_NAME", "CSV_NAME", "ExperimentResult", "PLOT_NAME",
           "TRIALS_NAME", "run_experiment"]

CSV_NAME = "gaussian.csv"
BRACKET_NAME = "bracket.csv"
TRIALS_NAME = "trials.jsonl"
PLOT_NAME = "gaussian.png"
CROSSINGS_NAME = "crossings.csv"
CROSSINGS_PLOT_NAME = "crossings.png"


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
                running.add(ex.submit(run_batch, b))
                if len(running) >= 2 * workers:
                    break
            while running:
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    yield fut.result()
                    nxt = next(todo, None)
                    if nxt is not None:
                        running.add(ex.submit(run_batch, nxt))
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
            ac.add(client.submit(run_batch, b, pure=False))
            if ac.count() >= 2 * nthreads:
                break
        for fut in ac:
            yield fut.result()
            nxt = next(todo, None)
            if nxt is not None:
                ac.add(client.submit(run_batch, nxt, pure=False))
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
    crossings: tuple[CrossingEstimate, ...] = ()
    crossings_csv: str | None = None
    crossings_plot: str | None = None


def run_experiment(
    ns: Sequence[int],
    ratios: Sequence[Fraction] | RatiosSpec,
    trials: int | TrialsSpec,
    seed: int,
    out: str,
    *,
    workers: int = 1,
    time_limit: float = 60.0,
    scheduler: str | None = None,
    make_plot: bool = True,
    progress: TextIO | None = None,
    fit_window: float = 1.0,
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
    if not fit_window > 0:
        raise InputError(None, "--fit-window must be positive")
    try:
        points = grid(ns, ratios)
    except ValueError as e:
        raise InputError(None, str(e)) from None
    if not points:
        raise InputError(None, "the grid is empty: every ratio * n rounds to m = 0")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise InputError(out, f"cannot create the output folder: {e.strerror}") from None
    paths = {k: os.path.join(out, name) for k, name in
             (("csv", CSV_NAME), ("bracket", BRACKET_NAME), ("trials", TRIALS_NAME), ("plot", PLOT_NAME),
              ("crossings", CROSSINGS_NAME), ("crossings_plot", CROSSINGS_PLOT_NAME))}
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
        if last and (last[0].n, last[0].m) == (t.n, t.m) and len(last) < batch_size(t.n):
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
    cross = tuple(crossing_estimates(final, fit_window))
    write_crossings_csv(paths["crossings"], cross)
    png = cpng = None
    if make_plot:
        png = paths["plot"] if plot(final, paths["plot"], seed=seed, progress=progress) else None
        if png and plot_crossings(cross, paths["crossings_plot"], seed=seed, window=fit_window):
            cpng = paths["crossings_plot"]
    return ExperimentResult(tuple(final), done, reused, time.perf_counter() - t0,
                            paths["csv"], paths["bracket"], paths["trials"], png, cross, paths["crossings"], cpng)

