"""One trial of the Gaussian experiment: its matrix, its exact layer and its
exact decision.

Trial t of the point (n, m) draws its matrix from its own generator
``numpy.random.default_rng([seed, n, m, t])``, so no result depends on which
other trials ran, where or in which order.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np

from ...api import verify
from ...model.network import Layer, Network

__all__ = ["Task", "TrialResult", "batch_size", "decide_trial", "run_batch", "trial_network", "trial_weight"]


def trial_weight(seed: int, n: int, m: int, trial: int) -> np.ndarray:
    """The m x n float64 matrix of one trial, from its own generator.

    >>> a = trial_weight(7, 2, 8, 3)
    >>> a.shape, bool((a == trial_weight(7, 2, 8, 3)).all()), bool((a == trial_weight(7, 2, 8, 4)).all())
    ((8, 2), True, False)
    """
    return np.random.default_rng([seed, n, m, trial]).standard_normal((m, n))


def trial_network(seed: int, n: int, m: int, trial: int):
    """The exact bias-free layer of one trial (every float at its exact value)."""
    W = trial_weight(seed, n, m, trial)
    zero = Fraction(0)
    layer = Layer(tuple(tuple(Fraction(float(x)) for x in row) for row in W), tuple(zero for _ in range(m)))
    return Network((layer,), name=f"gaussian seed={seed} n={n} m={m} trial={trial}")


@dataclass(frozen=True)
class Task:
    """Trial ``trial`` of the point (n, m) under ``seed``, with its time limit."""

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
    v = verify(trial_network(task.seed, task.n, task.m, task.trial), time_limit=task.time_limit, milp="none")
    return TrialResult(task.n, task.m, task.trial, v.status.value, round(v.seconds, 6), v.route, task.time_limit)


def run_batch(tasks: Sequence[Task]) -> list[TrialResult]:
    """Decide several trials in one call (what a worker process runs)."""
    # Small layers decide in milliseconds: batching keeps the per-task
    # overhead of a pool (pickling, a round trip) below the work itself.
    return [decide_trial(t) for t in tasks]


def batch_size(n: int) -> int:
    """Trials per batch at input dimension n: fewer as one decision grows dearer (about 4^n)."""
    return 64 if n <= 2 else 16 if n == 3 else 4 if n == 4 else 1

