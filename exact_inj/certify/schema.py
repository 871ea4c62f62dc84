"""Certificates: the evidence behind a verdict, and their JSON form.

A certificate is self-contained: it embeds the network it speaks about and the
domain, so `exact-inj check` needs nothing else.  The schema is documented in
docs/certificates.md; this module is its one implementation.  The evidence
objects themselves are in certify/proofs.py and are importable from here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction  # noqa: F401  (the doctests use it)

from ..errors import InputError
from ..io.json import network_from_json, network_to_json
from ..model import Domain, Network
from ..model.normalised import ChannelNorm, NormalisedNetwork
from ..numbers import fraction_to_str, limits, over_limit, parse_exact, quote
from ..io.spill import TextSource
from . import packing
from .codes import CodeFile, PackedCores, unpack_spilled
# The evidence objects live in certify/proofs.py; they are re-exported here so that a
# certificate and its parts have one address (and for exact_inj.certificate, legacy.py).
from .proofs import (  # noqa: F401
    Bound, COLLAPSE, CORE_BASE, CarryProof, ConvStructuralProof, Core, EmptyDomainProof, EndToEndProof, Evidence,
    Flat, Infeasible, LayerwiseProof, LinearRankProof, PACK_MIN, RANK_LEAF, REGION, SPLIT, StageProof, Status,
    StructuralProof, SurdStructuralProof, Tight, TreeProof, Witness,
)

FORMAT = "exact_inj/certificate"
VERSION = 2
"""The version this writes.  Version 2 (2026-12-05) accepts line leaves: a
core leaf whose core rows outside N each raise P to rank n (docs/theory.md,
section 4); version 1 needs every core row in N.  Both are read, each checked
by its own rules (docs/certificates.md, Versions)."""
READ_VERSIONS = (1, 2)


@dataclass(frozen=True)
class Certificate:
    """A verdict's evidence together with what it is about.

    >>> from exact_inj.model import Layer
    >>> net = Network((Layer.from_rows([[1], [-1]], [-1, -1]),))
    >>> c = Certificate(net, Domain(), Status.NOT_INJECTIVE,
    ...                 Witness((Fraction(0),), (Fraction(1, 2),)))
    >>> Certificate.from_json(c.to_json()) == c
    True
    """

    network: Network
    domain: Domain
    verdict: Status
    evidence: Evidence
    version: int = VERSION
    """The rules the certificate is checked by (READ_VERSIONS); kept when a
    file is read and written again."""

    def to_json(self, streamed: bool = False) -> dict:
        """The JSON object (docs/certificates.md).  With ``streamed``, long
        packed lists come as text sources for io.spill.dump_json to write a
        piece at a time (exact_inj.cli writes certificates so)."""
        out: dict = {
            "format": FORMAT,
            "version": self.version,
            "network": _any_network_to_json(self.network),
            "domain": self.domain.to_json(),
            "verdict": self.verdict.value,
        }
        ev = self.evidence
        if isinstance(ev, Witness):
            w: dict = {"x": [fraction_to_str(v) for v in ev.x], "y": [fraction_to_str(v) for v in ev.y]}
            if ev.active_rows is not None:
                w["active_rows"] = list(ev.active_rows)
            if ev.active_rank is not None:
                w["active_rank"] = ev.active_rank
            out["witness"] = w
        else:
            out["proof"] = proof_to_json(ev, streamed)
        return out


    @classmethod
    def from_json(cls, obj: object, path: str | None = None) -> "Certificate":
        """Parse a certificate; malformed input raises InputError (one line)."""
        where = path or "certificate"
        if not isinstance(obj, dict):
            raise InputError(where, "a certificate must be a JSON object")
        for key in ("network", "verdict"):
            if key not in obj:
                raise InputError(where, f"missing key {key!r}")
        # A file without a version is version 1, as every file was before version 2.
        version = obj.get("version", 1)
        # type() and not ==: true == 1 in Python, and a boolean is not a version.
        if obj.get("format", FORMAT) != FORMAT or type(version) is not int or version not in READ_VERSIONS:
            raise InputError(where, f"unsupported certificate format {quote(obj.get('format'))} "
                                    f"version {quote(obj.get('version'))}")
        network = _any_network_from_json(obj["network"], path)
        domain = _domain_from_json(obj.get("domain", {"kind": "reals"}), where)
        try:
            verdict = Status(obj["verdict"]) if isinstance(obj["verdict"], str) else None
        except ValueError:
            verdict = None
        if verdict is None:
            raise InputError(where, f"unknown verdict {quote(obj['verdict'])} (expected 'injective' or "
                                    "'not_injective')")
        if verdict is Status.UNKNOWN:
            raise InputError(where, "an 'unknown' verdict has no certificate to check")
        if verdict is Status.NOT_INJECTIVE:
            evidence: Evidence = _witness_from_json(obj.get("witness"), where)
        else:
            evidence = _proof_from_json(obj.get("proof"), where)
        return cls(network, domain, verdict, evidence, version)


def _any_network_to_json(net) -> dict:
    if isinstance(net, NormalisedNetwork):
        # A plain reader refuses the extra key: the base alone is not this network.
        return {**network_to_json(net.base), "normalisations": net.norms_to_json()}
    return network_to_json(net)


def _any_network_from_json(obj: object, path: str | None):
    if not (isinstance(obj, dict) and "normalisations" in obj):
        return network_from_json(obj, path, where="network")
    base = network_from_json({k: v for k, v in obj.items() if k != "normalisations"}, path, where="network")
    norms = obj["normalisations"]
    try:
        if not isinstance(norms, list):
            raise ValueError("must be a list with one entry (null or a normalisation) per layer")
        return NormalisedNetwork(base, tuple(None if n is None else ChannelNorm.from_json(n) for n in norms),
                                 base.name)
    except (ValueError, TypeError, ZeroDivisionError) as e:
        raise InputError(path or "certificate", f"network.normalisations: {e}") from None


def proof_kind(ev) -> str:
    """The kind name of a proof, as docs/certificates.md spells it (``"tree"``, ...)."""
    if isinstance(ev, TreeProof):
        return "tree"  # without packing millions of codes to read one word
    return proof_to_json(ev)["kind"]


def proof_to_json(ev, streamed: bool = False) -> dict:
    """The JSON form of a proof (docs/certificates.md).  With ``streamed``, a
    packed list's "data" may be a text source (io/spill.py) that the
    certificate writer reads a piece at a time, instead of a string."""
    if isinstance(ev, TreeProof):
        if len(ev.tree) >= PACK_MIN and all(c.multiplier is None and not c.domain_support for c in ev.cores):
            # Millions of codes: packed (certify/packing.py), as are the
            # cores' supports, each preceded by its length.  A tree or core
            # list already on disk (certify/codes.py) is written from there.
            cores = ev.cores if isinstance(ev.cores, PackedCores) else PackedCores.of(ev.cores)
            tree = ev.tree if isinstance(ev.tree, CodeFile) else CodeFile.of(ev.tree)
            return {"kind": "tree", "cores": _packed(cores.flat, streamed), "tree": _packed(tree, streamed)}
        cores = []
        for c in ev.cores:
            d: dict = {"support": list(c.support)}
            if c.domain_support:
                d["domain_support"] = list(c.domain_support)
            if c.multiplier is not None:
                d["multiplier"] = [fraction_to_str(v) for v in c.multiplier]
            cores.append(d)
        return {"kind": "tree", "cores": cores, "tree": list(ev.tree)}
    if isinstance(ev, StructuralProof):
        return {"kind": "structural", "pairs": [list(p) for p in ev.pairs]}
    if isinstance(ev, SurdStructuralProof):
        return {"kind": "surd_structural", "pairs": [list(p) for p in ev.pairs]}
    if isinstance(ev, ConvStructuralProof):
        # The modulus and roots are written as decimal strings: they exceed
        # 2^53, which some JSON readers would round.
        return {"kind": "conv_structural", "channel_pairs": [list(p) for p in ev.channel_pairs],
                "modulus": str(ev.modulus), "roots": [str(r) for r in ev.roots]}
    if isinstance(ev, EmptyDomainProof):
        return {"kind": "empty_domain"}
    if isinstance(ev, LinearRankProof):
        return {"kind": "linear_rank"}
    if isinstance(ev, LayerwiseProof):
        return {"kind": "layerwise", "stages": [
            {"layers": [st.start, st.stop], "domain": st.domain.to_json(), "proof": proof_to_json(st.proof, streamed)}
            for st in ev.stages]}
    if isinstance(ev, EndToEndProof):
        return {"kind": "end_to_end", "tree": list(ev.tree), "leaves": [_combination_to_json(c) for c in ev.leaves],
                "bounds": [[[None if b is None else _combination_to_json(b) for b in lu] for lu in piece]
                           for piece in ev.bounds],
                "pairs": [_combination_to_json(c) for c in ev.pairs]}
    if isinstance(ev, CarryProof):
        return {"kind": "carry", "units": [[list(p) for p in layer] for layer in ev.units]}
    raise TypeError(f"unknown evidence {type(ev).__name__}")  # pragma: no cover - closed union


def _packed(codes: CodeFile, streamed: bool) -> dict:
    text = codes.base64()
    data = text if streamed else b"".join(text.chunks()).decode("ascii")
    return {"encoding": packing.ENCODING, "count": len(codes), "data": data}


def _combination_to_json(c) -> dict:
    d: dict = {"support": list(c.support), "lam": [fraction_to_str(v) for v in c.lam]}
    if isinstance(c, Tight):
        d["tight"] = True
    if getattr(c, "eq", None):
        d["eq"] = [fraction_to_str(v) for v in c.eq]
    if isinstance(c, Flat):
        d["solve"] = [[fraction_to_str(v) for v in row] for row in c.solve]
    return d


def _combination_from_json(c: object, where: str, what: str):
    if not isinstance(c, dict) or "support" not in c or "lam" not in c:
        raise InputError(where, f"{what} needs \"support\" and \"lam\"")
    support = _int_list(c["support"], where, f"{what} support")

    def nums(v, name):
        try:
            return tuple(parse_exact(x, f"{what} {name}[{k}]") for k, x in enumerate(_as_list(v, where, f"{what} {name}")))
        except (ValueError, ZeroDivisionError) as e:
            raise InputError(where, str(e)) from None

    lam = nums(c["lam"], "lam")
    if "tight" in c and ("solve" in c or "eq" in c or c["tight"] is not True):
        raise InputError(where, f"{what}: \"tight\" must be true and comes without \"eq\" or \"solve\"")
    if c.get("tight") is True:
        return Tight(support, lam)
    if what.startswith("bound"):
        return Bound(support, lam)
    eq = nums(c.get("eq", []), "eq")
    if "solve" in c:
        solve = tuple(nums(row, "solve") for row in _as_list(c["solve"], where, f"{what} solve"))
        return Flat(support, lam, eq, solve)
    return Infeasible(support, lam, eq)


def _unpack(obj: dict, where: str, what: str):
    """A packed list: in memory, or kept on disk (a CodeFile) when the reader
    left its "data" in a temporary file (io/spill.py)."""
    if isinstance(obj.get("data"), TextSource):
        count, data = packing.header(obj, where, what)
        return unpack_spilled(data, count, where, what)
    return packing.unpack(obj, where, what)


def _packed_cores(obj: object, where: str) -> tuple[Core, ...] | PackedCores:
    """Cores written as one packed list: each support's length, then its rows."""
    flat = _unpack(obj, where, "proof cores")
    if isinstance(flat, CodeFile):
        return PackedCores.read(flat, where)
    cores, i = [], 0
    while i < len(flat):
        k = flat[i]
        if k < 0 or i + 1 + k > len(flat):
            raise InputError(where, f"proof cores: core {len(cores)} claims {k} rows, more than the packed list holds")
        cores.append(Core(tuple(flat[i + 1:i + 1 + k])))
        i += 1 + k
    return tuple(cores)


