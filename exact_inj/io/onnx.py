"""ONNX models as exact networks (the ``onnx`` extra: ``pip install 'exact_inj[onnx]'``).

The graph must be one chain from its single input to its single output:
every node takes the chain's current tensor and constants (initializers or
``Constant`` nodes) and produces the next tensor.  Supported ops:

* affine: ``Gemm`` (alpha, beta, transA, transB), ``MatMul``, ``Add``, ``Sub``,
  ``Conv`` (stride 1, dilation 1, group 1, zero padding via ``pads`` or
  ``auto_pad``; 1-D and 2-D; any number of channels);
* shape only: ``Flatten``, ``Reshape``, ``Identity`` (they keep the C-order
  flattening, so they change nothing in the flat vector);
* ``Relu``.

Any other op is an :class:`~exact_inj.errors.InputError` naming the op type and
the node.  The ops between two ``Relu`` nodes compose into one affine map
``x -> A x + c``, computed exactly (W2 (W1 x + b1) + b2 = (W2 W1) x +
(W2 b1 + b2)), so ACAS Xu's input normalisation (a ``Sub`` of a constant
before the first ``MatMul``) becomes part of the first layer.  Each ``Relu``
closes a ``"relu"`` layer; an affine part after the last ``Relu`` becomes a
final ``"linear"`` layer.  A ``Conv`` of the layer's input followed by nothing
but a per-channel constant ``Add``/``Sub`` (its bias) and shape-only ops
before the ``Relu`` (or the end) stays a structured
:class:`~exact_inj.model.conv.ConvLayer`, so its operator is never built; any other
``Conv`` is composed densely (:func:`~exact_inj.io.chain.conv_layer`).

Exactness: every float in the file (float16, bfloat16, float32 or float64) is
taken at its exact binary value, ``Fraction(float(x))``; Gemm's ``alpha`` and
``beta`` too.  No product is ever rounded: small products are summed in
Fractions, large ones in integers through python-flint.  The network is the
one the file describes over the reals, not the float32 arithmetic of a runtime,
so it differs from a runtime's outputs only by that runtime's rounding.

Input coordinates are the graph input's entries in C order (``ravel()`` of
its declared shape); a symbolic or zero leading dimension is taken as a batch
of 1.
"""

from __future__ import annotations

import os
from fractions import Fraction
from math import prod
from typing import Any

import numpy as np

from ..errors import InputError
from ..model import ConvSpec, KernelSpec, Network
from .chain import Affine, ChainBuilder, apply_conv, exact_array, zeros
from .onnx_ops import SHAPE_OPS, OpsMixin
from .files import read_bytes

_ONE = Fraction(1)

__all__ = ["SUPPORTED_OPS", "load_onnx", "network_from_onnx_bytes", "network_from_onnx_model"]

SUPPORTED_OPS = ("Add", "AveragePool", "BatchNormalization", "Concat", "Constant", "Conv", "ConvTranspose", "Div",
                 "Flatten", "Gemm", "Identity", "LeakyRelu", "MatMul", "Mul", "Neg", "Pad", "PRelu", "Relu", "Reshape",
                 "Resize", "Sigmoid", "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze", "Upsample")

# Ops refused with the reason (docs/model-files.md): none of them is affine or
# a strictly increasing unit, and no sound exact route exists for them here.
_REFUSED = {
    "MaxPool": "MaxPool takes the maximum of several inputs, which is piecewise linear but not affine and "
               "not a unit of one input; exact_inj does not model it",
    "Softmax": "Softmax couples its inputs and is not rational",
    "Elu": "Elu is not rational (exp); as an output unit it is not supported",
}


