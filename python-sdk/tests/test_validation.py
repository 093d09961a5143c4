"""covet._validation against pydantic: string conversions (differential, hypothesis) and
body decoding (successes, and the 422 error lists FastAPI answers for the same bodies).

Expected body errors are computed in-test with pydantic's TypeAdapter on the decoded
JSON (lax Python mode, as FastAPI validates bodies) with "body" prefixed to each loc,
or, where marked, are bodies observed from FastAPI 0.165 / pydantic 2.14."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import math
import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from covet._params import Constraints
from covet._validation import BodyField, Invalid, RequestValidationError, body_decoder, scalar_converter

pydantic = pytest.importorskip("pydantic", reason="the differential tests compare against pydantic")
from pydantic import Field, TypeAdapter  # noqa: E402
from typing_extensions import TypedDict  # noqa: E402


class Color(enum.Enum):
    red = "red"
    blue = "blue"


class Level(enum.IntEnum):
    low = 1
    high = 2


def pydantic_result(tp: Any, c: Constraints | None, s: str) -> tuple[str, Any]:
    """("ok", value) or ("err", (type, msg, ctx)) from pydantic for str ``s``."""
    meta = {} if c is None else {k: getattr(c, k) for k in Constraints.__slots__ if getattr(c, k) is not None}
    adapter = TypeAdapter(Annotated[tp, Field(**meta)] if meta else tp)
    try:
        return "ok", adapter.validate_python(s)
    except pydantic.ValidationError as e:
        (err,) = e.errors(include_url=False)
        return "err", (err["type"], err["msg"], err.get("ctx"))


def covet_result(tp: Any, c: Constraints | None, s: str) -> tuple[str, Any]:
    try:
        return "ok", scalar_converter(tp, c)(s)
    except Invalid as e:
        return "err", (e.type, e.msg, e.ctx)


def same_value(a: Any, b: Any) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, (dt.datetime, dt.time)):
        return a.replace(tzinfo=None) == b.replace(tzinfo=None) and a.utcoffset() == b.utcoffset()
    return bool(a == b) and type(a) is type(b)


def assert_same(tp: Any, s: str, c: Constraints | None = None) -> None:
    want = pydantic_result(tp, c, s)
    got = covet_result(tp, c, s)
    assert got[0] == want[0], (s, got, want)
    if want[0] == "ok":
        assert same_value(got[1], want[1]), (s, got, want)
    else:
        assert got[1] == want[1], (s, got, want)


# -- strings -------------------------------------------------------------------------

numberish = st.from_regex(r"\A[ +\-]?[0-9_]{0,6}(\.[0-9_]{0,3})?([eE][+-]?[0-9]{1,3})?[ ]?\Z")
words = st.sampled_from(["", " ", "inf", "-inf", "nan", "NaN", "Infinity", "1,5", "0x10", "１", "1\xa0", "\t7\n",
                         "true", "False", "YES", "off", "t", "N", "maybe", "2", " true"])  # fmt: skip
anytext = st.text(max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.one_of(numberish, words, anytext))
def test_int_float_bool_decimal_match_pydantic(s: str) -> None:
    for tp in (int, float, bool):
        assert_same(tp, s)
    # Decimal: pydantic and Python agree on the syntax; non-finite values refused.
    assert_same(Decimal, s)


@settings(max_examples=150, deadline=None)
@given(numberish, st.sampled_from([
    Constraints(ge=1), Constraints(gt=0), Constraints(lt=10), Constraints(le=-1), Constraints(multiple_of=3),
    Constraints(ge=0, le=100),
]))  # fmt: skip
def test_int_constraints_match_pydantic(s: str, c: Constraints) -> None:
    assert_same(int, s, c)


@settings(max_examples=150, deadline=None)
@given(numberish, st.sampled_from([Constraints(gt=0), Constraints(ge=0.5), Constraints(lt=1e20), Constraints(le=1e-7),
                                   Constraints(multiple_of=0.5)]))  # fmt: skip
def test_float_constraints_match_pydantic(s: str, c: Constraints) -> None:
    assert_same(float, s, c)


@settings(max_examples=150, deadline=None)
@given(anytext, st.sampled_from([Constraints(min_length=2), Constraints(max_length=3), Constraints(max_length=1),
                                 Constraints(pattern=r"^[a-z]+$"), Constraints(min_length=1, pattern="a")]))  # fmt: skip
def test_str_constraints_match_pydantic(s: str, c: Constraints) -> None:
    assert_same(str, s, c)
    if c.pattern is None:
        assert_same(bytes, s, c)


hexes = st.text("0123456789abcdefABCDEF", min_size=0, max_size=36)


def hyphenate(h: str, cuts: list[int]) -> str:
    for i in sorted(set(c % (len(h) + 1) for c in cuts), reverse=True):
        h = h[:i] + "-" + h[i:]
    return h


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    hexes,
    st.builds(hyphenate, st.text("0123456789abcdef", min_size=28, max_size=34), st.lists(st.integers(0, 40), max_size=5)),
    st.builds(lambda u, w: w.format(u), st.uuids().map(str), st.sampled_from(["{}", "{{{}}}", "urn:uuid:{}", "{} ",
                                                                              "x{}", "{}g", "{{{}"])),
    anytext,
))  # fmt: skip
@example("12345678-1234-5678-1234-56781234567")
@example("12345678-12345678-1234-567812345678")
def test_uuid_matches_pydantic(s: str) -> None:
    assert_same(uuid.UUID, s)


digits = st.text("0123456789", min_size=1, max_size=4)


def stamp(parts: list[str]) -> str:
    return "".join(parts)


iso_like = st.builds(stamp, st.lists(st.one_of(
    digits, st.sampled_from(["2024", "1999", "0000", "-", "-01", "-02-29", "-13", "-31", "T", "t", " ", "_", "X", ":",
                             ":00", ":59", ":60", "12", "23", "24", ".", ",", ".123", ".1234567", "Z", "z", "+01:00",
                             "+0100", "-05:30", "+25:00", "+01:60", "\u221201:00", "+1", "e3"]),
), max_size=9))  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.one_of(iso_like, st.builds(lambda d: d.isoformat(), st.datetimes()), st.builds(
    lambda d, sep, frac, tz: d.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + frac + tz,
    st.datetimes(min_value=dt.datetime(1000, 1, 1)), st.sampled_from("Tt _"),
    st.sampled_from(["", ".5", ".123456", ".1234567", ","]), st.sampled_from(["", "Z", "+01:00", "-0830", "+24:00"]),
), st.integers(-10**12, 10**15).map(str), st.floats(-1e12, 1e12).map(repr), anytext))  # fmt: skip
@example("zz")
@example("2024-01-01T25:00:00")
@example("253402300800000")
@example("-99999999999999999")
def test_datetimes_match_pydantic(s: str) -> None:
    assert_same(dt.datetime, s)
    assert_same(dt.date, s)
    assert_same(dt.time, s)


@pytest.mark.parametrize("tp", [Color, Level, Literal["a", "b", "c"], Literal[1, 2], Literal["x"]])
@pytest.mark.parametrize("s", ["red", "blue", "green", "1", "2", " 1 ", "1.0", "3", "a", "c", "x", ""])
def test_choices_match_pydantic(tp: Any, s: str) -> None:
    assert_same(tp, s)


def test_reference_messages_from_fastapi() -> None:
    """The words the brief quotes, observed from FastAPI 0.165 query parameters."""
    cases = [
        (int, None, "abc", ("int_parsing", "Input should be a valid integer, unable to parse string as an integer", None)),
        (str, Constraints(max_length=3), "abcd",
         ("string_too_long", "String should have at most 3 characters", {"max_length": 3})),
        (int, Constraints(ge=1), "0", ("greater_than_equal", "Input should be greater than or equal to 1", {"ge": 1})),
        (Color, None, "green", ("enum", "Input should be 'red' or 'blue'", {"expected": "'red' or 'blue'"})),
        (uuid.UUID, None, "zz", ("uuid_parsing", "Input should be a valid UUID, invalid character: found `z` at 0",
                                 {"error": "invalid character: found `z` at 0"})),
        (dt.datetime, None, "zz", ("datetime_from_date_parsing", "Input should be a valid datetime or date, input is too short",
                                   {"error": "input is too short"})),
        (bool, None, "maybe", ("bool_parsing", "Input should be a valid boolean, unable to interpret input", None)),
    ]  # fmt: skip
    for tp, c, s, want in cases:
        assert covet_result(tp, c, s) == ("err", want)


def test_unsupported_types_and_constraints_refused_at_registration() -> None:
    with pytest.raises(TypeError, match="cannot convert"):
        scalar_converter(list)
    with pytest.raises(TypeError, match="min_length"):
        scalar_converter(int, Constraints(min_length=1))
    with pytest.raises(TypeError, match="ge"):
        scalar_converter(str, Constraints(ge=1))
    with pytest.raises(TypeError, match="cannot constrain an int"):
        scalar_converter(int, Constraints(ge=0.5))


# -- bodies --------------------------------------------------------------------------


class TagS(msgspec.Struct):
    name: str


class ItemS(msgspec.Struct):
    name: str
    price: float
    qty: int = 1
    ok: bool = False
    tags: list[TagS] = []
    m: dict[str, int] = {}
    nick: str | None = None
    u: uuid.UUID | None = None
    when: dt.datetime | None = None
    level: Annotated[int, msgspec.Meta(ge=1, le=5)] = 1
    code: Annotated[str, msgspec.Meta(min_length=2, max_length=4)] = "ab"
    color: Color = Color.red


class TagP(pydantic.BaseModel):
    name: str


class ItemP(pydantic.BaseModel):
    """ItemS's twin: the reference FastAPI validates against."""

    name: str
    price: float
    qty: int = 1
    ok: bool = False
    tags: list[TagP] = []
    m: dict[str, int] = {}
    nick: str | None = None
    u: uuid.UUID | None = None
    when: dt.datetime | None = None
    level: Annotated[int, Field(ge=1, le=5)] = 1
    code: Annotated[str, Field(min_length=2, max_length=4)] = "ab"
    color: Color = Color.red


