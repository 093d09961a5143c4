#!/usr/bin/env python3
"""CovetPy's WebSockets against uvicorn's and Granian's: echo messages per second and
latency over 64 connections, and the memory each of 10,000 idle WebSockets costs. Part
of `make bench` (after bench/tls.py), alone as `make bench-ws`; standard library only:

    python3 bench/ws.py                       # 3 rounds x 10 s, every cell
    BENCH_QUICK=1 python3 bench/ws.py         # smoke run: 2 s x 1 round, 1,000 idle
    python3 bench/ws.py --list                # the cells

Cells (a workload on one server), one worker or process each, all serving /ws/echo, an
echo of every text or binary message as it came:

    echo64      bench/out/tlsload ws -c 64 -size 64: 64 connections, each a closed loop
                of one 64-byte text message sent and its echo awaited and compared
    echo16k     the same with 16 KiB binary messages
    idle10k     bench/out/tlsload wsidle -n 10000: 10,000 WebSockets opened (each echoes
                one message), held idle, then each checked with one more echo; the
                resident memory of every server process with them open, less before

Servers: CovetPy (bin/covet-gateway, one worker, bench/apps/covet_app.py's
@app.websocket route), uvicorn --ws websockets with the raw ASGI app
(bench/apps/asgi_app.py) and with Starlette's WebSocketEndpoint
(bench/apps/starlette_app.py), Granian --interface asgi with the raw ASGI app.

Each round starts every cell's server in turn (order rotated by one per round), checks
the echo (tlsload wscheck: text and binary messages of 0 B to 200 KB, every frame-length
encoding, each compared), then for the echo cells loads it BENCH_WARMUP seconds
unmeasured and BENCH_DURATION seconds measured on the same connections (every echo is
compared; a wrong one fails the cell), reading the CPU time of the server's process tree
around the measured time; for idle10k it reads VmRSS (/proc/PID/status) of every process
of the server before the connections and again with them all open, idle for
BENCH_WS_IDLE_SETTLE seconds, and the tree's CPU time over the next BENCH_WS_IDLE_HOLD
seconds. It writes bench/RESULTS-ws.md (BENCH_WS_RESULTS) and bench/out/results-ws.json.

Environment (all optional; the first line's are bench/run.py's too):
    BENCH_DURATION, BENCH_ROUNDS, BENCH_WARMUP, BENCH_QUICK, BENCH_NO_INSTALL, BENCH_VENV
    BENCH_WS_CELLS      comma list of cells, e.g. echo64/covet-1,idle10k or whole workloads
    BENCH_WS_RESULTS    where to write the report (default bench/RESULTS-ws.md)
    BENCH_WS_CONNS      echo connections (default 64)
    BENCH_WS_IDLE       idle connections (default 10000; 1000 with BENCH_QUICK)
    BENCH_WS_IDLE_SETTLE, BENCH_WS_IDLE_HOLD   seconds (default 2 and 5)
"""

from __future__ import annotations

import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R  # noqa: E402  (bench/run.py: process trees, venv, machine facts)
import tls as T  # noqa: E402  (bench/tls.py: builds bench/out/tlsload)

BENCH, ROOT, OUT, APPS, HOST = R.BENCH, R.ROOT, R.OUT, R.APPS, R.HOST
TLSLOAD = T.TLSLOAD
RESULTS_MD = Path(os.environ.get("BENCH_WS_RESULTS", str(BENCH / "RESULTS-ws.md")))
DURATION, ROUNDS, WARMUP = R.DURATION, R.ROUNDS, R.WARMUP
CONNS = int(R.env_num("BENCH_WS_CONNS", 64))
IDLE_N = int(R.env_num("BENCH_WS_IDLE", 1000 if R.QUICK else 10000))
IDLE_SETTLE = R.env_num("BENCH_WS_IDLE_SETTLE", 2)
IDLE_HOLD = R.env_num("BENCH_WS_IDLE_HOLD", 5)
WS_PATH = "/ws/echo"
EXTRA_PACKAGES = ["websockets"]  # uvicorn --ws websockets; on top of bench/run.py's
IDLE_NAME = "idle10k"  # the workload's name whatever BENCH_WS_IDLE says


