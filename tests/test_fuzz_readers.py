"""Fuzzing every reader through `exact-inj verify` (issue #18).

Targets: JSON networks (dense, multi-layer, conv), NPZ archives, ONNX files,
safetensors files and PyTorch state dicts (torch only when installed),
VNN-LIB properties and box files given to --domain.  Each feeds near-valid
mutants (tests/fuzzing.py) and random bytes to `exact-inj verify`.  Property:
exit 0/1/3 -- and then the certificate written is confirmed by the
independent references when the network is small -- or exit 2 with one line
naming the file; never exit 4, never a traceback, within the time bound.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import (CONTRACT_COUNTS, DEFAULT_EXAMPLES, HOSTILE, INSTANCES, ROOT, SLOW_EXAMPLES, Raw, assert_contract,
                     confirm_accepted, fuzz_settings, mutated_bytes, mutated_json, run_cli)

@pytest.fixture(autouse=True)
def _print_counts(request):
    # The -m slow runs print how many examples each target ran, by exit code
    # (docs/testing.md records them).
    CONTRACT_COUNTS.clear()
    yield
    if request.node.name.startswith("test_fuzz") and "_slow" in request.node.name:
        print(f"\n{request.node.name}: {sum(CONTRACT_COUNTS.values())} examples, exit codes "
              f"{dict(sorted(CONTRACT_COUNTS.items()))}")


# verify searches; its examples cost more than check's, so fewer run by default.
VERIFY_EXAMPLES = max(20, DEFAULT_EXAMPLES // 2)
# A short time limit: the contract is about hostile input, and an enlarged
# mutant may be a layer whose honest answer within a second is "unknown".
VERIFY = ["verify", "--quiet", "--time-limit", "1", "--milp", "none"]

JSON_BASES = {
    "dense": "fig2_not_injective.json",
    "tree": "quickstart.json",
    "network": "networks/b_minus_b_difference.json",
    "conv": "dcgan_1d_injective.json",
}


def _verify_case(where, name: str, content: bytes, extra: list[str] | None = None, file: str | None = None):
    path = where / name
    path.write_bytes(content)
    cert = where / "out.json"
    if cert.exists():
        cert.unlink()
    target = str(path) if file is None else file
    rc, out, err, secs = run_cli(VERIFY + [target, "--certificate", str(cert)] + (extra or []))
    shown = str(path)
    assert_contract(rc, out, err, secs, shown, {0, 1, 3})
    if rc in (0, 1):
        assert cert.exists(), "a decided verdict writes its certificate"
        confirm_accepted(cert)
    return rc


def _fuzz_json_network(kind: str, n: int, tmp_path_factory):
    base = json.loads((INSTANCES / JSON_BASES[kind]).read_text())
    where = tmp_path_factory.mktemp(f"fuzz_net_{kind}")

    @fuzz_settings(n)
    @given(st.data())
    def run(data):
        _verify_case(where, "net.json", mutated_json(data, base))

    run()


@pytest.mark.parametrize("kind", sorted(JSON_BASES))
def test_fuzz_json_network(kind, tmp_path_factory):
    # The tree layer's mutants are mostly valid layers that take a real search
    # (about 0.5 s each): fewer of them in the default suite.
    _fuzz_json_network(kind, VERIFY_EXAMPLES // 4 if kind == "tree" else VERIFY_EXAMPLES, tmp_path_factory)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(JSON_BASES))
def test_fuzz_json_network_slow(kind, tmp_path_factory):
    _fuzz_json_network(kind, SLOW_EXAMPLES, tmp_path_factory)


# --------------------------------------------------------------------------
# NPZ: arrays changed (dtype, shape, values, names) or bytes damaged
# --------------------------------------------------------------------------

NPZ_BASE = {
    "weight_0": np.array([[2, 1], [-2, 1], [-2, -1], [2, -1]], dtype=np.float64),
    "bias_0": np.zeros(4),
    "weight_1": np.array([[1.0, 0.5, 0, 0], [0, 0, 1, -0.25]], dtype=np.float32),
    "activation_1": np.array("linear"),
}

ODD_ARRAYS = [
    np.array([[np.nan, 1.0]]), np.array([[np.inf]]), np.array([[1 + 2j]]), np.array([["a"]]), np.array([[True]]),
    np.zeros((0, 2)), np.zeros((2, 2, 2)), np.array(3.0), np.array([[2**62, -(2**63)]], dtype=np.int64),
    np.array([[1.0]], dtype=np.float16), np.array([[1e308, -1e308]]), np.array([[5e-324]]), np.array("ReLU"),
    np.array(b"\xff\xfe"), np.array([1, 2], dtype="uint64"), np.zeros((3, 2)), np.zeros(5),
    np.array([[1.0]], dtype=np.longdouble), np.array(["relu"]), np.array([["1", "2"]], dtype=object),
]


def _npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _fuzz_npz(n: int, tmp_path_factory):
    where = tmp_path_factory.mktemp("fuzz_npz")

    @fuzz_settings(n)
    @given(st.data())
    def run(data):
        arrays = dict(NPZ_BASE)
        op = data.draw(st.sampled_from(["replace", "replace", "drop", "rename", "add", "bytes"]))
        key = data.draw(st.sampled_from(sorted(arrays)))
        if op == "replace":
            arrays[key] = data.draw(st.sampled_from(ODD_ARRAYS))
        elif op == "drop":
            del arrays[key]
        elif op == "rename":
            arrays[data.draw(st.sampled_from(["weight_7", "weights_0", "bias_00", "name", "x" * 300, "activation_0"]))] = \
                arrays.pop(key)
        elif op == "add":
            arrays[data.draw(st.sampled_from(["bias_1", "name", "activation_0", "weight_2"]))] = \
                data.draw(st.sampled_from(ODD_ARRAYS))
        try:
            content = _npz_bytes(arrays)
        except ValueError:  # numpy refuses to write object arrays without pickle
            content = _npz_bytes(NPZ_BASE)
        if op == "bytes":
            content = mutated_bytes(data, content)
        _verify_case(where, "net.npz", content)

    run()


def test_fuzz_npz(tmp_path_factory):
    _fuzz_npz(VERIFY_EXAMPLES, tmp_path_factory)


@pytest.mark.slow
def test_fuzz_npz_slow(tmp_path_factory):
    _fuzz_npz(SLOW_EXAMPLES, tmp_path_factory)


def test_npz_archive_bomb_is_refused(tmp_path):
    # A few kilobytes of zip that would inflate past the byte limit: refused
    # from the archive's directory, before anything is decompressed.
    from exact_inj.numbers import raised_limits

    big = _npz_bytes({"weight_0": np.zeros((2000, 100))})  # 1.6 MB uncompressed
    path = tmp_path / "bomb.npz"
    path.write_bytes(big)
    with raised_limits(max_bytes=100_000):
        rc, out, err, secs = run_cli(["verify", "--quiet", str(path)])
    assert rc == 2 and "max_bytes" in err and str(path) in err, err


# --------------------------------------------------------------------------
# ONNX, safetensors, torch: bytes damaged; safetensors tensors changed too
# --------------------------------------------------------------------------

ONNX_BASE = ROOT / "tests" / "data" / "test_tiny.onnx"


def _fuzz_binary(name: str, base: bytes, n: int, tmp_path_factory):
    where = tmp_path_factory.mktemp(f"fuzz_{name.replace('.', '_')}")

    @fuzz_settings(n)
    @given(st.data())
    def run(data):
        _verify_case(where, name, mutated_bytes(data, base))

    run()


def test_fuzz_onnx(tmp_path_factory):
    pytest.importorskip("onnx")
    _fuzz_binary("net.onnx", ONNX_BASE.read_bytes(), VERIFY_EXAMPLES, tmp_path_factory)


@pytest.mark.slow
def test_fuzz_onnx_slow(tmp_path_factory):
    pytest.importorskip("onnx")
    _fuzz_binary("net.onnx", ONNX_BASE.read_bytes(), SLOW_EXAMPLES, tmp_path_factory)


SAFE_BASE = {
    "0.weight": np.array([[2, 1], [-2, 1], [-2, -1], [2, -1]], dtype=np.float32),
    "0.bias": np.zeros(4, dtype=np.float32),
    "2.weight": np.array([[1, 0.5, 0, 0], [0, 0, 1, -0.25]], dtype=np.float32),
    "2.bias": np.zeros(2, dtype=np.float32),
}
ODD_TENSORS = [a for a in ODD_ARRAYS if a.dtype.kind in "fiub" and a.dtype != np.longdouble] + [
    np.zeros((4, 3), dtype=np.float32), np.zeros((1, 1), dtype=np.float64), np.zeros((2, 2), dtype=np.int8)]


def _safetensors_bytes(tensors: dict, metadata: dict | None = None) -> bytes:
    from safetensors.numpy import save

    return save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=metadata)


def _fuzz_safetensors(n: int, tmp_path_factory):
    pytest.importorskip("safetensors")
    where = tmp_path_factory.mktemp("fuzz_safetensors")

    @fuzz_settings(n)
    @given(st.data())
    def run(data):
        tensors = dict(SAFE_BASE)
        meta = None
        op = data.draw(st.sampled_from(["replace", "drop", "rename", "metadata", "bytes"]))
        key = data.draw(st.sampled_from(sorted(tensors)))
        if op == "replace":
            tensors[key] = data.draw(st.sampled_from(ODD_TENSORS))
        elif op == "drop":
            del tensors[key]
        elif op == "rename":
            tensors[data.draw(st.sampled_from(["1.weight", "0.weights", "4.bias", "x" * 300]))] = tensors.pop(key)
        elif op == "metadata":
            value = data.draw(st.sampled_from(["", "{", "[]", '{"layers": 5}', json.dumps({"layers": [{"type": "relu"}]}),
                                               "1" + "0" * 5000, '{"layers": [{"type": "linear", "in": 1e10000}]}']))
            meta = {"exact_inj.architecture": value}
        try:
            content = _safetensors_bytes(tensors, meta)
        except Exception:  # the writer refuses some tensors (that is not what is tested)
            content = _safetensors_bytes(SAFE_BASE)
        if op == "bytes":
            content = mutated_bytes(data, content)
        _verify_case(where, "net.safetensors", content)

    run()


def test_fuzz_safetensors(tmp_path_factory):
    _fuzz_safetensors(VERIFY_EXAMPLES, tmp_path_factory)


@pytest.mark.slow
def test_fuzz_safetensors_slow(tmp_path_factory):
    _fuzz_safetensors(SLOW_EXAMPLES, tmp_path_factory)


def _torch_base() -> bytes:
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save({k: torch.from_numpy(v.copy()) for k, v in SAFE_BASE.items()}, buf)
    return buf.getvalue()


def test_fuzz_torch_state(tmp_path_factory):
    _fuzz_binary("net.pt", _torch_base(), max(20, VERIFY_EXAMPLES // 2), tmp_path_factory)


@pytest.mark.slow
def test_fuzz_torch_state_slow(tmp_path_factory):
    _fuzz_binary("net.pt", _torch_base(), SLOW_EXAMPLES, tmp_path_factory)


# --------------------------------------------------------------------------
# --domain files: VNN-LIB properties and box files
# --------------------------------------------------------------------------

VNNLIB_BASE = """; a property of a 2-input network
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(assert (<= X_0 1))
(assert (>= X_0 -1))
(assert (<= X_1 0.5))
(assert (>= X_1 -1/2))
(assert (or (and (>= Y_0 0))))
"""
VNNLIB_PIECES = ["(", ")", "X_0", "X_2", "Y_0", "1e10000", "1" + "0" * 5000, "-", "nan", "(assert", "(or",
                 "(and", "declare-const", "Real", "Int", ";", "\n", "\x00", "\u00e9", "<=", ">=", "=", "0.1", "1/0"]


def _fuzz_vnnlib(n: int, tmp_path_factory):
    where = tmp_path_factory.mktemp("fuzz_vnnlib")
    net = INSTANCES / "fig2_not_injective.json"

    @fuzz_settings(n)
    @given(st.data())
    def run(data):
        text = VNNLIB_BASE
        for _ in range(data.draw(st.integers(1, 3))):
            op = data.draw(st.sampled_from(["insert", "delete", "replace", "truncate"]))
            i = data.draw(st.integers(0, len(text)))
            if op == "insert":
                text = text[:i] + data.draw(st.sampled_from(VNNLIB_PIECES)) + text[i:]
            elif op == "delete":
                text = text[:i] + text[i + data.draw(st.integers(1, 20)):]
            elif op == "replace":
                text = text.replace(data.draw(st.sampled_from(["1", "X_0", "<=", "(assert", "0.5", "Real"])),
                                    data.draw(st.sampled_from(VNNLIB_PIECES)), 1)
            else:
                text = text[:i]
        prop = where / "prop.vnnlib"
        prop.write_text(text, encoding="utf-8")
        rc, out, err, secs = run_cli(VERIFY + [str(net), "--domain", f"vnnlib:{prop}"])
        assert_contract(rc, out, err, secs, str(prop) if rc == 2 and str(prop) in err else str(net), {0, 1, 3})

    run()


def test_fuzz_vnnlib(tmp_path_factory):
    _fuzz_vnnlib(VERIFY_EXAMPLES, tmp_path_factory)


@pytest.mark.slow
def test_fuzz_vnnlib_slow(tmp_path_factory):
    _fuzz_vnnlib(SLOW_EXAMPLES, tmp_path_factory)


def _fuzz_box(n: int, tmp_path_factory):
    where = tmp_path_factory.mktemp("fuzz_box")
    net = INSTANCES / "fig2_not_injective.json"
    base = {"lower": [-1, "-1/2"], "upper": [1, 0.5]}

    @fuzz_settings(n)
    @given(st.data())
    def run(data):
        box = where / "box.json"
        box.write_bytes(mutated_json(data, base))
        rc, out, err, secs = run_cli(VERIFY + [str(net), "--domain", f"box:{box}"])
        assert_contract(rc, out, err, secs, str(box) if rc == 2 and str(box) in err else str(net), {0, 1, 3})

    run()


def test_fuzz_box_file(tmp_path_factory):
    _fuzz_box(VERIFY_EXAMPLES, tmp_path_factory)


@pytest.mark.slow
def test_fuzz_box_file_slow(tmp_path_factory):
    _fuzz_box(SLOW_EXAMPLES, tmp_path_factory)


# --------------------------------------------------------------------------
# regressions: every failure the fuzzing found (issue #18), one test each
# --------------------------------------------------------------------------

BIG = "1" + "0" * 5000


@pytest.mark.parametrize("where, value", [
    ("activation", Raw(BIG)),                   # was exit 4: repr of the value in the message
    ("weight_row", Raw(BIG)),                   # was exit 4
    ("weight_entry", Raw("1e10000")),           # parsed exactly: 10^10000 is a valid weight
    ("weight_entry", Raw("1e10001")),           # beyond the exponent limit: exit 2
    ("bias", Raw("-" + BIG)),
    ("in_channels", Raw(BIG)),                  # was exit 4
    ("pad", Raw(BIG)),                          # was exit 4 (model/conv.py quotes pads with str())
    ("pad", BIG),                               # a 5000-character string pad: a 5000-character message
    ("pad", Raw("2.5")),
    ("input_size", [Raw("2305843009213693951")]),
])
def test_large_numbers_in_networks_regressions(where, value, tmp_path):
    from fuzzing import dumps

    if where in ("in_channels", "pad", "input_size"):
        doc = json.loads((INSTANCES / "dcgan_1d_injective.json").read_text())
        doc["layers"][0][where] = value
    else:
        doc = json.loads((INSTANCES / "fig2_not_injective.json").read_text())
        layer = doc["layers"][0]
        if where == "activation":
            layer["activation"] = value
        elif where == "weight_row":
            layer["weight"][0] = value
        elif where == "weight_entry":
            layer["weight"][0][0] = value
        else:
            layer["bias"] = [value, 0, 0, 0]
    path = tmp_path / "net.json"
    path.write_text(dumps(doc))
    rc, out, err, secs = run_cli(VERIFY + [str(path)])
    assert_contract(rc, out, err, secs, str(path), {0, 1, 3})
    if rc == 2:
        assert len(err) < 400, err


@pytest.mark.parametrize("value", [Raw(BIG), Raw("-" + BIG), Raw("1e10000"), Raw("-1e10000"), Raw("1e-10000"), BIG,
                                   [Raw(BIG)], 3])
def test_large_numbers_in_certificate_verdict_regressions(value, tmp_path):
    from fuzzing import base_certificate, dumps

    doc = base_certificate("witness")
    doc["verdict"] = value
    path = tmp_path / "cert.json"
    path.write_text(dumps(doc))
    rc, out, err, secs = run_cli(["check", str(path)])
    assert rc == 2 and "unknown verdict" in err and len(err) < 300, err


# Found by the 10^4-example slow run (docs/testing.md): exit 4 on a VNN-LIB
# variable X_<5001 digits> (int() of its index), and 5,000-character messages
# quoting a huge number or token from a box file or a VNN-LIB property.
@pytest.mark.parametrize("case", ["var_index", "token", "bound", "box_file"])
def test_huge_tokens_in_domain_files_regressions(case, tmp_path):
    big = "1" + "0" * 5000
    net = INSTANCES / "fig2_not_injective.json"
    if case == "box_file":
        path = tmp_path / "box.json"
        path.write_text(json.dumps({"lower": [0, 0], "upper": [1, 1]}).replace("[0, 0]", f"[{big}, 0]"))
        spec = f"box:{path}"
    else:
        text = VNNLIB_BASE
        if case == "var_index":
            text = text.replace("X_1", "X_" + big)
        elif case == "token":
            text = big + text
        else:
            text = text.replace("(>= X_0 -1)", f"(>= X_0 {big})")
        path = tmp_path / "prop.vnnlib"
        path.write_text(text)
        spec = f"vnnlib:{path}"
    rc, out, err, secs = run_cli(VERIFY + [str(net), "--domain", spec])
    assert rc == 2, (rc, err[:300])
    assert_contract(rc, out, err, secs, str(path), {0, 1, 3})
    assert len(err) < 1200


def test_huge_weight_in_a_later_layer_regression(tmp_path):
    # Found by the slow JSON network target: a 5001-digit weight in the second
    # layer made the end-to-end route's float hints overflow (exit 4).  The
    # route now gives up on it, and the verdict is unknown (exit 3), never a guess.
    doc = json.loads((INSTANCES / "networks/b_minus_b_difference.json").read_text())
    doc["layers"][1]["weight"][0][0] = "HUGE"
    path = tmp_path / "net.json"
    path.write_text(json.dumps(doc).replace('"HUGE"', "1" + "0" * 5000))
    rc, out, err, secs = run_cli(VERIFY + [str(path)])
    assert_contract(rc, out, err, secs, str(path), {0, 1, 3})
    assert rc == 3 and "beyond the float range" in out, (rc, out[-400:], err[-300:])