@dataclasses.dataclass
class DC:
    a: int
    b: str = "x"


class TDict(TypedDict):
    a: int


def fastapi_errors(tp: Any, body: bytes) -> list[dict[str, Any]] | None:
    """What FastAPI answers for a JSON body: pydantic on json.loads (from_attributes,
    as FastAPI's ModelField validates), loc under "body"; None when it accepts."""
    try:
        TypeAdapter(tp).validate_python(json.loads(body), from_attributes=True)
    except pydantic.ValidationError as e:
        return [{k: (["body", *v] if k == "loc" else v) for k, v in err.items()} for err in e.errors(include_url=False)]
    return None


def covet_errors(tp: Any, body: bytes, content_type: str = "application/json") -> list[dict[str, Any]] | None:
    try:
        body_decoder(tp).decode(body, content_type)
    except RequestValidationError as e:
        return e.errors()
    return None


def normal(errors: list[dict[str, Any]] | None) -> Any:
    """Errors as their JSON (what the client sees)."""
    return None if errors is None else json.loads(msgspec.json.encode(errors))


ITEM_BODIES = [
    b'{"name": 1, "price": "x", "qty": 1.5, "ok": "maybe", "tags": [{"name": 2}, 3], "m": {"a": "b"}, "nick": 5,'
    b' "u": "zz", "when": "x", "level": 9, "code": "a", "color": "green"}',
    b'{"price": true, "qty": true, "ok": 2, "tags": "x", "m": []}',
    b'{"name": "a", "price": null, "qty": null, "ok": null, "tags": null, "m": null}',
    b'{"name": "a", "price": "3", "qty": "7", "ok": "yes", "when": 1700000000, "u": "12345678123456781234567812345678"}',
    b'{"name": "a", "price": 1, "qty": 1.0, "level": "0", "code": "abcde", "when": "2024-01-01"}',
    b'[1]', b'"x"', b'null', b'{}', b'{"name": "a", "price": 2, "tags": [{}, {"name": null}]}',
]  # fmt: skip


