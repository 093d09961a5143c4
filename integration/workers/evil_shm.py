"""A worker that breaks the data-plane protocol, for the gateway's fault tests.

It registers like a real worker of integration/apps/gwapp.py (same app name and route
manifest), waits for its first request, and answers it with a record whose length
field is out of range (PROTOCOL.md section 5). The gateway must end this worker's
session and nothing else. It exits when the gateway closes its control socket.
"""

from __future__ import annotations

import os
import select
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "apps"))

from gwapp import app  # noqa: E402

from covet import _shmring  # noqa: E402
from shmworker import attach  # noqa: E402


def main() -> int:
    ctl, seg, worker_bell, gateway_bell, reader, writer = attach("gwapp", app.manifest())

    got: list[int] = []
    while not got:
        reader.poll(lambda typ, rid, flags, payload: got.append(rid))
        if not got:
            reader.wait(worker_bell, 0.05)
    # A record header whose commit word (its length) is far beyond max_record.
    data = seg.resp_offset + _shmring.CONTROL_SIZE
    seg._u64[(seg.resp_offset + _shmring.CB_TAIL) >> 3] = 32
    struct.pack_into("<iQQ", seg._mv, data + 4, _shmring.RESP_HEAD, got[0], _shmring.BEGIN | _shmring.END)
    seg._i32[data >> 2] = 1 << 30
    gateway_bell.ring()
    del writer
    # Wait for the gateway to hang up on us.
    select.select([ctl.fileno()], [], [], 30)
    return 0 if ctl.sock.recv(1) == b"" else 1


if __name__ == "__main__":
    sys.exit(main())
