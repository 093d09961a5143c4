"""Server-sent events: :class:`EventSourceResponse` and :class:`ServerSentEvent`.

An event stream (the HTML standard's ``text/event-stream``) is a streamed response
whose body is a sequence of events, each a few ``field: value`` lines and a blank line.
Each event leaves the worker as its own RESP_BODY frame the moment the handler's
iterator yields it (the worker wakes the gateway once per loop turn), so nothing is
held back for buffering; ``x-accel-buffering: no`` asks a proxy in front (nginx) not to
buffer either. While the iterator is idle, a comment line (``: ping``) goes out every
``ping`` seconds, so that proxies and browsers keep an idle connection open.

When the client goes away the gateway cancels the exchange (CANCEL); the worker then
closes the iterator, so an async generator's ``finally`` (or ``async with``) block runs.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ._responses import HeadersLike, Response

__all__ = ["EventSourceResponse", "ServerSentEvent", "DEFAULT_PING"]

#: Seconds between heartbeat comments while the iterator is idle.
DEFAULT_PING = 15.0

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_BAD_FIELD = re.compile(r"[\r\n]")


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One event. ``data`` is text (a multi-line str becomes one ``data:`` line per
    line) or any other JSON-serialisable value (sent as compact JSON); None sends no
    data lines. ``event`` names the event type (the browser's ``addEventListener``
    name; default ``message``), ``id`` sets the stream's last event id, ``retry`` the
    client's reconnection delay in milliseconds, ``comment`` adds ``:`` lines the
    client ignores."""

    data: Any = None
    event: str | None = None
    id: str | None = None
    retry: int | None = None
    comment: str | None = None

    def __post_init__(self) -> None:
        for name in ("event", "id"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or _BAD_FIELD.search(value)):
                raise ValueError(f"event {name} must be a str without CR or LF, got {value!r}")
        if self.id is not None and "\0" in self.id:
            raise ValueError("event id must not contain NUL")
        if self.retry is not None and (isinstance(self.retry, bool) or not isinstance(self.retry, int) or self.retry < 0):
            raise ValueError(f"retry must be a non-negative int (milliseconds), got {self.retry!r}")
        if self.comment is not None and not isinstance(self.comment, str):
            raise ValueError(f"comment must be a str, got {type(self.comment).__name__}")

    def encode(self) -> bytes:
        """The event's lines in the wire format, ending with the blank line."""
        lines: list[str] = []
        if self.comment is not None:
            lines.extend(": " + line for line in _LINE_BREAK.split(self.comment))
        if self.event is not None:
            lines.append("event: " + self.event)
        if self.id is not None:
            lines.append("id: " + self.id)
        if self.retry is not None:
            lines.append(f"retry: {self.retry}")
        if self.data is not None:
            text = self.data if isinstance(self.data, str) else json.dumps(
                self.data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            lines.extend("data: " + line for line in _LINE_BREAK.split(text))
        return ("\n".join(lines) + "\n\n").encode("utf-8")


EventItem = ServerSentEvent | Mapping[str, Any] | str | bytes
"""What an event source may yield: a ServerSentEvent; a dict of its fields; a str (the
data of an unnamed event); bytes, sent as they are (already in the wire format)."""


def encode_event(item: EventItem) -> bytes:
    if isinstance(item, ServerSentEvent):
        return item.encode()
    if isinstance(item, str):
        return ServerSentEvent(data=item).encode()
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    if isinstance(item, Mapping):
        return ServerSentEvent(**item).encode()
    raise TypeError(f"an event source yields ServerSentEvent, dict, str or bytes, got {type(item).__name__}")


_PING = b": ping\n\n"


class EventSourceResponse(Response):
    """A ``text/event-stream`` response over a (sync or async) iterable of events
    (:data:`EventItem`). ``ping`` is the number of seconds of idleness after which a
    ``: ping`` comment is sent (None or 0: never). A sync iterable is advanced in the
    event loop's thread pool. The iterable is closed when the stream ends, the client
    goes away, or the route's deadline passes."""

    def __init__(
        self,
        content: Iterable[EventItem] | AsyncIterable[EventItem],
        status: int = 200,
        headers: HeadersLike | None = None,
        *,
        ping: float | None = DEFAULT_PING,
        status_code: int | None = None,
        background: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if not isinstance(content, (Iterable, AsyncIterable)) or isinstance(content, (str, bytes)):
            raise TypeError("EventSourceResponse content must be a (sync or async) iterable of events")
        if ping is not None and (isinstance(ping, bool) or not isinstance(ping, (int, float)) or ping < 0):
            raise ValueError(f"ping must be a non-negative number of seconds or None, got {ping!r}")
        super().__init__(b"", status, headers, status_code=status_code, background=background)
        for name, value in (("content-type", "text/event-stream"), ("cache-control", "no-cache"),
                            ("x-accel-buffering", "no")):  # fmt: skip
            if name not in self.headers:
                self.headers.append(name, value)
        self.content = content
        self.ping = ping or None

    @property
    def body_length(self) -> int:
        return -1

    async def body_chunks(self) -> AsyncIterator[bytes]:
        source = _events(self.content)
        ping = self.ping
        try:
            if ping is None:
                async for item in source:
                    yield encode_event(item)
                return
            loop = asyncio.get_running_loop()
            while True:
                # The next item in a task of its own, so that waiting for it can time
                # out (a ping) without cancelling the iterator.
                pending = loop.create_task(_next(source))
                try:
                    while True:
                        done, _ = await asyncio.wait((pending,), timeout=ping)
                        if done:
                            break
                        yield _PING
                finally:
                    if not pending.done():
                        pending.cancel()
                        await asyncio.wait((pending,))
                got = pending.result()
                if got is _END:
                    return
                yield encode_event(got)  # type: ignore[arg-type]
        finally:
            await source.aclose()


_END = object()


async def _next(source: AsyncIterator[EventItem]) -> object:
    try:
        return await anext(source)
    except StopAsyncIteration:
        return _END


async def _events(content: Iterable[EventItem] | AsyncIterable[EventItem]) -> AsyncGenerator[EventItem, None]:
    """The content as one async generator (closing it closes the content)."""
    if isinstance(content, AsyncIterable):
        iterator = aiter(content)
        try:
            async for item in iterator:
                yield item
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
        return
    loop = asyncio.get_running_loop()
    sync_iter: Iterator[EventItem] = iter(content)
    try:
        while True:
            got: object = await loop.run_in_executor(None, _advance, sync_iter)
            if got is _END:
                return
            yield got  # type: ignore[misc]
    finally:
        close = getattr(sync_iter, "close", None)
        if close is not None:
            await loop.run_in_executor(None, close)


def _advance(iterator: Iterator[EventItem]) -> object:
    try:
        return next(iterator)
    except StopIteration:
        return _END
