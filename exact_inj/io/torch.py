"""PyTorch ``nn.Sequential`` models as exact networks (the ``torch`` extra).

Supported modules: ``Linear``, ``ReLU``, ``Conv1d`` and ``Conv2d`` (groups 1,
``padding_mode`` ``"zeros"``, or ``"circular"`` at stride 1 and dilation 1; any
stride and dilation), ``Flatten`` and ``Identity``, and the generator modules
of :mod:`exact_inj.io.torch_modules` (``ConvTranspose1d``/``2d``,
``BatchNorm1d``/``2d`` in eval mode, ``LeakyReLU``/``PReLU``, ``Tanh``/``Sigmoid``
as the last module, ``Upsample`` nearest, ``AvgPool1d``/``2d``,
``ZeroPad``/``ConstantPad`` 0, ``Unflatten``), read into the same exact
objects as the matching ONNX ops.  As in the ONNX importer, the affine modules
between two ReLUs compose exactly into one layer, and weights are taken at
their exact binary values (float16, bfloat16, float32, float64).  A
convolution that starts a layer and is followed only by a ReLU (or the end)
stays a structured :class:`~exact_inj.model.conv.ConvLayer`; other convolutions
are composed densely (:func:`exact_inj.io.chain.conv_layer`).

Three ways in (docs/model-files.md):

* :func:`network_from_sequential` converts a live ``nn.Sequential`` (the
  modules say everything; nothing is guessed);
* :func:`save_sequential` writes a model to ``.safetensors`` (or ``.pt``) with
  its architecture recorded beside the weights, and :func:`load_torch` reads
  it back;
* :func:`load_torch` also reads a **bare state dict** (``torch.save(
  model.state_dict(), ...)`` or a safetensors file without the architecture).
  A state dict holds only parameters: ReLUs and Flattens leave no trace in
  it.  So a bare state dict is read under one fixed convention, or refused:
  its keys must be ``0.weight, 0.bias, 2.weight, 2.bias, ..., 2m.weight``
  (Linear modules at even indices), and it is read as ``Linear, ReLU, Linear,
  ..., ReLU, Linear``: every odd index is taken to be a ReLU and nothing
  follows the last Linear.  Anything else (a convolution, a gap of two, a
  start at index 1) needs the architecture.

**Never unpickles untrusted data.**  ``.pt``/``.pth`` files are opened with
``torch.load(..., weights_only=True)``, which refuses arbitrary Python
objects; safetensors files contain no code at all and are read without torch.
"""

from __future__ import annotations

import io as _io
import json
import os
import re
import struct
from math import prod
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..model import ConvSpec, Network
from .chain import ChainBuilder, exact_array
from .torch_modules import GENERATOR_MODULES, UNITS, apply_conv_module, apply_module, describe_module
from .files import read_bytes

__all__ = [
    "ARCHITECTURE_KEY",
    "architecture_of",
    "load_torch",
    "network_from_sequential",
    "network_from_state_dict",
    "network_from_torch_bytes",
    "save_sequential",
]

# Where the architecture is recorded: a safetensors metadata key, or a key of
# the dict that a .pt file written by save_sequential holds.
ARCHITECTURE_KEY = "exact_inj.architecture"

_MODULES = ("Linear", "ReLU", "Conv1d", "Conv2d", "Flatten", "Identity", *GENERATOR_MODULES)
_PARAM_RE = re.compile(r"(0|[1-9][0-9]*)\.(weight|bias)")


def _require_torch(path: str | None):
    try:
        import torch  # noqa: PLC0415 - optional dependency
    except ImportError:
        raise InputError(path, "reading PyTorch files needs torch: pip install 'exact_inj[torch]'") from None
    return torch


def _array(t: Any) -> np.ndarray:
    """A numpy array holding exactly the values of a tensor or array."""
    if isinstance(t, np.ndarray):
        return t
    t = t.detach().cpu()
    if t.is_floating_point():
        t = t.double()  # every float16/bfloat16/float32 value is a float64 value
    return t.numpy()


# --------------------------------------------------------------------------
# Architecture description
# --------------------------------------------------------------------------


