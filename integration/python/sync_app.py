"""Sync (``def``) handlers for test_sync_handlers.py: one that blocks until another
sync request releases it, fast ones that say which thread ran them, and an async one."""

from __future__ import annotations

import threading

from covet import Covet, Request

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
