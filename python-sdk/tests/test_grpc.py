"""``app.grpc`` without a worker: registration as grpcio's generated code does it, the
manifest and descriptors it gives the hello, the checks at freeze, and the codecs the
calls use (metadata, status messages, RESP_TRAILERS, the hello's ``descriptors``).
Calls themselves are tested through a real worker in test_grpc_worker.py."""

from __future__ import annotations

import importlib
import logging
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from covet import Covet, _proto
from covet._grpc import DEFAULT_MAX_RECEIVE
from covet._grpc_call import (
    STREAM_STREAM,
    STREAM_UNARY,
    UNARY_STREAM,
    UNARY_UNARY,
    Metadatum,
    decode_metadata,
    encode_metadata,
    method_of,
    percent_encode,
)

grpc = pytest.importorskip("grpc", reason="grpcio is the gRPC extra (make venv installs it)")
pytest.importorskip("grpc_tools.protoc", reason="grpcio-tools compiles the tests' proto (make venv installs it)")

try:
    from .grpc_proto import generate  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from grpc_proto import generate  # type: ignore[no-redef,unused-ignore]

SDK_DIR = Path(__file__).resolve().parent.parent
ECHO = ["/covettest.v1.Echo/" + m for m in ("Unary", "Split", "Join", "Chat", "Ping", "Missing")]


@pytest.fixture(scope="module")
def pb_grpc(tmp_path_factory: pytest.TempPathFactory) -> Any:
    generate(tmp_path_factory)
    return importlib.import_module("covet_grpc_test_pb2_grpc")


class Servicer:
    """Echo's methods, unused here: registration only reads them."""

    async def Unary(self, req: Any, ctx: Any) -> Any:
        return req

    async def Split(self, req: Any, ctx: Any) -> AsyncIterator[Any]:
        yield req

    async def Join(self, reqs: Any, ctx: Any) -> Any:
        return None

    def Chat(self, reqs: Any, ctx: Any) -> Iterator[Any]:
        yield from reqs

    def Ping(self, req: Any, ctx: Any) -> Any:
        return req

    def Missing(self, req: Any, ctx: Any) -> Any:
        return req


# -- registration ------------------------------------------------------------------------


def test_generated_code_registers_each_method_once(pb_grpc: Any) -> None:
    app = Covet()
    servicer = Servicer()
    # The generated function registers each method both ways (generic and registered
    # handlers); doing it all again with the same servicer is harmless too.
    pb_grpc.add_EchoServicer_to_server(servicer, app.grpc)
    pb_grpc.add_EchoServicer_to_server(servicer, app.grpc)
    assert app.grpc.methods == tuple(ECHO)
    grpc_routes = [r for r in app.manifest() if r["kind"] == "grpc"]
    assert grpc_routes == [{"method": "POST", "path": p, "kind": "grpc", "options": {}} for p in ECHO]
    _proto.validate_routes(app.manifest())  # as the gateway will take them


def test_a_method_registered_with_another_handler_is_refused(pb_grpc: Any) -> None:
    app = Covet()
    pb_grpc.add_EchoServicer_to_server(Servicer(), app.grpc)
    with pytest.raises(ValueError, match="/covettest.v1.Echo/Unary is already registered with another handler"):
        pb_grpc.add_EchoServicer_to_server(Servicer(), app.grpc)


def test_a_generic_handler_that_cannot_list_its_methods_is_refused() -> None:
    class Opaque(grpc.GenericRpcHandler):  # type: ignore[misc]
        def service(self, details: Any) -> Any:
            return None

    with pytest.raises(TypeError, match="only answers service\\(\\) cannot be routed"):
        Covet().grpc.add_generic_rpc_handlers((Opaque(),))


