"""Static files end to end: a real gateway serving app.static routes, a --static mount
and a worker's FileResponse from disk, driven by http.client (raw paths, so that the
traversal forms reach the gateway as written) and curl."""

from __future__ import annotations

import http.client
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Gateway, serving_gateway

BIG = bytes((i * 31) & 0xFF for i in range(1 << 20))  # 1 MiB: sendfile


def _ready(gw: Gateway) -> bool:
    try:
        return _get(gw, "/ready")[0] == 200
    except OSError:
        return False


def _get(gw: Gateway, path: str, method: str = "GET", **headers: str) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = http.client.HTTPConnection(gw.host, gw.port, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name.replace("_", "-"), value)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("static")
    public = base / "public"
    (public / "docs").mkdir(parents=True)
    (public / "hello.txt").write_bytes(b"hello static\n")
    (public / "big.bin").write_bytes(BIG)
    (public / "app.js").write_bytes(b"console.log('plain')\n")
    (public / "app.js.br").write_bytes(b"BROTLI-BYTES")
    (public / "app.js.gz").write_bytes(b"GZIP-BYTES")
    (public / "docs" / "index.html").write_bytes(b"<h1>docs</h1>")
    (base / "secret.txt").write_bytes(b"top secret")
    (public / "escape.txt").symlink_to(base / "secret.txt")
    (public / "up").symlink_to(base)
    (public / "alias.txt").symlink_to("hello.txt")
    return public


