"""An ASGI 3 app hosted behind the real gateway: bin/covet-gateway, real workers
running ``covet worker asgi_hosted_app:app --interface asgi``, real clients (http.client,
raw sockets, curl). Streaming arrives as it is sent, request bodies arrive as a stream
of messages, a client that leaves reaches the app as http.disconnect, pathsend is served
by the gateway (ETag, conditional requests, ranges), and a failed lifespan startup is
reported by the gateway."""

from __future__ import annotations

import http.client
import json
import os
import re
import shlex
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import GATEWAY, HERE, REPO, Gateway, _free_port, _python, fetch, need_gateway, serving_gateway


def _ready(gw: Gateway) -> bool:
    try:
        return fetch(gw, "GET", "/scope")[0] == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def asgi_gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    log = tmp_path_factory.mktemp("asgi") / "gateway.log"
    with serving_gateway(log, "asgi_hosted_app", "asgi_hosted_app", 1, _ready, interface="asgi",
                         COVET_LOG_LEVEL="INFO") as gw:  # fmt: skip
        yield gw


def test_scope_through_the_gateway(asgi_gw: Gateway) -> None:
    status, _, body = fetch(asgi_gw, "GET", "/scope?a=1&b=%C3%A9", headers={"X-Rep": "1", "Cookie": "k=v"})
    assert status == 200
    s = json.loads(body)
    assert (s["type"], s["method"], s["scheme"], s["http_version"]) == ("http", "GET", "http", "1.1")
    assert s["path"] == "/scope" and s["raw_path"] == "/scope"
    assert s["query_string"] == "a=1&b=%C3%A9"
    assert s["root_path"] == ""
    assert s["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert ["x-rep", "1"] in s["headers"] and ["cookie", "k=v"] in s["headers"]
    assert s["client"][0] == "127.0.0.1" and isinstance(s["client"][1], int)
    assert s["server"] == ["127.0.0.1", asgi_gw.port]
    assert "http.response.pathsend" in s["extensions"]


def test_percent_encoded_path_is_decoded(asgi_gw: Gateway) -> None:
    # An unknown path: the app answers its own 404 (the gateway routes every path to it).
    status, headers, body = fetch(asgi_gw, "GET", "/caf%C3%A9%20x")
    assert (status, body) == (404, b"not here\n")
    assert headers["content-length"] == "9"


def test_the_app_answers_every_method(asgi_gw: Gateway) -> None:
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        status, _, body = fetch(asgi_gw, method, "/scope")
        assert status == 200 and json.loads(body)["method"] == method


def test_head_keeps_the_apps_content_length(asgi_gw: Gateway) -> None:
    status, headers, body = fetch(asgi_gw, "HEAD", "/nothing")
    assert (status, body) == (404, b"")
    assert headers["content-length"] == "9"


def test_request_body_is_streamed_in_messages(asgi_gw: Gateway) -> None:
    big = os.urandom(3 << 20)
    status, _, body = fetch(asgi_gw, "POST", "/body", body=big)
    assert status == 200
    messages = json.loads(body)
    assert sum(n for n, _ in messages) == len(big)
    assert len(messages) > 1  # it arrived in pieces, not buffered whole
    assert [more for _, more in messages] == [True] * (len(messages) - 1) + [False]


def test_chunked_request_body(asgi_gw: Gateway) -> None:
    def parts() -> Iterator[bytes]:
        for _ in range(4):
            yield b"x" * 1000
            time.sleep(0.05)

    conn = http.client.HTTPConnection(asgi_gw.host, asgi_gw.port, timeout=10)
    try:
        conn.request("POST", "/body", body=parts(), encode_chunked=True)
        resp = conn.getresponse()
        messages = json.loads(resp.read())
    finally:
        conn.close()
    assert sum(n for n, _ in messages) == 4000
    assert messages[-1][1] is False


def test_empty_body_is_one_message(asgi_gw: Gateway) -> None:
    assert json.loads(fetch(asgi_gw, "GET", "/body")[2]) == [[0, False]]


def test_streaming_response_arrives_incrementally(asgi_gw: Gateway, tmp_path: Path) -> None:
    """By order, not by time: the app makes chunk i only once the client has read chunk
    i - 1 and opened gate i (a gateway that held chunks back would leave the gates shut
    until the app gave up on them, and the chunks would say so)."""
    gate = tmp_path / "gate"
    conn = http.client.HTTPConnection(asgi_gw.host, asgi_gw.port, timeout=30)
    try:
        conn.request("GET", f"/stream?n=4&gate={gate}")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.getheader("transfer-encoding") == "chunked"
        lines = []
        for i in range(4):
            lines.append(resp.readline())
            Path(f"{gate}.{i + 1}").touch()
        assert resp.read() == b""
    finally:
        conn.close()
    assert lines == [b"chunk 0\n", b"chunk 1\n", b"chunk 2\n", b"chunk 3\n"]


def test_streaming_with_curl(asgi_gw: Gateway, curl: str) -> None:
    out = subprocess.run([curl, "-sS", "-N", f"{asgi_gw.base_url}/stream?n=3"], capture_output=True, timeout=20)
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"chunk 0\nchunk 1\nchunk 2\n"


def _leave_mid_response(gw: Gateway, target: str, enough: Callable[[bytes], bool]) -> None:
    """GET ``target`` over a raw socket, read until ``enough(what arrived)``, then close
    the connection with the response still going."""
    sock = socket.create_connection((gw.host, gw.port), timeout=10)
    try:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        got = b""
        while not enough(got):
            data = sock.recv(4096)
            assert data, got
            got += data
    finally:
        sock.close()


def _marked(mark: Path) -> str | None:
    """What the app wrote to ``mark`` once it saw the client leave (waiting up to 5 s), or
    None if it never did."""
    deadline = time.monotonic() + 5
    while not mark.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return mark.read_text() if mark.exists() else None


def test_client_disconnect_reaches_the_app(asgi_gw: Gateway, tmp_path: Path) -> None:
    mark = tmp_path / "mark"
    _leave_mid_response(asgi_gw, f"/hang?mark={mark}", lambda got: b"first\n" in got)
    assert _marked(mark) == "disconnect"
    assert fetch(asgi_gw, "GET", "/scope")[0] == 200  # the worker serves on
    text = asgi_gw.log_text()
    assert "failed mid-stream" not in text and "ASGI app failed" not in text, text[-3000:]


def test_pathsend_served_by_the_gateway(asgi_gw: Gateway) -> None:
    name = "asgi_hosted_app.py"
    data = (HERE / name).read_bytes()
    status, headers, body = fetch(asgi_gw, "GET", f"/file?name={name}")
    assert (status, body) == (200, data)
    etag = headers["etag"]
    assert etag and headers["last-modified"]
    assert fetch(asgi_gw, "GET", f"/file?name={name}", headers={"If-None-Match": etag})[0] == 304
    status, headers, body = fetch(asgi_gw, "GET", f"/file?name={name}", headers={"Range": "bytes=0-9"})
    assert (status, body) == (206, data[:10])
    assert headers["content-range"] == f"bytes 0-9/{len(data)}"
    assert fetch(asgi_gw, "GET", "/file?name=missing.txt")[0] == 404


def test_lifespan_state_reaches_requests(asgi_gw: Gateway) -> None:
    state = json.loads(fetch(asgi_gw, "GET", "/state")[2])
    assert isinstance(state["started_pid"], int)


def test_exception_before_start_is_a_500_logged_with_the_request_id(asgi_gw: Gateway) -> None:
    status, _, body = fetch(asgi_gw, "GET", "/boom", headers={"X-Request-Id": "asgi-boom-1"})
    assert status == 500 and b"boom" not in body
    asgi_gw.wait_for_log("asgi-boom-1", "ValueError: boom")


def test_lifespan_startup_failure_is_reported(tmp_path: Path) -> None:
    need_gateway()
    port = _free_port()
    log_path = tmp_path / "gateway.log"
    argv = [str(GATEWAY), "--listen", f"127.0.0.1:{port}", "--app", "asgi_hosted_app", "--workers", "1",
            "--worker-cmd", f"{shlex.quote(_python())} -m covet worker asgi_hosted_app:app --interface asgi",
            "--worker-dir", str(HERE), "--drain-timeout", "2s"]  # fmt: skip
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                env=dict(os.environ, PYTHONUNBUFFERED="1", ASGI_TEST_STARTUP_FAIL="db unreachable"))  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        text = ""
        while time.monotonic() < deadline:
            text = log_path.read_text("utf-8", errors="replace")
            if "db unreachable" in text:
                break
            time.sleep(0.1)
        assert "ASGI lifespan startup failed: db unreachable" in text, text[-3000:]
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_covet_run_detects_and_serves_the_asgi_app(tmp_path: Path) -> None:
    from test_cli_run import TIMEOUT_S, _readline, _stop

    need_gateway()
    log = tmp_path / "stderr.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([_python(), "-m", "covet", "run", "asgi_hosted_app:app", "--workers", "1", "--port", "0",
                                 "--gateway", str(GATEWAY)],
                                cwd=HERE, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        lines = []
        while True:
            line = _readline(proc, TIMEOUT_S).decode()
            assert line, f"no banner; stdout {lines!r}; stderr:\n{log.read_text()[-3000:]}"
            lines.append(line)
            m = re.fullmatch(r"CovetPy serving asgi_hosted_app:app on http://127\.0\.0\.1:(\d+) \(1 worker\)\n", line)
            if m:
                break
        assert "covet: serving asgi_hosted_app:app as asgi (" in log.read_text()  # it says what it detected
        gw = Gateway("127.0.0.1", int(m[1]), proc, log)  # type: ignore[arg-type]
        deadline = time.monotonic() + TIMEOUT_S
        while not _ready(gw):  # the listener is up before the worker has registered (503)
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        assert json.loads(fetch(gw, "GET", "/scope")[2])["type"] == "http"
    finally:
        _stop(proc, log)


