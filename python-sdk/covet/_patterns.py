"""Route path patterns: parsing, validation, canonical form, conversion and matching.

The syntax is specified in workerproto/PROTOCOL.md section 7, with golden vectors
(workerproto/testdata/patterns.json) that this module and the Go router both pass:

* a pattern starts with ``/`` and is at most 2048 bytes;
* segments are separated by ``/``; a trailing slash is significant (``/users/`` and
  ``/users`` are different routes); this SDK also refuses empty inner segments (``//``);
* static text may hold RFC 3986 path characters (letters, digits, ``-._~!$&'()*+,;=:@``)
  and ``%XX`` escapes, and is matched byte for byte against the raw (still
  percent-encoded) request path, both in canonical form (:func:`canonical_path`: escapes
  in upper-case hex, escaped unreserved characters decoded, so ``/caf%c3%a9`` and
  ``/us%65rs`` match ``/caf%C3%A9`` and ``/users``). Non-ASCII text is accepted here for
  convenience and sent to the gateway percent-encoded as UTF-8 (``/café`` becomes
  ``/caf%C3%A9``, which is what browsers send); any other character is refused;
* a parameter fills a whole segment: ``{name}`` (str: one non-empty segment),
  ``{name:str}`` (the same), ``{name:int}`` (an optional ``-`` then 1 to 19 ASCII digits
  whose value fits a signed 64-bit int), ``{name:uuid}`` (canonical 8-4-4-4-12 hex, any
  case); typed parameters are checked against the raw segment;
* the last segment may be a catch-all ``{name...}`` (alias ``{name:path}``), matching the
  rest of the path including further slashes, possibly empty (``/static/{p...}`` matches
  ``/static/`` but not ``/static``);
* parameter names match ``[A-Za-z_][A-Za-z0-9_]*`` and are not Python keywords (they
  become keyword arguments); they are unique within a pattern, at most 16 of them.

Values handed to handlers are percent-decoded (``a%2Fb`` gives ``a/b``; an encoded
slash never splits segments).

Precedence when matching, segment by segment from the left (the first segment where
two candidates differ settles it): static, then typed parameter (int, uuid), then str
parameter, then catch-all. Two routes of one method conflict when they have the same
shape: the same static text and the same parameter types position by position (names do
not count); int and uuid never match the same segment, so they coexist.
"""

from __future__ import annotations

import keyword
import re
import uuid
from urllib.parse import quote, unquote
from dataclasses import dataclass
from typing import Literal

__all__ = ["MAX_PATTERN_BYTES", "MAX_PARAMS", "Pattern", "Segment", "ParamKind", "ConversionError", "canonical_path"]

MAX_PATTERN_BYTES = 2048
MAX_PARAMS = 16

ParamKind = Literal["str", "int", "uuid", "path"]

_PARAM_RE = re.compile(r"\{(?P<name>[^{}:.]*)(?:(?P<dots>\.\.\.)|:(?P<kind>[^{}]*))?\}")
_STATIC_OK = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2}|[^\x00-\x7f])*")
_STATIC_BAD = re.compile(r"%(?![0-9A-Fa-f]{2})|[^A-Za-z0-9\-._~!$&'()*+,;=:@%\x80-\U0010ffff]")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INT_RE = re.compile(r"-?[0-9]{1,19}")
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_STATIC_SAFE = "-._~!$&'()*+,;=:@%"
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_KINDS: dict[str, ParamKind] = {"str": "str", "int": "int", "uuid": "uuid", "path": "path"}


class ConversionError(ValueError):
    """A raw parameter value does not fit its declared type (the request answers 404)."""


@dataclass(frozen=True, slots=True)
class Segment:
    """One ``/``-separated piece of a pattern: static text or a parameter."""

    text: str  # the static text, or the parameter name
    kind: ParamKind | None  # None for a static segment

    @property
    def rank(self) -> int:
        """Match precedence: lower is more specific."""
        if self.kind is None:
            return 0
        return {"int": 1, "uuid": 1, "str": 2, "path": 3}[self.kind]

    def canonical(self) -> str:
        if self.kind is None:
            return self.text
        if self.kind == "path":
            return "{" + self.text + "...}"
        if self.kind == "str":
            return "{" + self.text + "}"
        return "{" + self.text + ":" + self.kind + "}"

    def shape(self) -> str:
        """The segment with its parameter name erased, for conflict detection."""
        if self.kind is None:
            return self.text
        return {"path": "{...}", "str": "{}"}.get(self.kind, "{:" + self.kind + "}")


def _error(pattern: str, problem: str) -> ValueError:
    return ValueError(f"invalid route pattern {pattern!r}: {problem}")


