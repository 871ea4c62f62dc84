"""The Python API; the CLI is a thin layer over these three functions."""

from __future__ import annotations

import os
import sys
import time
from fractions import Fraction
from typing import Any, Callable, Sequence

from . import ipc
from .certify.check import CheckResult
from .certify.check import check as _check
from .certify.inverse import check_inverse
from .certify.schema import Certificate, Status, Witness
from .certify.tree import check_workers
from .errors import InputError
from .io import load_json_file, load_network
from .io.load import as_domain
from .io.spill import load_json_spilled
from .model import ConvLayer, Layer, Network
from .model.normalised import NormalisedNetwork
from .run import Activity, supervise
from .verdict import Verdict, certified

__all__ = ["as_network", "check", "check_inverse", "default_workers", "injectivize", "invert", "load_certificate",
           "verify"]


def verify(
    network: Any,
    time_limit: float = 300.0,
    *,
    max_nodes: int | None = None,
    milp: str = "highs",
    progress: Callable[[str], None] | None = None,
    domain: Any = None,
    allow_empty_domain: bool = False,
    clock_start: float | None = None,
    workers: int | None = None,
    scheduler: Any = None,
) -> Verdict:
    """Decide whether the network is injective on R^n (or on ``domain``),
    with exact evidence.

    ``network`` is a path (any format :func:`load_network` reads), a
    :class:`Network` or :class:`Layer`, a weight matrix (numpy array or
    nested lists: one bias-free ReLU layer), a ``(W, b)`` pair, or a list of
    layers; floats are taken at their exact binary value (:func:`as_network`).
    ``domain`` is None (R^n), a ``--domain`` string ("orthant",
    "box:0:1,-1/2:1/2", "vnnlib:prop.vnnlib", ...), a :class:`Domain`, or the
    box :func:`exact_inj.io.vnnlib.load_vnnlib` returns; an empty box is
    refused unless ``allow_empty_domain``.

    ``time_limit`` is honoured: the answer comes within it plus
    :data:`exact_inj.run.GRACE` seconds (docs/cli.md, "Time limits").
    ``milp`` picks the side witness search's solver: "highs" (default),
    "cbc" (PuLP's bundled CBC, an independent route) or "none".
    ``workers`` is how many processes run a layer's proof search: this one
    and ``workers - 1`` workers kept for later calls
    (:mod:`exact_inj.layer.psearch`).  The default (None) is
    :func:`default_workers`: every core this process may use, or 1 in a
    process that is itself a pool's worker.  ``scheduler`` (the address of a
    dask.distributed scheduler, or a ``distributed.Client``) runs it on a
    Dask cluster instead (:mod:`exact_inj.layer.cluster`; the ``[dask]``
    extra); a missing Dask or an unreachable address is an InputError.  The
    verdict does not depend on either; the certificate (the proof's shape,
    the witness found) may, and it is checked as always.
    ``progress`` receives a one-line status every two seconds on long runs.
    ``clock_start`` (a ``time.perf_counter()`` reading, default: now) is
    when the limit's clock started; the CLI passes its own start, so that
    reading the file counts against the limit.

    >>> from exact_inj.model import Layer, Network
    >>> fig2 = Network((Layer.from_rows([[2, 1], [-2, 2], ["-1.5", -2], [2, -1]]),))
    >>> v = verify(fig2)
    >>> v.status, check(v.certificate).valid
    (<Status.NOT_INJECTIVE: 'not_injective'>, True)
    >>> fig2.layers[0].apply(v.witness.x) == fig2.layers[0].apply(v.witness.y)
    True
    >>> one = [[1.0]]                                    # ReLU(x): not injective on R
    >>> verify(one).status == "not_injective", verify(one, domain="box:1:2").status == "injective"
    (True, True)
    >>> import numpy as np
    >>> verify(np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])).status
    <Status.INJECTIVE: 'injective'>
    >>> verify(([[1], [-1]], [1, -1])).status          # the paper's Lemma 1 counterexample
    <Status.INJECTIVE: 'injective'>
    """
    net = as_network(network)
    if not time_limit > 0:
        raise ValueError("time_limit must be positive")
    dom = as_domain(domain, net.input_dim, allow_empty=allow_empty_domain)
    # Late on purpose: `import exact_inj` (and with it the checker) must not
    # load a solver; the search routes are imported when a decision is asked.
    from .layer.decide import decide_layer
    from .layer.repair import finish_witness
    from .network.shorten import height, shorter_pair

    from .network.decide import decide_network
    from .network.normalised import decide_normalised

    decide = decide_layer if net.is_single_relu_layer else decide_network
    if isinstance(net, NormalisedNetwork):
        # Irrational batch normalisations (docs/theory.md, section 12): its own
        # routes; its witnesses are not shortened (that replays the network).
        decide = decide_normalised

    started = time.perf_counter() if clock_start is None else clock_start

    def run(activity: Activity) -> Verdict:
        t0 = time.perf_counter()
        left = time_limit - (t0 - started)
        if left <= 0:
            return Verdict(Status.UNKNOWN, t0 - started, "limit", f"the time limit of {time_limit:g} s was used up "
                           "before the decision started (reading the input)", None, {"tried": [],
                                                                                      "time_limit": time_limit})
        # The exact check of the answer uses the same processes as the search.
        with check_workers(k):
            v = decide(net, time_limit=left, max_nodes=max_nodes, milp=milp, progress=activity, domain=dom,
                       workers=k, scheduler=client)
        w = v.witness
        if w is None or isinstance(net, NormalisedNetwork):
            return v
        # Any collision answers the question; show a readable one.  The
        # smaller pair is evidence like any other: it goes through the
        # checker's door, and if anything about it fails the route's own
        # (already certified) witness stands.
        activity.enter("shortening the witness", time.perf_counter() - t0)
        activity.detail = ""
        pair = shorter_pair(net, dom, w.x, w.y, started + time_limit)
        if pair is None:
            return v
        # A dense layer's witness carries its midpoint's active rows; a
        # convolution's carries none (its rows are not built densely).
        dense_layer = net.is_single_relu_layer and isinstance(net.layers[0], Layer)
        small = finish_witness(net.layers[0], *pair, dom) if dense_layer else Witness(*pair)
        if small is None:
            return v
        info = {**v.info, "witness_shortened": {"digits_before": max(height(w.x), height(w.y)),
                                                "digits_after": max(height(small.x), height(small.y))}}
        for key in ("check", "check_seconds", "crosscheck_seconds", "certificate_size"):
            info.pop(key, None)
        shown = certified(net, dom, v.status, v.route,
                          v.reason + "; the pair shown is a smaller collision of the same network, checked the "
                          "same way (docs/cli.md, \"Witnesses\")", small, info, t0)
        return shown if shown.status is v.status else v

    k = default_workers() if workers is None else workers
    client = scheduler
    if isinstance(scheduler, str):
        from .layer.cluster import connect

        client = connect(scheduler, timeout=max(min(30.0, time_limit - (time.perf_counter() - started)), 1.0))
    try:
        return supervise(run, time_limit, progress, started)
    finally:
        if client is not scheduler:
            client.close()


