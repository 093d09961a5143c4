"""The WebSocket API (covet.WebSocket, @app.websocket) through TestClient.websocket_connect:
accept and reject, messages of each kind, iteration, close codes both ways,
subprotocols, path parameters, query, headers and cookies."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from covet import Covet, HTTPException, WebSocket, WebSocketDisconnect
from covet.testing import TestClient, WebSocketRejected

app = Covet("ws-test")
log: list[str] = []


@app.websocket("/echo")
async def echo(ws: WebSocket) -> None:
    await ws.accept()
    async for message in ws:
        await ws.send(message)
    log.append(f"echo ended {ws.close_code} {ws.close_reason!r}")


@app.websocket("/json")
async def json_echo(ws: WebSocket) -> None:
    await ws.accept()
    while True:
        data = await ws.receive_json()
        await ws.send_json({"got": data})


@app.websocket("/typed")
async def typed(ws: WebSocket) -> None:
    await ws.accept()
    try:
        await ws.receive_text()
    except TypeError as e:
        await ws.send_text(f"TypeError: {e}")
        await ws.send_bytes(await ws.receive_bytes())  # the message was left for this
    try:
        await ws.receive_bytes()
    except TypeError as e:
        await ws.send_text(f"TypeError: {e}")
    await ws.close()


@app.websocket("/rooms/{room}/{n:int}/{key:uuid}")
async def rooms(ws: WebSocket, room: str, n: int, key: uuid.UUID) -> None:
    await ws.accept(headers={"set-cookie": "seen=1; Path=/"})
    await ws.send_json({
        "room": room, "n": n, "key": str(key), "params": sorted(ws.path_params),
        "q": ws.query_params.getlist("q"), "token": ws.headers.get("x-token"),
        "cookie": ws.cookies.get("sid"), "client": list(ws.client or ()), "url": ws.url, "path": ws.path,
        "resumed": ws.resumed,
    })  # fmt: skip
    await ws.close(4001, "done")


@app.websocket("/sub")
async def sub(ws: WebSocket) -> None:
    chosen = "v2.chat" if "v2.chat" in ws.subprotocols else None
    await ws.accept(subprotocol=chosen)
    await ws.send_text(f"offered {ws.subprotocols}")
    await ws.close()


@app.websocket("/bad-sub")
async def bad_sub(ws: WebSocket) -> None:
    await ws.accept(subprotocol="never-offered")


@app.websocket("/close-early")
async def close_early(ws: WebSocket) -> None:
    await ws.close(4403)


@app.websocket("/return-early")
async def return_early(ws: WebSocket) -> None:
    return None


@app.websocket("/http-error")
async def http_error(ws: WebSocket) -> None:
    if ws.headers.get("authorization") != "Bearer ok":
        raise HTTPException(401, "token needed", {"www-authenticate": "Bearer"})
    await ws.accept()
    await ws.send_text("welcome")


@app.websocket("/crash-before")
async def crash_before(ws: WebSocket) -> None:
    raise RuntimeError("before-accept-1")


@app.websocket("/crash-after")
async def crash_after(ws: WebSocket) -> None:
    await ws.accept()
    await ws.send_text("about to fail")
    raise RuntimeError("after-accept-2")


@app.websocket("/returns")
async def returns(ws: WebSocket) -> None:
    await ws.accept()
    await ws.send_text("bye")


@app.websocket("/after-close")
async def after_close(ws: WebSocket) -> None:
    await ws.accept()
    try:
        await ws.receive_text()
    except WebSocketDisconnect as e:
        log.append(f"receive raised {e.code} {e.reason!r}")
    try:
        await ws.send_text("too late")
    except WebSocketDisconnect as e:
        log.append(f"send raised {e.code}")


@app.websocket("/rules")
async def rules(ws: WebSocket) -> None:
    errors = []
    for call in (ws.send_text("x"), ws.receive()):
        try:
            await call
        except RuntimeError as e:
            errors.append(str(e))
    await ws.accept()
    try:
        await ws.accept()
    except RuntimeError as e:
        errors.append(str(e))
    for code in (1005, 999, 2000, 5000):
        try:
            await ws.close(code)
        except ValueError as e:
            errors.append(str(e))
    try:
        await ws.close(1000, "x" * 124)
    except ValueError as e:
        errors.append(str(e))
    await ws.send_json(errors)
    await ws.close(1000)
    await ws.close(1000)  # a second close does nothing
    try:
        await ws.send_text("after my close")
    except RuntimeError as e:
        log.append(str(e))


@app.get("/page")
async def page(req: object) -> str:
    return "a page"


@pytest.fixture
def client() -> TestClient:
    log.clear()
    return TestClient(app)


def test_echo_text_bytes_and_iteration_end_on_close(client: TestClient) -> None:
    with client.websocket_connect("/echo") as ws:
        ws.send_text("héllo")
        assert ws.receive_text() == "héllo"
        ws.send_bytes(b"\x00\x01")
        assert ws.receive_bytes() == b"\x00\x01"
        ws.send_text("again")
        assert ws.receive() == "again"
        ws.close(4002, "leaving")
    assert log == ["echo ended 4002 'leaving'"]


def test_context_exit_closes_1000(client: TestClient) -> None:
    with client.websocket_connect("ws://testserver/echo"):
        pass
    assert log == ["echo ended 1000 ''"]


def test_json_both_ways(client: TestClient) -> None:
    with client.websocket_connect("/json") as ws:
        ws.send_json({"a": [1, 2]})
        assert ws.receive_json() == {"got": {"a": [1, 2]}}
        ws.send_json([1], mode="binary")  # receive_json takes binary UTF-8 JSON too
        assert ws.receive_json() == {"got": [1]}


def test_receive_of_the_wrong_kind_raises_type_error_and_keeps_the_message(client: TestClient) -> None:
    with client.websocket_connect("/typed") as ws:
        ws.send_bytes(b"raw")
        assert ws.receive_text().startswith("TypeError: receive_text(): the client sent a binary message (3 bytes)")
        assert ws.receive_bytes() == b"raw"
        ws.send_text("words")
        assert ws.receive_text().startswith("TypeError: receive_bytes(): the client sent a text message")
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_text()
        assert info.value.code == 1000


def test_path_params_query_headers_cookies_and_accept_headers(client: TestClient) -> None:
    key = uuid.uuid4()
    url = f"/rooms/blue/42/{key}?q=1&q=2"
    with client.websocket_connect(url, headers={"x-token": "t0"}, cookies={"sid": "s1"}) as ws:
        assert ws.extra_headers.get("set-cookie") == "seen=1; Path=/"
        got = ws.receive_json()
        assert got == {
            "room": "blue", "n": 42, "key": str(key), "params": ["key", "n", "room"], "q": ["1", "2"],
            "token": "t0", "cookie": "s1", "client": ["127.0.0.1", 50000],
            "url": f"ws://testserver/rooms/blue/42/{key}?q=1&q=2", "path": f"/rooms/blue/42/{key}",
            "resumed": False,
        }  # fmt: skip
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive()
        assert (info.value.code, info.value.reason) == (4001, "done")
    assert client.cookies == {"seen": "1"}


def test_a_parameter_that_does_not_convert_is_404(client: TestClient) -> None:
    with pytest.raises(WebSocketRejected) as info:
        client.websocket_connect("/rooms/blue/x/0")
    assert info.value.status_code == 404


def test_subprotocols(client: TestClient) -> None:
    with client.websocket_connect("/sub", subprotocols=["v1.chat", "v2.chat"]) as ws:
        assert ws.accepted_subprotocol == "v2.chat"
        assert ws.receive_text() == "offered ['v1.chat', 'v2.chat']"
    with client.websocket_connect("/sub") as ws:
        assert ws.accepted_subprotocol is None
        assert ws.receive_text() == "offered []"


def test_a_subprotocol_the_client_did_not_offer_is_a_500(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, "covet.error"), pytest.raises(WebSocketRejected) as info:
        client.websocket_connect("/bad-sub", subprotocols=["other"])
    assert info.value.status_code == 500
    assert "was not offered by the client" in caplog.text


@pytest.mark.parametrize("path", ["/close-early", "/return-early"])
def test_closing_or_returning_before_accept_is_403(client: TestClient, path: str) -> None:
    with pytest.raises(WebSocketRejected) as info:
        client.websocket_connect(path)
    assert info.value.status_code == 403
    assert info.value.response.text == "Forbidden"


def test_http_exception_before_accept_is_its_status_and_detail(client: TestClient) -> None:
    with pytest.raises(WebSocketRejected) as info:
        client.websocket_connect("/http-error")
    r = info.value.response
    assert r.status_code == 401 and r.json() == {"detail": "token needed"}
    assert r.headers.get("www-authenticate") == "Bearer"
    with client.websocket_connect("/http-error", headers={"authorization": "Bearer ok"}) as ws:
        assert ws.receive_text() == "welcome"


def test_exception_before_accept_is_500_after_accept_closes_1011(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, "covet.error"):
        with pytest.raises(WebSocketRejected) as info:
            client.websocket_connect("/crash-before")
        assert info.value.status_code == 500
        with client.websocket_connect("/crash-after") as ws:
            assert ws.receive_text() == "about to fail"
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_text()
            assert closed.value.code == 1011
    assert "before-accept-1" in caplog.text and "after-accept-2" in caplog.text
    assert "request_id=" in caplog.text


def test_returning_after_accept_closes_1000(client: TestClient) -> None:
    with client.websocket_connect("/returns") as ws:
        assert ws.receive_text() == "bye"
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_text()
        assert info.value.code == 1000


def test_client_close_reaches_receive_and_send(client: TestClient) -> None:
    with client.websocket_connect("/after-close") as ws:
        ws.close(1001, "tab closed")
    assert log == ["receive raised 1001 'tab closed'", "send raised 1001"]


def test_misuse_raises_precise_errors(client: TestClient) -> None:
    with client.websocket_connect("/rules") as ws:
        errors = ws.receive_json()
    assert errors[0] == "send before accept(): accept the WebSocket first"
    assert errors[1] == "receive before accept(): accept the WebSocket first"
    assert errors[2] == "accept() on a WebSocket that is connected"
    assert all("cannot be sent" in e for e in errors[3:7])
    assert errors[7] == "close reason is 124 bytes of UTF-8, at most 123"
    assert log == ["send after close(): this side has closed the WebSocket"]


def test_gateway_answers_for_paths_without_a_websocket_route(client: TestClient) -> None:
    with pytest.raises(WebSocketRejected) as info:
        client.websocket_connect("/nowhere")
    assert info.value.status_code == 404
    with pytest.raises(WebSocketRejected) as info:
        client.websocket_connect("/page")  # an HTTP route answers as HTTP
    assert info.value.status_code == 200 and info.value.response.text == "a page"
    assert client.get("/echo").status_code == 426  # a WebSocket route without the upgrade
    assert client.post("/echo").status_code == 405


@app.get("/live")
async def live_page(req: object) -> str:
    return "the live page"


@app.websocket("/live")
async def live_ws(ws: WebSocket) -> None:
    await ws.accept()
    await ws.send_text("live over WebSocket")
    await ws.close()


def test_one_pattern_serves_a_get_and_a_websocket(client: TestClient) -> None:
    """@app.get and @app.websocket on one path: a plain GET (and HEAD) reaches the HTTP
    handler, an upgrade the WebSocket one; other methods are answered as the
    gateway answers them."""
    response = client.get("/live")
    assert response.status_code == 200 and response.text == "the live page"
    head = client.head("/live")
    assert head.status_code == 200 and head.content == b""
    with client.websocket_connect("/live") as ws:
        assert ws.receive_text() == "live over WebSocket"
    put = client.put("/live")
    assert put.status_code == 405 and put.headers["allow"] == "GET, HEAD, OPTIONS"


@app.websocket("/two-readers")
async def two_readers(ws: WebSocket) -> None:
    """Two tasks wait for a message at once, and a third gives up after a timeout:
    the first message wakes both waiting ones; one takes it, the other the next."""
    await ws.accept()
    try:
        await asyncio.wait_for(ws.receive(), 0.001)
    except TimeoutError:
        pass
    await ws.send_text("ready")
    got = await asyncio.gather(ws.receive_text(), ws.receive_text())
    await ws.send_json(sorted(got))


def test_concurrent_receives_each_get_a_message(client: TestClient) -> None:
    with client.websocket_connect("/two-readers") as ws:
        assert ws.receive_text() == "ready"
        ws.send_text("a")
        ws.send_text("b")
        assert ws.receive_json() == ["a", "b"]
