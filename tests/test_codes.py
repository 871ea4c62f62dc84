"""Issue 17, item 3 (memory): trees and cores kept on disk (certify/codes.py)
and checked a window at a time (certify/windows.py, certify/parallel.py).

What must hold: a CodeFile gives back exactly the integers it was given; a
packed list read from disk is refused or accepted exactly as the in-memory
reader refuses or accepts it, with the same message; and a tree checked in
windows, in one process or in workers, gets the verdict of the one replay of
the whole tree (in one process, the same reason too) on real proofs and on
mutants of them.
"""

from __future__ import annotations

import base64
import random
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import exact_inj
from exact_inj.certify import packing, schema
from exact_inj.certify import parallel as PAR
from exact_inj.certify import tree as T
from exact_inj.certify.check import check
from exact_inj.certify.codes import CodeFile, PackedCores, unpack_spilled
from exact_inj.certify.schema import Certificate, TreeProof
from exact_inj.errors import InputError
from exact_inj.io.spill import TextSource
from exact_inj.model import Layer

_INT = st.integers(min_value=-(1 << 62) + 1, max_value=(1 << 62) - 1)


class _Pieces(TextSource):
    """A string handed out in pieces of the given sizes (the spilled reader's
    pieces have arbitrary boundaries)."""

    def __init__(self, text: str, sizes: list[int]) -> None:
        self.text, self.sizes = text.encode("ascii"), sizes

    def __len__(self) -> int:
        return len(self.text)

    def chunks(self):
        pos, k = 0, 0
        while pos < len(self.text):
            step = max(1, self.sizes[k % len(self.sizes)])
            yield self.text[pos:pos + step]
            pos += step
            k += 1


@settings(max_examples=200, deadline=None)
@given(st.lists(_INT, max_size=200), st.integers(min_value=1, max_value=50))
def test_a_code_file_gives_back_its_integers(values, size):
    f = CodeFile.of(values)
    assert len(f) == len(values) and f.tolist() == values
    chunks = [c.tolist() for c in f.chunks(size)]
    assert all(len(c) == size for c in chunks[:-1]) and sum(chunks, []) == values
    # The bytes on disk are the packed encoding's: the same base64 text.
    assert b"".join(f.base64().chunks()).decode() == packing.pack(values)["data"]
    assert f == values and f == CodeFile.of(values)


def _reader_says(obj):
    """(values, None) or (None, message) from the in-memory reader."""
    try:
        return list(packing.unpack(obj, "c.json", "proof tree")), None
    except InputError as e:
        return None, str(e)


def _spilled_says(obj, sizes):
    try:
        count, data = packing.header({**obj, "data": _Pieces(obj["data"], sizes)}, "c.json", "proof tree")
        return unpack_spilled(data, count, "c.json", "proof tree").tolist(), None
    except InputError as e:
        return None, str(e)


def _mutated_packings(rnd: random.Random):
    """Packed objects, most of them broken in one way the readers must refuse."""
    values = [rnd.choice([rnd.randrange(-3, 90), rnd.randrange(-(1 << 40), 1 << 40)]) for _ in range(rnd.randrange(0, 60))]
    obj = packing.pack(values)
    raw = bytearray(base64.b64decode(obj["data"]))
    kind = rnd.randrange(8)
    if kind == 1:
        obj["count"] += rnd.choice([-1, 1])
    elif kind == 2 and raw:
        raw[-1] |= 0x80                       # the last integer never ends
        obj["data"] = base64.b64encode(bytes(raw)).decode()
    elif kind == 3:
        raw += bytes([0xFF] * rnd.randrange(9, 12)) + b"\x01"   # an integer of 10+ bytes
        obj["count"] += 1
        obj["data"] = base64.b64encode(bytes(raw)).decode()
    elif kind == 4 and obj["data"]:
        i = rnd.randrange(len(obj["data"]))
        # Spilled data holds only the alphabet and "=" (io/spill.py spills nothing else).
        obj["data"] = obj["data"][:i] + rnd.choice("==+/A") + obj["data"][i + 1:]
    elif kind == 5 and obj["data"]:
        obj["data"] = obj["data"][:-1]        # padding cut
    elif kind == 6:
        # Padding, right and wrong: b64decode takes "AAAA===", refuses "AA==AA".
        obj["data"] += rnd.choice(["=", "==", "===", "====", "=A", "A=", "=AAA", "A==", "AA=="])
    return obj


