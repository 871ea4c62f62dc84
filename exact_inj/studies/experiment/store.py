"""trials.jsonl, the sidecar of finished trials that makes a run resumable."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from typing import TextIO

import numpy as np

from ...errors import InputError
from .trials import Task, TrialResult

__all__ = ["TrialStore"]

# The header of trials.jsonl: its format number, and how trials.trial_weight
# draws a matrix (so a file says which draws it holds).
_FORMAT = 1
_GENERATOR = "numpy.random.default_rng([seed, n, m, trial]).standard_normal((m, n))"


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
        # An empty file holds no trial: what a kill between creating the file
        # and writing its header left behind in versions before the header
        # was written atomically.  It is started afresh, not refused.
        if os.path.exists(path) and os.path.getsize(path) > 0:
            self._load()
        else:
            header = {"experiment": "gaussian", "format": _FORMAT, "seed": seed, "generator": _GENERATOR,
                      "numpy": np.__version__}
            # The header goes in whole or not at all (a temporary name, then a
            # rename): a kill at any moment leaves no file or a complete header.
            tmp = f"{path}.tmp{os.getpid()}"
            with open(tmp, "w") as f:
                f.write(json.dumps(header) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
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

