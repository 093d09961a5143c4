"""Segment header, record layout, wrap, fragments and corruption (PROTOCOL.md 2)."""

from __future__ import annotations

import os
import platform
import struct
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from covet import _shmring as sr
from covet._reassembly import Reassembler
try:  # tests/ may or may not be a package
    from .shmring_gateway import (  # type: ignore[import-not-found,unused-ignore]
        RawRing, bell_count, header_fields, make_bell, make_memfd)
except ImportError:
    from shmring_gateway import (  # type: ignore[no-redef,unused-ignore]
        RawRing, bell_count, header_fields, make_bell, make_memfd)


class World:
    """A worker Segment plus independent gateway views of the same memfd."""

    def __init__(self, req_capacity: int = 4096, resp_capacity: int = 4096) -> None:
        fd = make_memfd(req_capacity, resp_capacity)
        self.gw_req = RawRing(fd, sr.REQUEST_RING)
        self.gw_resp = RawRing(fd, sr.RESPONSE_RING)
        self.worker_bell_fd = make_bell()
        self.gateway_bell_fd = make_bell()
        self.seg = sr.Segment.open(fd, header_fields(req_capacity, resp_capacity))
        self.worker_bell = sr.Doorbell(self.worker_bell_fd)
        self.gateway_bell = sr.Doorbell(self.gateway_bell_fd)
        self.reader = self.seg.request_reader(self.gateway_bell)
        self.writer = self.seg.response_writer(self.worker_bell, self.gateway_bell)

    def read(self) -> list[tuple[int, int, int, bytes]]:
        return self.reader.read()

    def close(self) -> None:
        self.seg.close()
        self.gw_req.close()
        self.gw_resp.close()
        self.worker_bell.close()
        self.gateway_bell.close()


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    yield w
    w.close()


def fd_is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


# -- Header -----------------------------------------------------------------------------


def test_open_exposes_header() -> None:
    fd = make_memfd(8192, 4096, worker_pid=os.getpid())
    seg = sr.Segment.open(fd, {"epoch": 0x1122334455667788, "worker_pid": os.getpid(),
                               "segment_size": 4096 + 1024 + 8192 + 1024 + 4096,
                               "heartbeat_ms": 250, "worker_id": 3})
    try:
        assert seg.epoch == 0x1122334455667788
        assert seg.gateway_pid == 4242 and seg.worker_pid == os.getpid()
        assert (seg.req_offset, seg.req_capacity) == (4096, 8192)
        assert (seg.resp_offset, seg.resp_capacity) == (4096 + 1024 + 8192, 4096)
        assert seg.heartbeat_interval_ns == 125_000_000
        assert seg.state == sr.STATE_STARTING
    finally:
        seg.close()
    assert seg.closed and not fd_is_open(fd)
    seg.close()  # idempotent


def bad(field: str, value: object) -> dict[str, object]:
    return {field: value}


@pytest.mark.parametrize(("override", "field"), [
    (bad("magic", b"COVETSHX"), "magic"),
    (bad("version", 2), "version"),
    (bad("header_size", 8192), "header_size"),
    (bad("req_offset", 8192), "req_offset"),
    (bad("req_capacity", 6144), "req_capacity"),   # not a power of two
    (bad("req_capacity", 2048), "req_capacity"),   # below 4096
    (bad("resp_capacity", 1 << 31), "resp_capacity"),  # above 1 GiB
    (bad("resp_capacity", 0), "resp_capacity"),
    (bad("resp_offset", 4096 + 1024 + 4096 + 8), "resp_offset"),
    (bad("segment_size", 4096 + 2 * (1024 + 4096) + 4096), "segment_size"),
    (bad("epoch", 0), "epoch"),
])
def test_header_rejects_each_bad_field(override: dict[str, object], field: str) -> None:
    fd = make_memfd(**override)
    with pytest.raises(sr.SegmentError) as info:
        sr.Segment.open(fd)
    assert info.value.field == field
    assert not fd_is_open(fd)  # ownership: closed on failure


