#!/usr/bin/env python3
"""CovetPy comparative HTTP benchmark: every server on loopback, driven by wrk.

Standard library only; run with any python3 (the servers run on the workers' Python,
not on this one; see BENCH_PYTHON):

    python3 bench/run.py                      # the full run (what `make bench` does)
    BENCH_QUICK=1 python3 bench/run.py        # smoke run: 2s x 1 round, fewer workloads

It installs what it needs (wrk and nginx through apt-get when missing, the Python
servers into bench/.venv), starts each server, checks every endpoint's answer once,
loads it with wrk over HTTP/1.1 keep-alive, stops it (whole process tree), and writes
bench/RESULTS.md plus the raw numbers in bench/out/results.json.

Environment (all optional):
    BENCH_DURATION      seconds per measured run (default 10)
    BENCH_ROUNDS        interleaved rounds (default 3)
    BENCH_WARMUP        seconds of unmeasured load before each run (default 2)
    BENCH_QUICK=1       2s x 1 round, 1s warm-up, the QUICK_WORKLOADS subset
    BENCH_SERVERS       comma list of server names (see `--list`); covet-1 and covet-2
                        name both engines' rows (covet-1-uring and covet-1-netpoll, ...)
    BENCH_WORKLOADS     comma list of workload names (see `--list`)
    BENCH_CONNECTIONS   wrk connections (default 64)
    BENCH_SLEEP_CONNECTIONS  wrk connections for /sleep (default 256)
    BENCH_THREADS       wrk threads (default 1)
    BENCH_WRK_CPUS      pin wrk with taskset -c (default: unpinned)
    BENCH_SERVER_CPUS   pin every server with taskset -c (default: unpinned)
    BENCH_UPGRADE=1     re-resolve bench/.venv against PyPI's current releases
    BENCH_NO_INSTALL=1  install nothing (no apt-get, no pip): use wrk from PATH and
                        bench/.venv as they are (bench/offline/run.sh sets it)
    BENCH_RESULTS       where to write the report (default bench/RESULTS.md)
    BENCH_VENV          the servers' virtual environment (default bench/.venv; made with
                        BENCH_PYTHON when missing, and made again from scratch when it
                        was made with another interpreter)
    BENCH_COVET_PYTHON  the CovetPy workers' interpreter (default .venv/bin/python; one
                        without the SDK installed needs PYTHONPATH=python-sdk)
    BENCH_PYTHON        the servers' interpreter, which BENCH_VENV is made from (default:
                        the one BENCH_COVET_PYTHON's venv was made from, so every server
                        runs on the CovetPy workers' Python: the Makefile's PYTHON, the
                        newest CPython it finds)
    BENCH_STEAL_MAX     percent of the machine's CPU time the hypervisor may steal during
                        a measured run (/proc/stat) before it is measured again (default 5)
    BENCH_STEAL_RETRIES how many times such a run is measured again; the run with the
                        least steal is kept (default 2)
"""

from __future__ import annotations

import json
import os
import platform
import pwd
import grp
import http.client as http_client
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
APPS = BENCH / "apps"
OUT = BENCH / "out"
# BENCH_VENV and BENCH_COVET_PYTHON swap the interpreters (e.g. all on another Python).
VENV = Path(os.environ.get("BENCH_VENV") or BENCH / ".venv")
VPY = VENV / "bin" / "python"
# CovetPy workers: the repo's venv, SDK editable.
REPO_PY = Path(os.environ.get("BENCH_COVET_PYTHON") or ROOT / ".venv" / "bin" / "python")
GATEWAY = ROOT / "bin" / "covet-gateway"
HOST = "127.0.0.1"

# Server packages, each at PyPI's current release when bench/.venv is created.
CORE_PACKAGES = ["granian", "uvicorn", "uvloop", "httptools", "starlette", "fastapi", "robyn", "gunicorn",
                 "flask"]
OPTIONAL_PACKAGES = ["socketify"]  # may fail to build; the bench goes on without it
VERSION_PACKAGES = CORE_PACKAGES + OPTIONAL_PACKAGES


