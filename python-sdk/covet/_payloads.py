"""The data-plane payloads of the CovetPy worker protocol, version 1 (PROTOCOL.md 2.3, 3).

Frame type numbers and flags (2.3, the ring layer's numbers under the protocol's
names), the response-flow window (2.7), and the MessagePack payloads a worker writes
and reads: :func:`encode_response_head` (3.2), :func:`encode_error_payload` (3.3),
:func:`decode_window_payload` (3.4, also the WS_CREDIT payload), :func:`encode_early_hints`
(3.5), :func:`encode_resp_trailers` (3.10), the WebSocket payloads :func:`decode_ws_open` (3.7), :func:`encode_ws_accept`
(3.8) and :func:`encode_ws_close` / :func:`decode_ws_close` (3.9), plus their inverses
for tests. The request head
(3.1) has one decoder, ``covet._head.decode_head``.

Decoders raise ``covet._control.ProtocolError`` (TruncatedError for a cut payload).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

import msgpack  # type: ignore[import-untyped]

from covet import _shmring
from covet._accel import speedups
from covet._control import ProtocolError, TruncatedError, msgpack_type, unpack_strict
from covet._datastructures import BAD_FIELD_VALUE
from covet._head import RequestHead, encode_head

__all__ = [
    "MAX_HEAD",
    "RESPONSE_WINDOW",
    "MAX_WINDOW_GRANT",
    "FRAME_PAD",
    "FRAME_REQ_HEAD",
    "FRAME_REQ_BODY",
    "FRAME_RESP_HEAD",
    "FRAME_RESP_BODY",
    "FRAME_RESP",
    "FRAME_EARLY_HINTS",
    "FRAME_CANCEL",
    "FRAME_ERROR",
    "FRAME_WINDOW",
    "FRAME_REQ_WINDOW",
    "REQUEST_WINDOW",
    "FRAME_CONTROL",
    "FRAME_WS_FIRST",
    "FRAME_WS_LAST",
    "FRAME_WS_OPEN",
    "FRAME_WS_ACCEPT",
    "FRAME_WS_TEXT",
    "FRAME_WS_BINARY",
    "FRAME_WS_CLOSE",
    "FRAME_WS_CREDIT",
    "WS_FRAME_COST",
    "WS_MIN_WINDOW",
    "MAX_CLOSE_REASON",
    "FRAME_GRPC_FIRST",
    "FRAME_GRPC_LAST",
    "FRAME_RESP_TRAILERS",
    "FLAG_BEGIN",
    "FLAG_END",
    "FLAG_CANCEL",
    "FLAG_ERR",
    "MAX_RESPONSE_HEADERS",
    "MAX_HEADER_NAME",
    "MAX_HEADER_VALUE",
    "MAX_EARLY_HINTS",
    "assemble_fragment",
    "encode_response_head",
    "encode_response_head_py",
    "decode_response_head",
    "decode_response",
    "encode_error_payload",
    "decode_error_payload",
    "encode_window_payload",
    "decode_window_payload",
    "encode_early_hints",
    "decode_early_hints",
    "encode_resp_trailers",
    "decode_resp_trailers",
    "ws_cost",
    "encode_ws_open",
    "decode_ws_open",
    "encode_ws_accept",
    "decode_ws_accept",
    "encode_ws_close",
    "decode_ws_close",
    "FRAME_RESP_FILE",
    "MAX_FILE_PATH",
    "encode_resp_file",
    "decode_resp_file",
]

#: One packer reused for response heads: msgpack.packb builds a Packer per call, which
#: costs about 1 us of the ~1.3 us a head takes to encode. Packer.pack resets its buffer
#: each call; it is used only from the worker's event-loop thread.
_packer = msgpack.Packer(use_bin_type=True)

MAX_HEAD: Final = 1 << 20  # assembled REQ_HEAD / RESP_HEAD / ERROR payload (4)
#: Response body one request may send before the gateway grants more (2.7), and the
#: largest single WINDOW grant (3.4).
RESPONSE_WINDOW: Final = 2 << 20
MAX_WINDOW_GRANT: Final = 1 << 30

# Frame types and flags (2.3): the ring layer's numbers, under this module's names.
# 80-95 are reserved for WebSocket, 96-111 for gRPC.
FRAME_PAD: Final = _shmring.PAD
FRAME_REQ_HEAD: Final = _shmring.REQ_HEAD
FRAME_REQ_BODY: Final = _shmring.REQ_BODY
FRAME_RESP_HEAD: Final = _shmring.RESP_HEAD
FRAME_RESP_BODY: Final = _shmring.RESP_BODY
FRAME_RESP: Final = _shmring.RESP  # head and whole body in one frame (2.4)
FRAME_EARLY_HINTS: Final = _shmring.EARLY_HINTS  # a 103's fields, before the head (3.5)
FRAME_RESP_FILE: Final = 36  # a file the gateway sends, in place of the head (2.4, 3.6)
FRAME_CANCEL: Final = _shmring.CANCEL
FRAME_ERROR: Final = _shmring.ERROR
FRAME_WINDOW: Final = _shmring.WINDOW
FRAME_REQ_WINDOW: Final = _shmring.REQ_WINDOW  # 51: more request body may come (2.8)
#: Request body the gateway sends before the worker grants more with REQ_WINDOW (2.8).
REQUEST_WINDOW: Final = 1 << 20
FRAME_CONTROL: Final = _shmring.CONTROL
FRAME_WS_FIRST: Final = 80
FRAME_WS_LAST: Final = 95
FRAME_WS_OPEN: Final = 80  # gateway -> worker: a session begins (2.9, 3.7)
FRAME_WS_ACCEPT: Final = 81  # worker -> gateway: the handler accepted it (3.8)
FRAME_WS_TEXT: Final = 82  # either: a text message's UTF-8 bytes, in fragments
FRAME_WS_BINARY: Final = 83  # either: a binary message, in fragments
FRAME_WS_CLOSE: Final = 84  # either: the session's end on the sender's side (3.9)
FRAME_WS_CREDIT: Final = 85  # either: more message bytes may be sent (3.4 payload)
FRAME_GRPC_FIRST: Final = 96
FRAME_GRPC_LAST: Final = 111
#: worker -> gateway: the trailer fields that end a streamed response body (2.10, 3.10)
FRAME_RESP_TRAILERS: Final = _shmring.RESP_TRAILERS

FLAG_BEGIN: Final = _shmring.BEGIN
FLAG_END: Final = _shmring.END
FLAG_CANCEL: Final = _shmring.FLAG_CANCEL
FLAG_ERR: Final = _shmring.FLAG_ERR

MAX_RESPONSE_HEADERS: Final = 1024
MAX_HEADER_NAME: Final = 256
MAX_HEADER_VALUE: Final = 64 << 10
#: EARLY_HINTS messages one exchange may send (4); the gateway ends the session on more.
MAX_EARLY_HINTS: Final = 16
#: What a WS_TEXT or WS_BINARY frame costs its sender's window beyond its payload
#: (2.9), the smallest initial window a WS_OPEN carries (4), and the longest WS_CLOSE
#: reason in bytes (3.9).
WS_FRAME_COST: Final = 64
WS_MIN_WINDOW: Final = 64 << 10
MAX_CLOSE_REASON: Final = 123


_TOKEN_RE: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
# Header names already checked, mapped to their lower-case form; bounded so that a
# handler echoing arbitrary names cannot grow it without limit.
_header_names: dict[str, str] = {}
_HEADER_NAME_CACHE: Final = 512


def _check_header_name(name: str) -> str:
    lname = name.lower()
    raw = lname.encode("ascii", "replace") if type(name) is str else b""
    if len(raw) > MAX_HEADER_NAME or not _TOKEN_RE.fullmatch(raw):
        raise ValueError(f"header name {name!r} is not an HTTP token of at most {MAX_HEADER_NAME} bytes")
    if len(_header_names) < _HEADER_NAME_CACHE:
        _header_names[name] = lname
    return lname


def encode_response_head_py(status: int, headers: Iterable[tuple[str, bytes]], body: int) -> bytes:
    """Encode a RESP_HEAD payload (PROTOCOL.md 3.2): the pure-Python encoder.
    ``encode_response_head`` is this one, or the compiled one
    (``covet._speedups.encode_response_head``), which writes the common head itself
    and hands anything else to this function.

    Header names are lower-cased and must be HTTP tokens of at most 256 bytes; values
    are bytes of at most 64 KiB with no control character but HTAB (RFC 9110 5.5: no
    NUL, CR, LF, DEL, ...); at most 1024 headers; status 200..599; body >= -1. These
    are the gateway's checks (its payload decoder and its HTTP writer): a head it
    would refuse ends the worker's session or the response, so it is refused here
    instead (ValueError), where the handler's traceback can be logged.
    """
    if type(body) is not int or body < -1:
        raise ValueError(f"body {body!r} is not an int >= -1")
    if type(status) is not int or not 200 <= status <= 599:
        raise ValueError(f"status {status!r} not in 200..599")
    # Most responses repeat a few status + header combinations: their checked and
    # encoded prefix ([status, headers, ...) is cached; only the body length varies.
    pairs = tuple(headers)
    key = (status, pairs)
    try:
        prefix = _head_prefixes.get(key)
    except TypeError:  # an unhashable value (a bytearray): encode it, do not cache
        return _encode_head_prefix(status, pairs) + _packer.pack(body)  # type: ignore[no-any-return]
    if prefix is None:
        prefix = _encode_head_prefix(status, pairs)
        if len(_head_prefixes) < _HEAD_PREFIX_CACHE:
            _head_prefixes[key] = prefix
    return prefix + _packer.pack(body)  # type: ignore[no-any-return]


if TYPE_CHECKING or speedups is None:
    encode_response_head = encode_response_head_py
else:
    speedups.init_payloads(encode_response_head_py)
    encode_response_head = speedups.encode_response_head


# Checked, encoded RESP_HEAD prefixes by (status, header pairs); bounded like the names.
_head_prefixes: dict[tuple[int, tuple[tuple[str, bytes], ...]], bytes] = {}
_HEAD_PREFIX_CACHE: Final = 512


def _encode_head_prefix(status: int, headers: tuple[tuple[str, bytes], ...]) -> bytes:
    """``fixarray(3), status, [name, value, ...]``: the RESP_HEAD up to its body length."""
    return b"\x93" + _packer.pack(status) + _packer.pack(_checked_fields(headers))  # type: ignore[no-any-return]


def _checked_fields(headers: Iterable[tuple[str, bytes]]) -> list[str | bytes]:
    """The flat ``[name, value, ...]`` list of a response's fields, checked as
    :func:`encode_response_head` documents."""
    flat: list[str | bytes] = []
    names = _header_names
    for name, value in headers:
        lname = names.get(name)
        if lname is None:
            lname = _check_header_name(name)
        if type(value) is not bytes:
            value = bytes(value)
        if BAD_FIELD_VALUE.search(value) is not None or len(value) > MAX_HEADER_VALUE:
            raise ValueError(f"header {name!r}: value has a control character (only HTAB is allowed) or is over 64 KiB")
        flat.append(lname)
        flat.append(value)
    if len(flat) > 2 * MAX_RESPONSE_HEADERS:
        raise ValueError(f"{len(flat) // 2} headers, at most {MAX_RESPONSE_HEADERS}")
    return flat


def encode_early_hints(headers: Iterable[tuple[str, bytes]]) -> bytes:
    """Encode an EARLY_HINTS payload (PROTOCOL.md 3.5): the flat ``[name, value, ...]``
    fields of a 103 interim response, checked as :func:`encode_response_head` checks a
    head's (ValueError)."""
    return msgpack.packb(_checked_fields(headers), use_bin_type=True)  # type: ignore[no-any-return]


