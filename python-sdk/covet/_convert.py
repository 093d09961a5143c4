"""Strings to typed values the way pydantic v2 reads them in lax mode, with its error
types and words: the parsers behind ``covet._validation``'s converters and its body
error walker.

Each ``parse_*`` takes a str and returns the value or raises ``Invalid``. The date and
time grammar is pydantic's (its ``speedate`` parser): ``YYYY-MM-DD``, a ``T``/``t``/
``_``/space separator, ``HH:MM[:SS[.ffffff]]`` (extra fraction digits dropped), ``Z`` or
``±HH[:]MM``; a number instead is a Unix timestamp in seconds, or in milliseconds
beyond 2e10. Its error wording is kept, since clients see it in 422 bodies.
"""

from __future__ import annotations

import math
import re
import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from collections.abc import Callable
from typing import Any

__all__ = [
    "Invalid",
    "parse_int",
    "parse_float",
    "parse_bool",
    "parse_decimal",
    "parse_uuid",
    "parse_datetime",
    "parse_date",
    "parse_time",
    "number_text",
    "Check",
    "number_checks",
    "length_checks",
    "pattern_check",
    "choices_text",
]


class Invalid(Exception):
    """One value that did not convert, before its location is known: pydantic's error
    ``type`` and ``msg``, and its ``ctx`` (or None)."""

    def __init__(self, type: str, msg: str, ctx: dict[str, Any] | None = None) -> None:
        super().__init__(type, msg)
        self.type = type
        self.msg = msg
        self.ctx = ctx

    def error(self, loc: Any, input: Any) -> dict[str, Any]:
        """The error dict for this failure at ``loc`` (a sequence) with ``input``."""
        out: dict[str, Any] = {"type": self.type, "loc": list(loc), "msg": self.msg, "input": input}
        if self.ctx is not None:
            out["ctx"] = self.ctx
        return out


def number_text(v: Any) -> str:
    """A constraint as pydantic's messages print it: floats without an exponent and
    without a trailing ``.0`` (``0.0`` is ``0``, ``1e-07`` is ``0.0000001``)."""
    if isinstance(v, float) and math.isfinite(v):
        return format(Decimal(repr(v)).normalize(), "f")
    return str(v)


# -- numbers -------------------------------------------------------------------------

_INT_PARSING = ("int_parsing", "Input should be a valid integer, unable to parse string as an integer")
_INT_ZERO_FRACTION = re.compile(r"([+-]?[0-9]+(?:_[0-9]+)*)\.0+")


def parse_int(s: str) -> int:
    """pydantic's str → int: surrounding whitespace ignored, ``_`` between digits, a
    ``.0…`` fraction allowed; ASCII digits only."""
    if s.isascii():
        try:
            return int(s)
        except ValueError:
            pass
    t = s.strip()
    if t.isascii():
        if t is not s:
            try:
                return int(t)
            except ValueError:
                pass
        m = _INT_ZERO_FRACTION.fullmatch(t)
        if m is not None:
            return int(m.group(1))
    raise Invalid(*_INT_PARSING)


def parse_float(s: str) -> float:
    """pydantic's str → float: Python's float syntax in ASCII (``inf``, ``nan`` and
    ``_`` between digits included), surrounding whitespace ignored."""
    t = s if s.isascii() else s.strip()
    if t.isascii():
        try:
            return float(t)
        except ValueError:
            pass
    raise Invalid("float_parsing", "Input should be a valid number, unable to parse string as a number")


_BOOLS = {
    "1": True, "on": True, "t": True, "true": True, "y": True, "yes": True,
    "0": False, "off": False, "f": False, "false": False, "n": False, "no": False,
}  # fmt: skip


def parse_bool(s: str) -> bool:
    """pydantic's str → bool: 1/0, true/false, yes/no, on/off, t/f, y/n in any case."""
    v = _BOOLS.get(s)
    if v is None:
        v = _BOOLS.get(s.lower()) if len(s) <= 5 else None
        if v is None:
            raise Invalid("bool_parsing", "Input should be a valid boolean, unable to interpret input")
    return v


