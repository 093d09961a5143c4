#!/usr/bin/env python3
"""Hosting foreign apps (issue 24): the same FastAPI, Starlette and Flask apps under
CovetPy (the gateway and one worker running the app through its ASGI or WSGI adapter)
and under uvicorn, Granian and gunicorn, one worker each. Part of `make bench`, alone
as `make bench-hosting`; standard library only:

    python3 bench/hosting.py                  # 3 rounds x 10 s, every cell
    BENCH_QUICK=1 python3 bench/hosting.py    # smoke run: 2 s x 1 round

Workloads (bench/apps/hosted_common.py holds the requests and the answers), the same
three routes in each app:

    plaintext  GET /plaintext -> "Hello, World!" (text/plain)
    user       GET /users/42 (an int path parameter) -> a five-field JSON record
    echo       POST /echo with a 91-byte JSON object -> the same object (FastAPI: through
               a pydantic model; Starlette: request.json(); Flask: request.get_json())

Apps and servers, one worker each (bench/apps/hosted_fastapi.py, hosted_starlette.py,
hosted_flask.py):

    covet-fastapi, covet-starlette  bin/covet-gateway --workers 1 (netpoll, the default
                     engine), the worker `covet worker hosted_X:app --interface asgi` on the
                     repo's .venv python
    uvicorn-fastapi, uvicorn-starlette   uvicorn --workers 1 --loop uvloop --http httptools
    granian-fastapi, granian-starlette   granian --interface asgi --workers 1 --loop uvloop
    covet-flask      the gateway and one worker, `--interface wsgi`, the WSGI thread pool
                     at its default size
    gunicorn-flask   gunicorn -k sync -w 1 (one process, one request at a time; it closes
                     the connection after each response)
    granian-flask    granian --interface wsgi --workers 1 (its blocking threads at their
                     default: half its backpressure, 512 with the default backlog)

Issue 24's targets, in median req/s per workload: CovetPy >= 1.5x uvicorn and >= 1.2x
Granian for the ASGI apps; >= 3x gunicorn sync and >= 1.2x Granian WSGI for Flask.

Each round starts every server in turn (order rotated per round), checks each
workload's answer once (status 200, the media type, the exact body), then loads it with
wrk BENCH_WARMUP s unmeasured and BENCH_DURATION s measured (bench/run.py's measure: CPU
time of the server's process tree, peak RSS, steal). Printed and written to
bench/RESULTS-hosting.md (BENCH_HOSTING_RESULTS) and bench/out/results-hosting.json.
Environment: bench/run.py's BENCH_DURATION, BENCH_ROUNDS, BENCH_WARMUP, BENCH_QUICK,
BENCH_CONNECTIONS, BENCH_THREADS, BENCH_WRK_CPUS, BENCH_SERVER_CPUS, BENCH_NO_INSTALL,
BENCH_VENV, BENCH_COVET_PYTHON, BENCH_STEAL_MAX, BENCH_STEAL_RETRIES; and
BENCH_HOSTING_APPS (fastapi, starlette, flask), BENCH_HOSTING_SERVERS and
BENCH_HOSTING_WORKLOADS (comma lists of the names above; `--list` prints them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "apps"))
import run as R  # noqa: E402  (bench/run.py: servers, wrk, measuring, machine facts)
from hosted_common import ECHO_BODY, ECHO_OBJECT, PLAINTEXT, USER_ANSWER, USER_PATH  # noqa: E402

RESULTS_MD = Path(os.environ.get("BENCH_HOSTING_RESULTS", str(R.BENCH / "RESULTS-hosting.md")))

WORKLOADS = [
    R.Workload("plaintext", "GET", "/plaintext", "text/plain", lambda b: b == PLAINTEXT,
               'GET /plaintext -> "Hello, World!" (text/plain)'),
    R.Workload("user", "GET", USER_PATH, "application/json", R._json_is(USER_ANSWER),
               f"GET {USER_PATH} (an int path parameter) -> a five-field JSON record"),
    R.Workload("echo", "POST", "/echo", "application/json", R._json_is(ECHO_OBJECT),
               f"POST /echo with a {len(ECHO_BODY)}-byte JSON object -> the same object",
               body=ECHO_BODY, content_type="application/json"),
]


@dataclass(frozen=True)
class App:
    """One foreign app: its module in bench/apps, the interface CovetPy hosts it through,
    and the servers CovetPy is compared with, each with issue 24's target ratio."""
    name: str
    module: str
    interface: str  # asgi | wsgi
    peers: tuple[tuple[str, float], ...]  # (server, target: CovetPy's req/s over the server's)


