"""The app the WebSocket and SSE worker tests serve (test_worker_ws.py), under a real
``python -m covet worker ws_worker_app:app``. Handlers note what the gateway cannot see
(a cancellation, a close code, a generator's ``finally``) in $WORKER_TEST_LOG."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

from covet import Covet, EventSourceResponse, HTTPException, Request, ServerSentEvent, WebSocket, WebSocketDisconnect

app = Covet("ws-worker-test")


def note(line: str) -> None:
    path = os.environ.get("WORKER_TEST_LOG")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


@app.get("/json")
async def json_hello(req: Request) -> dict[str, str]:
    return {"hello": "world"}


@app.websocket("/ws/echo", name="echo")
async def echo(ws: WebSocket) -> None:
    """Text and binary messages echoed as received; the client's close code noted."""
    await ws.accept(subprotocol=ws.subprotocols[0] if ws.subprotocols else None, headers={"x-session": "1"})
    async for message in ws:
        await ws.send(message)
    note(f"echo closed {ws.close_code} {ws.close_reason}")


@app.websocket("/ws/room/{n:int}", resumable=True)
async def room(ws: WebSocket, n: int) -> None:
    """Path parameters converted; a resumed session skips the accept."""
    await ws.accept()
    await ws.send_json({"n": n, "resumed": ws.resumed, "q": ws.query_params.get("q")})
    await ws.close(4000, "bye")


@app.websocket("/ws/send/{size:int}/{count:int}")
async def sender(ws: WebSocket, size: int, count: int) -> None:
    """Sends ``count`` binary messages of ``size`` bytes (or notes the refusal of one
    too big), then waits for the client."""
    await ws.accept()
    try:
        for i in range(count):
            await ws.send_bytes(bytes([i % 256]) * size)
    except ValueError as e:
        await ws.send_text(f"refused: {e}")
    note("sender done")
    await ws.receive()


@app.websocket("/ws/reject")
async def reject(ws: WebSocket) -> None:
    await ws.close(4403)


@app.websocket("/ws/denied")
async def denied(ws: WebSocket) -> None:
    raise HTTPException(401, "who are you?", {"www-authenticate": "Bearer"})


@app.websocket("/ws/boom")
async def boom(ws: WebSocket) -> None:
    await ws.accept()
    raise RuntimeError("ws-boom-4321")


@app.websocket("/ws/wait")
async def wait(ws: WebSocket) -> None:
    """Accepts and waits for a message; notes a cancellation."""
    await ws.accept()
    note(f"wait started {ws.request_id}")
    try:
        await ws.receive_text()
    except asyncio.CancelledError:
        note(f"wait cancelled {ws.request_id}")
        raise
    except WebSocketDisconnect as e:
        note(f"wait disconnect {e.code}")


@app.get("/events")
async def events(req: Request) -> EventSourceResponse:
    """Two events, then nothing: the ping heartbeat goes out while the generator
    waits; the gateway's CANCEL must reach its finally."""

    async def gen() -> AsyncIterator[ServerSentEvent]:
        try:
            yield ServerSentEvent(data="one", id="1")
            yield ServerSentEvent(data={"two": 2}, event="update")
            note("events idle")
            await asyncio.sleep(3600)
        finally:
            note("events finally")

    return EventSourceResponse(gen(), ping=0.05)


@app.websocket("/ws/cancelled-send")
async def cancelled_send(ws: WebSocket) -> None:
    """A 32 KiB message, then a second whose last fragment must wait for credit: its
    send is cancelled meanwhile, and the handler sends one more message."""
    await ws.accept()
    await ws.send_bytes(b"a" * 32768)
    task = asyncio.create_task(ws.send_bytes(b"b" * 32768))
    await asyncio.sleep(0.05)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        note("send cancelled")
    await ws.send_text("after")
    await ws.receive()
