"""Converting request values to a handler's declared types, and the errors when they do
not convert: the 422 body FastAPI users know,
``{"detail": [{"type": ..., "loc": [...], "msg": ..., "input": ..., "ctx": {...}}]}``,
with pydantic v2's error types and messages.

Everything that can be is compiled once per parameter when the route is registered
(``scalar_converter``, ``body_decoder``); per request only the compiled callables run.
A body decodes on msgspec's fast path (C); only when that fails is the input walked
again to name every error, as pydantic would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ._params import Constraints

__all__ = ["RequestValidationError", "Invalid", "scalar_converter", "body_decoder", "BodyDecoder", "BodyField"]


class RequestValidationError(Exception):
    """A request whose parameters or body do not fit the handler's declared types:
    answered 422 with ``{"detail": errors}`` unless an exception handler registered for
    this class (``@app.exception_handler(RequestValidationError)``) answers it.

    ``errors`` are pydantic-shaped dicts: ``type`` (``missing``, ``int_parsing``,
    ``string_too_long``, ...), ``loc`` (a list: the source, ``"query"``, ``"path"``,
    ``"header"``, ``"cookie"`` or ``"body"``, then names and indexes), ``msg``,
    ``input`` and, for some types, ``ctx``."""

    def __init__(self, errors: Sequence[dict[str, Any]]) -> None:
        super().__init__(errors)
        self.errors: list[dict[str, Any]] = list(errors)

    def __str__(self) -> str:
        return f"{len(self.errors)} validation error(s): {self.errors!r}"


class Invalid(Exception):
    """One value that did not convert, before its location is known: pydantic's error
    ``type`` and ``msg``, and its ``ctx`` (or None)."""

    def __init__(self, type: str, msg: str, ctx: dict[str, Any] | None = None) -> None:
        super().__init__(type, msg)
        self.type = type
        self.msg = msg
        self.ctx = ctx

    def error(self, loc: Sequence[str | int], input: Any) -> dict[str, Any]:
        """The error dict for this failure at ``loc`` with ``input``."""
        out: dict[str, Any] = {"type": self.type, "loc": list(loc), "msg": self.msg, "input": input}
        if self.ctx is not None:
            out["ctx"] = self.ctx
        return out


def scalar_converter(tp: Any, constraints: Constraints | None = None) -> Callable[[str], Any]:
    """A function converting one string (a path segment, a query value, a header or a
    cookie) to ``tp``, then checking ``constraints``; it raises :class:`Invalid` with
    pydantic's type, message and ctx for that string.

    ``tp``: ``str``, ``int``, ``float``, ``bool`` (pydantic's words: 1/0, true/false,
    yes/no, on/off, t/f, y/n, any case), ``decimal.Decimal``, ``uuid.UUID``,
    ``datetime.datetime``, ``datetime.date``, ``datetime.time``, ``bytes``, an ``Enum``
    subclass (by value), ``typing.Literal[...]`` of str/int, ``Any`` or ``object``
    (the string itself). ``Optional``/``X | None`` is unwrapped by the caller.
    Anything else raises TypeError here, at registration, saying which types are
    supported (the caller adds the parameter's name)."""
    raise NotImplementedError


class BodyField:
    """One embedded body parameter: a field of the JSON object the body must be."""

    __slots__ = ("name", "tp", "required", "default")

    def __init__(self, name: str, tp: Any, required: bool, default: Any) -> None:
        self.name = name
        self.tp = tp
        self.required = required
        self.default = default


class BodyDecoder:
    """Decodes a request body into a value of the declared type (see body_decoder)."""

    def decode(self, body: bytes, content_type: str) -> Any:
        """The body as the declared type; RequestValidationError (locations under
        ``"body"``) when it is absent while required, not JSON (nor MessagePack), or
        does not fit the type. An empty body is an absent one."""
        raise NotImplementedError


def body_decoder(tp: Any, *, required: bool = True, default: Any = None,
                 fields: Sequence[BodyField] | None = None) -> BodyDecoder:  # fmt: skip
    """A decoder for a body of type ``tp``: a msgspec Struct, a dataclass, a TypedDict, a
    pydantic model (when pydantic is installed), or any type msgspec decodes (``dict``,
    ``list[Item]``, ``int``, ``Any``, ...).

    With ``fields`` (and ``tp`` None), the body is a JSON object holding one member per
    field (the embedded form: several body parameters, or ``Body(embed=True)``); the
    decoder returns a dict from field name to value, defaults filled in.

    Content types: ``application/json`` and ``*/*+json`` (and a missing or other
    Content-Type, as FastAPI does, which reads them as JSON), and MessagePack
    (``application/msgpack``, ``application/x-msgpack``, ``application/vnd.msgpack``).
    Values are converted leniently, as pydantic does by default (``"3"`` is 3 for an
    int field). An absent body gives ``default`` when not ``required``."""
    raise NotImplementedError