def _decode_fields(payload: bytes, what: str) -> list[tuple[str, bytes]]:
    """Decode a payload that is a flat field array (EARLY_HINTS, RESP_TRAILERS):
    [(name, value)], ProtocolError naming ``what`` otherwise."""
    flat = unpack_strict(payload, what)
    if type(flat) is not list or len(flat) & 1:
        raise ProtocolError(f"{what}: want an array of [name, value, ...]")
    pairs = list(zip(flat[0::2], flat[1::2]))
    if any(type(n) is not str or type(v) is not bytes for n, v in pairs):
        raise ProtocolError(f"{what}: fields must be [str, bin, ...]")
    return pairs


def decode_early_hints(payload: bytes) -> list[tuple[str, bytes]]:
    """Decode an EARLY_HINTS payload (for tests): [(name, value)]."""
    return _decode_fields(payload, "early_hints")


#: Fields a RESP_TRAILERS payload may not carry (PROTOCOL.md 3.10): the framing ones.
_NOT_TRAILERS: Final = frozenset(("content-length", "transfer-encoding", "connection", "keep-alive", "te",
                                  "trailer", "upgrade"))


def encode_resp_trailers(headers: Iterable[tuple[str, bytes]]) -> bytes:
    """Encode a RESP_TRAILERS payload (PROTOCOL.md 3.10): the flat ``[name, value, ...]``
    trailer fields, checked as :func:`encode_response_head` checks a head's, and
    without the framing fields (``content-length``, ``te``, ...): ValueError."""
    flat = _checked_fields(headers)
    for name in flat[0::2]:
        if name in _NOT_TRAILERS:
            raise ValueError(f"{name!r} is a framing field, not allowed in trailers")
    return msgpack.packb(flat, use_bin_type=True)  # type: ignore[no-any-return]