def env_num(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
NO_INSTALL = os.environ.get("BENCH_NO_INSTALL", "") not in ("", "0")
DURATION = int(env_num("BENCH_DURATION", 2 if QUICK else 10))
ROUNDS = int(env_num("BENCH_ROUNDS", 1 if QUICK else 3))
WARMUP = int(env_num("BENCH_WARMUP", 1 if QUICK else 2))
CONNS = int(env_num("BENCH_CONNECTIONS", 64))
SLEEP_CONNS = int(env_num("BENCH_SLEEP_CONNECTIONS", 256))
THREADS = int(env_num("BENCH_THREADS", 1))
WRK_CPUS = os.environ.get("BENCH_WRK_CPUS", "").strip()
SERVER_CPUS = os.environ.get("BENCH_SERVER_CPUS", "").strip()
RESULTS_MD = Path(os.environ.get("BENCH_RESULTS", str(BENCH / "RESULTS.md")))
STEAL_MAX = env_num("BENCH_STEAL_MAX", 5.0)
STEAL_RETRIES = int(env_num("BENCH_STEAL_RETRIES", 2))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


# --------------------------------------------------------------------------- workloads

ECHO_BODY = b"0123456789abcdef" * 4096  # 64 KiB; the wrk script sends the same bytes


@dataclass(frozen=True)
class Workload:
    name: str
    method: str
    path: str
    expect_type: str  # the Content-Type's media type
    expect: Callable[[bytes], bool]
    describe: str
    connections: int = 0  # 0: BENCH_CONNECTIONS
    body: bytes = b""
    content_type: str = "application/octet-stream"  # the request body's, for POST


def _json_is(value: object) -> Callable[[bytes], bool]:
    def check(raw: bytes) -> bool:
        try:
            got = json.loads(raw)
        except ValueError:
            return False
        return got == value and type(got) is type(value) and all(
            type(got[k]) is type(v) for k, v in value.items()  # {"id": 42}, not {"id": "42"}
        )
    return check


WORKLOADS = [
    Workload("plaintext", "GET", "/plaintext", "text/plain", lambda b: b == b"Hello, World!",
             'GET /plaintext -> "Hello, World!" (text/plain)'),
    Workload("json", "GET", "/json", "application/json", _json_is({"message": "Hello, World!"}),
             'GET /json -> {"message":"Hello, World!"}'),
    Workload("json-sync", "GET", "/json-sync", "application/json", _json_is({"message": "Hello, World!"}),
             'GET /json-sync -> {"message":"Hello, World!"} from a sync (`def`) handler; only servers with sync '
             "endpoints (CovetPy, Starlette) serve it"),
    Workload("json-inline", "GET", "/json-inline", "application/json", _json_is({"message": "Hello, World!"}),
             'GET /json-inline -> {"message":"Hello, World!"} from a `def` handler declared `sync_to_thread=False` '
             "(run on the event loop); only CovetPy serves it"),
    Workload("users", "GET", "/users/42", "application/json", _json_is({"id": 42}),
             'GET /users/{id} (path parameter, id=42) -> {"id":42}'),
    Workload("10k", "GET", "/10k", "application/octet-stream", lambda b: b == b"x" * 10240,
             "GET /10k -> 10 KiB body"),
    Workload("1m", "GET", "/1m", "application/octet-stream", lambda b: b == b"x" * 1048576,
             "GET /1m -> 1 MiB body"),
    Workload("echo", "POST", "/echo", "application/octet-stream", lambda b: b == ECHO_BODY,
             "POST /echo with a 64 KiB body -> the same 64 KiB", body=ECHO_BODY),
    Workload("sleep", "GET", "/sleep", "text/plain", lambda b: b == b"slept",
             'GET /sleep -> awaits 10 ms, then "slept"', connections=-1),
]
WORKLOAD_BY_NAME = {w.name: w for w in WORKLOADS}
#: The workloads served by a sync handler: only the servers whose framework has sync
#: endpoints (CovetPy's `def` handlers, Starlette's sync endpoints) list them.
SYNC_WORKLOADS = ("json-sync", "json-inline")
#: The workloads only CovetPy serves (an option of its own).
COVET_ONLY_WORKLOADS = ("json-inline",)
QUICK_WORKLOADS = ["plaintext", "json", "users", "echo", "sleep"]


def conns_for(w: Workload) -> int:
    return SLEEP_CONNS if w.connections == -1 else (w.connections or CONNS)


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    name: str
    label: str
    argv: Callable[[int], list[str]]  # port -> command line
    cwd: Path = APPS
    env: dict[str, str] = field(default_factory=dict)
    workloads: tuple[str, ...] = tuple(w.name for w in WORKLOADS if w.name not in SYNC_WORKLOADS)
    needs: Callable[[], str | None] = lambda: None  # -> reason it cannot run, or None
    note: str = ""
    stop_timeout: float = 15.0  # seconds given to SIGTERM before SIGKILL


def shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (bench/.venv), else as given."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def vbin(name: str) -> str:
    return str(VENV / "bin" / name)


def need_module(module: str) -> Callable[[], str | None]:
    def check() -> str | None:
        if not VPY.exists():
            return f"{VENV} missing"
        r = subprocess.run([str(VPY), "-c", f"import {module}"], cwd=APPS, capture_output=True, text=True)
        if r.returncode != 0:
            last = (r.stderr.strip().splitlines() or ["import failed"])[-1]
            return f"`import {module}` fails in {VENV}: {last}"
        return None
    return check


def need_covet() -> str | None:
    if not GATEWAY.exists():
        return f"{GATEWAY.relative_to(ROOT)} missing (run `make build`)"
    if not REPO_PY.exists():
        return ".venv missing (run `make build`)"
    return None


def need_go() -> str | None:
    return None if (OUT / "gohttp").exists() else "bench/out/gohttp could not be built (see the log)"


def need_nginx() -> str | None:
    return None if nginx_bin() else "nginx not installed"


def nginx_bin() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


# The gateway's IO engines (issue 19); every CovetPy configuration gets one row per
# engine, named covet-N-ENGINE. The comparisons with the other servers use the
# netpoll rows, the gateway's default engine (see covet_row).
ENGINES = ("uring", "netpoll")


def covet_argv(workers: int, engine: str, app: str = "covet_app:app",
               interface: str = "covet") -> Callable[[int], list[str]]:
    """The gateway with ``workers`` workers serving ``app`` (module:attribute in
    bench/apps) on ``engine``; ``interface`` is what the worker is told the app is
    (``covet``, or ``asgi``/``wsgi`` for a foreign app it hosts)."""
    def argv(port: int) -> list[str]:
        worker_cmd = f"{shlex.quote(str(REPO_PY))} -m covet worker {app}"
        if interface != "covet":  # a hosted app is named after its module unless told
            worker_cmd += f" --interface {interface} --app-name bench"
        return [str(GATEWAY), "--listen", f"{HOST}:{port}", "--app", "bench", "--workers", str(workers),
                "--worker-cmd", worker_cmd, "--worker-dir", str(APPS), "--log-level", "warn",
                "--engine", engine]
    return argv


def engine_refused(log_text: str) -> str | None:
    """The gateway's "engine uring: REASON" start-up error (io_uring refused here: seccomp,
    ENOSYS, memlock), or None."""
    for line in reversed(log_text.splitlines()):
        if "engine uring:" in line:
            return line.strip()[-300:]
    return None


def granian_argv(interface: str, module: str, workers: int) -> Callable[[int], list[str]]:
    return lambda port: [vbin("granian"), "--interface", interface, "--host", HOST, "--port", str(port),
                         "--workers", str(workers), "--loop", "uvloop", "--http", "1", "--no-ws",
                         "--log-level", "warning", "--no-access-log", f"{module}:app"]


def uvicorn_argv(module: str, workers: int) -> Callable[[int], list[str]]:
    return lambda port: [vbin("uvicorn"), f"{module}:app", "--host", HOST, "--port", str(port),
                         "--workers", str(workers), "--loop", "uvloop", "--http", "httptools",
                         "--no-access-log", "--log-level", "warning"]


def nginx_command(prefix: str, workers: str, body: str) -> list[str]:
    """An nginx in the foreground from a fresh directory under bench/out: its nginx.conf
    is the frame every bench shares (one master, pid, error log and temp paths inside the
    directory; run as root, its workers keep the current user, who can read the bench's
    files) around body, the directives and servers of the http block. Returns the
    command."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir=OUT))
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (d / sub).mkdir()
    user = ""
    if os.geteuid() == 0:
        user = f"user {pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name};"
    (d / "nginx.conf").write_text(f"""\
{user}
worker_processes {workers};
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
{body}}}
""")
    return [nginx_bin() or "nginx", "-p", str(d), "-c", str(d / "nginx.conf"), "-e", str(d / "error.log")]


def nginx_argv(port: int) -> list[str]:
    return nginx_command("nginx-", "auto", f"""\
    server {{
        listen {HOST}:{port};
        location = /plaintext {{
            default_type text/plain;
            return 200 "Hello, World!";
        }}
    }}
