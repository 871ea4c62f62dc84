"""Tests for exact_inj.io: exact numbers, both file formats, and one-line errors.

Every bad input must give an InputError whose text starts with the file's path
and is a single line (the CLI prints it as is), never a traceback.
"""

from __future__ import annotations

import builtins
import json
import os
import zipfile
from fractions import Fraction as F
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from exact_inj.io import (
    MAX_EXPONENT,
    InputError,
    fraction_to_str,
    load_json_file,
    load_network,
    loads_exact,
    network_from_json,
    network_to_json,
    parse_exact,
)
from exact_inj.model import Layer, Network

INSTANCES = Path(__file__).resolve().parent.parent / "instances"


# ---------------------------------------------------------------- helpers


def write_json(tmp_path: Path, obj_or_text, name: str = "net.json") -> Path:
    p = tmp_path / name
    p.write_text(obj_or_text if isinstance(obj_or_text, str) else json.dumps(obj_or_text))
    return p


def one_layer(weight, bias=None, activation=None) -> dict:
    layer: dict = {"weight": weight}
    if bias is not None:
        layer["bias"] = bias
    if activation is not None:
        layer["activation"] = activation
    return {"layers": [layer]}


def bad(p: Path, *fragments: str) -> str:
    """Load p, expect an InputError; check its form and that it names fragments."""
    with pytest.raises(InputError) as info:
        load_network(p)
    e = info.value
    text = str(e)
    assert text.startswith(f"{p}: "), text
    assert "\n" not in text and "\r" not in text, text
    assert e.path == str(p)
    for frag in fragments:
        assert frag in text, (frag, text)
    return text


def weights(p: Path):
    return load_network(p).layers[0].weight


def save_npz(tmp_path: Path, _fname: str = "net.npz", _compressed: bool = False, **arrays) -> Path:
    # Underscored parameters: "name" is also an NPZ key under test.
    p = tmp_path / _fname
    (np.savez_compressed if _compressed else np.savez)(p, **arrays)
    return p


# ---------------------------------------------------------------- exact JSON numbers


def test_json_decimal_is_the_decimal_it_spells(tmp_path):
    p = write_json(tmp_path, '{"layers": [{"weight": [[0.1, 1e-9], [1e9, -2.5E+2], [-0.0, 3]]}]}')
    W = weights(p)
    assert W[0][0] == F(1, 10)
    assert W[0][0] != F(0.1)  # not the binary double nearest to 0.1
    assert W[0][1] == F(1, 10**9)
    assert W[1][0] == F(10**9)
    assert W[1][1] == F(-250)
    assert W[2] == (F(0), F(3))
    assert all(type(v) is F for row in W for v in row)


def test_json_number_with_many_digits_is_exact(tmp_path):
    p = write_json(tmp_path, '{"layers": [{"weight": [[0.1000000000000000000000000000001]]}]}')
    assert weights(p)[0][0] == F(10**30 + 1, 10**31)


def test_huge_integers_beyond_python_digit_limit(tmp_path):
    big = 10**5000 + 7
    digits = fraction_to_str(F(big))  # str(big) itself is refused by Python's digit limit
    p = write_json(tmp_path, '{"layers": [{"weight": [[%s], ["-%s/3"]]}]}' % (digits, digits))
    W = weights(p)
    assert W[0][0] == big and W[1][0] == F(-big, 3)


def test_string_rationals_and_decimals(tmp_path):
    p = write_json(tmp_path, one_layer([["-3/7", "2", "0.25"], ["1e-3", "+5", " 1/2 "]]))
    W = weights(p)
    assert W[0] == (F(-3, 7), F(2), F(1, 4))
    assert W[1] == (F(1, 1000), F(5), F(1, 2))


def test_bias_defaults_to_zero_and_activation_to_relu(tmp_path):
    net = load_network(write_json(tmp_path, one_layer([[1], [-1]])))
    assert net.layers[0].bias == (F(0), F(0))
    assert net.layers[0].activation == "relu"


def test_linear_activation_and_name_and_multilayer(tmp_path):
    obj = {
        "name": "two",
        "layers": [
            {"weight": [[1, 0], [0, 1], [-1, -1]], "bias": [0, "1/2", 0]},
            {"weight": [[1, 2, 3]], "activation": "linear"},
        ],
    }
    net = load_network(write_json(tmp_path, obj))
    assert net.name == "two"
    assert [L.activation for L in net.layers] == ["relu", "linear"]
    assert net.layers[0].bias[1] == F(1, 2)
    assert (net.input_dim, net.output_dim) == (2, 1)


