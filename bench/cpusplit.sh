#!/usr/bin/env bash
# CPU per request of the gateway and of each worker, separately, under wrk.
#
#   bench/cpusplit.sh [PATH] [CONNECTIONS] [SECONDS] [WORKERS]
#   bench/cpusplit.sh /plaintext 64 5 1          # the defaults
#   COVET_WORKER_SPIN_US=50 bench/cpusplit.sh /plaintext 1
#
# Serves bench/apps/covet_app.py with bin/covet-gateway (make build) and the repo's
# .venv Python on 127.0.0.1:${PORT:-18800}, warms up for 1 s, then runs wrk with one
# thread and prints req/s, p50, p99 and the CPU time (utime + stime from /proc) each
# process used per request. make bench gives the same CPU figure for the whole process
# tree; this splits it. The environment reaches the workers (COVET_LOOP,
# COVET_WORKER_SPIN_US) and the gateway (GOMAXPROCS). GATEWAY_FLAGS adds gateway flags,
# GATEWAY names another gateway binary and WORKER_PYTHON another worker interpreter
# (for A/B runs; PYTHONPATH reaches the workers), SERVER_CPUS and WRK_CPUS
# (taskset -c lists) pin the gateway with its workers and wrk, WRK_THREADS sets wrk -t,
# WRK_ARGS adds wrk arguments (e.g. WRK_ARGS="-s bench/out/wrk-echo.lua" for POST /echo;
# make bench writes those scripts). WORKER_APP serves another app of bench/apps, with
# the worker's flags (e.g. WORKER_APP="hosted_flask:app --interface wsgi --app-name bench": the gateway
# serves the app named bench).
set -euo pipefail
cd "$(dirname "$0")/.."
path=${1:-/plaintext} conns=${2:-64} secs=${3:-5} workers=${4:-1}
port=${PORT:-18800}
url="http://127.0.0.1:$port$path"

srv_pin=() wrk_pin=()
[ -n "${SERVER_CPUS:-}" ] && srv_pin=(taskset -c "$SERVER_CPUS")
[ -n "${WRK_CPUS:-}" ] && wrk_pin=(taskset -c "$WRK_CPUS")
# shellcheck disable=SC2086
"${srv_pin[@]}" "${GATEWAY:-bin/covet-gateway}" --listen "127.0.0.1:$port" --app bench --workers "$workers" \
	--worker-cmd "${WORKER_PYTHON:-$PWD/.venv/bin/python} -m covet worker ${WORKER_APP:-covet_app:app}" --worker-dir bench/apps \
	--log-level warn ${GATEWAY_FLAGS:-} &
gw=$!
trap 'kill $gw 2>/dev/null; wait $gw 2>/dev/null' EXIT
for _ in $(seq 100); do curl -s -o /dev/null "$url" && break; sleep 0.1; done # any answer: it is up
# shellcheck disable=SC2086
"${wrk_pin[@]}" wrk -t"${WRK_THREADS:-1}" -c"$conns" -d1s ${WRK_ARGS:-} "$url" >/dev/null

pids="$gw $(pgrep -P "$gw" | tr '\n' ' ')"
cpu() { for p in $pids; do awk '{print $14 + $15}' "/proc/$p/stat"; done | tr '\n' ' '; }
before=$(cpu)
# shellcheck disable=SC2086
out=$("${wrk_pin[@]}" wrk -t"${WRK_THREADS:-1}" -c"$conns" -d"${secs}s" --latency ${WRK_ARGS:-} "$url")
after=$(cpu)

python3 - "$out" "$before" "$after" "$(getconf CLK_TCK)" <<'PY'
import re, sys
out, before, after, tck = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), int(sys.argv[4])
n = int(re.search(r"(\d+) requests in", out).group(1))
rps = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
p50 = re.search(r"\s50%\s+(\S+)", out).group(1)
p99 = re.search(r"\s99%\s+(\S+)", out).group(1)
us = [(int(a) - int(b)) / tck * 1e6 / n for b, a in zip(before, after)]
workers = " ".join(f"{u:.1f}" for u in us[1:])
print(f"{rps} req/s  p50 {p50}  p99 {p99}  CPU us/request: gateway {us[0]:.1f}, workers {workers}")
PY
