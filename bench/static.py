#!/usr/bin/env python3
"""Static files: the gateway's static mount against nginx (sendfile on) and Starlette's
StaticFiles under uvicorn, for a 1 KiB, a 64 KiB and a 1 MiB file, HTTP/1.1 over
loopback. Part of `make bench` (after bench/run.py and bench/tls.py), alone as
`make bench-static`; standard library only:

    python3 bench/static.py                   # 3 rounds x 10 s, every cell
    BENCH_QUICK=1 python3 bench/static.py     # smoke run: 2 s x 1 round

Servers, one process each (one event loop or one Go processor):

    covet        bin/covet-gateway --static /static=DIR --workers 0 --procs 1: the files
                 come from disk through the gateway alone (sendfile(2) for bodies over
                 16 KiB, one write of head and body below), no Python worker is involved
    nginx        worker_processes 1, sendfile on, tcp_nopush on, access_log off,
                 location /static/ { alias DIR/; }
    starlette    uvicorn (uvloop, httptools, 1 worker) + Starlette's StaticFiles

Each round starts every server in turn (order rotated by one per round), checks each
file once (status 200, the exact bytes), then per file loads it with `wrk -t1 -c64`
for BENCH_WARMUP seconds unmeasured and BENCH_DURATION seconds measured, reading the
CPU time of the server's process tree around the measured run (/proc/PID/stat).

It writes bench/RESULTS-static.md (BENCH_STATIC_RESULTS) and bench/out/results-static.json.
Environment: BENCH_DURATION, BENCH_ROUNDS, BENCH_WARMUP, BENCH_QUICK, BENCH_NO_INSTALL,
BENCH_VENV (bench/run.py's), BENCH_STATIC_CONNECTIONS (wrk -c, default 64).
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R  # noqa: E402  (bench/run.py: process trees, wrk, machine facts)

BENCH, OUT, HOST = R.BENCH, R.OUT, R.HOST
DIR = OUT / "static" / "public"
RESULTS_MD = Path(os.environ.get("BENCH_STATIC_RESULTS", str(BENCH / "RESULTS-static.md")))
DURATION, ROUNDS, WARMUP = R.DURATION, R.ROUNDS, R.WARMUP
CONNS = int(R.env_num("BENCH_STATIC_CONNECTIONS", 64))
PACKAGES = ["uvicorn", "uvloop", "httptools", "starlette"]
TARGET = 0.7  # issue 21: the gateway at least 0.7x nginx

FILES = {"1k": 1 << 10, "64k": 64 << 10, "1m": 1 << 20}


def content(size: int) -> bytes:
    return bytes((i * 131 + 7) & 0xFF for i in range(size))


# --------------------------------------------------------------------------- servers


def covet(port: int) -> list[str]:
    return [str(R.GATEWAY), "--listen", f"{HOST}:{port}", "--workers", "0", "--procs", "1",
            "--static", f"/static={DIR}", "--log-level", "warn"]


def nginx(port: int) -> list[str]:
    return R.nginx_command("nginx-static-", "1", f"""\
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    server {{
        listen {HOST}:{port};
        location /static/ {{ alias {DIR}/; }}
    }}
