"""The worker's side of gRPC calls (workerproto/PROTOCOL.md 2.10).

A call to a ``grpc`` route is an ordinary exchange: the REQ_HEAD carries the call's
fields, the REQ_BODY stream its length-prefixed messages (a fragment boundary need not
fall on a message boundary), and the worker answers RESP_HEAD (status 200, the initial
metadata, ``body`` -1), one RESP_BODY fragment (or more, past a ring record) per
response message within the response window (2.7), and one RESP_TRAILERS frame with
``grpc-status``, ``grpc-message`` and the trailing metadata. A call that ends before
any response message or initial metadata is one RESP frame whose head holds the
status: gRPC's trailers-only response.

:class:`Runtime` is what every call shares, fixed when the app is frozen (the method
table, the interceptors, the message size limits); the worker hands it each REQ_HEAD
of a gRPC route (``serve``). :class:`_Call` is one call: the message reader and writer
and the status. The handler sees a context made for its kind: :class:`ServicerContext`
(grpc.aio's surface) for an ``async def`` method, :class:`SyncServicerContext`
(grpc's) for a ``def`` one, which runs on the handler thread (covet/_sync.py), one
hop per message for streams, reading a client stream through a blocking bridge.

Statuses the runtime decides itself (a message past a size limit, a request that does
not deserialize) are recorded on the call and win over the handler's: a handler that
catches the error it raised still ends the call with that status. A CANCEL from the
gateway (the client reset the stream, or the deadline passed) cancels the handler's
task; nothing more is sent for the id.

Everything but the sync handlers and their context runs on the worker's loop thread.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import inspect
import logging
import re
import struct
import time
import zlib
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, NamedTuple, NoReturn

from ._exceptions import BodyAborted
from ._head import RequestHead
from ._payloads import (
    FLAG_BEGIN,
    FLAG_END,
    FRAME_RESP,
    FRAME_RESP_BODY,
    FRAME_RESP_HEAD,
    FRAME_RESP_TRAILERS,
    encode_resp_trailers,
    encode_response_head,
)
from ._routing import is_async_callable
from ._shmring import RingCorrupt
from ._sync import run_sync

if TYPE_CHECKING:
    from ._worker import _Exchange, _Worker

__all__ = [
    "AbortError",
    "HandlerCallDetails",
    "Metadatum",
    "Method",
    "Runtime",
    "ServicerContext",
    "SyncServicerContext",
    "decode_metadata",
    "encode_metadata",
    "method_of",
    "percent_encode",
]

log = logging.getLogger("covet.grpc")

# gRPC status codes (grpc/grpc doc/statuscodes.md) the runtime answers with itself.
OK: Final = 0
CANCELLED: Final = 1
UNKNOWN: Final = 2
RESOURCE_EXHAUSTED: Final = 8
UNIMPLEMENTED: Final = 12
INTERNAL: Final = 13

# RpcMethodHandler kinds, by (request_streaming, response_streaming).
UNARY_UNARY: Final = 0
UNARY_STREAM: Final = 1
STREAM_UNARY: Final = 2
STREAM_STREAM: Final = 3
_BEHAVIORS: Final = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")

#: The message encodings this worker reads and writes (besides identity).
ACCEPT_ENCODING: Final = b"identity,gzip"
_PREFIX: Final = struct.Struct(">BI")  # a message's compressed flag and length
_BE: Final = FLAG_BEGIN | FLAG_END
_GRPC: Final = b"application/grpc"
_OK_TRAILERS: Final = encode_resp_trailers([("grpc-status", b"0")])
#: Request fields that are not invocation metadata (grpc-* are all reserved too), as
#: grpcio leaves them out; ``user-agent`` stays.
_NOT_METADATA: Final = frozenset(("content-type", "te", "host", "connection", "keep-alive", "transfer-encoding",
                                  "upgrade", "content-length", "proxy-connection"))  # fmt: skip
_KEY_RE: Final = re.compile(r"[0-9a-z_.\-]+")
_ASCII_RE: Final = re.compile(rb"[\x20-\x7e]*")
_PLAIN_MESSAGE_RE: Final = re.compile(rb"[\x20-\x24\x26-\x7e]*")
_DONE: Final = object()  # what next() gives at the end of a sync response iterator


class Metadatum(NamedTuple):
    """One metadata entry: ``key`` lower-case; ``value`` bytes for a ``-bin`` key, else
    str (grpc.aio's ``Metadatum``)."""

    key: str
    value: str | bytes


class HandlerCallDetails(NamedTuple):
    """What an interceptor learns of a call (grpc.HandlerCallDetails): ``method`` is
    ``/package.Service/Method``."""

    method: str
    invocation_metadata: tuple[Metadatum, ...]


class AbortError(Exception):
    """Raised by ``context.abort``: the call ends with the status given to it."""


class _Status(Exception):
    """A status the runtime decided (not the handler): raised through the handler and
    recorded on the call, whose status it then is."""

    def __init__(self, code: int, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class Method(NamedTuple):
    """One RpcMethodHandler, read once: which of its four behaviors it has and how to
    run it."""

    handler: Any
    kind: int
    is_async: bool
    behavior: Callable[..., Any]
    deserialize: Callable[[bytes], Any] | None
    serialize: Callable[[Any], bytes] | None


def method_of(handler: Any) -> Method:
    """Read a grpc.RpcMethodHandler (what ``grpc.unary_unary_rpc_method_handler`` and
    the others make); TypeError for anything that is not one."""
    try:
        kind = bool(handler.request_streaming) * 2 + bool(handler.response_streaming)
        behavior = getattr(handler, _BEHAVIORS[kind])
        deserialize, serialize = handler.request_deserializer, handler.response_serializer
    except AttributeError:
        raise TypeError(f"{handler!r} is not a grpc.RpcMethodHandler") from None
    if not callable(behavior):
        raise TypeError(f"RpcMethodHandler {handler!r}: its {_BEHAVIORS[kind]} behavior is not callable")
    streams = kind & 1
    is_async = is_async_callable(behavior) or bool(streams and inspect.isasyncgenfunction(behavior))
    return Method(handler, kind, is_async, behavior, deserialize, serialize)


def percent_encode(message: str) -> bytes:
    """A status message as ``grpc-message`` carries it (gRPC over HTTP/2): the UTF-8
    bytes, each outside 0x20..0x7E and each ``%`` written ``%XX``."""
    raw = message.encode("utf-8", "replace")
    if _PLAIN_MESSAGE_RE.fullmatch(raw):
        return raw
    return b"".join(b"%%%02X" % c if c < 0x20 or c > 0x7E or c == 0x25 else bytes((c,)) for c in raw)


def encode_metadata(metadata: Iterable[Any], what: str) -> list[tuple[str, bytes]]:
    """Metadata a handler sends, as response fields: keys lower-cased and checked
    (``[0-9a-z_.-]``, not ``grpc-`` and not a framing field), a ``-bin`` key's bytes
    value base64 (unpadded), any other value printable ASCII. TypeError or ValueError
    naming ``what`` (e.g. ``set_trailing_metadata``) for anything else."""
    out: list[tuple[str, bytes]] = []
    for item in metadata:
        try:
            key, value = item
        except (TypeError, ValueError):
            raise TypeError(f"{what}: metadata must be (key, value) pairs, got {item!r}") from None
        if not isinstance(key, str):
            raise TypeError(f"{what}: metadata key {key!r} is not a str")
        k = key.lower()
        if not _KEY_RE.fullmatch(k) or k.startswith("grpc-") or k in _NOT_METADATA:
            raise ValueError(f"{what}: metadata key {key!r} is not allowed: keys are [0-9a-z_.-], and grpc-* and "
                             "framing fields are reserved")  # fmt: skip
        if k.endswith("-bin"):
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise TypeError(f"{what}: the value of binary metadata {key!r} must be bytes, got {type(value).__name__}")
            out.append((k, base64.b64encode(value).rstrip(b"=")))
            continue
        if isinstance(value, str):
            raw = value.encode("ascii", "replace")
        elif isinstance(value, (bytes, bytearray)):
            raw = bytes(value)
        else:
            raise TypeError(f"{what}: the value of metadata {key!r} must be a str, got {type(value).__name__}")
        if not _ASCII_RE.fullmatch(raw) or (isinstance(value, str) and not value.isascii()):
            raise ValueError(f"{what}: the value of metadata {key!r} must be printable ASCII (use a -bin key for "
                             "anything else)")  # fmt: skip
        out.append((k, raw))
    return out


def decode_metadata(fields: list[Any]) -> tuple[Metadatum, ...]:
    """A request's metadata from its flat header list (REQ_HEAD's ``headers``): the
    fields grpcio hands a handler (no pseudo-fields, no ``grpc-*``, no framing or
    ``content-type``); a ``-bin`` value base64-decoded to bytes (each of its
    comma-separated values, unpadded or padded; one that is not base64 is left out),
    any other value a str."""
    out: list[Metadatum] = []
    for i in range(0, len(fields), 2):
        key = fields[i]
        if key.startswith((":", "grpc-")) or key in _NOT_METADATA:
            continue
        value = fields[i + 1]
        if key.endswith("-bin"):
            for part in value.split(b","):
                part = part.strip()
                try:
                    out.append(Metadatum(key, base64.b64decode(part + b"=" * (-len(part) % 4), validate=True)))
                except binascii.Error:
                    log.debug("metadata %r: a value that is not base64 is left out", key)
        else:
            out.append(Metadatum(key, value.decode("latin-1")))
    return tuple(out)


class Runtime:
    """What every call of an app shares, fixed at freeze: ``methods`` by path, the
    interceptors (``is_async`` flags beside them), the message size limits (-1: none)
    and the grpc module's status codes and end-of-stream marker."""

    def __init__(self, methods: dict[str, Method], interceptors: tuple[Any, ...], max_receive: int,
                 max_send: int, grpc: Any) -> None:  # fmt: skip
        self.methods = methods
        self.interceptors = interceptors
        self.async_interceptors = tuple(is_async_callable(i.intercept_service) for i in interceptors)
        self.max_receive = max_receive
        self.max_send = max_send
        self.status_code: Any = grpc.StatusCode
        self.eof: Any = grpc.aio.EOF

    def serve(self, worker: _Worker, rid: int, head: RequestHead, ex: _Exchange,
              method: Method) -> Coroutine[Any, Any, None]:  # fmt: skip
        """The coroutine that runs one call to ``method`` (the route's registered
        handler) and answers it: the worker's task for the exchange."""
        return _Call(self, worker, rid, head, ex).run(method)


class _Call:
    """One gRPC call: the request messages in, the response messages and the status out.

    ``ex.sent`` (the worker's exchange) is 0 before the response head, 1 after it, 2
    once a body frame or the status went out; ``closed``: the status went out."""

    __slots__ = ("accept_gzip", "buf", "callbacks", "closed", "code", "compress", "content_type", "deadline",
                 "details", "ex", "failure", "gzip_in", "has_response", "head", "initial", "loop", "metadata",
                 "method", "over", "response", "rid", "rt", "skip_compress", "trailing", "worker")  # fmt: skip

    def __init__(self, rt: Runtime, worker: _Worker, rid: int, head: RequestHead, ex: _Exchange) -> None:
        self.rt = rt
        self.worker = worker
        self.rid = rid
        self.head = head
        self.ex = ex
        self.loop = worker._loop
        self.method: Method | None = None
        self.buf = bytearray()
        self.code: Any = None  # a grpc.StatusCode the handler set
        self.details: str | None = None
        self.trailing: list[tuple[str, bytes]] = []
        self.initial: list[tuple[str, bytes]] = []
        self.failure: _Status | None = None
        self.response: Any = None
        self.has_response = False
        self.closed = False
        self.over = False
        self.compress = False
        self.skip_compress = False
        self.metadata: tuple[Metadatum, ...] | None = None
        self.callbacks: list[Callable[[], object]] | None = None
        content_type = encoding = accept = None
        timeout = False
        fields = head.headers
        for i in range(0, len(fields), 2):
            name = fields[i]
            if name == "content-type":
                content_type = fields[i + 1]
            elif name.startswith("grpc-"):
                if name == "grpc-encoding":
                    encoding = fields[i + 1]
                elif name == "grpc-timeout":
                    timeout = True
                elif name == "grpc-accept-encoding":
                    accept = fields[i + 1]
        self.content_type = content_type if content_type and content_type.startswith(b"application/grpc+") else _GRPC
        self.accept_gzip = accept is not None and b"gzip" in accept
        self.gzip_in = encoding == b"gzip"
        if encoding not in (None, b"identity", b"gzip"):
            name = encoding.decode("latin-1")
            self.failure = _Status(UNIMPLEMENTED, f"grpc-encoding {name!r} is not supported (identity, gzip)")
        self.deadline = time.monotonic() + head.timeout_ms / 1000 if timeout and head.timeout_ms else None

    # -- the call's life ----------------------------------------------------------------

    async def run(self, method: Method) -> None:
        worker, rid, ex = self.worker, self.rid, self.ex
        try:
            try:
                if self.failure is not None:
                    raise self.failure
                if self.rt.interceptors:
                    method = await self._intercepted(method)
                self.method = method
                if method.is_async:
                    await self._run_async(method, ServicerContext(self))
                else:
                    await self._run_sync(method, SyncServicerContext(self))
            except _Status as s:
                self.failure = self.failure or s
            except AbortError:
                pass  # the status is the one given to abort()
            except BodyAborted:
                self.failure = _Status(CANCELLED, "the request body was broken off")
            except Exception as e:
                head = self.head
                log.error("gRPC call %s (request %#x, request_id=%s) failed", head.route, rid, head.request_id,
                          exc_info=e, extra={"request_id": head.request_id})  # fmt: skip
                # UNKNOWN, or the code the handler set before it raised (the generated
                # base servicer's set_code(UNIMPLEMENTED) before its NotImplementedError),
                # as grpcio does; never the exception's text or traceback.
                code = self.code.value[0] if self.code is not None else OK
                unexpected = f"Unexpected {type(e).__name__}"
                self.failure = _Status(code, self.details or unexpected) if code != OK else _Status(UNKNOWN, unexpected)
            await self._finish()
        except asyncio.CancelledError:
            if not ex.by_gateway and not self.closed:
                worker._abort_exchange(rid, ex, "call cancelled: the worker is stopping")
            raise
        except RingCorrupt as e:
            worker._stopped = True
            worker._fatal(str(e))
        except Exception:
            log.exception("gRPC call %s (request %#x): failed to send the response", self.head.route, rid)
            if not self.closed:
                worker._abort_exchange(rid, ex, "worker failed to send the response")
        finally:
            self.over = True
            # A sync handler blocked reading the request stream (the bridge) gets an
            # error instead of waiting for ever.
            ex.body.abort(BodyAborted("the gRPC call has ended"))
            worker._end_exchange(rid, ex)
            if self.callbacks:
                for cb in self.callbacks:
                    try:
                        cb()
                    except Exception:
                        log.exception("gRPC call %s: a done callback failed", self.head.route)

    async def _intercepted(self, method: Method) -> Method:
        """The method the interceptors leave for the call (grpc's order: the first
        added is outermost); UNIMPLEMENTED when they give None."""
        details = HandlerCallDetails(self.head.route, self.invocation_metadata())
        handler = await self._intercept(details, 0)
        if handler is None:
            raise _Status(UNIMPLEMENTED, "Method not found!")
        if handler is method.handler:
            return method
        known = self.rt.methods.get(details.method)
        return known if known is not None and handler is known.handler else method_of(handler)

    async def _intercept(self, details: Any, i: int) -> Any:
        rt = self.rt
        if i == len(rt.interceptors):
            m = rt.methods.get(details.method)
            return None if m is None else m.handler
        if rt.async_interceptors[i]:
            return await rt.interceptors[i].intercept_service(functools.partial(self._intercept, i=i + 1), details)
        return rt.interceptors[i].intercept_service(functools.partial(self._intercept_sync, i=i + 1), details)

    def _intercept_sync(self, details: Any, i: int) -> Any:
        """A sync interceptor's continuation: every later one is sync too (the app
        checks that at freeze)."""
        rt = self.rt
        if i == len(rt.interceptors):
            m = rt.methods.get(details.method)
            return None if m is None else m.handler
        return rt.interceptors[i].intercept_service(functools.partial(self._intercept_sync, i=i + 1), details)

    async def _run_async(self, method: Method, ctx: ServicerContext) -> None:
        kind, behavior = method.kind, method.behavior
        if kind == UNARY_UNARY:
            self._reply(await behavior(await self._request(), ctx))
        elif kind == UNARY_STREAM:
            await self._stream(behavior(await self._request(), ctx))
        elif kind == STREAM_UNARY:
            self._reply(await behavior(_Requests(self), ctx))
        else:
            await self._stream(behavior(_Requests(self), ctx))

    async def _run_sync(self, method: Method, ctx: SyncServicerContext) -> None:
        kind, behavior = method.kind, method.behavior
        if kind == UNARY_UNARY:
            self._reply(await _awaited(await run_sync(behavior, await self._request(), ctx)))
        elif kind == STREAM_UNARY:
            self._reply(await _awaited(await run_sync(behavior, _SyncRequests(self), ctx)))
        else:
            request = await self._request() if kind == UNARY_STREAM else _SyncRequests(self)
            responses = await run_sync(_iterate, behavior, request, ctx)
            while (message := await run_sync(next, responses, _DONE)) is not _DONE:
                await self._write(message)

    async def _stream(self, result: Any) -> None:
        """Send what an async server-streaming behavior gave: an async iterator's
        messages, or nothing more once a coroutine (writing with ``context.write``)
        has finished."""
        if hasattr(result, "__aiter__"):
            try:
                async for message in result:
                    await self._write(message)
            finally:
                aclose = getattr(result, "aclose", None)
                if aclose is not None:
                    await aclose()
        elif inspect.isawaitable(result):
            await result
        else:
            raise TypeError(f"a streaming method returned {type(result).__name__}, not an async iterator")

    def _reply(self, response: Any) -> None:
        self.response = response
        self.has_response = True

    def _fail(self, code: int, details: str) -> _Status:
        """Record a status the runtime decided; the caller raises what this returns."""
        s = _Status(code, details)
        if self.failure is None:
            self.failure = s
        return s

    # -- request messages ---------------------------------------------------------------

    async def _request(self) -> Any:
        """A unary call's one request message."""
        message = await self._read()
        if message is None:
            raise self._fail(INTERNAL, "the client sent no request message")
        return message

    async def _read(self) -> Any:
        """The next request message, deserialized, or None at the end of the stream."""
        data = await self._next_message()
        if data is None:
            return None
        assert self.method is not None
        deserialize = self.method.deserialize
        if deserialize is None:
            return data
        try:
            return deserialize(data)
        except Exception:
            log.debug("gRPC call %s: a request message did not deserialize", self.head.route, exc_info=True)
            raise self._fail(INTERNAL, "Exception deserializing request!") from None

    async def _next_message(self) -> bytes | None:
        """The next length-prefixed message of the request body, decompressed."""
        buf = self.buf
        body = self.ex.body
        limit = self.rt.max_receive
        while True:
            if len(buf) >= 5:
                flag, n = _PREFIX.unpack_from(buf)
                if 0 <= limit < n:
                    raise self._fail(RESOURCE_EXHAUSTED, f"Received message larger than max ({n} vs. {limit})")
                if len(buf) >= 5 + n:
                    data = bytes(buf[5:5 + n])
                    del buf[:5 + n]
                    return self._decompress(flag, data)
            try:
                chunk = await body.__anext__()
            except StopAsyncIteration:
                if buf:
                    raise self._fail(INTERNAL, "the request body ended inside a message") from None
                return None
            if not buf and len(chunk) >= 5:  # the common case: the chunk is one whole message
                flag, n = _PREFIX.unpack_from(chunk)
                if len(chunk) == 5 + n and not 0 <= limit < n:
                    return self._decompress(flag, chunk[5:])
            buf += chunk

    def _decompress(self, flag: int, data: bytes) -> bytes:
        if flag == 0:
            return data
        if flag != 1:
            raise self._fail(INTERNAL, f"a request message has compressed flag {flag}")
        if not self.gzip_in:
            raise self._fail(INTERNAL, "a compressed request message, but the call's grpc-encoding is identity")
        limit = self.rt.max_receive
        d = zlib.decompressobj(31)
        try:
            out = d.decompress(data, limit + 1 if limit >= 0 else 0)
        except zlib.error:
            raise self._fail(INTERNAL, "a request message is not valid gzip") from None
        if 0 <= limit < len(out):
            raise self._fail(RESOURCE_EXHAUSTED, f"Received message larger than max (over {limit} bytes decompressed)")
        if not d.eof:
            raise self._fail(INTERNAL, "a request message is not whole gzip data")
        return out

    # -- response -----------------------------------------------------------------------

    def _frame(self, message: Any) -> bytes:
        """A response message serialized, checked against the send limit, compressed
        if the call is, with its 5-byte prefix."""
        assert self.method is not None
        serialize = self.method.serialize
        try:
            data = serialize(message) if serialize is not None else bytes(message)
        except Exception:
            log.error("gRPC call %s: a response did not serialize", self.head.route, exc_info=True)
            raise self._fail(INTERNAL, "Failed to serialize response!") from None
        n = len(data)
        limit = self.rt.max_send
        if 0 <= limit < n:
            raise self._fail(RESOURCE_EXHAUSTED, f"Sent message larger than max ({n} vs. {limit})")
        flag = 0
        if self.compress and not self.skip_compress:
            c = zlib.compressobj(6, zlib.DEFLATED, 31)
            data = c.compress(data) + c.flush()
            flag = 1
        self.skip_compress = False
        return _PREFIX.pack(flag, len(data)) + data

    def _head_payload(self) -> bytes:
        fields = [("content-type", self.content_type), ("grpc-accept-encoding", ACCEPT_ENCODING)]
        if self.compress:
            fields.append(("grpc-encoding", b"gzip"))
        return encode_response_head(200, fields + self.initial, -1)

    async def _send_head(self) -> None:
        payload = self._head_payload()
        w = self.worker
        if len(payload) > w._max_payload or not w._writer.try_write(FRAME_RESP_HEAD, self.rid, _BE, payload, False):
            await w._send(FRAME_RESP_HEAD, self.rid, payload, True, True)
        self.ex.sent = 1

    async def send_initial(self, fields: list[tuple[str, bytes]]) -> None:
        if self.ex.sent or self.over:
            raise RuntimeError("send_initial_metadata: the initial metadata has already been sent")
        self.initial = fields
        await self._send_head()
        self.worker._wake_soon()

    async def _write(self, message: Any) -> None:
        if self.over or self.closed:
            raise RuntimeError("write: the call is over")
        frame = self._frame(message)
        if not self.ex.sent:
            await self._send_head()
        await self._send_frame(frame)
        self.worker._wake_soon()

    async def _send_frame(self, frame: bytes) -> None:
        """One response message: one RESP_BODY frame when it fits the record, the
        window and the ring now, else fragments as the worker sends any body."""
        w, ex = self.worker, self.ex
        n = len(frame)
        if n <= w._max_body and n <= ex.window and w._writer.try_write(
                FRAME_RESP_BODY, self.rid, FLAG_BEGIN if ex.sent == 1 else 0, frame, False):  # fmt: skip
            ex.window -= n
            ex.sent = 2
            return
        await w._send_body(self.rid, frame, ex.sent == 1, False, ex)

    def _status(self) -> tuple[int, str]:
        if self.failure is not None:
            return self.failure.code, self.failure.details
        return (OK if self.code is None else self.code.value[0]), self.details or ""

    async def _finish(self) -> None:
        """Send the unary response (when the status is OK) and the status."""
        if self.ex.by_gateway:  # cancelled: nothing more goes out for the id
            return
        code, details = self._status()
        if code == OK and self.has_response:
            if self.response is None:
                code, details = INTERNAL, "the method returned no response message"
            else:
                try:
                    frame = self._frame(self.response)
                except _Status as s:
                    code, details = s.code, s.details
                else:
                    if not self.ex.sent:
                        await self._send_head()
                    await self._send_frame(frame)
        await self._send_status(code, details)

    async def _send_status(self, code: int, details: str) -> None:
        w, ex = self.worker, self.ex
        if code == OK and not details and not self.trailing and ex.sent:
            typ, payload = FRAME_RESP_TRAILERS, _OK_TRAILERS
        else:
            fields = [("grpc-status", b"%d" % code)]
            if details:
                fields.append(("grpc-message", percent_encode(details)))
            fields += self.trailing
            typ, payload = self._status_payload(fields)
            if len(payload) > w._max_payload:  # RESP and RESP_TRAILERS are one frame each
                log.error("gRPC call %s: its status and trailing metadata take %d bytes, more than a ring record "
                          "holds (%d); answered INTERNAL", self.head.route, len(payload), w._max_payload)  # fmt: skip
                typ, payload = self._status_payload([("grpc-status", b"%d" % INTERNAL),
                                                     ("grpc-message", b"trailing metadata too large")])  # fmt: skip
        if not w._writer.try_write(typ, self.rid, _BE, payload, False):
            await w._send(typ, self.rid, payload, True, True)
        self.closed = True
        ex.sent = 2
        w._wake_soon()

    def _status_payload(self, fields: list[tuple[str, bytes]]) -> tuple[int, bytes]:
        if self.ex.sent:
            return FRAME_RESP_TRAILERS, encode_resp_trailers(fields)
        # Trailers-only: one RESP, the status in its head.
        head = [("content-type", self.content_type), ("grpc-accept-encoding", ACCEPT_ENCODING)]
        return FRAME_RESP, encode_response_head(200, head + fields, 0)

    # -- what the contexts read ---------------------------------------------------------

    def invocation_metadata(self) -> tuple[Metadatum, ...]:
        if self.metadata is None:
            self.metadata = decode_metadata(self.head.headers)
        return self.metadata


def _iterate(behavior: Callable[..., Any], request: Any, ctx: SyncServicerContext) -> Iterator[Any]:
    """On the handler thread: a sync streaming behavior's response iterator."""
    return iter(behavior(request, ctx))


async def _awaited(value: Any) -> Any:
    """A sync behavior's return value, awaited if it is awaitable (a def returning a
    coroutine)."""
    return await value if inspect.isawaitable(value) else value


class _Requests:
    """A client stream for an async method: an async iterator of request messages."""

    __slots__ = ("_call",)

    def __init__(self, call: _Call) -> None:
        self._call = call

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        message = await self._call._read()
        if message is None:
            raise StopAsyncIteration
        return message


class _SyncRequests:
    """A client stream for a sync method, iterated on the handler thread: each message
    is read on the loop, the thread waiting for it."""

    __slots__ = ("_call",)

    def __init__(self, call: _Call) -> None:
        self._call = call

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        call = self._call
        message = asyncio.run_coroutine_threadsafe(call._read(), call.loop).result()
        if message is None:
            raise StopIteration
        return message


class _Context:
    """What both kinds of servicer context offer: the status, metadata, deadline and
    peer of the call."""

    __slots__ = ("_call",)

    def __init__(self, call: _Call) -> None:
        self._call = call

    def _aborted(self, code: Any, details: str, trailing_metadata: Iterable[Any]) -> AbortError:
        call = self._call
        status_code = call.rt.status_code
        if not isinstance(code, status_code):
            raise TypeError(f"abort: code must be a grpc.StatusCode, got {code!r}")
        if code is status_code.OK:
            log.error("gRPC call %s: abort() called with StatusCode.OK; answered UNKNOWN", call.head.route)
            code = status_code.UNKNOWN
        trailing = encode_metadata(trailing_metadata, "abort") if trailing_metadata else None
        call.code = code
        call.details = str(details)
        if trailing is not None:
            call.trailing = trailing
        return AbortError(f"{code.name}: {details}")

    def set_code(self, code: Any) -> None:
        """The status the call ends with (a grpc.StatusCode), unless the handler
        raises."""
        if not isinstance(code, self._call.rt.status_code):
            raise TypeError(f"set_code: want a grpc.StatusCode, got {code!r}")
        self._call.code = code

    def set_details(self, details: str) -> None:
        self._call.details = str(details)

    def code(self) -> Any:
        return self._call.code

    def details(self) -> str | None:
        return self._call.details

    def set_trailing_metadata(self, trailing_metadata: Iterable[Any]) -> None:
        self._call.trailing = encode_metadata(trailing_metadata, "set_trailing_metadata")

    def trailing_metadata(self) -> tuple[Metadatum, ...]:
        return decode_metadata([x for pair in self._call.trailing for x in pair])

    def invocation_metadata(self) -> tuple[Metadatum, ...]:
        return self._call.invocation_metadata()

    def time_remaining(self) -> float | None:
        """Seconds left before the client's deadline (never below 0); None when the
        client set none."""
        deadline = self._call.deadline
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    def cancelled(self) -> bool:
        """Whether the client cancelled the call (or its deadline passed): the gateway
        cancelled it."""
        return self._call.ex.by_gateway

    def done(self) -> bool:
        return self._call.over

    def peer(self) -> str:
        """The client as grpcio names it: ``ipv4:1.2.3.4:5678`` or ``ipv6:[::1]:5678``."""
        client = self._call.head.client
        return ("ipv6:" if client.startswith("[") else "ipv4:") + client

    def auth_context(self) -> Mapping[str, list[bytes]]:
        """The transport's security (``transport_security_type`` ``ssl`` or
        ``insecure``) and, with a verified client certificate, its identities."""
        head = self._call.head
        ctx = {"transport_security_type": [b"ssl" if head.scheme == "https" else b"insecure"]}
        cert = head.client_cert
        if cert is not None:
            ctx["x509_subject"] = [cert.subject.encode()]
            cn = _common_name(cert.subject)
            if cn:
                ctx["x509_common_name"] = [cn.encode()]
            if cert.sans:
                ctx["x509_subject_alternative_name"] = [s.encode() for s in cert.sans]
        return ctx

    def peer_identity_key(self) -> str | None:
        cert = self._call.head.client_cert
        if cert is None:
            return None
        return "x509_subject_alternative_name" if cert.sans else "x509_common_name"

    def peer_identities(self) -> list[bytes] | None:
        key = self.peer_identity_key()
        return None if key is None else self.auth_context().get(key)

    def set_compression(self, compression: Any) -> None:
        """Compress the responses (``grpc.Compression.Gzip``; ``NoCompression`` stops),
        when the client accepts gzip; before the first response or initial metadata."""
        call = self._call
        if call.ex.sent:
            raise RuntimeError("set_compression: the initial metadata has already been sent")
        name = getattr(compression, "name", None)
        if name not in ("Gzip", "NoCompression"):
            raise ValueError(f"set_compression: only grpc.Compression.Gzip and NoCompression, got {compression!r}")
        call.compress = name == "Gzip" and call.accept_gzip

    def disable_next_message_compression(self) -> None:
        self._call.skip_compress = True


def _common_name(subject: str) -> str:
    for part in subject.split(","):
        if part.startswith("CN="):
            return part[3:]
    return ""


class ServicerContext(_Context):
    """The context of an ``async def`` method: grpc.aio.ServicerContext's surface."""

    __slots__ = ()

    async def read(self) -> Any:
        """The next request message, or ``grpc.aio.EOF`` at the end of the stream."""
        message = await self._call._read()
        return self._call.rt.eof if message is None else message

    async def write(self, message: Any) -> None:
        """Send one response message (the initial metadata first, if not yet sent)."""
        await self._call._write(message)

    async def send_initial_metadata(self, initial_metadata: Iterable[Any]) -> None:
        await self._call.send_initial(encode_metadata(initial_metadata, "send_initial_metadata"))

    async def abort(self, code: Any, details: str = "", trailing_metadata: Iterable[Any] = ()) -> NoReturn:
        """End the call with ``code`` (not OK) and ``details``: raises."""
        raise self._aborted(code, details, trailing_metadata)

    async def abort_with_status(self, status: Any) -> NoReturn:
        raise self._aborted(status.code, status.details, status.trailing_metadata)

    def add_done_callback(self, callback: Callable[[ServicerContext], object]) -> None:
        """Call ``callback(context)`` on the loop once the call is over."""
        call = self._call
        if call.callbacks is None:
            call.callbacks = []
        call.callbacks.append(functools.partial(callback, self))


class SyncServicerContext(_Context):
    """The context of a ``def`` method, used on the handler thread: grpc.ServicerContext's
    surface."""

    __slots__ = ()

    def send_initial_metadata(self, initial_metadata: Iterable[Any]) -> None:
        fields = encode_metadata(initial_metadata, "send_initial_metadata")
        call = self._call
        asyncio.run_coroutine_threadsafe(call.send_initial(fields), call.loop).result()

    def abort(self, code: Any, details: str = "", trailing_metadata: Iterable[Any] = ()) -> NoReturn:
        """End the call with ``code`` (not OK) and ``details``: raises."""
        raise self._aborted(code, details, trailing_metadata)

    def abort_with_status(self, status: Any) -> NoReturn:
        raise self._aborted(status.code, status.details, status.trailing_metadata)

    def is_active(self) -> bool:
        return not (self._call.over or self._call.ex.by_gateway)

    def add_callback(self, callback: Callable[[], object]) -> bool:
        """Call ``callback()`` (on the loop) once the call is over; False if it is."""
        call = self._call
        if call.over:
            return False
        call.loop.call_soon_threadsafe(_add_callback, call, callback)
        return True


def _add_callback(call: _Call, callback: Callable[[], object]) -> None:
    if call.over:
        callback()
        return
    if call.callbacks is None:
        call.callbacks = []
    call.callbacks.append(callback)
