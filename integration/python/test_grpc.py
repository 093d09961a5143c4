"""gRPC through the real gateway: grpcio clients (h2c and TLS), grpcurl, a raw HTTP/2
client and gRPC-Web requests made by hand, against grpc-go's interop TestService
written in Python (integration/grpc/interop_service.py) and served by CovetPy
(integration/grpc/covet_app.py, one worker).

COVET_GRPC_TARGET=grpcio runs the checks that do not need the gateway (the plain RPCs,
metadata, deadlines, cancel, sizes, gzip, TLS) against grpcio's asyncio server
(integration/grpc/serve_grpcio.py) instead, which proves the tests themselves; the
gateway's own parts (health, reflection, gRPC-Web, a worker killed mid-call) skip there,
saying so.

The descriptor set comes from $COVET_GRPC_DESCRIPTORS, else `go run
./integration/grpc/descdump` writes one; grpcurl is $COVET_GRPCURL (`make
test-integration` sets it), else bin/grpcurl (`make bin/grpcurl`). Handlers leave
cancellation marks (interop_service.py) in the server's own folder.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import hmac
import http.client
import json
import os
import queue
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import h2.config
import h2.connection
import h2.events
import pytest
from conftest import REPO, Gateway, _free_port, _python, self_signed, serving_gateway, serving_process
from grpc_health.v1 import health_pb2, health_pb2_grpc

GRPC_DIR = REPO / "integration" / "grpc"
sys.path.insert(0, str(GRPC_DIR))
from interop_service import ECHO_INITIAL, ECHO_TRAILING, MARK, SERVICE, InteropStub, Messages, load  # noqa: E402

TARGET = os.environ.get("COVET_GRPC_TARGET") or "covet"
if TARGET not in ("covet", "grpcio"):
    raise RuntimeError(f"COVET_GRPC_TARGET={TARGET!r}: want covet (the default) or grpcio")
covet_only = pytest.mark.skipif(TARGET != "covet", reason="the gateway's own part: runs against CovetPy only")

MiB = 1 << 20
# grpcio channels must not go through a proxy named in the environment.
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]
MARK_TIMEOUT_S = 10.0  # how long a cancelled handler has to leave its mark


@dataclass
class Server:
    """A TestService under test: its host:port, the folder its handlers leave
    cancellation marks in, and, over TLS, the certificate to trust."""

    address: str
    marks: Path
    gateway: Gateway | None = None
    cert: Path | None = None

    def channel(self) -> grpc.Channel:
        if self.cert is None:
            return grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS)
        creds = grpc.ssl_channel_credentials(root_certificates=self.cert.read_bytes())
        options = [*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", "localhost")]
        return grpc.secure_channel(self.address, creds, options=options)

    def wait_mark(self, name: str) -> None:
        """Wait until the handler of the call marked ``name`` has seen its cancellation."""
        path = self.marks / f"{name}.cancelled"
        deadline = time.monotonic() + MARK_TIMEOUT_S
        while not path.exists():
            if time.monotonic() >= deadline:
                pytest.fail(f"the handler of call {name!r} never saw its cancellation (no {path})")
            time.sleep(0.02)


@pytest.fixture(scope="session")
def descriptors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("COVET_GRPC_DESCRIPTORS"):
        return Path(os.environ["COVET_GRPC_DESCRIPTORS"])
    go = shutil.which("go")
    if go is None:
        pytest.skip("COVET_GRPC_DESCRIPTORS is unset and there is no go command to run descdump")
    path = tmp_path_factory.mktemp("grpc") / "interop.pb"
    subprocess.run([go, "run", "./integration/grpc/descdump", str(path)], cwd=REPO, check=True, timeout=300)
    return path


@pytest.fixture(scope="session")
def m(descriptors: Path) -> Messages:
    return load(descriptors)



def _ready(address: str, cert: Path | None, messages: Messages) -> bool:
    """Whether the TestService at ``address`` answers EmptyCall."""
    with Server(address, Path(), cert=cert).channel() as channel:
        try:
            InteropStub(channel, messages).EmptyCall(messages.Empty(), timeout=2)
        except grpc.RpcError:
            return False
    return True


@contextlib.contextmanager
def serving(tmp: Path, descriptors: Path, messages: Messages, tls: bool) -> Iterator[Server]:
    """The TestService of TARGET on a free loopback port, over TLS (a self-signed
    certificate for localhost) or h2c, until the block ends."""
    marks = tmp / "marks"
    marks.mkdir()
    env = {"COVET_GRPC_DESCRIPTORS": str(descriptors), "COVET_TEST_DIR": str(marks)}
    cert, key = self_signed(tmp) if tls else (None, None)
    tls_flags = ["--tls-cert", str(cert), "--tls-key", str(key)] if tls else []
    if TARGET == "covet":
        with serving_gateway(
            tmp / "gateway.log", "grpcinterop", "covet_app", 1,
            lambda gw: _ready(f"{gw.host}:{gw.port}", cert, messages),
            flags=tls_flags or ["--h2c"], scheme="https" if tls else "http", worker_dir=GRPC_DIR, **env,
        ) as gw:  # fmt: skip
            yield Server(f"{gw.host}:{gw.port}", marks, gw, cert)
        return
    address = f"127.0.0.1:{_free_port()}"
    argv = [_python(), str(GRPC_DIR / "serve_grpcio.py"), address.rsplit(":", 1)[1], *tls_flags]
    with serving_process(argv, tmp / "grpcio.log", lambda: _ready(address, cert, messages), **env):
        yield Server(address, marks, None, cert)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, descriptors: Path, m: Messages) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("grpc-h2c"), descriptors, m, tls=False) as srv:
        yield srv


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory, descriptors: Path, m: Messages) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("grpc-tls"), descriptors, m, tls=True) as srv:
        yield srv


@pytest.fixture
def stub(server: Server, m: Messages) -> Iterator[Any]:
    with server.channel() as channel:
        yield InteropStub(channel, m)


def _params(m: Messages, *sizes: int, interval_us: int = 0) -> list[Any]:
    return [m.ResponseParameters(size=s, interval_us=interval_us) for s in sizes]


# Plain calls: unary and the three streaming kinds.


def test_unary(stub: Any, m: Messages) -> None:
    assert stub.EmptyCall(m.Empty(), timeout=10) == m.Empty()
    reply = stub.UnaryCall(m.SimpleRequest(response_size=314, payload=m.Payload(body=b"x" * 271)), timeout=10)
    assert reply.payload.body == bytes(314)
    assert reply.payload.type == m.COMPRESSABLE


def test_client_streaming(stub: Any, m: Messages) -> None:
    sizes = [27182, 8, 1828, 45904]
    requests = iter(m.StreamingInputCallRequest(payload=m.Payload(body=bytes(n))) for n in sizes)
    assert stub.StreamingInputCall(requests, timeout=10).aggregated_payload_size == sum(sizes)


def test_server_streaming(stub: Any, m: Messages) -> None:
    sizes = [31415, 9, 2653, 58979]
    call = stub.StreamingOutputCall(m.StreamingOutputCallRequest(response_parameters=_params(m, *sizes)), timeout=10)
    assert [len(r.payload.body) for r in call] == sizes
    assert call.code() == grpc.StatusCode.OK


def test_bidi_ping_pong(stub: Any, m: Messages) -> None:
    """Each request is sent only after the answer to the one before has come back, so
    the call really streams both ways at once."""
    outbox: queue.Queue[Any] = queue.Queue()

    def requests() -> Iterator[Any]:
        while (request := outbox.get()) is not None:
            yield request

    call = stub.FullDuplexCall(requests(), timeout=10)
    for size in (9, 2653, 31415):
        outbox.put(m.StreamingOutputCallRequest(response_parameters=_params(m, size), payload=m.Payload(body=bytes(8))))
        assert len(next(call).payload.body) == size
    outbox.put(None)
    assert list(call) == []
    assert call.code() == grpc.StatusCode.OK


def test_half_duplex(stub: Any, m: Messages) -> None:
    requests = [m.StreamingOutputCallRequest(response_parameters=_params(m, n)) for n in (1, 2, 3)]
    assert [len(r.payload.body) for r in stub.HalfDuplexCall(iter(requests), timeout=10)] == [1, 2, 3]


def test_empty_stream(stub: Any, m: Messages) -> None:
    assert list(stub.FullDuplexCall(iter(()), timeout=10)) == []


def test_unimplemented(server: Server, stub: Any, m: Messages) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.UnimplementedCall(m.Empty(), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    with server.channel() as channel:
        call = channel.unary_unary("/grpc.testing.NoSuchService/Method")
        with pytest.raises(grpc.RpcError) as err:
            call(b"", timeout=10)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


# Metadata and status.


def test_metadata_both_ways(stub: Any, m: Messages) -> None:
    """The client's fields reach the handler (a text one and a -bin one holding bytes
    no text field may), which sends them back as initial and trailing metadata."""
    binary = bytes([0, 0xFF, 0x0A, 0x0B, 0x80])
    metadata = ((ECHO_INITIAL, "initial value"), (ECHO_TRAILING, binary))
    reply, call = stub.UnaryCall.with_call(m.SimpleRequest(response_size=1), metadata=metadata, timeout=10)
    assert len(reply.payload.body) == 1
    assert (ECHO_INITIAL, "initial value") in tuple(call.initial_metadata())
    assert (ECHO_TRAILING, binary) in tuple(call.trailing_metadata())
    # The same on a stream.
    stream = stub.FullDuplexCall(iter([m.StreamingOutputCallRequest(response_parameters=_params(m, 1))]),
                                 metadata=metadata, timeout=10)  # fmt: skip
    assert (ECHO_INITIAL, "initial value") in tuple(stream.initial_metadata())
    assert [len(r.payload.body) for r in stream] == [1]
    assert (ECHO_TRAILING, binary) in tuple(stream.trailing_metadata())


def test_status_code_and_message(stub: Any, m: Messages) -> None:
    message = "\t\nbad argument: whitespace\r\n, BMP ☺ and non-BMP 😈 %41 100%\t\n"
    with pytest.raises(grpc.RpcError) as err:
        stub.UnaryCall(m.SimpleRequest(response_status=m.EchoStatus(code=3, message=message)), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == message


def test_status_after_messages(stub: Any, m: Messages) -> None:
    """A status set after messages went out arrives as trailers, after them."""
    request = m.StreamingOutputCallRequest(response_parameters=_params(m, 5, 6),
                                           response_status=m.EchoStatus(code=9, message="stopped"))  # fmt: skip
    call = stub.StreamingOutputCall(request, timeout=10)
    got = []
    with pytest.raises(grpc.RpcError) as err:
        for reply in call:
            got.append(len(reply.payload.body))
    assert got == [5, 6]
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.value.details() == "stopped"


def test_exception_is_unknown_without_traceback(stub: Any, m: Messages) -> None:
    """A handler that raises (a negative response size) gives UNKNOWN, and its details
    hold no traceback."""
    with pytest.raises(grpc.RpcError) as err:
        stub.UnaryCall(m.SimpleRequest(response_size=-1), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNKNOWN
    details = err.value.details() or ""
    for leak in ("Traceback", 'File "', "interop_service.py", "line "):
        assert leak not in details, f"the status details give the traceback away: {details!r}"


# Deadlines and cancellation: the handler must see them.


def test_deadline_exceeded(server: Server, stub: Any, m: Messages) -> None:
    """The client's deadline passes while the handler sleeps: the call ends
    DEADLINE_EXCEEDED and the handler is cancelled."""
    request = m.StreamingOutputCallRequest(response_parameters=_params(m, 1, interval_us=30_000_000))
    with pytest.raises(grpc.RpcError) as err:
        list(stub.StreamingOutputCall(request, metadata=((MARK, "deadline"),), timeout=0.5))
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    server.wait_mark("deadline")


def test_deadline_on_bidi_stream(server: Server, stub: Any, m: Messages) -> None:
    """The same on a bidirectional call: the handler, asleep before its first answer,
    is cancelled when the deadline passes."""
    requests = iter([m.StreamingOutputCallRequest(response_parameters=_params(m, 1, interval_us=30_000_000))])
    with pytest.raises(grpc.RpcError) as err:
        list(stub.FullDuplexCall(requests, metadata=((MARK, "deadline-bidi"),), timeout=0.5))
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    server.wait_mark("deadline-bidi")


def test_client_cancel_mid_stream(server: Server, stub: Any, m: Messages) -> None:
    """The client cancels a server stream after its first message: the handler, asleep
    before the second, is cancelled."""
    request = m.StreamingOutputCallRequest(
        response_parameters=[m.ResponseParameters(size=3), m.ResponseParameters(size=4, interval_us=30_000_000)])
    call = stub.StreamingOutputCall(request, metadata=((MARK, "cancel"),), timeout=60)
    assert len(next(call).payload.body) == 3
    call.cancel()
    with pytest.raises(grpc.RpcError) as err:
        next(call)
    assert err.value.code() == grpc.StatusCode.CANCELLED
    server.wait_mark("cancel")


@pytest.mark.skipif(TARGET != "covet", reason="grpcio's asyncio server mostly ends the request iterator on a "
                    "client's RST_STREAM instead of cancelling the handler (grpcio 1.85)")
def test_client_cancel_while_handler_reads(server: Server, stub: Any, m: Messages) -> None:
    """The client cancels a bidirectional call after the first answer, while the
    handler waits for its next message: the handler is cancelled."""
    outbox: queue.Queue[Any] = queue.Queue()

    def requests() -> Iterator[Any]:
        while (request := outbox.get()) is not None:
            yield request

    call = stub.FullDuplexCall(requests(), metadata=((MARK, "cancel-reading"),), timeout=60)
    outbox.put(m.StreamingOutputCallRequest(response_parameters=_params(m, 5)))
    assert len(next(call).payload.body) == 5
    call.cancel()
    outbox.put(None)
    with pytest.raises(grpc.RpcError) as err:
        next(call)
    assert err.value.code() == grpc.StatusCode.CANCELLED
    server.wait_mark("cancel-reading")


# Sizes and compression.


def test_large_messages(stub: Any, m: Messages) -> None:
    """3 MiB each way, under gRPC's default 4 MiB limit."""
    request = m.SimpleRequest(response_size=3 * MiB, payload=m.Payload(body=b"\x01" * (3 * MiB)))
    reply = stub.UnaryCall(request, timeout=30)
    assert reply.payload.body == bytes(3 * MiB)
    sizes = [3 * MiB, 1, 3 * MiB]
    call = stub.StreamingOutputCall(m.StreamingOutputCallRequest(response_parameters=_params(m, *sizes)), timeout=30)
    assert [len(r.payload.body) for r in call] == sizes


