"""Networks as JSON, with every number kept exact (docs/formats.md).

``{"layers": [{"weight": [[...]], "bias": [...], "activation": "relu"}]}``.
A JSON number means the decimal it spells (``0.1`` is 1/10, never the binary
double nearest to it); a string may hold ``"p/q"`` or a decimal.  A layer may
instead be ``{"type": "conv", ...}``: a convolution, kept as its kernel (a
:class:`~exact_inj.model.ConvLayer`).

Nothing is coerced silently: anything that is not clearly a finite rational in
the right place is an :class:`~exact_inj.errors.InputError`, a one-line message
that starts with the file's path and names the place and the offending value.

Certificates embed the network through :func:`network_to_json`, which writes
every number as a string (``"-3/7"``, ``"2"``) so that any JSON reader, in any
language, keeps it exact.
"""

from __future__ import annotations

import difflib
import json
import os
from fractions import Fraction
from math import prod
from typing import Any

from ..errors import InputError
from ..model import ACTIVATIONS, OUTPUT_UNITS, PADDINGS, ConvSpec, KernelSpec, Layer, Network
from ..numbers import (Rejected, digits_to_int, fraction_to_str, limits, over_limit, parse_exact, parse_number_text,
                       quote)
from .files import decode_text, read_bytes

__all__ = ["loads_exact", "load_json_file", "network_from_json", "network_from_layers", "network_to_json"]


_LAYER_KEYS = ("weight", "bias", "activation", "slope")
_TOP_KEYS = ("layers", "name", "output_unit")
# A convolutional layer ({"type": "conv", ...}; docs/formats.md).
_CONV_KEYS = (
    "type", "kernel", "in_channels", "out_channels", "input_size", "padding", "pad", "bias", "activation", "slope",
)


def _activation(obj: dict, at: str, path: str | None) -> str:
    """The layer's activation name, exactly as documented.  No case folding
    ("ReLU" is refused, so that every accepted spelling is the documented
    one, and a certificate says back what the file said), but the message
    names the spelling meant."""
    act = obj.get("activation", "relu")
    if isinstance(act, str) and act in ACTIVATIONS:
        return act
    hint = ""
    if isinstance(act, str) and act.lower().replace("-", "_") in ACTIVATIONS:
        hint = f"; names are lower case: did you mean {act.lower().replace('-', '_')!r}?"
    raise InputError(path, f"{at}.activation: {quote(act)} is not one of {', '.join(map(repr, ACTIVATIONS))}{hint}")


def _slope(obj: dict, act: str, at: str, path: str | None) -> Fraction:
    """The "slope" of a "leaky_relu" layer (docs/model-files.md): exact, > 0."""
    if "slope" not in obj:
        if act == "leaky_relu":
            raise InputError(path, f"{at}: a leaky_relu layer needs a 'slope'")
        return Fraction(0)
    slope = parse_exact(obj["slope"], f"{at}.slope", path)
    if act != "leaky_relu" or slope <= 0:
        raise InputError(path, f"{at}.slope: only a leaky_relu layer has a slope, and it must be > 0")
    return slope


def _kernel_layer_from_json(obj: dict, at: str, path: str | None):
    """A ``"strided_conv"`` or ``"conv_transpose"`` layer (model/kernels.py)."""
    act = _activation(obj, at, path)
    # Every integer field is bounded before the model sees it: its messages
    # quote values with repr, which a 5000-digit integer breaks, and a huge
    # stride or dilation would make the operator's sizes astronomical (found by
    # the slow surd_structural fuzz target: a 5001-digit dilation gave exit 4).
    for key in ("in_channels", "out_channels"):
        if key in obj:
            _conv_int(obj[key], f"{at}.{key}", path)
    for key in ("input_size", "strides", "dilations", "output_padding", "pad"):
        if key in obj:
            _bounded_int_leaves(obj[key], f"{at}.{key}", path)
    try:
        body = dict(obj)
        d = len(body["input_size"]) if isinstance(body.get("input_size"), list) else 0
        if "kernel" in body and d:
            body["kernel"] = _nested_exact(body["kernel"], 2 + d, f"{at}.kernel", path)
        if isinstance(body.get("bias"), list):
            body["bias"] = [parse_exact(v, f"{at}.bias[{i}]", path) for i, v in enumerate(body["bias"])]
        return KernelSpec.from_json(body).layer(act, _slope(obj, act, at, path))
    except (ValueError, TypeError) as e:
        raise InputError(path, f"{at}: {e}") from None


# --------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------


def _hook_number(text: str) -> Fraction | Rejected:
    try:
        return parse_number_text(text)
    except ValueError as e:
        return Rejected(text, str(e))


