"""The ASGI compliance testbed app for test_asgi_compliance.py: a raw ASGI 3 app (no
framework) whose endpoints report what the server gave them (scope, headers, query,
cookies, body messages) and produce what a server must carry (status codes, redirects,
large bodies, chunked streams, server-sent events, NDJSON), with lifespan state shared
with requests. Served with ``covet worker asgi_compliance_app:app --interface asgi``."""

from __future__ import annotations

import asyncio
import json
import time
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, parse_qsl

Send = Any
Receive = Any


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    kind = scope["type"]
    if kind == "lifespan":
        await _lifespan(scope, receive, send)
    elif kind == "http":
        await _http(scope, receive, send)
    elif kind == "websocket":
        await _websocket(scope, receive, send)


async def _lifespan(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"].update(started=True, startup_time=time.time(), counter={"n": 0}, store={})
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _body(receive: Receive) -> tuple[bytes, int]:
    parts, count = [], 0
    while True:
        message = await receive()
        count += 1
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts), count


async def _send(send: Send, status: int, body: bytes = b"", ctype: bytes = b"text/plain; charset=utf-8",
                headers: list[tuple[bytes, bytes]] | None = None) -> None:  # fmt: skip
    fields = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())] + (headers or [])
    await send({"type": "http.response.start", "status": status, "headers": fields})
    await send({"type": "http.response.body", "body": body})


async def _json(send: Send, value: Any, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await _send(send, status, json.dumps(value).encode(), b"application/json", headers)


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {n.decode("latin-1"): v.decode("latin-1") for n, v in scope["headers"]}


async def _http(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    path = scope["path"]
    q = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode(), keep_blank_values=True).items()}
    if path == "/health":
        await _send(send, 200, b"OK")
    elif path == "/http/":
        await _send(send, 200, b"Hello, ASGI!")
    elif path == "/http/method":
        await _json(send, {"method": scope["method"]})
    elif path == "/http/status":
        code = int(q.get("code", "200"))
        if not 200 <= code <= 599:
            await _send(send, 400, b"bad status")
        elif code in (204, 304):
            await send({"type": "http.response.start", "status": code, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        else:
            await _send(send, code, f"status {code}".encode())
    elif path == "/http/echo":
        body, _ = await _body(receive)
        await _send(send, 200, body, b"application/octet-stream")
    elif path == "/http/post-json":
        body, _ = await _body(receive)
        try:
            value = json.loads(body)
        except ValueError:
            await _send(send, 400, b"bad json")
            return
        await _json(send, {"received": value, "type": type(value).__name__})
    elif path == "/http/large":
        await _send(send, 200, b"x" * int(q.get("size", "1024")), b"application/octet-stream")
    elif path == "/http/headers":
        await _body(receive)
        await _json(send, _headers(scope))
    elif path == "/http/scope":
        shown = {k: v for k, v in scope.items() if k not in ("headers", "raw_path", "query_string", "state")}
        shown["headers"] = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]]
        shown["raw_path"] = scope["raw_path"].decode("latin-1")
        shown["query_string"] = scope["query_string"].decode("latin-1")
        await _json(send, shown)
    elif path == "/http/query":
        raw = scope["query_string"].decode()
        await _json(send, {"raw": raw, "params": dict(parse_qsl(raw, keep_blank_values=True))})
    elif path == "/http/cookies":
        jar: SimpleCookie = SimpleCookie(_headers(scope).get("cookie", ""))
        extra = [(b"set-cookie", q["set"].encode())] if "set" in q else []
        await _json(send, {"request_cookies": {k: m.value for k, m in jar.items()}}, headers=extra)
    elif path == "/http/redirect":
        await _send(send, int(q.get("status", "302")), b"", headers=[(b"location", q.get("to", "/").encode())])
    elif path.startswith("/stream/"):
        await _stream(path[len("/stream/"):], q, receive, send)
    elif path.startswith("/lifespan/"):
        await _state(path[len("/lifespan/"):], scope, q, receive, send)
    else:
        await _send(send, 404, b"Not Found")


async def _start(send: Send, ctype: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", ctype)]})


async def _chunk(send: Send, data: bytes, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})


