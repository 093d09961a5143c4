"""Covet._handle, the worker's entry point, and RequestHead.from_wire."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid

import pytest

from covet import Covet, HTTPException, Request, Response
from covet._head import RequestHead

from app_helpers import chunks, make_head, run_async


async def collect(response: Response) -> bytes:
    return b"".join([c async for c in response.body_chunks()])


def test_from_wire_keeps_flat_lists() -> None:
    head = RequestHead.from_wire(
        ["POST", "/u/7", "a=1", ["host", b"x", "x-y", b"\xff"], "/u/{id:int}", ["id", "7"],
         "2", "https", "[::1]:9", "rid", 3, 250]  # fmt: skip
    )
    assert head.headers == ["host", b"x", "x-y", b"\xff"]
    assert head.params == ["id", "7"]
    assert (head.body_length, head.timeout_ms, head.http_version) == (3, 250, "2")
    assert Request(head, chunks()).headers.raw == [("host", b"x"), ("x-y", b"\xff")]


def test_from_wire_accepts_a_tuple_and_normalises_it() -> None:
    head = RequestHead.from_wire(
        ("GET", "/", "", ["host", b"x"], "/", [], "1.1", "http", "", "r", 0, 0)  # fmt: skip
    )
    assert head.headers == ["host", b"x"] and head.path == "/"


@pytest.mark.parametrize(
    ("arr", "message"),
    [
        (["GET"], "array of 12 elements"),
        ([1, "/", "", [], "/", [], "1.1", "http", "", "r", 0, 0], r"REQ_HEAD\[0\] \(method\) must be str"),
        (["GET", "/", "", ["a"], "/", [], "1.1", "http", "", "r", 0, 0], "odd number"),
        (["GET", "/", "", ["a", "b"], "/", [], "1.1", "http", "", "r", 0, 0], r"must be \(str, bytes\)"),
        (["GET", "/", "", [], "/", ["id", 1], "1.1", "http", "", "r", 0, 0], r"must be \(str, str\)"),
        (["GET", "/", "", [], "/", [], "1.1", "http", "", "r", -2, 0], "must be >= -1"),
        (["GET", "/", "", [], "/", [], "1.1", "http", "", "r", True, 0], "must be int"),
        (["GET", "/", "", [], "/", ["id"], "1.1", "http", "", "r", 0, 0], r"\(params\) has an odd number"),
        (["GET", "/", "", [], "/", [], "1.1", "http", "", "r", 0, -1], "must be >= 0"),
        (["GET", "/", "", [b"a", b"b"], "/", [], "1.1", "http", "", "r", 0, 0], r"must be \(str, bytes\)"),
        (["GET", "/", "", [], "/", [], "1.1", "http", "", "r", 0, 0, 0], "array of 12 elements"),
    ],
)
def test_from_wire_rejects_malformed(arr: list[object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RequestHead.from_wire(arr)


def build_app() -> Covet:
    app = Covet()

    @app.get("/users/{id:int}")
    async def user(req: Request, id: int) -> dict[str, object]:
        return {"id": id, "type": type(id).__name__, "params": req.path_params}

    @app.get("/things/{key:uuid}")
    async def thing(req: Request, key: uuid.UUID) -> str:
        assert isinstance(key, uuid.UUID)
        return str(key)

    @app.get("/boom")
    async def boom(req: Request) -> None:
        raise RuntimeError("secret internal detail")

    return app


@run_async
async def test_handle_converts_params() -> None:
    app = build_app()
    resp = await app._handle(make_head(path="/users/42", route="/users/{id:int}", params=["id", "42"]), chunks())
    assert resp.status == 200
    assert await collect(resp) == b'{"id":42,"type":"int","params":{"id":42}}'
    key = "6F9619FF-8B86-D011-B42D-00C04FC964FF"
    resp = await app._handle(make_head(path=f"/things/{key}", route="/things/{key:uuid}", params=["key", key]), chunks())
    assert await collect(resp) == key.lower().encode()


@pytest.mark.parametrize(
    ("route", "params"),
    [
        ("/users/{id:int}", ["id", "abc"]),
        ("/users/{id:int}", ["id", "99999999999999999999"]),  # past int64
        ("/users/{id:int}", ["id", "1_000"]),  # int() would accept it
        ("/users/{id:int}", ["id", "\u0661"]),  # an Arabic-Indic digit
        ("/users/{id:int}", []),  # missing param
        ("/users/{id:int}", ["id", "1", "other", "2"]),  # unknown param
        ("/things/{key:uuid}", ["key", "{12345678-1234-1234-1234-123456789abc}"]),
        ("/nowhere", []),
    ],
)
@run_async
async def test_handle_bad_params_or_route_give_404(route: str, params: list[str]) -> None:
    resp = await build_app()._handle(make_head(route=route, params=params), chunks())
    assert resp.status == 404
    assert await collect(resp) == b'{"detail":"Not Found"}'


@run_async
async def test_head_falls_back_to_get_route_and_drops_body() -> None:
    app = build_app()
    for route in ("/users/{id:int}",):
        resp = await app._handle(make_head("HEAD", "/users/1", route, ["id", "1"]), chunks())
        assert resp.status == 200
        assert resp.body_length == 0 and await collect(resp) == b""
        assert dict(resp.raw_headers)["content-length"] == b"39"
        assert dict(resp.raw_headers)["content-type"] == b"application/json"


@run_async
async def test_handle_never_raises_and_logs_500(caplog: pytest.LogCaptureFixture) -> None:
    app = build_app()
    with caplog.at_level(logging.ERROR, logger="covet.error"):
        resp = await app._handle(make_head(path="/boom", route="/boom", request_id="rid-777"), chunks())
    body = await collect(resp)
    assert resp.status == 500 and body == b"Internal Server Error"
    assert b"secret" not in body and b"Traceback" not in body
    [record] = [r for r in caplog.records if r.name == "covet.error"]
    assert "rid-777" in record.getMessage()
    assert record.request_id == "rid-777"  # type: ignore[attr-defined]
    assert "Traceback" in caplog.text and "secret internal detail" in caplog.text


@run_async
async def test_handle_survives_a_broken_exception_handler(caplog: pytest.LogCaptureFixture) -> None:
    app = build_app()

    @app.exception_handler(RuntimeError)
    async def broken(req: Request, exc: Exception) -> None:
        raise ValueError("handler broke too")

    resp = await app._handle(make_head(path="/boom", route="/boom"), chunks())
    assert resp.status == 500 and await collect(resp) == b"Internal Server Error"
    assert "handler broke too" in caplog.text


@run_async
async def test_sync_handler_does_not_block_the_loop() -> None:
    app = Covet()
    released = threading.Event()

    @app.get("/slow")
    def slow(req: Request) -> dict[str, bool]:
        # Blocks its thread until the async handler has run on the event loop.
        return {"released": released.wait(timeout=5)}

    @app.get("/fast")
    async def fast(req: Request) -> str:
        released.set()
        return "fast"

    slow_resp, fast_resp = await asyncio.gather(
        app._handle(make_head(path="/slow", route="/slow"), chunks()),
        app._handle(make_head(path="/fast", route="/fast"), chunks()),
    )
    assert await collect(slow_resp) == b'{"released":true}'
    assert await collect(fast_resp) == b"fast"


@run_async
async def test_sync_handler_in_worker_thread() -> None:
    app = Covet()
    loop_thread = threading.get_ident()

    @app.get("/t")
    def where(req: Request) -> dict[str, bool]:
        return {"other_thread": threading.get_ident() != loop_thread}

    resp = await app._handle(make_head(path="/t", route="/t"), chunks())
    assert await collect(resp) == b'{"other_thread":true}'


@run_async
async def test_handle_reads_streamed_body() -> None:
    app = Covet()

    @app.post("/echo")
    async def echo(req: Request) -> bytes:
        return await req.body()

    head = make_head("POST", "/echo", "/echo", body=-1)
    resp = await app._handle(head, chunks(b"ab", b"", b"cd"))
    assert await collect(resp) == b"abcd"
    assert dict(resp.raw_headers)["content-type"] == b"application/octet-stream"


@run_async
async def test_http_exception_from_handler() -> None:
    app = Covet()

    @app.get("/auth")
    async def auth(req: Request) -> None:
        raise HTTPException(401, {"reason": "token expired"}, {"www-authenticate": "Bearer"})

    resp = await app._handle(make_head(path="/auth", route="/auth"), chunks())
    assert resp.status == 401
    assert dict(resp.raw_headers)["www-authenticate"] == b"Bearer"
    assert await collect(resp) == b'{"detail":{"reason":"token expired"}}'


@run_async
async def test_unsupported_return_value_is_a_logged_500(caplog: pytest.LogCaptureFixture) -> None:
    app = Covet()

    @app.get("/odd")
    async def odd(req: Request) -> object:
        return 3.5

    resp = await app._handle(make_head(path="/odd", route="/odd"), chunks())
    assert resp.status == 500
    assert "handler returned float" in caplog.text