def decode_resp_trailers(payload: bytes) -> list[tuple[str, bytes]]:
    """Decode a RESP_TRAILERS payload (for tests): [(name, value)]."""
    return _decode_fields(payload, "resp_trailers")


def decode_response_head(payload: bytes) -> tuple[int, list[tuple[str, bytes]], int]:
    """Decode a RESP_HEAD payload (for tests): (status, [(name, value)], body)."""
    return _response_head(unpack_strict(payload, "resp_head"))


def decode_response(payload: bytes) -> tuple[int, list[tuple[str, bytes]], int, bytes]:
    """Decode a RESP payload (for tests): a RESP_HEAD followed by exactly its ``body``
    bytes of body; (status, [(name, value)], body length, body)."""
    u = msgpack.Unpacker(raw=False)
    u.feed(payload)
    try:
        a = u.unpack()
    except msgpack.OutOfData:
        raise TruncatedError("resp: truncated head") from None
    except Exception as e:
        raise ProtocolError(f"resp: malformed MessagePack: {e}") from None
    status, pairs, length = _response_head(a)
    body = bytes(payload[u.tell():])
    if length != len(body):
        raise ProtocolError(f"resp: head says {length} bytes, {len(body)} follow")
    return status, pairs, length, body


def _response_head(a: Any) -> tuple[int, list[tuple[str, bytes]], int]:
    if type(a) is not list or len(a) != 3:
        raise ProtocolError("resp_head: want array of 3")
    status, flat, body = a
    if type(status) is not int or type(flat) is not list or type(body) is not int or len(flat) & 1:
        raise ProtocolError("resp_head: mistyped element")
    pairs = list(zip(flat[0::2], flat[1::2]))
    if any(type(n) is not str or type(v) is not bytes for n, v in pairs):
        raise ProtocolError("resp_head: headers must be [str, bin, ...]")
    return status, pairs, body


