"""The lifted system of a network at a known output (docs/inverse.md).

Variables are x and every hidden layer's output h; each ReLU neuron gives the
rows -h <= 0 and pre - h <= 0, a linear one the equation h - pre = 0, and the
last layer its equations or rows at the known y.  Shared by the trusted
checker of preimage answers (certify/inverse.py) and the search that builds
them (network/preimage.py); part of the trusted base: exact arithmetic only,
no solver.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Sequence

from ..model import Domain, Network
from ..model.monotone import relu_form

__all__ = ["LiftedSystem", "Row", "Sparse", "combine", "sparse_add", "sparse_neg"]

Sparse = dict[int, Fraction]
Row = tuple[Sparse, Fraction]


class LiftedSystem:
    """The rows of the lifted system of ``net`` at output ``y`` on ``domain``."""

    def __init__(self, net: Network, y: Sequence[Fraction], domain: Domain) -> None:
        # LeakyReLU layers as ReLU + linear layers (the same function,
        # exact_inj.model.monotone): the rows below know ReLU and linear only.
        net = relu_form(net)
        layers = net.layers
        K = len(layers)
        self.net = net
        self.n = n = net.input_dim
        self.y = tuple(y)
        if len(self.y) != net.output_dim:
            raise ValueError(f"y has {len(self.y)} entries but the network has {net.output_dim} outputs")
        # offsets[k]: first variable of layer k's input block (x for k = 0).
        self.offsets = [0]
        off = n
        for k in range(K - 1):
            self.offsets.append(off)
            off += layers[k].out_dim
        self.dim = off
        self.neurons: list[tuple[int, int]] = [
            (k, j) for k in range(K - 1) if layers[k].activation == "relu" for j in range(layers[k].out_dim)]
        self.layer_of = {g: kj for g, kj in enumerate(self.neurons)}
        rows: list[Row] = []
        eqs: list[Row] = []
        G, h = domain.constraints(n)
        for g_row, hh in zip(G, h):
            rows.append(({j: v for j, v in enumerate(g_row) if v}, -hh))
        for k in range(K - 1):
            layer = layers[k]
            for j in range(layer.out_dim):
                a, c = self.pre(k, j)
                hv = self.hvar(k, j)
                if layer.activation == "relu":
                    rows.append(({hv: Fraction(-1)}, Fraction(0)))
                    rows.append((sparse_add(a, {hv: Fraction(-1)}), c))
                else:
                    eqs.append((sparse_add({hv: Fraction(1)}, sparse_neg(a)), -c))
        last = layers[-1]
        for j in range(last.out_dim):
            a, c = self.pre(K - 1, j)
            yj = self.y[j]
            if last.activation == "linear" or yj > 0:
                eqs.append((a, c - yj))
            elif yj == 0:
                rows.append((a, c))
            else:
                rows.append(({}, -yj))
        self.base_rows = rows
        self.base_eqs = eqs
        self._fixed: dict[tuple[int, bool], tuple[Row, Row]] = {}

    def pre(self, k: int, j: int) -> Row:
        """Neuron j of layer k's pre-activation as a function of v."""
        layer = self.net.layers[k]
        off = self.offsets[k]
        return {off + c: w for c, w in layer.sparse_row(j).items() if w}, layer.bias[j]

    def hvar(self, k: int, j: int) -> int:
        """The variable holding neuron j of (hidden) layer k's output."""
        return self.offsets[k + 1] + j

    def fixed(self, g: int, active: bool) -> tuple[Row, Row]:
        """(inequality, equation) a fixed neuron adds."""
        key = (g, active)
        got = self._fixed.get(key)
        if got is None:
            got = self._fixed[key] = self._fixed_rows(g, active)
        return got

    def _fixed_rows(self, g: int, active: bool) -> tuple[Row, Row]:
        k, j = self.neurons[g]
        a, c = self.pre(k, j)
        hv = self.hvar(k, j)
        if active:
            return (sparse_neg(a), -c), (sparse_add({hv: Fraction(1)}, sparse_neg(a)), -c)
        return (a, c), ({hv: Fraction(1)}, Fraction(0))

    def system(self, path: Sequence[tuple[int, bool]]) -> tuple[list[Row], list[Row]]:
        """The node's inequalities and equations (base rows, then one per fixed neuron)."""
        rows, eqs = list(self.base_rows), list(self.base_eqs)
        for g, act in path:
            r, e = self.fixed(g, act)
            rows.append(r)
            eqs.append(e)
        return rows, eqs

    def pattern_holds(self, x: Sequence[Fraction], path: Sequence[tuple[int, bool]]) -> bool:
        """Do the fixed neurons' pre-activations at x have the fixed (closed) signs?"""
        pres = self.pre_activations(x)
        return all((pres[g] >= 0) if act else (pres[g] <= 0) for g, act in path)

    def pre_activations(self, x: Sequence[Fraction]) -> list[Fraction]:
        """Every hidden ReLU neuron's pre-activation at x, in neuron order."""
        out: list[Fraction] = []
        h = tuple(x)
        for k, layer in enumerate(self.net.layers[:-1]):
            pre = layer.pre_activation(h)
            if layer.activation == "relu":
                out.extend(pre)
            h = layer.apply(h)
        return out

    def patterns(self, path: Sequence[tuple[int, bool]]) -> list[str]:
        """The pattern of a complete path, one string per ReLU layer ('+' active,
        '-' inactive); the last layer's, if it is a ReLU, is read off y."""
        fixed = dict(path)
        out, g = [], 0
        for k, layer in enumerate(self.net.layers[:-1]):
            if layer.activation == "relu":
                out.append("".join("+" if fixed.get(g + j) else "-" for j in range(layer.out_dim)))
                g += layer.out_dim
        if self.net.layers[-1].activation == "relu":
            out.append("".join("+" if v > 0 else "-" for v in self.y))
        return out


def sparse_add(a: Sparse, b: Sparse) -> Sparse:
    """a + b, zeros dropped."""
    out = dict(a)
    for k, v in b.items():
        s = out.get(k, Fraction(0)) + v
        if s:
            out[k] = s
        else:
            out.pop(k, None)
    return out


def sparse_neg(a: Sparse) -> Sparse:
    return {k: -v for k, v in a.items()}


def combine(rows: Sequence[Row], idx: Sequence[int], coef: Sequence[Fraction]) -> tuple[Sparse, Fraction]:
    """sum coef_i rows[idx_i], as (sparse coefficients, constant); zeros dropped."""
    acc: dict[int, Fraction] = {}
    const = Fraction(0)
    for i, m in zip(idx, coef):
        if not m:
            continue
        a, c = rows[i]
        for t, v in a.items():
            acc[t] = acc.get(t, Fraction(0)) + m * v
        const += m * c
    return {t: v for t, v in acc.items() if v}, const
