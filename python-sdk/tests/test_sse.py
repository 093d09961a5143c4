"""Server-sent events: ServerSentEvent's wire format, EventSourceResponse's headers,
heartbeats and the closing of its source (the worker closes the body when the gateway
cancels a request whose client left; test_worker_ws.py checks that over the rings)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from covet import Covet, EventSourceResponse, Request, ServerSentEvent
from covet.testing import TestClient


@pytest.mark.parametrize(("event", "wire"), [
    (ServerSentEvent(data="hello"), b"data: hello\n\n"),
    (ServerSentEvent(data="a\nb\r\nc\rd"), b"data: a\ndata: b\ndata: c\ndata: d\n\n"),
    (ServerSentEvent(data=""), b"data: \n\n"),
    (ServerSentEvent(data={"x": [1, "é"]}), '{"x":[1,"é"]}'.join(["data: ", "\n\n"]).encode()),
    (ServerSentEvent(data="d", event="update", id="7", retry=2500),
     b"event: update\nid: 7\nretry: 2500\ndata: d\n\n"),
    (ServerSentEvent(comment="keep\nalive"), b": keep\n: alive\n\n"),
    (ServerSentEvent(id=""), b"id: \n\n"),  # resets the last event id
])  # fmt: skip
def test_event_wire_format(event: ServerSentEvent, wire: bytes) -> None:
    assert event.encode() == wire


@pytest.mark.parametrize(("fields", "text"), [
    ({"event": "a\nb"}, "event event must be a str without CR or LF"),
    ({"id": "1\r"}, "event id must be a str without CR or LF"),
    ({"id": "a\0b"}, "event id must not contain NUL"),
    ({"retry": -1}, "retry must be a non-negative int"),
    ({"retry": 1.5}, "retry must be a non-negative int"),
])  # fmt: skip
def test_bad_fields_are_refused(fields: dict[str, Any], text: str) -> None:
    with pytest.raises(ValueError, match=text):
        ServerSentEvent(**fields)


def _app() -> Covet:
    app = Covet()

    @app.get("/items")
    async def items(req: Request) -> EventSourceResponse:
        async def gen() -> AsyncIterator[Any]:
            yield ServerSentEvent(data="one", id="1")
            yield {"data": "two", "event": "named"}
            yield "three"
            yield b": raw comment\n\n"

        return EventSourceResponse(gen(), headers={"x-extra": "1"})

    @app.get("/sync")
    def sync_items(req: Request) -> EventSourceResponse:
        def gen() -> Iterator[str]:
            yield "a"
            yield "b"

        return EventSourceResponse(gen(), ping=None)

    return app


def test_stream_headers_and_events_through_the_test_client() -> None:
    r = TestClient(_app()).get("/items")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/event-stream"
    assert r.headers["cache-control"] == "no-cache" and r.headers["x-accel-buffering"] == "no"
    assert r.headers["transfer-encoding"] == "chunked" and "content-length" not in r.headers
    assert r.headers["x-extra"] == "1"
    assert r.content == b"id: 1\ndata: one\n\nevent: named\ndata: two\n\ndata: three\n\n: raw comment\n\n"
    assert TestClient(_app()).get("/sync").content == b"data: a\n\ndata: b\n\n"


def test_each_event_is_its_own_chunk_and_idle_time_sends_pings() -> None:
    gate = asyncio.Event()
    closed: list[str] = []

    async def gen() -> AsyncIterator[str]:
        try:
            yield "first"
            await gate.wait()  # idle until the test has seen two pings
            yield "second"
            await asyncio.Event().wait()  # idle for good: only the consumer's close ends it
        finally:
            closed.append("finally")

    async def consume() -> list[bytes]:
        body = EventSourceResponse(gen(), ping=0.01).body_chunks()
        chunks = [await anext(body)]
        while chunks.count(b": ping\n\n") < 2:
            chunks.append(await anext(body))
        gate.set()
        while chunks[-1] == b": ping\n\n":
            chunks.append(await anext(body))
        assert not closed
        await body.aclose()  # what the worker does when the gateway cancels the request
        return chunks

    chunks = asyncio.run(consume())
    assert chunks[0] == b"data: first\n\n" and chunks[-1] == b"data: second\n\n"
    assert set(chunks[1:-1]) == {b": ping\n\n"} and len(chunks) >= 4
    assert closed == ["finally"]


def test_cancelling_the_task_that_streams_runs_the_generators_finally() -> None:
    closed: list[str] = []
    started = asyncio.Event()

    async def gen() -> AsyncIterator[str]:
        try:
            yield "x"
            started.set()
            await asyncio.sleep(3600)
            yield "never"
        finally:
            closed.append("finally")

    async def stream() -> None:
        body = EventSourceResponse(gen(), ping=30).body_chunks()
        try:
            async for _ in body:
                pass
        finally:
            await body.aclose()

    async def main() -> None:
        task = asyncio.create_task(stream())
        await started.wait()
        task.cancel()  # the worker's CANCEL
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert closed == ["finally"]


def test_bad_content_and_ping_are_refused() -> None:
    with pytest.raises(TypeError, match="iterable of events"):
        EventSourceResponse("not a stream")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ping"):
        EventSourceResponse([], ping=-1)

    async def bad() -> AsyncIterator[Any]:
        yield 42

    async def consume() -> None:
        async for _ in EventSourceResponse(bad(), ping=None).body_chunks():
            pass

    with pytest.raises(TypeError, match="got int"):
        asyncio.run(consume())
