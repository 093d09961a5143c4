"""gRPC calls through a real worker (``python -m covet worker grpc_worker_app:app``) over
real rings, this test playing the gateway (PROTOCOL.md 2.10): the REQ_HEAD and REQ_BODY
a gateway sends for a native gRPC call, and the RESP_HEAD, RESP_BODY and RESP_TRAILERS
(or the one trailers-only RESP) the worker answers with.

The service is the tests' own proto (grpc_proto.py), compiled with grpcio-tools at
test time into a temporary directory on the worker's PYTHONPATH. Every behaviour runs against
both servicers: ``Echo`` (``async def`` methods) and ``SyncEcho`` (``def`` methods on the
handler thread); and on workers with the compiled core and without it.
"""

from __future__ import annotations

import base64
import gzip
import importlib
import itertools
import json
import os
import struct
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from covet import _proto
from covet import _shmring as sr

try:  # tests/ may or may not be a package
    from .test_worker import GEN, OTHER_PYTHON, Answer, FakeGateway  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from test_worker import GEN, OTHER_PYTHON, Answer, FakeGateway  # type: ignore[no-redef,unused-ignore]

pytest.importorskip("grpc_tools.protoc", reason="grpcio-tools compiles the tests' proto (make venv installs it)")

try:
    from .grpc_proto import generate  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from grpc_proto import generate  # type: ignore[no-redef,unused-ignore]

_ids = itertools.count(1)


def frame(data: bytes, compressed: bool = False) -> bytes:
    """One length-prefixed gRPC message."""
    return struct.pack(">BI", int(compressed), len(data)) + data


def split_messages(body: bytes) -> list[tuple[int, bytes]]:
    out = []
    while body:
        flag, n = struct.unpack_from(">BI", body)
        assert len(body) >= 5 + n, "the body ends inside a message"
        out.append((flag, body[5:5 + n]))
        body = body[5 + n:]
    return out


@dataclass
class Result:
    """A finished call as a gRPC client sees it."""

    code: int
    message: str
    head: dict[str, bytes]  # the response head's fields (with the status, for trailers-only)
    trailers: dict[str, bytes]
    messages: list[tuple[int, bytes]] = field(default_factory=list)
    trailers_only: bool = False