def default_workers() -> int:
    """The default of :func:`verify`'s ``workers``: the cores this process
    may run on (``os.process_cpu_count()`` where Python has it, else the
    affinity mask, else ``os.cpu_count()``), but 1 in a process started by a
    multiprocessing pool or running a Dask task: such a process is already
    one of many, and more workers per process would only oversubscribe the
    cores.

    >>> default_workers() >= 1
    True
    """
    import multiprocessing

    if multiprocessing.parent_process() is not None:
        return 1
    if "distributed" in sys.modules:
        try:
            sys.modules["distributed"].get_worker()
            return 1
        except ValueError:  # not inside a Dask task
            pass
    return ipc.cores()


def as_network(obj: Any) -> Network:
    """A network from anything :func:`verify` accepts.

    A path (str or os.PathLike); a Network; a Layer; a list of Layers; a
    ``(W, b)`` tuple (one ReLU layer); a matrix as a numpy array or nested
    lists (one bias-free ReLU layer).  Numbers may be ints, Fractions, number
    strings (the decimal they spell) or binary floats (their exact binary
    value).  Anything else raises :class:`InputError` naming the problem.

    >>> as_network([[1, 0], [0, 1]]).layers[0].bias
    (Fraction(0, 1), Fraction(0, 1))
    >>> as_network(([[0.5]], [-1])).layers[0].weight
    ((Fraction(1, 2),),)
    >>> as_network([Layer.from_rows([[1]]), Layer.from_rows([[2]], activation="linear")]).output_dim
    1
    >>> as_network({"layers": []})
    Traceback (most recent call last):
    ...
    exact_inj.errors.InputError: network: a dict is not a network (pass a path, a Network, a Layer, a matrix, a (W, b) pair or a list of layers)
    """
    if isinstance(obj, (Network, NormalisedNetwork)):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        return load_network(obj)
    if isinstance(obj, Certificate):
        raise InputError("network", "this is a certificate: re-check it with exact_inj.check (exact-inj check)")
    try:
        if isinstance(obj, (Layer, ConvLayer)):
            return Network((obj,))
        if isinstance(obj, (list, tuple)) and obj and all(isinstance(L, (Layer, ConvLayer)) for L in obj):
            return Network(tuple(obj))
        if isinstance(obj, tuple) and len(obj) == 2 and _depth(obj[0]) == 2 and _depth(obj[1]) == 1:
            return Network((Layer(obj[0], obj[1]),))
        if _depth(obj) == 2:
            rows = obj.tolist() if hasattr(obj, "tolist") else obj
            return Network((Layer(rows, tuple(Fraction(0) for _ in rows)),))
    except (ValueError, TypeError) as e:
        raise InputError("network", str(e)) from None
    raise InputError("network", f"a {type(obj).__name__} is not a network (pass a path, a Network, a Layer, "
                                "a matrix, a (W, b) pair or a list of layers)")


