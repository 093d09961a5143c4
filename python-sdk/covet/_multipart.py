"""A small, strict multipart/form-data parser (RFC 7578) over a complete body.

It never raises anything but MultipartError (a ValueError) on malformed input, and it
bounds the work an attacker can ask for: part count, header block size, header count.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

__all__ = ["MultipartError", "Part", "parse_multipart", "parse_options_header"]

MAX_PARTS = 1000
MAX_PART_HEADER_BYTES = 16 * 1024
MAX_PART_HEADERS = 32


class MultipartError(ValueError):
    """The multipart body is malformed."""


@dataclass(frozen=True, slots=True)
class Part:
    """One body part: its header fields (lower-case name, raw value) and its content."""

    headers: list[tuple[str, bytes]]
    content: bytes

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


def parse_options_header(value: str) -> tuple[str, dict[str, str]]:
    """Split ``main/type; key=value; key="quoted \\"value\\""`` into the lower-cased main
    value and its parameters (names lower-cased, first occurrence wins).

    ``key*=charset'lang'pct-encoded`` (RFC 8187) is decoded and stored under ``key*``.
    """
    n = len(value)
    i = value.find(";")
    main = (value if i == -1 else value[:i]).strip().lower()
    params: dict[str, str] = {}
    if i == -1:
        return main, params
    pos = i + 1
    while pos < n:
        while pos < n and value[pos] in " \t;":
            pos += 1
        start = pos
        while pos < n and value[pos] not in "=;":
            pos += 1
        name = value[start:pos].strip().lower()
        text = ""
        if pos < n and value[pos] == "=":
            pos += 1
            while pos < n and value[pos] in " \t":
                pos += 1
            if pos < n and value[pos] == '"':
                pos += 1
                chars: list[str] = []
                while pos < n and value[pos] != '"':
                    if value[pos] == "\\" and pos + 1 < n and value[pos + 1] in '"\\':
                        pos += 1
                    chars.append(value[pos])
                    pos += 1
                pos += 1  # closing quote (or end of input)
                text = "".join(chars)
                while pos < n and value[pos] != ";":
                    pos += 1
            else:
                start = pos
                while pos < n and value[pos] != ";":
                    pos += 1
                text = value[start:pos].strip()
        if name.endswith("*"):
            text = _decode_ext_value(text)
        if name and name not in params:
            params[name] = text
    return main, params


def _decode_ext_value(text: str) -> str:
    charset, sep, rest = text.partition("'")
    if not sep:
        return text
    _lang, sep, encoded = rest.partition("'")
    if not sep:
        return text
    try:
        return unquote(encoded, encoding=charset or "utf-8", errors="strict")
    except (LookupError, UnicodeDecodeError):
        raise MultipartError(f"undecodable extended parameter value {text!r}") from None


def parse_multipart(body: bytes, boundary: str) -> list[Part]:
    """Parse a whole multipart body delimited by ``boundary``."""
    if not 1 <= len(boundary) <= 70 or not boundary.isascii():
        raise MultipartError("the multipart boundary must be 1 to 70 ASCII characters")
    delim = b"--" + boundary.encode("ascii")
    if body.startswith(delim):
        pos = len(delim)
    else:
        first = body.find(b"\r\n" + delim)
        if first == -1:
            raise MultipartError("the body does not contain the opening boundary")
        pos = first + 2 + len(delim)
    separator = b"\r\n" + delim
    parts: list[Part] = []
    n = len(body)
    while True:
        if body.startswith(b"--", pos):
            return parts  # close delimiter; anything after it is epilogue
        while pos < n and body[pos] in b" \t":
            pos += 1
        if not body.startswith(b"\r\n", pos):
            raise MultipartError("a boundary line is not followed by CRLF")
        pos += 2
        if len(parts) == MAX_PARTS:
            raise MultipartError(f"more than {MAX_PARTS} parts")
        if body.startswith(b"\r\n", pos):
            headers: list[tuple[str, bytes]] = []
            content_start = pos + 2
        else:
            end = body.find(b"\r\n\r\n", pos, pos + MAX_PART_HEADER_BYTES + 4)
            if end == -1:
                raise MultipartError("a part's header block is unterminated or too large")
            headers = _parse_headers(body[pos:end])
            content_start = end + 4
        content_end = body.find(separator, content_start)
        if content_end == -1:
            raise MultipartError("a part is not terminated by a boundary")
        parts.append(Part(headers, body[content_start:content_end]))
        pos = content_end + len(separator)


def _parse_headers(block: bytes) -> list[tuple[str, bytes]]:
    lines = block.split(b"\r\n")
    if len(lines) > MAX_PART_HEADERS:
        raise MultipartError(f"a part has more than {MAX_PART_HEADERS} header fields")
    headers: list[tuple[str, bytes]] = []
    for line in lines:
        name, colon, value = line.partition(b":")
        name = name.strip()
        if not colon or not name:
            raise MultipartError(f"malformed part header line {line[:80]!r}")
        headers.append((name.decode("latin-1").lower(), value.strip()))
    return headers
