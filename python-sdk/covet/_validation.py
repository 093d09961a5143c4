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

import dataclasses
import enum
import json
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Literal, get_args, get_origin

import msgspec

from ._bodycheck import Walk, checker, msgspec_error
from ._convert import (
    Check,
    Invalid,
    choices_text,
    length_checks,
    number_checks,
    parse_bool,
    parse_date,
    parse_datetime,
    parse_decimal,
    parse_float,
    parse_int,
    parse_time,
    parse_uuid,
    pattern_check,
)
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
    c = constraints if constraints is not None and not constraints.empty() else None
    where = f"type {getattr(tp, '__name__', tp)!r}"
    checks: list[Check] = []
    convert: Callable[[str], Any]
    if tp is str or tp is Any or tp is object:
        if c is not None:
            _only(c, where, "min_length", "max_length", "pattern")
            checks = length_checks("character", c.min_length, c.max_length)
            if c.pattern is not None:
                checks.append(pattern_check(c.pattern))
        if not checks:
            return _identity
        convert = _identity
    elif tp is bytes:
        if c is not None:
            _only(c, where, "min_length", "max_length")
            checks = length_checks("byte", c.min_length, c.max_length)
        convert = str.encode
    elif tp in _NUMBERS:
        kind = Decimal if tp is Decimal else tp
        if c is not None:
            _only(c, where, "gt", "ge", "lt", "le", "multiple_of")
            checks = number_checks(kind, c.gt, c.ge, c.lt, c.le, c.multiple_of, where)
        convert = _NUMBERS[tp]
    elif tp in _OTHERS or (isinstance(tp, type) and issubclass(tp, enum.Enum)) or get_origin(tp) is Literal:
        if c is not None:
            _only(c, where)
        if tp in _OTHERS:
            return _OTHERS[tp]
        return _choices(tp)
    else:
        raise TypeError(
            f"cannot convert a string to {tp!r}: supported are str, int, float, bool, Decimal, UUID, "
            "datetime, date, time, bytes, Enum subclasses, Literal[...] and Any"
        )
    if not checks:
        return convert
    return _checked(convert, checks)


def _identity(s: str) -> str:
    return s


_NUMBERS: dict[Any, Callable[[str], Any]] = {int: parse_int, float: parse_float, Decimal: parse_decimal}
_OTHERS: dict[Any, Callable[[str], Any]] = {
    bool: parse_bool, uuid.UUID: parse_uuid, datetime: parse_datetime, date: parse_date, time: parse_time,
}  # fmt: skip


def _only(c: Constraints, where: str, *allowed: str) -> None:
    """TypeError at registration for a constraint the type cannot take (as pydantic)."""
    for f in Constraints.__slots__:
        if f not in allowed and getattr(c, f) is not None:
            raise TypeError(f"{where} cannot take the constraint {f}={getattr(c, f)!r}")


def _checked(convert: Callable[[str], Any], checks: list[Check]) -> Callable[[str], Any]:
    if len(checks) == 1:
        (check,) = checks

        def one(s: str) -> Any:
            v = convert(s)
            check(v)
            return v

        return one

    def many(s: str) -> Any:
        v = convert(s)
        for check in checks:
            check(v)
        return v

    return many


def _choices(tp: Any) -> Callable[[str], Any]:
    """An Enum (by value) or a Literal: a string matches its str values only, as in
    pydantic (an int Literal never matches a string); an int-valued Enum
    (``IntEnum``) also takes its values as integers in a string."""
    if get_origin(tp) is Literal:
        values: list[Any] = list(get_args(tp))
        table = {v: v for v in values if isinstance(v, str)}
        ints: dict[int, Any] = {}
    else:
        values = [m.value for m in tp]
        table = {m.value: m for m in tp if isinstance(m.value, str)}
        ints = {m.value: m for m in tp if type(m.value) is int} if issubclass(tp, int) else {}
    expected = choices_text(values)
    err = Invalid("literal_error" if get_origin(tp) is Literal else "enum",
                  f"Input should be {expected}", {"expected": expected})  # fmt: skip

    def convert(s: str) -> Any:
        v = table.get(s)
        if v is None:
            if ints:
                try:
                    v = ints.get(parse_int(s))
                except Invalid:
                    pass
            if v is None:
                raise err
        return v

    return convert


class BodyField:
    """One embedded body parameter: a field of the JSON object the body must be."""

    __slots__ = ("name", "tp", "required", "default")

    def __init__(self, name: str, tp: Any, required: bool, default: Any) -> None:
        self.name = name
        self.tp = tp
        self.required = required
        self.default = default


_MSGPACK_TYPES = frozenset({"application/msgpack", "application/x-msgpack", "application/vnd.msgpack"})
_JSON, _MSGPACK, _OTHER = 0, 1, 2
_KINDS: dict[str, int] = {}


