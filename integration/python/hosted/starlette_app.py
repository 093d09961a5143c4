"""A Starlette app for the hosting differential test (test_hosting_differential.py),
served unchanged by uvicorn and by CovetPy (``--interface asgi``): /echo and the
routes every hosted app has, plus lifespan state, a plain-ASGI mount and a
WebSocket echo."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from echo_shape import NO_BODY, UNICODE_TEXT, describe, pattern
from ws_echo import ws_echo

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


async def echo(request: Request) -> Response:
    body = await request.body()
    scope = request.scope
    doc = describe(
        framework="starlette", method=request.method, path=request.url.path,
        query_string=scope["query_string"].decode("latin-1"), query=request.query_params.multi_items(),
        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
        cookies=request.cookies.items(), body=body,
        extra={"asgi": {"type": scope["type"], "http_version": scope["http_version"], "scheme": scope["scheme"],
                        "raw_path": scope.get("raw_path", b"").decode("latin-1"),
                        "root_path": scope.get("root_path"), "spec_version": scope.get("asgi", {}).get("spec_version")}},
    )  # fmt: skip
    return JSONResponse(doc)


async def only_get(request: Request) -> Response:
    return JSONResponse({"only": "get"})


async def status(request: Request) -> Response:
    code = request.path_params["code"]
    if code in NO_BODY:
        return Response(status_code=code)
    return PlainTextResponse(f"status {code}\n", status_code=code)


async def error(request: Request) -> Response:
    raise RuntimeError("a bug in the handler")


async def http_error(request: Request) -> Response:
    raise HTTPException(status_code=409, detail="conflict here", headers={"x-reason": "test"})


async def redirect(request: Request) -> Response:
    return RedirectResponse(request.query_params.get("to", "/echo/landed"), int(request.query_params.get("code", 302)))


async def set_cookies(request: Request) -> Response:
    resp = PlainTextResponse("cookies set\n")
    resp.set_cookie("session", "abc123", httponly=True, path="/")
    resp.set_cookie("theme", "dark", max_age=3600, samesite="strict")
    resp.set_cookie("quoted", "a b,c", secure=True)
    return resp


async def unicode(request: Request) -> Response:
    return PlainTextResponse(UNICODE_TEXT, headers={"x-latin1": "caf\u00e9"})


async def unicode_json(request: Request) -> Response:
    return JSONResponse({"text": UNICODE_TEXT})


async def headers_repeat(request: Request) -> Response:
    resp = PlainTextResponse("repeated\n")
    resp.raw_headers.extend([(b"x-multi", b"one"), (b"x-multi", b"two"), (b"x-empty", b""), (b"vary", b"accept")])
    return resp


async def large(request: Request) -> Response:
    return Response(pattern(int(request.query_params.get("size", 1 << 20))), media_type="application/octet-stream")


async def stream(request: Request) -> Response:
    n, size = int(request.query_params.get("n", 3)), int(request.query_params.get("size", 10))

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(n):
            yield pattern(size, i * size)

    return StreamingResponse(chunks(), media_type="text/plain")


async def state(request: Request) -> Response:
    return JSONResponse({"greeting": request.state.greeting, "started": request.state.started})


async def raw_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    """A bare ASGI app under a Mount: what root_path and path it is given, sent with
    headers of its own choosing and the body in three messages."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"x-raw", b"1")]})  # fmt: skip
    parts = [f"root_path={scope['root_path']}\n".encode(), f"path={scope['path']}\n".encode(), b"end\n"]
    for i, part in enumerate(parts):
        await send({"type": "http.response.body", "body": part, "more_body": i < len(parts) - 1})


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    yield {"greeting": "hello from lifespan", "started": 1}


app = Starlette(
    routes=[
        Route("/echo", echo, methods=METHODS),
        Route("/echo/{rest:path}", echo, methods=METHODS),
        Route("/only-get", only_get),
        Route("/status/{code:int}", status),
        Route("/error", error),
        Route("/http-error", http_error),
        Route("/redirect", redirect),
        Route("/cookies/set", set_cookies),
        Route("/unicode", unicode),
        Route("/unicode/json", unicode_json),
        Route("/headers/repeat", headers_repeat),
        Route("/large", large),
        Route("/stream", stream),
        Route("/state", state),
        Mount("/raw", raw_asgi),
        WebSocketRoute("/ws", ws_echo),
    ],
    lifespan=lifespan,
)