def parse_decimal(s: str) -> Decimal:
    """pydantic's str → Decimal: Python's Decimal syntax, whitespace ignored; NaN and
    infinities refused."""
    try:
        d = Decimal(s.strip())
    except (InvalidOperation, ValueError):
        raise Invalid("decimal_parsing", "Input should be a valid decimal") from None
    if not d.is_finite():
        raise Invalid("finite_number", "Input should be a finite number")
    return d


# -- UUIDs ---------------------------------------------------------------------------

_UUID_FORMS = re.compile(
    r"(?:urn:uuid:|\{(?=.{36}\}$))?([0-9a-fA-F]{8})-?([0-9a-fA-F]{4})-?([0-9a-fA-F]{4})-?([0-9a-fA-F]{4})-?"
    r"([0-9a-fA-F]{12})\}?"
)
_HEX = frozenset("0123456789abcdefABCDEF")
_GROUP_ENDS = (8, 13, 18, 23)


def parse_uuid(s: str) -> uuid.UUID:
    """A UUID in the four spellings pydantic takes: 32 hex digits, hyphenated,
    ``{hyphenated}`` and ``urn:uuid:hyphenated``."""
    n = len(s)
    if n == 36 or n == 32 or n == 38 or n == 45:
        m = _UUID_FORMS.fullmatch(s)
        if m is not None and _uuid_shape_ok(s, n):
            return uuid.UUID("".join(m.groups()))
    raise Invalid("uuid_parsing", f"Input should be a valid UUID, {_uuid_error(s)}", {"error": _uuid_error(s)})


def _uuid_shape_ok(s: str, n: int) -> bool:
    if n == 32:
        return "-" not in s
    if n == 38:
        return s[0] == "{"
    if n == 45:
        return s.startswith("urn:uuid:")
    return all(s[i] == "-" for i in _GROUP_ENDS)


def _uuid_error(s: str) -> str:
    """The words of the UUID parser pydantic uses for a string it refused."""
    body, offset, simple = s, 0, True
    if len(s) >= 2 and s[0] == "{" and s[-1] == "}":
        body, offset, simple = s[1:-1], 1, False
    elif s.startswith("urn:uuid:"):
        body, offset, simple = s[9:], 9, False
    hyphens: list[int] = []
    for i, ch in enumerate(body):
        if ch == "-":
            hyphens.append(i)
        elif ch not in _HEX:
            return f"invalid character: found `{ch}` at {i + offset}"
    if not hyphens and simple:
        return f"invalid length: found {len(s)}"
    if len(hyphens) != 4:
        return f"invalid group count: expected 5, found {len(hyphens) + 1}"
    starts = (0, 9, 14, 19, 24)
    for g in range(4):
        if hyphens[g] != starts[g + 1] - 1:
            expected = (8, 4, 4, 4)[g]
            return f"invalid group length in group {g}: expected {expected}, found {hyphens[g] - starts[g]}"
    return f"invalid group length in group 4: expected 12, found {len(body) - 24}"


# -- dates and times -----------------------------------------------------------------


class _DtError(Exception):
    """A date/time parse failure, in the parser's words."""


_TOO_SHORT = "input is too short"
_EXTRA = "unexpected extra characters at the end of the input"
_MS_WATERSHED = 20_000_000_000
_UNIX_0000 = -62_167_219_200
_UNIX_9999 = 253_402_300_799
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ZONES: dict[int, timezone] = {0: timezone.utc}


def _digit(b: bytes, i: int, what: str) -> int:
    c = b[i] if i < len(b) else 0
    if 48 <= c <= 57:
        return c - 48
    raise _DtError(what)


def _date_partial(b: bytes) -> tuple[int, int, int]:
    if len(b) < 10:
        raise _DtError(_TOO_SHORT)
    y = 0
    for i in range(4):
        y = y * 10 + _digit(b, i, "invalid character in year")
    if b[4] != 45:
        raise _DtError("invalid date separator, expected `-`")
    m = _digit(b, 5, "invalid character in month") * 10 + _digit(b, 6, "invalid character in month")
    if b[7] != 45:
        raise _DtError("invalid date separator, expected `-`")
    d = _digit(b, 8, "invalid character in day") * 10 + _digit(b, 9, "invalid character in day")
    if m in (1, 3, 5, 7, 8, 10, 12):
        last = 31
    elif m in (4, 6, 9, 11):
        last = 30
    elif m == 2:
        last = 29 if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) else 28
    else:
        raise _DtError("month value is outside expected range of 1-12")
    if not 1 <= d <= last:
        raise _DtError("day value is outside expected range")
    return y, m, d


