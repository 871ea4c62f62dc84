"""Bytes from files: the checks every reader shares (missing, directory,
unreadable, binary where text is expected)."""

from __future__ import annotations

import gzip
import os
import sys
import threading
import zlib

from ..errors import InputError

__all__ = ["ZIP_MAGIC", "EMPTY_ZIP_MAGIC", "GZIP_MAGIC", "STDIN", "is_zip", "read_bytes", "decode_text",
           "base_extension", "blocks_at", "read_at", "write_at"]

ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
GZIP_MAGIC = b"\x1f\x8b"

# The file name that means standard input (docs/cli.md).
STDIN = "-"


def base_extension(path: str | os.PathLike) -> str:
    """The extension that names the format, under any ``.gz``.

    >>> base_extension("net.onnx.gz"), base_extension("prop.VNNLIB"), base_extension("-")
    ('.onnx', '.vnnlib', '')
    """
    p = os.fspath(path).lower()
    if p.endswith(".gz"):
        p = p[:-3]
    return os.path.splitext(p)[1]


# Where os.pread / os.pwrite exist (POSIX) they name their offset; elsewhere a
# lock keeps a seek and its read or write together.
_AT_LOCK = threading.Lock()


def read_at(fh, size: int, pos: int) -> bytes:
    """Up to ``size`` bytes of the open binary file ``fh`` from ``pos``,
    without moving a position that another thread may be using."""
    if hasattr(os, "pread"):
        return os.pread(fh.fileno(), size, pos)
    with _AT_LOCK:  # pragma: no cover - not POSIX
        fh.seek(pos)
        return fh.read(size)


def blocks_at(fh, length: int, size: int):
    """The first ``length`` bytes of ``fh``, in blocks of at most ``size``,
    each read at its offset (:func:`read_at`); OSError if the file is shorter."""
    pos = 0
    while pos < length:
        block = read_at(fh, min(size, length - pos), pos)
        if not block:
            raise OSError(f"a temporary file holds {pos} bytes, {length} were written to it")
        pos += len(block)
        yield block


def write_at(fh, data, pos: int) -> int:
    """Write all of ``data`` to ``fh`` at ``pos``; the offset after it."""
    view = memoryview(data).cast("B")
    if not hasattr(os, "pwrite"):  # pragma: no cover - not POSIX
        with _AT_LOCK:
            fh.seek(pos)
            fh.write(view)
            fh.flush()
            return pos + len(view)
    while len(view):
        k = os.pwrite(fh.fileno(), view, pos)
        view, pos = view[k:], pos + k
    return pos


def is_zip(data: bytes) -> bool:
    return data.startswith(ZIP_MAGIC) or data.startswith(EMPTY_ZIP_MAGIC)


def read_bytes(path: str | os.PathLike) -> bytes:
    """The file's bytes, gunzipped when they are gzip data (VNN-COMP ships
    ``.onnx.gz`` and ``.vnnlib.gz``); ``-`` reads standard input.

    >>> import tempfile, gzip, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "x.json.gz")
    ...     _ = open(p, "wb").write(gzip.compress(b'{"a": 1}'))
    ...     read_bytes(p)
    b'{"a": 1}'
    """
    p = os.fspath(path)
    if p == STDIN:
        return _gunzip(sys.stdin.buffer.read(), "<stdin>")
    return _gunzip(_read_file(p), p)


def _gunzip(data: bytes, p: str) -> bytes:
    # By name only (and on stdin, which has none): a binary format such as
    # safetensors may begin with the two gzip bytes by chance.
    if not (p.lower().endswith(".gz") or p == "<stdin>"):
        return data
    if not data.startswith(GZIP_MAGIC):
        if p != "<stdin>" and data.strip():
            raise InputError(p, "named .gz but not gzip data (no gzip header)")
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise InputError(p, f"corrupt gzip data: {e}") from None


def _read_file(p: str) -> bytes:
    if not os.path.exists(p):
        raise InputError(p, "no such file")
    if os.path.isdir(p):
        raise InputError(p, "is a directory, not a file")
    try:
        with open(p, "rb") as fh:
            return fh.read()
    except OSError as e:
        raise InputError(p, f"cannot read: {e.strerror or e}") from None


def decode_text(data: bytes, path: str) -> str:
    if data.startswith(ZIP_MAGIC) or data.startswith(EMPTY_ZIP_MAGIC):
        raise InputError(path, "binary zip data (an NPZ archive?), not JSON text; name it .npz to load it as NPZ")
    if data.startswith(GZIP_MAGIC):
        raise InputError(path, "gzip-compressed data, not JSON text; name it .gz to have it decompressed")
    if b"\x00" in data:
        raise InputError(path, "binary data, not JSON text")
    try:
        # utf-8-sig: a byte-order mark from some editors is harmless.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(path, f"binary data or not UTF-8 (byte {e.start}), not JSON text") from None
