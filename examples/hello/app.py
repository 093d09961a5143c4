"""The example app that `make run` serves."""

from __future__ import annotations

import asyncio

from covet import Covet, HTTPException, Request, StreamingResponse

app = Covet("hello")

USERS = {1: "ada", 2: "grace"}


@app.get("/")
async def index(req: Request) -> dict[str, str]:
    return {"hello": "world", "request_id": req.request_id}


@app.get("/plaintext")
def plaintext(req: Request) -> str:
    return "Hello, World!"


@app.get("/users/{id:int}")
async def user(req: Request, id: int) -> dict[str, object]:
    if id not in USERS:
        raise HTTPException(404, f"no user {id}")
    return {"id": id, "name": USERS[id]}


@app.post("/echo")
async def echo(req: Request) -> bytes:
    return await req.body()


@app.get("/stream")
async def stream(req: Request) -> StreamingResponse:
    async def count():
        for i in range(5):
            yield f"chunk {i}\n".encode()
            await asyncio.sleep(0.01)

    return StreamingResponse(count(), media_type="text/plain")
