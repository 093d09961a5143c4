"""RequestHead: what the gateway tells a worker about one request (REQ_HEAD, PROTOCOL 3.1).

The one decoder of REQ_HEAD in the SDK: :func:`decode_head` (msgspec, with a msgpack
fallback that names a malformed element), checked against the golden vectors
``workerproto/testdata/req_head*.hex`` by ``tests/test_proto.py``. :func:`encode_head` is
the gateway's side, for tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias

import msgpack  # type: ignore[import-untyped]
import msgspec

from covet._accel import speedups

__all__ = [
    "RequestHead",
    "ClientCert",
    "Auth",
    "BodySource",
    "REQ_HEAD_FIELDS",
    "well_formed",
    "decode_head",
    "decode_head_py",
    "encode_head",
]

BodySource: TypeAlias = AsyncIterable[bytes]
"""The request body as it arrives: an async iterable of chunks (fragments), consumed once."""

REQ_HEAD_FIELDS = 12
"""Elements of a REQ_HEAD without a client certificate or an identity; 13 with a
certificate, 14 with an identity (``auth``), the 13th then nil when there is no
certificate."""



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


class _AuthFields(NamedTuple):
    sub: str
    raw_claims: bytes
    roles: tuple[str, ...]
    scopes: tuple[str, ...]


class Auth(_AuthFields):
    """The identity the gateway verified for a request: REQ_HEAD's optional 14th element
    (``auth``), read as ``req.auth`` / ``ws.auth``.

    The gateway checked the bearer token (signature, algorithm, ``exp``, ``nbf``,
    ``iss``, ``aud``) and the route's roles and scopes before the request reached the
    worker, which never re-verifies it. ``subject`` is the token's ``sub`` (None when
    it has none; ``sub`` is the wire value, ``""`` then); ``claims`` the token's claims
    set, a dict decoded from the JSON the gateway verified on first access and cached
    (``raw_claims`` keeps the bytes); ``roles`` and ``scopes`` are what the gateway read
    from the claims named by its ``auth_roles_claim`` and ``auth_scopes_claim``
    settings. A NamedTuple of the four wire fields (as :class:`ClientCert` is), so that
    msgspec decodes and checks it without Python code on the worker's hot path.

    Build one to give a :class:`covet.testing.TestClient` request an identity:
    ``Auth("alice", roles=["admin"])`` (``claims`` a mapping or JSON bytes; by default
    ``{"sub": subject}``). TestClient verifies nothing: it hands the identity to the
    handler as the gateway would.
    """

    def __new__(
        cls,
        subject: str | None = None,
        claims: Mapping[str, Any] | bytes | None = None,
        roles: Iterable[str] = (),
        scopes: Iterable[str] = (),
    ) -> Auth:
        if subject is None:
            subject = ""
        if not isinstance(subject, str):
            raise TypeError(f"Auth subject must be a str or None, got {type(subject).__name__}")
        if claims is None:
            claims = {"sub": subject} if subject else {}
        if isinstance(claims, (bytes, bytearray, memoryview)):
            raw = bytes(claims)
        elif isinstance(claims, Mapping):
            raw = msgspec.json.encode(dict(claims))
        else:
            raise TypeError(f"Auth claims must be a mapping or JSON bytes, got {type(claims).__name__}")
        fields = (subject, raw, _str_tuple(roles, "roles"), _str_tuple(scopes, "scopes"))
        return tuple.__new__(cls, fields)

    @property
    def subject(self) -> str | None:
        """The token's ``sub`` claim, or None when it has none."""
        return self[0] or None

    @cached_property
    def claims(self) -> dict[str, Any]:
        """The verified claims set (decoded on first access, then cached). ValueError if
        the bytes are not a JSON object (never from a gateway)."""
        try:
            claims = msgspec.json.decode(self.raw_claims)
        except msgspec.DecodeError as e:
            raise ValueError(f"auth claims are not valid JSON: {e}") from None
        if not isinstance(claims, dict):
            raise ValueError(f"auth claims must be a JSON object, got {type(claims).__name__}")
        return claims

    def has_role(self, role: str) -> bool:
        """Whether the identity carries ``role``."""
        return role in self.roles

    def has_scope(self, scope: str) -> bool:
        """Whether the identity carries ``scope``."""
        return scope in self.scopes

    def to_wire(self) -> list[Any]:
        """REQ_HEAD's ``auth`` element: ``[subject, claims, roles, scopes]``."""
        return [self.sub, self.raw_claims, list(self.roles), list(self.scopes)]

    def __repr__(self) -> str:
        return f"Auth(subject={self.subject!r}, roles={self.roles!r}, scopes={self.scopes!r})"


