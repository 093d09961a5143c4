#!/usr/bin/env python3
"""gRPC (issue 26): CovetPy's gateway with one Python worker against grpcio's asyncio
server, one process, both serving the same servicer (grpc-go's interop TestService in
Python, integration/grpc/interop_service.py) on the same interpreter, under ghz.
`make bench-grpc`; standard library only:

    python3 bench/grpc/run.py                  # 3 rounds, every cell
    BENCH_QUICK=1 python3 bench/grpc/run.py    # smoke run: 1 round, 2,000 calls a run

Workloads (ghz -c CONCURRENCY -n CALLS over one HTTP/2 connection, h2c, after an
unmeasured warm-up of a tenth of the calls):

    unary   grpc.testing.TestService/UnaryCall, a 16-byte payload in, 16 bytes out
            (a greeter-sized call)
    stream  grpc.testing.TestService/StreamingOutputCall, one request, 10 answers of
            64 bytes each (server streaming; a call is the whole stream)

Servers:

    covet-1   bin/covet-gateway --h2c --workers 1 (netpoll, the default engine) and one
              worker, integration/grpc/covet_app.py (covet_app:app)
    grpcio    integration/grpc/serve_grpcio.py: grpc.aio.server(), one process

Both run on bench/run.py's BENCH_COVET_PYTHON (default .venv/bin/python). ghz takes the
service's schema from the descriptor set descdump writes (--protoset): bin/ghz and
bin/grpc-interop.pb, which `make bench-grpc` builds, or BENCH_GHZ and
BENCH_GRPC_DESCRIPTORS. Each round starts every server in turn (order rotated per
round), checks an answer of each workload once with grpcio, then measures them:
calls/s, p50 and p99 from ghz's JSON report, CPU per call of the server's whole
process tree (the gateway and its worker for CovetPy), peak RSS, steal. Written to
bench/grpc/RESULTS.md (BENCH_GRPC_RESULTS) and bench/out/results-grpc.json.
Environment: bench/run.py's BENCH_ROUNDS, BENCH_QUICK, BENCH_SERVER_CPUS,
BENCH_COVET_PYTHON; BENCH_GRPC_CALLS (per run, default 20000), BENCH_GRPC_CONCURRENCY
(default 50), BENCH_GRPC_SERVERS and BENCH_GRPC_WORKLOADS (comma lists of the names
above).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCH))
import run as R  # noqa: E402  (bench/run.py: servers, process trees, machine facts)

GRPC_DIR = R.ROOT / "integration" / "grpc"
RESULTS_MD = Path(os.environ.get("BENCH_GRPC_RESULTS", str(Path(__file__).resolve().parent / "RESULTS.md")))
GHZ = Path(os.environ.get("BENCH_GHZ") or R.ROOT / "bin" / "ghz")
DESCRIPTORS = Path(os.environ.get("BENCH_GRPC_DESCRIPTORS") or R.ROOT / "bin" / "grpc-interop.pb")
CALLS = int(R.env_num("BENCH_GRPC_CALLS", 2000 if R.QUICK else 20000))
CONCURRENCY = int(R.env_num("BENCH_GRPC_CONCURRENCY", 50))
TARGET = 3.0  # issue 26: CovetPy >= 3x grpcio's asyncio server on unary calls/s, p99 no worse
SERVICE = "grpc.testing.TestService"


@dataclass(frozen=True)
class Workload:
    name: str
    method: str
    data: dict  # the request, in ghz's (protobuf JSON) form
    answers: list[int]  # the payload sizes the call must answer with, in order
    describe: str


WORKLOADS = [
    Workload("unary", "UnaryCall", {"responseSize": 16, "payload": {"body": "AAAAAAAAAAAAAAAAAAAAAA=="}}, [16],
             "UnaryCall: a 16-byte payload in, a 16-byte payload out"),
    Workload("stream", "StreamingOutputCall", {"responseParameters": [{"size": 64}] * 10}, [64] * 10,
             "StreamingOutputCall: one request, 10 streamed answers of 64 bytes (a call is the whole stream)"),
]

ENV = {"COVET_GRPC_DESCRIPTORS": str(DESCRIPTORS), "COVET_LOG_LEVEL": "WARNING"}


def covet_argv(port: int) -> list[str]:
    worker = f"{R.REPO_PY} -m covet worker covet_app:app"
    return [str(R.GATEWAY), "--listen", f"{R.HOST}:{port}", "--app", "grpcinterop", "--workers", "1",
            "--worker-cmd", worker, "--worker-dir", str(GRPC_DIR), "--log-level", "warn", "--engine", "netpoll",
            "--h2c"]


def grpcio_argv(port: int) -> list[str]:
    return [str(R.REPO_PY), str(GRPC_DIR / "serve_grpcio.py"), str(port), "--host", R.HOST]


def need_tools() -> str | None:
    for path, how in ((GHZ, "make bin/ghz"), (DESCRIPTORS, "make bin/grpc-interop.pb")):
        if not path.exists():
            return f"{R.shown(path)} missing (run `{how}`)"
    return None


SERVERS = [
    R.Server("covet-1", "CovetPy, bin/covet-gateway --h2c --workers 1 (netpoll engine) + 1 Python worker, "
             "integration/grpc/covet_app.py", covet_argv, cwd=R.ROOT, env=ENV,
             needs=lambda: R.need_covet() or need_tools()),
    R.Server("grpcio", "grpcio's asyncio server (grpc.aio.server()), one process, integration/grpc/serve_grpcio.py",
             grpcio_argv, cwd=R.ROOT, env=ENV, needs=need_tools),
]

# Run by the servers' Python: one call of each workload with grpcio, checking the
# answer's payload sizes (argv: port, then "method:size,size,..." per workload).
CHECK = """
import sys
sys.path.insert(0, sys.argv[1])
import grpc
from interop_service import InteropStub, load
m = load()
with grpc.insecure_channel(f"127.0.0.1:{sys.argv[2]}", options=[("grpc.enable_http_proxy", 0)]) as ch:
    stub = InteropStub(ch, m)
    for spec in sys.argv[3:]:
        method, sizes = spec.split(":")
        want = [int(s) for s in sizes.split(",")]
        if method == "UnaryCall":
            got = [len(stub.UnaryCall(m.SimpleRequest(response_size=want[0], payload=m.Payload(body=bytes(16))),
                                      timeout=10).payload.body)]
        else:
            req = m.StreamingOutputCallRequest(response_parameters=[m.ResponseParameters(size=s) for s in want])
            got = [len(r.payload.body) for r in stub.StreamingOutputCall(req, timeout=10)]
        if got != want:
            sys.exit(f"{method}: answered payload sizes {got}, want {want}")
