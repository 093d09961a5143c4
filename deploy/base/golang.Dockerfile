# A stand-in for golang:1.26-bookworm where no image registry is reachable (the
# machines that run `make compose-test`): the local Debian base image, plus the Go
# toolchain that the Go module proxy serves as the module golang.org/toolchain (the
# same archive `GOTOOLCHAIN=go1.26.8` downloads), checked against a pinned SHA-256.
# deploy/compose-test.sh builds it as covet-local/golang:1.26-bookworm; users build
# the gateway image on the public golang image and never need this file.
ARG DEBIAN_IMAGE=covet-local/debian:bookworm
FROM --platform=linux/amd64 ${DEBIAN_IMAGE}
ARG GO_VERSION=1.26.8
ARG GO_ZIP_SHA256=30c2b1bf7dcc88d3eb0a1364e47ddd9128edb3110a30e8a0ef61cd5856b31de7
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl unzip \
 && rm -rf /var/lib/apt/lists/* \
 && curl -fsSLo /tmp/go.zip "https://proxy.golang.org/golang.org/toolchain/@v/v0.0.1-go${GO_VERSION}.linux-amd64.zip" \
 && echo "${GO_ZIP_SHA256}  /tmp/go.zip" | sha256sum -c - \
 && unzip -q /tmp/go.zip -d /tmp/go \
 && mv "/tmp/go/golang.org/toolchain@v0.0.1-go${GO_VERSION}.linux-amd64" /usr/local/go \
 && chmod -R a+x /usr/local/go/bin /usr/local/go/pkg/tool \
 && rm -rf /tmp/go /tmp/go.zip \
 && /usr/local/go/bin/go version
ENV GOPATH=/go \
    PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    GOTOOLCHAIN=local
WORKDIR /go