""")


def ensure_apt_tools(packages: dict[str, str], required: tuple[str, ...] = ("wrk",)) -> None:
    """Install with apt-get the Debian package of each command of packages (command ->
    package) that is missing, unless BENCH_NO_INSTALL; exit when a required command is
    still missing (the others' servers are reported as not run)."""
    missing = [pkg for tool, pkg in packages.items() if not (shutil.which(tool) or (tool == "nginx" and nginx_bin()))]
    if missing and not NO_INSTALL:
        log(f"==> installing {' '.join(missing)} with apt-get (missing)")
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(sudo + ["apt-get", "install", "-y", "-q"] + missing, env=env).returncode != 0:
            subprocess.run(sudo + ["apt-get", "update", "-q"], check=False)
            subprocess.run(sudo + ["apt-get", "install", "-y", "-q"] + missing, env=env, check=False)
    for tool in required:
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed and could not be installed (apt-get install -y {packages[tool]})")


def all_servers() -> list[Server]:
    py = str(VPY)
    servers: list[Server] = []
    for n in (1, 2):
        for engine in ENGINES:
            servers.append(Server(
                f"covet-{n}-{engine}", f"CovetPy native, {n} worker{'s' * (n > 1)}, `--engine {engine}`",
                covet_argv(n, engine), env={"COVET_LOG_LEVEL": "WARNING"}, needs=need_covet,
                workloads=tuple(w.name for w in WORKLOADS),
                note="bin/covet-gateway + N workers run by the repo's .venv python; gateway flags at their defaults "
                     "but the engine, so at most 256 requests (max_inflight) are in flight per worker and the gateway "
                     "runs on two Go processors per worker within the CPUs left after one per worker (procs)"))
    for n in (1, 2):
        servers.append(Server(f"granian-rsgi-{n}", f"Granian RSGI, {n} worker{'s' * (n > 1)}",
                              granian_argv("rsgi", "rsgi_app", n), needs=need_module("granian")))
    for n in (1, 2):
        servers.append(Server(f"granian-asgi-{n}", f"Granian ASGI (raw app), {n} worker{'s' * (n > 1)}",
                              granian_argv("asgi", "asgi_app", n), needs=need_module("granian")))
    for n in (1, 2):
        servers.append(Server(f"uvicorn-starlette-{n}", f"uvicorn + Starlette, {n} worker{'s' * (n > 1)}",
                              uvicorn_argv("starlette_app", n), needs=need_module("starlette"),
                              workloads=tuple(w.name for w in WORKLOADS if w.name not in COVET_ONLY_WORKLOADS)))
    for n in (1, 2):
        servers.append(Server(f"uvicorn-asgi-{n}", f"uvicorn raw ASGI, {n} worker{'s' * (n > 1)}",
                              uvicorn_argv("asgi_app", n), needs=need_module("uvicorn")))
    for n in (1, 2):
        servers.append(Server(f"uvicorn-fastapi-{n}", f"uvicorn + FastAPI, {n} worker{'s' * (n > 1)}",
                              uvicorn_argv("fastapi_app", n), needs=need_module("fastapi")))
    servers.append(Server("robyn", "Robyn, 1 process x 1 worker",
                          lambda port: [py, "robyn_app.py", "--processes", "1", "--workers", "1",
                                        "--log-level", "WARN", "--disable-openapi"],
                          env={"ROBYN_HOST": HOST}, needs=need_module("robyn"), stop_timeout=5,
                          note="with one process it ignores SIGTERM and SIGINT; the harness SIGKILLs it after 5s"))
    servers.append(Server("socketify", "socketify.py native, 1 process",
                          lambda port: [py, "socketify_app.py", HOST, str(port)], needs=need_module("socketify")))
    servers.append(Server("gunicorn-sync-2", "gunicorn sync WSGI, 2 workers",
                          lambda port: [vbin("gunicorn"), "-k", "sync", "-w", "2", "-b", f"{HOST}:{port}",
                                        "--log-level", "warning", "wsgi_app:app"],
                          needs=need_module("gunicorn"),
                          note="its sync worker closes the connection after each response: no keep-alive"))
    servers.append(Server("go-nethttp", "Go net/http alone (native ceiling)",
                          lambda port: [str(OUT / "gohttp"), "-addr", f"{HOST}:{port}"], needs=need_go))
    servers.append(Server("nginx", "nginx `return 200`", nginx_argv, workloads=("plaintext",), needs=need_nginx))
    return servers


# --------------------------------------------------------------------------- setup


def log(msg: str) -> None:
    print(msg, flush=True)


def python_id(python: Path | str) -> str:
    """"PATH VERSION" of the interpreter ``python`` runs on (for a venv's python, the
    interpreter the venv was made from; PATH resolved), or "" when it does not run."""
    code = "import os, platform, sys; print(os.path.realpath(sys._base_executable), platform.python_version())"
    try:
        r = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return r.stdout.strip() if r.returncode == 0 else ""


def servers_python() -> str:
    """The interpreter the servers' venv is made from: BENCH_PYTHON, else the one the
    CovetPy workers' venv (REPO_PY: the repo's .venv, made by the Makefile from the newest
    CPython it finds) was made from, so that every server runs on the workers' Python;
    the one running this script when REPO_PY does not run."""
    if os.environ.get("BENCH_PYTHON"):
        return os.environ["BENCH_PYTHON"]
    ident = python_id(REPO_PY) if REPO_PY.exists() else ""
    return ident.rsplit(" ", 1)[0] if ident else os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def make_venv() -> None:
    """VENV on servers_python(): made when missing, and made again from scratch (its
    packages with it) when it was made from another interpreter."""
    base = servers_python()
    want = python_id(base)
    if not want:
        raise SystemExit(f"bench: the servers' interpreter {base} does not run (BENCH_PYTHON, or .venv: make venv)")
    have = python_id(VPY) if VPY.exists() else ""
    if have == want:
        return
    log(f"==> {'making' if not have else 'making again'} {shown(VENV)} with {want}"
        + (f" (it was on {have or 'an interpreter that does not run'})" if VENV.exists() else ""))
    subprocess.run([base, "-m", "venv", "--clear", str(VENV)], check=True)


def ensure_venv() -> dict[str, str]:
    """bench/.venv on the workers' interpreter (make_venv) with the server packages;
    returns install notes per optional package."""
    stamp = VENV / ".bench-stamp"
    want = " ".join(CORE_PACKAGES + OPTIONAL_PACKAGES)
    notes: dict[str, str] = {}
    upgrade = os.environ.get("BENCH_UPGRADE", "") not in ("", "0")
    if NO_INSTALL:
        return notes  # servers missing from bench/.venv are reported as not run
    make_venv()  # a venv made again has no stamp
    if VPY.exists() and stamp.exists() and stamp.read_text().splitlines()[0] == want and not upgrade:
        for line in stamp.read_text().splitlines()[1:]:
            k, _, v = line.partition("=")
            notes[k] = v
        return notes
    log(f"==> {'upgrading' if upgrade else 'installing into'} {shown(VENV)}: {want}")
    pip = [str(VPY), "-m", "pip", "install", "-q", "--upgrade"]
    subprocess.run(pip + ["pip"], check=False)
    subprocess.run(pip + CORE_PACKAGES, check=True)
    for pkg in OPTIONAL_PACKAGES:
        r = subprocess.run(pip + [pkg], capture_output=True, text=True)
        if r.returncode != 0:
            tail = " ".join((r.stderr or r.stdout).strip().splitlines()[-3:])
            notes[pkg] = f"pip install failed: {tail[:300]}"
            log(f"    {pkg}: {notes[pkg]}")
    stamp.write_text(want + "\n" + "".join(f"{k}={v}\n" for k, v in notes.items()))
    return notes


def build_go() -> str | None:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if os.path.exists("/usr/local/go/bin/go") else None)
    if not go:
        if (OUT / "gohttp").exists():
            log("    no go toolchain: using the bench/out/gohttp already built")
            return None
        return "go toolchain not found"
    OUT.mkdir(exist_ok=True)
    env = {**os.environ, "GOFLAGS": "", "CGO_ENABLED": "0"}
    r = subprocess.run([go, "build", "-o", str(OUT / "gohttp"), "."], cwd=BENCH / "gohttp", env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        log(f"    go build bench/gohttp failed:\n{r.stderr}")
        return "go build failed"
    return None


def cmd_out(argv: list[str], cwd: Path | None = None) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=30)
        return (r.stdout + r.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable ({e})"


def machine_info(notes: dict[str, str]) -> dict[str, object]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        mem = f"{kib / 1048576:.1f} GiB"
    except (OSError, IndexError, ValueError):
        pass
    versions: dict[str, str] = {}
    if VPY.exists():
        code = ("import importlib.metadata as m, json, sys\n"
                "out = {}\n"
                f"for p in {VERSION_PACKAGES!r}:\n"
                "    try: out[p] = m.version(p)\n"
                "    except m.PackageNotFoundError: out[p] = 'not installed'\n"
                "out['python'] = sys.version.split()[0]\n"
                "print(json.dumps(out))")
        try:
            versions = json.loads(cmd_out([str(VPY), "-c", code]))
        except ValueError:
            versions = {}
    for k, v in notes.items():
        versions[k] = f"{versions.get(k, 'not installed')} ({v})"
    covet_ver = cmd_out([str(REPO_PY), "-c", "import importlib.metadata as m\ntry: print(m.version('covet'))\n"
                         "except m.PackageNotFoundError: print('source tree')"]) if REPO_PY.exists() else "n/a"
    rev = cmd_out(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT)
    dirty = cmd_out(["git", "status", "--porcelain", "--", "gateway", "python-sdk", "router", "shmring",
                     "workerproto"], cwd=ROOT)
    repo_py = cmd_out([str(REPO_PY), "-c", "import sys; print(sys.version.split()[0])"]) if REPO_PY.exists() else "n/a"
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory": mem,
        "kernel": platform.release(),
        "os": cmd_out(["sh", "-c", ". /etc/os-release 2>/dev/null && echo $PRETTY_NAME"]),
        "covet": f"{covet_ver} (repo {rev}{', uncommitted changes in gateway/python-sdk/…' if dirty else ''}; "
                 f"workers on {shown(REPO_PY.parent.parent)} Python {repo_py})",
        "versions": versions,
        "wrk": cmd_out(["wrk", "-v"]).splitlines()[0] if shutil.which("wrk") else "n/a",
        "nginx": cmd_out([nginx_bin(), "-v"]) if nginx_bin() else "n/a",
        "go": cmd_out(["go", "version"]) if shutil.which("go") else
              cmd_out(["/usr/local/go/bin/go", "version"]) if os.path.exists("/usr/local/go/bin/go") else
              "no go toolchain (bench/out/gohttp prebuilt)",
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }


# --------------------------------------------------------------------------- process trees


