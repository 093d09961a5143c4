"""A raw ASGI 3 app, no framework (served by uvicorn and by Granian's ASGI interface).

Besides the HTTP workloads, a WebSocket echo at /ws/echo for bench/ws.py: every text or
binary message comes back as it came."""

import asyncio
import json

from common import BODY_1M, BODY_10K, JSON_MESSAGE, PLAINTEXT, SLEEP_S, SLEPT

TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
JSON = [(b"content-type", b"application/json")]
OCTET = [(b"content-type", b"application/octet-stream")]
NOT_FOUND = (404, TEXT, b"Not Found")
STATIC = {
    "/plaintext": (200, TEXT, PLAINTEXT),
    "/json": None,  # rendered per request, as a JSON endpoint would
    "/10k": (200, OCTET, BODY_10K),
    "/1m": (200, OCTET, BODY_1M),
}


async def _send(send, status, headers, body):
    await send({"type": "http.response.start", "status": status,
                "headers": headers + [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive):
    chunks = []
    while True:
        msg = await receive()
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body"):
            return b"".join(chunks)


async def _ws(scope, receive, send):
    if (await receive())["type"] != "websocket.connect":
        return
    if scope["path"] != "/ws/echo":
        return await send({"type": "websocket.close", "code": 1008})  # refused: 403
    await send({"type": "websocket.accept"})
    while True:
        msg = await receive()
        if msg["type"] == "websocket.receive":
            text = msg.get("text")
            if text is not None:
                await send({"type": "websocket.send", "text": text})
            else:
                await send({"type": "websocket.send", "bytes": msg["bytes"]})
        elif msg["type"] == "websocket.disconnect":
            return


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        return await _ws(scope, receive, send)
    if scope["type"] != "http":
        return
    path, method = scope["path"], scope["method"]
    if method == "GET":
        if path == "/json":
            return await _send(send, 200, JSON, json.dumps(JSON_MESSAGE, separators=(",", ":")).encode())
        hit = STATIC.get(path)
        if hit is not None:
            return await _send(send, *hit)
        if path.startswith("/users/"):
            tail = path[7:]
            if tail.isdigit():
                return await _send(send, 200, JSON, json.dumps({"id": int(tail)}, separators=(",", ":")).encode())
        elif path == "/sleep":
            await asyncio.sleep(SLEEP_S)
            return await _send(send, 200, TEXT, SLEPT)
    elif method == "POST" and path == "/echo":
        return await _send(send, 200, OCTET, await _read_body(receive))
    await _send(send, *NOT_FOUND)
