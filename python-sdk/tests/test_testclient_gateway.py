"""TestClient answers as the gateway does: its own answers (404, 405, OPTIONS, 400,
413, 504), the fields it adds and drops, route timeouts, and the app's lifecycle
without ``with``. integration/python/test_parity.py checks the same against the real
gateway; these tests pin each rule without one."""

from __future__ import annotations

import asyncio
import gc
import re
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime

import pytest

from covet import Covet, PlainTextResponse, Request, Response, StreamingResponse
from covet.testing import IncompleteResponse, TestClient

IMF_DATE = re.compile(r"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT")


def fields(r: object) -> list[tuple[str, str]]:
    """The response's header fields, Date checked and left out."""
    raw = [(name, value.decode("latin-1")) for name, value in r.headers.raw]  # type: ignore[attr-defined]
    dates = [v for n, v in raw if n == "date"]
    assert len(dates) == 1 and IMF_DATE.fullmatch(dates[0]), dates
    parsedate_to_datetime(dates[0])
    return [(n, v) for n, v in raw if n != "date"]


def build() -> Covet:
    app = Covet()

    @app.route("/things", methods=["GET", "POST"])
    async def things(req: Request) -> str:
        return "things"

    @app.get("/users/{name}")
    async def user(req: Request, name: str) -> str:
        return name

    @app.get("/files/{rest...}")
    async def files(req: Request, rest: str) -> str:
        return rest

    @app.get("/empty")
    async def empty(req: Request) -> Response:
        return Response(b"")

    @app.get("/none")
    async def none(req: Request) -> None:
        return None

    @app.get("/not-modified")
    async def not_modified(req: Request) -> Response:
        return Response(b"stale body", 304, {"etag": '"v1"'})

    @app.get("/stream")
    async def stream(req: Request) -> StreamingResponse:
        async def gen() -> AsyncIterator[bytes]:
            yield b"one,"
            yield b"two"

        return StreamingResponse(gen(), media_type="text/csv")

    @app.get("/framing")
    async def framing(req: Request) -> Response:
        return Response(b"abc", headers=[
            ("Content-Length", "99"), ("Connection", "keep-alive"), ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "gzip"), ("Server", "mine"), ("X-Request-ID", "own-id"), ("X-Kept", "1"),
        ])  # fmt: skip

    @app.post("/echo")
    async def echo(req: Request) -> bytes:
        return await req.body()

    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(build())


def test_404_and_405_are_the_gateways_text(client: TestClient) -> None:
    r = client.get("/nope", headers={"x-request-id": "rid-1"})
    assert (r.status_code, r.content) == (404, b"Not Found\n")
    assert fields(r) == [("server", "covetpy"), ("content-type", "text/plain; charset=utf-8"),
                         ("x-request-id", "rid-1"), ("content-length", "10")]  # fmt: skip
    r = client.put("/things", headers={"x-request-id": "rid-2"})
    assert (r.status_code, r.content) == (405, b"Method Not Allowed\n")
    assert fields(r) == [("server", "covetpy"), ("content-type", "text/plain; charset=utf-8"),
                         ("allow", "GET, HEAD, OPTIONS, POST"), ("x-request-id", "rid-2"),
                         ("content-length", "19")]  # fmt: skip


def test_head_and_options_answers(client: TestClient) -> None:
    r = client.head("/nope", headers={"x-request-id": "h"})
    assert (r.status_code, r.content, r.headers["content-length"]) == (404, b"", "10")
    r = client.options("/things", headers={"x-request-id": "o"})
    assert (r.status_code, r.content) == (204, b"")
    assert fields(r) == [("server", "covetpy"), ("allow", "GET, HEAD, OPTIONS, POST"), ("x-request-id", "o")]


def test_fields_the_gateway_adds(client: TestClient) -> None:
    r = client.get("/things", headers={"x-request-id": "a"})
    assert fields(r) == [("content-type", "text/plain; charset=utf-8"), ("server", "covetpy"),
                         ("x-request-id", "a"), ("content-length", "6")]  # fmt: skip
    r = client.get("/stream", headers={"x-request-id": "s"})
    assert r.content == b"one,two"
    assert fields(r) == [("content-type", "text/csv; charset=utf-8"), ("server", "covetpy"),
                         ("x-request-id", "s"), ("transfer-encoding", "chunked")]  # fmt: skip
    r = client.get("/empty", headers={"x-request-id": "e"})
    assert fields(r)[-1] == ("content-length", "0")
    r = client.get("/things", headers={"x-request-id": "c", "connection": "close"})
    assert fields(r)[-1] == ("connection", "close")
    # a client id that is not 1-128 visible ASCII characters is replaced
    r = client.get("/things", headers={"x-request-id": "has space"})
    assert re.fullmatch(r"[0-9a-f]{16}", r.headers["x-request-id"]) and r.request_id == r.headers["x-request-id"]