@pytest.mark.parametrize(
    "token, shown",
    [
        ('"1/0"', "'1/0'"),
        ('"nan"', "'nan'"),
        ('"NaN"', "'NaN'"),
        ('"inf"', "'inf'"),
        ('"-Infinity"', "'-Infinity'"),
        ('""', "''"),
        ('"abc"', "'abc'"),
        ('"1_000"', "'1_000'"),
        ('"0x10"', "'0x10'"),
        ('"1/2/3"', "'1/2/3'"),
        ('"1.5/2"', "'1.5/2'"),
        ('"1/-2"', "'1/-2'"),
        ('"."', "'.'"),
        ('"e5"', "'e5'"),
        ("true", "got true"),
        ("false", "got false"),
        ("null", "got null"),
        ("[1]", "a list"),
        ("[]", "an empty list"),
        ('{"a": 1}', "an object"),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("-Infinity", "-Infinity"),
        (f"1e{MAX_EXPONENT + 1}", f"1e{MAX_EXPONENT + 1}"),
        (f'"1e-{MAX_EXPONENT + 1}"', "1e-"),
    ],
)
def test_bad_weight_entry_names_place_and_value(tmp_path, token, shown):
    p = write_json(tmp_path, '{"layers": [{"weight": [[1, 2], [3, %s]]}]}' % token)
    bad(p, "layers[0]", "weight[1][1]", shown)


@pytest.mark.parametrize("token", ['"1/0"', "NaN", "true", "null", '"x"', "[0]"])
def test_bad_bias_entry_names_place(tmp_path, token):
    p = write_json(tmp_path, '{"layers": [{"weight": [[1], [2]], "bias": [0, %s]}]}' % token)
    bad(p, "layers[0].bias[1]")


def test_bad_entry_in_second_layer_names_that_layer(tmp_path):
    p = write_json(tmp_path, '{"layers": [{"weight": [[1]]}, {"weight": [[1], ["oops"]]}]}')
    bad(p, "layers[1].weight[1][0]", "'oops'")


def test_long_offending_value_is_shortened(tmp_path):
    p = write_json(tmp_path, one_layer([["x" * 10_000]]))
    text = bad(p, "layers[0].weight[0][0]", "...")
    assert len(text) < 300


def test_offending_value_with_newline_stays_one_line(tmp_path):
    bad(write_json(tmp_path, one_layer([["1\n2"]])), "weight[0][0]")


# ---------------------------------------------------------------- JSON structure


@pytest.mark.parametrize(
    "obj, fragments",
    [
        (one_layer([[1, 2], [3]]), ["layers[0].weight[1]", "ragged"]),
        (one_layer([]), ["layers[0].weight is empty"]),
        (one_layer([[]]), ["layers[0].weight[0]", "empty row"]),
        (one_layer([[1], []]), ["layers[0].weight[1]", "empty row"]),
        (one_layer([1, 2]), ["layers[0].weight[0]", "expected a row"]),
        (one_layer("1"), ["layers[0].weight", "list of rows"]),
        (one_layer([[1], [2]], [0]), ["layers[0].bias has 1 entries", "2 rows"]),
        (one_layer([[1], [2]], [0, 0, 0]), ["layers[0].bias has 3 entries"]),
        (one_layer([[1]], 0), ["layers[0].bias", "list of numbers"]),
        (one_layer([[1]], None, "tanh"), ["layers[0].activation", "'tanh'"]),
        (one_layer([[1]], None, "ReLU"), ["layers[0].activation", "'ReLU'"]),
        ({"layers": [{"weight": [[1]], "activation": None}]}, ["layers[0].activation", "null"]),
        ({"layers": [{"weight": [[1]], "activation": 1}]}, ["layers[0].activation"]),
        ({"layers": [{"weights": [[1]]}]}, ["layers[0]", "unknown key 'weights'", "did you mean 'weight'"]),
        ({"layers": [{"weight": [[1]], "biases": [0]}]}, ["layers[0]", "unknown key 'biases'"]),
        (
            {"layers": [{"weight": [[1]]}, {"weight": [[1]], "Activation": "linear"}]},
            ["layers[1]", "unknown key 'Activation'"],
        ),
        ({"layers": [{"bias": [0]}]}, ["layers[0]", "missing 'weight'"]),
        ({"layers": [[[1]]]}, ["layers[0]", "expected an object"]),
        ({"layers": []}, ["layers is empty"]),
        ({"layers": {"weight": [[1]]}}, ["layers", "list of layers"]),
        ({"weight": [[1]], "bias": [0]}, ["unknown key 'weight'", "single layer"]),
        ({"layers": [{"weight": [[1]]}], "nmae": "x"}, ["unknown key 'nmae'", "did you mean 'name'"]),
        ({"name": "x"}, ["missing 'layers'"]),
        ({"layers": [{"weight": [[1]]}], "name": 3}, ["name", "expected a string"]),
        ([{"weight": [[1]]}], ["top level", "expected an object"]),
        ('"just a string"', ["top level"]),
        (
            {"layers": [{"weight": [[1, 0], [0, 1], [1, 1]]}, {"weight": [[1, 2]]}]},
            ["layers[1] expects 2 inputs", "layers[0] gives 3 outputs"],
        ),
    ],
)
def test_bad_structure(tmp_path, obj, fragments):
    bad(write_json(tmp_path, obj), *fragments)


