"""CovetPy native API: the bench workloads (served by bin/covet-gateway + workers), and
bench/ws.py's WebSocket echo at /ws/echo."""

import asyncio

from covet import Covet, PlainTextResponse, Request, Response, StreamingResponse, WebSocket
from common import BODY_1M, BODY_10K, JSON_MESSAGE, PLAINTEXT, SLEEP_S, SLEPT

app = Covet("bench")

OCTET = "application/octet-stream"
CHUNK_64K = BODY_1M[: 64 << 10]


@app.get("/plaintext")
async def plaintext(req: Request):
    return PlainTextResponse(PLAINTEXT)


@app.get("/json")
async def json_(req: Request):
    return JSON_MESSAGE


@app.get("/users/{id:int}")
async def user(req: Request, id: int):
    return {"id": id}


@app.get("/10k")
async def ten_k(req: Request):
    return Response(BODY_10K, media_type=OCTET)


@app.get("/1m")
async def one_m(req: Request):
    return Response(BODY_1M, media_type=OCTET)


@app.post("/echo")
async def echo(req: Request):
    return Response(await req.body(), media_type=OCTET)


@app.get("/sleep")
async def sleep(req: Request):
    await asyncio.sleep(SLEEP_S)
    return PlainTextResponse(SLEPT)


@app.get("/stream")
async def stream(req: Request):
    """?mb= MiB in 64 KiB chunks (bench/stream.sh; not one of the compared workloads)."""
    n = int(req.query_params.get("mb", "1024")) * 16

    async def chunks():
        for _ in range(n):
            yield CHUNK_64K

    return StreamingResponse(chunks(), media_type=OCTET)


@app.websocket("/ws/echo")
async def ws_echo(ws: WebSocket):
    await ws.accept()
    async for m in ws:  # str for a text message, bytes for a binary one
        if isinstance(m, str):
            await ws.send_text(m)
        else:
            await ws.send_bytes(m)


@app.get("/json-sync")
def json_sync(req: Request):
    """/json from a sync handler: run on the worker's handler thread (covet/_sync.py)."""
    return JSON_MESSAGE


@app.get("/json-inline", sync_to_thread=False)
def json_inline(req: Request):
    """/json from a sync handler declared non-blocking: run on the event loop."""
    return JSON_MESSAGE