# -- a FastAPI app ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fastapi_gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    log = tmp_path_factory.mktemp("asgi-fastapi") / "gateway.log"

    def ready(gw: Gateway) -> bool:
        try:
            return fetch(gw, "GET", "/greet")[0] == 200
        except OSError:
            return False

    with serving_gateway(log, "asgi_fastapi_app", "asgi_fastapi_app", 1, ready, interface="asgi") as gw:
        yield gw


def test_fastapi_lifespan_state_dependency_and_body(fastapi_gw: Gateway) -> None:
    status, _, body = fetch(fastapi_gw, "GET", "/greet", headers={"X-Caller": "ann"})
    assert (status, json.loads(body)) == (200, {"msg": "hello ann"})
    status, _, body = fetch(fastapi_gw, "POST", "/items", body=b'{"name": "pen", "qty": 2}',
                            headers={"Content-Type": "application/json"})  # fmt: skip
    assert (status, json.loads(body)) == (200, {"name": "pen", "qty": 2})
    assert fetch(fastapi_gw, "POST", "/items", body=b'{"qty": "x"}', headers={"Content-Type": "application/json"})[0] == 422
    assert fetch(fastapi_gw, "GET", "/docs")[0] == 200  # FastAPI's own pages, not the SDK's


def test_fastapi_file_response_is_sent_by_the_gateway(fastapi_gw: Gateway) -> None:
    data = (HERE / "asgi_fastapi_app.py").read_bytes()
    status, headers, body = fetch(fastapi_gw, "GET", "/file")
    assert (status, body) == (200, data)
    assert fetch(fastapi_gw, "GET", "/file", headers={"If-None-Match": headers["etag"]})[0] == 304


