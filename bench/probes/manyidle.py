#!/usr/bin/env python3
"""Many idle keep-alive connections (issue 19): the gateway's memory with N idle
clients held open, and the latency of a fresh client meanwhile.

    .venv/bin/python bench/probes/manyidle.py --gateway bin/covet-gateway \
        --python .venv/bin/python --conns 100000 [--engine uring|netpoll]

It starts bin/covet-gateway on 127.0.0.1 (one spawned worker serving
bench/apps/covet_app.py) under `ulimit -n` above N, with --idle-timeout 10m,
--max-connections above N, an admin listener for its metrics, and --engine ENGINE
when one is given (without it the gateway picks its default). Then:

1. `--requests` sequential GET /plaintext on one fresh keep-alive connection: the
   baseline latency (p50, p99, max), and the gateway's VmRSS.
2. Opens N connections from several source addresses (127.0.0.2, 127.0.0.3, ...: each
   socket is bound to one before connect, so each address has its own ephemeral
   ports; --per-source at most on each), at most --window connecting at once, with
   non-blocking sockets and epoll; each sends one GET /plaintext, reads the whole
   answer and then stays open and idle.
3. Waits --settle seconds, reads the gateway's VmRSS and VmHWM (peak) from
   /proc/PID/status and covet_connections_open / covet_connections_shed_total from
   its metrics, then repeats step 1 while the N are held, and sends a second request
   on --recheck of the idle connections (spread over all of them) to show they are
   still served, not shed.
4. Closes everything and stops the gateway. Prints a markdown summary.

Bounded: --open-timeout limits step 2 (what is open by then is measured). Needs the
right to raise RLIMIT_NOFILE above N (root, or a hard limit that high). Standard
library only; Linux only.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import re
import resource
import select
import shlex
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
APPS = os.path.join(ROOT, "bench", "apps")
REQUEST = b"GET /plaintext HTTP/1.1\r\nHost: probe\r\n\r\n"
PLAINTEXT = b"Hello, World!"
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (KiB) of pid, and its open descriptors."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0])
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        pass
    return out


def metrics(admin: str) -> dict[str, float]:
    """The covet_* and go_memstats_* samples of the admin /metrics, name{labels} -> value."""
    try:
        text = urllib.request.urlopen(f"http://{admin}/metrics", timeout=10).read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line.startswith(("covet_", "go_memstats_")):
            name, _, val = line.rpartition(" ")
            try:
                out[name] = float(val)
            except ValueError:
                pass
    return out


def engine_of(m: dict[str, float]) -> str:
    for k, v in m.items():
        g = re.match(r'covet_engine_info\{engine="([^"]+)"\}', k)
        if g and v == 1:
            return g.group(1)
    return "not reported (no covet_engine_info: a gateway before the engine setting, i.e. netpoll)"


def read_answer(s: socket.socket, buf: bytes = b"") -> bytes:
    """Reads one whole response (Content-Length framed) from blocking s; returns its body."""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the answer's head")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(f"answer {head[:40]!r}")
    m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    n = int(m.group(1)) if m else 0
    while len(body) < n:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside the body")
        body += chunk
    return body


def latency(port: int, n: int) -> dict[str, float]:
    """n sequential GET /plaintext on one fresh keep-alive connection: µs per round trip."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    took = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            s.sendall(REQUEST)
            if read_answer(s) != PLAINTEXT:
                raise ConnectionError("wrong body")
            took.append((time.perf_counter() - t0) * 1e6)
    finally:
        s.close()
    took.sort()
    return {"n": n, "p50": statistics.median(took), "p99": took[min(n - 1, math.ceil(n * 0.99) - 1)],
            "max": took[-1], "mean": statistics.fmean(took)}


def answered(buf: bytes) -> bool | None:
    """True once buf holds a whole 200 answer to GET /plaintext, False if it holds a
    wrong one, None while it is incomplete."""
    if b"\r\n\r\n" not in buf:
        return None
    head, _, body = buf.partition(b"\r\n\r\n")
    m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    if not m:
        return False
    if len(body) < int(m.group(1)):
        return None
    return head.startswith(b"HTTP/1.1 200") and body == PLAINTEXT


