"""The command line: exit codes, stdout/stderr discipline, certificates, bad input.

Contract (exact_inj/cli.py, docs): verify exits 0 injective, 1 not injective,
3 unknown; check exits 0 valid, 1 invalid; 2 is bad input or usage, always a
single stderr line and never a traceback.  stdout carries results only: with
--json exactly one JSON object.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from fractions import Fraction as F
from pathlib import Path

import numpy as np
import pytest

import exact_inj
from exact_inj.cli import app as cli

FIG2_NOT = {"name": "fig2_not", "layers": [{"weight": [[2, 1], [-2, 2], [-1.5, -2], [2, -1]]}]}
FIG2_INJ = {"name": "fig2_inj", "layers": [{"weight": [[2, 1], [-2, 1], [-2, -1], [2, -1]]}]}
# Injective by a tree proof (no antiparallel rows).  Bias-free it is injective
# (every closed half-plane holds >= 2 rows); biases >= 0 keep it so (docs/theory.md, section 7's chain).
TREE_INJ = {
    "layers": [{
        "weight": [[1, 0], [0, 1], [-1, -1], [-1, 2], [2, -1], [1, -3], [-2, 1]],
        "bias": [1, 0, 1, 0, 1, 0, "1/2"],
    }]
}
FRACTION_RE = re.compile(r"^-?[0-9]+(/[0-9]+)?$")


def write(tmp_path: Path, name: str, obj_or_text) -> Path:
    p = tmp_path / name
    if isinstance(obj_or_text, bytes):
        p.write_bytes(obj_or_text)
    else:
        p.write_text(obj_or_text if isinstance(obj_or_text, str) else json.dumps(obj_or_text))
    return p


def run(*args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "exact_inj", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def gaussian_layer(seed: int, m: int, n: int) -> dict:
    rng = np.random.default_rng(seed)
    W = [[f"{int(round(x * 1000))}/1000" for x in row] for row in rng.standard_normal((m, n))]
    return {"layers": [{"weight": W}]}


def own_eval(layer: dict, x) -> list[F]:
    W = [[F(str(v)) for v in row] for row in layer["weight"]]
    b = [F(str(v)) for v in layer.get("bias", [0] * len(W))]
    return [max(sum((w * xi for w, xi in zip(row, x)), bi), F(0)) for row, bi in zip(W, b)]


def assert_one_line_error(r: subprocess.CompletedProcess, must_name: str | None = None) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    if must_name is not None:
        assert must_name in lines[0], lines[0]


# --------------------------------------------------------------------------- exit codes


def test_exit_0_injective_and_1_not_injective(tmp_path):
    r = run("verify", write(tmp_path, "inj.json", FIG2_INJ))
    assert r.returncode == 0, r.stderr
    assert "INJECTIVE" in r.stdout and "NOT" not in r.stdout
    r = run("verify", write(tmp_path, "not.json", FIG2_NOT))
    assert r.returncode == 1, r.stderr
    assert "NOT INJECTIVE" in r.stdout


def test_exit_3_unknown_with_max_nodes(tmp_path):
    # Seeded Gaussian 34 x 5: decided by a tree of ~900 nodes, so 5 nodes are not enough.
    p = write(tmp_path, "hard5.json", gaussian_layer(0, 34, 5))
    r = run("verify", p, "--max-nodes", "5", "--json", "--milp", "none")
    assert r.returncode == 3, (r.stdout, r.stderr)
    out = json.loads(r.stdout)
    assert out["verdict"] == "unknown" and "witness" not in out and "proof_kind" not in out
    # The same layer without the limit is decided.
    assert exact_inj.verify(str(p), time_limit=60).status.value in ("injective", "not_injective")


def test_exit_3_unknown_with_time_limit(tmp_path):
    p = write(tmp_path, "hard10.json", gaussian_layer(0, 67, 10))
    out_cert = tmp_path / "never.json"
    r = run("verify", p, "--time-limit", "0.5", "--json", "--certificate", out_cert)
    assert r.returncode == 3, (r.stdout, r.stderr)
    obj = json.loads(r.stdout)
    assert obj["verdict"] == "unknown"
    assert not out_cert.exists()
    assert "no certificate written" in r.stderr
    assert "Traceback" not in r.stderr


def test_cli_main_in_process_exit_codes(tmp_path, capsys):
    assert cli.main(["verify", str(write(tmp_path, "a.json", FIG2_INJ))]) == 0
    assert cli.main(["verify", str(write(tmp_path, "b.json", FIG2_NOT))]) == 1
    assert cli.main(["verify", str(write(tmp_path, "c.json", TREE_INJ)), "--quiet"]) == 0
    assert cli.main(["verify", str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err
    assert "missing.json" in err and "Traceback" not in err


# --------------------------------------------------------------------------- --json


def test_json_output_not_injective(tmp_path):
    r = run("verify", write(tmp_path, "not.json", FIG2_NOT), "--json")
    assert r.returncode == 1
    assert r.stdout.count("\n") == 1 and r.stdout.endswith("\n")
    obj = json.loads(r.stdout)
    assert isinstance(obj, dict)
    assert obj["verdict"] == "not_injective"
    assert isinstance(obj["seconds"], (int, float)) and obj["seconds"] >= 0
    w = obj["witness"]
    assert set(w) >= {"x", "y"}
    assert all(isinstance(v, str) and FRACTION_RE.match(v) for v in w["x"] + w["y"]), w
    x, y = [F(v) for v in w["x"]], [F(v) for v in w["y"]]
    layer = {"weight": [[2, 1], [-2, 2], ["-3/2", -2], [2, -1]]}
    assert x != y and own_eval(layer, x) == own_eval(layer, y)


def test_json_output_injective(tmp_path):
    for obj_in in (FIG2_INJ, TREE_INJ):
        r = run("verify", write(tmp_path, "inj.json", obj_in), "--json")
        assert r.returncode == 0, r.stderr
        obj = json.loads(r.stdout)
        assert obj["verdict"] == "injective" and "seconds" in obj and "witness" not in obj


def test_json_in_process_exactly_one_object(tmp_path, capsys):
    for obj_in, code in ((FIG2_NOT, 1), (FIG2_INJ, 0), (TREE_INJ, 0)):
        assert cli.main(["verify", str(write(tmp_path, "n.json", obj_in)), "--json"]) == code
        out = capsys.readouterr().out
        assert len(out.strip().splitlines()) == 1
        decoder = json.JSONDecoder()
        obj, end = decoder.raw_decode(out)
        assert out[end:].strip() == ""
        assert obj["verdict"] == ("injective" if code == 0 else "not_injective")


def test_witness_strings_are_exact_fractions(tmp_path):
    # A layer whose witness needs non-integers: dead zone scaled to [-1/3, 1/3].
    layer = {"weight": [[3], [-3]], "bias": [-1, -1]}
    r = run("verify", write(tmp_path, "dz.json", {"layers": [layer]}), "--json")
    assert r.returncode == 1
    w = json.loads(r.stdout)["witness"]
    x, y = F(w["x"][0]), F(w["y"][0])
    assert all(FRACTION_RE.match(v) for v in w["x"] + w["y"])
    assert x != y and -F(1, 3) <= x <= F(1, 3) and -F(1, 3) <= y <= F(1, 3)


def test_progress_goes_to_stderr_never_stdout_real_run(tmp_path):
    # A real 4.5 s run on a hard layer (n = 10, m = 67: about a minute or more even with
    # the faster search of issue 17): a heartbeat line within 2 s, then every 2 s,
    # with the route, the work done (or "no estimate") and the time.
    p = write(tmp_path, "hard10.json", gaussian_layer(0, 67, 10))
    r = run("verify", p, "--time-limit", "4.5", "--milp", "none")
    assert r.returncode == 3, (r.stdout, r.stderr)
    lines = [s for s in r.stderr.splitlines() if s.startswith("exact-inj: [")]
    assert len(lines) >= 2 and "tree" in lines[0] and "s left of the" in lines[0]
    assert "nodes" in lines[-1]  # the search's counters, once it has reported them
    assert float(lines[0].split("[")[1].split("s]")[0]) <= 2.0
    assert "UNKNOWN" in r.stdout and "exact-inj: [" not in r.stdout
    # --json silences it (one JSON object on stdout, nothing on stderr)...
    r = run("verify", p, "--time-limit", "3", "--json", "--milp", "none")
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert len(r.stdout.strip().splitlines()) == 1 and json.loads(r.stdout)["verdict"] == "unknown"
    assert r.stderr == ""
    # ... and so does --quiet.
    r = run("verify", p, "--time-limit", "0.5", "--quiet", "--milp", "none")
    assert r.returncode == 3 and r.stderr == "" and "UNKNOWN" in r.stdout


def test_progress_goes_to_stderr_never_stdout(tmp_path, capsys, monkeypatch):
    # In process, with the heartbeat sped up so that it reports every 10 ms.
    import exact_inj.run as run_mod

    monkeypatch.setattr(run_mod, "FIRST_REPORT", 0.0)
    monkeypatch.setattr(run_mod, "REPORT_EVERY", 0.01)
    p = write(tmp_path, "hard5.json", gaussian_layer(0, 34, 5))
    code = cli.main(["verify", str(p), "--json", "--max-nodes", "200", "--milp", "none"])
    cap = capsys.readouterr()
    assert code == 3, cap
    assert cap.err == ""  # --json: no progress at all ...
    assert len(cap.out.strip().splitlines()) == 1  # ... and one object on stdout
    assert json.loads(cap.out)["verdict"] == "unknown"
    # Human-readable mode: the result lines are on stdout, progress on stderr.
    code = cli.main(["verify", str(p), "--max-nodes", "200", "--milp", "none"])
    cap = capsys.readouterr()
    assert code == 3 and "UNKNOWN" in cap.out and "exact-inj: [" in cap.err and "exact-inj: [" not in cap.out
    assert "raise --max-nodes" in cap.out  # the limit that stopped it is the one named
    assert not any(line.startswith("exact-inj: [") for line in cap.out.splitlines())


# --------------------------------------------------------------------------- --certificate and check


@pytest.mark.parametrize("obj_in,code,key", [(FIG2_NOT, 1, "witness"), (FIG2_INJ, 0, "proof"), (TREE_INJ, 0, "proof")])
def test_certificate_file_and_check(tmp_path, obj_in, code, key):
    net = write(tmp_path, "net.json", obj_in)
    cert = tmp_path / "cert.json"
    r = run("verify", net, "--certificate", cert)
    assert r.returncode == code, r.stderr
    obj = json.loads(cert.read_text())
    assert {"network", "verdict", key} <= set(obj)
    assert obj["verdict"] == ("injective" if code == 0 else "not_injective")
    other = "proof" if key == "witness" else "witness"
    assert other not in obj
    # Every number in the embedded network is a string.
    for row in obj["network"]["layers"][0]["weight"]:
        assert all(isinstance(v, str) for v in row)
    r = run("check", cert)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "VALID" in r.stdout and "INVALID" not in r.stdout


def test_check_invalid_exit_1_with_reason(tmp_path, capsys):
    net = write(tmp_path, "net.json", FIG2_NOT)
    cert = tmp_path / "cert.json"
    assert cli.main(["verify", str(net), "--certificate", str(cert), "--quiet"]) == 1
    obj = json.loads(cert.read_text())
    x = [F(v) for v in obj["witness"]["x"]]
    y = [F(v) + 1 for v in obj["witness"]["y"]]  # move y: outputs now differ
    layer = {"weight": [[2, 1], [-2, 2], ["-3/2", -2], [2, -1]]}
    assert own_eval(layer, x) != own_eval(layer, y)
    obj["witness"]["y"] = [str(v) for v in y]
    bad = write(tmp_path, "bad.json", obj)
    capsys.readouterr()
    assert cli.main(["check", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "INVALID" in out and "differ" in out
    # Subprocess, and --json
    r = run("check", bad, "--json")
    assert r.returncode == 1
    res = json.loads(r.stdout)
    assert res["valid"] is False and "differ" in res["reason"]
    # A tree proof with its last entry dropped.
    cert2 = tmp_path / "cert2.json"
    assert cli.main(["verify", str(write(tmp_path, "t.json", TREE_INJ)), "--certificate", str(cert2)]) == 0
    obj2 = json.loads(cert2.read_text())
    assert obj2["proof"]["kind"] == "tree"
    obj2["proof"]["tree"] = obj2["proof"]["tree"][:-1]
    capsys.readouterr()
    assert cli.main(["check", str(write(tmp_path, "bad2.json", obj2))]) == 1
    assert "INVALID" in capsys.readouterr().out


def test_check_json_valid(tmp_path):
    cert = tmp_path / "cert.json"
    assert run("verify", write(tmp_path, "n.json", FIG2_INJ), "--certificate", cert).returncode == 0
    r = run("check", cert, "--json")
    assert r.returncode == 0
    obj = json.loads(r.stdout)
    assert obj["valid"] is True and obj["verdict"] == "injective"


@pytest.fixture
def good_cert(tmp_path) -> dict:
    cert = tmp_path / "good.json"
    assert cli.main(["verify", str(write(tmp_path, "n.json", FIG2_NOT)), "--certificate", str(cert), "--quiet"]) == 1
    return json.loads(cert.read_text())


def _bad_certs(good: dict) -> dict:
    import copy

    text = json.dumps(good)
    out: dict = {
        "truncated.json": text[: len(text) // 2],
        "garbage.json": bytes(range(256)) * 3,
        "empty.json": "",
        "list.json": "[1, 2, 3]",
    }
    for key in ("network", "verdict", "witness"):
        d = copy.deepcopy(good)
        del d[key]
        out[f"no_{key}.json"] = d
    for verdict in ("maybe", "unknown", 1, None):
        d = copy.deepcopy(good)
        d["verdict"] = verdict
        out[f"verdict_{verdict}.json"] = d
    for k, bad_number in enumerate(("1/0", "NaN", "abc", True, None, "0x10", "1e99999")):
        d = copy.deepcopy(good)
        d["network"]["layers"][0]["weight"][0][0] = bad_number
        out[f"netnum_{k}.json"] = d
    d = copy.deepcopy(good)
    d["network"]["layers"][0]["weight"][1] = ["1"]
    out["net_ragged.json"] = d
    d = copy.deepcopy(good)
    d["witness"]["x"] = ["1/0", "1"]
    out["witness_number.json"] = d
    d = copy.deepcopy(good)
    d["witness"] = {"kind": "tree"}
    out["witness_shape.json"] = d
    d = copy.deepcopy(good)
    d["verdict"] = "injective"
    d["proof"] = {"kind": "magic"}
    out["proof_kind.json"] = d
    d = copy.deepcopy(good)
    d["verdict"] = "injective"
    d["proof"] = {"kind": "tree", "cores": [], "tree": [0.5]}
    out["proof_tree_float.json"] = d
    d = copy.deepcopy(good)
    d["domain"] = {"kind": "ball"}
    out["domain.json"] = d
    return out


def test_check_bad_certificate_files_exit_2_one_line(tmp_path, good_cert):
    cases = _bad_certs(good_cert)
    # In process for all of them ...
    for name, content in cases.items():
        p = write(tmp_path, name, content if isinstance(content, (str, bytes)) else json.dumps(content))
        r_code = cli.main(["check", str(p)])
        assert r_code == 2, name
    # ... and through a real process for the kinds the contract names, plus a missing file.
    for name in ("truncated.json", "garbage.json", "no_network.json", "verdict_maybe.json",
                 "netnum_0.json", "witness_number.json"):
        r = run("check", tmp_path / name)
        assert_one_line_error(r, name)
    r = run("check", tmp_path / "nope.json")
    assert_one_line_error(r, "nope.json")


def test_check_bad_certificates_in_process_messages(tmp_path, good_cert, capsys):
    for name, content in _bad_certs(good_cert).items():
        p = write(tmp_path, name, content if isinstance(content, (str, bytes)) else json.dumps(content))
        capsys.readouterr()
        assert cli.main(["check", str(p)]) == 2, name
        cap = capsys.readouterr()
        assert cap.out == "", name
        lines = cap.err.splitlines()
        assert len(lines) == 1 and p.name in lines[0] and "Traceback" not in cap.err, (name, cap.err)


# --------------------------------------------------------------------------- bad input to verify

BAD_INPUTS = {
    "ragged.json": '{"layers": [{"weight": [[1, 2], [3]]}]}',
    "empty_weights.json": '{"layers": [{"weight": []}]}',
    "empty_rows.json": '{"layers": [{"weight": [[], []]}]}',
    "nan.json": '{"layers": [{"weight": [[NaN], [1]]}]}',
    "infinity.json": '{"layers": [{"weight": [[Infinity], [-1]]}]}',
    "minus_infinity.json": '{"layers": [{"weight": [[1], [-Infinity]]}]}',
    "div_zero.json": '{"layers": [{"weight": [["1/0"], [1]]}]}',
    "activation.json": '{"layers": [{"weight": [[1], [-1]], "activation": "tanh"}]}',
    "bias_length.json": '{"layers": [{"weight": [[1], [-1]], "bias": [1]}]}',
    "truncated.json": '{"layers": [{"weight": [[1], [-1',
    "binary.json": bytes(range(256)),
    "empty_file.json": "",
    "no_layers.json": '{"weights": [[1]]}',
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_verify_bad_input_exit_2(tmp_path, name):
    p = write(tmp_path, name, BAD_INPUTS[name])
    r = run("verify", p, "--json")
    assert_one_line_error(r, str(p))


def test_verify_missing_file_exit_2(tmp_path):
    p = tmp_path / "does_not_exist.json"
    assert_one_line_error(run("verify", p), str(p))


def test_verify_networks_and_linear_layers(tmp_path, capsys):
    # Networks and linear layers are decided (layerwise route), with a
    # certificate that `check` accepts.
    # (Not [[1, 0], [0, 1]] second: that carries the input through, which the carry route answers first.)
    two = {"layers": [{"weight": [[1], [-1]]}, {"weight": [[2, 0], [0, 1]]}]}
    lin = {"layers": [{"weight": [[1], [-1]], "activation": "linear"}]}
    for obj in (two, lin):
        p = write(tmp_path, "u.json", obj)
        cert = tmp_path / "u-cert.json"
        capsys.readouterr()
        assert cli.main(["verify", str(p), "--json", "--certificate", str(cert), "--quiet"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["verdict"] == "injective" and out["route"] == "layerwise"
        assert cli.main(["check", str(cert)]) == 0


def test_certificate_into_missing_directory_exit_2(tmp_path):
    r = run("verify", write(tmp_path, "n.json", FIG2_INJ), "--certificate", tmp_path / "no" / "such" / "c.json")
    assert_one_line_error(r)


# --------------------------------------------------------------------------- usage


@pytest.mark.parametrize("argv", [
    [],
    ["frobnicate"],
    ["verify"],
    ["verify", "x.json", "--time-limit", "0"],
    ["verify", "x.json", "--time-limit", "-1"],
    ["verify", "x.json", "--time-limit", "abc"],
    ["verify", "x.json", "--max-nodes", "many"],
    ["verify", "x.json", "--milp", "gurobi"],
    ["verify", "x.json", "--no-such-flag"],
    ["check"],
])
def test_usage_errors_exit_2(argv):
    r = run(*argv)
    assert r.returncode == 2, (argv, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stderr.strip()


@pytest.mark.parametrize("sub,phrases", [
    ("verify", ["exit codes", "0 injective", "1 not injective", "3 unknown", "2 bad input"]),
    ("check", ["exit codes", "0 certificate valid", "1 certificate invalid", "2 bad input"]),
])
def test_help_mentions_exit_codes(sub, phrases, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([sub, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for ph in phrases:
        assert ph in out, ph


def test_python_dash_m_works(tmp_path):
    r = run("--version")
    assert r.returncode == 0 and exact_inj.__version__ in r.stdout
    r = run("--help")
    assert r.returncode == 0 and "verify" in r.stdout and "check" in r.stdout
    r = run("verify", write(tmp_path, "n.json", FIG2_NOT), "--quiet")
    assert r.returncode == 1 and "NOT INJECTIVE" in r.stdout


# --------------------------------------------------------------------------- export-milp


def test_export_milp_writes_files(tmp_path, capsys):
    net = write(tmp_path, "n.json", FIG2_NOT)
    out = tmp_path / "model.lp"
    r = run("export-milp", net, out)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert len(text) > 50 and re.search(r"(?i)subject to", text)
    mps = tmp_path / "model.mps"
    assert cli.main(["export-milp", str(net), str(mps)]) == 0
    assert mps.stat().st_size > 50
    assert cli.main(["export-milp", str(net), str(tmp_path / "model.txt")]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "model.txt" in err
    assert cli.main(["export-milp", str(tmp_path / "missing.json"), str(out)]) == 2


def test_check_invalid_certificate_with_huge_number_exits_1(tmp_path):
    limit = sys.get_int_max_str_digits()
    if limit == 0:
        pytest.skip("no int-to-str digit limit in this interpreter")
    # x = 10^-(limit+100), y = 1 under W = [1; -1]: outputs (x, 0) and (1, 0) differ.
    tiny = "1/1" + "0" * (limit + 100)
    cert = {
        "format": "exact_inj/certificate", "version": 1,
        "network": {"layers": [{"weight": [["1"], ["-1"]], "bias": ["0", "0"], "activation": "relu"}]},
        "domain": {"kind": "reals"}, "verdict": "not_injective",
        "witness": {"x": [tiny], "y": ["1"]},
    }
    r = run("check", write(tmp_path, "huge.json", cert))
    assert "Traceback" not in r.stderr
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr[:300])


def test_gzip_certificate_and_workers(tmp_path, capsys):
    """--certificate NAME.gz writes gzip JSON that check reads back; a corrupt
    one is a one-line input error; --workers 2 gives the same verdict."""
    import gzip

    net = write(tmp_path, "t.json", TREE_INJ)
    cert = tmp_path / "cert.json.gz"
    assert cli.main(["verify", str(net), "--certificate", str(cert), "--quiet", "--workers", "2"]) == 0
    obj = json.loads(gzip.decompress(cert.read_bytes()))
    assert obj["verdict"] == "injective"
    capsys.readouterr()
    assert cli.main(["check", str(cert)]) == 0
    assert "VALID" in capsys.readouterr().out
    bad = write(tmp_path, "bad.json.gz", cert.read_bytes()[:40])
    assert_one_line_error(run("check", bad), "gzip")


def test_the_light_parser_names_every_subcommand_of_the_full_one():
    # verify/check build the parser without importing the other subcommands'
    # modules; the names must still be the full parser's, in the same order.
    def names(p):
        return list(next(a for a in p._actions if isinstance(a, cli.argparse._SubParsersAction)).choices)

    full = names(cli._parser())
    for command in ("verify", "check", "export-milp"):
        assert names(cli._parser(command)) == full
    assert set(cli._OTHER_COMMANDS) < set(full)
