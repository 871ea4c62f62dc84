"""What a network computes, exactly: layers, networks, convolutions, input
domains, stages and activation pieces.  Imports only exact arithmetic.

>>> from exact_inj.model import Layer, Network
>>> Network((Layer.from_rows([[1], [-1]], [1, -1]),)).evaluate([-3])
(Fraction(0, 1), Fraction(2, 1))
"""

from .conv import MAX_OPERATOR_ENTRIES, PADDINGS, ConvLayer, ConvSpec, conv_operator, normalize_pads
from .domain import Domain
from .kernels import KernelSpec
from .network import ACTIVATIONS, OUTPUT_UNITS, Layer, Matrix, Network, Vector, relu

__all__ = [
    "ACTIVATIONS", "MAX_OPERATOR_ENTRIES", "PADDINGS", "ConvLayer", "ConvSpec", "Domain", "KernelSpec", "OUTPUT_UNITS", "Layer", "Matrix",
    "Network", "Vector", "conv_operator", "normalize_pads", "relu",
]