class GrpcGateway(FakeGateway):
    """FakeGateway that also takes RESP_TRAILERS and sends gRPC calls."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.trailers: dict[int, list[tuple[str, bytes]]] = {}

    def _on_frame(self, typ: int, rid: int, flags: int, payload: bytes) -> None:
        if typ != sr.RESP_TRAILERS:
            super()._on_frame(typ, rid, flags, payload)
            return
        a = self.answers.setdefault(rid, Answer())
        assert flags == sr.BEGIN | sr.END, (rid, flags)
        assert a.status is not None and a.body_length == -1 and not a.done, f"trailers out of place for {rid:#x}"
        self.trailers[rid] = _proto.decode_resp_trailers(payload)
        a.done = True

    def call(self, path: str, messages: list[bytes] = (), *, headers: list[tuple[str, bytes]] = (),  # type: ignore[assignment]
             timeout_ms: int = 0, fragment: int = 1 << 16, end: bool = True, client: str = "127.0.0.1:5555",
             content_type: bytes = b"application/grpc", accept: bytes = b"identity,gzip") -> int:  # fmt: skip
        """Send a call's head and its messages (each already framed), the body cut into
        ``fragment``-byte REQ_BODY fragments; ``end`` ends the body. Returns its id."""
        rid = GEN | next(_ids)
        fields = [("content-type", content_type), ("te", b"trailers"), ("grpc-accept-encoding", accept),
                  ("user-agent", b"grpc-go/1.85.0"), *headers]  # fmt: skip
        body = b"".join(messages)
        length = len(body) if end else -1
        head = _proto.RequestHead("POST", path, "", [x for pair in fields for x in pair], path, [], "2", "http",
                                  client, f"req-{rid:x}", length, timeout_ms)  # fmt: skip
        self.send_frames(sr.REQ_HEAD, rid, _proto.encode_head(head))
        for i in range(0, len(body), fragment):
            self.send_body(rid, body[i:i + fragment], i == 0, end and i + fragment >= len(body))
        return rid

    def more(self, rid: int, data: bytes, end: bool = False) -> None:
        """More of a streamed request body (after the first fragment)."""
        self.send_body(rid, data, False, end)

    def result(self, rid: int) -> Result:
        a = self.answer(rid)
        assert a.error is None and not a.aborted, (a.error, a.aborted)
        assert a.status == 200
        head = dict(a.headers)
        if a.whole:  # trailers-only: one RESP, no body
            assert a.body_length == 0 and not a.body and rid not in self.trailers
            return Result(int(head["grpc-status"]), _message(head), head, {}, trailers_only=True)
        assert a.body_length == -1, a.body_length
        trailers = dict(self.trailers[rid])
        return Result(int(trailers["grpc-status"]), _message(trailers), head, trailers, split_messages(bytes(a.body)))

    def finished(self, path: str, messages: list[bytes] = (), **kw: Any) -> Result:  # type: ignore[assignment]
        return self.result(self.call(path, messages, **kw))

    def wait_log(self, line: str) -> None:
        self.until(lambda: line in self.app_log(), repr(line))


def _message(fields: dict[str, bytes]) -> str:
    return urllib.parse.unquote(fields.get("grpc-message", b"").decode("ascii"))


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory)


@pytest.fixture(scope="session")
def pb(generated: Path) -> Any:
    return importlib.import_module("covet_grpc_test_pb2")


def _gateway(tmp: Path, generated: Path, app: str, loop: str, python: str, pure: bool) -> GrpcGateway:
    env = {"COVET_LOOP": loop,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(generated), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    if pure:
        env["COVET_NO_EXTENSIONS"] = "1"
    g = GrpcGateway(tmp, app=app, extra_env=env, python=python)
    try:
        g.hello = g.start()  # type: ignore[attr-defined]
        assert ("pure Python" if pure else "compiled") in g.stderr()
    except BaseException:
        g.close()
        raise
    return g


WORKERS = [
    pytest.param(("asyncio", sys.executable, False), id="compiled"),
    pytest.param(("asyncio", sys.executable, True), id="pure-python"),
    pytest.param(("asyncio", OTHER_PYTHON, False), id="other-python", marks=pytest.mark.skipif(
        not OTHER_PYTHON, reason="no second Python for the worker (COVET_TEST_OTHER_PYTHON unset)")),
]  # fmt: skip


@pytest.fixture(scope="module", params=WORKERS)
def gg(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, generated: Path) -> Iterator[GrpcGateway]:
    """One worker serving grpc_worker_app:app for the module's tests (each call its own id)."""
    loop, python, pure = request.param
    g = _gateway(tmp_path_factory.mktemp("grpc"), generated, "grpc_worker_app:app", loop, python, pure)
    try:
        yield g
    finally:
        g.close()


@pytest.fixture(params=["Echo", "SyncEcho"])
def svc(request: pytest.FixtureRequest) -> str:
    """The service's path prefix: the async servicer or the sync one."""
    return f"/covettest.v1.{request.param}/"


def msg(pb: Any, **kw: Any) -> bytes:
    return frame(pb.Msg(**kw).SerializeToString())


def decoded(pb: Any, r: Result) -> list[Any]:
    assert all(flag == 0 for flag, _ in r.messages)
    return [pb.Msg.FromString(data) for _, data in r.messages]


# -- the hello ---------------------------------------------------------------------------


