"""The WSGI adapter (covet/_wsgi.py): PEP 3333 apps served through covet.testing.TestClient
(and, where a test needs two requests at once or a client that leaves, the app's
``_handle`` on an event loop): environ, wsgi.input, start_response and exc_info,
write(), close(), streaming, HEAD, wsgi.file_wrapper, the pool; then a Flask app and a
Django app."""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from covet import FileResponse
from covet._head import RequestHead
from covet._responses import Response
from covet._wsgi import DEFAULT_THREADS, ENV_THREADS, FileWrapper, _response_fields, pool_size, wsgi_app
from covet.testing import IncompleteResponse, TestClient

StartResponse = Callable[..., Callable[[bytes], None]]
Environ = dict[str, Any]


def client(app: Callable[[Environ, StartResponse], Any], **kwargs: Any) -> TestClient:
    return TestClient(wsgi_app(app, "wsgi-test", threads=4), **kwargs)


def head(method: str = "GET", path: str = "/", body_length: int = 0, headers: list[Any] | None = None) -> RequestHead:
    """A REQ_HEAD as the gateway sends it for the catch-all route."""
    params = ["path", path.lstrip("/")]
    return RequestHead.from_wire([method, path, "", headers or ["host", b"example.com"], "/{path...}", params,
                                  "1.1", "http", "10.0.0.1:4321", "req-1", body_length, 0])  # fmt: skip


async def no_body() -> AsyncIterator[bytes]:
    return
    yield b""


# -- environ -------------------------------------------------------------------------------


def echo_environ(environ: Environ, start_response: StartResponse) -> list[bytes]:
    seen = {k: v for k, v in environ.items() if isinstance(v, (str, bool, tuple))}
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [repr(sorted(seen.items())).encode()]


def environ_of(c: TestClient, *args: Any, **kwargs: Any) -> dict[str, Any]:
    r = c.request(*args, **kwargs)
    assert r.status_code == 200, r.text
    return dict(eval(r.text))  # noqa: S307 - our own repr of str, bool and tuple values


def test_environ_carries_pep3333_keys_and_the_request() -> None:
    with client(echo_environ, base_url="https://example.com:8443") as c:
        env = environ_of(c, "POST", "/a%20b/%C3%A9%2Fx?q=1&r=%20", content=b"abc",
                         headers=[("content-type", "text/plain"), ("x-many", "1"), ("x-many", "2"),
                                  ("cookie", "a=1"), ("cookie", "b=2"), ("x_forwarded_for", "1.2.3.4")])  # fmt: skip
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == ""
    # Percent-decoded, then the UTF-8 bytes as latin-1 characters (PEP 3333); %2F decoded too.
    assert env["PATH_INFO"] == "/a b/\xc3\xa9/x"
    assert env["PATH_INFO"].encode("latin-1").decode("utf-8") == "/a b/é/x"
    assert env["QUERY_STRING"] == "q=1&r=%20"
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "3"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["SERVER_NAME"] == "example.com" and env["SERVER_PORT"] == "8443"
    assert env["HTTP_HOST"] == "example.com:8443"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["HTTP_X_MANY"] == "1, 2"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    # A name with "_" would read as X-Forwarded-For's key: dropped.
    assert "HTTP_X_FORWARDED_FOR" not in env
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["REMOTE_PORT"] == "50000"
    assert env["wsgi.url_scheme"] == "https"
    assert env["wsgi.version"] == (1, 0)
    assert env["wsgi.multithread"] is True and env["wsgi.multiprocess"] is True
    assert env["wsgi.run_once"] is False and env["wsgi.input_terminated"] is True
    assert env["covet.request_id"]


def test_environ_without_body_has_no_content_length_and_default_port() -> None:
    with client(echo_environ) as c:
        env = environ_of(c, "GET", "/")
    assert "CONTENT_LENGTH" not in env and "CONTENT_TYPE" not in env
    assert env["PATH_INFO"] == "/"
    assert env["SERVER_NAME"] == "testserver" and env["SERVER_PORT"] == "80"