def test_a_bad_method_handler_or_path_is_refused() -> None:
    app = Covet()
    with pytest.raises(TypeError, match="is not a grpc.RpcMethodHandler"):
        app.grpc.add_registered_method_handlers("pkg.Svc", {"M": object()})
    handler = grpc.unary_unary_rpc_method_handler(lambda r, c: r)
    with pytest.raises(ValueError, match="is not /package.Service/Method"):
        app.grpc.add_registered_method_handlers("pkg.Svc", {"M{x}": handler})
    assert app.grpc.methods == ()


@pytest.mark.parametrize("call", [
    lambda s: s.add_insecure_port("[::]:50051"),
    lambda s: s.add_secure_port("[::]:50051", None),
    lambda s: s.start(),
    lambda s: s.stop(None),
    lambda s: s.wait_for_termination(),
])  # fmt: skip
def test_socket_methods_say_the_gateway_owns_the_sockets(call: Any) -> None:
    with pytest.raises(RuntimeError, match="the gateway owns the sockets"):
        call(Covet().grpc)


def test_registration_after_freeze_is_refused(pb_grpc: Any) -> None:
    app = Covet()
    server = app.grpc
    app.freeze()
    with pytest.raises(RuntimeError, match="the app is frozen"):
        pb_grpc.add_EchoServicer_to_server(Servicer(), server)
    with pytest.raises(RuntimeError, match="the app is frozen"):
        server.add_interceptor(object())


def test_a_method_that_is_also_an_http_route_is_refused_at_freeze(pb_grpc: Any) -> None:
    app = Covet()
    pb_grpc.add_EchoServicer_to_server(Servicer(), app.grpc)

    @app.post("/covettest.v1.Echo/Ping")
    async def ping() -> str:
        return "pong"

    with pytest.raises(ValueError, match="conflicts with the HTTP route POST /covettest.v1.Echo/Ping"):
        app.freeze()


def test_options_and_limits() -> None:
    app = Covet()
    assert (app.grpc.max_receive_message_length, app.grpc.max_send_message_length) == (DEFAULT_MAX_RECEIVE, -1)
    assert DEFAULT_MAX_RECEIVE == 4 << 20
    app.grpc.configure(options=[("grpc.max_receive_message_length", 1000), ("grpc.max_send_message_length", 2000)])
    assert (app.grpc.max_receive_message_length, app.grpc.max_send_message_length) == (1000, 2000)
    with pytest.raises(ValueError, match="'grpc.so_reuseport' is not supported here"):
        app.grpc.configure(options=[("grpc.so_reuseport", 1)])
    with pytest.raises(ValueError, match="want a number of bytes or -1"):
        app.grpc.configure(options=[("grpc.max_send_message_length", -5)])
    app.grpc.max_send_message_length = "big"  # type: ignore[assignment]
    with pytest.raises(ValueError, match="app.grpc.max_send_message_length: want a number of bytes or -1"):
        app.freeze()


class AsyncInterceptor:
    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        return await continuation(details)


class SyncInterceptor:
    def intercept_service(self, continuation: Any, details: Any) -> Any:
        return continuation(details)


def test_interceptors_are_checked(pb_grpc: Any) -> None:
    with pytest.raises(TypeError, match="has no intercept_service method"):
        Covet().grpc.add_interceptor(object())
    app = Covet()
    pb_grpc.add_EchoServicer_to_server(Servicer(), app.grpc)
    app.grpc.configure(interceptors=[SyncInterceptor(), AsyncInterceptor()])
    with pytest.raises(TypeError, match="must come after every async interceptor"):
        app.freeze()
    ok = Covet()
    pb_grpc.add_EchoServicer_to_server(Servicer(), ok.grpc)
    ok.grpc.interceptors.extend([AsyncInterceptor(), SyncInterceptor()])  # the list itself, as documented
    ok.freeze()
    assert ok.grpc.runtime is not None and ok.grpc.runtime.async_interceptors == (True, False)