"""


def check(port: int, workloads: list[Workload]) -> str | None:
    """None when every workload's call answers as it should, else what went wrong."""
    specs = [f"{w.method}:{','.join(map(str, w.answers))}" for w in workloads]
    r = subprocess.run([str(R.REPO_PY), "-c", CHECK, str(GRPC_DIR), str(port), *specs], capture_output=True,
                       text=True, timeout=60, env={**os.environ, **ENV})
    return None if r.returncode == 0 else (r.stderr.strip().splitlines() or ["check failed"])[-1]


def ghz(port: int, w: Workload, calls: int) -> dict:
    """ghz's JSON report of ``calls`` calls of ``w`` at CONCURRENCY."""
    argv = [str(GHZ), "--insecure", "--protoset", str(DESCRIPTORS), "--call", f"{SERVICE}/{w.method}",
            "-d", json.dumps(w.data), "-c", str(CONCURRENCY), "-n", str(calls), "-O", "json",
            f"{R.HOST}:{port}"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if r.returncode != 0 or not r.stdout.strip():
        raise RuntimeError(f"ghz exited {r.returncode}: {(r.stderr or r.stdout).strip()[-300:]}")
    return json.loads(r.stdout)


def probe(port: int) -> int:
    """200 once an EmptyCall succeeds (run.wait_ready's probe)."""
    try:
        rep = ghz(port, Workload("probe", "EmptyCall", {}, [], ""), 1)
    except (RuntimeError, subprocess.TimeoutExpired):
        return 0
    return 200 if rep.get("statusCodeDistribution") == {"OK": 1} else 0


def measure(run: R.Running, w: Workload) -> dict:
    ghz(run.port, w, max(CALLS // 10, CONCURRENCY))  # warm-up, unmeasured
    before = R.tree(run.proc.pid)
    sampler = R.RssSampler(run.proc.pid)
    steal0, total0 = R.cpu_times()
    sampler.start()
    try:
        rep = ghz(run.port, w, CALLS)
    finally:
        peak = sampler.finish()
    steal1, total1 = R.cpu_times()
    after = R.tree(run.proc.pid)
    run.seen.update(after)
    ticks = sum(t for _, _, t in after.values()) - sum(t for p, (_, _, t) in before.items() if p in after)
    latency = {d["percentage"]: d["latency"] / 1e3 for d in rep.get("latencyDistribution") or []}
    codes = rep.get("statusCodeDistribution") or {}
    ok = codes.get("OK", 0)
    return {
        "rps": rep["rps"], "calls": rep["count"], "ok": ok, "codes": codes,
        "errors": rep.get("errorDistribution") or {},
        "p50_us": latency.get(50, float("nan")), "p99_us": latency.get(99, float("nan")),
        "cpu_us_per_call": ticks / R.CLK_TCK / ok * 1e6 if ok else float("nan"),
        "peak_rss_mib": peak / 1024,
        "steal_pct": 100 * (steal1 - steal0) / (total1 - total0) if total1 > total0 else 0.0,
    }


def visit(run: R.Running, s: R.Server, workloads: list[Workload], results: dict[str, list[dict]]) -> str | None:
    why = run.wait_ready(probe=probe)
    if why:
        return f"failed: {why}"
    wrong = check(run.port, workloads)
    if wrong:
        return f"WRONG: {wrong}"
    for w in workloads:
        res = measure(run, w)
        if not run.alive():
            return f"failed: exited (status {run.proc.returncode}) under {w.name}; see bench/out/grpc-{s.name}.log"
        results.setdefault(f"{s.name}|{w.name}", []).append(res)
        failed = f"  not OK {res['codes']} {res['errors']}" if res["ok"] != res["calls"] else ""
        R.log(f"    {s.name:<8} {w.name:<7} {R.fmt_rps(res['rps']):>8} calls/s  p50 {R.fmt_lat(res['p50_us']):>8}  "
              f"p99 {R.fmt_lat(res['p99_us']):>8}  cpu {res['cpu_us_per_call']:7.1f} µs/call  "
              f"steal {res['steal_pct']:.1f}%{failed}")
        if failed:
            return f"WRONG under load: {w.name}: {res['codes']} {res['errors']}"
    return None


def summarize(runs: list[dict]) -> dict:
    rps = [r["rps"] for r in runs]
    return {
        "rps_median": statistics.median(rps), "rps_min": min(rps), "rps_max": max(rps), "n": len(runs),
        "p50_us": statistics.median(r["p50_us"] for r in runs),
        "p99_us": statistics.median(r["p99_us"] for r in runs),
        "cpu_us_per_call": statistics.median(r["cpu_us_per_call"] for r in runs),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "steal_pct_max": max(r["steal_pct"] for r in runs),
    }


def ghz_version() -> str:
    """ghz's module version, from its build information (its --version says "dev" when
    built by go install)."""
    for line in R.cmd_out(["go", "version", "-m", str(GHZ)]).splitlines():
        fields = line.split()
        if fields[:2] == ["mod", "github.com/bojand/ghz"]:
            return fields[2]
    return "unknown version"


def main() -> int:
    t0 = time.time()
    R.OUT.mkdir(exist_ok=True)
    info = R.machine_info({})
    info["ghz"] = ghz_version()
    info["grpcio"] = R.cmd_out([str(R.REPO_PY), "-c", "import grpc, google.protobuf as p; "
                                "print(f'grpcio {grpc.__version__}, protobuf {p.__version__}')"])
    servers, workloads = R.chosen(SERVERS, "BENCH_GRPC_SERVERS"), R.chosen(WORKLOADS, "BENCH_GRPC_WORKLOADS")
    R.log(f"==> {len(servers)} servers x {len(workloads)} workloads, {R.ROUNDS} round(s) of ghz -c {CONCURRENCY} "
          f"-n {CALLS}; logs in bench/out/grpc-*.log")
    results: dict[str, list[dict]] = {}
    status = R.interleaved_rounds(servers, "grpc", lambda run, s: visit(run, s, workloads, results))
    elapsed = time.time() - t0
    summary = {k: summarize(v) for k, v in results.items()}
    RESULTS_MD.write_text(render(info, servers, workloads, status, summary, elapsed))
    (R.OUT / "results-grpc.json").write_text(json.dumps(
        {"info": info, "status": status, "summary": summary, "runs": results}, indent=1, default=str))
    print()
    print(table_text(servers, workloads, status, summary))
    print(ratios_text(workloads, summary))
    R.log(f"==> wrote {R.shown(RESULTS_MD)} and bench/out/results-grpc.json ({elapsed / 60:.1f} min)")
    return 1 if any(v.startswith(("failed", "WRONG")) for v in status.values()) else 0


# --------------------------------------------------------------------------- report


def ratios_text(workloads: list[Workload], summary: dict) -> str:
    lines = [f"CovetPy / grpcio, median calls/s (issue 26's target: at least {TARGET:g}x on unary calls, "
             "p99 no worse); p99: CovetPy's over grpcio's (at most 1: no worse); CPU: CovetPy's CPU per call "
             "(gateway and worker) over grpcio's"]
    for w in workloads:
        x, y = summary.get(f"covet-1|{w.name}"), summary.get(f"grpcio|{w.name}")
        if not x or not y or not y["rps_median"]:
            lines.append(f"- {w.name}: n/a (not measured)")
            continue
        r, p99 = x["rps_median"] / y["rps_median"], x["p99_us"] / y["p99_us"]
        cpu = x["cpu_us_per_call"] / y["cpu_us_per_call"]
        verdict = ""
        if w.name == "unary":
            met = r >= TARGET and p99 <= 1
            verdict = f" — target **{'met' if met else 'not met'}**"
        lines.append(f"- {w.name}: {r:.2f}x ({R.fmt_rps(x['rps_median'])} vs {R.fmt_rps(y['rps_median'])} calls/s); "
                     f"p99 {p99:.2f}x ({R.fmt_lat(x['p99_us'])} vs {R.fmt_lat(y['p99_us'])}); CPU {cpu:.2f}x "
                     f"({x['cpu_us_per_call']:.1f} vs {y['cpu_us_per_call']:.1f} µs){verdict}")
    return "\n".join(lines) + "\n"


def table_text(servers: list, workloads: list[Workload], status: dict, summary: dict) -> str:
    L = ["| workload | server | calls/s | min..max | p50 | p99 | CPU µs/call | peak RSS MiB | steal % |",
         "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for w in workloads:
        for s in servers:
            x = summary.get(f"{s.name}|{w.name}")
            if x is None:
                L.append(f"| {w.name} | {s.name} | {status.get(s.name, 'not run')} | | | | | | |")
                continue
            L.append(f"| {w.name} | {s.name} | {R.fmt_rps(x['rps_median'])} | {R.fmt_rps(x['rps_min'])}.."
                     f"{R.fmt_rps(x['rps_max'])} | {R.fmt_lat(x['p50_us'])} | {R.fmt_lat(x['p99_us'])} | "
                     f"{x['cpu_us_per_call']:.1f} | {x['peak_rss_mib']:.1f} | {x['steal_pct_max']:.1f} |")
    return "\n".join(L) + "\n"


def render(info: dict, servers: list, workloads: list[Workload], status: dict, summary: dict, elapsed: float) -> str:
    L = ["# gRPC: CovetPy against grpcio's asyncio server\n",
         f"Generated by `python3 bench/grpc/run.py` (`make bench-grpc`) on {time.strftime('%Y-%m-%d %H:%M %Z')}; "
         "this file is rewritten by every run. Raw numbers: `bench/out/results-grpc.json`.\n",
         R.command_line("bench/grpc/run.py", "BENCH_GRPC_RESULTS")]
    if R.QUICK or R.ROUNDS < 3:
        L.append(f"> **Short run** ({CALLS} calls x {R.ROUNDS} round(s)): indicative, not a settled result.\n")
    L += ["## Machine\n", *R.machine_lines(info),
          f"- CovetPy {info['covet']}",
          f"- {info['grpcio']} (both servers and the answer check, on {R.shown(R.REPO_PY)})",
          f"- ghz {info['ghz']} ({R.shown(GHZ)})",
          "", "## Method\n",
          f"- `ghz --insecure --protoset bin/grpc-interop.pb -c {CONCURRENCY} -n {CALLS}` (one HTTP/2 connection, "
          "h2c, on 127.0.0.1) per workload and run, after an unmeasured warm-up of a tenth of the calls; the "
          "schema from the descriptor set integration/grpc/descdump writes (grpc-go v1.85.0's interop files). "
          f"Nothing pinned (servers {R.SERVER_CPUS or 'unpinned'}); ghz's own CPU is not counted.",
          f"- {R.ROUNDS} interleaved round(s): each starts every server in turn (order rotated per round), checks "
          "one call of each workload with grpcio (the payload sizes answered), then measures each workload. "
          "calls/s: the median over the rounds, with min..max; p50/p99: the median of the rounds' ghz "
          "percentiles. A run with a call not OK fails the server.",
          "- The same servicer on both (integration/grpc/interop_service.py, `async def` methods), the same "
          "interpreter; CovetPy: one gateway (its own Go processors at their default) and ONE worker; grpcio: "
          "one process, `grpc.aio.server()` with its defaults.",
          "- CPU µs/call: utime+stime of the server's whole process tree (for CovetPy the gateway *and* its "
          "worker) over the measured run, per OK call. Steal: the share of the machine's CPU time the "
          "hypervisor took during the run (/proc/stat).",
          "", "## Workloads\n"]
    L += [f"- `{w.name}`: {w.describe}" for w in workloads]
    L += ["", "## Servers\n"]
    L += R.server_lines(servers, status)
    L += ["", "## Ratios\n", ratios_text(workloads, summary), "## Results\n",
          table_text(servers, workloads, status, summary), f"- Elapsed: {elapsed / 60:.1f} min.\n"]
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
