"""Serving an ASGI 3 application: the adapter from a routed request to ASGI's scope,
receive and send (https://asgi.readthedocs.io/en/latest/specs/main.html).

The app runs inline in the request's task. Its coroutine is driven by :class:`_Drive`,
an awaitable that steps the coroutine as a Task would (passing the futures it waits on
up to the task) and stops when the endpoint has what it needs: at a streamed body chunk
(``send`` yields a private signal instead of a future), or at the app's first wait once
its response is complete. The endpoint then returns a plain Response (a complete body),
a FileResponse (``http.response.pathsend``) or a streaming Response whose
``body_chunks`` drives the app again, one chunk at a time, after the worker has taken
the previous one (the backpressure of a one-slot handoff). What the app does after its
response (Starlette's background tasks) is driven to its end as the response's
``background``, once the response has gone to the gateway. No Task is made per
request; a send from a task of the app's own wakes the driver through a future.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator, Iterable
from typing import Any
from urllib.parse import unquote

from ._app import Covet
from ._datastructures import MutableHeaders, encode_header
from ._exceptions import BodyAborted
from ._request import Request
from ._responses import FileResponse, PlainTextResponse, Response
from ._routing import HTTP_METHODS
from ._websocket import WebSocket, WebSocketDisconnect, WebSocketState

__all__ = ["asgi_app", "ClientDisconnected"]

log = logging.getLogger("covet.asgi")
error_log = logging.getLogger("covet.error")

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

_HTTP_ASGI = {"version": "3.0", "spec_version": "2.4"}
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_DROPPED = frozenset(("content-length", "transfer-encoding"))
_NO_EAGER = sys.version_info < (3, 12)


class ClientDisconnected(OSError):
    """Raised by ``send`` once the client has gone (ASGI 2.4: a subclass of OSError)."""


# -- driving the app's coroutine in the request's task ----------------------------------


class _PauseSignal:
    """What ``send`` yields to the driver to stop it: never seen by a Task."""


_PAUSE = _PauseSignal()


class _Pause:
    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        yield _PAUSE


_pause = _Pause()


class _Cycle:
    """One ASGI app call: the coroutine, its driver's state, and the response it gave.

    ``phase``: 0 nothing sent, 1 start sent, 2 body streaming (a chunk in ``outbox``
    or taken), 3 the body is complete (or a pathsend). Everything is touched by the
    request's task, except ``send`` and ``receive`` called from a task of the app's own,
    which wake the driver through ``wake``.
    """

    __slots__ = ("coro", "task", "request", "phase", "status", "headers", "body", "path", "outbox", "handoff",
                 "finished", "error", "gone", "disconnect", "discard", "wake", "pending", "body_iter",
                 "body_left", "body_done", "is_head", "head_length", "cancelled", "driving")  # fmt: skip

    def __init__(self, request: Request) -> None:
        self.request = request
        self.coro: Coroutine[Any, Any, None] | None = None
        self.task: asyncio.Task[Any] | None = None
        self.phase = 0
        self.status = 0
        self.headers: list[tuple[str, bytes]] = []
        self.body = b""
        self.path: str | None = None
        #: The chunk ``send`` handed over and the worker has not yet taken.
        self.outbox: bytes | None = None
        #: What a send from another task waits on until its chunk is taken.
        self.handoff: asyncio.Future[None] | None = None
        self.finished = False
        self.error: BaseException | None = None
        #: The client left (the request was cancelled, or the stream was closed early).
        self.gone = False
        #: What ``receive`` waits on once the body is read: resolved when the response
        #: is done or the client leaves.
        self.disconnect: asyncio.Future[None] | None = None
        #: Body messages are accepted and dropped (HEAD; after the response ended).
        self.discard = False
        #: The driver's wait, which a send from another task resolves.
        self.wake: asyncio.Future[None] | None = None
        #: The future the coroutine is blocked on when the driver stopped before it was done.
        self.pending: asyncio.Future[Any] | None = None
        self.body_iter: AsyncIterator[bytes] | None = None
        self.body_left = request.head.body_length
        self.body_done = self.body_left == 0
        self.is_head = request.head.method == "HEAD"
        self.head_length: bytes | None = None
        #: The request's task was cancelled (the client left) while the app waited for
        #: http.disconnect, which it got instead: the task ends cancelled once the app
        #: is done.
        self.cancelled = False
        #: The driver is inside the coroutine (a send now comes from it).
        self.driving = False

    # -- receive ------------------------------------------------------------------------

    async def receive(self) -> Message:
        if not self.body_done:
            if self.body_iter is None:
                self.body_iter = aiter(self.request.stream())
            try:
                chunk = await anext(self.body_iter)
            except StopAsyncIteration:
                self.body_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            except BodyAborted:  # the client left mid-body
                self.body_done = self.gone = True
                return {"type": "http.disconnect"}
            if self.body_left > 0:
                self.body_left -= len(chunk)
                if self.body_left <= 0:
                    self.body_done = True
                    return {"type": "http.request", "body": chunk, "more_body": False}
            return {"type": "http.request", "body": chunk, "more_body": True}
        if self.body_iter is None:  # no body at all: one empty message
            self.body_iter = _NO_BODY
            return {"type": "http.request", "body": b"", "more_body": False}
        if not self.gone and (self.phase < 3 or self.outbox is not None):
            if self.disconnect is None:
                self.disconnect = asyncio.get_running_loop().create_future()
            await self.disconnect
        return {"type": "http.disconnect"}

    def _done(self) -> None:
        """The response is over (sent in full, or the client left): a receive waiting
        for the disconnect returns it."""
        fut = self.disconnect
        if fut is not None and not fut.done():
            fut.set_result(None)

    # -- send ---------------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if self.gone:
            if kind in ("http.response.start", "http.response.body", "http.response.pathsend"):
                raise ClientDisconnected("the client has gone")
        if kind == "http.response.start":
            if self.phase != 0:
                raise RuntimeError("http.response.start sent twice")
            status = message["status"]
            if type(status) is not int or not 200 <= status <= 599:
                raise RuntimeError(f"http.response.start status must be an int in 200..599, got {status!r}")
            self.status = status
            self.headers = self._headers(message.get("headers", ()))
            self.phase = 1
            return
        if kind == "http.response.body":
            if self.phase == 0:
                raise RuntimeError("http.response.body before http.response.start")
            if self.phase == 3:
                if self.discard:
                    return
                raise RuntimeError("http.response.body after the response was complete")
            body = message.get("body", b"")
            if not isinstance(body, bytes):
                body = bytes(body)
            more = bool(message.get("more_body", False))
            if self.discard:
                if not more:
                    self.phase = 3
                return
            if self.is_head:  # no body to send: the head is what the client gets
                self.discard = True
                self.phase = 3
                await self._complete()
                return
            if not more and self.phase == 1:
                self.body = body
                self.phase = 3
                await self._complete()
                return
            self.phase = 2 if more else 3
            await self._handed(body)
            return
        if kind == "http.response.pathsend":
            if self.phase != 1:
                raise RuntimeError("http.response.pathsend must follow http.response.start")
            path = message["path"]
            if not isinstance(path, str):
                raise RuntimeError(f"http.response.pathsend path must be a str, got {type(path).__name__}")
            self.path = path
            self.phase = 3
            await self._complete()
            return
        raise RuntimeError(f"unexpected ASGI message {kind!r} for an HTTP request")

    def _headers(self, raw: Iterable[Any]) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        for name, value in raw:
            key = (name.decode("latin-1") if isinstance(name, (bytes, bytearray)) else str(name)).lower()
            if key in _DROPPED:
                if self.is_head and key == "content-length":
                    self.head_length = bytes(value)
                continue
            out.append((key, bytes(value)))
        return out

    def _stop_here(self) -> None:
        wake = self.wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def _in_task(self) -> bool:
        """Whether the caller is the coroutine the driver is running now (not a task of
        the app's own). Before 3.12 no other task can run while the driver is inside
        the coroutine; from 3.12 an eager task can, so the task is compared too."""
        return self.driving and (_NO_EAGER or asyncio.current_task() is self.task)

    async def _complete(self) -> None:
        """The response is complete (recorded): the app goes on at once in the driving
        task, whose driver stops at its next wait; a task of the app's own waits until
        the endpoint has the response."""
        if not self._in_task():
            await self._handoff(None)

    async def _handed(self, chunk: bytes) -> None:
        """A body chunk is ready for the consumer; return once the worker has taken it."""
        if self._in_task():
            self.outbox = chunk
            await _pause
        else:
            await self._handoff(chunk)
        if self.gone and not self.discard:
            raise ClientDisconnected("the client has gone")

    async def _handoff(self, chunk: bytes | None) -> None:
        """A send from a task of the app's own: wake the driver, wait until taken."""
        while self.handoff is not None:
            await self.handoff
        self.outbox = chunk
        fut = self.handoff = asyncio.get_running_loop().create_future()
        self._stop_here()
        try:
            await fut
        finally:
            if self.handoff is fut:
                self.handoff = None

    def _taken(self) -> None:
        """The worker took the chunk in the outbox: a sender waiting for it may go on."""
        self.outbox = None
        fut = self.handoff
        if fut is not None:
            self.handoff = None
            if not fut.done():
                fut.set_result(None)

    # -- driving ------------------------------------------------------------------------

    def drive(self, until_done: bool = False) -> _Drive:
        """Run the app on (see _Drive)."""
        return _Drive(self, until_done)

    def _on_ready(self, _fut: asyncio.Future[Any]) -> None:
        wake = self.wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def finish(self) -> None:
        """Drive the app to its end after its response (its background work); body
        messages it still sends are dropped."""
        self.discard = True
        self._taken()
        self._done()
        while not self.finished:
            await self.drive(True)
        self._report_late()

    async def check_cancelled(self) -> None:
        """After a drive: if the client left while the app waited for http.disconnect,
        let the app finish and end the request's task as cancelled, so that the worker
        sends nothing more for the request."""
        if self.cancelled:
            await self.abandon()
            raise asyncio.CancelledError()

    async def abandon(self) -> None:
        """The client left mid-response: ``send`` raises ClientDisconnected, ``receive``
        gives http.disconnect; the app runs to its end."""
        self.gone = True
        self._taken()
        self._done()
        while not self.finished:
            await self.drive(True)
        if isinstance(self.error, (ClientDisconnected, asyncio.CancelledError)):
            self.error = None
        self._report_late()

    def _report_late(self) -> None:
        err, self.error = self.error, None
        if err is not None and not _disconnected(err):
            head = self.request.head
            error_log.error("ASGI app failed after its response (request_id=%s)", head.request_id,
                            exc_info=err, extra={"request_id": head.request_id})  # fmt: skip


def _disconnected(err: BaseException) -> bool:
    """Whether ``err`` is how an app says it saw the client leave (ClientDisconnected,
    or an exception it raised from one, such as Starlette's ClientDisconnect)."""
    while err is not None:
        if isinstance(err, ClientDisconnected):
            return True
        nxt = err.__cause__ or err.__context__
        if nxt is None:
            return False
        err = nxt
    return False


class _Drive:
    """Awaitable: run the cycle's coroutine in the awaiting task until it hands a body
    chunk over (``send`` yields ``_PAUSE``), a task of the app's own hands a message
    over, the response is complete and the coroutine waits for something (unless
    ``until_done``), or the coroutine ends (``finished``; an exception in ``error``).
    Futures the coroutine waits on are waited on for it with a Task's semantics,
    cancellation included; a cancellation while it waits for ``http.disconnect``
    becomes that message instead."""

    __slots__ = ("cycle", "until_done")

    def __init__(self, cycle: _Cycle, until_done: bool) -> None:
        self.cycle = cycle
        self.until_done = until_done

    def __await__(self) -> Generator[Any, None, None]:
        cycle = self.cycle
        coro = cycle.coro
        assert coro is not None
        if not _NO_EAGER:
            cycle.task = asyncio.current_task()
        stop_when_complete = not self.until_done
        error: BaseException | None = None
        blocked = cycle.pending
        cycle.pending = None
        while True:
            if blocked is not None:  # wait for what the coroutine waits on, or a handoff
                if not blocked.done():
                    wake = cycle.wake = blocked.get_loop().create_future()
                    blocked.add_done_callback(cycle._on_ready)
                    wake._asyncio_future_blocking = True
                    try:
                        yield wake
                    except asyncio.CancelledError as exc:
                        cycle.wake = None
                        if blocked is cycle.disconnect:  # the client left: say so
                            task = asyncio.current_task()
                            if task is not None:
                                task.uncancel()
                            cycle.gone = cycle.cancelled = True
                            if not blocked.done():
                                blocked.set_result(None)
                        elif not blocked.cancel(exc.args[0] if exc.args else None):
                            error = exc  # what it waited on is done: cancel the coroutine itself
                            blocked = None
                        continue
                    except BaseException as exc:
                        cycle.wake = None
                        error = exc
                        blocked = None
                        continue
                    cycle.wake = None
                    if not blocked.done():  # a handoff from another task: stop here
                        cycle.pending = blocked
                        return
                blocked = None
            cycle.driving = True
            try:
                if error is None:
                    yielded = coro.send(None)
                else:
                    yielded, error = coro.throw(error), None
            except StopIteration:
                cycle.finished = True
                return
            except Exception as exc:
                cycle.finished = True
                cycle.error = exc
                return
            except BaseException:
                cycle.finished = True
                raise
            finally:
                cycle.driving = False
            if yielded is _PAUSE:
                return
            if yielded is None:  # a bare yield (sleep(0))
                if stop_when_complete and cycle.phase == 3 and cycle.outbox is None:
                    return  # the response first; the rest goes on from here
                try:
                    yield None
                except BaseException as exc:
                    error = exc
                continue
            if getattr(yielded, "_asyncio_future_blocking", None):
                yielded._asyncio_future_blocking = False
                if stop_when_complete and cycle.phase == 3 and cycle.outbox is None:
                    cycle.pending = yielded  # the response first; the rest waits on this
                    return
                blocked = yielded
                continue
            error = RuntimeError(f"ASGI app yielded {yielded!r}, not a future")


async def _no_body() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover: makes this an async generator


_NO_BODY: AsyncIterator[bytes] = _no_body()


class _Streamed(Response):
    """The app's response whose body it sends in several messages: ``body_chunks``
    drives the app for each next chunk once the worker has taken the previous one."""

    def __init__(self, cycle: _Cycle) -> None:
        super().__init__(b"", cycle.status, background=cycle.finish)
        self.headers = MutableHeaders.from_pairs(cycle.headers)
        self.cycle = cycle

    @property
    def body_length(self) -> int:
        return -1

    async def body_chunks(self) -> AsyncIterator[bytes]:
        cycle = self.cycle
        complete = False
        try:
            while True:
                chunk = cycle.outbox
                if chunk:
                    yield chunk
                cycle._taken()
                if cycle.phase == 3:
                    complete = True
                    return
                if cycle.finished:
                    raise _broken(cycle, "failed mid-response" if cycle.error else
                                  "returned without completing the response")  # fmt: skip
                await cycle.drive()
                await cycle.check_cancelled()
        finally:
            if not complete and not cycle.finished:
                await cycle.abandon()
            elif complete:
                cycle._done()


class _Broken(Exception):
    """The ASGI app broke its response off after the start: the worker aborts it."""


def _broken(cycle: _Cycle, what: str) -> BaseException:
    err, cycle.error = cycle.error, None
    exc = _Broken(f"the ASGI app {what} (request_id={cycle.request.head.request_id})")
    if err is not None:
        exc.__cause__ = err
    return exc


class _Memo(dict[Any, Any]):
    """A bounded memo of ``fn``: the first 1024 keys are kept, later ones computed
    each time (request header names and Host values repeat; a flood of new ones must
    not grow it)."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        super().__init__()
        self.fn = fn

    def __missing__(self, key: Any) -> Any:
        value = self.fn(key)
        if len(self) < 1024:
            self[key] = value
        return value


def _parse_server(key: tuple[bytes, str]) -> tuple[str, int | None] | None:
    value, scheme = key
    host = value.decode("latin-1")
    if not host:
        return None
    if host.startswith("["):
        end = host.find("]")
        name, rest = host[: end + 1], host[end + 1 :]
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port_text = host.partition(":")
    if port_text:
        return (name, int(port_text)) if port_text.isdigit() and port_text.isascii() else (name, None)
    return name, _DEFAULT_PORTS.get(scheme)


_servers = _Memo(_parse_server)
_names = _Memo(lambda name: name.encode("latin-1"))


def _server(headers: list[Any], scheme: str) -> tuple[str, int | None] | None:
    """``(host, port)`` from the Host header (the scheme's port when it names none);
    None without one."""
    try:
        value = headers[headers.index("host") + 1]
    except ValueError:
        return None
    result: tuple[str, int | None] | None = _servers[(bytes(value), scheme)]
    return result


def _pairs(flat: list[Any]) -> list[tuple[bytes, bytes]]:
    """ASGI's header list from the head's flat one: (name bytes, value bytes) pairs."""
    return list(zip(map(_names.__getitem__, flat[0::2]), flat[1::2]))


def _client(text: str) -> tuple[str, int] | None:
    """``(host, port)`` from the head's ``ip:port`` or ``[ipv6]:port``."""
    if not text:
        return None
    host, _, port = text.rpartition(":")
    if host.startswith("["):
        host = host[1:-1]
    return (host, int(port)) if port.isdigit() else (host or text, 0)


class _Host:
    """What a hosted ASGI app shares across its requests: the app, its lifespan state,
    and the parts of a scope built once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        #: The lifespan scope's state (None: the app has no lifespan, or not yet).
        self.state: dict[str, Any] | None = None
        self.http_extensions: dict[str, Any] = {"http.response.pathsend": {}}
        self.ws_extensions: dict[str, Any] = {"websocket.http.response": {}}

    def http_scope(self, request: Request) -> Scope:
        head = request.head
        scope: Scope = {
            "type": "http",
            "asgi": _HTTP_ASGI,
            "http_version": head.http_version,
            "method": head.method,
            "scheme": head.scheme,
            "path": unquote(head.path) if "%" in head.path else head.path,
            "raw_path": head.path.encode("utf-8"),
            "query_string": head.query.encode("utf-8"),
            "root_path": "",
            "headers": _pairs(head.headers),
            "client": _client(head.client),
            "server": _server(head.headers, head.scheme),
            "extensions": self.http_extensions,
        }
        if self.state is not None:
            scope["state"] = dict(self.state)
        return scope

    async def websocket(self, ws: WebSocket, path: str) -> None:
        """The WebSocket route's handler: the session as a websocket scope."""
        await asgi_websocket(self, ws)

    async def endpoint(self, request: Request, path: str) -> Response:
        """The HTTP routes' handler: the request as an http scope; returns as soon as
        the response is known (complete, a file, or the first streamed chunk)."""
        cycle = _Cycle(request)
        cycle.coro = self.app(self.http_scope(request), cycle.receive, cycle.send)  # type: ignore[assignment]
        if not asyncio.iscoroutine(cycle.coro):
            raise TypeError(f"ASGI app {self.app!r} did not return a coroutine")
        while True:
            try:
                await cycle.drive()
            except BaseException:
                if not cycle.finished:
                    cycle.coro.close()
                raise
            await cycle.check_cancelled()
            if cycle.phase == 3:
                background = None
                if not cycle.finished:
                    background = cycle.finish
                elif cycle.error is not None:
                    cycle._report_late()
                if cycle.path is not None:
                    response: Response = FileResponse(cycle.path, cycle.status, background=background)
                    response.headers = MutableHeaders.from_pairs(cycle.headers)
                else:
                    if cycle.head_length is not None:
                        cycle.headers.append(("content-length", cycle.head_length))
                    response = _new_response(Response)
                    response.status = cycle.status
                    response.body = cycle.body
                    response.headers = MutableHeaders.from_pairs(cycle.headers)
                    if background is not None:
                        response.background = background
                cycle._taken()
                return response
            if cycle.phase == 2 and cycle.outbox is not None:
                return _Streamed(cycle)
            if cycle.finished:
                break
        err, cycle.error = cycle.error, None
        head = request.head
        if cycle.phase == 0:
            if cycle.gone and (err is None or _disconnected(err)):
                log.debug("ASGI app ended without a response: the client left (request_id=%s)", head.request_id)
            elif err is not None:
                error_log.error("ASGI app failed in %s %s (request_id=%s)", head.method, head.path, head.request_id,
                                exc_info=err, extra={"request_id": head.request_id})  # fmt: skip
            else:
                error_log.error("ASGI app returned without starting a response to %s %s (request_id=%s)",
                                head.method, head.path, head.request_id,
                                extra={"request_id": head.request_id})  # fmt: skip
            return PlainTextResponse("Internal Server Error", 500)
        cycle.error = err
        return _BrokenResponse(cycle)


_new_response = object.__new__


class _BrokenResponse(Response):
    """A response the app started and then abandoned (it raised, or returned without
    its body): its body raises, and the worker breaks the exchange off."""

    def __init__(self, cycle: _Cycle) -> None:
        super().__init__(b"", cycle.status)
        self.headers = MutableHeaders.from_pairs(cycle.headers)
        self.cycle = cycle

    @property
    def body_length(self) -> int:
        return -1

    async def body_chunks(self) -> AsyncIterator[bytes]:
        raise _broken(self.cycle, "failed after starting its response" if self.cycle.error else
                      "returned without completing the response")  # fmt: skip
        yield b""  # pragma: no cover: makes this an async generator


# -- lifespan ---------------------------------------------------------------------------


class _LifespanRun:
    """The app's lifespan protocol, run in a task of its own for the worker's life."""

    def __init__(self, host: _Host) -> None:
        self.host = host
        self.state: dict[str, Any] = {}
        loop = asyncio.get_running_loop()
        self.startup: asyncio.Future[str | None] = loop.create_future()
        self.shutdown: asyncio.Future[str | None] = loop.create_future()
        self.shutdown_asked = asyncio.Event()
        self.received = 0
        self.task: asyncio.Task[None] | None = None

    async def _main(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        await self.host.app(scope, self._receive, self._send)

    async def _receive(self) -> Message:
        self.received += 1
        if self.received == 1:
            return {"type": "lifespan.startup"}
        await self.shutdown_asked.wait()
        return {"type": "lifespan.shutdown"}

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if kind in ("lifespan.startup.complete", "lifespan.startup.failed"):
            if self.startup.done():
                raise RuntimeError(f"{kind} sent twice, or after startup")
            self.startup.set_result(None if kind.endswith("complete") else str(message.get("message", "")))
        elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            if not self.shutdown_asked.is_set() or self.shutdown.done():
                raise RuntimeError(f"{kind} before lifespan.shutdown, or twice")
            self.shutdown.set_result(None if kind.endswith("complete") else str(message.get("message", "")))
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} in lifespan")

    async def start(self) -> bool:
        """Run startup: True when the app completed it, False when it does not take
        part (it raised or returned first; logged). Raises RuntimeError on
        ``lifespan.startup.failed``."""
        task = self.task = asyncio.get_running_loop().create_task(self._main())
        await asyncio.wait((task, self.startup), return_when=asyncio.FIRST_COMPLETED)
        if self.startup.done():
            failed = self.startup.result()
            if failed is not None:
                await self._end(task)
                raise RuntimeError(f"ASGI lifespan startup failed: {failed}" if failed else "ASGI lifespan startup failed")
            return True
        exc = task.exception()
        if exc is not None:
            log.info("ASGI 'lifespan' protocol appears unsupported (%s: %s); serving without it",
                     type(exc).__name__, exc)  # fmt: skip
        else:
            log.info("ASGI app returned from 'lifespan' before startup; serving without it")
        return False

    async def stop(self) -> None:
        task = self.task
        assert task is not None
        if task.done():  # it ended while the worker served
            if not task.cancelled() and task.exception() is not None:
                raise RuntimeError("the ASGI lifespan task failed after startup") from task.exception()
            return
        self.shutdown_asked.set()
        await asyncio.wait((task, self.shutdown), return_when=asyncio.FIRST_COMPLETED)
        failed = self.shutdown.result() if self.shutdown.done() else None
        await self._end(task)
        if failed is not None:
            raise RuntimeError(f"ASGI lifespan shutdown failed: {failed}" if failed else "ASGI lifespan shutdown failed")
        if not self.shutdown.done() and not task.cancelled() and task.exception() is not None:
            raise RuntimeError("ASGI lifespan failed during shutdown") from task.exception()

    @staticmethod
    async def _end(task: asyncio.Task[None]) -> None:
        if not task.done():
            done, _ = await asyncio.wait((task,), timeout=1.0)
            if not done:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task


def _lifespan(host: _Host) -> Callable[[Covet], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(_app: Covet) -> AsyncIterator[None]:
        run = _LifespanRun(host)
        if not await run.start():
            yield None
            return
        host.state = run.state
        try:
            yield None
        finally:
            host.state = None
            await run.stop()

    return lifespan


# -- WebSocket --------------------------------------------------------------------------


class _WSCycle:
    """One ASGI WebSocket call bridged to a covet WebSocket."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.connected = False
        self.closed_code: int | None = None
        self.denial: tuple[int, list[tuple[str, bytes]]] | None = None
        self.denial_body: list[bytes] = []

    async def receive(self) -> Message:
        ws = self.ws
        if not self.connected:
            self.connected = True
            return {"type": "websocket.connect"}
        if self.closed_code is not None:
            return {"type": "websocket.disconnect", "code": self.closed_code, "reason": ""}
        if ws.state_name != WebSocketState.CONNECTED:
            raise RuntimeError("websocket receive before websocket.accept")
        try:
            message = await ws.receive()
        except WebSocketDisconnect as exc:
            self.closed_code = exc.code
            return {"type": "websocket.disconnect", "code": exc.code, "reason": exc.reason}
        if isinstance(message, str):
            return {"type": "websocket.receive", "text": message}
        return {"type": "websocket.receive", "bytes": message}

    async def send(self, message: Message) -> None:
        ws = self.ws
        kind = message["type"]
        try:
            if kind == "websocket.accept":
                headers = [(bytes(n).decode("latin-1"), bytes(v)) for n, v in message.get("headers", ())]
                await ws.accept(message.get("subprotocol"), headers)
            elif kind == "websocket.send":
                text, data = message.get("text"), message.get("bytes")
                if text is not None:
                    await ws.send_text(text)
                elif data is not None:
                    await ws.send_bytes(data)
                else:
                    raise RuntimeError("websocket.send with neither bytes nor text")
            elif kind == "websocket.close":
                await ws.close(int(message.get("code", 1000)), str(message.get("reason") or ""))
                if self.closed_code is None:
                    self.closed_code = int(message.get("code", 1000))
            elif kind == "websocket.http.response.start":
                if ws.state_name != WebSocketState.CONNECTING or self.denial is not None:
                    raise RuntimeError("websocket.http.response.start after accept, close or another start")
                status = message["status"]
                headers = [encode_header(bytes(n).decode("latin-1"), bytes(v)) for n, v in message.get("headers", ())]
                self.denial = (int(status), [(n, v) for n, v in headers if n not in _DROPPED])
            elif kind == "websocket.http.response.body":
                if self.denial is None or ws.state_name != WebSocketState.CONNECTING:
                    raise RuntimeError("websocket.http.response.body without websocket.http.response.start")
                self.denial_body.append(bytes(message.get("body", b"")))
                if not message.get("more_body", False):
                    status, headers = self.denial
                    response = Response(b"".join(self.denial_body), status)
                    response.headers = MutableHeaders.from_pairs(headers)
                    ws._rejection = response
                    ws.state_name = WebSocketState.CLOSED
            else:
                raise RuntimeError(f"unexpected ASGI message {kind!r} for a WebSocket")
        except WebSocketDisconnect as exc:
            self.closed_code = exc.code
            raise ClientDisconnected(f"the client closed the WebSocket ({exc.code})") from None


def _ws_scope(host: _Host, ws: WebSocket) -> Scope:
    head = ws.head
    scope: Scope = {
        "type": "websocket",
        "asgi": _HTTP_ASGI,
        "http_version": head.http_version,
        "scheme": "wss" if head.scheme == "https" else "ws",
        "path": unquote(head.path) if "%" in head.path else head.path,
        "raw_path": head.path.encode("utf-8"),
        "query_string": head.query.encode("utf-8"),
        "root_path": "",
        "headers": _pairs(head.headers),
        "client": _client(head.client),
        "server": _server(head.headers, head.scheme),
        "subprotocols": ws.subprotocols,
        "extensions": host.ws_extensions,
    }
    if host.state is not None:
        scope["state"] = dict(host.state)
    return scope


async def asgi_websocket(host: _Host, ws: WebSocket) -> None:
    """Run the ASGI app for one WebSocket session (a covet WebSocket route's handler)."""
    bridge = _WSCycle(ws)
    try:
        await host.app(_ws_scope(host, ws), bridge.receive, bridge.send)
    except ClientDisconnected:
        pass
    except Exception as exc:
        if _disconnected(exc):
            return
        raise


# -- the wrapping -----------------------------------------------------------------------


def asgi_app(app: Any, name: str) -> Covet:
    """A Covet app named ``name`` serving the ASGI 3 application ``app``: one catch-all
    route per method and a WebSocket route on the same pattern (an upgrade request is
    a websocket scope, any other an http one); ASGI's lifespan protocol run by the
    worker's startup and shutdown (an app that does not take part is served without
    it)."""
    if not callable(app):
        raise TypeError(f"an ASGI app must be callable, got {type(app).__name__}")
    host = _Host(app)
    covet = Covet(name, openapi_url=None, docs_url=None, lifespan=_lifespan(host))
    covet.route("/{path...}", list(HTTP_METHODS))(host.endpoint)
    covet.websocket("/{path...}")(host.websocket)
    covet.asgi_host = host  # type: ignore[attr-defined]
    return covet


def websocket_endpoint(app: Covet) -> Callable[[WebSocket, str], Awaitable[None]]:
    """The WebSocket handler bridging sessions to the ASGI app that ``app`` (made by
    :func:`asgi_app`) hosts, for a ``@app.websocket`` route of one's own."""
    host: _Host = app.asgi_host  # type: ignore[attr-defined]
    return host.websocket

