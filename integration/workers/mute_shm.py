"""A worker that answers correctly but never rings the gateway's doorbell.

It registers like a real worker of integration/apps/gwapp.py (same app name and route
manifest) and answers every request with 200 "mute", 5 ms after taking it off the ring,
writing its frames without the wakeup PROTOCOL.md 2.5 asks for. The gateway's reader
must still find each answer when its bounded sleep ends, and count it in
covet_worker_late_wakeups_total. It exits when the gateway closes its control socket.
"""

from __future__ import annotations

import os
import select
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "apps"))

from gwapp import app  # noqa: E402

from covet import _proto, _shmring  # noqa: E402
from shmworker import attach  # noqa: E402

BODY = b"mute"
HEAD = _proto.encode_response_head(200, [("content-type", b"text/plain")], len(BODY))
ONE = _shmring.BEGIN | _shmring.END


def main() -> int:
    ctl, seg, worker_bell, _, reader, writer = attach("gwapp", app.manifest())
    ctl_poll = select.poll()
    ctl_poll.register(ctl.fileno(), select.POLLIN | select.POLLHUP)
    got: list[int] = []

    def on_frame(typ: int, rid: int, flags: int, payload: bytes) -> None:
        if typ == _shmring.REQ_HEAD and flags & ONE == ONE:
            got.append(rid)

    while True:
        reader.poll(on_frame)
        for rid in got:
            time.sleep(0.005)  # the gateway's reader is asleep by now
            # wake=False: the frames are committed, the doorbell is not rung.
            if not (writer.try_write(_shmring.RESP_HEAD, rid, ONE, HEAD, False)
                    and writer.try_write(_shmring.RESP_BODY, rid, ONE, BODY, False)):
                return 2
        got.clear()
        seg.beat()
        if ctl_poll.poll(0) and ctl.sock.recv(1, socket.MSG_PEEK) == b"":
            return 0  # the gateway hung up
        reader.wait(worker_bell, 0.05)


if __name__ == "__main__":
    sys.exit(main())
