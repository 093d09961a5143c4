# A stand-in for python:3.11-slim-bookworm where no image registry is reachable (the
# machines that run `make compose-test`): the local Debian base image with Debian
# bookworm's own Python 3.11 in a virtual environment at /usr/local/python, first on
# PATH, so that `python` and `pip` work as they do in the official image (whose C
# headers python3-dev stands in for: the worker image compiles the SDK's core).
# deploy/compose-test.sh builds it as covet-local/python:3.11-slim-bookworm; users
# build the worker image on the public python image and never need this file.
ARG DEBIAN_IMAGE=covet-local/debian:bookworm
FROM --platform=linux/amd64 ${DEBIAN_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /usr/local/python \
 && /usr/local/python/bin/python --version
# Debian's venv pip (23.0) reads certifi's CA list, not the system's; the local base
# image's system list holds the host's CAs (an egress proxy's among them).
ENV PATH=/usr/local/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
