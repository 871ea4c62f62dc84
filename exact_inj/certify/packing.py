"""Long integer lists of a certificate, packed: a case-split tree of tens of
millions of codes as one base64 string instead of a JSON list
(docs/certificates.md, "Packed integer lists").

Encoding ``zigzag-varint-base64``: each integer v becomes z = 2v for v >= 0
and -2v - 1 for v < 0 (so small codes of either sign stay small), written
in 7-bit groups, least significant first, the high bit set on every byte but
an integer's last (LEB128); the bytes are base64 (RFC 4648, with padding).
A JSON list of 37 million codes costs minutes and gigabytes to parse; the
packed form decodes in about a second with numpy.  Readers accept both forms.

>>> packed = pack([0, 5, -1, -2, 300, 79])
>>> packed
{'encoding': 'zigzag-varint-base64', 'count': 6, 'data': 'AAoBA9gEngE='}
>>> unpack(packed, "cert.json", "proof tree")
array('i', [0, 5, -1, -2, 300, 79])
"""

from __future__ import annotations

import base64
import binascii
from array import array
from typing import Sequence

import numpy as np

from ..errors import InputError
from ..numbers import limits, over_limit, quote

__all__ = ["ENCODING", "MAX_BYTES", "decode", "encode", "header", "pack", "unpack"]

ENCODING = "zigzag-varint-base64"
"""The one packed encoding this version writes and reads."""

# At most 9 bytes (63 bits) per integer: every code of a proof is far smaller,
# and 63 bits keep the decoding inside unsigned 64-bit numpy arithmetic.
MAX_BYTES = 9


def pack(values) -> dict:
    """The packed JSON object for a sequence of integers in (-2^62, 2^62)."""
    v = np.asarray(values, dtype=np.int64)
    # Encoded a few million integers at a time: the temporaries (several
    # 8-byte arrays per byte written) stay small next to the result.
    raw = bytearray()
    for lo in range(0, len(v), _CHUNK):
        raw += encode(v[lo:lo + _CHUNK])
    return {"encoding": ENCODING, "count": int(len(v)), "data": base64.b64encode(bytes(raw)).decode("ascii")}


def encode(v: np.ndarray) -> bytes:
    """The varint bytes of int64 values (before base64)."""
    z = np.where(v >= 0, v << 1, (-v << 1) - 1).astype(np.uint64)
    # Bytes per integer: one per 7 bits, at least one.
    nbits = np.zeros(len(z), dtype=np.int64)
    rest = z.copy()
    while rest.any():
        nz = rest > 0
        nbits[nz] += 7
        rest >>= np.uint64(7)
    lengths = np.maximum(nbits // 7, 1)
    starts = np.cumsum(lengths) - lengths
    index = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(starts, lengths)
    groups = (np.repeat(z, lengths) >> (7 * index).astype(np.uint64)) & np.uint64(0x7F)
    more = index < np.repeat(lengths, lengths) - 1
    return (groups | (more.astype(np.uint64) << np.uint64(7))).astype(np.uint8).tobytes()


def header(obj: object, where: str | None, what: str) -> tuple[int, object]:
    """A packed object's count and data, after the checks of its keys, its
    encoding and its count (InputError naming ``what``)."""
    if not isinstance(obj, dict) or set(obj) != {"encoding", "count", "data"}:
        raise InputError(where, f"{what} must be a list of integers or a packed object with exactly the keys "
                                "\"encoding\", \"count\" and \"data\"")
    if obj["encoding"] != ENCODING:
        raise InputError(where, f"{what}: unknown encoding {quote(obj['encoding'])} (this version reads {ENCODING})")
    count, data = obj["count"], obj["data"]
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise InputError(where, f"{what}: \"count\" must be a non-negative integer")
    if count > limits().max_entries:
        raise InputError(where, over_limit("max_entries", f"{what} of {count} integers"))
    return count, data


def unpack(obj: object, where: str | None, what: str) -> Sequence[int]:
    """The integers of a packed object, as a compact ``array.array`` (4 or 8
    bytes an integer, where a tuple costs 8 more and an object per large
    integer); InputError naming ``what`` when it is not one, or when its count
    disagrees with its data."""
    count, data = header(obj, where, what)
    if not isinstance(data, str):
        raise InputError(where, f"{what}: \"data\" must be a base64 string")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(where, f"{what}: \"data\" is not valid base64") from None
    b = np.frombuffer(raw, dtype=np.uint8)
    found = int(np.count_nonzero(b < 0x80))
    unfinished = bool(len(b)) and b[-1] >= 0x80
    if found != count:
        raise InputError(where, f"{what}: \"count\" says {count} integers, the data holds {found}"
                                + (" and an unfinished one" if unfinished else ""))
    if unfinished:
        raise InputError(where, f"{what}: the data ends inside an integer")
    # Decoded a few million bytes at a time, so that the temporaries stay
    # small next to the result (32-bit while every value fits).
    out = np.empty(count, dtype=np.int32)
    lo = done = 0
    while lo < len(b):
        hi = min(len(b), lo + _CHUNK)
        if hi < len(b):
            hi = lo + int(np.flatnonzero(b[lo:hi] < 0x80)[-1]) + 1 if np.any(b[lo:hi] < 0x80) else len(b)
        values = decode(b[lo:hi], where, what)
        if out.dtype == np.int32 and len(values) and (values.min() < -(1 << 31) or values.max() >= (1 << 31)):
            out = out.astype(np.int64)
        out[done:done + len(values)] = values
        done += len(values)
        lo = hi
    return array("i" if out.dtype == np.int32 else "q", out.tobytes())


_CHUNK = 1 << 22


def decode(b: np.ndarray, where: str | None = None, what: str = "codes") -> np.ndarray:
    """The integers (int64) of whole varints ``b`` (its last byte ends one)."""
    ends = np.flatnonzero(b < 0x80)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if int(lengths.max()) > MAX_BYTES:
        raise InputError(where, f"{what}: an integer longer than {MAX_BYTES} bytes (63 bits)")
    index = np.arange(len(b), dtype=np.int64) - np.repeat(starts, lengths)
    parts = (b & np.uint8(0x7F)).astype(np.uint64) << (7 * index).astype(np.uint64)
    z = np.add.reduceat(parts, starts)
    return np.where(z & np.uint64(1), -((z >> np.uint64(1)).astype(np.int64)) - 1,
                    (z >> np.uint64(1)).astype(np.int64))
