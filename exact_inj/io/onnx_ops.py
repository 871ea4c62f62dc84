"""The ONNX ops of generator networks, as exact affine maps or monotone units
(docs/model-files.md lists each op with its semantics and proof route).

A mixin of :class:`exact_inj.io.onnx._Importer` (it uses ``fail``, ``attr``,
``exact``, ``consts`` and ``const_input`` from there), kept apart so that each
module stays readable:

* scalings: ``Mul``, ``Div`` (by a constant), ``Neg``, ``BatchNormalization``
  (inference mode; folded when every sqrt(var + eps) is rational, see
  :func:`rational_sqrt`, otherwise kept symbolic), ``AveragePool``;
* fixed index maps: ``Unsqueeze``, ``Squeeze``, ``Transpose``, ``Pad``
  (constant 0), ``Concat`` (the chain with constants), ``Resize``/``Upsample``
  (nearest): each output entry is one input entry, a constant, or 0;
* ``LeakyRelu``/``PRelu`` slopes (> 0, one slope for all channels);
* ``ConvTranspose`` (any stride, padding, output_padding, dilation; group 1).
"""

from __future__ import annotations

from fractions import Fraction
from math import floor
from typing import Any

import numpy as np

from ..model import KernelSpec
from .chain import Affine, average_pool_matrix, batch_norm, rational_sqrt, zeros

__all__ = ["SHAPE_OPS", "OpsMixin", "rational_sqrt"]

# Ops that move, repeat or zero entries without arithmetic.
SHAPE_OPS = ("Unsqueeze", "Squeeze", "Transpose", "Pad", "Concat", "Resize", "Upsample")

_HALF = Fraction(1, 2)

# Attribute defaults are float32 values, as a runtime reads them: the double
# 0.01 or 1e-5 would be a different slope or epsilon than the file's.
_F32_ALPHA = float(np.float32(0.01))
_F32_EPSILON = float(np.float32(1e-5))


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _round_half(x: Fraction, mode: str) -> int:
    f = floor(x)
    if mode == "floor":
        return f
    if mode == "ceil":
        return f if x == f else f + 1
    if x - f == _HALF:
        return f if mode == "round_prefer_floor" else f + 1
    return floor(x + _HALF)