def test_header_rejects_file_size_mismatch() -> None:
    fd = make_memfd(file_size=4096 + 2 * (1024 + 4096) + 4096)
    with pytest.raises(sr.SegmentError, match="file is"):
        sr.Segment.open(fd)


def test_header_rejects_tiny_file() -> None:
    fd = make_memfd(file_size=100)
    with pytest.raises(sr.SegmentError, match="too small"):
        sr.Segment.open(fd)


def test_header_rejects_unsealed_memfd() -> None:
    fd = make_memfd(seal=False)
    with pytest.raises(sr.SegmentError) as info:
        sr.Segment.open(fd)
    assert info.value.field == "seals"
    fd = make_memfd(seal=False)
    sr.Segment.open(fd, require_seals=False).close()


@pytest.mark.skipif(sr.ACCELERATED, reason="the compiled rings (C11 atomics) attach on any CPU; "
                    "make test's COVET_NO_EXTENSIONS=1 pass runs this")
@pytest.mark.parametrize("machine", ["aarch64", "arm64", "ppc64le", "riscv64", "i686", ""])
def test_open_refuses_a_cpu_other_than_x86_64(monkeypatch: pytest.MonkeyPatch, machine: str) -> None:
    monkeypatch.setattr(platform, "machine", lambda: machine)
    fd = make_memfd()
    with pytest.raises(sr.SegmentError) as info:
        sr.Segment.open(fd)
    assert info.value.field == "architecture"
    message = str(info.value)
    assert f"this CPU is {machine or 'unknown'}," in message
    assert "only on x86-64" in message and "store order" in message and "acquire/release" in message
    assert not fd_is_open(fd)


@pytest.mark.skipif(not sr.ACCELERATED, reason="covet._speedups is not in use (COVET_NO_EXTENSIONS "
                    "set, or not built): the pure-Python rings run on x86-64 only")
@pytest.mark.parametrize("machine", ["aarch64", "arm64", "ppc64le", "riscv64"])
def test_compiled_rings_attach_on_any_cpu(monkeypatch: pytest.MonkeyPatch, machine: str) -> None:
    monkeypatch.setattr(platform, "machine", lambda: machine)
    seg = sr.Segment.open(make_memfd())
    assert type(seg.request_reader(sr.Doorbell(os.eventfd(0)))).__mro__[1:3] == (sr._ReaderOps, sr.speedups.Reader)
    seg.close()


@pytest.mark.parametrize("machine", ["x86_64", "AMD64"])
def test_open_attaches_on_x86_64(monkeypatch: pytest.MonkeyPatch, machine: str) -> None:
    monkeypatch.setattr(platform, "machine", lambda: machine)
    sr.Segment.open(make_memfd()).close()


@pytest.mark.parametrize(("key", "value"), [
    ("epoch", 99), ("worker_pid", 1), ("req_capacity", 8192), ("segment_size", 1),
    ("gateway_pid", 1), ("version", 2),
])
def test_header_checks_expected(key: str, value: int) -> None:
    fd = make_memfd()
    with pytest.raises(sr.SegmentError) as info:
        sr.Segment.open(fd, {key: value})
    assert info.value.field == key


def test_state_and_heartbeat_land_at_their_offsets(world: World) -> None:
    mm = world.gw_req.mm
    world.seg.set_state(sr.STATE_READY)
    assert struct.unpack_from("<I", mm, 192)[0] == 1
    with pytest.raises(ValueError):
        world.seg.set_state(4)
    before = time.monotonic_ns()
    world.seg.set_heartbeat()
    hb = struct.unpack_from("<Q", mm, 128)[0]
    assert before <= hb <= time.monotonic_ns()
    world.seg.set_heartbeat(5)
    assert struct.unpack_from("<Q", mm, 128)[0] == 5
    # beat() stores at most every heartbeat_ms / 2 (default 1000 ms -> 500 ms).
    assert world.seg.beat(10**12)
    assert not world.seg.beat(10**12 + 499_999_999)
    assert struct.unpack_from("<Q", mm, 128)[0] == 10**12
    assert world.seg.beat(10**12 + 500_000_000)
    assert world.seg.heartbeat == 10**12 + 500_000_000
    # Nothing else in the header moved.
    assert mm[200:4096] == bytes(4096 - 200)


