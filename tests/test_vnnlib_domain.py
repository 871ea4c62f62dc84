"""--domain vnnlib:FILE: the property's input box becomes the verification domain."""

import json
import subprocess
import sys

import pytest

import exact_inj

FIG2 = {"layers": [{"weight": [[2, 1], [-2, 2], ["-1.5", -2], [2, -1]]}]}

BOX = """(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(assert (>= X_0 0))
(assert (<= X_0 1))
(assert (>= X_1 0))
(assert (<= X_1 1))
(assert (<= Y_0 5))
"""

UNION = """(declare-const X_0 Real)
(declare-const X_1 Real)
(assert (or (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1))
            (and (>= X_0 2) (<= X_0 3) (>= X_1 0) (<= X_1 1))))
"""


def run(*args):
    return subprocess.run([sys.executable, "-m", "exact_inj", *map(str, args)], capture_output=True, text=True)


def test_vnnlib_box_is_the_domain(tmp_path):
    net = tmp_path / "fig2.json"
    net.write_text(json.dumps(FIG2))
    prop = tmp_path / "p.vnnlib"
    prop.write_text(BOX)
    cert = tmp_path / "c.json"
    r = run("verify", net, "--domain", f"vnnlib:{prop}", "--json", "--quiet", "--certificate", cert)
    out = json.loads(r.stdout)
    # Figure 2's first matrix is not injective on R^2 but is on the unit box
    # (same verdict as --domain box:0:1,0:1), and the proof states that box.
    assert out["verdict"] == "injective" and r.returncode == 0
    assert out["domain"] == {"kind": "box", "lower": ["0", "0"], "upper": ["1", "1"]}
    assert exact_inj.check(cert).valid
    r2 = run("verify", net, "--domain", "box:0:1,0:1", "--json", "--quiet")
    assert json.loads(r2.stdout)["verdict"] == "injective"


def test_vnnlib_union_is_refused_not_split(tmp_path):
    net = tmp_path / "fig2.json"
    net.write_text(json.dumps(FIG2))
    prop = tmp_path / "u.vnnlib"
    prop.write_text(UNION)
    r = run("verify", net, "--domain", f"vnnlib:{prop}")
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.splitlines()) == 1 and "not convex" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("text", ["(declare-const X_0 Real)\n(assert (>= X_0 0))\n(assert (<= X_0 1))\n"])
def test_vnnlib_dimension_mismatch_is_bad_input(tmp_path, text):
    net = tmp_path / "fig2.json"
    net.write_text(json.dumps(FIG2))
    prop = tmp_path / "d.vnnlib"
    prop.write_text(text)
    r = run("verify", net, "--domain", f"vnnlib:{prop}")
    assert r.returncode == 2 and "inputs" in r.stderr and len(r.stderr.splitlines()) == 1
