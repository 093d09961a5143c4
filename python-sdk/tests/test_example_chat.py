"""examples/chat/app.py, the WebSocket and SSE example the end-to-end tests serve,
through TestClient: echo, a chat room of two, the page, and the event stream's
first events."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

from covet import Covet, EventSourceResponse
from covet._head import RequestHead
from covet.testing import TestClient

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "chat" / "app.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chat_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_echo_and_a_chat_room_of_two() -> None:
    app: Covet = load().app
    client = TestClient(app)
    with client.websocket_connect("/ws/echo") as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "hi"
        ws.send_bytes(b"\x01\x02")
        assert ws.receive_bytes() == b"\x01\x02"
    with client.websocket_connect("/ws/chat/blue?name=ada", subprotocols=["chat.v1"]) as ada:
        assert ada.accepted_subprotocol == "chat.v1"
        assert ada.receive_text() == "* ada joined blue (1 here)"
        with client.websocket_connect("/ws/chat/blue?name=bob") as bob:
            assert bob.receive_text() == "* bob joined blue (2 here)"
            assert ada.receive_text() == "* bob joined blue (2 here)"
            bob.send_text("hello")
            assert ada.receive_text() == "bob: hello"
            assert bob.receive_text() == "bob: hello"
        assert ada.receive_text() == "* bob left"
    assert "new WebSocket" in client.get("/").text


def test_event_stream_starts_after_the_last_event_id() -> None:
    app: Covet = load().app

    async def first_two() -> list[bytes]:
        head = RequestHead("GET", "/events", "", ["last-event-id", b"41"], "/events", [], "1.1", "http",
                           "127.0.0.1:1", "r1", 0, 0)  # fmt: skip
        response = await app._handle(head, _no_body())
        assert isinstance(response, EventSourceResponse)
        body = response.body_chunks()
        try:
            return [await anext(body), await anext(body)]
        finally:
            await body.aclose()

    assert asyncio.run(first_two()) == [
        b'event: tick\nid: 42\ndata: {"tick":42}\n\n',
        b'event: tick\nid: 43\ndata: {"tick":43}\n\n',
    ]


async def _no_body() -> AsyncIterator[bytes]:
    return
    yield b""