@dataclass(frozen=True, slots=True)
class Pattern:
    """A parsed, validated route pattern."""

    source: str
    segments: tuple[Segment, ...]

    @classmethod
    def parse(cls, pattern: str) -> Pattern:
        if not isinstance(pattern, str):
            raise TypeError(f"route pattern must be a str, got {type(pattern).__name__}")
        if not pattern.startswith("/"):
            raise _error(pattern, "it must start with '/'")
        if len(pattern.encode("utf-8", "surrogatepass")) > MAX_PATTERN_BYTES:
            raise _error(pattern, f"it is longer than {MAX_PATTERN_BYTES} bytes")
        parts = pattern[1:].split("/")
        segments: list[Segment] = []
        names: set[str] = set()
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if part == "":
                if last:  # "/" itself, or a trailing slash
                    segments.append(Segment("", None))
                    continue
                raise _error(pattern, f"segment {index + 1} is empty ('//')")
            if "{" not in part and "}" not in part:
                if not _STATIC_OK.fullmatch(part):
                    bad = _STATIC_BAD.search(part)
                    char = bad.group() if bad else part
                    raise _error(
                        pattern,
                        f"character {char!r} is not allowed in a static segment; percent-encode it",
                    )
                try:
                    segments.append(Segment(canonical_path(quote(part, safe=_STATIC_SAFE)), None))
                except UnicodeEncodeError:
                    raise _error(pattern, f"segment {part!r} is not valid Unicode text") from None
                continue
            m = _PARAM_RE.fullmatch(part)
            if m is None:
                raise _error(
                    pattern,
                    f"segment {part!r}: a parameter must fill a whole segment, "
                    "as {name}, {name:int}, {name:uuid} or a final {name...}",
                )
            name = m.group("name")
            if not _IDENT_RE.fullmatch(name) or keyword.iskeyword(name):
                raise _error(pattern, f"parameter name {name!r} is not a Python identifier")
            if name in names:
                raise _error(pattern, f"parameter name {name!r} is used twice")
            names.add(name)
            if len(names) > MAX_PARAMS:
                raise _error(pattern, f"more than {MAX_PARAMS} parameters")
            # {name} is str; {name:} names no type and is refused, as the gateway does.
            raw_kind = "path" if m.group("dots") else m.group("kind")
            kind = _KINDS.get(raw_kind) if raw_kind is not None else "str"
            if kind is None:
                raise _error(
                    pattern, f"parameter {name!r} has unknown type {raw_kind!r} (use str, int, uuid or path)"
                )
            if kind == "path" and not last:
                raise _error(pattern, f"catch-all parameter {name!r} must be the last segment")
            segments.append(Segment(name, kind))
        return cls(pattern, tuple(segments))

    @property
    def canonical(self) -> str:
        """The pattern as the gateway sees it (``{p:path}`` becomes ``{p...}``, ``:str`` drops)."""
        return "/" + "/".join(s.canonical() for s in self.segments)

    @property
    def shape(self) -> str:
        """The pattern with parameter names erased: two routes of one method may not share it."""
        return "/" + "/".join(s.shape() for s in self.segments)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(s.text for s in self.segments if s.kind is not None)

    def kinds(self) -> dict[str, ParamKind]:
        return {s.text: s.kind for s in self.segments if s.kind is not None}

    def match(self, segments: list[str]) -> tuple[tuple[int, ...], list[tuple[str, str]]] | None:
        """Match the raw (still percent-encoded) segments of a request path.

        Returns (precedence key, percent-decoded params) or None. Typed parameters are
        checked on the raw segment, so a matched route's params always convert.
        """
        params: list[tuple[str, str]] = []
        ranks: list[int] = []
        for index, seg in enumerate(self.segments):
            if seg.kind == "path":
                if index >= len(segments):
                    return None
                params.append((seg.text, _decode("/".join(segments[index:]))))
                ranks.append(seg.rank)
                return tuple(ranks), params
            if index >= len(segments):
                return None
            value = segments[index]
            if seg.kind is None:
                if value != seg.text:
                    return None
            else:
                try:
                    convert(seg.kind, value)
                except ConversionError:
                    return None
                params.append((seg.text, _decode(value)))
            ranks.append(seg.rank)
        if len(segments) != len(self.segments):
            return None
        return tuple(ranks), params


def _canonical_escape(m: re.Match[str]) -> str:
    c = chr(int(m.group(1), 16))
    return c if c in _UNRESERVED else "%" + m.group(1).upper()


def canonical_path(path: str) -> str:
    """A raw path in the form routes are matched in, as the gateway's router has it
    (RFC 3986 6.2.2): the hex digits of every escape upper-cased, an escaped unreserved
    character (letter, digit, ``-._~``) decoded; other escapes, ``%2F`` among them, and a
    ``%`` not followed by two hex digits stay as they are."""
    if "%" not in path:
        return path
    return _ESCAPE.sub(_canonical_escape, path)


def _decode(raw: str) -> str:
    return unquote(raw, encoding="utf-8", errors="replace")


def convert(kind: ParamKind, raw: str) -> str | int | uuid.UUID:
    """Convert one raw (percent-decoded) parameter value; raise ConversionError."""
    if kind == "int":
        if not _INT_RE.fullmatch(raw):
            raise ConversionError(f"{raw!r} is not an integer")
        value = int(raw)
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ConversionError(f"{raw!r} is out of 64-bit range")
        return value
    if kind == "uuid":
        if not _UUID_RE.fullmatch(raw):
            raise ConversionError(f"{raw!r} is not a UUID")
        return uuid.UUID(raw)
    if kind == "str" and raw == "":
        raise ConversionError("an empty value does not fill a parameter segment")
    return raw