@pytest.mark.parametrize("body", ITEM_BODIES)
def test_struct_body_errors_equal_fastapi(body: bytes) -> None:
    assert normal(covet_errors(ItemS, body)) == normal(fastapi_errors(ItemP, body))


@pytest.mark.parametrize("body", ITEM_BODIES)
def test_pydantic_model_body_errors_equal_fastapi(body: bytes) -> None:
    assert normal(covet_errors(ItemP, body)) == normal(fastapi_errors(ItemP, body))


@pytest.mark.parametrize("tp", [DC, TDict, list[TagS], dict[str, int], int])
@pytest.mark.parametrize("body", [b"[1]", b"{}", b'{"a": "x"}', b'{"a": 3}', b'[{"name": 1}, {}]', b'"7"', b"7.5"])
def test_other_body_types_errors_equal_fastapi(tp: Any, body: bytes) -> None:
    ref = {TagS: TagP}
    ref_tp = list[TagP] if tp == list[TagS] else ref.get(tp, tp)
    assert normal(covet_errors(tp, body)) == normal(fastapi_errors(ref_tp, body))


def test_body_success_values() -> None:
    item = body_decoder(ItemS).decode(b'{"name": "a", "price": "3", "tags": [{"name": "t"}]}', "application/json")
    assert item == ItemS(name="a", price=3.0, tags=[TagS("t")])
    lax = body_decoder(ItemS).decode(b'{"name": "a", "price": 1, "ok": "yes", "qty": "1.0"}', "application/json")
    assert (lax.ok, lax.qty) == (True, 1)  # msgspec refused these; the walker's normalised value passes
    assert body_decoder(DC).decode(b'{"a": "4"}', "application/json; charset=utf-8") == DC(4)
    assert body_decoder(ItemP).decode(b'{"name": "a", "price": 2}', "application/vnd.api+json") == ItemP(name="a", price=2)
    packed = msgspec.msgpack.encode({"name": "m", "price": 1.5})
    assert body_decoder(ItemS).decode(packed, "application/x-msgpack") == ItemS(name="m", price=1.5)
    assert body_decoder(list[int]).decode(b"[1, 2]", "application/json") == [1, 2]