def test_descriptors_hold_the_services_files_and_their_imports(pb_grpc: Any) -> None:
    from google.protobuf import descriptor_pb2

    app = Covet()
    assert app.grpc.descriptors() == []
    pb_grpc.add_EchoServicer_to_server(Servicer(), app.grpc)
    pb_grpc.add_SyncEchoServicer_to_server(Servicer(), app.grpc)
    app.freeze()
    names = [descriptor_pb2.FileDescriptorProto.FromString(d).name for d in app.grpc.descriptors()]
    assert names == ["google/protobuf/empty.proto", "covet_grpc_test.proto"]


def test_a_service_outside_the_descriptor_pool_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    app = Covet()
    handler = grpc.unary_unary_rpc_method_handler(lambda r, c: r)
    app.grpc.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("nowhere.Svc", {"A": handler, "B": handler})])
    with caplog.at_level(logging.WARNING, "covet.grpc"):
        app.freeze()
    assert app.grpc.descriptors() == []
    warnings = [r.getMessage() for r in caplog.records if "nowhere.Svc" in r.getMessage()]
    assert warnings == ["gRPC service nowhere.Svc is not in protobuf's default descriptor pool: server reflection "
                        "will not describe it"]  # fmt: skip


def test_the_sdk_imports_without_grpcio() -> None:
    code = (
        "import sys\n"
        "sys.modules['grpc'] = None\n"  # as if grpcio were not installed
        "import covet, covet._worker\n"
        "app = covet.Covet()\n"
        "app.manifest(); app.freeze()\n"
        "try:\n"
        "    app.grpc\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(SDK_DIR))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.startswith("app.grpc needs grpcio and protobuf: pip install 'covet[grpc]'")


# -- method handlers ---------------------------------------------------------------------


async def _coro(req: Any, ctx: Any) -> Any:
    return req


async def _agen(req: Any, ctx: Any) -> AsyncIterator[Any]:
    yield req


def _gen(req: Any, ctx: Any) -> Iterator[Any]:
    yield req


def _plain(req: Any, ctx: Any) -> Any:
    return req


@pytest.mark.parametrize(("make", "fn", "kind", "is_async"), [
    (grpc.unary_unary_rpc_method_handler, _coro, UNARY_UNARY, True),
    (grpc.unary_unary_rpc_method_handler, _plain, UNARY_UNARY, False),
    (grpc.unary_stream_rpc_method_handler, _agen, UNARY_STREAM, True),
    (grpc.unary_stream_rpc_method_handler, _coro, UNARY_STREAM, True),  # writes with context.write
    (grpc.unary_stream_rpc_method_handler, _gen, UNARY_STREAM, False),
    (grpc.stream_unary_rpc_method_handler, _coro, STREAM_UNARY, True),
    (grpc.stream_unary_rpc_method_handler, _plain, STREAM_UNARY, False),
    (grpc.stream_stream_rpc_method_handler, _agen, STREAM_STREAM, True),
    (grpc.stream_stream_rpc_method_handler, _gen, STREAM_STREAM, False),
])  # fmt: skip
def test_method_kinds(make: Any, fn: Any, kind: int, is_async: bool) -> None:
    m = method_of(make(fn))
    assert (m.kind, m.is_async, m.behavior) == (kind, is_async, fn)


# -- codecs ------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "wire"), [
    ("", b""),
    ("plain text: ok!", b"plain text: ok!"),
    ("100%", b"100%25"),
    ("ünï", b"%C3%BCn%C3%AF"),
    ("tab\there\nnewline", b"tab%09here%0Anewline"),
])  # fmt: skip
def test_grpc_message_is_percent_encoded(text: str, wire: bytes) -> None:
    assert percent_encode(text) == wire


def test_metadata_out() -> None:
    fields = encode_metadata([("X-Key", "value 1"), ("blob-bin", b"\x00\xff\x10"), ("bytes", b"ascii")], "test")
    assert fields == [("x-key", b"value 1"), ("blob-bin", b"AP8Q"), ("bytes", b"ascii")]


