"""A FastAPI app for test_asgi_hosting.py, served unchanged with ``covet worker
asgi_fastapi_app:app --interface asgi``: lifespan state, a dependency, a pydantic body,
an endless StreamingResponse that notes when it is stopped, a FileResponse and a
WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Header, Request, WebSocket
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel

HERE = Path(__file__).resolve().parent


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    yield {"greeting": "hello"}


app = FastAPI(lifespan=lifespan)


class Item(BaseModel):
    name: str
    qty: int = 1


def caller(x_caller: str = Header("anon")) -> str:
    return x_caller


@app.get("/greet")
async def greet(request: Request, who: str = Depends(caller)) -> dict[str, str]:
    return {"msg": f"{request.state.greeting} {who}"}


@app.post("/items")
async def create(item: Item) -> Item:
    return item


@app.get("/forever")
async def forever(mark: str) -> StreamingResponse:
    async def ticks() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"tick\n"
                await asyncio.sleep(0.05)
        finally:
            Path(mark).write_text("stopped")

    return StreamingResponse(ticks(), media_type="text/plain")


@app.get("/file")
async def file() -> FileResponse:
    return FileResponse(HERE / "asgi_fastapi_app.py")


@app.websocket("/ws/{room}")
async def ws(websocket: WebSocket, room: str) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(f"{room}:{text}")
