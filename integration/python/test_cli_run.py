"""``covet run`` and ``--version`` with the real bin/covet-gateway.

Run with ``.venv/bin/python -m pytest integration/python`` after ``make build``.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from conftest import GATEWAY, HERE, _python, need_gateway

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
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    assert proc.returncode == 0, log.read_text()[-3000:]


def test_versions_agree() -> None:
    need_gateway()
    sdk = importlib.metadata.version("covet")
    covet = subprocess.run([sys.executable, "-m", "covet", "--version"], capture_output=True, text=True,
                           timeout=TIMEOUT_S)  # fmt: skip
    gateway = subprocess.run([str(GATEWAY), "--version"], capture_output=True, text=True, timeout=TIMEOUT_S)
    assert (covet.returncode, covet.stdout) == (0, f"covet {sdk}\n"), covet.stderr
    assert (gateway.returncode, gateway.stdout) == (0, f"covet-gateway {sdk}\n"), gateway.stderr
