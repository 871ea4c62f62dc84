"""Readers and writers: every number kept exact (docs/formats.md,
docs/model-files.md).

JSON and NPZ networks, ONNX models and PyTorch states (:func:`load_network`
picks the reader), VNN-LIB property files (:mod:`exact_inj.io.vnnlib`).
The readers of optional formats are imported only when such a file is read.
"""

from ..errors import InputError
from ..numbers import MAX_EXPONENT, fraction_to_str, parse_exact
from .json import load_json_file, loads_exact, network_from_json, network_to_json
from .load import load_network

__all__ = [
    "InputError", "MAX_EXPONENT", "fraction_to_str", "parse_exact", "loads_exact", "load_json_file",
    "network_to_json", "network_from_json", "load_network",
]
