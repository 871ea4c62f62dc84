"""JSON documents whose long strings live in temporary files, not in memory.

A certificate's bulk is one or two base64 strings of tens of megabytes, each
the ``"data"`` of a packed object (certify/packing.py): :func:`load_json_spilled`
keeps each in an unlinked temporary file (a :class:`SpilledText`), and
:func:`dump_json` streams any :class:`TextSource` value from its pieces.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import secrets
import stat
import tempfile
import zlib
from typing import Any, Callable, Iterator

from ..errors import InputError
from ..numbers import limits, over_limit
from .files import STDIN, blocks_at, decode_text, write_at
from .json import load_json_file, loads_exact

__all__ = ["SPILL_MIN", "BLOCK", "TextSource", "SpilledText", "load_json_spilled", "dump_json"]

SPILL_MIN = 1 << 20
"""Characters from which a ``"data"`` string is kept in a temporary file."""

BLOCK = 4 << 20
"""Bytes read (after any decompression) at a time."""

# Text written at a time: one slice of the dumped text is copied (and encoded)
# at once, never the whole of it a second time.
WRITE_CHUNK = 1 << 24

# The member a spilled string is the value of.  Whitespace runs are bounded
# by _TAIL only where a match straddles two blocks; there, a longer one is
# missed and its string simply stays a str.
_KEY = re.compile(rb'"data"[ \t\r\n]*:[ \t\r\n]*"')
_TAIL = 64
_RUN = re.compile(rb"[A-Za-z0-9+/=]*")
_QUOTE = 0x22
# What a TextSource's bytes may hold: printable ASCII that JSON never escapes.
_SAFE = bytes(c for c in range(0x20, 0x7F) if c not in b'"\\')


class TextSource:
    """A JSON string value whose content is produced in pieces.

    :meth:`chunks` yields ASCII bytes that need no JSON escaping (no ``"``,
    no backslash, no control character); ``len()`` is the total number of
    characters.  :func:`dump_json` writes such a value as a JSON string.

    >>> class Repeat(TextSource):
    ...     def chunks(self):
    ...         yield from (b"AB", b"AB")
    ...     def __len__(self):
    ...         return 4
    >>> out = []; dump_json({"data": Repeat()}, out.append); b"".join(out)
    b'{"data":"ABAB"}'
    """

    def chunks(self) -> Iterator[bytes]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


class SpilledText(TextSource):
    """The content of one long string, kept in an unlinked temporary file.

    Not a str: read it with :meth:`chunks`, as many times as needed.

    >>> s = SpilledText()
    >>> s.write(b"QUJD"); s.write(b"REVG")
    >>> len(s), b"".join(s.chunks(size=3)), b"".join(s.chunks())
    (8, b'QUJDREVG', b'QUJDREVG')
    >>> s.close()
    """

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()
        self._length = 0

    def write(self, data) -> None:
        """Append ASCII bytes (bytes, bytearray or memoryview)."""
        self._length = write_at(self._file, data, self._length)

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        # blocks_at reads at named offsets: readers in several threads never move
        # each other's position (a seek then a read could be split by another
        # thread's seek, and a checker would read the wrong bytes).
        return blocks_at(self._file, self._length, size)

    def __len__(self) -> int:
        return self._length

    def close(self) -> None:
        self._file.close()

    def __repr__(self) -> str:
        return f"<SpilledText of {self._length} characters>"


def load_json_spilled(path: str | os.PathLike, found: list | None = None) -> Any:
    """:func:`~exact_inj.io.json.load_json_file`, with long ``"data"`` strings spilled.

    A string of at least :data:`SPILL_MIN` base64 characters (``A-Za-z0-9+/=``)
    that is the value of a key written exactly ``"data"`` comes back as a
    :class:`SpilledText`; everything else, and every error, is what
    ``load_json_file(path)`` gives.  ``-`` (standard input) spills nothing.
    The SpilledText objects placed in the result are appended to ``found``
    when a list is given (so a caller can tell, without walking the result,
    whether anything was spilled).

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "c.json")
    ...     _ = open(p, "w").write('{"a": 0.5, "packed": {"data": "' + "QUJD" * SPILL_MIN + '"}}')
    ...     obj = load_json_spilled(p)
    >>> obj["a"], obj["packed"]["data"], next(obj["packed"]["data"].chunks())[:8]
    (Fraction(1, 2), <SpilledText of 4194304 characters>, b'QUJDQUJD')
    """
    p = os.fspath(path)
    if p == STDIN or not _regular(p):
        # A pipe or a device can be read only once, and a file that errs is
        # read a second time for load_json_file's message: nothing spilled.
        return load_json_file(p)
    nonce = secrets.token_hex(16)
    spills: list[SpilledText] = []
    try:
        with open(p, "rb") as raw:
            if p.lower().endswith(".gz"):
                with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                    kept = _scan(gz, nonce, spills)
            else:
                kept = _scan(raw, nonce, spills)
    except (OSError, EOFError, zlib.error):
        # A missing, unreadable or corrupt file: load_json_file, the reader of
        # record, says why in its own words (gzip.decompress words a CRC error
        # unlike GzipFile).  Only a bad file pays for reading it whole.
        return _fallback(p, spills)
    if not spills:
        # Nothing spilled: the kept bytes are the file's, so decoding and
        # parsing them is load_json_file itself, errors included.
        return loads_exact(decode_text(bytes(kept), p), p)
    # Why the kept text is valid JSON exactly when the file is, with one token
    # structure: a spilled run R ends at a '"' and follows a match of _KEY,
    # `"data" ws : ws Q` with Q a '"'.  The '"' after `data` follows a letter,
    # so it is unescaped: it opens or closes a string; opening one would leave
    # the letters `data` outside any string, which no JSON text holds, so it
    # closes one.  `ws : ws` is then outside strings and Q opens a string,
    # whose content R is whole: it holds no quote, backslash or control
    # character, and the '"' after it follows a base64 character or Q, so it closes
    # the string.  The placeholder is of base64 characters as well, so the
    # same argument, read from either text, maps one's parse onto the other's.
    # Only positions in messages (a column, a byte offset) and the document's
    # size differ: the size is checked here on the file's count, and any
    # other error is taken from load_json_file, which re-reads the bad file.
    data = bytes(kept)
    del kept
    try:
        text = decode_text(data, p)
    except InputError:
        return _fallback(p, spills)
    del data
    size = len(text) + sum(len(s) - len(_holder(nonce, i)) for i, s in enumerate(spills))
    if size > limits().max_bytes:
        # loads_exact's first check, made on the file's characters (the kept
        # text is shorter); a file this big is not read whole to say so.
        _close(spills)
        raise InputError(p, over_limit("max_bytes", f"a document of {size} characters"))
    try:
        obj = loads_exact(text, p)
    except InputError:
        return _fallback(p, spills)
    holders = {_holder(nonce, i): i for i in range(len(spills))}
    if not _substitute(obj, holders, spills):
        return _fallback(p, spills)
    if found is not None:
        found.extend(spills)
    return obj


def _regular(p: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(p).st_mode)
    except OSError:
        return False  # missing or unreadable: load_json_file says which


def _holder(nonce: str, i: int) -> str:
    # Hex digits and 'x': base64 characters, which the argument above needs.
    return f"{nonce}x{i}"


def _scan(fh, nonce: str, spills: list[SpilledText]) -> bytearray:
    """The document's bytes outside spilled strings, read from fh block by block."""
    spill_min, block = SPILL_MIN, BLOCK
    kept = bytearray()
    # One buffer, reused: buf[:carry] is the last block's tail, not yet in
    # kept, where a match may have begun; the new block is read after it.
    buf = bytearray(_TAIL + block)
    view = memoryview(buf)
    carry = 0
    run: SpilledText | None = None  # a candidate string that has crossed a block's end
    try:
        while True:
            n = fh.readinto(view[carry:carry + block])
            if not n:
                break
            end = carry + n
            pos = 0  # buf[:pos] is in kept or in a temporary file
            if run is not None:
                e = _RUN.match(buf, 0, end).end()
                run.write(view[:e])
                if e == end:
                    continue
                _end_run(run, buf[e] == _QUOTE, spill_min, kept, spills, nonce)
                run, pos = None, e
            at = pos
            while (m := _KEY.search(buf, at, end)) is not None:
                s = m.end()
                e = _RUN.match(buf, s, end).end()
                if e == end:
                    # The run goes on past this block: into a temporary file
                    # as it is read, decided on when it ends.
                    kept += view[pos:s]
                    run = SpilledText()
                    run.write(view[s:end])
                    pos = end
                    break
                if buf[e] == _QUOTE and e - s >= spill_min:
                    kept += view[pos:s]
                    spill = SpilledText()
                    spill.write(view[s:e])
                    kept += _holder(nonce, len(spills)).encode("ascii")
                    spills.append(spill)
                    pos = e
                # A run that does not qualify stays where it is, in buf[pos:].
                at = e
            keep = max(pos, end - _TAIL)
            kept += view[pos:keep]
            carry = end - keep
            buf[:carry] = bytes(view[keep:end])
        if run is not None:  # a string cut off by the end of the file
            _end_run(run, False, spill_min, kept, spills, nonce)
            run = None
        kept += view[:carry]
    except BaseException:
        _close(spills + ([run] if run is not None else []))
        spills.clear()
        raise
    finally:
        view.release()
    return kept


