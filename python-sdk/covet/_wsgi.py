"""Serving a WSGI application (PEP 3333) on threads: the adapter from a routed request
to ``environ`` and ``start_response``.

The app is wrapped in a Covet app with one catch-all route per method; its handler
(:meth:`_Host.endpoint`) hands the request to the app's thread and awaits the response
the thread makes (covet/_wsgi_io.py carries the bytes both ways).

**Threads.** Requests go to a handler thread of the app's own (``covet-wsgi``, a lane
of covet/_sync.py): the requests that arrive in one turn of the event loop go to it
together, and their answers come back together, so a busy worker pays about one thread
wakeup and one loop wakeup per batch instead of per request. A request that waits for
the thread longer than the spill threshold (``COVET_SYNC_SPILL_MS``, 5 ms), because the
request before it blocks, sleeps or streams, goes to the pool of ``--wsgi-threads``
threads (``covet-wsgi_N``) instead, as does every request while the thread is held
that long by one; so a slow request delays the others by about the threshold, and at
most ``--wsgi-threads`` requests (plus the thread's one) run the app at once.
``COVET_SYNC_SPILL_MS=0`` sends every request straight to the pool.

**A request's run:**

- the thread builds ``environ``, calls the app and consumes what it returns. A body
  known whole when the app returns (a list or tuple of bytes) becomes a plain Response,
  which reaches the loop with the thread's other answers of the batch. A
  ``wsgi.file_wrapper`` of a regular file becomes a FileResponse, which the gateway
  sends itself. Anything else is streamed:
  the response goes to the loop at the first body bytes, the rest follows chunk by
  chunk through a pipe a few chunks deep, so an app producing faster than the client
  reads waits in its thread;
- ``wsgi.input`` reads pull the body's chunks from the loop as the app asks;
- the iterable's ``close()`` is always called, in the app's thread, once its iteration
  ends: normally, on an error, or at the next chunk after the client left.

The event loop never runs app code and never waits on a thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, Final
from urllib.parse import unquote_to_bytes

from ._app import Covet
from ._datastructures import encode_header
from ._payloads import encode_response_head
from ._request import Request
from ._responses import FileResponse, PlainTextResponse, Response
from ._routing import HTTP_METHODS
from ._sync import Lane, close_lane, open_lane
from ._wsgi_io import ErrorStream, FileWrapper, InputStream, Pipe, PipeClosed

__all__ = ["wsgi_app", "pool_size", "FileWrapper", "DEFAULT_THREADS", "ENV_THREADS", "MAX_THREADS"]

#: The environment variable giving the pool's size (covet run's --wsgi-threads).
ENV_THREADS = "COVET_WSGI_THREADS"

#: The WSGI thread pool's size (the threads beside the app's handler thread) when
#: neither ``--wsgi-threads`` nor ``COVET_WSGI_THREADS`` says.
DEFAULT_THREADS = 16

#: The largest pool a worker may have.
MAX_THREADS: Final = 1024

#: Response chunks a streaming app may produce ahead of what the worker has taken.
PIPE_SLOTS: Final = 4

#: The largest request body of known length read whole before the app runs.
PRELOAD_MAX: Final = 64 << 10

#: Seconds the worker's shutdown waits for requests still running in the pool.
SHUTDOWN_GRACE: Final = 5.0

error_log = logging.getLogger("covet.error")

#: What every environ holds; each request's starts as a copy.
_BASE_ENVIRON: Final[Mapping[str, Any]] = {
    "SCRIPT_NAME": "",
    "wsgi.version": (1, 0),
    "wsgi.multithread": True,
    "wsgi.multiprocess": True,
    "wsgi.run_once": False,
    "wsgi.input_terminated": True,
    "wsgi.file_wrapper": FileWrapper,
}
_PROTOCOLS: Final = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0", "2": "HTTP/2", "3": "HTTP/3"}
#: Response fields the gateway makes itself (it frames the body): an app's are dropped
#: (a Content-Length answering HEAD excepted).
#: The largest body of declared Content-Length taken whole from an iterator (larger
#: ones are streamed as the app makes them).
WHOLE_MAX: Final = 1 << 20
_FRAMING: Final = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
#: Statuses that carry no body: the app's body is consumed and dropped, as for HEAD.
_NO_BODY_STATUS: Final = frozenset({204, 304})

#: Request field name -> environ key ("" for a field environ does not carry); filled as
#: names are seen, up to _KEYS_MAX.
_KEYS: dict[str, str] = {"content-type": "CONTENT_TYPE", "content-length": ""}
_KEYS_MAX: Final = 512


def _environ_key(name: str) -> str:
    """``HTTP_`` and the upper-case name with ``-`` as ``_``; "" for a name holding
    ``_``, which would read as the same key as its ``-`` spelling (a client could pass
    ``X_Forwarded_For`` for a proxy's ``X-Forwarded-For``), so such fields are dropped."""
    key = _KEYS.get(name)
    if key is None:
        key = "" if "_" in name else "HTTP_" + name.upper().replace("-", "_")
        if len(_KEYS) < _KEYS_MAX:
            _KEYS[name] = key
    return key


def pool_size(threads: int | None, environ: Mapping[str, str] = os.environ) -> int:
    """The pool's size: ``threads`` when given, else ``$COVET_WSGI_THREADS``, else
    DEFAULT_THREADS; ValueError naming the setting when it is not a whole number from
    1 to MAX_THREADS."""
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
            raise ValueError(f"WSGI threads (--wsgi-threads) must be a whole number from 1 to {MAX_THREADS}, "
                             f"got {threads!r}")  # fmt: skip
        return threads
    raw = environ.get(ENV_THREADS, "").strip()
    if not raw:
        return DEFAULT_THREADS
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_THREADS:
        raise ValueError(f"{ENV_THREADS}={raw!r}: want a whole number of threads from 1 to {MAX_THREADS}")
    return int(raw)


def wsgi_app(app: Any, name: str, *, threads: int | None = None) -> Covet:
    """A Covet app named ``name`` serving the WSGI application ``app`` on a handler
    thread and a pool of ``threads`` threads (None: $COVET_WSGI_THREADS, else
    DEFAULT_THREADS).

    The threads are made when the worker starts and stopped when it stops; every
    request runs the app on one of them (this module's docstring says how).
    Raises TypeError when ``app`` is not callable, ValueError for a bad pool size."""
    if not callable(app):
        raise TypeError(f"a WSGI application is a callable of (environ, start_response), got {type(app).__name__}")
    host = _Host(app, pool_size(threads))
    covet = Covet(name, openapi_url=None, docs_url=None)
    covet.on_startup(host.start)
    covet.on_shutdown(host.stop)
    covet.route("/{path...}", HTTP_METHODS, name="wsgi")(host.endpoint)
    return covet


class _Host:
    """One worker's WSGI app, its handler thread (a lane) and its pool. They exist
    between the app's startup and shutdown; ``running`` holds the futures of the
    requests not yet done (for shutdown to wait on)."""

    def __init__(self, app: Callable[..., Any], threads: int) -> None:
        self.app = app
        self.threads = threads
        #: The handler thread, its pool (lane.pool) beside it.
        self.lane: Lane | None = None
        self.running: set[asyncio.Future[None]] = set()

    async def start(self) -> None:
        """Startup: make the lane and its pool (their threads start as requests come)."""
        if self.lane is None:
            pool = concurrent.futures.ThreadPoolExecutor(self.threads, thread_name_prefix="covet-wsgi")
            self.lane = open_lane("covet-wsgi", pool)

    async def stop(self) -> None:
        """Shutdown: no more requests; wait up to SHUTDOWN_GRACE for those still running
        (a thread still in the app after that holds up the process's exit until the
        app returns)."""
        lane, self.lane = self.lane, None
        if lane is None:
            return
        close_lane(lane)
        assert lane.pool is not None  # start made one
        lane.pool.shutdown(wait=False, cancel_futures=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_GRACE
        while self.running and loop.time() < deadline:
            await asyncio.sleep(0.01)
        if self.running:
            error_log.warning("%d WSGI requests still running after %.0f s of shutdown", len(self.running), SHUTDOWN_GRACE)

    async def endpoint(self, req: Request, path: str) -> Response:
        """The catch-all route's handler: run the app for ``req`` on its threads and
        return its response (``path`` is the route's, unused: PATH_INFO is the whole path)."""
        lane = self.lane
        if lane is None:
            raise RuntimeError("the WSGI threads are not running: the app's startup has not run, or it has stopped")
        # A small body of known length is read here, on the loop, before the app runs:
        # the gateway sends one whole with the request, so this costs no wait, where
        # reading it from the thread would cost a hop to the loop per read (and one
        # more to learn that the body has ended).
        body = await req.body() if 0 < req.head.body_length <= PRELOAD_MAX else None
        call = _Call(self.app, lane.loop, req, body)
        fut = lane.submit(call.run)
        self.running.add(fut)
        fut.add_done_callback(call.done)
        fut.add_done_callback(self.running.discard)
        try:
            response: Response = await call.pipe.get()
        except BaseException:
            call.abandon()
            fut.cancel()  # if it has not started, it never will
            raise
        return response


class _Call:
    """One request's run of the app. Everything but ``abandon`` and ``done`` runs on
    the app's thread (the handler thread, or a pool thread); ``answer`` takes a whole
    response, ``pipe`` a streamed one and then its chunks."""

    __slots__ = ("answer", "app", "app_length", "committed", "counted", "fields", "head", "input", "pipe", "quiet",
                 "status")

    def __init__(self, app: Callable[..., Any], loop: asyncio.AbstractEventLoop, req: Request,
                 body: bytes | None = None) -> None:  # fmt: skip
        self.app = app
        self.head = req.head
        self.pipe = Pipe(loop, PIPE_SLOTS)
        if body is not None:  # read whole on the loop already
            self.input = InputStream(loop, None, body)
        else:
            self.input = InputStream(loop, aiter(req.stream()) if req.head.body_length else None)
        #: start_response's status and fields (None until it is called).
        self.status: int | None = None
        self.fields: list[tuple[str, bytes]] = []
        #: The app's Content-Length value, kept for a HEAD answer.
        self.app_length: bytes | None = None
        #: Whether the response has been decided (the first body bytes, or the end).
        self.committed = False
        #: No body is sent (HEAD, 204, 304): the app's is counted and dropped.
        self.quiet = req.head.method == "HEAD"
        self.counted = 0
        #: The response, when it was made whole (not streamed): the loop takes it when
        #: the run is done.
        self.answer: Response | None = None

    # -- the loop's side --

    def abandon(self) -> None:
        """The response will not be taken (the client left, the deadline passed): the
        app's next chunk or body read fails, and its iteration ends."""
        self.pipe.abandon()
        self.input.abandon()

    def done(self, fut: asyncio.Future[None]) -> None:
        """The run is done: its whole response goes to the endpoint. A run that never
        started (dropped by the pool at shutdown) answers 503."""
        if fut.cancelled():
            self.pipe.arrive(PlainTextResponse("Service Unavailable: the worker is stopping", 503))
        elif self.answer is not None:
            self.pipe.arrive(self.answer)

    # -- the pool thread's side --

    def run(self) -> None:
        """Build environ, call the app, consume its answer; close() it whatever happens."""
        errors = ErrorStream(self.head.request_id)
        result: Any = None
        try:
            result = self.app(self.environ(errors), self.start_response)
            self.consume(result)
        except PipeClosed:
            pass
        except BaseException as exc:  # noqa: BLE001 - an app's SystemExit too: it ends this request only
            self.fail(exc)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as exc:
                    error_log.error("WSGI app's close() failed for %s %s (request_id=%s)",
                                    self.head.method, self.head.path, self.head.request_id,
                                    exc_info=exc, extra={"request_id": self.head.request_id})  # fmt: skip
            errors.flush()

    def environ(self, errors: ErrorStream) -> dict[str, Any]:
        """PEP 3333's environ for this request."""
        head = self.head
        env = dict(_BASE_ENVIRON)
        path = head.path
        env["REQUEST_METHOD"] = head.method
        # PATH_INFO: the decoded path's bytes, each as one character (latin-1).
        env["PATH_INFO"] = path if path.isascii() and "%" not in path else unquote_to_bytes(path).decode("latin-1")
        env["QUERY_STRING"] = head.query
        env["SERVER_PROTOCOL"] = _PROTOCOLS.get(head.http_version) or "HTTP/" + head.http_version
        env["wsgi.url_scheme"] = head.scheme
        env["wsgi.input"] = self.input
        env["wsgi.errors"] = errors
        env["covet.request_id"] = head.request_id
        flat = head.headers
        has_length = False
        for i in range(0, len(flat), 2):
            name = flat[i]
            key = _KEYS.get(name)
            if key is None:
                key = _environ_key(name)
            if not key:
                has_length = has_length or name == "content-length"
                continue
            value = bytes(flat[i + 1]).decode("latin-1")
            have = env.get(key)
            if have is None:
                env[key] = value
            else:  # a repeated field: one value, as RFC 9110 5.3 joins them (cookies as RFC 6265 5.4)
                env[key] = f"{have}; {value}" if key == "HTTP_COOKIE" else f"{have}, {value}"
        length = head.body_length
        if length > 0 or (length == 0 and has_length):
            env["CONTENT_LENGTH"] = str(length)
        host = env.get("HTTP_HOST", "")
        if host.startswith("["):
            end = host.find("]") + 1
            name, port = host[:end], host[end + 1:] if host[end:end + 1] == ":" else ""
        else:
            name, _, port = host.partition(":")
        env["SERVER_NAME"] = name or "localhost"
        env["SERVER_PORT"] = port or ("443" if head.scheme == "https" else "80")
        client = head.client
        if client:
            if client.startswith("["):
                end = client.find("]")
                addr, rest = client[1:end], client[end + 1:]
                port = rest[1:]
            else:
                addr, _, port = client.rpartition(":")
            env["REMOTE_ADDR"] = addr
            env["REMOTE_PORT"] = port
        return env

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:  # fmt: skip
        """PEP 3333's start_response: check and keep the status and the fields, and
        return ``write``. With ``exc_info`` (an app's error page) it replaces them, or
        re-raises the error when the response has already begun; called again without
        it, RuntimeError."""
        if exc_info is not None:
            try:
                if self.committed:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise RuntimeError("start_response called a second time without exc_info (PEP 3333)")
        code = _status_code(status)
        fields, app_length = _response_fields(headers)
        self.status, self.fields, self.app_length = code, fields, app_length
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333's write(): send ``data`` now (after the response head), waiting while
        the client is behind. Also how the thread hands on each chunk of the body."""
        if type(data) is not bytes:
            if not isinstance(data, (bytearray, memoryview)):
                raise TypeError(f"a WSGI body chunk must be bytes, got {type(data).__name__}")
            data = bytes(data)
        if not data:
            return
        if not self.committed:
            self.commit(data)
        elif self.quiet:
            self.counted += len(data)
        else:
            self.pipe.put(data)

    def consume(self, result: Iterable[bytes]) -> None:
        """Take the app's answer: a list or tuple whole, a file wrapper as a file the
        gateway sends, anything else chunk by chunk."""
        if not self.committed:
            kind = type(result)
            if kind is list or kind is tuple:
                self.finish(b"".join(result))
                return
            if kind is FileWrapper and self.status is not None and self.status not in _NO_BODY_STATUS:
                path = result.file_path()  # type: ignore[attr-defined]
                if path is not None:
                    self.committed = True
                    self.answer = _file_response(path, self.status, self.fields)
                    return
        write = self.write
        chunks = iter(result)
        if not self.committed:
            # A body of declared length (Flask's and Django's usual answer, an
            # iterator over one piece): taken whole, it goes out as one record with
            # its Content-Length, as a list would, instead of as a stream. The first
            # chunk comes first: a generator calls start_response when it starts.
            parts: list[bytes] = []
            total = 0
            for chunk in chunks:
                length = self.app_length
                total += len(chunk) if type(chunk) is bytes else WHOLE_MAX + 1
                if length is None or int(length) > WHOLE_MAX or total > WHOLE_MAX:
                    # no length, a large one, more than it said, or not bytes (write()
                    # refuses it): streamed from here
                    write(b"".join(parts))
                    write(chunk)
                    break
                parts.append(chunk)
            else:
                self.finish(b"".join(parts))
                return
        for chunk in chunks:
            write(chunk)
        self.finish(b"")

    def _check_started(self) -> int:
        status = self.status
        if status is None:
            raise RuntimeError("the WSGI app sent a body (or returned) without calling start_response")
        if status in _NO_BODY_STATUS:
            self.quiet = True
        return status

    def commit(self, first: bytes) -> None:
        """The first body bytes: send the response now, streamed (or, with no body to
        send, start counting)."""
        status = self._check_started()
        self.committed = True
        if self.quiet:
            self.counted = len(first)
            return
        encode_response_head(status, self.fields, -1)  # what the worker will send: refused here, in the app's thread
        self.pipe.put_last(_Streamed(self.pipe, status, self.fields, first))

    def finish(self, rest: bytes) -> None:
        """The body has ended (``rest`` its last bytes): send the end, or the whole
        response when nothing was sent yet."""
        if self.committed and not self.quiet:
            if rest:
                self.pipe.put(rest)
            self.pipe.put_last(_END)
            return
        status = self._check_started()
        self.committed = True
        if not self.quiet:
            response = Response(rest, status)
            response.headers.raw.extend(self.fields)
        else:
            response = Response(b"", status)
            response.headers.raw.extend(self.fields)
            length = self.app_length
            if length is None and self.head.method == "HEAD" and self.counted + len(rest) > 0:
                length = str(self.counted + len(rest)).encode()
            if length is not None and status not in _NO_BODY_STATUS:
                response.headers.raw.append(("content-length", length))
        self.answer = response

    def fail(self, exc: BaseException) -> None:
        """The app raised: a 500 if the response has not begun (logged with the
        request id); else the streamed body breaks off with ``exc`` (the worker logs
        it)."""
        if self.committed and not self.quiet:
            try:
                self.pipe.put_last(_Failure(exc))
            except PipeClosed:  # nobody takes the body any more
                pass
            return
        head = self.head
        error_log.error("unhandled exception in WSGI app: %s %s (request_id=%s)",
                        head.method, head.path, head.request_id,
                        exc_info=exc, extra={"request_id": head.request_id})  # fmt: skip
        self.committed = True
        self.answer = PlainTextResponse("Internal Server Error", 500)


def _status_code(status: str) -> int:
    """The code of a WSGI status line (``"200 OK"``; the reason is the gateway's)."""
    if not isinstance(status, str):
        raise TypeError(f"WSGI status must be a str such as '200 OK', got {type(status).__name__}")
    code = status[:3]
    if not (code.isascii() and code.isdigit()) or (len(status) > 3 and status[3] != " "):
        raise ValueError(f"WSGI status must be 3 digits and a reason, such as '200 OK', got {status!r}")
    value = int(code)
    if not 200 <= value <= 599:
        raise ValueError(f"WSGI status must be 200..599 (an app cannot send 1xx), got {status!r}")
    return value


#: Response fields seen before, (name, value) as the app gave them -> as checked and
#: encoded (most apps send the same Content-Type and a few others on every response):
#: short values only, up to _FIELDS_MAX of them. Framing fields are never in it.
_FIELDS: dict[tuple[str, str], tuple[str, bytes]] = {}
_FIELDS_MAX: Final = 1024
_FIELD_CACHED_MAX: Final = 128


def _response_fields(headers: list[tuple[str, str]]) -> tuple[list[tuple[str, bytes]], bytes | None]:
    """The app's header fields checked and encoded (ValueError or TypeError, raised to
    the app, for one the gateway would refuse); framing fields dropped, the
    Content-Length value kept apart."""
    if type(headers) is not list:
        raise TypeError(f"WSGI response headers must be a list of (name, value) tuples, got {type(headers).__name__}")
    fields: list[tuple[str, bytes]] = []
    length: bytes | None = None
    for item in headers:
        if type(item) is not tuple or len(item) != 2 or type(item[0]) is not str or type(item[1]) is not str:
            raise TypeError(f"a WSGI response header must be a (str, str) tuple, got {item!r}")
        field = _FIELDS.get(item)
        if field is not None:
            fields.append(field)
            continue
        name, value = encode_header(item[0], item[1])
        if name in _FRAMING:
            if name == "content-length" and value.isdigit():
                length = value
            continue
        field = (name, value)
        if len(_FIELDS) < _FIELDS_MAX and len(value) <= _FIELD_CACHED_MAX:
            _FIELDS[item] = field
        fields.append(field)
    return fields, length


def _file_response(path: str, status: int, fields: list[tuple[str, bytes]]) -> Response:
    response = FileResponse(path, status)
    response.headers.raw.extend(fields)
    return response


class _End:
    """The end of a streamed body."""


_END: Final = _End()


class _Failure:
    """The app raised while its body was being streamed."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class _Streamed(Response):
    """A WSGI body sent as the app produces it: the first chunk, then what the pipe
    brings until its end. When the response is dropped (consumed or not), the pipe is
    abandoned, so that the app's thread stops at its next chunk and closes the body."""

    def __init__(self, pipe: Pipe, status: int, fields: list[tuple[str, bytes]], first: bytes) -> None:
        self._pipe = pipe
        super().__init__(b"", status)
        self.headers.raw.extend(fields)
        self._first = first

    @property
    def body_length(self) -> int:
        return -1

    async def body_chunks(self) -> AsyncIterator[bytes]:
        pipe = self._pipe
        try:
            first, self._first = self._first, b""
            if first:
                yield first
            while True:
                item = await pipe.get()
                if item is _END:
                    return
                if type(item) is _Failure:
                    raise item.exc
                yield item
        finally:
            pipe.abandon()

    def __del__(self) -> None:
        self._pipe.abandon()
