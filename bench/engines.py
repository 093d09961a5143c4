#!/usr/bin/env python3
"""The gateway's IO engines side by side (issue 19): covet-1 with `--engine uring`
against `--engine netpoll`, interleaved, CPU split between the gateway and its worker.

    .venv/bin/python bench/engines.py                    # 5 rounds x 10 s, /plaintext and /json
    .venv/bin/python bench/engines.py --rounds 3 --duration 5
    .venv/bin/python bench/engines.py --syscalls         # system calls per request, per engine

Builds nothing: it runs bin/covet-gateway (`make build`) with one spawned worker
serving bench/apps/covet_app.py on the repo's .venv Python, exactly as bench/run.py's
covet-1 row does, plus `--engine ENGINE` and an admin listener (to read
covet_engine_info, so the table says which engine really served). wrk from PATH.

Load mode (the default): every round starts the gateway once per engine, the engines'
order alternating from round to round, and for each workload checks the answer once,
runs wrk unmeasured for --warmup seconds, then `wrk -t1 -c64 -dDURATION` measured.
Around the measured run it reads utime+stime from /proc of the gateway process itself
(all its threads, not its workers) and of each worker, and divides each by the
requests wrk completed. Reported per engine and workload: median req/s (min..max),
median gateway CPU µs per request, median worker CPU µs per request, median p50/p99;
then the ratios of the first engine to the second, from the medians and round by
round (each round's pair ran back to back).

--syscalls: per engine and workload, starts the gateway, warms up, then
(1) `perf stat -e raw_syscalls:sys_enter,context-switches -p GATEWAY` around a
`--syscall-seconds` wrk run, when perf works here: every system call entered by the
gateway's threads, and every switch of one of them off its CPU, at full speed; (2) `strace -c -f -p GATEWAY` around another such run: the count per call.
strace slows the gateway a lot, so only counts per request mean anything: divided by the
requests wrk completed while it was attached (both tracers attach before wrk starts and
detach after it ends, with the gateway idle in between).

Markdown on stdout (for bench/RESULTS.md and docs/performance.md); progress on stderr.
Run nothing else meanwhile: on a 2-core machine wrk, the gateway and the worker share
the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
import run as harness  # noqa: E402  (bench/run.py: workloads, wrk's Lua, /proc readers)

HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def ticks(pid: int) -> int | None:
    st = harness.read_stat(pid)
    return st[2] if st else None


class Gateway:
    """bin/covet-gateway with one worker (bench/run.py's covet-N) and --engine ENGINE;
    ENGINE "default" leaves the flag out."""

    def __init__(self, gateway: Path, python: Path, engine: str, workers: int, extra: list[str]):
        engine = engine.split("#")[0]  # "default#2": the second arm of an A/A run
        self.engine = engine
        self.port, self.admin_port = free_port(), free_port()
        worker_cmd = f"{shlex.quote(str(python))} -m covet worker covet_app:app"
        argv = [str(gateway), "--listen", f"{HOST}:{self.port}", "--admin-listen", f"{HOST}:{self.admin_port}",
                "--app", "bench", "--workers", str(workers), "--worker-cmd", worker_cmd,
                "--worker-dir", str(harness.APPS), "--log-level", "warn"]
        if engine != "default":
            argv += ["--engine", engine]
        argv += extra
        self.argv = argv
        self.log = tempfile.TemporaryFile()
        env = {**os.environ, "COVET_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
        env.pop("VIRTUAL_ENV", None)
        self.proc = subprocess.Popen(argv, cwd=harness.APPS, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace").strip()

    def wait_ready(self, timeout: float = 60) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"exited with status {self.proc.returncode}: {self.output()[-600:]}"
            try:
                if harness.http("GET", self.port, "/plaintext", timeout=2)[0] == 200:
                    return None
            except OSError:
                pass
            time.sleep(0.2)
        return f"not ready after {timeout:.0f} s"

    def workers(self) -> list[int]:
        return sorted(p for p in harness.tree(self.proc.pid) if p != self.proc.pid)

    def engine_reported(self) -> str:
        try:
            text = urllib.request.urlopen(f"http://{HOST}:{self.admin_port}/metrics", timeout=5).read().decode()
        except OSError as e:
            return f"unknown: {e}"
        for m in re.finditer(r'^covet_engine_info\{engine="([^"]+)"\} (\S+)$', text, re.M):
            if float(m.group(2)) == 1:
                return m.group(1)
        return "nothing (no covet_engine_info: a gateway without engines)"

    def stop(self) -> None:
        pgids = {pgid for _, pgid, _ in harness.tree(self.proc.pid).values()} | {self.proc.pid}
        for pg in pgids:
            try:
                os.killpg(pg, signal.SIGTERM)
            except OSError:
                pass
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


def wrk(port: int, w: harness.Workload, seconds: float, conns: int) -> dict:
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{seconds:g}s", "--latency", "--timeout", "5s",
            "-s", str(harness.lua_script(w)), f"http://{HOST}:{port}{w.path}"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    for line in r.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            res = json.loads(line[len("BENCHJSON "):])
            res["rps"] = res["requests"] / (res["duration_us"] / 1e6) if res["duration_us"] else 0.0
            errs = sum(res[k] for k in ("connect", "read", "write", "status", "timeout"))
            res["errors"] = errs
            return res
    raise RuntimeError(f"wrk gave no result (exit {r.returncode}): {r.stdout[-300:]} {r.stderr[-300:]}")


def measure(gw: Gateway, w: harness.Workload, a) -> dict:
    if a.warmup > 0:
        wrk(gw.port, w, a.warmup, a.conns)
    workers = gw.workers()
    g0, w0 = ticks(gw.proc.pid), [ticks(p) for p in workers]
    s0 = harness.cpu_times()
    res = wrk(gw.port, w, a.duration, a.conns)
    s1 = harness.cpu_times()
    g1, w1 = ticks(gw.proc.pid), [ticks(p) for p in workers]
    if g0 is None or g1 is None:
        raise RuntimeError(f"the gateway exited during the run: {gw.output()[-400:]}")
    n = res["requests"] or float("nan")
    res["gw_us"] = (g1 - g0) / CLK_TCK / n * 1e6
    res["worker_us"] = sum(b - a_ for a_, b in zip(w0, w1) if a_ is not None and b is not None) / CLK_TCK / n * 1e6
    res["steal_pct"] = 100 * (s1[0] - s0[0]) / (s1[1] - s0[1]) if s1[1] > s0[1] else 0.0
    return res


def start(a, engine: str) -> Gateway | str:
    gw = Gateway(a.gateway, a.python, engine, a.workers, shlex.split(a.gateway_flags))
    why = gw.wait_ready()
    if why:
        gw.stop()
        return why
    return gw


def fmt(v: float) -> str:
    return f"{v:,.0f}"


def load_mode(a, workloads: list[harness.Workload]) -> int:
    runs: dict[tuple[str, str], list[dict]] = {}
    served_by: dict[str, set[str]] = {e: set() for e in a.engines}
    failed: dict[str, str] = {}
    t0 = time.time()
    for rnd in range(a.rounds):
        order = a.engines if rnd % 2 == 0 else list(reversed(a.engines))
        for engine in order:
            if engine in failed:
                continue
            gw = start(a, engine)
            if isinstance(gw, str):
                failed[engine] = gw
                log(f"round {rnd + 1}: {engine}: did not start: {gw}")
                continue
            try:
                served_by[engine].add(gw.engine_reported())
                for w in workloads:
                    wrong = harness.validate(gw, w)
                    if wrong:
                        failed[engine] = f"{w.name}: {wrong}"
                        break
                    try:
                        res = measure(gw, w, a)
                    except (RuntimeError, subprocess.TimeoutExpired) as why:
                        failed[engine] = f"{w.name}, round {rnd + 1}: {why}"
                        log(f"round {rnd + 1}: {engine} {w.name}: {why}")
                        break
                    res["round"] = rnd
                    runs.setdefault((engine, w.name), []).append(res)
                    log(f"round {rnd + 1}/{a.rounds} {engine:8} {w.name:9} {fmt(res['rps']):>8} req/s  "
                        f"gateway {res['gw_us']:5.1f} µs/req  worker {res['worker_us']:5.1f} µs/req  "
                        f"p99 {harness.fmt_lat(res['p99_us'])}  steal {res['steal_pct']:.1f}%"
                        + (f"  errors {res['errors']}" if res["errors"] else ""))
            finally:
                gw.stop()
    took = time.time() - t0

    out = []
    out.append(f"### Engines: covet-1, {', '.join(a.engines)}\n")
    out.append(f"`{shlex.join(['.venv/bin/python', 'bench/engines.py'] + sys.argv[1:])}` at "
               f"{git_rev()} on {os.cpu_count()} CPUs ({cpu_model()}), {time.strftime('%Y-%m-%d %H:%M %Z')}; "
               f"{a.rounds} interleaved rounds (order alternating), wrk -t1 -c{a.conns} -d{a.duration:g}s after "
               f"{a.warmup:g}s warm-up; {took / 60:.1f} min; load average at the end "
               f"{' '.join(Path('/proc/loadavg').read_text().split()[:3])}.\n")
    for e in a.engines:
        out.append(f"- `{e}`: " + (f"did not run: {failed[e]}" if e in failed and not any(k[0] == e for k in runs)
                                   else f"covet_engine_info: {', '.join(sorted(served_by[e])) or '?'}"
                                   + (f"; stopped: {failed[e]}" if e in failed else "")))
    out.append("")
    out.append("| workload | engine | req/s | min..max | gateway CPU µs/req | worker CPU µs/req | p50 | p99 | max steal % | errors |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for w in workloads:
        for e in a.engines:
            rs = runs.get((e, w.name))
            if not rs:
                out.append(f"| {w.name} | {e} | not run | | | | | | | |")
                continue
            rps = [r["rps"] for r in rs]
            out.append(f"| {w.name} | {e} | {fmt(statistics.median(rps))} | {fmt(min(rps))}..{fmt(max(rps))} "
                       f"| {statistics.median(r['gw_us'] for r in rs):.2f} "
                       f"| {statistics.median(r['worker_us'] for r in rs):.2f} "
                       f"| {harness.fmt_lat(statistics.median(r['p50_us'] for r in rs))} "
                       f"| {harness.fmt_lat(statistics.median(r['p99_us'] for r in rs))} "
                       f"| {max(r['steal_pct'] for r in rs):.1f} | {sum(r['errors'] for r in rs)} |")
    out.append("")
    if len(a.engines) == 2:
        x, y = a.engines
        out.append(f"Ratios {x}/{y} (req/s: target >= 1.2; gateway CPU per request: target <= 0.8):\n")
        for w in workloads:
            rx, ry = runs.get((x, w.name)), runs.get((y, w.name))
            if not rx or not ry:
                out.append(f"- {w.name}: n/a (not measured)")
                continue
            med = lambda rs, k: statistics.median(r[k] for r in rs)  # noqa: E731
            pairs = [(p, q) for p in rx for q in ry if p["round"] == q["round"]]
            pr = [p["rps"] / q["rps"] for p, q in pairs]
            pg = [p["gw_us"] / q["gw_us"] for p, q in pairs if q["gw_us"] > 0]
            out.append(f"- {w.name}: req/s {med(rx, 'rps') / med(ry, 'rps'):.2f}x, gateway CPU/req "
                       f"{med(rx, 'gw_us') / med(ry, 'gw_us'):.2f}x, worker CPU/req "
                       f"{med(rx, 'worker_us') / med(ry, 'worker_us'):.2f}x (medians); round by round req/s "
                       + " ".join(f"{v:.2f}" for v in pr) + f" ({x} faster in {sum(v > 1 for v in pr)} of {len(pr)}), "
                       "gateway CPU/req " + " ".join(f"{v:.2f}" for v in pg))
        out.append("")
    print("\n".join(out))
    return 1 if failed else 0


# --------------------------------------------------------------------------- system calls


STRACE_LINE = re.compile(r"^\s*([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\d+)\s+(?:(\d+)\s+)?(\S+)\s*$")


def parse_strace(text: str) -> dict[str, tuple[int, int]]:
    """strace -c's table: syscall -> (calls, errors); "total" included."""
    out = {}
    for line in text.splitlines():
        m = STRACE_LINE.match(line)
        if m:
            out[m.group(6)] = (int(m.group(4)), int(m.group(5) or 0))
    return out


def attach(argv: list[str]) -> subprocess.Popen:
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # attached to every thread before the load starts
    return p


def detach(p: subprocess.Popen) -> str:
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    try:
        _, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    return err


def perf_works() -> str | None:
    if not shutil.which("perf"):
        return "perf not installed (apt-get install linux-perf)"
    r = subprocess.run(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "--", "true"],
                       capture_output=True, text=True)
    if r.returncode != 0 or "raw_syscalls" not in r.stderr or "<not" in r.stderr:
        return f"perf cannot count raw_syscalls:sys_enter here: {r.stderr.strip()[-200:]}"
    return None


