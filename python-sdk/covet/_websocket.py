"""WebSocket: what a ``@app.websocket`` handler receives, and how a session runs.

The gateway terminates the WebSocket protocol itself (framing, masking, compression,
UTF-8 checks, ping/pong, the close handshake: workerproto/PROTOCOL.md 2.9); a handler
sees whole messages and the session's open and close. The same :class:`WebSocket`
serves the worker (covet._ws_worker, over the rings) and the TestClient (in-process):
each supplies a :class:`WebSocketTransport` for what goes out and feeds what comes in
with ``_deliver`` / ``_deliver_close``.

A session's life, as :func:`run_session` runs it:

- before ``accept()``, the handler may reject the handshake: ``close()`` (any code),
  returning, or raising HTTPException gives the client an HTTP answer instead of the
  101 (403, or the exception's status and detail through the app's exception
  handlers); any other exception a logged 500;
- after ``accept()``, messages flow; a client's close makes ``receive_*`` (and a send
  after it) raise :class:`WebSocketDisconnect`, and ends ``async for`` quietly; the
  handler's return sends close 1000 if it had not closed; an exception closes 1011 and
  is logged with the request id.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from ._binding import path_params
from ._datastructures import encode_header
from ._head import RequestHead
from ._request import HTTPConnection, Request
from ._responses import PlainTextResponse, Response

if TYPE_CHECKING:
    from ._app import Covet
    from ._routing import Route

__all__ = [
    "WebSocket",
    "WebSocketDisconnect",
    "WebSocketState",
    "WebSocketTransport",
    "check_close",
    "run_session",
]

error_log = logging.getLogger("covet.error")

#: Close codes a server may send (RFC 6455 7.4.1 and the IANA registry): the protocol's
#: own that an endpoint may put in a close frame, and the application range 3000-4999.
_SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})
_MAX_REASON = 123


def check_close(code: int, reason: str) -> None:
    """ValueError unless ``code`` may be sent in a close frame (1000-1003, 1007-1014,
    3000-4999) and ``reason`` is at most 123 bytes of UTF-8."""
    if isinstance(code, bool) or not isinstance(code, int) or not (code in _SENDABLE_CODES or 3000 <= code <= 4999):
        raise ValueError(f"close code {code!r} cannot be sent: use 1000-1003, 1007-1014 or 3000-4999")
    if not isinstance(reason, str):
        raise TypeError(f"close reason must be a str, got {type(reason).__name__}")
    try:
        n = len(reason.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError("close reason is not valid UTF-8 (a lone surrogate)") from None
    if n > _MAX_REASON:
        raise ValueError(f"close reason is {n} bytes of UTF-8, at most {_MAX_REASON}")


class WebSocketDisconnect(Exception):
    """The client closed the session (or the connection was lost): ``code`` is the
    close frame's code (1005 when it carried none, 1006 when the connection dropped,
    1001 when the gateway shut down) and ``reason`` its text."""

    def __init__(self, code: int = 1000, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"WebSocket closed by the client: {self.code}" + (f" {self.reason}" if self.reason else "")


class WebSocketState:
    """Where a session stands (``ws.state_name`` reads one of these)."""

    CONNECTING = "connecting"  # the handshake waits for accept()
    CONNECTED = "connected"
    CLOSED = "closed"  # this side closed (or rejected the handshake)


class WebSocketTransport(Protocol):
    """What a WebSocket sends through: the worker's session over the rings, or the
    TestClient's in-process peer."""

    #: The longest message the handler may send in bytes (half the session's window,
    #: PROTOCOL.md 2.9); 0 for no limit.
    max_message: int

    async def accept(self, subprotocol: str, headers: list[tuple[str, bytes]]) -> None:
        """Send the accept (the 101); called at most once, before any message."""

    async def send_message(self, text: bool, data: bytes) -> None:
        """Send one message, waiting for credit as needed."""

    async def close(self, code: int, reason: str) -> None:
        """Send this side's close; called at most once, after accept."""

    def consumed(self, cost: int) -> None:
        """The handler has received a message that cost ``cost`` of the window."""


_Incoming = tuple[str | bytes, int]  # a message and its cost against the window