# Attributes each op may carry.  Anything else is refused, so that a variant
# this importer does not model (a legacy broadcast axis, a stride) cannot be
# silently read as the plain op.
_ALLOWED_ATTRS = {
    "Add": set(),
    "Sub": set(),
    "MatMul": set(),
    "Relu": set(),
    "Identity": set(),
    "Flatten": {"axis"},
    "Reshape": {"allowzero"},
    "Gemm": {"alpha", "beta", "transA", "transB"},
    "Conv": {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"},
    "ConvTranspose": {"auto_pad", "dilations", "group", "kernel_shape", "output_padding", "pads", "strides"},
    "Constant": {"value", "value_float", "value_floats", "value_int", "value_ints"},
    "Mul": set(),
    "Div": set(),
    "Neg": set(),
    "LeakyRelu": {"alpha"},
    "PRelu": set(),
    "Tanh": set(),
    "Sigmoid": set(),
    "BatchNormalization": {"epsilon", "momentum", "training_mode", "spatial"},
    "Unsqueeze": {"axes"},
    "Squeeze": {"axes"},
    "Transpose": {"perm"},
    "Pad": {"mode", "pads", "value"},
    "Concat": {"axis"},
    "Resize": {"mode", "coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a", "exclude_outside",
               "extrapolation_value", "antialias", "keep_aspect_ratio_policy", "axes"},
    "Upsample": {"mode", "scales"},
    "AveragePool": {"auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides", "dilations"},
}


def _require_onnx(path: str | None):
    try:
        import onnx  # noqa: PLC0415 - optional dependency
        import onnx.numpy_helper  # noqa: F401
    except ImportError:
        raise InputError(path, "reading ONNX files needs the onnx package: pip install 'exact_inj[onnx]'") from None
    return onnx


def load_onnx(path: str | os.PathLike) -> Network:
    """Load an ``.onnx`` file as an exact :class:`Network`; every problem is an InputError."""
    p = os.fspath(path)
    return network_from_onnx_bytes(read_bytes(p), p)


def network_from_onnx_bytes(data: bytes, path: str | None = None) -> Network:
    onnx = _require_onnx(path)
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:  # noqa: BLE001 - protobuf reports damage in several types
        raise InputError(path, f"not a valid ONNX model ({type(e).__name__}: {e})") from None
    name = os.path.splitext(os.path.basename(path))[0] if path else ""
    return network_from_onnx_model(model, path, name)


def network_from_onnx_model(model: Any, path: str | None = None, name: str = "") -> Network:
    """Convert a loaded ``onnx.ModelProto`` (or ``GraphProto``)."""
    onnx = _require_onnx(path)
    graph = model.graph if hasattr(model, "graph") else model
    return _Importer(onnx, graph, path).run(name or graph.name or "")


# --------------------------------------------------------------------------
# Exact arrays (numpy object arrays of Fractions)
# --------------------------------------------------------------------------


# --------------------------------------------------------------------------
# The chain's current tensor, as an affine function of the network input
# --------------------------------------------------------------------------


# --------------------------------------------------------------------------
# The importer
# --------------------------------------------------------------------------


class _Importer(OpsMixin):
    def __init__(self, onnx: Any, graph: Any, path: str | None) -> None:
        self.onnx = onnx
        self.graph = graph
        self.path = path
        self.consts: dict[str, np.ndarray] = {}
        self._exact_cache: dict[str, np.ndarray] = {}

    def fail(self, message: str) -> None:
        raise InputError(self.path, message)

    # -- constants ------------------------------------------------------

    def tensor(self, t: Any, what: str) -> np.ndarray:
        if t.data_location == self.onnx.TensorProto.EXTERNAL:
            self.fail(f"{what} keeps its data in an external file; save the model with its data inside")
        try:
            return self.onnx.numpy_helper.to_array(t)
        except Exception as e:  # noqa: BLE001 - onnx raises several types on bad tensors
            self.fail(f"{what}: unreadable tensor ({type(e).__name__}: {e})")

    def exact(self, name: str) -> np.ndarray:
        if name not in self._exact_cache:
            self._exact_cache[name] = exact_array(self.consts[name], f"constant {name!r}", self.path)
        return self._exact_cache[name]

    def set_const(self, name: str, value: np.ndarray) -> None:
        self.consts[name] = value
        self._exact_cache.pop(name, None)

    # -- the input ------------------------------------------------------

    def input_shape(self, vi: Any) -> tuple[int, ...]:
        tt = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
        if tt is None or not tt.HasField("shape"):
            self.fail(f"graph input {vi.name!r} has no tensor shape; the network's input size must be fixed")
        dims = []
        for k, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                dims.append(d.dim_value)
            elif k == 0:
                dims.append(1)  # a symbolic or zero leading dimension is the batch: take 1
            else:
                what = d.dim_param if d.HasField("dim_param") else "unknown"
                self.fail(f"graph input {vi.name!r} has a non-fixed dimension {k} ({what!r}); the input size must be fixed")
        float_types = {
            self.onnx.TensorProto.FLOAT,
            self.onnx.TensorProto.DOUBLE,
            self.onnx.TensorProto.FLOAT16,
            self.onnx.TensorProto.BFLOAT16,
        }
        if tt.elem_type not in float_types:
            self.fail(f"graph input {vi.name!r} is not a float tensor (ONNX elem_type {tt.elem_type})")
        return tuple(dims)

    # -- main loop ------------------------------------------------------

    def run(self, name: str) -> Network:
        g = self.graph
        for t in g.initializer:
            self.set_const(t.name, self.tensor(t, f"initializer {t.name!r}"))
        if len(g.sparse_initializer):
            self.fail("sparse initializers are not supported")
        # Old models (IR < 4) also list their initializers as graph inputs.
        inputs = [vi for vi in g.input if vi.name not in self.consts]
        if len(inputs) != 1:
            names = ", ".join(repr(vi.name) for vi in inputs) or "none"
            self.fail(f"the graph must have exactly one non-constant input, found {len(inputs)} ({names})")
        if len(g.output) != 1:
            self.fail(f"the graph must have exactly one output, found {len(g.output)}")
        var = inputs[0].name
        chain = ChainBuilder(self.input_shape(inputs[0]), self.path)
        unit: tuple[str, str] | None = None  # a Tanh or Sigmoid seen: (op, label); it must end the chain
        used: dict[str, str] = {}  # chain tensor -> label of the node that consumed it

        for index, node in enumerate(g.node):
            label = f"{node.name!r}" if node.name else f"#{index} (unnamed)"
            op = node.op_type
            if node.domain not in ("", "ai.onnx"):
                self.fail(f"unsupported op {node.domain}.{op} at node {label} (supported: {', '.join(SUPPORTED_OPS)})")
            if op in _REFUSED:
                self.fail(f"unsupported op {op} at node {label}: {_REFUSED[op]}")
            if op not in _ALLOWED_ATTRS:
                self.fail(f"unsupported op {op} at node {label} (supported: {', '.join(SUPPORTED_OPS)})")
            attrs = {a.name: a for a in node.attribute}
            for a in attrs:
                if a not in _ALLOWED_ATTRS[op]:
                    self.fail(f"{op} node {label}: attribute {a!r} is not supported")
            if len(node.output) != 1:
                self.fail(f"{op} node {label} has {len(node.output)} outputs; expected 1")
            ins = list(node.input)
            # Trailing empty names are omitted optional inputs.
            while ins and ins[-1] == "":
                ins.pop()
            at = [k for k, t in enumerate(ins) if t == var]
            for t in ins:
                if t and t != var and t not in self.consts:
                    if t in used:
                        self.fail(
                            f"the graph branches: tensor {t!r} is used by node {used[t]} and again by "
                            f"{op} node {label}; only a single chain from input to output is supported "
                            "(residual graphs, an Add or Concat of two branches, are refused)"
                        )
                    self.fail(f"{op} node {label}: input {t!r} is neither the chain's tensor nor a constant")
            out = node.output[0]
            if not at:
                self.fold_constant(op, node, label, ins, attrs, out)
                continue
            if len(at) > 1:
                self.fail(f"{op} node {label} uses the chain's tensor {var!r} twice; only affine chains are supported")
            used[var] = label
            if unit is not None:
                self.fail(f"{op} node {label} follows the {unit[0]} node {unit[1]}: {unit[0]} is supported only as "
                          "the network's last op (a strictly increasing output unit)")
            if op == "Relu":
                chain.relu()
            elif op in ("LeakyRelu", "PRelu"):
                chain.activation("leaky_relu", self.leaky_slope(op, ins, at[0], attrs, label,
                                                                    chain.current().shape))
            elif op in ("Tanh", "Sigmoid"):
                unit = (op, label)
            elif op in ("Conv", "ConvTranspose") and chain.starts_layer():
                # The convolution reads the layer's input itself: defer it, so
                # that it can stay structured if only a per-channel scale and
                # shift (a bias, a batch normalisation) and an activation (or
                # the end) follow.  Later ops act on its output.
                spec = self.conv_spec(chain.state.shape, ins, at[0], attrs, label, op == "ConvTranspose")
                chain.defer_conv(spec, f"{op} node {label}", (1, spec.out_channels, *spec.output_size))
            elif op in SHAPE_OPS:
                self.apply_shape_op(op, node, label, ins, at[0], attrs, chain.current())
            else:
                self.apply(op, node, label, ins, at[0], attrs, chain.affine())
            var = out

        if var != g.output[0].name:
            self.fail(
                f"the graph output {g.output[0].name!r} is not the end of the chain from the input "
                f"(the chain ends at {var!r})"
            )
        layers = chain.finish()
        out_dims = [d.dim_value for d in g.output[0].type.tensor_type.shape.dim]
        if out_dims and all(v > 0 for v in out_dims) and prod(out_dims) != layers[-1].out_dim:
            self.fail(
                f"the graph output {g.output[0].name!r} is declared with shape {out_dims} "
                f"but the chain computes {layers[-1].out_dim} numbers"
            )
        try:
            return chain.wrap(Network(tuple(layers), name, unit[0].lower() if unit else ""))
        except (ValueError, TypeError) as e:  # the checks above should leave nothing
            self.fail(str(e))

    # -- helpers ----------------------------------------------------------

    def attr(self, attrs: dict, key: str, default: Any) -> Any:
        if key not in attrs:
            return default
        return self.onnx.helper.get_attribute_value(attrs[key])

    def const_input(self, ins: list[str], k: int, op: str, label: str, what: str) -> np.ndarray:
        if k >= len(ins) or not ins[k]:
            self.fail(f"{op} node {label} is missing its {what} input")
        return self.exact(ins[k])

    # -- constant nodes ---------------------------------------------------

    def fold_constant(self, op: str, node: Any, label: str, ins: list[str], attrs: dict, out: str) -> None:
        """A node without the chain's tensor: computed once, exactly."""
        if op == "Constant":
            if len(attrs) != 1:
                self.fail(f"Constant node {label} must have exactly one value attribute")
            key, a = next(iter(attrs.items()))
            value = self.onnx.helper.get_attribute_value(a)
            if key == "value":
                self.set_const(out, self.tensor(value, f"Constant node {label}"))
            elif key in ("value_float", "value_floats"):
                # Attribute floats are stored as float32: keep that precision.
                self.set_const(out, np.array(value, dtype=np.float32))
            else:
                self.set_const(out, np.array(value, dtype=np.int64))
            return
        if op in ("Identity", "Flatten", "Reshape"):
            src = self.consts[ins[0]]
            self.set_const(out, src.reshape(self.reshaped(op, label, ins, attrs, src.shape)))
            return
        if op in ("Add", "Sub", "MatMul", "Mul", "Div") and len(ins) == 2:
            if all(np.asarray(self.consts[t]).dtype.kind in "iu" for t in ins):
                self.set_const(out, self.integer_op(op, label, ins))
                return
            a, b = self.exact(ins[0]), self.exact(ins[1])
            if op == "Div" and any(v == 0 for v in np.asarray(b).ravel()):
                self.fail(f"Div node {label} divides by zero")
            try:
                value = {"Add": np.add, "Sub": np.subtract, "MatMul": np.matmul, "Mul": np.multiply,
                         "Div": np.true_divide}[op](a, b)
            except ValueError as e:
                self.fail(f"{op} node {label}: shapes {list(a.shape)} and {list(b.shape)} do not match ({e})")
            self.set_const(out, np.asarray(value, dtype=object))
            return
        if op == "Neg":
            self.set_const(out, np.asarray(-self.exact(ins[0]), dtype=object))
            return
        if op in SHAPE_OPS and op not in ("Pad", "Resize", "Upsample", "Concat"):
            src = self.consts[ins[0]]
            self.set_const(out, self.shape_op_on_array(op, label, ins, attrs, src))
            return
        self.fail(f"{op} node {label} has only constant inputs; folding a constant {op} is not supported")

    def integer_op(self, op: str, label: str, ins: list[str]) -> np.ndarray:
        """Add, Sub, Mul, MatMul or Div of two integer tensors, as ONNX computes
        them: integer results, Div truncating toward zero (7 / 2 = 3).  Exact
        rational division here would change a shape, pad or size computed
        from constants (and with it the network)."""
        a, b = (np.asarray(self.consts[t]).astype(object) for t in ins)
        if op == "Div" and any(v == 0 for v in b.ravel()):
            self.fail(f"Div node {label} divides by zero")

        def trunc_div(x, y):
            q = abs(x) // abs(y)
            return q if (x >= 0) == (y >= 0) else -q

        try:
            value = {"Add": np.add, "Sub": np.subtract, "MatMul": np.matmul, "Mul": np.multiply,
                     "Div": np.frompyfunc(trunc_div, 2, 1)}[op](a, b)
        except ValueError as e:
            self.fail(f"{op} node {label}: shapes {list(a.shape)} and {list(b.shape)} do not match ({e})")
        value = np.asarray(value, dtype=object)
        if any(not -2 ** 63 <= int(v) < 2 ** 63 for v in value.ravel()):
            self.fail(f"{op} node {label} overflows int64")
        return value.astype(np.int64)

    def reshaped(self, op: str, label: str, ins: list[str], attrs: dict, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The output shape of a shape-only op (the C-order entries do not move)."""
        size = prod(shape)
        if op == "Identity":
            return tuple(shape)
        if op == "Flatten":
            axis = int(self.attr(attrs, "axis", 1))
            r = len(shape)
            if not -r <= axis <= r:
                self.fail(f"Flatten node {label}: axis {axis} is out of range for rank {r}")
            if axis < 0:
                axis += r
            return (prod(shape[:axis]), prod(shape[axis:]))
        # Reshape
        if len(ins) < 2 or ins[1] not in self.consts:
            self.fail(f"Reshape node {label}: the target shape must be a constant")
        target = self.consts[ins[1]]
        if target.dtype.kind not in "iu" or target.ndim != 1:
            self.fail(f"Reshape node {label}: the target shape must be a 1-D integer tensor")
        allowzero = int(self.attr(attrs, "allowzero", 0))
        dims = [int(v) for v in target.tolist()]
        new = []
        for k, d in enumerate(dims):
            if d == 0 and not allowzero:
                if k >= len(shape):
                    self.fail(f"Reshape node {label}: 0 at position {k} copies a dimension the input does not have")
                d = shape[k]
            new.append(d)
        if new.count(-1) > 1 or any(d < -1 for d in new):
            self.fail(f"Reshape node {label}: invalid target shape {dims}")
        if -1 in new:
            rest = prod(d for d in new if d != -1)
            if rest == 0 or size % rest:
                self.fail(f"Reshape node {label}: cannot reshape {list(shape)} to {dims}")
            new[new.index(-1)] = size // rest
        if prod(new) != size:
            self.fail(f"Reshape node {label}: cannot reshape {list(shape)} ({size} entries) to {dims}")
        return tuple(new)

    # -- ops on the chain ---------------------------------------------------

    def apply(self, op: str, node: Any, label: str, ins: list[str], pos: int, attrs: dict, state: Affine) -> None:
        if op in ("Identity", "Flatten", "Reshape"):
            if pos != 0:
                self.fail(f"{op} node {label}: the chain's tensor must be the data input")
            state.shape = self.reshaped(op, label, ins, attrs, state.shape)
        elif op in ("Add", "Sub"):
            if len(ins) != 2:
                self.fail(f"{op} node {label} must have two inputs")
            K = self.exact(ins[1 - pos])
            if op == "Sub" and pos == 1:
                state.negate()  # K - v
                self.add_const(state, K, op, label)
            else:
                self.add_const(state, -K if op == "Sub" else K, op, label)
        elif op == "MatMul":
            if len(ins) != 2:
                self.fail(f"MatMul node {label} must have two inputs")
            self.matmul(state, self.exact(ins[1 - pos]), pos, label, _ONE)
        elif op == "Gemm":
            self.gemm(state, ins, pos, attrs, label)
        elif op in ("Conv", "ConvTranspose"):
            self.conv(state, ins, pos, attrs, label, op == "ConvTranspose")
        elif op in ("Mul", "Div", "Neg", "BatchNormalization", "AveragePool"):
            self.apply_scaling_op(op, label, ins, pos, attrs, state)
        else:  # pragma: no cover - _ALLOWED_ATTRS and this dispatch list the same ops
            self.fail(f"unsupported op {op} at node {label}")

    def add_const(self, state: Affine, K: np.ndarray, op: str, label: str) -> None:
        try:
            state.add(K)
        except ValueError:
            self.fail(f"{op} node {label}: shapes {list(state.shape)} and {list(K.shape)} do not broadcast")

    def matmul(self, state: Affine, W: np.ndarray, pos: int, label: str, scale: Fraction, what: str = "MatMul") -> None:
        """v @ W (pos 0) or W @ v (pos 1), numpy matmul semantics, times ``scale``."""
        S = state.shape
        if W.ndim not in (1, 2):
            self.fail(f"{what} node {label}: a constant operand of rank {W.ndim} (batched) is not supported")
        if len(S) == 0:
            self.fail(f"{what} node {label}: matrix product of a scalar")
        if pos == 0:  # v @ W: contract v's last axis with W's first
            k = S[-1]
            Wm = W.reshape(-1, 1) if W.ndim == 1 else W
            if Wm.shape[0] != k:
                self.fail(f"{what} node {label}: shapes {list(S)} and {list(W.shape)} do not match")
            p = Wm.shape[1]
            batch = prod(S[:-1])
            L = Wm.T if batch == 1 else np.kron(_identity(batch), Wm.T)
            out = S[:-1] + ((p,) if W.ndim == 2 else ())
        else:  # W @ v: contract W's last axis with v's second-to-last (v's only, if 1-D)
            Wm = W.reshape(1, -1) if W.ndim == 1 else W
            m, k = Wm.shape
            if len(S) == 1:
                if S[0] != k:
                    self.fail(f"{what} node {label}: shapes {list(W.shape)} and {list(S)} do not match")
                L = Wm
                out = (m,) if W.ndim == 2 else ()
            else:
                if S[-2] != k:
                    self.fail(f"{what} node {label}: shapes {list(W.shape)} and {list(S)} do not match")
                p = S[-1]
                batch = prod(S[:-2])
                L = np.kron(Wm, _identity(p)) if p > 1 else Wm
                if batch > 1:
                    L = np.kron(_identity(batch), L)
                out = S[:-2] + ((m,) if W.ndim == 2 else ()) + (p,)
        if scale != 1:
            L = L * scale
        state.linear(np.ascontiguousarray(L), tuple(out))

    def gemm(self, state: Affine, ins: list[str], pos: int, attrs: dict, label: str) -> None:
        if len(ins) not in (2, 3):
            self.fail(f"Gemm node {label} must have 2 or 3 inputs")
        if pos == 2:
            self.fail(f"Gemm node {label}: the chain's tensor is the bias C; only A or B may be the chain")
        alpha = Fraction(self.attr(attrs, "alpha", 1.0))  # the attribute's exact float32 value
        beta = Fraction(self.attr(attrs, "beta", 1.0))
        transA = int(self.attr(attrs, "transA", 0))
        transB = int(self.attr(attrs, "transB", 0))
        if len(state.shape) != 2:
            self.fail(f"Gemm node {label}: the chain's tensor has shape {list(state.shape)}; Gemm needs a matrix")
        other = self.exact(ins[1 - pos])
        if other.ndim != 2:
            self.fail(f"Gemm node {label}: the constant operand has shape {list(other.shape)}; Gemm needs a matrix")
        if pos == 0:
            if transA:
                state.transpose2d()
            self.matmul(state, other.T if transB else other, 0, label, alpha, "Gemm")
        else:
            if transB:
                state.transpose2d()
            self.matmul(state, other.T if transA else other, 1, label, alpha, "Gemm")
        if len(ins) == 3 and ins[2]:
            C = self.exact(ins[2])
            # Gemm broadcasts C to the result (unidirectionally): it may not grow it.
            try:
                np.broadcast_to(C, state.shape)
            except ValueError:
                self.fail(f"Gemm node {label}: C of shape {list(C.shape)} does not broadcast to {list(state.shape)}")
            state.add(C * beta if beta != 1 else C)

    def conv(self, state: Affine, ins: list[str], pos: int, attrs: dict, label: str, transposed: bool = False) -> None:
        """A Conv or ConvTranspose applied densely (one that does not start a layer)."""
        spec = self.conv_spec(state.shape, ins, pos, attrs, label, transposed)
        try:
            apply_conv(state, spec, (1, spec.out_channels, *spec.output_size))
        except ValueError as e:  # OperatorTooLarge
            self.fail(f"{'ConvTranspose' if transposed else 'Conv'} node {label}: {e}")

    def conv_spec(self, S: tuple[int, ...], ins: list[str], pos: int, attrs: dict, label: str,
                  transposed: bool = False) -> ConvSpec | KernelSpec:
        """The node's convolution on a chain tensor of shape S (the dense operator is not built)."""
        if transposed:
            return self.conv_transpose_spec(S, ins, pos, attrs, label)
        if pos != 0:
            self.fail(f"Conv node {label}: the chain's tensor must be the data input X, not the weights")
        W = self.const_input(ins, 1, "Conv", label, "weight")
        d = W.ndim - 2
        if d not in (1, 2):
            self.fail(f"Conv node {label}: only 1-D and 2-D convolutions are supported (weight shape {list(W.shape)})")
        if len(S) != d + 2 or S[0] != 1:
            self.fail(f"Conv node {label}: input shape {list(S)} is not (1, C, {'L' if d == 1 else 'H, W'})")
        group = int(self.attr(attrs, "group", 1))
        if group != 1:
            self.fail(f"Conv node {label}: group = {group} is not supported (only 1)")
        strides = [int(v) for v in self.attr(attrs, "strides", [1] * d)]
        dilations = [int(v) for v in self.attr(attrs, "dilations", [1] * d)]
        for key, v in (("strides", strides), ("dilations", dilations)):
            if len(v) != d or any(x < 1 for x in v):
                self.fail(f"Conv node {label}: {key} = {v} is not {d} positive integers")
        ksize = tuple(W.shape[2:])
        if "kernel_shape" in attrs and tuple(self.attr(attrs, "kernel_shape", ())) != ksize:
            self.fail(f"Conv node {label}: kernel_shape does not match the weight shape {list(W.shape)}")
        auto_pad = self.attr(attrs, "auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
        if auto_pad == "NOTSET":
            raw = list(self.attr(attrs, "pads", [0] * (2 * d)))
            if len(raw) != 2 * d:
                self.fail(f"Conv node {label}: pads has {len(raw)} entries; expected {2 * d}")
            pads = [[raw[t], raw[t + d]] for t in range(d)]  # ONNX: all begins, then all ends
        elif auto_pad == "VALID":
            pads = 0
        elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            # The output has ceil(N / s) positions; the total padding makes
            # that fit (k - 1 at stride 1); SAME_UPPER puts the odd one at
            # the end, SAME_LOWER at the beginning.
            pads = []
            for N, k, st, g in zip(S[2:], ksize, strides, dilations):
                total = max(0, (-(-N // st) - 1) * st + (k - 1) * g + 1 - N)
                small, big = total // 2, total - total // 2
                pads.append([small, big] if auto_pad == "SAME_UPPER" else [big, small])
        else:
            self.fail(f"Conv node {label}: auto_pad {auto_pad!r} is not supported")
        bias = None
        if len(ins) >= 3 and ins[2]:
            bias = list(self.exact(ins[2]).ravel())
        try:
            if strides == [1] * d and dilations == [1] * d:
                return ConvSpec.build(W.tolist(), int(S[1]), int(W.shape[0]), list(S[2:]), "zero", pads, bias)
            pads = [[p, p] for p in [0] * d] if pads == 0 else pads
            return KernelSpec.build(W.tolist(), int(S[1]), int(W.shape[0]), list(S[2:]), strides, dilations,
                                    [tuple(int(v) for v in p) for p in pads], None, False, bias)
        except (ValueError, TypeError) as e:
            self.fail(f"Conv node {label}: {e}")


def _identity(k: int) -> np.ndarray:
    I = zeros((k, k))
    I[np.arange(k), np.arange(k)] = _ONE
    return I