def _end_run(run: SpilledText, closed: bool, spill_min: int, kept: bytearray, spills: list, nonce: str) -> None:
    # A candidate that ends in a '"' and is long enough is spilled; another
    # (short, or followed by an escape or anything else) is read back: rare.
    if closed and len(run) >= spill_min:
        kept += _holder(nonce, len(spills)).encode("ascii")
        spills.append(run)
    else:
        for piece in run.chunks():
            kept += piece
        run.close()


def _substitute(obj: Any, holders: dict[str, int], spills: list[SpilledText]) -> bool:
    """Put each spilled string in place of its placeholder; False if one is missing."""
    # Iterative: the document may be as deep as limits().max_depth.
    stack = [obj] if type(obj) in (dict, list) else []
    while stack and holders:
        node = stack.pop()
        if type(node) is dict:
            for k, v in node.items():
                t = type(v)
                if t is str:
                    i = holders.pop(v, None)
                    if i is not None:
                        # The key of a match is "data", or one that ends in an
                        # escaped quote and `data` ("x\"data"): that one's
                        # string is read back, as the file's reader would.
                        node[k] = spills[i] if k == "data" else b"".join(spills[i].chunks()).decode("ascii")
                elif t is dict or t is list:
                    stack.append(v)
        else:
            # set(map(type, ...)) runs in C: a list of numbers is skipped fast.
            types = set(map(type, node))
            if dict in types or list in types:
                stack.extend(v for v in node if type(v) is dict or type(v) is list)
    return not holders