APPS = [
    App("fastapi", "hosted_fastapi", "asgi", (("uvicorn-fastapi", 1.5), ("granian-fastapi", 1.2))),
    App("starlette", "hosted_starlette", "asgi", (("uvicorn-starlette", 1.5), ("granian-starlette", 1.2))),
    App("flask", "hosted_flask", "wsgi", (("gunicorn-flask", 3.0), ("granian-flask", 1.2))),
]


def need_hosted(app: App) -> Callable[[], str | None]:
    """Why CovetPy cannot serve ``app`` (the gateway or .venv missing, the framework not
    importable by the worker's python, the adapter not there), or None."""
    def check() -> str | None:
        why = R.need_covet()
        if why:
            return why
        code = (f"import {app.module} as m\nfrom covet._hosting import host\n"
                f"host(m.app, {app.interface!r}, 'bench')")
        r = subprocess.run([str(R.REPO_PY), "-c", code], cwd=R.APPS, capture_output=True, text=True)
        if r.returncode != 0:
            last = (r.stderr.strip().splitlines() or ["failed"])[-1]
            return f"the worker's python cannot host {app.module}:app through {app.interface}: {last}"
        return None
    return check


def gunicorn_sync_argv(module: str) -> Callable[[int], list[str]]:
    return lambda port: [R.vbin("gunicorn"), "-k", "sync", "-w", "1", "-b", f"{R.HOST}:{port}",
                         "--log-level", "warning", f"{module}:app"]


def all_servers() -> list[tuple[App, R.Server]]:
    covet_env = {"COVET_LOG_LEVEL": "WARNING"}
    out: list[tuple[App, R.Server]] = []
    for a in APPS:
        spec = f"{a.module}:app"
        if a.interface == "asgi":
            out += [
                (a, R.Server(f"covet-{a.name}", f"CovetPy: bin/covet-gateway --workers 1 (netpoll engine) + 1 worker, "
                             f"`--interface asgi`, bench/apps/{a.module}.py",
                             R.covet_argv(1, "netpoll", spec, interface="asgi"), env=covet_env, needs=need_hosted(a))),
                (a, R.Server(f"uvicorn-{a.name}", f"uvicorn, 1 worker, uvloop + httptools, bench/apps/{a.module}.py",
                             R.uvicorn_argv(a.module, 1), needs=R.need_module(a.name))),
                (a, R.Server(f"granian-{a.name}", f"Granian (ASGI), 1 worker, uvloop, HTTP/1, bench/apps/{a.module}.py",
                             R.granian_argv("asgi", a.module, 1), needs=R.need_module(a.name))),
            ]
        else:
            out += [
                (a, R.Server(f"covet-{a.name}", f"CovetPy: bin/covet-gateway --workers 1 (netpoll engine) + 1 worker, "
                             f"`--interface wsgi` (thread pool at its default size), bench/apps/{a.module}.py",
                             R.covet_argv(1, "netpoll", spec, interface="wsgi"), env=covet_env, needs=need_hosted(a))),
                (a, R.Server(f"gunicorn-{a.name}", f"gunicorn sync, 1 worker (closes the connection after each "
                             f"response), bench/apps/{a.module}.py", gunicorn_sync_argv(a.module),
                             needs=R.need_module(a.name))),
                (a, R.Server(f"granian-{a.name}", f"Granian (WSGI), 1 worker, HTTP/1, blocking threads at the default (half "
                             f"its backpressure: 512), bench/apps/{a.module}.py",
                             R.granian_argv("wsgi", a.module, 1), needs=R.need_module(a.name))),
            ]
    return out


