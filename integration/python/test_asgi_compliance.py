"""An ASGI server-compliance suite run against CovetPy: the real gateway and a worker
hosting the raw ASGI app asgi_compliance_app.py, driven by httpx (sync and async) and
the websockets client over loopback. It covers the points of gunicorn's ASGI compliance
suite (tests/docker/asgi_compliance), written anew: methods, status codes, request and
response bodies, headers, scope fields, query strings, cookies, redirects, streaming
(chunks, server-sent events, NDJSON, slow and large streams, a streamed echo),
lifespan state, concurrency, and WebSocket (accept, subprotocols, text and binary,
close codes, rejection, the denial response)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from conftest import Gateway, fetch, serving_gateway


def _ready(gw: Gateway) -> bool:
    try:
        return fetch(gw, "GET", "/health")[2] == b"OK"
    except OSError:
        return False


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    log = tmp_path_factory.mktemp("asgi-compliance") / "gateway.log"
    with serving_gateway(log, "asgi_compliance_app", "asgi_compliance_app", 1, _ready, interface="asgi") as g:
        yield g


@pytest.fixture(scope="module")
def client(gw: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.base_url, timeout=15) as c:
        yield c


# -- HTTP ---------------------------------------------------------------------------------


def test_basic_endpoints(client: httpx.Client) -> None:
    assert client.get("/health").text == "OK"
    r = client.get("/http/")
    assert (r.status_code, r.text, r.headers["content-length"]) == (200, "Hello, ASGI!", "12")
    assert client.get("/http/nonexistent").status_code == 404


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_methods(client: httpx.Client, method: str) -> None:
    r = client.request(method, "/http/method")
    assert r.status_code == 200 and r.json() == {"method": method}


def test_head_has_no_body(client: httpx.Client) -> None:
    r = client.head("/http/")
    assert (r.status_code, r.content, r.headers["content-length"]) == (200, b"", "12")


@pytest.mark.parametrize("code", [200, 201, 202, 204, 301, 302, 304, 400, 401, 403, 404, 405, 500, 502, 503])
def test_status_codes(client: httpx.Client, code: int) -> None:
    r = client.get(f"/http/status?code={code}")
    assert r.status_code == code
    assert r.content == (b"" if code in (204, 304) else f"status {code}".encode())


def test_invalid_status_is_the_apps_400(client: httpx.Client) -> None:
    assert client.get("/http/status?code=999").status_code == 400


@pytest.mark.parametrize("size", [0, 13, 1 << 20])
def test_echo_bodies(client: httpx.Client, size: int) -> None:
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    r = client.post("/http/echo", content=body)
    assert r.status_code == 200 and r.content == body


@pytest.mark.parametrize("value", [{"name": "test", "value": 123, "nested": {"key": "value"}}, [1, 2, "three", {"f": 5}]])
def test_post_json(client: httpx.Client, value: object) -> None:
    r = client.post("/http/post-json", json=value)
    assert r.json() == {"received": value, "type": type(value).__name__}


def test_bad_json_is_the_apps_400(client: httpx.Client) -> None:
    assert client.post("/http/post-json", content=b"not json").status_code == 400


@pytest.mark.parametrize("size", [500_000, 1 << 20])
def test_large_responses(client: httpx.Client, size: int) -> None:
    r = client.get(f"/http/large?size={size}")
    assert len(r.content) == size and r.headers["content-length"] == str(size)


def test_request_headers(client: httpx.Client) -> None:
    h = client.post("/http/headers", content=b"t", headers={"X-Custom-Header": "custom-value", "User-Agent": "T/1.0",
                                                            "Content-Type": "application/octet-stream"}).json()  # fmt: skip
    assert h["x-custom-header"] == "custom-value"
    assert h["user-agent"] == "T/1.0"
    assert h["content-type"] == "application/octet-stream"
    assert "host" in h


def test_response_headers(client: httpx.Client) -> None:
    assert "application/json" in client.get("/http/headers").headers["content-type"]


def test_scope(client: httpx.Client, gw: Gateway) -> None:
    s = client.post("/http/scope?foo=bar&baz=qux").json()
    assert s["type"] == "http" and s["asgi"]["version"] == "3.0"
    assert s["http_version"] in ("1.0", "1.1", "2")
    assert (s["method"], s["scheme"], s["path"], s["query_string"]) == ("POST", "http", "/http/scope", "foo=bar&baz=qux")
    assert all(isinstance(h, list) and len(h) == 2 for h in s["headers"])
    assert s["server"] == ["127.0.0.1", gw.port]
    assert s["client"][0] == "127.0.0.1" and len(s["client"]) == 2


def test_query_strings(client: httpx.Client) -> None:
    assert client.get("/http/query?a=1&b=2&c=3").json()["params"] == {"a": "1", "b": "2", "c": "3"}
    assert client.get("/http/query").json() == {"raw": "", "params": {}}
    r = client.get("/http/query?name=hello%20world")
    assert r.json() == {"raw": "name=hello%20world", "params": {"name": "hello world"}}


def test_cookies(client: httpx.Client) -> None:
    r = client.get("/http/cookies?set=session=abc123")
    assert r.headers["set-cookie"] == "session=abc123"
    r = client.get("/http/cookies", headers={"Cookie": "session=test123; other=1"})
    assert r.json()["request_cookies"] == {"session": "test123", "other": "1"}


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects(client: httpx.Client, status: int) -> None:
    r = client.get(f"/http/redirect?to=/http/&status={status}")
    assert r.status_code == status and r.headers["location"] == "/http/"


# -- streaming ----------------------------------------------------------------------------


def test_streaming_chunks(client: httpx.Client) -> None:
    lines = client.get("/stream/streaming?chunks=5").text.strip().split("\n")
    assert lines == [f"Chunk {i} of 5" for i in range(1, 6)]
    with client.stream("GET", "/stream/streaming?chunks=3") as r:
        assert r.headers.get("transfer-encoding") == "chunked" and "content-length" not in r.headers
        assert b"".join(r.iter_bytes()).decode().count("Chunk") == 3


def test_variable_chunk_sizes(client: httpx.Client) -> None:
    assert len(client.get("/stream/chunked?sizes=100,500,200").content) == 800


def test_server_sent_events(client: httpx.Client) -> None:
    r = client.get("/stream/sse?events=3&delay=0.05")
    assert "text/event-stream" in r.headers["content-type"]
    events = [e for e in r.text.split("\n\n") if e.strip()]
    assert len(events) == 3
    first = dict(line.split(": ", 1) for line in events[0].split("\n"))
    assert (first["id"], first["event"]) == ("1", "message")
    assert json.loads(first["data"])["id"] == 1


def test_ndjson(client: httpx.Client) -> None:
    with client.stream("GET", "/stream/ndjson?records=5&delay=0.05") as r:
        assert "application/x-ndjson" in r.headers["content-type"]
        records = [json.loads(line) for line in r.iter_lines() if line.strip()]
    assert [rec["id"] for rec in records] == [1, 2, 3, 4, 5]


def test_slow_stream_arrives_as_produced(client: httpx.Client) -> None:
    times = []
    start = time.monotonic()
    with client.stream("GET", "/stream/slow-stream?chunks=3&delay=0.3") as r:
        for line in r.iter_lines():
            if line:
                times.append(time.monotonic() - start)
    assert len(times) == 3
    assert times[0] < 0.3 and times[2] - times[0] >= 0.5, times


def test_large_stream(client: httpx.Client) -> None:
    assert len(client.get("/stream/large-stream?size=1048576").content) == 1 << 20
    with client.stream("GET", "/stream/large-stream?size=524288&chunk=65536") as r:
        sizes = [len(c) for c in r.iter_raw()]
    assert sum(sizes) == 524288 and len(sizes) >= 2


def test_echo_stream(client: httpx.Client) -> None:
    r = client.post("/stream/echo-stream", content=b"x" * (100 * 1024))
    assert b"Total chunks received" in r.content and b"102400 bytes" in r.content


# -- lifespan -----------------------------------------------------------------------------


def test_lifespan_state(client: httpx.Client) -> None:
    s = client.get("/lifespan/state").json()
    assert s["started"] is True and s["startup_time"] <= time.time()


def test_lifespan_state_is_shared_but_each_request_gets_a_copy(client: httpx.Client) -> None:
    counts = [client.get("/lifespan/counter").json()["counter"] for _ in range(5)]
    assert counts == sorted(counts) and len(set(counts)) == 5
    assert client.post("/lifespan/set-state", json={"key": "k1", "value": "v1"}).json() == {"set": True}
    assert client.get("/lifespan/get-state?key=k1").json() == {"found": True, "value": "v1"}
    assert client.get("/lifespan/get-state?key=none").json()["found"] is False
    assert client.post("/lifespan/set-state", json={"value": "x"}).status_code == 400


# -- concurrency --------------------------------------------------------------------------


def test_concurrent_requests(gw: Gateway) -> None:
    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=15) as c:
            return await asyncio.gather(*(c.post("/http/echo", content=b"%d" % i) for i in range(50)),
                                        *(c.get("/stream/slow-stream?chunks=2&delay=0.1") for _ in range(10)))  # fmt: skip

    responses = asyncio.run(main())
    assert [r.content for r in responses[:50]] == [b"%d" % i for i in range(50)]
    assert all(r.text.count("Slow chunk") == 2 for r in responses[50:])


# -- WebSocket ----------------------------------------------------------------------------


def _ws_url(gw: Gateway, path: str) -> str:
    return f"ws://{gw.host}:{gw.port}{path}"


def test_websocket_echo_text_and_binary(gw: Gateway) -> None:
    from websockets.sync.client import connect

    with connect(_ws_url(gw, "/ws/echo"), open_timeout=10) as ws:
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
        ws.send(b"\x00\x01\x02")
        assert ws.recv(timeout=5) == b"\x00\x01\x02"


def test_websocket_scope_and_subprotocol(gw: Gateway) -> None:
    from websockets.sync.client import connect

    with connect(_ws_url(gw, "/ws/scope?a=b"), subprotocols=["graphql-ws", "chat"], open_timeout=10) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "graphql-ws"
        s = json.loads(ws.recv(timeout=5))
    assert s == {"type": "websocket", "path": "/ws/scope", "query_string": "a=b", "scheme": "ws",
                 "subprotocols": ["graphql-ws", "chat"]}  # fmt: skip


def test_websocket_close_code_from_the_app(gw: Gateway) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with connect(_ws_url(gw, "/ws/echo"), open_timeout=10) as ws:
        ws.send("close")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
    assert info.value.rcvd is not None and (info.value.rcvd.code, info.value.rcvd.reason) == (4001, "asked to")


def test_plain_get_and_websocket_on_one_path(gw: Gateway) -> None:
    from websockets.sync.client import connect

    assert fetch(gw, "GET", "/ws/echo")[0] == 404  # the app's http answer for that path
    with connect(_ws_url(gw, "/ws/echo"), open_timeout=10) as ws:
        ws.send("again")
        assert ws.recv(timeout=5) == "again"


def test_websocket_rejection_and_denial_response(gw: Gateway) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    with pytest.raises(InvalidStatus) as info:
        connect(_ws_url(gw, "/ws/reject"), open_timeout=10)
    assert info.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as info:
        connect(_ws_url(gw, "/ws/deny"), open_timeout=10)
    assert info.value.response.status_code == 403
    assert info.value.response.body == b"denied"
