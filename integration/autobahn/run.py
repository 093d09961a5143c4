#!/usr/bin/env python3
"""Run the Autobahn|Testsuite fuzzing client against a WebSocket echo endpoint.

    run.py --wstest PATH [--url ws://HOST:PORT/PATH] [--wsecho PATH] [--engine uring]
           [--cases 1.*,2.*] [--exclude 9.*] [--reports DIR]

Without --url it starts the test-only echo server (gateway/server/internal/wsecho,
built to --wsecho) on a free loopback port and tests ws://ADDR/echo. It writes the
fuzzingclient spec, runs `wstest -m fuzzingclient`, reads reports/index.json and
prints the count of cases by behavior, then every case whose behavior (or close
behavior) is not OK, NON-STRICT or INFORMATIONAL. It exits 1 if there is one.
"""

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wstest", required=True)
    ap.add_argument("--url", default="")
    ap.add_argument("--wsecho", default="bin/wsecho")
    ap.add_argument("--engine", default="", help="wsecho's socket engine (netpoll, uring, auto)")
    ap.add_argument("--cases", default="*")
    ap.add_argument("--exclude", default="")
    ap.add_argument("--reports", default="")
    args = ap.parse_args()

    proc = None
    url = args.url
    if not url:
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
