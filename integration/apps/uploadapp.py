"""App for the streamed request body tests (integration/upload_test.go, bench/upload.py)."""

from __future__ import annotations

import asyncio
import hashlib

from covet import Covet, Request, Response

app = Covet("uploadapp")


@app.get("/hello")
async def hello(req: Request) -> str:
    return "hello"


@app.post("/upload")
async def upload(req: Request) -> dict[str, object]:
    """Hashes the body as it streams in. ``?pause_ms=N`` sleeps N ms after each MiB
    taken: a handler slower than its client."""
    pause = int(req.query_params.get("pause_ms", "0")) / 1000
    h = hashlib.sha256()
    n = mark = 0
    async for chunk in req.stream():
        h.update(chunk)
        n += len(chunk)
        if pause and n - mark >= 1 << 20:
            mark = n
            await asyncio.sleep(pause)
    return {"bytes": n, "sha256": h.hexdigest()}


@app.post("/count")
async def count(req: Request) -> dict[str, int]:
    """Counts the body's bytes and nothing more (bench/upload.py)."""
    n = 0
    async for chunk in req.stream():
        n += len(chunk)
    return {"bytes": n}


@app.post("/early")
async def early(req: Request) -> Response:
    """Answers before reading the body."""
    return Response(b"not reading that\n", status=413, media_type="text/plain")