def test_close_releases_views_even_after_use(world: World) -> None:
    world.gw_req.produce(sr.REQ_HEAD, 1, 3, b"x" * 100)
    kept = world.read()  # payloads are copies: keeping them must not pin the mapping
    assert world.writer.try_write(sr.RESP_HEAD, 1, 3, b"y" * 50)
    fd = world.seg.fd
    world.seg.close()
    assert not fd_is_open(fd)
    assert kept[0][3] == b"x" * 100
    with pytest.raises(ValueError):
        world.reader.pending()
    with pytest.raises(ValueError):
        sr.RingReader(world.seg, sr.REQUEST_RING, world.gateway_bell)


# -- Producer layout --------------------------------------------------------------------


def test_writer_records_match_protocol_layout(world: World) -> None:
    w, gw = world.writer, world.gw_resp
    payloads = [b"", b"a", b"12345678", b"\xff" * 13, bytes(range(256))[: w.max_payload]]
    for i, p in enumerate(payloads):
        assert w.try_write(sr.RESP_BODY, (7 << 32) | i, sr.BEGIN if i == 0 else 0, p)
    recs = gw.decode(0, gw.tail)
    assert [r.payload for r in recs] == payloads
    pos = 0
    for i, r in enumerate(recs):
        assert r.index == pos
        assert r.length == 24 + len(payloads[i])
        assert (r.type, r.id, r.reserved) == (sr.RESP_BODY, (7 << 32) | i, 0)
        assert r.flags == (sr.BEGIN if i == 0 else 0)
        end = pos + r.length
        pos = (end + 7) & -8
        assert gw.data_bytes()[end:pos] == bytes(pos - end)  # alignment padding is zero
    assert gw.tail == pos == w.tail
    assert gw.data_bytes()[pos:] == bytes(gw.capacity - pos)  # nothing past the tail


def test_writer_refuses_oversize_and_bad_arguments(world: World) -> None:
    w = world.writer
    assert w.max_payload == 4096 // 8 - 24
    with pytest.raises(ValueError):
        w.try_write(sr.RESP_BODY, 1, 0, bytes(w.max_payload + 1))
    with pytest.raises(ValueError):
        w.try_write(sr.PAD, 1, 0, b"")
    with pytest.raises(ValueError):
        w.try_write(sr.RESP_BODY, 1, 0x10, b"")
    assert w.tail == 0


def test_writer_full_then_space(world: World) -> None:
    w, gw = world.writer, world.gw_resp
    n = 0
    while w.try_write(sr.RESP_BODY, n, 0, bytes(40)):
        n += 1
    assert n == 4096 // 64  # each record is 64 bytes; exactly full
    assert w.tail == 4096
    assert not w.try_write(sr.RESP_BODY, n, 0, b"")
    gw.set_u64(256, 64)  # the gateway released one record
    assert w.try_write(sr.RESP_BODY, n, 0, bytes(40))
    assert gw.u64(128) == 64  # head_cache refreshed


