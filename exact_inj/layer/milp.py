"""The big-M MILP as a second witness source, in its own process
(:mod:`exact_inj.layer.milp_worker`), so that neither it nor the tree search
waits for the other.  Its answer is a hint, repaired into an exact witness here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from ..certify.schema import Witness
from .rules import witness_from_negative_set
from .data import LayerData

__all__ = ["MilpSide"]


class MilpSide:
    """The big-M MILP in its own process (exact_inj.layer.milp_worker), so neither
    search waits for the other.  Its answer is a hint, repaired exactly here."""

    def __init__(self, data: LayerData, which: str, deadline: float):
        self.data, self.which, self.deadline = data, which, deadline
        self.proc: subprocess.Popen | None = None
        self.dir: tempfile.TemporaryDirectory | None = None
        self.started = False
        self.finished = False

    def start(self) -> None:
        self.started = True
        remaining = self.deadline - time.perf_counter()
        if remaining < 1:
            self.finished = True
            return
        self.dir = tempfile.TemporaryDirectory(prefix="exact_inj_milp_")
        spec = os.path.join(self.dir.name, "in.json")
        with open(spec, "w") as f:
            json.dump({"Wf": self.data.Wf.tolist(), "bf": self.data.bf.tolist(),
                       "time_limit": remaining, "solver": self.which}, f)
        self.out = os.path.join(self.dir.name, "out.json")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "exact_inj.layer.milp_worker", spec, self.out],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def poll(self) -> Witness | None:
        if not self.started or self.finished or self.proc is None or self.proc.poll() is None:
            return None
        self.finished = True
        try:
            with open(self.out) as f:
                msg = json.load(f)
        except (OSError, ValueError):
            return None
        if msg.get("kind") != "point":
            return None
        negative = sum(1 << i for i, d in enumerate(msg["delta"]) if d > 0.5)
        w = witness_from_negative_set(self.data, negative)
        if w is None:
            # The MILP's pattern may be off by tolerance; fall back on its point.
            z, t = np.array(msg["z"]), float(msg["t"])
            vals = self.data.Wf @ z + self.data.bf * t
            negative = sum(1 << i for i, v in enumerate(vals) if v < -1e-6)
            w = witness_from_negative_set(self.data, negative)
        return w

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.dir is not None:
            self.dir.cleanup()
