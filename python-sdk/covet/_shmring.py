"""Worker side of the shared-memory data plane (workerproto/PROTOCOL.md section 2).

One memfd segment holds a 4096-byte header and two rings: requests (gateway ->
worker; the worker is the single consumer) and responses (worker -> gateway; the
worker is the single producer). Two eventfds are the doorbells.

Two implementations of the rings. ``RingReader`` and ``RingWriter`` are the compiled
ones (``covet._speedups``, ``_speedups.c``: C11 acquire/release atomics, correct on any
CPU) when that module is built and ``COVET_NO_EXTENSIONS`` is not set; otherwise they are
``PyRingReader`` and ``PyRingWriter``, the pure-Python reference described below. Both
share the methods built on the core (``_ReaderOps``, ``_WriterOps``: blocking and asyncio
waits, fragmentation) and are tested against the same vectors and suite.

Memory ordering of the pure-Python client (PROTOCOL.md 2.6). CPython has no atomics, so it relies on
x86-64 total store order: every control field and record header is read and written
through a ``memoryview`` cast to ``'I'``, ``'i'`` or ``'Q'``, which CPython
(Objects/memoryobject.c, ``UNPACK_SINGLE``/``PACK_SINGLE``: a fixed-size memcpy) turns
into one aligned machine load or store. The one reordering TSO allows, a later load
passing an earlier store, is closed by ``_full_fence``: acquiring and releasing an
uncontended ``threading.Lock``. On CPython 3.11 to 3.13/Linux (``sys.thread_info.lock ==
'semaphore'``) that is ``sem_trywait`` + ``sem_post``, each a ``lock cmpxchg`` in
glibc (checked with gdb on 3.11.7, 3.12.1 and 3.13.0; cost measured by
python-sdk/tests/bench_shmring.py). CPython 3.14 builds the lock on its own PyMutex
instead, not checked here.
So without the compiled module ``Segment.open`` refuses to attach on any other CPU
(``SUPPORTED_MACHINES``): on arm64, say, a payload and the length that commits it may
become visible out of order.

Ownership. A ``Segment`` owns the mapping, the fd and every memoryview over the
mapping; ``RingReader``/``RingWriter`` borrow those views and stop working (ValueError)
once the segment is closed (a compiled ring holds a buffer export of the mapping, which
``Segment.close`` releases first through ``detach``). Payloads handed out are always ``bytes`` copies taken
before the space is zeroed and released, so nothing a handler keeps can alias ring
memory or block ``Segment.close``.

Everything read from shared memory is untrusted: a bad header raises
``SegmentError``; a bad record, control word or fragment sequence raises
``RingCorrupt``, never IndexError or struct.error.
"""

from __future__ import annotations

import asyncio
import fcntl
import mmap
import os
import platform
import struct
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from covet._accel import speedups
from covet._doorbell import AsyncDoorbell, Doorbell

__all__ = [
    "ACCELERATED",
    "AsyncDoorbell",
    "Doorbell",
    "PyRingReader",
    "PyRingWriter",
    "RingCorrupt",
    "RingReader",
    "RingWriter",
    "Segment",
    "SegmentError",
]

#: True when RingReader and RingWriter are the compiled ones (covet/_speedups.c, with
#: C11 acquire/release atomics); False when they are the pure-Python PyRingReader and
#: PyRingWriter (COVET_NO_EXTENSIONS=1, or no compiled module).
ACCELERATED: Final = speedups is not None

#: ``platform.machine()`` names of x86-64, whose store order this module relies on.
SUPPORTED_MACHINES: Final = frozenset({"x86_64", "AMD64"})

# -- Wire constants (PROTOCOL.md 2.1 - 2.3) -------------------------------------------

MAGIC: Final = b"COVETSHM"
VERSION: Final = 1
HEADER_SIZE: Final = 4096
CONTROL_SIZE: Final = 1024
MIN_CAPACITY: Final = 4096
MAX_CAPACITY: Final = 1 << 30

# Header field offsets.
OFF_MAGIC: Final = 0
OFF_VERSION: Final = 8
OFF_HEADER_SIZE: Final = 12
OFF_SEGMENT_SIZE: Final = 16
OFF_REQ_OFFSET: Final = 24
OFF_REQ_CAPACITY: Final = 32
OFF_RESP_OFFSET: Final = 40
OFF_RESP_CAPACITY: Final = 48
OFF_GATEWAY_PID: Final = 56
OFF_WORKER_PID: Final = 60
OFF_EPOCH: Final = 64
OFF_HEARTBEAT: Final = 128
OFF_STATE: Final = 192

# Ring control block field offsets.
CB_TAIL: Final = 0
CB_HEAD_CACHE: Final = 128
CB_HEAD: Final = 256
CB_CONSUMER_SLEEPING: Final = 384
CB_PRODUCER_WAITING: Final = 512

RECORD_HEADER: Final = 8
FRAME_HEADER: Final = 24  # record header + id u64 + flags u32 + reserved u32