class OpsMixin:
    """The generator ops of the ONNX importer (module docstring)."""

    # -- monotone units -------------------------------------------------------

    def leaky_slope(self, op: str, ins: list[str], pos: int, attrs: dict, label: str,
                    shape: tuple[int, ...] = ()) -> Fraction:
        """The negative-side slope of a LeakyRelu/PRelu (on a tensor of ``shape``): 0 (a ReLU) or > 0."""
        if op == "LeakyRelu":
            slope = Fraction(self.attr(attrs, "alpha", _F32_ALPHA))  # the attribute's exact float32 value
        else:
            if pos != 0 or len(ins) != 2:
                self.fail(f"PRelu node {label}: the chain's tensor must be X and the slope a constant")
            K = self.exact(ins[1])
            try:
                grows = tuple(np.broadcast_shapes(shape, K.shape)) != tuple(shape)
            except ValueError:
                grows = True
            if grows:
                # ONNX broadcasts the slope to X one way only; a slope that
                # reshapes the output is not a PRelu of X.
                self.fail(f"PRelu node {label}: slope of shape {list(K.shape)} does not broadcast to the input "
                          f"shape {list(shape)}")
            vals = set(K.ravel().tolist())
            if len(vals) != 1:
                self.fail(f"PRelu node {label}: per-channel slopes that differ are not supported (only one slope "
                          "for every unit)")
            slope = vals.pop()
        if slope < 0:
            self.fail(f"{op} node {label}: slope {float(slope)} < 0 makes the unit non-monotone; it is refused "
                      "(docs/theory.md, section 12)")
        return slope

    # -- scalings ------------------------------------------------------------

    def apply_scaling_op(self, op: str, label: str, ins: list[str], pos: int, attrs: dict, state: Affine) -> None:
        if op == "Neg":
            state.negate()
            return
        if op in ("Mul", "Div"):
            if len(ins) != 2:
                self.fail(f"{op} node {label} must have two inputs")
            if op == "Div" and pos != 0:
                self.fail(f"Div node {label} divides by the chain's tensor, which is not affine")
            K = self.exact(ins[1 - pos])
            if op == "Div":
                if any(v == 0 for v in K.ravel()):
                    self.fail(f"Div node {label} divides by zero")
                K = np.vectorize(lambda v: 1 / v, otypes=[object])(K) if K.size else K
            try:
                state.scale(K)
            except ValueError:
                self.fail(f"{op} node {label}: shapes {list(state.shape)} and {list(K.shape)} do not broadcast")
            return
        if op == "BatchNormalization":
            self.batch_norm(label, ins, pos, attrs, state)
            return
        self.average_pool(label, pos, attrs, state)

    def batch_norm(self, label: str, ins: list[str], pos: int, attrs: dict, state: Affine) -> None:
        """y = scale (x - mean) / sqrt(var + eps) + B per channel (axis 1), in
        inference mode: folded exactly when every root is rational; otherwise
        kept symbolic (a rounded root could change a verdict: docs/theory.md,
        section 12)."""
        where = f"BatchNormalization node {label}"
        if pos != 0 or len(ins) != 5:
            self.fail(f"{where}: expected inputs X, scale, B, mean, var with the chain's tensor as X")
        if int(self.attr(attrs, "training_mode", 0)) != 0 or int(self.attr(attrs, "spatial", 1)) != 1:
            self.fail(f"{where}: only inference mode (training_mode = 0, spatial = 1) is supported")
        if len(state.shape) < 2:
            self.fail(f"{where}: input shape {list(state.shape)} has no channel axis")
        scale, B, mean, var = (self.exact(t).ravel().tolist() for t in ins[1:])
        eps = Fraction(self.attr(attrs, "epsilon", _F32_EPSILON))  # the attribute's exact float32 value
        try:
            batch_norm(state, 1, scale, B, mean, var, eps, where)
        except ValueError as e:
            self.fail(str(e))

    def average_pool(self, label: str, pos: int, attrs: dict, state: Affine) -> None:
        """The mean over each window, an exact linear map (dense)."""
        where = f"AveragePool node {label}"
        S = state.shape
        d = len(S) - 2
        if pos != 0 or d < 1 or S[0] != 1:
            self.fail(f"{where}: input shape {list(S)} is not (1, C, spatial...)")
        k = [int(v) for v in self.attr(attrs, "kernel_shape", [])]
        if len(k) != d or any(v < 1 for v in k):
            self.fail(f"{where}: kernel_shape must have {d} positive entries")
        st = [int(v) for v in self.attr(attrs, "strides", [1] * d)]
        if len(st) != d or any(v < 1 for v in st):
            self.fail(f"{where}: strides must have {d} positive entries")
        if int(self.attr(attrs, "ceil_mode", 0)) or list(self.attr(attrs, "dilations", [1] * d)) != [1] * d:
            self.fail(f"{where}: ceil_mode and dilations are not supported")
        if _text(self.attr(attrs, "auto_pad", "NOTSET")) not in ("NOTSET", "VALID"):
            self.fail(f"{where}: auto_pad SAME_* is not supported")
        raw = [int(v) for v in self.attr(attrs, "pads", [0] * (2 * d))]
        if len(raw) != 2 * d or any(not 0 <= v < kk for v, kk in zip(raw, k + k)):
            # A pad as wide as the window leaves windows with no input entry
            # (onnxruntime refuses it too).
            self.fail(f"{where}: pads must be {2 * d} non-negative entries smaller than the kernel, got {raw}")
        pads = [(raw[t], raw[t + d]) for t in range(d)]
        include = bool(int(self.attr(attrs, "count_include_pad", 0)))
        try:
            L, out = average_pool_matrix(S[1], tuple(S[2:]), k, st, pads, include)
        except ValueError as e:
            self.fail(f"{where}: {e}")
        state.linear(L, (1, S[1], *out))

    # -- index maps ------------------------------------------------------------

    def apply_shape_op(self, op: str, node: Any, label: str, ins: list[str], pos: int, attrs: dict,
                       state: Affine) -> None:
        """Move entries: each output entry is one entry of the chain, a constant, or 0."""
        if op != "Concat" and pos != 0:
            self.fail(f"{op} node {label}: the chain's tensor must be the data input")
        idx = np.arange(state.size).reshape(state.shape)
        if op == "Concat":
            const = self.concat(label, ins, pos, attrs, idx, state)
            return const
        new = self.shape_op_on_array(op, label, ins, attrs, idx)
        state.gather_or_zero(new.ravel(), tuple(new.shape))

    def concat(self, label: str, ins: list[str], pos: int, attrs: dict, idx: np.ndarray, state: Affine) -> None:
        axis = int(self.attr(attrs, "axis", 0))
        parts, consts = [], []
        for k, t in enumerate(ins):
            if k == pos:
                parts.append(idx)
                consts.append(zeros(idx.shape))
            else:
                K = self.exact(t)
                parts.append(np.full(K.shape, -1))
                consts.append(K)
        try:
            new = np.concatenate(parts, axis=axis)
            K = np.concatenate(consts, axis=axis)
        except (ValueError, np.exceptions.AxisError) as e:
            self.fail(f"Concat node {label}: {e}")
        state.gather_or_zero(new.ravel(), tuple(new.shape))
        state.add(K)

    def int_input(self, ins: list[str], k: int, op: str, label: str, what: str) -> list[int] | None:
        if k >= len(ins) or not ins[k]:
            return None
        if ins[k] not in self.consts:
            self.fail(f"{op} node {label}: {what} must be a constant")
        vals = np.asarray(self.consts[ins[k]]).ravel().tolist()
        try:
            bad = any(Fraction(v).denominator != 1 for v in vals)
        except (ValueError, OverflowError, TypeError):  # NaN, infinity
            bad = True
        if bad:
            # ONNX gives these as int64; a fraction would be truncated silently.
            self.fail(f"{op} node {label}: {what} must be integers")
        return [int(v) for v in vals]

    def shape_op_on_array(self, op: str, label: str, ins: list[str], attrs: dict, arr: np.ndarray) -> np.ndarray:
        """The op applied to a numpy array (entries of the chain's index
        tensor, or a constant's values); -1 marks a zero entry."""
        r = arr.ndim
        try:
            if op == "Transpose":
                perm = [int(v) for v in self.attr(attrs, "perm", list(range(r))[::-1])]
                return arr.transpose(perm)
            if op in ("Unsqueeze", "Squeeze"):
                axes = self.int_input(ins, 1, op, label, "axes")
                if axes is None:
                    axes = [int(v) for v in self.attr(attrs, "axes", [])] or None
                bound = r if op == "Squeeze" else r + len(axes or [])
                if axes is not None and (any(not -bound <= a < bound for a in axes)
                                         or len({a % bound for a in axes}) != len(axes)):
                    self.fail(f"{op} node {label}: axes {axes} are not distinct axes of a rank-{bound} tensor")
                if op == "Squeeze":
                    if axes is None:
                        return np.squeeze(arr)
                    axes = [a + r if a < 0 else a for a in axes]
                    if any(arr.shape[a] != 1 for a in axes):
                        self.fail(f"Squeeze node {label}: an axis in {axes} does not have size 1")
                    return np.squeeze(arr, axis=tuple(axes))
                if axes is None:
                    self.fail(f"Unsqueeze node {label} has no axes")
                out_r = r + len(axes)
                for a in sorted(a + out_r if a < 0 else a for a in axes):
                    arr = np.expand_dims(arr, a)
                return arr
        except (ValueError, np.exceptions.AxisError) as e:
            self.fail(f"{op} node {label}: {e}")
        if op == "Pad":
            return self.pad(label, ins, attrs, arr)
        return self.resize(op, label, ins, attrs, arr)

    def pad(self, label: str, ins: list[str], attrs: dict, arr: np.ndarray) -> np.ndarray:
        r = arr.ndim
        if _text(self.attr(attrs, "mode", "constant")) != "constant":
            self.fail(f"Pad node {label}: only mode 'constant' (with value 0) is supported")
        pads = self.int_input(ins, 1, "Pad", label, "pads")
        if pads is None:
            pads = [int(v) for v in self.attr(attrs, "pads", [])]
        value = Fraction(self.attr(attrs, "value", 0.0))
        if len(ins) > 2 and ins[2]:
            value = self.exact(ins[2]).ravel().tolist()
            value = value[0] if len(value) == 1 else None
        if value != 0:
            self.fail(f"Pad node {label}: only a constant value of 0 is supported")
        if len(ins) > 3 and ins[3]:
            self.fail(f"Pad node {label}: the axes input is not supported")
        if len(pads) != 2 * r:
            self.fail(f"Pad node {label}: pads has {len(pads)} entries; expected {2 * r}")
        out = arr
        for t in range(r):
            b, a = pads[t], pads[t + r]
            n = out.shape[t]
            src = np.arange(-b, n + a)  # output position o reads input o - b (negative pads crop)
            if len(src) < 1:
                self.fail(f"Pad node {label}: axis {t} would be empty")
            taken = np.take(out, np.clip(src, 0, n - 1), axis=t)
            mask_shape = [1] * r
            mask_shape[t] = len(src)
            outside = ((src < 0) | (src >= n)).reshape(mask_shape)
            out = np.where(outside, -1, taken)
        return out

    def resize(self, op: str, label: str, ins: list[str], attrs: dict, arr: np.ndarray) -> np.ndarray:
        """Nearest-neighbour Resize/Upsample: each output entry copies one
        input entry, chosen by the ONNX coordinate formulas in exact
        arithmetic."""
        where = f"{op} node {label}"
        if _text(self.attr(attrs, "mode", "nearest")) != "nearest":
            self.fail(f"{where}: only mode 'nearest' is supported (linear and cubic modes are affine but mix "
                      "entries with weights, not supported yet)")
        r = arr.ndim
        if op == "Upsample":
            scales = [Fraction(v) for v in self.attr(attrs, "scales", [])]
            if not scales and len(ins) > 1:
                scales = list(self.exact(ins[1]).ravel())
            ctm, nearest = "asymmetric", "floor"
            sizes = None
        else:
            if int(self.attr(attrs, "antialias", 0)) or "axes" in attrs or _text(
                    self.attr(attrs, "keep_aspect_ratio_policy", "stretch")) != "stretch":
                self.fail(f"{where}: antialias, axes and keep_aspect_ratio_policy are not supported")
            ctm = _text(self.attr(attrs, "coordinate_transformation_mode", "half_pixel"))
            nearest = _text(self.attr(attrs, "nearest_mode", "round_prefer_floor"))
            scales = list(self.exact(ins[2]).ravel()) if len(ins) > 2 and ins[2] else []
            sizes = self.int_input(ins, 3, op, label, "sizes")
        if sizes is not None:
            if len(sizes) != r:
                self.fail(f"{where}: sizes has {len(sizes)} entries for rank {r}")
            scales = [Fraction(o, n) for o, n in zip(sizes, arr.shape)]
        if len(scales) != r or any(s <= 0 for s in scales):
            self.fail(f"{where}: expected {r} positive scales")
        if ctm not in ("half_pixel", "pytorch_half_pixel", "asymmetric", "align_corners", "tf_half_pixel_for_nn"):
            self.fail(f"{where}: coordinate_transformation_mode {ctm!r} is not supported")
        if nearest not in ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil"):
            self.fail(f"{where}: nearest_mode {nearest!r} is not supported")
        if op == "Upsample" and any(s < 1 for s in scales):
            self.fail(f"{where}: a scale below 1 is not an upsampling (the ONNX definition requires scales >= 1)")
        out = arr
        for t, (n, s) in enumerate(zip(arr.shape, scales)):
            m = sizes[t] if sizes is not None else n * s
            if Fraction(m).denominator != 1:
                # The ONNX reference floors the length but keeps the scale;
                # onnxruntime recomputes the scale from the floored length:
                # they pick different inputs, so the file's function is not
                # settled (docs/model-files.md).
                self.fail(f"{where}: axis {t}: size {n} times scale {float(s)} is not an integer, and runtimes "
                          "disagree on which inputs such a resize reads")
            m = int(m)
            if m < 1:
                self.fail(f"{where}: axis {t} would be empty")
            # A runtime computes the coordinate in floats from the float32
            # scale; unless that scale is exact, a coordinate that is exactly
            # a rounding tie may round either way there.
            exact_scale = ctm == "align_corners" or Fraction(float(np.float32(float(s)))) == s
            src = []
            for o in range(m):
                if ctm == "asymmetric":
                    x = o / s
                elif ctm == "align_corners":
                    x = Fraction(o * (n - 1), m - 1) if m > 1 else Fraction(0)
                elif ctm == "tf_half_pixel_for_nn":
                    x = (o + _HALF) / s
                elif ctm == "pytorch_half_pixel" and m == 1:
                    x = Fraction(0)
                else:
                    x = (o + _HALF) / s - _HALF
                x = Fraction(x)
                tie = x.denominator == 1 if nearest in ("floor", "ceil") else x - floor(x) == _HALF
                if tie and not exact_scale:
                    self.fail(f"{where}: axis {t}: output {o} sits exactly on a rounding tie (coordinate {x}) of a "
                              f"scale {s} that float32 cannot hold; runtimes may round it either way")
                src.append(min(max(_round_half(x, nearest), 0), n - 1))
            if s == 1 and src != list(range(n)):
                # onnxruntime leaves an axis of scale 1 unchanged, whatever the
                # formula says (tf_half_pixel_for_nn with a ceil rounding shifts it).
                self.fail(f"{where}: axis {t} has scale 1 but the {ctm} coordinates with {nearest} rounding move "
                          "its entries; runtimes disagree on it")
            out = np.take(out, src, axis=t)
        return out

    # -- ConvTranspose -----------------------------------------------------------

    def conv_transpose_spec(self, S: tuple[int, ...], ins: list[str], pos: int, attrs: dict,
                            label: str) -> KernelSpec:
        where = f"ConvTranspose node {label}"
        if pos != 0:
            self.fail(f"{where}: the chain's tensor must be the data input X, not the weights")
        W = self.const_input(ins, 1, "ConvTranspose", label, "weight")
        d = W.ndim - 2
        if d not in (1, 2):
            self.fail(f"{where}: only 1-D and 2-D transposed convolutions are supported (weight {list(W.shape)})")
        if len(S) != d + 2 or S[0] != 1 or S[1] != W.shape[0]:
            self.fail(f"{where}: input shape {list(S)} does not match the weight shape {list(W.shape)} "
                      "(ONNX stores it as in_channels, out_channels, kernel...)")
        if int(self.attr(attrs, "group", 1)) != 1:
            self.fail(f"{where}: group = {self.attr(attrs, 'group', 1)} is not supported (only 1)")
        ksize = tuple(W.shape[2:])
        if "kernel_shape" in attrs and tuple(self.attr(attrs, "kernel_shape", ())) != ksize:
            self.fail(f"{where}: kernel_shape does not match the weight shape {list(W.shape)}")
        vals = {}
        for key, default in (("strides", 1), ("dilations", 1), ("output_padding", 0)):
            v = [int(x) for x in self.attr(attrs, key, [default] * d)]
            if len(v) != d:
                self.fail(f"{where}: {key} has {len(v)} entries; expected {d}")
            vals[key] = v
        auto_pad = _text(self.attr(attrs, "auto_pad", "NOTSET"))
        if auto_pad == "NOTSET":
            raw = [int(v) for v in self.attr(attrs, "pads", [0] * (2 * d))]
            if len(raw) != 2 * d:
                self.fail(f"{where}: pads has {len(raw)} entries; expected {2 * d}")
            pads = [(raw[t], raw[t + d]) for t in range(d)]
        elif auto_pad == "VALID":
            pads = [(0, 0)] * d
        else:
            self.fail(f"{where}: auto_pad {auto_pad!r} is not supported (give pads)")
        bias = list(self.exact(ins[2]).ravel()) if len(ins) >= 3 and ins[2] else None
        kernel = np.swapaxes(W, 0, 1)  # ONNX (in, out, k...) -> (out, in, k...)
        try:
            return KernelSpec.build(kernel.tolist(), int(W.shape[0]), int(W.shape[1]), list(S[2:]),
                                    vals["strides"], vals["dilations"], pads, vals["output_padding"], True, bias)
        except (ValueError, TypeError) as e:
            self.fail(f"{where}: {e}")