def architecture_of(model: Any, input_shape: Sequence[int] | None = None) -> dict:
    """The JSON-able architecture of an ``nn.Sequential`` (refusing what is unsupported).

    ``{"input_shape": [C, H, W] or null, "modules": [{"type": "Linear"},
    {"type": "ReLU"}, {"type": "Conv2d", "padding": [[1, 1], [1, 1]],
    "padding_mode": "circular"}, {"type": "Flatten"}, ...]}``: module ``K``
    of the list owns the parameters ``K.weight`` and ``K.bias``.
    """
    torch = _require_torch(None)
    nn = torch.nn
    modules = []
    for k, m in enumerate(model.children() if isinstance(model, nn.Module) else model):
        kind = type(m)
        if kind is nn.Linear:
            modules.append({"type": "Linear"})
        elif kind is nn.ReLU:
            modules.append({"type": "ReLU"})
        elif kind is nn.Identity:
            modules.append({"type": "Identity"})
        elif kind is nn.Flatten:
            if m.start_dim != 1 or m.end_dim != -1:
                raise InputError(None, f"module {k} (Flatten): only start_dim=1, end_dim=-1 is supported")
            modules.append({"type": "Flatten"})
        elif kind in (nn.Conv1d, nn.Conv2d):
            name = kind.__name__
            d = 1 if kind is nn.Conv1d else 2
            stride, dilation = [int(v) for v in m.stride], [int(v) for v in m.dilation]
            if m.groups != 1:
                raise InputError(None, f"module {k} ({name}): groups={m.groups} is not supported (only 1)")
            if m.padding_mode not in ("zeros", "circular"):
                raise InputError(None, f"module {k} ({name}): padding_mode {m.padding_mode!r} is not supported (zeros or circular)")
            if m.padding_mode == "circular" and (stride != [1] * d or dilation != [1] * d):
                raise InputError(None, f"module {k} ({name}): circular padding is supported at stride 1 and "
                                       "dilation 1 only")
            pad = m.padding
            if isinstance(pad, str):
                pad = pad if pad == "same" else 0  # "valid" is no padding
            else:
                pad = [[int(p), int(p)] for p in pad]
            entry = {"type": name, "padding": pad, "padding_mode": m.padding_mode}
            if stride != [1] * d or dilation != [1] * d:
                entry.update(stride=stride, dilation=dilation)
            modules.append(entry)
        else:
            entry = describe_module(k, m, nn)
            if entry is None:
                raise InputError(None, f"module {k} is a {kind.__name__}; supported: {', '.join(_MODULES)}")
            modules.append(entry)
    return {"input_shape": None if input_shape is None else [int(v) for v in input_shape], "modules": modules}


def _infer_mlp(params: Mapping[str, Any], path: str | None) -> dict:
    """The architecture of a bare state dict, by the convention in the module docstring."""
    indices: dict[int, set[str]] = {}
    for key in params:
        m = _PARAM_RE.fullmatch(key)
        if not m:
            raise InputError(
                path,
                f"state dict key {key!r} is not K.weight or K.bias of an nn.Sequential; "
                "save the model with exact_inj.io.torch.save_sequential",
            )
        indices.setdefault(int(m.group(1)), set()).add(m.group(2))
    if not indices:
        raise InputError(path, "the state dict holds no parameters")
    ks = sorted(indices)
    hint = (
        "a bare state dict does not record ReLU or Flatten modules; only Linear modules at indices "
        "0, 2, 4, ... (read as Linear, ReLU, ..., Linear) are accepted without the architecture; "
        "save the model with exact_inj.io.torch.save_sequential or pass architecture="
    )
    if ks != list(range(0, 2 * len(ks), 2)):
        raise InputError(path, f"parameters at module indices {ks}: {hint}")
    modules: list[dict] = []
    for k in ks:
        if "weight" not in indices[k]:
            raise InputError(path, f"module {k} has a bias but no weight")
        if _array(params[f"{k}.weight"]).ndim != 2:
            raise InputError(path, f"{k}.weight is not a Linear weight (shape {list(_array(params[f'{k}.weight']).shape)}): {hint}")
        if modules:
            modules.append({"type": "ReLU"})
        modules.append({"type": "Linear"})
    return {"input_shape": None, "modules": modules}


# --------------------------------------------------------------------------
# Building the network
# --------------------------------------------------------------------------


