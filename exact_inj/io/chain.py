"""The exact chain both model-file importers build: affine maps composed in
Fractions between activations, convolutions kept as kernels where only a
per-channel bias follows them (ONNX graphs, :mod:`exact_inj.io.onnx`, and
PyTorch ``nn.Sequential`` states, :mod:`exact_inj.io.torch`).
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from math import isqrt, lcm, prod

import flint
import numpy as np

from ..errors import InputError
from ..model import MAX_OPERATOR_ENTRIES, ConvLayer, ConvSpec, KernelSpec, Layer, Network
from ..model.normalised import ChannelNorm, NormalisedNetwork

__all__ = ["Affine", "ChainBuilder", "apply_conv", "average_pool_matrix", "batch_norm", "conv_layer", "exact_array",
           "rational_sqrt", "scaled_spec", "zeros"]


_ZERO = Fraction(0)
_ONE = Fraction(1)

# Below this many multiply-adds a product is summed in Fractions (numpy object
# arrays); above it, both sides go to integers over a common denominator and
# python-flint multiplies them, which is ~100x faster on MNIST-sized maps.
_FLINT_THRESHOLD = 100_000


def exact_array(arr: np.ndarray, what: str, path: str | None) -> np.ndarray:
    """An object array of exact Fractions with the shape of ``arr``."""
    if arr.dtype == object:
        return arr
    kind = arr.dtype.kind
    if kind in "iu" or kind == "b":
        flat = [Fraction(int(v)) for v in arr.ravel().tolist()]
    elif kind == "f" or arr.dtype.name == "bfloat16":
        # float16/bfloat16/float32 widen to float64 exactly, and Fraction(float)
        # is the float's exact binary value.
        wide = arr.astype(np.float64)
        bad = ~np.isfinite(wide)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise InputError(path, f"{what}{list(idx)} is {wide[idx]}; numbers must be finite")
        # One Fraction per distinct value (np.unique runs in C): weights
        # repeat often (quantised or constructed models), and converting
        # each entry separately was most of a full-size import.
        vals, inv = np.unique(wide.ravel(), return_inverse=True)
        fr = np.empty(len(vals), dtype=object)
        fr[:] = [Fraction(v) for v in vals.tolist()]
        return fr[inv.ravel()].reshape(arr.shape)
    else:
        raise InputError(path, f"{what} has dtype {arr.dtype}; expected a float or integer tensor")
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(arr.shape)


def zeros(shape: tuple[int, ...]) -> np.ndarray:
    return np.full(shape, _ZERO, dtype=object)


def _exact_matmul(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """X @ Y for 2-D object arrays of Fractions, exactly."""
    a, b = X.shape
    c = Y.shape[1]
    if a * b * c <= _FLINT_THRESHOLD:
        return X.dot(Y)

    def scaled(M: np.ndarray) -> tuple[list[list[int]], int]:
        flat = M.ravel().tolist()
        D = lcm(*(v.denominator for v in flat))
        ints = [v.numerator * (D // v.denominator) for v in flat]
        cols = M.shape[1]
        return [ints[i : i + cols] for i in range(0, len(ints), cols)], D

    Xi, dx = scaled(X)
    Yi, dy = scaled(Y)
    P = flint.fmpz_mat(Xi) * flint.fmpz_mat(Yi)
    D = dx * dy
    out = np.empty(a * c, dtype=object)
    out[:] = [Fraction(int(v), D) for v in P.entries()]
    return out.reshape(a, c)


class Affine:
    """A tensor of shape ``shape`` whose C-order entries are ``A z + c``.

    ``z`` is the input of the layer being built (the network input, or the
    output of the last Relu).  ``A`` is kept in *selection* form while it only
    picks (and scales) entries of ``z`` -- the state after Flatten, Sub or a
    Relu -- so that e.g. MNIST's first Gemm is not multiplied by a 784 x 784
    identity: ``A[i, src[i]] = coef[i]``.  It becomes dense at the first
    matrix product.
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape
        self.n = prod(shape)
        self.src: np.ndarray | None = np.arange(self.n)
        self.coef: np.ndarray | None = None  # None: all ones
        self.A: np.ndarray | None = None
        self.c = zeros((self.n,))
        self.c_zero = True
        # A batch normalisation with irrational roots, applied to this map's
        # output and kept symbolic (exact_inj/model/normalised.py), with the
        # op that brought it: only an activation or the end may follow it.
        self.pending_norm: tuple[ChannelNorm, str] | None = None

    @property
    def size(self) -> int:
        return prod(self.shape)

    def is_identity(self) -> bool:
        return self.c_zero and self._is_identity_map()

    def _is_identity_map(self) -> bool:
        """A z + c with A = I (c arbitrary)."""
        return (
            self.A is None
            and self.coef is None
            and self.size == self.n
            and bool((self.src == np.arange(self.n)).all())
        )

    def channel_bias(self, channels: int) -> list[Fraction] | None:
        """If this is ``z + c`` with ``c`` constant over each of ``channels``
        equal blocks of ``z`` (a per-channel bias of a convolution's
        channel-major output), that constant per channel; otherwise None."""
        if not self._is_identity_map():
            return None
        per = self.n // channels
        c = self.c.tolist()
        blocks = [c[o * per : (o + 1) * per] for o in range(channels)]
        if any(v != b[0] for b in blocks for v in b):
            return None
        return [b[0] for b in blocks]

    def channel_affine(self, channels: int) -> tuple[list[Fraction], list[Fraction]] | None:
        """If this is ``a_o z + c_o`` on each of ``channels`` equal blocks of
        ``z`` (a per-channel scale and shift, such as a batch normalisation
        of a convolution's output), the scales and shifts; otherwise None."""
        if not (self.A is None and self.size == self.n and bool((self.src == np.arange(self.n)).all())):
            return None
        per = self.n // channels
        coef = [_ONE] * self.n if self.coef is None else self.coef.tolist()
        c = self.c.tolist()
        scales, shifts = [], []
        for o in range(channels):
            blk = slice(o * per, (o + 1) * per)
            a, cc = coef[blk], c[blk]
            if any(v != a[0] for v in a) or any(v != cc[0] for v in cc):
                return None
            scales.append(a[0])
            shifts.append(cc[0])
        return scales, shifts

    def scale(self, K: np.ndarray) -> None:
        """Multiply by a constant (numpy broadcasting; the tensor may grow)."""
        shape = tuple(np.broadcast_shapes(self.shape, K.shape))
        self.broadcast_to(shape)
        k = np.broadcast_to(K, shape).ravel()
        if self.A is None:
            self.coef = k.copy() if self.coef is None else self.coef * k
        else:
            self.A = self.A * k[:, None]
        self.c = self.c * k

    def gather_or_zero(self, idx: np.ndarray, shape: tuple[int, ...]) -> None:
        """Entry i of the new tensor is entry idx[i] of the old one, or 0
        where idx[i] < 0 (constant zero padding)."""
        pad = idx < 0
        self.gather(np.where(pad, 0, idx), shape)
        if pad.any():
            if self.A is None:
                coef = np.full(self.size, _ONE, dtype=object) if self.coef is None else self.coef.copy()
                coef[pad] = _ZERO
                self.coef = coef
            else:
                self.A = self.A.copy()
                self.A[pad] = _ZERO
            self.c = self.c.copy()
            self.c[pad] = _ZERO

    def then(self, after: "Affine") -> None:
        """Follow this map by ``after``, an Affine over this one's output:
        afterwards this is ``after(self(z))``."""
        if after.A is None:  # selection form: pick (and scale) this map's rows
            self.gather(after.src, after.shape)
            if after.coef is not None:
                if self.A is None:
                    self.coef = after.coef if self.coef is None else self.coef * after.coef
                else:
                    self.A = self.A * after.coef[:, None]
                self.c = self.c * after.coef
        else:
            self.linear(after.A, after.shape)
        if not after.c_zero:
            self.add_flat(after.c)

    def gather(self, idx: np.ndarray, shape: tuple[int, ...]) -> None:
        """Entry i of the new tensor is entry idx[i] of the old one."""
        if self.A is None:
            self.src = self.src[idx]
            if self.coef is not None:
                self.coef = self.coef[idx]
        else:
            self.A = self.A[idx]
        self.c = self.c[idx]
        self.shape = shape

    def broadcast_to(self, shape: tuple[int, ...]) -> None:
        if shape != self.shape:
            idx = np.broadcast_to(np.arange(self.size).reshape(self.shape), shape).ravel()
            self.gather(idx, shape)

    def transpose2d(self) -> None:
        r, s = self.shape
        self.gather(np.arange(self.size).reshape(r, s).T.ravel(), (s, r))

    def negate(self) -> None:
        if self.A is None:
            ones = np.full(self.size, _ONE, dtype=object)
            self.coef = -(self.coef if self.coef is not None else ones)
        else:
            self.A = -self.A
        self.c = -self.c

    def add(self, K: np.ndarray) -> None:
        """Add a constant (numpy broadcasting; the tensor may grow)."""
        shape = tuple(np.broadcast_shapes(self.shape, K.shape))
        self.broadcast_to(shape)
        self.c = self.c + np.broadcast_to(K, shape).ravel()
        self.c_zero = False

    def add_flat(self, v: np.ndarray) -> None:
        self.c = self.c + v
        self.c_zero = False

    def linear(self, L: np.ndarray, shape: tuple[int, ...]) -> None:
        """Apply the matrix L (new size x old size) to the flattened tensor."""
        if self.A is None:
            if self.coef is None and len(self.src) == self.n and bool(
                (np.sort(self.src) == np.arange(self.n)).all()
            ):
                A = np.empty((L.shape[0], self.n), dtype=object)
                A[:, self.src] = L  # a permutation: just move L's columns
            else:
                A = zeros((L.shape[0], self.n))
                for i, j in enumerate(self.src.tolist()):
                    col = L[:, i] if self.coef is None else L[:, i] * self.coef[i]
                    A[:, j] = A[:, j] + col
            self.A = A
            self.src = self.coef = None
        else:
            self.A = _exact_matmul(L, self.A)
        if self.c_zero:
            self.c = zeros((L.shape[0],))
        else:
            self.c = _exact_matmul(L, self.c.reshape(-1, 1)).ravel()
        self.shape = shape

    def dense(self) -> np.ndarray:
        if self.A is not None:
            return self.A
        A = zeros((self.size, self.n))
        A[np.arange(self.size), self.src] = _ONE if self.coef is None else self.coef
        return A

    def layer(self, activation: str, slope: Fraction = _ZERO) -> Layer:
        W = tuple(tuple(row) for row in self.dense().tolist())
        return Layer(W, tuple(self.c.tolist()), activation, slope)


