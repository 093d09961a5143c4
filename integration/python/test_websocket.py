"""WebSocket sessions and server-sent events end to end: a real bin/covet-gateway, real
Python workers serving ws_app.py, and real clients (the ``websockets`` library, plain
sockets, http.client, headless Chromium).

Run with ``.venv/bin/python -m pytest integration/python/test_websocket.py`` after
``make build``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from conftest import Gateway, _ready, serving_gateway

TIMEOUT = 10.0


@contextlib.contextmanager
def ws_gateway(tmp_path: Path, workers: int = 1, flags: tuple[str, ...] = (), **env: str) -> Iterator[Gateway]:
    with serving_gateway(tmp_path / "gateway.log", "wsapp", "ws_app", workers, lambda gw: _ready(gw.host, gw.port), flags,
                         COVET_LOG_LEVEL="INFO", **env) as gw:  # fmt: skip
        yield gw


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with ws_gateway(tmp_path_factory.mktemp("ws")) as g:
        yield g


def url(gw: Gateway, path: str) -> str:
    return f"ws://{gw.host}:{gw.port}{path}"


def http_get(gw: Gateway, path: str, method: str = "GET") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(gw.host, gw.port, timeout=TIMEOUT)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT * 3))


def test_echo_text_binary_and_order(gw: Gateway) -> None:
    async def go() -> None:
        async with connect(url(gw, "/ws/echo")) as ws:
            await ws.send("héllo")
            assert await ws.recv() == "héllo"
            await ws.send(b"\x00\xffbin")
            assert await ws.recv() == b"\x00\xffbin"
            big = os.urandom(512 << 10)
            await ws.send(big)
            assert await ws.recv() == big
            for i in range(500):
                await ws.send(f"m{i}")
            got = [await ws.recv() for _ in range(500)]
            assert got == [f"m{i}" for i in range(500)]

    run(go())


def test_compression_negotiated(gw: Gateway) -> None:
    async def go() -> None:
        async with connect(url(gw, "/ws/echo"), compression="deflate") as ws:
            ext = ws.response.headers.get("Sec-WebSocket-Extensions", "")
            assert "permessage-deflate" in ext
            text = "compressible " * 5000
            await ws.send(text)
            assert await ws.recv() == text

    run(go())


def test_subprotocol_params_headers_and_server_close(gw: Gateway) -> None:
    async def go() -> None:
        async with connect(url(gw, "/ws/echo"), subprotocols=["chat.v2", "chat.v1"]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "chat.v2"
        async with connect(url(gw, "/ws/room/blue?x=7"), additional_headers={"x-h": "hv", "cookie": "c=cv"}) as ws:
            assert ws.response.headers["x-room"] == "blue"
            got = json.loads(await ws.recv())
            assert got == {"room": "blue", "q": "7", "cookie": "cv", "header": "hv", "path": {"room": "blue"}}
            with pytest.raises(ConnectionClosed) as e:
                await ws.recv()
            assert e.value.rcvd is not None
            assert (e.value.rcvd.code, e.value.rcvd.reason) == (4001, "room closed")

    run(go())


def test_rejected_before_accept_is_http(gw: Gateway) -> None:
    async def go() -> None:
        with pytest.raises(InvalidStatus) as e:
            async with connect(url(gw, "/ws/reject")):
                pass
        assert e.value.response.status_code == 403
        with pytest.raises(InvalidStatus) as e:
            async with connect(url(gw, "/ws/missing")):
                pass
        assert e.value.response.status_code == 404

    run(go())
    # A WebSocket route asked for without an upgrade.
    status, _ = http_get(gw, "/ws/echo")
    assert status == 426


def test_one_path_serves_a_get_and_a_websocket(gw: Gateway) -> None:
    """@app.get and @app.websocket on one pattern: a plain GET or HEAD reaches the HTTP
    handler (as one route of the manifest, the ws one with option http), an upgrade the
    WebSocket handler, on the same keep-alive connection one after the other."""
    conn = http.client.HTTPConnection(gw.host, gw.port, timeout=TIMEOUT)
    try:
        for method in ("GET", "HEAD", "GET"):
            conn.request(method, "/live/news")
            resp = conn.getresponse()
            body = resp.read()
            assert (resp.status, resp.getheader("x-side")) == (200, "http"), (method, resp.status, body)
            assert body == (b"" if method == "HEAD" else b"the news page")
            assert resp.getheader("content-length") == "13" and not resp.will_close
        conn.request("POST", "/live/news")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 405 and resp.getheader("allow") == "GET, HEAD, OPTIONS"
    finally:
        conn.close()

    async def go() -> None:
        async with connect(url(gw, "/live/news")) as ws:
            await ws.send("hello")
            assert await ws.recv() == "news: hello"

    run(go())


def test_client_close_code_reaches_handler(gw: Gateway) -> None:
    async def go() -> None:
        async with connect(url(gw, "/ws/record")) as ws:
            await ws.send("x")
            assert await ws.recv() == "x"
            await ws.close(4321, "bye")

    run(go())
    deadline = time.monotonic() + TIMEOUT
    while 4321 not in json.loads(http_get(gw, "/closes")[1]):
        assert time.monotonic() < deadline, "the handler never saw close code 4321"
        time.sleep(0.05)


def test_handler_error_closes_1011(gw: Gateway) -> None:
    async def go() -> None:
        async with connect(url(gw, "/ws/boom")) as ws:
            await ws.send("go")
            with pytest.raises(ConnectionClosed) as e:
                await ws.recv()
            assert e.value.rcvd is not None and e.value.rcvd.code == 1011

    run(go())


def test_message_too_big_closes_1009(gw: Gateway) -> None:
    async def go() -> None:
        async with connect(url(gw, "/ws/echo"), max_size=None) as ws:
            await ws.send(b"x" * ((1 << 20) + 1))  # the default ws_max_message_bytes is 1 MiB
            with pytest.raises(ConnectionClosed) as e:
                await ws.recv()
            assert e.value.rcvd is not None and e.value.rcvd.code == 1009

    run(go())


def test_flood_from_worker_arrives_whole_and_in_order(gw: Gateway) -> None:
    """The worker sends faster than the client reads: credit holds it back, and every
    message arrives, in order."""

    async def go() -> None:
        async with connect(url(gw, "/ws/flood/20000")) as ws:
            await asyncio.sleep(0.5)  # let the worker run into its window
            got = [await ws.recv() for _ in range(20000)]
            assert got == [str(i) for i in range(20000)]
            with pytest.raises(ConnectionClosed) as e:
                await ws.recv()
            assert e.value.rcvd is not None and e.value.rcvd.code == 1000

    run(go())


def _kill_worker_of(first: str) -> int:
    pid = int(first.split()[0])
    os.kill(pid, signal.SIGKILL)
    return pid


def test_worker_killed_closes_1012_or_resumes(tmp_path: Path) -> None:
    """SIGKILL of the only worker: a plain session gets close 1012 (service restart); a
    resumable one stays open and goes on with the worker the supervisor starts in its
    place, whose handler sees ws.resumed."""
    with ws_gateway(tmp_path, workers=1) as gw:
        async def go() -> None:
            async with connect(url(gw, "/ws/pid")) as plain, connect(url(gw, "/ws/resumable")) as res:
                first = await res.recv()
                assert first.endswith(" False")
                assert (await plain.recv()).split()[0] == first.split()[0]
                killed = _kill_worker_of(first)
                with pytest.raises(ConnectionClosed) as e:
                    await plain.recv()
                assert e.value.rcvd is not None and e.value.rcvd.code == 1012
                again = await res.recv()  # the session went on, on the new worker
                pid, resumed = again.split()
                assert int(pid) != killed and resumed == "True"
                await res.send("still here")
                assert await res.recv() == "still here"

        run(go())


def test_recycled_worker_hands_sessions_over(tmp_path: Path) -> None:
    """max_requests recycling: the resumable session moves to the new worker."""
    with ws_gateway(tmp_path, workers=1, COVET_MAX_REQUESTS="5", COVET_RETIRE_TIMEOUT="2s") as gw:
        async def go() -> None:
            async with connect(url(gw, "/ws/resumable")) as res:
                first = await res.recv()
                old = int(first.split()[0])
                for _ in range(8):
                    http_get(gw, "/pid")
                again = await res.recv()
                pid, resumed = again.split()
                assert int(pid) != old and resumed == "True"
                await res.send("after recycle")
                assert await res.recv() == "after recycle"

        run(go())
        gw.wait_for_log("max_requests")


def test_sse_streams_unbuffered_and_disconnect_runs_finally(gw: Gateway) -> None:
    s = socket.create_connection((gw.host, gw.port), timeout=TIMEOUT)
    try:
        s.sendall(b"GET /events HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n")
        buf = b""
        while b"\r\n\r\n" not in buf:  # the head comes before any event exists
            chunk = s.recv(4096)
            assert chunk, f"closed early: {buf!r}"
            buf += chunk
        # Nothing else came with it: not an event, not the first ping (3 s later), which
        # would have carried a head held back in a buffer.
        assert b"data:" not in buf and b"ping" not in buf, buf
        assert http_get(gw, "/events/go", "POST")[0] == 200
        while b"data: one" not in buf:
            chunk = s.recv(4096)
            assert chunk, f"closed early: {buf!r}"
            buf += chunk
        assert b"HTTP/1.1 200" in buf and b"text/event-stream" in buf.lower()
        assert b"event: first\r\n" in buf or b"event: first\n" in buf
        # The second event exists only once asked for: it can reach us only if nothing
        # on the path holds the stream back.
        assert http_get(gw, "/events/go", "POST")[0] == 200
        while b"data: lines" not in buf:
            chunk = s.recv(4096)
            assert chunk, f"closed early: {buf!r}"
            buf += chunk
        assert b"data: two" in buf
        while b": ping" not in buf:  # a heartbeat comment while the generator is idle
            chunk = s.recv(4096)
            assert chunk
            buf += chunk
        rid = None
        for line in buf.split(b"\r\n"):
            if line.lower().startswith(b"x-request-id:"):
                rid = line.split(b":", 1)[1].strip().decode()
    finally:
        s.close()
    assert rid
    deadline = time.monotonic() + TIMEOUT
    while rid not in json.loads(http_get(gw, "/events/finally")[1]):
        assert time.monotonic() < deadline, "the generator's finally did not run after the client left"
        time.sleep(0.05)


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def test_chromium_echo(gw: Gateway, tmp_path: Path) -> None:
    bin_ = _chromium()
    if bin_ is None:
        pytest.skip("no chromium on PATH (make test-tools installs it)")
    out = subprocess.run(
        [bin_, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", f"http://{gw.host}:{gw.port}/page"],
        capture_output=True, timeout=60,
    )  # fmt: skip
    dom = out.stdout.decode("utf-8", "replace")
    assert "<title>echo:hello from chromium closed</title>" in dom, f"DOM:\n{dom}\nstderr:\n{out.stderr.decode()[-2000:]}"
    # The page's close (code 4100) reached the handler: the close handshake ran.
    deadline = time.monotonic() + TIMEOUT
    while 4100 not in json.loads(http_get(gw, "/closes")[1]):
        assert time.monotonic() < deadline, "the handler never saw the page's close code 4100"
        time.sleep(0.05)



def _read_stream(gw: Gateway, path: str) -> tuple[bytes, bool]:
    """The decoded body of a chunked response and whether it ended properly (the last
    chunk came) rather than with the connection closed midway."""
    s = socket.create_connection((gw.host, gw.port), timeout=TIMEOUT)
    try:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        raw = b""
        while True:
            chunk = s.recv(65536)
            if not chunk or raw.endswith(b"0\r\n\r\n"):
                break
            raw += chunk
            if raw.endswith(b"\r\n0\r\n\r\n"):
                break
    finally:
        s.close()
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0] and b"chunked" in head.lower(), head
    body, complete = b"", False
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            complete = True
            break
        body += rest[:size]
        rest = rest[size + 2:]
    return body, complete


def test_stream_deadline_counts_from_the_last_piece(gw: Gateway) -> None:
    """A streamed response outlives its route's 1 s deadline while pieces keep coming
    (12 pieces 200 ms apart); one that stalls past it is broken off."""
    body, complete = _read_stream(gw, "/stream/200/12")
    assert complete and body == b"".join(f"piece {i}\n".encode() for i in range(12))
    body, complete = _read_stream(gw, "/stream/3000/3")
    assert not complete and body == b"piece 0\n"
