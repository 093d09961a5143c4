#!/usr/bin/env python3
"""Upload throughput: a large request body streamed to a handler that consumes it.

    python3 bench/upload.py            # 512 MiB bodies, 3 interleaved rounds

Serves a handler that counts a streamed request body (CovetPy: ``req.stream()``,
bench/apps/upload_covet.py; uvicorn + Starlette: ``request.stream()``,
bench/apps/upload_starlette.py), one worker or process each, on 127.0.0.1, and POSTs a
body of BENCH_UPLOAD_MIB MiB (Content-Length; generated, never stored) from this
process with http.client, one request at a time. Servers are measured in interleaved
rounds (BENCH_ROUNDS, default 3), each round a fresh server per cell, after one warm-up
upload of 64 MiB. Per server it prints the median MB/s (10^6 bytes per second, body
bytes over the time from the first byte sent to the answer read), the server tree's
CPU seconds per GiB (utime + stime of the server process and its children, from
/proc), and the peak RSS of the process that holds the sockets (the gateway; uvicorn's
single process), VmHWM from /proc, before and after the upload. BENCH_CHUNKED=1 sends
the body chunked instead (no Content-Length).

Standard library only. CovetPy runs bin/covet-gateway (make build) with workers of the
repo's .venv python (make venv), --max-body-bytes raised to fit the body. uvicorn and
Starlette come from BENCH_VENV (default bench/.venv, which bench/run.py makes on the
workers' interpreter, and this script too when it is missing or on another); when it
lacks them they are installed there with pip, unless BENCH_NO_INSTALL=1.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV = Path(os.environ.get("BENCH_VENV") or BENCH / ".venv")
VPY = VENV / "bin" / "python"
REPO_PY = Path(os.environ.get("BENCH_COVET_PYTHON") or ROOT / ".venv" / "bin" / "python")
GATEWAY = ROOT / "bin" / "covet-gateway"
MIB = int(os.environ.get("BENCH_UPLOAD_MIB", "512"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CHUNKED = os.environ.get("BENCH_CHUNKED", "") not in ("", "0")
NO_INSTALL = os.environ.get("BENCH_NO_INSTALL", "") not in ("", "0")
HOST = "127.0.0.1"

sys.path.insert(0, str(BENCH))
from run import make_venv  # noqa: E402  (bench/run.py: bench/.venv on the workers' Python)
PIECE = 1 << 20  # the client sends the body 1 MiB at a time


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def ensure_uvicorn() -> str | None:
    """None when bench/.venv has uvicorn and Starlette (installing them if allowed), else why not."""
    check = [str(VPY), "-c", "import uvicorn, starlette, uvloop, httptools"]
    if NO_INSTALL:
        if VPY.exists() and subprocess.run(check, capture_output=True).returncode == 0:
            return None
        return f"{VENV} lacks uvicorn/starlette (BENCH_NO_INSTALL)"
    make_venv()  # on the CovetPy workers' interpreter, as bench/run.py's servers
    if subprocess.run(check, capture_output=True).returncode == 0:
        return None
    log(f"==> installing uvicorn, uvloop, httptools, starlette into {VENV}")
    r = subprocess.run([str(VPY), "-m", "pip", "install", "-q", "uvicorn", "uvloop", "httptools", "starlette"])
    return None if r.returncode == 0 else "pip install failed"


class Server:
    def __init__(self, name: str, argv: list[str], cwd: Path, port: int) -> None:
        self.name, self.port = name, port
        self.proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                c = http.client.HTTPConnection(HOST, port, timeout=5)
                c.request("GET", "/hello")
                if c.getresponse().read() == b"hello":
                    c.close()
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"{name} did not start:\n{err[-2000:]}")
            time.sleep(0.1)

    def pids(self) -> list[int]:
        """The server process and its descendants."""
        out, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            try:
                kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                kids = []
            todo += [int(k) for k in kids]
        return out

    def cpu(self) -> float:
        hz = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.pids():
            try:
                f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(f[11]) + int(f[12])  # utime, stime
        return total / hz

    def hwm_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(20)
        except ProcessLookupError:
            self.proc.wait()
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def start(name: str) -> Server:
    port = free_port()
    if name == "covet-1":
        argv = [str(GATEWAY), "--listen", f"{HOST}:{port}", "--app", "upload-bench", "--workers", "1",
                "--worker-cmd", f"{REPO_PY} -m covet worker upload_covet:app", "--worker-dir", str(BENCH / "apps"),
                "--max-body-bytes", str(4 << 30), "--log-level", "warn"]
    else:
        argv = [str(VENV / "bin" / "uvicorn"), "upload_starlette:app", "--host", HOST, "--port", str(port),
                "--workers", "1", "--loop", "uvloop", "--http", "httptools", "--log-level", "warning",
                "--no-access-log"]
    return Server(name, argv, BENCH / "apps", port)


def upload(port: int, size: int) -> float:
    """POSTs size bytes to /upload; returns the seconds from the first byte sent to the
    answer read, after checking the handler counted them all."""
    piece = memoryview(bytes(range(256)) * (PIECE // 256))
    c = http.client.HTTPConnection(HOST, port, timeout=300)
    c.putrequest("POST", "/upload")
    if CHUNKED:
        c.putheader("Transfer-Encoding", "chunked")
    else:
        c.putheader("Content-Length", str(size))
    c.endheaders()
    t0 = time.perf_counter()
    left = size
    while left:
        p = piece[:min(left, PIECE)]
        if CHUNKED:
            c.send(b"%x\r\n" % len(p))
            c.send(p)
            c.send(b"\r\n")
        else:
            c.send(p)
        left -= len(p)
    if CHUNKED:
        c.send(b"0\r\n\r\n")
    resp = c.getresponse()
    body = resp.read()
    took = time.perf_counter() - t0
    c.close()
    got = json.loads(body).get("bytes") if resp.status == 200 else None
    if got != size:
        raise RuntimeError(f"upload of {size} bytes: {resp.status} {body[:200]!r}")
    return took


def main() -> None:
    if not GATEWAY.exists() or not REPO_PY.exists():
        sys.exit("bin/covet-gateway or .venv missing: make build venv")
    servers = ["covet-1"]
    why = ensure_uvicorn()
    if why:
        log(f"uvicorn-starlette-1 not run: {why}")
    else:
        servers.append("uvicorn-starlette-1")
    size = MIB << 20
    res: dict[str, dict[str, list[float]]] = {s: {"mbs": [], "cpu": [], "hwm0": [], "hwm1": []} for s in servers}
    for rnd in range(ROUNDS):
        for name in servers:
            srv = start(name)
            try:
                upload(srv.port, 64 << 20)  # warm-up
                h0, c0 = srv.hwm_mib(), srv.cpu()
                took = upload(srv.port, size)
                c1, h1 = srv.cpu(), srv.hwm_mib()
            finally:
                srv.stop()
            r = res[name]
            r["mbs"].append(size / took / 1e6)
            r["cpu"].append((c1 - c0) / (size / (1 << 30)))
            r["hwm0"].append(h0)
            r["hwm1"].append(h1)
            log(f"round {rnd + 1} {name}: {size / took / 1e6:.0f} MB/s, {r['cpu'][-1]:.2f} CPU s/GiB, "
                f"peak RSS {h0:.0f} -> {h1:.0f} MiB")
    framing = "chunked" if CHUNKED else "Content-Length"
    print(f"\nUpload of {MIB} MiB ({framing}) to a handler that consumes the stream, one worker/process, "
          f"{ROUNDS} rounds, median (min-max):\n")
    print("| server | MB/s | CPU s/GiB (server tree) | peak RSS of the socket process, MiB (before -> after) |")
    print("|---|---|---|---|")
    for name in servers:
        r = res[name]
        print(f"| {name} | {statistics.median(r['mbs']):.0f} ({min(r['mbs']):.0f}-{max(r['mbs']):.0f}) "
              f"| {statistics.median(r['cpu']):.2f} | {statistics.median(r['hwm0']):.0f} -> "
              f"{statistics.median(r['hwm1']):.0f} |")
    if len(servers) == 2:
        a, b = (statistics.median(res[s]["mbs"]) for s in servers)
        print(f"\nCovetPy / uvicorn+Starlette: {a / b:.2f}x")


if __name__ == "__main__":
    main()
