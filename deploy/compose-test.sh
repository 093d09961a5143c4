#!/usr/bin/env bash
# make compose-test: build the images, start docker-compose.yml for real and drive it.
#
#  1. A Docker engine: uses the running one; else starts dockerd (and stops it at the
#     end); installs docker.io, docker-compose and debootstrap with apt-get when they
#     are missing and this runs as root.
#  2. Base images: the public ones (golang:1.26-bookworm, python:3.11-slim-bookworm,
#     debian:bookworm-slim) when a registry answers; else local stand-ins, built once
#     and kept: covet-local/debian:bookworm from `debootstrap --variant=minbase` and
#     `docker import` (with the host's CA list, so HTTPS works through an egress proxy),
#     then deploy/base/golang.Dockerfile and deploy/base/python.Dockerfile on top.
#  3. `docker compose build`, then `up -d` (the v1 `docker-compose` where the plugin
#     is missing) under its own project name, host ports on 127.0.0.1 only, Grafana
#     left out (its profile is not enabled: there is no offline source for its image).
#  4. Checks, each a line PASS/FAIL: the gateway ready (its --version the SDK's), 2 registered workers, no
#     Grafana, requests answered with the example app's bodies, Prometheus scraping
#     the gateway (up == 1 and a covet_ series through its HTTP API), a third worker
#     container (scale) registering through the shared socket, a worker process killed
#     inside its container and the container restarted by its restart policy, a worker
#     container killed with `docker kill` and replaced (`up --scale`), the gateway
#     restarted and every worker registered again; requests answered all along.
#  5. `down -v`, always; on failure the containers' logs first.
#
# Exits non-zero on any failure; the last line is "compose-test: PASS ..." or
# "compose-test: FAIL ...". Settings (environment):
#   COVET_COMPOSE_BASE   auto (default) | public | local: which base images to use
#   COVET_COMPOSE_PROJECT  compose project name (default covet-compose-test)
#   COVET_KEEP_DOCKERD=1   leave a dockerd this script started running
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
start_s=$SECONDS

say() { printf '==> %s\n' "$*"; }
fails=0
passes=0
pass() {
	passes=$((passes + 1))
	printf 'PASS %s\n' "$*"
}
fail() {
	fails=$((fails + 1))
	printf 'FAIL %s\n' "$*"
}
verdict="" # the last line, printed by cleanup once the stack is down
die() {
	verdict="compose-test: FAIL ($*)"
	exit 1
}

dockerd_pid="" # a dockerd this script started
stack_up=0
cleanup() {
	local rc=$?
	if [ -z "$verdict" ]; then
		verdict="compose-test: FAIL (stopped by an unexpected error, exit status $rc)"
	fi
	if [ "$stack_up" = 1 ]; then
		if [ "$rc" != 0 ] || [ "$fails" != 0 ]; then
			say "logs of the stack"
			compose logs --no-color --tail=40 2>&1 | tail -200 || true
		fi
		local down_s=$SECONDS
		compose down -v --remove-orphans >/dev/null 2>&1 || true
		say "docker compose down -v took $((SECONDS - down_s))s"
	fi
	if [ -n "$dockerd_pid" ] && [ "${COVET_KEEP_DOCKERD:-0}" != 1 ]; then
		say "stopping the dockerd this script started"
		kill "$dockerd_pid" 2>/dev/null || true
		for _ in $(seq 1 60); do
			kill -0 "$dockerd_pid" 2>/dev/null || break
			sleep 0.5
		done
	fi
	printf '%s, %ds in all\n' "$verdict" "$((SECONDS - start_s))"
}
trap cleanup EXIT

# --- 1. Docker

need_install=()
if ! docker info >/dev/null 2>&1 && ! command -v dockerd >/dev/null; then
	need_install+=(docker.io)
fi
if ! command -v docker-compose >/dev/null && ! docker compose version >/dev/null 2>&1; then
	need_install+=(docker-compose)
fi
if [ "${#need_install[@]}" -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		say "installing ${need_install[*]} with apt-get"
		apt-get update -q >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_install[@]}" >/dev/null
	else
		die "missing ${need_install[*]}: install them (Debian: apt-get install docker.io docker-compose)"
	fi
fi

