"""A worker that breaks the response rules of PROTOCOL.md, for the gateway's tests.

It registers like a real worker of integration/apps/gwapp.py (same app name and route
manifest), waits for its first request and answers it wrongly, as the mode in argv[1]
says:

- ``window``: a streamed body of one byte more than its response window (2.7) allows
  before any WINDOW grant;
- ``resp-length``: a RESP frame (2.4) whose head announces 5 bytes of body and which
  carries 6;
- ``resp-flags``: a RESP frame flagged BEGIN only.

The gateway must end this worker's session and nothing else. It exits 0 when the
gateway closes its control socket.
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
    mode = sys.argv[1]
    ctl, seg, worker_bell, gateway_bell, reader, writer = attach("gwapp", app.manifest())

    got: list[int] = []
    while not got:
        reader.poll(lambda typ, rid, flags, payload: got.append(rid) if typ == _shmring.REQ_HEAD else None)
        if not got:
            reader.wait(worker_bell, 0.05)
    rid = got[0]
    if mode == "window":
        writer.write_message(_shmring.RESP_HEAD, rid, _proto.encode_response_head(200, [], -1), timeout=5)
        body = b"g" * (_proto.RESPONSE_WINDOW + 1)
        writer.write_message(_shmring.RESP_BODY, rid, body, end=False, timeout=5)
    elif mode == "resp-length":
        writer.write(_shmring.RESP, rid, _shmring.BEGIN | _shmring.END, _proto.encode_response_head(200, [], 5) + b"hello!")
    elif mode == "resp-flags":
        writer.write(_shmring.RESP, rid, _shmring.BEGIN, _proto.encode_response_head(200, [], 5) + b"hello")
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    # Wait for the gateway to hang up on us.
    select.select([ctl.fileno()], [], [], 30)
    return 0 if ctl.sock.recv(1) == b"" else 1


if __name__ == "__main__":
    sys.exit(main())