def test_writer_wraps_with_pad(world: World) -> None:
    w, gw = world.writer, world.gw_resp
    for i in range(8):  # 8 x 504 = 4032 bytes, 64 left before the wrap
        assert w.try_write(sr.RESP_BODY, i, 0, bytes(480))
    gw.set_u64(256, w.tail)  # everything consumed
    gw.put_raw(0, bytes(4096))
    assert w.try_write(sr.RESP_HEAD, 99, sr.BEGIN | sr.END, b"z" * 480 + b"!")  # 505 -> 512
    recs = gw.decode(4032, w.tail)
    assert [(r.index, r.length, r.type) for r in recs] == [(4032, 64, 1), (0, 505, 32)]
    assert recs[1].payload == b"z" * 480 + b"!"
    assert w.tail == 4032 + 64 + 512
    assert gw.mm[gw.data + 4032 + 8:gw.data + 4096] == bytes(56)  # PAD body untouched


def test_wake_and_sleep_flags(world: World) -> None:
    w, gw = world.writer, world.gw_resp
    assert w.try_write(sr.RESP_BODY, 1, 0, b"a")
    assert bell_count(world.gateway_bell_fd) == 0  # consumer awake: no system call
    gw.set_u32(384, 1)  # the gateway consumer went to sleep
    assert w.try_write(sr.RESP_BODY, 2, 0, b"b", wake=False)
    assert gw.sleeping == 1 and bell_count(world.gateway_bell_fd) == 0
    w.wake()
    assert gw.sleeping == 0 and bell_count(world.gateway_bell_fd) == 1
    gw.set_u32(384, 1)
    assert w.try_write(sr.RESP_BODY, 3, 0, b"c")
    assert gw.sleeping == 0 and bell_count(world.gateway_bell_fd) == 1


# -- Consumer ---------------------------------------------------------------------------


def test_reader_reads_in_order_zeroes_and_stores_head(world: World) -> None:
    gw = world.gw_req
    sent = [(sr.REQ_HEAD, (1 << 32) | i, sr.BEGIN | sr.END, os.urandom(i * 7)) for i in range(30)]
    for rec in sent:
        gw.produce(*rec)
    got = world.read()
    assert got == sent
    assert all(type(p) is bytes for *_, p in got)
    assert gw.head == gw.tail == world.reader.head
    assert gw.data_bytes() == bytes(4096)
    assert not world.reader.pending()
    assert world.read() == []


def test_reader_skips_pad_and_wraps(world: World) -> None:
    gw = world.gw_req
    got: list[tuple[int, int, int, bytes]] = []
    for round_ in range(50):  # many wraps with odd sizes
        batch = [(sr.REQ_BODY, round_ * 100 + i, 0, os.urandom((round_ * 37 + i * 11) % 489))
                 for i in range(3)]
        for rec in batch:
            gw.produce(*rec)
        got = world.read()
        assert got == batch
    assert gw.head == gw.tail > 4096 * 5
    assert gw.data_bytes() == bytes(4096)


def test_reader_takes_a_completely_full_ring_in_one_batch(world: World) -> None:
    gw = world.gw_req
    for i in range(64):  # 64 x 64 bytes: tail == head + capacity
        gw.produce(sr.REQ_BODY, i, 0, bytes(40))
    assert gw.tail == 4096
    assert [r[1] for r in world.read()] == list(range(64))
    assert gw.head == 4096 and gw.data_bytes() == bytes(4096)


def test_reader_batch_limit_and_partial_commit(world: World) -> None:
    gw = world.gw_req
    for i in range(5):
        gw.produce(sr.REQ_BODY, i, 0, b"p")
    assert len(world.reader.read(limit=2)) == 2
    assert gw.head == 64
    # An uncommitted record (length 0) stops the reader even if later ones are there.
    struct.pack_into("<i", gw.mm, gw.data + 3 * 32, 0)
    assert [r[1] for r in world.read()] == [2]
    assert gw.head == 96


def test_reader_handler_exception_still_releases(world: World) -> None:
    gw = world.gw_req
    for i in range(3):
        gw.produce(sr.REQ_BODY, i, 0, b"q")

    def boom(t: int, i: int, f: int, p: bytes) -> None:
        if i == 1:
            raise KeyError(i)

    with pytest.raises(KeyError):
        world.reader.poll(boom)
    assert gw.head == 64  # records 0 and 1 were handed out
    assert [r[1] for r in world.read()] == [2]