def test_environ_from_an_http2_ipv6_head() -> None:
    """SERVER_PROTOCOL from the head's version; an IPv6 Host and client address."""
    seen: dict[str, Any] = {}

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.update(environ)
        start_response("204 No Content", [])
        return []

    covet = wsgi_app(app, "t", threads=1)
    wire = ["GET", "/x", "", ["host", b"[::1]:9000"], "/{path...}", ["path", "x"], "2", "https", "[::1]:5555",
            "rid", 0, 0]  # fmt: skip

    async def go() -> Response:
        await covet.startup()
        try:
            return await covet._handle(RequestHead.from_wire(wire), no_body())
        finally:
            await covet.shutdown()

    assert asyncio.run(go()).status == 204
    assert seen["SERVER_PROTOCOL"] == "HTTP/2"
    assert (seen["SERVER_NAME"], seen["SERVER_PORT"]) == ("[::1]", "9000")
    assert (seen["REMOTE_ADDR"], seen["REMOTE_PORT"]) == ("::1", "5555")
    assert seen["covet.request_id"] == "rid"


# -- wsgi.input ----------------------------------------------------------------------------


def test_input_read_readline_readlines_and_iteration() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        stream = environ["wsgi.input"]
        parts = [stream.read(3), stream.readline(), stream.readline(2), stream.readline(), b"|".join(stream.readlines(1))]
        parts.append(b"|".join(list(stream)))
        parts.append(stream.read())
        parts.append(stream.read(5))
        start_response("200 OK", [])
        return [repr(parts).encode()]

    body = b"abcdef\nline2\nl3\nl4\nl5\nlast"
    with client(app, chunk_size=4) as c:  # the body arrives 4 bytes at a time
        r = c.post("/", content=body)
    assert eval(r.text) == [b"abc", b"def\n", b"li", b"ne2\n", b"l3\n", b"l4\n|l5\n|last", b"", b""]  # noqa: S307


def test_input_read_all_and_sized_reads_across_chunks() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        stream = environ["wsgi.input"]
        first = stream.read(10)
        rest = stream.read()
        start_response("200 OK", [])
        return [f"{len(first)} {len(rest)} {first + rest == bytes(range(256)) * 40}".encode()]

    with client(app, chunk_size=7) as c:
        assert c.post("/", content=bytes(range(256)) * 40).text == "10 10230 True"


def test_input_of_a_request_without_body_is_empty() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [])
        stream = environ["wsgi.input"]
        return [b"[%s|%s]" % (stream.read(), stream.readline())]

    with client(app) as c:
        assert c.get("/").text == "[|]"


# -- start_response, write, the iterable ------------------------------------------------------


def test_list_answer_is_one_plain_response_without_the_apps_framing_fields() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("201 Created", [("Content-Type", "text/plain"), ("Content-Length", "999"),
                                        ("Transfer-Encoding", "chunked"), ("Connection", "close"),
                                        ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])  # fmt: skip
        return [b"hello ", b"world"]

    covet = wsgi_app(app, "t", threads=1)

    async def go() -> Response:
        await covet.startup()
        try:
            return await covet._handle(head(), no_body())
        finally:
            await covet.shutdown()

    response = asyncio.run(go())
    assert type(response) is Response  # a complete body: the worker's fast path
    assert response.status == 201 and response.body == b"hello world"
    names = [n for n, _ in response.raw_headers]
    assert names == ["content-type", "set-cookie", "set-cookie"]
    with TestClient(covet) as c:
        r = c.get("/")
    assert r.status_code == 201 and r.text == "hello world"
    assert r.headers["content-length"] == "11" and "transfer-encoding" not in r.headers
    assert r.headers.getlist("set-cookie") == ["a=1", "b=2"]


def test_generator_answer_is_streamed_and_closed() -> None:
    closed = threading.Event()

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            for i in range(5):
                yield f"chunk{i};".encode()
                yield b""  # an empty chunk is skipped
        finally:
            closed.set()

    with client(app) as c:
        r = c.get("/")
    assert r.text == "".join(f"chunk{i};" for i in range(5))
    assert r.headers["transfer-encoding"] == "chunked"
    assert closed.wait(2)