def test_network_from_json_without_path_gives_plain_message():
    with pytest.raises(InputError) as info:
        network_from_json({"layers": [{"weight": [[1]], "typo": 1}]})
    assert info.value.path is None
    assert str(info.value).startswith("layers[0]: unknown key 'typo'")


def test_network_from_json_where_prefixes_locations():
    # How a certificate reports a bad embedded network.
    with pytest.raises(InputError) as info:
        network_from_json({"layers": [{"weight": [["1", "x"]]}]}, "c.json", where="network")
    assert str(info.value).startswith("c.json: network.layers[0].weight[0][1]: 'x'")
    with pytest.raises(InputError, match=r"^c\.json: network: missing 'layers'"):
        network_from_json({}, "c.json", where="network")


def test_network_from_json_refuses_binary_floats():
    # json.loads without the exact hooks has already rounded 0.1 to binary.
    with pytest.raises(InputError, match=r"binary float 0\.1"):
        network_from_json(json.loads('{"layers": [{"weight": [[0.1]]}]}'), "x.json")


# ---------------------------------------------------------------- files


def test_missing_file(tmp_path):
    bad(tmp_path / "nope.json", "no such file")


def test_directory(tmp_path):
    d = tmp_path / "dir.json"
    d.mkdir()
    bad(d, "directory")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads unreadable files")
def test_unreadable_file(tmp_path):
    p = write_json(tmp_path, one_layer([[1]]))
    p.chmod(0)
    try:
        bad(p, "cannot read")
    finally:
        p.chmod(0o644)


def test_unreadable_file_simulated(tmp_path, monkeypatch):
    # The same path as above, reachable when the tests run as root.
    p = write_json(tmp_path, one_layer([[1]]))
    real_open = builtins.open

    def fake_open(file, *args, **kwargs):
        if os.fspath(file) == str(p):
            raise PermissionError(13, "Permission denied")
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    bad(p, "cannot read", "Permission denied")


@pytest.mark.parametrize("content", ["", "   \n\t "])
def test_empty_file(tmp_path, content):
    bad(write_json(tmp_path, content), "empty")


@pytest.mark.parametrize(
    "text",
    [
        '{"layers": [{"weight": [[1, 2], [3',
        '{"layers": [{"weight": [[1, 2]]}]',
        '{"layers": [{"weight": [[1, 2]]}]}}',
        '{"layers": [{"weight": [[1, 2]],}]}',
        "{'layers': []}",
        "layers: []",
    ],
)
def test_truncated_or_malformed_json(tmp_path, text):
    bad(write_json(tmp_path, text), "JSON", "line", "column")


def test_binary_garbage_as_json(tmp_path):
    p = tmp_path / "garbage.json"
    p.write_bytes(bytes(range(256)) * 4)
    bad(p, "binary")


def test_invalid_utf8_as_json(tmp_path):
    p = tmp_path / "latin1.json"
    p.write_bytes('{"name": "caf\xe9", "layers": []}'.encode("latin-1"))
    bad(p, "UTF-8")


def test_utf8_bom_is_accepted(tmp_path):
    p = tmp_path / "bom.json"
    p.write_bytes(b"\xef\xbb\xbf" + json.dumps(one_layer([[1]])).encode())
    assert weights(p) == ((F(1),),)