def test_hello_routes_every_method_and_carries_the_descriptors(gg: GrpcGateway) -> None:
    from google.protobuf import descriptor_pb2

    hello = gg.hello  # type: ignore[attr-defined]
    routes = {(r["method"], r["path"]): r for r in hello["routes"]}
    for service in ("Echo", "SyncEcho"):
        for method in ("Unary", "Split", "Join", "Chat", "Ping", "Missing"):
            r = routes[("POST", f"/covettest.v1.{service}/{method}")]
            assert r["kind"] == "grpc" and r["options"] == {}
    assert routes[("GET", "/plain")]["kind"] == "http"
    files = [descriptor_pb2.FileDescriptorProto.FromString(d) for d in hello["descriptors"]]
    # Each file once, the import before the file importing it.
    assert [f.name for f in files] == ["google/protobuf/empty.proto", "covet_grpc_test.proto"]
    assert [s.name for s in files[1].service] == ["Echo", "SyncEcho"]


def test_an_http_route_beside_the_services(gg: GrpcGateway) -> None:
    a = gg.exchange(GEN | next(_ids), "GET", "/plain")
    assert a.status == 200 and a.json() == {"hello": "http"}


# -- the four kinds ----------------------------------------------------------------------


def test_unary(gg: GrpcGateway, pb: Any, svc: str) -> None:
    # The body in 3-byte fragments: no fragment boundary falls on a message boundary.
    r = gg.finished(svc + "Unary", [msg(pb, text="hi", data=b"\x00\x01", count=7)], fragment=3)
    assert (r.code, r.message, r.trailers_only) == (0, "", False)
    assert r.head["content-type"] == b"application/grpc"
    assert r.head["grpc-accept-encoding"] == b"identity,gzip"
    assert r.trailers == {"grpc-status": b"0"}
    (m,) = decoded(pb, r)
    assert (m.text, m.data, m.count) == ("hi", b"\x00\x01", 7)


def test_unary_answers_in_the_requests_content_subtype(gg: GrpcGateway, pb: Any, svc: str) -> None:
    r = gg.finished(svc + "Unary", [msg(pb, text="x")], content_type=b"application/grpc+proto")
    assert r.code == 0 and r.head["content-type"] == b"application/grpc+proto"


def test_empty_messages_both_ways(gg: GrpcGateway, svc: str) -> None:
    r = gg.finished(svc + "Ping", [frame(b"")])
    assert r.code == 0 and r.messages == [(0, b"")]


def test_server_streaming(gg: GrpcGateway, pb: Any, svc: str) -> None:
    r = gg.finished(svc + "Split", [msg(pb, count=5, data=b"d")])
    assert r.code == 0
    assert [(m.count, m.data) for m in decoded(pb, r)] == [(i, b"d") for i in range(5)]


def test_server_stream_of_no_messages_is_trailers_only(gg: GrpcGateway, pb: Any, svc: str) -> None:
    r = gg.finished(svc + "Split", [msg(pb, count=0)])
    assert r.trailers_only and r.code == 0
    assert r.head["content-type"] == b"application/grpc"


def test_client_streaming(gg: GrpcGateway, pb: Any, svc: str) -> None:
    parts = [msg(pb, text=t, count=n) for t, n in (("a", 1), ("b", 20), ("c", 300))]
    r = gg.finished(svc + "Join", parts, fragment=7)
    (m,) = decoded(pb, r)
    assert (r.code, m.text, m.count) == (0, "a+b+c", 321)


def test_client_stream_of_no_messages(gg: GrpcGateway, pb: Any, svc: str) -> None:
    (m,) = decoded(pb, gg.finished(svc + "Join", []))
    assert (m.text, m.count) == ("", 0)


def test_bidi_streaming_answers_each_message_before_the_next_is_sent(gg: GrpcGateway, pb: Any, svc: str) -> None:
    rid = gg.call(svc + "Chat", [msg(pb, text="one", count=1)], end=False)
    gg.until(lambda: len(split_messages(bytes(gg.answers.get(rid, Answer()).body))) == 1, "the first answer")
    gg.more(rid, msg(pb, text="two", count=2))
    gg.until(lambda: len(split_messages(bytes(gg.answers[rid].body))) == 2, "the second answer")
    gg.more(rid, b"", end=True)
    r = gg.result(rid)
    assert r.code == 0
    assert [(m.text, m.count) for m in decoded(pb, r)] == [("ONE", 1), ("TWO", 2)]


