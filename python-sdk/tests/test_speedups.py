"""The compiled core (covet._speedups) against its pure-Python twins, input for input.

The rest of the suite runs on whichever implementation is in use (make test runs it
once with the compiled core and once with COVET_NO_EXTENSIONS=1); these tests hold the
two side by side in one process: the same REQ_HEAD bytes decode to the same head or the
same error, the same response fields encode to the same bytes or the same error, and a
ring written by one implementation reads back whole through the other.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covet import _head, _payloads
from covet import _shmring as sr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shmring_gateway import make_memfd  # noqa: E402

pytestmark = pytest.mark.skipif(
    not sr.ACCELERATED,
    reason="covet._speedups is not in use (COVET_NO_EXTENSIONS set, or the SDK was built without a C compiler)",
)

if sr.ACCELERATED:
    speedups = sr.speedups
    c_decode = speedups.decode_head
    c_encode = speedups.encode_response_head


def outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(*args)
    except ValueError as e:
        return "error", str(e)


# -- REQ_HEAD -----------------------------------------------------------------------------

text = st.text(max_size=40)
names = st.sampled_from(["host", "accept", "x-a", "cookie", "content-type", "user-agent"]) | text
head_arrays = st.tuples(
    st.sampled_from(["GET", "POST", "PUT"]) | text,  # method
    text, text,  # path, query
    st.lists(st.tuples(names, st.binary(max_size=300)), max_size=20).map(lambda ps: [x for p in ps for x in p]),
    text,  # route
    st.lists(text, max_size=6),  # params (may be odd: refused)
    st.sampled_from(["1.1", "2", "3"]), st.sampled_from(["http", "https"]), text, text,
    st.integers(min_value=-3, max_value=1 << 40), st.integers(min_value=-3, max_value=1 << 40),
).map(list)


@settings(max_examples=400, deadline=None)
@given(arr=head_arrays, extra=st.sampled_from([[], [None], [None, None], [["CN=a", [], "ff"]]]))
def test_decode_head_matches_python(arr: list[Any], extra: list[Any]) -> None:
    payload = msgpack.packb(arr + extra, use_bin_type=True)
    assert outcome(c_decode, payload) == outcome(_head.decode_head_py, payload)


@settings(max_examples=400, deadline=None)
@given(arr=head_arrays, cut=st.integers(min_value=0, max_value=400), flip=st.binary(min_size=1, max_size=3))
def test_decode_head_of_damaged_bytes_matches_python(arr: list[Any], cut: int, flip: bytes) -> None:
    payload = bytearray(msgpack.packb(arr, use_bin_type=True))
    i = cut % len(payload)
    payload[i:i + len(flip)] = flip  # overwrite (may also truncate or extend)
    data = bytes(payload)
    assert outcome(c_decode, data) == outcome(_head.decode_head_py, data)


def test_decode_head_builds_the_named_tuple() -> None:
    arr = ["GET", "/a", "x=1", ["host", b"h"], "/a", [], "1.1", "http", "1.2.3.4:5", "rid", 0, 0]
    head = c_decode(msgpack.packb(arr, use_bin_type=True))
    assert type(head) is _head.RequestHead
    assert head.headers == ["host", b"h"] and head.client_cert is None and head.auth is None


# -- RESP_HEAD ----------------------------------------------------------------------------

header_names = st.sampled_from(["content-type", "content-length", "x-a", "Set-Cookie", "bad name", "", "é"]) | \
    st.text(alphabet="abcxyz-_!~09AZ ", max_size=300)
header_values = st.binary(max_size=70) | st.sampled_from([b"a\tb", b"a\nb", b"\x7f", b"x" * 65536, b"y" * 65537])


@settings(max_examples=500, deadline=None)
@given(
    status=st.sampled_from([200, 204, 255, 256, 404, 599, 199, 600, True]),
    headers=st.lists(st.tuples(header_names, header_values), max_size=20),
    body=st.sampled_from([-2, -1, 0, 1, 127, 128, 255, 256, 65535, 65536, 1 << 32, 1 << 40]),
    as_tuple=st.booleans(),
)
def test_encode_response_head_matches_python(status: int, headers: list[tuple[str, bytes]], body: int,
                                             as_tuple: bool) -> None:
    given_headers: Any = tuple(headers) if as_tuple else headers
    assert outcome(c_encode, status, given_headers, body) == outcome(
        _payloads.encode_response_head_py, status, given_headers, body)


def test_encode_response_head_falls_back_for_other_shapes() -> None:
    pairs = [("X-Up", bytearray(b"v")), ("a", b"b")]
    want = _payloads.encode_response_head_py(200, list(pairs), 3)
    assert c_encode(200, iter(pairs), 3) == want  # an iterator, a name to lower-case, a bytearray
    many = [("a", b"b")] * 1025
    with pytest.raises(ValueError, match="1025 headers, at most 1024"):
        c_encode(200, many, 0)


# -- Rings: one implementation writes, the other reads ------------------------------------

@pytest.mark.parametrize("writer_kind, reader_kind", [("c", "py"), ("py", "c")])
@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=60))
def test_rings_interoperate(writer_kind: str, reader_kind: str, sizes: list[int]) -> None:
    seg = sr.Segment.open(make_memfd())
    bells = [sr.Doorbell(os.eventfd(0)) for _ in range(2)]
    try:
        writer_cls = sr.RingWriter if writer_kind == "c" else sr.PyRingWriter
        reader_cls = sr.RingReader if reader_kind == "c" else sr.PyRingReader
        w = writer_cls(seg, sr.RESPONSE_RING, own=bells[0], peer=bells[1])
        r = reader_cls(seg, sr.RESPONSE_RING, bells[0])
        got: list[tuple[int, int, int, bytes]] = []
        sent: list[tuple[int, int, int, bytes]] = []
        for i, n in enumerate(sizes):
            rec = (sr.RESP_BODY, i, sr.BEGIN if i % 2 else sr.END, bytes([i % 251]) * n)
            while not w.try_write(*rec):  # full: drain what is there (wraps and PADs)
                got += r.read()
            sent.append(rec)
        got += r.read()
        assert got == sent
        assert r.head == w.tail
    finally:
        seg.close()
        for b in bells:
            b.close()


def test_closed_segment_detaches_compiled_rings() -> None:
    seg = sr.Segment.open(make_memfd())
    bell = sr.Doorbell(os.eventfd(0))
    r = seg.request_reader(bell)
    w = sr.RingWriter(seg, sr.REQUEST_RING, own=bell, peer=bell)
    seg.close()  # would raise BufferError if a ring still held the mapping
    with pytest.raises(ValueError, match="segment is closed"):
        r.poll(lambda *a: None)
    with pytest.raises(ValueError, match="segment is closed"):
        w.try_write(sr.REQ_BODY, 1, 0, b"x")
    bell.close()


def test_reader_hands_whole_request_heads_to_on_head() -> None:
    seg = sr.Segment.open(make_memfd())
    bell = sr.Doorbell(os.eventfd(0))
    try:
        w = sr.RingWriter(seg, sr.REQUEST_RING, own=bell, peer=bell)
        r: Any = seg.request_reader(bell)  # the compiled reader (on_head)
        common = msgpack.packb(["GET", "/a", "", [], "/a", [], "1.1", "http", "c", "r", 0, 0], use_bin_type=True)
        with_cert = msgpack.packb(["GET", "/b", "", [], "/b", [], "1.1", "https", "c", "r", 0, 0,
                                   ["CN=x", [], "ff"]], use_bin_type=True)  # fmt: skip
        be = sr.BEGIN | sr.END
        for rec in [(sr.REQ_HEAD, 1, be, common), (sr.REQ_HEAD, 2, be, with_cert), (sr.REQ_HEAD, 3, sr.BEGIN, common),
                    (sr.REQ_BODY, 1, be, b"x"), (sr.REQ_HEAD, 4, be, b"\x9c\xc0")]:  # fmt: skip
            assert w.try_write(*rec)
        heads: list[tuple[int, Any]] = []
        records: list[tuple[int, int, int, bytes]] = []
        r.on_head = lambda rid, head: heads.append((rid, head))
        assert r.poll(lambda *rec: records.append(rec)) == 5
        assert [(rid, type(h), h.path) for rid, h in heads] == [(1, _head.RequestHead, "/a")]
        # a certificate (13 elements), a fragment, another frame type, a malformed head:
        # the handler gets them as records, for the Python decoder to take or refuse
        assert [(t, rid, f) for t, rid, f, _ in records] == [
            (sr.REQ_HEAD, 2, be), (sr.REQ_HEAD, 3, sr.BEGIN), (sr.REQ_BODY, 1, be), (sr.REQ_HEAD, 4, be)]
        # an exception in on_head propagates, and its record is released all the same
        assert w.try_write(sr.REQ_HEAD, 5, be, common)

        def fail(rid: int, head: Any) -> None:
            raise RuntimeError("on_head failed")

        r.on_head = fail
        with pytest.raises(RuntimeError, match="on_head failed"):
            r.poll(lambda *rec: None)
        assert r.head == w.tail and not r.pending()
        r.on_head = None
        assert w.try_write(sr.REQ_HEAD, 6, be, common)
        assert [rid for _, rid, _, _ in r.read()] == [6]
    finally:
        seg.close()
        bell.close()
