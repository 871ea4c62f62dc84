"""NPZ archives: arrays ``weight_0``, ``bias_0``, ``activation_0``, ...;
a binary float is taken at its exact value (docs/formats.md)."""

from __future__ import annotations

import io as _io
import re
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import InputError
from ..model import ACTIVATIONS, Layer, Network
from ..numbers import limits, over_limit, quote
from .json import network_from_layers

__all__ = ["load_npz"]

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
            raise InputError(path, f"{key}: {quote(value)} is not UTF-8 text") from None
    return str(value)


def _npz_activation(arr: np.ndarray, key: str, path: str) -> str:
    value = _npz_string(arr, key, path)
    if value not in ACTIVATIONS:
        raise InputError(path, f"{key}: {quote(value)} is not one of {', '.join(map(repr, ACTIVATIONS))}")
    if value == "leaky_relu":
        # The format has no key for the slope (JSON and ONNX have one).
        raise InputError(path, f"{key}: 'leaky_relu' needs a slope, which an NPZ network cannot give; use JSON")
    return value


def load_npz(data: bytes, path: str) -> Network:
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
        # What the archive inflates to, from its directory, before anything is
        # decompressed: a few kilobytes of zip may claim gigabytes.  (zipfile
        # stops reading a member at its declared size, so the claim binds.)
        inflated = sum(info.file_size for info in archive.zip.infolist())
        if inflated > limits().max_bytes:
            raise InputError(path, over_limit("max_bytes", f"an archive of {inflated} bytes uncompressed"))
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

    entries = sum(int(a.size) for a in arrays.values())
    if entries > limits().max_entries:
        raise InputError(path, over_limit("max_entries", f"arrays of {entries} numbers"))
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
                f"unknown array {quote(key)} (expected weight_K, bias_K, activation_K "
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
    return network_from_layers(layers, name, path, lambda k: f"weight_{k}")
