"""Micro-benchmark of the WSGI adapter in process (not a test; run it directly).

    .venv/bin/python python-sdk/tests/bench_wsgi.py

Without the gateway or the rings: 64 requests at a time through a WSGI app's
``_handle`` on uvloop, CPU per request (the process's, both threads), for a raw WSGI
app on the handler thread (the lane, covet/_wsgi.py) and on the pool alone
(``COVET_SYNC_SPILL_MS=0``); then bench/apps/hosted_flask.py's /plaintext called
directly and through the adapter's ``_Call.run`` (environ, start_response, the answer),
on the calling thread. Each figure is the median of five runs (docs/performance.md,
"Hosted WSGI apps").
"""

from __future__ import annotations

import asyncio
import io
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import uvloop

from covet._head import RequestHead
from covet._wsgi import _Call, wsgi_app

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "apps"))
from hosted_flask import app as flask_app  # noqa: E402

N = 20_000
HEAD = RequestHead.from_wire(["GET", "/plaintext", "", ["host", b"127.0.0.1:8000", "user-agent", b"wrk"],
                              "/{path...}", ["path", "plaintext"], "1.1", "http", "127.0.0.1:4321", "r", 0, 0])  # fmt: skip


def raw(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, World!"]


async def no_body() -> AsyncIterator[bytes]:
    return
    yield b""


async def through_handle(spill_ms: str) -> float:
    os.environ["COVET_SYNC_SPILL_MS"] = spill_ms  # read when the app's lane opens
    covet = wsgi_app(raw, "bench")
    await covet.startup()
    try:
        n, c0 = 0, time.process_time()
        while n < N:
            await asyncio.gather(*(covet._handle(HEAD, no_body()) for _ in range(64)))
            n += 64
        return (time.process_time() - c0) / n * 1e6
    finally:
        await covet.shutdown()


class _Req:
    head = HEAD


def direct() -> None:
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/plaintext", "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
           "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "HTTP_HOST": "127.0.0.1:8000",
           "wsgi.input": io.BytesIO(), "wsgi.errors": io.StringIO(), "wsgi.version": (1, 0),
           "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False}  # fmt: skip
    result = flask_app(env, lambda status, headers, exc_info=None: None)
    b"".join(result)
    result.close()


def per_call(fn: Callable[[], None]) -> float:
    for _ in range(2_000):
        fn()
    c0 = time.process_time()
    for _ in range(N):
        fn()
    return (time.process_time() - c0) / N * 1e6


def main() -> None:
    loop = asyncio.new_event_loop()
    via_call = lambda: _Call(flask_app, loop, _Req(), b"").run()  # type: ignore[arg-type]  # noqa: E731
    rows = [
        ("raw WSGI app, 64 at a time, handler thread (lane)", lambda: uvloop.run(through_handle("5"))),
        ("raw WSGI app, 64 at a time, pool only (COVET_SYNC_SPILL_MS=0)", lambda: uvloop.run(through_handle("0"))),
        ("Flask /plaintext called directly", lambda: per_call(direct)),
        ("Flask /plaintext through _Call.run", lambda: per_call(via_call)),
    ]
    for label, run in rows:
        runs = [run() for _ in range(5)]
        print(f"{label}: {statistics.median(runs):.1f} µs CPU per request ({min(runs):.1f}..{max(runs):.1f})")


if __name__ == "__main__":
    main()
