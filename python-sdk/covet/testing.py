"""covet.testing: call an app in-process, without a gateway or a worker.

``TestClient`` answers as the gateway in front of a worker does (docs/python-app.md,
"TestClient and the gateway"): it routes each request with a matcher equal to the
gateway's router and answers 404, 405 (with Allow) and the automatic OPTIONS 204 with
the gateway's plain-text bodies; it refuses what the gateway refuses before routing
(413 for a body over ``max_body_bytes``, 400 for a dot segment or a path parameter that
does not decode); it enforces each route's timeout (504, or a response cut off mid-body:
``IncompleteResponse``); and it adds the response fields the gateway adds (Date,
Server, X-Request-ID, Content-Length or Transfer-Encoding) and drops the ones the
gateway drops. Routed requests go through the same ``Covet._handle`` path a worker
uses. Redirects are returned, not followed.

``websocket_connect(path)`` opens a WebSocket session with a ``@app.websocket``
handler in the same way (a context manager with ``send_text`` / ``receive_text`` ...,
raising ``WebSocketDisconnect`` when the app closes, and ``WebSocketRejected``, which
carries the HTTP answer, when it refuses the handshake).

A request may carry a verified TLS client certificate (``client_cert=``, what an mTLS
connection gives ``req.client_cert``) and a verified identity (``auth=covet.Auth(...)``,
what the gateway gives ``req.auth`` / ``ws.auth`` for a valid bearer token), and the
103 Early Hints a handler sends are kept on the response (``response.early_hints``).

TestClient enforces none of a route's security options (PROTOCOL.md 1.3): it verifies
no token, checks no roles or scopes, counts no rate limit and adds no CORS, security
or compression fields. The identity given with ``auth=`` reaches the handler as is,
also on a route without ``auth=True``; without one ``req.auth`` is None, even on a route
with ``auth=True`` (which the gateway would have answered 401). Test those through the
gateway (docs/python-app.md, "Security").
"""

from __future__ import annotations

import asyncio
import collections
import json as jsonlib
import logging
import mimetypes
import os
import re
import secrets
import threading
import weakref
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime, timezone
from email.utils import formatdate, parsedate_to_datetime
from types import TracebackType
from typing import IO, Any, Coroutine, TypeVar
from urllib.parse import quote, unquote_to_bytes, urlencode, urlsplit

from ._app import Covet
from ._binding import run_background
from ._datastructures import Headers, encode_header
from ._head import Auth, ClientCert, RequestHead
from ._multipart import parse_options_header
from ._proto import MAX_EARLY_HINTS, encode_early_hints, encode_response_head
from ._responses import FileResponse, Response
from ._sync import shutdown as sync_shutdown
from ._websocket import WebSocket, WebSocketDisconnect, run_session

__all__ = ["IncompleteResponse", "TestClient", "TestResponse", "WebSocketRejected", "WebSocketTestSession"]

T = TypeVar("T")
error_log = logging.getLogger("covet.error")
FileContent = bytes | str | IO[bytes]
FileSpec = FileContent | tuple[str, FileContent] | tuple[str, FileContent, str]
HeaderArg = Mapping[str, str | bytes] | Iterable[tuple[str, str | bytes]]
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"

#: The gateway's defaults: ``max_body_bytes`` (gateway/http1/limits.go) and the
#: dispatcher's ``timeout``, the deadline of a route that sets none
#: (gateway/dispatch/config.go).
DEFAULT_MAX_BODY_BYTES = 10 << 20
DEFAULT_TIMEOUT = 30.0

# The gateway's reason phrases for the statuses it answers itself (gateway/http1).
_STATUS_TEXT = {
    204: "No Content",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    426: "Upgrade Required",
    500: "Internal Server Error",
    502: "Bad Gateway",
    504: "Gateway Timeout",
}
_DROPPED = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_DOT_SEGMENT = re.compile(r"(?:\.|%2[eE]){1,2}")
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")


