"""One entry point for network files (the reader is chosen by extension, and
by content for zip archives) and one for input domains (the ``--domain``
strings and the objects the readers return)."""

from __future__ import annotations

import os

from ..errors import InputError
from ..model import Domain, Network
from ..numbers import fraction_to_str, parse_exact
from .files import STDIN, base_extension, decode_text, is_zip, read_bytes
from .json import load_json_file, loads_exact, network_from_json
from .npz import load_npz
from .vnnlib import load_vnnlib

__all__ = ["DOMAIN_FORMS", "as_domain", "load_network", "parse_domain"]

# PyTorch state dicts (torch.save, read with weights_only=True) and safetensors.
_TORCH_EXTENSIONS = (".pt", ".pth", ".safetensors")

# What --domain (and verify's domain= string) accepts; quoted in every error.
DOMAIN_FORMS = "reals, orthant, box:L1:U1,L2:U2,..., box:FILE, vnnlib:FILE"


def load_network(path: str | os.PathLike) -> Network:
    """Load a network from a ``.json`` or ``.npz`` file, exactly.

    ``.onnx`` files go to :mod:`exact_inj.io.onnx` and ``.pt``, ``.pth``
    and ``.safetensors`` to :mod:`exact_inj.io.torch` (docs/model-files.md).
    Any of these may be gzipped and named ``.gz`` (``net.onnx.gz``); ``-``
    reads JSON or NPZ from standard input.  Any other extension is read as
    JSON unless the content is a zip archive (then NPZ).  Every problem is
    an :class:`InputError`.

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
    ext = base_extension(p) if p != STDIN else ""
    # Model files of other frameworks, by extension only (docs/model-files.md).
    # The torch importer needs optional packages, so it is imported here, late;
    # onnx is a dependency, but its reader is still loaded only when needed.
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
    obj = loads_exact(decode_text(data, p), p)
    if isinstance(obj, dict) and "verdict" in obj and "network" in obj and "layers" not in obj:
        raise InputError(p, "this is a certificate, not a network: re-check it with exact-inj check")
    return network_from_json(obj, p)


def parse_domain(spec: str, n: int, *, allow_empty: bool = False) -> Domain:
    """A ``--domain`` string as a Domain, checked against the input dimension.

    An empty box (some lower bound above its upper bound) is almost always a
    typo (``box:1:0``), and on it every layer is trivially injective; it is
    refused unless ``allow_empty`` says it is meant.

    >>> parse_domain("box:0:1,-1/2:0.5", 2).describe()
    'the box [0, 1] x [-1/2, 1/2]'
    >>> parse_domain("box:1:0", 1)
    Traceback (most recent call last):
    ...
    exact_inj.errors.InputError: --domain: the box is empty: lower[0] = 1 > upper[0] = 0 (swapped bounds?); pass --allow-empty-domain if an empty domain is meant
    """
    if not isinstance(spec, str):
        raise InputError("--domain", f"expected a string, got {type(spec).__name__}")
    if spec in ("reals", "R^n"):
        return Domain.reals()
    if spec == "orthant":
        return Domain.orthant()
    if spec.startswith("vnnlib:"):
        path = spec[len("vnnlib:"):]
        return as_domain(load_vnnlib(path), n, where=path, allow_empty=allow_empty)
    if not spec.startswith("box:"):
        raise InputError("--domain", f"unknown domain {spec[:60]!r} (expected one of: {DOMAIN_FORMS})")
    body = spec[4:]
    if os.path.exists(body) or body.endswith((".json", ".json.gz")):
        obj = load_json_file(body)
        if not isinstance(obj, dict) or not {"lower", "upper"} <= set(obj):
            raise InputError(body, 'a box file is {"lower": [...], "upper": [...]}')
        lo, hi = obj["lower"], obj["upper"]
        where = body
    else:
        pairs = [item.split(":") for item in body.split(",")]
        if any(len(p) != 2 for p in pairs):
            raise InputError("--domain", f"{spec[:60]!r}: each coordinate is L:U (expected one of: {DOMAIN_FORMS})")
        lo, hi = [p[0] for p in pairs], [p[1] for p in pairs]
        where = "--domain"
    if not isinstance(lo, list) or not isinstance(hi, list) or len(lo) != n or len(hi) != n:
        raise InputError(where, f"the box needs {n} lower and {n} upper bounds, one per input")
    try:
        lower = [parse_exact(v, f"lower[{k}]") for k, v in enumerate(lo)]
        upper = [parse_exact(v, f"upper[{k}]") for k, v in enumerate(hi)]
    except (ValueError, ZeroDivisionError) as e:
        raise InputError(where, str(e)) from None
    return _checked(Domain.box(lower, upper), n, where, allow_empty)


def as_domain(obj, n: int, *, where: str = "domain", allow_empty: bool = False) -> Domain:
    """A domain given any way the API accepts: None (R^n), a Domain, a
    ``--domain`` string, or a box a reader returned (:func:`load_vnnlib`).
    An empty box in a string is refused unless ``allow_empty``; a Domain
    object is taken as given.

    >>> as_domain("orthant", 3).kind, as_domain(None, 2).kind
    ('orthant', 'reals')
    """
    if obj is None:
        return Domain.reals()
    if isinstance(obj, str):
        return parse_domain(obj, n, allow_empty=allow_empty)
    if isinstance(obj, os.PathLike):
        raise InputError(os.fspath(obj), "a path as domain is ambiguous: pass 'vnnlib:PATH' or 'box:PATH'")
    if isinstance(obj, Domain):
        # Built in code, so taken as meant (an empty Domain.box is a question
        # one may ask); the strings, where typos happen, are checked.
        return _checked(obj, n, where, allow_empty=True)
    if getattr(obj, "is_union", None) is True:
        # A union of boxes is not convex; deciding box by box would be wrong
        # (a collision may straddle two boxes), so it is refused.
        bb = obj.bounding_box
        box = ",".join(f"{fraction_to_str(a)}:{fraction_to_str(b)}" for a, b in zip(bb.lower, bb.upper))
        raise InputError(where, f"the input region is a union of {len(obj.boxes)} boxes, which is not convex; "
                                "decide on their bounding box with --domain box:" + box[:200])
    if hasattr(obj, "lower") and hasattr(obj, "upper") and getattr(obj, "is_union", None) is False:
        if len(obj.lower) != n:
            raise InputError(where, f"the property declares {len(obj.lower)} inputs but the network has {n}")
        return _checked(Domain.box(obj.lower, obj.upper), n, where, allow_empty)
    raise InputError(where, f"cannot use a {type(obj).__name__} as a domain (expected a Domain, a VNN-LIB box "
                            f"or one of the strings {DOMAIN_FORMS})")


def _checked(domain: Domain, n: int, where: str, allow_empty: bool) -> Domain:
    if not domain.dim_ok(n):
        raise InputError(where, f"the domain has {len(domain.lower)} coordinates but the network {n} inputs")
    if domain.is_empty() and not allow_empty:
        k = next(k for k, (a, b) in enumerate(zip(domain.lower, domain.upper)) if a > b)
        raise InputError(where, f"the box is empty: lower[{k}] = {fraction_to_str(domain.lower[k])} > upper[{k}] = "
                                f"{fraction_to_str(domain.upper[k])} (swapped bounds?); pass --allow-empty-domain "
                                "if an empty domain is meant")
    return domain