""")


def starlette(port: int) -> list[str]:
    return [R.vbin("uvicorn"), "starlette_static:app", "--host", HOST, "--port", str(port), "--workers", "1",
            "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]


@dataclass
class Srv:
    name: str
    label: str
    argv: Callable[[int], list[str]]
    needs: Callable[[], str | None]
    env: dict[str, str]


SERVERS = [
    Srv("covet", "bin/covet-gateway --static /static=DIR --workers 0 --procs 1 (netpoll engine)", covet,
        lambda: None if R.GATEWAY.exists() else "bin/covet-gateway missing (run `make build`)", {}),
    Srv("nginx", "nginx, 1 worker process, sendfile on, tcp_nopush on", nginx, R.need_nginx, {}),
    Srv("starlette", "uvicorn + Starlette StaticFiles, 1 worker, uvloop, httptools", starlette,
        R.need_module("starlette"), {"BENCH_STATIC_DIR": str(DIR)}),
]


# --------------------------------------------------------------------------- setup


def ensure_packages() -> None:
    """uvicorn and Starlette in bench/.venv (bench/run.py's venv, on the CovetPy workers'
    interpreter: made here, with R.make_venv, if missing or made from another)."""
    if R.NO_INSTALL:
        return
    R.make_venv()
    if subprocess.run([str(R.VPY), "-c", "import uvicorn, uvloop, httptools, starlette"],
                      capture_output=True).returncode == 0:
        return
    R.log(f"==> installing {' '.join(PACKAGES)} into {R.shown(R.VENV)}")
    subprocess.run([str(R.VPY), "-m", "pip", "install", "-q"] + PACKAGES, check=False)


def make_files() -> None:
    DIR.mkdir(parents=True, exist_ok=True)
    for name, size in FILES.items():
        p = DIR / f"{name}.bin"
        if not p.exists() or p.stat().st_size != size:
            p.write_bytes(content(size))


# --------------------------------------------------------------------------- one cell


def get(port: int, path: str) -> tuple[int, bytes]:
    status, _, body = R.http("GET", port, path, timeout=5)
    return status, body


def validate(port: int) -> str | None:
    for name, size in FILES.items():
        status, body = get(port, f"/static/{name}.bin")
        if status != 200 or body != content(size):
            return f"/static/{name}.bin: status {status}, {len(body)} bytes (want 200 and the file's {size})"
    return None


def wrk(port: int, name: str, seconds: int) -> dict:
    w = R.Workload(name, "GET", f"/static/{name}.bin", "application/octet-stream", lambda b: True, "")
    argv = ["wrk", "-t1", f"-c{CONNS}", f"-d{seconds}s", "--latency", "--timeout", "5s",
            "-s", str(R.lua_script(w)), f"http://{HOST}:{port}/static/{name}.bin"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    for line in r.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            x = json.loads(line[len("BENCHJSON "):])
            errs = sum(x[k] for k in ("connect", "read", "write", "status", "timeout"))
            return {"requests": x["requests"], "rps": x["requests"] / (x["duration_us"] / 1e6) if x["duration_us"] else 0.0,
                    "errors": errs, "p50_us": x["p50_us"], "p99_us": x["p99_us"],
                    "mib_s": x["bytes"] / (x["duration_us"] / 1e6) / (1 << 20) if x["duration_us"] else 0.0}
    raise RuntimeError(f"wrk gave no result (exit {r.returncode}): {r.stdout[-300:]} {r.stderr[-300:]}")


def measure(run: R.Running, name: str) -> dict:
    if WARMUP > 0:
        wrk(run.port, name, WARMUP)
    before = R.tree(run.proc.pid)
    steal0, total0 = R.cpu_times()
    res = wrk(run.port, name, DURATION)
    steal1, total1 = R.cpu_times()
    after = R.tree(run.proc.pid)
    run.seen.update(after)
    ticks = sum(t for _, _, t in after.values()) - sum(t for p, (_, _, t) in before.items() if p in after)
    res["cpu_us_per_req"] = ticks / R.CLK_TCK / res["requests"] * 1e6 if res["requests"] else float("nan")
    res["steal_pct"] = 100 * (steal1 - steal0) / (total1 - total0) if total1 > total0 else 0.0
    res["load1"] = float(Path("/proc/loadavg").read_text().split()[0])
    return res


# --------------------------------------------------------------------------- the run


def summarize(runs: list[dict]) -> dict:
    return {"rps_median": statistics.median(r["rps"] for r in runs), "rps_min": min(r["rps"] for r in runs),
            "rps_max": max(r["rps"] for r in runs), "mib_s": statistics.median(r["mib_s"] for r in runs),
            "p50_us": statistics.median(r["p50_us"] for r in runs), "p99_us": statistics.median(r["p99_us"] for r in runs),
            "cpu_us_per_req": statistics.median(r["cpu_us_per_req"] for r in runs),
            "errors": sum(r["errors"] for r in runs), "steal_pct_max": max(r["steal_pct"] for r in runs),
            "load1": [r["load1"] for r in runs], "rounds": len(runs)}


def main() -> int:
    t0 = time.time()
    OUT.mkdir(exist_ok=True)
    R.ensure_apt_tools({"wrk": "wrk", "nginx": "nginx"})
    ensure_packages()
    make_files()
    info = R.machine_info({})
    results: dict[str, list[dict]] = {}

    def visit(run: R.Running, s: Srv) -> str | None:
        why = run.wait_ready(probe=lambda port: get(port, "/static/1k.bin")[0])
        if why:
            return f"failed: {why}"
        bad = validate(run.port)
        if bad:
            return f"WRONG: {bad}"
        for name in FILES:
            res = measure(run, name)
            results.setdefault(f"{name}/{s.name}", []).append(res)
            R.log(f"    {name:>4} {s.name:<10} {res['rps']:>10,.0f} req/s {res['mib_s']:>8,.0f} MiB/s "
                  f"{res['cpu_us_per_req']:7.1f} µs CPU/req  errors {res['errors']}  steal {res['steal_pct']:.1f}%")
        return None

    status = R.interleaved_rounds(SERVERS, "static", visit)
    elapsed = time.time() - t0
    summary = {n: summarize(r) for n, r in results.items()}
    RESULTS_MD.write_text(render(info, status, summary, elapsed))
    (OUT / "results-static.json").write_text(json.dumps(
        {"info": info, "status": status, "summary": summary, "runs": results}, indent=1, default=str))
    print()
    print(ratios_text(summary))
    R.log(f"==> wrote {R.shown(RESULTS_MD)} and bench/out/results-static.json ({elapsed / 60:.1f} min)")
    return 1 if any(v.startswith(("failed", "WRONG")) for v in status.values()) else 0


# --------------------------------------------------------------------------- report


def ratios_text(summary: dict) -> str:
    lines = ["Ratios of the median req/s (above 1: CovetPy's gateway is faster); CPU: CovetPy's CPU per "
             "request over the other's (below 1: CovetPy is cheaper)"]
    for name in FILES:
        for other, target in (("nginx", TARGET), ("starlette", None)):
            x, y = summary.get(f"{name}/covet"), summary.get(f"{name}/{other}")
            label = f"{name} file, CovetPy / {other}" + (f" (target: at least {target}x)" if target else "")
            if not x or not y or not y["rps_median"]:
                lines.append(f"- {label}: n/a (not measured)")
                continue
            r = x["rps_median"] / y["rps_median"]
            verdict = "" if target is None else (" — met" if r >= target else " — NOT met")
            cpu = x["cpu_us_per_req"] / y["cpu_us_per_req"] if y["cpu_us_per_req"] else float("nan")
            lines.append(f"- {label}: {r:.2f}x ({R.fmt_rps(x['rps_median'])} vs {R.fmt_rps(y['rps_median'])} req/s)"
                         f"{verdict}; CPU {cpu:.2f}x ({x['cpu_us_per_req']:.1f} vs {y['cpu_us_per_req']:.1f} µs)")
    return "\n".join(lines) + "\n"


def render(info: dict, status: dict, summary: dict, elapsed: float) -> str:
    v = info["versions"]
    env = " ".join(f"{k}={shlex.quote(val)}" for k, val in sorted(os.environ.items())
                   if k.startswith("BENCH_") and k != "BENCH_STATIC_RESULTS")
    L = ["# Static files: CovetPy's gateway, nginx, Starlette\n",
         f"Generated by `python3 bench/static.py` (part of `make bench`; alone `make bench-static`) on "
         f"{time.strftime('%Y-%m-%d %H:%M %Z')}; this file is rewritten by every run. Raw numbers: "
         "`bench/out/results-static.json`.\n",
         f"Command: `{env + ' ' if env else ''}python3 bench/static.py`\n"]
    if R.QUICK or ROUNDS < 3 or DURATION < 5:
        L.append(f"> **Short run** ({DURATION}s x {ROUNDS} round(s)): indicative, not a settled result.\n")
    L += ["## Machine\n",
          f"- CPUs: {info['nproc']} x {info['cpu_model']}; memory {info['memory']}",
          f"- kernel {info['kernel']}; {info['os']}; load average at start {' '.join(info['loadavg'])}",
          f"- CovetPy {info['covet']}",
          f"- {info['nginx']}; {info['wrk']}",
          f"- {R.shown(R.VENV)} Python {v.get('python', '?')}: uvicorn {v.get('uvicorn', '?')}, uvloop "
          f"{v.get('uvloop', '?')}, httptools {v.get('httptools', '?')}, starlette {v.get('starlette', '?')}",
          "", "## Method\n",
          f"- Files of {', '.join(FILES)} bytes (1 KiB, 64 KiB, 1 MiB) under bench/out/static/public, fetched as "
          f"/static/NAME.bin over HTTP/1.1 on 127.0.0.1 with `wrk -t1 -c{CONNS} --latency` (keep-alive). "
          "One process per server, nothing pinned; the page cache holds the files.",
          f"- {ROUNDS} interleaved round(s): each starts every server in turn (order rotated by one per round), "
          f"checks every file once (status 200, the exact bytes), then per file loads it {WARMUP}s unmeasured and "
          f"{DURATION}s measured, and stops the server. req/s: the median over the rounds, with min..max.",
          "- CPU µs/req: utime+stime of the server's process tree over the measured run, per request. wrk shares "
          "the machine's cores with the server, and with anything else running on it (see load).",
          "", "## Servers\n"]
    for s in SERVERS:
        L.append(f"- `{s.name}`: {s.label}" + (f" — {status[s.name]}" if s.name in status else ""))
    L += ["", "## Ratios\n", ratios_text(summary)]
    L.append("| file | server | req/s | min..max | MiB/s | latency p50 / p99 | CPU µs/req | errors | steal % | load |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name in FILES:
        for s in SERVERS:
            x = summary.get(f"{name}/{s.name}")
            if x is None:
                L.append(f"| {name} | {s.name} | {status.get(s.name, 'not run')} | | | | | | | |")
                continue
            L.append(f"| {name} | {s.name} | {R.fmt_rps(x['rps_median'])} | {R.fmt_rps(x['rps_min'])}.."
                     f"{R.fmt_rps(x['rps_max'])} | {x['mib_s']:,.0f} | {R.fmt_lat(x['p50_us'])} / {R.fmt_lat(x['p99_us'])}"
                     f" | {x['cpu_us_per_req']:.1f} | {x['errors']} | {x['steal_pct_max']:.1f} | "
                     f"{', '.join(f'{v:.1f}' for v in x['load1'])} |")
    L.append(f"\n- Elapsed: {elapsed / 60:.1f} min.\n")
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
