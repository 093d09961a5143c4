"""Request: what a handler receives as its first argument."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping
from functools import cached_property
from typing import Any, Protocol
from urllib.parse import unquote

from ._datastructures import Address, Headers, QueryParams, State, encode_header
from ._exceptions import HTTPException
from ._forms import FormData, parse_form
from ._head import Auth, BodySource, ClientCert, RequestHead

__all__ = ["Request", "InterimSink", "parse_cookie_header", "parse_query"]


class InterimSink(Protocol):
    """Where a request's interim (1xx) responses go: the worker's exchange, or the
    TestClient's recorder."""

    async def early_hints(self, fields: list[tuple[str, bytes]]) -> None:
        """Send one 103 Early Hints response with these (checked, lower-case) fields.
        Raises RuntimeError once the response head has been sent, or past the
        protocol's limit of interim responses per request."""


def parse_cookie_header(value: str) -> dict[str, str]:
    """Parse a Cookie header leniently: ``a=1; b="2"``; nameless or empty pieces are
    skipped, a quoted value is unquoted, and the first cookie of a name wins."""
    cookies: dict[str, str] = {}
    for piece in value.split(";"):
        name, eq, val = piece.partition("=")
        name = name.strip()
        if not eq or not name:
            continue
        val = val.strip()
        if len(val) >= 2 and val[0] == val[-1] == '"':
            val = val[1:-1]
        cookies.setdefault(name, val)
    return cookies


def parse_query(query: str) -> list[tuple[str, str]]:
    """The query string's ``(name, value)`` pairs, as ``urllib.parse.parse_qsl`` with
    blank values kept gives them (``&``-separated, ``+`` a space, percent-escapes
    decoded as UTF-8 with U+FFFD for bad bytes), about twice as fast: a piece with no
    ``%`` or ``+`` is taken as it is."""
    pairs: list[tuple[str, str]] = []
    for piece in query.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        if "%" in piece or "+" in piece:
            name = unquote(name.replace("+", " "), encoding="utf-8", errors="replace")
            value = unquote(value.replace("+", " "), encoding="utf-8", errors="replace")
        pairs.append((name, value))
    return pairs


class HTTPConnection:
    """What a Request and a WebSocket share: the head of the request that opened them,
    read on first use and cached (``head`` is the decoded REQ_HEAD)."""

    head: RequestHead

    @property
    def raw_path(self) -> str:
        """The path as sent by the client, percent-encoding kept."""
        return self.head.path

    @cached_property
    def path(self) -> str:
        """The percent-decoded path (UTF-8; undecodable bytes become U+FFFD)."""
        return unquote(self.head.path, encoding="utf-8", errors="replace")

    @property
    def query_string(self) -> str:
        """The raw query string, without ``?``."""
        return self.head.query

    @cached_property
    def query_params(self) -> QueryParams:
        return QueryParams(parse_query(self.head.query))

    @cached_property
    def headers(self) -> Headers:
        return Headers.from_flat(self.head.headers)

    @cached_property
    def cookies(self) -> dict[str, str]:
        cookies: dict[str, str] = {}
        for value in self.headers.getlist("cookie"):
            for name, val in parse_cookie_header(value).items():
                cookies.setdefault(name, val)
        return cookies

    @cached_property
    def client(self) -> Address | None:
        """The peer's address, or None if the gateway did not give one."""
        return Address.parse(self.head.client) if self.head.client else None

    @property
    def request_id(self) -> str:
        return self.head.request_id

    @property
    def auth(self) -> Auth | None:
        """The identity the gateway verified from the request's bearer token (subject,
        claims, roles, scopes), or None when it sent none: no token, or, on a route
        without ``auth=True``, a token it did not accept. The gateway has enforced the
        route's ``auth``, ``roles`` and ``scopes`` before the handler runs."""
        return self.head.auth