def syscalls_mode(a, workloads: list[harness.Workload]) -> int:
    if not shutil.which("strace"):
        sys.exit("strace is not installed: apt-get install -y strace")
    perf_why = perf_works()
    if perf_why:
        log(f"no perf count: {perf_why}")
    rows = []
    top: dict[tuple[str, str], list[tuple[str, int, int]]] = {}
    failed = {}
    for engine in a.engines:
        gw = start(a, engine)
        if isinstance(gw, str):
            failed[engine] = gw
            log(f"{engine}: did not start: {gw}")
            continue
        try:
            served = gw.engine_reported()
            pid = gw.proc.pid
            for w in workloads:
                wrong = harness.validate(gw, w)
                if wrong:
                    failed[engine] = f"{w.name}: {wrong}"
                    break
                if gw.proc.poll() is not None:
                    failed[engine] = f"the gateway exited: {gw.output()[-400:]}"
                    break
                wrk(gw.port, w, max(a.warmup, 1), a.conns)
                perf_per_req, perf_rps, cs_per_req = None, None, None
                if not perf_why:
                    p = attach(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter,context-switches",
                                "-p", str(pid)])
                    res = wrk(gw.port, w, a.syscall_seconds, a.conns)
                    err = detach(p)
                    m = re.search(r"^(\d+),,raw_syscalls:sys_enter", err, re.M)
                    if m and res["requests"]:
                        perf_per_req, perf_rps = int(m.group(1)) / res["requests"], res["rps"]
                    else:
                        log(f"perf gave no count: {err.strip()[-300:]}")
                    m = re.search(r"^(\d+),,context-switches", err, re.M)
                    if m and res["requests"]:
                        cs_per_req = int(m.group(1)) / res["requests"]
                p = attach(["strace", "-c", "-f", "-p", str(pid)])
                res = wrk(gw.port, w, a.syscall_seconds, a.conns)
                err = detach(p)
                table = parse_strace(err)
                if "total" not in table or not res["requests"]:
                    log(f"strace gave no table: {err.strip()[-500:]}")
                    continue
                n = res["requests"]
                calls = sorted(((k, c, e) for k, (c, e) in table.items() if k != "total"), key=lambda t: -t[1])
                top[(engine, w.name)] = [(k, c, e) for k, c, e in calls]
                rows.append((w.name, engine, served, perf_per_req, perf_rps, table["total"][0] / n,
                             table["total"][1] / n, n, cs_per_req))
                log(f"{engine:8} {w.name:9} strace: {table['total'][0] / n:.2f} calls/req over {n} requests"
                    + (f"; perf: {perf_per_req:.2f} calls/req at {fmt(perf_rps)} req/s" if perf_per_req else ""))
        finally:
            gw.stop()

    out = [f"### System calls per request: covet-1, {', '.join(a.engines)}\n",
           f"`{shlex.join(['.venv/bin/python', 'bench/engines.py'] + sys.argv[1:])}` at {git_rev()}, "
           f"{time.strftime('%Y-%m-%d %H:%M %Z')}: per engine and workload, wrk -t1 -c{a.conns} "
           f"-d{a.syscall_seconds:g}s under `perf stat -e raw_syscalls:sys_enter,context-switches -p GATEWAY` "
           f"(every system call the gateway's threads entered, and every time one of them was switched out, at "
           f"full speed), then another under `strace -c -f -p GATEWAY` (by "
           f"call; strace slows the gateway, so its req/s is not the engine's). The gateway process only, not "
           f"its worker.\n"]
    for e, why in failed.items():
        out.append(f"- `{e}`: did not run: {why}")
    if failed:
        out.append("")
    out.append("| workload | engine (covet_engine_info) | perf: calls/req | perf: context switches/req "
               "| perf run req/s | strace: calls/req | strace: failed calls/req | requests under strace |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for wname, engine, served, ppr, prps, spr, sfail, n, cs in rows:
        out.append(f"| {wname} | {engine} ({served.split(' (')[0]}) | {f'{ppr:.2f}' if ppr is not None else 'n/a'} "
                   f"| {f'{cs:.2f}' if cs is not None else 'n/a'} "
                   f"| {fmt(prps) if prps else 'n/a'} | {spr:.2f} | {sfail:.2f} | {n:,} |")
    out.append("")
    for (engine, wname), calls in top.items():
        n = next(r[7] for r in rows if r[0] == wname and r[1] == engine)
        out.append(f"{engine}, {wname}, top calls per request (strace -c -f): "
                   + ", ".join(f"{k} {c / n:.2f}" + (f" ({e / n:.2f} failed)" if e else "")
                               for k, c, e in calls[:a.top]))
        out.append("")
    print("\n".join(out))
    return 1 if failed else 0


def git_rev() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return r.stdout.strip() or "?"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", default="uring,netpoll",
                    help="comma list, each passed as --engine (\"default\": the flag left out); ratios are "
                         "the first over the second")
    ap.add_argument("--workloads", default="plaintext,json", help="bench/run.py workload names")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=10, help="seconds per measured run")
    ap.add_argument("--warmup", type=float, default=2, help="seconds of unmeasured load before each")
    ap.add_argument("--conns", type=int, default=64, help="wrk connections")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--gateway", type=Path, default=harness.GATEWAY)
    ap.add_argument("--python", type=Path, default=harness.REPO_PY, help="the worker's interpreter")
    ap.add_argument("--gateway-flags", default="", help="more gateway flags for every engine")
    ap.add_argument("--syscalls", action="store_true", help="count system calls per request instead")
    ap.add_argument("--syscall-seconds", type=float, default=5, help="wrk seconds under each tracer")
    ap.add_argument("--top", type=int, default=8, help="calls listed per engine in --syscalls")
    a = ap.parse_args()
    a.engines = [e.strip() for e in a.engines.split(",") if e.strip()]
    if len(set(a.engines)) < len(a.engines):  # an A/A run (e.g. default,default): label the arms apart
        a.engines = [f"{e}#{i + 1}" for i, e in enumerate(a.engines)]
    names = [w.strip() for w in a.workloads.split(",") if w.strip()]
    unknown = [n for n in names if n not in harness.WORKLOAD_BY_NAME]
    if unknown:
        sys.exit(f"unknown workloads {unknown}; known: {', '.join(harness.WORKLOAD_BY_NAME)}")
    workloads = [harness.WORKLOAD_BY_NAME[n] for n in names]
    for need, how in ((a.gateway, "make build"), (a.python, "make build")):
        if not need.exists():
            sys.exit(f"{need} missing ({how})")
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk")
    harness.OUT.mkdir(exist_ok=True)  # wrk's Lua scripts live there
    return syscalls_mode(a, workloads) if a.syscalls else load_mode(a, workloads)


if __name__ == "__main__":
    sys.exit(main())
