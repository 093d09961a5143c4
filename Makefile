# CovetPy: build, run, test and benchmark entry points. Every target installs what it
# needs (Go modules through the Go module proxy, Python packages into .venv).
#
#   make run                 build, then serve examples/hello on http://127.0.0.1:8000
#   make test                every test: Go (vet, staticcheck, -race), Python (mypy --strict, pytest), integration
#   make bench               CovetPy against uvicorn, Granian, Robyn, ... under wrk, then over TLS, static files, WebSockets, uploads, compression, the typed SDK, hosted apps
#   make bench-tls           only the TLS part: HTTP/1.1, HTTP/2, HTTP/3 and handshakes/s
#   make bench-static        only static files: the gateway's mount against nginx and Starlette
#   make bench-ws            only the WebSockets: echo messages/s and latency, memory per idle connection
#   make bench-worker        CovetPy with one worker against uvicorn and Granian on the paths issue 25 names
#   make bench-transport     shared-memory vs Unix-socket transport, side by side
#   make bench-security      CPU the gateway's middleware adds: JWT verification, rate limits, the chain
#   make bench-compress      response compression: the gateway's gzip and zstd against nginx's gzip
#   make bench-sdk           the typed-handler SDK against FastAPI (uvicorn, Granian), and each feature's cost per request
#   make bench-hosting       FastAPI, Starlette and Flask apps hosted by CovetPy against uvicorn, Granian and gunicorn
#   make bench-grpc          gRPC: the gateway and one worker against grpcio's asyncio server under ghz (unary, server streaming)
#   make fuzz                a short run of every Go fuzz target
#   make compose-test        docker-compose.yml built, started and driven for real
#   make autobahn            the Autobahn|Testsuite WebSocket conformance run (AUTOBAHN_TARGET, AUTOBAHN_URL)
#   make conformance         the same (the conformance suites too long for make test)
#
# giouring links on Go >= 1.23 only with -checklinkname=0; it is set here, once.
export GOFLAGS := -ldflags=-checklinkname=0
SHELL := /bin/bash

# The project's interpreter, PYTHON: the newest CPython of 3.14, 3.13, 3.12 and 3.11 found,
# each minor looked for as python3.N on PATH, then under pyenv's versions folder
# ($PYENV_ROOT, else ~/.pyenv; the newest patch release there first). Its real path, so a
# pyenv shim that only names it (not the active version) is passed over. Name another
# with `make PYTHON=python3.11`. .venv is made from it, and made again from scratch when
# it changes (the stamp records the interpreter's path and version); the bench servers
# run on it too (bench/run.py makes bench/.venv from .venv's interpreter).
find_python = for v in $(1); do \
	for p in python$$v $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$$v.*/bin/python$$v 2>/dev/null | grep -E "/$$v\.[0-9]+/bin/" | sort -Vr); do \
	$$p -c "import os, sys; print(os.path.realpath(sys.executable)) if '%d.%d' % sys.version_info[:2] == '$$v' else sys.exit(1)" 2>/dev/null && exit 0; \
	done; done
PYTHON := $(shell $(call find_python,3.14 3.13 3.12 3.11))
# "path version" of an interpreter: what a venv's stamp records.
python_id = $(if $(1),$(shell $(1) -c 'import os, platform, sys; print(os.path.realpath(sys.executable), platform.python_version())' 2>/dev/null))
PYTHON_ID := $(call python_id,$(PYTHON))
# FORCE (the venv is made again, --clear) unless venv $(1)'s stamp records interpreter $(2).
venv_stale = $(shell [ "$$(cat $(1)/.stamp 2>/dev/null)" = '$(2)' ] || echo FORCE)

VENV   := .venv
PY     := $(CURDIR)/$(VENV)/bin/python
GO     ?= go
PYDEPS := msgpack msgspec pytest hypothesis mypy aioquic 'httpx[http2]' websockets zstandard brotli cryptography pydantic fastapi uvicorn openapi-spec-validator flask django gunicorn grpcio grpcio-tools grpcio-health-checking protobuf
HOST   ?= 127.0.0.1
PORT   ?= 8000
WORKERS ?= 2