def test_an_iterator_of_declared_length_is_answered_whole() -> None:
    """Flask and Django answer with an iterator and a Content-Length: taken whole (up to
    WHOLE_MAX), it goes out with its length, as a list would; closed all the same. An
    app that sends more than it declared is streamed past WHOLE_MAX, never buffered
    without bound."""
    from covet._wsgi import WHOLE_MAX

    closed: list[str] = []

    def declared(body: list[bytes], length: int) -> Callable[[Environ, StartResponse], Iterator[bytes]]:
        def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(length))])
            try:
                yield from body
            finally:
                closed.append(environ["PATH_INFO"])

        return app

    with client(declared([b"hello ", b"world"], 11)) as c:
        r = c.get("/a")
    assert (r.text, r.headers["content-length"], "transfer-encoding" in r.headers) == ("hello world", "11", False)
    big = [b"x" * (256 << 10)] * 6  # 1.5 MiB, declared as 5 bytes
    with client(declared(big, 5)) as c:
        r = c.get("/b")
    assert len(r.content) == 6 * (256 << 10) > WHOLE_MAX and r.headers["transfer-encoding"] == "chunked"
    assert closed == ["/a", "/b"]


def test_write_callable_comes_before_the_iterable() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", [])
        write(b"one,")
        write(bytearray(b"two,"))
        return [b"three"]

    with client(app) as c:
        assert c.get("/").text == "one,two,three"


def test_close_is_called_for_a_list_subclass_and_on_errors() -> None:
    calls: list[str] = []

    class Body(list[bytes]):
        def close(self) -> None:
            calls.append("closed")

    class Failing:
        def __iter__(self) -> Iterator[bytes]:
            yield b"part"
            raise RuntimeError("mid-body")

        def close(self) -> None:
            calls.append("failing closed")

    def app(environ: Environ, start_response: StartResponse) -> Any:
        start_response("200 OK", [])
        return Failing() if environ["PATH_INFO"] == "/fail" else Body([b"ok"])

    with client(app) as c:
        assert c.get("/").text == "ok"
        with pytest.raises(IncompleteResponse) as info:
            c.get("/fail")
    assert info.value.response.content == b"part"
    deadline = time.monotonic() + 2
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert calls == ["closed", "failing closed"]


def test_exception_before_start_response_is_a_logged_500(caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        raise ValueError("boom in app")

    with caplog.at_level(logging.ERROR, "covet.error"), client(app) as c:
        r = c.get("/x", headers={"x-request-id": "wsgi-req-7"})
    assert r.status_code == 500 and r.text == "Internal Server Error"
    record = next(rec for rec in caplog.records if rec.name == "covet.error")
    assert "wsgi-req-7" in record.getMessage() and getattr(record, "request_id", None) == "wsgi-req-7"
    assert record.exc_info is not None and "boom in app" in str(record.exc_info[1])


def test_exc_info_replaces_the_response_before_any_body() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("X-First", "1")])
        try:
            raise KeyError("lost")
        except KeyError:
            start_response("503 Service Unavailable", [("X-Second", "1")], sys.exc_info())
        return [b"error page"]

    with client(app) as c:
        r = c.get("/")
    assert r.status_code == 503 and r.text == "error page"
    assert "x-second" in r.headers and "x-first" not in r.headers


def test_exc_info_after_the_body_began_reraises() -> None:
    raised: list[BaseException] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"begun"
        try:
            raise KeyError("late")
        except KeyError:
            try:
                start_response("500 Internal Server Error", [], sys.exc_info())
            except KeyError as e:
                raised.append(e)
                raise

    with client(app) as c, pytest.raises(IncompleteResponse) as info:
        c.get("/")
    assert info.value.response.content == b"begun"
    assert len(raised) == 1


