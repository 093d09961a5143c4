"""Fixtures for the SDK end-to-end tests: a real bin/covet-gateway serving sdk_app:app
with real Python workers, on a free loopback port.

Run with ``.venv/bin/python -m pytest integration/python`` after ``make build``.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
# The Makefile's test-integration sets COVET_BIN and COVET_PYTHON; the defaults are what
# `make build` produces.
GATEWAY = Path(os.environ.get("COVET_BIN") or REPO / "bin") / "covet-gateway"
VENV_PYTHON = Path(os.environ.get("COVET_PYTHON") or REPO / ".venv" / "bin" / "python")

STARTUP_TIMEOUT_S = 20.0
SHUTDOWN_TIMEOUT_S = 15.0


@dataclass
class Gateway:
    host: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    scheme: str = "http"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def log_text(self) -> str:
        """Everything the gateway and its workers wrote to stdout and stderr so far."""
        return self.log_path.read_text("utf-8", errors="replace")

    def wait_for_log(self, *needles: str, timeout: float = 5.0) -> str:
        """The log once it holds every needle; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text()
            if all(n in text for n in needles):
                return text
            if time.monotonic() >= deadline:
                missing = [n for n in needles if n not in text]
                pytest.fail(f"gateway log lacks {missing!r} after {timeout}s; log tail:\n{text[-3000:]}")
            time.sleep(0.05)


def need_gateway() -> None:
    """Skip the calling test, saying why, when bin/covet-gateway has not been built."""
    if not (GATEWAY.is_file() and os.access(GATEWAY, os.X_OK)):
        pytest.skip(f"{GATEWAY} does not exist or is not executable: run `make build` first")


def self_signed(tmp_path: Path, name: str = "localhost") -> tuple[Path, Path]:
    """A self-signed ECDSA certificate for ``name`` and 127.0.0.1, and its key, as
    PEM files in tmp_path (made with the openssl command)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed: it makes the test certificate")
    cert, key = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name},IP:127.0.0.1", "-days", "1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=STARTUP_TIMEOUT_S)  # fmt: skip
    return cert, key


def fetch(gw: Gateway, method: str, path: str, body: bytes | None = None,
          headers: Mapping[str, str] | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:  # fmt: skip
    """One request to the gateway over a fresh http.client connection: status, header
    fields, body."""
    conn = http.client.HTTPConnection(gw.host, gw.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _python() -> str:
    return str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable


def _ready(host: str, port: int) -> bool:
    conn = http.client.HTTPConnection(host, port, timeout=2)
    try:
        conn.request("GET", "/r/plain")
        resp = conn.getresponse()
        return resp.status == 200 and resp.read() == b"just text"
    except OSError:
        return False
    finally:
        conn.close()


@contextlib.contextmanager
def serving_gateway(
    log_path: Path, app: str, module: str, workers: int, ready: Callable[[Gateway], bool],
    flags: Sequence[str] = (), scheme: str = "http", worker_dir: Path = HERE, interface: str | None = None,
    **env: str,
) -> Iterator[Gateway]:
    """Run bin/covet-gateway with ``workers`` workers of ``module:app`` (from
    ``worker_dir``, this folder unless given) registering as ``app``, and ``flags`` added; yield it once
    ``ready(gateway)`` holds, then stop it with SIGTERM and expect a clean exit.
    ``interface`` (``asgi``, ``wsgi``) is the worker's ``--interface`` for a foreign app,
    which registers under its module's name: pass that as ``app``.
    ``env`` is added to the environment; ``scheme`` is the gateway's base_url's
    (https when ``flags`` turn TLS on)."""
    need_gateway()
    host, port = "127.0.0.1", _free_port()
    worker_cmd = f"{shlex.quote(_python())} -m covet worker {module}:app"
    if interface is not None:
        worker_cmd += f" --interface {interface}"
    argv = [
        str(GATEWAY),
        "--listen", f"{host}:{port}",
        "--app", app,
        "--workers", str(workers),
        "--worker-cmd", worker_cmd,
        "--worker-dir", str(worker_dir),
        "--drain-timeout", "5s",
        *flags,
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED="1", **env))  # fmt: skip
    gw = Gateway(host, port, proc, log_path, scheme)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not ready(gw):
            if proc.poll() is not None:
                pytest.fail(f"gateway exited with {proc.returncode} during startup:\n{gw.log_text()[-3000:]}")
            if time.monotonic() >= deadline:
                pytest.fail(f"gateway not answering after {STARTUP_TIMEOUT_S}s:\n{gw.log_text()[-3000:]}")
            time.sleep(0.1)
        engine = os.environ.get("COVET_ENGINE")
        if engine and "COVET_ENGINE" not in env:
            # The Makefile's engine passes set it: the gateway must say it runs on it.
            gw.wait_for_log(f"engine={engine}")
        yield gw
    finally:
        if not _terminate(proc):
            pytest.fail(f"gateway did not exit within {SHUTDOWN_TIMEOUT_S}s of SIGTERM:\n{gw.log_text()[-3000:]}")
    assert proc.returncode == 0, f"gateway exited with {proc.returncode} after SIGTERM:\n{gw.log_text()[-3000:]}"


@contextlib.contextmanager
def serving_process(argv: Sequence[str], log_path: Path, ready: Callable[[], bool], cwd: Path = REPO,
                    **env: str) -> Iterator[subprocess.Popen[bytes]]:  # fmt: skip
    """Run ``argv`` (a peer server: uvicorn, gunicorn, ...) with its output in
    ``log_path``; yield it once ``ready()`` holds, failing the test with its log if it
    exits or is not ready within STARTUP_TIMEOUT_S; stop it with SIGTERM (then
    SIGKILL) afterwards."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd,
                                env=dict(os.environ, PYTHONUNBUFFERED="1", **env))  # fmt: skip
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not ready():
            if proc.poll() is not None or time.monotonic() >= deadline:
                pytest.fail(f"{shlex.join(argv[:4])} not serving (exit {proc.poll()}):\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        yield proc
    finally:
        _terminate(proc)


def _terminate(proc: subprocess.Popen[bytes]) -> bool:
    """Stop ``proc`` (if it still runs) with SIGTERM, then SIGKILL after
    SHUTDOWN_TIMEOUT_S; False if it took the SIGKILL."""
    if proc.poll() is not None:
        return True
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(SHUTDOWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        return False
    return True


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    log_path = tmp_path_factory.mktemp("gateway") / "gateway.log"
    with serving_gateway(log_path, "sdkapp", "sdk_app", 2, lambda gw: _ready(gw.host, gw.port), COVET_LOG_LEVEL="INFO") as gw:
        yield gw


@pytest.fixture(scope="session")
def curl() -> str:
    path = shutil.which("curl")
    if path is None:
        pytest.skip("curl is not installed")
    return path
