"""A worker that is slow to release what it read, for the exactly-once tests.

It registers like a real worker of integration/apps/gwapp.py (same app name and route
manifest) and reads its request ring. Inside the poll that reads its first REQ_HEAD,
before the poll releases any record, it breaks the protocol (a RESP frame flagged
BEGIN only), waits until the gateway has hung up on it and a while longer, and only
then lets the poll go on. Every request whose REQ_HEAD it read it then "runs" as the
app's POST /once does: it appends the request id to once.log in $COVET_TEST_DIR, as
the app does (and to taker.log). With argv[1] == "linger" it reads nothing after the
record it held, and keeps its control socket open for 8 s more before it exits, so
the gateway cannot know it has gone: what it left on the ring must not run elsewhere.

A worker may read records and release them a little later; PROTOCOL.md 1.1 makes a
request taken once released, so the gateway must not run any of these again
elsewhere. It exits 0 once it has written the ids.
"""

from __future__ import annotations

import os
import re
import select
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "apps"))

from gwapp import app  # noqa: E402

from covet import _proto, _shmring  # noqa: E402
from shmworker import attach  # noqa: E402

# The tests send request ids of this form (X-Request-ID); the REQ_HEAD carries it.
REQUEST_ID = re.compile(r"once-[0-9]+")


class StopReading(Exception):
    """Ends the poll: linger mode reads nothing after the record it held."""


def main() -> int:
    state = os.environ["COVET_TEST_DIR"]
    linger = sys.argv[1:] == ["linger"]
    ctl, seg, worker_bell, gateway_bell, reader, writer = attach("gwapp", app.manifest())
    taken: list[bytes] = []
    hung_up = False

    def on_record(typ: int, rid: int, flags: int, payload: bytes) -> None:
        nonlocal hung_up
        if typ != _shmring.REQ_HEAD:
            return
        if hung_up and linger:
            raise StopReading
        request_id = _proto.decode_head(bytes(payload)).request_id
        if not REQUEST_ID.fullmatch(request_id):
            return
        taken.append(request_id.encode())
        if hung_up:
            return
        # Still inside the poll: this record and any after it are read, not released.
        writer.write(_shmring.RESP, rid, _shmring.BEGIN, _proto.encode_response_head(200, [], 2) + b"no")
        writer.wake()
        select.select([ctl.fileno()], [], [], 30)
        hung_up = ctl.sock.recv(1) == b""
        time.sleep(0.5)  # the gateway's teardown runs now, while we hold the records

    while not hung_up:
        try:
            reader.poll(on_record)
        except StopReading:
            pass
        if not hung_up:
            reader.wait(worker_bell, 0.05)
    if not linger:
        reader.poll(on_record)  # what else the gateway had written: read, so taken
    lines = b"".join(t + b"\n" for t in taken)
    for name in ("once.log", "taker.log"):  # taker.log: which ones were ours
        with open(os.path.join(state, name), "ab") as f:
            f.write(lines)
    if linger:
        time.sleep(8)
    return 0


if __name__ == "__main__":
    sys.exit(main())
