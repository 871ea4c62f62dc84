"""`exact-inj compare` (exact_inj/compare.py): output formats and the refutation rules.

The CLI wiring lives in exact_inj/cli.py; here the subcommand is driven through
compare.add_parser/run on a parser of our own, which is what cli.py calls.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
from fractions import Fraction as F
from pathlib import Path

import pytest

import exact_inj
from exact_inj.studies import compare as C
from exact_inj.studies.heuristics import HEURISTICS, INJECTIVE, NO_COUNTEREXAMPLE, NOT_INJECTIVE, Claim, ball_domain
from exact_inj.io import InputError, load_network
from exact_inj.model import Layer, Network
from exact_inj.verdict import Status, Verdict

SET = Path(__file__).resolve().parent.parent / "instances" / "heuristics"
EXPECTED = json.loads((SET / "expected.json").read_text())
SMALL = [SET / "near_parallel_n2.json", SET / "lemma1_counterexample.json", SET / "thin_n3_broken.json",
         SET / "gaussian_n3_m7_not_injective.json"]


def _parse(argv):
    p = argparse.ArgumentParser(prog="exact-inj")
    sub = p.add_subparsers(dest="command")
    C.add_parser(sub)
    return p.parse_args(["compare", *argv])


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """One run over the whole curated set, all heuristics, files written."""
    out = tmp_path_factory.mktemp("cmp")
    return C.compare([SET], time_limit=30, seed=0, outdir=out), out


# --------------------------------------------------------------------------- output format


def test_json_shape_exact(full):
    result, _ = full
    assert set(result) == {"rows"}
    assert len(result["rows"]) == len(EXPECTED)
    for row in result["rows"]:
        assert set(row) == {"instance", "exact", "heuristics"}
        assert set(row["exact"]) == {"verdict", "seconds"}
        assert row["exact"]["verdict"] in ("injective", "not_injective", "unknown")
        assert isinstance(row["exact"]["seconds"], float)
        assert list(row["heuristics"]) == list(HEURISTICS)
        for name, h in row["heuristics"].items():
            assert h["claim"] in (INJECTIVE, NOT_INJECTIVE, NO_COUNTEREXAMPLE)
            assert isinstance(h["seconds"], float) and h["seconds"] >= 0
            assert isinstance(h["refuted"], bool)
    # JSON round trip, and the file written is the same object.
    assert json.loads(json.dumps(result)) == result


def test_files_written(full):
    result, out = full
    assert json.loads((out / "compare.json").read_text()) == result
    rows = list(csv.reader(io.StringIO((out / "compare.csv").read_text())))
    assert rows[0] == C.CSV_HEADER == ["instance", "exact_verdict", "exact_seconds", "heuristic", "claim", "domain",
                                       "supported", "seconds", "refuted", "refuting_certificate"]
    assert len(rows) == 1 + len(EXPECTED) * len(HEURISTICS)
    md = (out / "compare.md").read_text()
    assert md.startswith("| instance | exact (s) | " + " | ".join(HEURISTICS) + " |")
    assert md.count("\n| `") == len(EXPECTED)
    assert "**REFUTED**" in md and "Refutations:" in md


def test_engine_column_matches_expected(full):
    result, _ = full
    for row in result["rows"]:
        assert row["exact"]["verdict"] == EXPECTED[Path(row["instance"]).name]["verdict"]


def test_refutations_carry_valid_certificates(full):
    result, _ = full
    n = 0
    for row in result["rows"]:
        for h in row["heuristics"].values():
            if h["refuted"]:
                n += 1
                cert = exact_inj.load_certificate(h["refuting_certificate"])
                assert exact_inj.check(cert).valid
                assert cert.network == load_network(row["instance"])
                # the certificate proves the opposite of the claim
                assert cert.verdict.value != h["claim"]
            else:
                assert h["refuting_certificate"] is None
    assert n >= 10


def test_refutation_rules_on_the_curated_set(full):
    result, _ = full
    by = {Path(r["instance"]).name: r for r in result["rows"]}
    for row in result["rows"]:
        for name, h in row["heuristics"].items():
            if h["claim"] == NO_COUNTEREXAMPLE:
                assert not h["refuted"]
            if h.get("supported"):
                assert not h["refuted"] and not h.get("conflict")
            assert not h.get("conflict")
        # theorems on their own domain are never refuted
        assert not row["heuristics"]["expansivity_2n"]["refuted"]
        assert not row["heuristics"]["ball_bias_bound"]["refuted"]
    for name in ("gaussian_n2_m5_not_injective.json", "gaussian_n3_m7_not_injective.json",
                 "gaussian_n3_m10_not_injective.json", "gaussian_n4_m9_not_injective.json", "far_slab_n2.json"):
        assert by[name]["heuristics"]["expansivity_2_1n"]["refuted"], name
    for name in ("lemma1_counterexample.json", "lemma1_n2_injective.json", "lemma1_n3_injective.json"):
        assert by[name]["heuristics"]["lemma1"]["refuted"], name
    for h in ("sampling", "gradient", "jacobian_rank"):
        assert by["near_parallel_n2.json"]["heuristics"][h]["refuted"], h
    assert by["thin_n3_broken.json"]["heuristics"]["ball_sampled"]["refuted"]
    biased = by["thin_n2_biased_m5.json"]["heuristics"]["ball_sampled"]
    assert biased["refuted"] and "inside" in biased["against_exact"]
    assert exact_inj.load_certificate(biased["refuting_certificate"]).domain.kind == "box"
    ball = by["ball_three_rows.json"]["heuristics"]["ball_bias_bound"]
    assert ball["claim"] == INJECTIVE and not ball["refuted"] and ball["domain"] == "ball(center=0, radius=1)"


def test_table_lists_every_instance(full):
    result, _ = full
    t = C.format_table(result)
    lines = t.splitlines()
    assert lines[0].split()[:2] == ["instance", "exact"]
    for name in EXPECTED:
        assert any(line.startswith(name) for line in lines)
    assert "REFUTED" in t and "not?" in t and "@ball" in t


# --------------------------------------------------------------------------- refutation logic


def _claim(kind, domain="R^n", supported=False, radius=None, witness=None):
    return Claim("t", kind, 0.0, "", domain, witness, supported, "", ball_radius=radius)


def _verdict(layer_rows, bias=None):
    net = Network((Layer.from_rows(layer_rows, bias),))
    return net, exact_inj.verify(net, time_limit=10, milp="none")


def test_unknown_refutes_nothing():
    net = Network((Layer.from_rows([[1], [-1]], [1, -1]),))
    unknown = Verdict(Status.UNKNOWN, 1.0, "limit", "test")
    for kind in (INJECTIVE, NOT_INJECTIVE, NO_COUNTEREXAMPLE):
        res = C.refute(_claim(kind), unknown, net)
        assert not res["refuted"] and res["certificate"] is None
        if kind != NO_COUNTEREXAMPLE:
            assert "unknown" in res["reason"]


def test_unknown_from_the_engine_refutes_nothing():
    net = load_network(SET / "gaussian_n3_m12_injective.json")
    v = exact_inj.verify(net, time_limit=10, max_nodes=1, milp="none")
    assert v.status is Status.UNKNOWN
    assert not C.refute(_claim(NOT_INJECTIVE), v, net)["refuted"]


def test_no_counterexample_never_refuted():
    for rows, bias in (([[1], [-1]], [1, -1]), ([[1]], [0])):  # injective, not injective
        net, v = _verdict(rows, bias)
        assert v.status is not Status.UNKNOWN
        res = C.refute(_claim(NO_COUNTEREXAMPLE), v, net)
        assert not res["refuted"] and "never refuted" in res["reason"]


def test_opposite_checked_verdicts_refute():
    net, v = _verdict([[1], [-1]], [1, -1])  # injective
    res = C.refute(_claim(NOT_INJECTIVE), v, net)
    assert res["refuted"] and res["certificate"] is v.certificate
    assert not C.refute(_claim(INJECTIVE), v, net)["refuted"]
    net, v = _verdict([[1]], [0])  # not injective
    assert C.refute(_claim(INJECTIVE), v, net)["refuted"]
    assert not C.refute(_claim(NOT_INJECTIVE), v, net)["refuted"]


def test_supported_claim_against_a_proof_is_a_conflict_not_a_refutation():
    from exact_inj.certify.schema import Witness

    net, v = _verdict([[1], [-1]], [1, -1])
    fake = Witness((F(0),), (F(1),))
    res = C.refute(_claim(NOT_INJECTIVE, supported=True, witness=fake), v, net)
    assert not res["refuted"] and res["conflict"]


def test_ball_claims():
    # Biased, not injective on R^n, injective on the unit ball: the engine's
    # witness lies outside the ball and cannot refute the ball claim.
    net = load_network(SET / "ball_three_rows.json")
    v = exact_inj.verify(net, time_limit=10, milp="none")
    c = _claim(INJECTIVE, ball_domain(F(1)), radius=F(1))
    res = C.refute(c, v, net)
    assert not res["refuted"] and "outside" in res["reason"]
    # With domains: injective on the box [-1/2, 1/2]^2 inside the ball, so still not refuted.
    res = C.refute(c, v, net, lambda box: exact_inj.verify(net, time_limit=10, milp="none", domain=box))
    assert not res["refuted"] and "[-1/2, 1/2]" in res["reason"]
    # "not injective on the ball" against a proof on the box [-1, 1]^2 containing it.
    res = C.refute(_claim(NOT_INJECTIVE, ball_domain(F(1)), radius=F(1)), v, net,
                   lambda box: exact_inj.verify(net, time_limit=10, milp="none", domain=box))
    assert res["refuted"] and res["certificate"].domain.kind == "box" and "contains" in res["reason"]
    assert exact_inj.check(res["certificate"]).valid
    # A proof on R^n refutes "not injective on the ball" (R^n contains the ball).
    net2, v2 = _verdict([[1], [-1]], [1, -1])
    res = C.refute(_claim(NOT_INJECTIVE, ball_domain(F(3)), radius=F(3)), v2, net2)
    assert res["refuted"] and "contains" in res["reason"]
    # Bias-free and not injective: the witness, scaled, refutes on any ball.
    net3, v3 = _verdict([[1, 0], [0, 1], [-1, -1]], [0, 0, 0])
    r = F(1, 1000)
    res = C.refute(_claim(INJECTIVE, ball_domain(r), radius=r), v3, net3)
    assert res["refuted"] and res["certificate"] is not v3.certificate
    w = res["certificate"].evidence
    assert sum(t * t for t in w.x) <= r * r and sum(t * t for t in w.y) <= r * r
    assert exact_inj.check(res["certificate"]).valid


# --------------------------------------------------------------------------- API and CLI


def test_collect_folders_and_files(tmp_path):
    d = tmp_path / "set"
    d.mkdir()
    for name in ("b.json", "a.json", "expected.json"):
        shutil.copy(SET / "lemma1_counterexample.json", d / name)
    (d / "notes.txt").write_text("x")
    got = C.collect([d, SET / "thin_n3_injective.json"])
    assert [Path(p).name for p in got] == ["a.json", "b.json", "thin_n3_injective.json"]


@pytest.mark.parametrize("bad", ["no/such/file.json", "EMPTY"])
def test_bad_paths_are_one_line_input_errors(tmp_path, bad):
    if bad == "EMPTY":
        bad = tmp_path / "empty"
        bad.mkdir()
    with pytest.raises(InputError) as e:
        C.compare([bad], time_limit=5)
    assert "\n" not in str(e.value) and str(bad) in str(e.value)


def test_unknown_heuristic_is_an_input_error():
    with pytest.raises(InputError, match="unknown heuristic"):
        C.compare(SMALL[:1], heuristics=["sampling", "nope"])
    with pytest.raises(SystemExit):
        _parse([str(SMALL[0]), "--heuristics", "nope"])


def test_seeded_runs_repeat():
    a = C.compare(SMALL, time_limit=10, seed=3, heuristics=["sampling", "gradient", "ball_sampled"])
    b = C.compare(SMALL, time_limit=10, seed=3, heuristics=["sampling", "gradient", "ball_sampled"])

    def strip(res):
        return [[(n, h["claim"], h["refuted"], h.get("witness")) for n, h in r["heuristics"].items()]
                for r in res["rows"]]

    assert strip(a) == strip(b)


def test_cli_json_is_exactly_one_object(tmp_path, capsys):
    args = _parse([*map(str, SMALL), "--json", "--out", str(tmp_path / "o"), "--heuristics",
                   "lemma1,expansivity_2_1n", "--time-limit", "10", "--seed", "1"])
    assert C.run(args) == 0
    cap = capsys.readouterr()
    obj = json.loads(cap.out)  # exactly one JSON document
    assert set(obj) == {"rows"} and len(obj["rows"]) == len(SMALL)
    assert list(obj["rows"][0]["heuristics"]) == ["lemma1", "expansivity_2_1n"]
    assert "compare" in cap.err  # progress went to stderr
    assert (tmp_path / "o" / "compare.md").exists()


def test_cli_table_and_quiet(tmp_path, capsys):
    args = _parse([str(SMALL[0]), "--out", str(tmp_path / "o"), "--quiet", "--heuristics", "sampling",
                   "--ball-radius", "1/2"])
    assert C.run(args) == 0
    cap = capsys.readouterr()
    assert cap.err == ""
    assert cap.out.splitlines()[0].split() == ["instance", "exact", "sampling"]
    assert "near_parallel_n2.json" in cap.out and "REFUTED" in cap.out