# Frame types.
PAD: Final = 1
REQ_HEAD: Final = 16
REQ_BODY: Final = 17
RESP_HEAD: Final = 32
RESP_BODY: Final = 33
RESP: Final = 34
EARLY_HINTS: Final = 35
RESP_FILE: Final = 36
CANCEL: Final = 48
ERROR: Final = 49
WINDOW: Final = 50
REQ_WINDOW: Final = 51
CONTROL: Final = 64
WS_OPEN: Final = 80
WS_ACCEPT: Final = 81
WS_TEXT: Final = 82
WS_BINARY: Final = 83
WS_CLOSE: Final = 84
WS_CREDIT: Final = 85
RESP_TRAILERS: Final = 96

# Flags.
BEGIN: Final = 0x1
END: Final = 0x2
FLAG_CANCEL: Final = 0x4
FLAG_ERR: Final = 0x8
KNOWN_FLAGS: Final = 0xF

# Worker states.
STATE_STARTING: Final = 0
STATE_READY: Final = 1
STATE_DRAINING: Final = 2
STATE_CLOSED: Final = 3

REQUEST_RING: Final = 0
RESPONSE_RING: Final = 1

#: Types a consumer accepts on each ring by default (PAD is always handled).
REQUEST_TYPES: Final = frozenset({REQ_HEAD, REQ_BODY, CANCEL, ERROR, WINDOW, CONTROL,
                                  WS_OPEN, WS_TEXT, WS_BINARY, WS_CLOSE, WS_CREDIT})
RESPONSE_TYPES: Final = frozenset({RESP_HEAD, RESP_BODY, RESP, EARLY_HINTS, RESP_FILE, ERROR, REQ_WINDOW, CONTROL,
                                   WS_ACCEPT, WS_TEXT, WS_BINARY, WS_CLOSE, WS_CREDIT, RESP_TRAILERS})

#: Records taken per ``poll`` call before ``head`` is stored (one fence per batch).
DEFAULT_BATCH: Final = 256
#: Consumer spin before sleeping: a 16 B ping-pong between two processes took 15 us
#: per round trip with no spin, 11 us with 20 us, 6.4 us with 50 us or more
#: (python-sdk/tests/bench_shmring.py, 2-core VM).
DEFAULT_SPIN_NS: Final = 50_000
#: Size of the zero buffer used to wipe consumed bytes (slice assignment).
_ZERO_CHUNK: Final = 1 << 16

_HEADER = struct.Struct("<8sIIQQQQQIIQ")
#: A record's type, id and flags + reserved word, stored at record offset 4 in one go
#: (before the commit, so the order of its byte stores does not matter).
_TYPE_ID_FLAGS = struct.Struct("<iQQ")
#: A whole record header read in one call: length, type, id, flags + reserved word.
#: Native format ("@"), so each field is copied with one aligned load, in order.
_RECORD_HEADER = struct.Struct("@iiQQ")
assert _RECORD_HEADER.size == FRAME_HEADER  # offsets 0..72, the gateway-written fields