def encode_error_payload(status: int, message: str) -> bytes:
    """Encode an ERROR payload (PROTOCOL.md 3.3): status 400..599 (499 = cancelled)."""
    if type(status) is not int or not 400 <= status <= 599:
        raise ValueError(f"status {status!r} not in 400..599")
    if type(message) is not str:
        raise TypeError("message must be str")
    return msgpack.packb([status, message], use_bin_type=True)  # type: ignore[no-any-return]


def decode_error_payload(payload: bytes) -> tuple[int, str]:
    """Decode an ERROR payload strictly: (status, message)."""
    a = unpack_strict(payload, "error")
    if type(a) is not list or len(a) != 2:
        raise ProtocolError("error: want array of 2")
    status, message = a
    if type(status) is not int or not 400 <= status <= 599:
        raise ProtocolError(f"error: status {status!r} not an int in 400..599")
    if type(message) is not str:
        raise ProtocolError(f"error: message: want str, got {msgpack_type(message)}")
    return status, message


def encode_window_payload(grant: int) -> bytes:
    """Encode a WINDOW payload (PROTOCOL.md 3.4): ``[grant]``, 1..MAX_WINDOW_GRANT."""
    if type(grant) is not int or not 1 <= grant <= MAX_WINDOW_GRANT:
        raise ValueError(f"grant {grant!r} not in 1..{MAX_WINDOW_GRANT}")
    return msgpack.packb([grant])  # type: ignore[no-any-return]


