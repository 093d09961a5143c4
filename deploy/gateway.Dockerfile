# CovetPy gateway image. Build from the repository root:
#
#   docker build -f deploy/gateway.Dockerfile -t covetpy/gateway:dev .
#
# Stage 1 compiles a static covet-gateway with the Go toolchain image; stage 2 is a
# small Debian runtime (it keeps /bin/sh for the compose healthcheck and `sleep` for
# the Kubernetes preStop hook) that runs it as an unprivileged user.
#
# GO_IMAGE and DEBIAN_IMAGE name the base images: the public ones by default; where no
# registry is reachable, `make compose-test` passes locally built stand-ins
# (deploy/base/). Both stages are pinned to linux/amd64: the workers' Python ring
# client relies on x86-64's store order (workerproto/PROTOCOL.md), and gateway and
# workers share one host, so the whole stack is amd64.
#
# No `# syntax=` line (here or in the other Dockerfiles): BuildKit would fetch that
# frontend image from Docker Hub, which an offline build cannot reach.
#
# COVET_UID/COVET_GID must be the same in worker.Dockerfile: the gateway accepts a
# worker on its control socket only when the peer's uid (SO_PEERCRED) equals its own,
# and both containers write to the shared /run/covet volume.

ARG GO_IMAGE=golang:1.26-bookworm
ARG DEBIAN_IMAGE=debian:bookworm-slim
ARG COVET_UID=10001
ARG COVET_GID=10001

FROM --platform=linux/amd64 ${GO_IMAGE} AS build
WORKDIR /src
# giouring links on Go >= 1.23 only with -checklinkname=0. It is set through GOFLAGS;
# the build's own -ldflags replaces that, so it repeats it (as the Makefile does).
ENV GOFLAGS=-ldflags=-checklinkname=0 \
    CGO_ENABLED=0
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# covet-gateway --version says the SDK's version, as `make build` sets it.
RUN version=$(sed -n 's/^version = "\(.*\)"$/\1/p' python-sdk/pyproject.toml) \
 && go build -trimpath -tags grpcnotrace -ldflags="-checklinkname=0 -X main.version=${version}" \
      -o /out/covet-gateway ./gateway/cmd/covet-gateway

FROM --platform=linux/amd64 ${DEBIAN_IMAGE}
ARG COVET_UID
ARG COVET_GID
RUN groupadd --system --gid "${COVET_GID}" covet \
 && useradd --system --uid "${COVET_UID}" --gid "${COVET_GID}" --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin covet \
 && mkdir -p /run/covet \
 && chown "${COVET_UID}:${COVET_GID}" /run/covet \
 && chmod 0770 /run/covet
COPY --from=build /out/covet-gateway /usr/local/bin/covet-gateway
USER ${COVET_UID}:${COVET_GID}
# 8000: HTTP. 9090: admin listener (/metrics, /healthz, /readyz).
EXPOSE 8000 9090
# Docker's default seccomp profile blocks io_uring, so inside a container the gateway
# serves with its Go netpoll engine unless it is given a seccomp profile allowing
# io_uring_setup/io_uring_enter/io_uring_register.
ENTRYPOINT ["covet-gateway"]
CMD ["--workers", "0", "--control-socket", "/run/covet/control.sock", "--listen", "0.0.0.0:8000", "--admin-listen", "0.0.0.0:9090"]
