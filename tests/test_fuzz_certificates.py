"""Fuzzing `exact-inj check` on every certificate kind, and `check()` on malformed objects (issue #18).

Each target starts from a valid certificate the engine made (tests/fuzzing.py,
CERT_SOURCES) and feeds `exact-inj check` near-valid mutants and random bytes.
Property: exit 0 (then the certificate is confirmed true by the independent
references) or 1, or exit 2 with one line naming the file; never exit 4, never
a traceback, within the time bound.  The default suite runs DEFAULT_EXAMPLES
per kind; `-m slow` runs SLOW_EXAMPLES (docs/testing.md has the figures).
"""

from __future__ import annotations

import json
from dataclasses import replace
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exact_inj.certify import check as certify_check
from exact_inj.certify.schema import Certificate, Status, TreeProof, Witness

from fuzzing import (CERT_KINDS, DEFAULT_EXAMPLES, SLOW_EXAMPLES, assert_contract, base_certificate,
                     confirm_accepted, fuzz_settings, mutated_json, plain_json, run_cli, schema_errors)

KINDS = CERT_KINDS
# The kinds that are exact_inj/certificate documents (the preimage answers of
# `invert` are their own format, exact_inj/inverse, with no Python object).
CERTIFICATE_KINDS = [k for k in KINDS if not k.startswith("inverse_")]


def _fuzz_check(kind: str, n: int, tmp_path_factory) -> dict:
    base = base_certificate(kind)
    where = tmp_path_factory.mktemp(f"fuzz_{kind}")
    counts = {0: 0, 1: 0, 2: 0}

    @fuzz_settings(n)
    @given(st.data())
    def run(data):
        path = where / "cert.json"
        path.write_bytes(mutated_json(data, base))
        rc, out, err, secs = run_cli(["check", str(path)])
        assert_contract(rc, out, err, secs, str(path), {0, 1})
        counts[rc] += 1
        if rc == 0:
            confirm_accepted(path)
        # The reader took it (exit 1: parsed, then found invalid), so the
        # shipped schema must too (never stricter than the reader;
        # docs/certificates.md).  A preimage answer's checker answers exit 1
        # for a malformed shape as well, so there only accepted ones count.
        if rc in (0, 1) if kind in CERTIFICATE_KINDS else rc == 0:
            doc = plain_json(path)
            if doc is not None:
                name = "certificate" if kind in CERTIFICATE_KINDS else "inverse"
                assert schema_errors(name, doc) == [], "the reader accepts what the schema refuses"

    run()
    return counts


@pytest.mark.parametrize("kind", KINDS)
def test_base_certificate_is_valid(kind, tmp_path):
    # The fuzz targets start from valid documents: otherwise every mutant would
    # be rejected for the base's own fault and the fuzzing would test nothing.
    path = tmp_path / "c.json"
    path.write_text(json.dumps(base_certificate(kind)))
    rc, out, err, _ = run_cli(["check", str(path)])
    assert rc == 0, out + err
    confirm_accepted(path)


@pytest.mark.parametrize("kind", KINDS)
def test_fuzz_check(kind, tmp_path_factory):
    counts = _fuzz_check(kind, DEFAULT_EXAMPLES, tmp_path_factory)
    # Near-valid mutants must reach past the parser, or the checks were not exercised.
    assert counts[1] + counts[0] > 0, counts


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_fuzz_check_slow(kind, tmp_path_factory):
    counts = _fuzz_check(kind, SLOW_EXAMPLES, tmp_path_factory)
    print(f"\n{kind}: {sum(counts.values())} examples, exit codes {counts}")


# --------------------------------------------------------------------------
# the Python API: check() answers for any object, never raises
# --------------------------------------------------------------------------


def _valid_witness_certificate() -> Certificate:
    return Certificate.from_json(base_certificate("witness"))


ODD = [None, "x", "injective", 0, 1.5, Fraction(1, 2), (), [], {}, object(), 10**5000, [10**5000], ("a", "b"),
       (None,), ((1, 2),), float("nan"), True, b"\x00"]


@fuzz_settings(DEFAULT_EXAMPLES)
@given(st.data())
def test_check_never_raises_on_malformed_objects(data):
    """Any field of any certificate replaced by an odd object: check() returns, never raises."""
    kind = data.draw(st.sampled_from(CERTIFICATE_KINDS))
    cert = Certificate.from_json(base_certificate(kind))
    ev = cert.evidence
    target = data.draw(st.sampled_from(["certificate", "network", "domain", "verdict", "evidence", "evidence field"]))
    value = data.draw(st.sampled_from(ODD))
    if target == "certificate":
        obj = value
    elif target == "evidence field" and hasattr(ev, "__dataclass_fields__") and ev.__dataclass_fields__:
        field = data.draw(st.sampled_from(sorted(ev.__dataclass_fields__)))
        obj = replace(cert, evidence=replace(ev, **{field: value}))
    elif target in ("network", "domain", "verdict", "evidence"):
        obj = replace(cert, **{target: value})
    else:
        obj = replace(cert, evidence=value)
    res = certify_check(obj)
    assert res.valid is False
    assert isinstance(res.reason, str) and res.reason and "\n" not in res.reason and len(res.reason) < 600


