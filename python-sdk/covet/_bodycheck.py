"""Naming every error in a decoded body, as pydantic would, for a type msgspec decodes.

msgspec stops at the first problem and words it its own way; a 422 should list them
all in pydantic's words. ``checker(tp)`` compiles (once, lazily: it is only needed
after a decode has failed) a function that walks a decoded JSON value (dicts, lists,
str, int, float, bool, None) against ``tp``, appends each error to a list, and returns
the value normalised as pydantic's lax mode reads it (``"3"`` → 3 for an int), ready
for ``msgspec.convert``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec
import msgspec.inspect as mi

from ._convert import (
    Check,
    Invalid,
    _timestamp,
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

__all__ = ["Walk", "checker"]

#: ``walk(value, loc, errors)``: the value normalised, errors appended (loc a tuple).
Walk = Callable[[Any, tuple[Any, ...], list[dict[str, Any]]], Any]


def checker(tp: Any) -> Walk:
    """The walker for ``tp`` (anything ``msgspec.inspect.type_info`` describes)."""
    return _Compiler().compile(mi.type_info(tp))


def _kind_error(type_: str, msg: str, ctx: dict[str, Any] | None = None) -> Walk:
    err = Invalid(type_, msg, ctx)

    def walk(obj: Any, loc: tuple[Any, ...], errors: list[dict[str, Any]]) -> Any:
        errors.append(err.error(loc, obj))
        return obj

    return walk


def _scalar(convert: Callable[[Any], Any], checks: list[Check]) -> Walk:
    """A leaf: ``convert`` raises Invalid; then each check."""

    def walk(obj: Any, loc: tuple[Any, ...], errors: list[dict[str, Any]]) -> Any:
        try:
            v = convert(obj)
            for check in checks:
                check(v)
        except Invalid as e:
            errors.append(e.error(loc, obj))
            return obj
        return v

    return walk


def _to_int(obj: Any) -> int:
    t = type(obj)
    if t is int:
        return int(obj)
    if t is str:
        return parse_int(obj)
    if t is float:
        if obj.is_integer():
            return int(obj)
        raise Invalid("int_from_float", "Input should be a valid integer, got a number with a fractional part")
    if t is bool:
        return int(obj)
    raise Invalid("int_type", "Input should be a valid integer")


def _to_float(obj: Any) -> float:
    t = type(obj)
    if t is float or t is int or t is bool:
        return float(obj)
    if t is str:
        return parse_float(obj)
    raise Invalid("float_type", "Input should be a valid number")


def _to_str(obj: Any) -> str:
    if type(obj) is str:
        return str(obj)
    raise Invalid("string_type", "Input should be a valid string")


def _to_bytes(obj: Any) -> bytes:
    if type(obj) is str:
        return str(obj).encode()
    raise Invalid("bytes_type", "Input should be a valid bytes")


_BOOL_PARSING = Invalid("bool_parsing", "Input should be a valid boolean, unable to interpret input")


def _to_bool(obj: Any) -> bool:
    t = type(obj)
    if t is bool:
        return bool(obj)
    if t is str:
        return parse_bool(obj)
    if t is int or t is float:
        if obj == 0 or obj == 1:
            return bool(obj)
        raise _BOOL_PARSING
    raise Invalid("bool_type", "Input should be a valid boolean")


def _to_decimal(obj: Any) -> Decimal:
    t = type(obj)
    if t is str:
        return parse_decimal(obj)
    if t is int:
        return Decimal(obj)
    if t is float:
        if not math.isfinite(obj):
            raise Invalid("finite_number", "Input should be a finite number")
        return Decimal(str(obj))
    raise Invalid("decimal_type", "Decimal input should be an integer, float, string or Decimal object")


def _number_timestamp(obj: float | int) -> datetime:
    seconds = math.floor(obj)
    return _timestamp(seconds, math.floor((obj - seconds) * 1_000_000 + 0.5))


def _to_datetime(obj: Any) -> Any:
    t = type(obj)
    if t is str:
        return parse_datetime(obj)
    if (t is int or t is float) and math.isfinite(obj):
        try:
            return _number_timestamp(obj)
        except Exception as e:
            raise Invalid("datetime_parsing", f"Input should be a valid datetime, {e}", {"error": str(e)}) from None
    raise Invalid("datetime_type", "Input should be a valid datetime")


def _to_date(obj: Any) -> Any:
    t = type(obj)
    if t is str:
        return parse_date(obj)
    if (t is int or t is float) and math.isfinite(obj):
        return parse_date(repr(obj))
    raise Invalid("date_type", "Input should be a valid date")


def _to_time(obj: Any) -> Any:
    if type(obj) is str:
        return parse_time(obj)
    raise Invalid("time_type", "Input should be a valid time")


def _to_uuid(obj: Any) -> Any:
    if type(obj) is str:
        return parse_uuid(obj)
    raise Invalid("uuid_type", "UUID input should be a string, bytes or UUID object")


def _any(obj: Any, loc: tuple[Any, ...], errors: list[dict[str, Any]]) -> Any:
    return obj


class _Compiler:
    """Compiles type_info nodes into walkers; a Struct met again (a recursive type)
    gets a forwarder to the walker being built."""

    def __init__(self) -> None:
        self.models: dict[Any, Walk] = {}

    def compile(self, t: mi.Type) -> Walk:
        if isinstance(t, mi.Metadata):
            return self.compile(t.type)
        if isinstance(t, mi.AnyType):
            return _any
        if isinstance(t, mi.IntType):
            return _scalar(_to_int, number_checks(int, t.gt, t.ge, t.lt, t.le, t.multiple_of))
        if isinstance(t, mi.FloatType):
            return _scalar(_to_float, number_checks(float, t.gt, t.ge, t.lt, t.le, t.multiple_of))
        if isinstance(t, mi.StrType):
            checks = length_checks("character", t.min_length, t.max_length)
            if t.pattern is not None:
                checks.append(pattern_check(t.pattern))
            return _scalar(_to_str, checks)
        if isinstance(t, (mi.BytesType, mi.ByteArrayType)):
            return _scalar(_to_bytes, length_checks("byte", t.min_length, t.max_length))
        if isinstance(t, mi.BoolType):
            return _scalar(_to_bool, [])
        if isinstance(t, mi.NoneType):
            return _scalar(_none, [])
        if isinstance(t, mi.DecimalType):
            return _scalar(_to_decimal, [])
        if isinstance(t, mi.DateTimeType):
            return _scalar(_to_datetime, [])
        if isinstance(t, mi.DateType):
            return _scalar(_to_date, [])
        if isinstance(t, mi.TimeType):
            return _scalar(_to_time, [])
        if isinstance(t, mi.UUIDType):
            return _scalar(_to_uuid, [])
        if isinstance(t, mi.EnumType):
            return _scalar(_enum_converter(t.cls), [])
        if isinstance(t, mi.LiteralType):
            return _scalar(_literal_converter(t.values), [])
        if isinstance(t, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
            return self._sequence(t)
        if isinstance(t, mi.TupleType):
            return self._tuple([self.compile(x) for x in t.item_types])
        if isinstance(t, mi.DictType):
            return self._dict(t)
        if isinstance(t, (mi.StructType, mi.DataclassType, mi.TypedDictType)):
            return self._model(t)
        if isinstance(t, mi.UnionType):
            return self._union(t)
        return _any  # types msgspec alone judges (its own error stands)

    def _sequence(self, t: Any) -> Walk:
        item = self.compile(t.item_type)
        name, label = {
            mi.ListType: ("list", "List"),
            mi.SetType: ("set", "Set"),
            mi.FrozenSetType: ("frozen_set", "Frozenset"),
            mi.VarTupleType: ("tuple", "Tuple"),
        }[type(t)]
        msg = {"frozen_set": "frozenset"}.get(name, name)
        bad = Invalid(f"{name}_type", f"Input should be a valid {msg}")
        lo, hi = t.min_length, t.max_length

        def walk(obj: Any, loc: tuple[Any, ...], errors: list[dict[str, Any]]) -> Any:
            if type(obj) is not list:
                errors.append(bad.error(loc, obj))
                return obj
            before = len(errors)
            out = [item(v, (*loc, i), errors) for i, v in enumerate(obj)]
            if len(errors) == before:
                n = len(out)
                if lo is not None and n < lo:
                    errors.append(_length_error("too_short", "at least", label, "min_length", lo, n, loc, obj))
                elif hi is not None and n > hi:
                    errors.append(_length_error("too_long", "at most", label, "max_length", hi, n, loc, obj))
            return out

        return walk

    def _tuple(self, items: list[Walk]) -> Walk:
        bad = Invalid("tuple_type", "Input should be a valid tuple")

        def walk(obj: Any, loc: tuple[Any, ...], errors: list[dict[str, Any]]) -> Any:
            if type(obj) is not list:
                errors.append(bad.error(loc, obj))
                return obj
            out = [w(v, (*loc, i), errors) for i, (w, v) in enumerate(zip(items, obj))]
            for i in range(len(obj), len(items)):
                errors.append({"type": "missing", "loc": [*loc, i], "msg": "Field required", "input": obj})
            if len(obj) > len(items):
                errors.append(_length_error("too_long", "at most", "Tuple", "max_length", len(items), len(obj), loc, obj))
            return out

        return walk

    def _dict(self, t: mi.DictType) -> Walk:
        key, value = self.compile(t.key_type), self.compile(t.value_type)
        bad = Invalid("dict_type", "Input should be a valid dictionary")
        lo, hi = t.min_length, t.max_length

        def walk(obj: Any, loc: tuple[Any, ...], errors: list[dict[str, Any]]) -> Any:
            if type(obj) is not dict:
                errors.append(bad.error(loc, obj))
                return obj
            out = {key(k, (*loc, k, "[key]"), errors): value(v, (*loc, k), errors) for k, v in obj.items()}
            n = len(obj)
            if lo is not None and n < lo:
                errors.append(_length_error("too_short", "at least", "Dictionary", "min_length", lo, n, loc, obj))
            elif hi is not None and n > hi:
                errors.append(_length_error("too_long", "at most", "Dictionary", "max_length", hi, n, loc, obj))
            return out

        return walk

    def _model(self, t: mi.StructType | mi.DataclassType | mi.TypedDictType) -> Walk:
        known = self.models.get(t.cls)
        if known is not None:
            return known
        cell: list[Walk] = []
        self.models[t.cls] = lambda obj, loc, errors: cell[0](obj, loc, errors)
        fields = [(f.encode_name, f.required, self.compile(f.type)) for f in t.fields]
        names = {f.encode_name for f in t.fields}
        forbid = isinstance(t, mi.StructType) and t.forbid_unknown_fields
        if isinstance(t, mi.DataclassType):
            cls_name = t.cls.__name__
            bad = Invalid("dataclass_type", f"Input should be a dictionary or an instance of {cls_name}",
                          {"class_name": cls_name})  # fmt: skip
        elif isinstance(t, mi.TypedDictType):
            bad = Invalid("dict_type", "Input should be a valid dictionary")
        else:
            bad = Invalid("model_attributes_type", "Input should be a valid dictionary or object to extract fields from")

        def walk(obj: Any, loc: tuple[Any, ...], errors: list[dict[str, Any]]) -> Any:
            if type(obj) is not dict:
                errors.append(bad.error(loc, obj))
                return obj
            out = {}
            for name, required, field in fields:
                if name in obj:
                    out[name] = field(obj[name], (*loc, name), errors)
                elif required:
                    errors.append({"type": "missing", "loc": [*loc, name], "msg": "Field required", "input": obj})
            if forbid:
                for k, v in obj.items():
                    if k not in names:
                        errors.append({"type": "extra_forbidden", "loc": [*loc, k],
                                       "msg": "Extra inputs are not permitted", "input": v})  # fmt: skip
            return out

        cell.append(walk)
        self.models[t.cls] = walk
        return walk

    def _union(self, t: mi.UnionType) -> Walk:
        nullable = any(isinstance(x, mi.NoneType) for x in t.types)
        members = [x for x in t.types if not isinstance(x, mi.NoneType)]
        walks = [(self.compile(x), _tag(x)) for x in members]
        if len(walks) == 1:
            only = walks[0][0]

            def optional(obj: Any, loc: tuple[Any, ...], errors: list[dict[str, Any]]) -> Any:
                return None if obj is None else only(obj, loc, errors)

            return optional

        def walk(obj: Any, loc: tuple[Any, ...], errors: list[dict[str, Any]]) -> Any:
            if obj is None and nullable:
                return None
            tried: list[dict[str, Any]] = []
            for member, tag in walks:
                mine: list[dict[str, Any]] = []
                v = member(obj, (*loc, tag), mine)
                if not mine:
                    return v
                tried.extend(mine)
            errors.extend(tried)
            return obj

        return walk


def _tag(t: mi.Type) -> str:
    """How pydantic names a union member in an error's loc."""
    simple = {mi.IntType: "int", mi.FloatType: "float", mi.StrType: "str", mi.BoolType: "bool",
              mi.BytesType: "bytes", mi.DecimalType: "decimal", mi.UUIDType: "uuid", mi.DateTimeType: "datetime",
              mi.DateType: "date", mi.TimeType: "time"}  # fmt: skip
    if type(t) in simple:
        return simple[type(t)]
    cls = getattr(t, "cls", None)
    if cls is not None:
        return str(cls.__name__)
    if isinstance(t, mi.ListType):
        return f"list[{_tag(t.item_type)}]"
    if isinstance(t, mi.DictType):
        return f"dict[{_tag(t.key_type)},{_tag(t.value_type)}]"
    return type(t).__name__.removesuffix("Type").lower()


