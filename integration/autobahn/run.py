#!/usr/bin/env python3
"""Run the Autobahn|Testsuite fuzzing client against a WebSocket echo endpoint.

    run.py --wstest PATH [--url ws://HOST:PORT/PATH | --stack | --wsecho PATH] [--engine uring]
           [--cases 1.*,2.*] [--exclude 9.*] [--reports DIR]

With --stack it starts the real stack on a free loopback port (--gateway, default
bin/covet-gateway, with one --python worker serving integration/python/ws_app.py) and
tests its /ws/echo route; without --url or --stack, the test-only echo server
(gateway/server/internal/wsecho, built to --wsecho: the gateway's front end with an
in-process echo backend) at ws://ADDR/echo. It writes the
fuzzingclient spec, runs `wstest -m fuzzingclient`, reads reports/index.json and
prints the count of cases by behavior, then every case whose behavior (or close
behavior) is not OK, NON-STRICT or INFORMATIONAL. It exits 1 if there is one.
"""

import argparse
import collections
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

ACCEPTED = {"OK", "NON-STRICT", "INFORMATIONAL"}


def start_echo(wsecho, engine):
    proc = subprocess.Popen(
        [wsecho, "-listen", "127.0.0.1:0", "-engine", engine],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        sys.exit("wsecho did not start: %r" % line)
    return proc, "ws://%s/echo" % line[len("listening on "):]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_stack(gateway, python, engine):
    """The real stack: bin/covet-gateway with one Python worker serving
    integration/python/ws_app.py, whose /ws/echo route echoes every message; the 9.*
    cases send messages of up to 16 MiB, so ws_max_message_bytes is 16 MiB."""
    here = os.path.dirname(os.path.abspath(__file__))
    port = free_port()
    argv = [gateway, "--listen", "127.0.0.1:%d" % port, "--app", "wsapp", "--workers", "1",
            "--worker-cmd", "%s -m covet worker ws_app:app" % python,
            "--worker-dir", os.path.join(here, "..", "python"),
            "--ws-max-message-bytes", "16777216", "--drain-timeout", "5s"]
    if engine:
        argv += ["--engine", engine]
    log = open(os.path.join(tempfile.gettempdir(), "autobahn-gateway-%d.log" % port), "wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/r/plain")
            if c.getresponse().status == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            sys.exit("the gateway did not start (log: %s)" % log.name)
        time.sleep(0.1)
    return proc, "ws://127.0.0.1:%d/ws/echo" % port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wstest", required=True)
    ap.add_argument("--url", default="")
    ap.add_argument("--wsecho", default="bin/wsecho")
    ap.add_argument("--stack", action="store_true",
                    help="test the real stack: --gateway with a --python worker's echo route")
    ap.add_argument("--gateway", default="bin/covet-gateway")
    ap.add_argument("--python", default=".venv/bin/python")
    ap.add_argument("--engine", default="", help="wsecho's socket engine (netpoll, uring, auto)")
    ap.add_argument("--cases", default="*")
    ap.add_argument("--exclude", default="")
    ap.add_argument("--reports", default="")
    args = ap.parse_args()

    proc = None
    url = args.url
    if not url and args.stack:
        proc, url = start_stack(args.gateway, os.path.abspath(args.python), args.engine)
    elif not url:
        proc, url = start_echo(args.wsecho, args.engine)
    work = tempfile.mkdtemp(prefix="autobahn-")
    reports = args.reports or os.path.join(work, "reports")
    spec = {
        "outdir": reports,
        "servers": [{"agent": "covetpy", "url": url}],
        "cases": args.cases.split(","),
        "exclude-cases": [c for c in args.exclude.split(",") if c],
        "exclude-agent-cases": {},
    }
    spec_path = os.path.join(work, "spec.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f, indent=2)
    print("==> wstest -m fuzzingclient against", url, "(reports in %s)" % reports, flush=True)
    try:
        rc = subprocess.call(
            [args.wstest, "-m", "fuzzingclient", "-s", spec_path],
            cwd=work,
            stdout=subprocess.DEVNULL,
        )
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    if rc != 0:
        sys.exit("wstest exited %d" % rc)
    with open(os.path.join(reports, "index.json")) as f:
        index = json.load(f)
    results = index["covetpy"]
    counts = collections.Counter(r["behavior"] for r in results.values())
    print("cases:", len(results), " by behavior:", dict(sorted(counts.items())))
    bad = []
    for case, r in sorted(results.items(), key=lambda kv: [int(x) for x in kv[0].split(".")]):
        if r["behavior"] not in ACCEPTED or r["behaviorClose"] not in ACCEPTED:
            bad.append(case)
            print("  %s: behavior %s, close %s (%s)" % (case, r["behavior"], r["behaviorClose"], r.get("reportfile", "")))
    if bad:
        sys.exit("%d case(s) not OK, NON-STRICT or INFORMATIONAL" % len(bad))
    print("all cases OK, NON-STRICT or INFORMATIONAL")


if __name__ == "__main__":
    main()
