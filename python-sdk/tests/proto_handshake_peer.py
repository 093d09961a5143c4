"""Worker side of workerproto's TestPythonHandshake (run by the Go test, not pytest).

It connects as the environment says (COVET_CONTROL_FD=3), sends hello, receives the
welcome with its three descriptors, prints the welcome and the (st_dev, st_ino) of
each received descriptor as one JSON line, answers one ping, and says bye.
"""

from __future__ import annotations

import json
import os
import sys

from covet import _proto


def main() -> int:
    ch = _proto.ControlChannel.from_env()
    ch.hello(
        "py-peer",
        [
            {"method": "GET", "path": "/users/{id:int}", "kind": "http", "options": {"name": "user", "roles": ["admin"]}},
            {"method": "*", "path": "/ws", "kind": "ws", "options": {}},
        ],
        token=os.environ.get("PEER_TOKEN", ""),
    )
    welcome, fds = ch.recv_welcome()
    stats = [os.fstat(fd) for fd in fds]
    print(json.dumps({"welcome": welcome._asdict(), "files": [[s.st_dev, s.st_ino] for s in stats]}), flush=True)
    ping = ch.read_message()
    if ping["type"] != "ping":
        ch.send_error("protocol", f"expected ping, got {ping['type']}")
        return 1
    ch.write_message({"type": "pong", "seq": ping["seq"]})
    ch.write_message({"type": "bye", "reason": "done"})
    for fd in fds:
        os.close(fd)
    ch.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