def test_release_rings_waiting_producer(world: World) -> None:
    gw = world.gw_req
    gw.produce(sr.REQ_BODY, 1, 0, b"")
    world.read()
    assert bell_count(world.gateway_bell_fd) == 0
    gw.produce(sr.REQ_BODY, 2, 0, b"")
    gw.set_u32(512, 1)  # a gateway producer found the ring full
    world.read()
    assert gw.waiting == 0 and bell_count(world.gateway_bell_fd) == 1


def test_prepare_sleep(world: World) -> None:
    r, gw = world.reader, world.gw_req
    assert r.prepare_sleep() and gw.sleeping == 1
    r.end_sleep()
    assert gw.sleeping == 0
    gw.produce(sr.REQ_BODY, 1, 0, b"")
    assert not r.prepare_sleep() and gw.sleeping == 0
    assert r.wait(world.worker_bell, 0.0, spin_ns=0)


def test_doorbell_wait_times_out_and_wakes(world: World) -> None:
    t0 = time.monotonic()
    assert not world.worker_bell.wait(0.02)
    assert time.monotonic() - t0 >= 0.015
    os.eventfd_write(world.worker_bell_fd, 3)
    assert world.worker_bell.wait(1.0)
    assert world.worker_bell.drain() == 0


# -- Corruption -------------------------------------------------------------------------


def rec(length: int, typ: int, rid: int = 1, flags: int = 0, rsvd: int = 0) -> bytes:
    return struct.pack("<iiQII", length, typ, rid, flags, rsvd)


