"""WebSocket sessions and server-sent events through the real worker
(``python -m covet worker ws_worker_app:app``), with this test as the gateway over
real rings (workerproto/PROTOCOL.md 2.9): WS_OPEN -> WS_ACCEPT (or an HTTP answer) ->
messages both ways within credit -> WS_CREDIT -> WS_CLOSE; CANCEL; the SSE stream's
frames and its generator's ``finally`` on CANCEL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from covet import _proto
from covet import _shmring as sr

try:  # tests/ may or may not be a package
    from .test_worker import GEN, TIMEOUT, WORKERS, FakeGateway  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from test_worker import GEN, TIMEOUT, WORKERS, FakeGateway  # type: ignore[no-redef,unused-ignore]

WINDOW = 64 << 10
BE = sr.BEGIN | sr.END


@dataclass
class Session:
    """What the worker sent for one WebSocket id."""

    accept: tuple[str, list[tuple[str, bytes]]] | None = None
    messages: list[tuple[int, bytes]] = field(default_factory=list)  # (type, whole payload)
    fragments: list[tuple[int, int, int]] = field(default_factory=list)  # (type, flags, payload length)
    partial: bytearray | None = None
    credits: list[int] = field(default_factory=list)
    close: tuple[int, str] | None = None
    late: list[int] = field(default_factory=list)  # frame types after the close

    @property
    def cost_sent(self) -> int:
        return sum(n + _proto.WS_FRAME_COST for _, _, n in self.fragments)


class WSGateway(FakeGateway):
    def __init__(self, tmp_path: Path, **kw: Any) -> None:
        super().__init__(tmp_path, app="ws_worker_app:app", **kw)
        self.sessions: dict[int, Session] = {}
        self.resumed: set[int] = set()
        self.hello: dict[str, Any] = {}

    def _on_frame(self, typ: int, rid: int, flags: int, payload: bytes) -> None:
        if not sr.WS_ACCEPT <= typ <= sr.WS_CREDIT:
            super()._on_frame(typ, rid, flags, payload)
            return
        s = self.sessions.setdefault(rid, Session())
        if s.close is not None:
            s.late.append(typ)
            return
        if typ == sr.WS_ACCEPT:
            assert flags == BE and s.accept is None and not s.messages, (rid, flags)
            s.accept = _proto.decode_ws_accept(payload)
        elif typ in (sr.WS_TEXT, sr.WS_BINARY):
            assert s.accept is not None or rid in self.resumed, f"message before accept for {rid:#x}"
            assert bool(flags & sr.BEGIN) == (s.partial is None), (rid, flags)
            s.fragments.append((typ, flags, len(payload)))
            if flags & sr.BEGIN:
                s.partial = bytearray()
            assert s.partial is not None
            s.partial += payload
            if flags & sr.END:
                s.messages.append((typ, bytes(s.partial)))
                s.partial = None
        elif typ == sr.WS_CREDIT:
            assert flags == BE
            s.credits.append(_proto.decode_window_payload(payload))
        elif typ == sr.WS_CLOSE:
            assert flags == BE and s.partial is None
            s.close = _proto.decode_ws_close(payload)

    def open(self, rid: int, path: str, route: str | None = None, params: list[str] | None = None, *,
             query: str = "", headers: list[tuple[str, bytes]] | None = None, resumed: bool = False,
             window: int = WINDOW) -> None:
        h = _proto.RequestHead("GET", path, query, [x for pair in (headers or []) for x in pair], route or path,
                               params or [], "1.1", "http", "127.0.0.1:5555", f"req-{rid:x}", 0, 0)  # fmt: skip
        if resumed:
            self.resumed.add(rid)
        self.send_frames(sr.WS_OPEN, rid, _proto.encode_ws_open(h, resumed, window))

    def session(self, rid: int) -> Session:
        return self.sessions.setdefault(rid, Session())

    def send_message(self, rid: int, data: bytes, text: bool = True) -> None:
        self.send_frames(sr.WS_TEXT if text else sr.WS_BINARY, rid, data)

    def send_close(self, rid: int, code: int = 1000, reason: str = "") -> None:
        self.send_frames(sr.WS_CLOSE, rid, _proto.encode_ws_close(code, reason), BE)

    def accepted(self, rid: int) -> Session:
        self.until(lambda: self.session(rid).accept is not None, f"WS_ACCEPT for {rid:#x}")
        return self.session(rid)

    def messages(self, rid: int, n: int) -> list[tuple[int, bytes]]:
        self.until(lambda: len(self.session(rid).messages) >= n, f"{n} messages for {rid:#x}")
        return self.session(rid).messages

    def closed(self, rid: int) -> tuple[int, str]:
        self.until(lambda: self.session(rid).close is not None, f"WS_CLOSE for {rid:#x}")
        close = self.session(rid).close
        assert close is not None
        return close

    def quiet(self, seconds: float = 0.3) -> None:
        """Collect for a while: what must not come has had its chance."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.collect()
            time.sleep(0.01)


