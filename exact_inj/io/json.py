"""Reading and writing networks, with every number kept exact.

Two input formats (docs/formats.md is the reference):

* JSON: ``{"layers": [{"weight": [[...]], "bias": [...], "activation": "relu"}]}``.
  A JSON number means the decimal it spells (``0.1`` is 1/10, never the binary
  double nearest to it); a string may hold ``"p/q"`` or a decimal.
  A layer may instead be ``{"type": "conv", ...}``: a convolution, kept as its
  kernel (a :class:`~exact_inj.conv.ConvLayer`; exact_inj/conv.py).
* NPZ: arrays ``weight_0``, ``bias_0``, ``activation_0``, ``weight_1``, ...;
  a binary float is taken at its exact value.

:func:`load_network` also hands ``.onnx`` files to :mod:`exact_inj.onnx_import`
and ``.pt``/``.pth``/``.safetensors`` files to :mod:`exact_inj.torch_import`
(docs/model-files.md).

Nothing is coerced silently: anything that is not clearly a finite rational in
the right place is an :class:`InputError`, a one-line message that starts with
the file's path and names the place and the offending value.  The CLI prints it
and exits with its bad-input code, never with a traceback.

Certificates embed the network through :func:`network_to_json`, which writes
every number as a string (``"-3/7"``, ``"2"``) so that any JSON reader, in any
language, keeps it exact.
"""

from __future__ import annotations

import difflib
import io as _io
import json
import os
import re
import sys
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np

from .model import ACTIVATIONS, Layer, Network

__all__ = [
    "InputError",
    "MAX_EXPONENT",
    "fraction_to_str",
    "parse_exact",
    "loads_exact",
    "load_json_file",
    "network_to_json",
    "network_from_json",
    "load_network",
]

# A decimal exponent is expanded into an exact integer power of ten, so
# "1e999999999" (eleven bytes) would stall the loader; no meaningful weight
# needs more than this.
MAX_EXPONENT = 10_000

# Offending values are quoted in messages; a runaway value must not turn a
# one-line error into a screenful.
_MAX_QUOTE = 60

_LAYER_KEYS = ("weight", "bias", "activation")
_TOP_KEYS = ("layers", "name")
# A convolutional layer ({"type": "conv", ...}; docs/formats.md).
_CONV_KEYS = (
    "type", "kernel", "in_channels", "out_channels", "input_size", "padding", "pad", "bias", "activation",
)

_RATIO_RE = re.compile(r"([+-]?)([0-9]+)/([0-9]+)")
_DECIMAL_RE = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?")

# PyTorch state dicts (torch.save, read with weights_only=True) and safetensors.
_TORCH_EXTENSIONS = (".pt", ".pth", ".safetensors")

_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"


class InputError(ValueError):
    """Bad input, explained on one line: ``str(e)`` is ``"PATH: message"``.

    ``path`` is None when the input did not come from a file; ``str(e)`` is
    then just the message.  A ValueError, so that callers which wrap number
    parsing in ``except ValueError`` (and re-raise with their path) keep
    working with :func:`parse_exact`.

    >>> str(InputError("net.json", "layers[0].weight[1][0]: 'abc' is not a number"))
    "net.json: layers[0].weight[1][0]: 'abc' is not a number"
    >>> str(InputError(None, "two\\nlines"))
    'two lines'
    """

    def __init__(self, path: str | os.PathLike | None, message: str) -> None:
        self.path = None if path is None else os.fspath(path)
        # One line, whatever produced the message: callers print it as is.
        self.message = " ".join(str(message).split())
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.path is None:
            return self.message
        return f"{' '.join(self.path.split())}: {self.message}"


def _quote(value: Any) -> str:
    """repr() of an offending value, shortened so the message stays one line."""
    if isinstance(value, _Rejected):
        text = value.text
    elif isinstance(value, list):
        text = "a list" if value else "an empty list"
    elif isinstance(value, dict):
        text = "an object"
    elif isinstance(value, bool) or value is None:
        # Spelled as in the JSON file the user is looking at.
        text = json.dumps(value)
    else:
        text = repr(value)
    text = " ".join(text.split())
    if len(text) > _MAX_QUOTE:
        text = text[: _MAX_QUOTE - 3] + "..."
    return text


