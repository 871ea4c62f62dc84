"""The generator modules of the PyTorch importer (:mod:`exact_inj.io.torch`):
strided and dilated ``Conv1d``/``Conv2d``, ``ConvTranspose1d``/``2d``,
``BatchNorm1d``/``2d`` (eval), ``LeakyReLU``/``PReLU``, ``Tanh``/``Sigmoid``
(last module only), ``Upsample`` (nearest), ``AvgPool1d``/``2d``,
``ZeroPad1d``/``2d``, ``ConstantPad1d``/``2d`` (value 0) and ``Unflatten``.

Each is read into the same exact objects as the matching ONNX op
(:mod:`exact_inj.io.onnx_ops`): kernels as :class:`~exact_inj.model.KernelSpec`,
batch normalisation through :func:`exact_inj.io.chain.batch_norm` (symbolic
when a root is irrational), pooling through
:func:`exact_inj.io.chain.average_pool_matrix`, index maps through
:meth:`~exact_inj.io.chain.Affine.gather_or_zero`.  Shapes here have no batch
axis.  Scalars a module keeps as Python floats (``eps``, ``negative_slope``)
are taken at the value PyTorch computes with: the float32 value for a float32
model, the double for a float64 one.
"""

from __future__ import annotations

from fractions import Fraction
from math import floor, prod
from typing import Any, Callable

import numpy as np

from ..errors import InputError
from ..model import ConvSpec, KernelSpec
from .chain import ChainBuilder, apply_conv, average_pool_matrix, batch_norm, exact_array

__all__ = ["GENERATOR_MODULES", "UNITS", "apply_module", "describe_module"]

UNITS = ("Tanh", "Sigmoid")
GENERATOR_MODULES = ("ConvTranspose1d", "ConvTranspose2d", "BatchNorm1d", "BatchNorm2d", "LeakyReLU", "PReLU",
                     *UNITS, "Upsample", "AvgPool1d", "AvgPool2d", "ZeroPad1d", "ZeroPad2d", "ConstantPad1d",
                     "ConstantPad2d", "Unflatten")


def _tuple(v: Any, d: int) -> list[int]:
    return [int(x) for x in v] if isinstance(v, (tuple, list)) else [int(v)] * d


def describe_module(k: int, m: Any, nn: Any) -> dict | None:
    """The architecture entry of a generator module (or None if ``m`` is not
    one); refuses what is not supported with an InputError."""
    name = type(m).__name__
    where = f"module {k} ({name})"
    if name not in GENERATOR_MODULES or type(m) is not getattr(nn, name, None):
        return None
    if name.startswith("ConvTranspose"):
        d = int(name[-2])
        if m.groups != 1 or m.padding_mode != "zeros":
            raise InputError(None, f"{where}: only groups=1 and padding_mode='zeros' are supported")
        return {"type": name, "stride": _tuple(m.stride, d), "padding": _tuple(m.padding, d),
                "output_padding": _tuple(m.output_padding, d), "dilation": _tuple(m.dilation, d)}
    if name.startswith("BatchNorm"):
        if not m.track_running_stats:
            raise InputError(None, f"{where}: without running statistics it normalises by the batch, which is "
                                   "not a fixed map; only eval mode with running statistics is supported")
        return {"type": name, "eps": float(m.eps), "affine": bool(m.affine)}
    if name == "LeakyReLU":
        return {"type": name, "negative_slope": float(m.negative_slope)}
    if name == "Upsample":
        if m.mode != "nearest" or m.size is not None or m.scale_factor is None:
            raise InputError(None, f"{where}: only mode='nearest' with a scale_factor is supported")
        sf = m.scale_factor if isinstance(m.scale_factor, (tuple, list)) else [m.scale_factor]
        if any(float(s) != int(s) or int(s) < 1 for s in sf):
            raise InputError(None, f"{where}: scale_factor {m.scale_factor} is not a positive integer")
        if getattr(m, "recompute_scale_factor", None):
            raise InputError(None, f"{where}: recompute_scale_factor is not supported")
        return {"type": name, "scale_factor": [int(s) for s in sf]}
    if name.startswith("AvgPool"):
        d = int(name[-2])
        if m.ceil_mode or getattr(m, "divisor_override", None) is not None:
            raise InputError(None, f"{where}: ceil_mode and divisor_override are not supported")
        return {"type": name, "kernel_size": _tuple(m.kernel_size, d), "stride": _tuple(m.stride, d),
                "padding": _tuple(m.padding, d), "count_include_pad": bool(m.count_include_pad)}
    if name.startswith(("ZeroPad", "ConstantPad")):
        if getattr(m, "value", 0) != 0:
            raise InputError(None, f"{where}: only a padding value of 0 is supported")
        return {"type": name, "padding": [int(p) for p in m.padding]}
    if name == "Unflatten":
        return {"type": name, "dim": int(m.dim), "unflattened_size": [int(s) for s in m.unflattened_size]}
    return {"type": name}  # PReLU (its slope is a parameter), Tanh, Sigmoid


