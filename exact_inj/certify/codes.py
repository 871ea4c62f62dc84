"""Long integer lists kept on disk: the codes of a case-split tree of tens of
millions of nodes, and the packed list of its cores, held as the zigzag
varints of certify/packing.py in an unlinked temporary file.

A tree at n = 12 has about 15 M codes: 120 MB as int64 in memory, 20 MB as
varints.  A :class:`CodeFile` holds them on disk and gives them back a chunk
at a time, so that the search can write a proof, a certificate can be
written and read, and the checker can replay the tree with memory bounded by
a chunk, not by the tree (docs/certificates.md, "Checked as a stream").
The bytes in the file are exactly the packed encoding's bytes before base64:
writing the certificate is a base64 pass over the file, and reading one a
base64 pass into it.

Nothing here trusts what it reads: :func:`unpack_spilled` checks base64,
the count and every varint as packing.unpack does, with the same messages.

>>> f = CodeFile.of([0, 5, -1, -2, 300, 79])
>>> len(f), f.tolist()
(6, [0, 5, -1, -2, 300, 79])
>>> [c.tolist() for c in f.chunks(4)]
[[0, 5, -1, -2], [300, 79]]
>>> f == [0, 5, -1, -2, 300, 79]
True
"""

from __future__ import annotations

import base64
import binascii
import re
import tempfile
from typing import Iterator

import numpy as np

from ..errors import InputError
from ..io.files import blocks_at, write_at
from ..io.spill import TextSource
from .packing import MAX_BYTES, decode, encode
from .proofs import Core

__all__ = ["CHUNK", "CodeFile", "FlatCores", "PackedCores", "flat_supports", "split_flat", "unpack_spilled"]

CHUNK = 1 << 16
"""Codes handed out at a time by :meth:`CodeFile.chunks` (0.5 MB as int64)."""

# Bytes read from the file at a time.  Decoding a varint byte takes several
# 8-byte temporaries (packing.decode): a block of 2^16 bytes costs a few MB
# while it is decoded; 2^20 cost about 100 MB (measured on the cores of an
# n = 12 certificate), 2^18 about 25 MB.
_BLOCK = 1 << 16


class CodeFile:
    """Integers as zigzag varints in an unlinked temporary file: appended in
    chunks, read back in chunks (int64 arrays).  Not a Sequence: there is no
    random access, only passes from the start."""

    __hash__ = None  # equality is by content

    def __init__(self) -> None:
        self._fh = tempfile.TemporaryFile()
        self._count = 0
        self._nbytes = 0

    @classmethod
    def of(cls, values) -> "CodeFile":
        """A file holding ``values`` (any sequence of integers in (-2^62, 2^62))."""
        f = cls()
        f.append(np.asarray(values, dtype=np.int64))
        return f

    def append(self, values: np.ndarray) -> None:
        """Add integers (an int64 array) at the end."""
        v = np.asarray(values, dtype=np.int64)
        # Encoded CHUNK at a time: encoding takes several 8-byte temporaries
        # per byte written, hundreds of MB for a subtree of millions of codes.
        for lo in range(0, len(v), CHUNK):
            self._append_raw(encode(v[lo:lo + CHUNK]), len(v[lo:lo + CHUNK]))

    def _append_raw(self, raw: bytes, count: int) -> None:
        # Varint bytes that hold ``count`` whole integers.  Reads and writes
        # name their offset (io.files.read_at, write_at): threads sharing
        # this file (two checks of one certificate) never move each other's
        # position.
        self._nbytes = write_at(self._fh, raw, self._nbytes)
        self._count += count

    def __reduce__(self):
        # Pickled (or deep-copied) by value: the bytes, read whole.
        return _from_raw, (b"".join(self.raw_blocks()), self._count)

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        """Bytes of the varint encoding (the certificate's data before base64)."""
        return self._nbytes

    def raw_blocks(self, size: int = _BLOCK) -> Iterator[bytes]:
        """The varint bytes, from the start, in blocks of at most ``size``."""
        return blocks_at(self._fh, self._nbytes, size)

    def chunks(self, size: int = CHUNK) -> Iterator[np.ndarray]:
        """The integers, from the start, as int64 arrays of ``size`` (the last
        one shorter)."""
        carry = b""
        out: list[np.ndarray] = []
        held = 0
        for block in self.raw_blocks(min(max(size, 1 << 12), _BLOCK)):
            b = np.frombuffer(carry + block, dtype=np.uint8)
            ends = np.flatnonzero(b < 0x80)
            cut = int(ends[-1]) + 1 if len(ends) else 0
            carry = b[cut:].tobytes()
            if cut:
                vals = decode(b[:cut])
                out.append(vals)
                held += len(vals)
            while held >= size:
                allv = np.concatenate(out) if len(out) > 1 else out[0]
                yield allv[:size]
                rest = allv[size:]
                out, held = ([rest] if len(rest) else []), len(rest)
        if out:
            yield np.concatenate(out) if len(out) > 1 else out[0]

    def __iter__(self) -> Iterator[int]:
        for c in self.chunks():
            yield from c.tolist()

    def tolist(self) -> list[int]:
        return [x for c in self.chunks() for x in c.tolist()]

    def __eq__(self, other) -> bool:
        if isinstance(other, CodeFile):
            if len(other) != len(self) or other.nbytes != self.nbytes:
                return False
            return all(a == b for a, b in zip(self.raw_blocks(1 << 20), other.raw_blocks(1 << 20)))
        try:
            if len(other) != len(self):
                return False
        except TypeError:
            return NotImplemented
        pos = 0
        for c in self.chunks():
            if c.tolist() != list(other[pos:pos + len(c)]):
                return False
            pos += len(c)
        return True

    def __repr__(self) -> str:
        return f"CodeFile({self._count} codes, {self._nbytes} bytes)"

    def base64(self) -> "Base64Text":
        """The packed "data" string, as a text source written in pieces."""
        return Base64Text(self)

    def close(self) -> None:
        self._fh.close()