def _int_list(v: object, where: str, what: str) -> tuple[int, ...]:
    if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        raise InputError(where, f"{what} must be a list of integers")
    return tuple(v)


def _index_pairs(v: object, where: str, key: str, item: str, noun: str) -> tuple[tuple[int, int], ...]:
    """A JSON list of [i, j] index pairs (structural rows, conv channels)."""
    pairs = []
    for k, pr in enumerate(_as_list(v, where, f"proof {key}")):
        t = _int_list(pr, where, f"{item} {k}")
        if len(t) != 2:
            raise InputError(where, f"{item} {k} must have two {noun} indices")
        pairs.append((t[0], t[1]))
    return tuple(pairs)


def _decimal_int(v: object, where: str, what: str) -> int:
    # Big integers travel as decimal strings (a JSON integer literal is
    # accepted too); anything else, such as "1e5" or "0x10", is refused.
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, str) and v.isascii() and v.isdigit() and len(v) <= 40:
        return int(v)
    raise InputError(where, f"{what} must be a non-negative integer written in decimal")


def _domain_from_json(obj: object, where: str) -> Domain:
    # The kind is checked here first: Domain.from_json quotes a bad domain
    # with str(), which fails on a huge number inside it.
    if not isinstance(obj, dict) or obj.get("kind") not in Domain.KINDS:
        shown = quote(obj.get("kind")) if isinstance(obj, dict) else quote(obj)
        raise InputError(where, f"unsupported domain {shown} (kinds: {', '.join(Domain.KINDS)})")
    return Domain.from_json(obj, where)