def rational_sqrt(q: Fraction) -> Fraction | None:
    """The rational square root of q >= 0, or None if it is irrational.

    >>> rational_sqrt(Fraction(9, 4)), rational_sqrt(Fraction(2))
    (Fraction(3, 2), None)
    """
    a, b = q.numerator, q.denominator  # in lowest terms: both must be squares
    if a < 0:
        return None
    ra, rb = isqrt(a), isqrt(b)
    return Fraction(ra, rb) if ra * ra == a and rb * rb == b else None


def batch_norm(state: Affine, axis: int, gamma: list, beta: list, mean: list, var: list, eps: Fraction,
               where: str) -> None:
    """y = gamma (x - mean) / sqrt(var + eps) + beta along ``axis`` of the
    state (inference mode), for both importers.  Folded exactly when every
    root is rational; otherwise kept symbolic as the state's pending
    normalisation (docs/theory.md, section 12, "Irrational batch
    normalisation"), which needs the channel axis to lead (channel-major
    rows).  Raises ValueError with a message naming ``where``."""
    S = state.shape
    C = S[axis]
    if not all(len(v) == C for v in (gamma, beta, mean, var)):
        raise ValueError(f"{where}: scale, bias, mean and var must have {C} entries (one per channel)")
    roots = []
    for c in range(C):
        r2 = var[c] + eps
        if r2 <= 0:
            raise ValueError(f"{where}: var + epsilon = {float(r2)} <= 0 at channel {c}")
        roots.append(r2)
    rational = [rational_sqrt(r2) for r2 in roots]
    if any(r is None for r in rational):
        if any(n != 1 for n in S[:axis]):
            raise ValueError(f"{where}: input shape {list(S)} has a batch axis; expected 1")
        state.pending_norm = (ChannelNorm(tuple(gamma), tuple(beta), tuple(mean), tuple(roots)), where)
        return
    tail = (1,) * (len(S) - axis - 1)
    f = np.empty(C, dtype=object)
    f[:] = [gamma[c] / r for c, r in enumerate(rational)]
    b = np.empty(C, dtype=object)
    b[:] = [beta[c] - mean[c] * gamma[c] / r for c, r in enumerate(rational)]
    state.scale(f.reshape((C, *tail)))
    state.add(b.reshape((C, *tail)))


