#!/bin/bash
# CPU per unary gRPC call, split between the gateway, its one worker and the load
# generator: the gateway (netpoll, h2c) with one worker serving
# integration/grpc/covet_app.py, ghz's UnaryCall (16 bytes each way) at CONCURRENCY,
# CALLS measured after a warm-up of a tenth of them. Also the gateway's read and
# write system calls per call (/proc/PID/io: sockets and the ring doorbells alike).
#
#   bench/grpc/cpusplit.sh [CALLS] [CONCURRENCY]      (after make build bin/ghz bin/grpc-interop.pb)
#
# PORT= picks the port (default 18931), GATEWAY= another gateway binary.
set -euo pipefail
cd "$(dirname "$0")/../.."
CALLS=${1:-20000}
CONC=${2:-50}
PORT=${PORT:-18931}
GATEWAY=${GATEWAY:-bin/covet-gateway}
for f in "$GATEWAY" bin/ghz bin/grpc-interop.pb; do
	[ -e "$f" ] || { echo "missing $f: run make build bin/ghz bin/grpc-interop.pb" >&2; exit 1; }
done
COVET_GRPC_DESCRIPTORS=$PWD/bin/grpc-interop.pb COVET_LOG_LEVEL=WARNING "$GATEWAY" --listen 127.0.0.1:$PORT \
	--app grpcinterop --workers 1 --worker-cmd "$PWD/.venv/bin/python -m covet worker covet_app:app" \
	--worker-dir "$PWD/integration/grpc" --log-level warn --engine netpoll --h2c &
GW=$!
trap 'kill $GW 2>/dev/null; wait $GW 2>/dev/null' EXIT
ghz() {
	bin/ghz --insecure --protoset bin/grpc-interop.pb --call grpc.testing.TestService/UnaryCall \
		-d '{"response_size":16,"payload":{"body":"AAAAAAAAAAAAAAAAAAAAAA=="}}' -c "$CONC" -n "$1" 127.0.0.1:$PORT
}
for _ in $(seq 100); do ghz 1 >/dev/null 2>&1 && break; sleep 0.1; done # the worker attached
ghz $((CALLS / 10)) >/dev/null
WK=$(pgrep -P $GW -f "covet worker")
ticks() { awk '{print $14 + $15}' /proc/$1/stat; }
sysc() { awk -v k="$2:" '$1 == k {print $2}' /proc/$1/io; }
g0=$(ticks $GW) w0=$(ticks $WK) r0=$(sysc $GW syscr) s0=$(sysc $GW syscw)
out=$( { /usr/bin/time -f "ghz-cpu %U %S" bin/ghz --insecure --protoset bin/grpc-interop.pb \
	--call grpc.testing.TestService/UnaryCall -d '{"response_size":16,"payload":{"body":"AAAAAAAAAAAAAAAAAAAAAA=="}}' \
	-c "$CONC" -n "$CALLS" 127.0.0.1:$PORT; } 2>&1)
g1=$(ticks $GW) w1=$(ticks $WK) r1=$(sysc $GW syscr) s1=$(sysc $GW syscw)
hz=$(getconf CLK_TCK)
echo "$out" | grep -E "Requests/sec|99 % in"
echo "$out" | awk -v n="$CALLS" -v g=$((g1 - g0)) -v w=$((w1 - w0)) -v hz="$hz" '/^ghz-cpu/ {
	printf "CPU per call: gateway %.1f us, worker %.1f us, ghz %.1f us\n", g / hz / n * 1e6, w / hz / n * 1e6, ($2 + $3) / n * 1e6 }'
awk -v n="$CALLS" -v r=$((r1 - r0)) -v w=$((s1 - s0)) \
	'BEGIN { printf "gateway system calls per call: %.2f reads, %.2f writes\n", r / n, w / n }'