def _str_tuple(values: Iterable[str], what: str) -> tuple[str, ...]:
    if isinstance(values, (str, bytes)):
        raise TypeError(f"Auth {what} must be a list of str, not a single {type(values).__name__}")
    out = tuple(values)
    for v in out:
        if not isinstance(v, str):
            raise TypeError(f"Auth {what} must be str, got {type(v).__name__}")
    return out


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
    sent none); ``auth`` the identity the gateway verified, or None (no token, or one
    the gateway did not accept on a route without ``auth``).
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
    auth: Auth | None = None

    @classmethod
    def from_wire(cls, arr: Sequence[Any]) -> RequestHead:
        """Build from the decoded REQ_HEAD array (msgpack ``raw=False``: str and bytes).

        Raises ValueError, naming the element, if the array breaks PROTOCOL 3.1.
        """
        if well_formed(arr):
            return _new_head(cls, (*arr, None, None))
        return cls._checked(arr)

    @classmethod
    def _checked(cls, arr: Sequence[Any]) -> RequestHead:
        if not isinstance(arr, (list, tuple)) or len(arr) not in (REQ_HEAD_FIELDS, REQ_HEAD_FIELDS + 1, REQ_HEAD_FIELDS + 2):
            size = len(arr) if isinstance(arr, (list, tuple)) else type(arr).__name__
            raise ValueError(f"REQ_HEAD must be an array of 12, 13 or 14 elements, got {size}")
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
        cert = auth = None
        if len(arr) > REQ_HEAD_FIELDS + 1:
            auth = _checked_auth(arr[13])
            if arr[12] is not None:
                cert = _checked_cert(arr[12])
        elif len(arr) > REQ_HEAD_FIELDS:
            cert = _checked_cert(arr[12])
        # Well-typed after all (a tuple, or str/bytes subclasses): normalise.
        return cls(
            str(arr[0]), str(arr[1]), str(arr[2]), [bytes(x) if i & 1 else str(x) for i, x in enumerate(arr[3])],
            str(arr[4]), [str(x) for x in arr[5]], str(arr[6]), str(arr[7]), str(arr[8]), str(arr[9]),
            int(body), int(timeout_ms), cert, auth,
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


def _checked_auth(value: Any) -> Auth:
    """REQ_HEAD[13] (auth): [subject str, claims bin, roles array of str, scopes array of str]."""
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        got = f"{len(value)} elements" if isinstance(value, (list, tuple)) else type(value).__name__
        raise ValueError(f"REQ_HEAD[13] (auth) must be an array of 4 elements, got {got}")
    subject, claims, roles, scopes = value
    if not isinstance(subject, str):
        raise ValueError(f"REQ_HEAD[13] (auth): subject must be str, got {type(subject).__name__}")
    if not isinstance(claims, bytes):
        raise ValueError(f"REQ_HEAD[13] (auth): claims must be bin, got {type(claims).__name__}")
    for name, items in (("roles", roles), ("scopes", scopes)):
        if not isinstance(items, (list, tuple)) or not all(isinstance(x, str) for x in items):
            raise ValueError(f"REQ_HEAD[13] (auth): {name} must be an array of str")
    return tuple.__new__(Auth, (str(subject), bytes(claims), tuple(str(x) for x in roles), tuple(str(x) for x in scopes)))


def decode_head_py(payload: bytes) -> RequestHead:
    """Decode and check a REQ_HEAD payload (PROTOCOL 3.1); ValueError names what is wrong.

    The pure-Python decoder: ``decode_head`` is this one, or the compiled one
    (``covet._speedups.decode_head``, which builds the common 12-element form itself
    and hands anything else to this function). The worker's hot path. msgspec decodes the array straight into a RequestHead and
    checks every element's type on the way, so only the alternation of the header list
    and the two numeric bounds are left to check here. Anything it refuses is decoded
    again with msgpack and checked element by element, for a message that names the
    element. msgspec reads a 13th element that is nil as no certificate, which the
    protocol refuses: a head without one must be a fixarray of 12 (0x9c), as every
    encoder writes it, one of 13 (0x9d) must have a certificate and one of 14 (0x9e) an
    identity (its certificate may be nil), or it is checked again.
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
            and (
                (n := payload[0]) == 0x9C
                or (n == 0x9D and head[12] is not None)
                or (n == 0x9E and head[13] is not None)
            )
        ):
            return head
    return RequestHead.from_wire(msgpack.unpackb(payload, raw=False))


def encode_head(head: RequestHead) -> bytes:
    """Encode a REQ_HEAD payload (the gateway's job; here for tests): 12 elements, 13
    with a client certificate, 14 with an identity (the 13th nil without a certificate)."""
    arr: list[Any] = list(head)
    if head.auth is None:
        del arr[13]
        if head.client_cert is None:
            del arr[12]
    else:
        arr[13] = head.auth.to_wire()
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


if TYPE_CHECKING or speedups is None:
    decode_head = decode_head_py
else:
    speedups.init_head(RequestHead, decode_head_py)
    decode_head = speedups.decode_head