# --------------------------------------------------------------------------
# Exact numbers
# --------------------------------------------------------------------------


def _digits_to_int(digits: str) -> int:
    # int() refuses more than sys.get_int_max_str_digits() digits (a guard
    # against quadratic conversion); an exact certificate may legitimately hold
    # such a number, so convert in balanced halves, each below the limit.
    limit = sys.get_int_max_str_digits() or len(digits) + 1
    if len(digits) < limit:
        return int(digits)
    half = len(digits) // 2
    return _digits_to_int(digits[:half]) * 10 ** (len(digits) - half) + _digits_to_int(digits[half:])


def _int_to_str(n: int) -> str:
    # The inverse of _digits_to_int, for the same reason.
    try:
        return str(n)
    except ValueError:
        pass
    if n < 0:
        return "-" + _int_to_str(-n)
    k = max(1, int(n.bit_length() * 0.30103) // 2)
    hi, lo = divmod(n, 10**k)
    return _int_to_str(hi) + _int_to_str(lo).rjust(k, "0")


def _parse_number_text(text: str) -> Fraction:
    """Parse the exact-number grammar; ValueError (with a reason) otherwise.

    Grammar: optional sign, then ``digits/digits`` (denominator > 0) or a
    decimal ``digits[.digits][e[sign]digits]`` (``.5`` and ``5.`` allowed).
    No underscores, no ``nan``/``inf``, no hexadecimal, nothing else.
    """
    s = text.strip()
    m = _RATIO_RE.fullmatch(s)
    if m:
        sign, num, den = m.groups()
        d = _digits_to_int(den)
        if d == 0:
            raise ValueError("division by zero")
        value = Fraction(_digits_to_int(num), d)
        return -value if sign == "-" else value
    m = _DECIMAL_RE.fullmatch(s)
    if m and (m.group(2) or m.group(3)):
        sign, whole, frac, exp = m.groups()
        frac = frac or ""
        e = int(exp) if exp is not None else 0
        if abs(e) > MAX_EXPONENT:
            raise ValueError(f"exponent {exp} is beyond +-{MAX_EXPONENT}")
        mantissa = _digits_to_int((whole + frac) or "0")
        e -= len(frac)
        value = Fraction(mantissa * 10**e) if e >= 0 else Fraction(mantissa, 10**-e)
        return -value if sign == "-" else value
    raise ValueError("not an exact number (expected an integer, a decimal or 'p/q')")


class _Rejected:
    """Stand-in the JSON hooks leave where a number cannot be taken exactly.

    json.loads gives no position for an exception raised inside a hook, so the
    hooks record the problem here and :func:`loads_exact` then reports where in
    the document it sits.  Deliberately not a str or a number, so that nothing
    downstream can mistake it for a value.
    """

    __slots__ = ("text", "reason")

    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason

    def __repr__(self) -> str:
        return self.text


def parse_exact(value: Any, where: str, path: str | os.PathLike | None = None) -> Fraction:
    """The exact rational a parsed JSON value stands for.

    Accepts a Fraction or an int (what :func:`loads_exact` makes of JSON
    numbers), a finite Decimal, or a string holding an integer, a decimal or
    ``"p/q"``.  Anything else -- booleans, null, lists, binary floats, ``"nan"``,
    ``"1/0"``, ``""`` -- raises :class:`InputError` naming ``where`` and the
    value (``path`` becomes the error's path).

    >>> parse_exact("-3/7", "w")
    Fraction(-3, 7)
    >>> parse_exact("1e-3", "w"), parse_exact(" 2 ", "w"), parse_exact(5, "w")
    (Fraction(1, 1000), Fraction(2, 1), Fraction(5, 1))
    >>> parse_exact("1/0", "layers[0].bias[1]")
    Traceback (most recent call last):
      ...
    exact_inj.io.InputError: layers[0].bias[1]: '1/0' is not an exact number: division by zero
    >>> parse_exact(0.1, "w")
    Traceback (most recent call last):
      ...
    exact_inj.io.InputError: w: got the binary float 0.1; read JSON with loads_exact/load_json_file so that numbers stay exact
    """
    # bool is a subclass of int: true/false in a weight is a mistake, not 1/0.
    if isinstance(value, bool):
        raise InputError(path, f"{where}: expected a number, got {_quote(value)}")
    if type(value) is Fraction:
        return value
    if isinstance(value, Fraction):
        return Fraction(value)
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, str):
        try:
            return _parse_number_text(value)
        except ValueError as e:
            raise InputError(path, f"{where}: {_quote(value)} is not an exact number: {e}") from None
    if isinstance(value, _Rejected):
        raise InputError(path, f"{where}: {value.text} is not an exact number: {value.reason}")
    if isinstance(value, float):
        # Which rational a float means is a decision the JSON text already made
        # (the decimal it spells); by now that text is gone, so refuse.
        raise InputError(
            path,
            f"{where}: got the binary float {_quote(value)}; read JSON with "
            "loads_exact/load_json_file so that numbers stay exact",
        )
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InputError(path, f"{where}: {_quote(str(value))} is not finite")
        return Fraction(value)
    raise InputError(path, f"{where}: expected a number, got {_quote(value)}")


