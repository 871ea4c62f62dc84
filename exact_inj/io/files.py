"""Bytes from files: the checks every reader shares (missing, directory,
unreadable, binary where text is expected)."""

from __future__ import annotations

import os

from ..errors import InputError

__all__ = ["ZIP_MAGIC", "EMPTY_ZIP_MAGIC", "is_zip", "read_bytes", "decode_text"]

ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"


def is_zip(data: bytes) -> bool:
    return data.startswith(ZIP_MAGIC) or data.startswith(EMPTY_ZIP_MAGIC)


def read_bytes(path: str | os.PathLike) -> bytes:
    p = os.fspath(path)
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
    if b"\x00" in data:
        raise InputError(path, "binary data, not JSON text")
    try:
        # utf-8-sig: a byte-order mark from some editors is harmless.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(path, f"binary data or not UTF-8 (byte {e.start}), not JSON text") from None