def open_idle(port: int, n: int, sources: list[str], per_source: int, window: int,
              timeout: float) -> tuple[list[socket.socket], dict[str, int], float]:
    """Opens up to n connections (each: connect, one request, its whole answer), at
    most `window` in progress at once. Returns the idle sockets, failure counts by
    kind and the seconds it took."""
    ep = select.epoll()
    live: dict[int, list] = {}  # fd -> [socket, state, received bytes]; state 0 connecting, 1 reading
    idle: list[socket.socket] = []
    fails: dict[str, int] = {}
    started, src_i, used = 0, 0, 0
    t0 = time.monotonic()
    deadline = t0 + timeout

    def fail(fd: int, why: str) -> None:
        s = live.pop(fd)[0]
        try:
            ep.unregister(fd)
        except OSError:
            pass
        s.close()
        fails[why] = fails.get(why, 0) + 1

    while (started < n or live) and time.monotonic() < deadline:
        while started < n and len(live) < window and src_i < len(sources):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            # the port is picked at connect, unique per (source, destination) pair
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            try:
                s.bind((sources[src_i], 0))
            except OSError as e:
                s.close()
                if e.errno == errno.EADDRINUSE:  # this address's ports are spent
                    src_i, used = src_i + 1, 0
                    continue
                raise
            used += 1
            if used >= per_source:
                src_i, used = src_i + 1, 0
            started += 1
            err = s.connect_ex(("127.0.0.1", port))
            if err not in (0, errno.EINPROGRESS):
                s.close()
                fails[errno.errorcode.get(err, str(err))] = fails.get(errno.errorcode.get(err, str(err)), 0) + 1
                continue
            live[s.fileno()] = [s, 0, b""]
            ep.register(s.fileno(), select.EPOLLOUT)
        for fd, ev in ep.poll(0.5):
            ent = live.get(fd)
            if ent is None:
                continue
            s = ent[0]
            if ent[1] == 0:
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(fd, "connect " + errno.errorcode.get(err, str(err)))
                    continue
                try:
                    s.send(REQUEST)  # 40 bytes into an empty send buffer: all of it
                except OSError as e:
                    fail(fd, "send " + errno.errorcode.get(e.errno or 0, str(e.errno)))
                    continue
                ent[1] = 1
                ep.modify(fd, select.EPOLLIN)
                continue
            try:
                chunk = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError as e:
                fail(fd, "recv " + errno.errorcode.get(e.errno or 0, str(e.errno)))
                continue
            if not chunk:
                fail(fd, "closed by the gateway before answering")
                continue
            ent[2] += chunk
            ok = answered(ent[2])
            if ok is None:
                continue
            if not ok:
                fail(fd, "wrong answer")
                continue
            ep.unregister(fd)
            del live[fd]
            idle.append(s)
        if src_i >= len(sources) and started < n and not live:
            fails["source ports exhausted"] = n - started
            break
    for fd in list(live):
        fail(fd, "not answered before --open-timeout")
    ep.close()
    return idle, fails, time.monotonic() - t0


