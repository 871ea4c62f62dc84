"""The context of one decision: the question, its limits, and what was tried.

Every route of :mod:`exact_inj.layer` and :mod:`exact_inj.network` reads the
same :class:`Run` instead of threading a deadline, a domain, a node budget, a
solver choice and a progress sink through each helper; and every answer it
gives leaves through :meth:`Run.certified` (the exact checker's door) or
:meth:`Run.unknown`.
"""

from __future__ import annotations

import contextvars
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from .certify.schema import Status
from .model import Domain, Network
from .verdict import Verdict, certified

__all__ = ["FIRST_REPORT", "GRACE", "REPORT_EVERY", "Activity", "Progress", "Run", "duration", "percent", "supervise",
           "work_done"]

Progress = Callable[[str], None]

# The first progress line comes this long after the start, then one every
# REPORT_EVERY seconds: a run shorter than FIRST_REPORT prints nothing.
FIRST_REPORT = 1.5
REPORT_EVERY = 2.0

# How long past its deadline a decision may run before supervise() gives up
# on it and answers unknown (docs/cli.md, "Time limits").  Every route reads
# the deadline; this bounds what one step between two reads may cost.
GRACE = 0.5


def work_done(done: float, total: float, seconds: float, unit: str = "") -> str:
    """How much of a counted piece of work is done, with a time estimate.

    The estimate is the time spent per unit so far times the units left: it
    comes from counted work only, and there is none before the first unit
    (docs/cli.md, "Time limits and progress").

    >>> work_done(50, 200, 2.0, "rows")
    '50/200 rows (25%, about 6 s more)'
    >>> work_done(7, 7, 3.0, "rows")
    '7/7 rows (100%)'
    >>> work_done(0, 7, 1.0, "files")
    '0/7 files (0%, no estimate yet)'
    """
    if total and done >= total:
        return f"{done:g}/{total:g}{' ' + unit if unit else ''} (100%)"
    frac = done / total if total else 0.0
    eta = f"about {duration(seconds / frac * (1 - frac))} more" if frac > 0 else "no estimate yet"
    return f"{done:g}/{total:g}{' ' + unit if unit else ''} ({percent(frac)}, {eta})"


def percent(frac: float) -> str:
    """A share as a percentage, with two significant digits when it is small.

    >>> percent(0.25), percent(0.000123), percent(0.0)
    ('25%', '0.012%', '0%')
    """
    return f"{100 * frac:.0f}%" if frac >= 0.01 or frac == 0 else f"{100 * frac:.2g}%"


def duration(seconds: float) -> str:
    """Seconds in the unit a person reads.

    >>> duration(42.4), duration(600), duration(5 * 3600), duration(10**7)
    ('42 s', '10 min', '5 h', '116 days')
    """
    for unit, size, upto in (("s", 1, 120), ("min", 60, 7200), ("h", 3600, 48 * 3600)):
        if seconds < upto:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds / 86400:.0f} days"