class WebSocket(HTTPConnection):
    """One WebSocket session, handed to a ``@app.websocket`` handler.

    The upgrade request's head is read as a Request's is (``path_params``,
    ``query_params``, ``headers``, ``cookies``, ``client``, ``url``, ``path``);
    ``subprotocols`` lists what the client offered; ``resumed`` is True when the
    gateway moved the session here from a worker that went away (a ``resumable``
    route; ``accept()`` is then a no-op: the client was accepted long ago).
    ``state`` is a plain namespace for the handler's own use.
    """

    def __init__(self, head: RequestHead, transport: WebSocketTransport, *, resumed: bool = False) -> None:
        self.head = head
        self._transport = transport
        self.resumed = resumed
        self.path_params: dict[str, Any] = {}
        self.state = _State()
        self.state_name = WebSocketState.CONNECTED if resumed else WebSocketState.CONNECTING
        self.accepted_subprotocol: str | None = None
        self.close_code: int | None = None
        """The client's close code once it closed (None while open)."""
        self.close_reason = ""
        self._incoming: collections.deque[_Incoming] = collections.deque()
        self._peer_closed = False
        self._waiters: list[asyncio.Future[None]] = []  # receives waiting for a message
        self._rejection: Response | None = None

    # -- the upgrade request -----------------------------------------------------------

    @cached_property
    def url(self) -> str:
        """The URL the client addressed, with a ``ws`` or ``wss`` scheme."""
        host = self.headers.get("host", "")
        scheme = "wss" if self.head.scheme == "https" else "ws"
        query = f"?{self.head.query}" if self.head.query else ""
        return f"{scheme}://{host}{self.head.path}{query}"

    @cached_property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offered (``sec-websocket-protocol``), in order."""
        return [p.strip() for v in self.headers.getlist("sec-websocket-protocol") for p in v.split(",") if p.strip()]

    # -- the handshake -----------------------------------------------------------------

    async def accept(
        self,
        subprotocol: str | None = None,
        headers: Mapping[str, str | bytes] | Iterable[tuple[str, str | bytes]] | None = None,
    ) -> None:
        """Accept the session: the client gets its ``101 Switching Protocols`` with
        ``subprotocol`` (one the client offered, or None) and ``headers`` (extra fields
        such as ``set-cookie``). A no-op for a resumed session; RuntimeError if called
        twice or after close()."""
        if self.resumed and self.state_name == WebSocketState.CONNECTED:
            return  # the gateway accepted this client when its session first opened
        if self.state_name != WebSocketState.CONNECTING:
            raise RuntimeError(f"accept() on a WebSocket that is {self.state_name}")
        if subprotocol is not None and subprotocol not in self.subprotocols:
            raise ValueError(f"subprotocol {subprotocol!r} was not offered by the client (offered: {self.subprotocols})")
        fields: list[tuple[str, bytes]] = []
        if headers is not None:
            items = headers.items() if isinstance(headers, Mapping) else headers
            fields = [encode_header(name, value) for name, value in items]
        await self._transport.accept(subprotocol or "", fields)
        self.accepted_subprotocol = subprotocol
        self.state_name = WebSocketState.CONNECTED

    # -- receiving ---------------------------------------------------------------------

    def _deliver(self, message: str | bytes, cost: int) -> None:
        """Transport side: a whole message arrived from the client."""
        self._incoming.append((message, cost))
        self._wake()

    def _deliver_close(self, code: int, reason: str) -> None:
        """Transport side: the client closed (or left); later receives raise."""
        if self._peer_closed:
            return
        self._peer_closed = True
        self.close_code, self.close_reason = code, reason
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    async def _next(self) -> _Incoming:
        """The next message, left in the queue: WebSocketDisconnect once the client has
        closed and every message before its close was received."""
        if self.state_name == WebSocketState.CONNECTING:
            raise RuntimeError("receive before accept(): accept the WebSocket first")
        while not self._incoming:
            if self._peer_closed:
                raise WebSocketDisconnect(self.close_code or 1005, self.close_reason)
            if self.state_name == WebSocketState.CLOSED:
                raise RuntimeError("receive after close(): this side has closed the WebSocket")
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            finally:
                if not fut.done():  # cancelled (a timeout around the receive): forget it
                    self._waiters.remove(fut)
        return self._incoming[0]

    def _take(self) -> str | bytes:
        message, cost = self._incoming.popleft()
        self._transport.consumed(cost)
        return message

    async def receive(self) -> str | bytes:
        """The next message: ``str`` for a text message, ``bytes`` for a binary one.
        Raises WebSocketDisconnect once the client has closed."""
        await self._next()
        return self._take()

    async def receive_text(self) -> str:
        """The next message, which must be text: a binary one raises TypeError and is
        left for ``receive_bytes()``."""
        message, _ = await self._next()
        if not isinstance(message, str):
            raise TypeError(f"receive_text(): the client sent a binary message ({len(message)} bytes); "
                            "use receive_bytes() or receive()")  # fmt: skip
        self._take()
        return message

    async def receive_bytes(self) -> bytes:
        """The next message, which must be binary: a text one raises TypeError and is
        left for ``receive_text()``."""
        message, _ = await self._next()
        if not isinstance(message, bytes):
            raise TypeError(f"receive_bytes(): the client sent a text message ({len(message)} characters); "
                            "use receive_text() or receive()")  # fmt: skip
        self._take()
        return message

    async def receive_json(self) -> Any:
        """The next message (text, or binary holding UTF-8) decoded as JSON; a message
        that is not JSON raises ValueError (it is consumed)."""
        message = await self.receive()
        return json.loads(message)

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[str | bytes]:
        """Messages until the client closes; its close ends the loop quietly (its code
        is then in ``close_code``)."""
        while True:
            try:
                await self._next()
            except WebSocketDisconnect:
                return
            yield self._take()

    # -- sending -----------------------------------------------------------------------

    def _check_send(self) -> None:
        if self._peer_closed:
            raise WebSocketDisconnect(self.close_code or 1005, self.close_reason)
        if self.state_name == WebSocketState.CONNECTING:
            raise RuntimeError("send before accept(): accept the WebSocket first")
        if self.state_name == WebSocketState.CLOSED:
            raise RuntimeError("send after close(): this side has closed the WebSocket")

    async def _send(self, text: bool, data: bytes) -> None:
        self._check_send()
        limit = self._transport.max_message
        if limit and len(data) > limit:
            raise ValueError(f"message of {len(data)} bytes is over this session's limit of {limit} bytes "
                             "(half its window, PROTOCOL.md 2.9)")  # fmt: skip
        await self._transport.send_message(text, data)

    async def send_text(self, data: str) -> None:
        if not isinstance(data, str):
            raise TypeError(f"send_text() takes a str, got {type(data).__name__}")
        await self._send(True, data.encode("utf-8"))

    async def send_bytes(self, data: bytes | bytearray | memoryview) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"send_bytes() takes bytes, got {type(data).__name__}")
        await self._send(False, bytes(data))

    async def send_json(self, data: Any, mode: str = "text") -> None:
        """Send ``data`` as compact JSON in a text message (``mode="binary"``: a binary
        one)."""
        if mode not in ("text", "binary"):
            raise ValueError(f"mode must be 'text' or 'binary', got {mode!r}")
        encoded = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        await self._send(mode == "text", encoded)

    async def send(self, message: str | bytes) -> None:
        """Send a str as a text message, bytes as a binary one."""
        if isinstance(message, str):
            await self.send_text(message)
        else:
            await self.send_bytes(message)

    # -- closing -----------------------------------------------------------------------

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the session with ``code`` and ``reason``. Before accept() it rejects
        the handshake: the client gets HTTP 403 (the code is not sent). A second call
        does nothing."""
        check_close(code, reason)
        if self.state_name == WebSocketState.CLOSED:
            return
        if self.state_name == WebSocketState.CONNECTING:
            self.state_name = WebSocketState.CLOSED
            self._rejection = PlainTextResponse("Forbidden", 403)
            return
        self.state_name = WebSocketState.CLOSED
        await self._transport.close(code, reason)

    def __repr__(self) -> str:
        return f"<WebSocket {self.raw_path} {self.state_name} id={self.request_id}>"