class SegmentError(ValueError):
    """The segment header is malformed or does not match the welcome."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class RingCorrupt(Exception):
    """The peer broke PROTOCOL.md section 2; ``offset`` is the byte offset in the
    segment of the offending record or control field (-1 when not about bytes)."""

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(f"{reason} (segment offset {offset})")
        self.reason = reason
        self.offset = offset


# -- The full fence -----------------------------------------------------------------

_fence_lock = threading.Lock()
_fence_acquire = _fence_lock.acquire
_fence_release = _fence_lock.release


def _full_fence() -> None:
    """A locked read-modify-write (two, in fact): orders every earlier store before
    every later load. Hot paths inline the two calls instead of calling this."""
    _fence_acquire()
    _fence_release()


def _fence_and_ring(u32: memoryview, flag: int, bell: Doorbell) -> None:
    """PROTOCOL.md 2.5, the waker's side: full fence, then, if the other side's flag
    (u32 word index ``flag``) is set, clear it and ring its doorbell."""
    _fence_acquire()
    _fence_release()
    if u32[flag]:
        u32[flag] = 0
        bell.ring()


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


# -- Segment ------------------------------------------------------------------------


class Segment:
    """A mapped segment: header accessors plus the views the rings use."""

    __slots__ = (
        "_closed",
        "_fd",
        "_i32",
        "_last_beat",
        "_mm",
        "_mv",
        "_rings",
        "_u32",
        "_u64",
        "epoch",
        "gateway_pid",
        "heartbeat_interval_ns",
        "req_capacity",
        "req_offset",
        "resp_capacity",
        "resp_offset",
        "segment_size",
        "version",
        "worker_pid",
    )

    _closed: bool
    _fd: int
    _i32: memoryview
    _last_beat: int
    _mm: mmap.mmap
    _mv: memoryview
    _rings: weakref.WeakSet[Any]
    _u32: memoryview
    _u64: memoryview
    epoch: int
    gateway_pid: int
    heartbeat_interval_ns: int
    req_capacity: int
    req_offset: int
    resp_capacity: int
    resp_offset: int
    segment_size: int
    version: int
    worker_pid: int

    def __init__(self) -> None:  # use Segment.open
        raise TypeError("use Segment.open(fd, expected)")

    @classmethod
    def open(
        cls,
        fd: int,
        expected: Mapping[str, object] | None = None,
        *,
        heartbeat_ms: int | None = None,
        require_seals: bool = True,
    ) -> Segment:
        """Map ``fd`` (taking ownership of it) and validate the header.

        ``expected`` keys that name header fields (``version``, ``segment_size``,
        ``req_capacity``, ``resp_capacity``, ``epoch``, ``gateway_pid``,
        ``worker_pid``) must match exactly; other keys are ignored so a welcome map can
        be passed as is. ``heartbeat_ms`` (default: ``expected['heartbeat_ms']``, else
        1000) sets how often ``beat`` stores the heartbeat: every ``heartbeat_ms / 2``.
        On any error the fd is closed and SegmentError raised.
        """
        self = object.__new__(cls)
        self._fd = fd
        self._closed = True
        self._rings = weakref.WeakSet()
        try:
            self._map(expected, require_seals)
        except BaseException:
            os.close(fd)
            raise
        if heartbeat_ms is None:
            hb = (expected or {}).get("heartbeat_ms", 1000)
            heartbeat_ms = hb if isinstance(hb, int) and hb > 0 else 1000
        self.heartbeat_interval_ns = heartbeat_ms * 1_000_000 // 2
        self._last_beat = -(1 << 62)
        return self

    def _map(self, expected: Mapping[str, object] | None, require_seals: bool) -> None:
        machine = platform.machine()
        if speedups is None and machine not in SUPPORTED_MACHINES:
            raise SegmentError(
                "architecture",
                f"this CPU is {machine or 'unknown'}, and covet's pure-Python ring client runs only "
                "on x86-64: it uses plain loads and stores and relies on x86-64's total store "
                "order where the protocol needs acquire/release atomics (workerproto/PROTOCOL.md "
                "2.6), so elsewhere a record could be read before its bytes arrive. Run the "
                "workers on x86-64, or build the SDK with a C compiler at hand (covet._speedups) and "
                "leave COVET_NO_EXTENSIONS unset",
            )
        fd = self._fd
        size = os.fstat(fd).st_size
        if size < HEADER_SIZE:
            raise SegmentError("segment_size", f"file is {size} bytes, too small")
        if require_seals:
            seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
            need = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
            if seals & need != need:
                raise SegmentError("seals", "memfd is not sealed against shrink and grow")
        (magic, version, header_size, segment_size, req_offset, req_capacity,
         resp_offset, resp_capacity, gateway_pid, worker_pid, epoch) = _HEADER.unpack(
            os.pread(fd, _HEADER.size, 0))
        if magic != MAGIC:
            raise SegmentError("magic", f"{magic!r} is not {MAGIC!r}")
        if version != VERSION:
            raise SegmentError("version", f"{version} is not {VERSION}")
        if header_size != HEADER_SIZE:
            raise SegmentError("header_size", f"{header_size} is not {HEADER_SIZE}")
        for name, cap in (("req_capacity", req_capacity), ("resp_capacity", resp_capacity)):
            if not _is_pow2(cap) or not MIN_CAPACITY <= cap <= MAX_CAPACITY:
                raise SegmentError(name, f"{cap} is not a power of two in 4096..1GiB")
        if req_offset != HEADER_SIZE:
            raise SegmentError("req_offset", f"{req_offset} is not {HEADER_SIZE}")
        if resp_offset != req_offset + CONTROL_SIZE + req_capacity:
            raise SegmentError("resp_offset", f"{resp_offset} does not follow the request ring")
        if segment_size != resp_offset + CONTROL_SIZE + resp_capacity:
            raise SegmentError("segment_size", f"{segment_size} does not match the geometry")
        if segment_size != size:
            raise SegmentError("segment_size", f"header says {segment_size}, file is {size}")
        if epoch == 0:
            raise SegmentError("epoch", "is zero")
        fields = {
            "version": version, "segment_size": segment_size, "req_capacity": req_capacity,
            "resp_capacity": resp_capacity, "epoch": epoch, "gateway_pid": gateway_pid,
            "worker_pid": worker_pid,
        }
        if expected:
            for key, value in fields.items():
                if key in expected and expected[key] != value:
                    raise SegmentError(key, f"header has {value}, expected {expected[key]!r}")
        self.version = version
        self.segment_size = segment_size
        self.req_offset = req_offset
        self.req_capacity = req_capacity
        self.resp_offset = resp_offset
        self.resp_capacity = resp_capacity
        self.gateway_pid = gateway_pid
        self.worker_pid = worker_pid
        self.epoch = epoch
        self._mm = mmap.mmap(fd, segment_size, mmap.MAP_SHARED,
                             mmap.PROT_READ | mmap.PROT_WRITE)
        self._mv = memoryview(self._mm)
        self._u32 = self._mv.cast("I")
        self._i32 = self._mv.cast("i")
        self._u64 = self._mv.cast("Q")
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once close() ran."""
        return self._closed

    @property
    def fd(self) -> int:
        """The memfd (owned by the segment)."""
        return self._fd

    @property
    def state(self) -> int:
        """The current ``worker_state``."""
        return self._u32[OFF_STATE >> 2]

    @property
    def heartbeat(self) -> int:
        """The last stored ``worker_heartbeat`` (CLOCK_MONOTONIC ns)."""
        return self._u64[OFF_HEARTBEAT >> 3]

    def set_state(self, state: int) -> None:
        """Store ``worker_state`` (0 starting, 1 ready, 2 draining, 3 closed)."""
        if state not in (STATE_STARTING, STATE_READY, STATE_DRAINING, STATE_CLOSED):
            raise ValueError(f"worker_state {state} is not 0..3")
        self._u32[OFF_STATE >> 2] = state

    def set_heartbeat(self, ns: int | None = None) -> None:
        """Store ``worker_heartbeat`` = ``ns`` (default ``time.monotonic_ns()``)."""
        if ns is None:
            ns = time.monotonic_ns()
        self._u64[OFF_HEARTBEAT >> 3] = ns
        self._last_beat = ns

    def beat(self, now_ns: int | None = None) -> bool:
        """Store the heartbeat if ``heartbeat_ms / 2`` passed since the last store;
        cheap enough to call on every loop turn. True if it stored."""
        if now_ns is None:
            now_ns = time.monotonic_ns()
        if now_ns - self._last_beat < self.heartbeat_interval_ns:
            return False
        self._u64[OFF_HEARTBEAT >> 3] = now_ns
        self._last_beat = now_ns
        return True

    def request_reader(self, gateway_bell: Doorbell) -> RingReader:
        """The worker's consumer of the request ring."""
        return RingReader(self, REQUEST_RING, gateway_bell)

    def response_writer(self, worker_bell: Doorbell, gateway_bell: Doorbell) -> RingWriter:
        """The worker's producer on the response ring."""
        return RingWriter(self, RESPONSE_RING, own=worker_bell, peer=gateway_bell)

    def close(self) -> None:
        """Release every view, unmap, close the fd. Idempotent. Readers and writers
        made from this segment raise ValueError afterwards."""
        if self._closed:
            return
        self._closed = True
        try:
            for ring in list(self._rings):
                ring.detach()
            for view in (self._u64, self._i32, self._u32, self._mv):
                view.release()
            self._mm.close()
        finally:
            os.close(self._fd)

    def __enter__(self) -> Segment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- Ring geometry shared by reader and writer -----------------------------------------