def _witness_from_json(w: object, where: str) -> Witness:
    if not isinstance(w, dict) or "x" not in w or "y" not in w:
        raise InputError(where, "a not_injective certificate needs \"witness\": {\"x\": [...], \"y\": [...]}")
    try:
        x = tuple(parse_exact(v, f"witness x[{k}]") for k, v in enumerate(_as_list(w["x"], where, "witness x")))
        y = tuple(parse_exact(v, f"witness y[{k}]") for k, v in enumerate(_as_list(w["y"], where, "witness y")))
    except (ValueError, ZeroDivisionError) as e:
        raise InputError(where, str(e)) from None
    rows = _int_list(w["active_rows"], where, "witness active_rows") if "active_rows" in w else None
    rk = w.get("active_rank")
    if rk is not None and (not isinstance(rk, int) or isinstance(rk, bool)):
        raise InputError(where, "witness active_rank must be an integer")
    return Witness(x, y, rows, rk)


def _as_list(v: object, where: str, what: str) -> list:
    if not isinstance(v, list):
        raise InputError(where, f"{what} must be a list")
    return v


def _proof_from_json(p: object, where: str) -> Evidence:
    if not isinstance(p, dict) or "kind" not in p:
        raise InputError(where, "an injective certificate needs \"proof\": {\"kind\": ...}")
    kind = p["kind"]
    if kind == "tree":
        tree = p.get("tree")
        tree = _unpack(tree, where, "proof tree") if isinstance(tree, dict) else _int_list(tree, where, "proof tree")
        if isinstance(p.get("cores"), dict):
            return TreeProof(_packed_cores(p["cores"], where), tree)
        cores = []
        for k, c in enumerate(_as_list(p.get("cores"), where, "proof cores")):
            if not isinstance(c, dict) or "support" not in c:
                raise InputError(where, f"core {k} needs a \"support\" list")
            support = _int_list(c["support"], where, f"core {k} support")
            mult = None
            if "multiplier" in c:
                try:
                    mult = tuple(
                        parse_exact(v, f"core {k} multiplier[{j}]")
                        for j, v in enumerate(_as_list(c["multiplier"], where, f"core {k} multiplier"))
                    )
                except (ValueError, ZeroDivisionError) as e:
                    raise InputError(where, str(e)) from None
            dsup = _int_list(c["domain_support"], where, f"core {k} domain_support") if "domain_support" in c else ()
            cores.append(Core(support, mult, dsup))
        return TreeProof(tuple(cores), tree)
    if kind == "structural":
        return StructuralProof(_index_pairs(p.get("pairs"), where, "pairs", "pair", "row"))
    if kind == "surd_structural":
        return SurdStructuralProof(_index_pairs(p.get("pairs"), where, "pairs", "pair", "row"))
    if kind == "conv_structural":
        pairs = _index_pairs(p.get("channel_pairs"), where, "channel_pairs", "channel pair", "channel")
        modulus = _decimal_int(p.get("modulus"), where, "proof modulus")
        roots = tuple(_decimal_int(r, where, f"root {k}")
                      for k, r in enumerate(_as_list(p.get("roots"), where, "proof roots")))
        return ConvStructuralProof(pairs, modulus, roots)
    if kind == "empty_domain":
        return EmptyDomainProof()
    if kind == "linear_rank":
        return LinearRankProof()
    if kind == "layerwise":
        stages = []
        for k, st in enumerate(_as_list(p.get("stages"), where, "proof stages")):
            if not isinstance(st, dict) or not {"layers", "domain", "proof"} <= set(st):
                raise InputError(where, f"stage {k} needs \"layers\", \"domain\" and \"proof\"")
            span = _int_list(st["layers"], where, f"stage {k} layers")
            if len(span) != 2:
                raise InputError(where, f"stage {k} layers must be [start, stop]")
            sub = _proof_from_json(st["proof"], where)
            if isinstance(sub, LayerwiseProof):
                raise InputError(where, f"stage {k}: layerwise proofs do not nest")
            stages.append(StageProof(span[0], span[1], _domain_from_json(st["domain"], where), sub))
        return LayerwiseProof(tuple(stages))
    if kind == "end_to_end":
        leaves = tuple(_combination_from_json(c, where, f"leaf {k}")
                       for k, c in enumerate(_as_list(p.get("leaves", []), where, "proof leaves")))
        if any(isinstance(c, Flat) for c in leaves):
            raise InputError(where, "a leaf certificate must not have \"solve\"")
        bounds = []
        for i, piece in enumerate(_as_list(p.get("bounds", []), where, "proof bounds")):
            row = []
            for k, lu in enumerate(_as_list(piece, where, f"bounds of piece {i}")):
                if not isinstance(lu, list) or len(lu) != 2:
                    raise InputError(where, f"bounds of piece {i}, output {k} must be [lower, upper]")
                row.append(tuple(None if b is None else _combination_from_json(b, where, f"bound {i}.{k}")
                                 for b in lu))
            bounds.append(tuple(row))
        pairs = tuple(_combination_from_json(c, where, f"pair {k}")
                      for k, c in enumerate(_as_list(p.get("pairs"), where, "proof pairs")))
        if any(isinstance(c, Tight) for c in pairs):
            raise InputError(where, "a pair certificate cannot be \"tight\"")
        tree = _int_list(p.get("tree"), where, "proof tree")
        if tree.count(REGION) > limits().max_pieces:
            # Its check visits every pair of pieces (docs/cli.md, Limits).
            raise InputError(where, over_limit("max_pieces", f"an end-to-end proof of {tree.count(REGION)} pieces"))
        return EndToEndProof(tree, leaves, tuple(bounds), pairs)
    if kind == "carry":
        return CarryProof(tuple(_index_pairs(layer, where, f"units[{k}]", f"layer {k} carry pair", "unit")
                                for k, layer in enumerate(_as_list(p.get("units"), where, "proof units"))))
    raise InputError(where, f"unknown proof kind {quote(kind)} (expected tree, structural, surd_structural, conv_structural, empty_domain, linear_rank, layerwise, end_to_end or carry)")
