"""The app the worker tests serve (imported by a real ``python -m covet worker``).

Handlers that must report something the gateway cannot see (a cancellation, a hook)
append a line to the file named by $WORKER_TEST_LOG.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import time
from collections.abc import AsyncIterator

from covet import BodyAborted, Covet, Request, Response, StreamingResponse

app = Covet("worker-test")
not_an_app = object()


def note(line: str) -> None:
    path = os.environ.get("WORKER_TEST_LOG")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


@app.on_startup
def started() -> None:
    note("startup")


@app.on_shutdown
async def stopped() -> None:
    note("shutdown")


_seen: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="unset")


@app.get("/ctx")
async def ctx(req: Request) -> dict[str, object]:
    """Each request is its own task with its own context: what one request sets in a
    context variable no later request sees."""
    before = _seen.get()
    _seen.set(req.request_id)
    return {"before": before, "in_task": asyncio.current_task() is not None}


@app.get("/json", name="json", timeout=2.5)
async def json_hello(req: Request) -> dict[str, object]:
    return {"hello": "world", "query": req.query_params.get("q")}


@app.get("/item/{id:int}")
async def item(req: Request, id: int) -> dict[str, int]:
    await asyncio.sleep(0.001 * (id % 5))  # finish out of order
    return {"id": id}


@app.post("/echo")
async def echo(req: Request) -> Response:
    return Response(await req.body(), media_type="application/octet-stream")


@app.post("/count")
async def count(req: Request) -> dict[str, int]:
    n = chunks = 0
    async for chunk in req.stream():
        n += len(chunk)
        chunks += 1
    return {"bytes": n, "chunks": chunks}


@app.post("/aborted")
async def aborted(req: Request) -> dict[str, object]:
    n = 0
    try:
        async for chunk in req.stream():
            n += len(chunk)
    except BodyAborted as e:
        return {"read": n, "aborted": type(e).__name__}
    return {"read": n, "aborted": None}


@app.get("/stream/{n:int}")
async def stream(req: Request, n: int) -> StreamingResponse:
    async def gen() -> AsyncIterator[bytes]:
        for i in range(n):
            yield f"chunk {i};".encode()
            await asyncio.sleep(0)

    return StreamingResponse(gen(), media_type="text/plain")


@app.get("/bigstream/{n:int}")
async def bigstream(req: Request, n: int) -> StreamingResponse:
    async def gen() -> AsyncIterator[bytes]:
        for i in range(n):
            yield bytes([i]) * (1 << 16)

    return StreamingResponse(gen(), media_type="application/octet-stream")


@app.get("/big/{n:int}")
def big(req: Request, n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


@app.get("/slow")
async def slow(req: Request) -> str:
    note(f"slow started {req.request_id}")
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        note(f"slow cancelled {req.request_id}")
        raise
    return "late"


@app.get("/block/{ms:int}")
async def block(req: Request, ms: int) -> str:
    """Blocks the worker's loop, as a handler must not: the worker can do nothing else."""
    note(f"block started {req.request_id}")
    time.sleep(ms / 1000)
    return f"blocked {ms}"


@app.get("/sleep/{ms:int}")
async def sleep(req: Request, ms: int) -> str:
    await asyncio.sleep(ms / 1000)
    return f"slept {ms}"


@app.get("/boom")
async def boom(req: Request) -> str:
    raise RuntimeError("boom-marker-1234")


@app.get("/badstream")
async def badstream(req: Request) -> StreamingResponse:
    async def gen() -> AsyncIterator[bytes]:
        yield b"first;"
        raise ValueError("stream-broke-5678")

    return StreamingResponse(gen())


@app.get("/hints")
async def hints(req: Request) -> dict[str, object]:
    """Two 103 Early Hints, then the answer: the client certificate it was given."""
    await req.send_early_hints("</a.css>; rel=preload; as=style", headers={"x-hint": "1"})
    await asyncio.sleep(0.001)
    await req.send_early_hints("</b.js>; rel=preload; as=script")
    cert = req.client_cert
    return {"cert": None if cert is None else [cert.subject, list(cert.sans), cert.fingerprint]}


@app.get("/hints/late")
async def hints_late(req: Request) -> StreamingResponse:
    """A hint from the streaming body, after the head: refused."""

    async def gen() -> AsyncIterator[bytes]:
        try:
            await req.send_early_hints("</late.css>; rel=preload")
        except RuntimeError as e:
            yield str(e).encode()

    return StreamingResponse(gen())


@app.get("/hints/many")
async def hints_many(req: Request) -> str:
    """More hints than the protocol allows: the 17th raises."""
    try:
        for i in range(17):
            await req.send_early_hints(f"</{i}.css>; rel=preload")
    except RuntimeError as e:
        return str(e)
    return "all sent"