dockerd_log=""
if ! docker info >/dev/null 2>&1; then
	command -v dockerd >/dev/null || die "no Docker engine running and no dockerd to start"
	[ "$(id -u)" = 0 ] || die "no Docker engine running; start one (this script starts dockerd only as root)"
	dockerd_log=$(mktemp /tmp/covet-dockerd.XXXXXX.log)
	say "starting dockerd (log: $dockerd_log)"
	dockerd >"$dockerd_log" 2>&1 &
	dockerd_pid=$!
	for _ in $(seq 1 120); do
		docker info >/dev/null 2>&1 && break
		kill -0 "$dockerd_pid" 2>/dev/null || {
			tail -20 "$dockerd_log"
			die "dockerd exited at start"
		}
		sleep 0.5
	done
	docker info >/dev/null 2>&1 || die "dockerd did not answer within 60s"
fi

if docker compose version >/dev/null 2>&1; then
	compose_cmd=(docker compose)
else
	compose_cmd=(docker-compose)
fi
project=${COVET_COMPOSE_PROJECT:-covet-compose-test}
compose() { "${compose_cmd[@]}" -p "$project" -f "$root/docker-compose.yml" "$@"; }


# --- 2. Base images

base=${COVET_COMPOSE_BASE:-auto}
case "$base" in
auto | public | local) ;;
*) die "COVET_COMPOSE_BASE=$base: want auto, public or local" ;;
esac
if [ "$base" = auto ]; then
	base=local
	for img in golang:1.26-bookworm python:3.11-slim-bookworm debian:bookworm-slim; do
		if docker image inspect "$img" >/dev/null 2>&1 || timeout 60 docker pull -q "$img" >/dev/null 2>&1; then
			base=public
		else
			base=local
			break
		fi
	done