class Activity:
    """What a decision is doing now, read by the heartbeat of :func:`supervise`.

    Routes never print: a :class:`Run` started with an Activity as its
    ``progress`` records each route it enters (``tried``), each message it
    says, and a fraction done where the route can count (:meth:`Run.count`).
    The heartbeat turns that into one line every two seconds.  (Attribute
    writes are atomic under the GIL; a line may mix two moments, no more.)

    A route that cannot count units but can say what share of its work is
    closed sets ``share`` instead (the case tree: :meth:`Run.share`).

    >>> a = Activity(10.0)
    >>> a.route, a.done, a.total, a.unit = "structural", 50, 200, "rows"
    >>> a.line(2.0)
    '[   2.0s] structural: 50/200 rows (25%, about 6 s more); 8 s left of the 10 s limit'
    >>> a.enter("tree", 2.0)
    >>> a.share, a.share_of = 0.25, "of the case tree closed, by weight"
    >>> a.line(4.0)
    '[   4.0s] tree: 25% of the case tree closed, by weight (about 6 s more at this rate); 6 s left of the 10 s limit'
    """

    def __init__(self, time_limit: float) -> None:
        self.time_limit = time_limit
        self.route = "reading the layer"
        self.detail = ""
        self.done: int | None = None
        self.total: int | None = None
        self.unit = ""
        self.share: float | None = None  # a share of the work closed, in [0, 1]
        self.share_of = ""
        self.since = 0.0  # elapsed seconds when the current count started
        self.t0 = time.perf_counter()  # the clock of line()'s elapsed; supervise() sets its own
        self.tried: list[str] = []

    def __call__(self, message: str) -> None:
        self.detail = message

    def clock(self) -> float:
        return time.perf_counter() - self.t0

    def enter(self, route: str, elapsed: float) -> None:
        self.route, self.done, self.total, self.since = route, None, None, elapsed
        self.unit, self.share, self.share_of = "", None, ""

    def line(self, elapsed: float) -> str:
        spent = elapsed - self.since
        if self.total:
            where = work_done(self.done, self.total, spent, self.unit)
            if self.done >= self.total:  # the route goes on past what it counted (a rank after grouping)
                where += ", then a last step with no estimate"
        elif self.share is not None:
            eta = (f"about {duration(spent / self.share * (1 - self.share))} more at this rate" if self.share > 0
                   else "no estimate yet")
            where = f"{percent(self.share)} {self.share_of} ({eta})"
        else:
            where = "no estimate of the work left"
        detail = f" [{self.detail}]" if self.detail else ""
        left = max(self.time_limit - elapsed, 0.0)
        return (f"[{elapsed:6.1f}s] {self.route}: {where}{detail}; "
                f"{left:.0f} s left of the {self.time_limit:.3g} s limit")


CHECK_ROUTE = "exact check of the certificate"
"""What the progress line shows while :meth:`Run.certified` checks the evidence."""


class _Tried(list):
    """The routes tried, in order; each one entered is shown by the heartbeat."""

    def __init__(self, activity: Activity | None, t0: float) -> None:
        super().__init__()
        self.activity, self.t0 = activity, t0

    def append(self, route: str) -> None:
        super().append(route)
        # The MILP runs beside the tree, which stays the route shown.
        if self.activity is not None and not route.startswith("milp:"):
            self.activity.enter(route, self.activity.clock())


@dataclass
class Run:
    """One decision in progress (mutable: ``tried`` grows as routes are tried).

    >>> from exact_inj.model import Layer
    >>> r = Run.start(Network((Layer.from_rows([[1]]),)), time_limit=5)
    >>> r.remaining() > 0, r.domain.kind, r.tried
    (True, 'reals', [])
    """

    net: Network
    domain: Domain
    t0: float
    deadline: float
    time_limit: float
    max_nodes: int | None = None
    milp: str = "highs"
    progress: Progress | None = None
    tried: list[str] = field(default_factory=list)
    workers: int = 1
    """Processes for a layer's proof search (exact_inj.layer.psearch); 1 is sequential."""
    scheduler: Any = None
    """A distributed.Client whose workers run a layer's proof search instead
    (exact_inj.layer.cluster), or None."""

    @classmethod
    def start(cls, net: Network, time_limit: float = 300.0, *, max_nodes: int | None = None, milp: str = "highs",
              progress: Progress | None = None, domain: Domain | None = None, workers: int = 1,
              scheduler: Any = None) -> "Run":
        t0 = time.perf_counter()
        activity = progress if isinstance(progress, Activity) else None
        tried = _Tried(activity, t0)
        if activity is not None:
            activity.tried = tried
        return cls(net, domain or Domain(), t0, t0 + time_limit, time_limit, max_nodes, milp, progress, tried,
                   max(int(workers), 1), scheduler)

    def sub(self, net: Network, domain: Domain) -> "Run":
        """A run for a part of this question (a stage on the set it receives),
        sharing this run's deadline and limits but not its clock or tried list."""
        now = time.perf_counter()
        activity = self.progress if isinstance(self.progress, Activity) else None
        return replace(self, net=net, domain=domain, t0=now, time_limit=self.deadline - now,
                       tried=_Tried(activity, now))

    def say(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)

    def count(self, done: int, total: int, unit: str = "") -> None:
        """The current route has done ``done`` of ``total`` units of work
        (for the progress line's fraction and estimate)."""
        a = self.progress
        if isinstance(a, Activity):
            if a.total != total or a.unit != unit:
                a.since = a.clock()  # a new count: its rate is measured from now, not from the route's start
            a.done, a.total, a.unit = done, total, unit

    def rows_done(self, done: int, total: int) -> None:
        """:meth:`count` in rows (the structural rule's tick)."""
        self.count(done, total, "rows grouped")

    def share(self, closed: float, of: str) -> None:
        """The current route has closed this share (0..1) of its work,
        measured as ``of`` says (for a work that is not a count of units)."""
        if isinstance(self.progress, Activity):
            self.progress.share, self.progress.share_of = closed, of

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def remaining(self) -> float:
        return self.deadline - time.perf_counter()

    def past_deadline(self) -> bool:
        return time.perf_counter() > self.deadline

    def certified(self, status: Status, route: str, reason: str, evidence, info: dict[str, Any] | None = None
                  ) -> Verdict:
        """The verdict for this evidence about this run's network and domain,
        only once the exact checker accepted it (:func:`exact_inj.verdict.certified`)."""
        # The heartbeat names the check while it runs (at n = 12 it takes
        # minutes), instead of repeating the search's last counters.
        if isinstance(self.progress, Activity):
            self.progress.enter(CHECK_ROUTE, self.progress.clock())
            self.progress.detail = ""
        return certified(self.net, self.domain, status, route, reason, evidence,
                         {**(info or {}), "tried": list(self.tried)}, self.t0)

    def unknown(self, reason: str, info: dict[str, Any] | None = None) -> Verdict:
        return Verdict(Status.UNKNOWN, self.elapsed(), "limit", reason, None,
                       {**(info or {}), "tried": list(self.tried)})


