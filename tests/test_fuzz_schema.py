"""The JSON Schemas shipped in exact_inj/schemas/ (issue #18, item 4).

Every certificate the engine writes validates against certificate.schema.json,
every network file in instances/ against network.schema.json, and anything
the reader accepts validates too (the fuzz targets of test_fuzz_certificates.py
check that on every mutant the reader parses).  The schemas can fail: the last
tests show documents they refuse.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import exact_inj
from exact_inj.cli.app import parse_domain
from exact_inj.io.load import load_network

from fuzzing import CERT_KINDS, INSTANCES, base_certificate, schema_errors

pytest.importorskip("jsonschema")

NETWORK_FILES = sorted(p for p in INSTANCES.rglob("*.json") if p.name != "expected.json" and "heuristics" not in p.parts)


@pytest.mark.parametrize("kind", CERT_KINDS)
def test_every_certificate_kind_validates(kind):
    name = "inverse" if kind.startswith("inverse_") else "certificate"
    assert schema_errors(name, base_certificate(kind)) == []


@pytest.mark.parametrize("path", NETWORK_FILES[:40], ids=lambda p: p.name)
def test_instance_networks_validate(path):
    doc = json.loads(path.read_text())
    assert schema_errors("network", doc) == []


@pytest.mark.parametrize("path", [p for p in NETWORK_FILES if p.stat().st_size < 20000], ids=lambda p: p.name)
def test_instance_certificates_validate(path):
    net = load_network(path)
    v = exact_inj.verify(net, time_limit=60, domain=parse_domain("reals", net.input_dim))
    if v.certificate is not None:
        assert schema_errors("certificate", v.certificate.to_json()) == []


# small_plain (the unmodified DCGAN) answers unknown only at its time limit.
GENERATOR_FILES = sorted(p for p in (INSTANCES / "generators").glob("*.onnx") if p.name != "small_plain.onnx")


@pytest.mark.parametrize("path", GENERATOR_FILES, ids=lambda p: p.name)
def test_generator_certificates_validate(path):
    # Kernel layers (strided_conv, conv_transpose), output units and irrational
    # batch normalisations (surd_structural) appear only in these; the network
    # schema once refused all three while the reader took them.
    pytest.importorskip("onnx")
    net = load_network(path)
    v = exact_inj.verify(net, time_limit=60)
    if v.certificate is not None:
        assert schema_errors("certificate", v.certificate.to_json()) == []


def test_generator_instances_give_certificates_to_validate():
    # The test above must not pass by finding no certificate at all.
    assert sum(exact_inj.verify(load_network(p), time_limit=60).certificate is not None
               for p in GENERATOR_FILES) >= 5


@pytest.mark.parametrize("change, where", [
    (lambda d: d.update(verdict="unknown"), "verdict"),
    (lambda d: d.pop("witness"), ""),
    (lambda d: d["network"]["layers"][0].update(weights=[[1]]), "network/layers/0"),
    (lambda d: d["network"]["layers"][0]["weight"][0].__setitem__(0, "0x10"), "network/layers/0"),
    (lambda d: d.update(version=3), "version"),
    (lambda d: d["witness"].update(x="1"), "witness/x"),
])
def test_schema_refuses(change, where):
    doc = base_certificate("witness")
    doc = json.loads(json.dumps(doc))
    change(doc)
    errors = schema_errors("certificate", doc)
    assert errors and any(e.startswith(where) for e in errors), errors


@pytest.mark.parametrize("change, where", [
    (lambda d: d.update(version=2), "version"),
    (lambda d: d.update(format="exact_inj/certificate"), "format"),
    (lambda d: d.update(preimage="unknown"), "preimage"),
    (lambda d: d["points"][0].__setitem__(0, "0x10"), "points/0/0"),
    (lambda d: d.pop("y"), ""),
])
def test_inverse_schema_refuses(change, where):
    doc = base_certificate("inverse_point")
    change(doc)
    errors = schema_errors("inverse", doc)
    assert errors and any(e.startswith(where) for e in errors), errors


def test_schemas_ship_in_the_package():
    # Read through importlib.resources (as an installed wheel has them), and
    # named as package data in pyproject.toml.
    from importlib.resources import files

    for name in ("certificate", "network", "inverse"):
        assert json.loads(files("exact_inj").joinpath(f"schemas/{name}.schema.json").read_text())["$id"]
    text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    assert "schemas/*.json" in text