def _body_kind(content_type: str) -> int:
    """JSON for ``application/json`` and ``application/*+json`` (any parameters, any
    case); MessagePack for its three names; anything else (a missing Content-Type
    too, as FastAPI's default strict_content_type has it) is not read as JSON."""
    kind = _KINDS.get(content_type)
    if kind is None:
        mt = content_type.partition(";")[0].strip().lower()
        main, _, sub = mt.partition("/")
        if mt in _MSGPACK_TYPES:
            kind = _MSGPACK
        elif main == "application" and (sub == "json" or sub.endswith("+json")):
            kind = _JSON
        else:
            kind = _OTHER
        if len(_KINDS) < 64:
            _KINDS[content_type] = kind
    return kind


class _Validator:
    """Validates a decoded (JSON-shaped) value against one type; raises _Failed with
    errors located relative to that value."""

    def validate(self, obj: Any, loc: tuple[Any, ...]) -> Any:
        raise NotImplementedError


class _Failed(Exception):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors)
        self.errors = errors


class _MsgspecValidator(_Validator):
    """msgspec.convert on the value; on failure, the walker names the errors."""

    def __init__(self, tp: Any) -> None:
        self.tp = tp
        self._walk: Walk | None = None

    def validate(self, obj: Any, loc: tuple[Any, ...]) -> Any:
        try:
            return msgspec.convert(obj, self.tp, strict=False)
        except msgspec.ValidationError as e:
            first = e
        if self._walk is None:
            self._walk = checker(self.tp)
        errors: list[dict[str, Any]] = []
        normal = self._walk(obj, loc, errors)
        if errors:
            raise _Failed(errors)
        try:
            return msgspec.convert(normal, self.tp, strict=False)
        except msgspec.ValidationError:
            err = msgspec_error(first, obj)
            err["loc"] = [*loc, *err["loc"][1:]]
            raise _Failed([err]) from None


class _PydanticValidator(_Validator):
    """A pydantic TypeAdapter (a model, or a type holding models), in lax Python mode
    on the decoded JSON, as FastAPI validates bodies."""

    def __init__(self, tp: Any, pydantic: Any) -> None:
        self.adapter = pydantic.TypeAdapter(tp)
        self.error_class = pydantic.ValidationError

    def validate(self, obj: Any, loc: tuple[Any, ...]) -> Any:
        try:
            return self.adapter.validate_python(obj)
        except self.error_class as e:
            raise _Failed([_pydantic_error(err, loc) for err in e.errors(include_url=False)]) from None