# -- statuses ----------------------------------------------------------------------------


def test_abort_is_trailers_only_with_its_code_details_and_metadata(gg: GrpcGateway, pb: Any, svc: str) -> None:
    r = gg.finished(svc + "Unary", [msg(pb, text="abort")])
    assert r.trailers_only and r.code == 5  # NOT_FOUND
    # gRPC's percent-encoding of the UTF-8 bytes (non-ASCII and '%').
    assert r.head["grpc-message"] == b"no such thing: %C3%BCn%C3%AF 100%25"
    assert r.message == "no such thing: ünï 100%"
    assert r.head["why-bin"] == b"AP8"  # base64 of 00 ff, unpadded


def test_a_caught_abort_still_ends_the_call(gg: GrpcGateway, pb: Any, svc: str) -> None:
    r = gg.finished(svc + "Unary", [msg(pb, text="abort-caught")])
    assert (r.code, r.message, r.messages) == (7, "caught", [])


def test_set_code_and_details_end_the_call_without_its_response(gg: GrpcGateway, pb: Any, svc: str) -> None:
    r = gg.finished(svc + "Unary", [msg(pb, text="code")])
    assert (r.code, r.message, r.messages, r.trailers_only) == (3, "bad argument", [], True)


def test_handler_exception_is_unknown_without_the_traceback(gg: GrpcGateway, pb: Any, svc: str) -> None:
    r = gg.finished(svc + "Unary", [msg(pb, text="boom")])
    assert (r.code, r.message) == (2, "Unexpected ValueError")
    gg.until(lambda: "ValueError: secret detail" in gg.stderr(), "the traceback in the worker's log")
    assert "Traceback (most recent call last)" in gg.stderr()


def test_a_code_set_before_an_exception_is_kept(gg: GrpcGateway, pb: Any, svc: str) -> None:
    r = gg.finished(svc + "Unary", [msg(pb, text="code-boom")])
    assert (r.code, r.message) == (5, "Unexpected ValueError")


def test_a_method_the_servicer_leaves_out_is_unimplemented(gg: GrpcGateway, pb: Any, svc: str) -> None:
    # The generated base servicer's method: set_code(UNIMPLEMENTED), then NotImplementedError.
    r = gg.finished(svc + "Missing", [msg(pb, text="x")])
    assert (r.code, r.message) == (12, "Method not implemented!")


def test_undecodable_request_is_internal(gg: GrpcGateway, svc: str) -> None:
    r = gg.finished(svc + "Unary", [frame(b"\xff\xff\xff")])
    assert (r.code, r.message) == (13, "Exception deserializing request!")


def test_unary_call_without_a_request_message_is_internal(gg: GrpcGateway, svc: str) -> None:
    r = gg.finished(svc + "Unary", [])
    assert (r.code, r.message) == (13, "the client sent no request message")


def test_body_ending_inside_a_message_is_internal(gg: GrpcGateway, pb: Any, svc: str) -> None:
    r = gg.finished(svc + "Join", [msg(pb, text="whole"), msg(pb, text="cut")[:-2]])
    assert (r.code, r.message) == (13, "the request body ended inside a message")


# -- metadata, deadline, peer ------------------------------------------------------------


def test_metadata_both_ways(gg: GrpcGateway, pb: Any, svc: str) -> None:
    headers = [("x-custom", b"v1"), ("x-data-bin", base64.b64encode(b"\x00\x01\x02\x03").rstrip(b"=")),
               ("grpc-timeout", b"10S")]  # fmt: skip
    r = gg.finished(svc + "Unary", [msg(pb, text="meta")], headers=headers, timeout_ms=10_000)
    assert r.code == 0
    (m,) = decoded(pb, r)
    got = json.loads(m.text)
    # What grpcio hands a handler: the client's metadata, user-agent kept, -bin values
    # decoded to bytes (hex here), and none of content-type, te or grpc-*.
    assert got == [["user-agent", "grpc-go/1.85.0"], ["x-custom", "v1"], ["x-data-bin", "00010203"]]
    assert r.head["initial-key"] == b"initial value" and r.head["initial-bin"] == b"AAH+"
    assert r.trailers == {"grpc-status": b"0", "trailing-key": b"t", "trailing-bin": b"/w"}


