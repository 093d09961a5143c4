"""The app of integration/python/test_parity.py: one route per behaviour in the table
"TestClient and the gateway" of docs/python-app.md. The test sends the same requests
to this app through covet.testing.TestClient and through the real gateway."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from covet import Covet, HTTPException, JSONResponse, PlainTextResponse, Request, Response, StreamingResponse

app = Covet("parity")
state = {"started": False}


@app.on_startup
async def start() -> None:
    state["started"] = True


@app.exception_handler(404)
async def on_404(req: Request, exc: Exception) -> JSONResponse:
    """Sees the handler's HTTPException(404) (/missing), never the gateway's own 404."""
    return JSONResponse({"handled": str(exc)}, 404)


@app.get("/started")
async def started(req: Request) -> dict[str, bool]:
    return dict(state)


@app.route("/things", methods=["GET", "POST"])
async def things(req: Request) -> dict[str, str]:
    return {"method": req.method}


@app.get("/text")
def text(req: Request) -> str:
    return "plain text ✓"


@app.get("/users/{id:int}")
async def user(req: Request, id: int) -> dict[str, int]:
    return {"id": id}


@app.get("/words/{word}")
async def word(req: Request, word: str) -> dict[str, str]:
    return {"word": word}


@app.get("/files/{rest...}")
async def files(req: Request, rest: str) -> dict[str, str]:
    return {"rest": rest}


@app.head("/explicit-head")
async def explicit_head(req: Request) -> Response:
    return Response(b"", headers={"x-head": "yes"})


@app.get("/none")
async def none(req: Request) -> None:
    return None


@app.get("/empty")
async def empty(req: Request) -> Response:
    return Response(b"")


@app.get("/not-modified")
async def not_modified(req: Request) -> Response:
    return Response(b"stale", 304, {"etag": '"v1"'})


@app.get("/framing")
async def framing(req: Request) -> Response:
    """Fields the gateway owns (dropped) beside ones it keeps instead of adding its own."""
    return Response(b"abc", headers=[
        ("content-length", "99"), ("connection", "keep-alive"), ("keep-alive", "timeout=5"),
        ("server", "parity"), ("x-request-id", "set-by-handler"), ("x-kept", "1"),
    ])  # fmt: skip


@app.get("/stream")
async def stream(req: Request) -> StreamingResponse:
    async def gen() -> AsyncIterator[str]:
        for i in range(3):
            yield f"chunk-{i}\n"

    return StreamingResponse(gen(), media_type="text/plain", headers={"x-stream": "1"})


@app.get("/cookies")
async def cookies(req: Request) -> Response:
    response = PlainTextResponse("cookies")
    response.set_cookie("session", "abc", max_age=60, httponly=True)
    response.delete_cookie("old")
    return response


@app.post("/echo")
async def echo(req: Request) -> Response:
    return Response(await req.body(), media_type=req.headers.get("content-type", "application/octet-stream"))


@app.get("/teapot")
async def teapot(req: Request) -> None:
    raise HTTPException(418, headers={"x-tea": "earl grey"})


@app.get("/missing")
async def missing(req: Request) -> None:
    raise HTTPException(404, "no such thing")


@app.get("/boom")
async def boom(req: Request) -> None:
    raise RuntimeError("parity boom")


@app.get("/redirect")
async def redirect(req: Request) -> Response:
    return JSONResponse({"to": "/text"}, 307, {"location": "/text"})


@app.get("/slow", timeout=0.3)
async def slow(req: Request) -> str:
    await asyncio.sleep(3)
    return "late"


@app.get("/slow-sync", timeout=0.3)
def slow_sync(req: Request) -> str:
    time.sleep(0.6)  # in the executor: the deadline passes, the thread runs on
    return "late"


@app.get("/slow-body", timeout=2.0)
async def slow_body(req: Request) -> StreamingResponse:
    """The head and the first chunk reach the client well within the deadline (2 s, so
    that a loaded machine does not turn this into a 504); the deadline passes mid-body."""

    async def gen() -> AsyncIterator[bytes]:
        yield b"first\n"
        await asyncio.sleep(10)
        yield b"never\n"

    return StreamingResponse(gen(), media_type="text/plain")


@app.get("/broken-body")
async def broken_body(req: Request) -> StreamingResponse:
    async def gen() -> AsyncIterator[bytes]:
        yield b"partial\n"
        await asyncio.sleep(0.2)  # the head and first chunk are out before the failure
        raise RuntimeError("parity body failed")

    return StreamingResponse(gen(), media_type="text/plain")


@app.get("/ctl-header")
async def ctl_header(req: Request) -> Response:
    """A control character the gateway's HTTP writer refuses: the worker refuses it first (500)."""
    return Response(b"x", headers={"x-ctl": b"a\x01b"})


@app.get("/nul-header")
async def nul_header(req: Request) -> Response:
    """A value the worker refuses to send (past Response's own checks): 500."""
    response = Response(b"x")
    response.headers.raw.append(("x-nul", b"a\x00b"))
    return response