@pytest.mark.parametrize(("index", "raw", "claimed", "why"), [
    (0, rec(-24, sr.REQ_HEAD), 32, "outside"),
    (0, rec(4, sr.REQ_HEAD), 32, "outside"),
    (0, rec(23, sr.REQ_HEAD), 32, "outside"),
    (0, rec(4096 // 8 + 1, sr.REQ_HEAD), 520, "outside"),
    (0, rec(-(2**31), sr.REQ_HEAD), 32, "outside"),
    (0, rec(4096, sr.PAD), 4096, "PAD"),
    (0, rec(8, sr.PAD), 8, "PAD"),  # PAD must run to the end of the buffer
    (4000, rec(104, sr.PAD), 4096, "PAD"),  # ... and not past it
    (4000, rec(88, sr.PAD), 4096, "PAD"),
    (4000, rec(120, sr.REQ_BODY), 120, "crosses"),
    (0, rec(24, 7), 24, "not allowed"),
    (0, rec(24, sr.RESP_HEAD), 24, "not allowed"),
    (0, rec(24, sr.PAD + 0x10000), 24, "not allowed"),
    (0, rec(24, sr.REQ_BODY, flags=0x10), 24, "unknown bits"),
    (0, rec(24, sr.REQ_BODY, rsvd=1), 24, "unknown bits"),
    (0, rec(64, sr.REQ_BODY), 32, "beyond tail"),  # committed past the claimed tail
])
def test_corrupt_records_raise_ring_corrupt(index: int, raw: bytes, claimed: int,
                                            why: str) -> None:
    w = World()
    try:
        w.gw_req.set_u64(256, index)
        w.gw_req.set_u64(0, index + claimed)
        w.reader = sr.RingReader(w.seg, sr.REQUEST_RING, w.gateway_bell)
        w.gw_req.put_raw(index % 4096, raw)
        with pytest.raises(sr.RingCorrupt, match=why) as info:
            w.read()
        assert info.value.offset >= w.seg.req_offset + 1024
    finally:
        w.close()


def test_bad_counters_are_corrupt(world: World) -> None:
    world.gw_req.set_u64(0, 5000)  # tail > head + capacity
    with pytest.raises(sr.RingCorrupt, match="head <= tail"):
        sr.RingReader(world.seg, sr.REQUEST_RING, world.gateway_bell)
    world.gw_resp.set_u64(256, 10)  # head > tail on the writer's ring
    with pytest.raises(sr.RingCorrupt):
        sr.RingWriter(world.seg, sr.RESPONSE_RING, own=world.worker_bell,
                      peer=world.gateway_bell)
    world.gw_resp.set_u64(256, 0)
    w = sr.RingWriter(world.seg, sr.RESPONSE_RING, own=world.worker_bell,
                      peer=world.gateway_bell)
    while w.try_write(sr.RESP_BODY, 1, 0, b""):
        pass
    world.gw_resp.set_u64(256, 1 << 40)  # the consumer "released" bytes never written
    with pytest.raises(sr.RingCorrupt, match="head moved"):
        w.try_write(sr.RESP_BODY, 1, 0, b"")


def test_records_before_corruption_are_released(world: World) -> None:
    gw = world.gw_req
    gw.produce(sr.REQ_BODY, 1, 0, b"ok")
    gw.produce(sr.REQ_BODY, 2, 0, b"bad")
    struct.pack_into("<i", gw.mm, gw.data + 32 + 4, 3)  # type 3 is not a frame type
    seen: list[int] = []
    with pytest.raises(sr.RingCorrupt):
        world.reader.poll(lambda t, i, f, p: seen.append(i))
    assert seen == [1] and gw.head == 32


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(min_size=0, max_size=4096), head=st.integers(0, 4095),
       extra=st.integers(0, 4096))
def test_fuzz_reader_raises_only_ring_corrupt(data: bytes, head: int, extra: int) -> None:
    w = World()
    try:
        head &= -8
        w.gw_req.set_u64(256, head)
        w.gw_req.set_u64(0, head + extra)
        w.gw_req.put_raw(0, data)
        w.reader = sr.RingReader(w.seg, sr.REQUEST_RING, w.gateway_bell)
        try:
            for _ in range(4):
                w.read()
        except sr.RingCorrupt:
            pass
        assert w.reader.head <= head + extra
    finally:
        w.close()


# -- Fragments --------------------------------------------------------------------------


def test_fragments_split_at_max_payload(world: World) -> None:
    w = world.writer
    m = w.max_payload
    assert [f for f, _ in w.fragments(b"", True, True, 0)] == [sr.BEGIN | sr.END]
    assert w.fragments(b"", False, False, 0) == []
    assert [f for f, _ in w.fragments(b"", False, True, 0)] == [sr.END]
    assert [(f, len(c)) for f, c in w.fragments(bytes(m), True, True, 0)] == [(3, m)]
    assert [(f, len(c)) for f, c in w.fragments(bytes(m + 1), True, True, 0)] == [
        (sr.BEGIN, m), (sr.END, 1)]
    assert [(f, len(c)) for f, c in w.fragments(bytes(2 * m), False, True, sr.FLAG_ERR)] == [
        (sr.FLAG_ERR, m), (sr.FLAG_ERR | sr.END, m)]


@pytest.mark.parametrize("size", [0, 1, 487, 488, 489, 4096, 3 * 4096 + 5, 40_000])
def test_fragment_round_trip_through_both_rings(world: World, size: int) -> None:
    """Gateway -> request ring -> worker assembles the head; the worker echoes it as a
    body stream on the response ring, blocking while full, to a gateway thread."""
    body = os.urandom(size)
    gw_writer = sr.RingWriter(world.seg, sr.REQUEST_RING, own=world.gateway_bell,
                              peer=world.worker_bell)
    gw_reader = sr.RingReader(world.seg, sr.RESPONSE_RING, world.worker_bell)
    worker_asm, gw_asm = Reassembler(), Reassembler()
    frags = gw_writer.fragments(body, True, True, 0)
    assert len(frags) == max(1, -(-size // gw_writer.max_payload))
    got_req: list[bytes] = []
    got_resp: list[tuple[int, bytes]] = []

    def worker(t: int, i: int, f: int, p: bytes) -> None:
        out = worker_asm.feed(t, i, f, p)
        if out is not None:
            got_req.append(out)
            world.writer.write_message(sr.RESP_BODY, i, out, timeout=10)

    def gateway(t: int, i: int, f: int, p: bytes) -> None:
        assert t == sr.RESP_BODY and i == 77
        chunk = gw_asm.feed(t, i, f, p)
        assert chunk is not None
        got_resp.append((f, chunk))

    def gateway_loop() -> None:
        deadline = time.monotonic() + 10
        while not (got_resp and got_resp[-1][0] & sr.END) and time.monotonic() < deadline:
            if gw_reader.wait(world.gateway_bell, 0.05, spin_ns=1000):
                gw_reader.poll(gateway)

    t = threading.Thread(target=gateway_loop)
    t.start()
    try:
        for f, chunk in frags:
            gw_writer.write(sr.REQ_HEAD, 77, f, chunk, timeout=10)
            world.reader.poll(worker)
    finally:
        t.join()
    assert got_req == [body]
    assert b"".join(c for _, c in got_resp) == body
    assert got_resp[0][0] & sr.BEGIN
    assert len(worker_asm) == len(gw_asm) == 0
    assert world.writer.tail == gw_reader.head


def test_reassembler_violations() -> None:
    a = Reassembler(limit=10)
    with pytest.raises(sr.RingCorrupt, match="never begun"):
        a.feed(sr.REQ_HEAD, 1, sr.END, b"x")
    with pytest.raises(sr.RingCorrupt, match="never begun"):
        a.feed(sr.REQ_BODY, 1, 0, b"x")
    assert a.feed(sr.REQ_HEAD, 1, sr.BEGIN, b"abc") is None
    with pytest.raises(sr.RingCorrupt, match="BEGIN inside"):
        a.feed(sr.REQ_HEAD, 1, sr.BEGIN, b"x")
    assert a.feed(sr.REQ_HEAD, 2, sr.BEGIN | sr.END, b"other") == b"other"  # ids interleave
    assert a.feed(sr.REQ_HEAD, 1, 0, b"def") is None
    with pytest.raises(sr.RingCorrupt, match="exceeds 10"):
        a.feed(sr.REQ_HEAD, 1, sr.END, b"ghijk")
    assert len(a) == 0
    with pytest.raises(sr.RingCorrupt, match="exceeds 10"):
        a.feed(sr.CONTROL, 1, sr.BEGIN | sr.END, bytes(11))
    with pytest.raises(sr.RingCorrupt, match="ERR flag"):
        a.feed(sr.ERROR, 1, sr.BEGIN | sr.END, b"")
    assert a.feed(sr.ERROR, 1, sr.BEGIN | sr.END | sr.FLAG_ERR, b"e") == b"e"
    with pytest.raises(sr.RingCorrupt, match="CANCEL flag"):
        a.feed(sr.CANCEL, 1, 0, b"")


def test_reassembler_streams_and_cancel() -> None:
    a = Reassembler()
    assert a.feed(sr.REQ_BODY, 5, sr.BEGIN | sr.END, b"") == b""
    assert len(a) == 0
    assert a.feed(sr.REQ_BODY, 5, sr.BEGIN, b"a") == b"a"
    with pytest.raises(sr.RingCorrupt, match="BEGIN inside"):
        a.feed(sr.REQ_BODY, 5, sr.BEGIN, b"")
    assert a.feed(sr.REQ_BODY, 5, 0, b"b") == b"b"
    assert a.feed(sr.REQ_BODY, 5, sr.FLAG_ERR, b"") == b""  # ERR aborts the stream
    with pytest.raises(sr.RingCorrupt, match="never begun"):
        a.feed(sr.REQ_BODY, 5, sr.END, b"")
    assert a.feed(sr.REQ_HEAD, 6, sr.BEGIN, b"h") is None
    assert a.feed(sr.REQ_BODY, 6, sr.BEGIN, b"b") == b"b"
    assert len(a) == 2
    assert a.feed(sr.CANCEL, 6, sr.FLAG_CANCEL | sr.BEGIN | sr.END, b"") == b""
    assert len(a) == 0


@pytest.mark.parametrize("which", [sr.REQUEST_RING, sr.RESPONSE_RING])
def test_short_pad_at_the_very_end_of_the_segment(which: int) -> None:
    """A PAD of 8 bytes in the last 8 bytes of a ring, the response ring being the
    end of the mapping: the reader must not read a 24-byte header there."""
    seg = sr.Segment.open(make_memfd(4096, 4096))
    own, peer = sr.Doorbell(make_bell()), sr.Doorbell(make_bell())
    try:
        w = sr.RingWriter(seg, which, own=own, peer=peer)
        r = sr.RingReader(seg, which, peer, allowed_types=frozenset({sr.REQ_BODY}))
        got: list[bytes] = []
        # 4088 bytes of records: 8 bytes left before the wrap.
        for size in (504,) * 8 + (56,):
            assert w.try_write(sr.REQ_BODY, 1, sr.BEGIN | sr.END, bytes(size - 24))
        assert w.tail == 4088
        while r.poll(lambda t, i, f, p: got.append(p)):
            pass
        assert w.try_write(sr.REQ_BODY, 2, sr.BEGIN | sr.END, b"after the wrap")
        while r.poll(lambda t, i, f, p: got.append(p)):
            pass
        assert got[-1] == b"after the wrap" and len(got) == 10
        assert r.head == w.tail == 4096 + 40
    finally:
        seg.close()
        own.close()
        peer.close()


def test_free_space_follows_the_consumers_head(world: World) -> None:
    w = world.writer
    assert w.free_space() == 4096
    assert w.try_write(sr.RESP_BODY, 1, 0, b"x" * 488)  # 512 bytes with its header
    assert w.free_space() == 4096 - 512
    world.gw_resp.set_u64(256, 512)  # the gateway released it
    assert w.free_space() == 4096
    world.gw_resp.set_u64(256, 5000)  # beyond the tail: impossible
    with pytest.raises(sr.RingCorrupt, match="head moved"):
        w.free_space()


def test_space_waiters_wake_in_order_as_room_allows(world: World) -> None:
    """The worker wakes the tasks waiting for response-ring space in arrival order, as
    many as the freed space has room for (the first always), and arms producer_waiting
    again for the rest (covet/_worker.py, _wake_space_waiters)."""
    import asyncio
    import collections
    import types

    from covet._worker import _Worker

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        w = world.writer
        for i in range(8):  # fill the ring: 8 x 512 bytes
            assert w.try_write(sr.RESP_BODY, i, 0, b"x" * 488, wake=False)
        futs = [loop.create_future() for _ in range(4)]
        worker = types.SimpleNamespace(_writer=w, _space_waiters=collections.deque(
            (sr.FRAME_HEADER + 488, f) for f in futs))
        futs[1].cancel()  # a waiter that gave up is skipped
        world.gw_resp.set_u64(256, 512)  # room for one record
        _Worker._wake_space_waiters(worker)  # type: ignore[arg-type]
        assert [f.done() for f in futs] == [True, True, False, False] and not futs[0].cancelled()
        assert world.gw_resp.waiting == 1  # the gateway will ring when it frees more
        world.gw_resp.set_u32(512, 0)
        world.gw_resp.set_u64(256, 4096)  # everything released
        _Worker._wake_space_waiters(worker)  # type: ignore[arg-type]
        assert all(f.done() for f in futs) and not worker._space_waiters
        assert world.gw_resp.waiting == 0

    asyncio.run(scenario())
