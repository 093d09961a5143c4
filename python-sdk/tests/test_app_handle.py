"""Covet._handle, the worker's entry point, RequestHead.from_wire and decode_head."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid

import msgpack  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covet import Covet, HTTPException, Request, Response
from covet._head import RequestHead, decode_head

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


MALFORMED = [
        (["GET"], "array of 12, 13 or 14 elements"),
        ([1, "/", "", [], "/", [], "1.1", "http", "", "r", 0, 0], r"REQ_HEAD\[0\] \(method\) must be str"),
        (["GET", "/", "", ["a"], "/", [], "1.1", "http", "", "r", 0, 0], "odd number"),
        (["GET", "/", "", ["a", "b"], "/", [], "1.1", "http", "", "r", 0, 0], r"must be \(str, bytes\)"),
        (["GET", "/", "", [], "/", ["id", 1], "1.1", "http", "", "r", 0, 0], r"must be \(str, str\)"),
        (["GET", "/", "", [], "/", [], "1.1", "http", "", "r", -2, 0], "must be >= -1"),
        (["GET", "/", "", [], "/", [], "1.1", "http", "", "r", True, 0], "must be int"),
        (["GET", "/", "", [], "/", ["id"], "1.1", "http", "", "r", 0, 0], r"\(params\) has an odd number"),
        (["GET", "/", "", [], "/", [], "1.1", "http", "", "r", 0, -1], "must be >= 0"),
        (["GET", "/", "", [b"a", b"b"], "/", [], "1.1", "http", "", "r", 0, 0], r"must be \(str, bytes\)"),
        (["GET", "/", "", [], "/", [], "1.1", "http", "", "r", 0, 0, 0], r"\(client_cert\) must be an array of 3"),
        (["GET", "/", "", [], "/", [], "1.1", "http", "", "r", 0, 0, ["s", [], "f"], 0], r"\(auth\) must be an array of 4"),
        (["GET", "/", "", [], "/", [], "1.1", "http", "", "r", 0, 0, None, None], r"\(auth\) must be an array of 4"),
        (["GET", "/", "", [], "/", [], "1.1", "http", "", "r", 0, 0, None, ["s", b"{}", [], []], 0],
         "array of 12, 13 or 14 elements"),
]


@pytest.mark.parametrize(("arr", "message"), MALFORMED)
def test_from_wire_rejects_malformed(arr: list[object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RequestHead.from_wire(arr)


@pytest.mark.parametrize(("arr", "message"), MALFORMED)
def test_decode_head_names_the_malformed_element(arr: list[object], message: str) -> None:
    # msgspec refuses these; the msgpack fallback must name the element as from_wire does.
    with pytest.raises(ValueError, match=message):
        decode_head(msgpack.packb(arr, use_bin_type=True))


GOOD = ["POST", "/u/7", "a=1", ["host", b"x", "x-y", b"\xff"], "/u/{id:int}", ["id", "7"],
        "2", "https", "[::1]:9", "rid", -1, 250]  # fmt: skip


def test_decode_head_gives_the_request_head() -> None:
    head = decode_head(msgpack.packb(GOOD, use_bin_type=True))
    assert type(head) is RequestHead
    assert head == RequestHead.from_wire(GOOD)
    assert head.headers == ["host", b"x", "x-y", b"\xff"] and head.body_length == -1


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (msgpack.packb(GOOD, use_bin_type=True) + b"\x00", "extra data"),
        (msgpack.packb(GOOD, use_bin_type=True)[:-3], "incomplete"),
        (msgpack.packb({str(i): v for i, v in enumerate(GOOD)}, use_bin_type=True), "array of 12"),
        (msgpack.packb(["GET", b"/"] + GOOD[2:], use_bin_type=True), r"REQ_HEAD\[1\] \(path\) must be str"),
        (msgpack.packb(GOOD[:10] + [1.0, 0], use_bin_type=True), r"REQ_HEAD\[10\] \(body\) must be int"),
        (msgpack.packb(GOOD[:4] + ["/", ["id", b"7"]] + GOOD[6:], use_bin_type=True), r"must be \(str, str\)"),
        (b"\x9c\xa3G\xffT" + msgpack.packb(GOOD, use_bin_type=True)[5:], "utf-8"),
    ],
)
def test_decode_head_refuses_bad_payloads(payload: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_head(payload)


_wire_value = st.one_of(st.text(max_size=3), st.binary(max_size=3), st.integers(-3, 3), st.booleans(),
                        st.none(), st.floats(allow_nan=False))  # fmt: skip
_wire_list = st.lists(_wire_value, max_size=5) | st.lists(st.sampled_from(["k", b"v"]), max_size=5)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_wire_value, max_size=13),
    st.lists(st.integers(0, 11), max_size=12),
    _wire_list,
    _wire_list,
)
def test_decode_head_agrees_with_from_wire(mutation: list[object], where: list[int], headers: list[object],
                                           params: list[object]) -> None:  # fmt: skip
    # Start from a good head, overwrite some elements with arbitrary msgpack values,
    # and maybe change the length: msgspec's fast path must accept exactly what
    # from_wire accepts, and give the same head.
    arr: list[object] = list(GOOD)
    arr[3], arr[5] = headers, params
    for i, value in zip(where, mutation):
        arr[i] = value
    if len(mutation) > len(where) + 3:
        arr = arr[: len(mutation)] if len(mutation) < 12 else arr + mutation[12:]
    payload = msgpack.packb(arr, use_bin_type=True)
    try:
        want = RequestHead.from_wire(msgpack.unpackb(payload, raw=False))
    except ValueError:
        with pytest.raises(ValueError):
            decode_head(payload)
    else:
        assert decode_head(payload) == want


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
        return object()

    resp = await app._handle(make_head(path="/odd", route="/odd"), chunks())
    assert resp.status == 500
    assert "handler returned object" in caplog.text
