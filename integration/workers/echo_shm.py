"""Echo worker over the shared-memory transport, for the transport test and benchmark.

It registers with the gateway side exactly as a real worker does (HELLO on the control
socket, WELCOME with the memfd and doorbells, worker_state = ready), then answers
every message it receives on the request ring with one message of type RESP_BODY and
the same id:

  --mode raw      the payload bytes unchanged (the transport test checks them);
  --mode msgpack  the payload decoded as MessagePack and encoded again (the same
                  work the Unix-socket echo worker of the benchmark does).

It exits when the control socket reaches EOF (the gateway side closed it).
"""

from __future__ import annotations

import argparse
import os
import select
import sys

import msgpack

from covet._shmring import BEGIN, END, RESP_BODY
from shmworker import attach


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("raw", "msgpack"), default="raw")
    args = ap.parse_args()

    ctl, seg, worker_bell, _, reader, writer = attach("echo", [])

    # Gateway EOF ends the loop: poll the control socket along with the doorbell.
    ctl_poll = select.poll()
    ctl_poll.register(ctl.fileno(), select.POLLIN | select.POLLHUP)

    out: list[tuple[int, bytes]] = []
    partial: dict[int, list[bytes]] = {}
    transform = msgpack_echo if args.mode == "msgpack" else None

    def on_frame(typ: int, rid: int, flags: int, payload: bytes) -> None:
        if flags & BEGIN and flags & END:
            out.append((rid, payload))
            return
        if flags & BEGIN:
            partial[rid] = [payload]
            return
        parts = partial[rid]
        parts.append(payload)
        if flags & END:
            del partial[rid]
            out.append((rid, b"".join(parts)))

    poll = reader.poll
    try_write = writer.try_write
    write_message = writer.write_message
    max_payload = writer.max_payload
    flags_one = BEGIN | END
    idle = 0
    while True:
        n = poll(on_frame)
        if out:
            # Wake the gateway after the first answer, so it consumes while we write
            # the rest of the batch, and once more at the end.
            first = True
            for rid, payload in out:
                if transform is not None:
                    payload = transform(payload)
                if len(payload) > max_payload or not try_write(RESP_BODY, rid, flags_one, payload, False):
                    write_message(RESP_BODY, rid, payload)
                if first:
                    writer.wake()
                    first = False
            out.clear()
            writer.wake()
        if n:
            idle = 0
            continue
        seg.beat()
        # Sleep on the doorbell (bounded); between sleeps, check for gateway EOF.
        idle += 1
        if idle % 8 == 0 and ctl_poll.poll(0):
            return 0
        reader.wait(worker_bell, 0.05)


_pack = msgpack.Packer(use_bin_type=True).pack


def msgpack_echo(payload: bytes) -> bytes:
    return _pack(msgpack.unpackb(payload))  # type: ignore[no-any-return]


if __name__ == "__main__":
    if os.environ.get("COVET_ECHO_PROFILE"):  # write a cProfile of the run there
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
        try:
            main()
        finally:
            prof.disable()
            prof.dump_stats(os.environ["COVET_ECHO_PROFILE"])
        sys.exit(0)
    try:
        sys.exit(main())
    except (BrokenPipeError, ConnectionResetError, KeyboardInterrupt):
        os._exit(0)
