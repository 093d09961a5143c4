"""The interop TestService (interop_service.py) as a CovetPy app: ``covet_app:app``
for ``covet run`` and the gateway's workers (run from this folder, with
$COVET_GRPC_DESCRIPTORS naming the descriptor set descdump writes).

It also answers ``GET /hello`` (plain HTTP), which the integration tests' harness polls
to know the gateway serves.
"""

from __future__ import annotations

from covet import Covet
from interop_service import InteropServicer, add_to_server, load

app = Covet("grpcinterop")
add_to_server(InteropServicer(load()), app.grpc)


@app.get("/hello")
async def hello(req: object) -> str:
    return "hello"