def read_stat(pid: int) -> tuple[int, int, int] | None:
    """(ppid, pgid, utime+stime ticks) of pid, or None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = raw[raw.rfind(")") + 2:].split()
    return int(rest[1]), int(rest[2]), int(rest[11]) + int(rest[12])


def tree(root: int) -> dict[int, tuple[int, int, int]]:
    """Every live process under root (root included): pid -> (ppid, pgid, cpu ticks)."""
    stats: dict[int, tuple[int, int, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = read_stat(int(entry))
            if st is not None:
                stats[int(entry)] = st
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[int, tuple[int, int, int]] = {}
    todo = [root] if root in stats else []
    while todo:
        pid = todo.pop()
        out[pid] = stats[pid]
        todo.extend(children.get(pid, []))
    return out


def tree_rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KIB
        except (OSError, IndexError, ValueError):
            pass
    return total


class RssSampler(threading.Thread):
    """Samples the tree's summed resident set every 100 ms; keeps the peak."""

    def __init__(self, root: int):
        super().__init__(daemon=True)
        self.root, self.peak_kib, self.stop_evt = root, 0, threading.Event()

    def run(self) -> None:
        while not self.stop_evt.is_set():
            self.peak_kib = max(self.peak_kib, tree_rss_kib(list(tree(self.root))))
            self.stop_evt.wait(0.1)

    def finish(self) -> int:
        self.stop_evt.set()
        self.join()
        return self.peak_kib