@pytest.mark.parametrize("case", ["twice", "no-start", "bad-status", "1xx", "bad-header", "str-body", "bytes-status"])
def test_protocol_errors_answer_500(case: str, caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Any:
        if case == "twice":
            start_response("200 OK", [])
            start_response("200 OK", [])
        elif case == "bad-status":
            start_response("OK", [])
        elif case == "1xx":
            start_response("101 Switching Protocols", [])
        elif case == "bad-header":
            start_response("200 OK", [("X-Bad", "a\r\nInjected: 1")])
        elif case == "str-body":
            start_response("200 OK", [])
            return iter(["text, not bytes"])
        elif case == "bytes-status":
            start_response(b"200 OK", [])
        return [b"body"]

    with caplog.at_level(logging.ERROR, "covet.error"), client(app) as c:
        r = c.get("/")
    assert r.status_code == 500
    assert any(rec.name == "covet.error" for rec in caplog.records)


def test_response_fields_are_the_same_when_seen_again_and_bad_ones_still_refused() -> None:
    """Fields an app sends on every response are encoded once and remembered; the
    answer is the same the second time, Content-Length is kept apart in any spelling,
    and a bad field is refused whatever was remembered before it."""
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "13"), ("X-A", "1")]
    first = _response_fields(headers)
    assert first == ([("content-type", b"text/plain; charset=utf-8"), ("x-a", b"1")], b"13")
    assert _response_fields(list(headers)) == first
    assert _response_fields([("CONTENT-LENGTH", "7"), ("content-length", "8")]) == ([], b"8")
    assert _response_fields([("Content-Length", "x1")]) == ([], None)  # not digits: dropped, not kept
    for bad in ([("X-A", "1\r\nX-B: 2")], [("X A", "1")], [("X-A", "é\u0100")]):
        with pytest.raises(ValueError):
            _response_fields(bad)
    for wrong in ([("X-A", b"1")], [["X-A", "1"]], [("X-A", "1", "2")]):
        with pytest.raises(TypeError):
            _response_fields(wrong)  # type: ignore[arg-type]


def test_status_without_reason_is_taken() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("404", [])
        return [b"nope"]

    with client(app) as c:
        r = c.get("/")
    assert (r.status_code, r.text) == (404, "nope")


def test_wsgi_errors_go_to_the_log_with_the_request_id(caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        errors = environ["wsgi.errors"]
        errors.write("first line\nsecond ")
        errors.writelines(["line\n", "unterminated"])
        start_response("200 OK", [])
        return [b"ok"]

    with caplog.at_level(logging.ERROR, "covet.wsgi"), client(app) as c:
        c.get("/", headers={"x-request-id": "errs-1"})
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "covet.wsgi"]
    assert lines == ["first line", "second line", "unterminated"]
    assert all(getattr(rec, "request_id", None) == "errs-1" for rec in caplog.records if rec.name == "covet.wsgi")


# -- HEAD and bodiless statuses ------------------------------------------------------------------


def test_head_keeps_the_apps_length_or_counts_the_body() -> None:
    closed: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        fields = [("Content-Type", "text/plain")]
        if environ["PATH_INFO"] == "/declared":
            fields.append(("Content-Length", "1234"))
        start_response("200 OK", fields)
        try:
            yield b"12345"
            yield b"678"
        finally:
            closed.append(environ["PATH_INFO"])

    with client(app) as c:
        counted = c.head("/counted")
        declared = c.head("/declared")
        got = c.get("/counted")
    assert counted.status_code == 200 and counted.content == b"" and counted.headers["content-length"] == "8"
    assert declared.content == b"" and declared.headers["content-length"] == "1234"
    assert got.text == "12345678"
    assert closed == ["/counted", "/declared", "/counted"]


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
def test_bodiless_status_drops_the_body(status: str) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response(status, [("ETag", '"x"')])
        yield b"never sent"

    with client(app) as c:
        r = c.get("/")
    assert r.status_code == int(status[:3]) and r.content == b""
    assert "content-length" not in r.headers and r.headers["etag"] == '"x"'


# -- wsgi.file_wrapper -------------------------------------------------------------------------


def file_app(make: Callable[[Environ], Any]) -> Callable[[Environ, StartResponse], Any]:
    def app(environ: Environ, start_response: StartResponse) -> Any:
        start_response("200 OK", [("Content-Type", "application/x-test")])
        return environ["wsgi.file_wrapper"](make(environ), 4)

    return app