def test_check_never_raises_regressions():
    # The cases issue #18 reported: a verdict given as a string, cores=None.
    cert = _valid_witness_certificate()
    res = certify_check(replace(cert, verdict="not_injective"))
    assert not res.valid and "Status" in res.reason
    tree = Certificate.from_json(base_certificate("tree"))
    res = certify_check(replace(tree, evidence=TreeProof(None, tree.evidence.tree)))
    assert not res.valid and "malformed" in res.reason
    res = certify_check(replace(cert, evidence=Witness(None, cert.evidence.y)))
    assert not res.valid
    assert not certify_check(None).valid
    assert not certify_check({"verdict": "injective"}).valid
    assert not certify_check("cert.json").valid  # a path is for exact_inj.check (api), not the checker
    # A huge number in a Python-built witness: the reason is one short line.
    res = certify_check(replace(cert, evidence=Witness((Fraction(10**5000), Fraction(1)), cert.evidence.y)))
    assert not res.valid and "digits" in res.reason and len(res.reason) < 300
    # The valid certificate itself still passes (the guards reject by type, not by luck).
    assert certify_check(cert).valid
    assert Status.NOT_INJECTIVE is cert.verdict


@pytest.mark.parametrize("version", [2, True, "1", 1.0])
def test_inverse_answer_of_an_unknown_version_is_refused(version, tmp_path):
    # A preimage answer (exact_inj/inverse) was checked whatever its
    # "version" said, so a version-2 file would be read under version-1
    # rules (docs/certificates.md, Versions).  Refused now: exit 2 naming the
    # file, and invalid through the Python API.
    from exact_inj.certify.inverse import check_inverse_file

    doc = base_certificate("inverse_point")
    assert check_inverse_file(doc)[0]
    doc["version"] = version
    path = tmp_path / "answer.json"
    path.write_text(json.dumps(doc))
    rc, out, err, secs = run_cli(["check", str(path)])
    assert rc == 2 and "version" in err, (rc, out, err)
    assert_contract(rc, out, err, secs, str(path), {0, 1})
    ok, why = check_inverse_file(doc)
    assert not ok and "version" in why


@pytest.mark.parametrize("kind", ["inverse_set", "witness"])
def test_huge_number_as_a_domain_regression(kind, tmp_path):
    # Found by the inverse_set fuzz target: a 5001-digit integer as the
    # domain made Domain.from_json quote it with str(), which Python refuses
    # past 4,300 digits (exit 4).  Now a short message, never exit 4.
    doc = base_certificate(kind)
    text = json.dumps(doc).replace(json.dumps(doc["domain"]), "1" + "0" * 5000)
    path = tmp_path / "c.json"
    path.write_text(text)
    rc, out, err, secs = run_cli(["check", str(path)])
    assert rc in (1, 2), (rc, err[:300])
    assert_contract(rc, out, err, secs, str(path), {1})
    assert "Traceback" not in err and len(out) + len(err) < 1000


@pytest.mark.parametrize("kind", ["inverse_point", "inverse_set"])
def test_huge_number_in_a_preimage_answer_regression(kind, tmp_path):
    # Found by the slow inverse fuzz targets: a 5001-digit integer as the
    # "preimage" field gave exit 4 (the CLI printed it with str()).
    doc = base_certificate(kind)
    doc["preimage"] = "HUGE"
    path = tmp_path / "a.json"
    path.write_text(json.dumps(doc).replace('"HUGE"', "1" + "0" * 5000))
    rc, out, err, secs = run_cli(["check", str(path)])
    assert rc == 1, (rc, out[:300], err[:300])
    assert_contract(rc, out, err, secs, str(path), {1})
    assert len(out) < 1000 and "5001 digits" in out


def test_fields_the_inverse_checker_ignores_are_not_refused_by_its_schema(tmp_path):
    # Found by the slow inverse_set target: the first inverse schema required
    # "complete" to be a boolean, which the checker never reads; an answer it
    # accepts must validate (the schema is never stricter than the reader).
    doc = base_certificate("inverse_point")
    doc["complete"] = 1e300
    doc["pieces"] = "not read for a point answer"
    path = tmp_path / "a.json"
    path.write_text(json.dumps(doc))
    rc, out, err, _ = run_cli(["check", str(path)])
    assert rc == 0, out + err
    assert schema_errors("inverse", plain_json(path)) == []


@pytest.mark.parametrize("key, value, said", [
    ("dilations", ["HUGE", 1], "max_conv_size"),
    ("strides", [10**30, 1], "max_conv_size"),
    ("in_channels", "HUGE", "max_conv_size"),
    ("pad", [["HUGE", 0], [0, 0]], "max_conv_size"),
    ("input_size", [True, 1], "is not an integer"),
])
def test_huge_integer_in_a_kernel_layer_regression(key, value, said, tmp_path):
    # Found by the slow surd_structural target: a 5001-digit dilation of a
    # conv_transpose layer reached the model, whose sizes and messages used
    # it (exit 4).  Every integer field of a kernel layer is now bounded by
    # max_conv_size when it is read.
    doc = base_certificate("surd_structural")
    assert doc["network"]["layers"][1]["type"] == "conv_transpose"
    doc["network"]["layers"][1][key] = value
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc).replace('"HUGE"', "1" + "0" * 5000))
    rc, out, err, secs = run_cli(["check", str(path)])
    assert rc == 2 and said in err and "layers[1]" in err, (rc, err[:300])
    assert_contract(rc, out, err, secs, str(path), {0, 1})
