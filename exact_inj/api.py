"""The Python API; the CLI is a thin layer over these three functions."""

from __future__ import annotations

import os
from typing import Callable

from .certify.check import CheckResult
from .certify.check import check as _check
from .certify.inverse import check_inverse
from .certify.schema import Certificate
from .errors import InputError
from .io import load_json_file, load_network
from .model import Domain, Network
from .verdict import Verdict

__all__ = ["check", "check_inverse", "invert", "load_certificate", "verify"]


def verify(
    network_or_path: Network | str | os.PathLike,
    time_limit: float = 300.0,
    *,
    max_nodes: int | None = None,
    milp: str = "highs",
    progress: Callable[[str], None] | None = None,
    domain: Domain | None = None,
) -> Verdict:
    """Decide whether the network is injective on R^n (or on ``domain``:
    the nonnegative orthant or a box), with exact evidence.

    ``milp`` picks the side witness search's solver: "highs" (default),
    "cbc" (PuLP's bundled CBC, an independent route) or "none".
    ``progress`` receives one-line status messages on long runs.

    >>> from exact_inj.model import Layer, Network
    >>> fig2 = Network((Layer.from_rows([[2, 1], [-2, 2], ["-1.5", -2], [2, -1]]),))
    >>> v = verify(fig2)
    >>> v.status.value, check(v.certificate).valid
    ('not_injective', True)
    >>> fig2.layers[0].apply(v.witness.x) == fig2.layers[0].apply(v.witness.y)
    True
    >>> from exact_inj.model import Domain
    >>> one = Network((Layer.from_rows([[1]]),))          # ReLU(x): not injective on R
    >>> verify(one, domain=Domain.box([1], [2])).status.value
    'injective'
    """
    net = network_or_path if isinstance(network_or_path, Network) else load_network(network_or_path)
    if time_limit <= 0:
        raise ValueError("time_limit must be positive")
    # Late on purpose: `import exact_inj` (and with it the checker) must not
    # load a solver; the search routes are imported when a decision is asked.
    from .layer.decide import decide_layer
    from .network.decide import decide_network

    domain = domain or Domain()
    if not domain.dim_ok(net.input_dim):
        raise InputError(None, f"the domain has {len(domain.lower)} coordinates but the network {net.input_dim} inputs")
    if net.is_single_relu_layer:
        return decide_layer(net, time_limit=time_limit, max_nodes=max_nodes, milp=milp, progress=progress,
                            domain=domain)
    return decide_network(net, time_limit=time_limit, max_nodes=max_nodes, milp=milp, progress=progress,
                          domain=domain)


def invert(network_or_path: Network | str | os.PathLike, y, *, domain: Domain | None = None,
           time_limit: float = 60.0, max_pieces: int = 64):
    """The exact preimage {x in domain : N(x) = y}: ``empty``, ``point``,
    ``set`` or ``unknown``, every answer checked before it is returned
    (docs/inverse.md).  ``y`` holds exact numbers (ints, Fractions, strings).

    >>> from exact_inj.model import Layer, Network
    >>> net = Network((Layer.from_rows([[1], [-1]]),))       # ReLU(x), ReLU(-x): injective
    >>> r = invert(net, ["0", "3/2"])
    >>> r.preimage, r.points
    ('point', [(Fraction(-3, 2),)])
    >>> check_inverse(net, ["0", "3/2"], r.to_json())[0]
    True
    """
    from .network.inverse import invert as _invert  # late, like verify's routes

    net = network_or_path if isinstance(network_or_path, Network) else load_network(network_or_path)
    return _invert(net, y, domain, time_limit=time_limit, max_pieces=max_pieces)


def load_certificate(path: str | os.PathLike) -> Certificate:
    """Read a certificate file; malformed files raise InputError."""
    return Certificate.from_json(load_json_file(path), os.fspath(path))


def check(certificate: Certificate | str | os.PathLike) -> CheckResult:
    """Re-check a certificate (object or file) in exact arithmetic, no solver.

    >>> from fractions import Fraction
    >>> from exact_inj.model import Layer, Network
    >>> from exact_inj.certify.schema import Certificate, Witness
    >>> from exact_inj.model import Domain
    >>> from exact_inj.certify.schema import Status
    >>> net = Network((Layer.from_rows([[1], [-1]], [-1, -1]),))
    >>> cert = Certificate(net, Domain(), Status.NOT_INJECTIVE,
    ...                    Witness((Fraction(-1),), (Fraction(1),)))
    >>> check(cert).valid
    True
    """
    cert = certificate if isinstance(certificate, Certificate) else load_certificate(certificate)
    return _check(cert)
