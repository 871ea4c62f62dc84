"""The command's entry point (exact_inj/cli/launch.py) starts search workers
before the engine is imported; the search adopts them, and workers nobody
adopts are stopped at exit.  Importing the entry point must stay light."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from exact_inj import ipc
from exact_inj.cli.launch import workers_to_prestart
from exact_inj.layer import psearch
from exact_inj.layer.data import LayerData
from exact_inj.certify.check import check
from exact_inj.certify.schema import Certificate, Status
from exact_inj.model import Domain, Network
from random_layers import gaussian_layer


def test_the_entry_point_imports_no_numpy_flint_or_highspy():
    code = ("import sys, exact_inj.cli.launch, exact_inj.ipc; "
            "print(sorted(m for m in ('numpy', 'flint', 'highspy', 'exact_inj.api') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_workers_to_prestart_reads_the_command_line():
    cores = os.process_cpu_count() if hasattr(os, "process_cpu_count") else len(os.sched_getaffinity(0))
    assert workers_to_prestart(["verify", "a.npz", "--workers", "3"], load=0.0) == min(3, cores) - 1
    assert workers_to_prestart(["verify", "a.npz", "--workers=2", "--quiet"], load=0.0) == min(2, cores) - 1
    assert workers_to_prestart(["verify", "a.npz"], load=0.0) == cores - 1  # default: all cores
    assert workers_to_prestart(["verify", "a.npz", "--workers", "2", "--scheduler", "tcp://x:1"], load=0.0) == 0
    assert workers_to_prestart(["verify", "--help"], load=0.0) == 0
    assert workers_to_prestart(["verify", "a.npz", "--workers", "two"], load=0.0) == 0
    assert workers_to_prestart(["invert", "a.npz", "--workers", "2"], load=0.0) == 0
    assert workers_to_prestart([], load=0.0) == 0
    # Busy machine (load at least the cores): nothing is started at launch.
    assert workers_to_prestart(["verify", "a.npz", "--workers", "2"], load=float(os.cpu_count() or 1)) == 0


def test_the_search_adopts_prestarted_workers():
    psearch.shutdown()
    ipc.prestart(ipc.SEARCH_WORKER, 1)
    assert ipc.parked(ipc.SEARCH_WORKER) == 1
    pid = ipc._PARKED[ipc.SEARCH_WORKER][0][0].pid
    layer = gaussian_layer(6, 40)
    res = psearch.parallel_tree_search(LayerData(layer), time.perf_counter() + 60, 2)
    try:
        assert ipc.parked(ipc.SEARCH_WORKER) == 0
        assert [w.proc.pid for w in psearch._POOL] == [pid]
        assert res.kind == "proof"
        assert check(Certificate(Network((layer,)), Domain(), Status.INJECTIVE, res.proof)).valid
    finally:
        psearch.shutdown()


def test_workers_nobody_adopts_are_stopped_at_exit():
    code = ("import exact_inj.ipc as i; i.prestart(i.SEARCH_WORKER, 1); "
            "print(i._PARKED[i.SEARCH_WORKER][0][0].pid, flush=True)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
    pid = int(out)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        # A zombie of an exited parent is reaped by init; give it a moment.
        time.sleep(0.05)
    else:
        raise AssertionError(f"worker {pid} still running after its parent exited")


def test_cli_verify_with_two_workers_answers_like_one(tmp_path):
    import numpy as np

    W = np.random.default_rng([0, 6, 40, 0]).standard_normal((40, 6))
    path = tmp_path / "layer.npz"
    np.savez(path, weight_0=W)
    outs = []
    for k in ("1", "2"):
        r = subprocess.run([sys.executable, "-m", "exact_inj", "verify", str(path), "--workers", k, "--quiet",
                            "--certificate", str(tmp_path / f"c{k}.json")], capture_output=True, text=True,
                           timeout=120)
        outs.append(r.returncode)
        assert "INJECTIVE" in r.stdout, r.stdout + r.stderr
        c = subprocess.run([sys.executable, "-m", "exact_inj", "check", str(tmp_path / f"c{k}.json")],
                           capture_output=True, text=True, timeout=120)
        assert c.returncode == 0, c.stdout + c.stderr
    assert outs[0] == outs[1] == 0


def test_subpackages_are_attributes_after_a_plain_import():
    # As when exact_inj/__init__.py imported everything eagerly (docs use
    # exact_inj.io.load_network and exact_inj.certify.check after `import exact_inj`).
    code = ("import exact_inj, exact_inj.cli as c; "
            "print(exact_inj.io.load_network.__name__, exact_inj.certify.check.__name__, "
            "exact_inj.model.Layer.__name__, c.app.main.__name__); "
            "print(hasattr(exact_inj, 'no_such_thing'), hasattr(c, 'no_such_thing'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "load_network check Layer main" and out[1] == "False False"


def test_prestart_never_exceeds_the_cores():
    cores = os.process_cpu_count() if hasattr(os, "process_cpu_count") else len(os.sched_getaffinity(0))
    assert workers_to_prestart(["verify", "a.npz", "--workers", "400"], load=0.0) == max(cores - 1, 0)
