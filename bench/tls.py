#!/usr/bin/env python3
"""CovetPy over TLS against its peers: HTTP/1.1 and HTTP/2 over TLS, HTTP/3, and full
TLS handshakes per second, all on /json over loopback. Part of `make bench` (after
bench/run.py), alone as `make bench-tls`; standard library only:

    python3 bench/tls.py                      # 3 rounds x 10 s, every cell
    BENCH_QUICK=1 python3 bench/tls.py        # smoke run: 2 s x 1 round

Cells (a workload on one server configuration), one worker or process each:

    h1          wrk -t1 -c64 over HTTPS (HTTP/1.1, no ALPN): CovetPy, Granian RSGI
                (--http 1), uvicorn raw ASGI and + Starlette, Hypercorn, Go net/http
    h2          h2load -t1 -c64 -m10 (ALPN h2): CovetPy, Granian RSGI (--http 2),
                Hypercorn, Go net/http
    h3          bench/tlsload h3 -c8 -m10 (quic-go; Debian's h2load has no HTTP/3):
                CovetPy (--http3), Hypercorn (--quic-bind, aioquic)
    h3-aioquic  the same with bench/h3aioquic.py, aioquic's client (Hypercorn's HTTP/3
                fails under quic-go's client; this one is slow but it keeps working)
    handshakes  bench/tlsload handshakes -c8: per request a new TCP connection, a full
                TLS 1.3 handshake (no session cache, X25519, ECDSA P-256 certificate),
                GET /json with Connection: close: CovetPy against Go net/http

Each round starts every cell's server in turn (order rotated by one per round), checks
the answer once (status 200, application/json, the exact body, the protocol asked
for; the h3 load client checks every answer instead, see ready_proto), loads it for BENCH_WARMUP seconds unmeasured, then BENCH_DURATION seconds
measured, and stops it. Around the measured run it reads the CPU time of the server's
whole process tree (/proc/PID/stat), so CPU µs per request is the server's alone.

It writes bench/RESULTS-tls.md (BENCH_TLS_RESULTS) and bench/out/results-tls.json.

Environment (all optional; the first line's are bench/run.py's too):
    BENCH_DURATION, BENCH_ROUNDS, BENCH_WARMUP, BENCH_QUICK, BENCH_NO_INSTALL, BENCH_VENV
    BENCH_TLS_CELLS     comma list of cells, e.g. h2/covet-1,h2/granian-rsgi-1 or whole
                        workloads (h1,h2,h3,handshakes); `--list` shows them
    BENCH_TLS_RESULTS   where to write the report (default bench/RESULTS-tls.md)
    BENCH_H3_CONNS, BENCH_H3_STREAMS        tlsload h3 -c/-m (default 8, 10)
    BENCH_HANDSHAKE_CONNS                   tlsload handshakes -c (default 8)
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R  # noqa: E402  (bench/run.py: process trees, venv, machine facts)

BENCH, ROOT, OUT, APPS, HOST = R.BENCH, R.ROOT, R.OUT, R.APPS, R.HOST
TLSDIR = OUT / "tls"
CERT, KEY = TLSDIR / "cert.pem", TLSDIR / "key.pem"
TLSLOAD = OUT / "tlsload"
GOHTTP = OUT / "gohttp"
RESULTS_MD = Path(os.environ.get("BENCH_TLS_RESULTS", str(BENCH / "RESULTS-tls.md")))
DURATION, ROUNDS, WARMUP = R.DURATION, R.ROUNDS, R.WARMUP
CONNS = 64
H2_STREAMS = 10
H3_CONNS = int(R.env_num("BENCH_H3_CONNS", 8))
H3_STREAMS = int(R.env_num("BENCH_H3_STREAMS", 10))
HS_CONNS = int(R.env_num("BENCH_HANDSHAKE_CONNS", 8))
PATH = "/json"
BODY = '{"message":"Hello, World!"}'
EXTRA_PACKAGES = ["hypercorn[h3]"]  # on top of bench/run.py's; aioquic for --quic-bind


# --------------------------------------------------------------------------- servers


def covet(port: int, http3: bool = False) -> list[str]:
    worker = f"{shlex.quote(str(R.REPO_PY))} -m covet worker covet_app:app"
    argv = [str(R.GATEWAY), "--listen", f"{HOST}:{port}", "--app", "bench", "--workers", "1",
            "--worker-cmd", worker, "--worker-dir", str(APPS), "--log-level", "warn",
            "--tls-cert", str(CERT), "--tls-key", str(KEY)]
    return argv + ["--http3"] if http3 else argv


def granian(http: str) -> Callable[[int], list[str]]:
    return lambda port: [R.vbin("granian"), "--interface", "rsgi", "--host", HOST, "--port", str(port),
                         "--workers", "1", "--loop", "uvloop", "--http", http, "--no-ws",
                         "--log-level", "warning", "--no-access-log",
                         "--ssl-certificate", str(CERT), "--ssl-keyfile", str(KEY), "rsgi_app:app"]


def uvicorn(module: str) -> Callable[[int], list[str]]:
    return lambda port: [R.vbin("uvicorn"), f"{module}:app", "--host", HOST, "--port", str(port),
                         "--workers", "1", "--loop", "uvloop", "--http", "httptools",
                         "--no-access-log", "--log-level", "warning",
                         "--ssl-certfile", str(CERT), "--ssl-keyfile", str(KEY)]


def hypercorn(quic: bool) -> Callable[[int], list[str]]:
    def argv(port: int) -> list[str]:
        a = [R.vbin("hypercorn"), "-k", "uvloop", "-w", "1", "--bind", f"{HOST}:{port}",
             "--certfile", str(CERT), "--keyfile", str(KEY), "--log-level", "warning"]
        return a + (["--quic-bind", f"{HOST}:{port}"] if quic else []) + ["asgi_app:app"]
    return argv


def gohttp(port: int) -> list[str]:
    return [str(GOHTTP), "-addr", f"{HOST}:{port}", "-tls-cert", str(CERT), "-tls-key", str(KEY)]


def need_covet() -> str | None:
    return R.need_covet()


def need_file(p: Path, why: str) -> Callable[[], str | None]:
    return lambda: None if p.exists() else why


@dataclass
class Cell:
    workload: str  # h1, h2, h3, handshakes
    server: str
    label: str
    argv: Callable[[int], list[str]]
    needs: Callable[[], str | None]
    env: dict[str, str] | None = None

    @property
    def name(self) -> str:
        return f"{self.workload}/{self.server}"


def all_cells() -> list[Cell]:
    need_go = need_file(GOHTTP, "bench/out/gohttp could not be built")
    cov = {"COVET_LOG_LEVEL": "WARNING"}
    cells = [
        Cell("h1", "covet-1", "CovetPy, 1 worker", covet, need_covet, cov),
        Cell("h1", "granian-rsgi-1", "Granian RSGI, 1 worker, --http 1", granian("1"), R.need_module("granian")),
        Cell("h1", "uvicorn-asgi-1", "uvicorn raw ASGI, 1 worker", uvicorn("asgi_app"), R.need_module("uvicorn")),
        Cell("h1", "uvicorn-starlette-1", "uvicorn + Starlette, 1 worker", uvicorn("starlette_app"),
             R.need_module("starlette")),
        Cell("h1", "hypercorn-1", "Hypercorn raw ASGI, 1 worker, uvloop", hypercorn(False), R.need_module("hypercorn")),
        Cell("h1", "go-nethttp", "Go net/http ListenAndServeTLS", gohttp, need_go),
        Cell("h2", "covet-1", "CovetPy, 1 worker (HTTP/2 on by default with TLS)", covet, need_covet, cov),
        Cell("h2", "granian-rsgi-1", "Granian RSGI, 1 worker, --http 2", granian("2"), R.need_module("granian")),
        Cell("h2", "hypercorn-1", "Hypercorn raw ASGI, 1 worker, uvloop", hypercorn(False), R.need_module("hypercorn")),
        Cell("h2", "go-nethttp", "Go net/http ListenAndServeTLS", gohttp, need_go),
        Cell("h3", "covet-1", "CovetPy, 1 worker, --http3", lambda p: covet(p, http3=True), need_covet, cov),
        Cell("h3", "hypercorn-1", "Hypercorn raw ASGI, 1 worker, uvloop, --quic-bind", hypercorn(True),
             R.need_module("aioquic")),
        Cell("h3-aioquic", "covet-1", "CovetPy, 1 worker, --http3", lambda p: covet(p, http3=True), need_covet, cov),
        Cell("h3-aioquic", "hypercorn-1", "Hypercorn raw ASGI, 1 worker, uvloop, --quic-bind", hypercorn(True),
             R.need_module("aioquic")),
        Cell("handshakes", "covet-1", "CovetPy, 1 worker", covet, need_covet, cov),
        Cell("handshakes", "go-nethttp", "Go net/http ListenAndServeTLS", gohttp, need_go),
    ]
    for c in cells:
        c.needs = (lambda n: lambda: n() or (None if TLSLOAD.exists() else "bench/out/tlsload could not be built"))(c.needs)
        if c.workload == "h3-aioquic":
            c.needs = (lambda n, m: lambda: n() or m())(c.needs, R.need_module("aioquic"))
    return cells


WORKLOAD_TEXT = {
    "h1": f"HTTP/1.1 over TLS, `wrk -t1 -c{CONNS} --latency` (keep-alive, no ALPN)",
    "h2": f"HTTP/2 over TLS, `h2load -t1 -c{CONNS} -m{H2_STREAMS}` (ALPN h2)",
    "h3": f"HTTP/3, `bench/out/tlsload h3 -c {H3_CONNS} -m {H3_STREAMS}` (quic-go client)",
    "h3-aioquic": f"HTTP/3, `bench/h3aioquic.py -c {H3_CONNS} -m {H3_STREAMS}` (aioquic's client, one Python "
                  "thread: it, not a fast server, sets the pace)",
    "handshakes": f"full TLS handshakes, `bench/out/tlsload handshakes -c {HS_CONNS}`: per request a new "
                  "TCP connection, a TLS 1.3 handshake without resumption (X25519), GET /json with "
                  "Connection: close",
}
PROTO_WANT = {"h1": "HTTP/1.1", "h2": "HTTP/2.0", "h3": "HTTP/3.0", "h3-aioquic": "HTTP/3.0", "handshakes": "HTTP/1.1"}


# --------------------------------------------------------------------------- setup


def ensure_extra_packages() -> None:
    if R.NO_INSTALL or not R.VPY.exists():
        return
    if subprocess.run([str(R.VPY), "-c", "import hypercorn, aioquic"], capture_output=True).returncode == 0:
        return
    R.log(f"==> installing {' '.join(EXTRA_PACKAGES)} into {R.shown(R.VENV)}")
    subprocess.run([str(R.VPY), "-m", "pip", "install", "-q"] + EXTRA_PACKAGES, check=False)


def build_go_tools() -> None:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if os.path.exists("/usr/local/go/bin/go") else None)
    OUT.mkdir(exist_ok=True)
    for name, out in (("gohttp", GOHTTP), ("tlsload", TLSLOAD)):
        if not go:
            R.log(f"    no go toolchain: bench/out/{name} {'as built before' if out.exists() else 'missing'}")
            continue
        r = subprocess.run([go, "build", "-o", str(out), "."], cwd=BENCH / name, capture_output=True, text=True,
                           env={**os.environ, "GOFLAGS": "", "CGO_ENABLED": "0"})
        if r.returncode != 0:
            R.log(f"    go build bench/{name} failed:\n{r.stderr}")
            out.unlink(missing_ok=True)


def make_cert() -> None:
    TLSDIR.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(TLSLOAD), "cert", "-dir", str(TLSDIR)], check=True)


# --------------------------------------------------------------------------- one cell


def tlsload(*args: str, timeout: float) -> dict:
    r = subprocess.run([str(TLSLOAD), *args], capture_output=True, text=True, timeout=timeout)
    for line in r.stdout.splitlines():
        if line.startswith("TLSLOAD "):
            return json.loads(line[len("TLSLOAD "):])
    raise RuntimeError(f"tlsload {args[0]}: exit {r.returncode}: {(r.stderr or r.stdout).strip()[-400:]}")


def url(port: int) -> str:
    return f"https://{HOST}:{port}{PATH}"


def get(proto: str, port: int) -> dict:
    return tlsload("get", "-proto", proto, "-ca", str(CERT), url(port), timeout=15)


def check_proto(cell: Cell) -> str:
    return {"handshakes": "h1", "h3-aioquic": "h3"}.get(cell.workload, cell.workload)


def ready_proto(cell: Cell) -> str:
    """What wait_ready asks over: HTTP/1.1 for h3 cells too. Hypercorn's QUIC server
    (0.18) can lose its UDP task when a client's connection closes, after which it
    answers nothing; so no connection of a check comes before (or after) the h3 load,
    whose client checks every answer itself (tlsload h3 -type -body: status 200,
    HTTP/3, the media type, the exact body; a wrong one counts as an error)."""
    return "h1" if cell.workload.startswith("h3") else check_proto(cell)


def wait_ready(run: R.Running, cell: Cell, timeout: float = 60.0) -> str | None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if run.proc.poll() is not None:
            return f"exited with status {run.proc.returncode} before answering (see bench/out/{run.server.name}.log)"
        try:
            got = get(ready_proto(cell), run.port)
            if got["status"] == 200:
                time.sleep(0.3)
                run.seen.update(R.tree(run.proc.pid))
                return None
            last = f"status {got['status']}"
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            last = str(e)[-300:]
        time.sleep(0.3)
    return f"not ready after {timeout:.0f}s ({last})"


def udp_bound(port: int) -> bool:
    """Whether a UDP socket is bound to 127.0.0.1:port (/proc/net/udp)."""
    want = f"0100007F:{port:04X}"
    try:
        return any(line.split()[1] == want for line in Path("/proc/net/udp").read_text().splitlines()[1:])
    except (OSError, IndexError):
        return True  # cannot tell: go on


def wait_udp(port: int, timeout: float = 20.0) -> str | None:
    """For h3 cells, once TCP answers: wait for the QUIC socket, which Hypercorn binds
    later than its TCP one (QUIC packets sent before it is there are lost, and the
    client's retransmission backs off for seconds), then a second more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if udp_bound(port):
            time.sleep(1.0)
            return None
        time.sleep(0.1)
    return f"no UDP socket on port {port} after {timeout:.0f}s"


def validate(cell: Cell, port: int) -> str | None:
    try:
        got = get(check_proto(cell), port)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        return f"request failed: {e}"
    want = PROTO_WANT[cell.workload]
    if got["status"] != 200:
        return f"status {got['status']}"
    if got["proto"] != want:
        return f"answered over {got['proto']}, not {want}"
    if got["content_type"].split(";")[0].strip().lower() != "application/json":
        return f"Content-Type {got['content_type']!r}"
    if json.loads(got["body"]) != json.loads(BODY):
        return f"wrong body {got['body'][:120]!r}"
    return None


def load(cell: Cell, port: int, seconds: int) -> dict:
    """One run of h1's or h2's load client; req/s, errors and what latency it gives."""
    if cell.workload == "h1":
        w = R.Workload("json", "GET", PATH, "application/json", lambda b: True, "")
        argv = ["wrk", "-t1", f"-c{CONNS}", f"-d{seconds}s", "--latency", "--timeout", "5s",
                "-s", str(R.lua_script(w)), url(port)]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
        for line in r.stdout.splitlines():
            if line.startswith("BENCHJSON "):
                x = json.loads(line[len("BENCHJSON "):])
                errs = sum(x[k] for k in ("connect", "read", "write", "status", "timeout"))
                return {"requests": x["requests"], "rps": x["requests"] / (x["duration_us"] / 1e6),
                        "errors": errs, "p50_us": x["p50_us"], "p99_us": x["p99_us"]}
        raise RuntimeError(f"wrk gave no result (exit {r.returncode}): {r.stdout[-300:]} {r.stderr[-300:]}")
    if cell.workload == "h2":
        argv = ["h2load", "-t1", f"-c{CONNS}", f"-m{H2_STREAMS}", "-D", str(seconds), url(port)]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
        return parse_h2load(r.stdout, r.returncode)
    raise ValueError(cell.workload)


def tlsload_measured(cell: Cell, run: R.Running) -> dict:
    """h3 and handshakes: one tlsload run, warm-up and measured time on the same
    connections (Hypercorn's HTTP/3 server stops answering once a client's connections
    are gone, so a separate warm-up run would leave nothing to measure); the server's
    CPU is sampled at the marks tlsload prints around the measured time."""
    if cell.workload == "h3-aioquic":
        args = ["h3aioquic.py"]
        argv = [str(R.VPY), str(BENCH / "h3aioquic.py"), "-c", str(H3_CONNS), "-m", str(H3_STREAMS),
                "-d", str(DURATION), "-w", str(WARMUP), "--ca", str(CERT), "--type", "application/json",
                "--body", BODY, url(run.port)]
    else:
        args = (["h3", "-c", str(H3_CONNS), "-m", str(H3_STREAMS), "-type", "application/json", "-body", BODY]
                if cell.workload == "h3" else ["handshakes", "-c", str(HS_CONNS)])
        argv = [str(TLSLOAD), *args, "-d", f"{DURATION}s", "-w", f"{WARMUP}s", "-ca", str(CERT), url(run.port)]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    marks: dict[str, tuple] = {}
    x = None
    assert p.stdout is not None
    for line in p.stdout:
        if line.startswith("TLSLOAD-MARK "):
            marks[line.split()[1]] = (R.tree(run.proc.pid), R.cpu_times())
        elif line.startswith("TLSLOAD "):
            x = json.loads(line[len("TLSLOAD "):])
    err = p.stderr.read() if p.stderr else ""
    p.wait(timeout=60)
    if x is None or set(marks) != {"start", "stop"}:
        raise RuntimeError(f"{args[0]}: exit {p.returncode}: {err.strip()[-400:]}")
    out = {k: x[k] for k in ("requests", "rps", "errors", "p50_us", "p99_us")}
    for k in ("first_error", "groups"):
        if x.get(k):
            out[k] = x[k]
    (before, (steal0, total0)), (after, (steal1, total1)) = marks["start"], marks["stop"]
    return cpu_and_steal(out, run, before, after, steal1 - steal0, total1 - total0)


def cpu_and_steal(res: dict, run: R.Running, before: dict, after: dict, steal: int, total: int) -> dict:
    run.seen.update(after)
    ticks = sum(t for _, _, t in after.values()) - sum(t for p, (_, _, t) in before.items() if p in after)
    per_req = (lambda t: t / R.CLK_TCK / res["requests"] * 1e6) if res["requests"] else (lambda t: float("nan"))
    res["cpu_us_per_req"] = per_req(ticks)
    root = run.proc.pid
    if root in before and root in after:  # the root process alone: CovetPy's gateway
        res["root_cpu_us_per_req"] = per_req(after[root][2] - before[root][2])
    res["steal_pct"] = 100 * steal / total if total > 0 else 0.0
    res["load1"] = float(Path("/proc/loadavg").read_text().split()[0])
    return res


def parse_h2load(text: str, rc: int) -> dict:
    m = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", text)
    n = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", text)
    lat = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", text)
    if not (m and n):
        raise RuntimeError(f"h2load gave no result (exit {rc}): {text[-400:]}")
    secs = float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
    # "succeeded": done with a status below 400. The status-code counts also take in
    # streams whose headers came but not their end when the time ran out, so they are
    # not compared with it.
    ok = int(n.group(4))
    out = {"requests": ok, "rps": ok / secs if secs else 0.0,
           "errors": int(n.group(5)) + int(n.group(6)) + int(n.group(7))}
    if lat:
        out["mean_us"] = to_us(lat.group(3))
    return out


def to_us(v: str) -> float:
    for suffix, k in (("us", 1), ("ms", 1e3), ("s", 1e6)):
        if v.endswith(suffix):
            return float(v[: -len(suffix)]) * k
    return float("nan")


def measure(run: R.Running, cell: Cell) -> dict:
    if cell.workload in ("h3", "h3-aioquic", "handshakes"):
        return tlsload_measured(cell, run)
    if WARMUP > 0:
        load(cell, run.port, WARMUP)
    before = R.tree(run.proc.pid)
    steal0, total0 = R.cpu_times()
    res = load(cell, run.port, DURATION)
    steal1, total1 = R.cpu_times()
    return cpu_and_steal(res, run, before, R.tree(run.proc.pid), steal1 - steal0, total1 - total0)


# --------------------------------------------------------------------------- the run


def selected(cells: list[Cell]) -> list[Cell]:
    want = [x.strip() for x in os.environ.get("BENCH_TLS_CELLS", "").split(",") if x.strip()]
    if not want:
        return cells
    return [c for c in cells if c.name in want or c.workload in want]


def summarize(runs: list[dict]) -> dict:
    rps = [r["rps"] for r in runs]
    mid = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
    out = {"rps_median": statistics.median(rps), "rps_min": min(rps), "rps_max": max(rps),
           "cpu_us_per_req": statistics.median(r["cpu_us_per_req"] for r in runs),
           "gateway_cpu_us_per_req": statistics.median(r.get("root_cpu_us_per_req", float("nan")) for r in runs),
           "errors": sum(r["errors"] for r in runs), "steal_pct_max": max(r["steal_pct"] for r in runs),
           "load1": [r["load1"] for r in runs], "rounds": len(runs)}
    for k in ("p50_us", "p99_us", "mean_us"):
        if k in mid:
            out[k] = statistics.median(r[k] for r in runs)
    for k in ("first_error", "groups"):
        if any(k in r for r in runs):
            out[k] = next(r[k] for r in runs if k in r)
    return out


def main() -> int:
    cells = selected(all_cells())
    if "--list" in sys.argv:
        print("cells:", ", ".join(c.name for c in all_cells()))
        return 0
    t0 = time.time()
    OUT.mkdir(exist_ok=True)
    R.ensure_apt_tools({"wrk": "wrk", "h2load": "nghttp2-client"}, ("wrk", "h2load"))
    notes = R.ensure_venv()
    ensure_extra_packages()
    build_go_tools()
    if not TLSLOAD.exists():
        sys.exit("bench/out/tlsload could not be built: nothing to measure with")
    make_cert()
    info = R.machine_info(notes)
    info["h2load"] = R.cmd_out(["h2load", "--version"])
    info["extra"] = R.cmd_out([str(R.VPY), "-c", "import importlib.metadata as m; print(', '.join("
                               "f'{p} {m.version(p)}' for p in ('hypercorn', 'aioquic')))"]) if R.VPY.exists() else "n/a"
    status: dict[str, str] = {}
    for c in cells:
        why = c.needs()
        if why:
            status[c.name] = f"not run: {why}"
    runnable = [c for c in cells if c.name not in status]
    results: dict[str, list[dict]] = {}
    for rnd in range(ROUNDS):
        k = rnd % len(runnable) if runnable else 0
        order = runnable[k:] + runnable[:k]
        R.log(f"==> round {rnd + 1}/{ROUNDS} (load average {Path('/proc/loadavg').read_text().split()[0]})")
        for c in order:
            if status.get(c.name, "").startswith(("failed", "WRONG")):
                continue
            srv = R.Server(c.name.replace("/", "-"), c.label, c.argv, env=c.env or {})
            run = R.Running(srv)
            try:
                why = wait_ready(run, c) or (wait_udp(run.port) if c.workload.startswith("h3") else None)
                if why:
                    status[c.name] = f"failed: {why}"
                    R.log(f"    {c.name}: {status[c.name]}")
                    continue
                bad = None if c.workload.startswith("h3") else validate(c, run.port)
                if bad:
                    status[c.name] = f"WRONG: {bad}"
                    R.log(f"    {c.name}: {status[c.name]}")
                    continue
                res = measure(run, c)
                results.setdefault(c.name, []).append(res)
                R.log(f"    {c.name:<28} {res['rps']:>10,.0f} req/s  {res['cpu_us_per_req']:7.1f} µs CPU/req "
                      f"({res.get('root_cpu_us_per_req', float('nan')):.1f} the root process)  "
                      f"errors {res['errors']}  steal {res['steal_pct']:.1f}%")
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                status[c.name] = f"failed: {str(e)[-300:]}"
                R.log(f"    {c.name}: {status[c.name]}")
            finally:
                problem = run.stop()
                if problem:
                    R.log(f"    {c.name} shutdown: {problem}")
    elapsed = time.time() - t0
    summary = {n: summarize(r) for n, r in results.items() if not status.get(n, "").startswith(("failed", "WRONG"))}
    report = render(info, cells, status, summary, elapsed)
    RESULTS_MD.write_text(report)
    (OUT / "results-tls.json").write_text(json.dumps(
        {"info": info, "status": status, "summary": summary, "runs": results}, indent=1, default=str))
    print()
    print(ratios_text(summary))
    R.log(f"==> wrote {R.shown(RESULTS_MD)} and bench/out/results-tls.json ({elapsed / 60:.1f} min)")
    return 1 if any(v.startswith(("failed", "WRONG")) for v in status.values()) else 0


# --------------------------------------------------------------------------- report

RATIOS = [
    ("HTTP/2 over TLS, CovetPy / Granian RSGI (issue 20's target: at least 1.5x)", "h2/covet-1", "h2/granian-rsgi-1", 1.5),
    ("HTTP/1.1 over TLS, CovetPy / uvicorn + Starlette (target: at least 2x)", "h1/covet-1", "h1/uvicorn-starlette-1", 2.0),
    ("HTTP/1.1 over TLS, CovetPy / uvicorn raw ASGI (target: at least 2x)", "h1/covet-1", "h1/uvicorn-asgi-1", 2.0),
    ("HTTP/1.1 over TLS, CovetPy / Granian RSGI", "h1/covet-1", "h1/granian-rsgi-1", None),
    ("HTTP/1.1 over TLS, CovetPy / Hypercorn", "h1/covet-1", "h1/hypercorn-1", None),
    ("HTTP/2 over TLS, CovetPy / Hypercorn", "h2/covet-1", "h2/hypercorn-1", None),
    ("HTTP/3, CovetPy / Hypercorn (aioquic)", "h3/covet-1", "h3/hypercorn-1", None),
    ("HTTP/3 under aioquic's client, CovetPy / Hypercorn", "h3-aioquic/covet-1", "h3-aioquic/hypercorn-1", None),
    ("TLS handshakes/s, CovetPy / Go net/http", "handshakes/covet-1", "handshakes/go-nethttp", None),
    ("CovetPy, HTTP/2 / HTTP/1.1 over TLS", "h2/covet-1", "h1/covet-1", None),
    ("CovetPy, HTTP/3 / HTTP/2", "h3/covet-1", "h2/covet-1", None),
]


def ratios_text(summary: dict) -> str:
    lines = ["Ratios of the median req/s (above 1: the first is faster); CPU: the first's CPU per request "
             "over the second's (below 1: the first is cheaper)"]
    for label, a, b, target in RATIOS:
        x, y = summary.get(a), summary.get(b)
        if x and y and not y["rps_median"]:
            lines.append(f"- {label}: n/a: the second's median is 0 req/s ({R.fmt_rps(x['rps_median'])} vs 0; "
                         f"{y['errors']} errors in all, first: {y.get('first_error', '-')[:100]})")
            continue
        if not x or not y:
            lines.append(f"- {label}: n/a (not measured)")
            continue
        r = x["rps_median"] / y["rps_median"]
        verdict = "" if target is None else (" — met" if r >= target else " — NOT met")
        cpu = x["cpu_us_per_req"] / y["cpu_us_per_req"] if y["cpu_us_per_req"] else float("nan")
        alone = ""
        if a.startswith("handshakes/covet") and y["cpu_us_per_req"]:  # the TLS side without the worker's part
            g = x["gateway_cpu_us_per_req"]
            alone = f", the gateway alone {g / y['cpu_us_per_req']:.2f}x ({g:.1f} µs)"
        lines.append(f"- {label}: {r:.2f}x ({R.fmt_rps(x['rps_median'])} vs {R.fmt_rps(y['rps_median'])} req/s)"
                     f"{verdict}; CPU {cpu:.2f}x ({x['cpu_us_per_req']:.1f} vs {y['cpu_us_per_req']:.1f} µs){alone}")
    return "\n".join(lines) + "\n"


def lat_text(c: dict) -> str:
    if "p50_us" in c:
        return f"{R.fmt_lat(c['p50_us'])} / {R.fmt_lat(c['p99_us'])}"
    if "mean_us" in c:
        return f"mean {R.fmt_lat(c['mean_us'])}"
    return "-"


def render(info: dict, cells: list[Cell], status: dict, summary: dict, elapsed: float) -> str:
    v = info["versions"]
    L = ["# CovetPy over TLS: HTTP/1.1, HTTP/2, HTTP/3, handshakes\n"]
    L.append(f"Generated by `python3 bench/tls.py` (part of `make bench`; alone `make bench-tls`) on "
             f"{time.strftime('%Y-%m-%d %H:%M %Z')}; this file is rewritten by every run. Raw numbers: "
             "`bench/out/results-tls.json`.\n")
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(os.environ.items())
                   if k.startswith("BENCH_") and k != "BENCH_TLS_RESULTS")
    L.append(f"Command: `{env + ' ' if env else ''}python3 bench/tls.py`\n")
    if R.QUICK or ROUNDS < 3 or DURATION < 5:
        L.append(f"> **Smoke run** ({DURATION}s x {ROUNDS} round(s)): these numbers only show that the harness "
                 "works; they are not results.\n")
    L.append("## Machine\n")
    L.append(f"- CPUs: {info['nproc']} x {info['cpu_model']}; memory {info['memory']}")
    L.append(f"- kernel {info['kernel']}; {info['os']}; load average at start {' '.join(info['loadavg'])}")
    L.append(f"- CovetPy {info['covet']}")
    L.append(f"- {R.shown(R.VENV)} Python {v.get('python', '?')}: granian {v.get('granian', '?')}, "
             f"uvicorn {v.get('uvicorn', '?')}, uvloop {v.get('uvloop', '?')}, httptools {v.get('httptools', '?')}, "
             f"starlette {v.get('starlette', '?')}, {info['extra']}")
    L.append(f"- {info['wrk']}; {info['h2load']}; {info['go']} (bench/gohttp, bench/tlsload with quic-go)")
    L.append("")
    L.append("## Method\n")
    L.append(f"- Everything on 127.0.0.1, /json (`{BODY}`), one worker or process per server, nothing pinned. "
             f"The certificate: self-signed ECDSA P-256 made by `bench/out/tlsload cert` for every run; TLS 1.3 "
             "(every client offers it and every server takes it).")
    L.append(f"- {ROUNDS} interleaved round(s): each round starts every cell's server in turn (the order rotated "
             "by one per round), checks one answer (status 200, application/json, the exact body, over the protocol "
             "the cell is about; for h3 the load client checks every answer so, and no other connection comes "
             "before it: Hypercorn's QUIC server can stop answering when a client's connection closes), loads it "
             f"{WARMUP}s unmeasured, then {DURATION}s measured (h3 and handshakes: on the warm-up's connections), "
             "and stops it. req/s: the median over the rounds, with min..max; for handshakes each request is one "
             "full handshake.")
    L.append("- CPU µs/req: utime+stime of the server's whole process tree (CovetPy: gateway and worker, "
             "given apart in brackets) from /proc/PID/stat before and after the measured run, over the requests "
             "completed. The load client's own CPU is not counted, but it shares the machine's cores with the server.")
    L.append("- Steal: the share of the machine's CPU time the hypervisor took during the measured run; load: the "
             "1-minute load average after each round's run (the machine is shared).")
    L.append("")
    L.append("## Workloads\n")
    for w, text in WORKLOAD_TEXT.items():
        L.append(f"- `{w}`: {text}")
    L.append("")
    L.append("## Servers\n")
    for c in cells:
        L.append(f"- `{c.name}`: {c.label}" + (f" — {status[c.name]}" if c.name in status else ""))
    L.append("")
    L.append("## Ratios\n")
    L.append(ratios_text(summary))
    for w in WORKLOAD_TEXT:
        mine = [c for c in cells if c.workload == w]
        if not mine:
            continue
        L.append(f"## {w}: {WORKLOAD_TEXT[w]}\n")
        L.append("| server | req/s | min..max | latency p50 / p99 | server CPU µs/req (CovetPy: gateway + worker) "
                 "| errors | steal % | load |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---|")
        for c in mine:
            s = summary.get(c.name)
            if s is None:
                L.append(f"| {c.server} | {status.get(c.name, 'not run')} | | | | | | |")
                continue
            errs = f"{s['errors']}" + (f" ({s['first_error'][:80]})" if s.get("first_error") else "")
            cpu = f"{s['cpu_us_per_req']:.1f}"
            if c.server.startswith("covet"):
                g = s["gateway_cpu_us_per_req"]
                cpu += f" ({g:.1f} + {s['cpu_us_per_req'] - g:.1f})"
            L.append(f"| {c.server} | {R.fmt_rps(s['rps_median'])} | {R.fmt_rps(s['rps_min'])}..{R.fmt_rps(s['rps_max'])}"
                     f" | {lat_text(s)} | {cpu} | {errs} | {s['steal_pct_max']:.1f} | "
                     f"{', '.join(f'{x:.1f}' for x in s['load1'])} |")
        L.append("")
    L.append(f"- Elapsed: {elapsed / 60:.1f} min.\n")
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