# --------------------------------------------------------------------------- servers


def covet(port: int) -> list[str]:
    worker = f"{shlex.quote(str(R.REPO_PY))} -m covet worker covet_app:app"
    return [str(R.GATEWAY), "--listen", f"{HOST}:{port}", "--app", "bench", "--workers", "1",
            "--worker-cmd", worker, "--worker-dir", str(APPS), "--log-level", "warn"]


def uvicorn(module: str) -> Callable[[int], list[str]]:
    return lambda port: [R.vbin("uvicorn"), f"{module}:app", "--host", HOST, "--port", str(port),
                         "--workers", "1", "--loop", "uvloop", "--http", "httptools", "--ws", "websockets",
                         "--no-access-log", "--log-level", "warning"]


def granian(port: int) -> list[str]:
    # --backpressure: Granian's cap on what one worker serves at once (default: the
    # backlog, 1024); raised so that it does not stand between it and the idle cell.
    return [R.vbin("granian"), "--interface", "asgi", "--host", HOST, "--port", str(port),
            "--workers", "1", "--loop", "uvloop", "--http", "1", "--ws", "--backpressure", str(IDLE_N + 1024),
            "--log-level", "warning", "--no-access-log", "asgi_app:app"]


@dataclass
class Cell:
    workload: str  # echo64, echo16k, idle10k
    server: str
    label: str
    argv: Callable[[int], list[str]]
    needs: Callable[[], str | None]
    env: dict[str, str] | None = None

    @property
    def name(self) -> str:
        return f"{self.workload}/{self.server}"


def need_covet_ws() -> str | None:
    """CovetPy's cells need the gateway and a covet_app.py with a WebSocket route."""
    why = R.need_covet()
    if why:
        return why
    if "@app.websocket(" not in (APPS / "covet_app.py").read_text():
        return "bench/apps/covet_app.py has no @app.websocket route (the WebSocket stack is not in this tree)"
    return None


SERVERS = [
    ("covet-1", "CovetPy, 1 worker", covet, need_covet_ws, {"COVET_LOG_LEVEL": "WARNING"}),
    ("uvicorn-asgi-1", "uvicorn raw ASGI, 1 worker, --ws websockets", uvicorn("asgi_app"),
     R.need_module("websockets"), None),
    ("uvicorn-starlette-1", "uvicorn + Starlette WebSocketEndpoint, 1 worker, --ws websockets",
     uvicorn("starlette_app"), R.need_module("websockets"), None),
    ("granian-asgi-1", "Granian ASGI, 1 worker, --ws", granian, R.need_module("granian"), None),
]
WORKLOADS = {
    "echo64": (64, False),
    "echo16k": (16 << 10, True),
    IDLE_NAME: (0, False),
}


def all_cells() -> list[Cell]:
    cells = []
    for w in WORKLOADS:
        for name, label, argv, needs, env in SERVERS:
            if name == "uvicorn-starlette-1" and w == "echo16k":
                continue  # the framework's cost shows at 64 bytes; 16 KiB is the transport's
            cells.append(Cell(w, name, label, argv, needs, env))
    for c in cells:
        c.needs = (lambda n: lambda: n() or (None if TLSLOAD.exists() else "bench/out/tlsload could not be built"))(c.needs)
    return cells


WORKLOAD_TEXT = {
    "echo64": f"`bench/out/tlsload ws -c {CONNS} -size 64`: {CONNS} connections, each sending a 64-byte text "
              "message and awaiting its echo (closed loop), every echo compared with what was sent",
    "echo16k": f"`bench/out/tlsload ws -c {CONNS} -size 16384 -binary`: the same with 16 KiB binary messages",
    IDLE_NAME: f"`bench/out/tlsload wsidle -n {IDLE_N}`: {IDLE_N:,} WebSockets opened 64 handshakes at a time, each "
               "echoing one 32-byte message, then held idle (pings answered) and at the end each checked with one "
               "more echo",
}