@pytest.fixture(params=WORKERS)
def gw(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[WSGateway]:
    loop, python = request.param
    g = WSGateway(tmp_path, extra_env={"COVET_LOOP": loop}, python=python)
    try:
        g.hello = g.start()
        yield g
    finally:
        g.close()


def test_manifest_has_the_ws_routes(gw: WSGateway) -> None:
    routes = {(r["method"], r["path"]): (r["kind"], r["options"]) for r in gw.hello["routes"]}
    assert routes[("GET", "/ws/echo")] == ("ws", {"name": "echo"})
    assert routes[("GET", "/ws/room/{n:int}")] == ("ws", {"resumable": True})
    assert routes[("GET", "/events")] == ("http", {})


def test_open_accept_echo_credit_close(gw: WSGateway) -> None:
    rid = GEN | 1
    gw.open(rid, "/ws/echo", headers=[("sec-websocket-protocol", b"chat, superchat")])
    s = gw.accepted(rid)
    assert s.accept == ("chat", [("x-session", b"1")])
    gw.send_message(rid, "héllo".encode())
    gw.send_message(rid, b"\x00\xff", text=False)
    assert gw.messages(rid, 2) == [(sr.WS_TEXT, "héllo".encode()), (sr.WS_BINARY, b"\x00\xff")]
    # Each received message's cost (payload + 64) is owed back; the worker grants it in
    # batches once a quarter of the window is due.
    sizes = [len("héllo".encode()), 2] + [3000] * 8
    for _ in range(8):
        gw.send_message(rid, b"x" * 3000, text=False)
    gw.messages(rid, 10)
    gw.until(lambda: bool(s.credits), "a WS_CREDIT")
    consumed = sum(n + _proto.WS_FRAME_COST for n in sizes)
    assert WINDOW // 4 <= sum(s.credits) <= consumed
    assert all(c >= WINDOW // 4 for c in s.credits)
    # The gateway's close: the handler's loop ends quietly; exactly one WS_CLOSE back.
    gw.send_close(rid, 1001, "going away")
    assert gw.closed(rid) == (1000, "")
    gw.until(lambda: "echo closed 1001 going away" in gw.app_log(), "the handler to end")
    gw.send_message(rid, b"late")  # the id is gone: ignored
    gw.quiet()
    assert s.late == [] and len(s.messages) == 10
    assert gw.exchange(GEN | 2, "GET", "/json").status == 200


def test_fragmented_messages_both_ways(gw: WSGateway) -> None:
    rid = GEN | 3
    gw.open(rid, "/ws/echo")
    gw.accepted(rid)
    big = bytes(i % 253 for i in range(20_000))  # > one record (8 KiB on 64 KiB rings)
    assert len(big) > 2 * gw.writer.max_payload
    gw.send_message(rid, big, text=False)
    (typ, data), = gw.messages(rid, 1)
    assert typ == sr.WS_BINARY and data == big
    s = gw.session(rid)
    assert len(s.fragments) >= 3 and s.fragments[0][1] == sr.BEGIN and s.fragments[-1][1] == sr.END
    gw.send_close(rid)
    assert gw.closed(rid) == (1000, "")


def test_sends_wait_for_credit_and_a_message_over_half_the_window_is_refused(gw: WSGateway) -> None:
    rid = GEN | 4
    # Three 30,000-byte messages against a 64 KiB window: two fit (60,128 of 65,536
    # with the per-frame cost), the third waits for the gateway's WS_CREDIT.
    gw.open(rid, "/ws/send/30000/3", "/ws/send/{size:int}/{count:int}", ["size", "30000", "count", "3"])
    gw.accepted(rid)
    gw.messages(rid, 2)
    gw.quiet()
    s = gw.session(rid)
    assert len(s.messages) == 2 and s.cost_sent <= WINDOW
    gw.send_frames(sr.WS_CREDIT, rid, _proto.encode_window_payload(s.cost_sent), BE)
    assert [d[:1] for _, d in gw.messages(rid, 3)] == [b"\x00", b"\x01", b"\x02"]
    gw.until(lambda: "sender done" in gw.app_log(), "the sender to finish")
    gw.send_close(rid)
    assert gw.closed(rid) == (1000, "")

    big = GEN | 5  # more than half the window: ValueError in the handler, nothing sent
    gw.open(big, "/ws/send/40000/1", "/ws/send/{size:int}/{count:int}", ["size", "40000", "count", "1"])
    (typ, text), = gw.messages(big, 1)
    assert typ == sr.WS_TEXT and b"over this session's limit of 32768 bytes" in text


def test_rejections_are_http_answers(gw: WSGateway) -> None:
    a = GEN | 6
    gw.open(a, "/ws/reject")
    assert gw.answer(a).status == 403
    b = GEN | 7
    gw.open(b, "/ws/denied")
    ans = gw.answer(b)
    assert ans.status == 401 and ans.json() == {"detail": "who are you?"}
    assert ans.header("www-authenticate") == b"Bearer"
    c = GEN | 8
    gw.open(c, "/nowhere")
    assert gw.answer(c).status == 404
    d = GEN | 9  # a path parameter that does not convert
    gw.open(d, "/ws/room/x", "/ws/room/{n:int}", ["n", "x"])
    assert gw.answer(d).status == 404
    gw.quiet(0.1)
    assert all(gw.session(r).accept is None and gw.session(r).close is None for r in (a, b, c, d))


def test_params_query_close_code_and_resumed_session(gw: WSGateway) -> None:
    rid = GEN | 10
    gw.open(rid, "/ws/room/7", "/ws/room/{n:int}", ["n", "7"], query="q=hi")
    assert gw.closed(rid) == (4000, "bye")
    s = gw.session(rid)
    assert s.accept == ("", [])
    assert [json.loads(d) for _, d in s.messages] == [{"n": 7, "resumed": False, "q": "hi"}]
    # A resumed session: no WS_ACCEPT goes out, ws.resumed is true.
    again = GEN | 11
    gw.open(again, "/ws/room/7", "/ws/room/{n:int}", ["n", "7"], resumed=True)
    assert gw.closed(again) == (4000, "bye")
    s = gw.session(again)
    assert s.accept is None and json.loads(s.messages[0][1])["resumed"] is True


def test_exception_after_accept_closes_1011_and_is_logged(gw: WSGateway) -> None:
    rid = GEN | 12
    gw.open(rid, "/ws/boom")
    assert gw.closed(rid) == (1011, "internal error")
    gw.until(lambda: "ws-boom-4321" in gw.stderr(), "the traceback")
    err = gw.stderr()
    assert f"request_id=req-{rid:x}" in err and "RuntimeError: ws-boom-4321" in err


def test_cancel_stops_the_handler_and_nothing_more_is_sent(gw: WSGateway) -> None:
    rid = GEN | 14
    gw.open(rid, "/ws/wait")
    gw.until(lambda: f"wait started req-{rid:x}" in gw.app_log(), "the handler to start")
    gw.cancel(rid)
    gw.until(lambda: f"wait cancelled req-{rid:x}" in gw.app_log(), "the handler to be cancelled")
    gw.quiet()
    s = gw.session(rid)
    assert s.close is None and s.messages == [] and s.late == []


def test_gateway_close_reaches_a_waiting_receive(gw: WSGateway) -> None:
    rid = GEN | 16
    gw.open(rid, "/ws/wait")
    gw.accepted(rid)
    gw.send_close(rid, 1006)
    gw.until(lambda: "wait disconnect 1006" in gw.app_log(), "WebSocketDisconnect in the handler")
    assert gw.closed(rid) == (1000, "")


def test_gateway_past_its_window_is_a_protocol_violation(gw: WSGateway) -> None:
    rid = GEN | 18
    gw.open(rid, "/ws/wait", window=_proto.WS_MIN_WINDOW)
    gw.accepted(rid)
    chunk = b"z" * 8000
    for i in range(_proto.WS_MIN_WINDOW // len(chunk) + 1):  # one never-ending message: no grants
        gw.until(lambda: gw.writer.try_write(sr.WS_BINARY, rid, sr.BEGIN if i == 0 else 0, chunk, True),
                 "request ring space")
    msg = gw.read_msg()
    assert msg["type"] == "error" and msg["code"] == "protocol" and "past its window" in msg["message"]
    assert gw.wait_exit() == 1


def test_sse_events_are_frames_as_they_come_and_cancel_reaches_finally(gw: WSGateway) -> None:
    rid = GEN | 20
    gw.request(rid, "GET", "/events")
    gw.until(lambda: rid in gw.answers and gw.answers[rid].body.count(b": ping\n\n") >= 1, "a heartbeat")
    a = gw.answers[rid]
    assert a.status == 200 and a.body_length == -1 and not a.done
    assert a.header("content-type") == b"text/event-stream"
    assert a.header("cache-control") == b"no-cache" and a.header("x-accel-buffering") == b"no"
    body = bytes(a.body)
    assert body.startswith(b'id: 1\ndata: one\n\nevent: update\ndata: {"two":2}\n\n: ping\n\n')
    assert a.body_frames >= 3  # each event its own frame
    assert "events idle" in gw.app_log()
    gw.cancel(rid)
    gw.until(lambda: "events finally" in gw.app_log(), "the generator's finally")
    assert gw.exchange(GEN | 21, "GET", "/json").status == 200


def test_drain_keeps_sessions_until_the_deadline(gw: WSGateway) -> None:
    rid = GEN | 22
    gw.open(rid, "/ws/echo")
    gw.accepted(rid)
    gw.send_msg({"type": "drain", "deadline_ms": 300})
    gw.wait_state(sr.STATE_DRAINING)
    gw.send_message(rid, b"still here")  # served while draining
    assert gw.messages(rid, 1) == [(sr.WS_TEXT, b"still here")]
    late = GEN | 24
    gw.open(late, "/ws/echo")
    assert gw.answer(late).error == (503, "worker is draining")
    assert gw.read_msg() == {"type": "bye", "reason": "drained"}
    assert gw.wait_exit(TIMEOUT) == 0
    gw.collect()
    assert gw.session(rid).close is None  # cut at the deadline: the gateway handles it as a lost worker


def test_a_cancelled_send_still_finishes_its_message(gw: WSGateway) -> None:
    # The second message's first fragments are out when its send is cancelled: the
    # worker must finish it (once credit comes) before the next message begins, or
    # the gateway would see a BEGIN inside a message.
    rid = GEN | 26
    gw.open(rid, "/ws/cancelled-send")
    gw.accepted(rid)
    gw.until(lambda: "send cancelled" in gw.app_log(), "the send to be cancelled")
    s = gw.session(rid)
    assert len(s.messages) == 1 and s.partial is not None  # the second is half out
    gw.send_frames(sr.WS_CREDIT, rid, _proto.encode_window_payload(s.cost_sent), BE)
    msgs = gw.messages(rid, 3)
    assert msgs == [(sr.WS_BINARY, b"a" * 32768), (sr.WS_BINARY, b"b" * 32768), (sr.WS_TEXT, b"after")]
    gw.send_close(rid)
    assert gw.closed(rid) == (1000, "")