def decode_window_payload(payload: bytes) -> int:
    """Decode a WINDOW payload strictly: the grant, an int in 1..MAX_WINDOW_GRANT."""
    a = unpack_strict(payload, "window")
    if type(a) is not list or len(a) != 1:
        raise ProtocolError("window: want array of 1")
    grant = a[0]
    if type(grant) is not int or not 1 <= grant <= MAX_WINDOW_GRANT:
        raise ProtocolError(f"window: grant {grant!r} not an int in 1..{MAX_WINDOW_GRANT}")
    return grant


def ws_cost(payload_length: int) -> int:
    """What one WS_TEXT / WS_BINARY frame of ``payload_length`` bytes costs (2.9)."""
    return payload_length + WS_FRAME_COST


def encode_ws_open(head: RequestHead, resumed: bool, window: int) -> bytes:
    """Encode a WS_OPEN payload (PROTOCOL.md 3.7; the gateway's job, here for tests):
    ``[REQ_HEAD array, resumed, window]``."""
    if type(window) is not int or not 1 <= window <= MAX_WINDOW_GRANT:
        raise ValueError(f"window {window!r} not in 1..{MAX_WINDOW_GRANT}")
    if type(resumed) is not bool:
        raise TypeError("resumed must be a bool")
    return b"\x93" + encode_head(head) + _packer.pack(resumed) + _packer.pack(window)  # type: ignore[no-any-return]


def decode_ws_open(payload: bytes) -> tuple[RequestHead, bool, int]:
    """Decode a WS_OPEN payload strictly: (head, resumed, window); the head is checked
    as a REQ_HEAD is (3.1), the window is an int in 1..MAX_WINDOW_GRANT."""
    a = unpack_strict(payload, "ws_open")
    if type(a) is not list or len(a) != 3:
        raise ProtocolError("ws_open: want array of 3")
    raw_head, resumed, window = a
    try:
        head = RequestHead.from_wire(raw_head)
    except ValueError as e:
        raise ProtocolError(f"ws_open: head: {e}") from None
    if type(resumed) is not bool:
        raise ProtocolError(f"ws_open: resumed: want bool, got {msgpack_type(resumed)}")
    if type(window) is not int or not 1 <= window <= MAX_WINDOW_GRANT:
        raise ProtocolError(f"ws_open: window {window!r} not an int in 1..{MAX_WINDOW_GRANT}")
    return head, resumed, window


def encode_ws_accept(subprotocol: str, headers: Iterable[tuple[str, bytes]]) -> bytes:
    """Encode a WS_ACCEPT payload (PROTOCOL.md 3.8): the chosen subprotocol (an HTTP
    token, or empty for none) and the 101 response's extra fields, checked as
    :func:`encode_response_head` checks a head's (ValueError)."""
    if type(subprotocol) is not str:
        raise TypeError("subprotocol must be a str")
    if subprotocol and not _SUBPROTOCOL_RE.fullmatch(subprotocol):
        raise ValueError(f"subprotocol {subprotocol!r} is not an HTTP token")
    return msgpack.packb([subprotocol, _checked_fields(headers)], use_bin_type=True)  # type: ignore[no-any-return]


_SUBPROTOCOL_RE: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def decode_ws_accept(payload: bytes) -> tuple[str, list[tuple[str, bytes]]]:
    """Decode a WS_ACCEPT payload (for tests): (subprotocol, [(name, value)])."""
    a = unpack_strict(payload, "ws_accept")
    if type(a) is not list or len(a) != 2:
        raise ProtocolError("ws_accept: want array of 2")
    subprotocol, flat = a
    if type(subprotocol) is not str or type(flat) is not list or len(flat) & 1:
        raise ProtocolError("ws_accept: mistyped element")
    pairs = list(zip(flat[0::2], flat[1::2]))
    if any(type(n) is not str or type(v) is not bytes for n, v in pairs):
        raise ProtocolError("ws_accept: headers must be [str, bin, ...]")
    return subprotocol, pairs


def _check_close(code: Any, reason: Any, error: type[Exception]) -> None:
    if type(code) is not int or not 1000 <= code <= 4999:
        raise error(f"ws_close: code {code!r} not an int in 1000..4999")
    if type(reason) is not str or len(reason.encode("utf-8", "surrogatepass")) > MAX_CLOSE_REASON:
        raise error(f"ws_close: reason must be a str of at most {MAX_CLOSE_REASON} bytes of UTF-8")


