"""RequestHead: what the gateway tells a worker about one request (REQ_HEAD, PROTOCOL 3.1)."""

from __future__ import annotations

from collections.abc import AsyncIterable, Sequence
from typing import Any, NamedTuple, TypeAlias

__all__ = ["RequestHead", "BodySource", "REQ_HEAD_FIELDS"]

BodySource: TypeAlias = AsyncIterable[bytes]
"""The request body as it arrives: an async iterable of chunks (fragments), consumed once."""

REQ_HEAD_FIELDS = 12


def _check(value: Any, kind: type, index: int, name: str) -> None:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(
            f"REQ_HEAD[{index}] ({name}) must be {kind.__name__}, got {type(value).__name__}"
        )


def _pairs(flat: Any, index: int, name: str, value_type: type) -> list[tuple[str, Any]]:
    _check(flat, list, index, name)
    if len(flat) % 2:
        raise ValueError(f"REQ_HEAD[{index}] ({name}) has an odd number of elements")
    pairs: list[tuple[str, Any]] = []
    for i in range(0, len(flat), 2):
        key, value = flat[i], flat[i + 1]
        if not isinstance(key, str) or not isinstance(value, value_type):
            raise ValueError(
                f"REQ_HEAD[{index}] ({name}) element {i // 2} must be "
                f"(str, {value_type.__name__}), got ({type(key).__name__}, {type(value).__name__})"
            )
        pairs.append((key, value))
    return pairs


class RequestHead(NamedTuple):
    """One request's head, as decoded from REQ_HEAD.

    ``headers`` are ``(lower-case name, raw value bytes)`` in arrival order; ``route`` is
    the pattern the gateway matched (for a HEAD request it may be a GET route's pattern);
    ``params`` are ``(name, percent-decoded value)`` not yet converted; ``body_length`` is
    the body size if known, -1 if a body of unknown length follows, 0 if none;
    ``timeout_ms`` is the time the handler has left (0 = no deadline).
    """

    method: str
    path: str
    query: str
    headers: list[tuple[str, bytes]]
    route: str
    params: list[tuple[str, str]]
    http_version: str
    scheme: str
    client: str
    request_id: str
    body_length: int
    timeout_ms: int

    @classmethod
    def from_wire(cls, arr: Sequence[Any]) -> RequestHead:
        """Build from the decoded REQ_HEAD array (msgpack ``raw=False``: str and bytes).

        Raises ValueError, naming the element, if the array breaks PROTOCOL 3.1.
        """
        if not isinstance(arr, (list, tuple)) or len(arr) != REQ_HEAD_FIELDS:
            size = len(arr) if isinstance(arr, (list, tuple)) else type(arr).__name__
            raise ValueError(f"REQ_HEAD must be an array of {REQ_HEAD_FIELDS} elements, got {size}")
        (method, path, query, headers, route, params,
         http_version, scheme, client, request_id, body, timeout_ms) = arr  # fmt: skip
        for index, name in ((0, "method"), (1, "path"), (2, "query"), (4, "route"),
                            (6, "http_version"), (7, "scheme"), (8, "client"),
                            (9, "request_id")):  # fmt: skip
            _check(arr[index], str, index, name)
        _check(body, int, 10, "body")
        _check(timeout_ms, int, 11, "timeout_ms")
        if body < -1:
            raise ValueError(f"REQ_HEAD[10] (body) must be >= -1, got {body}")
        if timeout_ms < 0:
            raise ValueError(f"REQ_HEAD[11] (timeout_ms) must be >= 0, got {timeout_ms}")
        return cls(
            method, path, query, _pairs(headers, 3, "headers", bytes), route,
            _pairs(params, 5, "params", str), http_version, scheme, client, request_id,
            body, timeout_ms,
        )  # fmt: skip