def _geometry(seg: Segment, which: int) -> tuple[int, int]:
    """The segment offset of ring ``which``'s control block, and its capacity."""
    if seg.closed:
        raise ValueError("segment is closed")
    if which == REQUEST_RING:
        return seg.req_offset, seg.req_capacity
    if which == RESPONSE_RING:
        return seg.resp_offset, seg.resp_capacity
    raise ValueError(f"ring {which} is neither REQUEST_RING nor RESPONSE_RING")



class _Ring:
    __slots__ = (
        "_capacity", "_cb", "_data", "_i32", "_mask", "_max_record", "_mm", "_mv",
        "_seg", "_u32", "_u64", "_w_head", "_w_head_cache", "_w_prod_waiting",
        "_w_sleeping", "_w_tail",
    )
    _capacity: int
    _cb: int
    _data: int
    _i32: memoryview
    _mask: int
    _max_record: int
    _mm: mmap.mmap
    _mv: memoryview
    _seg: Segment
    _u32: memoryview
    _u64: memoryview
    _w_head: int
    _w_head_cache: int
    _w_prod_waiting: int
    _w_sleeping: int
    _w_tail: int

    def __init__(self, seg: Segment, which: int) -> None:
        cb, cap = _geometry(seg, which)
        self._seg = seg
        self._mm = seg._mm
        self._mv = seg._mv
        self._u32 = seg._u32
        self._i32 = seg._i32
        self._u64 = seg._u64
        self._cb = cb
        self._data = cb + CONTROL_SIZE
        self._capacity = cap
        self._mask = cap - 1
        self._max_record = cap // 8
        self._w_tail = (cb + CB_TAIL) >> 3
        self._w_head_cache = (cb + CB_HEAD_CACHE) >> 3
        self._w_head = (cb + CB_HEAD) >> 3
        self._w_sleeping = (cb + CB_CONSUMER_SLEEPING) >> 2
        self._w_prod_waiting = (cb + CB_PRODUCER_WAITING) >> 2

    @property
    def capacity(self) -> int:
        """Data bytes in this ring."""
        return self._capacity

    @property
    def max_payload(self) -> int:
        """Largest payload of one record: ``capacity / 8 - 24``."""
        return self._max_record - FRAME_HEADER

    @property
    def consumer_sleeping(self) -> bool:
        """The ring's consumer_sleeping flag: its consumer is (about to be) asleep on
        its doorbell (PROTOCOL.md 2.5)."""
        return bool(self._u32[self._w_sleeping])

    def _check_counters(self, head: int, tail: int) -> None:
        if not head <= tail <= head + self._capacity:
            raise RingCorrupt(f"head {head} / tail {tail} break head <= tail <= head + "
                              f"capacity", self._cb)


