"""The covet SDK end to end: real bin/covet-gateway, real Python workers (sdk_app:app),
real HTTP clients (http.client, raw sockets, curl).

Every Request and Response feature of the SDK is exercised through the gateway,
together with non-ASCII paths/headers/bodies, 8 MiB bodies both ways, multipart
uploads, streaming, cookies and the error paths.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import socket
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import sdk_app

if TYPE_CHECKING:
    from conftest import Gateway

MIB = 1 << 20
BIG = 8 * MIB
GENERATED_ID = re.compile(r"[0-9a-f]{16}")


# -- clients --------------------------------------------------------------------------------


@dataclass
class Resp:
    status: int
    reason: str
    version: int  # 10 or 11, as http.client reports it
    msg: http.client.HTTPMessage
    body: bytes
    chunked: bool
    local_port: int

    def header(self, name: str) -> str | None:
        return self.msg.get(name)

    def headers(self, name: str) -> list[str]:
        return self.msg.get_all(name) or []

    def json(self) -> object:
        return json.loads(self.body)


def request(
    gw: Gateway,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: list[tuple[str, str | bytes]] | tuple[()] = (),
    timeout: float = 30,
) -> Resp:
    """One request on a fresh connection; headers are sent as given (repeats kept)."""
    conn = http.client.HTTPConnection(gw.host, gw.port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        local_port = conn.sock.getsockname()[1]
        resp = conn.getresponse()
        data = resp.read()
        return Resp(resp.status, resp.reason, resp.version, resp.msg, data, bool(resp.chunked), local_port)
    finally:
        conn.close()


@dataclass
class RawResp:
    status_line: bytes
    headers: list[tuple[str, str]]  # names lower-cased
    body: bytes  # exactly the bytes after the head, as on the wire

    @property
    def status(self) -> int:
        return int(self.status_line.split()[1])

    def header(self, name: str) -> str | None:
        for n, v in self.headers:
            if n == name.lower():
                return v
        return None


def raw_exchange(gw: Gateway, data: bytes, timeout: float = 10) -> RawResp:
    """Send ``data`` on a raw socket and read until the server closes (the request must
    make it close: HTTP/1.0 or Connection: close). The write side is never half-closed:
    the gateway treats that as a client that went away."""
    buf = raw_bytes(gw, data, timeout)
    head, sep, body = buf.partition(b"\r\n\r\n")
    assert sep, f"no complete response head in {buf[:500]!r}"
    lines = head.split(b"\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.append((name.decode("latin-1").strip().lower(), value.decode("latin-1").strip()))
    return RawResp(lines[0], headers, body)


def raw_bytes(gw: Gateway, data: bytes, timeout: float = 10) -> bytes:
    """raw_exchange's bytes: everything the server sent before it closed."""
    with socket.create_connection((gw.host, gw.port), timeout=timeout) as s:
        s.sendall(data)
        buf = bytearray()
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                pytest.fail(f"server did not close the connection within {timeout}s; got {bytes(buf[:500])!r}")
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return bytes(buf)


def decode_chunked(data: bytes) -> tuple[list[bytes], bytes]:
    """Split a chunked body into its data chunks; return them and what follows the last
    chunk. Fails on malformed framing."""
    chunks = []
    pos = 0
    while True:
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end].split(b";")[0], 16)
        pos = end + 2
        if size == 0:
            assert data[pos : pos + 2] == b"\r\n", f"no CRLF after the last chunk: {data[pos:]!r}"
            return chunks, data[pos + 2 :]
        chunks.append(data[pos : pos + size])
        assert data[pos + size : pos + size + 2] == b"\r\n", "chunk not followed by CRLF"
        pos += size + 2