def _pydantic_error(err: Any, loc: tuple[Any, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": err["type"], "loc": [*loc, *err["loc"]], "msg": err["msg"], "input": err["input"]}
    ctx = err.get("ctx")
    if ctx is not None:
        out["ctx"] = {k: v if isinstance(v, (str, int, float, bool, Decimal)) or v is None else str(v)
                      for k, v in ctx.items()}  # fmt: skip
    return out


def _pydantic_for(tp: Any) -> Any:
    """The pydantic module when ``tp`` is (or holds) a pydantic model, else None.
    pydantic is never imported here: a model's module has imported it already."""
    pydantic = sys.modules.get("pydantic")
    if pydantic is None:
        return None
    base = pydantic.BaseModel
    seen: list[Any] = [tp]
    while seen:
        t = seen.pop()
        if isinstance(t, type) and issubclass(t, base):
            return pydantic
        seen.extend(get_args(t))
    return None


def _validator(tp: Any) -> _Validator:
    pydantic = _pydantic_for(tp)
    if pydantic is not None:
        return _PydanticValidator(tp, pydantic)
    return _MsgspecValidator(tp)


class BodyDecoder:
    """Decodes a request body into a value of the declared type (see body_decoder)."""

    __slots__ = ("_json", "_msgpack", "_validator", "_required", "_default", "_fields")

    def __init__(self, json_decode: Callable[[bytes], Any] | None, msgpack_decode: Callable[[bytes], Any] | None,
                 validator: _Validator | None, required: bool, default: Any,
                 fields: Sequence[tuple[BodyField, _Validator]] | None) -> None:  # fmt: skip
        self._json = json_decode
        self._msgpack = msgpack_decode
        self._validator = validator
        self._required = required
        self._default = default
        self._fields = fields

    def decode(self, body: bytes, content_type: str) -> Any:
        """The body as the declared type; RequestValidationError (locations under
        ``"body"``) when it is absent while required, not JSON (nor MessagePack), or
        does not fit the type. An empty body is an absent one."""
        if not body:
            if self._fields is not None:
                return self._embedded({})
            if self._required:
                raise RequestValidationError([_missing(("body",))])
            return self._default
        kind = _body_kind(content_type) if content_type else _OTHER
        fast = self._json if kind == _JSON else self._msgpack if kind == _MSGPACK else None
        if fast is not None:
            try:
                return fast(body)
            except (msgspec.ValidationError, msgspec.DecodeError):
                pass
        obj = self._parse(body, kind)
        if self._fields is not None:
            return self._embedded(obj)
        if obj is None and not self._required:
            return self._default
        assert self._validator is not None
        try:
            return self._validator.validate(obj, ("body",))
        except _Failed as e:
            raise RequestValidationError(e.errors) from None

    def _parse(self, body: bytes, kind: int) -> Any:
        if kind == _JSON:
            try:
                return json.loads(body)
            except json.JSONDecodeError as e:
                raise RequestValidationError([{"type": "json_invalid", "loc": ["body", e.pos], "msg": "JSON decode error",
                                               "input": {}, "ctx": {"error": e.msg}}]) from None  # fmt: skip
            except UnicodeDecodeError as e:
                raise RequestValidationError([{"type": "json_invalid", "loc": ["body", e.start],
                                               "msg": "JSON decode error", "input": {},
                                               "ctx": {"error": "Invalid UTF-8"}}]) from None  # fmt: skip
        if kind == _MSGPACK:
            try:
                return msgspec.msgpack.decode(body)
            except msgspec.DecodeError as e:
                raise RequestValidationError([{"type": "msgpack_invalid", "loc": ["body"],
                                               "msg": "MessagePack decode error", "input": {},
                                               "ctx": {"error": str(e)}}]) from None  # fmt: skip
        return body.decode("utf-8", "replace")

    def _embedded(self, obj: Any) -> dict[str, Any]:
        """The embedded form, FastAPI's way: a member that is absent or null is missing
        (input null) when required, its default otherwise; a body that is not an
        object has every member absent."""
        assert self._fields is not None
        members = obj if type(obj) is dict else {}
        out: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        for f, validator in self._fields:
            v = members.get(f.name)
            if v is None:
                if f.required:
                    errors.append(_missing(("body", f.name)))
                else:
                    out[f.name] = f.default
                continue
            try:
                out[f.name] = validator.validate(v, ("body", f.name))
            except _Failed as e:
                errors.extend(e.errors)
        if errors:
            raise RequestValidationError(errors)
        return out


def _missing(loc: tuple[Any, ...]) -> dict[str, Any]:
    return {"type": "missing", "loc": list(loc), "msg": "Field required", "input": None}


def body_decoder(tp: Any, *, required: bool = True, default: Any = None,
                 fields: Sequence[BodyField] | None = None) -> BodyDecoder:  # fmt: skip
    """A decoder for a body of type ``tp``: a msgspec Struct, a dataclass, a TypedDict, a
    pydantic model (when pydantic is installed), or any type msgspec decodes (``dict``,
    ``list[Item]``, ``int``, ``Any``, ...).

    With ``fields`` (and ``tp`` None), the body is a JSON object holding one member per
    field (the embedded form: several body parameters, or ``Body(embed=True)``); the
    decoder returns a dict from field name to value, defaults filled in.

    Content types: ``application/json`` and ``application/*+json`` (with any
    parameters), and MessagePack (``application/msgpack``, ``application/x-msgpack``,
    ``application/vnd.msgpack``). As in FastAPI (its default ``strict_content_type``),
    a body of any other Content-Type, or of none, is not read as JSON: a type that
    wants an object then fails with the body's text as input. Values are converted
    leniently, as pydantic does by default (``"3"`` is 3 for an int field). An absent
    body gives ``default`` when not ``required``; errors are pydantic's (see
    :class:`RequestValidationError`). Raises TypeError when msgspec cannot decode
    ``tp`` and it holds no pydantic model."""
    if fields is not None:
        return _embedded_decoder(list(fields))
    validator = _validator(tp)
    if isinstance(validator, _PydanticValidator):
        adapter = validator.adapter
        error_class = validator.error_class

        def json_fast(body: bytes) -> Any:
            try:
                return adapter.validate_json(body)
            except error_class:
                raise msgspec.ValidationError from None  # the slow path words the errors

        return BodyDecoder(json_fast, None, validator, required, default, None)
    json_dec = msgspec.json.Decoder(tp, strict=False)
    msgpack_dec = msgspec.msgpack.Decoder(tp, strict=False)
    return BodyDecoder(json_dec.decode, msgpack_dec.decode, validator, required, default, None)


def _embedded_decoder(fields: list[BodyField]) -> BodyDecoder:
    validated = [(f, _validator(f.tp)) for f in fields]
    if any(isinstance(v, _PydanticValidator) for _, v in validated):
        return BodyDecoder(None, None, None, True, None, validated)
    spec = [(f.name, f.tp) if f.required else (f.name, f.tp, f.default) for f in fields]
    spec.sort(key=len)  # members without a default first, as defstruct requires
    struct = msgspec.defstruct("EmbeddedBody", spec)
    names = [f.name for f in fields]
    json_dec = msgspec.json.Decoder(struct, strict=False)
    msgpack_dec = msgspec.msgpack.Decoder(struct, strict=False)

    def as_dict(decode: Callable[[bytes], Any]) -> Callable[[bytes], dict[str, Any]]:
        def decode_fields(body: bytes) -> dict[str, Any]:
            value = decode(body)
            return {n: getattr(value, n) for n in names}

        return decode_fields

    return BodyDecoder(as_dict(json_dec.decode), as_dict(msgpack_dec.decode), None, True, None, validated)
