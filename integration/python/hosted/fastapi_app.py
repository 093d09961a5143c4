"""A FastAPI app for the hosting differential test (test_hosting_differential.py),
served unchanged by uvicorn and by CovetPy (``--interface asgi``): /echo and the
routes every hosted app has, plus models, dependencies, lifespan state and a
WebSocket echo."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel, Field

from echo_shape import NO_BODY, UNICODE_TEXT, describe, pattern
from ws_echo import ws_echo


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    yield {"greeting": "hello from lifespan", "started": 1}


app = FastAPI(lifespan=lifespan, openapi_url=None)

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
#: FastAPI's GET routes answer only GET; as an app that wants HEAD does, these name both.
GET_HEAD = ["GET", "HEAD"]


async def _echo(request: Request) -> JSONResponse:
    body = await request.body()
    scope = request.scope
    doc = describe(
        framework="fastapi", method=request.method, path=request.url.path,
        query_string=scope["query_string"].decode("latin-1"), query=request.query_params.multi_items(),
        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
        cookies=request.cookies.items(), body=body,
        extra={"asgi": {"type": scope["type"], "http_version": scope["http_version"], "scheme": scope["scheme"],
                        "raw_path": scope.get("raw_path", b"").decode("latin-1"),
                        "root_path": scope.get("root_path")}},
    )  # fmt: skip
    return JSONResponse(doc)


app.add_api_route("/echo", _echo, methods=METHODS)
app.add_api_route("/echo/{rest:path}", _echo, methods=METHODS)


@app.api_route("/only-get", methods=GET_HEAD)
async def only_get() -> dict[str, str]:
    return {"only": "get"}


@app.api_route("/status/{code}", methods=GET_HEAD)
async def status(code: int) -> Response:
    if code in NO_BODY:
        return Response(status_code=code)
    return PlainTextResponse(f"status {code}\n", status_code=code)


@app.api_route("/error", methods=GET_HEAD)
async def error() -> None:
    raise RuntimeError("a bug in the handler")


@app.get("/http-error")
async def http_error() -> None:
    raise HTTPException(status_code=409, detail="conflict here", headers={"x-reason": "test"})


@app.api_route("/redirect", methods=GET_HEAD)
async def redirect(to: str = "/echo/landed", code: int = 302) -> RedirectResponse:
    return RedirectResponse(to, status_code=code)


@app.api_route("/cookies/set", methods=GET_HEAD)
async def set_cookies() -> Response:
    resp = PlainTextResponse("cookies set\n")
    resp.set_cookie("session", "abc123", httponly=True, path="/")
    resp.set_cookie("theme", "dark", max_age=3600, samesite="strict")
    resp.set_cookie("quoted", "a b,c", secure=True)
    return resp


@app.api_route("/unicode", methods=GET_HEAD)
async def unicode() -> PlainTextResponse:
    return PlainTextResponse(UNICODE_TEXT, headers={"x-latin1": "caf\u00e9"})


@app.get("/unicode/json")
async def unicode_json() -> dict[str, str]:
    return {"text": UNICODE_TEXT}


@app.get("/headers/repeat")
async def headers_repeat() -> Response:
    resp = PlainTextResponse("repeated\n")
    resp.raw_headers.extend([(b"x-multi", b"one"), (b"x-multi", b"two"), (b"x-empty", b""), (b"vary", b"accept")])
    return resp


@app.api_route("/large", methods=GET_HEAD)
async def large(size: int = 1 << 20) -> Response:
    return Response(pattern(size), media_type="application/octet-stream")


@app.api_route("/stream", methods=GET_HEAD)
async def stream(n: int = 3, size: int = 10) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(n):
            yield pattern(size, i * size)

    return StreamingResponse(chunks(), media_type="text/plain")


@app.get("/stream/sync")
def stream_sync(n: int = 3, size: int = 10) -> StreamingResponse:
    def chunks() -> Iterator[bytes]:
        for i in range(n):
            yield pattern(size, i * size)

    return StreamingResponse(chunks(), media_type="application/octet-stream")


# -- FastAPI's own: models, validation, dependencies, lifespan state -------------------


class Item(BaseModel):
    name: str = Field(min_length=1, max_length=20)
    price: float = Field(gt=0)
    tags: list[str] = []


@app.post("/items", status_code=201)
async def create_item(item: Item) -> dict[str, Any]:
    return {"created": item.model_dump()}


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None, limit: Annotated[int, Query(ge=1, le=10)] = 5) -> dict[str, Any]:
    return {"item_id": item_id, "q": q, "limit": limit}


def token(x_token: Annotated[str, Header()]) -> str:
    if x_token != "s3cret":
        raise HTTPException(status_code=401, detail="bad token")
    return x_token


@app.get("/dep")
async def dep(tok: Annotated[str, Depends(token)], user_agent: Annotated[str | None, Header()] = None) -> dict[str, Any]:
    return {"token": tok, "user_agent": user_agent}


@app.get("/state")
async def state(request: Request) -> dict[str, Any]:
    return {"greeting": request.state.greeting, "started": request.state.started}


app.websocket("/ws")(ws_echo)
