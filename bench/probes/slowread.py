#!/usr/bin/env python3
"""Slow-reader probe (issue 18): N loopback clients each ask for a 5 MB response and
never read it. Reports the resident memory (VmRSS) of the gateway and of its workers
before, at the peak during the attack, when the clients leave, and --after seconds
later, whether a fresh client is served during the attack, and the gateway's limit
counters.

    .venv/bin/python bench/probes/slowread.py --gateway bin/covet-gateway \
        --python .venv/bin/python --clients 200 --hold 20 --after 60 [-- gateway flags]

It starts the gateway (one spawned worker running slowread_app.py) on 127.0.0.1
itself, and stops it at the end. Standard library only. Linux only (/proc).
"""

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            out.append(int(d))
    return out


def get(port: int, path: str, timeout: float) -> tuple[int, float]:
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            r.read()
            return r.status, time.monotonic() - t0
    except urllib.error.HTTPError as e:
        return e.code, time.monotonic() - t0
    except OSError:
        return 0, time.monotonic() - t0


def metrics(port: int) -> dict[str, float]:
    want = ("covet_slow_readers_shed_total", "covet_response_budget_shed_total",
            "covet_response_budget_waits_total", "covet_slow_writes_total",
            "covet_memory_releases_total", "covet_connections_shed_total")
    out: dict[str, float] = {}
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                m = re.match(r"^(\w+)(\{[^}]*\})? (\S+)$", line)
                if m and m.group(1) in want:
                    out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    except OSError:
        pass
    return out


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gateway", default="bin/covet-gateway")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--hold", type=float, default=20, help="seconds the clients stay, never reading")
    ap.add_argument("--after", type=float, default=60, help="seconds to wait after they left")
    ap.add_argument("extra", nargs="*", help="more gateway flags, after --")
    a = ap.parse_args()
    a.python = os.path.abspath(a.python)  # the workers run in this directory

    port, admin = free_port(), free_port()
    gw = subprocess.Popen(
        [a.gateway, "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}",
         "--app", "slowread", "--workers", "1", "--log-level", "warn",
         "--worker-cmd", f"{a.python} -m covet worker slowread_app:app", "--worker-dir", HERE, *a.extra])
    try:
        deadline = time.monotonic() + 30
        while get(port, "/hello", 1)[0] != 200:
            if time.monotonic() > deadline or gw.poll() is not None:
                print("gateway did not become ready", file=sys.stderr)
                return 1
            time.sleep(0.2)
        workers = children(gw.pid)
        sample = lambda: (rss_kib(gw.pid), sum(rss_kib(w) for w in workers))  # noqa: E731
        base = sample()

        socks = []
        for _ in range(a.clients):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /5mb HTTP/1.1\r\nHost: probe\r\n\r\n")
            socks.append(s)
        peak = base
        fresh = None
        t_end = time.monotonic() + a.hold
        while time.monotonic() < t_end:
            g, w = sample()
            peak = (max(peak[0], g), max(peak[1], w))
            if fresh is None and time.monotonic() > t_end - a.hold / 2:
                fresh = get(port, "/hello", 10)  # a fresh client, halfway through
            time.sleep(0.5)
        g, w = sample()
        peak = (max(peak[0], g), max(peak[1], w))
        # How many of the clients the gateway had cut: their socket reads EOF or an
        # error once the buffered bytes are drained (non-blocking peek of the end).
        cut = 0
        for s in socks:
            s.setblocking(False)
            try:
                while True:
                    b = s.recv(1 << 20)
                    if not b:
                        cut += 1
                        break
            except BlockingIOError:
                pass
            except OSError:
                cut += 1
        left = sample()
        for s in socks:
            s.close()
        time.sleep(a.after)
        after = sample()
        m = metrics(admin)
    finally:
        gw.send_signal(signal.SIGTERM)
        try:
            gw.wait(30)
        except subprocess.TimeoutExpired:
            gw.kill()

    print(f"slow readers: {a.clients} clients x GET /5mb, never reading, {a.hold:.0f} s; then {a.after:.0f} s idle")
    print(f"{'':28}{'gateway':>10}{'worker':>10}")
    for name, (g, w) in [("before", base), ("peak during the attack", peak),
                         ("when the clients left", left), (f"{a.after:.0f} s after they left", after)]:
        print(f"{name:28}{mib(g):>10}{mib(w):>10}")
    if fresh:
        print(f"fresh GET /hello halfway through: status {fresh[0]} in {fresh[1]:.2f} s")
    print(f"clients the gateway had closed by the end of the attack: {cut} of {a.clients}")
    for k, v in sorted(m.items()):
        print(f"{k} {v:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