# The oldest supported Python, 3.11, found the same way, for a second run of the worker
# tests and the integration tests' netpoll pass, so that both ends of the supported range
# run: on PYTHON (3.12+) each request is an eager task (python-sdk/covet/_worker.py), on
# 3.11 a scheduled one. Empty (those runs use PYTHON alone, and the worker tests say
# why they skip) when there is no 3.11, or when PYTHON is a 3.11 itself. Name another
# with `make test COMPAT_PY=...`.
COMPAT_PY := $(if $(filter 3.11.%,$(word 2,$(PYTHON_ID))),,$(shell $(call find_python,3.11)))
COMPAT_ID := $(call python_id,$(COMPAT_PY))
COMPAT_VENV := .venv-compat
# The frameworks the hosted apps of the integration tests import (ASGI and WSGI
# hosting): the netpoll pass runs those apps' workers on COMPAT_PY too.
HOSTED_DEPS := fastapi flask django
# What the gRPC servicers of the integration tests import (generated code and
# descriptors), for their workers on COMPAT_PY too.
GRPC_DEPS := grpcio protobuf

# Go packages tested with the race detector; the integration tests run real Python
# workers and are run without it (they exercise the same Go code under load).
UNIT_PKGS = $(shell $(GO) list ./... | grep -v /integration)

# staticcheck, pinned; `go run` fetches and builds it through the Go module proxy on
# first use, then from the build cache.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

# Pebble, the ACME test CA that tls/'s ACME tests run, pinned; bin/pebble is
# built through the Go module proxy. test-go passes it as COVET_PEBBLE, so there
# those tests fail, not skip, without it.
PEBBLE := github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3

# h2spec, the HTTP/2 conformance tester that integration/conformance_test.go runs
# against the gateway (over TLS and h2c), pinned; bin/h2spec is built through the Go
# module proxy. test-integration passes it as COVET_H2SPEC, so there that test
# fails, not skips, without it.
H2SPEC := github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible

# gRPC (issue 26), pinned and built through the Go module proxy: grpc-go's interop
# client (bin/grpc-interop-client), which integration/grpc_test.go runs for the 14
# core interop cases; grpcurl (bin/grpcurl), which integration/python/test_grpc.py
# drives through server reflection; ghz (bin/ghz), the load generator of
# `make bench-grpc`. bin/grpc-interop.pb is the interop service's FileDescriptorSet
# (test.proto and its imports) as the pinned grpc-go registers it, written by
# integration/grpc/descdump: the Python servicer and ghz load it at run time, so no
# .proto file is kept in the repository. test-integration passes the first two and the
# set as COVET_GRPC_INTEROP, COVET_GRPCURL and COVET_GRPC_DESCRIPTORS, so there those
# tests fail, not skip, without them.
GRPC_INTEROP := google.golang.org/grpc/interop/client@v1.85.0
GRPCURL := github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4
GHZ := github.com/bojand/ghz/cmd/ghz@v0.120.0
GRPC_TOOLS := bin/grpc-interop-client bin/grpcurl bin/grpc-interop.pb
GRPC_ENV := COVET_GRPC_INTEROP=$(CURDIR)/bin/grpc-interop-client COVET_GRPCURL=$(CURDIR)/bin/grpcurl \
	COVET_GRPC_DESCRIPTORS=$(CURDIR)/bin/grpc-interop.pb

.PHONY: FORCE all build venv run test test-go test-python test-integration test-tools test-redis compose-test fuzz bench bench-tls bench-static bench-ws bench-transport bench-security bench-compress bench-sdk bench-hosting bench-worker bench-grpc autobahn conformance clean

all: build

# The project-local virtual environment, on PYTHON: the SDK (editable) and the test
# tools. Made again when the SDK's dependencies or this file (PYDEPS) change, and from
# scratch when PYTHON does.
$(VENV)/.stamp: python-sdk/pyproject.toml Makefile $(call venv_stale,$(VENV),$(PYTHON_ID))
	@test -n "$(PYTHON_ID)" || { echo "no usable Python 3.11..3.14 found$(if $(PYTHON), (PYTHON=$(PYTHON) does not run)); install one or name it: make PYTHON=..."; exit 1; }
	@echo "==> creating the Python virtual environment $(VENV) with $(PYTHON_ID) (SDK + $(PYDEPS))"
	$(PYTHON) -m venv $(if $(call venv_stale,$(VENV),$(PYTHON_ID)),--clear) $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(PYDEPS)
	$(PY) -m pip install -q -e 'python-sdk[uvloop]'
	echo '$(PYTHON_ID)' > $@