def chosen(names: list[str], env: str) -> set[str]:
    want = {x.strip() for x in os.environ.get(env, "").split(",") if x.strip()}
    unknown = want - set(names)
    if unknown:
        sys.exit(f"unknown {env}: {', '.join(sorted(unknown))} (one of {', '.join(names)})")
    return want or set(names)


def main() -> int:
    pairs = all_servers()
    if "--list" in sys.argv:
        print("apps:     ", ", ".join(a.name for a in APPS))
        print("servers:  ", ", ".join(s.name for _, s in pairs))
        print("workloads:", ", ".join(w.name for w in WORKLOADS))
        return 0
    t0 = time.time()
    R.OUT.mkdir(exist_ok=True)
    want_apps = chosen([a.name for a in APPS], "BENCH_HOSTING_APPS")
    want_servers = chosen([s.name for _, s in pairs], "BENCH_HOSTING_SERVERS")
    want_workloads = chosen([w.name for w in WORKLOADS], "BENCH_HOSTING_WORKLOADS")
    apps = [a for a in APPS if a.name in want_apps]
    servers = [s for a, s in pairs if a.name in want_apps and s.name in want_servers]
    workloads = [w for w in WORKLOADS if w.name in want_workloads]
    R.ensure_apt_tools({"wrk": "wrk"})
    notes = R.ensure_venv()
    info = R.machine_info(notes)
    info["worker_versions"] = worker_versions()
    R.log(f"==> {len(servers)} servers x {len(workloads)} workloads, {R.ROUNDS} round(s) of {R.DURATION}s "
          f"(+{R.WARMUP}s warm-up), wrk -t{R.THREADS} -c{R.CONNS}; logs in bench/out/hosting-*.log")
    results: dict[str, list[dict]] = {}

    status = R.interleaved_rounds(
        servers, "hosting", lambda run, s: R.measure_workloads(run, s, workloads, results, "hosting"))
    elapsed = time.time() - t0
    summary = {k: R.summarize(v) for k, v in results.items()}
    RESULTS_MD.write_text(render(info, apps, servers, workloads, status, summary, elapsed))
    (R.OUT / "results-hosting.json").write_text(json.dumps(
        {"info": info, "config": R.config(), "status": status, "summary": summary, "runs": results},
        indent=1, default=str))
    print()
    print(table_text(apps, servers, workloads, status, summary))
    print(ratios_text(apps, workloads, summary))
    R.log(f"==> wrote {R.shown(RESULTS_MD)} and bench/out/results-hosting.json ({elapsed / 60:.1f} min)")
    return 1 if any(v.startswith(("failed", "WRONG")) for v in status.values()) else 0


def worker_versions() -> dict[str, str]:
    """The frameworks' versions in the CovetPy worker's interpreter (the repo's .venv),
    which may differ from bench/.venv's."""
    code = ("import importlib.metadata as m, json\nout = {}\n"
            "for p in ('fastapi', 'starlette', 'pydantic', 'flask', 'werkzeug', 'uvloop'):\n"
            "    try: out[p] = m.version(p)\n"
            "    except m.PackageNotFoundError: out[p] = 'not installed'\n"
            "print(json.dumps(out))")
    try:
        return json.loads(R.cmd_out([str(R.REPO_PY), "-c", code]))
    except ValueError:
        return {}


# --------------------------------------------------------------------------- report


def ratios_text(apps: list[App], workloads: list, summary: dict) -> str:
    lines = ["CovetPy / the other server, median req/s (above 1: CovetPy is faster), against issue 24's target; "
             "CPU: CovetPy's CPU per request (gateway and worker) over the other server's (below 1: CovetPy is "
             "cheaper)"]
    met = total = 0
    for a in apps:
        for peer, target in a.peers:
            for w in workloads:
                x, y = summary.get(f"covet-{a.name}|{w.name}"), summary.get(f"{peer}|{w.name}")
                label = f"{a.name} {w.name}, covet-{a.name} / {peer}"
                if not x or not y or not y["rps_median"]:
                    lines.append(f"- {label}: n/a (not measured); target {target:g}x")
                    continue
                total += 1
                met += x["rps_median"] / y["rps_median"] >= target
                lines.append(f"- {label}: {R.ratio_text(x, y, target)}")
    if total:
        lines.append(f"- Targets met in {met} of {total} measured comparisons.")
    return "\n".join(lines) + "\n"