# --------------------------------------------------------------------------- setup


def ensure_extra_packages() -> None:
    if R.NO_INSTALL or not R.VPY.exists():
        return
    if subprocess.run([str(R.VPY), "-c", "import websockets"], capture_output=True).returncode == 0:
        return
    R.log(f"==> installing {' '.join(EXTRA_PACKAGES)} into {R.shown(R.VENV)}")
    subprocess.run([str(R.VPY), "-m", "pip", "install", "-q"] + EXTRA_PACKAGES, check=False)


def raise_nofile(want: int) -> str:
    """Lifts this process's RLIMIT_NOFILE (inherited by the servers) to want, the hard
    limit too where allowed; returns the limits as they end up."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return f"{soft} (hard {hard})"


def source_addresses(n: int) -> int:
    """How many 127.0.0.x source addresses n connections to one port need: each
    gives the ephemeral port range's worth, less a half for what else runs."""
    try:
        lo, hi = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        lo, hi = 32768, 60999
    per = max(1000, (hi - lo + 1) // 2)
    return min(254, -(-n // per))


# --------------------------------------------------------------------------- one cell


def url(port: int) -> str:
    return f"ws://{HOST}:{port}{WS_PATH}"


def tlsload_json(argv: list[str], timeout: float) -> dict:
    r = subprocess.run([str(TLSLOAD), *argv], capture_output=True, text=True, timeout=timeout)
    for line in r.stdout.splitlines():
        if line.startswith("TLSLOAD "):
            return json.loads(line[len("TLSLOAD "):])
    raise RuntimeError(f"tlsload {argv[0]}: exit {r.returncode}: {(r.stderr or r.stdout).strip()[-400:]}")


def check(port: int) -> str | None:
    try:
        got = tlsload_json(["wscheck", url(port)], timeout=60)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        return f"echo check failed: {str(e)[-300:]}"
    return None if got.get("ok") else f"echo check: {got}"


def marked_run(argv: list[str], on_mark: Callable[[str], None], timeout: float,
               stdin: bool = False) -> dict:
    """Runs tlsload, calling on_mark(rest of line) for each TLSLOAD-MARK line; returns
    its JSON."""
    p = subprocess.Popen([str(TLSLOAD), *argv], stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killer = threading.Timer(timeout, p.kill)  # a safety bound: a stuck client is killed
    killer.start()
    x = None
    try:
        assert p.stdout is not None
        for line in p.stdout:
            if line.startswith("TLSLOAD-MARK "):
                on_mark(line[len("TLSLOAD-MARK "):].strip())
                if stdin and line.startswith("TLSLOAD-MARK open") and p.stdin:
                    p.stdin.write("\n")
                    p.stdin.close()
            elif line.startswith("TLSLOAD "):
                x = json.loads(line[len("TLSLOAD "):])
        err = p.stderr.read() if p.stderr else ""
        p.wait()
    finally:
        killer.cancel()
        if p.poll() is None:
            p.kill()
            p.wait()
    if x is None:
        raise RuntimeError(f"tlsload {argv[0]}: exit {p.returncode}: {err.strip()[-400:]}")
    return x


def echo_measured(cell: Cell, run: R.Running) -> dict:
    size, binary = WORKLOADS[cell.workload]
    argv = ["ws", "-c", str(CONNS), "-size", str(size), "-d", f"{DURATION}s", "-w", f"{WARMUP}s"]
    if binary:
        argv.append("-binary")
    marks: dict[str, tuple] = {}
    x = marked_run(argv + [url(run.port)], lambda m: marks.__setitem__(m, (R.tree(run.proc.pid), R.cpu_times())),
                   timeout=DURATION + WARMUP + 60)
    if set(marks) != {"start", "stop"}:
        raise RuntimeError(f"tlsload ws: no measured time marked ({x})")
    if x.get("mismatches"):
        raise RuntimeError(f"WRONG: {x['mismatches']} echoes unlike what was sent: {x.get('first_error', '')}")
    out = {k: x[k] for k in ("requests", "rps", "errors", "p50_us", "p99_us", "p999_us", "dials")}
    if x.get("first_error"):
        out["first_error"] = x["first_error"]
    (before, (steal0, total0)), (after, (steal1, total1)) = marks["start"], marks["stop"]
    return T.cpu_and_steal(out, run, before, after, steal1 - steal0, total1 - total0)


def vmrss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def rss_by_process(root: int) -> dict[int, tuple[str, int]]:
    out = {}
    for pid in R.tree(root):
        kib = vmrss_kib(pid)
        if kib is not None:
            out[pid] = (comm(pid), kib)
    return out


def idle_measured(cell: Cell, run: R.Running) -> dict:
    """RSS of every process of the server before and with IDLE_N WebSockets open."""
    time.sleep(1.0)  # let the check's connection be gone
    before = rss_by_process(run.proc.pid)
    srcs = source_addresses(IDLE_N)
    seen: dict[str, object] = {}

    def on_mark(m: str) -> None:
        if not m.startswith("open"):
            return
        seen["open"] = int(m.split()[1])
        time.sleep(IDLE_SETTLE)
        seen["held"] = rss_by_process(run.proc.pid)
        t0, c0 = R.tree(run.proc.pid), time.monotonic()
        time.sleep(IDLE_HOLD)
        t1, c1 = R.tree(run.proc.pid), time.monotonic()
        ticks = sum(t for _, _, t in t1.values()) - sum(t for p, (_, _, t) in t0.items() if p in t1)
        seen["idle_cpu_pct"] = 100 * ticks / R.CLK_TCK / (c1 - c0)
        seen["held_later"] = rss_by_process(run.proc.pid)

    x = marked_run(["wsidle", "-n", str(IDLE_N), "-srcs", str(srcs), "-hold", "10m", url(run.port)], on_mark,
                   timeout=600, stdin=True)
    if "held" not in seen:
        raise RuntimeError(f"tlsload wsidle never had its connections open: {x}")
    held = seen["held"]
    assert isinstance(held, dict)
    opened = int(x["opened"])
    procs = []
    for pid, (name, kib) in sorted(held.items()):
        b = before.get(pid, (name, 0))[1]
        role = "root" if pid == run.proc.pid else "child"
        procs.append({"pid": pid, "comm": name, "role": role, "idle_kib": b, "held_kib": kib,
                      "bytes_per_conn": (kib - b) * 1024 / opened if opened else float("nan")})
    res = {"opened": opened, "requested": IDLE_N, "alive_after": x["alive_after"], "errors": x["errors"],
           "open_seconds": x["open_seconds"], "srcs": srcs, "idle_cpu_pct": seen["idle_cpu_pct"], "procs": procs}
    for k in ("first_error", "check_error"):
        if x.get(k):
            res[k] = x[k]
    if opened < IDLE_N or x["alive_after"] < opened:
        res["short"] = f"{opened:,} of {IDLE_N:,} opened, {x['alive_after']:,} alive at the end"
    return res


# --------------------------------------------------------------------------- the run


def selected(cells: list[Cell]) -> list[Cell]:
    want = [x.strip() for x in os.environ.get("BENCH_WS_CELLS", "").split(",") if x.strip()]
    if not want:
        return cells
    return [c for c in cells if c.name in want or c.workload in want]


def summarize_echo(runs: list[dict]) -> dict:
    rps = [r["rps"] for r in runs]
    return {"rps_median": statistics.median(rps), "rps_min": min(rps), "rps_max": max(rps),
            "p50_us": statistics.median(r["p50_us"] for r in runs),
            "p99_us": statistics.median(r["p99_us"] for r in runs),
            "p999_us": statistics.median(r["p999_us"] for r in runs),
            "cpu_us_per_msg": statistics.median(r["cpu_us_per_req"] for r in runs),
            "root_cpu_us_per_msg": statistics.median(r.get("root_cpu_us_per_req", float("nan")) for r in runs),
            "errors": sum(r["errors"] for r in runs), "steal_pct_max": max(r["steal_pct"] for r in runs),
            "load1": [r["load1"] for r in runs], "rounds": len(runs),
            **({"first_error": next(r["first_error"] for r in runs if "first_error" in r)}
               if any("first_error" in r for r in runs) else {})}


def summarize_idle(runs: list[dict]) -> dict:
    """Per role (root, children together): the median over rounds of bytes per connection."""
    def role_bytes(r: dict, role: str) -> float:
        return sum(p["bytes_per_conn"] for p in r["procs"] if p["role"] == role)

    def role_kib(r: dict, role: str, k: str) -> int:
        return sum(p[k] for p in r["procs"] if p["role"] == role)

    last = runs[-1]
    out = {"rounds": len(runs), "opened": min(r["opened"] for r in runs),
           "alive_after": min(r["alive_after"] for r in runs), "errors": sum(r["errors"] for r in runs),
           "open_seconds": statistics.median(r["open_seconds"] for r in runs),
           "idle_cpu_pct": statistics.median(r["idle_cpu_pct"] for r in runs),
           "comms": {role: sorted({p["comm"] for p in last["procs"] if p["role"] == role}) for role in ("root", "child")}}
    for role in ("root", "child"):
        if any(p["role"] == role for p in last["procs"]):
            out[f"{role}_bytes_per_conn"] = statistics.median(role_bytes(r, role) for r in runs)
            out[f"{role}_idle_kib"] = statistics.median(role_kib(r, role, "idle_kib") for r in runs)
            out[f"{role}_held_kib"] = statistics.median(role_kib(r, role, "held_kib") for r in runs)
    out["total_bytes_per_conn"] = out.get("root_bytes_per_conn", 0) + out.get("child_bytes_per_conn", 0)
    for k in ("first_error", "check_error", "short"):
        if any(k in r for r in runs):
            out[k] = next(r[k] for r in runs if k in r)
    return out


def main() -> int:
    if "--list" in sys.argv:
        print("cells:", ", ".join(c.name for c in all_cells()))
        return 0
    cells = selected(all_cells())
    if not cells:
        sys.exit(f"BENCH_WS_CELLS={os.environ.get('BENCH_WS_CELLS')!r} names no cell (see --list)")
    t0 = time.time()
    OUT.mkdir(exist_ok=True)
    # Twice the idle count: the gateway's max_connections defaults to 7/8 of the limit.
    nofile = raise_nofile(2 * IDLE_N + 4096)
    notes = R.ensure_venv()
    ensure_extra_packages()
    T.build_go_tools()
    if not TLSLOAD.exists():
        sys.exit("bench/out/tlsload could not be built: nothing to measure with")
    info = R.machine_info(notes)
    info["nofile"] = nofile
    info["extra"] = R.cmd_out([str(R.VPY), "-c", "import importlib.metadata as m; print(', '.join("
                               "f'{p} {m.version(p)}' for p in ('websockets',)))"]) if R.VPY.exists() else "n/a"
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
                why = run.wait_ready()
                if why:
                    status[c.name] = f"failed: {why}"
                    R.log(f"    {c.name}: {status[c.name]}")
                    continue
                bad = check(run.port)
                if bad:
                    status[c.name] = f"WRONG: {bad}"
                    R.log(f"    {c.name}: {status[c.name]}")
                    continue
                if c.workload == IDLE_NAME:
                    res = idle_measured(c, run)
                    results.setdefault(c.name, []).append(res)
                    per = ", ".join(f"{p['comm']} ({p['role']}) {p['bytes_per_conn'] / 1024:.1f} KiB"
                                    for p in res["procs"])
                    R.log(f"    {c.name:<28} {res['opened']:,} open in {res['open_seconds']:.1f}s, "
                          f"{res['alive_after']:,} alive at the end; per connection: {per}; "
                          f"idle CPU {res['idle_cpu_pct']:.1f}%")
                    if res.get("short"):
                        status[c.name] = f"failed: {res['short']}: {res.get('first_error') or res.get('check_error')}"
                        R.log(f"    {c.name}: {status[c.name]}")
                    continue
                res = echo_measured(c, run)
                results.setdefault(c.name, []).append(res)
                R.log(f"    {c.name:<28} {res['rps']:>10,.0f} msg/s  p50 {R.fmt_lat(res['p50_us'])}  "
                      f"p99 {R.fmt_lat(res['p99_us'])}  {res['cpu_us_per_req']:7.1f} µs CPU/msg "
                      f"({res.get('root_cpu_us_per_req', float('nan')):.1f} the root process)  "
                      f"errors {res['errors']}  steal {res['steal_pct']:.1f}%")
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                text = str(e)[-300:]
                status[c.name] = text if text.startswith("WRONG") else f"failed: {text}"
                R.log(f"    {c.name}: {status[c.name]}")
            finally:
                problem = run.stop()
                if problem:
                    R.log(f"    {c.name} shutdown: {problem}")
    elapsed = time.time() - t0
    summary = {}
    for n, r in results.items():
        if status.get(n, "").startswith(("failed", "WRONG")):
            continue
        summary[n] = summarize_idle(r) if n.startswith(IDLE_NAME + "/") else summarize_echo(r)
    RESULTS_MD.write_text(render(info, cells, status, summary, elapsed))
    (OUT / "results-ws.json").write_text(json.dumps(
        {"info": info, "status": status, "summary": summary, "runs": results}, indent=1, default=str))
    print()
    print(ratios_text(summary))
    R.log(f"==> wrote {R.shown(RESULTS_MD)} and bench/out/results-ws.json ({elapsed / 60:.1f} min)")
    return 1 if any(v.startswith(("failed", "WRONG")) for v in status.values()) else 0


# --------------------------------------------------------------------------- report

RATIOS = [
    ("64 B echo, CovetPy / uvicorn raw ASGI (issue 21's target: at least 2x)", "echo64/covet-1",
     "echo64/uvicorn-asgi-1", 2.0),
    ("64 B echo, CovetPy / Granian ASGI (target: at least 1.3x)", "echo64/covet-1", "echo64/granian-asgi-1", 1.3),
    ("64 B echo, CovetPy / uvicorn + Starlette", "echo64/covet-1", "echo64/uvicorn-starlette-1", None),
    ("16 KiB echo, CovetPy / uvicorn raw ASGI", "echo16k/covet-1", "echo16k/uvicorn-asgi-1", None),
    ("16 KiB echo, CovetPy / Granian ASGI", "echo16k/covet-1", "echo16k/granian-asgi-1", None),
]


def ratios_text(summary: dict) -> str:
    lines = ["Ratios of the median messages/s (above 1: the first is faster); p99: the first's over the "
             "second's; CPU: the first's CPU per message over the second's (below 1: the first is cheaper)"]
    for label, a, b, target in RATIOS:
        x, y = summary.get(a), summary.get(b)
        if not x or not y or not y["rps_median"]:
            lines.append(f"- {label}: n/a (not measured)")
            continue
        r = x["rps_median"] / y["rps_median"]
        verdict = "" if target is None else (" — met" if r >= target else " — NOT met")
        cpu = x["cpu_us_per_msg"] / y["cpu_us_per_msg"] if y["cpu_us_per_msg"] else float("nan")
        p99 = x["p99_us"] / y["p99_us"] if y["p99_us"] else float("nan")
        lines.append(f"- {label}: {r:.2f}x ({R.fmt_rps(x['rps_median'])} vs {R.fmt_rps(y['rps_median'])} msg/s)"
                     f"{verdict}; p99 {p99:.2f}x ({R.fmt_lat(x['p99_us'])} vs {R.fmt_lat(y['p99_us'])}); "
                     f"CPU {cpu:.2f}x ({x['cpu_us_per_msg']:.1f} vs {y['cpu_us_per_msg']:.1f} µs)")
    idle = {n.split("/", 1)[1]: s for n, s in summary.items() if n.startswith(IDLE_NAME + "/")}
    if idle:
        lines.append("")
        lines.append(f"Memory per idle WebSocket ({IDLE_N:,} held; VmRSS with them open less before, over the "
                     "connections):")
        for srv, s in idle.items():
            parts = [f"{'/'.join(s['comms']['root'])} (root) {s['root_bytes_per_conn'] / 1024:.1f} KiB"]
            if "child_bytes_per_conn" in s:
                parts.append(f"{'/'.join(s['comms']['child'])} (children) {s['child_bytes_per_conn'] / 1024:.1f} KiB")
            lines.append(f"- {srv}: {s['total_bytes_per_conn'] / 1024:.1f} KiB: " + ", ".join(parts))
    return "\n".join(lines) + "\n"


ROLE_NAMES = {"covet-1": ("gateway", "worker"), "granian-asgi-1": ("main process", "worker process")}


def render(info: dict, cells: list[Cell], status: dict, summary: dict, elapsed: float) -> str:
    v = info["versions"]
    L = ["# WebSockets: echo messages/s and latency, memory per idle connection\n"]
    L.append(f"Generated by `python3 bench/ws.py` (part of `make bench`; alone `make bench-ws`) on "
             f"{time.strftime('%Y-%m-%d %H:%M %Z')}; this file is rewritten by every run. Raw numbers: "
             "`bench/out/results-ws.json`.\n")
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(os.environ.items())
                   if k.startswith("BENCH_") and k != "BENCH_WS_RESULTS")
    L.append(f"Command: `{env + ' ' if env else ''}python3 bench/ws.py`\n")
    if R.QUICK or ROUNDS < 3 or DURATION < 5:
        L.append(f"> **Smoke run** ({DURATION}s x {ROUNDS} round(s)): these numbers only show that the harness "
                 "works; they are not results.\n")
    L.append("## Machine\n")
    L.append(f"- CPUs: {info['nproc']} x {info['cpu_model']}; memory {info['memory']}")
    L.append(f"- kernel {info['kernel']}; {info['os']}; load average at start {' '.join(info['loadavg'])}; "
             f"RLIMIT_NOFILE {info['nofile']}")
    L.append(f"- CovetPy {info['covet']}")
    L.append(f"- {R.shown(R.VENV)} Python {v.get('python', '?')}: granian {v.get('granian', '?')}, "
             f"uvicorn {v.get('uvicorn', '?')}, {info['extra']}, uvloop {v.get('uvloop', '?')}, "
             f"httptools {v.get('httptools', '?')}, starlette {v.get('starlette', '?')}")
    L.append(f"- {info['go']} (bench/tlsload, its own WebSocket client)")
    L.append("")
    L.append("## Method\n")
    L.append(f"- Everything on 127.0.0.1, path `{WS_PATH}`, one worker or process per server, nothing pinned; "
             "no compression (the client offers no extension). Every server echoes each text or binary message as "
             "it came; before any load the echo is checked (`tlsload wscheck`: text and binary messages of 0 B to "
             "200 KB, across every frame-length encoding, each compared).")
    L.append(f"- {ROUNDS} interleaved round(s): each round starts every cell's server in turn (the order rotated by "
             f"one per round), checks it, then for the echo cells loads it {WARMUP}s unmeasured and {DURATION}s "
             "measured on the same connections, and stops it. A message/s is one echo: a message sent by the "
             "client and the same message received back (every echo is compared; one unlike what was sent fails "
             "the cell). Latency: from the send to the whole echo read, p50 and p99 of every echo in the measured "
             "time; the medians over the rounds.")
    L.append("- CPU µs/msg: utime+stime of the server's whole process tree (CovetPy: gateway and worker, given apart "
             "in brackets) over the measured time, over the echoes. The client (one Go process) shares the "
             "machine's cores with the server, so on a small machine msg/s are floors for the fast servers.")
    L.append(f"- {IDLE_NAME}: VmRSS (/proc/PID/status) of every process of the server a second after the check's "
             f"connection closed, and again {IDLE_SETTLE:g}s after the {IDLE_N:,} connections are open (each "
             "having echoed one message); the growth over the connections opened is the memory per connection, "
             f"per process (CovetPy: the gateway and the worker). Idle CPU: the tree's CPU over the next "
             f"{IDLE_HOLD:g}s, as a percentage of one core. At the end every connection echoes once more and is "
             "closed; a connection lost fails the cell.")
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
    for w in ("echo64", "echo16k"):
        mine = [c for c in cells if c.workload == w]
        if not mine:
            continue
        L.append(f"## {w}: {WORKLOAD_TEXT[w]}\n")
        L.append("| server | msg/s | min..max | latency p50 / p99 / p99.9 | server CPU µs/msg (CovetPy: gateway + "
                 "worker) | errors | steal % | load |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---|")
        for c in mine:
            s = summary.get(c.name)
            if s is None:
                L.append(f"| {c.server} | {status.get(c.name, 'not run')} | | | | | | |")
                continue
            errs = f"{s['errors']}" + (f" ({s['first_error'][:80]})" if s.get("first_error") else "")
            cpu = f"{s['cpu_us_per_msg']:.1f}"
            if c.server.startswith("covet"):
                g = s["root_cpu_us_per_msg"]
                cpu += f" ({g:.1f} + {s['cpu_us_per_msg'] - g:.1f})"
            L.append(f"| {c.server} | {R.fmt_rps(s['rps_median'])} | {R.fmt_rps(s['rps_min'])}..{R.fmt_rps(s['rps_max'])}"
                     f" | {R.fmt_lat(s['p50_us'])} / {R.fmt_lat(s['p99_us'])} / {R.fmt_lat(s['p999_us'])} | {cpu} | "
                     f"{errs} | {s['steal_pct_max']:.1f} | {', '.join(f'{x:.1f}' for x in s['load1'])} |")
        L.append("")
    mine = [c for c in cells if c.workload == IDLE_NAME]
    if mine:
        L.append(f"## {IDLE_NAME}: {WORKLOAD_TEXT[IDLE_NAME]}\n")
        L.append("| server | process | RSS before | RSS with them open | per connection | opened / alive at the end "
                 "| open time | idle CPU % |")
        L.append("|---|---|---:|---:|---:|---:|---:|---:|")
        for c in mine:
            s = summary.get(c.name)
            if s is None:
                L.append(f"| {c.server} | {status.get(c.name, 'not run')} | | | | | | |")
                continue
            names = ROLE_NAMES.get(c.server, ("the process", "children"))
            first = True
            for role, nm in zip(("root", "child"), names):
                if f"{role}_bytes_per_conn" not in s:
                    continue
                L.append(f"| {c.server if first else ''} | {nm} ({'/'.join(s['comms'][role])}) | "
                         f"{s[f'{role}_idle_kib'] / 1024:.1f} MiB | {s[f'{role}_held_kib'] / 1024:.1f} MiB | "
                         f"{s[f'{role}_bytes_per_conn'] / 1024:.1f} KiB | "
                         + (f"{s['opened']:,} / {s['alive_after']:,} | {s['open_seconds']:.1f}s | "
                            f"{s['idle_cpu_pct']:.1f} |" if first else "| | |"))
                first = False
            if "child_bytes_per_conn" in s:
                L.append(f"| | all | | | {s['total_bytes_per_conn'] / 1024:.1f} KiB | | | |")
        L.append("")
    L.append(f"- Elapsed: {elapsed / 60:.1f} min.\n")
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