# The compiled core of the worker's data plane (python-sdk/covet/_speedups.c), built in
# place by the editable install; rebuilt when its source changes. pip treats the
# extension as optional (a user without a C compiler gets the pure-Python fallback), so
# the import here is what makes a failed build stop make.
SPEEDUPS := $(VENV)/.speedups
$(SPEEDUPS): python-sdk/covet/_speedups.c $(VENV)/.stamp
	$(PY) -m pip install -q --no-deps -e python-sdk
	$(PY) -c 'import covet._speedups'
	touch $@

venv: $(VENV)/.stamp $(SPEEDUPS)

# The worker's dependencies for COMPAT_PY; the tests put the SDK on its PYTHONPATH.
$(COMPAT_VENV)/.stamp: Makefile $(call venv_stale,$(COMPAT_VENV),$(COMPAT_ID))
	@echo "==> creating $(COMPAT_VENV) with $(COMPAT_ID) for the second run of the worker and integration tests"
	$(COMPAT_PY) -m venv $(if $(call venv_stale,$(COMPAT_VENV),$(COMPAT_ID)),--clear) $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/python -m pip install -q msgpack msgspec uvloop $(HOSTED_DEPS) $(GRPC_DEPS)
	echo '$(COMPAT_ID)' > $@

# The compiled core for COMPAT_PY too, built in place beside .venv's (the two modules'
# file names carry their interpreter's tag).
$(COMPAT_VENV)/.speedups: python-sdk/covet/_speedups.c $(COMPAT_VENV)/.stamp
	$(COMPAT_VENV)/bin/python -m pip install -q --no-deps -e python-sdk
	$(COMPAT_VENV)/bin/python -c 'import covet._speedups'
	touch $@
COMPAT_READY := $(if $(COMPAT_PY),$(COMPAT_VENV)/.stamp $(COMPAT_VENV)/.speedups)

# The one version number, the SDK's: covet --version and covet-gateway --version say it.
VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' python-sdk/pyproject.toml)
# -ldflags given to go build replaces GOFLAGS' -ldflags, so it starts with that one's.
GATEWAY_LDFLAGS := $(patsubst -ldflags=%,%,$(GOFLAGS)) -X main.version=$(VERSION)

# bin/covet-gateway, and bin/covet: the CLI run by the venv's interpreter, told where
# the gateway binary is.
# The grpcnotrace tag keeps grpc-go's x/net/trace and html/template out of the binary
# (the gateway links grpc-go only for the health and reflection message types): about
# 29 MB instead of 43.
build: venv
	@echo "==> building bin/covet-gateway and bin/covet"
	@mkdir -p bin
	$(GO) build -tags grpcnotrace -ldflags="$(GATEWAY_LDFLAGS)" -o bin/covet-gateway ./gateway/cmd/covet-gateway
	@printf '#!/bin/sh\n# Generated by make build: the CovetPy CLI with the project venv.\nCOVET_GATEWAY="$${COVET_GATEWAY:-%s}" exec "%s" -m covet "$$@"\n' \
		"$(CURDIR)/bin/covet-gateway" "$(PY)" > bin/covet
	@chmod +x bin/covet

run: build
	cd examples/hello && ../../bin/covet run app:app --workers $(WORKERS) --host $(HOST) --port $(PORT)

test: test-go test-python test-integration

# The engine matrix: the tests of the HTTP/1.1 server (ENGINE_PKGS) and the
# integration tests run once on each IO engine, chosen by COVET_TEST_ENGINE (uring or
# netpoll; the tests set server.Config.Engine or pass --engine). On uring they fail,
# not skip, where io_uring is unavailable: the gateway then refuses to start.
ENGINE_PKGS := ./gateway/server/

bin/pebble:
	@mkdir -p bin
	GOBIN=$(CURDIR)/bin $(GO) install $(PEBBLE)