def network_from_state_dict(
    params: Mapping[str, Any], architecture: Mapping[str, Any] | None = None, path: str | None = None, name: str = ""
) -> Network:
    """A Network from parameters (tensors or arrays) and an architecture.

    Without ``architecture`` the bare-state-dict convention applies (module
    docstring).  Every problem is an InputError.
    """
    arch = _infer_mlp(params, path) if architecture is None else architecture
    if not isinstance(arch, Mapping) or not isinstance(arch.get("modules"), list):
        raise InputError(path, "architecture must be an object {\"input_shape\": ..., \"modules\": [...]}")
    modules = arch["modules"]
    if not modules:
        raise InputError(path, "architecture has no modules")
    unused = set(params)

    def param(k: int, kind: str, required: bool) -> np.ndarray | None:
        key = f"{k}.{kind}"
        if key not in params:
            if required:
                raise InputError(path, f"module {k} ({modules[k].get('type')}) has no parameter {key!r}")
            return None
        unused.discard(key)
        return _array(params[key])

    shape: tuple[int, ...] | None = None
    if arch.get("input_shape") is not None:
        shape = tuple(int(v) for v in arch["input_shape"])
    chain = ChainBuilder(shape, path)
    # Scalars kept as Python floats (eps, slopes) are computed at the model's precision.
    # (_array widens every float tensor to float64, so the dtype is read off the tensor itself.)
    f64 = any(str(getattr(v, "dtype", "")) in ("torch.float64", "float64") for v in params.values())
    unit = ""

    for k, mod in enumerate(modules):
        kind = mod.get("type") if isinstance(mod, Mapping) else None
        if kind not in _MODULES:
            raise InputError(path, f"module {k}: type {kind!r} is not supported (supported: {', '.join(_MODULES)})")
        if unit:
            raise InputError(path, f"module {k} ({kind}) follows the {unit}: {unit} is supported only as the last "
                                   "module (a strictly increasing output unit)")
        if kind == "Identity":
            continue
        if kind in UNITS:
            if shape is None:
                raise InputError(path, f"module {k} ({kind}) comes first: give input_shape")
            unit = kind
            continue
        if kind in GENERATOR_MODULES:
            shape = apply_module(chain, k, kind, mod, shape, param, path, f64)
            continue
        if kind == "Flatten":
            if shape is None:
                raise InputError(path, f"module {k} (Flatten): the input shape is unknown; give input_shape")
            shape = (prod(shape),)
            chain.current(shape).shape = shape
            continue
        if kind == "ReLU":
            if shape is None:
                raise InputError(path, f"module {k} (ReLU) comes first: give input_shape")
            chain.relu(shape)
            continue
        if kind == "Linear":
            W = param(k, "weight", True)
            B = param(k, "bias", False)
            if W.ndim != 2:
                raise InputError(path, f"module {k} (Linear): weight has shape {list(W.shape)}; expected 2-D")
            if shape is None:
                shape = (W.shape[1],)
            if shape != (W.shape[1],):
                raise InputError(
                    path, f"module {k} (Linear) expects {W.shape[1]} inputs but receives shape {list(shape)} (missing Flatten?)"
                )
            st = chain.affine(shape)
            L = exact_array(W, f"{k}.weight", path)
            shape = (W.shape[0],)
            st.linear(L, shape)
            if B is not None:
                if B.shape != (W.shape[0],):
                    raise InputError(path, f"module {k} (Linear): bias has shape {list(B.shape)}; expected [{W.shape[0]}]")
                st.add_flat(exact_array(B, f"{k}.bias", path))
        else:  # Conv1d / Conv2d
            shape = apply_conv_module(chain, k, kind, mod, shape, param, path)
    if unused:
        raise InputError(path, f"parameters {sorted(unused)} belong to no module of the architecture")
    if chain.state is None:
        raise InputError(path, "the model computes nothing (no Linear or Conv module)")
    return chain.network(name, unit.lower())


def network_from_sequential(model: Any, input_shape: Sequence[int] | None = None, name: str = "") -> Network:
    """Convert a live ``nn.Sequential``.

    ``input_shape`` (without the batch dimension: ``[C, H, W]``, ``[C, L]`` or
    ``[n]``) is needed when the model starts with a convolution; the input
    coordinates are that tensor's entries in C order.
    """
    arch = architecture_of(model, input_shape)
    # The live module computes what its mode says.  In training mode a batch
    # normalisation divides by each batch's own statistics (not a fixed map),
    # and reading it with its running statistics instead would answer for a
    # different function than the one in hand: refused, never coerced.
    for k, m in enumerate(model.children() if hasattr(model, "children") else model):
        if type(m).__name__.startswith("BatchNorm") and getattr(m, "training", False):
            raise InputError(None, f"module {k} ({type(m).__name__}) is in training mode, where it normalises by "
                                   "each batch's statistics; call model.eval() first to read it with its running "
                                   "statistics")
    return network_from_state_dict(model.state_dict(), arch, None, name)


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------