def handle_once(app: Callable[[Environ, StartResponse], Any], method: str = "GET") -> Response:
    covet = wsgi_app(app, "t", threads=1)

    async def go() -> Response:
        await covet.startup()
        try:
            return await covet._handle(head(method), no_body())
        finally:
            await covet.shutdown()

    return asyncio.run(go())


def test_file_wrapper_of_a_regular_file_is_a_gateway_file_response(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"0123456789")
    opened: list[Any] = []

    def make(environ: Environ) -> Any:
        f = open(path, "rb")  # noqa: SIM115 - closed by the wrapper's close()
        opened.append(f)
        return f

    response = handle_once(file_app(make))
    assert isinstance(response, FileResponse) and response.path == str(path)
    assert ("content-type", b"application/x-test") in response.raw_headers
    assert opened[0].closed
    head_response = handle_once(file_app(make), "HEAD")
    assert isinstance(head_response, FileResponse)  # the gateway answers HEAD for the file
    with TestClient(wsgi_app(file_app(make), "t", threads=1)) as c:
        r = c.get("/")
    assert r.content == b"0123456789" and r.headers["content-type"] == "application/x-test"


def test_file_wrapper_is_iterated_when_the_gateway_cannot_send_the_file(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"0123456789")

    def seeked(environ: Environ) -> Any:
        f = open(path, "rb")  # noqa: SIM115
        f.seek(3)
        return f

    def unlinked(environ: Environ) -> Any:
        other = tmp_path / "gone.bin"
        other.write_bytes(b"deleted file")
        f = open(other, "rb")  # noqa: SIM115
        other.unlink()
        return f

    def temporary(environ: Environ) -> Any:
        f = tempfile.NamedTemporaryFile()  # noqa: SIM115 - deleted on close: the worker must read it
        f.write(b"temp bytes")
        f.flush()
        f.seek(0)
        return f

    cases: list[tuple[Callable[[Environ], Any], bytes]] = [
        (lambda environ: io.BytesIO(b"in memory"), b"in memory"),
        (seeked, b"3456789"),
        (unlinked, b"deleted file"),
        (temporary, b"temp bytes"),
    ]
    for make, expected in cases:
        response = handle_once(file_app(make))
        assert not isinstance(response, FileResponse), make
        with TestClient(wsgi_app(file_app(make), "t", threads=1)) as c:
            assert c.get("/").content == expected


def test_file_wrapper_after_write_is_iterated(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"file")

    def app(environ: Environ, start_response: StartResponse) -> Any:
        write = start_response("200 OK", [])
        write(b"written;")
        return FileWrapper(open(path, "rb"))  # noqa: SIM115

    with client(app) as c:
        assert c.get("/").content == b"written;file"


# -- the pool, concurrency, a client that leaves -----------------------------------------------------


def test_pool_size_settings() -> None:
    assert pool_size(None, {}) == DEFAULT_THREADS
    assert pool_size(None, {ENV_THREADS: " 8 "}) == 8
    assert pool_size(3, {ENV_THREADS: "8"}) == 3
    for bad in ("0", "-1", "many", "1.5", "100000"):
        with pytest.raises(ValueError, match=ENV_THREADS):
            pool_size(None, {ENV_THREADS: bad})
    for bad_arg in (0, -2, True, 2.0):
        with pytest.raises(ValueError, match="--wsgi-threads"):
            pool_size(bad_arg, {})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        wsgi_app("not an app", "t")