def fraction_to_str(x: Fraction | int) -> str:
    """Write an exact number as ``"p/q"``, or ``"n"`` when it is an integer.

    >>> fraction_to_str(Fraction(-3, 7)), fraction_to_str(Fraction(4, 2)), fraction_to_str(0)
    ('-3/7', '2', '0')
    >>> parse_exact(fraction_to_str(Fraction(10**5000 + 1, 3)), "x") == Fraction(10**5000 + 1, 3)
    True
    """
    if isinstance(x, bool) or not isinstance(x, (int, Fraction)):
        raise TypeError(f"fraction_to_str needs a Fraction or an int, got {type(x).__name__}")
    x = Fraction(x)
    if x.denominator == 1:
        return _int_to_str(x.numerator)
    return f"{_int_to_str(x.numerator)}/{_int_to_str(x.denominator)}"


# --------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------


def _hook_number(text: str) -> Fraction | _Rejected:
    try:
        return _parse_number_text(text)
    except ValueError as e:
        return _Rejected(text, str(e))


def _hook_int(text: str) -> int:
    # An integer literal stays a Python int: exact already, and what index
    # lists in certificates (row supports, tree codes) expect.  Bypasses int()'s
    # digit limit, as everywhere here.
    return -_digits_to_int(text[1:]) if text.startswith("-") else _digits_to_int(text)


def _hook_constant(text: str) -> _Rejected:
    return _Rejected(text, "non-finite numbers are not allowed")


def _find_rejected(obj: Any) -> tuple[str, _Rejected] | None:
    # Iterative, so that a deeply nested (but valid) document cannot overflow
    # the Python stack here after json.loads accepted it.
    stack: list[tuple[Any, str]] = [(obj, "")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, _Rejected):
            return where, node
        if isinstance(node, dict):
            for k in reversed(list(node)):
                stack.append((node[k], f"{where}.{k}" if where else str(k)))
        elif isinstance(node, list):
            for i in range(len(node) - 1, -1, -1):
                stack.append((node[i], f"{where}[{i}]"))
    return None