def _scalar(v: float, f64: bool) -> Fraction:
    return Fraction(v) if f64 else Fraction(float(np.float32(v)))


def _nearest_sources(n: int, s: int) -> list[int]:
    """PyTorch's nearest source index for each of the n*s outputs (CPU kernel:
    i >> 1 for s = 2, else floor(float32(i) * float32(1/s)), capped at n - 1):
    simulated in float32, so the index map is the one PyTorch uses."""
    if s == 1:
        return list(range(n))
    if s == 2:
        return [i >> 1 for i in range(2 * n)]
    f = np.float32(1.0 / s)
    return [min(floor(float(np.float32(i) * f)), n - 1) for i in range(n * s)]


def apply_module(chain: ChainBuilder, k: int, kind: str, mod: dict, shape: tuple[int, ...] | None,
                 param: Callable[[int, str, bool], Any], path: str | None, f64: bool) -> tuple[int, ...]:
    """Apply generator module k to the chain; the new shape.  ``param(k,
    name, required)`` gives a parameter as a numpy array (or None)."""
    where = f"module {k} ({kind})"
    if shape is None:
        raise InputError(path, f"{where} needs the input shape: give input_shape")
    if kind in ("LeakyReLU", "PReLU"):
        if kind == "LeakyReLU":
            slope = _scalar(float(mod.get("negative_slope", 0.01)), f64)
        else:
            vals = set(exact_array(param(k, "weight", True), f"{k}.weight", path).ravel().tolist())
            if len(vals) != 1:
                raise InputError(path, f"{where}: per-channel slopes that differ are not supported")
            slope = vals.pop()
        if slope < 0:
            raise InputError(path, f"{where}: slope {float(slope)} < 0 makes the unit non-monotone; it is refused "
                                   "(docs/theory.md, section 12)")
        if slope == 0:
            chain.relu(shape)
        else:
            chain.activation("leaky_relu", slope, shape)
        return shape
    if kind.startswith("BatchNorm"):
        C = shape[0]
        gamma = param(k, "weight", mod.get("affine", True))
        beta = param(k, "bias", mod.get("affine", True))
        mean, var = param(k, "running_mean", True), param(k, "running_var", True)
        param(k, "num_batches_tracked", False)  # a counter, not part of the map

        def vec(a, what, default):
            return [default] * C if a is None else list(exact_array(a, f"{k}.{what}", path).ravel())

        try:
            batch_norm(chain.affine(shape), 0, vec(gamma, "weight", Fraction(1)), vec(beta, "bias", Fraction(0)),
                       vec(mean, "running_mean", None), vec(var, "running_var", None),
                       _scalar(float(mod.get("eps", 1e-5)), f64), where)
        except ValueError as e:
            raise InputError(path, str(e)) from None
        return shape
    if kind.startswith("ConvTranspose"):
        return _conv(chain, k, kind, mod, shape, param, path, transposed=True)
    if kind == "Upsample":
        sf = mod["scale_factor"]
        d = len(shape) - 1
        sf = sf * d if len(sf) == 1 else sf
        if len(sf) != d:
            raise InputError(path, f"{where}: {len(sf)} scale factors for {d} spatial dimensions")
        idx = np.arange(prod(shape)).reshape(shape)
        for t, s in enumerate(sf):
            idx = np.take(idx, _nearest_sources(shape[1 + t], int(s)), axis=1 + t)
        chain.current(shape).gather(idx.ravel(), tuple(idx.shape))
        return tuple(idx.shape)
    if kind.startswith("AvgPool"):
        d = int(kind[-2])
        if len(shape) != d + 1:
            raise InputError(path, f"{where}: input shape {list(shape)} is not [C, {'L' if d == 1 else 'H, W'}]")
        kk, st, pd = mod["kernel_size"], mod["stride"], mod["padding"]
        try:
            L, out = average_pool_matrix(shape[0], tuple(shape[1:]), kk, st, [(p, p) for p in pd],
                                         bool(mod.get("count_include_pad", True)))
        except ValueError as e:
            raise InputError(path, f"{where}: {e}") from None
        new = (shape[0], *out)
        chain.affine(shape).linear(L, new)
        return new
    if kind.startswith(("ZeroPad", "ConstantPad")):
        p = mod["padding"]
        d = len(p) // 2
        if len(shape) < d + 1 or any(v < 0 for v in p):
            raise InputError(path, f"{where}: padding {p} does not fit shape {list(shape)} (or crops)")
        # PyTorch lists (left, right) of the last dimension first.
        width = [(0, 0)] * (len(shape) - d) + [(p[2 * t], p[2 * t + 1]) for t in reversed(range(d))]
        idx = np.pad(np.arange(prod(shape)).reshape(shape), width, constant_values=-1)
        chain.current(shape).gather_or_zero(idx.ravel(), tuple(idx.shape))
        return tuple(idx.shape)
    if kind == "Unflatten":
        dim, sizes = mod["dim"], mod["unflattened_size"]
        axis = dim - 1 if dim > 0 else len(shape) + dim
        if not 0 <= axis < len(shape) or prod(sizes) != shape[axis]:
            raise InputError(path, f"{where}: cannot unflatten axis {dim} of {list(shape)} into {sizes}")
        new = (*shape[:axis], *sizes, *shape[axis + 1:])
        chain.current(shape).shape = new
        return new
    raise InputError(path, f"{where}: not a generator module")  # pragma: no cover - GENERATOR_MODULES