def test_pool_threads_run_requests_at_once_and_the_loop_keeps_running() -> None:
    """Two requests meet at a barrier in the app (each would wait forever alone), and a
    coroutine ticks on the loop meanwhile."""
    barrier = threading.Barrier(2, timeout=5)
    names: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        barrier.wait()
        time.sleep(0.2)
        names.append(threading.current_thread().name)
        start_response("200 OK", [])
        return [environ["PATH_INFO"].encode()]

    covet = wsgi_app(app, "t", threads=2)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def go() -> list[Response]:
        await covet.startup()
        tick = asyncio.create_task(ticker())
        try:
            return list(await asyncio.gather(covet._handle(head(path="/a"), no_body()),
                                             covet._handle(head(path="/b"), no_body())))  # fmt: skip
        finally:
            tick.cancel()
            await covet.shutdown()

    a, b = asyncio.run(go())
    assert (a.body, b.body) == (b"/a", b"/b")
    assert ticks >= 10  # the loop ran all along the 0.2 s the app slept
    assert all(n.startswith("covet-wsgi") for n in names) and len(set(names)) == 2


@pytest.mark.parametrize(("spill_ms", "where"), [("60000", "thread"), ("0", "pool")])
def test_requests_of_one_loop_turn_run_on_the_handler_thread_or_all_on_the_pool(
        spill_ms: str, where: str, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Requests arriving together go to the app's handler thread (``covet-wsgi``) as one
    batch and are answered from it; with COVET_SYNC_SPILL_MS=0 every one goes to the
    pool (``covet-wsgi_N``). Neither runs app code on the loop's thread."""
    monkeypatch.setenv("COVET_SYNC_SPILL_MS", spill_ms)
    names: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        names.append(threading.current_thread().name)
        start_response("200 OK", [])
        return [environ["PATH_INFO"].encode()]

    covet = wsgi_app(app, "t", threads=3)

    async def go() -> list[Response]:
        await covet.startup()
        try:
            return list(await asyncio.gather(*(covet._handle(head(path=f"/{i}"), no_body()) for i in range(20))))
        finally:
            await covet.shutdown()

    responses = asyncio.run(go())
    assert [r.body for r in responses] == [f"/{i}".encode() for i in range(20)]
    if where == "thread":
        assert names == ["covet-wsgi"] * 20
    else:
        assert len(names) == 20 and all(n.startswith("covet-wsgi_") for n in names), names


def test_no_pool_before_startup_answers_500(caplog: pytest.LogCaptureFixture) -> None:
    covet = wsgi_app(echo_environ, "t", threads=1)
    with caplog.at_level(logging.ERROR, "covet.error"):
        response = asyncio.run(covet._handle(head(), no_body()))
    assert response.status == 500


def test_client_leaving_mid_stream_closes_the_body() -> None:
    """The worker stops taking chunks (aclose, as on CANCEL): the app's thread stops at
    its next chunk, closes the iterable and is free again."""
    closed = threading.Event()
    produced: list[int] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])
        try:
            for i in range(10_000):
                produced.append(i)
                yield b"x" * 100
        finally:
            closed.set()

    covet = wsgi_app(app, "t", threads=1)

    async def go() -> None:
        await covet.startup()
        try:
            response = await covet._handle(head(), no_body())
            chunks = response.body_chunks()
            assert await anext(chunks) == b"x" * 100
            await asyncio.sleep(0.1)  # the app fills the pipe and waits
            assert len(produced) < 20  # backpressure: a few chunks ahead, not 10 000
            await chunks.aclose()  # type: ignore[attr-defined]
            assert await asyncio.to_thread(closed.wait, 2)
            # the pool's one thread is free for the next request
            nxt = await covet._handle(head(method="HEAD"), no_body())
            assert nxt.status == 200
        finally:
            await covet.shutdown()

    asyncio.run(go())


def test_response_dropped_unread_frees_the_thread() -> None:
    closed = threading.Event()

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])
        try:
            while True:
                yield b"y" * 10
        finally:
            closed.set()

    covet = wsgi_app(app, "t", threads=1)

    async def go() -> None:
        await covet.startup()
        try:
            response = await covet._handle(head(), no_body())
            assert response.body_length == -1
            del response  # never iterated (the task was cancelled before the body)
            assert await asyncio.to_thread(closed.wait, 2)
        finally:
            await covet.shutdown()

    asyncio.run(go())