def test_npz_given_as_json(tmp_path):
    src = save_npz(tmp_path, weight_0=np.eye(2))
    p = tmp_path / "actually_npz.json"
    p.write_bytes(src.read_bytes())
    bad(p, "zip", "not JSON")


def test_deeply_nested_json(tmp_path):
    bad(write_json(tmp_path, "[" * 200_000 + "]" * 200_000), "nested")


def test_unknown_extension_is_read_as_json(tmp_path):
    p = write_json(tmp_path, one_layer([["1/3"]]), name="layer.txt")
    assert weights(p) == ((F(1, 3),),)


def test_no_extension_binary_garbage(tmp_path):
    p = tmp_path / "blob"
    p.write_bytes(b"\x00\x01\x02\xff" * 10)
    bad(p, "binary")


def test_unknown_extension_with_zip_content_is_read_as_npz(tmp_path):
    src = save_npz(tmp_path, weight_0=np.array([[1.0], [-1.0]]))
    p = tmp_path / "layer.bin"
    p.write_bytes(src.read_bytes())
    assert weights(p) == ((F(1),), (F(-1),))


def test_pathlib_and_str_paths(tmp_path):
    p = write_json(tmp_path, one_layer([[2]]))
    assert load_network(p) == load_network(str(p))


# ---------------------------------------------------------------- NPZ


def test_npz_float64_taken_at_exact_binary_value(tmp_path):
    p = save_npz(tmp_path, weight_0=np.array([[0.1, -2.0], [1e-9, 3.5]]), bias_0=np.array([0.1, 0.0]))
    L = load_network(p).layers[0]
    assert L.weight[0][0] == F(3602879701896397, 36028797018963968)
    assert L.weight[0][0] != F(1, 10)
    assert L.weight[1][0] == F(1e-9)
    assert L.weight[0][1] == F(-2) and L.weight[1][1] == F(7, 2)
    assert L.bias == (F(3602879701896397, 36028797018963968), F(0))
    assert L.activation == "relu"


def test_npz_float32_and_float16_exact(tmp_path):
    p = save_npz(tmp_path, weight_0=np.array([[0.1]], dtype=np.float32), bias_0=np.array([0.1], dtype=np.float16))
    L = load_network(p).layers[0]
    assert L.weight[0][0] == F(13421773, 134217728)  # float32(0.1), exactly
    assert L.weight[0][0] == F(*np.float32(0.1).as_integer_ratio())
    assert L.bias[0] == F(*np.float16(0.1).as_integer_ratio())


@pytest.mark.skipif(np.finfo(np.longdouble).nmant <= 52, reason="longdouble is double here")
def test_npz_longdouble_exact(tmp_path):
    x = np.longdouble(1) / np.longdouble(10)
    p = save_npz(tmp_path, weight_0=np.array([[x]]))
    got = load_network(p).layers[0].weight[0][0]
    assert got == F(*x.as_integer_ratio())
    assert got != F(0.1)  # more bits than the double


def test_npz_integer_arrays(tmp_path):
    big = np.array([[2**62, -3]], dtype=np.int64)
    p = save_npz(tmp_path, weight_0=big, bias_0=np.array([7], dtype=np.uint8))
    L = load_network(p).layers[0]
    assert L.weight == ((F(2**62), F(-3)),) and L.bias == (F(7),)


def test_npz_multilayer_activation_and_name(tmp_path):
    p = save_npz(
        tmp_path,
        _compressed=True,
        weight_0=np.array([[1, 0], [0, 1], [-1, -1]]),
        bias_0=np.array([0.5, 0, 0]),
        activation_0=np.array("relu"),
        weight_1=np.array([[1.0, 2.0, 3.0]]),
        activation_1=np.array(b"linear"),
        name=np.array("npz net"),
    )
    net = load_network(p)
    assert net.name == "npz net"
    assert [L.activation for L in net.layers] == ["relu", "linear"]
    assert net.layers[0].bias == (F(1, 2), F(0), F(0))
    assert net.layers[1].bias == (F(0),)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_npz_nonfinite_rejected(tmp_path, value):
    W = np.array([[1.0, 2.0], [3.0, value]])
    bad(save_npz(tmp_path, weight_0=W), "weight_0[1][1]", "finite")


