#!/usr/bin/env python3
"""Response compression: the gateway's gzip and zstd (gateway/compress) against nginx's
gzip, on the same bodies, HTTP/1.1 over loopback. Part of `make bench` (after
bench/upload.py), alone as `make bench-compress`; standard library only:

    python3 bench/compress.py                 # 3 rounds x 10 s, every cell
    BENCH_QUICK=1 python3 bench/compress.py   # smoke run: 2 s x 1 round

Bodies (bench/apps/compress_bodies.py, deterministic): `json64k`, a 64 KiB JSON API
answer, and `html1m`, a 1 MiB HTML page.

Servers, one process each (one Go processor, one nginx worker):

    covet   bin/covet-gateway --workers 1 --procs 1 (netpoll engine) with
            COVET_COMPRESSION=gzip,zstd and COVET_COMPRESSION_GZIP_LEVEL=LEVEL, in front of
            one Python worker (bench/apps/compress_app.py) answering each path with its
            fixed body (Content-Length known: the gateway compresses a body up to 256 KiB
            whole, a larger one as it comes)
    nginx   worker_processes 1, the same bodies as files, `gzip on; gzip_comp_level
            LEVEL; gzip_types application/json text/html; gzip_min_length 1024`
            (compressed on every request: no gzip_static)

LEVEL is BENCH_GZIP_LEVEL (default 5, the gateway's default gzip level). Cells: each
body as `gzip` and `identity` from both servers, and as `zstd` from the gateway (nginx
has no zstd without a third-party module). `wrk -t1 -cBENCH_COMPRESS_CONNECTIONS`
(default 16) sends `Accept-Encoding: gzip` or `zstd` (none for identity).

Each round starts every server in turn (order rotated per round), checks each cell once
(status 200, Content-Encoding, Vary, and that the body decodes to the exact bytes: gzip
with Python's gzip module, zstd with the `zstd` command or the `zstandard` module), then
per cell loads it BENCH_WARMUP s unmeasured and BENCH_DURATION s measured, reading the
CPU time of the server's process tree around the measured run.

Printed and written to bench/RESULTS-compress.md (BENCH_COMPRESS_RESULTS) and
bench/out/results-compress.json: req/s, wire MiB/s (compressed bytes, as wrk counts
them), payload MiB/s (req/s x the identity body: the rate of content delivered),
compressed size, latency and CPU per request.
Environment: BENCH_DURATION, BENCH_ROUNDS, BENCH_WARMUP, BENCH_QUICK, BENCH_NO_INSTALL
(bench/run.py's), BENCH_GZIP_LEVEL, BENCH_COMPRESS_CONNECTIONS.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
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
sys.path.insert(0, str(Path(__file__).resolve().parent / "apps"))
import run as R  # noqa: E402  (bench/run.py: process trees, wrk, machine facts)
from compress_bodies import BODIES  # noqa: E402

BENCH, OUT, HOST = R.BENCH, R.OUT, R.HOST
DIR = OUT / "compress" / "public"
RESULTS_MD = Path(os.environ.get("BENCH_COMPRESS_RESULTS", str(BENCH / "RESULTS-compress.md")))
DURATION, ROUNDS, WARMUP = R.DURATION, R.ROUNDS, R.WARMUP
CONNS = int(R.env_num("BENCH_COMPRESS_CONNECTIONS", 16))
LEVEL = int(R.env_num("BENCH_GZIP_LEVEL", 5))


# --------------------------------------------------------------------------- servers


def covet(port: int) -> list[str]:
    worker_cmd = f"{shlex.quote(str(R.REPO_PY))} -m covet worker compress_app:app"
    return [str(R.GATEWAY), "--listen", f"{HOST}:{port}", "--app", "bench", "--workers", "1", "--procs", "1",
            "--worker-cmd", worker_cmd, "--worker-dir", str(R.APPS), "--log-level", "warn", "--engine", "netpoll"]


def nginx(port: int) -> list[str]:
    types = "\n".join(f"        location = /{name} {{ default_type {ctype.split(';')[0]}; "
                      f"{'charset utf-8; ' if 'charset' in ctype else ''}alias {DIR}/{name}; }}"
                      for name, (_, ctype) in BODIES.items())
    return R.nginx_command("nginx-compress-", "1", f"""\
    sendfile on;
    tcp_nopush on;
    gzip on;
    gzip_comp_level {LEVEL};
    gzip_types application/json text/html;
    gzip_min_length 1024;
    gzip_vary on;
    types {{ }}
    server {{
        listen {HOST}:{port};
        location = /plaintext {{ return 200 "Hello, World!"; }}
{types}
    }}