# --------------------------------------------------------------------------- running a server


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def http(method: str, port: int, path: str, body: bytes | None = None, timeout: float = 10.0,
         content_type: str = "application/octet-stream"):
    req = urllib.request.Request(f"http://{HOST}:{port}{path}", data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


class Running:
    def __init__(self, server: Server):
        self.server = server
        self.port = free_port()
        self.logf = open(OUT / f"{server.name}.log", "ab")
        argv = server.argv(self.port)
        if SERVER_CPUS:
            argv = ["taskset", "-c", SERVER_CPUS] + argv
        env = {**os.environ, **server.env, "PYTHONUNBUFFERED": "1"}
        if "ROBYN_HOST" in server.env:
            env["ROBYN_PORT"] = str(self.port)
        env.pop("VIRTUAL_ENV", None)
        self.logf.write(f"\n==== {time.strftime('%H:%M:%S')} {shlex.join(argv)}\n".encode())
        self.logf.flush()
        self.proc = subprocess.Popen(argv, cwd=server.cwd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=subprocess.STDOUT, start_new_session=True)
        self.seen: set[int] = {self.proc.pid}

    def wait_ready(self, timeout: float = 60.0, probe: Callable[[int], int] | None = None) -> str | None:
        """None once the server answers 200 (to GET /plaintext, or to probe(port), which
        returns the status of a request of its own); else why not."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"exited with status {self.proc.returncode} before answering (see bench/out/{self.server.name}.log)"
            try:
                status = probe(self.port) if probe else http("GET", self.port, "/plaintext", timeout=2)[0]
                if status == 200:
                    time.sleep(0.3)  # let the remaining workers of a multi-process server come up
                    self.seen.update(tree(self.proc.pid))
                    return None
                last = f"status {status}"
            except (OSError, urllib.error.URLError, http_client.HTTPException) as e:
                last = str(e)
            time.sleep(0.2)
        return f"not ready after {timeout:.0f}s ({last})"

    def log_text(self) -> str:
        """What the server has written to its log in this run so far."""
        self.logf.flush()
        try:
            text = (OUT / f"{self.server.name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return text[text.rfind("\n==== "):]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> str:
        """Stops the whole tree: SIGTERM to every process group in it, then SIGKILL.
        Returns '' when it stopped on SIGTERM and left nothing behind, else what happened."""
        procs = tree(self.proc.pid)
        self.seen.update(procs)
        pgids = {pgid for _, pgid, _ in procs.values()} | {self.proc.pid}
        for pg in pgids:
            try:
                os.killpg(pg, signal.SIGTERM)
            except OSError:
                pass
        problems = []
        try:
            self.proc.wait(timeout=self.server.stop_timeout)
        except subprocess.TimeoutExpired:
            problems.append(f"did not exit within {self.server.stop_timeout:g}s of SIGTERM: SIGKILLed")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(read_stat(p) for p in self.seen if p != self.proc.pid):
            time.sleep(0.1)
        strays = [p for p in self.seen if p != self.proc.pid and read_stat(p) is not None]
        if strays:
            problems.append(f"stray processes after 5s: {sorted(strays)}; SIGKILLed")
        for pg in pgids:
            try:
                os.killpg(pg, signal.SIGKILL)
            except OSError:
                pass
        for p in strays:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.logf.close()
        return "; ".join(problems)



def measure_workloads(run: Running, s: Server, workloads: list[Workload], results: dict[str, list[dict]],
                      prefix: str, probe: Callable[[int], int] | None = None) -> str | None:
    """An interleaved_rounds visit for servers that all answer every workload: wait
    until the server answers (``probe``: run.wait_ready's), check each workload's
    answer, then measure each, appending to results["server|workload"] and logging a
    line per run; a server that exits, or answers wrongly under load, fails. Logs are
    bench/out/PREFIX-SERVER.log."""
    why = run.wait_ready(probe=probe)
    if why:
        return f"failed: {why}"
    for w in workloads:
        wrong = validate(run, w)
        if wrong:
            return f"WRONG: {w.name}: {wrong}"
    for w in workloads:
        res = measure(run, w)
        if not run.alive():
            return f"failed: exited (status {run.proc.returncode}) under {w.name}; see bench/out/{prefix}-{s.name}.log"
        results.setdefault(f"{s.name}|{w.name}", []).append(res)
        errs = {k: res[k] for k in ("connect", "read", "write", "status", "timeout") if res[k]}
        log(f"    {s.name:<17} {w.name:<9} {fmt_rps(res['rps']):>8} req/s  p50 {fmt_lat(res['p50_us']):>8}  "
            f"p99 {fmt_lat(res['p99_us']):>8}  cpu {res['cpu_us_per_req']:7.1f} µs/req  "
            f"steal {res['steal_pct']:.1f}%" + (f"  errors {errs}" if errs else ""))
        if errs.get("status"):  # non-2xx under load: the answer is checked again
            again = validate(run, w)
            if again:
                return f"WRONG under load: {w.name}: {again}"
    return None


def interleaved_rounds(servers: list, prefix: str, visit: Callable[[Running, object], str | None]) -> dict[str, str]:
    """Run each server ROUNDS times, starting every one in turn per round with the order
    rotated each round (so that none always runs first, or on a warmer machine), and let
    visit(run, server) check and measure it. servers have name, label, argv, env and
    needs() (why the server cannot run, or None). visit returns None, or the server's
    status when it failed ("failed: ..." or "WRONG: ..."), after which it is not started
    again; an exception from starting or measuring fails it too. Returns each server's
    status (absent: it ran)."""
    status: dict[str, str] = {}
    for s in servers:
        why = s.needs()
        if why:
            status[s.name] = f"not run: {why}"
    runnable = [s for s in servers if s.name not in status]
    for rnd in range(ROUNDS):
        k = rnd % len(runnable) if runnable else 0
        log(f"==> round {rnd + 1}/{ROUNDS} (load average {Path('/proc/loadavg').read_text().split()[0]})")
        for s in runnable[k:] + runnable[:k]:
            if status.get(s.name, "").startswith(("failed", "WRONG")):
                continue
            run = Running(Server(f"{prefix}-{s.name}", s.label, s.argv, env=s.env))
            try:
                why = visit(run, s)
                if why:
                    status[s.name] = why
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                status[s.name] = f"failed: {str(e)[-300:]}"
            finally:
                problem = run.stop()
                if problem:
                    log(f"    {s.name} shutdown: {problem}")
            if s.name in status:
                log(f"    {s.name}: {status[s.name]}")
    return status

def validate(run: Running, w: Workload) -> str | None:
    """None if the endpoint answers exactly what every server must answer; else what was wrong."""
    try:
        t0 = time.monotonic()
        status, ctype, body = http(w.method, run.port, w.path, w.body if w.method == "POST" else None,
                                   content_type=w.content_type)
        took = time.monotonic() - t0
    except (OSError, urllib.error.URLError) as e:
        return f"request failed: {e}"
    if status != 200:
        return f"status {status}, body {body[:120]!r}"
    if ctype.split(";")[0].strip().lower() != w.expect_type:
        return f"Content-Type {ctype!r}, expected {w.expect_type}"
    if not w.expect(body):
        return f"wrong body ({len(body)} bytes): {body[:120]!r}"
    if w.name == "sleep" and took < 0.009:
        return f"answered in {took * 1000:.1f} ms: did not sleep 10 ms"
    return None


# --------------------------------------------------------------------------- wrk

LUA_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,"connect":%.0f,"read":%.0f,' ..
    '"write":%.0f,"status":%.0f,"timeout":%.0f,"p50_us":%.0f,"p90_us":%.0f,"p99_us":%.0f,' ..
    '"max_us":%.0f,"mean_us":%.3f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


def lua_script(w: Workload) -> Path:
    path = OUT / f"wrk-{w.name}.lua"
    head = ""
    if w.method == "POST":
        # /echo's 64 KiB as a repeat; any other body as a Lua string of decimal escapes
        body = ('string.rep("0123456789abcdef", 4096)' if w.body == ECHO_BODY
                else '"' + "".join(f"\\{b}" for b in w.body) + '"')
        head = ('wrk.method = "POST"\n'
                f'wrk.body = {body}\n'
                f'wrk.headers["Content-Type"] = "{w.content_type}"\n')
    path.write_text(head + LUA_DONE)
    return path


def wrk(port: int, w: Workload, seconds: int) -> dict[str, float]:
    argv = ["wrk", f"-t{THREADS}", f"-c{conns_for(w)}", f"-d{seconds}s", "--latency", "--timeout", "5s",
            "-s", str(lua_script(w)), f"http://{HOST}:{port}{w.path}"]
    if WRK_CPUS:
        argv = ["taskset", "-c", WRK_CPUS] + argv
    r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    for line in r.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            res = json.loads(line[len("BENCHJSON "):])
            res["rps"] = res["requests"] / (res["duration_us"] / 1e6) if res["duration_us"] else 0.0
            return res
    raise RuntimeError(f"wrk gave no result (exit {r.returncode}): {r.stdout[-500:]} {r.stderr[-500:]}")


def cpu_times() -> tuple[int, int]:
    """(steal, total) ticks of all CPUs so far, from /proc/stat's ``cpu`` line; (0, 0)
    where there is no such file."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return 0, 0
    ticks = [int(x) for x in fields[1:9]]  # user nice system idle iowait irq softirq steal
    return ticks[7], sum(ticks)


def measure(run: Running, w: Workload) -> dict[str, float]:
    """One measured run; measured again (at most STEAL_RETRIES times) while the
    hypervisor took more than STEAL_MAX percent of the machine, keeping the run with the
    least steal. On a shared VM a stolen second slows every process, so such a run says
    more about the host's neighbours than about the server."""
    best: dict[str, float] | None = None
    for attempt in range(1 + max(STEAL_RETRIES, 0)):
        res = measure_once(run, w)
        res["steal_retries"] = attempt
        if best is None or res["steal_pct"] < best["steal_pct"]:
            best = res
        if res["steal_pct"] <= STEAL_MAX:
            break
        log(f"    {w.name}: {res['steal_pct']:.1f}% of the CPU time stolen by the hypervisor; measuring again")
    assert best is not None
    return best


def measure_once(run: Running, w: Workload) -> dict[str, float]:
    if WARMUP > 0:
        wrk(run.port, w, WARMUP)
    before = tree(run.proc.pid)
    sampler = RssSampler(run.proc.pid)
    steal0, total0 = cpu_times()
    sampler.start()
    try:
        res = wrk(run.port, w, DURATION)
    finally:
        peak = sampler.finish()
    steal1, total1 = cpu_times()
    res["steal_pct"] = 100 * (steal1 - steal0) / (total1 - total0) if total1 > total0 else 0.0
    after = tree(run.proc.pid)
    run.seen.update(after)
    ticks = sum(t for _, _, t in after.values()) - sum(t for p, (_, _, t) in before.items() if p in after)
    res["cpu_s"] = ticks / CLK_TCK
    res["cpu_us_per_req"] = res["cpu_s"] / res["requests"] * 1e6 if res["requests"] else float("nan")
    res["peak_rss_mib"] = peak / 1024
    res["procs"] = len(after)
    gone = sorted(set(before) - set(after))
    new = sorted(set(after) - set(before))
    if gone or new:
        res["tree_changed"] = f"processes gone {gone}, new {new} during the run"
    return res


# --------------------------------------------------------------------------- the run


def fmt_rps(v: float) -> str:
    return f"{v:,.0f}"


def fmt_lat(us: float) -> str:
    if us >= 1e6:
        return f"{us / 1e6:.2f}s"
    if us >= 1e3:
        return f"{us / 1e3:.2f}ms"
    return f"{us:.0f}us"


def summarize(runs: list[dict]) -> dict:
    rps = [r["rps"] for r in runs]
    mid = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]  # the median run (odd counts)
    errs = {k: sum(r[k] for r in runs) for k in ("connect", "read", "write", "status", "timeout")}
    return {
        "rps_median": statistics.median(rps), "rps_min": min(rps), "rps_max": max(rps), "n": len(runs),
        "p50_us": statistics.median(r["p50_us"] for r in runs),
        "p99_us": statistics.median(r["p99_us"] for r in runs),
        "cpu_us_per_req": statistics.median(r["cpu_us_per_req"] for r in runs),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "steal_pct_max": max(r.get("steal_pct", 0.0) for r in runs),
        "errors": {k: v for k, v in errs.items() if v},
        "tree_changed": [r["tree_changed"] for r in runs if "tree_changed" in r],
        "median_run": mid,
    }



def chosen(items: list, env: str) -> list:
    """The items (each with a .name) the comma-separated environment variable env
    names, in the items' order; all of them when it is unset or empty; exits naming
    an unknown one."""
    want = [x.strip() for x in os.environ.get(env, "").split(",") if x.strip()]
    unknown = set(want) - {i.name for i in items}
    if unknown:
        sys.exit(f"unknown {env}: {', '.join(sorted(unknown))} (one of {', '.join(i.name for i in items)})")
    return [i for i in items if not want or i.name in want]

def main() -> int:
    if "--list" in sys.argv:
        print("servers:  ", ", ".join(s.name for s in all_servers()))
        print("workloads:", ", ".join(w.name for w in WORKLOADS), f"(quick: {', '.join(QUICK_WORKLOADS)})")
        return 0
    OUT.mkdir(exist_ok=True)
    for old in OUT.glob("nginx-*"):  # the previous run's nginx prefixes and server logs
        shutil.rmtree(old, ignore_errors=True)
    for old in OUT.glob("*.log"):
        old.unlink()
    ensure_apt_tools({"wrk": "wrk", "nginx": "nginx"})
    notes = ensure_venv()
    go_err = build_go()
    info = machine_info(notes)

    servers = all_servers()
    want_s = [s.strip() for s in os.environ.get("BENCH_SERVERS", "").split(",") if s.strip()]
    # covet-1 / covet-2 (the names before the engines): both engines' rows
    want_s = [x for name in want_s for x in
              ([f"{name}-{e}" for e in ENGINES] if name in ("covet-1", "covet-2") else [name])]
    if want_s:
        unknown = set(want_s) - {s.name for s in servers}
        if unknown:
            sys.exit(f"unknown BENCH_SERVERS: {', '.join(sorted(unknown))} (see --list)")
        servers = [s for s in servers if s.name in want_s]
    want_w = [w.strip() for w in os.environ.get("BENCH_WORKLOADS", "").split(",") if w.strip()]
    if not want_w and QUICK:
        want_w = QUICK_WORKLOADS
    if want_w:
        unknown = set(want_w) - set(WORKLOAD_BY_NAME)
        if unknown:
            sys.exit(f"unknown BENCH_WORKLOADS: {', '.join(sorted(unknown))} (see --list)")
    workloads = [w for w in WORKLOADS if not want_w or w.name in want_w]

    log(f"==> {len(servers)} servers x {len(workloads)} workloads, {ROUNDS} round(s) of {DURATION}s "
        f"(+{WARMUP}s warm-up), wrk -t{THREADS} -c{CONNS} (/sleep -c{SLEEP_CONNS}); logs in bench/out/")

    # status[server] = reason the whole server is out; cell_status[(server, workload)] = reason
    status: dict[str, str] = {}
    cell_status: dict[tuple[str, str], str] = {}
    results: dict[tuple[str, str], list[dict]] = {}
    shutdown_notes: dict[str, list[str]] = {}
    for s in servers:
        why = s.needs() if not (s.name == "go-nethttp" and go_err) else go_err
        if why:
            status[s.name] = f"not run: {why}"
            log(f"    {s.name}: {status[s.name]}")
    t_start = time.time()
    for rnd in range(ROUNDS):
        order = [s for s in servers if s.name not in status]
        if order:  # rotate, so no server always runs first or last in a round
            k = rnd % len(order)
            order = order[k:] + order[:k]
        for s in order:
            log(f"--- round {rnd + 1}/{ROUNDS}: {s.name}")
            run = Running(s)
            try:
                why = run.wait_ready()
                if why:
                    refused = engine_refused(run.log_text()) if s.name.endswith("-uring") else None
                    status[s.name] = (f"not run: io_uring unavailable on this machine ({refused})" if refused
                                      else f"failed to start: {why}")
                    log(f"    {status[s.name]}")
                    continue
                for w in workloads:
                    key = (s.name, w.name)
                    if w.name not in s.workloads:
                        cell_status[key] = "n/a"
                        continue
                    if cell_status.get(key, "").startswith(("WRONG", "FAILED", "CRASHED")):
                        continue
                    wrong = validate(run, w)
                    if wrong:
                        cell_status[key] = f"WRONG: {wrong}"
                        log(f"    {w.name}: {cell_status[key]}")
                        continue
                    try:
                        res = measure(run, w)
                    except (RuntimeError, subprocess.TimeoutExpired) as e:
                        res, failure = None, f"FAILED: {e}"
                    else:
                        failure = ""
                    if not run.alive():
                        # Crashed under this workload: the cell is reported, the server restarted
                        # so that the workloads after it are still measured.
                        code = run.proc.returncode
                        cell_status[key] = (f"CRASHED: the server exited (status {code}) under this load; "
                                            f"see bench/out/{s.name}.log")
                        log(f"    {w.name}: {cell_status[key]}")
                        problem = run.stop()
                        if problem:
                            shutdown_notes.setdefault(s.name, []).append(problem)
                        run = Running(s)
                        why = run.wait_ready()
                        if why:
                            status[s.name] = f"failed to restart after a crash: {why}"
                            log(f"    {status[s.name]}")
                            break
                        continue
                    if res is None:
                        cell_status[key] = failure
                        log(f"    {w.name}: {failure}")
                        continue
                    results.setdefault(key, []).append(res)
                    errs = {k: res[k] for k in ("connect", "read", "write", "status", "timeout") if res[k]}
                    extra = f"  errors {errs}" if errs else ""
                    if "tree_changed" in res:
                        extra += f"  [{res['tree_changed']}]"
                    if res["steal_pct"] >= 0.5:
                        extra += f"  steal {res['steal_pct']:.1f}%"
                    log(f"    {w.name:9} {fmt_rps(res['rps']):>9} req/s  p50 {fmt_lat(res['p50_us']):>8}  "
                        f"p99 {fmt_lat(res['p99_us']):>8}  cpu {res['cpu_us_per_req']:7.1f} us/req  "
                        f"rss {res['peak_rss_mib']:6.1f} MiB{extra}")
                    if errs.get("status"):  # non-2xx under load: re-check the answer once
                        again = validate(run, w)
                        if again:
                            cell_status[key] = f"WRONG under load: {again}"
            finally:
                problem = run.stop()
                if problem:
                    shutdown_notes.setdefault(s.name, []).append(problem)
                    log(f"    shutdown: {problem}")
    elapsed = time.time() - t_start

    summary = {f"{s}|{w}": summarize(r) for (s, w), r in results.items()}
    report = render(info, servers, workloads, status, cell_status, summary, shutdown_notes, elapsed)
    RESULTS_MD.write_text(report)
    (OUT / "results.json").write_text(json.dumps({
        "info": info, "config": config(), "status": status,
        "cells": {f"{s}|{w}": v for (s, w), v in cell_status.items()},
        "summary": summary, "runs": {f"{s}|{w}": r for (s, w), r in results.items()},
        "shutdown": shutdown_notes}, indent=1, default=str))
    print()
    print(tables_text(servers, workloads, status, cell_status, summary))
    print(ratios_text(summary))
    log(f"==> wrote {RESULTS_MD.relative_to(ROOT) if RESULTS_MD.is_relative_to(ROOT) else RESULTS_MD} "
        f"and bench/out/results.json ({elapsed / 60:.1f} min)")
    bad = [n for n in status if status[n].startswith(("failed", "crashed"))]
    bad += [f"{s}/{w}" for (s, w), v in cell_status.items() if v.startswith(("WRONG", "FAILED", "CRASHED"))]
    if bad:
        log(f"==> problems: {', '.join(bad)}")
    return 1 if bad else 0


def config() -> dict[str, object]:
    return {"quick": QUICK, "duration_s": DURATION, "rounds": ROUNDS, "warmup_s": WARMUP,
            "connections": CONNS, "sleep_connections": SLEEP_CONNS, "wrk_threads": THREADS,
            "steal_max_pct": STEAL_MAX, "steal_retries": STEAL_RETRIES,
            "wrk_cpus": WRK_CPUS or "unpinned", "server_cpus": SERVER_CPUS or "unpinned"}


# --------------------------------------------------------------------------- report


def cell(summary: dict, status: dict, cell_status: dict, s: str, w: str) -> dict | str:
    key = f"{s}|{w}"
    if key in summary and not cell_status.get((s, w), "").startswith(("WRONG", "FAILED", "CRASHED")):
        return summary[key]
    if (s, w) in cell_status:
        return cell_status[(s, w)]
    return status.get(s, "not run")


def tables_text(servers, workloads, status, cell_status, summary) -> str:
    out = []
    names = [s.name for s in servers]
    width = max(len(n) for n in names) if names else 10
    out.append("Requests/s, median of the rounds (n/a: the server does not do it)")
    out.append(f"{'server':<{width}} " + " ".join(f"{w.name:>10}" for w in workloads))
    for s in names:
        row = []
        for w in workloads:
            c = cell(summary, status, cell_status, s, w.name)
            row.append(f"{fmt_rps(c['rps_median']):>10}" if isinstance(c, dict) else f"{short(c):>10}")
        out.append(f"{s:<{width}} " + " ".join(row))
    return "\n".join(out) + "\n"


# -- pieces of the RESULTS files that bench/sdk.py and bench/hosting.py write too


def command_line(script: str, results_var: str | None = None) -> str:
    """The line naming the command that made a RESULTS file: ``script`` with the
    BENCH_* settings it ran under (less ``results_var``, the file's own path)."""
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(os.environ.items())
                   if k.startswith("BENCH_") and k != results_var)
    return f"Command: `{env + ' ' if env else ''}python3 {script}`\n"


