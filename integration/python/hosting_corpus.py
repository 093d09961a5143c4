"""The request corpus of test_hosting_differential.py: raw HTTP/1.x requests, built
byte for byte so that the test controls what goes on the wire (chunked framing,
repeated and malformed header lines, %-encodings and raw non-ASCII bytes in the
target, bodies of every size).

GENERIC runs against every hosted app (hosted/*_app.py serve the same routes);
EXTRA[app] adds what only that app has (FastAPI's models and dependencies, the
lifespan state, Flask's and Django's form parsing).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hosted.echo_shape import pattern

#: The Host every request names (unless a case says otherwise): the same for both
#: servers, whatever their ports, so that echoed hosts compare equal.
HOST = b"covet.test"

Header = tuple[str | bytes, str | bytes]


def _b(v: str | bytes) -> bytes:
    return v if isinstance(v, bytes) else v.encode("latin-1")


@dataclass(frozen=True)
class Case:
    """One request. ``raw``, when given, is sent as it is; otherwise the request is
    built from the method, target, version, Host (unless ``host`` is None), headers
    in order, and the body: ``body`` with a Content-Length (unless the headers give
    framing), or ``chunks`` as a chunked body (each chunk's size line as written in
    ``chunk_lines`` when given)."""

    name: str
    method: str = "GET"
    target: str | bytes = "/echo"
    headers: tuple[Header, ...] = ()
    body: bytes | None = None
    chunks: tuple[bytes, ...] | None = None
    trailers: tuple[Header, ...] = ()
    version: str = "HTTP/1.1"
    host: bytes | None = HOST
    raw: bytes | None = None
    #: Framing left to ``headers`` (the body, if any, sent after the head as it is).
    manual_framing: bool = False
    chunk_ext: tuple[bytes, ...] = field(default=())

    def wire(self) -> bytes:
        """The bytes sent for this case."""
        if self.raw is not None:
            return self.raw
        lines = [_b(self.method) + b" " + _b(self.target) + b" " + _b(self.version)]
        if self.host is not None:
            lines.append(b"Host: " + self.host)
        lines += [_b(k) + b": " + _b(v) for k, v in self.headers]
        payload = b""
        if self.chunks is not None:
            if not self.manual_framing:
                lines.append(b"Transfer-Encoding: chunked")
            for i, chunk in enumerate(self.chunks):
                ext = self.chunk_ext[i] if i < len(self.chunk_ext) else b""
                payload += b"%x" % len(chunk) + ext + b"\r\n" + chunk + b"\r\n"
            payload += b"0\r\n" + b"".join(_b(k) + b": " + _b(v) + b"\r\n" for k, v in self.trailers) + b"\r\n"
        elif self.body is not None:
            if not self.manual_framing:
                lines.append(b"Content-Length: %d" % len(self.body))
            payload = self.body
        return b"\r\n".join(lines) + b"\r\n\r\n" + payload


MIB = 1 << 20
ALL_BYTES = bytes(range(256))
JSON = ("Content-Type", "application/json")


def _generic() -> list[Case]:
    c: list[Case] = []
    add = c.append

    # -- methods ------------------------------------------------------------------------
    add(Case("GET echo", "GET", "/echo/m"))
    add(Case("HEAD echo", "HEAD", "/echo/m"))
    add(Case("POST echo", "POST", "/echo/m", (JSON,), b'{"a": 1}'))
    add(Case("PUT echo", "PUT", "/echo/m", (JSON,), b'{"a": 2}'))
    add(Case("PATCH echo", "PATCH", "/echo/m", (JSON,), b'{"a": 3}'))
    add(Case("DELETE echo", "DELETE", "/echo/m"))
    add(Case("DELETE with body", "DELETE", "/echo/m", (), b"gone"))
    add(Case("OPTIONS echo", "OPTIONS", "/echo/m"))
    add(Case("POST empty Content-Length 0", "POST", "/echo/m", (), b""))
    add(Case("POST without a body or length", "POST", "/echo/m"))
    add(Case("GET with a body", "GET", "/echo/m", (), b"a body on a GET"))
    add(Case("OPTIONS with a body", "OPTIONS", "/echo/m", (), b"x"))
    add(Case("unknown method", "FROB", "/echo/m"))
    add(Case("TRACE", "TRACE", "/echo/m"))
    add(Case("lower-case method", "get", "/echo/m"))
    add(Case("CONNECT", "CONNECT", "covet.test:443"))
    add(Case("OPTIONS star", "OPTIONS", "*"))

    # -- paths: %-encodings, reserved characters, dot segments, raw bytes ---------------
    paths = {
        "path bare": "/echo",
        "path trailing slash": "/echo/",
        "path plain": "/echo/plain",
        "path %20": "/echo/a%20b",
        "path plus": "/echo/a+b",
        "path check mark": "/echo/%E2%9C%93",
        "path cafe": "/echo/caf%C3%A9",
        "path lower-case hex": "/echo/caf%c3%a9",
        "path CJK": "/echo/%E6%97%A5%E6%9C%AC",
        "path emoji": "/echo/%F0%9F%90%8D",
        "path encoded slash": "/echo/a%2Fb",
        "path encoded slash lower": "/echo/a%2fb",
        "path encoded percent": "/echo/%25",
        "path encoded percent then zz": "/echo/%25zz",
        "path bad escape": "/echo/%zz",
        "path lone percent": "/echo/%",
        "path truncated escape": "/echo/a%4",
        "path semicolon": "/echo/a;b=c",
        "path colon at": "/echo/a:b@c",
        "path tilde": "/echo/~user",
        "path sub-delims": "/echo/!$&'()*,=",
        "path double slash": "/echo//double",
        "path leading double slash": "//echo/x",
        "path dot dot": "/echo/a/../b",
        "path dot": "/echo/./a",
        "path encoded dot dot": "/echo/%2e%2e/a",
        "path trailing dot dot": "/echo/a/..",
        "path dot file": "/echo/.hidden",
        "path dots in name": "/echo/a..b",
        "path NUL escape": "/echo/a%00b",
        "path tab escape": "/echo/a%09b",
        "path invalid UTF-8": "/echo/%C3",
        "path byte FF": "/echo/%FF",
        "path encoded question mark": "/echo/a%3Fb",
        "path encoded hash": "/echo/a%23b",
        "path encoded space and plus": "/echo/%20+%2B",
        "path long 2000": "/echo/" + "p" * 2000,
        "path long segments": "/echo/" + "/".join(["seg"] * 300),
        "path upper-case route": "/ECHO/x",
        "path with empty query": "/echo/q?",
    }
    for name, target in paths.items():
        add(Case(name, "GET", target))
    add(Case("path raw UTF-8 bytes", "GET", "/echo/caf\u00e9".encode()))
    add(Case("path raw latin-1 byte", "GET", b"/echo/caf\xe9"))
    add(Case("path raw space", raw=b"GET /echo/a b HTTP/1.1\r\nHost: covet.test\r\n\r\n"))
    add(Case("path absolute-form", "GET", "http://covet.test/echo/absolute"))
    add(Case("path no leading slash", "GET", "echo/x"))
    add(Case("path with fragment", "GET", "/echo/x#frag"))

    # -- query strings --------------------------------------------------------------------
    queries = {
        "query one": "a=1",
        "query two": "a=1&b=2",
        "query repeated key": "a=1&a=2&a=3",
        "query empty value": "a=",
        "query no value": "a",
        "query empty key": "=v",
        "query only ampersands": "&&",
        "query empty pairs": "a=1&&b=2",
        "query %20": "a=%20x",
        "query plus": "a=+x+",
        "query encoded plus": "a=%2B",
        "query encoded ampersand": "a=%26b",
        "query encoded equals": "a=%3D",
        "query equals in value": "a=b=c",
        "query check mark": "q=%E2%9C%93",
        "query cafe": "q=caf%C3%A9",
        "query invalid UTF-8": "q=%C3",
        "query bad escape": "q=%zz",
        "query lone percent": "q=%",
        "query semicolon": "a=1;b=2",
        "query brackets": "a[]=1&a[]=2",
        "query case of keys": "A=1&a=2",
        "query encoded key": "key%20sp=v",
        "query slash and question": "q=/p/?x",
        "query NUL": "q=%00",
        "query long 4000": "q=" + "v" * 4000,
        "query 100 params": "&".join(f"k{i}=v{i}" for i in range(100)),
        "query quotes": "q=%22quoted%22&r='single'",
    }
    for name, qs in queries.items():
        add(Case(name, "GET", "/echo/q?" + qs))
    add(Case("query raw UTF-8 bytes", "GET", "/echo/q?q=caf\u00e9".encode()))
    add(Case("query on POST", "POST", "/echo/q?a=1&a=2", (), b"body"))

    # -- header fields --------------------------------------------------------------------
    headers: dict[str, tuple[Header, ...]] = {
        "header repeated twice": (("X-Test-Rep", "one"), ("X-Test-Rep", "two")),
        "header repeated thrice": (("X-Test-Rep", "1"), ("X-Test-Other", "x"), ("X-Test-Rep", "2"), ("x-test-rep", "3")),
        "header mixed case": (("x-TeSt-CaSe", "v"),),
        "header upper case": (("X-TEST-UPPER", "V"),),
        "header outer spaces": (("X-Test-Space", "   padded   "),),
        "header outer tabs": (("X-Test-Tab", "\tpadded\t"),),
        "header inner tab": (("X-Test-Tab", "a\tb"),),
        "header empty value": (("X-Test-Empty", ""),),
        "header comma list": (("X-Test-List", "a, b,c ,d"),),
        "header obs-text latin-1": (("X-Test-Latin", b"caf\xe9"),),
        "header UTF-8 bytes": (("X-Test-Utf8", "caf\u00e9 \u2713".encode()),),
        "header underscore name": (("X_Test_Under", "u"),),
        "header dash and underscore": (("X-Test-Both", "dash"), ("X_Test_Both", "under")),
        "header long 4k": (("X-Test-Long", "l" * 4096),),
        "header long 8k": (("X-Test-Long", "l" * 8100),),
        "header long 16k": (("X-Test-Long", "l" * 16384),),
        "header 50 fields": tuple((f"X-Test-N{i}", str(i)) for i in range(50)),
        "header 120 fields": tuple((f"X-Test-N{i}", str(i)) for i in range(120)),
        "header accept": (("Accept", "text/html;q=0.9, application/json"),),
        "header accept-encoding": (("Accept-Encoding", "gzip, br;q=0.5"),),
        "header authorization": (("Authorization", "Bearer abc.def.ghi"),),
        "header user-agent": (("User-Agent", "differential/1.0 (test)"),),
        "header referer": (("Referer", "http://covet.test/from?x=1"),),
        "header x-forwarded-for": (("X-Forwarded-For", "203.0.113.7, 198.51.100.1"),),
        "header forwarded": (("Forwarded", "for=203.0.113.7;proto=https"),),
        "header x-request-id": (("X-Request-Id", "client-chosen-id-42"),),
        "header x-request-id invalid": (("X-Request-Id", "has space"),),
        "header connection close": (("Connection", "close"),),
        "header connection keep-alive": (("Connection", "keep-alive"),),
        "header connection names a field": (("Connection", "X-Hop"), ("X-Hop", "1")),
        "header keep-alive": (("Keep-Alive", "timeout=5"),),
        "header TE trailers": (("TE", "trailers"),),
        "header upgrade h2c": (("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
                               ("HTTP2-Settings", "AAMAAABkAAQAoAAAAAIAAAAA")),
        "header upgrade websocket on http route": (("Connection", "Upgrade"), ("Upgrade", "websocket")),
        "header proxy": (("Proxy", "http://evil.test"),),
        "header content-type charset": (("Content-Type", "text/plain; charset=latin-1"),),
        "header expect other": (("Expect", "something-else"),),
        "header range": (("Range", "bytes=0-3"),),
        "header if-none-match": (("If-None-Match", '"abc"'),),
    }
    for name, hs in headers.items():
        add(Case(name, "GET", "/echo/h", hs))
    add(Case("header Host with port", "GET", "/echo/h", host=b"covet.test:8080"))
    add(Case("header Host upper case", "GET", "/echo/h", host=b"COVET.Test"))
    add(Case("header Host IPv6", "GET", "/echo/h", host=b"[::1]:8000"))
    add(Case("header Host missing", "GET", "/echo/h", host=None))
    add(Case("header Host empty", "GET", "/echo/h", host=b""))
    add(Case("header Host twice", "GET", "/echo/h", (("Host", "other.test"),)))
    add(Case("header Host invalid", "GET", "/echo/h", host=b"bad host"))
    add(Case("header obs-fold", raw=b"GET /echo/h HTTP/1.1\r\nHost: covet.test\r\nX-Fold: a\r\n b\r\n\r\n"))
    add(Case("header without colon", raw=b"GET /echo/h HTTP/1.1\r\nHost: covet.test\r\nX-No-Colon\r\n\r\n"))
    add(Case("header space before colon", raw=b"GET /echo/h HTTP/1.1\r\nHost: covet.test\r\nX-Bad : v\r\n\r\n"))
    add(Case("header invalid name", raw=b"GET /echo/h HTTP/1.1\r\nHost: covet.test\r\nX(bad): v\r\n\r\n"))
    add(Case("header NUL in value", raw=b"GET /echo/h HTTP/1.1\r\nHost: covet.test\r\nX-Nul: a\x00b\r\n\r\n"))
    add(Case("header CR in value", raw=b"GET /echo/h HTTP/1.1\r\nHost: covet.test\r\nX-Cr: a\rb\r\n\r\n"))
    add(Case("header bare LF line ends", raw=b"GET /echo/h HTTP/1.1\nHost: covet.test\nX-Lf: 1\n\n"))

    # -- cookies --------------------------------------------------------------------------
    cookies: dict[str, tuple[Header, ...]] = {
        "cookie one": (("Cookie", "a=1"),),
        "cookie two pairs": (("Cookie", "a=1; b=2"),),
        "cookie two fields": (("Cookie", "a=1"), ("Cookie", "b=2")),
        "cookie quoted": (("Cookie", 'q="quoted value"'),),
        "cookie empty value": (("Cookie", "e=; f=1"),),
        "cookie no equals": (("Cookie", "flag; a=1"),),
        "cookie spaces": (("Cookie", "  a = 1 ;  b=2  "),),
        "cookie UTF-8": (("Cookie", "u=caf\u00e9".encode()),),
        "cookie %-encoded": (("Cookie", "p=caf%C3%A9%20x"),),
        "cookie same name twice": (("Cookie", "a=1; a=2"),),
        "cookie trailing semicolon": (("Cookie", "a=1;"),),
        "cookie 20 pairs": (("Cookie", "; ".join(f"c{i}=v{i}" for i in range(20))),),
        "cookie long 4k": (("Cookie", "big=" + "c" * 4000),),
        "cookie version attribute": (("Cookie", "$Version=1; a=1; $Path=/"),),
        "cookie comma": (("Cookie", "a=1, b=2"),),
    }
    for name, hs in cookies.items():
        add(Case(name, "GET", "/echo/c", hs))

    # -- bodies: identity ------------------------------------------------------------------
    add(Case("body JSON", "POST", "/echo/b", (JSON,), b'{"k": [1, 2, 3], "u": "\\u00e9"}'))
    add(Case("body form", "POST", "/echo/b", (("Content-Type", "application/x-www-form-urlencoded"),), b"a=1&b=caf%C3%A9"))
    add(Case("body all byte values", "POST", "/echo/b", (("Content-Type", "application/octet-stream"),), ALL_BYTES))
    add(Case("body UTF-8 text", "POST", "/echo/b", (("Content-Type", "text/plain; charset=utf-8"),),
             "h\u00e9llo \u2713".encode()))  # fmt: skip
    add(Case("body one byte", "POST", "/echo/b", (), b"x"))
    add(Case("body 64 KiB", "POST", "/echo/b", (), pattern(64 * 1024)))
    add(Case("body 64 KiB + 1", "POST", "/echo/b", (), pattern(64 * 1024 + 1)))
    add(Case("body 1 MiB", "POST", "/echo/b", (("Content-Type", "application/octet-stream"),), pattern(MIB)))
    add(Case("body PUT 1 MiB", "PUT", "/echo/b", (), pattern(MIB, 7)))
    add(Case("body multipart", "POST", "/echo/b", (("Content-Type", "multipart/form-data; boundary=XyZ"),),
             b'--XyZ\r\nContent-Disposition: form-data; name="f"\r\n\r\nvalue\r\n--XyZ--\r\n'))  # fmt: skip
    add(Case("body PATCH JSON", "PATCH", "/echo/b", (JSON,), b"[]"))
    add(Case("body Expect 100-continue", "POST", "/echo/b", (("Expect", "100-continue"),), b"after continue"))
    add(Case("body two equal Content-Lengths", "POST", "/echo/b", (("Content-Length", "4"), ("Content-Length", "4")),
             b"four", manual_framing=True))  # fmt: skip
    add(Case("body Content-Length list", "POST", "/echo/b", (("Content-Length", "4, 4"),), b"four", manual_framing=True))
    add(Case("body two different Content-Lengths", "POST", "/echo/b",
             (("Content-Length", "4"), ("Content-Length", "5")), b"fourx", manual_framing=True))  # fmt: skip
    add(Case("body negative Content-Length", "POST", "/echo/b", (("Content-Length", "-1"),), b"", manual_framing=True))
    add(Case("body Content-Length with plus", "POST", "/echo/b", (("Content-Length", "+4"),), b"four",
             manual_framing=True))  # fmt: skip
    add(Case("body Content-Length not a number", "POST", "/echo/b", (("Content-Length", "four"),), b"four",
             manual_framing=True))  # fmt: skip
    add(Case("body Content-Length leading zeros", "POST", "/echo/b", (("Content-Length", "0004"),), b"four",
             manual_framing=True))  # fmt: skip

    # -- bodies: chunked -------------------------------------------------------------------
    add(Case("chunked one chunk", "POST", "/echo/b", (), chunks=(b"hello chunked",)))
    add(Case("chunked five chunks", "POST", "/echo/b", (), chunks=(b"a", b"bb", b"ccc", b"dddd", b"eeeee")))
    add(Case("chunked empty", "POST", "/echo/b", (), chunks=()))
    add(Case("chunked with extensions", "POST", "/echo/b", (), chunks=(b"abc", b"de"),
             chunk_ext=(b";name=value", b';q="quoted"')))  # fmt: skip
    add(Case("chunked with trailers", "POST", "/echo/b", (("Trailer", "X-Trail"),), chunks=(b"body",),
             trailers=(("X-Trail", "t"),)))  # fmt: skip
    add(Case("chunked 1 MiB in 64 KiB chunks", "POST", "/echo/b", (),
             chunks=tuple(pattern(65536, i * 65536) for i in range(16))))  # fmt: skip
    add(Case("chunked 200 one-byte chunks", "POST", "/echo/b", (), chunks=tuple(b"%c" % (97 + i % 26) for i in range(200))))
    add(Case("chunked PUT JSON", "PUT", "/echo/b", (JSON,), chunks=(b'{"chunked":', b" true}")))
    add(Case("chunked upper-case size", raw=b"POST /echo/b HTTP/1.1\r\nHost: covet.test\r\nTransfer-Encoding: chunked"
             b"\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n"))  # fmt: skip
    add(Case("chunked leading zeros in size", raw=b"POST /echo/b HTTP/1.1\r\nHost: covet.test\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n0005\r\nhello\r\n0\r\n\r\n"))  # fmt: skip
    add(Case("chunked bad size", raw=b"POST /echo/b HTTP/1.1\r\nHost: covet.test\r\nTransfer-Encoding: chunked"
             b"\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"))  # fmt: skip
    add(Case("chunked spelled Chunked", "POST", "/echo/b", (("Transfer-Encoding", "Chunked"),), chunks=(b"abc",),
             manual_framing=True))  # fmt: skip
    add(Case("chunked and Content-Length", "POST", "/echo/b", (("Content-Length", "3"), ("Transfer-Encoding", "chunked")),
             chunks=(b"abc",), manual_framing=True))  # fmt: skip
    add(Case("transfer-encoding gzip, chunked", "POST", "/echo/b", (("Transfer-Encoding", "gzip, chunked"),),
             chunks=(b"abc",), manual_framing=True))  # fmt: skip
    add(Case("transfer-encoding identity", "POST", "/echo/b", (("Transfer-Encoding", "identity"),
                                                                ("Content-Length", "3")), b"abc", manual_framing=True))  # fmt: skip
    add(Case("transfer-encoding on HTTP/1.0", "POST", "/echo/b", chunks=(b"abc",), version="HTTP/1.0"))

    # -- protocol versions and request lines -------------------------------------------------
    add(Case("HTTP/1.0 without Host", "GET", "/echo/v", version="HTTP/1.0", host=None))
    add(Case("HTTP/1.0 with Host", "GET", "/echo/v", version="HTTP/1.0"))
    add(Case("HTTP/1.0 keep-alive", "GET", "/echo/v", (("Connection", "keep-alive"),), version="HTTP/1.0"))
    add(Case("HTTP/1.0 HEAD", "HEAD", "/echo/v", version="HTTP/1.0"))
    add(Case("HTTP/1.0 POST", "POST", "/echo/v", (), b"ten bytes!", version="HTTP/1.0"))
    add(Case("HTTP/1.0 large", "GET", "/large?size=100000", version="HTTP/1.0"))
    add(Case("HTTP/1.0 stream", "GET", "/stream?n=4&size=5", version="HTTP/1.0"))
    add(Case("version HTTP/2.0 in a request line", "GET", "/echo/v", version="HTTP/2.0"))
    add(Case("version HTTP/1.2", "GET", "/echo/v", version="HTTP/1.2"))
    add(Case("version lower-case", "GET", "/echo/v", version="http/1.1"))
    add(Case("request line without version", raw=b"GET /echo/v\r\n\r\n"))
    add(Case("request line extra space", raw=b"GET  /echo/v HTTP/1.1\r\nHost: covet.test\r\n\r\n"))
    add(Case("leading empty line", raw=b"\r\nGET /echo/v HTTP/1.1\r\nHost: covet.test\r\n\r\n"))

    # -- the routes every hosted app has ---------------------------------------------------
    for method in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"):
        add(Case(f"only-get {method}", method, "/only-get"))
    add(Case("missing GET", "GET", "/missing"))
    add(Case("missing HEAD", "HEAD", "/missing"))
    add(Case("missing POST with body", "POST", "/missing", (), b"unread body"))
    add(Case("missing POST 1 MiB unread", "POST", "/missing", (), pattern(MIB)))
    add(Case("missing root", "GET", "/"))
    add(Case("error GET", "GET", "/error"))
    add(Case("error HEAD", "HEAD", "/error"))
    add(Case("http-error", "GET", "/http-error"))
    for code in (200, 201, 202, 203, 204, 205, 301, 304, 400, 401, 403, 404, 409, 410, 418, 422, 429, 451, 500, 502,
                 503, 599):  # fmt: skip
        add(Case(f"status {code}", "GET", f"/status/{code}"))
    add(Case("status 204 HEAD", "HEAD", "/status/204"))
    add(Case("status 404 HEAD", "HEAD", "/status/404"))
    add(Case("status not a number", "GET", "/status/abc"))
    add(Case("redirect default", "GET", "/redirect"))
    add(Case("redirect absolute 301", "GET", "/redirect?to=https%3A%2F%2Felsewhere.test%2Fx&code=301"))
    add(Case("redirect 307", "GET", "/redirect?code=307"))
    add(Case("redirect 308", "GET", "/redirect?code=308"))
    add(Case("redirect to unicode", "GET", "/redirect?to=%2Fcaf%C3%A9"))
    add(Case("redirect HEAD", "HEAD", "/redirect"))
    add(Case("set-cookie", "GET", "/cookies/set"))
    add(Case("set-cookie HEAD", "HEAD", "/cookies/set"))
    add(Case("unicode text", "GET", "/unicode"))
    add(Case("unicode HEAD", "HEAD", "/unicode"))
    add(Case("unicode JSON", "GET", "/unicode/json"))
    add(Case("repeated response headers", "GET", "/headers/repeat"))
    for size in (0, 1, 4096, 65535, 65536, 65537, MIB):
        add(Case(f"large {size}", "GET", f"/large?size={size}"))
    add(Case("large default", "GET", "/large"))
    add(Case("large HEAD", "HEAD", "/large?size=5000"))
    add(Case("large with Range", "GET", "/large?size=100", (("Range", "bytes=0-9"),)))
    add(Case("stream default", "GET", "/stream"))
    add(Case("stream empty", "GET", "/stream?n=0"))
    add(Case("stream one byte", "GET", "/stream?n=1&size=1"))
    add(Case("stream ten of 1000", "GET", "/stream?n=10&size=1000"))
    add(Case("stream 1 MiB", "GET", "/stream?n=64&size=16384"))
    add(Case("stream HEAD", "HEAD", "/stream"))
    add(Case("stream bad number", "GET", "/stream?n=x"))
    return c


GENERIC: list[Case] = _generic()

_ITEM = (JSON,)
EXTRA: dict[str, list[Case]] = {
    "fastapi": [
        Case("items create", "POST", "/items", _ITEM, b'{"name": "lamp", "price": 19.5, "tags": ["a"]}'),
        Case("items create lax number", "POST", "/items", _ITEM, b'{"name": "pen", "price": "2.5"}'),
        Case("items missing fields", "POST", "/items", _ITEM, b"{}"),
        Case("items bad values", "POST", "/items", _ITEM, b'{"name": "", "price": -1, "tags": "x"}'),
        Case("items malformed JSON", "POST", "/items", _ITEM, b'{"name": '),
        Case("items no body", "POST", "/items", _ITEM),
        Case("items chunked body", "POST", "/items", _ITEM, chunks=(b'{"name": "c",', b' "price": 1}')),
        Case("items not JSON content type", "POST", "/items", (("Content-Type", "text/plain"),), b'{"name": "a", "price": 1}'),
        Case("items get", "GET", "/items/7?q=x&limit=3"),
        Case("items get not an int", "GET", "/items/seven"),
        Case("items get limit too big", "GET", "/items/7?limit=11"),
        Case("items get unicode query", "GET", "/items/7?q=caf%C3%A9"),
        Case("dependency ok", "GET", "/dep", (("X-Token", "s3cret"), ("User-Agent", "diff"))),
        Case("dependency bad token", "GET", "/dep", (("X-Token", "nope"),)),
        Case("dependency missing header", "GET", "/dep"),
        Case("lifespan state", "GET", "/state"),
        Case("stream from a sync generator", "GET", "/stream/sync?n=5&size=100"),
        Case("items method not allowed", "DELETE", "/items"),
    ],
    "starlette": [
        Case("lifespan state", "GET", "/state"),
        Case("raw ASGI mount", "GET", "/raw/x/y"),
        Case("raw ASGI mount root", "GET", "/raw"),
        Case("raw ASGI mount POST", "POST", "/raw/p", (), b"ignored"),
        Case("raw ASGI mount encoded", "GET", "/raw/caf%C3%A9"),
    ],
    "flask": [
        Case("form", "POST", "/form", (("Content-Type", "application/x-www-form-urlencoded"),), b"a=1&a=2&b=caf%C3%A9&c="),
        Case("form chunked", "POST", "/form", (("Content-Type", "application/x-www-form-urlencoded"),),
             chunks=(b"a=1&", b"b=2")),  # fmt: skip
        Case("form multipart", "POST", "/form", (("Content-Type", "multipart/form-data; boundary=XyZ"),),
             b'--XyZ\r\nContent-Disposition: form-data; name="f"\r\n\r\nvalue\r\n--XyZ--\r\n'),  # fmt: skip
        Case("json", "POST", "/json", _ITEM, b'{"x": [1, "\\u00e9"]}'),
        Case("json malformed", "POST", "/json", _ITEM, b"{"),
    ],
    "django": [
        Case("form", "POST", "/form", (("Content-Type", "application/x-www-form-urlencoded"),), b"a=1&a=2&b=caf%C3%A9&c="),
        Case("form chunked", "POST", "/form", (("Content-Type", "application/x-www-form-urlencoded"),),
             chunks=(b"a=1&", b"b=2")),  # fmt: skip
        Case("form multipart", "POST", "/form", (("Content-Type", "multipart/form-data; boundary=XyZ"),),
             b'--XyZ\r\nContent-Disposition: form-data; name="f"\r\n\r\nvalue\r\n--XyZ--\r\n'),  # fmt: skip
        Case("form GET refused", "GET", "/form"),
        Case("append slash redirect", "GET", "/only-get/"),
    ],
}


def corpus(app: str) -> list[Case]:
    """Every case sent to ``app``."""
    return GENERIC + EXTRA.get(app, [])