def _fallback(p: str, spills: list[SpilledText]) -> Any:
    _close(spills)
    return load_json_file(p)


def _close(spills: list[SpilledText]) -> None:
    for s in spills:
        s.close()


def dump_json(obj: Any, write: Callable[[bytes], Any], *, piece: int = WRITE_CHUNK) -> None:
    """Write obj as compact JSON through write(bytes), TextSource values streamed.

    Without TextSource values the bytes are ``json.dumps(obj, separators=(",", ":"))``,
    written ``piece`` characters at most at a time; no newline is added.  A
    TextSource's piece that JSON would need to escape is a ValueError.

    >>> out = []
    >>> dump_json({"a": [1, "\\u00e9"], "b": None}, out.append)
    >>> b"".join(out)
    b'{"a":[1,"\\\\u00e9"],"b":null}'
    """
    nonce = secrets.token_hex(16)
    sources: list[TextSource] = []

    def default(o: Any) -> str:
        if isinstance(o, TextSource):
            sources.append(o)
            return _holder(nonce, len(sources) - 1)
        raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")

    # json.dumps with a default still runs the C encoder.
    text = json.dumps(obj, separators=(",", ":"), default=default)
    pos = 0
    while (at := text.find(nonce, pos)) >= 0:
        close = text.index('"', at)
        _write_text(write, text, pos, at, piece)
        for chunk in sources[int(text[at + len(nonce) + 1:close])].chunks():
            if not isinstance(chunk, (bytes, bytearray)):
                raise TypeError(f"a TextSource gave {type(chunk).__name__}, not bytes")
            if chunk.translate(None, _SAFE):
                raise ValueError("a TextSource gave bytes that a JSON string would need to escape "
                                 "(a quote, a backslash, a control or non-ASCII character)")
            write(chunk)
        pos = close
    _write_text(write, text, pos, len(text), piece)


def _write_text(write: Callable[[bytes], Any], text: str, start: int, stop: int, piece: int) -> None:
    for k in range(start, stop, piece):
        write(text[k:min(k + piece, stop)].encode("utf-8"))

