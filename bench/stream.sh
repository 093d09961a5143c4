#!/usr/bin/env bash
# Large streamed responses, end to end: throughput, CPU per GiB and the gateway's
# peak memory.
#
#   bench/stream.sh [MIB] [RUNS]                 # defaults: 1024 MiB, 3 runs, 1 client
#   CLIENTS=16 RATE=20M bench/stream.sh 64 1     # 16 clients reading 20 MB/s each
#
# Serves bench/apps/covet_app.py's /stream (64 KiB chunks from an async generator)
# with bin/covet-gateway and one worker of the repo's .venv Python on
# 127.0.0.1:${PORT:-18801}, downloads it with ${CLIENTS:-1} concurrent curl clients
# (curl --limit-rate RATE when RATE is set) to /dev/null, and prints per run: MiB/s of
# all clients together, the CPU seconds per GiB of the gateway and of the worker
# (utime + stime from /proc), and the gateway's peak RSS (VmHWM) before and after. A
# fresh server per run, so the peak belongs to that run. GATEWAY names another gateway
# binary and PYTHONPATH another SDK (A/B runs; docs/performance.md, "Response flow
# control").
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-1024} runs=${2:-3} clients=${CLIENTS:-1}
port=${PORT:-18801}
url="http://127.0.0.1:$port/stream?mb=$mib"
limit=()
[ -n "${RATE:-}" ] && limit=(--limit-rate "$RATE")
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for _ in $(seq "$runs"); do
	"${GATEWAY:-bin/covet-gateway}" --listen "127.0.0.1:$port" --app bench --workers 1 \
		--worker-cmd "$PWD/.venv/bin/python -m covet worker covet_app:app" --worker-dir bench/apps \
		--log-level warn &
	gw=$!
	trap 'kill $gw 2>/dev/null; wait $gw 2>/dev/null' EXIT
	for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/plaintext" && break; sleep 0.1; done
	worker=$(pgrep -P "$gw")
	hwm() { awk '/^VmHWM/{print int($2 / 1024)}' "/proc/$gw/status"; }
	g0=$(cpu "$gw") w0=$(cpu "$worker") h0=$(hwm) t0=$(date +%s.%N)
	pids=()
	for _ in $(seq "$clients"); do
		curl -sf -o /dev/null "${limit[@]}" "$url" &
		pids+=($!)
	done
	wait "${pids[@]}"
	t1=$(date +%s.%N) g1=$(cpu "$gw") w1=$(cpu "$worker") h1=$(hwm)
	awk -v secs="$(echo "$t1 - $t0" | bc)" -v g=$((g1 - g0)) -v w=$((w1 - w0)) -v hz="$(getconf CLK_TCK)" \
		-v gib="$(echo "$mib * $clients / 1024" | bc -l)" -v mib="$((mib * clients))" -v h0="$h0" -v h1="$h1" 'BEGIN {
		printf "%.0f MiB/s  CPU s/GiB: gateway %.3f, worker %.3f  gateway peak RSS %d -> %d MiB\n",
			mib / secs, g / hz / gib, w / hz / gib, h0, h1 }'
	kill "$gw"; wait "$gw" 2>/dev/null || true
	trap - EXIT
done