def test_cancelled_request_fails_a_pending_body_read() -> None:
    """The request is cancelled while the app waits for body bytes that never come: its
    read raises ClientDisconnected (an OSError) in the app's thread."""
    seen: list[BaseException] = []
    done = threading.Event()

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            environ["wsgi.input"].read()
        except OSError as e:
            seen.append(e)
        finally:
            done.set()
        start_response("200 OK", [])
        return [b"late"]

    async def stalled() -> AsyncIterator[bytes]:
        yield b"first"
        await asyncio.Event().wait()  # the rest never arrives
        yield b""

    covet = wsgi_app(app, "t", threads=1)

    async def go() -> None:
        await covet.startup()
        try:
            task = asyncio.create_task(covet._handle(head("POST", body_length=-1), stalled()))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await asyncio.to_thread(done.wait, 2)
        finally:
            await covet.shutdown()

    asyncio.run(go())
    assert len(seen) == 1 and isinstance(seen[0], OSError)


# -- Flask -----------------------------------------------------------------------------------------


def make_flask_app(tmp_path: Path) -> Any:
    flask = pytest.importorskip("flask", reason="flask is in the Makefile's PYDEPS: run make venv")
    app = flask.Flask("covet_flask_test")
    app.secret_key = "test-only"
    (tmp_path / "page.txt").write_text("file from flask\n")

    @app.get("/hello/<name>")
    def hello(name: str) -> Any:
        return flask.jsonify(hello=name, args=flask.request.args.to_dict(flat=False))

    @app.post("/form")
    def form() -> Any:
        return {"form": flask.request.form.to_dict(), "file": flask.request.files["f"].read().decode()}

    @app.post("/json")
    def json_body() -> Any:
        return {"got": flask.request.get_json(), "length": flask.request.content_length}

    @app.get("/session")
    def session() -> Any:
        flask.session["n"] = flask.session.get("n", 0) + 1
        return str(flask.session["n"])

    @app.get("/stream")
    def stream() -> Any:
        def gen() -> Iterator[str]:
            for i in range(3):
                yield f"row {i}\n"

        return flask.Response(gen(), mimetype="text/plain")

    @app.get("/file")
    def file() -> Any:
        return flask.send_file(tmp_path / "page.txt")

    @app.get("/fail")
    def fail() -> Any:
        raise RuntimeError("flask view failed")

    @app.errorhandler(418)
    def teapot(e: Exception) -> Any:
        return "custom teapot", 418

    @app.get("/teapot")
    def tea() -> Any:
        flask.abort(418)

    return app