def short_run_note() -> list[str]:
    """A warning line when the run was too short to be a result."""
    if QUICK or ROUNDS < 3 or DURATION < 5:
        return [f"> **Short run** ({DURATION}s x {ROUNDS} round(s)): indicative, not a settled result.\n"]
    return []


def machine_lines(info: dict) -> list[str]:
    """The CPUs, memory, kernel, OS and load average at the start."""
    return [f"- CPUs: {info['nproc']} x {info['cpu_model']}; memory {info['memory']}",
            f"- kernel {info['kernel']}; {info['os']}; load average at start {' '.join(info['loadavg'])}"]


#: How CPU per request is measured, for one gateway and one worker against a peer.
CPU_METHOD = ("- CPU µs/req: utime+stime of the server's whole process tree (for CovetPy the gateway *and* its "
              "worker) over the measured run, per request; wrk's own CPU is not counted. The gateway is a second "
              "process with Go processors of its own, so CovetPy's one worker is not one core: CPU per request is "
              "the cost comparison that does not depend on it.")


def steal_method() -> str:
    """How a run with too much hypervisor steal is treated."""
    return (f"- Steal above {STEAL_MAX:g}% of the machine's CPU time during a run: measured again (up to "
            f"{STEAL_RETRIES} times), the run with the least kept; a cell whose kept run is still above is marked †.")