bin/h2spec:
	@mkdir -p bin
	GOBIN=$(CURDIR)/bin $(GO) install $(H2SPEC)

# go install names the interop client after its folder, `client`: built in a folder
# of its own, then renamed.
bin/grpc-interop-client:
	@mkdir -p bin/.grpc-interop
	GOBIN=$(CURDIR)/bin/.grpc-interop $(GO) install $(GRPC_INTEROP)
	mv bin/.grpc-interop/client $@ && rmdir bin/.grpc-interop

bin/grpcurl:
	@mkdir -p bin
	GOBIN=$(CURDIR)/bin $(GO) install $(GRPCURL)

bin/ghz:
	@mkdir -p bin
	GOBIN=$(CURDIR)/bin $(GO) install $(GHZ)

bin/grpc-interop.pb: integration/grpc/descdump/main.go go.mod go.sum
	@mkdir -p bin
	$(GO) run ./integration/grpc/descdump $@

# redis-server (Debian package redis-server), which gateway/ratelimit's tests and
# integration/python/test_ratelimit.py start on a free loopback port (no persistence)
# and stop: installed with apt-get where it is missing and this runs as root on
# Debian. test-go and test-integration pass it as COVET_REDIS_SERVER, so there those
# tests fail, not skip, without it; run by hand without it, they skip, saying why.
test-redis:
	@if ! command -v redis-server >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "==> installing redis-server (apt-get)"; \
		apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server >/dev/null; \
	fi
REDIS_SERVER = $$(command -v redis-server || echo redis-server)

test-go: venv bin/pebble bin/grpcurl test-redis
	@echo "==> go vet, staticcheck, then go test -race on the Go packages (engine uring)"
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	COVET_TEST_ENGINE=uring COVET_PYTHON=$(PY) COVET_PEBBLE=$(CURDIR)/bin/pebble COVET_REDIS_SERVER=$(REDIS_SERVER) \
		COVET_GRPCURL=$(CURDIR)/bin/grpcurl $(GO) test -race -count=1 $(UNIT_PKGS)
	@echo "==> go test -race on the HTTP/1.1 server again (engine netpoll)"
	COVET_TEST_ENGINE=netpoll COVET_PYTHON=$(PY) $(GO) test -race -count=1 $(ENGINE_PKGS)
	@echo "==> allocation and idle-memory tests without the race detector (its sync.Pool drops items), each engine"
	for e in uring netpoll; do COVET_TEST_ENGINE=$$e $(GO) test -count=1 -run 'Alloc|IdleConnCost' ./gateway/server/ || exit 1; done
	$(GO) test -count=1 -run Alloc ./gateway/compress/
	@echo "==> bench/tlsload (a module of its own): its WebSocket client's tests"
	cd bench/tlsload && GOFLAGS= $(GO) vet . && GOFLAGS= $(GO) test -race -count=1 .

test-python: venv $(COMPAT_READY)
	@echo "==> mypy --strict on the SDK (python-sdk/covet), for the .venv Python, then for 3.11 (the oldest supported)"
	$(PY) -m mypy --strict python-sdk/covet
	$(PY) -m mypy --strict --python-version 3.11 python-sdk/covet
	@echo "==> pytest: the Python SDK on $(PYTHON_ID)$(if $(COMPAT_PY),; the worker tests also under $(COMPAT_ID),; no second Python (3.11) for the worker tests)"
	COVET_TEST_OTHER_PYTHON=$(if $(COMPAT_PY),$(CURDIR)/$(COMPAT_VENV)/bin/python) $(PY) -m pytest -q python-sdk/tests
	@echo "==> pytest: the Python SDK again on its pure-Python fallback (COVET_NO_EXTENSIONS=1: no covet._speedups)"
	COVET_NO_EXTENSIONS=1 COVET_TEST_OTHER_PYTHON=$(if $(COMPAT_PY),$(CURDIR)/$(COMPAT_VENV)/bin/python) $(PY) -m pytest -q python-sdk/tests

