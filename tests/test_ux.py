"""Issue #14: what a new user hit, one test per item (each fails on the code
before the fix and passes after).

Known answers and exact re-checks only: every verdict here is re-checked by
exact_inj.check, and witnesses are re-evaluated with our own Fraction code.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from fractions import Fraction as F
from pathlib import Path

import numpy as np
import pytest

import exact_inj
from exact_inj import InputError, Layer, Network, Status
from exact_inj.cli import app as cli
from exact_inj.io.vnnlib import load_vnnlib
from exact_inj.network.shorten import height

ONNX_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "onnx"
if not ONNX_DIR.is_dir():
    ONNX_DIR = Path("/work/shared/data/onnx")

# docs/cli.md, "Time limits": --time-limit S answers within S + this, wall
# clock of the whole command (interpreter start included).
TIME_LIMIT_SLACK = 3.0


def run(*args, timeout=300, stdin=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "exact_inj", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, input=stdin)


def write(tmp_path: Path, name: str, obj) -> Path:
    p = tmp_path / name
    if isinstance(obj, bytes):
        p.write_bytes(obj)
    else:
        p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


def relu_eval(W, b, x):
    return [max(sum(F(w) * xi for w, xi in zip(row, x)) + F(bi), F(0)) for row, bi in zip(W, b)]


def gaussian_npz(tmp_path: Path, m: int, n: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    p = tmp_path / f"g{m}x{n}.npz"
    np.savez(p, weight_0=rng.standard_normal((m, n)), bias_0=rng.standard_normal(m))
    return p


# ------------------------------------------------------------ 1. time limits


def timed(*args):
    t0 = time.perf_counter()
    r = run(*args)
    return r, time.perf_counter() - t0


def test_time_limit_wide_dense_layer(tmp_path):
    # 900 x 300 Gaussian floats: undecided in 2 s; the answer comes within the slack.
    p = gaussian_npz(tmp_path, 900, 300)
    r, wall = timed("verify", p, "--time-limit", "2")
    assert r.returncode == 3, r.stderr
    assert wall <= 2 + TIME_LIMIT_SLACK, wall
    heart = [s for s in r.stderr.splitlines() if s.startswith("exact-inj: [")]
    assert heart and float(heart[0].split("[")[1].split("s]")[0]) <= 2.0  # a line within 2 s
    assert "s left of the" in heart[0]


def test_time_limit_large_conv_layer(tmp_path):
    # [K; -K] on 160 x 160 x 3: the banded elimination alone runs far past 2 s.
    rng = np.random.default_rng(1)
    K = rng.integers(-3, 4, size=(3, 3, 3, 3))
    layer = {"type": "conv", "in_channels": 3, "out_channels": 6, "input_size": [160, 160], "padding": "zero",
             "pad": "same", "kernel": np.concatenate([K, -K]).tolist(), "bias": [0] * 6}
    p = write(tmp_path, "conv.json", {"layers": [layer]})
    r, wall = timed("verify", p, "--time-limit", "2", "--json")
    assert r.returncode == 3, r.stderr
    assert json.loads(r.stdout)["verdict"] == "unknown"
    assert wall <= 2 + TIME_LIMIT_SLACK, wall
    assert r.stderr == ""  # --json: no progress


def test_supervise_abandons_a_stuck_route():
    from exact_inj.run import GRACE, supervise

    # The same bound as before (limit + GRACE + 0.5 s), on the median of three
    # runs: one scheduling hiccup on a loaded machine no longer fails it, a
    # supervisor that waits for the 30 s route still does every time.
    walls = []
    for _ in range(3):
        t0 = time.perf_counter()
        v = supervise(lambda activity: time.sleep(30), 0.3)
        walls.append(time.perf_counter() - t0)
        assert v.status is Status.UNKNOWN and "abandoned" in v.info
    assert sorted(walls)[1] < 0.3 + GRACE + 0.5, walls


def test_structural_rule_reads_the_deadline():
    from exact_inj.layer.rules import find_structural_pairs

    L = Layer.from_rows([[1, 0], [0, 1], [-2, 0], [0, -3]])
    assert find_structural_pairs(L) == ((0, 2), (1, 3))
    assert find_structural_pairs(L, deadline=time.perf_counter() - 1) is None  # gives up, never claims


@pytest.mark.slow
def test_time_limit_2000x1000(tmp_path):
    p = gaussian_npz(tmp_path, 2000, 1000)
    r, wall = timed("verify", p, "--time-limit", "5")
    assert r.returncode == 3 and wall <= 5 + TIME_LIMIT_SLACK, (wall, r.stderr)


# ------------------------------------------------------------ 2. small witnesses


def test_witness_is_small_on_a_float_layer():
    # 30 float inputs -> 20 rows: rank < n; the null vector of 20 float rows
    # has entries of hundreds of digits, the shown collision has few.
    rng = np.random.default_rng(3)
    W, b = rng.standard_normal((20, 30)), rng.standard_normal(20)
    v = exact_inj.verify((W, b), time_limit=60)
    assert v.status == "not_injective" and exact_inj.check(v.certificate).valid
    w = v.witness
    assert height(w.x) <= 40 and height(w.y) <= 40
    assert v.info["witness_shortened"]["digits_before"] > 40
    Wf = [[F(a) for a in r] for r in W.tolist()]
    bf = [F(a) for a in b.tolist()]
    assert relu_eval(Wf, bf, w.x) == relu_eval(Wf, bf, w.y) and w.x != w.y


def test_witness_shortening_keeps_the_domain():
    # On a box the smaller pair must stay inside it.
    rng = np.random.default_rng(4)
    W = rng.standard_normal((6, 8))
    v = exact_inj.verify(W, time_limit=60, domain="box:" + ",".join(["-1/3:1/2"] * 8))
    assert v.status == "not_injective" and exact_inj.check(v.certificate).valid
    assert all(F(-1, 3) <= a <= F(1, 2) for a in v.witness.x + v.witness.y)


def test_shorter_pair_never_returns_a_non_collision():
    # Metamorphic: whatever the proposal, what comes back collides exactly.
    from exact_inj.model import Domain
    from exact_inj.network.shorten import shorter_pair

    rng = np.random.default_rng(5)
    for _ in range(5):
        net = Network((Layer(rng.standard_normal((3, 4)), rng.standard_normal(3)),
                       Layer(rng.standard_normal((2, 3)), np.zeros(2), "linear")))
        v = exact_inj.verify(net, time_limit=30)
        if v.witness is None:
            continue
        pair = shorter_pair(net, Domain(), v.witness.x, v.witness.y, time.perf_counter() + 10)
        if pair is not None:
            assert pair[0] != pair[1] and net.evaluate(pair[0]) == net.evaluate(pair[1])


def test_witness_json_has_approximations_and_direction(tmp_path):
    p = write(tmp_path, "fig2.json", {"layers": [{"weight": [[2, 1], [-2, 2], [-1.5, -2], [2, -1]]}]})
    r = run("verify", p, "--json")
    w = json.loads(r.stdout)["witness"]
    assert w["x_approx"] == [float(F(a)) for a in w["x"]] and len(w["y_approx"]) == 2
    r = run("verify", p)
    assert "approximately" in r.stdout and "direction y - x" in r.stdout


@pytest.mark.slow
@pytest.mark.skipif(not (ONNX_DIR / "mnist-net_256x2.onnx").exists(), reason="shared ONNX networks absent")
def test_mnist_witness_is_small(tmp_path):
    cert = tmp_path / "cert.json"
    r = run("verify", ONNX_DIR / "mnist-net_256x2.onnx", "--json", "--certificate", cert)
    assert r.returncode == 1, r.stderr
    assert len(r.stdout.encode()) < 100_000
    w = json.loads(r.stdout)["witness"]
    assert max(len(p) for s in w["x"] + w["y"] for p in s.lstrip("-").split("/")) <= 40
    assert run("check", cert).returncode == 0


# ------------------------------------------------------------ 3. Python API


def test_verify_accepts_arrays_lists_pairs_and_layers():
    inj = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]
    assert exact_inj.verify(np.array(inj)).status == "injective"
    assert exact_inj.verify(inj).status is Status.INJECTIVE
    assert exact_inj.verify((inj, [0.5, 0.25, -0.5, -0.25])).status == "injective"
    assert exact_inj.verify([Layer.from_rows([[1], [-1]], [1, -1])]).status == "injective"
    # floats at their exact binary value: 0.1 is not 1/10
    L = Layer.from_rows([[0.1]])
    assert L.weight[0][0] == F(3602879701896397, 2**55)
    assert Layer(np.array([[0.5]], dtype=np.float32), [0]).weight == ((F(1, 2),),)


def test_verify_domain_strings_and_reader_objects(tmp_path):
    one = [[1]]
    assert exact_inj.verify(one, domain="orthant").status == "injective"
    assert exact_inj.verify(one, domain="reals").status == "not_injective"
    prop = write(tmp_path, "p.vnnlib", "(declare-const X_0 Real)\n(assert (>= X_0 1))\n(assert (<= X_0 2))\n")
    assert exact_inj.verify(one, domain=load_vnnlib(prop)).status == "injective"
    assert exact_inj.verify(one, domain=f"vnnlib:{prop}").status == "injective"
    with pytest.raises(InputError, match="unknown domain"):
        exact_inj.verify(one, domain="orthnat")


@pytest.mark.parametrize("bad", [{"layers": []}, [[float("nan")]], [[1, 2], [3]], "no/such/file.json", 3, [[True]]])
def test_verify_raises_input_error_for_bad_networks(bad):
    with pytest.raises(InputError):
        exact_inj.verify(bad)


def test_verdict_is_notebook_friendly():
    v = exact_inj.verify([[2, 1], [-2, 2], ["-1.5", -2], [2, -1]])
    assert v.status == "not_injective" and Status.NOT_INJECTIVE == "not_injective"
    assert "\n" not in repr(v) and len(repr(v)) < 200 and repr(v).startswith("<Verdict not_injective")
    assert isinstance(v.meaning, str) and "not invertible" in v.meaning
    assert isinstance(v.x_float, np.ndarray) and v.x_float.shape == (2,)
    assert np.allclose(v.x_float, [float(a) for a in v.witness.x])
    assert (Path(exact_inj.__file__).parent / "py.typed").exists()


# ------------------------------------------------------------ 5. gzipped inputs and stdin


def test_gz_network_vnnlib_and_stdin(tmp_path):
    net = {"layers": [{"weight": [[1]]}]}
    p = write(tmp_path, "net.json.gz", gzip.compress(json.dumps(net).encode()))
    prop = write(tmp_path, "p.vnnlib.gz", gzip.compress(b"(declare-const X_0 Real)\n(assert (>= X_0 1))\n"
                                                         b"(assert (<= X_0 2))\n(declare-const Y_0 Real)\n"
                                                         b"(assert (<= Y_0 0))\n"))
    r = run("verify", p, "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["verdict"] == "not_injective"
    r = run("verify", p, prop, "--json")
    assert r.returncode == 0, r.stderr
    assert "1 output constraint ignored" in json.loads(r.stdout)["notes"][0]
    r = run("verify", "-", "--json", stdin=json.dumps(net))
    assert r.returncode == 1, r.stderr
    bad = write(tmp_path, "bad.json.gz", b"not gzip at all")
    r = run("verify", bad)
    assert r.returncode == 2 and "not gzip data" in r.stderr


@pytest.mark.skipif(not (ONNX_DIR / "test_tiny.onnx").exists(), reason="shared ONNX networks absent")
def test_onnx_gz(tmp_path):
    p = write(tmp_path, "tiny.onnx.gz", gzip.compress((ONNX_DIR / "test_tiny.onnx").read_bytes()))
    r1 = run("verify", p, "--json")
    r2 = run("verify", ONNX_DIR / "test_tiny.onnx", "--json")
    assert r1.returncode == r2.returncode and r1.returncode in (0, 1, 3), r1.stderr
    assert json.loads(r1.stdout)["verdict"] == json.loads(r2.stdout)["verdict"]


# ------------------------------------------------------------ 6. typos


def test_empty_box_is_refused_unless_asked_for(tmp_path):
    p = write(tmp_path, "l.json", {"layers": [{"weight": [[1]]}]})
    r = run("verify", p, "--domain", "box:1:0")
    assert r.returncode == 2 and "empty" in r.stderr and "--allow-empty-domain" in r.stderr
    r = run("verify", p, "--domain", "box:1:0", "--allow-empty-domain")
    assert r.returncode == 0


def test_options_are_not_abbreviated_and_typos_are_named(tmp_path):
    p = write(tmp_path, "l.json", {"layers": [{"weight": [[1]]}]})
    r = run("verify", p, "--time-limt", "3")
    assert r.returncode == 2 and "did you mean --time-limit" in r.stderr
    r = run("verify", p, "--cert", "x.json")  # a prefix of --certificate is not it
    assert r.returncode == 2
    r = run("verify", p, "--domain", "bx:0:1")
    assert r.returncode == 2 and "vnnlib:FILE" in r.stderr


def test_certificate_and_network_mixups_are_named(tmp_path):
    net = write(tmp_path, "l.json", {"layers": [{"weight": [[1]]}]})
    cert = tmp_path / "c.json"
    r = run("verify", net, "--certificate", cert)
    assert f"certificate written to {cert}" in r.stdout and "1 input," in r.stdout
    r = run("verify", cert)
    assert r.returncode == 2 and "exact-inj check" in r.stderr
    r = run("check", net)
    assert r.returncode == 2 and "exact-inj verify" in r.stderr


# ------------------------------------------------------------ 7. compare


def test_compare_checks_every_input_before_deciding(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    write(d, "a_good.json", {"layers": [{"weight": [[1], [-1]]}]})
    write(d, "b_bad.json", "{not json")
    r = run("compare", d, "--out", tmp_path / "out", "--time-limit", "5")
    assert r.returncode == 2 and "b_bad.json" in r.stderr and "nothing was decided" in r.stderr
    assert "[1/" not in r.stderr  # no instance was decided first


# ------------------------------------------------------------ VNN-COMP conventions


def test_results_file_sat_and_unsat(tmp_path):
    net = write(tmp_path, "n.json", {"layers": [{"weight": [[1]]}]})
    prop = write(tmp_path, "p.vnnlib", "(declare-const X_0 Real)\n(assert (>= X_0 -1))\n(assert (<= X_0 2))\n")
    res = tmp_path / "res.txt"
    r = run("verify", net, prop, "--timeout", "30", "--results", res)
    assert r.returncode == 1
    lines = res.read_text().splitlines()
    assert lines[0] == "sat"
    xs = [F(s.split()[-1].rstrip(")")) for s in lines[1:] if "X_0" in s]
    ys = [s.split()[-1].rstrip(")") for s in lines[1:] if "Y_0" in s]
    assert len(xs) == 2 and xs[0] != xs[1] and all(-1 <= x <= 2 for x in xs) and ys[0] == ys[1]
    assert relu_eval([[1]], [0], [xs[0]]) == relu_eval([[1]], [0], [xs[1]])
    prop2 = write(tmp_path, "p2.vnnlib", "(declare-const X_0 Real)\n(assert (>= X_0 1))\n(assert (<= X_0 2))\n")
    r = run("verify", net, prop2, "--results", res)
    assert r.returncode == 0 and res.read_text() == "unsat\n"


def test_batch_is_resumable_and_reports_bad_rows(tmp_path):
    bench = tmp_path / "bench"
    (bench / "onnx").mkdir(parents=True)
    (bench / "vnnlib").mkdir()
    write(bench / "onnx", "n.json", {"layers": [{"weight": [[1]]}]})
    (bench / "vnnlib" / "p.vnnlib.gz").write_bytes(
        gzip.compress(b"(declare-const X_0 Real)\n(assert (>= X_0 1))\n(assert (<= X_0 2))\n"))
    write(bench / "vnnlib", "q.vnnlib", "(declare-const X_0 Real)\n(assert (>= X_0 -1))\n(assert (<= X_0 1))\n")
    write(bench, "instances.csv", "onnx/n.json,vnnlib/p.vnnlib,10\nonnx/n.json,vnnlib/q.vnnlib,10\n"
                                  "onnx/missing.onnx,vnnlib/q.vnnlib,10\n")
    out = tmp_path / "out"
    r = run("batch", bench, "--out", out, "--json")
    assert r.returncode == 2, r.stderr  # one bad instance, reported as a row, the others decided
    rows = json.loads(r.stdout)["rows"]
    assert [x["result"] for x in rows] == ["unsat", "sat", "error"]
    assert all(run("check", out / x["certificate"]).returncode == 0 for x in rows[:2])
    stamp = (out / "results.csv").read_text()
    r = run("batch", bench, "--out", out, "--json")  # resumed: nothing decided again
    assert [x["result"] for x in json.loads(r.stdout)["rows"]][:2] == ["unsat", "sat"]
    assert (out / "results.csv").read_text().startswith(stamp)


def test_results_numbers_are_exact_decimals_when_they_can_be():
    from exact_inj.studies.batch import decimal_text

    assert decimal_text(F(-1, 8)) == "-0.125" and decimal_text(F(5)) == "5" and decimal_text(F(3, 40)) == "0.075"
    assert float(decimal_text(F(1, 3))) == 1 / 3


# ------------------------------------------------------------ 8. smaller things


def test_short_network_run_prints_nothing_on_stderr():
    # A 0.3 s network decision: no stage lines, neither with --json nor in
    # human mode (progress starts at 1.5 s; docs/cli.md).
    net = Path(__file__).resolve().parents[1] / "instances" / "networks" / "b_minus_b_difference.json"
    for extra in (["--json"], []):
        r = run("verify", net, *extra)
        assert r.returncode in (0, 1) and r.stderr == "", r.stderr


def test_node_limit_names_max_nodes_not_time_limit(tmp_path):
    rng = np.random.default_rng(0)
    W = [[f"{int(round(x * 1000))}/1000" for x in row] for row in rng.standard_normal((34, 5))]
    p = write(tmp_path, "hard5.json", {"layers": [{"weight": W}]})
    r = run("verify", p, "--max-nodes", "50", "--milp", "none", "--quiet")
    assert r.returncode == 3, r.stdout
    assert "raise --max-nodes" in r.stdout and "raise --time-limit" not in r.stdout


def test_dash_reads_the_network_from_stdin():
    r = run("verify", "-", "--json", stdin=json.dumps({"layers": [{"weight": [[1], [-1]]}]}))
    assert r.returncode == 0 and json.loads(r.stdout)["verdict"] == "injective", r.stderr


def test_bad_domain_message_lists_every_form(tmp_path):
    p = write(tmp_path, "l.json", {"layers": [{"weight": [[1]]}]})
    r = run("verify", p, "--domain", "bx:0:1")
    assert r.returncode == 2 and all(f in r.stderr for f in ("reals", "orthant", "box:", "vnnlib:FILE")), r.stderr