def save_sequential(model: Any, path: str | os.PathLike, input_shape: Sequence[int] | None = None) -> None:
    """Write a model with its architecture: ``.safetensors`` (metadata) or ``.pt``."""
    torch = _require_torch(None)
    arch = architecture_of(model, input_shape)
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    p = os.fspath(path)
    if p.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file(sd, p, metadata={ARCHITECTURE_KEY: json.dumps(arch)})
    else:
        torch.save({"state_dict": sd, ARCHITECTURE_KEY: arch}, p)


def _safetensors_metadata(data: bytes, path: str | None) -> dict:
    # The format: 8-byte little-endian header length, then a JSON header whose
    # optional "__metadata__" maps strings to strings.  Read directly so that
    # the metadata needs neither torch nor a temporary file.
    if len(data) < 8:
        raise InputError(path, "truncated safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise InputError(path, "truncated or corrupt safetensors header")
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(path, f"corrupt safetensors header ({e})") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else {}


def _load_safetensors(data: bytes, path: str | None) -> tuple[dict, dict | None]:
    meta = _safetensors_metadata(data, path)
    try:
        try:
            import torch  # noqa: F401 - torch reads every dtype, bfloat16 included
            from safetensors.torch import load as st_load
        except ImportError:
            from safetensors.numpy import load as st_load
    except ImportError:
        raise InputError(path, "reading safetensors files needs the safetensors package: pip install 'exact_inj[torch]'") from None
    try:
        tensors = st_load(data)
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
        raise InputError(path, f"corrupt safetensors file ({type(e).__name__}: {e})") from None
    arch = None
    if ARCHITECTURE_KEY in meta:
        try:
            arch = json.loads(meta[ARCHITECTURE_KEY])
        except ValueError as e:  # JSONDecodeError, or an integer past int()'s 4,300-digit limit
            raise InputError(path, f"metadata {ARCHITECTURE_KEY!r} is not valid JSON ({e})") from None
    return tensors, arch


def _load_pt(data: bytes, path: str | None) -> tuple[dict, dict | None]:
    torch = _require_torch(path)
    try:
        # weights_only=True: tensors, dicts, lists and numbers only; an
        # arbitrary pickled object (a whole nn.Module, or a malicious payload)
        # is refused instead of executed.
        obj = torch.load(_io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - UnpicklingError, RuntimeError, zip errors
        text = " ".join(str(e).split())
        if "weights_only" in text or "Unsupported global" in text:
            raise InputError(
                path,
                "holds pickled Python objects (a whole model?), which are never unpickled here; "
                "save model.state_dict() or use exact_inj.io.torch.save_sequential",
            ) from None
        raise InputError(path, f"not a readable PyTorch file ({type(e).__name__}: {text[:200]})") from None
    arch = None
    if isinstance(obj, Mapping) and ARCHITECTURE_KEY in obj:
        arch = obj[ARCHITECTURE_KEY]
        obj = obj.get("state_dict")
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise InputError(path, "expected a state dict (a mapping of parameter names to tensors)")
    return dict(obj), arch


def network_from_torch_bytes(data: bytes, path: str | None = None, architecture: Mapping | None = None) -> Network:
    p = path or ""
    if p.lower().endswith(".safetensors"):
        params, arch = _load_safetensors(data, path)
    else:
        params, arch = _load_pt(data, path)
    name = os.path.splitext(os.path.basename(p))[0] if p else ""
    return network_from_state_dict(params, architecture if architecture is not None else arch, path, name)


def load_torch(path: str | os.PathLike, architecture: Mapping | None = None) -> Network:
    """Load a ``.safetensors``, ``.pt`` or ``.pth`` file (module docstring).

    ``architecture`` (the form :func:`architecture_of` returns) overrides one
    recorded in the file and is needed for a bare state dict outside the
    Linear/ReLU convention.
    """
    p = os.fspath(path)
    return network_from_torch_bytes(read_bytes(p), p, architecture)
