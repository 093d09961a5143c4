#!/usr/bin/env python3
"""The typed-handler SDK (issue 23) over HTTP: CovetPy against FastAPI on uvicorn and on
Granian, one worker each, on a typed-body POST and a query-bound GET. Part of `make
bench`, alone as `make bench-sdk` (which also runs bench/sdk_features.py); standard
library only:

    python3 bench/sdk.py                  # 3 rounds x 10 s, every cell
    BENCH_QUICK=1 python3 bench/sdk.py    # smoke run: 2 s x 1 round

Workloads (bench/apps/sdk_common.py holds the requests and the answers):

    items   POST /items with a 10-field JSON body (str, UUID, float, int, bool,
            list[str], an Enum, a datetime, a nested object, an optional str) decoded
            into a msgspec Struct (CovetPy) or a pydantic model (FastAPI); answers
            {"id", "name", "total"} built from it
    search  GET /search?q=lamp&limit=20&offset=0&sort=price&tags=a&tags=b bound to
            typed query parameters (str with max_length, int with ge/le, int with ge,
            an Enum, list[str]); answers them as bound

Servers, one worker each (bench/apps/sdk_covet.py, bench/apps/sdk_fastapi.py):

    covet-1          bin/covet-gateway --workers 1 (netpoll, the default engine; the
                     gateway's own Go processors at their default), the repo's .venv
                     python running the worker (bench/run.py's covet rows)
    fastapi-uvicorn  uvicorn --workers 1 --loop uvloop --http httptools
    fastapi-granian  granian --interface asgi --workers 1 --loop uvloop --http 1

Each round starts every server in turn (order rotated per round), checks each
workload's answer once (status 200, application/json, the exact JSON), then loads it
with wrk BENCH_WARMUP s unmeasured and BENCH_DURATION s measured (bench/run.py's
measure: CPU time of the server's process tree, peak RSS, steal). Printed and written
to bench/RESULTS-sdk.md (BENCH_SDK_RESULTS) and bench/out/results-sdk.json.
Environment: bench/run.py's BENCH_DURATION, BENCH_ROUNDS, BENCH_WARMUP, BENCH_QUICK,
BENCH_CONNECTIONS, BENCH_THREADS, BENCH_WRK_CPUS, BENCH_SERVER_CPUS, BENCH_NO_INSTALL,
BENCH_VENV, BENCH_COVET_PYTHON, BENCH_STEAL_MAX, BENCH_STEAL_RETRIES; and
BENCH_SDK_SERVERS, BENCH_SDK_WORKLOADS (comma lists of the names above).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "apps"))
import run as R  # noqa: E402  (bench/run.py: servers, wrk, measuring, machine facts)
from sdk_common import ITEM_ANSWER, ITEM_BODY, SEARCH_ANSWER, SEARCH_PATH  # noqa: E402

RESULTS_MD = Path(os.environ.get("BENCH_SDK_RESULTS", str(R.BENCH / "RESULTS-sdk.md")))
TARGET = 3.0  # issue 23: CovetPy >= 3x FastAPI on uvicorn

WORKLOADS = [
    R.Workload("items", "POST", "/items", "application/json", R._json_is(ITEM_ANSWER),
               f"POST /items, a 10-field JSON body ({len(ITEM_BODY)} bytes) into a Struct / pydantic model "
               '-> {"id","name","total"}', body=ITEM_BODY, content_type="application/json"),
    R.Workload("search", "GET", SEARCH_PATH, "application/json", R._json_is(SEARCH_ANSWER),
               f"GET {SEARCH_PATH} (str, int ge/le, int ge, Enum, list[str] query parameters) -> them as bound"),
]

SERVERS = [
    R.Server("covet-1", "CovetPy, bin/covet-gateway --workers 1 (netpoll engine) + 1 Python worker, "
             "bench/apps/sdk_covet.py", R.covet_argv(1, "netpoll", "sdk_covet:app"),
             env={"COVET_LOG_LEVEL": "WARNING"}, needs=R.need_covet),
    R.Server("fastapi-uvicorn", "FastAPI on uvicorn, 1 worker, uvloop + httptools, bench/apps/sdk_fastapi.py",
             R.uvicorn_argv("sdk_fastapi", 1), needs=R.need_module("fastapi")),
    R.Server("fastapi-granian", "FastAPI on Granian (ASGI), 1 worker, uvloop, HTTP/1, bench/apps/sdk_fastapi.py",
             R.granian_argv("asgi", "sdk_fastapi", 1), needs=R.need_module("fastapi")),
]


def main() -> int:
    t0 = time.time()
    R.OUT.mkdir(exist_ok=True)
    R.ensure_apt_tools({"wrk": "wrk"})
    notes = R.ensure_venv()
    info = R.machine_info(notes)
    servers, workloads = R.chosen(SERVERS, "BENCH_SDK_SERVERS"), R.chosen(WORKLOADS, "BENCH_SDK_WORKLOADS")
    R.log(f"==> {len(servers)} servers x {len(workloads)} workloads, {R.ROUNDS} round(s) of {R.DURATION}s "
          f"(+{R.WARMUP}s warm-up), wrk -t{R.THREADS} -c{R.CONNS}; logs in bench/out/sdk-*.log")
    results: dict[str, list[dict]] = {}

    def probe(port: int) -> int:
        return R.http("GET", port, SEARCH_PATH, timeout=2)[0]

    status = R.interleaved_rounds(
        servers, "sdk", lambda run, s: R.measure_workloads(run, s, workloads, results, "sdk", probe))
    elapsed = time.time() - t0
    summary = {k: R.summarize(v) for k, v in results.items()}
    RESULTS_MD.write_text(render(info, servers, workloads, status, summary, elapsed))
    (R.OUT / "results-sdk.json").write_text(json.dumps(
        {"info": info, "config": R.config(), "status": status, "summary": summary, "runs": results},
        indent=1, default=str))
    print()
    print(table_text(servers, workloads, status, summary))
    print(ratios_text(workloads, summary))
    R.log(f"==> wrote {R.shown(RESULTS_MD)} and bench/out/results-sdk.json ({elapsed / 60:.1f} min)")
    return 1 if any(v.startswith(("failed", "WRONG")) for v in status.values()) else 0


# --------------------------------------------------------------------------- report


def ratios_text(workloads: list, summary: dict) -> str:
    lines = [f"CovetPy / FastAPI, median req/s (above 1: CovetPy is faster; issue 23's target is {TARGET:g}x "
             "FastAPI on uvicorn); CPU: CovetPy's CPU per request (gateway and worker) over FastAPI's (below 1: "
             "CovetPy is cheaper)"]
    for w in workloads:
        x = summary.get(f"covet-1|{w.name}")
        for other in ("fastapi-uvicorn", "fastapi-granian"):
            y = summary.get(f"{other}|{w.name}")
            label = f"{w.name}, covet-1 / {other}"
            if not x or not y or not y["rps_median"]:
                lines.append(f"- {label}: n/a (not measured)")
                continue
            lines.append(f"- {label}: {R.ratio_text(x, y, TARGET if other == 'fastapi-uvicorn' else None)}")
    return "\n".join(lines) + "\n"


def table_text(servers: list, workloads: list, status: dict, summary: dict) -> str:
    L = ["| workload | server | req/s | min..max | p50 | p99 | CPU µs/req | peak RSS MiB | steal % | errors |",
         "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for w in workloads:
        for s in servers:
            L.append(R.table_row([w.name, s.name], summary.get(f"{s.name}|{w.name}"), status.get(s.name, "not run")))
    return "\n".join(L) + "\n"


def render(info: dict, servers: list, workloads: list, status: dict, summary: dict, elapsed: float) -> str:
    v = info["versions"]
    L = ["# The typed-handler SDK: CovetPy against FastAPI on uvicorn and Granian\n",
         f"Generated by `python3 bench/sdk.py` (part of `make bench`; alone `make bench-sdk`) on "
         f"{time.strftime('%Y-%m-%d %H:%M %Z')}; this file is rewritten by every run. Raw numbers: "
         "`bench/out/results-sdk.json`. The cost of each feature per request, in process, is "
         "bench/RESULTS-sdk-features.md (`bench/sdk_features.py`).\n",
         R.command_line("bench/sdk.py", "BENCH_SDK_RESULTS")] + R.short_run_note()
    L += ["## Machine\n", *R.machine_lines(info),
          f"- CovetPy {info['covet']}",
          f"- {R.shown(R.VENV)} Python {v.get('python', '?')}: " + ", ".join(
              f"{p} {v.get(p, '?')}" for p in ("fastapi", "uvicorn", "granian", "uvloop", "httptools")),
          f"- {info['wrk']}",
          "", "## Method\n",
          f"- `wrk -t{R.THREADS} -c{R.CONNS} --latency` over HTTP/1.1 keep-alive on 127.0.0.1; the POST's body and "
          "`Content-Type: application/json` set by a wrk script. One worker per server; nothing pinned "
          f"(wrk {R.WRK_CPUS or 'unpinned'}, servers {R.SERVER_CPUS or 'unpinned'}).",
          f"- {R.ROUNDS} interleaved round(s): each starts every server in turn (order rotated per round), checks "
          "each workload's answer once (status 200, application/json, the exact JSON with its types), then per "
          f"workload loads it {R.WARMUP}s unmeasured and {R.DURATION}s measured. req/s: the median over the rounds, "
          "with min..max; p50/p99: the median of the rounds' wrk percentiles.",
          R.CPU_METHOD,
          "- The apps (bench/apps/sdk_covet.py, bench/apps/sdk_fastapi.py) are each framework's idiomatic code for "
          "the same two routes, with the frameworks' defaults (both serve /openapi.json and /docs).",
          R.steal_method(),
          "", "## Workloads\n"]
    L += [f"- `{w.name}`: {w.describe}" for w in workloads]
    L += ["", "## Servers\n"]
    L += R.server_lines(servers, status)
    L += ["", "## Ratios\n", ratios_text(workloads, summary), "## Results\n", table_text(servers, workloads, status, summary),
          f"- Elapsed: {elapsed / 60:.1f} min.\n"]
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