def test_time_remaining_follows_the_clients_deadline(gg: GrpcGateway, pb: Any, svc: str) -> None:
    (m,) = decoded(pb, gg.finished(svc + "Unary", [msg(pb, text="deadline")], headers=[("grpc-timeout", b"5S")],
                                   timeout_ms=5000))  # fmt: skip
    assert 0 < float(m.text) <= 5
    # Without grpc-timeout the route's deadline is not the client's: no deadline.
    (m,) = decoded(pb, gg.finished(svc + "Unary", [msg(pb, text="deadline")], timeout_ms=30_000))
    assert m.text == "None"


@pytest.mark.parametrize(("client", "peer"), [("127.0.0.1:5555", "ipv4:127.0.0.1:5555"),
                                              ("[::1]:5678", "ipv6:[::1]:5678")])  # fmt: skip
def test_peer_is_named_as_grpcio_names_it(gg: GrpcGateway, pb: Any, svc: str, client: str, peer: str) -> None:
    (m,) = decoded(pb, gg.finished(svc + "Unary", [msg(pb, text="peer")], client=client))
    assert m.text == peer


# -- compression and sizes ---------------------------------------------------------------


def test_gzip_request_and_response(gg: GrpcGateway, pb: Any, svc: str) -> None:
    data = bytes(range(256)) * 40
    packed = gzip.compress(pb.Msg(text="gzip", data=data).SerializeToString())
    r = gg.finished(svc + "Unary", [frame(packed, compressed=True)], headers=[("grpc-encoding", b"gzip")])
    assert r.code == 0 and r.head["grpc-encoding"] == b"gzip"
    ((flag, body),) = r.messages
    assert flag == 1 and pb.Msg.FromString(gzip.decompress(body)).data == data


def test_no_gzip_response_for_a_client_that_does_not_take_it(gg: GrpcGateway, pb: Any, svc: str) -> None:
    r = gg.finished(svc + "Unary", [msg(pb, text="gzip", data=b"abc")], accept=b"identity")
    assert r.code == 0 and "grpc-encoding" not in r.head
    (m,) = decoded(pb, r)
    assert m.data == b"abc"


def test_unsupported_encoding_is_unimplemented(gg: GrpcGateway, pb: Any, svc: str) -> None:
    r = gg.finished(svc + "Unary", [frame(b"zz", compressed=True)], headers=[("grpc-encoding", b"br")])
    assert r.trailers_only and r.code == 12
    assert r.head["grpc-accept-encoding"] == b"identity,gzip" and "'br'" in r.message


def test_compressed_flag_without_an_encoding_is_internal(gg: GrpcGateway, pb: Any, svc: str) -> None:
    r = gg.finished(svc + "Unary", [frame(gzip.compress(b""), compressed=True)])
    assert r.code == 13


def test_message_over_max_receive_is_resource_exhausted_at_its_prefix(gg: GrpcGateway, svc: str) -> None:
    # The app allows 256 KiB; the worker refuses at the length prefix, before the rest.
    rid = gg.call(svc + "Unary", [struct.pack(">BI", 0, 300 << 10) + b"partial"], end=False)
    r = gg.result(rid)
    assert r.trailers_only and (r.code, r.message) == (8, f"Received message larger than max ({300 << 10} vs. {256 << 10})")


def test_gzip_bomb_over_max_receive_is_resource_exhausted(gg: GrpcGateway, svc: str) -> None:
    bomb = gzip.compress(b"\x0a" * (1 << 20))  # 1 MiB of one byte: far over the limit, a few KiB packed
    r = gg.finished(svc + "Unary", [frame(bomb, compressed=True)], headers=[("grpc-encoding", b"gzip")])
    assert r.code == 8


