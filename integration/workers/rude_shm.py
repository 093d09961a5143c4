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
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "apps"))

from gwapp import app  # noqa: E402

from covet import _proto, _shmring  # noqa: E402
from shmworker import attach  # noqa: E402


def overrun(ctl: Any, reader: Any, worker_bell: Any, writer: Any, rid: int) -> None:
    """Send one byte more than the window allows. The gateway grants bytes back as it
    writes them to the client, so a fixed window + 1 can be granted away while it is
    on its way; this tops the body up to window + every grant seen + 1 until the
    gateway hangs up. Once the client stops reading the grants stop too, so the
    overrun is certain."""
    granted = sent = 0

    def on(typ: int, r: int, flags: int, payload: bytes) -> None:
        nonlocal granted
        if typ == _shmring.WINDOW and r == rid:
            granted += _proto.decode_window_payload(payload)

    while not select.select([ctl.fileno()], [], [], 0)[0]:
        more = _proto.RESPONSE_WINDOW + granted + 1 - sent
        if more > 0:
            try:
                writer.write_message(_shmring.RESP_BODY, rid, b"g" * more, end=False, timeout=5)
            except Exception:  # the gateway ended the session: the ring is no longer read
                return
            sent += more
        reader.poll(on)
        reader.wait(worker_bell, 0.05)


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
        overrun(ctl, reader, worker_bell, writer, rid)
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
