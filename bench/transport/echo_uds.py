"""Echo worker for the Unix-socket baseline of the transport benchmark.

This is the socket transport that pipe/socket-based app servers use: length-prefixed
frames over a stream socket, buffered reads, one write per response. Each frame is
``u32 LE length | u64 LE id | msgpack payload``; the worker decodes the payload,
re-encodes it and sends it back with the same id, exactly as the shared-memory echo
worker does, so the two runs differ only in the transport.
"""

from __future__ import annotations

import os
import socket
import struct
import sys

import msgpack

_HDR = struct.Struct("<IQ")


def main() -> None:
    fd = int(sys.argv[1])
    sock = socket.socket(fileno=fd)
    rfile = sock.makefile("rb", buffering=65536)
    unpackb = msgpack.unpackb
    packb = msgpack.Packer(use_bin_type=True).pack  # as the shm echo worker does
    unpack_hdr = _HDR.unpack
    pack_hdr = _HDR.pack
    send = sock.sendall
    read = rfile.read
    while True:
        hdr = read(12)
        if len(hdr) < 12:
            return
        length, rid = unpack_hdr(hdr)
        payload = read(length)
        out = packb(unpackb(payload))
        send(pack_hdr(len(out), rid) + out)


if __name__ == "__main__":
    try:
        main()
    except (BrokenPipeError, ConnectionResetError, KeyboardInterrupt):
        pass
    os._exit(0)
