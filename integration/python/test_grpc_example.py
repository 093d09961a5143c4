"""examples/grpc, as its docstring says to run it: ``covet run app:app`` with the real
bin/covet-gateway (h2c turned on for the app's gRPC service), called by a grpcio client
and over HTTP/1.1 on the same port.

Run with ``.venv/bin/python -m pytest integration/python`` after ``make build``.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest
from conftest import GATEWAY, REPO, _python, need_gateway
from grpc_health.v1 import health_pb2, health_pb2_grpc
from test_cli_run import TIMEOUT_S, _readline, _stop

EXAMPLE = REPO / "examples" / "grpc"


def test_the_grpc_example_serves_grpc_and_http_on_one_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need_gateway()
    for name in ("app.py", "greeter.proto"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    # Generated here with the test's grpcio-tools (the workers' interpreter may lack it),
    # so the app finds its modules and generates nothing itself.
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{tmp_path}", f"--python_out={tmp_path}",
                    f"--grpc_python_out={tmp_path}", str(tmp_path / "greeter.proto")], check=True)  # fmt: skip
    log = tmp_path / "stderr.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [_python(), "-m", "covet", "run", "app:app", "--workers", "1", "--port", "0", "--gateway", str(GATEWAY)],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        line = _readline(proc, TIMEOUT_S).decode()
        m = re.fullmatch(r"CovetPy serving app:app on http://(127\.0\.0\.1:\d+) \(1 worker\)\n", line)
        assert m, f"first stdout line {line!r}; stderr:\n{log.read_text()[-3000:]}"
        addr = m[1]
        assert "the app serves gRPC: h2c on" in log.read_text()
        monkeypatch.syspath_prepend(str(tmp_path))
        pb = importlib.import_module("greeter_pb2")
        with grpc.insecure_channel(addr) as channel:
            # The banner comes once the port is bound; the gateway's health service tells
            # when the worker serving greeter.Greeter has attached (SERVICE_UNKNOWN until
            # its hello, then SERVING).
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service="greeter.Greeter"), timeout=TIMEOUT_S)
            seen = []
            for answer in watch:
                seen.append(answer.status)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            watch.cancel()
            assert seen[-1] == health_pb2.HealthCheckResponse.SERVING, f"{seen}; {log.read_text()[-3000:]}"
            greet = channel.unary_unary("/greeter.Greeter/Greet", request_serializer=pb.GreetRequest.SerializeToString,
                                        response_deserializer=pb.Greeting.FromString)  # fmt: skip
            each = channel.unary_stream("/greeter.Greeter/GreetEach",
                                        request_serializer=pb.GreetEachRequest.SerializeToString,
                                        response_deserializer=pb.Greeting.FromString)  # fmt: skip
            assert greet(pb.GreetRequest(name="Ada"), timeout=10).text == "Hello, Ada!"
            texts = [g.text for g in each(pb.GreetEachRequest(names=["Ada", "Alan"]), timeout=10)]
            assert texts == ["Hello, Ada!", "Hello, Alan!"]
            with pytest.raises(grpc.RpcError) as e:
                greet(pb.GreetRequest(), timeout=10)
            assert (e.value.code(), e.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "name is empty")
        with urllib.request.urlopen(f"http://{addr}/greet/Ada", timeout=10) as resp:
            assert json.loads(resp.read()) == {"text": "Hello, Ada!"}
    finally:
        _stop(proc, log)