def _length_error(type_: str, words: str, label: str, key: str, bound: int, n: int, loc: tuple[Any, ...],
                  obj: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "type": type_,
        "loc": list(loc),
        "msg": f"{label} should have {words} {bound} item{'' if bound == 1 else 's'} after validation, not {n}",
        "input": obj,
        "ctx": {"field_type": label, key: bound, "actual_length": n},
    }


def _none(obj: Any) -> None:
    if obj is not None:
        raise Invalid("none_required", "Input should be None")


def _enum_converter(cls: type[enum.Enum]) -> Callable[[Any], Any]:
    """Enum members by value, strictly typed (``1`` is not ``True``); an int-valued
    enum also takes its values as strings."""
    by_value = {(type(m.value), m.value): m for m in cls}
    expected = choices_text([m.value for m in cls])
    err = Invalid("enum", f"Input should be {expected}", {"expected": expected})
    ints = issubclass(cls, int)

    def convert(obj: Any) -> Any:
        m = by_value.get((type(obj), obj))
        if m is None and ints and type(obj) in (str, float):
            try:
                m = by_value.get((int, _to_int(obj)))
            except Invalid:
                pass
        if m is None:
            raise err
        return m

    return convert


def _literal_converter(values: tuple[Any, ...]) -> Callable[[Any], Any]:
    allowed = {(type(v), v) for v in values}
    expected = choices_text(values)
    err = Invalid("literal_error", f"Input should be {expected}", {"expected": expected})

    def convert(obj: Any) -> Any:
        if (type(obj), obj) not in allowed:
            raise err
        return obj

    return convert


def msgspec_error(e: msgspec.ValidationError | msgspec.DecodeError, obj: Any) -> dict[str, Any]:
    """One error from msgspec's own message (``... - at `$.items[0].name```), for a
    failure the walker did not name."""
    text = str(e)
    loc: list[Any] = ["body"]
    msg, _, path = text.partition(" - at `$")
    for part in path.rstrip("`").replace("]", "").replace("[", ".").split("."):
        if part:
            loc.append(int(part) if part.isdigit() else part)
    return {"type": "value_error", "loc": loc, "msg": f"Value error, {msg}", "input": obj, "ctx": {"error": msg}}
