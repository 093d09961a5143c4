"""Sync (``def``) handlers for test_sync_handlers.py: one that blocks until another
sync request releases it, fast ones that say which thread ran them, and an async one."""

from __future__ import annotations

import threading

from covet import Covet, HTTPException, PlainTextResponse, Request, Response

app = Covet("syncapp")

#: Set by /release; /block waits for it.
released = threading.Event()
#: Set once /block has started waiting.
blocking = threading.Event()
BLOCK_WAIT_S = 10.0


@app.get("/block")
def block(req: Request) -> str:
    blocking.set()
    return "released" if released.wait(BLOCK_WAIT_S) else "timeout"


@app.get("/release")
def release(req: Request) -> str:
    released.set()
    return "set"


@app.get("/fast/{i:int}")
def fast(req: Request, i: int) -> dict[str, object]:
    return {"i": i, "thread": threading.current_thread().name}


@app.get("/blocking")
async def is_blocking(req: Request) -> dict[str, bool]:
    return {"blocking": blocking.is_set(), "released": released.is_set()}


# The sync lane (covet/_worker.py, _start_sync): plain `def handler(req)` routes, whose
# answers the worker writes without a Task when they are plain, and otherwise finishes
# in one (an exception, a body larger than a ring record, background work).

background_ran = threading.Event()


@app.get("/lane/thread")
def lane_thread(req: Request) -> dict[str, object]:
    return {"thread": threading.current_thread().name, "path": req.path}


@app.get("/lane/teapot")
def lane_teapot(req: Request) -> str:
    raise HTTPException(418, "short and stout")


@app.get("/lane/crash")
def lane_crash(req: Request) -> str:
    raise RuntimeError("the sync lane's handler failed")


@app.exception_handler(LookupError)
def lookup_failed(req: Request, exc: Exception) -> Response:
    return PlainTextResponse(f"handled: {exc}", 409)


@app.get("/lane/lookup")
def lane_lookup(req: Request) -> str:
    raise KeyError("nothing here")


@app.get("/lane/big")
def lane_big(req: Request) -> Response:
    return Response(bytes(range(256)) * (12 << 10), media_type="application/octet-stream")  # 3 MiB


async def _mark() -> None:
    background_ran.set()


@app.get("/lane/background")
def lane_background(req: Request) -> Response:
    return PlainTextResponse("later", background=_mark)


@app.get("/lane/background-ran")
async def lane_background_ran(req: Request) -> dict[str, bool]:
    return {"ran": background_ran.is_set()}


# sync_to_thread=False: a `def` handler run on the event loop (the worker's main thread).


@app.get("/inline/{i:int}", sync_to_thread=False)
def inline(req: Request, i: int) -> dict[str, object]:
    return {"i": i, "thread": threading.current_thread().name}


@app.get("/inline-teapot", sync_to_thread=False)
def inline_teapot(req: Request) -> str:
    raise HTTPException(418, "short and stout")