def _time_at(b: bytes, o: int) -> tuple[int, int, int, int, int | None]:
    """HH:MM[:SS[.f]] then an optional zone, from offset ``o`` to the end."""
    if len(b) - o < 5:
        raise _DtError(_TOO_SHORT)
    h = _digit(b, o, "invalid character in hour") * 10 + _digit(b, o + 1, "invalid character in hour")
    if b[o + 2] != 58:
        raise _DtError("invalid time separator, expected `:`")
    mi = _digit(b, o + 3, "invalid character in minute") * 10 + _digit(b, o + 4, "invalid character in minute")
    if h > 23:
        raise _DtError("hour value is outside expected range of 0-23")
    if mi > 59:
        raise _DtError("minute value is outside expected range of 0-59")
    pos, sec, us = o + 5, 0, 0
    if pos < len(b) and b[pos] == 58:
        sec = _digit(b, o + 6, "invalid character in second") * 10 + _digit(b, o + 7, "invalid character in second")
        if sec > 59:
            raise _DtError("second value is outside expected range of 0-59")
        pos = o + 8
        if pos < len(b) and b[pos] in (46, 44):  # . or ,
            pos += 1
            n = 0
            while pos + n < len(b) and 48 <= b[pos + n] <= 57:
                if n < 6:
                    us = us * 10 + b[pos + n] - 48
                n += 1
            if n == 0:
                raise _DtError("second fraction digits missing after `.`")
            if n < 6:
                us *= 10 ** (6 - n)
            pos += n
    tz: int | None = None
    if pos < len(b):
        c = b[pos]
        pos += 1
        if c in (90, 122):  # Z z
            tz = 0
        else:
            if c == 43:
                sign = 1
            elif c == 45:
                sign = -1
            elif c == 0xE2 and b[pos : pos + 2] == b"\x88\x92":  # U+2212 minus
                sign, pos = -1, pos + 2
            else:
                raise _DtError("invalid timezone sign")
            th = _digit(b, pos, "invalid timezone hour") * 10 + _digit(b, pos + 1, "invalid timezone hour")
            nxt = b[pos + 2] if pos + 2 < len(b) else -1
            if nxt == 58:
                pos += 3
                m1 = _digit(b, pos, "invalid timezone minute")
            elif 48 <= nxt <= 57:
                pos += 2
                m1 = nxt - 48
            else:
                raise _DtError("invalid timezone minute")
            m2 = _digit(b, pos + 1, "invalid timezone minute")
            minutes = m1 * 10 + m2
            if minutes >= 60:
                raise _DtError("timezone minute value is outside expected range of 0-59")
            tz = sign * (th * 3600 + minutes * 60)
            if abs(tz) >= 86400:
                raise _DtError("timezone offset must be less than 24 hours")
            pos += 2
    if len(b) > pos:
        raise _DtError(_EXTRA)
    return h, mi, sec, us, tz


def _zone(offset: int | None) -> timezone | None:
    if offset is None:
        return None
    z = _ZONES.get(offset)
    if z is None:
        z = _ZONES.setdefault(offset, timezone(timedelta(seconds=offset)))
    return z


_TS_INT = re.compile(rb"[+-]?[0-9]+")
_TS_FLOAT = re.compile(rb"[+-]?[0-9]*\.(?:[0-9]*)(?:[eE][+-]?[0-9]+)?")
_I64_MAX = 2**63 - 1