def _hook_int(text: str) -> int | Rejected:
    # An integer literal stays a Python int: exact already, and what index
    # lists in certificates (row supports, tree codes) expect.  Bypasses int()'s
    # digit limit, as everywhere here, up to the document's own limit.
    if len(text) > limits().max_digits:
        return Rejected(text, over_limit("max_digits", f"a number of {len(text)} characters"))
    return -digits_to_int(text[1:]) if text.startswith("-") else digits_to_int(text)


def _hook_constant(text: str) -> Rejected:
    return Rejected(text, "non-finite numbers are not allowed")


def _find_rejected(obj: Any, path: str | os.PathLike | None = None) -> tuple[str, Rejected] | None:
    """The first number the hooks could not take, after checking the document's
    nesting depth and number of values against :func:`~exact_inj.numbers.limits`."""
    # Iterative, so that a deeply nested (but valid) document cannot overflow
    # the Python stack here after json.loads accepted it.
    lim = limits()
    stack: list[tuple[Any, str, int]] = [(obj, "", 0)]
    count = 0
    while stack:
        node, where, depth = stack.pop()
        count += 1
        if count > lim.max_entries:
            raise InputError(path, over_limit("max_entries", f"a document of more than {lim.max_entries} values"))
        if isinstance(node, Rejected):
            return where, node
        if isinstance(node, (dict, list)) and depth >= lim.max_depth:
            raise InputError(path, over_limit("max_depth", f"{where or 'top level'}: nesting depth {depth + 1}"))
        if isinstance(node, dict):
            for k in reversed(list(node)):
                stack.append((node[k], f"{where}.{_key(k)}" if where else _key(k), depth + 1))
        elif isinstance(node, list):
            if not any(type(v) in (list, dict) for v in node):
                # A list of plain values (most of a big document): counted and
                # scanned here, in document order, instead of one stack entry
                # and one location string per value.
                count += len(node)
                if count > lim.max_entries:
                    raise InputError(path, over_limit("max_entries",
                                                      f"a document of more than {lim.max_entries} values"))
                for i, v in enumerate(node):
                    if type(v) is Rejected:
                        return f"{where}[{i}]", v
                continue
            for i in range(len(node) - 1, -1, -1):
                stack.append((node[i], f"{where}[{i}]", depth + 1))
    return None