def conv_spec(k: int, kind: str, mod: dict, shape: tuple[int, ...], W: np.ndarray, B: np.ndarray | None,
              path: str | None, transposed: bool = False) -> ConvSpec | KernelSpec:
    """The exact kernel of a Conv1d/2d (any stride and dilation) or ConvTranspose1d/2d."""
    d = int(kind[-2])
    where = f"module {k} ({kind})"
    if W.ndim != d + 2:
        raise InputError(path, f"{where}: weight has shape {list(W.shape)}; expected {d + 2}-D")
    if len(shape) != d + 1:
        raise InputError(path, f"{where} needs an input of shape [C, {'L' if d == 1 else 'H, W'}]; "
                               f"it receives {list(shape)}")
    kernel = exact_array(W, f"{k}.weight", path)
    bias = None if B is None else list(exact_array(B, f"{k}.bias", path).ravel())
    stride, dilation = _tuple(mod.get("stride", 1), d), _tuple(mod.get("dilation", 1), d)
    mode = mod.get("padding_mode", "zeros")
    try:
        if transposed:
            if W.shape[0] != shape[0]:
                raise ValueError(f"weight {list(W.shape)} (in, out, k...) does not match {shape[0]} input channels")
            return KernelSpec.build(np.swapaxes(kernel, 0, 1).tolist(), int(W.shape[0]), int(W.shape[1]),
                                    list(shape[1:]), stride, dilation, [(p, p) for p in _tuple(mod["padding"], d)],
                                    _tuple(mod.get("output_padding", 0), d), True, bias)
        pad = mod.get("padding", 0)
        if stride == [1] * d and dilation == [1] * d:
            if mode not in ("zeros", "circular"):
                raise ValueError(f"padding_mode {mode!r} is not supported (zeros or circular)")
            return ConvSpec.build(kernel.tolist(), int(shape[0]), int(W.shape[0]), list(shape[1:]),
                                  "periodic" if mode == "circular" else "zero", pad, bias)
        if mode != "zeros":
            raise ValueError(f"padding_mode {mode!r} with a stride or dilation is not supported (zeros only)")
        if pad == "same":  # stride 1 (PyTorch refuses "same" otherwise): total g(k-1), the odd one at the end
            pads = [(g * (kk - 1) // 2, g * (kk - 1) - g * (kk - 1) // 2) for g, kk in zip(dilation, W.shape[2:])]
        elif isinstance(pad, list):
            pads = [tuple(int(v) for v in p) if isinstance(p, list) else (int(p), int(p)) for p in pad]
        else:
            pads = [(int(pad), int(pad))] * d
        return KernelSpec.build(kernel.tolist(), int(shape[0]), int(W.shape[0]), list(shape[1:]), stride, dilation,
                                pads, None, False, bias)
    except (ValueError, TypeError) as e:
        raise InputError(path, f"{where}: {e}") from None


def _conv(chain: ChainBuilder, k: int, kind: str, mod: dict, shape: tuple[int, ...], param, path, transposed=False):
    spec = conv_spec(k, kind, mod, shape, param(k, "weight", True), param(k, "bias", False), path, transposed)
    out_shape = (spec.out_channels, *spec.output_size)
    if chain.starts_layer():
        # It starts a layer: deferred, so that it stays a kernel if only a
        # per-channel scale and shift and an activation (or the end) follow.
        chain.defer_conv(spec, f"module {k} ({kind})", out_shape)
    else:
        try:
            apply_conv(chain.affine(shape), spec, out_shape)
        except ValueError as e:
            raise InputError(path, f"module {k} ({kind}): {e}") from None
    return out_shape


def apply_conv_module(chain: ChainBuilder, k: int, kind: str, mod: dict, shape, param, path) -> tuple[int, ...]:
    """A Conv1d/Conv2d module (any stride, dilation) applied to the chain."""
    if shape is None:
        raise InputError(path, f"module {k} ({kind}) needs an input of shape [C, ...]: give input_shape")
    return _conv(chain, k, kind, mod, shape, param, path)