def test_message_over_limit_refused(stub: Any, m: Messages) -> None:
    """A request message past the server's 4 MiB default is refused RESOURCE_EXHAUSTED."""
    with pytest.raises(grpc.RpcError) as err:
        stub.UnaryCall(m.SimpleRequest(payload=m.Payload(body=bytes(5 * MiB))), timeout=30)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_gzip_with_grpcio(stub: Any, m: Messages) -> None:
    """grpcio compresses its request (grpc-encoding gzip) and asks for a compressed
    answer; the handler reads the request all the same."""
    request = m.SimpleRequest(response_size=50_000, response_compressed={"value": True},
                              payload=m.Payload(body=bytes(60_000)))  # fmt: skip
    reply = stub.UnaryCall(request, compression=grpc.Compression.Gzip, timeout=10)
    assert reply.payload.body == bytes(50_000)
    requests = iter(m.StreamingInputCallRequest(payload=m.Payload(body=bytes(n))) for n in (1000, 70_000))
    reply = stub.StreamingInputCall(requests, compression=grpc.Compression.Gzip, timeout=10)
    assert reply.aggregated_payload_size == 71_000


def _gzip_call(server: Server, m: Messages, compressed_answer: bool) -> tuple[dict[str, str], Any, dict[str, str]]:
    """UnaryCall with a raw HTTP/2 client, its request message gzip-compressed (flag 1,
    grpc-encoding gzip): the answer's head, its one message (decompressed when flagged)
    with its flag, and its trailers."""
    if server.cert is not None:
        pytest.skip("the raw client speaks h2c")
    request = m.SimpleRequest(response_size=20_000, response_compressed={"value": compressed_answer},
                              payload=m.Payload(body=bytes(9000)))  # fmt: skip
    body = _frame(gzip.compress(request.SerializeToString()), flag=1)
    head, body, trailers = h2_call(server.address, f"/{SERVICE}/UnaryCall", body,
                                   {"grpc-encoding": "gzip", "grpc-accept-encoding": "gzip"})  # fmt: skip
    assert head[":status"] == "200", head
    assert trailers.get("grpc-status") == "0", (head, trailers)
    messages = list(_messages(body))
    assert len(messages) == 1, messages
    flag, payload = messages[0]
    reply = m.SimpleResponse.FromString(gzip.decompress(payload) if flag == 1 else payload)
    assert reply.payload.body == bytes(20_000)
    return head, flag, trailers


