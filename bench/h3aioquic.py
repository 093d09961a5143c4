"""HTTP/3 load with aioquic's client, for bench/tls.py's h3-aioquic cells; run it with
bench/.venv's python (aioquic comes with hypercorn[h3]).

    python h3aioquic.py -c 8 -m 10 -d 10 -w 2 --ca CERT --body BODY https://127.0.0.1:PORT/json

c QUIC connections, m requests in flight on each, for w seconds unmeasured and then d
seconds measured on the same connections; every answer is checked (status 200, the
media type, the exact body; a wrong one, or one not there within 5 s, is an error).
Prints "TLSLOAD-MARK start" and "TLSLOAD-MARK stop" around the measured time and then
"TLSLOAD " and a JSON object, as bench/tlsload does. One Python thread: on a small
machine it is the bottleneck well before a fast server is.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit

from aioquic.asyncio import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import QuicEvent


class Answer:
    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.pending: dict[int, Answer] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        for e in self.h3.handle_event(event):
            self.h3_event(e)

    def h3_event(self, e: H3Event) -> None:
        if not isinstance(e, (HeadersReceived, DataReceived)):
            return
        a = self.pending.get(e.stream_id)
        if a is None:
            return
        if isinstance(e, HeadersReceived):
            a.headers.extend(e.headers)
        else:
            a.body += e.data
        if e.stream_ended:
            del self.pending[e.stream_id]
            if not a.done.done():
                a.done.set_result(None)

    async def get(self, authority: bytes, path: bytes) -> Answer:
        sid = self._quic.get_next_available_stream_id()
        a = Answer()
        self.pending[sid] = a
        self.h3.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", authority),
                                   (b":path", path)], end_stream=True)
        self.transmit()
        try:
            await asyncio.wait_for(a.done, 5)
        finally:
            self.pending.pop(sid, None)
        return a


def check(a: Answer, ctype: str, body: str) -> str | None:
    h = dict(a.headers)
    if h.get(b":status") != b"200":
        return f"status {h.get(b':status')!r}"
    if ctype and not h.get(b"content-type", b"").decode().startswith(ctype):
        return f"Content-Type {h.get(b'content-type')!r}"
    if body and bytes(a.body) != body.encode():
        return f"body {bytes(a.body)[:80]!r}"
    return None


async def run(args: argparse.Namespace) -> dict[str, object]:
    u = urlsplit(args.url)
    host, port = u.hostname or "127.0.0.1", u.port or 443
    authority, path = u.netloc.encode(), (u.path or "/").encode()
    cfg = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name=host)
    cfg.load_verify_locations(args.ca)
    measuring = False
    ok = bad = 0
    first_error = ""
    lat: list[float] = []
    stop = asyncio.Event()

    async def one(c: Client) -> None:
        nonlocal ok, bad, first_error
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                why = check(await c.get(authority, path), args.type, args.body)
            except Exception as e:  # a timeout, a reset stream, a closed connection
                why = f"{type(e).__name__}: {e}"
            if stop.is_set() or not measuring:
                continue
            if why:
                bad += 1
                first_error = first_error or why
                await asyncio.sleep(0.01)
            else:
                ok += 1
                lat.append(time.perf_counter() - t0)

    async def conn() -> None:
        async with connect(host, port, configuration=cfg, create_protocol=Client) as c:
            assert isinstance(c, Client)
            await asyncio.gather(*(one(c) for _ in range(args.m)))

    tasks = [asyncio.create_task(conn()) for _ in range(args.c)]
    await asyncio.sleep(args.w)
    print("TLSLOAD-MARK start", flush=True)
    measuring = True
    t0 = time.perf_counter()
    await asyncio.sleep(args.d)
    measuring = False
    elapsed = time.perf_counter() - t0
    print("TLSLOAD-MARK stop", flush=True)
    stop.set()
    await asyncio.wait(tasks, timeout=10)
    lat.sort()

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1e6 if lat else 0.0

    out: dict[str, object] = {"requests": ok, "errors": bad, "seconds": elapsed, "rps": ok / elapsed,
                              "p50_us": pct(0.5), "p99_us": pct(0.99), "connections": args.c, "streams": args.m}
    if first_error:
        out["first_error"] = first_error
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-c", type=int, default=8, help="QUIC connections")
    ap.add_argument("-m", type=int, default=10, help="requests in flight per connection")
    ap.add_argument("-d", type=float, default=10, help="measured seconds")
    ap.add_argument("-w", type=float, default=2, help="seconds of load before")
    ap.add_argument("--ca", required=True, help="the certificate to trust")
    ap.add_argument("--type", default="", help="media type every answer must have")
    ap.add_argument("--body", default="", help="the body every answer must have")
    ap.add_argument("url")
    args = ap.parse_args()
    print("TLSLOAD " + json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
