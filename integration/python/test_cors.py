"""CORS and security headers end to end: a real bin/covet-gateway with cors_* and
security_* settings, real Python workers serving cors_app.py, and real clients: headless
Chromium loading a page from a second loopback origin (a small HTTP server in this
process) whose script calls the gateway's API, and http.client.

Origins: the page server listens on 127.0.0.1:PAGE. The gateway allows
http://127.0.0.1:PAGE (exact) and http://*.localhost:PAGE (wildcard subdomain; Chromium
resolves every *.localhost name to loopback itself), so the same page loaded as
http://app.localhost:PAGE is allowed too, and as http://localhost:PAGE (the wildcard's
bare domain) is not.

Run with ``.venv/bin/python -m pytest integration/python/test_cors.py`` after
``make build``.
"""

from __future__ import annotations

import http.client
import json
import shutil
import ssl
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from conftest import Gateway, _ready, self_signed, serving_gateway

TIMEOUT = 10.0  # seconds a page gets to report, and a client call to answer

# The page: a credentialed PUT with a custom header and a JSON body (not simple, so
# preflighted) and a simple GET, both to the gateway; it reports what it could read to
# its own origin (/result), and the parser-blocking /wait.js holds the page's load event
# (after which Chromium dumps the DOM and exits) until that report has arrived.
PAGE = """<!doctype html><title>pending</title><script>
document.cookie = "c=from-page; path=/";
const api = "API";
const outcome = (p) => p.then(async (r) => ({ok: true, status: r.status, item: r.headers.get("x-item-id"),
                                            secret: r.headers.get("x-secret"), json: await r.json()}),
                              (e) => ({ok: false, error: String(e)}));
Promise.all([
  outcome(fetch(api + "/api/item", {method: "PUT", credentials: "include", body: '{"n":1}',
                                    headers: {"x-token": "t-1", "content-type": "application/json"}})),
  outcome(fetch(api + "/api/item")),
]).then(([put, get]) => fetch("/result?token=TOKEN", {method: "POST", body: JSON.stringify({put, get})}));
</script><script src="/wait.js?token=TOKEN"></script>"""


