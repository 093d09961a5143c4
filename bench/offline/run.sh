#!/usr/bin/env bash
# Runs bench/run.py on a machine without network from the kit that bench/offline/kit.sh
# made (carry bench/offline/kit and bin/ with the working tree), then the passes named
# in PASSES (default "A B"):
#
#   A  every server pinned to cores 0,1; wrk -t4 on cores 8-11
#   B  servers on cores 0-11; wrk -t4 on cores 12-15
#   M  bench/cpusplit.sh for CovetPy at several GOMAXPROCS under B's pinning: M_ROUNDS
#      interleaved rounds (default 1) over M_CONFIGS, WORKERS:GOMAXPROCS pairs (default
#      "1:default 1:2 1:4 1:12 2:default 2:2 2:4 2:12"), GET M_PATH (default
#      /plaintext), 4 s each
#
#   bash bench/offline/run.sh OUTDIR        # results-A.md, results-B.md, matrix.txt
#
# With BENCH_WARMUP=1 BENCH_DURATION=4 BENCH_ROUNDS=3 and the default seven servers and
# two workloads, passes A and B took 411 s together on a 16-core machine; pass M
# takes about 80 s per round.
#
# BENCH_SERVERS, BENCH_WORKLOADS, BENCH_DURATION, BENCH_ROUNDS and BENCH_WARMUP pass
# through (covet-1 and covet-2 in BENCH_SERVERS run on both IO engines, as
# covet-N-uring and covet-N-netpoll; the timing above predates that); PASS_TIMEOUT (s) bounds each bench/run.py pass; PASS_A_CPUS, PASS_B_CPUS
# ("SERVER_CPUS WRK_CPUS"), M_SERVER_CPUS and M_WRK_CPUS change the pinning.
set -u
cd "$(dirname "$0")/../.."
R=$PWD OUTDIR=${1:?usage: run.sh OUTDIR}
KIT=$R/bench/offline/kit
PY=${PY:-$(command -v python3)}
SITE=/tmp/covet-offline-site
mkdir -p "$OUTDIR"
rm -rf "$SITE"
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$KIT"/whl/*.whl || exit 1
export PYTHONPATH="$SITE:$R/python-sdk"
# bench/run.py calls bench/.venv/bin/{python,granian,uvicorn} and .venv/bin/python:
# wrappers around this machine's python3 (a symlink would lose its site-packages
# when python3 is itself a virtual environment's).
mkdir -p bench/.venv/bin .venv/bin bench/out /tmp/covet-offline-bin
printf '#!/bin/sh\nexec %s "$@"\n' "$PY" > bench/.venv/bin/python
cp bench/.venv/bin/python .venv/bin/python
printf '#!/bin/sh\nexec %s -m granian "$@"\n' "$PY" > bench/.venv/bin/granian
printf '#!/bin/sh\nexec %s -m uvicorn "$@"\n' "$PY" > bench/.venv/bin/uvicorn
chmod +x bench/.venv/bin/* .venv/bin/python
cp "$KIT/gohttp" bench/out/gohttp
printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s "$@"\n' "$KIT/lib" "$KIT/wrk" > /tmp/covet-offline-bin/wrk
command -v curl >/dev/null || printf '#!/bin/sh\nfor a; do u=$a; done\nexec %s -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" "$u"\n' "$PY" > /tmp/covet-offline-bin/curl
chmod +x /tmp/covet-offline-bin/*
export PATH=/tmp/covet-offline-bin:$PATH
{ nproc; "$PY" -V; wrk -v 2>&1 | head -1; uname -r
  "$PY" -c 'import uvloop, msgpack, msgspec, granian, uvicorn, starlette; print("uvloop", uvloop.__version__, "granian", granian.__version__)'; } \
	2>&1 | tee "$OUTDIR/machine.txt"

export BENCH_SERVERS=${BENCH_SERVERS:-covet-1,covet-2,uvicorn-starlette-1,uvicorn-asgi-1,granian-rsgi-1,granian-asgi-1,go-nethttp}
export BENCH_WORKLOADS=${BENCH_WORKLOADS:-plaintext,json} PYTHONUNBUFFERED=1 BENCH_NO_INSTALL=1
bench_pass() { # name server-cpus wrk-cpus
	env BENCH_SERVER_CPUS="$2" BENCH_WRK_CPUS="$3" BENCH_THREADS=4 BENCH_RESULTS="$OUTDIR/results-$1.md" \
		timeout "${PASS_TIMEOUT:-600}" "$PY" bench/run.py > "$OUTDIR/log-$1.txt" 2>&1
	echo "pass $1: rc=$?"
}
for pass in ${PASSES:-A B}; do
	case $pass in
	A) bench_pass A ${PASS_A_CPUS:-0,1 8-11} ;;
	B) bench_pass B ${PASS_B_CPUS:-0-11 12-15} ;;
	M) for r in $(seq "${M_ROUNDS:-1}"); do for wp in ${M_CONFIGS:-1:default 1:2 1:4 1:12 2:default 2:2 2:4 2:12}; do
		w=${wp%%:*} p=${wp#*:}
		printf 'round %s covet-%s GOMAXPROCS=%-8s ' "$r" "$w" "$p"
		g=(); [ "$p" = default ] || g=(GOMAXPROCS="$p")
		env "${g[@]}" SERVER_CPUS="${M_SERVER_CPUS:-0-11}" WRK_CPUS="${M_WRK_CPUS:-12-15}" WRK_THREADS=4 PORT=18870 \
			bash bench/cpusplit.sh "${M_PATH:-/plaintext}" 64 4 "$w" 2>/dev/null | tail -1
	done; done | tee "$OUTDIR/matrix.txt" ;;
	*) echo "unknown pass $pass" ;;
	esac
done
