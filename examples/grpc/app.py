"""gRPC example: a Greeter service and a JSON route served by one app, on one port.

    pip install 'covet[grpc]' grpcio-tools
    cd examples/grpc && ../../bin/covet run app:app --workers 2 --port 8000
    # then, with grpcurl (the gateway answers server reflection, so no .proto is needed):
    grpcurl -plaintext -d '{"name": "Ada"}' 127.0.0.1:8000 greeter.Greeter/Greet
    grpcurl -plaintext -d '{"names": ["Ada", "Alan"]}' 127.0.0.1:8000 greeter.Greeter/GreetEach
    curl http://127.0.0.1:8000/greet/Ada

`covet run` turns h2c (HTTP/2 cleartext with prior knowledge, what `grpcurl -plaintext`
and insecure gRPC channels speak) on for an app with gRPC services; the gateway also
speaks gRPC over TLS (`--tls-cert`, `--tls-key`), and
gRPC-Web for browsers; the worker runs the servicer below unchanged from what
grpcio's own server would run. greeter_pb2.py and greeter_pb2_grpc.py are generated
from greeter.proto with grpcio-tools the first time the app is imported.
"""

from __future__ import annotations

import importlib
import pathlib
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc

from covet import Covet

HERE = pathlib.Path(__file__).resolve().parent


def _generated() -> tuple[Any, Any]:
    """greeter_pb2 and greeter_pb2_grpc, generated beside greeter.proto when missing."""
    if not (HERE / "greeter_pb2_grpc.py").exists():
        from grpc_tools import protoc  # pip install grpcio-tools

        code = protoc.main(["protoc", f"-I{HERE}", f"--python_out={HERE}", f"--grpc_python_out={HERE}",
                            str(HERE / "greeter.proto")])  # fmt: skip
        if code != 0:
            raise RuntimeError(f"protoc failed on {HERE / 'greeter.proto'} (exit {code})")
    sys.path.insert(0, str(HERE))
    return importlib.import_module("greeter_pb2"), importlib.import_module("greeter_pb2_grpc")


greeter_pb2, greeter_pb2_grpc = _generated()


class Greeter(greeter_pb2_grpc.GreeterServicer):  # type: ignore[misc]
    async def Greet(self, request: Any, context: Any) -> Any:
        if not request.name:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "name is empty")
        return greeter_pb2.Greeting(text=f"Hello, {request.name}!")

    async def GreetEach(self, request: Any, context: Any) -> AsyncIterator[Any]:
        for name in request.names:
            yield greeter_pb2.Greeting(text=f"Hello, {name}!")


app = Covet()
greeter_pb2_grpc.add_GreeterServicer_to_server(Greeter(), app.grpc)


@app.get("/greet/{name}")
async def greet(req: Any, name: str) -> dict[str, str]:
    return {"text": f"Hello, {name}!"}
