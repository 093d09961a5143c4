"""The control plane of the CovetPy worker protocol, version 1: the worker's side.

Mirrors the Go package ``workerproto``; both follow ``workerproto/PROTOCOL.md`` (the
binding spec) and its golden vectors. It holds:

- the control-plane messages (1.2, 1.3): encoded from and decoded to plain dicts whose
  keys follow the spec's order, strictly type-checked, at most 1 MiB;
- :class:`ControlChannel`, the worker's end of the control socket: framing, the
  hello/welcome handshake (welcome brings exactly three descriptors, 1.4), and the two
  ways to connect (inherited fd 3, or the gateway's socket path);
- the protocol's errors, :class:`ProtocolError` and :class:`TruncatedError` (also
  raised by the data-plane payload codecs of ``covet._payloads``), and the strict
  MessagePack reader both planes use.

Everything read from the gateway is checked; a violation raises :class:`ProtocolError`,
after which the worker should send an ``error`` frame (code ``protocol``) and exit.
"""

from __future__ import annotations

import array
import os
import re
import socket
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, NamedTuple

import msgpack  # type: ignore[import-untyped]

__all__ = [
    "PROTOCOL_VERSION",
    "MAX_FRAME",
    "WELCOME_FDS",
    "ENV_CONTROL_FD",
    "ENV_CONTROL_SOCKET",
    "CODE_VERSION",
    "CODE_AUTH",
    "CODE_MANIFEST",
    "CODE_CONFLICT",
    "CODE_PROTOCOL",
    "CODE_INTERNAL",
    "MAX_ROUTES",
    "MAX_ROUTE_PATH",
    "ProtocolError",
    "TruncatedError",
    "PeerError",
    "Welcome",
    "ControlChannel",
    "encode_message",
    "decode_message",
    "encode_frame",
    "parse_frame",
    "validate_routes",
    "unpack_strict",
    "msgpack_type",
]

PROTOCOL_VERSION: Final = 1
MAX_FRAME: Final = 1 << 20  # control-frame map bytes (1.2)
WELCOME_FDS: Final = 3

ENV_CONTROL_FD: Final = "COVET_CONTROL_FD"
ENV_CONTROL_SOCKET: Final = "COVET_CONTROL_SOCKET"

# Error-frame codes (1.3).
CODE_VERSION: Final = "version"
CODE_AUTH: Final = "auth"
CODE_MANIFEST: Final = "manifest"
CODE_CONFLICT: Final = "conflict"
CODE_PROTOCOL: Final = "protocol"
CODE_INTERNAL: Final = "internal"

MAX_ROUTES: Final = 4096
MAX_ROUTE_PATH: Final = 2048
_MAX_OPTION_DEPTH: Final = 8
_MAX_RECV_FDS: Final = 8

_LEN = struct.Struct("<I")
_FDS_SPACE: Final = socket.CMSG_SPACE(_MAX_RECV_FDS * 4)


class ProtocolError(Exception):
    """The peer broke the protocol (or a value cannot be encoded).

    ``code`` is the error-frame code that reports it: ``protocol`` unless said
    otherwise (``version``, ``manifest``).
    """

    def __init__(self, message: str, code: str = CODE_PROTOCOL) -> None:
        super().__init__(message)
        self.code = code


class TruncatedError(ProtocolError):
    """The bytes end inside a frame or value: more are needed (or the peer hung up)."""


class PeerError(Exception):
    """The gateway sent an ``error`` frame; it closes the socket after it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"gateway sent error {code}: {message}")
        self.code = code
        self.message = message



def _dedup(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise ProtocolError("a map holds the same key twice")
    return d


def unpack_strict(data: bytes, what: str, **kw: Any) -> Any:
    """Decode one MessagePack value that must fill ``data`` exactly (``what`` names it in
    errors): TruncatedError if it ends early, ProtocolError for anything malformed."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True, **kw)
    except msgpack.ExtraData:
        raise ProtocolError(f"{what}: trailing bytes after the MessagePack value") from None
    except (msgpack.OutOfData, ValueError) as e:
        # OutOfData: truncated; ValueError covers FormatError, StackError, bad UTF-8
        # (UnicodeDecodeError) and non-str map keys.
        if isinstance(e, msgpack.OutOfData) or "incomplete" in str(e) or "exceeds max_" in str(e):
            raise TruncatedError(f"{what}: truncated") from None
        raise ProtocolError(f"{what}: malformed MessagePack: {e}") from None
    except ProtocolError:
        raise
    except Exception as e:  # msgpack may raise TypeError on unhashable map keys
        raise ProtocolError(f"{what}: malformed MessagePack: {e}") from None