def test_the_spilled_reader_refuses_and_accepts_what_the_reader_does():
    rnd = random.Random(5)
    refused = 0
    for _ in range(1500):
        obj = _mutated_packings(rnd)
        sizes = [rnd.randrange(1, 9) for _ in range(5)]
        want = _reader_says(obj)
        assert _spilled_says(obj, sizes) == want, (obj, sizes)
        refused += want[0] is None
    assert refused > 300  # the mutants did break packings


def test_packed_cores_read_from_disk_are_the_cores():
    rnd = random.Random(3)
    for _ in range(200):
        flat = []
        for _ in range(rnd.randrange(0, 20)):
            k = rnd.randrange(0, 6)
            flat += [k] + [rnd.randrange(80) for _ in range(k)]
        if rnd.random() < 0.4 and flat:
            flat[rnd.randrange(len(flat))] = rnd.choice([-1, 50, 7])    # a length that may lie
        try:
            want = [c.support for c in schema._packed_cores(packing.pack(flat), "c")]
        except InputError as e:
            want = str(e)
        try:
            cores = PackedCores.read(CodeFile.of(flat), "c")
            got = [c.support for c in cores]
            assert len(cores) == len(got)
        except InputError as e:
            got = str(e)
        assert got == want, flat


@pytest.fixture(scope="module")
def certs():
    out = []
    for seed, bias in ((0, False), (1, False), (4, True)):
        rng = np.random.default_rng([seed, 5, 34, 0])
        b = rng.standard_normal(34).tolist() if bias else None
        v = exact_inj.verify(Layer.from_rows(rng.standard_normal((34, 5)).tolist(), b), milp="none")
        assert isinstance(v.certificate.evidence, TreeProof), v.reason
        out.append(v.certificate)
    return out


def _on_disk(cert: Certificate, tree=None) -> Certificate:
    ev = cert.evidence
    # Only supports are packed (a core with an explicit multiplier stays an object).
    plain = all(c.multiplier is None and not c.domain_support for c in ev.cores)
    cores = PackedCores.of(ev.cores) if plain else ev.cores
    return replace(cert, evidence=TreeProof(cores, CodeFile.of(ev.tree if tree is None else tree)))


@pytest.fixture
def small_windows(monkeypatch):
    monkeypatch.setattr(T, "PARALLEL_MIN_CODES", 0)
    monkeypatch.setattr(T, "WINDOW", 13)
    monkeypatch.setattr(PAR, "CORE_CHUNK", 7)
    yield
    PAR.shutdown()


def test_a_tree_on_disk_is_checked_alike(certs, small_windows):
    for cert in certs:
        whole = check(cert)
        assert whole.valid, whole.reason
        disk = _on_disk(cert)
        assert check(disk).reason == whole.reason
        with T.check_workers(2):
            par = check(disk)
        assert par.valid and par.reason == whole.reason


def test_mutants_on_disk_are_judged_alike(certs, small_windows):
    rnd = random.Random(23)
    invalid = 0
    for cert in certs:
        tree = list(cert.evidence.tree)
        m = len(cert.network.layers[0].weight)
        for _ in range(30):
            t2 = list(tree)
            i = rnd.randrange(len(t2))
            kind = rnd.randrange(5)
            if kind == 0:
                t2[i] = -1 if t2[i] != -1 else 0
            elif kind == 1:
                t2[i] = rnd.randrange(m + 2)
            elif kind == 2:
                del t2[i]
            elif kind == 3:
                t2[i] = schema.CORE_BASE - rnd.randrange(len(cert.evidence.cores) + 2)
            else:
                t2.insert(i, rnd.choice([-1, rnd.randrange(m)]))
            whole = check(replace(cert, evidence=replace(cert.evidence, tree=tuple(t2))))
            disk = _on_disk(cert, t2)
            one = check(disk)
            # In one process the windows are replayed in order, each before the
            # shape takes it: the first fault in preorder, as in one replay.
            assert (one.valid, one.reason) == (whole.valid, whole.reason), i
            with T.check_workers(2):
                par = check(disk)
            assert par.valid == whole.valid, (i, whole.reason, par.reason)
            invalid += not whole.valid
    assert invalid > 40