class TestResponse:
    """What the client got: ``status_code``, ``headers`` (case-insensitive), ``content``,
    and ``early_hints``: the fields of each 103 Early Hints response that came before
    it, in order (``response.early_hints[0].getlist("link")``)."""

    __test__ = False

    def __init__(
        self,
        status_code: int,
        headers: Headers,
        content: bytes,
        request_id: str,
        early_hints: list[Headers] | None = None,
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.request_id = request_id
        self.early_hints: list[Headers] = early_hints if early_hints is not None else []

    @property
    def text(self) -> str:
        charset = parse_options_header(self.headers.get("content-type", ""))[1].get("charset")
        return self.content.decode(charset or "utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    @property
    def cookies(self) -> dict[str, str]:
        """Cookies this response set (a deleted cookie reads as ``""``)."""
        return {name: value for name, value, _ in map(_parse_set_cookie, self.headers.getlist("set-cookie"))}

    def __repr__(self) -> str:
        return f"<TestResponse {self.status_code} {len(self.content)} bytes>"


class IncompleteResponse(Exception):
    """The response broke off after its head: the route's timeout passed while the body
    was being produced, or the body's iterator raised (the exception is the cause).

    Through the gateway the client sees the same: the head, part of the body, then the
    connection closes (``http.client.IncompleteRead``). ``response`` holds the head and
    the part of the body that was produced.
    """

    def __init__(self, response: TestResponse, why: str) -> None:
        super().__init__(f"response to request {response.request_id} broke off mid-body: {why}")
        self.response = response


class _HintsRecorder:
    """The InterimSink of one TestClient request: keeps each 103's fields as the gateway
    writes them (the worker's checks, then the gateway's dropped fields), and refuses
    what the worker refuses: a hint once the response has begun, or one too many."""

    def __init__(self) -> None:
        self.hints: list[Headers] = []
        self.began = False

    async def early_hints(self, fields: list[tuple[str, bytes]]) -> None:
        if self.began:
            raise RuntimeError("send_early_hints: the response has already begun")
        if len(self.hints) >= MAX_EARLY_HINTS:
            raise RuntimeError(f"send_early_hints: at most {MAX_EARLY_HINTS} per request")
        encode_early_hints(fields)  # the worker's checks: ValueError
        self.hints.append(Headers([(n, v) for n, v in fields if n not in _DROPPED]))


class _Lifespan:
    """The client's event loop and whether the app's startup hooks ran in it. Kept
    apart from the client so that a finalizer can shut the app down when the client is
    garbage-collected."""

    def __init__(self, app: Covet) -> None:
        self.app = app
        self.runner: asyncio.Runner | None = None

    def start(self) -> asyncio.Runner:
        if self.runner is None:
            self.app.freeze()
            runner = asyncio.Runner()
            try:
                runner.run(self.app.startup())
            except BaseException:
                runner.close()
                raise
            self.runner = runner
        return self.runner

    def close(self) -> None:
        runner, self.runner = self.runner, None
        if runner is None:
            return

        def stop() -> None:
            try:
                runner.run(self.app.shutdown())
            finally:
                sync_shutdown(runner.get_loop())  # the loop's handler thread (covet/_sync.py)
                runner.close()

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            stop()
            return
        # Closed (or collected) inside another event loop: asyncio.Runner refuses to
        # run there, so the shutdown hooks run on a thread of their own.
        thread = threading.Thread(target=stop, name="covet-testclient-shutdown")
        thread.start()
        thread.join()


class TestClient:
    """A synchronous client for ``app`` that answers as the gateway does.

    The first request (or entering ``with``) freezes the app, starts one event loop and
    runs the startup hooks in it, as a worker does before it serves; a startup hook's
    exception propagates from that call. Every request then runs in that loop. The
    shutdown hooks run at ``close()``, at the end of the ``with`` block, or when the
    client is garbage-collected or the interpreter exits, whichever comes first.
    Cookies set by responses are kept in ``client.cookies`` and sent with later
    requests.

    ``timeout`` is the gateway's default handler deadline in seconds (its ``timeout``
    setting), for routes that set none; ``max_body_bytes`` its request body limit (its
    ``max_body_bytes`` setting).
    """

    __test__ = False

    def __init__(
        self,
        app: Covet,
        base_url: str = "http://testserver",
        client: tuple[str, int] = ("127.0.0.1", 50000),
        chunk_size: int = 64 * 1024,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.app = app
        self.base_url = base_url
        self.client = client
        self.chunk_size = chunk_size
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        self.cookies: dict[str, str] = {}
        self._lifespan = _Lifespan(app)
        self._finalizer = weakref.finalize(self, self._lifespan.close)

    # -- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> TestClient:
        self._lifespan.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Run the app's shutdown hooks (if its startup ran) and close the event loop. A
        later request starts the app again."""
        self._lifespan.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            runner = self._lifespan.start()
        except BaseException:
            coro.close()
            raise
        return runner.run(coro)

    # -- requests -----------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
        headers: HeaderArg | None = None,
        cookies: Mapping[str, str] | None = None,
        content: bytes | str | None = None,
        data: Mapping[str, Any] | None = None,
        json: Any = None,
        files: Mapping[str, FileSpec] | None = None,
        client_cert: ClientCert | None = None,
        auth: Auth | None = None,
    ) -> TestResponse:
        """Send one request. ``client_cert`` is the verified TLS client certificate the
        gateway would pass on for an mTLS connection (``req.client_cert``); None for
        none. ``auth`` is the identity the gateway would pass on for a verified bearer
        token (``req.auth``), as given: TestClient verifies and enforces nothing."""
        method = method.upper()
        base = urlsplit(self.base_url)
        parts = urlsplit(url)
        scheme = parts.scheme or base.scheme or "http"
        host = parts.netloc or base.netloc or "testserver"
        raw_path = quote(parts.path or "/", safe=_PATH_SAFE)
        query = parts.query
        if params:
            extra = urlencode(list(params.items()) if isinstance(params, Mapping) else list(params), doseq=True)
            query = f"{query}&{extra}" if query else extra

        raw_headers: list[tuple[str, bytes]] = [("host", host.encode("latin-1"))]
        body, content_type = _encode_body(content, data, json, files)
        user_headers = _encode_headers(headers)
        user_names = {name for name, _ in user_headers}
        if content_type and "content-type" not in user_names:
            raw_headers.append(("content-type", content_type.encode("latin-1")))
        if body and "content-length" not in user_names:
            raw_headers.append(("content-length", str(len(body)).encode()))
        jar = {**self.cookies, **(cookies or {})}
        if jar:
            raw_headers.append(("cookie", "; ".join(f"{k}={v}" for k, v in jar.items()).encode("latin-1")))
        raw_headers.extend(user_headers)
        request_headers = Headers(raw_headers)
        # The gateway keeps a client's X-Request-ID of 1-128 visible ASCII characters,
        # else makes a 16-hex-digit one.
        given_id = request_headers.get("x-request-id")
        request_id = given_id if given_id and _REQUEST_ID.fullmatch(given_id) else secrets.token_hex(8)
        close = "close" in [t.strip().lower() for v in request_headers.getlist("connection") for t in v.split(",")]

        if len(body) > self.max_body_bytes:  # refused from the head, before routing
            return self._gateway_error(413, "body_too_large", request_id)
        if _has_dot_segment(raw_path):
            return self._gateway_answer(method, 400, request_id, close)
        match = self.app.router.match(method, raw_path)
        if match.route is None:
            allow = ", ".join(match.allow)
            return self._gateway_answer(method, match.status, request_id, close, allow)
        if _BAD_ESCAPE.search(raw_path) or not _decodes(raw_path):
            # The gateway refuses a path parameter with a bad %-escape or that is not
            # UTF-8 once decoded; route patterns hold neither, so checking the whole
            # path of a matched route checks its parameters.
            return self._gateway_answer(method, 400, request_id, close)

        route = match.route
        if route.kind == "ws":  # a WebSocket endpoint: only an upgrade is served there,
            http_side = self.app.router.http_side(route)  # unless it has an HTTP GET too
            if http_side is None:
                return self._gateway_answer(method, 426, request_id, close)
            route = http_side
        timeout_ms = route.timeout_ms if route.timeout_ms is not None else max(1, round(self.timeout * 1000))
        wire: list[Any] = [
            method, raw_path, query, [x for pair in raw_headers for x in pair],
            route.pattern.canonical, [x for pair in match.params for x in pair],
            "1.1", scheme, f"{self.client[0]}:{self.client[1]}", request_id, len(body), timeout_ms,
        ]  # fmt: skip
        _append_identity(wire, client_cert, auth)
        head = RequestHead.from_wire(wire)
        return self._run(self._exchange(head, body, timeout_ms / 1000, close))

    async def _exchange(self, head: RequestHead, body: bytes, timeout: float, close: bool) -> TestResponse:
        """One routed request, bounded by its deadline as in the gateway: past it before
        the handler returned, 504; past it mid-body, the response breaks off."""
        deadline = asyncio.get_running_loop().time() + timeout
        limit = asyncio.timeout_at(deadline)
        hints = _HintsRecorder()
        try:
            async with limit:
                response = await self.app._handle(head, self._chunks(body), hints)
        except TimeoutError:  # _handle turns a handler's own exceptions into responses
            pass
        hints.began = True
        if limit.expired():  # also when the handler swallowed its cancellation
            return self._gateway_answer(head.method, 504, head.request_id, close, hints=hints.hints)
        sent = await self._send(head, response, deadline, close, hints)
        if response.background is not None:  # after the response, as a worker runs it
            await run_background(response.background, head.request_id)
        return sent

    async def _send(self, head: RequestHead, response: Response, deadline: float, close: bool,
                    hints: _HintsRecorder) -> TestResponse:  # fmt: skip
        """What the client receives for ``response``, as the gateway would send it."""
        if isinstance(response, FileResponse):  # the gateway would send the file
            served = _read_file(response)
            if served is None:
                return self._gateway_answer(head.method, 404, head.request_id, close, hints=hints.hints)
            response = served
        answer = _response_fields(head, response, close, _http_date())
        if isinstance(answer, int):  # the worker or the gateway refused the head
            return self._gateway_answer(head.method, answer, head.request_id, close, hints=hints.hints)
        fields, framing = answer
        self._keep_cookies(fields)
        received: list[bytes] = []
        if framing:
            chunks = response.body_chunks()
            limit = asyncio.timeout_at(deadline)
            try:
                async with limit:
                    async for chunk in chunks:
                        received.append(chunk)
            except Exception as exc:
                partial = TestResponse(response.status, Headers(fields), b"".join(received), head.request_id, hints.hints)
                if limit.expired():
                    raise IncompleteResponse(partial, "the route's timeout passed") from None
                raise IncompleteResponse(partial, f"the body's iterator raised {type(exc).__name__}") from exc
            finally:
                aclose = getattr(chunks, "aclose", None)
                if aclose is not None:
                    await aclose()
        return TestResponse(response.status, Headers(fields), b"".join(received), head.request_id, hints.hints)

    async def _chunks(self, body: bytes) -> AsyncIterator[bytes]:
        view = memoryview(body)
        for start in range(0, len(body), self.chunk_size):
            yield bytes(view[start : start + self.chunk_size])
            await asyncio.sleep(0)

    def _gateway_answer(
        self,
        method: str,
        status: int,
        request_id: str,
        close: bool,
        allow: str = "",
        *,
        hints: list[Headers] | None = None,
    ) -> TestResponse:
        """A response the gateway makes itself (gateway/server respond.go ``answer``):
        the status's reason phrase and a newline as text/plain, none for 204 and HEAD."""
        fields: list[tuple[str, bytes]] = [("date", _http_date()), ("server", b"covetpy")]
        text = b""
        if status != 204:
            text = _STATUS_TEXT[status].encode() + b"\n"
            fields.append(("content-type", b"text/plain; charset=utf-8"))
        if allow:
            fields.append(("allow", allow.encode()))
        fields.append(("x-request-id", request_id.encode()))
        if status != 204:
            fields.append(("content-length", str(len(text)).encode()))
        if close:
            fields.append(("connection", b"close"))
        return TestResponse(status, Headers(fields), b"" if method == "HEAD" else text, request_id, hints)

    def _gateway_error(self, status: int, reason: str, request_id: str) -> TestResponse:
        """A request the gateway refuses while reading it (gateway/http1 ``AppendError``):
        no request id, and the connection closes."""
        text = f"{_STATUS_TEXT[status]}: {reason}\n".encode()
        fields = [("date", _http_date()), ("content-type", b"text/plain; charset=utf-8"),
                  ("content-length", str(len(text)).encode()), ("connection", b"close")]  # fmt: skip
        return TestResponse(status, Headers(fields), text, request_id)

    def _keep_cookies(self, fields: list[tuple[str, bytes]]) -> None:
        for name, value in fields:
            if name != "set-cookie":
                continue
            cookie, cookie_value, expired = _parse_set_cookie(value.decode("latin-1"))
            if expired:
                self.cookies.pop(cookie, None)
            else:
                self.cookies[cookie] = cookie_value

    def get(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("DELETE", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("OPTIONS", url, **kwargs)

    # -- WebSocket ----------------------------------------------------------------------

    def websocket_connect(
        self,
        url: str,
        subprotocols: Iterable[str] | None = None,
        headers: HeaderArg | None = None,
        *,
        cookies: Mapping[str, str] | None = None,
        auth: Auth | None = None,
    ) -> WebSocketTestSession:
        """Open a WebSocket session with the app's ``@app.websocket`` route for ``url``
        (``ws://`` and ``wss://`` URLs are taken too), offering ``subprotocols``. The
        handler runs until it accepts: the session is returned (use it as a context
        manager, which closes it with 1000 at the end of the block); if it refuses
        instead, WebSocketRejected carries the HTTP response the client would get. A
        path with no WebSocket route is answered as the gateway answers a GET to it
        (404, 405, or the HTTP route's own response), and refused the same way.
        ``auth`` is the verified identity the handler sees as ``ws.auth``, as for
        :meth:`request`."""
        parts = urlsplit(url)
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
        http_url = parts._replace(scheme=scheme).geturl() if parts.scheme else url
        offered = list(subprotocols or [])
        upgrade: list[tuple[str, str | bytes]] = [
            ("upgrade", "websocket"), ("connection", "Upgrade"), ("sec-websocket-version", "13"),
            ("sec-websocket-key", secrets.token_urlsafe(16)),
        ]  # fmt: skip
        if offered:
            upgrade.append(("sec-websocket-protocol", ", ".join(offered)))
        upgrade.extend(_encode_headers(headers))
        raw_path = quote(urlsplit(http_url).path or "/", safe=_PATH_SAFE)
        match = self.app.router.match("GET", raw_path)
        if match.route is None or match.route.kind != "ws":
            raise WebSocketRejected(self.request("GET", http_url, headers=upgrade, cookies=cookies, auth=auth))
        base = urlsplit(self.base_url)
        split = urlsplit(http_url)
        host = split.netloc or base.netloc or "testserver"
        raw_headers: list[tuple[str, bytes]] = [("host", host.encode("latin-1"))]
        jar = {**self.cookies, **(cookies or {})}
        if jar:
            raw_headers.append(("cookie", "; ".join(f"{k}={v}" for k, v in jar.items()).encode("latin-1")))
        raw_headers.extend(encode_header(n, v) for n, v in upgrade)
        given_id = Headers(raw_headers).get("x-request-id")
        request_id = given_id if given_id and _REQUEST_ID.fullmatch(given_id) else secrets.token_hex(8)
        route = match.route
        wire: list[Any] = [
            "GET", raw_path, split.query, [x for pair in raw_headers for x in pair],
            route.pattern.canonical, [x for pair in match.params for x in pair],
            "1.1", split.scheme or base.scheme or "http", f"{self.client[0]}:{self.client[1]}", request_id, 0, 0,
        ]  # fmt: skip
        _append_identity(wire, None, auth)
        head = RequestHead.from_wire(wire)
        peer = _TestPeer()
        ws = WebSocket(head, peer)
        session = WebSocketTestSession(self, ws, peer)

        async def start() -> asyncio.Task[Response | None]:
            task = asyncio.get_running_loop().create_task(run_session(self.app, route, ws))
            await peer.wait(lambda: peer.accepted is not None, task, self.timeout)
            return task

        task = self._run(start())
        session._task = task
        if peer.accepted is None:
            response = task.result() if task.done() else None
            if response is None:
                raise RuntimeError("websocket_connect: the handler neither accepted nor refused the session "
                                   f"within {self.timeout} s")  # fmt: skip
            raise WebSocketRejected(self._run(self._answer(head, response)))
        self._keep_cookies(peer.accepted[1])
        return session

    async def _answer(self, head: RequestHead, response: Response) -> TestResponse:
        """The HTTP answer the gateway writes for ``response`` (a refused handshake)."""
        answer = _response_fields(head, response, False, _http_date())
        if isinstance(answer, int):
            return self._gateway_answer(head.method, answer, head.request_id, False)
        fields, framing = answer
        body = b"".join([chunk async for chunk in response.body_chunks()]) if framing else b""
        return TestResponse(response.status, Headers(fields), body, head.request_id)


def _response_fields(
    head: RequestHead, response: Response, close: bool, date: bytes
) -> tuple[list[tuple[str, bytes]], bool] | int:
    """The header fields the gateway writes for a worker's response (gateway/server
    respond.go ``WriteHead``), and whether a body follows; or the status the gateway
    answers instead: 500 for a head the worker cannot send (workerproto/PROTOCOL.md
    3.2: it sends ERROR 500; it refuses every value the gateway's writer would). The worker's
    Content-Length, Transfer-Encoding, Connection and Keep-Alive are dropped (a HEAD
    response keeps a Content-Length the worker declared); Server and X-Request-ID are
    added when the worker set none; 204, 304 and HEAD carry no body."""
    raw = response.raw_headers
    try:
        encode_response_head(response.status, raw, response.body_length)
    except ValueError as exc:
        error_log.error("request_id=%s: response head refused: %s", head.request_id, exc)
        return 500
    is_head = head.method == "HEAD"
    fields: list[tuple[str, bytes]] = [("date", date)]
    have_server = have_id = False
    head_length = -1
    for name, value in raw:
        name = name.lower()
        if name in _DROPPED:
            if is_head and name == "content-length":
                head_length = int(value) if value.isdigit() and len(value) <= 18 else -1
            continue
        have_server = have_server or name == "server"
        have_id = have_id or name == "x-request-id"
        fields.append((name, value))
    if not have_server:
        fields.append(("server", b"covetpy"))
    if not have_id:
        fields.append(("x-request-id", head.request_id.encode()))
    length = response.body_length
    if is_head:
        length = head_length if head_length >= 0 else (length if length > 0 else -1)
    status = response.status
    no_body = is_head or status in (204, 304)
    if status not in (204, 304) and length >= 0:
        fields.append(("content-length", str(length).encode()))
    if not no_body and length < 0:
        fields.append(("transfer-encoding", b"chunked"))
    if close:
        fields.append(("connection", b"close"))
    return fields, not no_body


def _read_file(response: FileResponse) -> Response | None:
    """The file a FileResponse (or an app.static route) names, read here as the gateway
    would send it whole: its bytes, the handler's fields, and a Content-Type from the
    file name unless the handler set one. None (404) when it is not a regular file.
    Conditional requests, ranges and precompressed siblings are the gateway's alone."""
    if not os.path.isfile(response.path):
        return None
    with open(response.path, "rb") as f:
        data = f.read()
    served = Response(data, response.status, response.raw_headers)
    if "content-type" not in served.headers:
        guessed, _ = mimetypes.guess_type(response.path)
        media = guessed or "application/octet-stream"
        if media.startswith("text/") or media in ("application/javascript", "text/javascript"):
            media += "; charset=utf-8"
        served.headers.append("content-type", media)
    return served


def _append_identity(wire: list[Any], client_cert: ClientCert | None, auth: Auth | None) -> None:
    """REQ_HEAD's optional elements: the client certificate (13th), the identity (14th,
    after a nil 13th when there is no certificate)."""
    if client_cert is not None and not isinstance(client_cert, ClientCert):
        raise TypeError(f"client_cert must be a covet.ClientCert, got {type(client_cert).__name__}")
    if auth is not None and not isinstance(auth, Auth):
        raise TypeError(f"auth must be a covet.Auth, got {type(auth).__name__}")
    if client_cert is not None or auth is not None:
        wire.append(None if client_cert is None else [client_cert.subject, list(client_cert.sans), client_cert.fingerprint])
    if auth is not None:
        wire.append(auth.to_wire())


def _has_dot_segment(raw_path: str) -> bool:
    """The gateway refuses a path holding a "." or ".." segment (also as %2e)."""
    return any(_DOT_SEGMENT.fullmatch(segment) for segment in raw_path.split("/")[1:])


def _decodes(raw_path: str) -> bool:
    try:
        unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _http_date() -> bytes:
    return formatdate(usegmt=True).encode()


def _encode_headers(headers: HeaderArg | None) -> list[tuple[str, bytes]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [encode_header(name, value) for name, value in items]


def _encode_body(
    content: bytes | str | None, data: Mapping[str, Any] | None, json: Any, files: Mapping[str, FileSpec] | None
) -> tuple[bytes, str | None]:
    given = [x is not None for x in (content, json)] + [bool(data) and not files, bool(files)]
    if sum(given) > 1:
        raise ValueError("pass only one of content=, json=, data= (optionally with files=)")
    if content is not None:
        return (content.encode("utf-8") if isinstance(content, str) else content), None
    if json is not None:
        return jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":")).encode(), "application/json"
    if files:
        return _encode_multipart(data or {}, files)
    if data:
        return urlencode(list(data.items()), doseq=True).encode("ascii"), "application/x-www-form-urlencoded"
    return b"", None


def _quote_param(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _encode_multipart(data: Mapping[str, Any], files: Mapping[str, FileSpec]) -> tuple[bytes, str]:
    boundary = "covet-" + secrets.token_hex(16)
    out: list[bytes] = []
    for name, value in data.items():
        for item in value if isinstance(value, list) else [value]:
            out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote_param(name)}"\r\n\r\n'.encode())
            out.append(str(item).encode("utf-8") + b"\r\n")
    for name, spec in files.items():
        filename, ctype = "upload", "application/octet-stream"
        body: FileContent
        if isinstance(spec, tuple):
            filename, body = spec[0], spec[1]
            if len(spec) == 3:
                ctype = spec[2]
        else:
            body = spec
        raw = body.encode("utf-8") if isinstance(body, str) else body if isinstance(body, bytes) else body.read()
        out.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote_param(name)}"; '
            f'filename="{_quote_param(filename)}"\r\nContent-Type: {ctype}\r\n\r\n'.encode()
        )
        out.append(raw + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def _parse_set_cookie(value: str) -> tuple[str, str, bool]:
    """(name, value, expired) of one Set-Cookie field."""
    first, *attrs = value.split(";")
    name, _, cookie_value = first.partition("=")
    expired = False
    for attr in attrs:
        key, _, arg = attr.strip().partition("=")
        key = key.lower()
        if key == "max-age" and arg.lstrip("-").isdigit() and int(arg) <= 0:
            expired = True
        elif key == "expires":
            try:
                expired = expired or parsedate_to_datetime(arg) <= datetime.now(timezone.utc)
            except (TypeError, ValueError):
                pass
    return name.strip(), cookie_value.strip(), expired


class WebSocketRejected(Exception):
    """The app refused a WebSocket handshake (``websocket_connect``): ``response`` is
    the HTTP answer the client got instead of ``101 Switching Protocols``, and
    ``status_code`` its status (403 when the handler closed or returned before
    accepting, an HTTPException's status when it raised one)."""

    def __init__(self, response: TestResponse) -> None:
        super().__init__(f"WebSocket handshake refused: HTTP {response.status_code}")
        self.response = response
        self.status_code = response.status_code


_ToClient = tuple[str, Any]  # ("text", str) / ("bytes", bytes) / ("close", (code, reason))


class _TestPeer:
    """The TestClient's side of a session: a WebSocketTransport that keeps what the
    app sends for the test to read. Sends are not limited by credit (max_message 0)."""

    max_message = 0

    def __init__(self) -> None:
        self.accepted: tuple[str, list[tuple[str, bytes]]] | None = None
        self.to_client: collections.deque[_ToClient] = collections.deque()
        self.closed = False
        self._changed: asyncio.Event | None = None

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def accept(self, subprotocol: str, headers: list[tuple[str, bytes]]) -> None:
        encode_response_head(200, headers, 0)  # the worker's checks of the fields: ValueError
        self.accepted = (subprotocol, headers)
        self._notify()

    async def send_message(self, text: bool, data: bytes) -> None:
        self.to_client.append(("text", data.decode("utf-8")) if text else ("bytes", data))
        self._notify()

    async def close(self, code: int, reason: str) -> None:
        self.closed = True
        self.to_client.append(("close", (code, reason)))
        self._notify()

    def consumed(self, cost: int) -> None:
        pass

    async def wait(self, ready: Any, task: asyncio.Task[Any], timeout: float) -> None:
        """Run the loop until ``ready()`` or the session's task ends (at most
        ``timeout`` seconds: a safety bound, not a pace)."""
        if self._changed is None:
            self._changed = asyncio.Event()
        changed = self._changed
        async with asyncio.timeout(timeout):
            while not ready() and not task.done():
                changed.clear()
                waiter = asyncio.ensure_future(changed.wait())
                try:
                    await asyncio.wait((waiter, task), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()


class WebSocketTestSession:
    """An open WebSocket session between the test and the app (from
    ``TestClient.websocket_connect``). ``receive_*`` wait (at most the client's
    ``timeout``) for the app's next message and raise WebSocketDisconnect once the app
    has closed; ``close()`` is the client's close, which the handler sees as
    WebSocketDisconnect."""

    __test__ = False

    def __init__(self, client: TestClient, ws: WebSocket, peer: _TestPeer) -> None:
        self._client = client
        self._ws = ws
        self._peer = peer
        self._task: asyncio.Task[Response | None] | None = None
        self._client_closed = False

    @property
    def accepted_subprotocol(self) -> str | None:
        """The subprotocol the app chose, or None."""
        return (self._peer.accepted[0] or None) if self._peer.accepted else None

    @property
    def extra_headers(self) -> Headers:
        """The fields the app added to the 101 response (accept's ``headers``)."""
        return Headers(self._peer.accepted[1] if self._peer.accepted else [])

    def __enter__(self) -> WebSocketTestSession:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- sending

    def _deliver(self, message: str | bytes) -> None:
        if self._client_closed:
            raise RuntimeError("send after close(): this side has closed the WebSocket")

        async def deliver() -> None:
            size = len(message.encode("utf-8")) if isinstance(message, str) else len(message)
            self._ws._deliver(message, size + 64)
            await asyncio.sleep(0)  # let the handler take it

        self._client._run(deliver())

    def send_text(self, data: str) -> None:
        self._deliver(str(data))

    def send_bytes(self, data: bytes) -> None:
        self._deliver(bytes(data))

    def send_json(self, data: Any, mode: str = "text") -> None:
        text = jsonlib.dumps(data, separators=(",", ":"), ensure_ascii=False)
        self._deliver(text if mode == "text" else text.encode())

    # -- receiving

    def receive(self) -> str | bytes:
        """The app's next message (str or bytes)."""
        peer = self._peer
        task = self._task
        assert task is not None

        async def next_message() -> _ToClient:
            await peer.wait(lambda: bool(peer.to_client), task, self._client.timeout)
            if not peer.to_client:
                raise RuntimeError("the WebSocket handler ended without closing")  # run_session always closes
            return peer.to_client[0]

        kind, value = self._client._run(next_message())
        if kind == "close":
            raise WebSocketDisconnect(*value)
        peer.to_client.popleft()
        return value  # type: ignore[no-any-return]

    def receive_text(self) -> str:
        message = self.receive()
        if not isinstance(message, str):
            raise TypeError(f"receive_text(): the app sent a binary message ({len(message)} bytes)")
        return message

    def receive_bytes(self) -> bytes:
        message = self.receive()
        if not isinstance(message, bytes):
            raise TypeError(f"receive_bytes(): the app sent a text message ({len(message)} characters)")
        return message

    def receive_json(self) -> Any:
        return jsonlib.loads(self.receive())

    # -- closing

    def close(self, code: int = 1000, reason: str = "") -> None:
        """The client's close (a second call does nothing). The handler's next receive
        raises WebSocketDisconnect(code, reason); like the gateway, the client then
        waits at most 5 seconds for the handler to end, and cancels it after."""
        if self._client_closed:
            return
        self._client_closed = True
        task = self._task
        assert task is not None

        async def finish() -> None:
            self._ws._deliver_close(code, reason)
            if not task.done():
                try:
                    await self._peer.wait(lambda: False, task, WS_CLOSE_GRACE)
                except TimeoutError:
                    task.cancel()
                    await asyncio.wait((task,))

        self._client._run(finish())


#: How long the gateway waits for a handler to answer its WS_CLOSE before it cancels
#: the session (workerproto/PROTOCOL.md 2.9).
WS_CLOSE_GRACE = 5.0
