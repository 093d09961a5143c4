"""RequestHead: what the gateway tells a worker about one request (REQ_HEAD, PROTOCOL 3.1).

The one decoder of REQ_HEAD in the SDK: :func:`decode_head` (msgspec, with a msgpack
fallback that names a malformed element), checked against the golden vector
``workerproto/testdata/req_head.hex`` by ``tests/test_proto.py``. :func:`encode_head` is
the gateway's side, for tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Sequence
from typing import Any, NamedTuple, TypeAlias

import msgpack  # type: ignore[import-untyped]
import msgspec

__all__ = [
    "RequestHead",
    "ClientCert",
    "BodySource",
    "REQ_HEAD_FIELDS",
    "well_formed",
    "decode_head",
    "encode_head",
]

BodySource: TypeAlias = AsyncIterable[bytes]
"""The request body as it arrives: an async iterable of chunks (fragments), consumed once."""

REQ_HEAD_FIELDS = 12
"""Elements of a REQ_HEAD without a client certificate; one with it has 13."""


def _check(value: Any, kind: type, index: int, name: str) -> None:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(
            f"REQ_HEAD[{index}] ({name}) must be {kind.__name__}, got {type(value).__name__}"
        )


def _check_flat(flat: Any, index: int, name: str, value_type: type) -> None:
    _check(flat, list, index, name)
    if len(flat) % 2:
        raise ValueError(f"REQ_HEAD[{index}] ({name}) has an odd number of elements")
    for i in range(0, len(flat), 2):
        key, value = flat[i], flat[i + 1]
        if not isinstance(key, str) or not isinstance(value, value_type):
            raise ValueError(
                f"REQ_HEAD[{index}] ({name}) element {i // 2} must be "
                f"(str, {value_type.__name__}), got ({type(key).__name__}, {type(value).__name__})"
            )


class ClientCert(NamedTuple):
    """The connection's verified TLS client certificate (mTLS): REQ_HEAD's optional 13th
    element. ``subject`` is the distinguished name, RFC 2253 style (``CN=alice,O=Example``);
    ``sans`` the subject alternative names (DNS names, e-mail addresses, URIs, IP
    addresses); ``fingerprint`` the SHA-256 of the certificate (DER) in lower-case hex."""

    subject: str
    sans: tuple[str, ...]
    fingerprint: str


class RequestHead(NamedTuple):
    """One request's head, as decoded from REQ_HEAD: the wire array itself, checked.

    ``headers`` is the flat wire list ``[name, value, name, value, ...]`` (lower-case
    ``str`` names, raw ``bytes`` values, arrival order; annotated ``list[Any]`` because
    msgspec, which decodes it, has no type for alternating elements);
    ``Request.headers`` pairs it up on first use. ``route`` is the pattern the gateway
    matched (for a HEAD request it may be a GET route's pattern); ``params`` is flat
    too, ``[name, percent-decoded value, ...]``, not yet converted; ``body_length`` is
    the body size if known, -1 if a body of unknown length follows, 0 if none;
    ``timeout_ms`` is the time the handler has left (0 = no deadline);
    ``client_cert`` the verified client certificate, or None (no mTLS, or the client
    sent none).
    """

    method: str
    path: str
    query: str
    headers: list[Any]
    route: str
    params: list[str]
    http_version: str
    scheme: str
    client: str
    request_id: str
    body_length: int
    timeout_ms: int
    client_cert: ClientCert | None = None

    @classmethod
    def from_wire(cls, arr: Sequence[Any]) -> RequestHead:
        """Build from the decoded REQ_HEAD array (msgpack ``raw=False``: str and bytes).

        Raises ValueError, naming the element, if the array breaks PROTOCOL 3.1.
        """
        if well_formed(arr):
            return _new_head(cls, (*arr, None))
        return cls._checked(arr)

    @classmethod
    def _checked(cls, arr: Sequence[Any]) -> RequestHead:
        if not isinstance(arr, (list, tuple)) or len(arr) not in (REQ_HEAD_FIELDS, REQ_HEAD_FIELDS + 1):
            size = len(arr) if isinstance(arr, (list, tuple)) else type(arr).__name__
            raise ValueError(f"REQ_HEAD must be an array of 12 or 13 elements, got {size}")
        for index, name in ((0, "method"), (1, "path"), (2, "query"), (4, "route"),
                            (6, "http_version"), (7, "scheme"), (8, "client"),
                            (9, "request_id")):  # fmt: skip
            _check(arr[index], str, index, name)
        _check_flat(arr[3], 3, "headers", bytes)
        _check_flat(arr[5], 5, "params", str)
        body, timeout_ms = arr[10], arr[11]
        _check(body, int, 10, "body")
        _check(timeout_ms, int, 11, "timeout_ms")
        if body < -1:
            raise ValueError(f"REQ_HEAD[10] (body) must be >= -1, got {body}")
        if timeout_ms < 0:
            raise ValueError(f"REQ_HEAD[11] (timeout_ms) must be >= 0, got {timeout_ms}")
        cert = _checked_cert(arr[12]) if len(arr) > REQ_HEAD_FIELDS else None
        # Well-typed after all (a tuple, or str/bytes subclasses): normalise.
        return cls(
            str(arr[0]), str(arr[1]), str(arr[2]), [bytes(x) if i & 1 else str(x) for i, x in enumerate(arr[3])],
            str(arr[4]), [str(x) for x in arr[5]], str(arr[6]), str(arr[7]), str(arr[8]), str(arr[9]),
            int(body), int(timeout_ms), cert,
        )  # fmt: skip


def _checked_cert(value: Any) -> ClientCert:
    """REQ_HEAD[12] (client_cert): [subject str, sans array of str, fingerprint str]."""
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        got = f"{len(value)} elements" if isinstance(value, (list, tuple)) else type(value).__name__
        raise ValueError(f"REQ_HEAD[12] (client_cert) must be an array of 3 elements, got {got}")
    subject, sans, fingerprint = value
    if not isinstance(subject, str) or not isinstance(fingerprint, str):
        raise ValueError("REQ_HEAD[12] (client_cert): subject and fingerprint must be str")
    if not isinstance(sans, (list, tuple)) or not all(isinstance(x, str) for x in sans):
        raise ValueError("REQ_HEAD[12] (client_cert): sans must be an array of str")
    return ClientCert(str(subject), tuple(str(x) for x in sans), str(fingerprint))


def decode_head(payload: bytes) -> RequestHead:
    """Decode and check a REQ_HEAD payload (PROTOCOL 3.1); ValueError names what is wrong.

    The worker's hot path. msgspec decodes the array straight into a RequestHead and
    checks every element's type on the way, so only the alternation of the header list
    and the two numeric bounds are left to check here. Anything it refuses is decoded
    again with msgpack and checked element by element, for a message that names the
    element. msgspec reads a 13th element that is nil as no certificate, which the
    protocol refuses: a head without one must be a fixarray of 12 (0x9c), as every
    encoder writes it, or it is checked again.
    """
    try:
        head = _decode(payload)
    except msgspec.MsgspecError:
        pass
    else:
        headers = head[3]
        if (
            list(map(type, headers)) == _STR_BYTES * (len(headers) >> 1)
            and not len(head[5]) & 1
            and head[10] >= -1
            and head[11] >= 0
            and (payload[0] == 0x9C or head[12] is not None)
        ):
            return head
    return RequestHead.from_wire(msgpack.unpackb(payload, raw=False))


def encode_head(head: RequestHead) -> bytes:
    """Encode a REQ_HEAD payload (the gateway's job; here for tests): 12 elements, 13
    with a client certificate."""
    arr = list(head)
    if arr[12] is None:
        del arr[12]
    payload: bytes = msgpack.packb(arr, use_bin_type=True)
    return payload


def well_formed(arr: Any) -> bool:
    """Whether ``arr``, a decoded REQ_HEAD without a client certificate, is well formed
    (PROTOCOL 3.1) in the exact types msgpack decodes to. Every request is checked, so this is a few whole-list
    type comparisons; False sends the caller to element-by-element checks that name
    what is wrong."""
    if type(arr) is not list or list(map(type, arr)) != _WIRE_TYPES or arr[10] < -1 or arr[11] < 0:
        return False
    headers, params = arr[3], arr[5]
    return (
        list(map(type, headers)) == _STR_BYTES * (len(headers) >> 1)
        and list(map(type, params)) == _STR * len(params)
        and not len(params) & 1
    )


_WIRE_TYPES: list[type] = [str, str, str, list, str, list, str, str, str, str, int, int]
_STR_BYTES: list[type] = [str, bytes]
_STR: list[type] = [str]
_new_head = tuple.__new__
_decode = msgspec.msgpack.Decoder(RequestHead).decode