def average_pool_matrix(C: int, N: tuple[int, ...], k: list[int], st: list[int], pads: list[tuple[int, int]],
                        include: bool) -> tuple[np.ndarray, list[int]]:
    """The exact matrix of a mean over windows (C channels of spatial size N,
    channel-major) and the output spatial size; ``include``: padded cells
    count in the divisor.  Raises ValueError if a window does not fit."""
    out = [(n + b + a - kk) // s + 1 for n, (b, a), kk, s in zip(N, pads, k, st)]
    if any(o < 1 for o in out):
        raise ValueError("the window does not fit the padded input")
    n_in, n_out = C * prod(N), C * prod(out)
    if n_in * n_out > MAX_OPERATOR_ENTRIES:
        raise ValueError(f"its operator would have {n_in * n_out} entries, more than {MAX_OPERATOR_ENTRIES}")
    L = zeros((n_out, n_in))
    outs = list(np.ndindex(*out))
    for c in range(C):
        for r, p in enumerate(outs):
            cells = [tuple(pt * s + qt - b for pt, s, qt, (b, _) in zip(p, st, q, pads)) for q in np.ndindex(*k)]
            inside = [q for q in cells if all(0 <= v < n for v, n in zip(q, N))]
            w = Fraction(1, prod(k) if include else len(inside))
            for q in inside:
                L[c * len(outs) + r, int(np.ravel_multi_index((c, *q), (C, *N)))] += w
    return L, out


def apply_conv(state: Affine, spec: ConvSpec, shape: tuple[int, ...]) -> None:
    """Apply the convolution to ``state`` as its dense operator (output shape ``shape``).

    Raises OperatorTooLarge (a ValueError) above MAX_OPERATOR_ENTRIES."""
    rows = spec.operator()  # a ConvSpec or a KernelSpec
    L = np.empty((len(rows), spec.in_dim), dtype=object)
    L[:] = rows
    state.linear(L, shape)
    if any(spec.bias):
        b = np.empty(spec.out_dim, dtype=object)
        b[:] = list(spec.bias_vector())
        state.add_flat(b)


def scaled_spec(spec: ConvSpec | KernelSpec, scales: list[Fraction], shifts: list[Fraction]):
    """The convolution followed by y_o -> a_o y_o + c_o per output channel:
    the same operator with kernel channel o times a_o and bias a_o b_o + c_o."""
    def times(x, a, memo):
        if isinstance(x, Fraction):
            # Keyed by identity (cheaper than hashing a Fraction): the readers
            # share one object per distinct value, and the entries are alive.
            r = memo.get(id(x))
            if r is None:
                r = memo[id(x)] = x * a
            return r
        return tuple(times(v, a, memo) for v in x)

    # A product per distinct entry object of each channel (weights repeat often), none for a = 1.
    kernel = tuple(k if a == 1 else times(k, a, {}) for k, a in zip(spec.kernel, scales))
    bias = tuple(a * b + c for a, b, c in zip(scales, spec.bias, shifts))
    return replace(spec, kernel=kernel, bias=bias)


def conv_layer(spec: ConvSpec | KernelSpec, after: Affine, activation: str,
               slope: Fraction = _ZERO) -> Layer | ConvLayer:
    """The layer ``z -> act(after(conv(z)))``, for a convolution of the layer's input.

    Both importers defer a convolution that starts a layer: the ops after it
    go into ``after`` (an Affine over the convolution's output), and only
    when the layer closes (a ReLU, or the end) is it known what follows.  If
    ``after`` adds nothing but a per-channel constant (a separate bias, or no
    op at all), the layer stays a structured ConvLayer with that constant
    folded into its bias: the engine can then decide it through the kernel,
    however large its operator.  Otherwise (a Gemm, a second convolution, a
    constant that varies over positions, a Flatten then MatMul, ...) the layer
    is the exact dense composition, the same matrix as if the convolution had
    been densified when it was met.  Raises OperatorTooLarge (a ValueError)
    if that needs an operator above MAX_OPERATOR_ENTRIES.
    """
    extra = after.channel_affine(spec.out_channels)
    if extra is not None:
        # A per-channel scale and shift (a bias, an exact batch
        # normalisation): folded into the kernel, which stays a kernel.
        return scaled_spec(spec, *extra).layer(activation, slope)
    state = Affine((spec.in_dim,))
    apply_conv(state, spec, (spec.out_dim,))
    state.then(after)
    return state.layer(activation, slope)


class ChainBuilder:
    """Layers from a chain of ops, the way both importers read a model.

    Affine ops compose into the current :class:`Affine` (:meth:`affine`); a
    ReLU closes a ``"relu"`` layer (:meth:`relu`); the end closes a final
    ``"linear"`` layer if anything is left (:meth:`network`).  A convolution
    that reads the layer's own input is deferred (:meth:`defer_conv`), so
    that it stays a structured :class:`~exact_inj.model.ConvLayer` when only a
    per-channel bias and the ReLU (or the end) follow it; ``label`` names it
    in errors ("Conv node 'c1'", "module 0 (Conv2d)").

    >>> b = ChainBuilder((2,))
    >>> b.affine().add_flat(np.array([Fraction(1), Fraction(-1)], dtype=object))
    >>> b.relu()
    >>> b.network("n").layers[0].bias
    (Fraction(1, 1), Fraction(-1, 1))
    """

    def __init__(self, shape: tuple[int, ...] | None, path: str | None = None) -> None:
        self.path = path
        self.state: Affine | None = None if shape is None else Affine(shape)
        self.layers: list[Layer | ConvLayer] = []
        self.norms: list[ChannelNorm | None] = []  # one per layer: a symbolic normalisation or None
        self.last_was_relu = False
        # While a conv is deferred, ``state`` is over the conv's output.
        self.conv: tuple[ConvSpec, str] | None = None

    def affine(self, shape: tuple[int, ...] | None = None) -> Affine:
        """The affine map so far, to apply the next affine op to (started at
        ``shape`` if nothing has been read yet)."""
        self.last_was_relu = False
        return self.current(shape)

    def current(self, shape: tuple[int, ...] | None = None) -> Affine:
        """The affine map so far without marking an op (a pure reshape keeps
        a ReLU straight after a ReLU recognisable)."""
        if self.state is not None and self.state.pending_norm is not None:
            raise InputError(self.path, f"{self.state.pending_norm[1]} has irrational roots and is kept exact as a "
                                        "symbolic factor; only a Relu, a Tanh/Sigmoid output or the end may follow "
                                        "it (docs/model-files.md)")
        if self.state is None:
            if shape is None:
                raise ValueError("the chain's input shape is unknown")
            self.state = Affine(shape)
        return self.state

    def starts_layer(self) -> bool:
        """True when the next op reads the layer's own input (nothing pending).
        A symbolic normalisation is pending work: the state is still the
        identity, but deferring a conv would replace it and drop the
        normalisation (the conv then goes through :meth:`affine`, which refuses)."""
        return self.conv is None and (self.state is None or (self.state.pending_norm is None
                                                             and self.state.is_identity()))

    def defer_conv(self, spec: ConvSpec | KernelSpec, label: str, out_shape: tuple[int, ...]) -> None:
        """Keep a conv that starts a layer as its kernel; later ops act on its output."""
        if self.state is not None:
            self.current()  # refuses a pending symbolic normalisation rather than dropping it
        self.conv = (spec, label)
        self.state = Affine(out_shape)
        self.last_was_relu = False

    def relu(self, shape: tuple[int, ...] | None = None) -> None:
        self.activation("relu", _ZERO, shape)

    def activation(self, kind: str, slope: Fraction = _ZERO, shape: tuple[int, ...] | None = None) -> None:
        """Close a layer with a ReLU, or a LeakyReLU of the given slope (> 0)."""
        norm = self._take_norm(kind)
        st = self.current(shape)
        self.norms.append(norm)
        if self.conv is not None:
            self.layers.append(self._close_conv(kind, slope))
        # relu(relu(v)) = relu(v): a ReLU straight after a ReLU adds nothing.
        elif not (kind == "relu" and self.last_was_relu and st.is_identity() and norm is None):
            try:
                self.layers.append(st.layer(kind, slope))
            except ValueError as e:  # a slope that is not > 0
                raise InputError(self.path, str(e)) from None
        else:
            self.norms.pop()
        self.state = Affine(st.shape)
        self.last_was_relu = kind == "relu"

    def finish(self) -> list[Layer | ConvLayer]:
        """Close the chain: a final linear layer if anything is left after the
        last ReLU (or if there is no layer at all)."""
        if self.state is None:
            raise InputError(self.path, "the model computes nothing")
        norm = self._take_norm("linear")
        if self.conv is not None:
            self.layers.append(self._close_conv("linear"))
            self.norms.append(norm)
        elif not self.state.is_identity() or not self.layers or norm is not None:
            self.layers.append(self.state.layer("linear"))
            self.norms.append(norm)
        return self.layers

    def _take_norm(self, kind: str) -> ChannelNorm | None:
        st = self.state
        if st is None or st.pending_norm is None:
            return None
        norm, where = st.pending_norm
        if kind not in ("relu", "linear"):
            raise InputError(self.path, f"{where} has irrational roots; a {kind} after it is not supported (a "
                                        "negative factor does not commute with it): only a Relu or the end")
        st.pending_norm = None
        return norm

    def wrap(self, net: Network) -> Network | NormalisedNetwork:
        """``net`` (built from :meth:`finish`'s layers), or, if some layer is
        followed by a symbolic normalisation, the NormalisedNetwork it is."""
        if all(n is None for n in self.norms):
            return net
        try:
            return NormalisedNetwork(net, tuple(self.norms), net.name)
        except (ValueError, TypeError) as e:
            raise InputError(self.path, str(e)) from None

    def network(self, name: str, output_unit: str = "") -> Network:
        """:meth:`finish`, then the network of its layers."""
        self.finish()
        try:
            return self.wrap(Network(tuple(self.layers), name, output_unit))
        except (ValueError, TypeError) as e:  # the importers' own checks should leave nothing
            raise InputError(self.path, str(e)) from None

    def _close_conv(self, activation: str, slope: Fraction = _ZERO) -> Layer | ConvLayer:
        spec, label = self.conv
        self.conv = None
        try:
            return conv_layer(spec, self.state, activation, slope)
        except ValueError as e:  # OperatorTooLarge, when it has to be dense
            raise InputError(self.path, f"{label}: {e}") from None
