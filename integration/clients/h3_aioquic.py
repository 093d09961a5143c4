"""An HTTP/3 client on aioquic for integration/h3_test.go.

    h3_aioquic.py HOST PORT CAFILE METHOD PATH BODY [METHOD PATH BODY ...]

Sends each request (BODY is "-" for none) on one QUIC connection, in turn, with
SNI "localhost", trusting CAFILE, and prints one JSON object per response:
{"status": int, "headers": {name: value}, "body": str}.
"""

from __future__ import annotations

import asyncio
import json
import sys

from aioquic.asyncio import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import QuicEvent


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.responses: dict[int, dict] = {}
        self.waiting: dict[int, asyncio.Future[dict]] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        for ev in self.h3.handle_event(event):
            self.h3_event(ev)

    def h3_event(self, ev: H3Event) -> None:
        if not isinstance(ev, (HeadersReceived, DataReceived)):
            return
        r = self.responses.setdefault(ev.stream_id, {"headers": {}, "body": b""})
        if isinstance(ev, HeadersReceived):
            for name, value in ev.headers:
                r["headers"][name.decode()] = value.decode()
        else:
            r["body"] += ev.data
        if ev.stream_ended and ev.stream_id in self.waiting:
            self.waiting.pop(ev.stream_id).set_result(r)

    async def request(self, authority: str, method: str, path: str, body: bytes | None) -> dict:
        sid = self._quic.get_next_available_stream_id()
        headers = [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
        ]
        if body is not None:
            headers.append((b"content-length", str(len(body)).encode()))
        self.h3.send_headers(sid, headers, end_stream=body is None)
        if body is not None:
            self.h3.send_data(sid, body, end_stream=True)
        fut: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
        self.waiting[sid] = fut
        self.transmit()
        return await asyncio.wait_for(fut, 10)


async def main(argv: list[str]) -> None:
    host, port, cafile, reqs = argv[0], int(argv[1]), argv[2], argv[3:]
    cfg = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name="localhost")
    cfg.load_verify_locations(cafile)
    async with connect(host, port, configuration=cfg, create_protocol=Client) as client:
        assert isinstance(client, Client)
        while reqs:
            method, path, body = reqs[0], reqs[1], reqs[2]
            reqs = reqs[3:]
            r = await client.request(f"localhost:{port}", method, path, None if body == "-" else body.encode())
            r["status"] = int(r["headers"].pop(":status"))
            r["body"] = r["body"].decode()
            print(json.dumps(r), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