def test_fields_the_gateway_drops_and_bodiless_statuses(client: TestClient) -> None:
    r = client.get("/framing")
    assert r.content == b"abc"
    assert fields(r) == [("server", "mine"), ("x-request-id", "own-id"), ("x-kept", "1"), ("content-length", "3")]
    r = client.head("/framing")  # HEAD keeps the length the worker declared
    assert (r.content, r.headers["content-length"]) == (b"", "99")
    r = client.get("/none", headers={"x-request-id": "n"})
    assert (r.status_code, r.content, fields(r)) == (204, b"", [("server", "covetpy"), ("x-request-id", "n")])
    r = client.get("/not-modified", headers={"x-request-id": "m"})
    assert (r.status_code, r.content) == (304, b"")
    assert fields(r) == [("etag", '"v1"'), ("server", "covetpy"), ("x-request-id", "m")]
    r = client.head("/stream")  # unknown length: neither Content-Length nor chunked
    assert (r.status_code, r.content) == (200, b"")
    assert "content-length" not in r.headers and "transfer-encoding" not in r.headers


def test_body_over_max_body_bytes_is_413() -> None:
    client = TestClient(build(), max_body_bytes=10)
    assert client.post("/echo", content=b"x" * 10).content == b"x" * 10
    for url in ("/echo", "/nope"):  # refused from the head: before routing
        r = client.post(url, content=b"x" * 11)
        assert (r.status_code, r.content) == (413, b"Content Too Large: body_too_large\n")
        assert fields(r) == [("content-type", "text/plain; charset=utf-8"), ("content-length", "34"),
                             ("connection", "close")]  # fmt: skip
    assert TestClient(build()).max_body_bytes == 10 << 20  # the gateway's default


@pytest.mark.parametrize("url", ["/users/%zz", "/users/%ff", "/files/a/%C3%28", "/users/./x", "/files/a/../b",
                                 "/files/%2e%2E/etc", "/nope/%2e"])  # fmt: skip
def test_gateway_400(client: TestClient, url: str) -> None:
    r = client.get(url)
    assert (r.status_code, r.content, r.headers["content-type"]) == (400, b"Bad Request\n", "text/plain; charset=utf-8")


def test_escapes_that_decode_are_served(client: TestClient) -> None:
    assert client.get("/users/caf%C3%A9").text == "café"
    assert client.get("/files/a%2Fb/.x/..y").text == "a/b/.x/..y"


def slow_app() -> tuple[Covet, list[str]]:
    app = Covet()
    events: list[str] = []

    @app.get("/slow", timeout=0.2)
    async def slow(req: Request) -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise
        return "late"

    @app.get("/stubborn", timeout=0.2)
    async def stubborn(req: Request) -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            pass  # swallows the CANCEL: the gateway has answered 504 all the same
        return "late"

    @app.get("/default")
    async def default(req: Request) -> str:
        await asyncio.sleep(5)
        return "late"

    @app.get("/fast", timeout=0.2)
    async def fast(req: Request) -> dict[str, int]:
        return {"timeout_ms": req.head.timeout_ms}

    @app.get("/slow-body", timeout=0.3)
    async def slow_body(req: Request) -> StreamingResponse:
        async def gen() -> AsyncIterator[bytes]:
            yield b"first\n"
            await asyncio.sleep(5)
            yield b"never\n"

        return StreamingResponse(gen(), media_type="text/plain")

    @app.get("/broken-body")
    async def broken_body(req: Request) -> StreamingResponse:
        async def gen() -> AsyncIterator[bytes]:
            yield b"partial\n"
            raise RuntimeError("generator failed")

        return StreamingResponse(gen(), media_type="text/plain")

    return app, events


def test_route_timeout_is_504_and_cancels_the_handler() -> None:
    app, events = slow_app()
    with TestClient(app) as client:
        for url in ("/slow", "/stubborn"):
            r = client.get(url, headers={"x-request-id": "t"})
            assert (r.status_code, r.content) == (504, b"Gateway Timeout\n"), url
            assert fields(r) == [("server", "covetpy"), ("content-type", "text/plain; charset=utf-8"),
                                 ("x-request-id", "t"), ("content-length", "16")]  # fmt: skip
        assert events == ["cancelled"]
        # the handler sees its deadline in the head, as from the gateway
        assert client.get("/fast").json() == {"timeout_ms": 200}


def test_default_timeout_applies_to_routes_without_one() -> None:
    app, _ = slow_app()
    client = TestClient(app, timeout=0.2)
    assert client.get("/default").status_code == 504
    assert TestClient(app).timeout == 30.0  # the gateway's default