def _depth(x: Any) -> int:
    """1 for a vector, 2 for a matrix (numpy or nested sequences), else 0."""
    nd = getattr(x, "ndim", None)
    if nd is not None:
        return int(nd) if nd in (1, 2) else 0
    if isinstance(x, (str, bytes)) or not isinstance(x, Sequence) or not x:
        return 0
    inner = [isinstance(r, Sequence) and not isinstance(r, (str, bytes)) for r in x]
    if all(inner):
        return 2
    return 1 if not any(inner) else 0


def invert(network: Any, y, *, domain: Any = None, time_limit: float = 60.0, max_pieces: int = 64):
    """The exact preimage {x in domain : N(x) = y}: ``empty``, ``point``,
    ``set`` or ``unknown``, every answer checked before it is returned
    (docs/inverse.md).  ``network`` and ``domain`` take what :func:`verify`
    takes; ``y`` holds exact numbers (ints, Fractions, strings).

    >>> from exact_inj.model import Layer, Network
    >>> net = Network((Layer.from_rows([[1], [-1]]),))       # ReLU(x), ReLU(-x): injective
    >>> r = invert(net, ["0", "3/2"])
    >>> r.preimage, r.points
    ('point', [(Fraction(-3, 2),)])
    >>> check_inverse(net, ["0", "3/2"], r.to_json())[0]
    True
    """
    from .network.inverse import invert as _invert  # late, like verify's routes

    net = as_network(network)
    return _invert(net, y, as_domain(domain, net.input_dim), time_limit=time_limit, max_pieces=max_pieces)


def injectivize(network: Any, mode: str = "append", *, width: int | None = None, seed: int = 0, tries: int = 5,
                time_limit: float = 60.0):
    """An injective network built from ``network`` (docs/injectivize.md), with
    a checked certificate.  ``mode="append"`` keeps its outputs first and
    carries the input through; ``mode="project"`` projects that to ``width``
    >= 2n + 1 outputs with seeded random matrices (seed, seed + 1, ... up to
    ``tries``), each decided by the engine, and returns None if none is
    certified within ``time_limit``.  ``network`` takes what :func:`verify` takes.

    >>> r = injectivize([[1, 1]])                    # ReLU(x1 + x2)
    >>> r.verdict.status.value, r.network.output_dim, check(r.certificate).valid
    ('injective', 5, True)
    """
    # Late, like verify's routes: `import exact_inj` loads no search.
    from .network.injectivize import injectivize as _injectivize
    from .network.project import project

    net = as_network(network)
    if mode == "project":
        if width is None:
            raise ValueError("mode 'project' needs a width (>= 2n + 1)")
        return project(net, width, seed=seed, tries=tries, time_limit=time_limit)
    return _injectivize(net, mode)


def load_certificate(path: str | os.PathLike) -> Certificate:
    """Read a certificate file; malformed files raise InputError."""
    p = os.fspath(path)
    return certificate_from_document(load_json_file(p), p)


def certificate_from_document(obj: Any, path: str | None = None) -> Certificate:
    """The certificate in a parsed JSON document (read with exact numbers,
    as :func:`~exact_inj.io.load_json_file` does); InputError naming ``path``
    when it is not one."""
    p = path
    if isinstance(obj, dict) and "layers" in obj and "verdict" not in obj and "network" not in obj:
        raise InputError(p, "this is a network, not a certificate: decide it with exact-inj verify "
                            "(exact_inj.verify), which can write a certificate")
    return Certificate.from_json(obj, p)


def check(certificate: Certificate | dict | str | os.PathLike, workers: int | None = None) -> CheckResult:
    """Re-check a certificate (object, parsed JSON, or file) in exact
    arithmetic, no solver.  Never raises for a bad certificate: anything that
    is not one is an invalid result with the reason; only a file that cannot
    be read raises :class:`InputError`.  A large case-split tree is checked
    in ``workers`` processes (default: :func:`default_workers`; the same
    checks either way).

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
    >>> check(None).reason
    'not a certificate: NoneType (give a Certificate, its JSON object, or a path)'
    """
    with check_workers(default_workers() if workers is None else workers):
        if isinstance(certificate, Certificate):
            return _check(certificate)
        if isinstance(certificate, dict):
            try:
                return _check(Certificate.from_json(certificate))
            except InputError as e:
                return CheckResult(False, str(e))
        if isinstance(certificate, (str, os.PathLike)):
            # Read as a stream: long packed lists stay on disk (docs/certificates.md).
            p = os.fspath(certificate)
            return _check(certificate_from_document(load_json_spilled(p), p))
    return CheckResult(False, f"not a certificate: {type(certificate).__name__} (give a Certificate, its JSON "
                              "object, or a path)")