# -- Consumer -------------------------------------------------------------------------

Handler = Callable[[int, int, int, bytes], object]


class _ReaderOps:
    """What a consumer builds on its core (``poll``, ``pending``, ``spin``,
    ``prepare_sleep``, ``end_sleep``): shared by PyRingReader and the compiled reader."""

    __slots__ = ()

    if TYPE_CHECKING:
        def poll(self, handler: Handler, limit: int = DEFAULT_BATCH) -> int: ...
        def pending(self) -> bool: ...
        def spin(self, spin_ns: int = DEFAULT_SPIN_NS) -> bool: ...
        def prepare_sleep(self) -> bool: ...
        def end_sleep(self) -> None: ...

    def read(self, limit: int = DEFAULT_BATCH) -> list[tuple[int, int, int, bytes]]:
        """``poll`` into a list of ``(type, id, flags, payload)``."""
        out: list[tuple[int, int, int, bytes]] = []
        append = out.append
        self.poll(lambda t, i, f, p: append((t, i, f, p)), limit)
        return out

    def wait(self, bell: Doorbell, timeout: float | None,
             spin_ns: int = DEFAULT_SPIN_NS) -> bool:
        """Blocking: spin, then sleep on ``bell`` (our own doorbell) for at most
        ``timeout`` s. True if a record is pending on return."""
        if self.spin(spin_ns):
            return True
        if self.prepare_sleep():
            try:
                bell.wait(timeout)
            finally:
                self.end_sleep()
        return self.pending()

    async def wait_async(self, bell: AsyncDoorbell, timeout: float | None,
                         spin_ns: int = DEFAULT_SPIN_NS) -> bool:
        """Asyncio: yield once to the loop, spin, then sleep on ``bell``. True if a
        record is pending on return."""
        await asyncio.sleep(0)
        if self.spin(spin_ns):
            return True
        if self.prepare_sleep():
            try:
                await bell.wait(timeout)
            finally:
                self.end_sleep()
        return self.pending()


