"""A worker that ignores its response window, for the gateway's flow-control test.

It registers like a real worker of integration/apps/gwapp.py (same app name and route
manifest), waits for its first request, and answers it with a streamed body of one
byte more than PROTOCOL.md 2.7 allows before any WINDOW grant. The gateway must end
this worker's session and nothing else. It exits when the gateway closes its control
socket.
"""

from __future__ import annotations

import os
import select
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "apps"))

from gwapp import app  # noqa: E402

from covet import _proto, _shmring  # noqa: E402
from shmworker import attach  # noqa: E402


def main() -> int:
    ctl, seg, worker_bell, gateway_bell, reader, writer = attach("gwapp", app.manifest())

    got: list[int] = []
    while not got:
        reader.poll(lambda typ, rid, flags, payload: got.append(rid) if typ == _shmring.REQ_HEAD else None)
        if not got:
            reader.wait(worker_bell, 0.05)
    rid = got[0]
    writer.write_message(_shmring.RESP_HEAD, rid, _proto.encode_response_head(200, [], -1), timeout=5)
    body = b"g" * (_proto.RESPONSE_WINDOW + 1)
    writer.write_message(_shmring.RESP_BODY, rid, body, end=False, timeout=5)
    # Wait for the gateway to hang up on us.
    select.select([ctl.fileno()], [], [], 30)
    return 0 if ctl.sock.recv(1) == b"" else 1


if __name__ == "__main__":
    sys.exit(main())