class PageServer:
    """The second origin: serves PAGE and collects each page's report."""

    def __init__(self, api: str) -> None:
        self.api = api
        self.results: dict[str, dict] = {}
        self.arrived: dict[str, threading.Event] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, ctype: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(body)))
                self.send_header("cache-control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                u = urlsplit(self.path)
                token = parse_qs(u.query).get("token", [""])[0]
                if u.path == "/page" and token in outer.arrived:
                    page = PAGE.replace("API", outer.api).replace("TOKEN", token)
                    self._send(200, "text/html; charset=utf-8", page.encode())
                elif u.path == "/wait.js" and token in outer.arrived:
                    done = outer.arrived[token].wait(TIMEOUT)
                    self._send(200, "text/javascript", b'document.title = "%s";' % (b"reported" if done else b"silent"))
                else:
                    self._send(404, "text/plain", b"no such page")

            def do_POST(self) -> None:
                u = urlsplit(self.path)
                token = parse_qs(u.query).get("token", [""])[0]
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if u.path == "/result" and token in outer.arrived:
                    outer.results[token] = json.loads(body)
                    outer.arrived[token].set()
                    self._send(204, "text/plain", b"")
                else:
                    self._send(404, "text/plain", b"no such page")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def new_page(self) -> str:
        token = uuid.uuid4().hex
        self.arrived[token] = threading.Event()
        return token


@dataclass
class Setup:
    gw: Gateway
    pages: PageServer


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    pages = PageServer("")
    pages.thread.start()
    p = pages.port
    flags = [
        "--cors-allow-origins", f"http://127.0.0.1:{p},http://*.localhost:{p}",
        "--cors-allow-methods", "GET,PUT",
        "--cors-allow-headers", "X-Token,content-type",
        "--cors-expose-headers", "x-item-id",
        "--cors-allow-credentials=true",
        "--cors-max-age", "10m",
        "--security-headers=true",
    ]  # fmt: skip
    try:
        with serving_gateway(tmp_path_factory.mktemp("cors") / "gateway.log", "corsapp", "cors_app", 1,
                             lambda gw: _ready(gw.host, gw.port), flags, COVET_LOG_LEVEL="INFO") as gw:  # fmt: skip
            pages.api = gw.base_url
            yield Setup(gw, pages)
    finally:
        pages.httpd.shutdown()
        pages.httpd.server_close()


def call(gw: Gateway, method: str, path: str, headers: dict[str, str] | None = None,
         body: bytes | None = None) -> http.client.HTTPResponse:  # fmt: skip
    conn = http.client.HTTPConnection(gw.host, gw.port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp
    finally:
        conn.close()


def seen(gw: Gateway) -> dict[str, int]:
    """The requests the (one) worker's /api/item handler saw, by method."""
    conn = http.client.HTTPConnection(gw.host, gw.port, timeout=TIMEOUT)
    try:
        conn.request("GET", "/api/seen")
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def vary(resp: http.client.HTTPResponse) -> set[str]:
    return {v.strip().lower() for f in resp.headers.get_all("vary") or [] for v in f.split(",")}


def acl(resp: http.client.HTTPResponse) -> dict[str, str]:
    """The response's access-control-* fields."""
    return {k.lower(): v for k, v in resp.getheaders() if k.lower().startswith("access-control-")}


# -- headless Chromium ---------------------------------------------------------------------


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def browse(setup: Setup, host: str, tmp_path: Path) -> dict:
    """Load the page from http://host:PAGE in headless Chromium; return its report."""
    bin_ = _chromium()
    if bin_ is None:
        pytest.skip("no chromium on PATH (make test-tools installs it)")
    token = setup.pages.new_page()
    out = subprocess.run(
        [bin_, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
         f"http://{host}:{setup.pages.port}/page?token={token}"],
        capture_output=True, timeout=60,
    )  # fmt: skip
    dom = out.stdout.decode("utf-8", "replace")
    assert "<title>reported</title>" in dom, f"the page did not report:\nDOM:\n{dom}\nstderr:\n{out.stderr.decode()[-2000:]}"
    return setup.pages.results[token]


@pytest.mark.parametrize("host", ["127.0.0.1", "app.localhost"])
def test_browser_allowed_origin(setup: Setup, host: str, tmp_path: Path) -> None:
    """From an allowed origin (exact, then wildcard subdomain) the preflighted,
    credentialed PUT succeeds and the page reads the exposed header but not the other
    one; the preflight was answered by the gateway: the worker saw the PUT, never an
    OPTIONS."""
    before = seen(setup.gw)
    r = browse(setup, host, tmp_path)
    put, get = r["put"], r["get"]
    assert put["ok"], put
    assert put["status"] == 200 and put["item"] == "42" and put["secret"] is None, put
    origin = f"http://{host}:{setup.pages.port}"
    assert put["json"]["method"] == "PUT" and put["json"]["origin"] == origin and put["json"]["token"] == "t-1", put
    assert put["json"]["body"] == '{"n":1}', put
    if host == "127.0.0.1":  # the page's cookie (same host, other port) came with the credentialed call
        assert put["json"]["cookie"] == "from-page", put
    assert get["ok"] and get["json"]["method"] == "GET", get
    after = seen(setup.gw)
    assert after.get("PUT", 0) == before.get("PUT", 0) + 1, (before, after)
    assert after.get("GET", 0) == before.get("GET", 0) + 1, (before, after)
    assert after.get("OPTIONS", 0) == 0, f"a preflight reached the worker: {after}"


def test_browser_refused_origin(setup: Setup, tmp_path: Path) -> None:
    """From http://localhost:PAGE (not the wildcard's subdomain) the browser fails both
    calls: the preflight gets no allow fields, so the PUT is never sent; the simple GET
    is sent (CORS cannot stop that) but the page cannot read the answer."""
    before = seen(setup.gw)
    r = browse(setup, "localhost", tmp_path)
    assert not r["put"]["ok"] and "TypeError" in r["put"]["error"], r
    assert not r["get"]["ok"] and "TypeError" in r["get"]["error"], r
    after = seen(setup.gw)
    assert after.get("PUT", 0) == before.get("PUT", 0), (before, after)
    assert after.get("GET", 0) == before.get("GET", 0) + 1, (before, after)
    assert after.get("OPTIONS", 0) == 0, after


# -- plain HTTP ----------------------------------------------------------------------------


def test_preflight_fields(setup: Setup) -> None:
    origin = f"http://127.0.0.1:{setup.pages.port}"
    r = call(setup.gw, "OPTIONS", "/api/item", {"Origin": origin, "Access-Control-Request-Method": "PUT",
                                                 "Access-Control-Request-Headers": "content-type, X-TOKEN"})  # fmt: skip
    assert r.status == 204, (r.status, r.getheaders())
    assert r.getheader("x-from") is None  # not the worker's answer
    assert acl(r) == {
        "access-control-allow-origin": origin,
        "access-control-allow-credentials": "true",
        "access-control-allow-methods": "GET, PUT",
        "access-control-allow-headers": "x-token, content-type",
        "access-control-max-age": "600",
    }, r.getheaders()
    assert {"origin", "access-control-request-method", "access-control-request-headers"} <= vary(r)

    refused = [
        {"Origin": "http://localhost:1", "Access-Control-Request-Method": "PUT"},  # origin
        {"Origin": f"http://evil.localhost.example:{setup.pages.port}", "Access-Control-Request-Method": "PUT"},
        {"Origin": origin, "Access-Control-Request-Method": "DELETE"},  # method
        {"Origin": origin, "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "x-other"},
    ]
    for h in refused:
        r = call(setup.gw, "OPTIONS", "/api/item", h)
        assert r.getheader("x-from") is None, h
        assert acl(r) == {}, (h, r.getheaders())
        assert "origin" in vary(r), h
    assert seen(setup.gw).get("OPTIONS", 0) == 0


def test_actual_response_fields(setup: Setup) -> None:
    origin = f"http://sub.app.localhost:{setup.pages.port}"  # wildcard, two labels deep
    r = call(setup.gw, "GET", "/api/item", {"Origin": origin})
    assert r.status == 200
    assert acl(r) == {
        "access-control-allow-origin": origin,
        "access-control-allow-credentials": "true",
        "access-control-expose-headers": "x-item-id",
    }, r.getheaders()
    assert "origin" in vary(r)
    for h in ({"Origin": "http://localhost:%d" % setup.pages.port}, {}):  # refused, and no Origin
        r = call(setup.gw, "GET", "/api/item", h)
        assert r.status == 200 and acl(r) == {}, (h, r.getheaders())
        assert "origin" in vary(r), (h, r.getheaders())  # a cache must not mix them up


def test_security_headers_plain(setup: Setup) -> None:
    r = call(setup.gw, "GET", "/r/plain")
    assert r.getheader("x-content-type-options") == "nosniff"
    assert r.getheader("x-frame-options") == "DENY"
    assert r.getheader("referrer-policy") == "strict-origin-when-cross-origin"
    assert r.getheader("strict-transport-security") is None  # not over plain HTTP
    # The worker's own value wins, and is not doubled.
    r = call(setup.gw, "GET", "/api/framed")
    assert r.headers.get_all("x-frame-options") == ["SAMEORIGIN"], r.getheaders()
    assert r.getheader("x-content-type-options") == "nosniff"


def test_route_options(setup: Setup) -> None:
    """A route's cors and security_headers options replace the gateway's settings."""
    page = f"http://127.0.0.1:{setup.pages.port}"
    # cors=False, security_headers=False: nothing added, even for an allowed origin.
    r = call(setup.gw, "GET", "/api/private", {"Origin": page})
    assert r.status == 200 and acl(r) == {} and "origin" not in vary(r), r.getheaders()
    assert r.getheader("x-content-type-options") is None and r.getheader("x-frame-options") is None
    # A route's own policy: the gateway's origins are refused, the route's allowed.
    pre = {"Access-Control-Request-Method": "PUT"}
    r = call(setup.gw, "OPTIONS", "/api/partner", {"Origin": page, **pre})
    assert r.status == 204 and acl(r) == {}, r.getheaders()
    r = call(setup.gw, "OPTIONS", "/api/partner", {"Origin": "https://partner.example", **pre})
    assert r.status == 204 and acl(r) == {
        "access-control-allow-origin": "https://partner.example",
        "access-control-allow-methods": "PUT",
        "access-control-max-age": "60",
    }, r.getheaders()
    r = call(setup.gw, "PUT", "/api/partner", {"Origin": "https://partner.example"}, b"x")
    assert r.status == 200 and acl(r) == {"access-control-allow-origin": "https://partner.example"}, r.getheaders()
    assert seen(setup.gw).get("partner OPTIONS", 0) == 0
    # security_headers overrides: one changed, one removed, one added, nosniff kept.
    r = call(setup.gw, "GET", "/api/embed")
    assert r.getheader("x-frame-options") == "SAMEORIGIN"
    assert r.getheader("referrer-policy") is None
    assert r.getheader("content-security-policy") == "frame-ancestors 'self'"
    assert r.getheader("x-content-type-options") == "nosniff"


def test_tls_http2_hsts_and_preflight(tmp_path: Path) -> None:
    """Over TLS, HSTS is added; and the same CORS answers come over HTTP/2, whose field
    names reach the gateway in another case than HTTP/1.1's."""
    cert, key = self_signed(tmp_path)
    client = httpx.Client(http2=True, verify=ssl.create_default_context(cafile=str(cert)), timeout=TIMEOUT)

    def ready(gw: Gateway) -> bool:
        try:
            return client.get(gw.base_url + "/r/plain").status_code == 200
        except httpx.HTTPError:
            return False

    origin = "https://app.example.com"
    flags = ["--tls-cert", str(cert), "--tls-key", str(key), "--security-headers=true", "--security-hsts", "max-age=300",
             "--cors-allow-origins", origin, "--cors-allow-methods", "PUT", "--cors-allow-headers", "x-token"]  # fmt: skip
    try:
        with serving_gateway(tmp_path / "gateway.log", "corsapp", "cors_app", 1, ready, flags, scheme="https") as gw:
            r = client.get(gw.base_url + "/r/plain")
            assert r.http_version == "HTTP/2"
            assert r.headers.get("strict-transport-security") == "max-age=300"
            assert r.headers.get("x-content-type-options") == "nosniff"

            pre = {"origin": origin, "access-control-request-method": "PUT"}
            r = client.options(gw.base_url + "/api/item", headers={**pre, "access-control-request-headers": "X-Token"})
            assert r.http_version == "HTTP/2" and r.status_code == 204, r
            assert r.headers.get("access-control-allow-origin") == origin, r.headers
            assert r.headers.get("access-control-allow-headers") == "x-token", r.headers
            for bad in ({**pre, "access-control-request-headers": "x-other"}, {**pre, "origin": "https://evil.example"}):
                r = client.options(gw.base_url + "/api/item", headers=bad)
                assert "access-control-allow-origin" not in r.headers, (bad, r.headers)
            r = client.put(gw.base_url + "/api/item", headers={"origin": origin, "x-token": "t"}, content=b"x")
            assert r.status_code == 200 and r.headers.get("access-control-allow-origin") == origin, r.headers
            assert r.json()["method"] == "PUT"
            assert client.get(gw.base_url + "/api/seen").json().get("OPTIONS", 0) == 0
    finally:
        client.close()
