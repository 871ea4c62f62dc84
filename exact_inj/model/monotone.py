"""LeakyReLU layers written with ReLUs, exactly (docs/theory.md, section 12).

For a slope a > 0, leaky(t) = ReLU(t) - a ReLU(-t) for every real t (t >= 0:
t - 0; t < 0: 0 - a(-t) = a t).  So a layer h -> leaky(W h + b) is the ReLU
layer h -> ReLU([W; -W] h + [b; -b]) followed by the linear map u -> [I, -aI] u,
and :func:`relu_form` of a network computes the same function, with ReLU and
linear layers only.  The ReLU routes (pieces, folds, end to end) search that
form; a witness is checked on the network as written, and an end-to-end proof
is checked on ``relu_form`` of the certificate's own network, recomputed by the
checker, never read from the certificate.
"""

from __future__ import annotations

from fractions import Fraction

from .network import Layer, Network

__all__ = ["relu_form"]


def relu_form(net: Network) -> Network:
    """The same function with every leaky_relu layer as a ReLU layer and a linear layer.

    >>> from fractions import Fraction as F
    >>> L = Layer(((F(2),),), (F(-1),), "leaky_relu", F(1, 4))
    >>> net = Network((L,))
    >>> [layer.activation for layer in relu_form(net).layers]
    ['relu', 'linear']
    >>> all(relu_form(net).evaluate([F(x, 3)]) == net.evaluate([F(x, 3)]) for x in range(-6, 7))
    True
    """
    if all(layer.activation != "leaky_relu" for layer in net.layers):
        return net
    zero, one = Fraction(0), Fraction(1)
    layers: list = []
    for layer in net.layers:
        if layer.activation != "leaky_relu":
            layers.append(layer)
            continue
        W, b, m = layer.weight, layer.bias, layer.out_dim
        layers.append(Layer(tuple(W) + tuple(tuple(-v for v in row) for row in W),
                            tuple(b) + tuple(-v for v in b), "relu"))
        a = layer.slope
        merge = tuple(tuple(one if j == i else (-a if j == m + i else zero) for j in range(2 * m)) for i in range(m))
        layers.append(Layer(merge, tuple(zero for _ in range(m)), "linear"))
    return Network(tuple(layers), net.name, net.output_unit)
