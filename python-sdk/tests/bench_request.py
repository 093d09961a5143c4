"""Micro-benchmarks of the worker's per-request Python path (not a test; run it directly).

    .venv/bin/python python-sdk/tests/bench_request.py

Times, one at a time and without the rings or the event loop, each step a worker takes
for a request: decoding and checking the REQ_HEAD (``decode_head``, the worker's path,
compiled where covet._speedups is in use; ``decode_head_py``, the pure-Python one; msgpack
plus ``RequestHead.from_wire``, its fallback), running the app (routing, the
handler, building the response) for a text, a JSON and a path-parameter route, and the
JSON route again with a verified identity in the head (``auth``), and
encoding the RESP_HEAD (compiled where in use, and the pure-Python encoder); then the cost of an asyncio Task per request, which the worker
pays on top: scheduled, and on Python 3.12+ eager as the worker makes it
(docs/performance.md). The step figures are the best of five runs.
"""

from __future__ import annotations

import asyncio
import timeit
from collections.abc import Callable
from typing import Any

import msgpack  # type: ignore[import-untyped]

from covet import Covet, PlainTextResponse, Request
from covet._head import RequestHead, decode_head, decode_head_py
from covet._payloads import encode_response_head_py
from covet._proto import encode_response_head
from covet._shmring import ACCELERATED
from covet._responses import Response
from covet._worker import EAGER_TASKS, _task_factory

app = Covet("bench")


@app.get("/plaintext")
async def plaintext(req: Request) -> Response:
    return PlainTextResponse(b"Hello, World!")


@app.get("/json")
async def json_(req: Request) -> dict[str, str]:
    return {"message": "Hello, World!"}


@app.get("/users/{id:int}")
async def user(req: Request, id: int) -> dict[str, int]:
    return {"id": id}


app.freeze()


async def _no_body() -> Any:
    if False:
        yield b""


#: REQ_HEAD's auth element for a verified bearer token (PROTOCOL.md 3.1), no certificate.
AUTH = [None, ["alice", b'{"sub":"alice","iss":"https://id.example.com","exp":1893456000,"roles":["admin"]}',
               ["admin"], ["reports:read"]]]  # fmt: skip


def wire(path: str, route: str, params: list[str], extra: list[Any] | None = None) -> bytes:
    """A REQ_HEAD as the gateway sends it for a wrk request (``extra``: the optional
    13th and 14th elements)."""
    return msgpack.packb(  # type: ignore[no-any-return]
        ["GET", path, "", ["host", b"127.0.0.1:8000"], route, params, "1.1", "http",
         "127.0.0.1:50000", "", 0, 0, *(extra or [])],
        use_bin_type=True,
    )  # fmt: skip


#: Marks the steps the compiled core (covet._speedups) runs when it is in use.
COMPILED = " (compiled)" if ACCELERATED else " (pure Python: COVET_NO_EXTENSIONS set or not built)"


def per_call_us(fn: Callable[[], object], number: int = 100_000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def run_sync(head: RequestHead) -> Response:
    """app._handle driven to completion without a loop (the handlers never wait)."""
    coro = app._handle(head, _no_body())
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise RuntimeError("the handler waited")


def main() -> None:
    unpackb = msgpack.unpackb
    for path, route, params, extra in [("/plaintext", "/plaintext", [], None), ("/json", "/json", [], None),
                                       ("/users/42", "/users/{id:int}", ["id", "42"], None),
                                       ("/json", "/json", [], AUTH)]:  # fmt: skip
        payload = wire(path, route, params, extra)
        arr = unpackb(payload, raw=False)
        head = RequestHead.from_wire(arr)
        resp = run_sync(head)
        print(f"{path}{' (with a verified token: REQ_HEAD auth)' if extra else ''}:")
        print(f"  decode_head           {per_call_us(lambda: decode_head(payload)):6.2f} us{COMPILED}")
        print(f"  decode_head_py        {per_call_us(lambda: decode_head_py(payload)):6.2f} us")
        print(f"  msgpack decode        {per_call_us(lambda: unpackb(payload, raw=False)):6.2f} us")
        print(f"  RequestHead.from_wire {per_call_us(lambda: RequestHead.from_wire(arr)):6.2f} us")
        print(f"  app._handle           {per_call_us(lambda: run_sync(head)):6.2f} us")
        print(f"  encode_response_head  "
              f"{per_call_us(lambda: encode_response_head(resp.status, resp.raw_headers, resp.body_length)):6.2f} us"
              f"{COMPILED}")
        print(f"  encode_response_head_py "
              f"{per_call_us(lambda: encode_response_head_py(resp.status, resp.raw_headers, resp.body_length)):4.2f} us")

    async def tasks(n: int, eager: bool) -> float:
        loop = asyncio.get_running_loop()
        new_task = _task_factory(loop) if eager else loop.create_task

        async def nothing() -> None:
            pass

        start = timeit.default_timer()
        for i in range(n):
            new_task(nothing())
            if i % 64 == 63:
                await asyncio.sleep(0)
        await asyncio.sleep(0)
        return (timeit.default_timer() - start) / n * 1e6

    kinds = [("scheduled", False)] + ([("eager", True)] if EAGER_TASKS else [])
    loops: list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]] = [("standard loop", asyncio.new_event_loop)]
    try:
        import uvloop
    except ImportError:
        pass
    else:
        loops.append(("uvloop", uvloop.new_event_loop))
    for loop_name, factory in loops:
        for kind, eager in kinds:
            with asyncio.Runner(loop_factory=factory) as runner:
                us = runner.run(tasks(200_000, eager))
            print(f"asyncio Task create + run: {us:6.2f} us ({loop_name}, {kind})")


if __name__ == "__main__":
    main()
