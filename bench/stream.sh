#!/usr/bin/env bash
# One large streamed response, end to end: throughput, CPU per GiB and the gateway's
# peak memory.
#
#   bench/stream.sh [MIB] [RUNS]        # defaults: 1024 MiB, 3 runs
#
# Serves bench/apps/covet_app.py's /stream (64 KiB chunks from an async generator)
# with bin/covet-gateway and one worker of the repo's .venv Python on
# 127.0.0.1:${PORT:-18801}, downloads it with curl to /dev/null, and prints per run:
# MiB/s, the CPU seconds per GiB of the gateway and of the worker (utime + stime from
# /proc), and the gateway's peak RSS (VmHWM) before and after. A fresh server per run,
# so the peak belongs to that one response. GATEWAY names another gateway binary and
# PYTHONPATH another SDK (A/B runs; docs/performance.md, "Response flow control").
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-1024} runs=${2:-3}
port=${PORT:-18801}
for _ in $(seq "$runs"); do
	"${GATEWAY:-bin/covet-gateway}" --listen "127.0.0.1:$port" --app bench --workers 1 \
		--worker-cmd "$PWD/.venv/bin/python -m covet worker covet_app:app" --worker-dir bench/apps \
		--log-level warn &
	gw=$!
	trap 'kill $gw 2>/dev/null; wait $gw 2>/dev/null' EXIT
	for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/plaintext" && break; sleep 0.1; done
	worker=$(pgrep -P "$gw")
	cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
	hwm() { awk '/^VmHWM/{print int($2 / 1024)}' "/proc/$gw/status"; }
	g0=$(cpu "$gw") w0=$(cpu "$worker") h0=$(hwm)
	speed=$(curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$port/stream?mb=$mib")
	g1=$(cpu "$gw") w1=$(cpu "$worker") h1=$(hwm)
	hz=$(getconf CLK_TCK)
	awk -v s="$speed" -v g=$((g1 - g0)) -v w=$((w1 - w0)) -v hz="$hz" -v gib="$mib" -v h0="$h0" -v h1="$h1" 'BEGIN {
		printf "%.0f MiB/s  CPU s/GiB: gateway %.3f, worker %.3f  gateway peak RSS %d -> %d MiB\n",
			s / 1048576, g / hz / (gib / 1024), w / hz / (gib / 1024), h0, h1 }'
	kill "$gw"; wait "$gw" 2>/dev/null || true
	trap - EXIT
done