# The integration tests run twice, once per engine: on uring with the .venv Python
# (PYTHON) and the SDK's compiled core, then on netpoll with the workers on COMPAT_PY
# (3.11) where there is one, else on the .venv Python again, and on the SDK's
# pure-Python fallback (COVET_NO_EXTENSIONS=1); the test clients stay on the .venv
# Python. The netpoll pass is the one that used to repeat the suite on a second Python
# alone, so the engine matrix adds no third pass to `make test`. The Go tests take the engine from COVET_TEST_ENGINE; the pytest ones start
# the gateway through conftest.py or `covet run`, and it reads COVET_ENGINE. Both check
# that the gateway says it runs on that engine (covet_engine_info, its listening line).
NETPOLL_PY  := $(if $(COMPAT_PY),$(CURDIR)/$(COMPAT_VENV)/bin/python,$(PY))
NETPOLL_ENV := COVET_TEST_ENGINE=netpoll COVET_ENGINE=netpoll COVET_PYTHON=$(NETPOLL_PY) COVET_BIN=$(CURDIR)/bin COVET_H2SPEC=$(CURDIR)/bin/h2spec \
	COVET_REDIS_SERVER=$(REDIS_SERVER) COVET_NO_EXTENSIONS=1 $(GRPC_ENV) \
	$(if $(COMPAT_PY),PYTHONPATH=$(CURDIR)/python-sdk)

# System tools the integration tests drive: headless Chromium (integration/h3_test.go's
# browser test over HTTP/3 and HTTP/2, integration/python/test_openapi_docs.py's render
# of the /docs page), installed with apt-get where it is missing and this runs as root
# on Debian; elsewhere those tests skip, saying why.
test-tools:
	@if ! command -v chromium >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "==> installing chromium (apt-get)"; \
		apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; \
	fi

test-integration: build bin/h2spec $(GRPC_TOOLS) test-tools test-redis $(COMPAT_READY)
	@echo "==> integration (engine uring): real gateway, real Python workers, real clients"
	@COVET_TEST_ENGINE=uring COVET_PYTHON=$(PY) COVET_BIN=$(CURDIR)/bin COVET_H2SPEC=$(CURDIR)/bin/h2spec $(GRPC_ENV) $(GO) test -count=1 -timeout 20m -v ./integration/... 2>&1 | \
		grep -E '^(=== RUN|--- |\s+\S+_test.go|PASS|FAIL|ok|panic)'; exit $${PIPESTATUS[0]}
	@echo "==> integration (engine uring): the Python SDK through the real gateway (http.client, curl; httpx over HTTP/1.1, TLS, HTTP/2 and h2c)"
	COVET_ENGINE=uring COVET_PYTHON=$(PY) COVET_BIN=$(CURDIR)/bin COVET_REDIS_SERVER=$(REDIS_SERVER) $(GRPC_ENV) $(PY) -m pytest -q -p no:cacheprovider integration/python
	@echo "==> integration again (engine netpoll), the workers on $(NETPOLL_PY)$(if $(COMPAT_PY), ($(COMPAT_ID))), pure Python (COVET_NO_EXTENSIONS=1)"
	$(NETPOLL_ENV) $(GO) test -count=1 -timeout 20m ./integration/...
	$(NETPOLL_ENV) $(PY) -m pytest -q -p no:cacheprovider integration/python

# The compose stack for real (deploy/compose-test.sh): starts dockerd when none runs,
# builds the images (on local base images where no registry answers), brings the stack
# up, drives the gateway, workers and Prometheus on 127.0.0.1, then `down -v`.
compose-test:
	deploy/compose-test.sh