def server_lines(servers: list, status: dict) -> list[str]:
    """One line per server: its name, what it is, and what went wrong with it, if anything."""
    return [f"- `{s.name}`: {s.label}" + (f" — {status[s.name]}" if s.name in status else "") for s in servers]


def table_row(lead: list[str], x: dict | None, missing: str) -> str:
    """A results-table row: the ``lead`` cells, then ``x``'s result cells, or ``missing``
    and empty cells when it has none."""
    cells = " | ".join(lead)
    return f"| {cells} | {result_cells(x)} |" if x is not None else f"| {cells} | {missing} | | | | | | | |"


def result_cells(x: dict) -> str:
    """A summarized cell's columns for a results table: req/s | min..max | p50 | p99 |
    CPU µs/req | peak RSS MiB | steal % | errors."""
    errs = ", ".join(f"{k} {n:.0f}" for k, n in x["errors"].items())
    return (f"{fmt_rps(x['rps_median'])} | {fmt_rps(x['rps_min'])}..{fmt_rps(x['rps_max'])} | "
            f"{fmt_lat(x['p50_us'])} | {fmt_lat(x['p99_us'])} | {x['cpu_us_per_req']:.1f} | "
            f"{x['peak_rss_mib']:.1f} | {x['steal_pct_max']:.1f}{stolen_mark(x)} | {errs or '-'}")


def ratio_text(x: dict, y: dict, target: float | None = None) -> str:
    """CovetPy's summarized cell ``x`` against a peer's ``y``: the req/s ratio, the
    target met or not (when given), and the CPU-per-request ratio."""
    r = x["rps_median"] / y["rps_median"]
    cpu = x["cpu_us_per_req"] / y["cpu_us_per_req"] if y["cpu_us_per_req"] else float("nan")
    met = f" — {target:g}x target **{'met' if r >= target else 'not met'}**" if target is not None else ""
    return (f"{r:.2f}x ({fmt_rps(x['rps_median'])} vs {fmt_rps(y['rps_median'])} req/s){met}; "
            f"CPU {cpu:.2f}x ({x['cpu_us_per_req']:.1f} vs {y['cpu_us_per_req']:.1f} µs)")


def stolen_mark(c: dict) -> str:
    """" †" for a cell whose worst kept round saw more steal than STEAL_MAX, else ""."""
    return " †" if c.get("steal_pct_max", 0.0) > STEAL_MAX else ""


def short(reason: str) -> str:
    if reason == "n/a":
        return "n/a"
    for k in ("WRONG", "FAILED", "CRASHED", "failed", "not run"):
        if reason.startswith(k):
            return k.upper() if k != "not run" else "not run"
    return reason[:10]


def covet_row(summary: dict, name: str) -> str:
    """The row that stands for CovetPy's covet-N in a comparison: covet-N-netpoll (the
    gateway's default engine) when it was measured, else covet-N-uring. Any other name is
    itself."""
    if name not in ("covet-1", "covet-2"):
        return name
    netpoll = f"{name}-{ENGINES[1]}"
    return netpoll if any(k.startswith(netpoll + "|") for k in summary) else f"{name}-{ENGINES[0]}"


def ratio(summary: dict, a: str, b: str, w: str | tuple[str, str], metric: str = "rps_median") -> str:
    """Server ``a`` against server ``b`` on workload ``w``; a pair of workloads compares
    ``a`` on the first with ``b`` on the second (one server's sync handler against its
    async one)."""
    wa, wb = (w, w) if isinstance(w, str) else w
    ra, rb = covet_row(summary, a), covet_row(summary, b)
    x, y = summary.get(f"{ra}|{wa}"), summary.get(f"{rb}|{wb}")
    if not x or not y or not y[metric]:
        return "n/a (not measured)"
    row = f"{ra}: " if ra != a else ""  # a covet-N resolved to one engine's row: say which
    return f"{x[metric] / y[metric]:.2f}x ({row}{fmt_val(x[metric], metric)} vs {fmt_val(y[metric], metric)})"


def fmt_val(v: float, metric: str) -> str:
    if metric == "cpu_us_per_req":
        return f"{v:.1f} µs"
    return fmt_lat(v) if metric.endswith("_us") else f"{fmt_rps(v)} req/s"


RATIOS = [
    ("CovetPy 1 worker / uvicorn+Starlette 1 worker, /plaintext req/s", "covet-1", "uvicorn-starlette-1", "plaintext", "rps_median"),
    ("CovetPy 1 worker / uvicorn+Starlette 1 worker, /json req/s", "covet-1", "uvicorn-starlette-1", "json", "rps_median"),
    ("CovetPy 1 worker / uvicorn raw ASGI 1 worker, /plaintext req/s", "covet-1", "uvicorn-asgi-1", "plaintext", "rps_median"),
    ("CovetPy 1 worker / uvicorn raw ASGI 1 worker, /json req/s", "covet-1", "uvicorn-asgi-1", "json", "rps_median"),
    ("CovetPy 1 worker / Granian RSGI 1 worker, /plaintext req/s", "covet-1", "granian-rsgi-1", "plaintext", "rps_median"),
    ("CovetPy 1 worker / Granian RSGI 1 worker, /json req/s", "covet-1", "granian-rsgi-1", "json", "rps_median"),
    ("CovetPy 1 worker / Granian ASGI 1 worker, /plaintext req/s", "covet-1", "granian-asgi-1", "plaintext", "rps_median"),
    ("CovetPy 1 worker / Granian ASGI 1 worker, /json req/s", "covet-1", "granian-asgi-1", "json", "rps_median"),
    ("CovetPy 1 worker, sync (`def`) handler / async handler, /json-sync vs /json req/s", "covet-1", "covet-1", ("json-sync", "json"), "rps_median"),
    ("CovetPy 1 worker, `def` handler on the loop (sync_to_thread=False) / async handler, /json-inline vs /json req/s", "covet-1", "covet-1", ("json-inline", "json"), "rps_median"),
    ("CovetPy 1 worker / uvicorn+Starlette 1 worker, sync endpoints, /json-sync req/s", "covet-1", "uvicorn-starlette-1", "json-sync", "rps_median"),
    ("CovetPy 2 workers / Go net/http, /json req/s", "covet-2", "go-nethttp", "json", "rps_median"),
    (f"CovetPy 1 worker / uvicorn+Starlette 1 worker, p99 at {CONNS} connections, /plaintext", "covet-1", "uvicorn-starlette-1", "plaintext", "p99_us"),
    (f"CovetPy 1 worker / uvicorn+Starlette 1 worker, p99 at {CONNS} connections, /json", "covet-1", "uvicorn-starlette-1", "json", "p99_us"),
]

# The engines against each other (issue 19). CPU is the whole tree's (gateway and
# workers); bench/engines.py splits off the gateway's own.
ENGINE_RATIOS = [
    (f"CovetPy {n} worker{'s' * (n > 1)}, uring / netpoll, /{w} {what}", f"covet-{n}-uring", f"covet-{n}-netpoll", w, m)
    for n in (1, 2) for w in ("plaintext", "json")
    for what, m in (("req/s", "rps_median"), ("CPU per request (gateway and workers)", "cpu_us_per_req"))
]


def ratios_text(summary: dict) -> str:
    lines = ["Ratios (req/s: above 1 means CovetPy is faster; p99: below 1 means CovetPy's tail is shorter). "
             "CovetPy is its covet-N-netpoll row, the gateway's default engine, or covet-N-uring where no "
             "netpoll row was measured (the ratio then names the row)."]
    for label, a, b, w, m in RATIOS:
        lines.append(f"- {label}: {ratio(summary, a, b, w, m)}")
    lines.append("")
    lines.append("Engines (req/s: above 1 means uring is faster; CPU per request: below 1 means uring is cheaper)")
    for label, a, b, w, m in ENGINE_RATIOS:
        lines.append(f"- {label}: {ratio(summary, a, b, w, m)}")
    return "\n".join(lines) + "\n"


