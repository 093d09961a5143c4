"""Serve the interop TestService (interop_service.py) on grpcio's asyncio server, one
process, the baseline the gRPC tests and the benchmark compare CovetPy with.

    python integration/grpc/serve_grpcio.py PORT [--host H] [--tls-cert C --tls-key K]

The descriptor set comes from $COVET_GRPC_DESCRIPTORS (see interop_service.load). It
prints one line, ``serving grpc.testing.TestService on HOST:PORT`` (the bound port, so
PORT may be 0), once it accepts calls, and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interop_service import SERVICE, InteropServicer, add_to_server, load  # noqa: E402


async def serve(host: str, port: int, cert: Path | None, key: Path | None) -> None:
    server = grpc.aio.server()
    add_to_server(InteropServicer(load()), server)
    address = f"{host}:{port}"
    if cert is not None and key is not None:
        creds = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
        bound = server.add_secure_port(address, creds)
    else:
        bound = server.add_insecure_port(address)
    await server.start()
    print(f"serving {SERVICE} on {host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--tls-cert", type=Path)
    parser.add_argument("--tls-key", type=Path)
    args = parser.parse_args()
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    asyncio.run(serve(args.host, args.port, args.tls_cert, args.tls_key))


if __name__ == "__main__":
    main()