def test_timeout_mid_body_breaks_the_response_off() -> None:
    app, _ = slow_app()
    with TestClient(app) as client, pytest.raises(IncompleteResponse) as info:
        client.get("/slow-body")
    assert (info.value.response.status_code, info.value.response.content) == (200, b"first\n")
    assert info.value.response.headers["transfer-encoding"] == "chunked"


def test_failing_body_breaks_the_response_off() -> None:
    app, _ = slow_app()
    with pytest.raises(IncompleteResponse) as info:
        TestClient(app).get("/broken-body")
    assert info.value.response.content == b"partial\n"
    assert isinstance(info.value.__cause__, RuntimeError)


def lifecycle_app() -> tuple[Covet, list[str]]:
    app = Covet()
    events: list[str] = []

    @app.on_startup
    async def start() -> None:
        events.append("startup")

    @app.on_shutdown
    def stop() -> None:
        events.append("shutdown")

    @app.get("/events")
    async def get_events(req: Request) -> list[str]:
        return events

    @app.get("/loop")
    async def loop_id(req: Request) -> PlainTextResponse:
        return PlainTextResponse(str(id(asyncio.get_running_loop())))

    return app, events


def test_startup_runs_before_the_first_request_without_with() -> None:
    app, events = lifecycle_app()
    client = TestClient(app)
    assert events == []
    assert client.get("/events").json() == ["startup"]
    assert client.get("/events").json() == ["startup"]  # once
    assert client.get("/loop").text == client.get("/loop").text  # one loop, as in a worker
    client.close()
    assert events == ["startup", "shutdown"]
    client.close()
    assert events == ["startup", "shutdown"]


def test_shutdown_runs_when_the_client_is_collected() -> None:
    app, events = lifecycle_app()
    client = TestClient(app)
    client.get("/events")
    del client
    gc.collect()
    assert events == ["startup", "shutdown"]


def test_shutdown_at_collection_inside_a_running_loop() -> None:
    app, events = lifecycle_app()
    client = TestClient(app)
    client.get("/events")

    async def drop() -> None:
        nonlocal client
        del client
        gc.collect()  # asyncio.Runner refuses to run here: the hooks run on a thread

    asyncio.run(drop())
    assert events == ["startup", "shutdown"]


def test_startup_failure_propagates_from_the_first_request() -> None:
    app = Covet()
    attempts: list[int] = []

    @app.on_startup
    def broken() -> None:
        attempts.append(1)
        raise RuntimeError("db unreachable")

    @app.get("/")
    async def index(req: Request) -> str:
        return "ok"

    client = TestClient(app)
    for n in (1, 2):
        with pytest.raises(RuntimeError, match="db unreachable"):
            client.get("/")
        assert len(attempts) == n


@pytest.mark.parametrize(
    "value", [b"a\x01b", b"del\x7f", b"\x00", b"a\r\nb", b"x" * (64 << 10 | 1)]
)  # every value the gateway's writer would refuse: the worker refuses it first, ERROR 500
def test_a_field_that_cannot_go_out(value: bytes, caplog: pytest.LogCaptureFixture) -> None:
    app = Covet()

    @app.get("/bad")
    async def bad(req: Request) -> Response:
        response = Response(b"x")
        response.headers.raw.append(("x-bad", value))  # past MutableHeaders' own checks
        return response

    @app.get("/ok")
    async def ok(req: Request) -> Response:
        return Response(b"x", headers={"x-fine": b"tab\there \xe9"})  # HTAB and obs-text pass

    client = TestClient(app)
    r = client.get("/bad", headers={"x-request-id": "c"})
    text = b"Internal Server Error\n"
    assert (r.status_code, r.content) == (500, text)
    assert fields(r) == [("server", "covetpy"), ("content-type", "text/plain; charset=utf-8"),
                         ("x-request-id", "c"), ("content-length", str(len(text)))]  # fmt: skip
    assert "response head refused" in caplog.text
    assert client.get("/ok").headers["x-fine"] == "tab\there \xe9"


def test_a_request_field_that_no_http_client_sends_is_refused() -> None:
    # Request fields are encoded as response fields are (_datastructures.encode_header):
    # a field http.client refuses to put on the wire is refused here too, not routed.
    app = Covet()

    @app.get("/h")
    async def h(req: Request) -> str:
        return req.headers.get("x-ok", "")

    client = TestClient(app)
    for name, value in (("x-a", "1\r\nx-b: 2"), ("x-a", b"a\x00b"), ("bad name", "1")):
        with pytest.raises(ValueError, match="control character|invalid header name"):
            client.get("/h", headers={name: value})
    assert client.get("/h", headers={"X-OK": b"tab\tand caf\xe9"}).content == "tab\tand café".encode()