class PyRingReader(_ReaderOps, _Ring):
    """The single consumer of one ring (pure Python; see the module docstring).

    ``poll`` hands each committed record, in order, to ``handler(type, id, flags,
    payload)`` where ``payload`` is a ``bytes`` copy (so a handler may keep it); PAD is
    skipped. After the batch the consumed bytes are zeroed, ``head`` stored once, then
    the producer_waiting check rings ``peer`` (the producers' doorbell).
    """

    __slots__ = ("_allowed", "_head", "_peer", "_tail_seen", "_zero")
    _allowed: frozenset[int]
    _head: int
    _peer: Doorbell
    _tail_seen: int
    _zero: memoryview

    def __init__(self, seg: Segment, which: int, peer: Doorbell,
                 allowed_types: frozenset[int] | None = None) -> None:
        super().__init__(seg, which)
        self._peer = peer
        if allowed_types is None:
            allowed_types = REQUEST_TYPES if which == REQUEST_RING else RESPONSE_TYPES
        if PAD in allowed_types:
            raise ValueError("PAD is not a frame type")
        self._allowed = allowed_types
        self._head = self._u64[self._w_head]
        self._tail_seen = self._u64[self._w_tail]
        self._check_counters(self._head, self._tail_seen)
        self._zero = memoryview(bytes(min(_ZERO_CHUNK, self._capacity)))

    @property
    def head(self) -> int:
        """Bytes released so far."""
        return self._head

    def pending(self) -> bool:
        """True if the record at ``head`` is committed (a nonzero length)."""
        return self._i32[(self._data + (self._head & self._mask)) >> 2] != 0

    def poll(self, handler: Handler, limit: int = DEFAULT_BATCH) -> int:
        """Consume up to ``limit`` committed records; return how many went to
        ``handler``. Raises RingCorrupt on a malformed record (records before it are
        still released). A handler exception propagates after releasing every record
        handed out, the failing one included."""
        mm = self._mm
        i32 = self._i32
        unpack = _RECORD_HEADER.unpack_from
        data = self._data
        mask = self._mask
        cap = self._capacity
        max_record = self._max_record
        allowed = self._allowed
        tail = self._tail_seen
        tail_room = cap - FRAME_HEADER  # last index a whole record header fits at
        head = pos = self._head
        # A batch covers at most one capacity: at head + capacity sit this batch's own
        # records, still unzeroed, which would read as committed.
        stop = head + cap
        n = 0
        try:
            while n < limit and pos < stop:
                idx = pos & mask
                off = data + idx
                # One native read of the 24-byte header: the fields are copied in
                # order, each with one aligned load, so the length (the commit word)
                # is loaded first and, x86 keeping loads in order, the rest is at least
                # as new as the commit it saw.
                if idx <= tail_room:
                    length, typ, rid, flags = unpack(mm, off)
                else:  # fewer than 24 bytes to the end: only a PAD fits here
                    length = i32[off >> 2]
                    typ = i32[(off >> 2) + 1]
                    rid = flags = 0
                if length == 0:
                    break
                size = (length + 7) & -8
                if (length < FRAME_HEADER or length > max_record or idx + size > cap
                        or typ not in allowed or flags & ~KNOWN_FLAGS):
                    if typ != PAD:
                        self._reject(length, typ, flags, idx, off)
                    if length != cap - idx or length > max_record:
                        raise RingCorrupt(f"PAD length {length} at index {idx} does not "
                                          f"end the buffer", off)
                    size = length
                if pos + size > tail:
                    tail = self._u64[self._w_tail]
                    self._tail_seen = tail
                    if pos + size > tail or tail - head > cap:
                        raise RingCorrupt(f"committed record ends at {pos + size}, beyond "
                                          f"tail {tail}", off)
                pos += size
                if typ == PAD:
                    continue
                n += 1
                handler(typ, rid, flags, mm[off + FRAME_HEADER:off + length])
        finally:
            if pos != head:
                self._release(head, pos)
        return n

    def _reject(self, length: int, typ: int, flags: int, idx: int, off: int) -> None:
        """Raise RingCorrupt for a non-PAD record header that fails a check."""
        max_record = self._max_record
        if length < FRAME_HEADER or length > max_record:
            raise RingCorrupt(f"record length {length} outside 24..{max_record}", off)
        size = (length + 7) & -8
        if idx + size > self._capacity:
            raise RingCorrupt(f"record of {size} bytes at index {idx} crosses "
                              f"the end of the buffer", off)
        if typ not in self._allowed:
            raise RingCorrupt(f"frame type {typ} not allowed on this ring", off)
        raise RingCorrupt(f"flags/reserved word {flags:#x} has unknown bits", off + 16)

    def _release(self, head: int, pos: int) -> None:
        mv = self._mv
        zero = self._zero
        chunk = len(zero)
        cap = self._capacity
        idx = head & self._mask
        todo = pos - head
        while todo:
            n = min(todo, cap - idx, chunk)
            off = self._data + idx
            mv[off:off + n] = zero[:n]
            todo -= n
            idx = (idx + n) & self._mask
        self._head = pos
        self._u64[self._w_head] = pos
        # The Go producers only ever set producer_waiting and only the consumer clears
        # it, so load-then-store is the swap: a producer that sets it again after our
        # load rechecks the space after its fence and sees the head we stored.
        _fence_and_ring(self._u32, self._w_prod_waiting, self._peer)

    # Sleeping (PROTOCOL.md 2.5, consumer side).

    def spin(self, spin_ns: int = DEFAULT_SPIN_NS) -> bool:
        """Poll ``pending`` for up to ``spin_ns``; True as soon as a record is there."""
        if self.pending():
            return True
        i32 = self._i32
        data = self._data
        mask = self._mask
        clock = time.perf_counter_ns
        deadline = clock() + spin_ns
        while clock() < deadline:
            if i32[(data + (self._head & mask)) >> 2]:
                return True
        return False

    def prepare_sleep(self) -> bool:
        """Store consumer_sleeping = 1, full fence, re-poll. True: nothing arrived and
        the caller may block on its doorbell (then call ``end_sleep``). False: a record
        arrived; the flag was cleared again."""
        u32 = self._u32
        u32[self._w_sleeping] = 1
        _fence_acquire()
        _fence_release()
        if self.pending():
            u32[self._w_sleeping] = 0
            return False
        return True

    def end_sleep(self) -> None:
        """Store consumer_sleeping = 0 after a doorbell wait."""
        self._u32[self._w_sleeping] = 0

# -- Producer -------------------------------------------------------------------------