def test_absent_and_non_json_bodies_as_fastapi() -> None:
    """Observed from FastAPI 0.165: empty body; invalid JSON; text/plain and a missing
    Content-Type are not read as JSON (its default strict_content_type)."""
    assert covet_errors(ItemS, b"") == [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]
    assert body_decoder(ItemS, required=False, default=None).decode(b"", "application/json") is None
    assert body_decoder(ItemS, required=False, default=None).decode(b"null", "application/json") is None
    assert covet_errors(ItemS, b"not json") == [{"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error",
                                                 "input": {}, "ctx": {"error": "Expecting value"}}]  # fmt: skip
    assert covet_errors(ItemS, b'{"a":')[0]["loc"] == ["body", 5]  # type: ignore[index]
    attrs = {"type": "model_attributes_type", "loc": ["body"],
             "msg": "Input should be a valid dictionary or object to extract fields from", "input": "{}"}  # fmt: skip
    assert covet_errors(ItemS, b"{}", "text/plain") == [attrs]
    assert covet_errors(ItemS, b"{}", "") == [attrs]


def test_embedded_fields_as_fastapi() -> None:
    """Observed from FastAPI 0.165 (two body parameters, item: Item and n: int)."""
    dec = body_decoder(None, fields=[BodyField("item", ItemS, True, None), BodyField("n", int, True, None),
                                     BodyField("note", str, False, "-")])  # fmt: skip
    missing = [{"type": "missing", "loc": ["body", "item"], "msg": "Field required", "input": None},
               {"type": "missing", "loc": ["body", "n"], "msg": "Field required", "input": None}]  # fmt: skip
    for body in (b"{}", b"[1]", b""):
        with pytest.raises(RequestValidationError) as e:
            dec.decode(body, "application/json")
        assert e.value.errors() == missing
    with pytest.raises(RequestValidationError) as e:
        dec.decode(b'{"item": 1, "n": "x"}', "application/json")
    assert normal(e.value.errors()) == [
        {"type": "model_attributes_type", "loc": ["body", "item"],
         "msg": "Input should be a valid dictionary or object to extract fields from", "input": 1},
        {"type": "int_parsing", "loc": ["body", "n"],
         "msg": "Input should be a valid integer, unable to parse string as an integer", "input": "x"},
    ]  # fmt: skip
    got = dec.decode(b'{"item": {"name": "a", "price": 1}, "n": "5"}', "application/json")
    assert got == {"item": ItemS(name="a", price=1.0), "n": 5, "note": "-"}
    mixed = body_decoder(None, fields=[BodyField("item", ItemP, True, None), BodyField("n", int, True, None)])
    assert mixed.decode(b'{"item": {"name": "a", "price": 1}, "n": 2}', "application/json") == {
        "item": ItemP(name="a", price=1), "n": 2}  # fmt: skip


def test_a_failure_the_walker_cannot_name_is_still_a_422() -> None:
    class Aware(msgspec.Struct):
        a: Annotated[dt.datetime, msgspec.Meta(tz=True)]

    # the walker does not judge time zones; msgspec refuses a naive datetime
    errors = covet_errors(Aware, b'{"a": "2024-01-01T00:00:00"}')
    assert errors is not None and len(errors) == 1 and errors[0]["loc"] == ["body", "a"], errors