def test_gzip_request_on_the_wire(server: Server, m: Messages) -> None:
    """A gzip-compressed request message is decompressed before the handler reads it."""
    _, flag, _ = _gzip_call(server, m, compressed_answer=False)
    assert flag == 0


@pytest.mark.skipif(TARGET != "covet", reason="grpcio's asyncio server ignores a call's set_compression (grpcio 1.85)")
def test_gzip_response_on_the_wire(server: Server, m: Messages) -> None:
    """A handler's set_compression(Gzip) compresses the answer: grpc-encoding gzip in
    its head and its message flagged compressed."""
    head, flag, _ = _gzip_call(server, m, compressed_answer=True)
    assert head.get("grpc-encoding") == "gzip", head
    assert flag == 1, "the answer was not compressed"


# TLS.


def test_tls(tls_server: Server, m: Messages) -> None:
    with tls_server.channel() as channel:
        stub = InteropStub(channel, m)
        assert len(stub.UnaryCall(m.SimpleRequest(response_size=100), timeout=10).payload.body) == 100
        call = stub.StreamingOutputCall(m.StreamingOutputCallRequest(response_parameters=_params(m, 1, 2)), timeout=10)
        assert [len(r.payload.body) for r in call] == [1, 2]
        requests = iter([m.StreamingOutputCallRequest(response_parameters=_params(m, 7))])
        assert [len(r.payload.body) for r in stub.FullDuplexCall(requests, timeout=10)] == [7]


