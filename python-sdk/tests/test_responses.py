"""Responses: return-value conversion, classes, cookies, streaming — through TestClient."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone

import pytest

from covet import (
    Covet,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Request,
    Response,
    StreamingResponse,
)
from covet.testing import TestClient

BIG = os.urandom(9 * 1024 * 1024 + 1)
loop_threads: list[int] = []
gen_threads: list[int] = []
closed: list[str] = []


def build() -> Covet:
    app = Covet()

    @app.get("/dict")
    async def d(req: Request) -> dict[str, object]:
        return {"msg": "héllo ✓", "n": [1, 2]}

    @app.get("/list")
    def lst(req: Request) -> list[int]:
        return [1, 2, 3]

    @app.get("/str")
    async def s(req: Request) -> str:
        return "plain ü"

    @app.get("/bytes")
    async def b(req: Request) -> bytes:
        return b"\x00\xff"

    @app.get("/none")
    async def n(req: Request) -> None:
        return None

    @app.post("/tuple")
    async def t(req: Request) -> tuple[dict[str, int], int]:
        return {"id": 1}, 201

    @app.get("/html")
    async def h(req: Request) -> HTMLResponse:
        return HTMLResponse("<p>ß</p>", headers={"x-frame-options": "DENY"})

    @app.get("/text")
    async def txt(req: Request) -> PlainTextResponse:
        return PlainTextResponse("teapot", status=418)

    @app.get("/custom")
    async def custom(req: Request) -> Response:
        resp = Response(b"<x/>", media_type="application/xml", headers=[("x-a", "1"), ("x-a", "2")])
        resp.headers["x-latin"] = "café"
        resp.headers.append("x-raw", b"\xfe")
        return resp

    @app.get("/json-status")
    async def js(req: Request) -> JSONResponse:
        return JSONResponse({"ok": False}, status=422)

    @app.get("/redirect")
    async def redirect(req: Request) -> RedirectResponse:
        return RedirectResponse("/déjà vu?x=1")

    @app.get("/redirect-301")
    async def redirect301(req: Request) -> RedirectResponse:
        return RedirectResponse("https://example.com/", status=301)

    @app.get("/big")
    async def big(req: Request) -> bytes:
        return BIG

    @app.get("/stream-sync")
    def stream_sync(req: Request) -> StreamingResponse:
        def gen() -> Iterator[bytes | str]:
            try:
                for i in range(3):
                    gen_threads.append(threading.get_ident())
                    yield f"line {i} ✓\n"
                yield b""
                yield b"end"
            finally:
                closed.append("sync")

        return StreamingResponse(gen(), media_type="text/plain")

    @app.get("/stream-async")
    async def stream_async(req: Request) -> StreamingResponse:
        loop_threads.append(threading.get_ident())

        async def agen() -> AsyncIterator[bytes]:
            try:
                for i in range(4):
                    await asyncio.sleep(0)
                    yield str(i).encode()
            finally:
                closed.append("async")

        return StreamingResponse(agen(), status=206, headers={"x-s": "1"}, media_type="application/x-ndjson")

    @app.get("/stream-big")
    async def stream_big(req: Request) -> StreamingResponse:
        async def agen() -> AsyncIterator[bytes]:
            view = memoryview(BIG)
            for i in range(0, len(BIG), 1 << 20):
                yield bytes(view[i : i + (1 << 20)])

        return StreamingResponse(agen())

    @app.get("/cookies/set")
    async def set_cookie(req: Request) -> Response:
        resp = Response("set")
        resp.set_cookie("session", "abc123", max_age=3600, httponly=True, secure=True, samesite="strict")
        resp.set_cookie("theme", "dark", path="/app", domain="example.com", samesite=None)
        resp.set_cookie("until", "x", expires=datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
        return resp

    @app.get("/cookies/delete")
    async def delete_cookie(req: Request) -> Response:
        resp = Response("deleted")
        resp.delete_cookie("session")
        return resp

    @app.get("/cookies/read")
    async def read_cookies(req: Request) -> dict[str, str]:
        return req.cookies

    return app


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(build()) as c:
        yield c


def test_dict_and_list_become_compact_utf8_json(client: TestClient) -> None:
    r = client.get("/dict")
    assert r.headers["content-type"] == "application/json"
    assert r.content == '{"msg":"héllo ✓","n":[1,2]}'.encode()
    assert r.headers["content-length"] == str(len(r.content))
    assert client.get("/list").content == b"[1,2,3]"


def test_str_bytes_none_tuple(client: TestClient) -> None:
    r = client.get("/str")
    assert (r.headers["content-type"], r.text) == ("text/plain; charset=utf-8", "plain ü")
    r = client.get("/bytes")
    assert (r.headers["content-type"], r.content) == ("application/octet-stream", b"\x00\xff")
    r = client.get("/none")
    assert (r.status_code, r.content, r.headers.get("content-type")) == (204, b"", None)
    r = client.post("/tuple")
    assert (r.status_code, r.json()) == (201, {"id": 1})


def test_response_classes(client: TestClient) -> None:
    r = client.get("/html")
    assert r.headers["content-type"] == "text/html; charset=utf-8" and r.text == "<p>ß</p>"
    assert r.headers["X-Frame-Options"] == "DENY"
    r = client.get("/text")
    assert (r.status_code, r.text) == (418, "teapot")
    r = client.get("/custom")
    assert r.headers["content-type"] == "application/xml"
    assert r.headers.getlist("x-a") == ["1", "2"]
    assert r.headers["x-latin"] == "café"
    assert ("x-latin", b"caf\xe9") in r.headers.raw and ("x-raw", b"\xfe") in r.headers.raw
    r = client.get("/json-status")
    assert (r.status_code, r.json()) == (422, {"ok": False})


def test_redirects(client: TestClient) -> None:
    r = client.get("/redirect")
    assert r.status_code == 307
    assert r.headers["location"] == "/d%C3%A9j%C3%A0%20vu?x=1"
    r = client.get("/redirect-301")
    assert (r.status_code, r.headers["location"]) == (301, "https://example.com/")


def test_large_response_body(client: TestClient) -> None:
    r = client.get("/big")
    assert len(r.content) == len(BIG) and hashlib.sha256(r.content).digest() == hashlib.sha256(BIG).digest()
    assert r.headers["content-length"] == str(len(BIG))


def test_streaming_sync_generator_runs_in_thread_pool(client: TestClient) -> None:
    gen_threads.clear()
    closed.clear()
    r = client.get("/stream-sync")
    assert r.text == "line 0 ✓\nline 1 ✓\nline 2 ✓\nend"
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert "content-length" not in r.headers  # streamed: length unknown up front
    assert threading.get_ident() not in gen_threads
    assert closed == ["sync"]


def test_streaming_async_generator(client: TestClient) -> None:
    closed.clear()
    r = client.get("/stream-async")
    assert (r.status_code, r.content) == (206, b"0123")
    assert r.headers["x-s"] == "1" and r.headers["content-type"] == "application/x-ndjson"
    assert closed == ["async"]


def test_streaming_large_body(client: TestClient) -> None:
    r = client.get("/stream-big")
    assert r.content == BIG


def test_cookies_set_read_delete(client: TestClient) -> None:
    r = client.get("/cookies/set")
    assert r.headers.getlist("set-cookie") == [
        "session=abc123; Max-Age=3600; Path=/; Secure; HttpOnly; SameSite=Strict",
        "theme=dark; Path=/app; Domain=example.com",
        "until=x; Expires=Wed, 02 Jan 2030 03:04:05 GMT; Path=/; SameSite=Lax",
    ]
    assert r.cookies == {"session": "abc123", "theme": "dark", "until": "x"}
    assert client.get("/cookies/read").json() == {"session": "abc123", "theme": "dark", "until": "x"}
    r = client.get("/cookies/delete")
    assert r.headers["set-cookie"] == (
        "session=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; SameSite=Lax"
    )
    assert r.cookies == {"session": ""}
    assert client.get("/cookies/read").json() == {"theme": "dark", "until": "x"}


def test_cookie_validation() -> None:
    resp = Response()
    with pytest.raises(ValueError, match="cookie-octet"):
        resp.set_cookie("a", "has space")
    with pytest.raises(ValueError, match="invalid cookie name"):
        resp.set_cookie("a=b", "x")
    with pytest.raises(ValueError, match="requires secure"):
        resp.set_cookie("a", "x", samesite="none")
    with pytest.raises(ValueError, match="timezone-aware"):
        resp.set_cookie("a", "x", expires=datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="control character"):
        resp.set_cookie("a", "x", path="/;evil")


def test_header_injection_and_status_validation() -> None:
    with pytest.raises(ValueError, match="control character"):
        Response(headers={"x-a": "1\r\nset-cookie: evil=1"})
    for bad in ("a\x01b", "del\x7f", "\x1b[31m"):  # any control character but HTAB, as the gateway's writer
        with pytest.raises(ValueError, match="control character"):
            Response(headers={"x-a": bad})
    assert Response(headers={"x-a": "tab\tok"}).raw_headers == [("x-a", b"tab\tok")]
    with pytest.raises(ValueError, match="invalid header name"):
        Response(headers={"bad name": "1"})
    with pytest.raises(ValueError, match="not latin-1"):
        Response(headers={"x-a": "€"})
    with pytest.raises(ValueError, match="200..599"):
        Response(status=99)
    with pytest.raises(ValueError, match="300..399"):
        RedirectResponse("/x", status=200)
    with pytest.raises(TypeError, match="iterable of chunks"):
        StreamingResponse(b"not an iterable of chunks")  # type: ignore[arg-type]


def test_worker_facing_members() -> None:
    resp = JSONResponse({"a": 1}, headers={"X-Up": "1"})
    assert resp.status == 200
    assert resp.raw_headers == [("x-up", b"1"), ("content-type", b"application/json")]
    assert resp.body_length == 7
    stream = StreamingResponse(iter([b"a"]))
    assert stream.body_length == -1

    async def consume() -> tuple[list[bytes], list[bytes]]:
        return [c async for c in resp.body_chunks()], [c async for c in stream.body_chunks()]

    assert asyncio.run(consume()) == ([b'{"a":1}'], [b"a"])


def test_early_close_of_async_stream_closes_generator() -> None:
    events: list[str] = []

    async def agen() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"x"
        finally:
            events.append("closed")

    async def consume() -> None:
        it = StreamingResponse(agen()).body_chunks()
        assert await anext(it) == b"x"
        await it.aclose()  # type: ignore[attr-defined]

    asyncio.run(consume())
    assert events == ["closed"]


def test_json_encoding_agrees_with_the_standard_library() -> None:
    """JSONResponse encodes with msgspec: compact UTF-8 JSON that the standard library
    reads back as the value it was given (tuples and sets as lists, int keys as str),
    with more types than json.dumps takes."""
    import dataclasses
    import datetime
    import decimal
    import enum
    import json
    import uuid

    import msgspec

    values = [{"message": "Hello, World!"}, [1, 2.5, None, True, "café ☕", {"k": [{}]}], {"big": 2**70},
              {"esc": "quote\" back\\ nl\n tab\t \x01"}, [], {"t": (1, 2)}, [1e300, -0.0]]  # fmt: skip
    for value in values:
        body = JSONResponse(value).body
        assert len(body) <= len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
        assert json.loads(body) == json.loads(json.dumps(value))
    assert JSONResponse({1: "a", "s": {3}}).body == b'{"1":"a","s":[3]}'
    assert JSONResponse([float("nan"), float("inf")]).body == b"[null,null]"

    class Color(enum.Enum):
        RED = "red"

    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    class Item(msgspec.Struct):
        name: str
        when: datetime.datetime

    when = datetime.datetime(2026, 12, 7, 8, 30, tzinfo=datetime.timezone.utc)
    got = JSONResponse({"c": Color.RED, "p": Point(1, 2), "i": Item("a", when), "d": decimal.Decimal("1.5"),
                        "u": uuid.UUID(int=1), "day": when.date()}).body  # fmt: skip
    assert json.loads(got) == {"c": "red", "p": {"x": 1, "y": 2}, "i": {"name": "a", "when": "2026-12-07T08:30:00Z"},
                               "d": "1.5", "u": "00000000-0000-0000-0000-000000000001", "day": "2026-12-07"}  # fmt: skip
    with pytest.raises(TypeError, match="not JSON serializable"):
        JSONResponse({"o": object()})
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(RecursionError):
        JSONResponse(loop)


def test_media_type_becomes_content_type_once_validated() -> None:
    assert Response(b"x", media_type="text/csv").raw_headers == [("content-type", b"text/csv; charset=utf-8")]
    assert Response(b"x", media_type="text/csv; Charset=latin-1").raw_headers == [
        ("content-type", b"text/csv; Charset=latin-1")
    ]
    with pytest.raises(ValueError, match="control character"):
        Response(b"x", media_type="text/plain\r\nx-evil: 1")
    assert Response(b"x", headers={"Content-Type": "a/b"}, media_type="c/d").raw_headers == [("content-type", b"a/b")]
    assert Response(status=204).raw_headers == []


def test_status_code_is_accepted_wherever_status_is() -> None:
    """Starlette's spelling, ``status_code=``, on every response class and on
    HTTPException, and ``.status_code`` read and written."""
    from covet import EventSourceResponse, FileResponse, HTMLResponse, HTTPException, PlainTextResponse

    made = [Response(b"", status_code=201), JSONResponse({}, status_code=201), HTMLResponse("", status_code=201),
            PlainTextResponse("", status_code=201), StreamingResponse(iter([b""]), status_code=201),
            EventSourceResponse(iter([]), status_code=201), FileResponse(__file__, status=201)]  # fmt: skip
    assert [r.status for r in made] == [201] * len(made)
    assert RedirectResponse("/x", status_code=301).status_code == 301
    r = Response()
    r.status_code = 404
    assert r.status == 404
    with pytest.raises(ValueError):
        r.status_code = 99
    e = HTTPException(status_code=418, detail="teapot")
    assert (e.status, e.status_code, e.detail) == (418, 418, "teapot")
    with pytest.raises(ValueError, match="disagree"):
        HTTPException(400, status_code=401)