class Request(HTTPConnection):
    """One HTTP request, already parsed and routed by the gateway.

    Attributes derived from the head are computed on first use and cached. The body is
    read at most once from the transport: ``await req.body()`` buffers it (and later calls
    return the same bytes), ``req.stream()`` hands chunks on as they arrive without
    buffering (the body cannot be read again after that).
    """

    #: What must run after this request's response: its background tasks and its
    #: dependencies' cleanup (covet._binding.Deferred); None when nothing.
    deferred: Any = None

    def __init__(
        self,
        head: RequestHead,
        body: BodySource,
        path_params: Mapping[str, Any] | None = None,
        interim: InterimSink | None = None,
        app: Any = None,
    ) -> None:
        self.head = head
        #: The Covet app serving the request (None for a Request built by hand).
        self.app = app
        self._source = body
        self._interim = interim
        self._body: bytes | None = None
        self._streamed = False
        self._json: Any = _UNSET
        self._form: FormData | None = None
        self.path_params: dict[str, Any] = dict(path_params) if path_params else {}
        """Path parameters, converted to their declared types (int, uuid.UUID, str)."""

    # -- head ---------------------------------------------------------------------------

    @property
    def method(self) -> str:
        return self.head.method

    @cached_property
    def state(self) -> State:
        """Per-request state for middleware, dependencies and the handler to share
        (``req.state.user = ...``); it starts as a copy of what the app's lifespan
        yielded."""
        lifespan_state = getattr(self.app, "_lifespan_state", None)
        return State(lifespan_state)

    @property
    def scheme(self) -> str:
        return self.head.scheme

    @property
    def http_version(self) -> str:
        return self.head.http_version

    @property
    def client_cert(self) -> ClientCert | None:
        """The client's verified TLS certificate (mTLS): ``.subject``, ``.sans`` (a
        tuple of str) and ``.fingerprint`` (SHA-256, lower-case hex); None when the
        connection has none (plain HTTP, no client certificate asked for or sent)."""
        return self.head.client_cert

    @property
    def route(self) -> str:
        """The route pattern that matched, e.g. ``/users/{id:int}``."""
        return self.head.route

    @cached_property
    def url(self) -> str:
        """The full request URL as the client addressed it."""
        host = self.headers.get("host", "")
        query = f"?{self.head.query}" if self.head.query else ""
        return f"{self.head.scheme}://{host}{self.head.path}{query}"

    @cached_property
    def content_type(self) -> str:
        flat = self.head.headers  # names lower-case, values bytes: only a name matches
        try:
            return bytes(flat[flat.index("content-type") + 1]).decode("latin-1")
        except ValueError:
            return ""

    # -- interim responses --------------------------------------------------------------

    async def send_early_hints(
        self,
        *links: str,
        headers: Mapping[str, str | bytes] | Iterable[tuple[str, str | bytes]] | None = None,
    ) -> None:
        """Send a 103 Early Hints response now, before the handler's response: one
        ``Link`` field per link (``'</style.css>; rel=preload; as=style'``), then the
        given ``headers``. A client may start fetching what the links name while the
        handler works. May be called several times (at most 16 per request), only
        before the response: from a streaming body it raises RuntimeError. HTTP/1.0
        clients get nothing (RFC 9110 15.2); so does a request built without a
        transport to send it on. A bad field raises ValueError."""
        fields = [encode_header("link", link) for link in links]
        if headers is not None:
            items = headers.items() if isinstance(headers, Mapping) else headers
            fields.extend(encode_header(name, value) for name, value in items)
        if self._interim is not None:
            await self._interim.early_hints(fields)

    # -- body ---------------------------------------------------------------------------

    async def stream(self) -> AsyncIterator[bytes]:
        """Yield the body's chunks as they arrive (or the buffered body, if already read)."""
        if self._body is not None:
            if self._body:
                yield self._body
            return
        if self._streamed:
            raise RuntimeError("the request body has already been streamed")
        self._streamed = True
        if self.head.body_length == 0:
            return
        async for chunk in self._source:
            if chunk:
                yield chunk

    async def body(self) -> bytes:
        """The whole body, read once and cached."""
        if self._body is None:
            chunks = [chunk async for chunk in self.stream()]
            self._body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return self._body

    async def json(self) -> Any:
        """The body decoded as JSON; a body that is not JSON answers 400."""
        if self._json is _UNSET:
            data = await self.body()
            try:
                self._json = json.loads(data)
            except ValueError:
                raise HTTPException(400, "malformed JSON body") from None
        return self._json

    async def form(self) -> FormData:
        """The body decoded as a form (urlencoded or multipart); malformed answers 400,
        another content type 415."""
        if self._form is None:
            self._form = parse_form(self.content_type, await self.body())
        return self._form

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.raw_path} id={self.request_id}>"


class _Unset:
    pass


_UNSET: Any = _Unset()