def test_tls_deadline_and_metadata(tls_server: Server, m: Messages) -> None:
    with tls_server.channel() as channel:
        stub = InteropStub(channel, m)
        _, call = stub.UnaryCall.with_call(m.SimpleRequest(), metadata=((ECHO_TRAILING, b"\x00\x01"),), timeout=10)
        assert (ECHO_TRAILING, b"\x00\x01") in tuple(call.trailing_metadata())
        request = m.StreamingOutputCallRequest(response_parameters=_params(m, 1, interval_us=30_000_000))
        with pytest.raises(grpc.RpcError) as err:
            list(stub.StreamingOutputCall(request, metadata=((MARK, "tls-deadline"),), timeout=0.5))
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    tls_server.wait_mark("tls-deadline")


# The gateway's own services: health and reflection.


@covet_only
def test_health(server: Server) -> None:
    with server.channel() as channel:
        health = health_pb2_grpc.HealthStub(channel)
        serving = health_pb2.HealthCheckResponse.SERVING
        assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status == serving
        assert health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=10).status == serving
        with pytest.raises(grpc.RpcError) as err:
            health.Check(health_pb2.HealthCheckRequest(service="grpc.testing.NoSuchService"), timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        watch = health.Watch(health_pb2.HealthCheckRequest(service=SERVICE), timeout=30)
        assert next(watch).status == serving
        watch.cancel()


def grpcurl_bin() -> str:
    """$COVET_GRPCURL (`make test` sets it: the tests fail without it), else bin/grpcurl,
    else the test skips, naming the make target."""
    path = os.environ.get("COVET_GRPCURL")
    if path:
        assert Path(path).is_file(), f"COVET_GRPCURL={path} does not exist: make bin/grpcurl"
        return path
    path = str(REPO / "bin" / "grpcurl")
    if not Path(path).is_file():
        pytest.skip(f"no grpcurl at {path} and COVET_GRPCURL unset: run `make bin/grpcurl`")
    return path


def grpcurl(server: Server, *args: str, flags: tuple[str, ...] = ()) -> str:
    """grpcurl's output for ``grpcurl FLAGS ADDRESS ARGS`` against ``server``; fails
    the test when it exits non-zero."""
    tls = ("-cacert", str(server.cert), "-authority", "localhost") if server.cert else ("-plaintext",)
    argv = [grpcurl_bin(), *tls, *flags, server.address, *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"{argv}: exit {done.returncode}\n{done.stdout}{done.stderr}"
    return done.stdout


@covet_only
def test_reflection_with_grpcurl(server: Server) -> None:
    """grpcurl, with no .proto at hand, lists the services, describes them and calls a
    method, all from the server reflection the gateway answers from the worker's
    descriptors."""
    services = grpcurl(server, "list").split()
    assert SERVICE in services
    assert "grpc.health.v1.Health" in services
    described = grpcurl(server, "describe", SERVICE)
    assert "rpc UnaryCall ( .grpc.testing.SimpleRequest ) returns ( .grpc.testing.SimpleResponse );" in described
    assert "rpc FullDuplexCall ( stream .grpc.testing.StreamingOutputCallRequest )" in described
    assert "response_size" in grpcurl(server, "describe", "grpc.testing.SimpleRequest")
    reply = json.loads(grpcurl(server, f"{SERVICE}/UnaryCall", flags=("-d", '{"responseSize": 5}')))
    assert base64.b64decode(reply["payload"]["body"]) == bytes(5)


@covet_only
def test_reflection_with_grpcurl_over_tls(tls_server: Server) -> None:
    assert SERVICE in grpcurl(tls_server, "list").split()
    reply = json.loads(grpcurl(tls_server, f"{SERVICE}/UnaryCall", flags=("-d", '{"responseSize": 2}')))
    assert base64.b64decode(reply["payload"]["body"]) == bytes(2)


# A worker killed in the middle of a call.


def _descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (children, their children, ...), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        kids = [p for p, parent in parents.items() if parent in frontier]
        found += kids
        frontier = kids
    return found


def _worker_pids(gw: Gateway) -> list[int]:
    pids = []
    for pid in _descendants(gw.proc.pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"covet" in argv and b"worker" in argv:
            pids.append(pid)
    return pids


@covet_only
def test_worker_killed_mid_stream(tmp_path: Path, descriptors: Path, m: Messages) -> None:
    """SIGKILL the only worker while it streams an answer: the client gets UNAVAILABLE
    (the head went out already, so the status comes as trailers)."""
    with serving(tmp_path, descriptors, m, tls=False) as srv, srv.channel() as channel:
        assert srv.gateway is not None
        workers = _worker_pids(srv.gateway)
        assert len(workers) == 1, f"want one worker process under the gateway, found {workers}"
        request = m.StreamingOutputCallRequest(
            response_parameters=[m.ResponseParameters(size=1), m.ResponseParameters(size=2, interval_us=30_000_000)])
        call = InteropStub(channel, m).StreamingOutputCall(request, timeout=60)
        assert len(next(call).payload.body) == 1
        os.kill(workers[0], signal.SIGKILL)
        with pytest.raises(grpc.RpcError) as err:
            next(call)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


# gRPC-Web, framed by hand, over HTTP/1.1.


def _grpc_web(server: Server, method: str, body: bytes, content_type: str) -> tuple[int, dict[str, str], bytes]:
    host, port = server.address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("POST", f"/{SERVICE}/{method}", body=body,
                     headers={"content-type": content_type, "accept": content_type, "x-grpc-web": "1"})  # fmt: skip
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _web_status(headers: dict[str, str], frames: list[tuple[int, bytes]]) -> dict[str, str]:
    """The status fields of a gRPC-Web answer: from its trailer frame (flag 0x80,
    "name: value" lines), else from its headers (a trailers-only answer)."""
    trailer = [payload for flag, payload in frames if flag & 0x80]
    assert len(trailer) <= 1, frames
    if not trailer:
        return {k: v for k, v in headers.items() if k.startswith("grpc-")}
    fields = {}
    for line in trailer[0].decode().split("\r\n"):
        if line:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
    return fields


def _b64_quanta(text: bytes) -> bytes:
    """gRPC-Web text: base64 in pieces each padded on its own, so decode 4 characters
    at a time."""
    text = b"".join(text.split())
    assert len(text) % 4 == 0, text
    return b"".join(base64.b64decode(text[i : i + 4]) for i in range(0, len(text), 4))


@covet_only
@pytest.mark.parametrize("content_type", ["application/grpc-web+proto", "application/grpc-web-text"])
def test_grpc_web(server: Server, m: Messages, content_type: str) -> None:
    text = content_type.startswith("application/grpc-web-text")

    def call(method: str, request: Any) -> tuple[dict[str, str], list[tuple[int, bytes]]]:
        body = _frame(request.SerializeToString())
        status, headers, answer = _grpc_web(server, method, base64.b64encode(body) if text else body, content_type)
        assert status == 200, (status, headers, answer)
        assert headers["content-type"].startswith(content_type.split("+")[0]), headers
        return headers, list(_messages(_b64_quanta(answer) if text else answer))

    headers, frames = call("UnaryCall", m.SimpleRequest(response_size=3))
    assert [(f, m.SimpleResponse.FromString(p).payload.body) for f, p in frames if not f & 0x80] == [(0, bytes(3))]
    assert _web_status(headers, frames)["grpc-status"] == "0"

    headers, frames = call("StreamingOutputCall", m.StreamingOutputCallRequest(response_parameters=_params(m, 1, 2)))
    assert [len(m.StreamingOutputCallResponse.FromString(p).payload.body) for f, p in frames if not f & 0x80] == [1, 2]
    assert _web_status(headers, frames)["grpc-status"] == "0"

    headers, frames = call("UnaryCall", m.SimpleRequest(response_status=m.EchoStatus(code=5, message="not here")))
    fields = _web_status(headers, frames)
    assert fields["grpc-status"] == "5"
    assert fields["grpc-message"] == "not here"


# Length-prefixed messages and a raw HTTP/2 client.


def _frame(payload: bytes, flag: int = 0) -> bytes:
    return struct.pack(">BI", flag, len(payload)) + payload


def _messages(body: bytes) -> Iterator[tuple[int, bytes]]:
    """The (flag, payload) of each length-prefixed message in body, which must end on
    a message boundary."""
    at = 0
    while at < len(body):
        assert len(body) - at >= 5, f"a truncated message prefix at {at}"
        flag, size = struct.unpack_from(">BI", body, at)
        assert len(body) - at - 5 >= size, f"a truncated message at {at}"
        yield flag, body[at + 5 : at + 5 + size]
        at += 5 + size


def h2_call(address: str, path: str, body: bytes,
            headers: dict[str, str]) -> tuple[dict[str, str], bytes, dict[str, str]]:  # fmt: skip
    """One gRPC call over h2c with prior knowledge: the response's head fields, its body
    and its trailer fields."""
    host, port = address.rsplit(":", 1)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    head: dict[str, str] = {}
    trailers: dict[str, str] = {}
    data = bytearray()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        conn.initiate_connection()
        stream = conn.get_next_available_stream_id()
        fields = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", address),
                  ("content-type", "application/grpc"), ("te", "trailers"), *headers.items()]  # fmt: skip
        conn.send_headers(stream, fields)
        conn.send_data(stream, body, end_stream=True)
        sock.sendall(conn.data_to_send())
        ended = False
        while not ended:
            chunk = sock.recv(65536)
            assert chunk, "the server closed the connection before the stream ended"
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.ResponseReceived):
                    head = dict(event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    data += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.TrailersReceived):
                    trailers = dict(event.headers)
                elif isinstance(event, h2.events.StreamReset):
                    pytest.fail(f"the server reset the stream: {event.error_code!r}")
                elif isinstance(event, h2.events.StreamEnded):
                    ended = True
            sock.sendall(conn.data_to_send())
    return head, bytes(data), trailers


# The gateway's middleware on gRPC paths: path_policy's auth and rate limits, and the
# gRPC metric.


def _hs256(secret: bytes, claims: dict[str, Any]) -> str:
    """A compact JWS (HS256) of ``claims``, signed with ``secret``."""

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    signing = f"{b64(json.dumps({'alg': 'HS256', 'kid': 'k1', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing}.{b64(hmac.new(secret, signing.encode(), hashlib.sha256).digest())}"


def _metric(admin: str, name: str, labels: str) -> float:
    """The value of ``name{labels}`` on the gateway's admin listener (0 when absent)."""
    conn = http.client.HTTPConnection(admin, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    for line in text.splitlines():
        if line.startswith(f"{name}{{{labels}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _health_serving(gw: Gateway) -> bool:
    """Whether the gateway's health service says the TestService is SERVING (a
    readiness probe that spends no call of the TestService's own)."""
    with grpc.insecure_channel(f"{gw.host}:{gw.port}", options=CHANNEL_OPTIONS) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=SERVICE),
                                                               timeout=2)  # fmt: skip
        except grpc.RpcError:
            return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


@covet_only
def test_a_call_without_grpc_timeout_outlives_the_gateways_timeout(tmp_path: Path, descriptors: Path,
                                                                   m: Messages) -> None:  # fmt: skip
    """The gateway's `timeout` (here 300 ms) is no deadline for a gRPC call whose client
    set none: a stream quiet for longer than it goes on, as on a gRPC server; with a
    grpc-timeout the client's deadline holds."""
    flags = ["--h2c", "--timeout", "300ms"]
    with serving_gateway(tmp_path / "gateway.log", "grpcinterop", "covet_app", 1, _health_serving, flags=flags,
                         worker_dir=GRPC_DIR, COVET_GRPC_DESCRIPTORS=str(descriptors)) as gw:  # fmt: skip
        with grpc.insecure_channel(f"{gw.host}:{gw.port}", options=CHANNEL_OPTIONS) as channel:
            stub = InteropStub(channel, m)
            request = m.StreamingOutputCallRequest(response_parameters=_params(m, 3, 5, interval_us=600_000))
            assert [len(r.payload.body) for r in stub.StreamingOutputCall(request)] == [3, 5]
            with pytest.raises(grpc.RpcError) as err:
                list(stub.StreamingOutputCall(request, timeout=0.9))
            assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


@covet_only
def test_auth_rate_limits_and_metrics_apply_to_grpc_calls(tmp_path: Path, descriptors: Path, m: Messages) -> None:
    secret = os.urandom(32)
    key = {"kty": "oct", "kid": "k1", "alg": "HS256", "k": base64.urlsafe_b64encode(secret).rstrip(b"=").decode()}
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [key]}))
    admin = f"127.0.0.1:{_free_port()}"
    flags = ["--h2c", "--admin-listen", admin, "--auth-jwks-file", str(tmp_path / "jwks.json"),
             "--path-policy", f"/{SERVICE}/UnaryCall=auth roles=reader",
             "--path-policy", f"/{SERVICE}/EmptyCall=rate=2/minute"]  # fmt: skip
    env = {"COVET_GRPC_DESCRIPTORS": str(descriptors), "COVET_AUTH_ALGORITHMS": "HS256"}
    with serving_gateway(tmp_path / "gateway.log", "grpcinterop", "covet_app", 1, _health_serving, flags=flags,
                         worker_dir=GRPC_DIR, **env) as gw:  # fmt: skip
        with grpc.insecure_channel(f"{gw.host}:{gw.port}", options=CHANNEL_OPTIONS) as channel:
            stub = InteropStub(channel, m)
            request = m.SimpleRequest(response_size=4)
            with pytest.raises(grpc.RpcError) as err:
                stub.UnaryCall(request, timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            now = int(time.time())
            claims = {"sub": "ada", "exp": now + 300, "iat": now, "roles": ["writer"]}
            with pytest.raises(grpc.RpcError) as err:
                stub.UnaryCall(request, timeout=10, metadata=[("authorization", f"Bearer {_hs256(secret, claims)}")])
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            claims["roles"] = ["reader"]
            reply = stub.UnaryCall(request, timeout=10, metadata=[("authorization", f"Bearer {_hs256(secret, claims)}")])
            assert reply.payload.body == bytes(4)
            stub.EmptyCall(m.Empty(), timeout=10)
            stub.EmptyCall(m.Empty(), timeout=10)
            with pytest.raises(grpc.RpcError) as err:
                stub.EmptyCall(m.Empty(), timeout=10)
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        calls = f'code="{{}}",method="{{}}",service="{SERVICE}"'
        assert _metric(admin, "covet_grpc_calls_total", calls.format("UNAUTHENTICATED", "UnaryCall")) == 1
        assert _metric(admin, "covet_grpc_calls_total", calls.format("PERMISSION_DENIED", "UnaryCall")) == 1
        assert _metric(admin, "covet_grpc_calls_total", calls.format("OK", "UnaryCall")) == 1
        assert _metric(admin, "covet_grpc_calls_total", calls.format("OK", "EmptyCall")) == 2
        assert _metric(admin, "covet_grpc_calls_total", calls.format("RESOURCE_EXHAUSTED", "EmptyCall")) == 1