class _DuplicateKey(Exception):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    # json keeps the last of two equal keys silently; a file that says
    # "layers" twice is ambiguous, so it is refused like any other bad input.
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def loads_exact(text: str, path: str | os.PathLike | None = None) -> Any:
    """Parse JSON text keeping every number exact.

    An integer literal becomes an int; any other JSON number becomes the
    Fraction of the decimal it spells (``1e9`` too); ``NaN``,
    ``Infinity`` and ``-Infinity`` (which Python's json accepts) are refused,
    as are exponents beyond :data:`MAX_EXPONENT`.  Errors are
    :class:`InputError` with the given path.

    >>> loads_exact('{"w": [0.1, 1e-9, -2, "1/3"]}')
    {'w': [Fraction(1, 10), Fraction(1, 1000000000), -2, '1/3']}
    >>> loads_exact('{"w": [1, NaN]}', "a.json")
    Traceback (most recent call last):
      ...
    exact_inj.io.InputError: a.json: w[1]: NaN is not an exact number: non-finite numbers are not allowed
    >>> loads_exact('{"w": [1, 2', "a.json")
    Traceback (most recent call last):
      ...
    exact_inj.io.InputError: a.json: invalid or truncated JSON at line 1 column 12: Expecting ',' delimiter
    """
    if not text.strip():
        raise InputError(path, "file is empty" if path is not None else "empty JSON text")
    try:
        obj = json.loads(
            text,
            parse_float=_hook_number,
            parse_int=_hook_int,
            parse_constant=_hook_constant,
            object_pairs_hook=_no_duplicate_keys,
        )
    except json.JSONDecodeError as e:
        raise InputError(path, f"invalid or truncated JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except _DuplicateKey as e:
        raise InputError(path, f"duplicate key {str(e.args[0])[:60]!r} in a JSON object") from None
    except RecursionError:
        raise InputError(path, "JSON is nested too deeply") from None
    found = _find_rejected(obj)
    if found is not None:
        where, bad = found
        raise InputError(path, f"{where or 'top level'}: {bad.text} is not an exact number: {bad.reason}")
    return obj


def _read_bytes(path: str | os.PathLike) -> bytes:
    p = os.fspath(path)
    if not os.path.exists(p):
        raise InputError(p, "no such file")
    if os.path.isdir(p):
        raise InputError(p, "is a directory, not a file")
    try:
        with open(p, "rb") as fh:
            return fh.read()
    except OSError as e:
        raise InputError(p, f"cannot read: {e.strerror or e}") from None


def _decode_text(data: bytes, path: str) -> str:
    if data.startswith(_ZIP_MAGIC) or data.startswith(_EMPTY_ZIP_MAGIC):
        raise InputError(path, "binary zip data (an NPZ archive?), not JSON text; name it .npz to load it as NPZ")
    if b"\x00" in data:
        raise InputError(path, "binary data, not JSON text")
    try:
        # utf-8-sig: a byte-order mark from some editors is harmless.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(path, f"binary data or not UTF-8 (byte {e.start}), not JSON text") from None


def load_json_file(path: str | os.PathLike) -> Any:
    """Read a JSON file with exact numbers (see :func:`loads_exact`).

    Missing, unreadable, empty, binary or malformed files raise
    :class:`InputError`.  Shared by the network and certificate loaders.

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "x.json")
    ...     _ = open(p, "w").write('{"a": 0.25}')
    ...     load_json_file(p)
    {'a': Fraction(1, 4)}
    """
    p = os.fspath(path)
    data = _read_bytes(p)
    return loads_exact(_decode_text(data, p), p)


def _suggest(key: str, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"(allowed: {', '.join(allowed)}){hint}"


def _layer_from_json(obj: Any, k: int, path: str | None, prefix: str = "") -> Layer:
    at = f"{prefix}layers[{k}]"
    if not isinstance(obj, dict):
        raise InputError(path, f"{at}: expected an object with a 'weight' key, got {_quote(obj)}")
    if "type" in obj:
        kind = obj["type"]
        if kind == "conv":
            return _conv_layer_from_json(obj, at, path)
        if kind != "dense":
            raise InputError(path, f"{at}.type: {_quote(kind)} is not one of 'dense', 'conv'")
        # "type": "dense" is the default spelled out; the dense keys follow.
        obj = {key: v for key, v in obj.items() if key != "type"}
    for key in obj:
        if key not in _LAYER_KEYS:
            # A typo such as "weights" or "biases" must not silently fall back
            # to a default.
            raise InputError(path, f"{at}: unknown key {key!r} {_suggest(key, _LAYER_KEYS)}")
    if "weight" not in obj:
        raise InputError(path, f"{at}: missing 'weight'")

    W = obj["weight"]
    if not isinstance(W, list):
        raise InputError(path, f"{at}.weight: expected a list of rows, got {_quote(W)}")
    if not W:
        raise InputError(path, f"{at}.weight is empty")
    rows: list[tuple[Fraction, ...]] = []
    n = None
    for i, row in enumerate(W):
        if not isinstance(row, list):
            raise InputError(
                path, f"{at}.weight[{i}]: expected a row (a list of numbers), got {_quote(row)}"
            )
        if not row:
            raise InputError(path, f"{at}.weight[{i}] is an empty row")
        if n is None:
            n = len(row)
        elif len(row) != n:
            raise InputError(
                path, f"{at}.weight[{i}] has {len(row)} entries but weight[0] has {n} (ragged rows)"
            )
        rows.append(tuple(parse_exact(v, f"{at}.weight[{i}][{j}]", path) for j, v in enumerate(row)))

    if "bias" in obj:
        B = obj["bias"]
        if not isinstance(B, list):
            raise InputError(path, f"{at}.bias: expected a list of numbers, got {_quote(B)}")
        if len(B) != len(rows):
            raise InputError(path, f"{at}.bias has {len(B)} entries but weight has {len(rows)} rows")
        bias = tuple(parse_exact(v, f"{at}.bias[{i}]", path) for i, v in enumerate(B))
    else:
        bias = tuple(Fraction(0) for _ in rows)

    act = obj.get("activation", "relu")
    if not isinstance(act, str) or act not in ACTIVATIONS:
        # No case folding: "ReLU" is refused too, so that every accepted
        # spelling is the documented one.
        raise InputError(
            path, f"{at}.activation: {_quote(act)} is not one of {', '.join(map(repr, ACTIVATIONS))}"
        )
    try:
        return Layer(tuple(rows), bias, act)
    except (ValueError, TypeError) as e:  # the checks above should leave nothing
        raise InputError(path, f"{at}: {e}") from None


def _json_int(v: Any, where: str, path: str | None, minimum: int = 1) -> int:
    # Counts are JSON integer literals (loads_exact keeps them as int); a
    # decimal such as 2.0 or a string is refused rather than rounded.
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise InputError(path, f"{where}: expected an integer >= {minimum}, got {_quote(v)}")
    return v


def _nested_exact(x: Any, depth: int, where: str, path: str | None) -> Any:
    """Nested lists of exact numbers (depth levels), every entry located in errors."""
    if depth == 0:
        return parse_exact(x, where, path)
    if not isinstance(x, list) or not x:
        raise InputError(path, f"{where}: expected a non-empty list, got {_quote(x)}")
    return [_nested_exact(v, depth - 1, f"{where}[{i}]", path) for i, v in enumerate(x)]


def _conv_layer_from_json(obj: dict, at: str, path: str | None):
    """A ``"type": "conv"`` layer, kept as its kernel (a :class:`~exact_inj.conv.ConvLayer`)."""
    from .conv import PADDINGS, ConvSpec

    for key in obj:
        if key not in _CONV_KEYS:
            raise InputError(path, f"{at}: unknown key {key!r} in a conv layer {_suggest(key, _CONV_KEYS)}")
    for key in ("kernel", "in_channels", "out_channels", "input_size"):
        if key not in obj:
            raise InputError(path, f"{at}: conv layer is missing {key!r}")
    cin = _json_int(obj["in_channels"], f"{at}.in_channels", path)
    cout = _json_int(obj["out_channels"], f"{at}.out_channels", path)
    size = obj["input_size"]
    if not isinstance(size, list) or len(size) not in (1, 2):
        raise InputError(path, f"{at}.input_size: expected [L] or [H, W], got {_quote(size)}")
    size = [_json_int(v, f"{at}.input_size[{i}]", path) for i, v in enumerate(size)]
    kernel = _nested_exact(obj["kernel"], 2 + len(size), f"{at}.kernel", path)
    padding = obj.get("padding", "zero")
    if padding not in PADDINGS:
        raise InputError(path, f"{at}.padding: {_quote(padding)} is not one of {', '.join(map(repr, PADDINGS))}")
    bias = None
    if "bias" in obj:
        B = obj["bias"]
        if not isinstance(B, list):
            raise InputError(path, f"{at}.bias: expected a list of numbers (one per output channel), got {_quote(B)}")
        bias = [parse_exact(v, f"{at}.bias[{i}]", path) for i, v in enumerate(B)]
    act = obj.get("activation", "relu")
    if not isinstance(act, str) or act not in ACTIVATIONS:
        raise InputError(
            path, f"{at}.activation: {_quote(act)} is not one of {', '.join(map(repr, ACTIVATIONS))}"
        )
    try:
        spec = ConvSpec.build(kernel, cin, cout, size, padding, obj.get("pad", 0), bias)
        return spec.layer(act)
    except (ValueError, TypeError) as e:
        raise InputError(path, f"{at}: {e}") from None


def _network_from_layers(layers: list[Layer], name: str, path: str | None, label) -> Network:
    # label(k) names layer k as the input format does ("layers[1]", "weight_1").
    for k in range(1, len(layers)):
        if layers[k].in_dim != layers[k - 1].out_dim:
            raise InputError(
                path,
                f"{label(k)} expects {layers[k].in_dim} inputs but {label(k - 1)} "
                f"gives {layers[k - 1].out_dim} outputs",
            )
    try:
        return Network(tuple(layers), name)
    except (ValueError, TypeError) as e:
        raise InputError(path, str(e)) from None


def network_from_json(obj: Any, path: str | os.PathLike | None = None, where: str = "") -> Network:
    """Build a Network from parsed JSON (the file format, or a certificate's copy).

    ``obj`` should come from :func:`loads_exact`/:func:`load_json_file` (JSON
    numbers as Fractions and ints) or :func:`network_to_json` (numbers as
    strings).  ``where`` names the object inside a larger document (a
    certificate passes ``"network"``) and prefixes every location in errors.

    >>> net = network_from_json(loads_exact('{"layers": [{"weight": [[1], [-1]], "bias": [1, "-1"]}]}'))
    >>> net.layers[0].bias, net.layers[0].activation
    ((Fraction(1, 1), Fraction(-1, 1)), 'relu')
    >>> network_from_json({"layers": [{"weights": [[1]]}]}, "n.json")
    Traceback (most recent call last):
      ...
    exact_inj.io.InputError: n.json: layers[0]: unknown key 'weights' (allowed: weight, bias, activation); did you mean 'weight'?
    """
    p = None if path is None else os.fspath(path)
    top = where or "top level"
    pre = f"{where}." if where else ""
    if not isinstance(obj, dict):
        raise InputError(p, f'{top}: expected an object {{"layers": [...]}}, got {_quote(obj)}')
    for key in obj:
        if key not in _TOP_KEYS:
            hint = ""
            if key in _LAYER_KEYS:
                hint = '; a single layer is written {"layers": [{"weight": ...}]}'
            raise InputError(p, f"{top}: unknown key {key!r} {_suggest(key, _TOP_KEYS)}{hint}")
    if "layers" not in obj:
        raise InputError(p, f"{top}: missing 'layers'")
    name = obj.get("name", "")
    if not isinstance(name, str):
        raise InputError(p, f"{pre}name: expected a string, got {_quote(name)}")
    L = obj["layers"]
    if not isinstance(L, list):
        raise InputError(p, f"{pre}layers: expected a list of layers, got {_quote(L)}")
    if not L:
        raise InputError(p, f"{pre}layers is empty; a network needs at least one layer")
    layers = [_layer_from_json(layer, k, p, pre) for k, layer in enumerate(L)]
    return _network_from_layers(layers, name, p, lambda k: f"{pre}layers[{k}]")


def network_to_json(net: Network) -> dict:
    """The JSON form of a network, every number a string: lossless.

    >>> from exact_inj.model import Layer, Network
    >>> net = Network((Layer.from_rows([[2, "-3/7"]], ["0.5"]),), name="tiny")
    >>> network_to_json(net)
    {'name': 'tiny', 'layers': [{'weight': [['2', '-3/7']], 'bias': ['1/2'], 'activation': 'relu'}]}
    >>> network_from_json(network_to_json(net)) == net
    True
    """
    out: dict[str, Any] = {}
    if net.name:
        out["name"] = net.name
    out["layers"] = [_layer_to_json(layer) for layer in net.layers]
    return out


def _layer_to_json(layer) -> dict[str, Any]:
    # A convolution is written as its kernel: a certificate for a big conv
    # layer must not embed its dense operator.
    if hasattr(layer, "spec"):
        return {**layer.spec.to_json(), "activation": layer.activation}
    return {
        "weight": [[fraction_to_str(v) for v in row] for row in layer.weight],
        "bias": [fraction_to_str(v) for v in layer.bias],
        "activation": layer.activation,
    }


# --------------------------------------------------------------------------
# NPZ
# --------------------------------------------------------------------------

_NPZ_KEY_RE = re.compile(r"(weight|bias|activation)_(0|[1-9][0-9]*)")


def _npz_numbers(arr: np.ndarray, key: str, path: str) -> list:
    """Exact Fractions for a numeric array (nested lists of the same shape)."""
    kind = arr.dtype.kind
    if kind == "f":
        finite = np.isfinite(arr)
        if not finite.all():
            idx = tuple(int(i) for i in np.argwhere(~finite)[0])
            at = key + "".join(f"[{i}]" for i in idx)
            raise InputError(path, f"{at} is {float(arr[idx])}; numbers must be finite")
        if arr.dtype.itemsize <= 8:
            # float16/32 widen to a Python float exactly, and Fraction(float)
            # is the float's exact binary value.
            return _map_nested(arr.tolist(), Fraction)
        # longdouble: tolist() keeps numpy scalars, whose ratio is exact.
        return _map_nested(arr.tolist(), lambda v: Fraction(*v.as_integer_ratio()))
    if kind in "iu":
        return _map_nested(arr.tolist(), Fraction)
    what = {
        "b": "booleans",
        "c": "complex numbers",
        "U": "strings",
        "S": "bytes",
        "O": "Python objects",
        "V": "structured records",
        "M": "datetimes",
        "m": "timedeltas",
    }.get(kind, f"dtype {arr.dtype}")
    raise InputError(path, f"{key} holds {what} (dtype {arr.dtype}); expected an integer or float array")


def _map_nested(x: Any, f) -> Any:
    if isinstance(x, list):
        return [_map_nested(v, f) for v in x]
    return f(x)


def _npz_string(arr: np.ndarray, key: str, path: str) -> str:
    # Only a 0-d array is accepted (np.array("relu")): a shape-(1,) array is a
    # different object, and nothing is reshaped silently.
    if arr.dtype.kind not in "US" or arr.ndim != 0:
        raise InputError(
            path,
            f"{key}: expected a 0-d string array such as np.array('relu'), "
            f"got dtype {arr.dtype} shape {arr.shape}",
        )
    value = arr.item()
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(path, f"{key}: {_quote(value)} is not UTF-8 text") from None
    return str(value)


def _npz_activation(arr: np.ndarray, key: str, path: str) -> str:
    value = _npz_string(arr, key, path)
    if value not in ACTIVATIONS:
        raise InputError(path, f"{key}: {_quote(value)} is not one of {', '.join(map(repr, ACTIVATIONS))}")
    return value


def _load_npz(data: bytes, path: str) -> Network:
    try:
        archive = np.load(_io.BytesIO(data), allow_pickle=False)
    except Exception as e:  # noqa: BLE001
        # numpy and zipfile report damage with a zoo of exception types
        # (BadZipFile, EOFError, ValueError, OSError, zlib.error, even
        # tokenize.TokenError from a damaged header); all mean "bad file".
        raise InputError(path, f"corrupt or truncated NPZ archive ({type(e).__name__}: {e})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise InputError(path, "is a single .npy array, not an .npz archive of weight_0, bias_0, ...")
    with archive:
        arrays: dict[str, np.ndarray] = {}
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except ValueError as e:
                if "allow_pickle" in str(e):
                    raise InputError(
                        path, f"{key} is an object (pickled) array; only numeric arrays are accepted"
                    ) from None
                raise InputError(path, f"{key}: corrupt or truncated array ({e})") from None
            except Exception as e:  # noqa: BLE001  (same zoo as above)
                raise InputError(path, f"{key}: corrupt or truncated array ({type(e).__name__}: {e})") from None

    by_layer: dict[int, dict[str, np.ndarray]] = {}
    name = ""
    for key, arr in arrays.items():
        if key == "name":
            name = _npz_string(arr, "name", path)
            continue
        m = _NPZ_KEY_RE.fullmatch(key)
        if not m:
            raise InputError(
                path,
                f"unknown array {key!r} (expected weight_K, bias_K, activation_K "
                "for K = 0, 1, ... and optionally name)",
            )
        by_layer.setdefault(int(m.group(2)), {})[m.group(1)] = arr
    if not by_layer:
        raise InputError(path, "archive holds no weight_0 array")
    count = max(by_layer) + 1
    for k in range(count):
        if "weight" not in by_layer.get(k, {}):
            raise InputError(path, f"weight_{k} is missing (layers are numbered 0, 1, ... without gaps)")

    layers: list[Layer] = []
    for k in range(count):
        parts = by_layer[k]
        W = parts["weight"]
        if W.ndim != 2:
            raise InputError(path, f"weight_{k} has {W.ndim} dimensions (shape {W.shape}); expected 2 (rows x inputs)")
        if W.shape[0] == 0 or W.shape[1] == 0:
            raise InputError(path, f"weight_{k} is empty (shape {W.shape})")
        rows = tuple(tuple(r) for r in _npz_numbers(W, f"weight_{k}", path))
        if "bias" in parts:
            b = parts["bias"]
            if b.ndim != 1:
                raise InputError(path, f"bias_{k} has {b.ndim} dimensions (shape {b.shape}); expected 1")
            if b.shape[0] != W.shape[0]:
                raise InputError(path, f"bias_{k} has {b.shape[0]} entries but weight_{k} has {W.shape[0]} rows")
            bias = tuple(_npz_numbers(b, f"bias_{k}", path))
        else:
            bias = tuple(Fraction(0) for _ in rows)
        act = _npz_activation(parts["activation"], f"activation_{k}", path) if "activation" in parts else "relu"
        layers.append(Layer(rows, bias, act))
    return _network_from_layers(layers, name, path, lambda k: f"weight_{k}")


# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------


def load_network(path: str | os.PathLike) -> Network:
    """Load a network from a ``.json`` or ``.npz`` file, exactly.

    ``.onnx`` files go to :mod:`exact_inj.onnx_import` and ``.pt``, ``.pth``
    and ``.safetensors`` to :mod:`exact_inj.torch_import` (optional extras;
    docs/model-files.md).  Any other extension is read as JSON unless the
    content is a zip archive (then NPZ).  Every problem is an
    :class:`InputError`.

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "layer.json")
    ...     _ = open(p, "w").write('{"layers": [{"weight": [[0.1], [-1]]}]}')
    ...     load_network(p).layers[0].weight
    ((Fraction(1, 10),), (Fraction(-1, 1),))
    """
    p = os.fspath(path)
    data = _read_bytes(p)
    if not data.strip():
        raise InputError(p, "file is empty")
    ext = os.path.splitext(p)[1].lower()
    # Model files of other frameworks, by extension only (docs/model-files.md).
    # Their importers need optional packages, so they are imported here, late.
    if ext == ".onnx":
        from .onnx_import import network_from_onnx_bytes

        return network_from_onnx_bytes(data, p)
    if ext in _TORCH_EXTENSIONS:
        from .torch_import import network_from_torch_bytes

        return network_from_torch_bytes(data, p)
    is_zip = data.startswith(_ZIP_MAGIC) or data.startswith(_EMPTY_ZIP_MAGIC)
    if ext == ".npz" or (ext != ".json" and is_zip):
        if not is_zip:
            raise InputError(p, "not an NPZ archive (no zip header); a .npz file is written by numpy.savez")
        return _load_npz(data, p)
    return network_from_json(loads_exact(_decode_text(data, p), p), p)