def test_npz_nonfinite_bias_rejected(tmp_path):
    bad(save_npz(tmp_path, weight_0=np.eye(2), bias_0=np.array([0.0, np.nan])), "bias_0[1]", "nan")


def test_npz_object_array_rejected(tmp_path):
    p = tmp_path / "obj.npz"
    np.savez(p, weight_0=np.array([[1, None]], dtype=object))
    bad(p, "weight_0", "object")


@pytest.mark.parametrize(
    "arr, what",
    [
        (np.array([[True, False]]), "booleans"),
        (np.array([[1 + 2j]]), "complex"),
        (np.array([["1", "2"]]), "strings"),
    ],
)
def test_npz_non_numeric_dtype_rejected(tmp_path, arr, what):
    bad(save_npz(tmp_path, weight_0=arr), "weight_0", what)


@pytest.mark.parametrize(
    "arrays, fragments",
    [
        ({"weight_0": np.array([1.0, 2.0])}, ["weight_0 has 1 dimensions", "expected 2"]),
        ({"weight_0": np.zeros((2, 2, 2))}, ["weight_0 has 3 dimensions"]),
        ({"weight_0": np.array(1.0)}, ["weight_0 has 0 dimensions"]),
        ({"weight_0": np.zeros((0, 2))}, ["weight_0 is empty"]),
        ({"weight_0": np.zeros((2, 0))}, ["weight_0 is empty"]),
        ({"weight_0": np.eye(2), "bias_0": np.zeros((2, 1))}, ["bias_0 has 2 dimensions"]),
        ({"weight_0": np.eye(2), "bias_0": np.zeros(3)}, ["bias_0 has 3 entries", "2 rows"]),
        ({"weight_0": np.eye(2), "activation_0": np.array("tanh")}, ["activation_0", "'tanh'"]),
        ({"weight_0": np.eye(2), "activation_0": np.array(["relu", "relu"])}, ["activation_0", "0-d string"]),
        ({"weight_0": np.eye(2), "activation_0": np.array(1)}, ["activation_0", "0-d string"]),
        ({"weight_0": np.eye(2), "activation_0": np.array(["relu"])}, ["activation_0", "0-d string", "(1,)"]),
        ({"W0": np.eye(2)}, ["unknown array 'W0'", "weight_K"]),
        ({"weight_0": np.eye(2), "weights_1": np.eye(2)}, ["unknown array 'weights_1'"]),
        ({"weight_0": np.eye(2), "weight_01": np.eye(2)}, ["unknown array 'weight_01'"]),
        ({"bias_0": np.zeros(2)}, ["weight_0 is missing"]),
        ({"weight_0": np.eye(2), "weight_2": np.eye(2)}, ["weight_1 is missing"]),
        ({"weight_0": np.eye(2), "bias_1": np.zeros(2)}, ["weight_1 is missing"]),
        ({"weight_0": np.eye(3), "weight_1": np.eye(2)}, ["weight_1 expects 2 inputs", "weight_0 gives 3 outputs"]),
        ({"name": np.array(3)}, ["name", "string"]),
    ],
)
def test_npz_bad_structure(tmp_path, arrays, fragments):
    bad(save_npz(tmp_path, **arrays), *fragments)


def test_npz_empty_archive(tmp_path):
    p = tmp_path / "empty.npz"
    with zipfile.ZipFile(p, "w"):
        pass
    bad(p, "no weight_0")


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.999])
def test_npz_truncated(tmp_path, keep):
    src = save_npz(tmp_path, "src.npz", weight_0=np.random.default_rng(0).normal(size=(30, 20)))
    data = src.read_bytes()
    p = tmp_path / "cut.npz"
    p.write_bytes(data[: max(4, int(len(data) * keep))])
    bad(p, "NPZ")


def test_npz_corrupt_member(tmp_path):
    src = save_npz(tmp_path, "src.npz", _compressed=True, weight_0=np.random.default_rng(1).normal(size=(30, 20)))
    data = bytearray(src.read_bytes())
    data[60:160] = b"x" * 100  # inside the compressed member, after the local header
    p = tmp_path / "corrupt.npz"
    p.write_bytes(bytes(data))
    bad(p)


def test_npz_header_damage(tmp_path):
    src = save_npz(tmp_path, "src.npz", weight_0=np.eye(3))
    data = bytearray(src.read_bytes())
    start = data.index(b"{'descr'")
    data[start : start + 20] = b"(" * 20  # an unparsable .npy header
    p = tmp_path / "hdr.npz"
    p.write_bytes(bytes(data))
    bad(p)