@pytest.mark.parametrize(("metadata", "error", "text"), [
    ([("grpc-status", "0")], ValueError, "metadata key 'grpc-status' is not allowed"),
    ([("content-type", "x")], ValueError, "metadata key 'content-type' is not allowed"),
    ([("bad key", "x")], ValueError, "metadata key 'bad key' is not allowed"),
    ([("k", "ünï")], ValueError, "must be printable ASCII"),
    ([("k", "line\nbreak")], ValueError, "must be printable ASCII"),
    ([("k-bin", "text")], TypeError, "binary metadata 'k-bin' must be bytes"),
    ([("k", 5)], TypeError, "the value of metadata 'k' must be a str"),
    ([("k",)], TypeError, "metadata must be \\(key, value\\) pairs"),
    ([(b"k", "v")], TypeError, "is not a str"),
])  # fmt: skip
def test_bad_metadata_is_refused(metadata: Any, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        encode_metadata(metadata, "test")


def test_metadata_in() -> None:
    fields = [":authority", b"h", "content-type", b"application/grpc", "te", b"trailers", "grpc-timeout", b"1S",
              "user-agent", b"grpc-go/1.85.0", "x-k", b"v", "x-bin", b"AAE, AgM=", "bad-bin", b"!!!"]  # fmt: skip
    assert decode_metadata(fields) == (
        Metadatum("user-agent", "grpc-go/1.85.0"), Metadatum("x-k", "v"),
        Metadatum("x-bin", b"\x00\x01"), Metadatum("x-bin", b"\x02\x03"),
    )  # fmt: skip


def test_resp_trailers_payload() -> None:
    payload = _proto.encode_resp_trailers([("grpc-status", b"0"), ("x-k", b"v")])
    assert _proto.decode_resp_trailers(payload) == [("grpc-status", b"0"), ("x-k", b"v")]
    assert _proto.FRAME_RESP_TRAILERS == 96
    with pytest.raises(ValueError, match="'content-length' is a framing field"):
        _proto.encode_resp_trailers([("content-length", b"0")])
    with pytest.raises(ValueError, match="is not an HTTP token"):
        _proto.encode_resp_trailers([(":status", b"200")])


def test_hello_with_descriptors_round_trips() -> None:
    base = {"type": "hello", "version": 1, "pid": 7, "app": "a", "token": "",
            "routes": [{"method": "POST", "path": "/p.S/M", "kind": "grpc", "options": {}}]}  # fmt: skip
    with_them = dict(base, descriptors=[b"\x0a\x01a", b""])
    encoded = _proto.encode_message(with_them)
    assert _proto.decode_message(encoded) == with_them
    assert list(_proto.decode_message(encoded)) == [*base, "descriptors"]  # the optional key comes last
    assert _proto.decode_message(_proto.encode_message(base)) == base  # no key without descriptors
    bad = _proto.encode_message(dict(base, descriptors=["text"]))
    with pytest.raises(_proto.ProtocolError, match='"descriptors": want an array of bin'):
        _proto.decode_message(bad)


def test_hello_sends_descriptors_only_when_there_are_some() -> None:
    a, b = socket.socketpair()
    with _proto.ControlChannel(a) as ch, _proto.ControlChannel(b) as peer:
        routes = [{"method": "POST", "path": "/p.S/M", "kind": "grpc", "options": {}}]
        ch.hello("app", routes, pid=9)
        assert "descriptors" not in peer.read_message()
        ch.hello("app", routes, pid=9, descriptors=[b"file"])
        assert peer.read_message()["descriptors"] == [b"file"]


@pytest.mark.parametrize(("method", "path"), [("GET", "/p.S/M"), ("POST", "/p.S/M/x"), ("POST", "/p.S/{m}")])
def test_a_grpc_route_is_a_literal_post(method: str, path: str) -> None:
    with pytest.raises(_proto.ProtocolError, match="a grpc route is POST"):
        _proto.validate_routes([{"method": method, "path": path, "kind": "grpc", "options": {}}])