def _key(k: str) -> str:
    # A key as a location: a hostile key may be long or hold line breaks.
    return k if len(k) <= 40 and k.isprintable() else quote(k)


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
    exact_inj.errors.InputError: a.json: w[1]: NaN is not an exact number: non-finite numbers are not allowed
    >>> loads_exact('{"w": [1, 2', "a.json")
    Traceback (most recent call last):
      ...
    exact_inj.errors.InputError: a.json: invalid or truncated JSON at line 1 column 12: Expecting ',' delimiter
    """
    if len(text) > limits().max_bytes:
        raise InputError(path, over_limit("max_bytes", f"a document of {len(text)} characters"))
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
        raise InputError(path, f"duplicate key {quote(str(e.args[0]))} in a JSON object") from None
    except RecursionError:
        raise InputError(path, "JSON is nested too deeply") from None
    found = _find_rejected(obj, path)
    if found is not None:
        where, bad = found
        raise InputError(path, f"{where or 'top level'}: {quote(bad)} is not an exact number: {bad.reason}")
    return obj



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
    data = read_bytes(p)
    return loads_exact(decode_text(data, p), p)


def _suggest(key: str, allowed: tuple[str, ...]) -> str:
    # difflib is quadratic in the key's length: a hostile key gets no suggestion.
    close = difflib.get_close_matches(key, allowed, n=1) if len(key) <= 40 else []
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"(allowed: {', '.join(allowed)}){hint}"


def _layer_from_json(obj: Any, k: int, path: str | None, prefix: str = "") -> Layer:
    at = f"{prefix}layers[{k}]"
    if not isinstance(obj, dict):
        raise InputError(path, f"{at}: expected an object with a 'weight' key, got {quote(obj)}")
    if "type" in obj:
        kind = obj["type"]
        if kind == "conv":
            return _conv_layer_from_json(obj, at, path)
        if kind in ("strided_conv", "conv_transpose"):
            return _kernel_layer_from_json(obj, at, path)
        if kind != "dense":
            raise InputError(path, f"{at}.type: {quote(kind)} is not one of 'dense', 'conv', 'strided_conv', "
                             "'conv_transpose'")
        # "type": "dense" is the default spelled out; the dense keys follow.
        obj = {key: v for key, v in obj.items() if key != "type"}
    for key in obj:
        if key not in _LAYER_KEYS:
            # A typo such as "weights" or "biases" must not silently fall back
            # to a default.
            raise InputError(path, f"{at}: unknown key {quote(key)} {_suggest(key, _LAYER_KEYS)}")
    if "weight" not in obj:
        raise InputError(path, f"{at}: missing 'weight'")

    W = obj["weight"]
    if not isinstance(W, list):
        raise InputError(path, f"{at}.weight: expected a list of rows, got {quote(W)}")
    if not W:
        raise InputError(path, f"{at}.weight is empty")
    rows: list[tuple[Fraction, ...]] = []
    n = None
    for i, row in enumerate(W):
        if not isinstance(row, list):
            raise InputError(
                path, f"{at}.weight[{i}]: expected a row (a list of numbers), got {quote(row)}"
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
            raise InputError(path, f"{at}.bias: expected a list of numbers, got {quote(B)}")
        if len(B) != len(rows):
            raise InputError(path, f"{at}.bias has {len(B)} entries but weight has {len(rows)} rows")
        bias = tuple(parse_exact(v, f"{at}.bias[{i}]", path) for i, v in enumerate(B))
    else:
        bias = tuple(Fraction(0) for _ in rows)

    act = _activation(obj, at, path)
    try:
        return Layer(tuple(rows), bias, act, _slope(obj, act, at, path))
    except (ValueError, TypeError) as e:  # the checks above should leave nothing
        raise InputError(path, f"{at}: {e}") from None


def _json_int(v: Any, where: str, path: str | None, minimum: int = 1) -> int:
    # Counts are JSON integer literals (loads_exact keeps them as int); a
    # decimal such as 2.0 or a string is refused rather than rounded.
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise InputError(path, f"{where}: expected an integer >= {minimum}, got {quote(v)}")
    return v


def _conv_int(v: Any, where: str, path: str | None) -> int:
    n = _json_int(v, where, path)
    if n > limits().max_conv_size:
        raise InputError(path, over_limit("max_conv_size", f"{where} = {quote(n)}"))
    return n


def _conv_pads(pad: Any, where: str, path: str | None) -> None:
    # The pad's leaves must be integers of bounded size, or the whole pad
    # "same"; how they pair up is the model's to check (model/conv.py), whose
    # messages quote values with str(), which a huge number breaks.
    if pad != "same":
        _bounded_int_leaves(pad, where, path, noun="pad",
                            expected=" (expected an integer, a [before, after] pair per dimension or 'same')")


def _bounded_int_leaves(v: Any, where: str, path: str | None, noun: str = "", expected: str = "") -> None:
    # Small integer lists of conv and kernel layers (sizes, strides,
    # dilations, pads): leaves must be integers within max_conv_size; their
    # shape is the model's to check (model/conv.py, model/kernels.py).
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, list):
            stack.extend(x[:8])  # at most 2 x 2 entries; longer lists are refused by the model
        elif isinstance(x, bool) or not isinstance(x, int):
            raise InputError(path, f"{where}: {noun + ' ' if noun else ''}{quote(x)} is not an integer{expected}")
        elif abs(x) > limits().max_conv_size:
            raise InputError(path, over_limit("max_conv_size", f"{where}: {'a ' + noun + ' of ' if noun else ''}"
                                                               f"{quote(x)}"))


def _nested_exact(x: Any, depth: int, where: str, path: str | None, memo: dict | None = None) -> Any:
    """Nested lists of exact numbers (depth levels), every entry located in errors."""
    if depth == 0:
        return parse_exact(x, where, path)
    if not isinstance(x, list) or not x:
        raise InputError(path, f"{where}: expected a non-empty list, got {quote(x)}")
    if memo is None:
        memo = {}
    if depth == 1:
        # The innermost lists hold nearly every entry (4.9M in a full-size
        # generator's certificate, of 141 distinct strings): each distinct
        # string is parsed once, and a location is spelled only for a parse.
        out = []
        for i, v in enumerate(x):
            t = type(v)
            if t is Fraction:
                out.append(v)
            elif t is int:
                out.append(Fraction(v))
            elif t is str and v in memo:
                out.append(memo[v])
            else:
                f = parse_exact(v, f"{where}[{i}]", path)
                if t is str:
                    memo[v] = f
                out.append(f)
        return out
    return [_nested_exact(v, depth - 1, f"{where}[{i}]", path, memo) for i, v in enumerate(x)]


def _conv_layer_from_json(obj: dict, at: str, path: str | None):
    """A ``"type": "conv"`` layer, kept as its kernel (a :class:`~exact_inj.model.ConvLayer`)."""
    for key in obj:
        if key not in _CONV_KEYS:
            raise InputError(path, f"{at}: unknown key {quote(key)} in a conv layer {_suggest(key, _CONV_KEYS)}")
    for key in ("kernel", "in_channels", "out_channels", "input_size"):
        if key not in obj:
            raise InputError(path, f"{at}: conv layer is missing {key!r}")
    cin = _conv_int(obj["in_channels"], f"{at}.in_channels", path)
    cout = _conv_int(obj["out_channels"], f"{at}.out_channels", path)
    size = obj["input_size"]
    if not isinstance(size, list) or len(size) not in (1, 2):
        raise InputError(path, f"{at}.input_size: expected [L] or [H, W], got {quote(size)}")
    size = [_conv_int(v, f"{at}.input_size[{i}]", path) for i, v in enumerate(size)]
    if cin * prod(size) > limits().max_conv_size:
        # The checks of a conv layer visit every input position (a frequency
        # each, docs/theory.md section 8): bounded, so that a few bytes of
        # sizes cannot ask for unbounded work.
        raise InputError(path, over_limit("max_conv_size", f"{at}: {cin} channels x {' x '.join(map(str, size))} inputs"))
    _conv_pads(obj.get("pad", 0), f"{at}.pad", path)
    kernel = _nested_exact(obj["kernel"], 2 + len(size), f"{at}.kernel", path)
    padding = obj.get("padding", "zero")
    if padding not in PADDINGS:
        raise InputError(path, f"{at}.padding: {quote(padding)} is not one of {', '.join(map(repr, PADDINGS))}")
    bias = None
    if "bias" in obj:
        B = obj["bias"]
        if not isinstance(B, list):
            raise InputError(path, f"{at}.bias: expected a list of numbers (one per output channel), got {quote(B)}")
        bias = [parse_exact(v, f"{at}.bias[{i}]", path) for i, v in enumerate(B)]
    act = _activation(obj, at, path)
    try:
        spec = ConvSpec.build(kernel, cin, cout, size, padding, obj.get("pad", 0), bias)
        return spec.layer(act, _slope(obj, act, at, path))
    except (ValueError, TypeError) as e:
        raise InputError(path, f"{at}: {e}") from None


def network_from_layers(layers: list[Layer], name: str, path: str | None, label) -> Network:
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
    exact_inj.errors.InputError: n.json: layers[0]: unknown key 'weights' (allowed: weight, bias, activation, slope); did you mean 'weight'?
    """
    p = None if path is None else os.fspath(path)
    top = where or "top level"
    pre = f"{where}." if where else ""
    if not isinstance(obj, dict):
        raise InputError(p, f'{top}: expected an object {{"layers": [...]}}, got {quote(obj)}')
    for key in obj:
        if key not in _TOP_KEYS:
            hint = ""
            if key in _LAYER_KEYS:
                hint = '; a single layer is written {"layers": [{"weight": ...}]}'
            raise InputError(p, f"{top}: unknown key {quote(key)} {_suggest(key, _TOP_KEYS)}{hint}")
    if "layers" not in obj:
        raise InputError(p, f"{top}: missing 'layers'")
    name = obj.get("name", "")
    if not isinstance(name, str):
        raise InputError(p, f"{pre}name: expected a string, got {quote(name)}")
    L = obj["layers"]
    if not isinstance(L, list):
        raise InputError(p, f"{pre}layers: expected a list of layers, got {quote(L)}")
    if not L:
        raise InputError(p, f"{pre}layers is empty; a network needs at least one layer")
    unit = obj.get("output_unit", "")
    if unit not in OUTPUT_UNITS:
        raise InputError(p, f"{pre}output_unit: {quote(unit)} is not one of 'tanh', 'sigmoid'")
    layers = [_layer_from_json(layer, k, p, pre) for k, layer in enumerate(L)]
    net = network_from_layers(layers, name, p, lambda k: f"{pre}layers[{k}]")
    return Network(net.layers, net.name, unit) if unit else net


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
    if net.output_unit:
        out["output_unit"] = net.output_unit
    return out


def _layer_to_json(layer) -> dict[str, Any]:
    # A convolution is written as its kernel: a certificate for a big conv
    # layer must not embed its dense operator.
    slope = {"slope": fraction_to_str(layer.slope)} if layer.activation == "leaky_relu" else {}
    if hasattr(layer, "spec"):
        return {**layer.spec.to_json(), "activation": layer.activation, **slope}
    return {
        "weight": [[fraction_to_str(v) for v in row] for row in layer.weight],
        "bias": [fraction_to_str(v) for v in layer.bias],
        "activation": layer.activation,
        **slope,
    }