def table_text(apps: list[App], servers: list, workloads: list, status: dict, summary: dict) -> str:
    L = ["| app | workload | server | req/s | min..max | p50 | p99 | CPU µs/req | peak RSS MiB | steal % | errors |",
         "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    names = {s.name for s in servers}
    for a in apps:
        row_servers = [n for n in [f"covet-{a.name}"] + [p for p, _ in a.peers] if n in names]
        for w in workloads:
            for n in row_servers:
                L.append(R.table_row([a.name, w.name, n], summary.get(f"{n}|{w.name}"), status.get(n, "not run")))
    return "\n".join(L) + "\n"


def render(info: dict, apps: list[App], servers: list, workloads: list, status: dict, summary: dict,
           elapsed: float) -> str:
    v, wv = info["versions"], info.get("worker_versions", {})
    L = ["# Hosting ASGI and WSGI apps: CovetPy against uvicorn, Granian and gunicorn\n",
         f"Generated by `python3 bench/hosting.py` (part of `make bench`; alone `make bench-hosting`) on "
         f"{time.strftime('%Y-%m-%d %H:%M %Z')}; this file is rewritten by every run. Raw numbers: "
         "`bench/out/results-hosting.json`.\n",
         R.command_line("bench/hosting.py", "BENCH_HOSTING_RESULTS")] + R.short_run_note()
    L += ["## Machine\n", *R.machine_lines(info),
          f"- CovetPy {info['covet']}; its worker's frameworks: " + ", ".join(f"{p} {x}" for p, x in wv.items()),
          f"- {R.shown(R.VENV)} Python {v.get('python', '?')} (uvicorn, Granian, gunicorn): " + ", ".join(
              f"{p} {v.get(p, '?')}" for p in ("fastapi", "starlette", "flask", "uvicorn", "granian", "gunicorn",
                                               "uvloop", "httptools")),
          f"- {info['wrk']}",
          "", "## Method\n",
          f"- `wrk -t{R.THREADS} -c{R.CONNS} --latency` over HTTP/1.1 keep-alive on 127.0.0.1 (gunicorn's sync "
          "worker closes every connection after its response, so wrk reconnects for each of its requests); the "
          "POST's body and `Content-Type: application/json` set by a wrk script. One worker per server; nothing "
          f"pinned (wrk {R.WRK_CPUS or 'unpinned'}, servers {R.SERVER_CPUS or 'unpinned'}).",
          f"- {R.ROUNDS} interleaved round(s): each starts every server in turn (order rotated per round), checks "
          "each workload's answer once (status 200, the media type, the exact body: the JSON with its types), then "
          f"per workload loads it {R.WARMUP}s unmeasured and {R.DURATION}s measured. req/s: the median over the "
          "rounds, with min..max; p50/p99: the median of the rounds' wrk percentiles.",
          R.CPU_METHOD,
          "- The apps are the same files under every server: bench/apps/hosted_fastapi.py, hosted_starlette.py, "
          "hosted_flask.py (the answers in hosted_common.py), each framework's idiomatic code with its defaults "
          "(FastAPI serves /openapi.json and /docs). CovetPy runs them on the repo's .venv, the others on "
          f"{R.shown(R.VENV)}: the framework versions are listed above for both.",
          R.steal_method(),
          "", "## Workloads\n"]
    L += [f"- `{w.name}`: {w.describe}" for w in workloads]
    L += ["", "## Servers\n"]
    L += R.server_lines(servers, status)
    L += ["", "## Ratios and targets\n", ratios_text(apps, workloads, summary), "## Results\n",
          table_text(apps, servers, workloads, status, summary), f"- Elapsed: {elapsed / 60:.1f} min.\n"]
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
