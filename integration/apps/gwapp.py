"""App served by the gateway integration tests (integration/gateway_test.go)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from covet import Covet, Request, StreamingResponse

app = Covet("gwapp")
STATE = Path(os.environ.get("COVET_TEST_DIR", "/tmp"))


@app.get("/hello")
async def hello(req: Request) -> str:
    return "hello"


@app.get("/pid")
async def pid(req: Request) -> str:
    return str(os.getpid())


@app.get("/slow")
async def slow(req: Request) -> str:
    ms = int(req.query_params.get("ms", "100"))
    await asyncio.sleep(ms / 1000)
    return f"slept {ms}"


@app.get("/doomed")
async def doomed(req: Request) -> str:
    """Records its worker's pid, then waits: the test SIGKILLs this worker."""
    (STATE / "doomed.pid").write_text(str(os.getpid()))
    await asyncio.sleep(30)
    return "survived"


@app.get("/cancellable/{tag}")
async def cancellable(req: Request, tag: str) -> str:
    """Waits; records a CANCEL from the gateway as a file named after tag."""
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        (STATE / f"cancelled-{tag}").write_text("cancelled")
        raise
    return "not cancelled"


@app.get("/deadline", timeout=0.3)
async def deadline(req: Request) -> str:
    ms = int(req.query_params.get("ms", "5000"))
    try:
        await asyncio.sleep(ms / 1000)
    except asyncio.CancelledError:
        (STATE / "cancelled-deadline").write_text("cancelled")
        raise
    return f"slept {ms}"


FLOOD_CHUNK = 64 << 10
flood_chunks = 0  # produced by /flood's generator so far, in this worker


@app.get("/flood")
async def flood(req: Request) -> StreamingResponse:
    """Streams ?mb= MiB in 64 KiB chunks, chunk i filled with byte i % 251, as fast
    as the gateway takes them; /flood/progress tells how many chunks were produced,
    and the file flood-closed appears when the generator is closed."""
    n = int(req.query_params.get("mb", "64")) * (1 << 20) // FLOOD_CHUNK

    async def gen():  # type: ignore[no-untyped-def]
        global flood_chunks
        try:
            for i in range(n):
                flood_chunks += 1
                yield bytes([i % 251]) * FLOOD_CHUNK
        finally:
            (STATE / "flood-closed").write_text(str(flood_chunks))

    return StreamingResponse(gen(), media_type="application/octet-stream")


@app.get("/flood/progress")
async def flood_progress(req: Request) -> str:
    return str(flood_chunks)


@app.post("/once")
async def once(req: Request) -> str:
    """A non-idempotent request: appends its request id to once.log, one line per
    run of this handler (the exactly-once tests count them)."""
    await req.body()
    with open(STATE / "once.log", "a") as f:
        f.write(req.request_id + "\n")
    return "done"


@app.get("/block")
async def block(req: Request) -> str:
    """Blocks the worker's event loop (a sync sleep in an async handler): no heartbeat,
    no other request, until it returns. Records its pid first (the watchdog test)."""
    ms = int(req.query_params.get("ms", "5000"))
    (STATE / "blocked.pid").write_text(str(os.getpid()))
    time.sleep(ms / 1000)
    return "unblocked"


if (STATE / "extra-route").exists():
    # Present only in workers started after the test created the file: a different
    # route manifest (the rolling-restart test of a changed app).
    @app.get("/extra")
    async def extra(req: Request) -> str:
        return "extra"


# -- The protocol-mode suite (integration/modes_test.go) ------------------------------


@app.get("/items/{id:int}")
async def item(req: Request, id: int) -> dict[str, object]:
    """A typed path parameter and a query parameter, with the protocol the worker saw."""
    return {"id": id, "q": req.query_params.get("q"), "http_version": req.http_version, "scheme": req.scheme}


@app.post("/echo")
async def echo(req: Request) -> bytes:
    return await req.body()


@app.get("/wait/{tag}")
async def wait(req: Request, tag: str) -> str:
    """Records that it started, then waits; records a CANCEL as cancelled-<tag>."""
    (STATE / f"started-{tag}").write_text("started")
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        (STATE / f"cancelled-{tag}").write_text("cancelled")
        raise
    return "not cancelled"


@app.get("/held/{tag}")
async def held(req: Request, tag: str) -> StreamingResponse:
    """Streams "first", then waits (10 s at most) for the test to create release-<tag>
    before streaming "second" ("timed out" if it never does): the first piece must
    reach the client while the handler still runs."""

    async def gen():  # type: ignore[no-untyped-def]
        yield b"first\n"
        for _ in range(1000):
            if (STATE / f"release-{tag}").exists():
                yield b"second\n"
                return
            await asyncio.sleep(0.01)
        yield b"timed out\n"

    return StreamingResponse(gen(), media_type="text/plain")


@app.get("/whoami")
async def whoami(req: Request) -> dict[str, object]:
    """The verified TLS client certificate the worker got (mTLS), or null."""
    cert = req.client_cert
    if cert is None:
        return {"client_cert": None}
    return {"client_cert": {"subject": cert.subject, "sans": list(cert.sans), "fingerprint": cert.fingerprint}}