""")


@dataclass
class Srv:
    name: str
    label: str
    argv: Callable[[int], list[str]]
    needs: Callable[[], str | None]
    env: dict[str, str]
    codings: tuple[str, ...]


SERVERS = [
    Srv("covet", f"bin/covet-gateway --workers 1 --procs 1 (netpoll), compression gzip,zstd, gzip level {LEVEL}, "
        "1 Python worker", covet, R.need_covet,
        {"COVET_COMPRESSION": "gzip,zstd", "COVET_COMPRESSION_GZIP_LEVEL": str(LEVEL)}, ("gzip", "zstd", "identity")),
    Srv("nginx", f"nginx, 1 worker process, gzip on, gzip_comp_level {LEVEL}", nginx, R.need_nginx, {},
        ("gzip", "identity")),
]


# --------------------------------------------------------------------------- setup


def make_files() -> None:
    DIR.mkdir(parents=True, exist_ok=True)
    for name, (body, _) in BODIES.items():
        p = DIR / name
        if not p.exists() or p.read_bytes() != body:
            p.write_bytes(body)


# --------------------------------------------------------------------------- one cell


def get(port: int, path: str, coding: str) -> tuple[int, dict[str, str], bytes]:
    c = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        c.request("GET", path, headers={"Accept-Encoding": coding} if coding != "identity" else {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def unzstd(data: bytes) -> bytes:
    if shutil.which("zstd"):
        return subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True).stdout
    r = subprocess.run([str(R.REPO_PY), "-c", "import sys, zstandard; sys.stdout.buffer.write("
                        "zstandard.ZstdDecompressor().decompressobj().decompress(sys.stdin.buffer.read()))"],
                       input=data, capture_output=True, check=True)
    return r.stdout


def decoded(coding: str, data: bytes) -> bytes:
    if coding == "gzip":
        return gzip.decompress(data)
    if coding == "zstd":
        return unzstd(data)
    return data


def validate(port: int, name: str, coding: str) -> tuple[str | None, int]:
    """(what is wrong or None, the size of the body on the wire)."""
    body = BODIES[name][0]
    try:
        status, head, data = get(port, f"/{name}", coding)
    except OSError as e:
        return f"/{name} ({coding}): {e}", 0
    ce = head.get("content-encoding", "")
    if status != 200 or ce != ("" if coding == "identity" else coding):
        return f"/{name} ({coding}): status {status}, content-encoding {ce!r}", len(data)
    if coding != "identity" and "accept-encoding" not in head.get("vary", "").lower():
        return f"/{name} ({coding}): no Vary: accept-encoding ({head.get('vary')!r})", len(data)
    try:
        plain = decoded(coding, data)
    except (OSError, EOFError, subprocess.CalledProcessError) as e:
        return f"/{name} ({coding}): does not decode: {e}", len(data)
    if plain != body:
        return f"/{name} ({coding}): decodes to {len(plain)} bytes, not the body's {len(body)}", len(data)
    return None, len(data)


def lua(coding: str) -> Path:
    path = OUT / f"wrk-compress-{coding}.lua"
    head = "" if coding == "identity" else f'wrk.headers["Accept-Encoding"] = "{coding}"\n'
    path.write_text(head + R.LUA_DONE)
    return path


def wrk(port: int, name: str, coding: str, seconds: int) -> dict:
    argv = ["wrk", "-t1", f"-c{CONNS}", f"-d{seconds}s", "--latency", "--timeout", "10s",
            "-s", str(lua(coding)), f"http://{HOST}:{port}/{name}"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    for line in r.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            x = json.loads(line[len("BENCHJSON "):])
            errs = sum(x[k] for k in ("connect", "read", "write", "status", "timeout"))
            secs = x["duration_us"] / 1e6
            rps = x["requests"] / secs if secs else 0.0
            return {"requests": x["requests"], "rps": rps, "errors": errs, "p50_us": x["p50_us"], "p99_us": x["p99_us"],
                    "wire_mib_s": x["bytes"] / secs / (1 << 20) if secs else 0.0,
                    "payload_mib_s": rps * len(BODIES[name][0]) / (1 << 20)}
    raise RuntimeError(f"wrk gave no result (exit {r.returncode}): {r.stdout[-300:]} {r.stderr[-300:]}")


def measure(run: R.Running, name: str, coding: str) -> dict:
    if WARMUP > 0:
        wrk(run.port, name, coding, WARMUP)
    before = R.tree(run.proc.pid)
    steal0, total0 = R.cpu_times()
    res = wrk(run.port, name, coding, DURATION)
    steal1, total1 = R.cpu_times()
    after = R.tree(run.proc.pid)
    run.seen.update(after)
    ticks = sum(t for _, _, t in after.values()) - sum(t for p, (_, _, t) in before.items() if p in after)
    res["cpu_us_per_req"] = ticks / R.CLK_TCK / res["requests"] * 1e6 if res["requests"] else float("nan")
    res["steal_pct"] = 100 * (steal1 - steal0) / (total1 - total0) if total1 > total0 else 0.0
    res["load1"] = float(Path("/proc/loadavg").read_text().split()[0])
    return res


# --------------------------------------------------------------------------- the run


def cells(s: Srv) -> list[tuple[str, str]]:
    return [(name, coding) for name in BODIES for coding in s.codings]


def summarize(runs: list[dict]) -> dict:
    med = lambda k: statistics.median(r[k] for r in runs)  # noqa: E731
    return {"rps_median": med("rps"), "rps_min": min(r["rps"] for r in runs), "rps_max": max(r["rps"] for r in runs),
            "wire_mib_s": med("wire_mib_s"), "payload_mib_s": med("payload_mib_s"), "p50_us": med("p50_us"),
            "p99_us": med("p99_us"), "cpu_us_per_req": med("cpu_us_per_req"), "errors": sum(r["errors"] for r in runs),
            "steal_pct_max": max(r["steal_pct"] for r in runs), "load1": [r["load1"] for r in runs],
            "size": runs[0].get("size", 0), "rounds": len(runs)}


def main() -> int:
    t0 = time.time()
    OUT.mkdir(exist_ok=True)
    R.ensure_apt_tools({"wrk": "wrk", "nginx": "nginx"})
    make_files()
    info = R.machine_info({})
    results: dict[str, list[dict]] = {}

    def visit(run: R.Running, s: Srv) -> str | None:
        why = run.wait_ready(probe=lambda port: get(port, "/plaintext", "identity")[0])
        if why:
            return f"failed: {why}"
        sizes = {}
        for name, coding in cells(s):
            bad, sizes[name, coding] = validate(run.port, name, coding)
            if bad:
                return f"WRONG: {bad}"
        for name, coding in cells(s):
            res = measure(run, name, coding)
            res["size"] = sizes[name, coding]
            results.setdefault(f"{name}/{coding}/{s.name}", []).append(res)
            R.log(f"    {name:>8} {coding:<8} {s.name:<6} {res['rps']:>9,.0f} req/s  wire {res['wire_mib_s']:>7,.1f} "
                  f"MiB/s  payload {res['payload_mib_s']:>8,.1f} MiB/s  {res['cpu_us_per_req']:8.1f} µs CPU/req  "
                  f"errors {res['errors']}  steal {res['steal_pct']:.1f}%")
        return None

    status = R.interleaved_rounds(SERVERS, "compress", visit)
    elapsed = time.time() - t0
    summary = {n: summarize(r) for n, r in results.items()}
    RESULTS_MD.write_text(render(info, status, summary, elapsed))
    (OUT / "results-compress.json").write_text(json.dumps(
        {"info": info, "status": status, "summary": summary, "runs": results}, indent=1, default=str))
    print()
    print(table_text(summary, status))
    print(ratios_text(summary))
    R.log(f"==> wrote {R.shown(RESULTS_MD)} and bench/out/results-compress.json ({elapsed / 60:.1f} min)")
    return 1 if any(v.startswith(("failed", "WRONG")) for v in status.values()) else 0


# --------------------------------------------------------------------------- report


def ratios_text(summary: dict) -> str:
    lines = ["Ratios of the median req/s (above 1: CovetPy's gateway is faster); CPU: CovetPy's CPU per request "
             "(gateway and worker) over nginx's"]
    for name in BODIES:
        for coding in ("gzip", "zstd", "identity"):
            x, y = summary.get(f"{name}/{coding}/covet"), summary.get(f"{name}/{'identity' if coding == 'identity' else 'gzip'}/nginx")
            label = f"{name}, CovetPy {coding} / nginx {'identity' if coding == 'identity' else 'gzip'}"
            if not x or not y or not y["rps_median"]:
                lines.append(f"- {label}: n/a (not measured)")
                continue
            r = x["rps_median"] / y["rps_median"]
            cpu = x["cpu_us_per_req"] / y["cpu_us_per_req"] if y["cpu_us_per_req"] else float("nan")
            lines.append(f"- {label}: {r:.2f}x ({R.fmt_rps(x['rps_median'])} vs {R.fmt_rps(y['rps_median'])} req/s); "
                         f"CPU {cpu:.2f}x ({x['cpu_us_per_req']:.1f} vs {y['cpu_us_per_req']:.1f} µs)")
    return "\n".join(lines) + "\n"


def table_text(summary: dict, status: dict) -> str:
    L = ["| body | encoding | server | size | req/s | min..max | wire MiB/s | payload MiB/s | latency p50 / p99 | "
         "CPU µs/req | errors | steal % | load |",
         "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, (body, _) in BODIES.items():
        for coding in ("gzip", "zstd", "identity"):
            for s in SERVERS:
                if coding not in s.codings:
                    continue
                x = summary.get(f"{name}/{coding}/{s.name}")
                if x is None:
                    L.append(f"| {name} | {coding} | {s.name} | | {status.get(s.name, 'not run')} | | | | | | | | |")
                    continue
                L.append(f"| {name} | {coding} | {s.name} | {x['size']:,} ({x['size'] / len(body):.1%}) | "
                         f"{R.fmt_rps(x['rps_median'])} | {R.fmt_rps(x['rps_min'])}..{R.fmt_rps(x['rps_max'])} | "
                         f"{x['wire_mib_s']:,.1f} | {x['payload_mib_s']:,.1f} | {R.fmt_lat(x['p50_us'])} / "
                         f"{R.fmt_lat(x['p99_us'])} | {x['cpu_us_per_req']:,.1f} | {x['errors']} | {x['steal_pct_max']:.1f} | "
                         f"{', '.join(f'{v:.1f}' for v in x['load1'])} |")
    return "\n".join(L) + "\n"


def render(info: dict, status: dict, summary: dict, elapsed: float) -> str:
    env = " ".join(f"{k}={shlex.quote(val)}" for k, val in sorted(os.environ.items())
                   if k.startswith("BENCH_") and k != "BENCH_COMPRESS_RESULTS")
    L = ["# Response compression: CovetPy's gateway against nginx's gzip\n",
         f"Generated by `python3 bench/compress.py` (part of `make bench`; alone `make bench-compress`) on "
         f"{time.strftime('%Y-%m-%d %H:%M %Z')}; this file is rewritten by every run. Raw numbers: "
         "`bench/out/results-compress.json`.\n",
         f"Command: `{env + ' ' if env else ''}python3 bench/compress.py`\n"]
    if R.QUICK or ROUNDS < 3 or DURATION < 5:
        L.append(f"> **Short run** ({DURATION}s x {ROUNDS} round(s)): indicative, not a settled result.\n")
    L += ["## Machine\n",
          f"- CPUs: {info['nproc']} x {info['cpu_model']}; memory {info['memory']}",
          f"- kernel {info['kernel']}; {info['os']}; load average at start {' '.join(info['loadavg'])}",
          f"- CovetPy {info['covet']}",
          f"- {info['nginx']}; {info['wrk']}",
          "", "## Method\n",
          "- Bodies: " + ", ".join(f"`{n}` ({len(b):,} bytes, {t})" for n, (b, t) in BODIES.items()) +
          " (bench/apps/compress_bodies.py). The gateway gets them from a Python worker with a known length; "
          "nginx from files, compressing on every request.",
          f"- `wrk -t1 -c{CONNS} --latency` over HTTP/1.1 keep-alive on 127.0.0.1, with `Accept-Encoding: gzip` or "
          "`zstd` (none for identity). One process per server (the gateway with --procs 1 and its one worker; one "
          "nginx worker), nothing pinned.",
          f"- {ROUNDS} interleaved round(s): each starts every server in turn (order rotated per round), checks every "
          "cell once (status, Content-Encoding, Vary, the decoded bytes), then per cell loads it "
          f"{WARMUP}s unmeasured and {DURATION}s measured. req/s: the median over the rounds, with min..max.",
          "- wire MiB/s: the bytes wrk read (compressed); payload MiB/s: req/s x the identity body's size. "
          "CPU µs/req: utime+stime of the server's process tree (for CovetPy the gateway and its worker) over the "
          "measured run, per request; wrk shares the machine's cores. load: the 1-minute load average after each "
          "measured run: on a loaded machine req/s swing widely, CPU per request much less.",
          "", "## Servers\n"]
    for s in SERVERS:
        L.append(f"- `{s.name}`: {s.label}" + (f" — {status[s.name]}" if s.name in status else ""))
    L += ["", "## Ratios\n", ratios_text(summary), table_text(summary, status),
          f"- Elapsed: {elapsed / 60:.1f} min.\n"]
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
