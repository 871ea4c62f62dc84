"""The context of one decision: the question, its limits, and what was tried.

Every route of :mod:`exact_inj.layer` and :mod:`exact_inj.network` reads the
same :class:`Run` instead of threading a deadline, a domain, a node budget, a
solver choice and a progress sink through each helper; and every answer it
gives leaves through :meth:`Run.certified` (the exact checker's door) or
:meth:`Run.unknown`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from .certify.schema import Status
from .model import Domain, Network
from .verdict import Verdict, certified

__all__ = ["Progress", "Run"]

Progress = Callable[[str], None]


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

    @classmethod
    def start(cls, net: Network, time_limit: float = 300.0, *, max_nodes: int | None = None, milp: str = "highs",
              progress: Progress | None = None, domain: Domain | None = None) -> "Run":
        t0 = time.perf_counter()
        return cls(net, domain or Domain(), t0, t0 + time_limit, time_limit, max_nodes, milp, progress)

    def sub(self, net: Network, domain: Domain) -> "Run":
        """A run for a part of this question (a stage on the set it receives),
        sharing this run's deadline and limits but not its clock or tried list."""
        now = time.perf_counter()
        return replace(self, net=net, domain=domain, t0=now, time_limit=self.deadline - now, tried=[])

    def say(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)

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
        return certified(self.net, self.domain, status, route, reason, evidence,
                         {**(info or {}), "tried": self.tried}, self.t0)

    def unknown(self, reason: str, info: dict[str, Any] | None = None) -> Verdict:
        return Verdict(Status.UNKNOWN, self.elapsed(), "limit", reason, None, {**(info or {}), "tried": self.tried})