def test_npz_extension_with_json_content(tmp_path):
    p = write_json(tmp_path, one_layer([[1]]), name="net.npz")
    bad(p, "not an NPZ archive")


def test_npy_file_named_npz(tmp_path):
    p = tmp_path / "single.npz"
    with open(p, "wb") as fh:
        np.save(fh, np.eye(2))
    bad(p)


def test_npz_empty_file(tmp_path):
    p = tmp_path / "empty.npz"
    p.write_bytes(b"")
    bad(p, "empty")


# ---------------------------------------------------------------- round trip


def sample_network() -> Network:
    return Network(
        (
            Layer.from_rows([[2, "-3/7", 0], ["0.1", 1, "1e-9"]], ["1/3", -5]),
            Layer.from_rows([[1, 2], [F(10**40 + 1, 3), 0], [0, -1]], None, "relu"),
            Layer.from_rows([[1, 1, 1]], ["-1/2"], "linear"),
        ),
        name="sample",
    )


def test_round_trip_in_memory():
    net = sample_network()
    obj = network_to_json(net)
    back = network_from_json(obj)
    assert back == net and back.name == "sample"
    for layer in back.layers:
        assert all(type(v) is F for row in layer.weight for v in row)


def test_round_trip_numbers_are_strings():
    obj = network_to_json(sample_network())
    entries = [v for L in obj["layers"] for row in L["weight"] for v in row] + [
        v for L in obj["layers"] for v in L["bias"]
    ]
    assert all(isinstance(v, str) for v in entries)
    assert obj["layers"][0]["weight"][0] == ["2", "-3/7", "0"]
    assert obj["layers"][0]["bias"] == ["1/3", "-5"]
    assert obj["layers"][1]["bias"] == ["0", "0", "0"]  # written explicitly
    assert [L["activation"] for L in obj["layers"]] == ["relu", "relu", "linear"]


def test_round_trip_through_text_and_file(tmp_path):
    net = sample_network()
    text = json.dumps(network_to_json(net))
    assert network_from_json(json.loads(text)) == net  # plain json is enough: strings only
    assert network_from_json(loads_exact(text)) == net
    p = write_json(tmp_path, text)
    assert load_network(p) == net
    assert load_network(p).name == "sample"


def test_unnamed_network_has_no_name_key():
    net = Network((Layer.from_rows([[1]]),))
    assert "name" not in network_to_json(net)
    assert network_from_json(network_to_json(net)).name == ""


def test_round_trip_from_npz(tmp_path):
    p = save_npz(tmp_path, weight_0=np.array([[0.1, 0.2], [-0.3, 1e300]]), bias_0=np.array([1e-300, 0]))
    net = load_network(p)
    assert network_from_json(json.loads(json.dumps(network_to_json(net)))) == net


# ---------------------------------------------------------------- number helpers


def test_fraction_to_str():
    assert fraction_to_str(F(-3, 7)) == "-3/7"
    assert fraction_to_str(F(6, 3)) == "2"
    assert fraction_to_str(F(0)) == "0"
    assert fraction_to_str(-4) == "-4"
    assert fraction_to_str(F(-(10**6000), 7)).startswith("-1000")
    with pytest.raises(TypeError):
        fraction_to_str(0.5)
    with pytest.raises(TypeError):
        fraction_to_str(True)


@pytest.mark.parametrize(
    "value, expected",
    [
        (F(1, 3), F(1, 3)),
        (4, F(4)),
        ("-3/7", F(-3, 7)),
        ("2", F(2)),
        ("0.25", F(1, 4)),
        ("1e-3", F(1, 1000)),
        ("1E3", F(1000)),
        (".5", F(1, 2)),
        ("5.", F(5)),
        ("-0", F(0)),
        ("0/5", F(0)),
        ("6/4", F(3, 2)),
    ],
)
def test_parse_exact_accepts(value, expected):
    got = parse_exact(value, "here")
    assert got == expected and type(got) is F


def test_parse_exact_accepts_decimal():
    from decimal import Decimal

    assert parse_exact(Decimal("0.1"), "d") == F(1, 10)
    with pytest.raises(InputError, match="not finite"):
        parse_exact(Decimal("NaN"), "d")