async def _stream(kind: str, q: dict[str, str], receive: Receive, send: Send) -> None:
    delay = float(q.get("delay", "0"))
    if kind == "streaming":
        n = int(q.get("chunks", "3"))
        await _start(send, b"text/plain")
        for i in range(1, n + 1):
            await _chunk(send, f"Chunk {i} of {n}\n".encode())
    elif kind == "chunked":
        await _start(send, b"application/octet-stream")
        for size in q.get("sizes", "10").split(","):
            await _chunk(send, b"y" * int(size))
    elif kind == "sse":
        await _start(send, b"text/event-stream")
        for i in range(1, int(q.get("events", "3")) + 1):
            if delay:
                await asyncio.sleep(delay)
            data = json.dumps({"id": i, "timestamp": time.time()})
            await _chunk(send, f"id: {i}\nevent: message\ndata: {data}\n\n".encode())
    elif kind == "ndjson":
        await _start(send, b"application/x-ndjson")
        for i in range(1, int(q.get("records", "3")) + 1):
            if delay:
                await asyncio.sleep(delay)
            await _chunk(send, json.dumps({"id": i, "timestamp": time.time(), "data": "r" * i}).encode() + b"\n")
    elif kind == "slow-stream":
        n = int(q.get("chunks", "3"))
        await _start(send, b"text/plain")
        for i in range(1, n + 1):
            if i > 1:
                await asyncio.sleep(delay)
            await _chunk(send, f"Slow chunk {i}/{n}\n".encode())
    elif kind == "large-stream":
        size, step = int(q.get("size", "1048576")), int(q.get("chunk", "65536"))
        await _start(send, b"application/octet-stream")
        for off in range(0, size, step):
            await _chunk(send, b"z" * min(step, size - off))
    elif kind == "echo-stream":
        await _start(send, b"text/plain")
        count = total = 0
        while True:
            message = await receive()
            count += 1
            total += len(message["body"])
            await _chunk(send, f"chunk {count}: {len(message['body'])} bytes\n".encode())
            if not message.get("more_body"):
                break
        await _chunk(send, f"Total chunks received: {count}, {total} bytes\n".encode())
    else:
        await _send(send, 404, b"Not Found")
        return
    await _chunk(send, b"", more=False)


async def _state(kind: str, scope: dict[str, Any], q: dict[str, str], receive: Receive, send: Send) -> None:
    state = scope.get("state")
    if state is None:
        await _send(send, 500, b"no lifespan state")
    elif kind == "state":
        await _json(send, {"started": state["started"], "startup_time": state["startup_time"]})
    elif kind == "counter":
        state["counter"]["n"] += 1
        await _json(send, {"counter": state["counter"]["n"]})
    elif kind == "set-state":
        body, _ = await _body(receive)
        try:
            item = json.loads(body)
            state["store"][item["key"]] = item["value"]
        except (ValueError, KeyError, TypeError):
            await _send(send, 400, b"want {key, value}")
            return
        await _json(send, {"set": True})
    elif kind == "get-state":
        key = q.get("key", "")
        store = state["store"]
        await _json(send, {"found": key in store, "value": store.get(key)})
    else:
        await _send(send, 404, b"Not Found")


async def _websocket(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    assert (await receive())["type"] == "websocket.connect"
    path = scope["path"]
    if path == "/ws/reject":
        await send({"type": "websocket.close", "code": 1008})
        return
    if path == "/ws/deny":
        await send({"type": "websocket.http.response.start", "status": 403, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "websocket.http.response.body", "body": b"denied"})
        return
    offered = scope.get("subprotocols") or []
    await send({"type": "websocket.accept", "subprotocol": offered[0] if offered else None})
    if path == "/ws/scope":
        await send({"type": "websocket.send", "text": json.dumps({
            "type": scope["type"], "path": scope["path"], "query_string": scope["query_string"].decode(),
            "scheme": scope["scheme"], "subprotocols": offered})})  # fmt: skip
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        text, data = message.get("text"), message.get("bytes")
        if text == "close":
            await send({"type": "websocket.close", "code": 4001, "reason": "asked to"})
            return
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": data})