def _from_raw(raw: bytes, count: int) -> CodeFile:
    f = CodeFile()
    f._append_raw(raw, count)
    return f


class Base64Text(TextSource):
    """The base64 text of a CodeFile's bytes, produced a block at a time
    (blocks of a multiple of 3 bytes encode with no padding inside)."""

    def __init__(self, codes: CodeFile) -> None:
        self.codes = codes

    def __len__(self) -> int:
        return 4 * ((self.codes.nbytes + 2) // 3)

    def chunks(self) -> Iterator[bytes]:
        carry = b""
        for block in self.codes.raw_blocks(3 * (1 << 20)):
            data = carry + block
            cut = len(data) - len(data) % 3
            carry = data[cut:]
            if cut:
                yield base64.b64encode(data[:cut])
        if carry:
            yield base64.b64encode(carry)


class PackedCores:
    """Cores written as one packed list (each support's length, then its
    rows), read from a CodeFile one chunk at a time.  Built only by
    :meth:`read`, which checks the list's structure as packing's in-memory
    reader does."""

    __hash__ = None

    def __init__(self, flat: CodeFile, count: int, rows: int) -> None:
        self.flat, self._count, self.rows = flat, count, rows

    @classmethod
    def read(cls, flat: CodeFile, where: str | None) -> "PackedCores":
        count = rows = 0
        for support in _supports(flat, where):
            count += 1
            rows += len(support)
        return cls(flat, count, rows)

    @classmethod
    def of(cls, cores) -> "PackedCores":
        """Cores (without multipliers or domain rows) packed into a file."""
        flat = CodeFile()
        buf: list[int] = []
        count = rows = 0
        for c in cores:
            buf.append(len(c.support))
            buf.extend(c.support)
            count += 1
            rows += len(c.support)
            if len(buf) >= CHUNK:
                flat.append(np.asarray(buf, dtype=np.int64))
                buf = []
        if buf:
            flat.append(np.asarray(buf, dtype=np.int64))
        return cls(flat, count, rows)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Core]:
        for support in _supports(self.flat, None):
            yield Core(support)

    def __eq__(self, other) -> bool:
        if isinstance(other, PackedCores):
            return len(self) == len(other) and self.flat == other.flat
        try:
            return len(other) == len(self) and all(a == b for a, b in zip(self, other))
        except TypeError:
            return NotImplemented

    def __repr__(self) -> str:
        return f"PackedCores({self._count} cores)"


class FlatCores:
    """Plain cores (supports only) as one flat int64 array in memory: each
    support's length, then its rows.  8 bytes a row where a Core object and
    its tuple cost about 300 bytes a core; a search process sends its
    subtree's cores so (layer/psearch.py)."""

    __hash__ = None

    def __init__(self, flat: np.ndarray, count: int) -> None:
        self.flat, self._count = flat, count
        self.rows = len(flat) - count

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Core]:
        lengths, rows = split_flat(self.flat)
        for k, end in zip(lengths.tolist(), np.cumsum(lengths).tolist()):
            yield Core(tuple(rows[end - k:end].tolist()))

    def __eq__(self, other) -> bool:
        try:
            return len(other) == len(self) and all(a == b for a, b in zip(self, other))
        except TypeError:
            return NotImplemented


