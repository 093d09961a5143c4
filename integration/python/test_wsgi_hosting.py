"""A WSGI app hosted behind the real gateway: ``covet worker wsgi_app:app --interface wsgi``
(integration/python/wsgi_app.py), one worker, driven with http.client, raw sockets and
curl: a request body the app reads as it arrives, a response that arrives as the app
makes it, wsgi.file_wrapper sent by the gateway (ETag, ranges, HEAD), a slow request
beside fast ones, close() when the client leaves mid-body.
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from conftest import Gateway, fetch, serving_gateway

PAGE = "hosted by covet\n" * 100


def _ready(gw: Gateway) -> bool:
    try:
        status, _, body = fetch(gw, "GET", "/ready")
    except OSError:
        return False
    return status == 200 and body == b"ok"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("wsgi")
    (tmp / "page.txt").write_text(PAGE)
    with serving_gateway(tmp / "gateway.log", "wsgi_app", "wsgi_app", 1, _ready, interface="wsgi",
                         WSGI_TEST_DIR=str(tmp)) as gateway:  # fmt: skip
        yield gateway


def wait_for(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def test_environ_through_the_gateway(gw: Gateway) -> None:
    status, headers, body = fetch(gw, "GET", "/environ/caf%C3%A9%20x?q=%20&r=1",
                                  headers={"X-Many": "a", "Cookie": "c=1"})  # fmt: skip
    assert status == 200
    fields = dict(line.split("=", 1) for line in body.decode().splitlines())
    assert fields["REQUEST_METHOD"] == "GET"
    assert fields["path_utf8"] == "/environ/café x"
    assert fields["QUERY_STRING"] == "q=%20&r=1"
    assert fields["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert fields["SERVER_NAME"] == "127.0.0.1" and fields["SERVER_PORT"] == str(gw.port)
    assert fields["REMOTE_ADDR"] == "127.0.0.1"
    assert fields["HTTP_X_MANY"] == "a" and fields["HTTP_COOKIE"] == "c=1"
    assert fields["wsgi.url_scheme"] == "http"
    assert headers["X-Request-ID"]


def test_apps_own_404_and_a_failing_app(gw: Gateway) -> None:
    status, _, body = fetch(gw, "DELETE", "/no/such/page")
    assert (status, body) == (404, b"no such page")  # the app's 404, not the gateway's
    status, _, body = fetch(gw, "GET", "/boom", headers={"X-Request-ID": "wsgi-boom-1"})
    assert (status, body) == (500, b"Internal Server Error")
    log = gw.wait_for_log("wsgi-boom-1", "the WSGI app failed on purpose")
    assert "unhandled exception in WSGI app" in log


def test_request_body_is_read_as_it_arrives(gw: Gateway) -> None:
    """Each chunk of a chunked upload is read by the app (seen through /progress)
    before the client sends the next one."""
    upload = "up1"
    sock = socket.create_connection((gw.host, gw.port), timeout=10)
    try:
        sock.sendall(b"POST /upload?" + upload.encode() + b" HTTP/1.1\r\nHost: t\r\n"
                     b"Transfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n")  # fmt: skip
        for i in range(3):
            line = f"line {i}\n".encode()
            sock.sendall(b"%x\r\n%s\r\n" % (len(line), line))
            assert wait_for(lambda: fetch(gw, "GET", f"/progress?{upload}")[2] == str(i + 1).encode()), \
                f"the app had not read line {i} while the client waited"
        sock.sendall(b"0\r\n\r\n")
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        assert resp.status == 200
        assert resp.read() == b"lines=3 bytes=21"
    finally:
        sock.close()


def test_response_arrives_as_the_app_makes_it(gw: Gateway) -> None:
    """The app yields its first part, then waits for /release: the client has the
    first part before that."""
    conn = http.client.HTTPConnection(gw.host, gw.port, timeout=10)
    try:
        conn.request("GET", "/stream")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Transfer-Encoding") == "chunked"
        assert resp.readline() == b"first part\n"  # while the app is still waiting
        assert fetch(gw, "GET", "/release")[2] == b"released"
        assert resp.read() == b"second part\n"
    finally:
        conn.close()


def test_file_wrapper_is_sent_by_the_gateway(gw: Gateway) -> None:
    status, headers, body = fetch(gw, "GET", "/file")
    assert status == 200 and body == PAGE.encode()
    etag = headers["ETag"]
    assert etag and headers["Last-Modified"] and headers["Accept-Ranges"] == "bytes"
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert fetch(gw, "GET", "/file", headers={"If-None-Match": etag})[0] == 304
    status, headers, body = fetch(gw, "GET", "/file", headers={"Range": "bytes=0-5"})
    assert (status, body) == (206, b"hosted")
    assert headers["Content-Range"] == f"bytes 0-5/{len(PAGE)}"
    status, headers, body = fetch(gw, "HEAD", "/file")
    assert status == 200 and body == b"" and headers["Content-Length"] == str(len(PAGE))


def test_file_wrapper_range_with_curl(gw: Gateway, curl: str) -> None:
    out = subprocess.run([curl, "-s", "-i", "-r", "7-14", f"{gw.base_url}/file"], capture_output=True, timeout=10,
                         check=True).stdout  # fmt: skip
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 206")
    assert body == b"by covet"


def test_slow_request_does_not_stall_others(gw: Gateway) -> None:
    """By order, not by time: two /slow requests block in the app until /fast has been
    served. Both are seen inside the app at once (the second did not wait for the
    first), and /fast answers while they block (were it queued behind them, they would
    give up waiting for it after 10 s and say so)."""
    results: list[tuple[int, bytes]] = []

    def slow() -> None:
        status, _, body = fetch(gw, "GET", "/slow")
        results.append((status, body))

    threads = [threading.Thread(target=slow) for _ in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while fetch(gw, "GET", "/slow-inside")[2] != b"2":
        assert time.monotonic() < deadline, "the two /slow requests were never in the app at once"
        time.sleep(0.01)
    assert fetch(gw, "GET", "/fast")[2] == b"fast"
    for t in threads:
        t.join(15)
    assert results == [(200, b"slow"), (200, b"slow")]


def test_close_is_called_when_the_client_leaves_mid_body(gw: Gateway, curl: str) -> None:
    sock = socket.create_connection((gw.host, gw.port), timeout=10)
    try:
        sock.sendall(b"GET /endless HTTP/1.1\r\nHost: t\r\n\r\n")
        got = b""
        while len(got) < 200_000:
            data = sock.recv(65536)
            assert data, "the gateway closed the endless body"
            got += data
        assert got.startswith(b"HTTP/1.1 200")
    finally:
        sock.close()  # leave mid-body

    def closed() -> bool:
        return fetch(gw, "GET", "/endless-state")[2].startswith(b"closed=True")

    assert wait_for(closed), fetch(gw, "GET", "/endless-state")[2]
    # Backpressure: the app made about what the client took plus the windows, not an unbounded stream.
    chunks = int(fetch(gw, "GET", "/endless-state")[2].decode().split("chunks=")[1])
    assert chunks < 200, f"{chunks} chunks of 64 KiB made for a client that read about 200 KB"
    # curl reading as fast as it can, then giving up after half a second (exit 28).
    proc = subprocess.run([curl, "-s", "--max-time", "0.5", "-o", "/dev/null", "-w", "%{http_code}",
                           f"{gw.base_url}/endless"], capture_output=True, timeout=10)  # fmt: skip
    assert (proc.returncode, proc.stdout) == (28, b"200")
    assert wait_for(closed), fetch(gw, "GET", "/endless-state")[2]


def test_large_identity_body_and_keep_alive(gw: Gateway) -> None:
    conn = http.client.HTTPConnection(gw.host, gw.port, timeout=10)
    try:
        body = b"".join(b"row %06d\n" % i for i in range(100_000))  # 1 MB, Content-Length
        conn.request("POST", "/upload?big", body=body)
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b"lines=100000 bytes=%d" % len(body)
        conn.request("GET", "/fast")  # the same connection
        resp = conn.getresponse()
        assert resp.read() == b"fast"
    finally:
        conn.close()