def render(info, servers, workloads, status, cell_status, summary, shutdown_notes, elapsed) -> str:
    cfg = config()
    v = info["versions"]
    L: list[str] = []
    L.append("# CovetPy HTTP benchmark\n")
    L.append(f"Generated by `python3 bench/run.py` (`make bench`; `make bench-worker` runs it for four servers) "
             f"on {time.strftime('%Y-%m-%d %H:%M %Z')}; this file is rewritten by every run. Raw numbers: "
             "`bench/out/results.json`.\n")
    L.append(command_line("bench/run.py"))
    if QUICK or ROUNDS < 3 or DURATION < 5:
        L.append(f"> **Smoke run** ({DURATION}s x {ROUNDS} round(s)): these numbers only show that the harness "
                 "works; they are not results. Run `make bench` on a quiet machine for those.\n")
    elif DURATION < 10:
        L.append(f"> **Shortened run**: {DURATION}s per measured run instead of the default 10s, "
                 f"{ROUNDS} interleaved rounds.\n")
    L.append("## Machine\n")
    L.append(f"- CPUs: {info['nproc']} x {info['cpu_model']}; memory {info['memory']}")
    L.append(f"- kernel {info['kernel']}; {info['os']}; load average at start {' '.join(info['loadavg'])}")
    L.append(f"- CovetPy {info['covet']}")
    L.append(f"- {shown(VENV)} Python {v.get('python', '?')}: " + ", ".join(
        f"{p} {v.get(p, '?')}" for p in VERSION_PACKAGES))
    L.append(f"- {info['nginx']}; {info['go']} (bench/gohttp); {info['wrk']}")
    L.append("")
    L.append("## Method\n")
    L.append(f"- Every server listens on 127.0.0.1 and is driven by `wrk -t{THREADS} -c{CONNS} -d{DURATION}s "
             f"--latency --timeout 5s` over HTTP/1.1 keep-alive (`-c{SLEEP_CONNS}` for /sleep), one workload at a "
             f"time, after {WARMUP}s of unmeasured warm-up load on the same endpoint.")
    L.append(f"- {ROUNDS} interleaved round(s): each round starts every server in turn (the order rotated by one "
             "server per round), runs all its workloads, and stops it, so no server's runs are back to back. "
             "req/s is the median over the rounds, with min..max; p50/p99 are the median of the rounds' values "
             "(wrk's latency histogram).")
    L.append("- Before loading an endpoint the harness requests it once with urllib and checks status 200, the "
             "media type and the exact body (`/users/42` must give the integer 42; /echo must return the 64 KiB it "
             "was sent; /sleep must take at least 10 ms). A wrong answer is reported as WRONG and not loaded.")
    L.append("- CPU/req: utime+stime of the server's whole process tree (the root process and every descendant, "
             "e.g. the CovetPy gateway *and* its workers, uvicorn's supervisor and workers) read from "
             "/proc/PID/stat right before and after the measured run, divided by the requests completed. "
             "Peak RSS: the tree's summed resident set (statm) sampled every 100 ms during the measured run. wrk's "
             "own CPU is not counted.")
    L.append(f"- Pinning: wrk {cfg['wrk_cpus']}, servers {cfg['server_cpus']} (env BENCH_WRK_CPUS / "
             "BENCH_SERVER_CPUS take a `taskset -c` list). On a 2-core machine, pinning wrk to one core and the "
             "server to the other would make every 2-worker configuration share one core, so both are left to the "
             "scheduler; wrk uses one thread, so it takes at most one core. Fast servers (nginx, Go) are therefore "
             "client-bound here and their req/s is a floor, not their ceiling; CPU/req is the fairer cost figure.")
    L.append("- Apps (bench/apps/, bench/gohttp/): the same answers everywhere, async handlers where the framework "
             "has them. CovetPy: the native `Covet` API served by `bin/covet-gateway --workers N --log-level warn "
             f"--engine E`, workers run by {shown(REPO_PY)} (the SDK as checked out), one row per IO engine: "
             "covet-N-uring (io_uring) and covet-N-netpoll (Go's netpoller). The gateway's default engine is "
             "netpoll, so the ratios against other servers use the netpoll rows (the uring rows where only they "
             "were measured; the ratio then says so). Granian: raw RSGI app "
             "(`--interface rsgi`) and the raw ASGI app (`--interface asgi`), uvloop, HTTP/1 only. uvicorn: "
             "`--loop uvloop --http httptools --no-access-log`, with Starlette, the raw ASGI app, FastAPI. "
             "Robyn: `--processes 1 --workers 1`. socketify: its native App, one process. gunicorn: `-k sync -w 2`, "
             "raw WSGI (the sync worker closes every connection after its response, so wrk reconnects each "
             "request). Go: net/http + ServeMux, GOMAXPROCS default. nginx: `return 200` for /plaintext only, "
             "`worker_processes auto`, running as the current user from a config in a temporary directory.")
    L.append(f"- Steal: the share of the machine's CPU time the hypervisor took during a measured run "
             f"(/proc/stat). A run above {STEAL_MAX:g}% is measured again (up to {STEAL_RETRIES} more time(s)) and the "
             "run with the least steal is kept; the tables give the most any kept round saw, and a cell above the "
             "limit is marked †: its figures include time the host gave to its other tenants.")
    L.append("- Logging is at warning level or off everywhere; access logs off.")
    L.append(f"- This run: {elapsed / 60:.1f} min. Configuration: "
             + ", ".join(f"{k}={val}" for k, val in cfg.items()) + ".\n")
    L.append("## Workloads\n")
    for w in WORKLOADS:
        L.append(f"- `{w.name}`: {w.describe}; wrk -c{conns_for(w)}")
    L.append("")
    L.append("## Servers\n")
    for s in servers:
        extra = f" — {status[s.name]}" if s.name in status else ""
        note = f" ({s.note})" if s.note else ""
        L.append(f"- `{s.name}`: {s.label}{note}{extra}")
    L.append("")
    L.append("## Ratios\n")
    L.append(ratios_text(summary))
    L.append("## Requests/s (median)\n")
    L.append("| server | " + " | ".join(w.name for w in workloads) + " |")
    L.append("|---|" + "---:|" * len(workloads))
    for s in servers:
        row = []
        for w in workloads:
            c = cell(summary, status, cell_status, s.name, w.name)
            row.append(fmt_rps(c["rps_median"]) + stolen_mark(c) if isinstance(c, dict) else short(c))
        L.append(f"| {s.name} | " + " | ".join(row) + " |")
    L.append("")
    for w in workloads:
        L.append(f"## {w.name}: {w.describe}, wrk -c{conns_for(w)}\n")
        L.append("| server | req/s | min..max | p50 | p99 | CPU µs/req | peak RSS MiB | steal % | errors |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for s in servers:
            c = cell(summary, status, cell_status, s.name, w.name)
            if isinstance(c, dict):
                errs = ", ".join(f"{k} {n:.0f}" for k, n in c["errors"].items())
                if c["tree_changed"]:
                    errs += ("; " if errs else "") + "; ".join(c["tree_changed"])
                L.append(f"| {s.name} | {fmt_rps(c['rps_median'])} | {fmt_rps(c['rps_min'])}..{fmt_rps(c['rps_max'])} "
                         f"| {fmt_lat(c['p50_us'])} | {fmt_lat(c['p99_us'])} | {c['cpu_us_per_req']:.1f} "
                         f"| {c['peak_rss_mib']:.1f} | {c.get('steal_pct_max', 0.0):.1f}{stolen_mark(c)} "
                         f"| {errs or '-'} |")
            else:
                L.append(f"| {s.name} | {c} | | | | | | | |")
        L.append("")
    problems = [f"- `{s}` / `{w}`: {v}" for (s, w), v in cell_status.items() if v != "n/a"]
    problems += [f"- `{s}`: {v}" for s, v in status.items()]
    problems += [f"- `{s}` shutdown: {'; '.join(n)}" for s, n in shutdown_notes.items()]
    L.append("## Problems seen\n")
    L.append("\n".join(problems) if problems else "None: every server started, answered every workload correctly "
             "and stopped on SIGTERM with no process left behind.")
    L.append("")
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