def _timestamp(seconds: int, micro: int) -> datetime:
    """A Unix timestamp (seconds, or milliseconds past the watershed) as UTC."""
    if abs(seconds) > _MS_WATERSHED:
        seconds, ms = divmod(seconds, 1000)
        micro += ms * 1000
    if micro >= 1_000_000:
        seconds += micro // 1_000_000
        micro %= 1_000_000
    if seconds < _UNIX_0000:
        raise _DtError("dates before 0000 are not supported as unix timestamps")
    if seconds > _UNIX_9999:
        raise _DtError("dates after 9999 are not supported as unix timestamps")
    try:
        return _EPOCH + timedelta(seconds=seconds, microseconds=micro)
    except OverflowError:
        raise ValueError("year 0 is out of range") from None


def _datetime_bytes(b: bytes) -> datetime:
    """RFC 3339-ish datetime, else a numeric timestamp; _DtError in the datetime's
    words, ValueError (Python's) for a date Python cannot hold."""
    try:
        y, m, d = _date_partial(b)
        if len(b) <= 10 or b[10] not in (84, 116, 32, 95):  # T t space _
            raise _DtError("invalid datetime separator, expected `T`, `t`, `_` or space")
        h, mi, sec, us, tz = _time_at(b, 11)
    except _DtError:
        if _TS_INT.fullmatch(b) and abs(int(b)) <= _I64_MAX:
            return _timestamp(int(b), 0)
        if _TS_FLOAT.fullmatch(b) and any(48 <= c <= 57 for c in b.split(b"e")[0].split(b"E")[0]):
            f = float(b)
            if abs(f) > _MS_WATERSHED:
                f /= 1000
            if not math.isfinite(f):
                raise _DtError("dates after 9999 are not supported as unix timestamps" if f > 0 else
                               "dates before 0000 are not supported as unix timestamps") from None  # fmt: skip
            sec_i = math.floor(f)
            return _timestamp(sec_i, math.floor((f - sec_i) * 1_000_000 + 0.5))
        raise
    return datetime(y, m, d, h, mi, sec, us, _zone(tz))


def _date_error(b: bytes) -> str:
    """Why ``b`` is not a date, in the words pydantic reports for a datetime that is
    neither a datetime nor a date."""
    try:
        _date_partial(b)
        if len(b) > 10:
            return _EXTRA
    except _DtError as e:
        if _TS_INT.fullmatch(b) and abs(int(b)) <= _I64_MAX:
            try:
                _timestamp(int(b), 0)
            except _DtError as te:
                return str(te)
            except ValueError:
                pass
        return str(e)
    return _EXTRA


def parse_datetime(s: str) -> datetime:
    """pydantic's str → datetime (a date alone is midnight; a number is a timestamp,
    in UTC)."""
    b = s.encode()
    try:
        return _datetime_bytes(b)
    except ValueError as e:
        raise Invalid("datetime_parsing", f"Input should be a valid datetime, {e}", {"error": str(e)}) from None
    except _DtError:
        pass
    if len(b) == 10:
        try:
            y, m, d = _date_partial(b)
            return datetime(y, m, d)
        except _DtError:
            pass
        except ValueError as e:
            raise Invalid("datetime_parsing", f"Input should be a valid datetime, {e}", {"error": str(e)}) from None
    err = _date_error(b)
    raise Invalid("datetime_from_date_parsing", f"Input should be a valid datetime or date, {err}", {"error": err})


_INEXACT = ("date_from_datetime_inexact", "Datetimes provided to dates should have zero time - e.g. be exact dates")


def parse_date(s: str) -> date:
    """pydantic's str → date (also a datetime or timestamp at exactly midnight)."""
    b = s.encode()
    if len(b) == 10:
        try:
            y, m, d = _date_partial(b)
            return date(y, m, d)
        except _DtError:
            pass
        except ValueError as e:
            raise Invalid("date_parsing", f"Input should be a valid date in the format YYYY-MM-DD, {e}",
                          {"error": str(e)}) from None  # fmt: skip
    try:
        dt = _datetime_bytes(b)
    except _DtError as e:
        raise Invalid("date_from_datetime_parsing", f"Input should be a valid date or datetime, {e}",
                      {"error": str(e)}) from None  # fmt: skip
    except ValueError:
        raise Invalid(*_INEXACT) from None
    if dt.hour or dt.minute or dt.second or dt.microsecond:
        raise Invalid(*_INEXACT)
    return dt.date()