@pytest.fixture(scope="module")
def gw(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    log = tmp_path_factory.mktemp("static-gw") / "gateway.log"
    flags = ["--static", f"/m={tree}", "--static-index"]
    with serving_gateway(log, "staticapp", "static_app", 1, _ready, flags, COVET_STATIC_DIR=str(tree)) as g:
        yield g


@pytest.mark.parametrize("prefix", ["/assets", "/m"])
def test_get_head_conditional(gw: Gateway, prefix: str) -> None:
    status, h, body = _get(gw, f"{prefix}/hello.txt")
    assert (status, body) == (200, b"hello static\n")
    assert h["Content-Type"] == "text/plain; charset=utf-8" and h["Accept-Ranges"] == "bytes"
    etag, lm = h["ETag"], h["Last-Modified"]
    assert etag.startswith('"') and lm.endswith("GMT")
    status, h, body = _get(gw, f"{prefix}/big.bin", "HEAD")
    assert (status, body, h["Content-Length"]) == (200, b"", str(len(BIG)))
    status, h, body = _get(gw, f"{prefix}/hello.txt", If_None_Match=etag)
    assert (status, body, h["ETag"]) == (304, b"", etag)
    status, _, body = _get(gw, f"{prefix}/hello.txt", If_Modified_Since=lm)
    assert (status, body) == (304, b"")
    status, _, body = _get(gw, f"{prefix}/hello.txt", If_None_Match='"stale"')
    assert (status, body) == (200, b"hello static\n")
    status, _, body = _get(gw, f"{prefix}/big.bin")
    assert status == 200 and body == BIG


@pytest.mark.parametrize("prefix", ["/assets", "/m"])
def test_ranges(gw: Gateway, prefix: str) -> None:
    status, h, body = _get(gw, f"{prefix}/big.bin", Range="bytes=1000-500999")
    assert (status, h["Content-Range"], body) == (206, f"bytes 1000-500999/{len(BIG)}", BIG[1000:501000])
    status, h, body = _get(gw, f"{prefix}/big.bin", Range="bytes=-10")
    assert (status, body) == (206, BIG[-10:])
    status, h, _ = _get(gw, f"{prefix}/hello.txt", Range="bytes=13-")
    assert (status, h["Content-Range"]) == (416, "bytes */13")
    status, _, body = _get(gw, f"{prefix}/hello.txt", Range="bytes=0-1,4-5")
    assert (status, body) == (200, b"hello static\n")  # several ranges: the whole file
    _, h, _ = _get(gw, f"{prefix}/hello.txt")
    status, _, body = _get(gw, f"{prefix}/hello.txt", Range="bytes=0-4", If_Range=h["ETag"])
    assert (status, body) == (206, b"hello")
    status, _, body = _get(gw, f"{prefix}/hello.txt", Range="bytes=0-4", If_Range='"old"')
    assert (status, body) == (200, b"hello static\n")


def test_precompressed(gw: Gateway) -> None:
    status, h, body = _get(gw, "/assets/app.js", Accept_Encoding="gzip, deflate, br")
    assert (status, body, h["Content-Encoding"], h["Vary"]) == (200, b"BROTLI-BYTES", "br", "Accept-Encoding")
    assert h["Content-Type"] == "text/javascript; charset=utf-8"
    status, h, body = _get(gw, "/assets/app.js", Accept_Encoding="gzip")
    assert (status, body, h["Content-Encoding"]) == (200, b"GZIP-BYTES", "gzip")
    status, h, body = _get(gw, "/assets/app.js", Accept_Encoding="gzip", Range="bytes=0-3")
    assert (status, body, h["Content-Range"]) == (206, b"GZIP", "bytes 0-3/10")
    status, h, body = _get(gw, "/assets/app.js")
    assert (status, body, h["Content-Encoding"]) == (200, b"console.log('plain')\n", None)


def test_index_and_redirect(gw: Gateway) -> None:
    for prefix in ("/assets", "/m"):
        assert _get(gw, f"{prefix}/docs/")[::2] == (200, b"<h1>docs</h1>")
        status, h, _ = _get(gw, f"{prefix}/docs?x=1")
        assert (status, h["Location"]) == (301, f"{prefix}/docs/?x=1")
    status, h, _ = _get(gw, "/m")
    assert (status, h["Location"]) == (301, "/m/")


TRAVERSALS = {
    "../secret.txt": 400,
    "%2e%2e/secret.txt": 400,
    "%2E%2E/secret.txt": 400,
    "docs/../../secret.txt": 400,
    "..%2fsecret.txt": 404,
    "docs%2f..%2f..%2fsecret.txt": 404,
    "%2fetc%2fpasswd": 404,
    "..%5csecret.txt": 404,
    "..\\secret.txt": 404,
    "hello.txt%00": 404,
    "hello.txt%00.png": 404,
    "escape.txt": 404,
    "up/secret.txt": 404,
    "/secret.txt": 404,
}


@pytest.mark.parametrize("prefix", ["/assets", "/m"])
@pytest.mark.parametrize(("rest", "want"), list(TRAVERSALS.items()))
def test_traversal_refused(gw: Gateway, prefix: str, rest: str, want: int) -> None:
    status, _, body = _get(gw, f"{prefix}/{rest}")
    assert status == want and b"secret" not in body


def test_symlink_inside_served(gw: Gateway) -> None:
    assert _get(gw, "/assets/alias.txt")[::2] == (200, b"hello static\n")


def test_file_response(gw: Gateway) -> None:
    status, h, body = _get(gw, "/download/big.bin", Range="bytes=5-")
    assert (status, body) == (206, BIG[5:])
    assert h["Content-Disposition"] == 'attachment; filename="copy of big.bin"'
    status, h, body = _get(gw, "/download/hello.txt", "HEAD")
    assert (status, body, h["Content-Length"]) == (200, b"", "13")
    status, h, body = _get(gw, "/download/secret")  # the worker may name any file
    assert (status, body) == (200, b"top secret")
    status, _, body = _get(gw, "/download/missing.txt")
    assert (status, body) == (404, b"Not Found\n")
    status, h, body = _get(gw, "/page404", Range="bytes=0-1")
    assert (status, body, h["Content-Type"], h["Accept-Ranges"]) == (404, b"hello static\n", "text/html; charset=utf-8", None)


def test_curl(gw: Gateway, curl: str, tmp_path: Path) -> None:
    out = tmp_path / "big"
    r = subprocess.run([curl, "-sS", "-o", str(out), "-w", "%{http_code}", f"{gw.base_url}/assets/big.bin"],
                       capture_output=True, text=True, timeout=30)  # fmt: skip
    assert r.stdout == "200" and out.read_bytes() == BIG, r.stderr
    r = subprocess.run([curl, "-sS", "-r", "10-19", f"{gw.base_url}/m/big.bin"], capture_output=True, timeout=30)
    assert r.stdout == BIG[10:20]
    r = subprocess.run([curl, "-sS", "--path-as-is", "-o", "/dev/null", "-w", "%{http_code}",
                        f"{gw.base_url}/assets/../secret.txt"], capture_output=True, text=True, timeout=30)  # fmt: skip
    assert r.stdout == "400"
    r = subprocess.run([curl, "-sS", "-H", "Accept-Encoding: br", "-D", "-", f"{gw.base_url}/assets/app.js"],
                       capture_output=True, timeout=30)  # fmt: skip
    assert b"content-encoding: br" in r.stdout.lower() and r.stdout.endswith(b"BROTLI-BYTES")


def test_file_response_frees_the_worker(tree: Path, tmp_path: Path) -> None:
    """A FileResponse is sent after the worker's credit is given back: with one worker
    taking one request at a time, a client that does not read a large file does not
    hold up the next request."""
    huge = tree / "huge.bin"
    with open(huge, "wb") as f:
        f.truncate(256 << 20)  # sparse: more than the socket buffers take
    flags = ["--max-inflight", "1", "--queue-timeout", "3s"]
    try:
        with serving_gateway(tmp_path / "gateway.log", "staticapp", "static_app", 1, _ready, flags,
                             COVET_STATIC_DIR=str(tree)) as g:  # fmt: skip
            stalled = socket.create_connection((g.host, g.port), timeout=10)
            try:
                stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                stalled.sendall(b"GET /download/huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
                assert stalled.recv(12) == b"HTTP/1.1 200"  # the head came; the body waits
                for _ in range(3):
                    assert _get(g, "/ready")[::2] == (200, b"ready")
            finally:
                stalled.close()
    finally:
        huge.unlink()


def test_security_fields_on_static_files(tree: Path, tmp_path: Path) -> None:
    """The gateway's security headers and CORS fields reach the files the front end
    serves itself (a manifest static route, a --static mount) and a worker's
    FileResponse, as they reach a worker's answers."""
    flags = ["--static", f"/m={tree}", "--security-headers", "--cors-allow-origins", "https://app.example"]
    with serving_gateway(tmp_path / "gateway.log", "staticapp", "static_app", 1, _ready, flags,
                         COVET_STATIC_DIR=str(tree)) as g:  # fmt: skip
        for path in ("/assets/hello.txt", "/m/hello.txt", "/download/hello.txt"):
            status, headers, body = _get(g, path, Origin="https://app.example")
            assert (status, body) == (200, b"hello static\n"), path
            assert headers["X-Content-Type-Options"] == "nosniff", (path, headers)
            assert headers["X-Frame-Options"] == "DENY", path
            assert "Strict-Transport-Security" not in headers, path  # plain HTTP: no HSTS
            assert headers["Access-Control-Allow-Origin"] == "https://app.example", path
            assert "origin" in headers["Vary"].lower(), path
            status, headers, _ = _get(g, path, Origin="https://evil.example")
            assert status == 200 and "Access-Control-Allow-Origin" not in headers, path
        # A conditional answer carries them too.
        _, headers, _ = _get(g, "/m/hello.txt")
        status, headers, _ = _get(g, "/m/hello.txt", If_None_Match=headers["ETag"])
        assert status == 304 and headers["X-Content-Type-Options"] == "nosniff"
