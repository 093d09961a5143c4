"""The app of test_ratelimit.py: routes with rate limits the gateway enforces (the
worker only declares them), and a count of the requests that reached the worker."""

from __future__ import annotations

import os

from covet import Covet, Request

app = Covet("rlapp")
_handled: dict[str, int] = {}


def _count(name: str) -> str:
    _handled[name] = _handled.get(name, 0) + 1
    return "ok"


@app.get("/ready", rate_limit="none")
async def ready(req: Request) -> str:
    return "ready"


@app.get("/handled/{name}", rate_limit="none")
async def handled(req: Request, name: str) -> dict[str, int]:
    return {"count": _handled.get(name, 0), "pid": os.getpid()}


@app.post("/login", rate_limit="5/minute")
async def login(req: Request) -> str:
    return _count("login")


@app.get("/keyed", rate_limit="3/minute", rate_limit_key="header:X-API-Key")
async def keyed(req: Request) -> str:
    return _count("keyed")


@app.get("/fast", rate_limit="100/second")
async def fast(req: Request) -> str:
    return "ok"


@app.get("/default")
async def default(req: Request) -> str:
    """No rate_limit of its own: the gateway's rate_limit_default applies."""
    return _count("default")
