"""The app of test_compression.py: bodies for the gateway to compress or leave alone.

The streamed routes wait, between pieces, for the test to create a file under
COMPRESS_TEST_DIR (named ``<token>.<n>``, n the pieces the client has decoded so far):
the test creates it only once it has decoded piece n, so a gateway that held the
compressed stream back would leave the test waiting, never passing by chance.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

from covet import Covet, EventSourceResponse, PlainTextResponse, Request, Response, ServerSentEvent, StreamingResponse

app = Covet("compress")

SIGNALS = Path(os.environ.get("COMPRESS_TEST_DIR", "/nonexistent"))
RELEASE_WAIT_S = 20.0

# About 64 KiB of JSON (held and compressed whole) and 1 MiB of HTML (compressed as it comes).
JSON_BODY = json.dumps({"items": [{"id": i, "name": f"user-{i}", "email": f"user{i}@example.com",
                                   "active": i % 3 == 0} for i in range(1200)]}, separators=(",", ":")).encode()
HTML_BODY = b"<!doctype html><html><body>\n" + b"".join(
    b'<div class="row"><a href="/item/%d">item %d of the long page</a></div>\n' % (i, i * 7) for i in range(16000)
) + b"</body></html>\n"
SMALL_BODY = b"small body, under compression_min_bytes"
PNG_BODY = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 16
STREAM_LINES = [json.dumps({"seq": i, "msg": f"line {i} of a stream that stays incremental"}).encode() + b"\n"
                for i in range(3)]
# Sent instead of the next piece when the test never released it: the pieces before
# did not reach it (held back somewhere), and the test fails on the body.
NOT_RELEASED = b"NOT RELEASED: the client never decoded the pieces before\n"


@app.get("/ready")
async def ready(req: Request) -> Response:
    return PlainTextResponse("ready")


@app.get("/json")
async def json_(req: Request) -> Response:
    return Response(JSON_BODY, media_type="application/json")


@app.get("/html")
async def html(req: Request) -> Response:
    return Response(HTML_BODY, media_type="text/html")


@app.get("/small")
async def small(req: Request) -> Response:
    return PlainTextResponse(SMALL_BODY)


@app.get("/vary-etag")
async def vary_etag(req: Request) -> Response:
    return Response(JSON_BODY, media_type="application/json", headers={"Vary": "Origin", "ETag": '"v1"'})


@app.get("/encoded")
async def encoded(req: Request) -> Response:
    return Response(gzip.compress(JSON_BODY), media_type="application/json", headers={"Content-Encoding": "gzip"})


@app.get("/png")
async def png(req: Request) -> Response:
    return Response(PNG_BODY, media_type="image/png")


@app.get("/no-transform")
async def no_transform(req: Request) -> Response:
    return Response(JSON_BODY, media_type="application/json", headers={"Cache-Control": "no-transform"})


async def _released(token: str, n: int) -> bool:
    """Whether the test released piece n (it has decoded the pieces before it)."""
    path = SIGNALS / f"{token}.{n}"
    deadline = asyncio.get_running_loop().time() + RELEASE_WAIT_S
    while not path.exists():
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(0.01)
    return True


@app.get("/stream/{token}")
async def stream(req: Request, token: str) -> Response:
    async def lines() -> AsyncIterator[bytes]:
        for i, line in enumerate(STREAM_LINES):
            if i and not await _released(token, i):
                yield NOT_RELEASED
                return
            yield line

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@app.get("/sse/{token}")
async def sse(req: Request, token: str) -> Response:
    async def events() -> AsyncIterator[ServerSentEvent]:
        for i in range(3):
            if i and not await _released(token, i):
                yield ServerSentEvent(data=NOT_RELEASED.decode().strip())
                return
            yield ServerSentEvent(data=f"event {i}", id=str(i))

    return EventSourceResponse(events(), ping=None)


@app.get("/uncompressed", compress=False)
async def uncompressed(req: Request) -> Response:
    return Response(JSON_BODY, media_type="application/json")
