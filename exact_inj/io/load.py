"""One entry point for network files: the reader is chosen by extension
(and by content for zip archives)."""

from __future__ import annotations

import os

from ..errors import InputError
from ..model import Network
from .files import decode_text, is_zip, read_bytes
from .json import loads_exact, network_from_json
from .npz import load_npz

__all__ = ["load_network"]

# PyTorch state dicts (torch.save, read with weights_only=True) and safetensors.
_TORCH_EXTENSIONS = (".pt", ".pth", ".safetensors")


def load_network(path: str | os.PathLike) -> Network:
    """Load a network from a ``.json`` or ``.npz`` file, exactly.

    ``.onnx`` files go to :mod:`exact_inj.io.onnx` and ``.pt``, ``.pth``
    and ``.safetensors`` to :mod:`exact_inj.io.torch` (optional extras;
    docs/model-files.md).  Any other extension is read as JSON unless the
    content is a zip archive (then NPZ).  Every problem is an
    :class:`InputError`.

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "layer.json")
    ...     _ = open(p, "w").write('{"layers": [{"weight": [[0.1], [-1]]}]}')
    ...     load_network(p).layers[0].weight
    ((Fraction(1, 10),), (Fraction(-1, 1),))
    """
    p = os.fspath(path)
    data = read_bytes(p)
    if not data.strip():
        raise InputError(p, "file is empty")
    ext = os.path.splitext(p)[1].lower()
    # Model files of other frameworks, by extension only (docs/model-files.md).
    # Their importers need optional packages, so they are imported here, late.
    if ext == ".onnx":
        from .onnx import network_from_onnx_bytes

        return network_from_onnx_bytes(data, p)
    if ext in _TORCH_EXTENSIONS:
        from .torch import network_from_torch_bytes

        return network_from_torch_bytes(data, p)
    zipped = is_zip(data)
    if ext == ".npz" or (ext != ".json" and zipped):
        if not zipped:
            raise InputError(p, "not an NPZ archive (no zip header); a .npz file is written by numpy.savez")
        return load_npz(data, p)
    return network_from_json(loads_exact(decode_text(data, p), p), p)

