"""Test-only gateway side of the data plane, written independently of covet._shmring.

It builds segments with ``struct`` exactly as PROTOCOL.md 2.1 lays them out, decodes
ring bytes with ``struct`` (2.2) and can act as a single request-ring producer with
plain ``struct.pack_into`` so that the worker's reader is checked against bytes it did
not write itself.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
from dataclasses import dataclass

HEADER = struct.Struct("<8sIIQQQQQIIQ")
RECORD = struct.Struct("<iiQII")  # length, type, id, flags, reserved
SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL


def header_fields(req_capacity: int = 4096, resp_capacity: int = 4096, *,
                  epoch: int = 0x1122334455667788, gateway_pid: int = 4242,
                  worker_pid: int = 0) -> dict[str, object]:
    resp_offset = 4096 + 1024 + req_capacity
    return {
        "magic": b"COVETSHM", "version": 1, "header_size": 4096,
        "segment_size": resp_offset + 1024 + resp_capacity, "req_offset": 4096,
        "req_capacity": req_capacity, "resp_offset": resp_offset,
        "resp_capacity": resp_capacity, "gateway_pid": gateway_pid,
        "worker_pid": worker_pid, "epoch": epoch,
    }


def make_memfd(req_capacity: int = 4096, resp_capacity: int = 4096, *, seal: bool = True,
               file_size: int | None = None, **override: object) -> int:
    """A memfd holding a header per PROTOCOL.md 2.1 (fields overridable), sealed."""
    f = header_fields(req_capacity, resp_capacity)
    f.update(override)
    fd = os.memfd_create("covet-test", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    size = file_size if file_size is not None else req_capacity + resp_capacity + 6144
    os.ftruncate(fd, size)
    os.pwrite(fd, HEADER.pack(*f.values()), 0)
    if seal:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)
    return fd


def make_bell() -> int:
    return os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)


def bell_count(fd: int) -> int:
    """Read (and reset) an eventfd; 0 if it was not rung."""
    try:
        return os.eventfd_read(fd)
    except BlockingIOError:
        return 0


@dataclass
class Rec:
    index: int
    length: int
    type: int
    id: int
    flags: int
    reserved: int
    payload: bytes


class RawRing:
    """Independent struct-level view of one ring over its own mapping of the memfd."""

    def __init__(self, fd: int, which: int) -> None:
        self.mm = mmap.mmap(fd, os.fstat(fd).st_size)
        f = HEADER.unpack_from(self.mm, 0)
        self.cb = f[4] if which == 0 else f[6]
        self.capacity = f[5] if which == 0 else f[7]
        self.data = self.cb + 1024

    def close(self) -> None:
        self.mm.close()

    def u64(self, field: int) -> int:
        return int(struct.unpack_from("<Q", self.mm, self.cb + field)[0])

    def set_u64(self, field: int, value: int) -> None:
        struct.pack_into("<Q", self.mm, self.cb + field, value)

    def u32(self, field: int) -> int:
        return int(struct.unpack_from("<I", self.mm, self.cb + field)[0])

    def set_u32(self, field: int, value: int) -> None:
        struct.pack_into("<I", self.mm, self.cb + field, value)

    tail = property(lambda self: self.u64(0))
    head = property(lambda self: self.u64(256))
    sleeping = property(lambda self: self.u32(384))
    waiting = property(lambda self: self.u32(512))

    def data_bytes(self) -> bytes:
        return self.mm[self.data:self.data + self.capacity]

    def decode(self, start: int, end: int) -> list[Rec]:
        """Decode the records between absolute positions start and end."""
        out = []
        pos = start
        while pos < end:
            idx = pos % self.capacity
            length, typ = struct.unpack_from("<ii", self.mm, self.data + idx)
            if typ == 1:
                out.append(Rec(idx, length, typ, 0, 0, 0, b""))
                pos += length
                continue
            _, _, rid, flags, rsvd = RECORD.unpack_from(self.mm, self.data + idx)
            payload = self.mm[self.data + idx + 24:self.data + idx + length]
            out.append(Rec(idx, length, typ, rid, flags, rsvd, payload))
            pos += (length + 7) & -8
        return out

    def put_raw(self, index: int, raw: bytes) -> None:
        self.mm[self.data + index:self.data + index + len(raw)] = raw

    def produce(self, typ: int, rid: int, flags: int, payload: bytes) -> None:
        """Append one record as a lone gateway producer would (no fullness check)."""
        length = 24 + len(payload)
        size = (length + 7) & -8
        tail = self.tail
        idx = tail % self.capacity
        rest = self.capacity - idx
        if size > rest:
            self.set_u64(0, tail + rest + size)
            struct.pack_into("<i", self.mm, self.data + idx + 4, 1)
            struct.pack_into("<i", self.mm, self.data + idx, rest)
            idx = 0
        else:
            self.set_u64(0, tail + size)
        base = self.data + idx
        self.mm[base + 24:base + length] = payload
        struct.pack_into("<iQII", self.mm, base + 4, typ, rid, flags, 0)
        struct.pack_into("<i", self.mm, base, length)  # commit last
