"""The ASGI adapter (covet/_asgi.py) through TestClient and the app's own _handle:
scope, receive, send, streaming with backpressure, disconnect, lifespan, WebSocket,
and Starlette and FastAPI apps hosted unchanged."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import BackgroundTasks, Depends, FastAPI
from fastapi import Request as FRequest
from fastapi import WebSocket as FWebSocket
from fastapi.responses import FileResponse as FFileResponse
from fastapi.responses import StreamingResponse as FStreamingResponse
from pydantic import BaseModel

from covet import Covet, FileResponse, WebSocketDisconnect
from covet._asgi import asgi_app, websocket_endpoint
from covet.testing import IncompleteResponse, TestClient, WebSocketRejected

from app_helpers import chunks, make_head, run_async


def echo_scope_app() -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise RuntimeError("no lifespan here")
        shown = {k: v for k, v in scope.items() if k not in ("headers", "raw_path", "query_string", "state")}
        shown["headers"] = [[n.decode(), v.decode()] for n, v in scope["headers"]]
        shown["raw_path"] = scope["raw_path"].decode()
        shown["query_string"] = scope["query_string"].decode()
        body = json.dumps(shown).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    return app


def test_http_scope_fields() -> None:
    client = TestClient(asgi_app(echo_scope_app(), "t"))
    r = client.get("/caf%C3%A9/a%2Fb?x=1&y=%20", headers=[("x-rep", "1"), ("X-Rep", "2")])
    assert r.status_code == 200
    s = r.json()
    assert s["type"] == "http"
    assert s["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert s["http_version"] == "1.1"
    assert s["method"] == "GET"
    assert s["scheme"] == "http"
    assert s["path"] == "/café/a/b"
    assert s["raw_path"] == "/caf%C3%A9/a%2Fb"
    assert s["query_string"] == "x=1&y=%20"
    assert s["root_path"] == ""
    assert ["x-rep", "1"] in s["headers"] and ["x-rep", "2"] in s["headers"]
    assert s["headers"].index(["x-rep", "1"]) < s["headers"].index(["x-rep", "2"])
    assert all(n == n.lower() for n, _ in s["headers"])
    assert s["client"] == ["127.0.0.1", 50000]
    assert s["server"] == ["testserver", 80]
    assert s["extensions"] == {"http.response.pathsend": {}}
    assert "state" not in s  # the app does not take part in lifespan


def test_server_from_host_header_with_port_and_https() -> None:
    client = TestClient(asgi_app(echo_scope_app(), "t"), base_url="https://example.org:8443")
    s = client.get("/").json()
    assert s["server"] == ["example.org", 8443]
    assert s["scheme"] == "https"


def body_log_app(log: list[dict[str, Any]]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise RuntimeError("no lifespan")
        while True:
            message = await receive()
            log.append(message)
            if not message.get("more_body"):
                break
        total = b"".join(m["body"] for m in log)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(len(total)).encode(), "more_body": False})

    return app


def test_request_body_arrives_in_chunks_the_last_without_more_body() -> None:
    log: list[dict[str, Any]] = []
    client = TestClient(asgi_app(body_log_app(log), "t"), chunk_size=4)
    r = client.post("/", content=b"0123456789")
    assert r.text == "10"
    assert [m["body"] for m in log] == [b"0123", b"4567", b"89"]
    assert [m["more_body"] for m in log] == [True, True, False]
    assert all(m["type"] == "http.request" for m in log)


def test_an_empty_body_is_one_message() -> None:
    log: list[dict[str, Any]] = []
    client = TestClient(asgi_app(body_log_app(log), "t"))
    assert client.get("/").text == "0"
    assert log == [{"type": "http.request", "body": b"", "more_body": False}]


@run_async
async def test_a_body_of_unknown_length_ends_with_an_empty_last_message() -> None:
    log: list[dict[str, Any]] = []
    app = asgi_app(body_log_app(log), "t")
    app.freeze()
    response = await app._handle(make_head("POST", "/x", "/{path...}", ["path", "x"], body=-1), chunks(b"ab", b"cd"))
    assert response.body == b"4"
    assert [(m["body"], m["more_body"]) for m in log] == [(b"ab", True), (b"cd", True), (b"", False)]


@run_async
async def test_streaming_hands_over_one_chunk_at_a_time() -> None:
    events: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"99")]})
        for i in range(3):
            await send({"type": "http.response.body", "body": b"c%d" % i, "more_body": True})
            events.append(f"sent {i}")
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        events.append("end")

    covet = asgi_app(app, "t")
    covet.freeze()
    response = await covet._handle(make_head("GET", "/s", "/{path...}", ["path", "s"]), chunks())
    assert response.body_length == -1
    assert "content-length" not in response.headers  # the gateway frames the body
    assert events == []  # the first chunk waits for the worker to take it
    async for chunk in response.body_chunks():
        events.append(f"got {chunk.decode()}")
    assert events == ["got c0", "sent 0", "got c1", "sent 1", "got c2", "sent 2"]
    assert response.background is not None
    await response.background()
    assert events[-1] == "end"


@run_async
async def test_a_complete_body_returns_before_the_app_does() -> None:
    events: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": [(b"x-a", b"1")]})
        await send({"type": "http.response.body", "body": b"done"})
        await asyncio.sleep(0.01)  # the response goes out while the app waits here
        events.append("background")
        message = await receive()  # the response is over: the disconnect is already there
        events.append(message["type"])

    covet = asgi_app(app, "t")
    covet.freeze()
    response = await covet._handle(make_head("GET", "/", "/{path...}", ["path", ""]), chunks())
    assert (response.status, response.body, response.headers.get("x-a")) == (201, b"done", "1")
    assert events == []
    assert response.background is not None
    await response.background()
    assert events == ["background", "http.request"]


@run_async
async def test_cancelled_wait_for_disconnect_becomes_http_disconnect() -> None:
    seen: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append((await receive())["type"])
        seen.append((await receive())["type"])  # waits until the client leaves
        seen.append(asyncio.current_task().cancelling())  # type: ignore[union-attr]
        await send({"type": "http.response.start", "status": 200})

    covet = asgi_app(app, "t")
    covet.freeze()
    task = asyncio.ensure_future(covet._handle(make_head("GET", "/", "/{path...}", ["path", ""]), chunks()))
    await asyncio.sleep(0.01)
    assert seen == ["http.request"]
    task.cancel()  # the gateway cancels the request of a client that left
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert seen[:3] == ["http.request", "http.disconnect", 0]


@run_async
async def test_closing_a_stream_early_tells_the_app() -> None:
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        try:
            for _ in range(100):
                await send({"type": "http.response.body", "body": b"x", "more_body": True})
        except OSError as exc:
            seen.append(type(exc).__name__)
            seen.append((await receive())["type"])
            seen.append((await receive())["type"])

    covet = asgi_app(app, "t")
    covet.freeze()
    response = await covet._handle(make_head("GET", "/", "/{path...}", ["path", ""]), chunks())
    stream = response.body_chunks()
    assert await anext(stream) == b"x"
    await stream.aclose()  # the worker stops: the client left mid-stream
    assert seen == ["ClientDisconnected", "http.request", "http.disconnect"]


def test_an_exception_before_start_is_a_logged_500(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan")
        raise ValueError("boom")

    r = TestClient(asgi_app(app, "t")).get("/", headers={"x-request-id": "rid-42"})
    assert r.status_code == 500
    assert r.text == "Internal Server Error"
    assert "boom" not in r.text
    assert any("rid-42" in rec.getMessage() and rec.exc_info for rec in caplog.records)


def test_an_app_that_never_starts_is_a_500() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        return None

    assert TestClient(asgi_app(app, "t")).get("/").status_code == 500


def test_an_exception_after_start_breaks_the_stream_off(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan")
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise ValueError("late")

    with pytest.raises(IncompleteResponse) as info:
        TestClient(asgi_app(app, "t")).get("/")
    assert info.value.response.content == b"part"


def test_messages_out_of_order_raise_in_send() -> None:
    errors: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan")
        try:
            await send({"type": "http.response.body", "body": b"early"})
        except RuntimeError as exc:
            errors.append(str(exc))
        await send({"type": "http.response.start", "status": 200})
        try:
            await send({"type": "http.response.start", "status": 200})
        except RuntimeError as exc:
            errors.append(str(exc))
        await send({"type": "http.response.body", "body": b"ok"})

    assert TestClient(asgi_app(app, "t")).get("/").text == "ok"
    assert len(errors) == 2 and "before http.response.start" in errors[0] and "twice" in errors[1]


def test_head_keeps_the_apps_content_length() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan")
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else b"hello"})

    client = TestClient(asgi_app(app, "t"))
    r = client.head("/")
    assert r.headers["content-length"] == "5"
    assert r.content == b""
    assert client.get("/").content == b"hello"


def test_pathsend_is_a_file_response(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_bytes(b"file body")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan")
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.pathsend", "path": str(target)})

    assert TestClient(asgi_app(app, "t")).get("/").content == b"file body"


@run_async
async def test_pathsend_gives_the_worker_a_file_response(tmp_path: Path) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"3")]})
        await send({"type": "http.response.pathsend", "path": str(tmp_path / "x")})

    covet = asgi_app(app, "t")
    covet.freeze()
    response = await covet._handle(make_head("GET", "/", "/{path...}", ["path", ""]), chunks())
    assert isinstance(response, FileResponse)
    assert response.path == str(tmp_path / "x")
    assert "content-length" not in response.headers


# -- lifespan ---------------------------------------------------------------------------


def lifespan_app(events: list[str], *, fail: str | None = None) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            assert (await receive())["type"] == "lifespan.startup"
            if fail is not None:
                await send({"type": "lifespan.startup.failed", "message": fail})
                return
            scope["state"]["db"] = "pool"
            scope["state"]["hits"] = []
            events.append("startup")
            await send({"type": "lifespan.startup.complete"})
            assert (await receive())["type"] == "lifespan.shutdown"
            events.append("shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return
        state = scope["state"]
        state["hits"].append(1)  # a shallow copy: the list is shared
        state["mine"] = True  # not seen by the next request
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": json.dumps(sorted(state)).encode()})

    return app


def test_lifespan_state_is_shared_with_requests() -> None:
    events: list[str] = []
    with TestClient(asgi_app(lifespan_app(events), "t")) as client:
        assert events == ["startup"]
        assert client.get("/").json() == ["db", "hits", "mine"]
        assert client.get("/").json() == ["db", "hits", "mine"]
    assert events == ["startup", "shutdown"]


def test_lifespan_startup_failure_raises_with_its_message() -> None:
    with pytest.raises(RuntimeError, match="no database"):
        with TestClient(asgi_app(lifespan_app([], fail="no database"), "t")):
            pass


def test_an_app_without_lifespan_is_served_without_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "covet.asgi")
    with TestClient(asgi_app(echo_scope_app(), "t")) as client:
        assert client.get("/").status_code == 200
    assert any("unsupported" in rec.getMessage() for rec in caplog.records)


# -- WebSocket --------------------------------------------------------------------------


def ws_app(seen: list[Any]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan")
        assert scope["type"] == "websocket"
        seen.append(scope)
        assert (await receive())["type"] == "websocket.connect"
        if scope["query_string"] == b"deny":
            await send({"type": "websocket.http.response.start", "status": 401,
                        "headers": [(b"content-type", b"text/plain"), (b"x-why", b"token")]})
            await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
            await send({"type": "websocket.http.response.body", "body": b"entry"})
            return
        if scope["query_string"] == b"close":
            await send({"type": "websocket.close"})
            return
        chosen = "chat" if "chat" in scope["subprotocols"] else None
        await send({"type": "websocket.accept", "subprotocol": chosen, "headers": [(b"x-hello", b"1")]})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                seen.append(message["code"])
                return
            if message.get("text") == "bye":
                await send({"type": "websocket.close", "code": 4000, "reason": "asked"})
                return
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"].upper()})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"][::-1]})

    return app


def ws_covet(seen: list[Any]) -> Covet:
    return asgi_app(ws_app(seen), "t")


def test_websocket_endpoint_on_a_route_of_ones_own() -> None:
    seen: list[Any] = []
    covet = Covet("own", openapi_url=None, docs_url=None)
    hosted = asgi_app(ws_app(seen), "t")
    covet.websocket("/live/{path...}")(websocket_endpoint(hosted))
    with TestClient(covet).websocket_connect("/live/x") as ws:
        ws.send_text("a")
        assert ws.receive_text() == "A"
    assert seen[0]["path"] == "/live/x"


def test_plain_get_and_upgrade_share_the_catch_all() -> None:
    seen: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.body", "body": b"plain"})
        elif scope["type"] == "websocket":
            await ws_app(seen)(scope, receive, send)
        else:
            raise RuntimeError("no lifespan")

    client = TestClient(asgi_app(app, "t"))
    assert client.get("/ws/room").text == "plain"
    with client.websocket_connect("/ws/room") as ws:
        ws.send_text("x")
        assert ws.receive_text() == "X"


def test_websocket_bridge_messages_and_close() -> None:
    seen: list[Any] = []
    client = TestClient(ws_covet(seen))
    with client.websocket_connect("/ws/room?x=1", subprotocols=["chat", "other"]) as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "HI"
        ws.send_bytes(b"abc")
        assert ws.receive_bytes() == b"cba"
        ws.send_text("bye")
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_text()
        assert info.value.code == 4000
    scope = seen[0]
    assert scope["path"] == "/ws/room" and scope["query_string"] == b"x=1"
    assert scope["subprotocols"] == ["chat", "other"]
    assert scope["scheme"] == "ws"
    assert scope["extensions"] == {"websocket.http.response": {}}


def test_websocket_denial_response_and_close_before_accept() -> None:
    client = TestClient(ws_covet([]))
    with pytest.raises(WebSocketRejected) as info:
        client.websocket_connect("/ws/x?deny")
    r = info.value.response
    assert (r.status_code, r.content, r.headers.get("x-why")) == (401, b"no entry", "token")
    with pytest.raises(WebSocketRejected) as info:
        client.websocket_connect("/ws/x?close")
    assert info.value.response.status_code == 403


# -- Starlette and FastAPI --------------------------------------------------------------


class Item(BaseModel):
    name: str
    qty: int = 1


def test_starlette_app() -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request as SRequest
    from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
    from starlette.routing import Route

    async def hello(request: SRequest) -> PlainTextResponse:
        return PlainTextResponse(f"hello {request.path_params['name']} {request.query_params.get('q')}")

    async def echo(request: SRequest) -> JSONResponse:
        data = await request.body()
        return JSONResponse({"n": len(data), "ct": request.headers.get("content-type")})

    async def stream(request: SRequest) -> StreamingResponse:
        async def gen() -> AsyncIterator[bytes]:
            for i in range(3):
                yield b"%d;" % i

        return StreamingResponse(gen(), media_type="text/plain")

    app = Starlette(routes=[Route("/hello/{name}", hello), Route("/echo", echo, methods=["POST"]),
                            Route("/stream", stream)])  # fmt: skip
    client = TestClient(asgi_app(app, "t"), chunk_size=1000)
    assert client.get("/hello/w%C3%B6rld?q=1").text == "hello wörld 1"
    r = client.post("/echo", content=b"x" * 5000, headers={"content-type": "application/octet-stream"})
    assert r.json() == {"n": 5000, "ct": "application/octet-stream"}
    assert client.get("/stream").text == "0;1;2;"
    assert client.get("/missing").status_code == 404  # the app's own 404
    assert client.post("/hello/x").status_code == 405


def test_fastapi_app_lifespan_dependencies_stream_file_and_background(tmp_path: Path) -> None:
    done: list[str] = []
    (tmp_path / "a.txt").write_text("from disk")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        yield {"greeting": "hi"}
        done.append("shutdown")

    api = FastAPI(lifespan=lifespan)

    def user(x_user: str | None = None) -> str:
        return x_user or "anon"

    @api.get("/greet")
    async def greet(request: FRequest, who: str = Depends(user)) -> dict[str, str]:
        return {"msg": f"{request.state.greeting} {who}"}

    @api.post("/items")
    async def create(item: Item, tasks: BackgroundTasks) -> Item:
        tasks.add_task(done.append, f"made {item.name}")
        return item

    @api.get("/stream")
    async def stream() -> FStreamingResponse:
        async def gen() -> AsyncIterator[str]:
            for word in ("a", "b", "c"):
                yield word

        return FStreamingResponse(gen())

    @api.get("/file")
    async def file() -> FFileResponse:
        return FFileResponse(tmp_path / "a.txt")

    with TestClient(asgi_app(api, "t")) as client:
        assert client.get("/greet?x_user=bob").json() == {"msg": "hi bob"}
        r = client.post("/items", json={"name": "pen", "qty": 2})
        assert r.json() == {"name": "pen", "qty": 2}
        assert "made pen" in done
        assert client.post("/items", json={"qty": "x"}).status_code == 422
        assert client.get("/stream").text == "abc"
        assert client.get("/file").text == "from disk"
    assert done[-1] == "shutdown"


@run_async
async def test_starlette_file_response_is_sent_by_the_gateway(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("from disk")
    api = FastAPI()

    @api.get("/file")
    async def file() -> FFileResponse:
        return FFileResponse(tmp_path / "a.txt")

    covet = asgi_app(api, "t")
    covet.freeze()
    response = await covet._handle(make_head("GET", "/file", "/{path...}", ["path", "file"]), chunks())
    assert isinstance(response, FileResponse)  # http.response.pathsend: the worker sends the path
    assert response.path == str(tmp_path / "a.txt")
    assert "etag" in response.headers and "content-length" not in response.headers


@run_async
async def test_sends_from_a_task_of_the_apps_own_stream_too() -> None:
    """As Django's ASGIHandler and Starlette before ASGI 2.4 do: the response is sent
    from a child task while another waits for http.disconnect."""
    events: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def respond() -> None:
            await send({"type": "http.response.start", "status": 200})
            for i in range(3):
                await send({"type": "http.response.body", "body": b"%d" % i, "more_body": True})
                events.append(f"sent {i}")
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def listen() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            events.append("disconnect")

        listener = asyncio.create_task(listen())
        await asyncio.create_task(respond())
        await listener

    covet = asgi_app(app, "t")
    covet.freeze()
    response = await covet._handle(make_head("GET", "/", "/{path...}", ["path", ""]), chunks())
    got = []
    async for chunk in response.body_chunks():
        got.append(chunk)
        events.append(f"got {chunk.decode()}")
    assert got == [b"0", b"1", b"2"]
    assert events[:6] == ["got 0", "sent 0", "got 1", "sent 1", "got 2", "sent 2"]
    assert response.background is not None
    await asyncio.wait_for(response.background(), 2)
    assert events[-1] == "disconnect"


def test_a_timeout_inside_the_app_cancels_only_what_it_wraps() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan")
        try:
            async with asyncio.timeout(0.01):
                await asyncio.sleep(10)
            outcome = b"slept"
        except TimeoutError:
            outcome = b"timed out"
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": outcome})

    assert TestClient(asgi_app(app, "t")).get("/").content == b"timed out"


def test_fastapi_websocket_with_path_and_query() -> None:
    api = FastAPI()

    @api.websocket("/chat/{room}")
    async def chat(websocket: FWebSocket, room: str, token: str = "none") -> None:
        await websocket.accept()
        await websocket.send_json({"room": room, "token": token})
        async for text in websocket.iter_text():
            await websocket.send_text(f"{room}: {text}")

    @api.get("/chat/{room}")
    async def page(room: str) -> dict[str, str]:
        return {"page": room}

    client = TestClient(asgi_app(api, "t"))
    assert client.get("/chat/lobby").json() == {"page": "lobby"}
    with client.websocket_connect("/chat/lobby?token=abc") as ws:
        assert ws.receive_json() == {"room": "lobby", "token": "abc"}
        ws.send_text("hi")
        assert ws.receive_text() == "lobby: hi"


# -- Django (its ASGIHandler sends the response from a task of its own) ---------------------


class _DjangoURLs:
    urlpatterns: list[Any] = []


def test_django_asgi_app() -> None:
    pytest.importorskip("django", reason="django is in the Makefile's PYDEPS: run make venv")
    from django.conf import settings
    from django.utils.functional import empty

    configured_here = not settings.configured
    if configured_here:  # undone at the end, so that another test may configure its own
        settings.configure(DEBUG=False, SECRET_KEY="test-only", ALLOWED_HOSTS=["testserver"], ROOT_URLCONF=_DjangoURLs,
                           MIDDLEWARE=[], INSTALLED_APPS=[], USE_TZ=True)  # fmt: skip
    try:
        _check_django_asgi()
    finally:
        if configured_here:
            settings._wrapped = empty


def _check_django_asgi() -> None:
    import django
    from django import http
    from django.core.asgi import get_asgi_application
    from django.test.utils import override_settings
    from django.urls import path

    django.setup(set_prefix=False)

    async def hello(request: Any, name: str) -> Any:
        return http.JsonResponse({"hello": name, "q": request.GET.getlist("q")})

    def echo(request: Any) -> Any:
        return http.JsonResponse({"body_len": len(request.body), "method": request.method})

    async def stream(request: Any) -> Any:
        async def parts() -> AsyncIterator[str]:
            for i in range(3):
                yield f"part{i};"

        return http.StreamingHttpResponse(parts(), content_type="text/plain")

    _DjangoURLs.urlpatterns = [path("hello/<str:name>", hello), path("echo", echo), path("stream", stream)]
    with override_settings(ROOT_URLCONF=_DjangoURLs):
        client = TestClient(asgi_app(get_asgi_application(), "dj"), chunk_size=10_000)
        r = client.get("/hello/w%C3%B6rld?q=1&q=2")
        assert r.status_code == 200 and r.json() == {"hello": "wörld", "q": ["1", "2"]}
        assert client.post("/echo", content=b"z" * 50_000).json() == {"body_len": 50_000, "method": "POST"}
        r = client.get("/stream")
        assert r.text == "part0;part1;part2;"
        assert client.get("/missing").status_code == 404


def test_lifespan_shutdown_failure_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.failed", "message": "pool stuck"})
            return
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body"})

    with TestClient(asgi_app(app, "t")) as client:
        assert client.get("/").status_code == 204
    assert any("pool stuck" in repr(rec.exc_info) or "pool stuck" in rec.getMessage() for rec in caplog.records)


def test_a_body_the_gateway_aborts_is_http_disconnect(caplog: pytest.LogCaptureFixture) -> None:
    asyncio.run(_body_aborted())
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]  # a client that left is no error


async def _body_aborted() -> None:
    from covet._exceptions import BodyAborted

    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            seen.append(message["type"])
            if message["type"] == "http.disconnect":
                break
        try:
            await send({"type": "http.response.start", "status": 200})
        except OSError:
            seen.append("send refused")

    async def aborted() -> AsyncIterator[bytes]:
        yield b"part"
        raise BodyAborted("the gateway aborted the request body")

    covet = asgi_app(app, "t")
    covet.freeze()
    response = await covet._handle(make_head("POST", "/", "/{path...}", ["path", ""], body=100), aborted())
    assert seen == ["http.request", "http.disconnect", "send refused"]
    assert response.status == 500  # nothing was started: the worker's answer goes nowhere
