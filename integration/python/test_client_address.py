"""The client address through the real gateway and Python workers: a PROXY protocol
header (v1, v2) and X-Forwarded-For from a trusted proxy reach the handler as
``req.client``; max_conns_per_ip closes the connection over the limit.

The PROXY headers are written here by hand from HAProxy's proxy-protocol.txt.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Gateway, serving_gateway

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_v1(src: str, sport: int, dst: str = "192.0.2.1", dport: int = 8000) -> bytes:
    fam = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def proxy_v2(src: str, sport: int, dst: str = "192.0.2.1", dport: int = 8000) -> bytes:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    fam = 0x11 if s.version == 4 else 0x21
    body = s.packed + d.packed + struct.pack("!HH", sport, dport)
    body += b"\x04\x00\x02ok"  # a PP2_TYPE_NOOP TLV, which the gateway skips
    return V2_SIGNATURE + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


def connect(gw: Gateway, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection((gw.host, gw.port), timeout=5, source_address=(source, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def get(sock: socket.socket, path: str, *headers: str) -> tuple[int, bytes]:
    """One keep-alive GET on sock: its status and body."""
    extra = "".join(h + "\r\n" for h in headers)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n{extra}\r\n".encode())
    resp = http.client.HTTPResponse(sock)
    resp.begin()
    return resp.status, resp.read()


def client_of(sock: socket.socket, *headers: str) -> list[object]:
    status, body = get(sock, "/inspect", *headers)
    assert status == 200, body
    return json.loads(body)["client"]


def refused(sock: socket.socket, data: bytes) -> bool:
    """Whether the gateway closes sock, unanswered, after data."""
    try:
        sock.sendall(data)
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def proxied_ready(gw: Gateway) -> bool:
    try:
        with connect(gw) as sock:
            sock.sendall(proxy_v1("192.0.2.250", 1))
            return get(sock, "/r/plain") == (200, b"just text")
    except OSError:
        return False


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway behind a PROXY-protocol balancer whose clients' proxies in 10/8 are
    trusted, at most 2 connections per client IP."""
    log = tmp_path_factory.mktemp("proxied") / "gateway.log"
    flags = ["--proxy-protocol", "--trusted-proxies", "10.0.0.0/8", "--max-conns-per-ip", "2"]
    with serving_gateway(log, "sdkapp", "sdk_app", 1, proxied_ready, flags) as gw:
        yield gw


def test_proxy_v1_and_v2_reach_the_handler(proxied: Gateway) -> None:
    with connect(proxied) as sock:
        sock.sendall(proxy_v2("203.0.113.7", 5555))
        assert client_of(sock) == ["203.0.113.7", 5555]
        assert client_of(sock) == ["203.0.113.7", 5555]  # every request of the connection
    with connect(proxied) as sock:
        sock.sendall(proxy_v2("2001:db8::7", 6000, "2001:db8::1"))
        assert client_of(sock) == ["2001:db8::7", 6000]
    with connect(proxied) as sock:
        # The header and the request in one packet.
        sock.sendall(proxy_v1("198.51.100.2", 4242) + b"GET /inspect HTTP/1.1\r\nHost: t\r\n\r\n")
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        assert json.loads(resp.read())["client"] == ["198.51.100.2", 4242]


def test_forwarded_for_believed_only_from_a_trusted_source(proxied: Gateway) -> None:
    with connect(proxied) as sock:
        # 198.51.100.2 is no trusted proxy: its X-Forwarded-For is not believed.
        sock.sendall(proxy_v1("198.51.100.2", 1))
        assert client_of(sock, "X-Forwarded-For: 6.6.6.6") == ["198.51.100.2", 1]
    with connect(proxied) as sock:
        # 10.0.0.9 is: the rightmost untrusted hop is the client, port unknown (0).
        sock.sendall(proxy_v1("10.0.0.9", 1))
        assert client_of(sock, "X-Forwarded-For: 6.6.6.6, 192.0.2.44, 10.1.1.1") == ["192.0.2.44", 0]
        assert client_of(sock, 'Forwarded: for="[2001:db8::44]:81"', "X-Forwarded-For: 6.6.6.6") == [
            "2001:db8::44", 81]


def test_no_proxy_header_is_closed_unanswered(proxied: Gateway) -> None:
    with connect(proxied) as sock:
        assert refused(sock, b"GET /inspect HTTP/1.1\r\nHost: t\r\n\r\n")


def test_max_conns_per_ip_counts_the_proxy_source(proxied: Gateway) -> None:
    held = []
    for _ in range(2):
        sock = connect(proxied)
        sock.sendall(proxy_v1("203.0.113.50", 1))
        assert client_of(sock) == ["203.0.113.50", 1]
        held.append(sock)
    try:
        with connect(proxied) as third:
            assert refused(third, proxy_v1("203.0.113.50", 2) + b"GET /inspect HTTP/1.1\r\nHost: t\r\n\r\n")
        with connect(proxied) as other:  # same socket peer, another source
            other.sendall(proxy_v1("203.0.113.51", 3))
            assert client_of(other) == ["203.0.113.51", 3]
        held.pop().close()
        deadline = time.monotonic() + 5
        while True:  # the closed one is uncounted once the gateway sees it close
            with connect(proxied) as sock:
                try:
                    sock.sendall(proxy_v1("203.0.113.50", 4))
                    assert client_of(sock) == ["203.0.113.50", 4]
                    break
                except (ConnectionError, http.client.RemoteDisconnected):
                    assert time.monotonic() < deadline, "a slot of 203.0.113.50 was not released"
                    time.sleep(0.05)
    finally:
        for sock in held:
            sock.close()


def _plain_ready(gw: Gateway) -> bool:
    try:
        # From 127.0.0.3: the test's own connections from 127.0.0.1 must not find
        # this one still counted.
        with connect(gw, "127.0.0.3") as sock:
            return get(sock, "/r/plain") == (200, b"just text")
    except OSError:
        return False


def test_forwarded_for_from_a_trusted_peer_and_conns_per_ip(tmp_path: Path) -> None:
    """Without the PROXY protocol: nginx-style X-Forwarded-For from 127.0.0.1 (trusted),
    not from 127.0.0.2; and the per-IP limit by socket peer."""
    flags = ["--trusted-proxies", "127.0.0.1", "--max-conns-per-ip", "1"]
    with serving_gateway(tmp_path / "gateway.log", "sdkapp", "sdk_app", 1, _plain_ready, flags) as gw:
        with connect(gw, "127.0.0.1") as sock:
            assert client_of(sock, "X-Forwarded-For: 203.0.113.9") == ["203.0.113.9", 0]
            with connect(gw, "127.0.0.1") as second:
                assert refused(second, b"GET /inspect HTTP/1.1\r\nHost: t\r\n\r\n")
            with connect(gw, "127.0.0.2") as untrusted:
                client = client_of(untrusted, "X-Forwarded-For: 203.0.113.9")
                assert client[0] == "127.0.0.2" and client[1] == untrusted.getsockname()[1]
