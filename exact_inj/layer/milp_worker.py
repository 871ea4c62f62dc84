"""The MILP witness search as a separate program: `python -m exact_inj.layer.milp_worker IN OUT`.

The engine runs it beside the proof search (docs/theory.md, section 11: neither
should wait for the other).  A plain subprocess rather than multiprocessing:
the "spawn" start method re-imports the caller's main module, which breaks
user scripts that call exact_inj.verify() without an `if __name__ ==
"__main__"` guard, and "fork" is unsafe after HiGHS has started threads.

IN is a JSON file {"Wf": [[...]], "bf": [...], "time_limit": s, "solver":
"highs"|"cbc"}; OUT receives {"kind": "point", "delta": [...], "z": [...],
"t": t} or {"kind": "none", "outcome": ...}.  Floats travel as JSON
numbers (repr round-trips a double exactly); they are hints in any case.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from .. import solver
from ..layer import formulation


def run(spec: dict) -> dict:
    Wf = np.array(spec["Wf"], dtype=float)
    bf = np.array(spec["bf"], dtype=float)
    model = formulation.witness_milp(Wf, bf)
    solve = solver.solve_milp_pulp if spec.get("solver") == "cbc" else solver.solve_milp_highs
    out, x = solve(model, float(spec["time_limit"]))
    if x is None:
        return {"kind": "none", "outcome": out.value}
    z, t = model.point(x)
    return {"kind": "point", "delta": model.delta(x).tolist(), "z": z.tolist(), "t": t}


def main(argv: list[str]) -> int:
    with open(argv[0]) as f:
        spec = json.load(f)
    try:
        res = run(spec)
    except Exception as e:  # the engine only loses a hint
        res = {"kind": "error", "error": repr(e)}
    with open(argv[1], "w") as f:
        json.dump(res, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
