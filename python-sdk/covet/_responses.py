"""Response classes and the conversion of handler return values into responses.

What the worker puts on the wire comes from three members of every response:
``status`` (int), ``raw_headers`` (``(lower-case name, bytes)`` pairs; never
Content-Length, which the gateway derives from ``body_length``), ``body_length`` (bytes,
or -1 when streamed) and ``body_chunks()`` (an async iterator of the body's bytes).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import msgspec

from ._datastructures import MutableHeaders, encode_header

__all__ = [
    "Response",
    "JSONResponse",
    "HTMLResponse",
    "PlainTextResponse",
    "RedirectResponse",
    "StreamingResponse",
    "FileResponse",
    "HeadersLike",
    "to_response",
]

HeadersLike = Mapping[str, "str | bytes"] | Iterable[tuple[str, "str | bytes"]]

_COOKIE_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_COOKIE_VALUE_RE = re.compile(r'[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*')
_ATTR_BAD_RE = re.compile(r"[;\x00-\x1f\x7f]")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _enc_hook(o: Any) -> Any:
    """What msgspec does not encode itself: pydantic models (by their own JSON dump)."""
    dump = getattr(o, "model_dump", None)
    if dump is not None and callable(dump):
        return dump(mode="json")
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


_encoder = msgspec.json.Encoder(enc_hook=_enc_hook)


def encode_json(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON (msgspec): dicts, lists, tuples, sets, str,
    numbers, bools, None, and msgspec Structs, dataclasses, TypedDicts, pydantic
    models, datetimes (RFC 3339), dates, times, UUIDs, Decimals (as strings, exact, as pydantic writes them) and Enums
    (by value). NaN and the infinities become ``null``; anything else raises
    TypeError."""
    try:
        return _encoder.encode(value)
    except msgspec.EncodeError as e:
        raise TypeError(str(e)) from None


_CONTENT_TYPES: dict[str, tuple[str, bytes]] = {}
_CONTENT_TYPES_MAX = 64


def _content_type(media_type: str) -> tuple[str, bytes]:
    """The Content-Type field for ``media_type`` (``text/*`` gains ``; charset=utf-8``
    unless it names a charset), validated; the first few distinct types are cached."""
    field = _CONTENT_TYPES.get(media_type)
    if field is None:
        value = media_type
        if value.startswith("text/") and "charset=" not in value.lower():
            value += "; charset=utf-8"
        field = encode_header("content-type", value)
        if len(_CONTENT_TYPES) < _CONTENT_TYPES_MAX:
            _CONTENT_TYPES[media_type] = field
    return field


def _check_status(status: int) -> int:
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise ValueError(f"response status must be an int in 200..599, got {status!r}")
    return status