def encode_ws_close(code: int, reason: str) -> bytes:
    """Encode a WS_CLOSE payload (PROTOCOL.md 3.9): ``[code, reason]``, code 1000..4999,
    reason at most 123 bytes of UTF-8 (ValueError otherwise)."""
    _check_close(code, reason, ValueError)
    try:
        return msgpack.packb([code, reason])  # type: ignore[no-any-return]
    except UnicodeEncodeError:
        raise ValueError("ws_close: reason is not valid UTF-8 (a lone surrogate)") from None


def decode_ws_close(payload: bytes) -> tuple[int, str]:
    """Decode a WS_CLOSE payload strictly: (code, reason)."""
    a = unpack_strict(payload, "ws_close")
    if type(a) is not list or len(a) != 2:
        raise ProtocolError("ws_close: want array of 2")
    _check_close(a[0], a[1], ProtocolError)
    return a[0], a[1]


#: The longest path a RESP_FILE names, in bytes (4).
MAX_FILE_PATH: Final = 4096


def encode_resp_file(status: int, headers: Iterable[tuple[str, bytes]], path: str) -> bytes:
    """Encode a RESP_FILE payload (PROTOCOL.md 3.6): ``[status, [name, value, ...],
    path]``. The status and fields are checked as :func:`encode_response_head` checks
    a head's; the path must be absolute, 1 ..= 4096 bytes of UTF-8 without NUL
    (ValueError)."""
    if type(status) is not int or not 200 <= status <= 599:
        raise ValueError(f"status {status!r} not in 200..599")
    if type(path) is not str or not path.startswith("/") or "\x00" in path:
        raise ValueError(f"file path {path!r} is not an absolute path without NUL")
    try:
        raw = path.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"file path {path!r} is not valid UTF-8") from None
    if len(raw) > MAX_FILE_PATH:
        raise ValueError(f"file path of {len(raw)} bytes, at most {MAX_FILE_PATH}")
    return msgpack.packb([status, _checked_fields(headers), path], use_bin_type=True)  # type: ignore[no-any-return]


def decode_resp_file(payload: bytes) -> tuple[int, list[tuple[str, bytes]], str]:
    """Decode a RESP_FILE payload (for tests): (status, [(name, value)], path)."""
    v = unpack_strict(payload, "resp_file")
    if type(v) is not list or len(v) != 3 or type(v[0]) is not int or type(v[1]) is not list or type(v[2]) is not str:
        raise ProtocolError("resp_file: want [status int, headers array, path str]")
    flat = v[1]
    if len(flat) & 1:
        raise ProtocolError("resp_file: headers must be [name, value, ...]")
    pairs = list(zip(flat[0::2], flat[1::2]))
    if any(type(n) is not str or type(val) is not bytes for n, val in pairs):
        raise ProtocolError("resp_file: fields must be [str, bin, ...]")
    return v[0], pairs, v[2]


def assemble_fragment(
    partial: dict[int, list[bytes]], what: str, rid: int, flags: int, payload: bytes
) -> bytes | None:
    """Collect one fragment of a message assembled whole before it is decoded (a
    REQ_HEAD, a WS_OPEN: PROTOCOL.md 2.4) in ``partial``, keyed by request id; return
    the whole payload at its END fragment, else None. A BEGIN inside a message, a
    fragment that begins none and a message over MAX_HEAD raise ProtocolError naming
    ``what``."""
    parts = partial.get(rid)
    if flags & FLAG_BEGIN:
        if parts is not None:
            raise ProtocolError(f"{what} of request {rid:#x}: BEGIN inside a message")
        if flags & FLAG_END:
            return payload
        partial[rid] = [payload]
        return None
    if parts is None:
        raise ProtocolError(f"{what} of request {rid:#x}: fragment without BEGIN")
    parts.append(payload)
    if sum(map(len, parts)) > MAX_HEAD:
        raise ProtocolError(f"{what} of request {rid:#x}: over {MAX_HEAD} bytes")
    if flags & FLAG_END:
        del partial[rid]
        return b"".join(parts)
    return None