def test_flask_app(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = make_flask_app(tmp_path)
    with client(app) as c:
        r = c.get("/hello/w%C3%B6rld?a=1&a=2")
        assert r.status_code == 200 and r.json() == {"hello": "wörld", "args": {"a": ["1", "2"]}}
        r = c.post("/form", data={"x": "1"}, files={"f": ("a.txt", b"uploaded", "text/plain")})
        assert r.json() == {"form": {"x": "1"}, "file": "uploaded"}
        r = c.post("/json", json={"k": [1, 2]})
        assert r.json() == {"got": {"k": [1, 2]}, "length": 11}
        assert c.get("/session").text == "1"
        assert c.get("/session").text == "2"  # the cookie came back
        r = c.get("/stream")
        assert r.text == "row 0\nrow 1\nrow 2\n" and r.headers["transfer-encoding"] == "chunked"
        r = c.get("/file")
        assert r.text == "file from flask\n" and r.headers["content-type"].startswith("text/plain")
        r = c.head("/file")
        assert r.status_code == 200 and r.content == b""
        assert c.get("/nowhere").status_code == 404
        assert c.post("/hello/x").status_code == 405
        assert (c.get("/teapot").status_code, c.get("/teapot").text) == (418, "custom teapot")
        with caplog.at_level(logging.ERROR):
            assert c.get("/fail").status_code == 500  # Flask's own 500 page


def test_flask_send_file_is_sent_by_the_gateway(tmp_path: Path) -> None:
    app = make_flask_app(tmp_path)
    covet = wsgi_app(app, "t", threads=1)

    async def go() -> Response:
        await covet.startup()
        try:
            return await covet._handle(head(path="/file"), no_body())
        finally:
            await covet.shutdown()

    response = asyncio.run(go())
    assert isinstance(response, FileResponse) and response.path == str(tmp_path / "page.txt")
    fields = dict(response.raw_headers)
    assert "etag" in fields and "last-modified" in fields  # Flask's validators, which the gateway keeps


# -- Django --------------------------------------------------------------------------------------


class _DjangoURLs:
    urlpatterns: list[Any] = []


@pytest.fixture(scope="module")
def django_app() -> Any:
    pytest.importorskip("django", reason="django is in the Makefile's PYDEPS: run make venv")
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="test-only",
            ALLOWED_HOSTS=["testserver", "example.com"],
            ROOT_URLCONF=_DjangoURLs,
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
            USE_TZ=True,
            DEFAULT_CHARSET="utf-8",
        )
    import django
    from django import http
    from django.core.wsgi import get_wsgi_application
    from django.urls import path

    django.setup()

    def hello(request: Any, name: str) -> Any:
        return http.JsonResponse({"hello": name, "q": request.GET.getlist("q"), "cookie": request.COOKIES.get("c")})

    def echo(request: Any) -> Any:
        return http.JsonResponse({"post": request.POST.dict(), "body_len": len(request.body)})

    def stream(request: Any) -> Any:
        return http.StreamingHttpResponse((f"part{i};" for i in range(3)), content_type="text/plain")

    def download(request: Any) -> Any:
        return http.FileResponse(open(_DjangoURLs.file_path, "rb"), content_type="text/plain")  # type: ignore[attr-defined]  # noqa: SIM115

    def fail(request: Any) -> Any:
        raise RuntimeError("django view failed")

    def raw(request: Any) -> Any:
        data = request.read()
        return http.HttpResponse(f"{len(data)} {request.META.get('CONTENT_TYPE')}", content_type="text/plain")

    _DjangoURLs.urlpatterns = [
        path("hello/<str:name>", hello),
        path("echo", echo),
        path("stream", stream),
        path("download", download),
        path("fail", fail),
        path("raw", raw),
    ]
    return get_wsgi_application()


def test_django_app(django_app: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    download = tmp_path / "dl.txt"
    download.write_text("django file\n")
    _DjangoURLs.file_path = str(download)  # type: ignore[attr-defined]
    with client(django_app) as c:
        r = c.get("/hello/w%C3%B6rld?q=1&q=2", cookies={"c": "yum"})
        assert r.status_code == 200 and r.json() == {"hello": "wörld", "q": ["1", "2"], "cookie": "yum"}
        r = c.post("/echo", data={"a": "1", "b": "two words"})
        assert r.json() == {"post": {"a": "1", "b": "two words"}, "body_len": len("a=1&b=two+words")}
        r = c.post("/raw", content=b"z" * 100_000, headers={"content-type": "application/octet-stream"})
        assert r.text == "100000 application/octet-stream"
        r = c.get("/stream")
        assert r.text == "part0;part1;part2;" and r.headers["transfer-encoding"] == "chunked"
        r = c.get("/download")
        assert r.text == "django file\n"
        assert c.get("/missing").status_code == 404
        with caplog.at_level(logging.ERROR):
            assert c.get("/fail").status_code == 500
    response = handle_once_at(django_app, "/download")
    assert isinstance(response, FileResponse) and response.path == str(download)


def handle_once_at(app: Any, path: str) -> Response:
    covet = wsgi_app(app, "t", threads=1)

    async def go() -> Response:
        await covet.startup()
        try:
            return await covet._handle(head(path=path, headers=["host", b"testserver"]), no_body())
        finally:
            await covet.shutdown()

    return asyncio.run(go())


def test_environ_keys_are_str() -> None:
    """PEP 3333: environ keys and CGI values are native str."""
    seen: dict[str, Any] = {}

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.update(environ)
        start_response("200 OK", [])
        return []

    with client(app) as c:
        c.get("/p?q", headers={"x-bin": "caf\xe9"})
    assert all(type(k) is str for k in seen)
    assert seen["HTTP_X_BIN"] == "caf\xe9"
    assert all(type(v) is str for k, v in seen.items() if k.isupper())