def supervise(decide: Callable[[Activity], Verdict], time_limit: float, progress: Progress | None = None,
              started: float | None = None) -> Verdict:
    """Run ``decide(activity)`` in a worker thread and answer within the limit.

    The calling thread is the heartbeat: it passes one progress line to
    ``progress`` after FIRST_REPORT seconds and then every REPORT_EVERY
    seconds, and if the decision is still running GRACE seconds after its
    time limit it answers unknown and leaves the worker behind (a daemon
    thread: it stops at the next deadline it reads, and nothing it finds is
    used).  An exception in the decision is raised here.

    >>> v = supervise(lambda a: Verdict(Status.UNKNOWN, 0.0, "limit", "nothing"), 5)
    >>> v.reason
    'nothing'
    """
    activity = Activity(time_limit)
    box: dict[str, Any] = {}
    t0 = time.perf_counter() if started is None else started
    activity.t0 = t0

    def work() -> None:
        try:
            box["verdict"] = decide(activity)
        except BaseException as e:  # re-raised in the caller's thread
            box["error"] = e

    # The worker runs in a copy of this thread's context: settings held in
    # context variables (the input limits of --limit, numbers.raised_limits)
    # must reach the reading and deciding done there.
    worker = threading.Thread(target=contextvars.copy_context().run, args=(work,), name="exact-inj-decision",
                              daemon=True)
    worker.start()
    next_report = t0 + FIRST_REPORT
    give_up = t0 + time_limit + GRACE
    while True:
        now = time.perf_counter()
        worker.join(max(min(next_report, give_up) - now, 0.0) if progress is not None else max(give_up - now, 0.0))
        if not worker.is_alive():
            break
        now = time.perf_counter()
        if now >= give_up:
            where = activity.route + (f" ({activity.done}/{activity.total})" if activity.total else "")
            return Verdict(Status.UNKNOWN, now - t0, "limit",
                           f"time limit of {time_limit:g} s reached while {where} was still running; "
                           "it was abandoned without an answer", None,
                           {"tried": list(activity.tried), "time_limit": time_limit, "abandoned": activity.route})
        if progress is not None and now >= next_report:
            progress(activity.line(now - t0))
            next_report = now + REPORT_EVERY
    if "error" in box:
        raise box["error"]
    return box["verdict"]