def run_curl(curl: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run([curl, "-sS", *args], capture_output=True, timeout=timeout)
    assert proc.returncode == 0, f"curl {args} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}"
    return proc


def parse_curl_include(out: bytes) -> tuple[int, dict[str, list[str]], bytes]:
    """Parse ``curl -i`` output (one response): status, lower-cased headers, body."""
    head, sep, body = out.partition(b"\r\n\r\n")
    assert sep, f"no head in curl output {out[:300]!r}"
    lines = head.split(b"\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return int(lines[0].split()[1]), headers, body


# -- Request: method, path, query, headers, cookies, client, scheme, version, id ------------


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_method_and_body(gateway: Gateway, method: str) -> None:
    body = f"payload for {method}".encode() if method != "GET" else None
    r = request(gateway, method, "/inspect", body=body)
    assert r.status == 200, r.body
    info = r.json()
    assert info["method"] == method
    assert info["route"] == "/inspect"
    expected = body or b""
    assert info["body_len"] == len(expected)
    assert info["body_sha256"] == hashlib.sha256(expected).hexdigest()


def test_query_params_multi_valued(gateway: Gateway) -> None:
    qs = "a=1&a=2&b=&c=%C3%A9t%C3%A9+x&d=%26%3D"
    r = request(gateway, "GET", f"/inspect?{qs}")
    assert r.status == 200
    info = r.json()
    assert info["query_string"] == qs
    assert info["query"] == [["a", "1"], ["a", "2"], ["b", ""], ["c", "été x"], ["d", "&="]]
    assert info["url"] == f"{gateway.base_url}/inspect?{qs}"


def test_client_scheme_version(gateway: Gateway) -> None:
    r = request(gateway, "GET", "/inspect")
    info = r.json()
    assert info["client"] == ["127.0.0.1", r.local_port]
    assert info["scheme"] == "http"
    assert info["http_version"] == "1.1"
    assert r.version == 11


def test_sync_handler_sees_the_same_request(gateway: Gateway) -> None:
    r = request(gateway, "GET", "/inspect-sync?x=1", headers=[("X-Request-ID", "sync-handler-id")])
    assert r.status == 200
    info = r.json()
    assert info["route"] == "/inspect-sync"
    assert info["query"] == [["x", "1"]]
    assert info["request_id"] == "sync-handler-id"


def test_http_10_request(gateway: Gateway) -> None:
    raw = raw_exchange(gateway, f"GET /inspect?v=10 HTTP/1.0\r\nHost: {gateway.host}:{gateway.port}\r\n\r\n".encode())
    assert raw.status == 200, raw.status_line
    info = json.loads(raw.body)
    assert info["http_version"] == "1.0"
    assert info["query"] == [["v", "10"]]
    assert raw.header("transfer-encoding") is None
    assert raw.header("content-length") == str(len(raw.body))


def test_http_10_streamed_response_is_close_delimited(gateway: Gateway) -> None:
    raw = raw_exchange(gateway, f"GET /stream/async HTTP/1.0\r\nHost: {gateway.host}\r\n\r\n".encode())
    assert raw.status == 200
    assert raw.header("transfer-encoding") is None
    assert raw.header("content-length") is None
    assert raw.body == "".join(sdk_app.ASYNC_CHUNKS).encode()


def test_http_10_with_curl(gateway: Gateway, curl: str) -> None:
    out = run_curl(curl, "--http1.0", f"{gateway.base_url}/inspect").stdout
    assert json.loads(out)["http_version"] == "1.0"


def split_responses(data: bytes) -> tuple[list[tuple[bytes, list[tuple[str, str]]]], bytes]:
    """The status line and fields of each response head on the wire, in order, up to
    the first final (non-1xx) one, and the bytes after that one's head."""
    heads = []
    while True:
        head, sep, data = data.partition(b"\r\n\r\n")
        assert sep, f"incomplete head {head[:300]!r}"
        lines = head.split(b"\r\n")
        fields = [(n.decode("latin-1").strip().lower(), v.decode("latin-1").strip())
                  for n, _, v in (line.partition(b":") for line in lines[1:])]  # fmt: skip
        heads.append((lines[0], fields))
        if not lines[0].split()[1].startswith(b"1"):
            return heads, data


def test_early_hints_reach_an_http11_client_before_the_response(gateway: Gateway) -> None:
    # http.client hides 1xx responses: read the wire on a raw socket.
    wire = raw_bytes(gateway, f"GET /early-hints HTTP/1.1\r\nHost: {gateway.host}\r\nConnection: close\r\n\r\n".encode())
    heads, body = split_responses(wire)
    assert [h[0] for h in heads] == [b"HTTP/1.1 103 Early Hints", b"HTTP/1.1 103 Early Hints", b"HTTP/1.1 200 OK"]
    assert heads[0][1] == [("link", sdk_app.EARLY_HINTS[0])]
    assert heads[1][1] == [("link", sdk_app.EARLY_HINTS[1]), ("x-hint", "2")]
    final = dict(heads[2][1])
    assert final["content-type"] == "application/json" and final["content-length"] == str(len(body))
    assert json.loads(body) == {"client_cert": None}


def test_early_hints_not_sent_to_http10(gateway: Gateway) -> None:
    raw = raw_exchange(gateway, f"GET /early-hints HTTP/1.0\r\nHost: {gateway.host}\r\n\r\n".encode())
    assert raw.status_line == b"HTTP/1.1 200 OK" and json.loads(raw.body) == {"client_cert": None}


def test_early_hints_with_curl(gateway: Gateway, curl: str) -> None:
    out = run_curl(curl, "-i", f"{gateway.base_url}/early-hints").stdout
    assert out.startswith(b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload; as=style\r\n\r\n")
    assert b"\r\n\r\nHTTP/1.1 200 OK\r\n" in out and out.endswith(b'{"client_cert":null}')


def test_request_id_kept_when_sent(gateway: Gateway) -> None:
    rid = f"client-{uuid.uuid4()}"
    r = request(gateway, "GET", "/inspect", headers=[("X-Request-ID", rid)])
    assert r.json()["request_id"] == rid
    assert r.headers("X-Request-ID") == [rid]


def test_request_id_generated_when_absent(gateway: Gateway) -> None:
    ids = set()
    for _ in range(3):
        r = request(gateway, "GET", "/inspect")
        rid = r.json()["request_id"]
        assert GENERATED_ID.fullmatch(rid), rid
        assert r.headers("X-Request-ID") == [rid]
        ids.add(rid)
    assert len(ids) == 3


def test_request_id_replaced_when_unusable(gateway: Gateway) -> None:
    too_long = "x" * 129
    r = request(gateway, "GET", "/inspect", headers=[("X-Request-ID", too_long)])
    rid = r.json()["request_id"]
    assert GENERATED_ID.fullmatch(rid), rid
    assert r.header("X-Request-ID") == rid


def test_headers_case_insensitive_multi_valued_latin1(gateway: Gateway) -> None:
    latin = "café naïve ÿ"  # http.client encodes str header values as latin-1
    r = request(
        gateway,
        "GET",
        "/headers",
        headers=[("x-MiXeD-cAsE", "v1"), ("X-Multi", "a"), ("X-Multi", "b, c"), ("X-Latin", latin)],
    )
    assert r.status == 200
    assert r.json() == {
        "mixed_case_get": "v1",
        "lower_get": "v1",
        "upper_item": "v1",
        "contains_upper": True,
        "multi": ["a", "b, c"],
        "latin": latin,
        "latin_codepoints": [ord(c) for c in latin],
        "missing": "default",
    }


def test_raw_latin1_header_bytes(gateway: Gateway) -> None:
    # bytes 0x80-0xff in a header value, as sent on the wire; the handler sees each
    # byte as one latin-1 character and reports the raw header list.
    value = bytes([0x41, 0xA0, 0xE9, 0xFF, 0x80])
    r = request(gateway, "GET", "/inspect", headers=[("X-Bin", value)])
    pairs = [tuple(p) for p in r.json()["headers"]]
    assert ("x-bin", value.decode("latin-1")) in pairs
    # names arrive lower-cased, the others as sent
    assert ("host", f"{gateway.host}:{gateway.port}") in pairs


def test_cookies(gateway: Gateway) -> None:
    r = request(
        gateway,
        "GET",
        "/cookies/echo",
        headers=[("Cookie", 'a=1; b="quoted"; a=ignored'), ("Cookie", "c=3; b=second")],
    )
    assert r.json() == {"cookies": {"a": "1", "b": "quoted", "c": "3"}}


def test_cookies_with_curl(gateway: Gateway, curl: str) -> None:
    out = run_curl(curl, "-b", "sid=xyz; theme=dark", f"{gateway.base_url}/cookies/echo").stdout
    assert json.loads(out) == {"cookies": {"sid": "xyz", "theme": "dark"}}


# -- path parameters ------------------------------------------------------------------------


@pytest.mark.parametrize("raw, expected", [("42", 42), ("-7", -7), ("0", 0), ("9223372036854775807", 2**63 - 1)])
def test_int_param(gateway: Gateway, raw: str, expected: int) -> None:
    r = request(gateway, "GET", f"/items/{raw}")
    assert r.status == 200, r.body
    assert r.json() == {"id": expected, "type": "int", "path_params": {"id": expected}, "route": "/items/{id:int}"}


@pytest.mark.parametrize("raw", ["abc", "4.2", "99999999999999999999", ""])
def test_int_param_not_matching_is_404(gateway: Gateway, raw: str) -> None:
    r = request(gateway, "GET", f"/items/{raw}")
    assert r.status == 404, r.body


def test_uuid_param(gateway: Gateway) -> None:
    u = uuid.uuid4()
    r = request(gateway, "GET", f"/uuids/{str(u).upper()}")
    assert r.status == 200, r.body
    assert r.json() == {"u": str(u), "type": "UUID", "version": 4, "route": "/uuids/{u:uuid}"}
    assert request(gateway, "GET", "/uuids/not-a-uuid").status == 404


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("a/b/c.txt", "a/b/c.txt"),
        ("single", "single"),
        ("", ""),
        ("dir%20name/%C3%A9t%C3%A9.txt", "dir name/été.txt"),
    ],
)
def test_catch_all_param(gateway: Gateway, raw: str, expected: str) -> None:
    r = request(gateway, "GET", f"/files/{raw}")
    assert r.status == 200, r.body
    assert r.json() == {"rest": expected, "type": "str", "route": "/files/{rest...}"}


# -- non-ASCII --------------------------------------------------------------------------------


def test_non_ascii_path(gateway: Gateway) -> None:
    raw_path = "/%C3%A9chos/na%C3%AFve"
    r = request(gateway, "GET", raw_path)
    assert r.status == 200, r.body
    assert r.json() == {"word": "naïve", "path": "/échos/naïve", "raw_path": raw_path, "route": "/%C3%A9chos/{word}"}


def test_equivalent_path_spellings_reach_one_route(gateway: Gateway) -> None:
    # Lower-case hex and an escaped unreserved character (RFC 3986 6.2.2); the handler
    # gets the path as the client sent it.
    raw_path = "/%c3%a9ch%6fs/na%c3%afve"
    r = request(gateway, "GET", raw_path)
    assert r.status == 200, r.body
    assert r.json() == {"word": "naïve", "path": "/échos/naïve", "raw_path": raw_path, "route": "/%C3%A9chos/{word}"}


def test_non_ascii_path_with_curl(gateway: Gateway, curl: str) -> None:
    out = run_curl(curl, f"{gateway.base_url}/%C3%A9chos/%E2%9C%93%20ok").stdout
    assert json.loads(out)["word"] == "✓ ok"
    assert json.loads(out)["path"] == "/échos/✓ ok"


def test_utf8_json_body_echoed(gateway: Gateway) -> None:
    doc = {"name": "Jürgen", "snake": "🐍", "cjk": "漢字", "nested": [1, 2.5, None, True]}
    body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
    r = request(gateway, "POST", "/json", body=body, headers=[("Content-Type", "application/json; charset=utf-8")])
    assert r.status == 200, r.body
    assert r.header("Content-Type") == "application/json"
    assert r.json() == {"got": doc, "content_type": "application/json; charset=utf-8"}
    # compact, non-ASCII kept as UTF-8 (not \u escapes)
    assert '"snake":"🐍"'.encode() in r.body
    assert b"\\u" not in r.body


def test_malformed_json_is_400(gateway: Gateway) -> None:
    r = request(gateway, "POST", "/json", body=b"{not json", headers=[("Content-Type", "application/json")])
    assert r.status == 400
    assert r.json() == {"detail": "malformed JSON body"}


# -- forms ------------------------------------------------------------------------------------


def test_urlencoded_form(gateway: Gateway) -> None:
    body = b"name=J%C3%BCrgen&tag=a&tag=b+c&empty="
    r = request(gateway, "POST", "/form", body=body, headers=[("Content-Type", "application/x-www-form-urlencoded")])
    assert r.status == 200, r.body
    assert r.json()["items"] == [
        {"name": "name", "kind": "field", "value": "Jürgen"},
        {"name": "tag", "kind": "field", "value": "a"},
        {"name": "tag", "kind": "field", "value": "b c"},
        {"name": "empty", "kind": "field", "value": ""},
    ]


def test_form_with_other_content_type_is_415(gateway: Gateway) -> None:
    r = request(gateway, "POST", "/form", body=b"x", headers=[("Content-Type", "text/plain")])
    assert r.status == 415


def test_multipart_upload_with_curl(gateway: Gateway, curl: str, tmp_path: Path) -> None:
    text = "hello, wörld\n".encode()
    binary = os.urandom(300_000) + b"\r\n--not-a-boundary\r\n" + bytes(range(256))
    (tmp_path / "notes.txt").write_bytes(text)
    (tmp_path / "blob.bin").write_bytes(binary)
    out = run_curl(
        curl,
        "-F", "title=Grüße",
        "-F", f"doc=@{tmp_path / 'notes.txt'};type=text/plain",
        "-F", f"data=@{tmp_path / 'blob.bin'}",
        f"{gateway.base_url}/form",
    ).stdout  # fmt: skip
    result = json.loads(out)
    assert result["content_type"].startswith("multipart/form-data; boundary=")
    assert result["items"] == [
        {"name": "title", "kind": "field", "value": "Grüße"},
        {"name": "doc", "kind": "file", "filename": "notes.txt", "content_type": "text/plain",
         "size": len(text), "sha256": hashlib.sha256(text).hexdigest()},
        {"name": "data", "kind": "file", "filename": "blob.bin", "content_type": "application/octet-stream",
         "size": len(binary), "sha256": hashlib.sha256(binary).hexdigest()},
    ]  # fmt: skip


def test_multipart_built_by_hand(gateway: Gateway) -> None:
    boundary = "covet-e2e-boundary"
    payload = os.urandom(5000)
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="field"\r\n\r\n'
        "value ✓\r\n"
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="upload"; filename="raw.dat"\r\n'
        "Content-Type: application/x-raw\r\n\r\n"
    ).encode() + payload + f"\r\n--{boundary}--\r\n".encode()
    r = request(gateway, "POST", "/form", body=body,
                headers=[("Content-Type", f"multipart/form-data; boundary={boundary}")])  # fmt: skip
    assert r.status == 200, r.body
    assert r.json()["items"] == [
        {"name": "field", "kind": "field", "value": "value ✓"},
        {"name": "upload", "kind": "file", "filename": "raw.dat", "content_type": "application/x-raw",
         "size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()},
    ]  # fmt: skip


def test_malformed_multipart_is_400(gateway: Gateway) -> None:
    r = request(gateway, "POST", "/form", body=b"garbage without boundary",
                headers=[("Content-Type", "multipart/form-data; boundary=zzz")])  # fmt: skip
    assert r.status == 400
    assert r.json()["detail"].startswith("malformed multipart/form-data body")


# -- 8 MiB bodies ---------------------------------------------------------------------------


def test_big_upload(gateway: Gateway) -> None:
    body = os.urandom(BIG)
    r = request(gateway, "POST", "/sha256", body=body, headers=[("Content-Type", "application/octet-stream")])
    assert r.status == 200, r.body
    info = r.json()
    assert info["length"] == BIG
    assert info["sha256"] == hashlib.sha256(body).hexdigest()
    assert info["chunks"] >= 1


def test_big_upload_with_curl(gateway: Gateway, curl: str, tmp_path: Path) -> None:
    body = os.urandom(BIG)
    path = tmp_path / "big.bin"
    path.write_bytes(body)
    out = run_curl(curl, "--data-binary", f"@{path}", "-H", "Content-Type: application/octet-stream",
                   f"{gateway.base_url}/sha256").stdout  # fmt: skip
    info = json.loads(out)
    assert (info["length"], info["sha256"]) == (BIG, hashlib.sha256(body).hexdigest())


def test_big_download(gateway: Gateway) -> None:
    r = request(gateway, "GET", f"/big/{BIG}")
    assert r.status == 200
    assert r.header("Content-Length") == str(BIG)
    assert r.header("Content-Type") == "application/octet-stream"
    assert len(r.body) == BIG
    assert hashlib.sha256(r.body).hexdigest() == hashlib.sha256(sdk_app.big_body(BIG)).hexdigest()


def test_big_download_with_curl(gateway: Gateway, curl: str) -> None:
    out = run_curl(curl, f"{gateway.base_url}/big/{BIG}").stdout
    assert len(out) == BIG
    assert hashlib.sha256(out).hexdigest() == hashlib.sha256(sdk_app.big_body(BIG)).hexdigest()


def test_big_echo_round_trip(gateway: Gateway) -> None:
    body = os.urandom(BIG)
    r = request(gateway, "POST", "/echo", body=body, headers=[("Content-Type", "application/x-e2e")])
    assert r.status == 200
    assert r.header("Content-Type") == "application/x-e2e"
    assert r.header("Content-Length") == str(BIG)
    assert len(r.body) == BIG
    assert r.body == body


def test_chunked_upload_echo(gateway: Gateway) -> None:
    body = os.urandom(3 * MIB + 17)
    conn = http.client.HTTPConnection(gateway.host, gateway.port, timeout=30)
    try:
        # an iterable body without a length: http.client sends it chunked
        pieces = [body[i : i + 100_000] for i in range(0, len(body), 100_000)]
        conn.request("PUT", "/echo", body=iter(pieces), encode_chunked=True,
                     headers={"Transfer-Encoding": "chunked", "Content-Type": "application/x-chunked"})  # fmt: skip
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    assert resp.status == 200
    assert data == body


def test_body_over_limit_is_413(gateway: Gateway) -> None:
    size = 11 * MIB
    head = (
        f"POST /sha256 HTTP/1.1\r\nHost: {gateway.host}\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {size}\r\n\r\n"
    ).encode()
    with socket.create_connection((gateway.host, gateway.port), timeout=10) as s:
        s.sendall(head)
        try:  # a first part of the body; the gateway may already have answered
            s.sendall(b"\0" * (256 * 1024))
        except OSError:
            pass
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
    assert data.startswith(b"HTTP/1.1 413 "), data[:200]


def test_body_over_limit_is_413_with_curl(gateway: Gateway, curl: str, tmp_path: Path) -> None:
    path = tmp_path / "too-big.bin"
    path.write_bytes(b"\0" * (11 * MIB))
    proc = subprocess.run(
        [curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--data-binary", f"@{path}", f"{gateway.base_url}/sha256"],
        capture_output=True, timeout=30,
    )  # fmt: skip
    # curl may report a send error once the gateway closes; the status must be 413
    assert proc.stdout == b"413", (proc.stdout, proc.stderr)


# -- Response types --------------------------------------------------------------------------


def test_dict_and_list_are_json(gateway: Gateway) -> None:
    r = request(gateway, "GET", "/r/dict")
    assert (r.status, r.header("Content-Type")) == (200, "application/json")
    assert r.body == '{"kind":"dict","text":"grüße ✓","n":1}'.encode()
    assert r.header("Content-Length") == str(len(r.body))
    r = request(gateway, "GET", "/r/list")
    assert (r.status, r.header("Content-Type")) == (200, "application/json")
    assert r.body == b'[1,"two",null,{"three":3}]'


def test_str_is_text(gateway: Gateway) -> None:
    r = request(gateway, "GET", "/r/str")
    assert (r.status, r.header("Content-Type")) == (200, "text/plain; charset=utf-8")
    assert r.body == "plain text ünïcödé".encode()


def test_bytes_is_octet_stream(gateway: Gateway) -> None:
    r = request(gateway, "GET", "/r/bytes")
    assert (r.status, r.header("Content-Type")) == (200, "application/octet-stream")
    assert r.body == bytes(range(256))


def test_none_is_204(gateway: Gateway) -> None:
    r = request(gateway, "GET", "/r/none")
    assert r.status == 204
    assert r.body == b""


def test_tuple_sets_status(gateway: Gateway) -> None:
    r = request(gateway, "GET", "/r/tuple")
    assert r.status == 201
    assert r.json() == {"created": True}


def test_custom_response(gateway: Gateway) -> None:
    r = request(gateway, "GET", "/r/custom")
    assert r.status == 203
    assert r.body == b"custom-body"
    assert r.header("Content-Type") == "application/x-covet-test"
    assert r.headers("X-Custom") == ["one", "two"]
    # a latin-1 header value goes out byte for byte (http.client reads it as latin-1)
    assert r.header("X-Latin-Out") == "café"
    assert r.header("Content-Length") == str(len(b"custom-body"))


def test_custom_response_with_curl(gateway: Gateway, curl: str) -> None:
    status, headers, body = parse_curl_include(run_curl(curl, "-i", f"{gateway.base_url}/r/custom").stdout)
    assert status == 203
    assert headers["x-custom"] == ["one", "two"]
    assert headers["x-latin-out"] == ["café"]
    assert body == b"custom-body"


def test_json_response(gateway: Gateway) -> None:
    r = request(gateway, "GET", "/r/json")
    assert r.status == 202
    assert r.header("Content-Type") == "application/json"
    assert r.header("X-Json") == "yes"
    assert r.body == '{"ok":true,"ünïcode":"✓"}'.encode()


def test_html_response(gateway: Gateway) -> None:
    r = request(gateway, "GET", "/r/html")
    assert (r.status, r.header("Content-Type")) == (200, "text/html; charset=utf-8")
    assert r.body == "<h1>Grüße</h1>".encode()


def test_plain_text_response(gateway: Gateway) -> None:
    r = request(gateway, "GET", "/r/plain")
    assert (r.status, r.header("Content-Type")) == (200, "text/plain; charset=utf-8")
    assert r.body == b"just text"


def test_redirect(gateway: Gateway) -> None:
    r = request(gateway, "GET", "/r/redirect")
    assert r.status == 307
    assert r.header("Location") == "/r/str?from=redirect"
    assert r.body == b""
    r = request(gateway, "GET", "/r/redirect-301")
    assert r.status == 301
    assert r.header("Location") == "/r/na%C3%AFve%20path"


def test_redirect_with_curl(gateway: Gateway, curl: str) -> None:
    # without -L: curl reports the redirect and does not follow it
    out = run_curl(curl, "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", f"{gateway.base_url}/r/redirect").stdout
    assert out.decode() == f"307 {gateway.base_url}/r/str?from=redirect"
    # with -L it lands on the text route
    assert run_curl(curl, "-L", f"{gateway.base_url}/r/redirect").stdout == "plain text ünïcödé".encode()


# -- streaming -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, chunks", [("sync", sdk_app.SYNC_CHUNKS), ("async", sdk_app.ASYNC_CHUNKS)])
def test_streaming_http_client(gateway: Gateway, kind: str, chunks: list[str]) -> None:
    r = request(gateway, "GET", f"/stream/{kind}")
    assert r.status == 200
    assert r.chunked
    assert r.header("Transfer-Encoding") == "chunked"
    assert r.header("Content-Length") is None
    assert r.header("X-Stream") == kind
    assert r.header("Content-Type") == "text/plain; charset=utf-8"
    assert r.body == "".join(chunks).encode()


@pytest.mark.parametrize("kind, chunks", [("sync", sdk_app.SYNC_CHUNKS), ("async", sdk_app.ASYNC_CHUNKS)])
def test_streaming_wire_chunks(gateway: Gateway, kind: str, chunks: list[str]) -> None:
    raw = raw_exchange(gateway, f"GET /stream/{kind} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert raw.status == 200
    assert raw.header("transfer-encoding") == "chunked"
    wire_chunks, rest = decode_chunked(raw.body)
    assert rest == b""
    assert b"".join(wire_chunks) == "".join(chunks).encode()
    # the pieces were produced 20 ms apart and are written as they arrive
    assert len(wire_chunks) >= 2, wire_chunks


def test_streaming_with_curl(gateway: Gateway, curl: str) -> None:
    out = run_curl(curl, "-N", f"{gateway.base_url}/stream/async").stdout
    assert out == "".join(sdk_app.ASYNC_CHUNKS).encode()
    raw = run_curl(curl, "-N", "--raw", f"{gateway.base_url}/stream/sync").stdout
    wire_chunks, rest = decode_chunked(raw)
    assert rest == b""
    assert b"".join(wire_chunks) == "".join(sdk_app.SYNC_CHUNKS).encode()


def test_streaming_is_incremental(gateway: Gateway, curl: str) -> None:
    # the first chunk reaches curl -N while the handler still sleeps before the second
    start = time.monotonic()
    with subprocess.Popen([curl, "-sS", "-N", f"{gateway.base_url}/stream/slow"], stdout=subprocess.PIPE) as proc:
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            t_first = time.monotonic() - start
            second = proc.stdout.readline()
            t_second = time.monotonic() - start
            assert proc.wait(10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert (first, second) == (b"first\n", b"second\n")
    assert t_second - t_first >= 0.4, (t_first, t_second)


def test_streaming_is_incremental_http_client(gateway: Gateway, tmp_path: Path) -> None:
    """By order, not by time: the handler makes its second chunk only once this client
    has read the first and opened the gate (a gateway that held the first chunk back
    would leave the gate shut until the handler gave up on it)."""
    gate = tmp_path / "gate"
    conn = http.client.HTTPConnection(gateway.host, gateway.port, timeout=30)
    try:
        conn.request("GET", f"/stream/gated?gate={gate}")
        resp = conn.getresponse()
        first = resp.readline()
        gate.touch()
        rest = resp.read()
    finally:
        conn.close()
    assert (first, rest) == (b"first\n", b"second\n")


# -- cookies out -----------------------------------------------------------------------------


def test_set_and_delete_cookie(gateway: Gateway) -> None:
    r = request(gateway, "GET", "/cookies/set")
    assert r.status == 200
    assert r.headers("Set-Cookie") == [
        "session=abc123; Max-Age=3600; Path=/; HttpOnly; SameSite=Lax",
        "theme=dark; Path=/r; Secure; SameSite=Strict",
        "old=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; SameSite=Lax",
    ]


def test_cookie_jar_with_curl(gateway: Gateway, curl: str, tmp_path: Path) -> None:
    jar = tmp_path / "jar.txt"
    run_curl(curl, "-c", str(jar), "-o", "/dev/null", f"{gateway.base_url}/cookies/set")
    out = run_curl(curl, "-b", str(jar), f"{gateway.base_url}/cookies/echo").stdout
    # session (Path=/) comes back; theme is Secure (not sent over http) and Path=/r
    assert json.loads(out) == {"cookies": {"session": "abc123"}}


# -- HEAD, 404, 405, OPTIONS ------------------------------------------------------------------


def test_head_on_get_route(gateway: Gateway) -> None:
    get = request(gateway, "GET", "/r/dict")
    head = request(gateway, "HEAD", "/r/dict")
    assert head.status == 200
    assert head.header("Content-Length") == str(len(get.body))
    assert head.header("Content-Type") == "application/json"
    assert head.body == b""


def test_head_sends_no_body_bytes(gateway: Gateway) -> None:
    raw = raw_exchange(gateway, b"HEAD /r/str HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.status == 200
    assert raw.header("content-length") == str(len("plain text ünïcödé".encode()))
    assert raw.body == b""


def test_head_with_curl(gateway: Gateway, curl: str) -> None:
    status, headers, body = parse_curl_include(run_curl(curl, "-I", f"{gateway.base_url}/big/1000").stdout)
    assert status == 200
    assert headers["content-length"] == ["1000"]
    assert body == b""


def test_404(gateway: Gateway) -> None:
    r = request(gateway, "GET", "/no/such/route")
    assert r.status == 404
    assert b"Not Found" in r.body


def test_405_with_allow(gateway: Gateway) -> None:
    r = request(gateway, "POST", "/only-get", body=b"")
    assert r.status == 405
    assert r.header("Allow") == "GET, HEAD, OPTIONS"
    r = request(gateway, "DELETE", "/echo")
    assert r.status == 405
    assert r.header("Allow") == "OPTIONS, POST, PUT"


def test_options_automatic(gateway: Gateway) -> None:
    r = request(gateway, "OPTIONS", "/only-get")
    assert r.status == 204
    assert r.header("Allow") == "GET, HEAD, OPTIONS"


# -- error paths -----------------------------------------------------------------------------


@pytest.mark.parametrize("path, exc_line", [
    ("/boom", f"RuntimeError: {sdk_app.BOOM_TEXT}"),
    ("/boom-async", f"ValueError: {sdk_app.BOOM_TEXT}-async"),
])  # fmt: skip
def test_handler_exception_is_500_without_leak(gateway: Gateway, path: str, exc_line: str) -> None:
    rid = f"boom-{uuid.uuid4().hex}"
    r = request(gateway, "GET", path, headers=[("X-Request-ID", rid)])
    assert r.status == 500
    assert r.header("X-Request-ID") == rid
    assert r.body == b"Internal Server Error"
    for secret in (b"Traceback", sdk_app.BOOM_TEXT.encode(), b"Error:", b"sdk_app.py"):
        assert secret not in r.body
        assert all(secret.decode() not in v for _, v in r.msg.items())
    log = gateway.wait_for_log(f"request_id={rid}", exc_line)
    # the log record names the request and its id; its traceback follows it
    at = log.index(f"request_id={rid}")
    line_start = log.rfind("\n", 0, at) + 1
    record = log[line_start:]
    assert f"unhandled exception in GET {path} (route {path}, request_id={rid})" in record.splitlines()[0]
    tb_start = record.index("Traceback (most recent call last):")
    assert record.index(exc_line) > tb_start
    assert "sdk_app.py" in record[tb_start : record.index(exc_line)]


def test_bad_return_value_is_500(gateway: Gateway) -> None:
    rid = f"badret-{uuid.uuid4().hex}"
    r = request(gateway, "GET", "/bad-return", headers=[("X-Request-ID", rid)])
    assert r.status == 500
    assert b"TypeError" not in r.body and b"Traceback" not in r.body
    gateway.wait_for_log(f"request_id={rid}", "TypeError: handler returned object")


def test_http_exception(gateway: Gateway) -> None:
    r = request(gateway, "GET", "/teapot")
    assert r.status == 418
    assert r.header("Content-Type") == "application/json"
    assert r.header("X-Teapot") == "short and stout"
    assert r.json() == {"detail": "teapot"}


def test_http_exception_with_curl(gateway: Gateway, curl: str) -> None:
    proc = run_curl(curl, "-w", "\n%{http_code}", f"{gateway.base_url}/teapot")
    body, _, code = proc.stdout.rpartition(b"\n")
    assert code == b"418"
    assert json.loads(body) == {"detail": "teapot"}


# -- concurrency and keep-alive -------------------------------------------------------------------


def test_concurrent_requests(gateway: Gateway) -> None:
    def one(i: int) -> tuple[int, int, dict[str, object], str | None]:
        r = request(gateway, "GET", f"/sleep?n={i}", headers=[("X-Request-ID", f"conc-{i}")])
        return i, r.status, r.json(), r.header("X-Request-ID")

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(one, range(50)))
    elapsed = time.monotonic() - start
    assert len(results) == 50
    for i, status, body, rid in results:
        assert status == 200
        assert body == {"request_id": f"conc-{i}", "n": str(i)}
        assert rid == f"conc-{i}"
    # each handler sleeps 0.2 s: run one after another, 50 would take 10 s
    assert elapsed < 5, elapsed


def test_keep_alive_connection_reused(gateway: Gateway) -> None:
    conn = http.client.HTTPConnection(gateway.host, gateway.port, timeout=10)
    try:
        ports = set()
        for i in range(20):
            conn.request("POST", "/echo", body=f"msg {i}".encode(), headers={"Content-Type": "text/x-e2e"})
            resp = conn.getresponse()
            assert resp.status == 200
            assert resp.read() == f"msg {i}".encode()
            ports.add(conn.sock.getsockname()[1])
    finally:
        conn.close()
    assert len(ports) == 1


def test_stream_failing_mid_body_is_cut_off(gateway: Gateway) -> None:
    rid = f"midstream-{uuid.uuid4().hex}"
    conn = http.client.HTTPConnection(gateway.host, gateway.port, timeout=10)
    try:
        conn.request("GET", "/stream/broken", headers={"X-Request-ID": rid})
        resp = conn.getresponse()
        assert resp.status == 200  # the head was already sent when the body failed
        assert resp.getheader("Transfer-Encoding") == "chunked"
        with pytest.raises(http.client.IncompleteRead) as info:
            resp.read()
        assert info.value.partial == b"partial\n"
    finally:
        conn.close()
    # on the wire: the first chunk, then the connection closes without the last chunk
    raw = raw_exchange(gateway, b"GET /stream/broken HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.body == b"8\r\npartial\n\r\n", raw.body
    log = gateway.wait_for_log(f"request_id={rid}): the response body failed mid-stream",
                               f"RuntimeError: {sdk_app.BOOM_TEXT}-stream")  # fmt: skip
    assert "GET /stream/broken" in log


def test_route_timeout_is_504(gateway: Gateway) -> None:
    start = time.monotonic()
    r = request(gateway, "GET", "/too-slow")
    elapsed = time.monotonic() - start
    assert r.status == 504
    assert b"late" not in r.body
    assert 0.25 <= elapsed < 2.5, elapsed


def test_multipart_non_ascii_filename_with_curl(gateway: Gateway, curl: str, tmp_path: Path) -> None:
    path = tmp_path / "plain.txt"
    path.write_bytes(b"x" * 10)
    out = run_curl(curl, "-F", f"f=@{path};filename=naïve ✓.txt;type=text/plain", f"{gateway.base_url}/form").stdout
    (item,) = json.loads(out)["items"]
    assert (item["filename"], item["content_type"], item["size"]) == ("naïve ✓.txt", "text/plain", 10)
