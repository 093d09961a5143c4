# CovetPy worker image: the Python SDK and the example app (examples/hello/app.py),
# run as an external worker that registers with a gateway over its control socket.
# Build from the repository root:
#
#   docker build -f deploy/worker.Dockerfile -t covetpy/worker:dev .
#
# COVET_UID/COVET_GID must be the same in gateway.Dockerfile (see there why).
#
# PYTHON_IMAGE names the base image: the public one by default; where no registry is
# reachable, `make compose-test` passes a locally built stand-in (deploy/base/). A first
# stage with gcc builds the SDK's wheel, compiled core (covet._speedups) included; the
# image itself gets the wheel, not the compiler. The image is pinned to linux/amd64,
# the platform it is built and tested on (the compiled ring client uses C11 atomics and
# is not tied to x86-64; its pure-Python fallback is: workerproto/PROTOCOL.md 2.6).
# To serve your own app, copy it to /app instead of the example and change CMD.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG COVET_UID=10001
ARG COVET_GID=10001

FROM --platform=linux/amd64 ${PYTHON_IMAGE} AS wheel
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
COPY python-sdk /tmp/python-sdk
RUN pip wheel --no-deps -w /wheels /tmp/python-sdk \
 && python -m zipfile -l /wheels/covet-*.whl | grep -q '_speedups\.'

FROM --platform=linux/amd64 ${PYTHON_IMAGE}
ARG COVET_UID
ARG COVET_GID
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid "${COVET_GID}" covet \
 && useradd --system --uid "${COVET_UID}" --gid "${COVET_GID}" --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin covet \
 && mkdir -p /run/covet \
 && chown "${COVET_UID}:${COVET_GID}" /run/covet \
 && chmod 0770 /run/covet
COPY --from=wheel /wheels /tmp/wheels
RUN pip install /tmp/wheels/covet-*.whl && rm -rf /tmp/wheels \
 && python -c 'import covet._shmring as s; assert s.ACCELERATED, "covet._speedups did not load"'
COPY deploy/worker-entrypoint.sh /usr/local/bin/covet-worker-entrypoint
RUN chmod 0755 /usr/local/bin/covet-worker-entrypoint
WORKDIR /app
COPY examples/hello/app.py /app/app.py
# The gateway's control socket, on the volume shared with the gateway container.
ENV COVET_CONTROL_SOCKET=/run/covet/control.sock
USER ${COVET_UID}:${COVET_GID}
# The entrypoint waits for the control socket to appear (the gateway may start after
# the worker), then execs CMD.
ENTRYPOINT ["covet-worker-entrypoint"]
CMD ["python", "-m", "covet", "worker", "app:app"]