def test_fastapi_stream_stops_when_the_client_leaves(fastapi_gw: Gateway, tmp_path: Path) -> None:
    mark = tmp_path / "mark"
    _leave_mid_response(fastapi_gw, f"/forever?mark={mark}", lambda got: got.count(b"tick") >= 3)
    assert _marked(mark) == "stopped"
    assert fetch(fastapi_gw, "GET", "/greet")[0] == 200
    assert "Traceback" not in fastapi_gw.log_text(), fastapi_gw.log_text()[-3000:]


def test_fastapi_websocket(fastapi_gw: Gateway) -> None:
    from websockets.sync.client import connect

    with connect(f"ws://{fastapi_gw.host}:{fastapi_gw.port}/ws/lobby", open_timeout=10) as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "lobby:hi"


def test_path_policies_guard_a_hosted_app(tmp_path: Path) -> None:
    """A hosted app's one catch-all route carries no security options: path_policy
    sets them per prefix, the gateway enforcing them before the app sees the request
    (a 429 here never reaches the worker; the prefix has one budget, its response
    fields come from the policy)."""
    flags = ["--path-policy", "/scope/limited=rate=2/minute headers=off",
             "--path-policy", "/scope=rate=none"]  # fmt: skip
    with serving_gateway(tmp_path / "gateway.log", "asgi_hosted_app", "asgi_hosted_app", 1, _ready, flags,
                         interface="asgi") as gw:  # fmt: skip
        got = [fetch(gw, "GET", path)[0] for path in ("/scope/limited/a", "/scope/limited/b", "/scope/limited/c")]
        assert got == [404, 404, 429]  # the app's own 404 twice (no such path), then the gateway's 429
        status, headers, _ = fetch(gw, "GET", "/scope/limited/d")
        assert status == 429 and int(headers["retry-after"]) > 0
        assert [fetch(gw, "GET", "/scope")[0] for _ in range(4)] == [200] * 4  # rate=none: unlimited
