#!/bin/sh
# Worker container entrypoint: wait until the gateway's control socket exists, then
# exec the command given as arguments (the image's CMD: python -m covet worker ...).
#
# The SDK connects once and exits if the socket is missing, and the gateway creates
# the socket only when it starts, so a worker container that starts first (compose
# without depends_on, or a Kubernetes pod whose containers start together) would
# otherwise crash-loop. COVET_SOCKET_WAIT (seconds, default 60) bounds the wait.
set -eu

if [ "$#" -eq 0 ]; then
	echo "covet-worker-entrypoint: no command given" >&2
	exit 2
fi
if [ -n "${COVET_CONTROL_FD:-}" ]; then
	exec "$@" # spawned by a gateway: nothing to wait for
fi
sock="${COVET_CONTROL_SOCKET:?COVET_CONTROL_SOCKET is not set}"
wait_s="${COVET_SOCKET_WAIT:-60}"
case "$wait_s" in
'' | *[!0-9]*)
	echo "covet-worker-entrypoint: COVET_SOCKET_WAIT=$wait_s is not a whole number of seconds" >&2
	exit 2
	;;
esac
tries=$((wait_s * 5))
while [ ! -S "$sock" ]; do
	if [ "$tries" -le 0 ]; then
		echo "covet-worker-entrypoint: no control socket at $sock after ${wait_s}s (is the gateway running, with the same volume?)" >&2
		exit 1
	fi
	tries=$((tries - 1))
	sleep 0.2
done
exec "$@"