def split_flat(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lengths, rows) of a flat core list in memory (each support's length,
    then its rows), which its maker guarantees to be well formed."""
    at, starts, end = 0, [], len(flat)
    while at < end:
        starts.append(at)
        at += 1 + int(flat[at])
    heads = np.asarray(starts, dtype=np.int64)
    rest = np.ones(len(flat), dtype=bool)
    rest[heads] = False
    return flat[heads], flat[rest]


def flat_supports(bits: np.ndarray) -> np.ndarray:
    """The flat list (each support's length, then its rows in increasing
    order) of cores given as rows of a bit matrix (uint8, row r of a core is
    bit r % 8 of byte r // 8)."""
    out = []
    for lo in range(0, len(bits), 1 << 16):
        block = np.unpackbits(bits[lo:lo + (1 << 16)], axis=1, bitorder="little")
        core, row = np.nonzero(block)
        lengths = np.bincount(core, minlength=len(block))
        part = np.empty(len(block) + len(row), dtype=np.int64)
        heads = np.cumsum(lengths + 1) - lengths - 1
        part[heads] = lengths
        rest = np.ones(len(part), dtype=bool)
        rest[heads] = False
        part[rest] = row
        out.append(part)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _supports(flat: CodeFile, where: str | None) -> Iterator[tuple[int, ...]]:
    """The supports of a packed core list, with packing's checks: a length
    that is negative, or runs past the list's end, is refused."""
    pending: list[int] = []
    need = -1  # rows still to read for the current core; -1: a length comes next
    k = 0
    total = len(flat)
    seen = 0
    for chunk in flat.chunks():
        vals = chunk.tolist()
        i, L = 0, len(vals)
        while i < L:
            if need < 0:
                need = vals[i]
                if need < 0 or seen + i + 1 + need > total:
                    raise InputError(where, f"proof cores: core {k} claims {need} rows, more than the packed list holds")
                i += 1
                pending = []
            take = min(need, L - i)
            pending.extend(vals[i:i + take])
            i += take
            need -= take
            if need == 0:
                yield tuple(pending)
                k += 1
                need = -1
        seen += L


# The alphabet and '=' (where '=' may stand is b64decode's to judge).
_B64 = re.compile(rb"[A-Za-z0-9+/=]*")


def unpack_spilled(data, count: int, where: str | None, what: str) -> CodeFile:
    """The integers of a packed object whose "data" was kept on disk (an
    io.spill text source), decoded a block at a time into a CodeFile: the
    same checks and messages as packing.unpack (base64, the count, an
    unfinished or over-long integer), and in the same order.  ``count`` is
    the one packing.header checked."""
    out = CodeFile()
    carry = b""
    padded = False  # an '=' was seen: the rest is decided by b64decode at the end
    found = 0
    run = 0  # continuation bytes (>= 0x80) at the end of what was decoded
    too_long = False
    last = None
    # Pieces of at most _BLOCK characters, whatever the source hands out: the
    # checks below take several 8-byte temporaries per byte.
    pieces = (piece[k:k + _BLOCK] for piece in data.chunks() for k in range(0, len(piece), _BLOCK))
    nxt = next(pieces, None)
    while nxt is not None:
        piece, nxt = nxt, next(pieces, None)
        text = carry + piece
        if not _B64.fullmatch(text):
            raise InputError(where, f"{what}: \"data\" is not valid base64")
        if nxt is None:
            cut = len(text)  # the end: b64decode judges the padding, as in memory
        elif padded or b"=" in text:
            # What padding means depends on the quad before it ("AAAA==="
            # decodes, "AA==AA" and "====" do not), and on everything after
            # it: from the quad before the first '=' on, the text is kept for
            # the final decode (in valid data, a few characters).
            if not padded:
                eq = text.index(b"=")
                cut, padded = max(0, (eq - 1) // 4 * 4), True
            else:
                cut = 0
        else:
            # The last quad is kept for the final decode too.
            cut = max(0, (len(text) - 1) // 4 * 4)
        carry = text[cut:]
        if not cut:
            continue
        try:
            raw = base64.b64decode(text[:cut], validate=True)
        except (binascii.Error, ValueError):
            raise InputError(where, f"{what}: \"data\" is not valid base64") from None
        if not raw:
            continue
        b = np.frombuffer(raw, dtype=np.uint8)
        ends = np.flatnonzero(b < 0x80)
        found += len(ends)
        # Longest run of continuation bytes, carried across blocks: an integer
        # of more than MAX_BYTES bytes is refused as packing.unpack refuses it.
        if len(ends):
            first = int(ends[0])
            if run + first + 1 > MAX_BYTES:
                too_long = True
            gaps = np.diff(ends)
            if len(gaps) and int(gaps.max()) > MAX_BYTES:
                too_long = True
            run = len(b) - 1 - int(ends[-1])
        else:
            run += len(b)
        if run >= MAX_BYTES:
            too_long = True
        out._append_raw(raw, len(ends))
        last = raw[-1]
    unfinished = last is not None and last >= 0x80
    if found != count:
        raise InputError(where, f"{what}: \"count\" says {count} integers, the data holds {found}"
                                + (" and an unfinished one" if unfinished else ""))
    if unfinished:
        raise InputError(where, f"{what}: the data ends inside an integer")
    if too_long:
        raise InputError(where, f"{what}: an integer longer than {MAX_BYTES} bytes (63 bits)")
    return out
