"""``covet run`` and ``--version`` with the real bin/covet-gateway.

Run with ``.venv/bin/python -m pytest integration/python`` after ``make build``.
"""

from __future__ import annotations

import http.client
import importlib.metadata
import json
import os
import re
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import GATEWAY, HERE, _python, need_gateway, self_signed

TIMEOUT_S = 20.0


def _readline(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """The next line of proc's stdout; b"" if it ends or ``timeout`` passes first."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    line = b""
    deadline = time.monotonic() + timeout
    try:
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                break
            c = os.read(proc.stdout.fileno(), 1)
            if not c:
                break
            line += c
    finally:
        sel.close()
    return line


def _stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    """SIGTERM covet run and check it exits 0 (killed after TIMEOUT_S)."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()
    assert proc.returncode == 0, log.read_text()[-3000:]


def test_banner_comes_once_the_port_accepts(tmp_path: Path) -> None:
    need_gateway()
    log = tmp_path / "stderr.log"
    with open(log, "wb") as err:
        # Port 0: the banner must name the port the gateway actually bound.
        proc = subprocess.Popen(
            [_python(), "-m", "covet", "run", "sdk_app:app", "--workers", "1", "--port", "0",
             "--gateway", str(GATEWAY)],
            cwd=HERE, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        line = _readline(proc, TIMEOUT_S).decode()
        m = re.fullmatch(r"CovetPy serving sdk_app:app on http://127\.0\.0\.1:(\d+) \(1 worker\)\n", line)
        assert m, f"first stdout line {line!r}; stderr:\n{log.read_text()[-3000:]}"
        port = int(m[1])
        assert port != 0
        # No retry: by the time the banner is out, the listener must be bound.
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        _stop(proc, log)


def test_versions_agree() -> None:
    need_gateway()
    sdk = importlib.metadata.version("covet")
    covet = subprocess.run([sys.executable, "-m", "covet", "--version"], capture_output=True, text=True,
                           timeout=TIMEOUT_S)  # fmt: skip
    gateway = subprocess.run([str(GATEWAY), "--version"], capture_output=True, text=True, timeout=TIMEOUT_S)
    assert (covet.returncode, covet.stdout) == (0, f"covet {sdk}\n"), covet.stderr
    assert (gateway.returncode, gateway.stdout) == (0, f"covet-gateway {sdk}\n"), gateway.stderr


@pytest.mark.parametrize("http3", [False, True], ids=["tcp", "http3"])
def test_run_serves_https_with_tls_flags(tmp_path: Path, http3: bool) -> None:
    """covet run --tls-cert/--tls-key: the banner says https://, the port speaks TLS
    with that certificate, offers HTTP/2 and HTTP/1.1 by ALPN, and the handler sees
    the scheme https; plain HTTP to it is not served. With --http3, responses
    advertise HTTP/3 on the same port (Alt-Svc), and an HTTP/3 client is served there."""
    need_gateway()
    cert, key = self_signed(tmp_path)
    log = tmp_path / "stderr.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [_python(), "-m", "covet", "run", "sdk_app:app", "--workers", "1", "--port", "0",
             "--gateway", str(GATEWAY), "--tls-cert", str(cert), "--tls-key", str(key),
             *(["--http3"] if http3 else [])],
            cwd=HERE, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        line = _readline(proc, TIMEOUT_S).decode()
        m = re.fullmatch(r"CovetPy serving sdk_app:app on https://127\.0\.0\.1:(\d+) \(1 worker\)\n", line)
        assert m, f"first stdout line {line!r}; stderr:\n{log.read_text()[-3000:]}"
        port = int(m[1])
        ctx = ssl.create_default_context(cafile=str(cert))
        for alpn in (["h2", "http/1.1"], ["http/1.1"]):
            ctx.set_alpn_protocols(alpn)
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                    assert tls.selected_alpn_protocol() == alpn[0]
        ctx.set_alpn_protocols(["http/1.1"])
        # The workers may still be attaching when the banner is out: retry until served.
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
            try:
                conn.request("GET", "/inspect-sync", headers={"Host": "localhost"})
                resp = conn.getresponse()
                body = resp.read()
            finally:
                conn.close()
            if resp.status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert resp.status == 200, body
        info = json.loads(body)
        assert (info["scheme"], info["http_version"]) == ("https", "1.1")
        alt_svc = resp.getheader("Alt-Svc")
        if not http3:
            assert alt_svc is None
        else:
            assert alt_svc is not None and f'h3=":{port}"' in alt_svc, alt_svc
            h3 = _h3_get(port, cert, "/inspect-sync")
            assert h3["status"] == 200, h3
            assert (json.loads(h3["body"])["http_version"], json.loads(h3["body"])["scheme"]) == ("3", "https")
        plain = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            plain.request("GET", "/r/plain")
            assert plain.getresponse().status == 400  # plain HTTP to the TLS port
        except (ConnectionError, http.client.RemoteDisconnected):
            pass  # or the connection closed
        finally:
            plain.close()
    finally:
        _stop(proc, log)


def _h3_get(port: int, cafile: Path, path: str) -> dict[str, object]:
    """GET path over HTTP/3 (integration/clients/h3_aioquic.py): status, headers, body."""
    pytest.importorskip("aioquic", reason="aioquic is not installed (the Makefile's PYDEPS has it)")
    client = HERE.parent / "clients" / "h3_aioquic.py"
    r = subprocess.run([sys.executable, str(client), "127.0.0.1", str(port), str(cafile), "GET", path, "-"],
                       capture_output=True, text=True, timeout=TIMEOUT_S)  # fmt: skip
    assert r.returncode == 0, r.stderr
    out: dict[str, object] = json.loads(r.stdout)
    return out


def test_run_refuses_http3_without_tls(tmp_path: Path) -> None:
    need_gateway()
    r = subprocess.run([_python(), "-m", "covet", "run", "sdk_app:app", "--gateway", str(GATEWAY), "--http3"],
                       cwd=HERE, capture_output=True, text=True, timeout=TIMEOUT_S)  # fmt: skip
    assert r.returncode == 2 and "--http3 needs TLS" in r.stderr, r.stderr