# WebSocket conformance: Autobahn|Testsuite's fuzzing client (wstest 0.8.2, a Python 2.7
# program: installed with --user into pyenv's 2.7, its dependencies pinned in
# integration/autobahn/requirements-py27.txt). AUTOBAHN_TARGET picks what it tests:
# `stack` (the default): bin/covet-gateway with one Python worker serving the echo route
# of integration/python/ws_app.py, on a free loopback port, with ws_max_message_bytes
# 16 MiB for the 9.* cases; `wsecho`: the test-only echo server bin/wsecho
# (gateway/server/internal/wsecho: the gateway's front end, an in-process echo backend);
# or AUTOBAHN_URL, a server already running. Fails unless every case, the compression
# ones (12.*, 13.*) included, is OK, NON-STRICT or INFORMATIONAL
# (integration/autobahn/run.py reads reports/index.json). AUTOBAHN_CASES narrows the run
# (e.g. '1.*,5.*'); AUTOBAHN_ENGINE is the socket engine (netpoll, the default, or
# uring). About 15 minutes in full on 2 CPUs.
AUTOBAHN_URL    ?=
AUTOBAHN_TARGET ?= stack
AUTOBAHN_CASES  ?= *
AUTOBAHN_ENGINE ?= netpoll
PY27 = $(shell ls -d $$(pyenv root 2>/dev/null || echo $$HOME/.pyenv)/versions/2.7*/bin/python 2>/dev/null | tail -1)

autobahn: build venv
	@test -n "$(PY27)" || { echo "make autobahn: no Python 2.7 under pyenv (pyenv install 2.7.18)"; exit 1; }
	$(PY27) -m pip install -q --user --no-warn-script-location -r integration/autobahn/requirements-py27.txt
	$(GO) build -o bin/wsecho ./gateway/server/internal/wsecho
	python3 integration/autobahn/run.py --wstest "$$($(PY27) -c 'import site; print(site.USER_BASE)')/bin/wstest" \
		--wsecho bin/wsecho --gateway bin/covet-gateway --python $(PY) --engine $(AUTOBAHN_ENGINE) \
		--cases '$(AUTOBAHN_CASES)' $(if $(AUTOBAHN_URL),--url '$(AUTOBAHN_URL)',$(if $(filter stack,$(AUTOBAHN_TARGET)),--stack))

# The conformance suites that do not fit `make test`'s time: Autobahn against the real
# stack (h2spec runs inside `make test`, in the integration tests).
conformance: autobahn

# Short fuzz runs of every fuzz target; the committed corpora also run in `make test`.
FUZZTIME ?= 20s
fuzz:
	@for pkg in ./shmring ./workerproto ./router ./gateway/http1 ./gateway/static ./gateway/ratelimit ./gateway/proxyproto ./gateway/clientip ./gateway/compress ./gateway/cors; do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep ^Fuzz); do \
	    echo "==> fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

# Comparative HTTP benchmark: every server on loopback under wrk; rewrites
# bench/RESULTS.md, then bench/RESULTS-tls.md, bench/RESULTS-static.md and
# bench/RESULTS-ws.md (bench-tls, bench-static and bench-ws below), then upload
# throughput (bench/upload.py, Content-Length and chunked; markdown on stdout), then
# bench/RESULTS-compress.md (bench-compress below), then the Go middleware benchmarks
# (bench-security), bench/RESULTS-sdk.md with bench/RESULTS-sdk-features.md
# (bench-sdk below) and bench/RESULTS-hosting.md (bench-hosting below).
# BENCH_QUICK=1 for a smoke run; BENCH_DURATION, BENCH_ROUNDS, BENCH_SERVERS,
# BENCH_WORKLOADS (see bench/run.py --list).
bench: build
	python3 bench/run.py; rc=$$?; python3 bench/tls.py || rc=1; python3 bench/static.py || rc=1; python3 bench/ws.py || rc=1; \
	  python3 bench/upload.py || rc=1; BENCH_CHUNKED=1 python3 bench/upload.py || rc=1; python3 bench/compress.py || rc=1; \
	  $(MAKE) --no-print-directory bench-security || rc=1; $(MAKE) --no-print-directory bench-sdk || rc=1; \
	  $(MAKE) --no-print-directory bench-hosting || rc=1; exit $$rc

# CovetPy over TLS (HTTP/1.1, HTTP/2, HTTP/3, handshakes/s) against Granian, uvicorn,
# Hypercorn and Go; rewrites bench/RESULTS-tls.md. Same BENCH_* settings, and
# BENCH_TLS_CELLS (see bench/tls.py --list).
bench-tls: build
	python3 bench/tls.py

# Static files: the gateway's static mount against nginx (sendfile) and Starlette's
# StaticFiles, 1 KiB / 64 KiB / 1 MiB; rewrites bench/RESULTS-static.md.
bench-static: build
	python3 bench/static.py

