"""Form bodies: application/x-www-form-urlencoded and multipart/form-data."""

from __future__ import annotations

import io
from urllib.parse import parse_qsl

from ._datastructures import Headers, MultiDict
from ._exceptions import HTTPException
from ._multipart import MultipartError, Part, parse_multipart, parse_options_header

__all__ = ["UploadFile", "FormData", "parse_form"]


class UploadFile:
    """A file part of a multipart form, held in memory.

    ``filename`` is as the client sent it (it may be empty and must never be trusted as a
    filesystem path); ``content_type`` defaults to ``application/octet-stream``.
    ``file`` is a seekable binary file object for synchronous code.
    """

    __slots__ = ("filename", "content_type", "headers", "size", "file")

    def __init__(
        self,
        filename: str,
        content: bytes,
        content_type: str = "application/octet-stream",
        headers: Headers | None = None,
    ) -> None:
        self.filename = filename
        self.content_type = content_type
        self.headers = headers if headers is not None else Headers()
        self.size = len(content)
        self.file = io.BytesIO(content)

    async def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (all that remain if negative) from the current position."""
        return self.file.read(size)

    async def seek(self, offset: int) -> None:
        self.file.seek(offset)

    async def close(self) -> None:
        self.file.close()

    def __repr__(self) -> str:
        return (
            f"UploadFile(filename={self.filename!r}, content_type={self.content_type!r}, "
            f"size={self.size})"
        )


class FormData(MultiDict["str | UploadFile"]):
    """Decoded form fields: ``str`` values, ``UploadFile`` for multipart file parts."""

    __slots__ = ()


def parse_form(content_type: str, body: bytes) -> FormData:
    """Decode ``body`` by its Content-Type; raise HTTPException 400 or 415."""
    media_type, options = parse_options_header(content_type)
    if media_type == "application/x-www-form-urlencoded":
        try:
            text = body.decode("utf-8")
            pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise HTTPException(400, "malformed application/x-www-form-urlencoded body") from None
        return FormData(pairs)
    if media_type == "multipart/form-data":
        boundary = options.get("boundary", "")
        try:
            return FormData(_field(part) for part in parse_multipart(body, boundary))
        except MultipartError as exc:
            raise HTTPException(400, f"malformed multipart/form-data body: {exc}") from None
    raise HTTPException(
        415, "expected application/x-www-form-urlencoded or multipart/form-data"
    )


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _field(part: Part) -> tuple[str, str | UploadFile]:
    disposition = part.header("content-disposition")
    if disposition is None:
        raise MultipartError("a part has no Content-Disposition header")
    kind, options = parse_options_header(_text(disposition))
    if kind != "form-data":
        raise MultipartError(f"a part's Content-Disposition is {kind!r}, not 'form-data'")
    name = options.get("name")
    if name is None:
        raise MultipartError("a part's Content-Disposition has no name")
    filename = options.get("filename*", options.get("filename"))
    raw_type = part.header("content-type")
    if filename is not None:
        content_type = _text(raw_type).strip() if raw_type else "application/octet-stream"
        return name, UploadFile(filename, part.content, content_type, Headers(part.headers))
    charset = "utf-8"
    if raw_type:
        charset = parse_options_header(_text(raw_type))[1].get("charset", "utf-8")
    try:
        return name, part.content.decode(charset)
    except (LookupError, UnicodeDecodeError):
        raise MultipartError(f"field {name!r} is not valid {charset}") from None