class _WriterOps:
    """What a producer builds on its core (``try_write``, ``wake``, ``prepare_wait``):
    shared by PyRingWriter and the compiled writer."""

    __slots__ = ()

    if TYPE_CHECKING:
        _own: Doorbell
        wait_timeout: float

        @property
        def max_payload(self) -> int: ...
        def try_write(self, typ: int, rid: int, flags: int, payload: bytes | bytearray | memoryview,
                      wake: bool = True) -> bool: ...
        def wake(self) -> None: ...
        def prepare_wait(self, length: int) -> bool: ...
        def free_space(self) -> int: ...

    def _deadline(self, timeout: float | None) -> float | None:
        return None if timeout is None else time.monotonic() + timeout

    def _slice(self, deadline: float | None) -> float:
        if deadline is None:
            return self.wait_timeout
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("response ring stayed full")
        return min(left, self.wait_timeout)

    def write(self, typ: int, rid: int, flags: int, payload: bytes | bytearray | memoryview,
              timeout: float | None = None) -> None:
        """Blocking ``try_write``: while full, wake the consumer and wait on our own
        doorbell in slices of ``wait_timeout``. TimeoutError after ``timeout`` s."""
        if self.try_write(typ, rid, flags, payload):
            return
        deadline = self._deadline(timeout)
        length = FRAME_HEADER + len(payload)
        while True:
            self.wake()
            if self.prepare_wait(length):
                self._own.wait(self._slice(deadline))
            if self.try_write(typ, rid, flags, payload):
                return

    async def write_async(self, typ: int, rid: int, flags: int,
                          payload: bytes | bytearray | memoryview, bell: AsyncDoorbell,
                          timeout: float | None = None) -> None:
        """Asyncio ``write``: awaits ``bell`` (our own doorbell) while full."""
        if self.try_write(typ, rid, flags, payload):
            return
        deadline = self._deadline(timeout)
        length = FRAME_HEADER + len(payload)
        while True:
            self.wake()
            if self.prepare_wait(length):
                await bell.wait(self._slice(deadline))
            if self.try_write(typ, rid, flags, payload):
                return

    def fragments(self, payload: bytes | bytearray | memoryview, begin: bool,
                   end: bool, flags: int) -> list[tuple[int, memoryview]]:
        """Split ``payload`` into ``(flags, chunk)`` frames of at most ``max_payload``
        bytes (views, no copies), as ``write_message`` sends them."""
        view = memoryview(payload).cast("B")
        step = self.max_payload
        n = len(view)
        if n == 0:
            f = flags | (BEGIN if begin else 0) | (END if end else 0)
            return [(f, view)] if f else []
        out = []
        for start in range(0, n, step):
            f = flags
            if begin and start == 0:
                f |= BEGIN
            if end and start + step >= n:
                f |= END
            out.append((f, view[start:start + step]))
        return out

    def write_message(self, typ: int, rid: int, payload: bytes | bytearray | memoryview, *,
                      begin: bool = True, end: bool = True, flags: int = 0,
                      timeout: float | None = None) -> int:
        """Write ``payload`` as fragments of at most ``max_payload`` bytes, BEGIN on the
        first (if ``begin``), END on the last (if ``end``), ``flags`` on all; blocks
        while full. An empty payload is one frame, or none if it would carry no flag.
        Returns the number of frames. Wakes the consumer once at the end."""
        frags = self.fragments(payload, begin, end, flags)
        for f, chunk in frags:
            if not self.try_write(typ, rid, f, chunk, wake=False):
                self.write(typ, rid, f, chunk, timeout)
        self.wake()
        return len(frags)

    async def write_message_async(self, typ: int, rid: int,
                                  payload: bytes | bytearray | memoryview,
                                  bell: AsyncDoorbell, *, begin: bool = True,
                                  end: bool = True, flags: int = 0,
                                  timeout: float | None = None) -> int:
        """Asyncio ``write_message``."""
        frags = self.fragments(payload, begin, end, flags)
        for f, chunk in frags:
            if not self.try_write(typ, rid, f, chunk, wake=False):
                await self.write_async(typ, rid, f, chunk, bell, timeout)
        self.wake()
        return len(frags)


