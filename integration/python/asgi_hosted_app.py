"""A raw ASGI 3 app for integration/python/test_asgi_hosting.py, served by real workers
with ``covet worker asgi_hosted_app:app --interface asgi``.

Paths: ``/scope`` (the scope as JSON), ``/body`` (the request body's messages),
``/stream?n=&delay=`` (n chunks, delay seconds apart), ``/stream?n=&gate=`` (n chunks,
chunk i > 0 made only once the file ``<gate>.<i>`` exists, or after 10 s with "(gate
timed out)" in it), ``/hang?mark=`` (one chunk, then
waits for http.disconnect and writes ``mark``), ``/file?name=`` (pathsend of a file in
this folder), ``/state`` (the lifespan state), ``/boom`` (raises before start).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from gates import opened

HERE = Path(__file__).resolve().parent


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
        return
    if scope["type"] != "http":
        raise RuntimeError(f"unexpected scope type {scope['type']}")
    path = scope["path"]
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    if path == "/scope":
        shown = {k: v for k, v in scope.items() if k not in ("headers", "raw_path", "query_string", "state")}
        shown["headers"] = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]]
        shown["raw_path"] = scope["raw_path"].decode()
        shown["query_string"] = scope["query_string"].decode()
        await respond(send, 200, json.dumps(shown).encode(), b"application/json")
    elif path == "/body":
        messages = []
        while True:
            m = await receive()
            messages.append([len(m["body"]), m["more_body"]])
            if not m["more_body"]:
                break
        await respond(send, 200, json.dumps(messages).encode(), b"application/json")
    elif path == "/stream":
        n, delay, gate = int(query.get("n", "3")), float(query.get("delay", "0")), query.get("gate")
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for i in range(n):
            if i and delay:
                await asyncio.sleep(delay)
            body = b"chunk %d\n" % i
            if i and gate and not await opened(f"{gate}.{i}"):
                body = b"chunk %d (gate timed out)\n" % i
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    elif path == "/hang":
        mark = Path(query["mark"])
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass
        mark.write_text("disconnect")
    elif path == "/file":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
        await send({"type": "http.response.pathsend", "path": str(HERE / query["name"])})
    elif path == "/state":
        await respond(send, 200, json.dumps(scope.get("state")).encode(), b"application/json")
    elif path == "/boom":
        raise ValueError("boom")
    else:
        await respond(send, 404, b"not here\n", b"text/plain")


async def respond(send: Any, status: int, body: bytes, ctype: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert (await receive())["type"] == "lifespan.startup"
    failure = os.environ.get("ASGI_TEST_STARTUP_FAIL")
    if failure:
        await send({"type": "lifespan.startup.failed", "message": failure})
        return
    scope["state"]["started_pid"] = os.getpid()
    await send({"type": "lifespan.startup.complete"})
    assert (await receive())["type"] == "lifespan.shutdown"
    await send({"type": "lifespan.shutdown.complete"})
