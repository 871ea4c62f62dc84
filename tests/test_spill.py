"""exact_inj.io.spill: long "data" strings read into and written from temporary files.

The reader is checked against load_json_file, the reader of record, on many
random documents (valid and broken, plain and gzip), with spilling made
frequent and blocks made tiny so that every boundary case is met.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import string
import sys
import tracemalloc
from fractions import Fraction

import pytest

from exact_inj.cli import app
from exact_inj.errors import InputError
from exact_inj.io import spill
from exact_inj.io.json import load_json_file
from exact_inj.io.spill import SpilledText, TextSource, dump_json, load_json_spilled
from exact_inj.numbers import raised_limits

B64 = string.ascii_letters + string.digits + "+/="


def plain(obj):
    """obj with every SpilledText replaced by its content."""
    if isinstance(obj, SpilledText):
        return b"".join(obj.chunks()).decode("ascii")
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [plain(v) for v in obj]
    return obj


def count_spilled(obj) -> int:
    if isinstance(obj, SpilledText):
        return 1
    if isinstance(obj, dict):
        return sum(count_spilled(v) for v in obj.values())
    if isinstance(obj, list):
        return sum(count_spilled(v) for v in obj)
    return 0


def outcome(load, path):
    """('ok', repr of the value) or ('error', message): repr tells 1 from Fraction(1)."""
    try:
        return "ok", repr(plain(load(path)))
    except InputError as e:
        return "error", str(e)


# --------------------------------------------------------------------------
# Random documents, written as text so that spelling and whitespace vary
# --------------------------------------------------------------------------

WS = ["", "", "", " ", " ", "\n", " \t\r\n ", " " * 70]  # 70: longer than the reader's tail
NUMBERS = ["0", "-2", "0.1", "1e-9", "-2.5E+2", "-0.0", "12345678901234567890", "3.0"] * 3 + ["1e99999", "NaN"]
KEYS = ['"data"', '"x"', '"count"', '"a\\"data"', '"d\\u0061ta"', '"packed"', '"\\"data\\""', '"é"']


def b64(rng, lo=0, hi=40) -> str:
    return "".join(rng.choice(B64) for _ in range(rng.randint(lo, hi)))


def rand_string(rng) -> str:
    r = rng.random()
    if r < 0.4:
        return '"' + b64(rng) + '"'
    if r < 0.5:  # base64, then an escape or a character outside the alphabet
        return '"' + b64(rng, 5) + rng.choice(["\\/", "\\n", "-", "_", "é", "\\u0041", " "]) + b64(rng) + '"'
    if r < 0.6:
        return '"\\"data\\": \\"' + b64(rng, 8) + '"'
    return json.dumps("".join(rng.choice('ab"\\\n é€😀/') for _ in range(rng.randint(0, 8))),
                      ensure_ascii=rng.random() < 0.5)


def rand_value(rng, depth=0) -> str:
    w = lambda: rng.choice(WS)  # noqa: E731
    r = rng.random()
    if depth >= 4 or r < (0.35 if depth else 0.1):
        return rng.choice([rand_string(rng), rand_string(rng), rng.choice(NUMBERS), "true", "null", '"1/3"'])
    if r < 0.5:
        return "[" + w() + ("," + w()).join(rand_value(rng, depth + 1) for _ in range(rng.randint(0, 4))) + w() + "]"
    members = []
    keys = rng.sample(KEYS[1:], rng.randint(0, 3))
    if rng.random() < 0.7 and '"d\\u0061ta"' not in keys:  # which says "data" too
        keys.insert(rng.randint(0, len(keys)), '"data"')
    for key in keys:
        if key == '"data"' and rng.random() < 0.7:
            value = '"' + b64(rng) + '"' if rng.random() < 0.7 else rand_string(rng)
        else:
            value = rand_value(rng, depth + 1)
        members.append(key + w() + ":" + w() + value)
    if members and rng.random() < 0.05:
        members.append(members[0])  # a duplicate key
    return "{" + w() + ("," + w()).join(members) + w() + "}"


def mutate(rng, data: bytes) -> bytes:
    r = rng.random()
    if r < 0.6 or not data:
        return data
    k = rng.randrange(len(data))
    if r < 0.7:
        return data[:k]  # truncated
    if r < 0.75:
        return data[:k] + b"\x00" + data[k:]
    if r < 0.8:
        return data[:k] + b"\xff" + data[k:]  # not UTF-8
    if r < 0.85:
        return b"\xef\xbb\xbf" + data  # a byte-order mark, harmless
    return data[:k] + rng.choice([b'"', b"\\", b"{", b"]", b",", b":", b"x", b" "]) + data[k + 1:]


def gzip_variant(rng, text: bytes) -> bytes:
    z = gzip.compress(text, mtime=0)
    r = rng.random()
    if r < 0.7:
        return z
    return rng.choice([
        z[:rng.randrange(len(z))],                      # truncated
        z[:-8] + bytes(8),                              # bad CRC and length
        z + b"garbage",                                 # trailing garbage
        z + bytes(5),                                   # trailing zeros (allowed)
        z + gzip.compress(b" ", mtime=0),               # two members
        z[:12] + bytes([z[12] ^ 0x55]) + z[13:],        # corrupt deflate data
        text,                                           # named .gz, not gzip
        b"", b" \n", b"\x1f", b"\x1f\x8b",
    ])


@pytest.fixture
def small(monkeypatch):
    """Spill every "data" string of 8 characters or more."""
    monkeypatch.setattr(spill, "SPILL_MIN", 8)


@pytest.fixture
def fallbacks(monkeypatch):
    """Count the times load_json_spilled asks load_json_file."""
    calls = []
    real = spill.load_json_file

    def counting(p):
        calls.append(p)
        return real(p)

    monkeypatch.setattr(spill, "load_json_file", counting)
    return calls


@pytest.mark.parametrize("seed", range(6))
def test_random_documents_read_as_load_json_file_reads_them(tmp_path, monkeypatch, small, fallbacks, seed):
    rng = random.Random(seed)
    spilled = valid = 0
    for n in range(200):
        monkeypatch.setattr(spill, "BLOCK", rng.choice([1, 2, 5, 13, 64, 4096]))
        text = (rng.choice(WS) + rand_value(rng) + rng.choice(WS)).encode("utf-8")
        data = mutate(rng, text)
        p = tmp_path / f"d{n}.json"
        p.write_bytes(data)
        del fallbacks[:]
        want = outcome(load_json_file, p)
        assert outcome(load_json_spilled, p) == want, (data, spill.BLOCK)
        if want[0] == "ok":
            # A valid file never needs the whole-file reader.
            assert not fallbacks, data
            valid += 1
            spilled += count_spilled(load_json_spilled(p))
        g = tmp_path / f"d{n}.json.gz"
        g.write_bytes(gzip_variant(rng, data))
        assert outcome(load_json_spilled, g) == outcome(load_json_file, g), (data, g.read_bytes())
    assert valid > 80 and spilled > 40  # the comparison above met many spilled strings


@pytest.mark.parametrize("text, spilled", [
    ('{"data":"AAAAAAAAAAAA"}', 1),
    ('{"data" :\n "AAAAAAAAAAAA", "x": {"data"\t:\r\n"BBBBBBBBB+/="}}', 2),
    ('[{"data": "AAAAAAAAAAAA"}, {"data": "AAAAAAAAAAAA"}]', 2),  # equal strings, two spills
    ('{"a\\"data": "AAAAAAAAAAAA"}', 0),   # matched, but not the key "data": read back
    ('{"d\\u0061ta": "AAAAAAAAAAAA"}', 0),  # the key "data", spelled otherwise: not spilled
    ('{"data": "AAAAAAA"}', 0),             # 7 characters
    ('{"data": "AAAAAAAAAAAA\\/"}', 0),     # an escape
    ('{"data": "AAAAAAAAAAAA-"}', 0),       # not base64
    ('{"x": "AAAAAAAAAAAA"}', 0),
    ('{"data": "AAAAAAAA AAAA"}', 0),
])
def test_which_strings_spill(tmp_path, monkeypatch, small, fallbacks, text, spilled):
    for block in (1, 3, 4096):
        monkeypatch.setattr(spill, "BLOCK", block)
        p = tmp_path / "d.json"
        p.write_text(text)
        obj = load_json_spilled(p)
        assert count_spilled(obj) == spilled
        assert repr(plain(obj)) == repr(load_json_file(p)) and not fallbacks


def test_a_big_data_string_is_spilled_and_others_are_not(tmp_path):
    big = (B64 * (spill.SPILL_MIN // len(B64) + 2))[:spill.SPILL_MIN + 5]
    for name, opener in (("c.json", open), ("c.json.gz", gzip.open)):
        p = tmp_path / name
        with opener(p, "wt") as f:
            json.dump({"packed": {"encoding": "zigzag-varint-base64", "count": 1, "data": big},
                       "escaped": {"data": big + "\\"}, "other": big, "dash": {"data": big[:-3] + "-"}}, f)
        obj = load_json_spilled(p)
        s = obj["packed"]["data"]
        assert isinstance(s, SpilledText) and len(s) == len(big)
        assert b"".join(s.chunks()).decode() == big == b"".join(s.chunks(size=1000)).decode()  # read twice
        assert obj["escaped"]["data"] == big + "\\" and obj["other"] == big and obj["dash"]["data"][-1] == "-"
        assert plain(obj) == load_json_file(p)
        s.close()


def test_a_long_whitespace_run_across_blocks_is_missed_harmlessly(tmp_path, monkeypatch, small):
    p = tmp_path / "d.json"
    p.write_text('{"data":' + " " * 70 + '"AAAAAAAAAAAA"}')
    for block, spilled in ((4096, 1), (1, 0)):  # found within a block; past the tail across blocks
        monkeypatch.setattr(spill, "BLOCK", block)
        obj = load_json_spilled(p)
        assert count_spilled(obj) == spilled and plain(obj) == load_json_file(p)


def test_size_limit_counts_the_files_characters(tmp_path, small):
    p = tmp_path / "d.json"
    p.write_text('{"data": "' + "A" * 100 + '"}')
    for limit in (50, 111, 112, 200):
        with raised_limits(max_bytes=limit):
            assert outcome(load_json_spilled, p) == outcome(load_json_file, p)
    with raised_limits(max_bytes=50), pytest.raises(InputError, match="a document of 112 characters"):
        load_json_spilled(p)


def test_missing_directory_and_stdin(tmp_path, monkeypatch):
    for p in (tmp_path / "none.json", tmp_path / "none.json.gz", tmp_path):
        assert outcome(load_json_spilled, p) == outcome(load_json_file, p)
        assert outcome(load_json_spilled, p)[0] == "error"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'{"data": "' + b"A" * 100 + b'"}')))
    assert load_json_spilled("-") == {"data": "A" * 100}


@pytest.mark.parametrize("name, bound", [("big.json", 8 << 20), ("big.json.gz", 16 << 20)])
def test_memory_stays_far_below_the_string(tmp_path, name, bound):
    # One 40 MB data string: the reader keeps a block (and gzip's buffers), not the string.
    p = tmp_path / name
    piece = (B64[:64] * (1 << 14)).encode()  # 1 MiB
    digest = hashlib.sha256()
    with (gzip.open if name.endswith(".gz") else open)(p, "wb") as f:
        f.write(b'{"proof": {"encoding": "zigzag-varint-base64", "count": 7, "data": "')
        for _ in range(40):
            f.write(piece)
            digest.update(piece)
        f.write(b'"}, "n": 0.5}\n')
    del piece
    tracemalloc.start()
    try:
        obj = load_json_spilled(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    s = obj["proof"]["data"]
    assert isinstance(s, SpilledText) and len(s) == 40 << 20 and obj["n"] == Fraction(1, 2)
    assert peak < bound, peak
    check = hashlib.sha256()
    for chunk in s.chunks():
        check.update(chunk)
    assert check.digest() == digest.digest()
    s.close()


# --------------------------------------------------------------------------
# The writer
# --------------------------------------------------------------------------


def rand_object(rng, depth=0):
    r = rng.random()
    if depth >= 4 or r < 0.4:
        return rng.choice([
            None, True, False, rng.randint(-10**30, 10**30), rng.random() * 10 ** rng.randint(-20, 20), 0.1,
            "".join(rng.choice('ab"\\\n\x00\x7f é€😀/') for _ in range(rng.randint(0, 8))),
        ])
    if r < 0.6:
        return [rand_object(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(["data", "x", "é", '"q"', ""]) + str(rng.randint(0, 3)): rand_object(rng, depth + 1)
            for _ in range(rng.randint(0, 4))}


def dumped(obj, piece=spill.WRITE_CHUNK) -> bytes:
    out: list[bytes] = []
    dump_json(obj, out.append, piece=piece)
    assert all(type(b) is bytes for b in out)
    return b"".join(out)


def spilled_text(content: str) -> SpilledText:
    s = SpilledText()
    for k in range(0, len(content), 5):
        s.write(content[k:k + 5].encode("ascii"))
    return s


def test_dump_json_is_json_dumps_without_text_sources():
    rng = random.Random(7)
    for _ in range(500):
        obj = rand_object(rng)
        want = json.dumps(obj, separators=(",", ":")).encode()
        assert dumped(obj) == want == dumped(obj, piece=rng.randint(1, 9))
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        dumped({"a": {1}})


def test_dump_json_streams_text_sources_and_reads_back(tmp_path, small):
    rng = random.Random(8)
    for n in range(200):
        obj = rand_object(rng)
        contents = [b64(rng, 0, 30) for _ in range(3)]
        obj = {"packed": {"count": 2, "data": spilled_text(contents[0])}, "rest": obj,
               "more": [{"data": spilled_text(contents[1])}, spilled_text(contents[2])]}
        text = dumped(obj, piece=rng.randint(1, 50))
        assert text == json.dumps(plain(obj), separators=(",", ":")).encode()
        p = tmp_path / f"o{n}.json"
        p.write_bytes(text)
        assert repr(plain(load_json_spilled(p))) == repr(load_json_file(p))


@pytest.mark.parametrize("bad", [b'"', b"\\", b"\n", b"\x00", b"\x7f", "é".encode()])
def test_a_text_source_that_would_need_escaping_is_refused(bad):
    class Bad(TextSource):
        def chunks(self):
            yield b"AAAA"
            yield b"AA" + bad

        def __len__(self):
            return 7

    with pytest.raises(ValueError, match="escape"):
        dumped({"data": Bad()})


def test_write_json_streams_text_sources(tmp_path, small):
    content = B64 * 50
    obj = {"x": [1, "é", 0.5], "packed": {"encoding": "zigzag-varint-base64", "count": 3,
                                          "data": spilled_text(content)}}
    for name in ("c.json", "c.json.gz"):
        p = tmp_path / name
        app.write_json(str(p), obj)
        assert load_json_file(p) == {**obj, "packed": {**obj["packed"], "data": content}}
        back = load_json_spilled(p)
        assert isinstance(back["packed"]["data"], SpilledText) and plain(back) == load_json_file(p)
    assert sorted(os.listdir(tmp_path)) == ["c.json", "c.json.gz"]  # no temporary file left


def test_write_json_writes_what_it_wrote_before(tmp_path):
    # Without a TextSource: json.dumps's compact text and a line end, as before.
    obj = rand_object(random.Random(9)) or {"a": 1}
    text = json.dumps(obj, separators=(",", ":"))
    app.write_json(str(tmp_path / "c.json"), obj)
    app.write_json(str(tmp_path / "c.json.gz"), obj)
    assert (tmp_path / "c.json").read_bytes() == (text + os.linesep).encode()
    assert gzip.decompress((tmp_path / "c.json.gz").read_bytes()) == (text + "\n").encode()


def test_write_json_with_a_bad_text_source_leaves_nothing(tmp_path):
    class Bad(TextSource):
        def chunks(self):
            yield b'"'

        def __len__(self):
            return 1

    for name in ("c.json", "c.json.gz"):
        with pytest.raises(ValueError):
            app.write_json(str(tmp_path / name), {"data": Bad()})
    assert os.listdir(tmp_path) == []