class _State:
    """A plain attribute namespace (``ws.state.user = ...``)."""

    def __repr__(self) -> str:
        return f"State({vars(self)!r})"


async def _empty_body() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover: makes this an async generator


async def run_session(app: Covet, route: Route, ws: WebSocket) -> Response | None:
    """Run ``route``'s handler for ``ws`` to its end. Returns the HTTP response that
    rejects the handshake (the handler closed, returned or raised before accept()), or
    None once the session ended and this side's close was sent. Never raises but
    CancelledError."""
    head = ws.head
    try:
        params = path_params(route.kinds, head.params) if head.params or route.kinds else {}
        ws.path_params = params
        await route.endpoint(ws, **params)
    except WebSocketDisconnect:
        pass  # the client left: nothing more to say
    except Exception as exc:
        if ws.state_name == WebSocketState.CONNECTING:
            return await _reject(app, ws, exc)
        _log(head, exc)
        if ws.state_name == WebSocketState.CONNECTED:
            ws.state_name = WebSocketState.CLOSED
            await ws._transport.close(1011, "internal error")
    if ws._rejection is not None:
        return ws._rejection
    if ws.state_name == WebSocketState.CONNECTING:  # returned without accepting
        ws.state_name = WebSocketState.CLOSED
        return PlainTextResponse("Forbidden", 403)
    if ws.state_name == WebSocketState.CONNECTED:  # returned without closing
        ws.state_name = WebSocketState.CLOSED
        await ws._transport.close(1000, "")
    return None


async def _reject(app: Covet, ws: WebSocket, exc: Exception) -> Response:
    """The HTTP answer to a handshake the handler refused by raising: HTTPException its
    status and detail, anything else a logged 500, both through the app's exception
    handlers (which get a Request for the upgrade request)."""
    ws.state_name = WebSocketState.CLOSED
    request = Request(ws.head, _empty_body())
    request.path_params = ws.path_params
    try:
        return await app._handle_exception(request, exc)
    except Exception as handler_exc:
        _log(ws.head, handler_exc)
        return PlainTextResponse("Internal Server Error", 500)


def _log(head: RequestHead, exc: BaseException) -> None:
    error_log.error(
        "unhandled exception in WebSocket %s (route %s, request_id=%s)",
        head.path, head.route, head.request_id,
        exc_info=exc, extra={"request_id": head.request_id},
    )  # fmt: skip