# WebSockets: echo messages/s and latency at 64 connections (64 B text, 16 KiB binary),
# and the memory of 10,000 idle connections, CovetPy against uvicorn and Granian;
# rewrites bench/RESULTS-ws.md. Same BENCH_* settings, and BENCH_WS_CELLS (see
# bench/ws.py --list).
bench-ws: build
	python3 bench/ws.py

# Security in the gateway: the CPU the middleware chain adds per request (JWT
# verification uncached and cached for HS256, ES256, EdDSA and ML-DSA-44, a local rate
# limit, the whole chain), Go benchmarks, one run.
bench-security:
	$(GO) test -run '^$$' -bench . -benchmem ./gateway/auth ./gateway/ratelimit ./gateway/guard

# Response compression: the gateway's gzip and zstd (compression: gzip,zstd, in front of
# a worker answering a 64 KiB JSON and a 1 MiB HTML body) against nginx's gzip at the
# same level on the same bodies, under wrk; rewrites bench/RESULTS-compress.md. Same
# BENCH_* settings, and BENCH_GZIP_LEVEL, BENCH_COMPRESS_CONNECTIONS.
bench-compress: build
	python3 bench/compress.py

# The typed-handler SDK (issue 23): a typed-body POST and a query-bound GET, CovetPy
# against FastAPI on uvicorn and on Granian, one worker each (bench/sdk.py; rewrites
# bench/RESULTS-sdk.md), then what each feature costs per request in process, beside
# FastAPI's (bench/sdk_features.py; rewrites bench/RESULTS-sdk-features.md). Same
# BENCH_* settings, and those the two scripts' docstrings list.
bench-sdk: build
	python3 bench/sdk.py; rc=$$?; $(PY) bench/sdk_features.py || rc=1; exit $$rc

# Hosting foreign apps (issue 24): the same FastAPI, Starlette and Flask apps (a
# plaintext GET, a JSON GET, a JSON POST echo) under CovetPy's ASGI and WSGI adapters,
# one worker, against uvicorn and Granian (ASGI), gunicorn sync and Granian (WSGI), one
# worker each; rewrites bench/RESULTS-hosting.md. Same BENCH_* settings, and
# BENCH_HOSTING_APPS, BENCH_HOSTING_SERVERS, BENCH_HOSTING_WORKLOADS (see
# bench/hosting.py --list).
bench-hosting: build
	python3 bench/hosting.py

# The worker's speed (issue 25): CovetPy with one worker against uvicorn (Starlette and a
# raw ASGI app) and Granian RSGI, one worker each, on /plaintext, /json, /json-sync (a
# `def` handler), /json-inline (a `def` handler with sync_to_thread=False; CovetPy only)
# and /1m: bench/run.py restricted to those (the same method, 3
# interleaved rounds; about 9 minutes); rewrites bench/RESULTS-worker.md. make bench
# runs them all, among the rest.
bench-worker: build
	BENCH_SERVERS=covet-1-netpoll,uvicorn-starlette-1,uvicorn-asgi-1,granian-rsgi-1 BENCH_WORKLOADS=plaintext,json,json-sync,json-inline,1m \
	  BENCH_RESULTS=bench/RESULTS-worker.md python3 bench/run.py

# gRPC (issue 26): the gateway with one Python worker against grpcio's asyncio server,
# one process, the same servicer (the interop TestService) on the same interpreter,
# under ghz: unary and server-streaming calls/s, p50, p99, CPU per call; rewrites
# bench/grpc/RESULTS.md (bench/grpc/README.md says what is measured). BENCH_ROUNDS,
# BENCH_QUICK, BENCH_GRPC_CALLS, BENCH_GRPC_CONCURRENCY, BENCH_GRPC_SERVERS,
# BENCH_GRPC_WORKLOADS.
bench-grpc: build bin/ghz bin/grpc-interop.pb
	python3 bench/grpc/run.py

bench-transport: venv
	COVET_PYTHON=$(PY) $(GO) run ./bench/transport

clean:
	rm -rf bin $(VENV) $(COMPAT_VENV) python-sdk/build
	rm -f python-sdk/covet/_speedups.*.so