#: The MessagePack family of each type a decoded value has (msgpack, ``raw=False``).
_MSGPACK_TYPES: Final[dict[type, str]] = {
    type(None): "nil", bool: "bool", int: "int", float: "float",
    str: "str", bytes: "bin", list: "array", dict: "map",
}  # fmt: skip


def msgpack_type(v: Any) -> str:
    """The MessagePack family of a decoded value, for error messages."""
    return _MSGPACK_TYPES.get(type(v), "ext")


def _get(m: Mapping[str, Any], where: str, key: str, kind: type) -> Any:
    try:
        v = m[key]
    except KeyError:
        raise ProtocolError(f'{where}: missing key "{key}"') from None
    if type(v) is not kind:
        raise ProtocolError(f'{where}: key "{key}": want {_MSGPACK_TYPES[kind]}, got {msgpack_type(v)}')
    return v


def _int(m: Mapping[str, Any], where: str, key: str, lo: int = 0, hi: int = (1 << 63) - 1) -> int:
    v: int = _get(m, where, key, int)
    if not lo <= v <= hi:
        raise ProtocolError(f'{where}: key "{key}": {v} not in {lo}..{hi}')
    return v


def _check_option(v: Any, depth: int) -> None:
    if depth > _MAX_OPTION_DEPTH:
        raise ProtocolError("route options nested too deeply")
    t = type(v)
    if v is None or t in (bool, int, float, str, bytes):
        if t is int and not -(1 << 63) <= v < (1 << 64):
            raise ProtocolError("route option integer out of range")
        return
    if t is list:
        for x in v:
            _check_option(x, depth + 1)
        return
    if t is dict:
        for k, x in v.items():
            if type(k) is not str:
                raise ProtocolError(f"route option key: want str, got {msgpack_type(k)}")
            _check_option(x, depth + 1)
        return
    raise ProtocolError(f"route option value of type {msgpack_type(v)} is not allowed")


_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "hello": ("type", "version", "pid", "app", "token", "routes"),
    "welcome": (
        "type",
        "version",
        "worker_id",
        "epoch",
        "segment_size",
        "req_capacity",
        "resp_capacity",
        "heartbeat_ms",
    ),
    "ping": ("type", "seq"),
    "pong": ("type", "seq"),
    "drain": ("type", "deadline_ms"),
    "bye": ("type", "reason"),
    "error": ("type", "code", "message"),
}
_ROUTE_KEYS: Final = ("method", "path", "kind", "options")
_U64: Final = (1 << 64) - 1


def decode_message(payload: bytes) -> dict[str, Any]:
    """Decode one control map (the bytes after the length prefix).

    Returns a dict holding exactly the spec's keys, in the spec's order (unknown keys
    are dropped; a hello's optional ``descriptors`` is kept when present). Raises :class:`ProtocolError` for a missing or mistyped key, an
    unknown type, trailing bytes, bad UTF-8 or a duplicate key.
    """
    if len(payload) > MAX_FRAME:
        raise ProtocolError("control frame over 1 MiB")
    m = unpack_strict(payload, "control frame", object_pairs_hook=_dedup)
    if type(m) is not dict:
        raise ProtocolError(f"control frame: want map, got {msgpack_type(m)}")
    typ: str = _get(m, "message", "type", str)
    keys = _KEYS.get(typ)
    if keys is None:
        raise ProtocolError(f"unknown message type {typ!r}")
    if typ == "hello":
        v = _get(m, typ, "version", int)
        if v != PROTOCOL_VERSION:
            raise ProtocolError(f"hello version {v}", CODE_VERSION)
        _int(m, typ, "pid", 1)
        _get(m, typ, "app", str)
        _get(m, typ, "token", str)
        routes = _get(m, typ, "routes", list)
        if len(routes) > MAX_ROUTES:
            raise ProtocolError(f"manifest: {len(routes)} routes, at most {MAX_ROUTES}", CODE_MANIFEST)
        out_routes = []
        for i, r in enumerate(routes):
            where = f"route {i}"
            if type(r) is not dict:
                raise ProtocolError(f"{where}: want map, got {msgpack_type(r)}", CODE_MANIFEST)
            try:
                for k in ("method", "path", "kind"):
                    _get(r, where, k, str)
                _check_option(_get(r, where, "options", dict), 1)
            except ProtocolError as e:
                raise ProtocolError(str(e), CODE_MANIFEST) from None
            out_routes.append({k: r[k] for k in _ROUTE_KEYS})
        out: dict[str, Any] = {k: m[k] for k in keys}
        out["routes"] = out_routes
        if "descriptors" in m:  # optional, gRPC services' files (2.10)
            descriptors = _get(m, typ, "descriptors", list)
            if any(type(d) is not bytes for d in descriptors):
                raise ProtocolError('hello: key "descriptors": want an array of bin')
            out["descriptors"] = descriptors
        return out
    if typ == "welcome":
        _int(m, typ, "version", 0)
        _int(m, typ, "worker_id")
        if _int(m, typ, "epoch", 0, _U64) == 0:
            raise ProtocolError('welcome: key "epoch": zero')
        for k in keys[4:]:
            _int(m, typ, k)
    elif typ in ("ping", "pong"):
        _int(m, typ, "seq", 0, _U64)
    elif typ == "drain":
        _int(m, typ, "deadline_ms")
    elif typ == "bye":
        _get(m, typ, "reason", str)
    else:
        _get(m, typ, "code", str)
        _get(m, typ, "message", str)
    return {k: m[k] for k in keys}


