"""Issue #14, item 8: "progress shows counters but no fraction done or time
estimate".  Where the work is countable the line says how much is done out of
what, with an estimate from the counted rate; elsewhere it says "no estimate"
(docs/cli.md, "Time limits and progress")."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
import time

import numpy as np

import exact_inj
from exact_inj import Layer, Network
from exact_inj.run import Activity, Run, duration, percent, work_done


def test_work_done_estimates_from_counted_work_only():
    assert work_done(50, 200, 2.0, "rows") == "50/200 rows (25%, about 6 s more)"
    assert "no estimate yet" in work_done(0, 9, 5.0, "files")  # nothing counted: no figure invented
    assert work_done(9, 9, 5.0, "rows") == "9/9 rows (100%)"
    assert percent(0.5) == "50%" and percent(0.00042) == "0.042%"
    assert duration(30) == "30 s" and duration(3 * 3600) == "3 h"


def test_structural_rule_counts_rows_into_the_progress_line():
    from exact_inj.layer.rules import find_structural_pairs

    rng = np.random.default_rng(0)
    layer = Layer(rng.standard_normal((300, 40)), rng.standard_normal(300))
    a = Activity(10.0)
    run = Run.start(Network((layer,)), progress=a)
    a.enter("structural", a.clock())
    find_structural_pairs(layer, tick=run.rows_done)
    assert a.done == a.total == 300 and a.unit == "rows grouped"
    # The rank step after the grouping is not counted, and the line says so.
    assert "structural: 300/300 rows grouped (100%), then a last step with no estimate" in a.line(a.clock())


def test_tree_search_reports_the_share_of_the_case_tree_closed():
    # 16 inputs, 80 Gaussian rows: a tree search of many seconds; in 3.5 s the
    # heartbeat shows the closed share (a case weighs 2^-depth) and its rate.
    rng = np.random.default_rng(0)
    rng.standard_normal((60, 12)), rng.standard_normal(60)  # skipped: the 80 x 16 layer drawn next is slow enough
    W, b = rng.standard_normal((80, 16)), rng.standard_normal(80)
    lines: list[str] = []
    # workers=1: the sequential search reports the share closed; the parallel
    # one (the default on several cores) says "no estimate" instead.
    v = exact_inj.verify((W, b), time_limit=3.5, progress=lines.append, milp="none", workers=1)
    tree = [s for s in lines if " tree: " in s]
    assert tree, lines
    m = re.search(r"tree: ([0-9.e-]+)% of the case tree closed \(a case weighs 2\^-depth\) \((about .* more at "
                  r"this rate|no estimate yet)\)", tree[-1])
    assert m, tree[-1]
    assert 0 <= float(m.group(1)) < 100 and v.status in ("unknown", "injective", "not_injective")


def test_end_to_end_route_counts_pairs_of_pieces():
    from exact_inj.model import Domain
    from exact_inj.network import endtoend

    B = [[2, 1], [1, 1]]
    net = Network((Layer.from_rows(B + [[-v for v in r] for r in B]),
                   Layer.from_rows([[1, 0, -1, 0], [0, 1, 0, -1]], activation="linear")))
    seen = []
    r = endtoend.decide(net, Domain(), time.perf_counter() + 60, count=lambda *a: seen.append(a))
    assert r.status == "injective" and seen[0] == (0, r.pairs_total, "pairs of pieces closed")


def test_batch_progress_lines_count_instances(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "n.json").write_text(json.dumps({"layers": [{"weight": [[1]]}]}))
    (bench / "p.vnnlib").write_text("(declare-const X_0 Real)\n(assert (>= X_0 1))\n(assert (<= X_0 2))\n")
    (bench / "q.vnnlib.gz").write_bytes(gzip.compress(b"(declare-const X_0 Real)\n(assert (>= X_0 -1))\n"
                                                      b"(assert (<= X_0 1))\n"))
    (bench / "instances.csv").write_text("n.json,p.vnnlib,10\nn.json,q.vnnlib,10\n")
    r = subprocess.run([sys.executable, "-m", "exact_inj", "batch", bench, "--out", tmp_path / "out"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "1/2 instances decided (50%, about" in r.stderr and "2/2 instances decided" in r.stderr


def test_closed_share_is_reported_for_the_whole_tree_only(monkeypatch):
    # A subtree search (a parallel worker's, given a root) must not claim the
    # rest of the tree closed; the whole-tree search reports a share in [0, 1).
    from exact_inj.layer import search as search_module
    from exact_inj.layer.data import LayerData
    from exact_inj.layer.search import tree_search
    from exact_inj.model import Domain

    # Progress is reported at most once a second of the search's clock: a
    # clock that advances 0.1 s per reading makes the reports depend on the
    # node count, not on how fast or loaded the machine is (with the real
    # clock, 4000 nodes could finish inside the first second and report nothing).
    class Clock:
        t = 0.0

        @classmethod
        def perf_counter(cls):
            cls.t += 0.1
            return cls.t

    monkeypatch.setattr(search_module, "time", Clock)
    rng = np.random.default_rng(0)
    layer = Layer(rng.standard_normal((80, 16)), rng.standard_normal(80))
    data = LayerData(layer, Domain())
    seen = []
    # A node budget, not a deadline, ends these runs.
    tree_search(data, Clock.t + 1e9, max_nodes=4000, progress=lambda st, now: seen.append(st.closed))
    assert seen and all(c is not None and 0 <= c < 1 for c in seen)
    rk0, span0, basis0 = data.span_info(0)
    seen.clear()
    tree_search(data, Clock.t + 1e9, max_nodes=4000, progress=lambda st, now: seen.append(st.closed),
                root=(0, 0, rk0, span0 | data.zero_rows, basis0, -1, 0))
    assert seen and all(c is None for c in seen)


def test_the_progress_line_names_the_check_while_it_runs():
    """After a route found its evidence the heartbeat says that the exact
    check is running, not the search's last counters (at n = 12 the check
    takes minutes, and the line kept repeating "tree: ... open 2")."""
    from fractions import Fraction

    from exact_inj.certify.schema import Status, Witness
    from exact_inj.run import CHECK_ROUTE

    a = Activity(10.0)
    run = Run.start(Network((Layer.from_rows([[1], [1]]),)), progress=a)
    run.tried.append("tree:2")
    a("nodes 42610177  leaves 21305089")
    assert "tree:2" in a.line(a.clock()) and "nodes" in a.line(a.clock())
    v = run.certified(Status.NOT_INJECTIVE, "instant", "both rows are 0 left of 0",
                      Witness((Fraction(-1),), (Fraction(-2),)))
    assert v.status is Status.NOT_INJECTIVE
    line = a.line(a.clock())
    assert f"] {CHECK_ROUTE}: " in line and "nodes" not in line and "tree:2" not in line, line
