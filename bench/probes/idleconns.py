#!/usr/bin/env python3
"""Descriptor-exhaustion probe (issue 18): the gateway runs under `ulimit -n LIMIT`
and N loopback clients each open a keep-alive connection, make one request and keep
the connection idle. Reports how many were answered within --wait seconds, how long
opening them all took, and whether a fresh client is then served.

    .venv/bin/python bench/probes/idleconns.py --gateway bin/covet-gateway \
        --python .venv/bin/python --limit 256 --clients 400

It starts the gateway (one spawned worker running slowread_app.py) on 127.0.0.1 and
stops it at the end. Standard library only.
"""

import argparse
import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gateway", default="bin/covet-gateway")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--limit", type=int, default=256, help="the gateway's open-file limit (soft and hard)")
    ap.add_argument("--clients", type=int, default=400)
    ap.add_argument("--wait", type=float, default=2, help="seconds each client waits for its answer")
    a = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    worker = f"{os.path.abspath(a.python)} -m covet worker slowread_app:app"
    cmd = (f"ulimit -n {a.limit} && exec {shlex.quote(os.path.abspath(a.gateway))} --listen 127.0.0.1:{port}"
           f" --app slowread --workers 1 --log-level warn --worker-cmd {shlex.quote(worker)} --worker-dir {shlex.quote(HERE)}")
    gw = subprocess.Popen(["bash", "-c", cmd], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/hello"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url, timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or gw.poll() is not None:
                    print("gateway did not become ready", file=sys.stderr)
                    return 1
                time.sleep(0.2)
        conns, answered, t0 = [], 0, time.monotonic()
        for _ in range(a.clients):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /hello HTTP/1.1\r\nHost: probe\r\n\r\n")
            s.settimeout(a.wait)
            try:
                if s.recv(4096).startswith(b"HTTP/1.1 200"):
                    answered += 1
            except OSError:
                pass
            conns.append(s)
        took = time.monotonic() - t0
        t1 = time.monotonic()
        try:
            fresh = str(urllib.request.urlopen(url, timeout=10).status)
        except OSError as e:
            fresh = repr(e)
        fresh_s = time.monotonic() - t1
        for s in conns:
            s.close()
    finally:
        gw.terminate()
        gw.wait(30)
    print(f"ulimit -n {a.limit}: {a.clients} keep-alive clients, one request each, kept idle")
    print(f"answered within {a.wait:.0f} s: {answered} of {a.clients}; opening them all took {took:.1f} s")
    print(f"then a fresh GET /hello: {fresh} in {fresh_s:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
