"""Immutable multi-dicts for query parameters, form data and headers; client address."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Generic, NamedTuple, TypeVar, overload

__all__ = ["Address", "MultiDict", "QueryParams", "Headers", "MutableHeaders", "State", "encode_header"]

V = TypeVar("V")
D = TypeVar("D")

_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A byte a field value may not hold: a control character other than HTAB (RFC 9110
# 5.5). The gateway's HTTP writer refuses the same (gateway/http1 cFieldVal), and the
# worker's RESP_HEAD encoder checks it too (_payloads.encode_response_head).
BAD_FIELD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class Address(NamedTuple):
    """A peer address: ``host`` (IPv6 without brackets) and ``port`` (0 if unknown)."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Address:
        """Parse ``ip:port`` or ``[ipv6]:port``; a missing or bad port reads as 0."""
        host, port = text, ""
        if text.startswith("["):
            end = text.find("]")
            if end != -1:
                host, rest = text[1:end], text[end + 1 :]
                port = rest[1:] if rest.startswith(":") else ""
        elif text.count(":") == 1:
            host, port = text.split(":")
        return cls(host, int(port) if port.isdigit() and port.isascii() else 0)


class MultiDict(Mapping[str, V], Generic[V]):
    """An immutable mapping that keeps every value of a repeated key, in order.

    ``d[key]`` and ``d.get(key)`` give the first value; ``getlist`` gives all;
    iteration yields each distinct key once; ``multi_items()`` yields every pair.
    """

    __slots__ = ("_items", "_index")

    def __init__(self, items: Iterable[tuple[str, V]] = ()) -> None:
        self._items: list[tuple[str, V]] = list(items)
        index: dict[str, list[V]] = {}
        for key, value in self._items:
            index.setdefault(key, []).append(value)
        self._index = index

    def __getitem__(self, key: str) -> V:
        return self._index[key][0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def getlist(self, key: str) -> list[V]:
        return list(self._index.get(key, ()))

    def multi_items(self) -> list[tuple[str, V]]:
        return list(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MultiDict):
            return sorted(self._items, key=_first) == sorted(other._items, key=_first)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items!r})"


def _first(item: tuple[str, object]) -> str:
    return item[0]


class QueryParams(MultiDict[str]):
    """Decoded query-string parameters (blank values kept)."""

    __slots__ = ()


class Headers(Mapping[str, str]):
    """Case-insensitive, ordered multi-dict of HTTP header fields.

    Values are the raw bytes decoded as latin-1 (lossless for any byte). ``h[name]`` and
    ``h.get(name)`` give the first field of that name, ``getlist`` every field, ``raw``
    the ``(lower-case name, bytes value)`` pairs as received or as they go on the wire.
    """

    __slots__ = ("_raw",)

    def __init__(self, raw: Iterable[tuple[str, bytes]] = ()) -> None:
        self._raw: list[tuple[str, bytes]] = [(name.lower(), value) for name, value in raw]

    @classmethod
    def from_flat(cls, flat: list[str | bytes]) -> Headers:
        """From a flat ``[name, value, ...]`` list whose names are already lower-case
        (a REQ_HEAD's header list): no copy-and-lower pass."""
        h = cls.__new__(cls)
        h._raw = list(zip(flat[0::2], flat[1::2]))  # type: ignore[arg-type]
        return h

    @property
    def raw(self) -> list[tuple[str, bytes]]:
        return self._raw

    @overload
    def get(self, key: str) -> str | None: ...
    @overload
    def get(self, key: str, default: str | D) -> str | D: ...
    def get(self, key: str, default: object = None) -> object:
        key = key.lower()
        for name, value in self._raw:
            if name == key:
                return value.decode("latin-1")
        return default

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def getlist(self, key: str) -> list[str]:
        key = key.lower()
        return [value.decode("latin-1") for name, value in self._raw if name == key]

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        key = key.lower()
        return any(name == key for name, _ in self._raw)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self._raw))

    def __len__(self) -> int:
        return len({name for name, _ in self._raw})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._raw!r})"


def encode_header(name: str, value: str | bytes) -> tuple[str, bytes]:
    """Validate and encode one header field (a response's, or a TestClient request's):
    a token name, lower-cased; a latin-1 value with no control character but HTAB."""
    if not isinstance(name, str) or not _TOKEN_RE.fullmatch(name):
        raise ValueError(f"invalid header name {name!r}")
    if isinstance(value, str):
        try:
            data = value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(
                f"header {name!r} value is not latin-1; percent-encode it or pass bytes"
            ) from None
    elif isinstance(value, bytes):
        data = value
    else:
        raise TypeError(f"header {name!r} value must be str or bytes, got {type(value).__name__}")
    if BAD_FIELD_VALUE.search(data):
        raise ValueError(f"header {name!r} value contains a control character (CR, LF, NUL, ...; only HTAB is allowed)")
    return name.lower(), data


class MutableHeaders(Headers):
    """Response headers: ``h[name] = v`` replaces, ``append`` adds, ``del h[name]`` removes."""

    __slots__ = ()

    @classmethod
    def from_pairs(cls, raw: list[tuple[str, bytes]]) -> MutableHeaders:
        """Adopt ``raw``, already-encoded ``(lower-case name, bytes)`` pairs, as is."""
        h = cls.__new__(cls)
        h._raw = raw
        return h

    def __setitem__(self, key: str, value: str | bytes) -> None:
        name, data = encode_header(key, value)
        self._raw = [(n, v) for n, v in self._raw if n != name]
        self._raw.append((name, data))

    def append(self, key: str, value: str | bytes) -> None:
        self._raw.append(encode_header(key, value))

    def setdefault(self, key: str, value: str | bytes) -> str:
        existing = self.get(key)
        if existing is not None:
            return existing
        self.append(key, value)
        return self[key]

    def __delitem__(self, key: str) -> None:
        key = key.lower()
        kept = [(n, v) for n, v in self._raw if n != key]
        if len(kept) == len(self._raw):
            raise KeyError(key)
        self._raw = kept


class State:
    """An attribute bag: ``app.state.db = pool``, ``req.state.user = user``. Reading a
    name never set raises AttributeError naming it."""

    __slots__ = ("_state",)

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_state", dict(values) if values else {})

    def __getattr__(self, name: str) -> Any:
        try:
            return self._state[name]
        except KeyError:
            raise AttributeError(f"state has no attribute {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._state[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self._state[name]
        except KeyError:
            raise AttributeError(f"state has no attribute {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._state

    def __repr__(self) -> str:
        return f"State({self._state!r})"