def parse_time(s: str) -> time:
    """pydantic's str → time: ``HH:MM[:SS[.f]]`` and an optional zone."""
    try:
        h, mi, sec, us, tz = _time_at(s.encode(), 0)
    except _DtError as e:
        raise Invalid("time_parsing", f"Input should be in a valid time format, {e}", {"error": str(e)}) from None
    return time(h, mi, sec, us, _zone(tz))


# -- constraints ---------------------------------------------------------------------

Check = Callable[[Any], None]


def number_checks(kind: type, gt: Any = None, ge: Any = None, lt: Any = None, le: Any = None,
                  multiple_of: Any = None, where: str = "") -> list[Check]:  # fmt: skip
    """Checks of a converted number against bounds, each raising pydantic's error.
    ``kind`` (int, float or Decimal) is what the bounds are converted to, as pydantic
    converts them; a bound an int field cannot take raises TypeError (``where``
    names the parameter)."""
    checks: list[Check] = []
    for name, bound, typ, words, ok in (
        ("gt", gt, "greater_than", "greater than", lambda v, b: v > b),
        ("ge", ge, "greater_than_equal", "greater than or equal to", lambda v, b: v >= b),
        ("lt", lt, "less_than", "less than", lambda v, b: v < b),
        ("le", le, "less_than_equal", "less than or equal to", lambda v, b: v <= b),
        ("multiple_of", multiple_of, "multiple_of", "a multiple of", _is_multiple),
    ):
        if bound is None:
            continue
        b = _bound(kind, name, bound, where)
        checks.append(_bound_check(ok, b, Invalid(typ, f"Input should be {words} {number_text(b)}", {name: b})))
    return checks


def _bound(kind: type, name: str, bound: Any, where: str) -> Any:
    if kind is int:
        if isinstance(bound, float) and not bound.is_integer():
            raise TypeError(f"{where}: {name}={bound!r} cannot constrain an int (give an int)")
        return int(bound)
    if kind is Decimal:
        return Decimal(str(bound))
    return float(bound)


def _is_multiple(v: Any, m: Any) -> bool:
    if isinstance(v, float):
        rem = math.fmod(v, m)
        tolerance = abs(m) / 1e9
        return bool(abs(rem) <= tolerance or abs(abs(rem) - abs(m)) <= tolerance)
    return bool(v % m == 0)


def _bound_check(ok: Callable[[Any, Any], bool], b: Any, err: Invalid) -> Check:
    def check(v: Any) -> None:
        if not ok(v, b):
            raise err

    return check


def length_checks(unit: str, min_length: int | None, max_length: int | None) -> list[Check]:
    """Length checks for str (``unit`` "character", as "String should ...") or bytes
    ("byte", "Data should ...")."""
    noun = "String" if unit == "character" else "Data"
    short = "string_too_short" if unit == "character" else "bytes_too_short"
    long_ = "string_too_long" if unit == "character" else "bytes_too_long"
    checks: list[Check] = []
    if min_length is not None:
        n = min_length
        err = Invalid(short, f"{noun} should have at least {n} {unit}{'' if n == 1 else 's'}", {"min_length": n})
        checks.append(_bound_check(lambda v, b: len(v) >= b, n, err))
    if max_length is not None:
        n = max_length
        err = Invalid(long_, f"{noun} should have at most {n} {unit}{'' if n == 1 else 's'}", {"max_length": n})
        checks.append(_bound_check(lambda v, b: len(v) <= b, n, err))
    return checks


def pattern_check(pattern: str) -> Check:
    """A regular expression searched in the value, as pydantic does."""
    search = re.compile(pattern).search
    err = Invalid("string_pattern_mismatch", f"String should match pattern '{pattern}'", {"pattern": pattern})

    def check(v: Any) -> None:
        if search(v) is None:
            raise err

    return check


def choices_text(values: Any) -> str:
    """``'a', 'b' or 'c'``: the expected values of an Enum or a Literal."""
    reprs = [repr(v) for v in values]
    return reprs[0] if len(reprs) == 1 else ", ".join(reprs[:-1]) + " or " + reprs[-1]