class Response:
    """A response with a body known in full. A ``str`` body is encoded as UTF-8.

    ``media_type`` sets Content-Type unless ``headers`` already do; a ``text/*`` media
    type without a charset gets ``; charset=utf-8``.
    """

    media_type: ClassVar[str | None] = None
    #: What to run once the response has been sent (``background=``): an async callable
    #: of no arguments, such as a :class:`covet.BackgroundTasks`.
    background: Callable[[], Awaitable[None]] | None = None

    def __init__(
        self,
        body: bytes | str = b"",
        status: int = 200,
        headers: HeadersLike | None = None,
        media_type: str | None = None,
        *,
        status_code: int | None = None,
        background: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if status_code is not None:
            status = status_code
        self.status = status if type(status) is int and 200 <= status <= 599 else _check_status(status)
        if background is not None:
            self.background = background
        self.body = self.render(body)
        media_type = media_type if media_type is not None else type(self).media_type
        if headers is None:  # the common case: at most a Content-Type, validated once per type
            self.headers = MutableHeaders.from_pairs([_content_type(media_type)] if media_type else [])
            return
        self.headers = MutableHeaders()
        items = headers.items() if isinstance(headers, Mapping) else headers
        for name, value in items:
            self.headers.append(name, value)
        if media_type and "content-type" not in self.headers:
            self.headers.raw.append(_content_type(media_type))

    def render(self, body: Any) -> bytes:
        if isinstance(body, bytes):
            return body
        if isinstance(body, (bytearray, memoryview)):
            return bytes(body)
        if isinstance(body, str):
            return body.encode("utf-8")
        raise TypeError(f"{type(self).__name__} body must be bytes or str, got {type(body).__name__}")

    @property
    def status_code(self) -> int:
        """The status (Starlette's name for ``status``)."""
        return self.status

    @status_code.setter
    def status_code(self, value: int) -> None:
        self.status = _check_status(value)

    @property
    def raw_headers(self) -> list[tuple[str, bytes]]:
        """Header fields for the wire: ``(lower-case name, value bytes)``, in order."""
        return self.headers.raw

    @property
    def body_length(self) -> int:
        """Body size in bytes, or -1 when the body is streamed."""
        return len(self.body)

    async def body_chunks(self) -> AsyncIterator[bytes]:
        """The body as an async iterator of non-empty byte chunks."""
        if self.body:
            yield self.body

    def set_cookie(
        self,
        key: str,
        value: str = "",
        max_age: int | None = None,
        expires: datetime | int | str | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: Literal["lax", "strict", "none"] | None = "lax",
    ) -> None:
        """Add a Set-Cookie header.

        ``expires`` is an aware datetime, a number of seconds from now, or a ready HTTP
        date string. ``samesite="none"`` requires ``secure=True`` (browsers drop it
        otherwise). A value outside the RFC 6265 cookie-octet set raises ValueError:
        encode it (for example with base64 or percent-encoding) first.
        """
        if not _COOKIE_NAME_RE.fullmatch(key):
            raise ValueError(f"invalid cookie name {key!r}")
        if not _COOKIE_VALUE_RE.fullmatch(value):
            raise ValueError(
                f"cookie {key!r} value has characters outside RFC 6265 cookie-octet "
                "(space, comma, semicolon, quote, backslash, control or non-ASCII); encode it"
            )
        parts = [f"{key}={value}"]
        if max_age is not None:
            parts.append(f"Max-Age={int(max_age)}")
        if expires is not None:
            parts.append(f"Expires={_http_date(expires)}")
        for attr, text in (("Path", path), ("Domain", domain)):
            if text is not None:
                if _ATTR_BAD_RE.search(text):
                    raise ValueError(f"cookie {attr} {text!r} contains ';' or a control character")
                parts.append(f"{attr}={text}")
        if secure:
            parts.append("Secure")
        if httponly:
            parts.append("HttpOnly")
        if samesite is not None:
            if samesite not in ("lax", "strict", "none"):
                raise ValueError(f"samesite must be 'lax', 'strict', 'none' or None, got {samesite!r}")
            if samesite == "none" and not secure:
                raise ValueError("samesite='none' requires secure=True")
            parts.append(f"SameSite={samesite.capitalize()}")
        self.headers.append("set-cookie", "; ".join(parts))

    def delete_cookie(
        self,
        key: str,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: Literal["lax", "strict", "none"] | None = "lax",
    ) -> None:
        """Tell the client to drop cookie ``key`` (path and domain must match its setting)."""
        self.set_cookie(key, "", max_age=0, expires=_EPOCH, path=path, domain=domain,
                        secure=secure, httponly=httponly, samesite=samesite)  # fmt: skip

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.status} length={self.body_length}>"


def _http_date(expires: datetime | int | str) -> str:
    if isinstance(expires, str):
        if _ATTR_BAD_RE.search(expires):
            raise ValueError(f"cookie Expires {expires!r} contains ';' or a control character")
        return expires
    if isinstance(expires, datetime):
        if expires.tzinfo is None:
            raise ValueError("cookie expires datetime must be timezone-aware")
        when = expires
    else:
        when = datetime.now(timezone.utc).replace(microsecond=0)
        when = datetime.fromtimestamp(when.timestamp() + int(expires), timezone.utc)
    return format_datetime(when.astimezone(timezone.utc), usegmt=True)


