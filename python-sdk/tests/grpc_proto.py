"""The gRPC tests' own service definition, compiled with grpcio-tools at test time.

:func:`generate` writes PROTO into a temporary directory, compiles it there to
``covet_grpc_test_pb2`` and ``covet_grpc_test_pb2_grpc`` (once per test session), and
puts the directory on ``sys.path``; the worker tests also put it on their worker's
PYTHONPATH (grpc_worker_app.py imports the modules).
"""

from __future__ import annotations

import importlib
import importlib.resources
import sys
from pathlib import Path

import pytest

PROTO = """
syntax = "proto3";
package covettest.v1;
import "google/protobuf/empty.proto";

message Msg {
  string text = 1;
  bytes data = 2;
  int32 count = 3;
}

service Echo {
  rpc Unary(Msg) returns (Msg);
  rpc Split(Msg) returns (stream Msg);
  rpc Join(stream Msg) returns (Msg);
  rpc Chat(stream Msg) returns (stream Msg);
  rpc Ping(google.protobuf.Empty) returns (google.protobuf.Empty);
  rpc Missing(Msg) returns (Msg);  // not implemented by the servicers
}

service SyncEcho {
  rpc Unary(Msg) returns (Msg);
  rpc Split(Msg) returns (stream Msg);
  rpc Join(stream Msg) returns (Msg);
  rpc Chat(stream Msg) returns (stream Msg);
  rpc Ping(google.protobuf.Empty) returns (google.protobuf.Empty);
  rpc Missing(Msg) returns (Msg);  // not implemented by the servicers
}
"""

_done: list[Path] = []


def generate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory holding the compiled modules (importable once this returns)."""
    if _done:
        return _done[0]
    protoc = importlib.import_module("grpc_tools.protoc")
    out = tmp_path_factory.mktemp("grpc_gen")
    (out / "covet_grpc_test.proto").write_text(PROTO)
    include = str(importlib.resources.files("grpc_tools") / "_proto")
    rc = protoc.main(["protoc", f"-I{out}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}",
                      str(out / "covet_grpc_test.proto")])  # fmt: skip
    assert rc == 0, "grpc_tools.protoc failed"
    sys.path.insert(0, str(out))
    _done.append(out)
    return out