def recheck(conns: list[socket.socket], k: int, wait: float) -> tuple[int, int]:
    """A second GET /plaintext on k of the idle connections, evenly spread; (ok, tried)."""
    if not conns or k <= 0:
        return 0, 0
    step = max(1, len(conns) // k)
    picked = conns[::step][:k]
    ok = 0
    for s in picked:
        s.setblocking(True)
        s.settimeout(wait)
        try:
            s.sendall(REQUEST)
            if read_answer(s) == PLAINTEXT:
                ok += 1
        except OSError:
            pass
    return ok, len(picked)


def mib(kib: int | None) -> str:
    return f"{kib / 1024:.1f} MiB" if kib is not None else "?"


def lat_row(label: str, d: dict[str, float]) -> str:
    return f"| {label} | {d['n']} | {d['p50']:.0f} | {d['p99']:.0f} | {d['max']:.0f} | {d['mean']:.0f} |"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gateway", default=os.path.join(ROOT, "bin", "covet-gateway"))
    ap.add_argument("--python", default=os.path.join(ROOT, ".venv", "bin", "python"),
                    help="the worker's interpreter (the covet SDK installed)")
    ap.add_argument("--engine", default="", help="passed as --engine; empty: the flag is left out")
    ap.add_argument("--conns", type=int, default=100_000, help="idle connections to hold")
    ap.add_argument("--per-source", type=int, default=25_000,
                    help="connections per source address (each address has ip_local_port_range's ports)")
    ap.add_argument("--window", type=int, default=1000, help="connections being opened at once")
    ap.add_argument("--requests", type=int, default=2000, help="sequential requests per latency run")
    ap.add_argument("--recheck", type=int, default=1000, help="idle connections asked again at the end")
    ap.add_argument("--settle", type=float, default=5, help="seconds between opening and measuring")
    ap.add_argument("--open-timeout", type=float, default=300, help="longest time spent opening")
    ap.add_argument("--idle-timeout", default="10m", help="the gateway's idle_timeout")
    ap.add_argument("--gateway-flags", default="", help="more gateway flags (split like a shell)")
    ap.add_argument("--profile", default="", metavar="PREFIX",
                    help="also run the gateway with --pprof and save PREFIX.heap (heap profile, after a GC) "
                         "and PREFIX.goroutines (goroutine counts) while the connections are held")
    a = ap.parse_args()

    # The client holds N sockets and the gateway N + its own; both need the limit.
    want_fds = a.conns + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        if soft < want_fds:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want_fds, max(hard, want_fds)))
    except (ValueError, OSError) as e:
        print(f"cannot raise RLIMIT_NOFILE from {soft}/{hard} (soft/hard) to {want_fds} ({e}): run as "
              f"root with CAP_SYS_RESOURCE, or ask for --conns below {hard - 256}", file=sys.stderr)
        return 2
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    gw_limit = min(a.conns + 8192, hard)
    max_conns = min(a.conns + 4096, gw_limit - 256)
    nsrc = math.ceil(a.conns / a.per_source)
    if nsrc > 250:
        print("too many source addresses: raise --per-source", file=sys.stderr)
        return 2
    sources = [f"127.0.0.{2 + i}" for i in range(nsrc)]

    port, admin_port = free_port(), free_port()
    admin = f"127.0.0.1:{admin_port}"
    worker = f"{os.path.abspath(a.python)} -m covet worker covet_app:app"
    flags = ["--listen", f"127.0.0.1:{port}", "--admin-listen", admin, "--app", "bench", "--workers", "1",
             "--worker-cmd", worker, "--worker-dir", APPS, "--log-level", "warn",
             "--idle-timeout", a.idle_timeout, "--max-connections", str(max_conns)]
    if a.engine:
        flags += ["--engine", a.engine]
    if a.profile:
        flags.append("--pprof")
    flags += shlex.split(a.gateway_flags)
    cmd = f"ulimit -n {gw_limit} && exec {shlex.quote(os.path.abspath(a.gateway))} {shlex.join(flags)}"
    print(f"gateway: {cmd}", flush=True)
    gw = subprocess.Popen(["bash", "-c", cmd], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    conns: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/plaintext", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or gw.poll() is not None:
                print(f"gateway did not become ready (exit status {gw.poll()})", file=sys.stderr)
                return 1
            time.sleep(0.2)
        m0 = metrics(admin)
        engine = engine_of(m0)
        latency(port, 200)  # warm-up
        before = latency(port, a.requests)
        st0 = proc_status(gw.pid)
        print(f"engine {engine}; before: gateway VmRSS {mib(st0.get('VmRSS'))}; "
              f"p50 {before['p50']:.0f} µs p99 {before['p99']:.0f} µs", flush=True)

        conns, fails, took = open_idle(port, a.conns, sources, a.per_source, a.window, a.open_timeout)
        print(f"opened {len(conns)} of {a.conns} idle connections in {took:.1f} s; failures {fails or 'none'}",
              flush=True)
        time.sleep(a.settle)
        st1 = proc_status(gw.pid)
        m1 = metrics(admin)
        if a.profile:
            for what, url in (("heap", "heap?gc=1"), ("goroutines", "goroutine?debug=1")):
                try:
                    data = urllib.request.urlopen(f"http://{admin}/debug/pprof/{url}", timeout=60).read()
                    with open(f"{a.profile}.{what}", "wb") as f:
                        f.write(data)
                except OSError as e:
                    print(f"could not save the {what} profile: {e}", file=sys.stderr)
        held = latency(port, a.requests)
        st2 = proc_status(gw.pid)
        ok, tried = recheck(conns, a.recheck, 10)
        m2 = metrics(admin)
        worker_rss = None
        try:
            kids = subprocess.run(["pgrep", "-P", str(gw.pid)], capture_output=True, text=True).stdout.split()
            worker_rss = sum(proc_status(int(p)).get("VmRSS", 0) for p in kids) or None
        except OSError:
            pass
    finally:
        for s in conns:
            s.close()
        gw.terminate()
        try:
            gw.wait(30)
        except subprocess.TimeoutExpired:
            gw.kill()
            gw.wait()

    open_gauge = m1.get("covet_connections_open")
    shed = sum(v for k, v in m2.items() if k.startswith("covet_connections_shed_total"))
    print()
    print(f"### {len(conns):,} idle keep-alive connections, engine {engine}\n")
    print(f"- command: `{shlex.join([sys.executable] + sys.argv)}`")
    print(f"- {len(conns):,} of {a.conns:,} opened (one GET /plaintext answered on each) from {len(sources)} "
          f"source addresses ({sources[0]}..{sources[-1]}) in {took:.1f} s; failures: "
          + (", ".join(f"{k} {v}" for k, v in fails.items()) or "none"))
    print(f"- gateway VmRSS: {mib(st0.get('VmRSS'))} before, {mib(st1.get('VmRSS'))} with them held, "
          f"{mib(st2.get('VmRSS'))} after the latency run; VmHWM (peak) {mib(st2.get('VmHWM'))}; "
          f"descriptors {st1.get('fds', '?')}; the worker's VmRSS {mib(worker_rss)}")
    if conns and "VmRSS" in st0 and "VmRSS" in st1:
        per = (st1["VmRSS"] - st0["VmRSS"]) / len(conns)
        print(f"- {per:.1f} KiB of gateway VmRSS per idle connection; at that rate 100,000 would take "
              f"{(st0['VmRSS'] + per * 100_000) / 1024:,.0f} MiB")
    if "go_memstats_heap_inuse_bytes" in m1:
        g = {k[len("go_memstats_"):-len("_bytes")]: v / 1048576 for k, v in m1.items() if k.endswith("_bytes")}
        print(f"- the Go runtime while held (go_memstats, MiB): heap in use {g['heap_inuse']:.1f}, free heap kept "
              f"(idle less released) {g['heap_idle'] - g['heap_released']:.1f}, stacks {g['stack_inuse']:.1f}, "
              f"spans {g['mspan_inuse']:.1f}, GC metadata {g['gc_sys']:.1f}, other {g['other_sys']:.1f}; "
              f"obtained from the OS less released {g['sys'] - g['heap_released']:.1f}")
    print(f"- covet_connections_open while held: {open_gauge if open_gauge is not None else '?'}; "
          f"covet_connections_shed_total at the end: {shed:g}")
    print(f"- a second request on {tried} of the idle connections, spread over all: {ok} answered 200")
    print()
    print("| GET /plaintext, one fresh keep-alive connection, sequential | requests | p50 µs | p99 µs | max µs | mean µs |")
    print("|---|---:|---:|---:|---:|---:|")
    print(lat_row("no idle connections held", before))
    print(lat_row(f"{len(conns):,} idle connections held", held))
    return 0


if __name__ == "__main__":
    sys.exit(main())