class PyRingWriter(_WriterOps, _Ring):
    """The single producer of one ring, pure Python (the worker on the response ring; tests also
    use it as the only producer of a request ring). It owns ``tail``; ``head_cache``
    is kept in a local and stored to the control block whenever refreshed."""

    __slots__ = ("_head_cache", "_own", "_peer", "_tail", "wait_timeout")
    _head_cache: int
    _own: Doorbell
    _peer: Doorbell
    _tail: int
    wait_timeout: float

    def __init__(self, seg: Segment, which: int, *, own: Doorbell, peer: Doorbell,
                 wait_timeout: float = 0.1) -> None:
        super().__init__(seg, which)
        self._own = own
        self._peer = peer
        self.wait_timeout = wait_timeout
        self._tail = self._u64[self._w_tail]
        self._head_cache = self._u64[self._w_head]
        self._check_counters(self._head_cache, self._tail)

    @property
    def tail(self) -> int:
        """Bytes claimed so far."""
        return self._tail

    def _claim(self, length: int) -> int:
        """Bytes ``length`` needs including any PAD to the wrap; 0 if they do not fit."""
        size = (length + 7) & -8
        rest = self._capacity - (self._tail & self._mask)
        if size > rest:
            size += rest
        tail = self._tail
        if tail + size - self._head_cache > self._capacity:
            head = self._u64[self._w_head]
            if not self._head_cache <= head <= tail:
                raise RingCorrupt(f"head moved from {self._head_cache} to {head} "
                                  f"(tail {tail})", self._cb + CB_HEAD)
            self._head_cache = head
            self._u64[self._w_head_cache] = head
            if tail + size - head > self._capacity:
                return 0
        return size

    def try_write(self, typ: int, rid: int, flags: int, payload: bytes | bytearray |
                  memoryview, wake: bool = True) -> bool:
        """Write and commit one record; False (nothing written) if the ring is full.
        ``wake=False`` skips the consumer_sleeping check: call ``wake()`` after the
        batch."""
        n = len(payload)
        length = FRAME_HEADER + n
        if length > self._max_record or typ == PAD or not 0 < typ < 1 << 31 or flags & ~KNOWN_FLAGS:
            self._refuse(typ, flags, n)
        tail = self._tail
        idx = tail & self._mask
        aligned = (length + 7) & -8
        size = aligned
        # Fast path: fits before the wrap and within the cached head.
        if aligned > self._capacity - idx or tail + aligned - self._head_cache > self._capacity:
            size = self._claim(length)
            if not size:
                return False
        new_tail = tail + size
        self._tail = new_tail
        self._u64[self._w_tail] = new_tail  # tail before the commit (PROTOCOL.md 2.2)
        if size != aligned:
            # PAD to the end of the buffer, then the record at index 0.
            i32 = self._i32
            pad = self._data + idx
            i32[(pad >> 2) + 1] = PAD
            i32[pad >> 2] = self._capacity - idx
            idx = 0
        off = self._data + idx
        mv = self._mv
        if n:
            mv[off + FRAME_HEADER:off + length] = payload
        # type, id, flags and the zero reserved word in one store, then the commit.
        _TYPE_ID_FLAGS.pack_into(mv, off + 4, typ, rid, flags)
        self._i32[off >> 2] = length
        if wake:
            self.wake()
        return True

    def _refuse(self, typ: int, flags: int, n: int) -> None:
        if FRAME_HEADER + n > self._max_record:
            raise ValueError(f"payload of {n} bytes exceeds max_payload {self.max_payload}")
        if flags & ~KNOWN_FLAGS:
            raise ValueError(f"unknown flag bits in {flags:#x}")
        raise ValueError(f"frame type {typ} cannot be written")

    def wake(self) -> None:
        """Full fence, then ring the consumer if it sleeps (PROTOCOL.md 2.5)."""
        # Only producers clear consumer_sleeping and we are the only producer, so a
        # plain store is the swap; a consumer that set it after our load re-polls
        # after its fence and finds our commit.
        _fence_and_ring(self._u32, self._w_sleeping, self._peer)

    def prepare_wait(self, length: int) -> bool:
        """Ring full: store producer_waiting = 1, full fence, recheck. True if a record
        of ``length`` bytes (headers included) still does not fit and the caller may
        block on its own doorbell."""
        self._u32[self._w_prod_waiting] = 1
        _fence_acquire()
        _fence_release()
        return self._claim(length) == 0

    def free_space(self) -> int:
        """Bytes the consumer has released and no record claims, with ``head`` loaded
        now (a record also needs its header, alignment and any PAD to the wrap)."""
        head = self._u64[self._w_head]
        tail = self._tail
        if not self._head_cache <= head <= tail:
            raise RingCorrupt(f"head moved from {self._head_cache} to {head} "
                              f"(tail {tail})", self._cb + CB_HEAD)
        self._head_cache = head
        self._u64[self._w_head_cache] = head
        return self._capacity - (tail - head)


# -- The implementation in use ---------------------------------------------------------

if TYPE_CHECKING or speedups is None:
    RingReader = PyRingReader
    RingWriter = PyRingWriter
else:
    speedups.init_ring(RingCorrupt)

    class RingReader(_ReaderOps, speedups.Reader):
        """The single consumer of one ring, compiled (covet/_speedups.c); the same
        interface and behaviour as PyRingReader."""

        def __init__(self, seg: Segment, which: int, peer: Doorbell,
                     allowed_types: frozenset[int] | None = None) -> None:
            cb, cap = _geometry(seg, which)
            if allowed_types is None:
                allowed_types = REQUEST_TYPES if which == REQUEST_RING else RESPONSE_TYPES
            super().__init__(seg._mm, cb, cap, peer, allowed_types)
            seg._rings.add(self)

    class RingWriter(_WriterOps, speedups.Writer):
        """The single producer of one ring, compiled (covet/_speedups.c); the same
        interface and behaviour as PyRingWriter."""

        def __init__(self, seg: Segment, which: int, *, own: Doorbell, peer: Doorbell,
                     wait_timeout: float = 0.1) -> None:
            cb, cap = _geometry(seg, which)
            super().__init__(seg._mm, cb, cap, peer)
            self._own = own
            self.wait_timeout = wait_timeout
            seg._rings.add(self)