fi
if [ "$base" = local ]; then
	if ! docker image inspect covet-local/debian:bookworm >/dev/null 2>&1; then
		command -v debootstrap >/dev/null || {
			if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
				say "installing debootstrap with apt-get"
				DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null
			else
				die "no image registry and no debootstrap to build a local base image"
			fi
		}
		say "building covet-local/debian:bookworm (debootstrap --variant=minbase, then docker import)"
		rootfs=$(mktemp -d /tmp/covet-rootfs.XXXXXX)
		debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" \
			"${COVET_DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$rootfs.log" 2>&1 ||
			{
				tail -20 "$rootfs.log"
				die "debootstrap failed"
			}
		# The host's extra CAs (an egress proxy's, say), so HTTPS works in the builds.
		if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
			cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
			chroot "$rootfs" update-ca-certificates >/dev/null
		fi
		printf 'APT::Install-Recommends "false";\n' >"$rootfs/etc/apt/apt.conf.d/90covet-no-recommends"
		rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
		tar -C "$rootfs" -c . | docker import -c 'CMD ["bash"]' - covet-local/debian:bookworm >/dev/null
		rm -rf "$rootfs" "$rootfs.log"
	fi
	say "building the local golang and python base images (cached after the first run)"
	docker build -q -t covet-local/golang:1.26-bookworm -f deploy/base/golang.Dockerfile deploy/base >/dev/null
	docker build -q -t covet-local/python:3.11-slim-bookworm -f deploy/base/python.Dockerfile deploy/base >/dev/null
	export COVET_GO_IMAGE=covet-local/golang:1.26-bookworm
	export COVET_PYTHON_IMAGE=covet-local/python:3.11-slim-bookworm
	export COVET_DEBIAN_IMAGE=covet-local/debian:bookworm
fi
say "base images: $base"

# --- 3. Up

# Free loopback ports for the published ones (another stack may hold the defaults).
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
http_port=$(free_port)
admin_port=$(free_port)
prom_port=$(free_port)
export COVET_HTTP_PUBLISH=127.0.0.1:$http_port
export COVET_ADMIN_PUBLISH=127.0.0.1:$admin_port
export COVET_PROMETHEUS_PUBLISH=127.0.0.1:$prom_port
export COVET_GRAFANA_PUBLISH=127.0.0.1:$(free_port)
COVET_CONTROL_TOKEN=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
export COVET_CONTROL_TOKEN
export COMPOSE_PROJECT_NAME=$project

compose down -v --remove-orphans >/dev/null 2>&1 || true # a stack left by a killed run
say "docker compose build"
build_s=$SECONDS
compose build -q || die "docker compose build failed"
build_s=$((SECONDS - build_s))
say "docker compose up -d (project $project; HTTP 127.0.0.1:$http_port, admin 127.0.0.1:$admin_port, Prometheus 127.0.0.1:$prom_port)"
stack_up=1
up_s=$SECONDS
compose up -d || die "docker compose up failed"

http="http://127.0.0.1:$http_port"
admin="http://127.0.0.1:$admin_port"
prom="http://127.0.0.1:$prom_port"

# ready_workers prints the gateway's covet_workers{state="ready"} total.
ready_workers() {
	curl -fsS --max-time 5 "$admin/metrics" 2>/dev/null |
		awk '/^covet_workers\{/ && /state="ready"/ { n += $2 } END { print n + 0 }'
}
# wait_for SECONDS DESCRIPTION COMMAND...: retries COMMAND every 0.5 s.
wait_for() {
	local limit=$1 what=$2
	shift 2
	local deadline=$((SECONDS + limit))
	while [ "$SECONDS" -lt "$deadline" ]; do
		"$@" && return 0
		sleep 0.5
	done
	return 1
}
workers_are() { [ "$(ready_workers)" = "$1" ]; }
body_is() { # URL EXPECTED
	local got
	got=$(curl -fsS --max-time 5 "$1" 2>/dev/null) && [ "$got" = "$2" ]
}

# --- 4. Checks

if wait_for 120 "readyz" curl -fs --max-time 5 -o /dev/null "$admin/readyz"; then
	pass "gateway /readyz is 200 after $((SECONDS - up_s))s"
else
	fail "gateway /readyz not 200 within 120s"
fi
want_version="covet-gateway $(sed -n 's/^version = "\(.*\)"$/\1/p' python-sdk/pyproject.toml)"
got_version=$(compose exec -T gateway covet-gateway --version 2>/dev/null | tr -d '\r' || true)
if [ "$got_version" = "$want_version" ]; then
	pass "the gateway image says its version: $got_version"
else
	fail "covet-gateway --version in the image says '$got_version', want '$want_version'"
fi
running_grafana=$(docker ps -q --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=grafana")
if [ -z "$running_grafana" ]; then
	pass "Grafana not started: its profile is not enabled"
else
	fail "a grafana container runs without --profile grafana"
fi
if wait_for 60 "2 workers" workers_are 2; then
	pass "2 worker containers registered through the shared control socket (covet_workers{state=\"ready\"} = 2)"
else
	fail "covet_workers{state=\"ready\"} is $(ready_workers), want 2"
fi

check_requests() { # LABEL: the example app's answers, 20 rounds
	local label=$1 i bad=0 got
	for i in $(seq 1 20); do
		got=$(curl -fsS --max-time 5 "$http/users/1" 2>&1) || {
			bad=$((bad + 1))
			continue
		}
		[ "$got" = '{"id":1,"name":"ada"}' ] || bad=$((bad + 1))
		got=$(curl -fsS --max-time 5 "$http/plaintext" 2>&1) && [ "$got" = "Hello, World!" ] || bad=$((bad + 1))
		got=$(curl -fsS --max-time 5 --data-binary "ping $i" "$http/echo" 2>&1) && [ "$got" = "ping $i" ] || bad=$((bad + 1))
	done
	local code
	code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "$http/users/3" 2>/dev/null || true)
	[ "$code" = 404 ] || bad=$((bad + 1))
	if [ "$bad" = 0 ]; then
		pass "$label: 60 requests (GET /users/1, GET /plaintext, POST /echo) answered 200 with the app's bodies; /users/3 is 404"
	else
		fail "$label: $bad of 61 requests gave a wrong status or body (last: ${got:-none}, /users/3: $code)"
	fi
}
check_requests "requests through the gateway"

# Prometheus scrapes the gateway on the compose network.
prom_query() { # PROMQL: prints the first sample's value, or nothing
	curl -fsS --max-time 5 -G "$prom/api/v1/query" --data-urlencode "query=$1" 2>/dev/null |
		python3 -c 'import json, sys
r = json.load(sys.stdin)["data"]["result"]
print(r[0]["value"][1] if r else "")'
}
prom_is() { [ "$(prom_query "$1")" = "$2" ]; }
if wait_for 90 "prometheus up" prom_is 'up{job="covet-gateway"}' 1; then
	pass "Prometheus scrapes the gateway: up{job=\"covet-gateway\"} == 1"
else
	fail "Prometheus: up{job=\"covet-gateway\"} is '$(prom_query 'up{job="covet-gateway"}')', want 1"
fi
if wait_for 60 "prometheus covet metric" prom_is 'sum(covet_workers{job="covet-gateway",state="ready"})' 2; then
	pass "Prometheus holds the gateway's series: sum(covet_workers{state=\"ready\"}) == 2"
else
	fail "Prometheus: sum(covet_workers{state=\"ready\"}) is '$(prom_query 'sum(covet_workers{job="covet-gateway",state="ready"})')', want 2"
fi

# One more sidecar worker: it registers through the same socket.
compose up -d --no-recreate --scale worker=3 worker >/dev/null 2>&1 || fail "docker compose up --scale worker=3 failed"
if wait_for 60 "3 workers" workers_are 3; then
	pass "a third worker container (--scale worker=3) registered: covet_workers{state=\"ready\"} = 3"
else
	fail "after --scale worker=3, covet_workers{state=\"ready\"} is $(ready_workers), want 3"
fi

# A worker that crashes (its Python process SIGKILLed inside the container, as the
# kernel's OOM killer would): the gateway drops it, the restart policy starts the
# container again and the worker registers anew; requests keep being answered.
workers=($(compose ps -q worker))
crashed=${workers[0]}
restarts=$(docker inspect -f '{{.RestartCount}}' "$crashed")
docker exec "$crashed" python -c '
import os
for p in os.listdir("/proc"):
    if p.isdigit() and open(f"/proc/{p}/cmdline", "rb").read().startswith(b"python\0-m\0covet\0worker"):
        os.kill(int(p), 9)
' >/dev/null 2>&1 || true # the exec dies with its container; the restart count below tells
restarted() {
	[ "$(docker inspect -f '{{.RestartCount}} {{.State.Running}}' "$crashed")" = "$((restarts + 1)) true" ]
}
if wait_for 60 "restart" restarted; then
	pass "a worker process killed inside its container: the restart policy restarted the container"
else
	fail "the crashed worker's container was not restarted ($(docker inspect -f '{{.State.Status}} restarts={{.RestartCount}}' "$crashed"))"
fi
check_requests "requests while the crashed worker comes back"
if wait_for 60 "3 workers again" workers_are 3; then
	pass "the restarted worker registered again: covet_workers{state=\"ready\"} = 3"
else
	fail "after the crash, covet_workers{state=\"ready\"} is $(ready_workers), want 3"
fi

# A worker container killed with docker kill (Docker does not restart a container it
# was told to kill): the gateway drops it, requests go on, and `up --scale` replaces it.
workers=($(compose ps -q worker))
victim=${workers[${#workers[@]}-1]}
docker kill "$victim" >/dev/null
docker wait "$victim" >/dev/null
if wait_for 30 "2 workers" workers_are 2; then
	pass "docker kill of a worker container: the gateway dropped it (covet_workers{state=\"ready\"} = 2)"
else
	fail "after docker kill, covet_workers{state=\"ready\"} is $(ready_workers), want 2"
fi
check_requests "requests after docker kill of a worker"
compose up -d --no-recreate --scale worker=3 worker >/dev/null 2>&1 || fail "docker compose up --scale worker=3 (the replacement) failed"
if wait_for 60 "3 workers again" workers_are 3; then
	pass "the killed worker was replaced (docker compose up --scale worker=3) and registered: covet_workers{state=\"ready\"} = 3"
else
	fail "after the replacement, covet_workers{state=\"ready\"} is $(ready_workers), want 3"
fi
check_requests "requests after the replacement"

# The gateway restarted: its workers see the control socket close and exit, their
# restart policy starts them again, and they register with the new gateway.
compose restart gateway >/dev/null 2>&1 || fail "docker compose restart gateway failed"
if wait_for 90 "3 workers after the gateway's restart" workers_are 3; then
	pass "after docker compose restart gateway, all 3 workers registered again"
else
	fail "after the gateway's restart, covet_workers{state=\"ready\"} is $(ready_workers), want 3"
fi
check_requests "requests after the gateway's restart"

# --- 5. Down (in cleanup), then the verdict.

say "build ${build_s}s, up to checks done $((SECONDS - up_s))s"
if [ "$fails" = 0 ]; then
	verdict="compose-test: PASS ($passes checks, base images: $base)"
else
	verdict="compose-test: FAIL ($fails of $((fails + passes)) checks failed)"
	exit 1
fi