def test_a_core_mutant_on_disk_is_refused(certs, small_windows):
    cert = certs[0]
    ev = cert.evidence
    for bad in ((), (0, 0), (10 ** 30,), (ev.cores[0].support[0],)):
        cores = list(ev.cores)
        cores[1] = replace(cores[1], support=bad)
        mutant = replace(cert, evidence=TreeProof(tuple(cores), CodeFile.of(ev.tree)))
        for k in (1, 2):
            with T.check_workers(k):
                res = check(mutant)
            assert not res.valid and "core" in res.reason, (bad, res.reason)


def test_a_certificate_on_disk_is_written_as_the_one_in_memory(certs, monkeypatch):
    monkeypatch.setattr(schema, "PACK_MIN", 10)
    cert = certs[0]
    assert cert.to_json() == _on_disk(cert).to_json()
    streamed = _on_disk(cert).to_json(streamed=True)["proof"]
    assert isinstance(streamed["tree"]["data"], TextSource)
    assert b"".join(streamed["tree"]["data"].chunks()).decode() == cert.to_json()["proof"]["tree"]["data"]


def test_verify_writes_and_check_reads_a_tree_kept_on_disk(tmp_path, monkeypatch, small_windows):
    """End to end with the thresholds lowered: the parallel search splices
    its tree into a CodeFile, verify's writer streams it into the file, and
    the file's check spills the packed lists and reads them from disk; a
    certificate whose tree bytes were tampered with is refused, as the
    whole-document reader refuses it."""
    import base64 as b64
    import gzip
    import json

    from exact_inj.cli.app import write_json
    from exact_inj.io import spill
    from exact_inj.io.json import load_json_file
    from exact_inj.layer import subtrees

    monkeypatch.setattr(subtrees, "PACK_MIN", 50)
    monkeypatch.setattr(schema, "PACK_MIN", 50)
    monkeypatch.setattr(spill, "SPILL_MIN", 64)
    rng = np.random.default_rng([0, 7, 47, 0])
    v = exact_inj.verify(Layer.from_rows(rng.standard_normal((47, 7)).tolist()), milp="none", workers=2)
    ev = v.certificate.evidence
    assert isinstance(ev.tree, CodeFile) and isinstance(ev.cores, PackedCores), (type(ev.tree), type(ev.cores))
    path = tmp_path / "c.json.gz"
    write_json(str(path), v.certificate.to_json(streamed=True))
    found: list = []
    obj = spill.load_json_spilled(path, found)
    assert len(found) == 2  # the tree's data and the cores' data stayed on disk
    res = exact_inj.check(path, workers=2)
    assert res.valid and "verified exactly" in res.reason, res.reason
    # The same document read whole is the same certificate.
    whole = Certificate.from_json(load_json_file(path))
    assert list(whole.evidence.tree) == ev.tree.tolist()

    def outcome(read):
        try:
            r = read()
            return r.valid, r.reason
        except InputError as e:
            return "input error", str(e)

    doc = json.loads(gzip.decompress(path.read_bytes()))
    raw = bytes(b64.b64decode(doc["proof"]["tree"]["data"]))
    ends = [i for i, x in enumerate(raw) if x < 0x80]
    seen = set()
    for k, at in enumerate(ends[len(ends) // 3::max(1, len(ends) // 7)]):
        tampered = bytearray(raw)
        # A one-byte code replaced by another (the count holds), or a byte
        # that joins two integers (it does not).
        tampered[at] = (0x04 if raw[at] != 0x04 else 0x06) if k % 2 == 0 else 0x85
        doc["proof"]["tree"]["data"] = b64.b64encode(bytes(tampered)).decode()
        bad = tmp_path / f"bad{k}.json.gz"
        bad.write_bytes(gzip.compress(json.dumps(doc).encode()))
        streamed = outcome(lambda: exact_inj.check(bad, workers=1))
        in_memory = outcome(lambda: check(Certificate.from_json(load_json_file(bad), str(bad))))
        assert streamed == in_memory
        assert streamed[0] is not True, streamed
        seen.add(streamed[0])
    assert seen == {False, "input error"}  # both kinds of refusal were met


def test_masks_in_batches_refuse_and_accept_as_one_by_one():
    # The parallel check builds the cores' masks a batch at a time with
    # numpy; a faulty core must be refused as add() refuses it, naming it.
    from exact_inj.certify.base import Invalid
    rnd = random.Random(1)
    refused = 0
    for _ in range(3000):
        M = rnd.randrange(1, 140)
        supports = [tuple(rnd.choice([rnd.randrange(M), -1, M, 10 ** 30]) if rnd.random() < 0.05 else rnd.randrange(M)
                          for _ in range(rnd.randrange(0 if rnd.random() < 0.1 else 1, 5)))
                    for _ in range(rnd.randrange(0, 7))]
        one, batch = T.Masks(M), T.Masks(M)
        said = []
        for masks, fill in ((one, lambda: [one.add(S, k) for k, S in enumerate(supports)]),
                            (batch, lambda: batch.extend(supports, 0))):
            try:
                fill()
                said.append(None)
            except Invalid as e:
                said.append(str(e))
        assert said[0] == said[1], supports
        if said[0] is None:
            assert one.data == batch.data and [one[k] for k in range(len(one))] == [sum(1 << i for i in S) for S in supports]
        refused += said[0] is not None
    assert refused > 300


def test_threads_reading_one_code_file_each_read_its_bytes():
    # Review finding: a seek then a read on one shared file object could be
    # split by another thread's seek, and a check would replay the wrong
    # block (an invalid tree found valid).  Reads now name their offset.
    import threading
    values = [int(x) for x in np.random.default_rng(3).integers(-300, 300, 200_000)]
    f = CodeFile.of(values)
    bad: list = []

    def read() -> None:
        for _ in range(5):
            got = [x for c in f.chunks(97) for x in c.tolist()]
            if got != values:
                bad.append(1)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


def test_a_tree_on_disk_pickles_by_value():
    import copy
    import pickle
    f = CodeFile.of([0, 5, -1, -2, 300, 79])
    g = pickle.loads(pickle.dumps(f))
    assert g == f and g.tolist() == [0, 5, -1, -2, 300, 79] and g.nbytes == f.nbytes
    cores = PackedCores.of([schema.Core((0, 1)), schema.Core((2,))])
    assert copy.deepcopy(TreeProof(cores, f)) == TreeProof(cores, f)


def test_a_pipe_is_read_once_and_nothing_is_spilled(tmp_path, monkeypatch):
    # Review finding: a bad document read from a pipe fell back to reading
    # the pipe again and said "file is empty".
    import os
    import threading
    from exact_inj.io import spill
    from exact_inj.io.json import load_json_file
    monkeypatch.setattr(spill, "SPILL_MIN", 8)
    text = '{"proof": {"data": "' + "QUJD" * 100 + '"}, "x": [1, 2'  # truncated
    regular = tmp_path / "c.json"
    regular.write_text(text)
    with pytest.raises(InputError) as want:
        load_json_file(regular)
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text(text))
    writer.start()
    with pytest.raises(InputError) as got:
        spill.load_json_spilled(fifo)
    writer.join()
    assert str(got.value).replace(str(fifo), "F") == str(want.value).replace(str(regular), "F")