@pytest.mark.parametrize("value", ["1/0", "nan", "inf", "", "abc", True, None, [1], 0.5, {"a": 1}, "1 2"])
def test_parse_exact_rejects_and_mentions_where(value):
    with pytest.raises(InputError) as info:
        parse_exact(value, "somewhere[3]")
    assert str(info.value).startswith("somewhere[3]: ")
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)  # callers may catch ValueError


def test_parse_exact_with_path():
    with pytest.raises(InputError) as info:
        parse_exact("x", "w[0]", path="c.json")
    assert str(info.value).startswith("c.json: w[0]: ")


@given(st.fractions())
def test_fraction_string_round_trip(x):
    assert parse_exact(fraction_to_str(x), "x") == x


@given(st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(lambda d: abs(d.adjusted()) < 400))
def test_json_decimal_literal_round_trip(d):
    from decimal import Decimal

    text = str(d) if "E" in str(d) or "." in str(d) else str(d) + ".0"
    assert loads_exact(text) == F(Decimal(text))


# ---------------------------------------------------------------- load_json_file / loads_exact


def test_load_json_file_types(tmp_path):
    p = write_json(tmp_path, '{"a": [1, -2, 0.5, 1e2, "s"], "b": {"c": null}}')
    obj = load_json_file(p)
    assert obj["a"] == [1, -2, F(1, 2), F(100), "s"]
    assert type(obj["a"][0]) is int  # integer literals stay int (index lists)
    assert type(obj["a"][3]) is F
    assert obj["b"] == {"c": None}


def test_load_json_file_errors(tmp_path):
    with pytest.raises(InputError) as info:
        load_json_file(tmp_path / "none.json")
    assert str(info.value).startswith(f"{tmp_path / 'none.json'}: ")
    p = write_json(tmp_path, '{"cert": {"x": [1, -Infinity]}}', name="cert.json")
    with pytest.raises(InputError) as info:
        load_json_file(p)
    assert str(info.value) == f"{p}: cert.x[1]: -Infinity is not an exact number: non-finite numbers are not allowed"


def test_loads_exact_empty():
    with pytest.raises(InputError):
        loads_exact("  ")


def test_input_error_format():
    e = InputError("a b.json", "line one\nline two")
    assert str(e) == "a b.json: line one line two"
    assert e.path == "a b.json" and e.message == "line one line two"
    assert str(InputError(Path("x/y.json"), "m")) == f"{Path('x/y.json')}: m"
    assert str(InputError(None, "m")) == "m"


# ---------------------------------------------------------------- curated instances


def instance_files() -> list[str]:
    return sorted(p.name for p in INSTANCES.glob("*.json") if p.name != "expected.json")


def test_expected_matches_instance_files():
    expected = json.loads((INSTANCES / "expected.json").read_text())
    assert sorted(expected) == instance_files()
    for name, entry in expected.items():
        assert set(entry) == {"verdict", "why"}, name
        assert entry["verdict"] in ("injective", "not_injective"), name
        assert isinstance(entry["why"], str) and entry["why"] and "\n" not in entry["why"], name


@pytest.mark.parametrize("name", instance_files())
def test_instance_parses_as_one_relu_layer(name):
    net = load_network(INSTANCES / name)
    assert net.is_single_relu_layer
    assert net.name == name[: -len(".json")]
    # Instances are written by hand: stay exact through the certificate form too.
    assert network_from_json(json.loads(json.dumps(network_to_json(net)))) == net


def test_headline_instances_have_the_documented_entries():
    L = load_network(INSTANCES / "lemma1_counterexample.json").layers[0]
    assert L.weight == ((F(1),), (F(-1),)) and L.bias == (F(1), F(-1))
    L = load_network(INSTANCES / "dead_zone.json").layers[0]
    assert L.weight == ((F(1),), (F(-1),)) and L.bias == (F(-1), F(-1))
    L = load_network(INSTANCES / "fig2_not_injective.json").layers[0]
    assert L.weight[2] == (F(-3, 2), F(-2))
    ok = load_network(INSTANCES / "thin_cell_injective.json").layers[0]
    broken = load_network(INSTANCES / "thin_cell_broken.json").layers[0]
    diffs = [(i, j) for i in range(4) for j in range(2) if ok.weight[i][j] != broken.weight[i][j]]
    assert diffs == [(2, 1)]
    assert broken.weight[2][1] - ok.weight[2][1] == F(-1, 10**9)
