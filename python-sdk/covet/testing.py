"""covet.testing: call an app in-process, without a gateway or a worker.

``TestClient`` routes each request with a matcher equal to the gateway's router (404,
405 with Allow, automatic OPTIONS 204 with Allow, HEAD served by GET routes), then goes through the same ``Covet._handle``
path a worker uses. Like the gateway, it answers 404/405 itself — the app's exception
handlers do not see requests that match no route. Redirects are returned, not followed.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import secrets
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import IO, Any, Awaitable, TypeVar
from urllib.parse import quote, urlencode, urlsplit

from ._app import Covet
from ._datastructures import Headers
from ._head import RequestHead
from ._multipart import parse_options_header
from ._responses import JSONResponse, Response

__all__ = ["TestClient", "TestResponse"]

T = TypeVar("T")
FileContent = bytes | str | IO[bytes]
FileSpec = FileContent | tuple[str, FileContent] | tuple[str, FileContent, str]
HeaderArg = Mapping[str, str | bytes] | Iterable[tuple[str, str | bytes]]
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"


class TestResponse:
    """What the client got: ``status_code``, ``headers`` (case-insensitive), ``content``."""

    __test__ = False

    def __init__(self, status_code: int, headers: Headers, content: bytes, request_id: str) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.request_id = request_id

    @property
    def text(self) -> str:
        charset = parse_options_header(self.headers.get("content-type", ""))[1].get("charset")
        return self.content.decode(charset or "utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    @property
    def cookies(self) -> dict[str, str]:
        """Cookies this response set (a deleted cookie reads as ``""``)."""
        return {name: value for name, value, _ in map(_parse_set_cookie, self.headers.getlist("set-cookie"))}

    def __repr__(self) -> str:
        return f"<TestResponse {self.status_code} {len(self.content)} bytes>"


class TestClient:
    """A synchronous client for ``app``.

    As a context manager it freezes the app, runs its startup hooks, keeps one event
    loop for every request, and runs the shutdown hooks on exit. Used without ``with``,
    each request runs in a fresh event loop (hooks are not run). Cookies set by
    responses are kept in ``client.cookies`` and sent with later requests.
    """

    __test__ = False

    def __init__(
        self,
        app: Covet,
        base_url: str = "http://testserver",
        client: tuple[str, int] = ("127.0.0.1", 50000),
        chunk_size: int = 64 * 1024,
    ) -> None:
        self.app = app
        self.base_url = base_url
        self.client = client
        self.chunk_size = chunk_size
        self.cookies: dict[str, str] = {}
        self._runner: asyncio.Runner | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> TestClient:
        self.app.freeze()
        self._runner = asyncio.Runner()
        try:
            self._runner.run(self.app.startup())
        except BaseException:
            self._runner.close()
            self._runner = None
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            try:
                runner.run(self.app.shutdown())
            finally:
                runner.close()

    def _run(self, coro: Awaitable[T]) -> T:
        async def main() -> T:
            return await coro

        if self._runner is not None:
            return self._runner.run(main())
        with asyncio.Runner() as runner:
            return runner.run(main())

    # -- requests -----------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
        headers: HeaderArg | None = None,
        cookies: Mapping[str, str] | None = None,
        content: bytes | str | None = None,
        data: Mapping[str, Any] | None = None,
        json: Any = None,
        files: Mapping[str, FileSpec] | None = None,
    ) -> TestResponse:
        self.app.freeze()
        method = method.upper()
        base = urlsplit(self.base_url)
        parts = urlsplit(url)
        scheme = parts.scheme or base.scheme or "http"
        host = parts.netloc or base.netloc or "testserver"
        raw_path = quote(parts.path or "/", safe=_PATH_SAFE)
        query = parts.query
        if params:
            extra = urlencode(list(params.items()) if isinstance(params, Mapping) else list(params), doseq=True)
            query = f"{query}&{extra}" if query else extra

        raw_headers: list[tuple[str, bytes]] = [("host", host.encode("latin-1"))]
        body, content_type = _encode_body(content, data, json, files)
        user_headers = _encode_headers(headers)
        user_names = {name for name, _ in user_headers}
        if content_type and "content-type" not in user_names:
            raw_headers.append(("content-type", content_type.encode("latin-1")))
        if body and "content-length" not in user_names:
            raw_headers.append(("content-length", str(len(body)).encode()))
        jar = {**self.cookies, **(cookies or {})}
        if jar:
            raw_headers.append(("cookie", "; ".join(f"{k}={v}" for k, v in jar.items()).encode("latin-1")))
        raw_headers.extend(user_headers)
        request_id = Headers(raw_headers).get("x-request-id") or uuid.uuid4().hex

        match = self.app.router.match(method, raw_path)
        if match.route is None:
            extra_headers = {"allow": ", ".join(match.allow)} if match.allow else None
            response: Response
            if match.status == 204:
                response = Response(b"", 204, extra_headers)
            else:
                detail = "Not Found" if match.status == 404 else "Method Not Allowed"
                response = JSONResponse({"detail": detail}, match.status, extra_headers)
            return self._finish(method, response, response.body if method != "HEAD" else b"", request_id)

        head = RequestHead.from_wire([
            method, raw_path, query, [x for pair in raw_headers for x in pair],
            match.route.pattern.canonical, [x for pair in match.params for x in pair],
            "1.1", scheme, f"{self.client[0]}:{self.client[1]}", request_id, len(body), 0,
        ])  # fmt: skip

        async def exchange() -> tuple[Response, bytes]:
            resp = await self.app._handle(head, self._chunks(body))
            received = b"".join([chunk async for chunk in resp.body_chunks()])
            return resp, received

        response, received = self._run(exchange())
        return self._finish(method, response, received, request_id)

    async def _chunks(self, body: bytes) -> AsyncIterator[bytes]:
        view = memoryview(body)
        for start in range(0, len(body), self.chunk_size):
            yield bytes(view[start : start + self.chunk_size])
            await asyncio.sleep(0)

    def _finish(self, method: str, response: Response, content: bytes, request_id: str) -> TestResponse:
        headers = Headers(response.raw_headers)
        if response.body_length >= 0 and "content-length" not in headers:
            headers.raw.append(("content-length", str(response.body_length).encode()))
        for value in headers.getlist("set-cookie"):
            name, cookie_value, expired = _parse_set_cookie(value)
            if expired:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = cookie_value
        return TestResponse(response.status, headers, content, request_id)

    def get(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("DELETE", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("OPTIONS", url, **kwargs)


def _encode_headers(headers: HeaderArg | None) -> list[tuple[str, bytes]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [
        (name.lower(), value if isinstance(value, bytes) else value.encode("latin-1"))
        for name, value in items
    ]


def _encode_body(
    content: bytes | str | None, data: Mapping[str, Any] | None, json: Any, files: Mapping[str, FileSpec] | None
) -> tuple[bytes, str | None]:
    given = [x is not None for x in (content, json)] + [bool(data) and not files, bool(files)]
    if sum(given) > 1:
        raise ValueError("pass only one of content=, json=, data= (optionally with files=)")
    if content is not None:
        return (content.encode("utf-8") if isinstance(content, str) else content), None
    if json is not None:
        return jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":")).encode(), "application/json"
    if files:
        return _encode_multipart(data or {}, files)
    if data:
        return urlencode(list(data.items()), doseq=True).encode("ascii"), "application/x-www-form-urlencoded"
    return b"", None


def _quote_param(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _encode_multipart(data: Mapping[str, Any], files: Mapping[str, FileSpec]) -> tuple[bytes, str]:
    boundary = "covet-" + secrets.token_hex(16)
    out: list[bytes] = []
    for name, value in data.items():
        for item in value if isinstance(value, list) else [value]:
            out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote_param(name)}"\r\n\r\n'.encode())
            out.append(str(item).encode("utf-8") + b"\r\n")
    for name, spec in files.items():
        filename, ctype = "upload", "application/octet-stream"
        body: FileContent
        if isinstance(spec, tuple):
            filename, body = spec[0], spec[1]
            if len(spec) == 3:
                ctype = spec[2]
        else:
            body = spec
        raw = body.encode("utf-8") if isinstance(body, str) else body if isinstance(body, bytes) else body.read()
        out.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote_param(name)}"; '
            f'filename="{_quote_param(filename)}"\r\nContent-Type: {ctype}\r\n\r\n'.encode()
        )
        out.append(raw + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def _parse_set_cookie(value: str) -> tuple[str, str, bool]:
    """(name, value, expired) of one Set-Cookie field."""
    first, *attrs = value.split(";")
    name, _, cookie_value = first.partition("=")
    expired = False
    for attr in attrs:
        key, _, arg = attr.strip().partition("=")
        key = key.lower()
        if key == "max-age" and arg.lstrip("-").isdigit() and int(arg) <= 0:
            expired = True
        elif key == "expires":
            try:
                expired = expired or parsedate_to_datetime(arg) <= datetime.now(timezone.utc)
            except (TypeError, ValueError):
                pass
    return name.strip(), cookie_value.strip(), expired
