"""An app whose startup hook always fails (integration/noworker_test.go)."""

from __future__ import annotations

from covet import Covet, Request

app = Covet("failapp")


@app.on_startup
async def connect() -> None:
    raise RuntimeError("db unreachable")


@app.get("/hello")
async def hello(req: Request) -> str:
    return "hello"