def test_large_messages_both_ways(gg: GrpcGateway, pb: Any, svc: str) -> None:
    # 200 KiB in, many ring records; 900 KB out through a 64 KiB response ring.
    data = os.urandom(200 << 10)
    (m,) = decoded(pb, gg.finished(svc + "Unary", [msg(pb, text="echo", data=data)], fragment=60_000))
    assert m.data == data
    (m,) = decoded(pb, gg.finished(svc + "Unary", [msg(pb, text="big", count=900_000)]))
    assert m.data == b"x" * 900_000


def test_response_over_max_send_is_resource_exhausted(gg: GrpcGateway, pb: Any, svc: str) -> None:
    r = gg.finished(svc + "Unary", [msg(pb, text="big", count=2 << 20)])
    assert r.code == 8 and r.message.startswith("Sent message larger than max (") and r.messages == []


# -- cancellation ------------------------------------------------------------------------


def _nothing_more(gg: GrpcGateway, rid: int) -> None:
    """After a CANCEL the worker sends nothing more for the id: a later call's answer
    comes, and still none for ``rid``."""
    after = gg.call("/covettest.v1.Echo/Ping", [frame(b"")])
    assert gg.result(after).code == 0
    gg.collect()
    a = gg.answers.get(rid)
    assert a is None or not a.done


def test_cancel_reaches_a_unary_handler(gg: GrpcGateway, pb: Any, svc: str) -> None:
    marker = f"unary-{svc}"
    rid = gg.call(svc + "Unary", [msg(pb, text="sleep", data=marker.encode())])
    gg.wait_log(f"{marker} started")
    gg.cancel(rid)
    gg.wait_log(f"{marker} cancelled=True")
    _nothing_more(gg, rid)
    assert rid not in gg.answers


def test_cancel_mid_stream_reaches_the_handler(gg: GrpcGateway, pb: Any, svc: str) -> None:
    marker = f"stream-{svc}"
    rid = gg.call(svc + "Split", [msg(pb, text="sleep", count=2, data=marker.encode())])
    gg.wait_log(f"{marker} started")
    gg.until(lambda: len(split_messages(bytes(gg.answers.get(rid, Answer()).body))) == 2, "two messages")
    gg.cancel(rid)
    gg.wait_log(f"{marker} cancelled=True")
    _nothing_more(gg, rid)
    assert rid not in gg.trailers


# -- interceptors ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ig(tmp_path_factory: pytest.TempPathFactory, generated: Path) -> Iterator[GrpcGateway]:
    """A worker serving grpc_worker_app:intercepted (interceptors outer, inner: async;
    gate: sync)."""
    g = _gateway(tmp_path_factory.mktemp("grpc-i"), generated, "grpc_worker_app:intercepted", "asyncio",
                 sys.executable, False)  # fmt: skip
    try:
        yield g
    finally:
        g.close()


def test_interceptors_run_in_order(ig: GrpcGateway, pb: Any) -> None:
    path = "/covettest.v1.Echo/Unary"
    (m,) = decoded(pb, ig.finished(path, [msg(pb, text="through")]))
    assert m.text == "through"
    assert ig.app_log()[-3:] == [f"outer {path}", f"inner {path}", f"gate {path}"]


def test_an_interceptor_that_finds_no_handler_is_unimplemented(ig: GrpcGateway, pb: Any) -> None:
    r = ig.finished("/covettest.v1.Echo/Unary", [msg(pb, text="x")], headers=[("x-block", b"1")])
    assert r.trailers_only and (r.code, r.message) == (12, "Method not found!")


def test_an_interceptor_may_answer_with_its_own_handler(ig: GrpcGateway, pb: Any) -> None:
    r = ig.finished("/covettest.v1.Echo/Unary", [msg(pb, text="x")], headers=[("x-deny", b"1")])
    assert (r.code, r.message) == (7, "denied by the gate")