def encode_message(msg: Mapping[str, Any]) -> bytes:
    """Encode a control message dict as a MessagePack map, keys in the spec's order.

    ``msg["type"]`` selects the key set; missing keys raise KeyError, extra keys are
    not written. Route ``options`` are written in the dict's own order. A hello's
    optional ``descriptors`` (an array of bin) is written last when the dict has it.
    """
    typ = msg["type"]
    keys = _KEYS.get(typ)
    if keys is None:
        raise ProtocolError(f"unknown message type {typ!r}")
    out: dict[str, Any] = {k: msg[k] for k in keys}
    if typ == "hello":
        out["routes"] = [
            {"method": r["method"], "path": r["path"], "kind": r["kind"], "options": dict(r.get("options") or {})}
            for r in msg["routes"]
        ]
        if "descriptors" in msg:
            out["descriptors"] = list(msg["descriptors"])
    try:
        b: bytes = msgpack.packb(out, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as e:
        raise ProtocolError(f"{typ}: cannot encode: {e}") from None
    if len(b) > MAX_FRAME:
        raise ProtocolError(f"{typ} message of {len(b)} bytes is over 1 MiB")
    return b


def encode_frame(msg: Mapping[str, Any]) -> bytes:
    """Encode a control message with its u32 LE length prefix."""
    b = encode_message(msg)
    return _LEN.pack(len(b)) + b


def _frame_len(prefix: bytes) -> int:
    (n,) = _LEN.unpack(prefix)
    if n == 0:
        raise ProtocolError("control frame length is zero")
    if n > MAX_FRAME:
        raise ProtocolError(f"control frame length {n} is over 1 MiB")
    return int(n)


def parse_frame(buf: bytes | bytearray | memoryview) -> tuple[dict[str, Any], int]:
    """Parse one frame from the start of ``buf``: returns (message, bytes consumed).

    Raises :class:`TruncatedError` when ``buf`` holds only a prefix of a frame.
    """
    if len(buf) < 4:
        raise TruncatedError("control frame: truncated")
    n = _frame_len(bytes(buf[:4]))
    if len(buf) < 4 + n:
        raise TruncatedError("control frame: truncated")
    return decode_message(bytes(buf[4 : 4 + n])), 4 + n


_APP_RE: Final = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_METHODS: Final = frozenset(("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "*"))
_KINDS: Final = frozenset(("http", "ws", "grpc", "static"))


def validate_routes(routes: Sequence[Mapping[str, Any]]) -> None:
    """Check a manifest as the gateway will (PROTOCOL.md 1.3), so a bad route fails
    in the worker with the same message the gateway would send back.

    Raises :class:`ProtocolError` (code ``manifest``) naming the route, e.g.
    ``route 3 (POST /users): duplicate of route 1``.
    """
    if len(routes) > MAX_ROUTES:
        raise ProtocolError(f"manifest: {len(routes)} routes, at most {MAX_ROUTES} allowed", CODE_MANIFEST)
    seen: dict[tuple[str, str], int] = {}
    for i, r in enumerate(routes):
        method, path, kind = r.get("method"), r.get("path"), r.get("kind")
        opts = r.get("options") or {}

        def bad(problem: str) -> ProtocolError:
            return ProtocolError(f"route {i} ({method} {path}): {problem}", CODE_MANIFEST)

        if method not in _METHODS:
            raise bad(f"method {method!r} is not one of GET POST PUT PATCH DELETE HEAD OPTIONS *")
        if not isinstance(path, str) or not path.startswith("/"):
            raise bad("path does not start with '/'")
        if len(path.encode()) > MAX_ROUTE_PATH:
            raise bad(f"path of {len(path.encode())} bytes, at most {MAX_ROUTE_PATH} allowed")
        if kind not in _KINDS:
            raise bad(f"kind {kind!r} is not one of http ws grpc static")
        if kind == "static":
            if method != "GET":
                raise bad(f"a static route's method is GET, not {method}")
            d = opts.get("dir")
            if type(d) is not str or not d.startswith("/"):
                raise bad("a static route needs option dir, an absolute path")
            if not path.endswith("...}"):
                raise bad("a static route's path ends in a catch-all parameter ({path...})")
            if "index" in opts and type(opts["index"]) is not bool:
                raise bad("option index is not a bool")
        if kind == "grpc" and (method != "POST" or path.count("/") != 2 or "{" in path):
            raise bad("a grpc route is POST /{package.Service}/{Method}, a literal path")
        if "name" in opts and type(opts["name"]) is not str:
            raise bad("option name is not a string")
        if "timeout_ms" in opts and (type(opts["timeout_ms"]) is not int or opts["timeout_ms"] < 0):
            raise bad("option timeout_ms is not a non-negative integer")
        for k in ("resumable", "auth", "compress"):
            if k in opts and type(opts[k]) is not bool:
                raise bad(f"option {k} is not a bool")
        for k in ("rate_limit", "rate_limit_key"):
            if k in opts and type(opts[k]) is not str:
                raise bad(f"option {k} is not a string")
        for k in ("roles", "scopes"):
            if k in opts and (type(opts[k]) not in (list, tuple) or any(type(x) is not str for x in opts[k])):
                raise bad(f"option {k} is not an array of strings")
        for k in ("cors", "security_headers"):
            if k in opts and opts[k] is not False and type(opts[k]) is not dict:
                raise bad(f"option {k} is not false or a map")
        key = (method, path)
        if key in seen:
            raise bad(f"duplicate of route {seen[key]}")
        seen[key] = i


class Welcome(NamedTuple):
    """The gateway's welcome (PROTOCOL.md 1.3), checked against the segment geometry."""

    version: int
    worker_id: int
    epoch: int
    segment_size: int
    req_capacity: int
    resp_capacity: int
    heartbeat_ms: int

    @classmethod
    def from_message(cls, m: Mapping[str, Any]) -> Welcome:
        w = cls(*(m[k] for k in _KEYS["welcome"][1:]))
        w.validate()
        return w

    def validate(self) -> None:
        """Raise ProtocolError unless the welcome is usable (2.1 geometry)."""
        if self.version != PROTOCOL_VERSION:
            raise ProtocolError(f"welcome version {self.version}", CODE_VERSION)
        for name, cap in (("req_capacity", self.req_capacity), ("resp_capacity", self.resp_capacity)):
            if not 4096 <= cap <= 1 << 30 or cap & (cap - 1):
                raise ProtocolError(f"welcome {name} {cap} is not a power of two in 4096..2^30")
        want = 4096 + 2 * 1024 + self.req_capacity + self.resp_capacity
        if self.segment_size != want:
            raise ProtocolError(f"welcome segment_size {self.segment_size}, geometry gives {want}")
        if self.heartbeat_ms <= 0:
            raise ProtocolError(f"welcome heartbeat_ms {self.heartbeat_ms} is not positive")


def _close_fds(fds: Iterable[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class ControlChannel:
    """The worker's end of the control socket (blocking I/O).

    Descriptors may arrive only with the welcome; any that come with another frame
    are closed and the read raises :class:`ProtocolError`.
    """

    __slots__ = ("sock",)

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    # -- connecting

    @classmethod
    def from_fd(cls, fd: int) -> ControlChannel:
        """Adopt an inherited socket (a spawned worker's fd 3); the channel owns it."""
        sock = socket.socket(fileno=fd)
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
            sock.detach()
            raise ProtocolError(f"fd {fd} is not a Unix stream socket")
        os.set_inheritable(fd, False)
        return cls(sock)

    @classmethod
    def connect(cls, path: str, timeout: float | None = None) -> ControlChannel:
        """Connect to a gateway's control socket (external worker)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.settimeout(None)
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, timeout: float | None = None) -> ControlChannel:
        """Connect as the environment says: COVET_CONTROL_FD (spawned) or
        COVET_CONTROL_SOCKET (external). Raises LookupError if neither is set."""
        env = os.environ if environ is None else environ
        fd = env.get(ENV_CONTROL_FD)
        if fd:
            if not fd.isdigit():
                raise ValueError(f"{ENV_CONTROL_FD}={fd!r} is not a descriptor number")
            return cls.from_fd(int(fd))
        path = env.get(ENV_CONTROL_SOCKET)
        if path:
            return cls.connect(path, timeout)
        raise LookupError(f"neither {ENV_CONTROL_FD} nor {ENV_CONTROL_SOCKET} is set")

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> ControlChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- framing

    def _recv_exact(self, n: int, fds: list[int]) -> bytes:
        """Read exactly n bytes, collecting any descriptors that arrive with them."""
        parts = []
        got = 0
        while got < n:
            # socket.recv_fds would do, but CPython 3.11 drops its flags argument, and
            # the descriptors must arrive close-on-exec (MSG_CMSG_CLOEXEC).
            data, anc, flags, _ = self.sock.recvmsg(n - got, _FDS_SPACE, socket.MSG_CMSG_CLOEXEC)
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    arr = array.array("i")
                    arr.frombytes(cdata[: len(cdata) - len(cdata) % arr.itemsize])
                    fds.extend(arr)
            if flags & socket.MSG_CTRUNC:
                raise ProtocolError(f"more than {_MAX_RECV_FDS} descriptors sent with a frame")
            if not data:
                if got == 0 and n == 4:
                    raise EOFError("control socket closed by the gateway")
                raise TruncatedError("control socket closed inside a frame")
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    def _read_frame_fds(self, fds: list[int]) -> bytes:
        n = _frame_len(self._recv_exact(4, fds))
        return self._recv_exact(n, fds)

    def read_frame(self) -> bytes:
        """Read one frame's map bytes. Raises EOFError at a clean end of stream."""
        fds: list[int] = []
        try:
            b = self._read_frame_fds(fds)
        finally:
            if fds:
                _close_fds(fds)
        if fds:
            raise ProtocolError(f"{len(fds)} descriptors sent with a frame other than welcome (closed)")
        return b

    def write_frame(self, payload: bytes) -> None:
        """Write one frame (prefix + payload) in one call."""
        if not 0 < len(payload) <= MAX_FRAME:
            raise ProtocolError(f"frame payload of {len(payload)} bytes")
        self.sock.sendall(_LEN.pack(len(payload)) + payload)

    def read_message(self) -> dict[str, Any]:
        """Read and decode one control message."""
        return decode_message(self.read_frame())

    def write_message(self, msg: Mapping[str, Any]) -> None:
        self.write_frame(encode_message(msg))

    # -- handshake

    def hello(
        self,
        app: str,
        routes: Sequence[Mapping[str, Any]],
        token: str = "",
        pid: int | None = None,
        descriptors: Sequence[bytes] = (),
    ) -> None:
        """Send hello, after checking the app name and manifest locally. ``descriptors``
        (serialized FileDescriptorProtos of the app's gRPC services, PROTOCOL.md 2.10)
        goes in the optional key of that name, left out when empty."""
        if not _APP_RE.fullmatch(app):
            raise ProtocolError(f"app name {app!r} is not 1..64 chars of [A-Za-z0-9_.-]")
        validate_routes(routes)
        msg: dict[str, Any] = {
            "type": "hello",
            "version": PROTOCOL_VERSION,
            "pid": os.getpid() if pid is None else pid,
            "app": app,
            "token": token,
            "routes": routes,
        }
        if descriptors:
            msg["descriptors"] = descriptors
        self.write_message(msg)

    def recv_welcome(self) -> tuple[Welcome, tuple[int, int, int]]:
        """Read the gateway's answer to hello.

        Returns the welcome and its descriptors (segment memfd, worker doorbell, gateway
        doorbell), which the caller then owns. Raises :class:`PeerError` if the gateway
        sent an error frame, :class:`ProtocolError` for anything else (a wrong number of
        descriptors included); on any error every received descriptor is closed.
        """
        fds: list[int] = []
        try:
            m = decode_message(self._read_frame_fds(fds))
            if m["type"] == "error":
                raise PeerError(m["code"], m["message"])
            if m["type"] != "welcome":
                raise ProtocolError(f"{m['type']} where welcome was expected")
            if len(fds) != WELCOME_FDS:
                raise ProtocolError(f"welcome must carry exactly 3 descriptors, got {len(fds)}")
            w = Welcome.from_message(m)
        except BaseException:
            _close_fds(fds)
            raise
        return w, (fds[0], fds[1], fds[2])

    def send_error(self, code: str, message: str) -> None:
        """Send an error frame; the caller closes the channel after it."""
        self.write_message({"type": "error", "code": code, "message": message})