class JSONResponse(Response):
    """``content`` serialised as compact UTF-8 JSON by :func:`encode_json` (non-ASCII
    kept; Structs, dataclasses, pydantic models, datetimes, UUIDs, Decimals and Enums
    too)."""

    media_type = "application/json"

    def __init__(
        self,
        content: Any,
        status: int = 200,
        headers: HeadersLike | None = None,
        media_type: str | None = None,
        *,
        status_code: int | None = None,
        background: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(content, status, headers, media_type, status_code=status_code, background=background)

    def render(self, body: Any) -> bytes:
        return encode_json(body)


class HTMLResponse(Response):
    media_type = "text/html; charset=utf-8"


class PlainTextResponse(Response):
    media_type = "text/plain; charset=utf-8"


class RedirectResponse(Response):
    """Redirect to ``url`` (non-ASCII and spaces are percent-encoded); status 3xx."""

    def __init__(
        self,
        url: str,
        status: int = 307,
        headers: HeadersLike | None = None,
        *,
        status_code: int | None = None,
        background: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if status_code is not None:
            status = status_code
        if isinstance(status, bool) or not isinstance(status, int) or not 300 <= status <= 399:
            raise ValueError(f"redirect status must be an int in 300..399, got {status!r}")
        super().__init__(b"", status, headers, background=background)
        self.headers["location"] = quote(url, safe=":/%#?=@[]!$&'()*+,;~")


ChunkSource = Iterable["bytes | str"] | AsyncIterable["bytes | str"]


class StreamingResponse(Response):
    """A body produced piece by piece by a sync or async iterable of bytes or str.

    A sync iterable (for example a generator) is advanced in the event loop's thread
    pool, so blocking work inside it never stalls the loop. The iterable is closed when
    the body ends or the consumer stops early (``aclose()`` on ``body_chunks()``).
    """

    def __init__(
        self,
        content: ChunkSource,
        status: int = 200,
        headers: HeadersLike | None = None,
        media_type: str | None = None,
        *,
        status_code: int | None = None,
        background: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(b"", status, headers, media_type, status_code=status_code, background=background)
        if not isinstance(content, (Iterable, AsyncIterable)) or isinstance(content, (str, bytes)):
            raise TypeError("StreamingResponse content must be a (sync or async) iterable of chunks")
        self.content = content

    @property
    def body_length(self) -> int:
        return -1

    async def body_chunks(self) -> AsyncIterator[bytes]:
        if isinstance(self.content, AsyncIterable):
            iterator = aiter(self.content)
            try:
                async for chunk in iterator:
                    if data := _chunk(chunk):
                        yield data
            finally:
                aclose = getattr(iterator, "aclose", None)
                if aclose is not None:
                    await aclose()
            return
        loop = asyncio.get_running_loop()
        sync_iter: Iterator[bytes | str] = iter(self.content)
        try:
            while True:
                item = await loop.run_in_executor(None, _advance, sync_iter)
                if item is None:
                    break
                if data := _chunk(item):
                    yield data
        finally:
            close = getattr(sync_iter, "close", None)
            if close is not None:
                await loop.run_in_executor(None, close)


class FileResponse(Response):
    """A file the gateway sends from disk itself: the worker never reads it.

    The worker sends the gateway the file's absolute path (RESP_FILE, PROTOCOL.md 3.6),
    and the gateway answers as it answers a static route: Content-Type from the file
    name (``media_type`` replaces it), ETag and Last-Modified, conditional requests
    (304), ranges (206, 416), HEAD, and a precompressed ``.br`` or ``.gz`` sibling
    when the client takes it. ``filename`` adds ``Content-Disposition: attachment``.
    A file the gateway cannot open, or that is not a regular file, is answered 404.
    A ``status_code`` other than 200 is sent as it is, with the whole file (a custom
    404 page): conditions and ranges apply to a 200 only.

    ``path`` is resolved against the worker's working directory now; the gateway must
    see the same file at that path (in containers, share the volume at the same
    place). ``covet.testing.TestClient`` reads the file itself.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        status_code: int = 200,
        headers: HeadersLike | None = None,
        media_type: str | None = None,
        filename: str | None = None,
        *,
        status: int | None = None,
        background: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(b"", status if status is not None else status_code, headers, media_type, background=background)
        full = os.path.abspath(os.fspath(path))
        if "\x00" in full:
            raise ValueError(f"file path {full!r} holds a NUL")
        try:
            size = len(full.encode("utf-8"))
        except UnicodeEncodeError:
            raise ValueError(f"file path {full!r} is not valid UTF-8") from None
        if size > 4096:
            raise ValueError(f"file path of {size} bytes, at most 4096")
        self.path = full
        if filename is not None:
            self.headers.append("content-disposition", _attachment(filename))

    @property
    def body_length(self) -> int:
        """-1: the gateway, not the worker, knows the file's length."""
        return -1

    async def body_chunks(self) -> AsyncIterator[bytes]:
        """The file's bytes, read here: only for an in-process client (a worker sends
        the path instead)."""
        with open(self.path, "rb") as f:
            while chunk := f.read(64 << 10):
                yield chunk


def _attachment(filename: str) -> str:
    """``attachment; filename="..."`` (ASCII, quotes and backslashes replaced) with a
    ``filename*`` in UTF-8 (RFC 6266) when the name is not plain ASCII."""
    if not isinstance(filename, str) or not filename or any(ord(c) < 0x20 or c == "\x7f" for c in filename):
        raise ValueError(f"filename must be a non-empty str without control characters, got {filename!r}")
    plain = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "_" for c in filename)
    value = f'attachment; filename="{plain}"'
    if plain != filename:
        value += "; filename*=UTF-8''" + quote(filename, safe="")
    return value


def _advance(iterator: Iterator[bytes | str]) -> bytes | str | None:
    try:
        return next(iterator)
    except StopIteration:
        return None


def _chunk(chunk: bytes | str) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, str):
        return chunk.encode("utf-8")
    if isinstance(chunk, (bytearray, memoryview)):
        return bytes(chunk)
    raise TypeError(f"streamed chunks must be bytes or str, got {type(chunk).__name__}")


def to_response(value: Any, status: int | None = None) -> Response:
    """Turn a handler's return value into a Response.

    Response → itself; str → text/plain; bytes → application/octet-stream; None → an
    empty body, 204 No Content unless ``status`` says otherwise; a tuple
    ``(body, status)`` or ``(body, status, headers)`` → the body converted as here with
    that status and those headers added; anything else (dicts, lists, Structs,
    dataclasses, pydantic models, numbers, ...) → JSON, or TypeError when it does not
    encode. ``status`` is the route's ``status_code`` for a value that is not a
    Response or a tuple.
    """
    if isinstance(value, Response):
        return value
    if isinstance(value, (dict, list)):
        return JSONResponse(value, status or 200)
    if isinstance(value, str):
        return PlainTextResponse(value, status or 200)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return Response(value, status or 200, media_type="application/octet-stream")  # type: ignore[arg-type]
    if value is None:
        return Response(status=status or 204)
    if isinstance(value, tuple) and len(value) in (2, 3) and not isinstance(value[0], tuple) and type(value) is tuple:
        if isinstance(value[1], int) and not isinstance(value[1], bool):
            response = to_response(value[0], _check_status(value[1]))
            response.status = value[1]
            if len(value) == 3 and value[2] is not None:
                headers = value[2]
                items = headers.items() if isinstance(headers, Mapping) else headers
                for name, field_value in items:
                    response.headers.append(name, field_value)
            return response
    try:
        return JSONResponse(value, status or 200)
    except TypeError as e:
        raise TypeError(
            f"handler returned {type(value).__name__}, which does not encode as JSON ({e}); return a Response, "
            "a str, bytes, None, a (body, status[, headers]) tuple, or a JSON-encodable value"
        ) from None
