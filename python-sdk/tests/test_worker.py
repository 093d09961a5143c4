"""The real worker (``python -m covet worker worker_app:app``) in a subprocess, with
this test playing the gateway: control socket, segment, doorbells and both rings."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from covet import _proto
from covet import _shmring as sr
from covet._worker import GRANT_AT, SPIN_MAX_BURST, WHOLE_MAX

try:  # tests/ may or may not be a package
    from .shmring_gateway import make_bell, make_memfd  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from shmring_gateway import make_bell, make_memfd  # type: ignore[no-redef,unused-ignore]

TESTS_DIR = Path(__file__).resolve().parent
SDK_DIR = TESTS_DIR.parent
TIMEOUT = 10.0
GEN = 7 << 32  # request ids: generation 7, slot numbers from 1


@dataclass
class Answer:
    """Everything the worker sent for one request id, checked frame by frame."""

    head_parts: list[bytes] = field(default_factory=list)
    status: int | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    body_length: int | None = None
    body: bytearray = field(default_factory=bytearray)
    body_frames: int = 0
    body_begun: bool = False
    done: bool = False
    aborted: bool = False  # a RESP_BODY flagged ERR
    whole: bool = False  # one RESP frame: head and body together
    error: tuple[int, str] | None = None
    late: list[tuple[int, int]] = field(default_factory=list)  # frames after the end
    hints: list[list[tuple[str, bytes]]] = field(default_factory=list)  # EARLY_HINTS, in order

    def header(self, name: str) -> bytes | None:
        return next((v for n, v in self.headers if n == name), None)

    def json(self) -> Any:
        return json.loads(bytes(self.body))


class FakeGateway:
    """The gateway's side of PROTOCOL.md, just enough to drive one worker."""

    def __init__(self, tmp_path: Path, *, req_cap: int = 1 << 16, resp_cap: int = 1 << 16,
                 heartbeat_ms: int = 200, app: str = "worker_app:app",
                 extra_env: dict[str, str] | None = None, python: str = sys.executable) -> None:
        self.req_cap = req_cap
        self.resp_cap = resp_cap
        self.heartbeat_ms = heartbeat_ms
        self.log_path = tmp_path / "app.log"
        self.stderr_path = tmp_path / "worker.stderr"
        self.answers: dict[int, Answer] = {}
        self.grants: dict[int, list[int]] = {}  # REQ_WINDOW grants, per request id
        self.seg: sr.Segment | None = None
        self.sock, child = socket.socketpair()
        env = {k: v for k, v in os.environ.items() if not k.startswith("COVET_")}
        env.update({_proto.ENV_CONTROL_FD: str(child.fileno()), "WORKER_TEST_LOG": str(self.log_path),
                    "COVET_LOG_LEVEL": "DEBUG"})
        env.update(extra_env or {})
        if python != sys.executable:  # another interpreter: the SDK from this checkout
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SDK_DIR), env.get("PYTHONPATH")]))
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [python, "-m", "covet", "worker", app], cwd=TESTS_DIR, env=env,
                pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        child.close()
        self.sock.settimeout(TIMEOUT)
        self.channel = _proto.ControlChannel(self.sock)

    # -- control plane

    def read_msg(self) -> dict[str, Any]:
        return self.channel.read_message()

    def send_msg(self, msg: dict[str, Any]) -> None:
        self.channel.write_message(msg)

    def handshake(self, **override: object) -> dict[str, Any]:
        hello = self.read_msg()
        assert hello["type"] == "hello", hello
        fields: dict[str, object] = {"worker_pid": self.proc.pid, "epoch": 99}
        fields.update(override)
        memfd = make_memfd(self.req_cap, self.resp_cap, **fields)
        wbell, gbell = make_bell(), make_bell()
        welcome = {"type": "welcome", "version": 1, "worker_id": 3, "epoch": 99,
                   "segment_size": 4096 + 2048 + self.req_cap + self.resp_cap,
                   "req_capacity": self.req_cap, "resp_capacity": self.resp_cap,
                   "heartbeat_ms": self.heartbeat_ms}
        socket.send_fds(self.sock, [_proto.encode_frame(welcome)], [memfd, wbell, gbell])
        self.seg = sr.Segment.open(memfd)
        self.worker_bell = sr.Doorbell(wbell)
        self.gw_bell = sr.Doorbell(gbell)
        self.writer = sr.RingWriter(self.seg, sr.REQUEST_RING, own=self.gw_bell,
                                    peer=self.worker_bell, wait_timeout=0.05)
        self.reader = sr.RingReader(self.seg, sr.RESPONSE_RING, self.worker_bell)
        return hello

    def wait_state(self, state: int) -> None:
        assert self.seg is not None
        self.until(lambda: self.seg is not None and self.seg.state == state, f"worker_state {state}")

    def start(self) -> dict[str, Any]:
        hello = self.handshake()
        self.wait_state(sr.STATE_READY)
        return hello

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(TIMEOUT)
        self.sock.close()
        if self.seg is not None:
            self.seg.close()
            self.worker_bell.close()
            self.gw_bell.close()

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def app_log(self) -> list[str]:
        return self.log_path.read_text().splitlines() if self.log_path.exists() else []

    # -- data plane

    def send_frames(self, typ: int, rid: int, payload: bytes, flags: int = 0, wake: bool = True) -> None:
        deadline = time.monotonic() + TIMEOUT
        for f, chunk in self.writer.fragments(payload, True, True, flags):
            while not self.writer.try_write(typ, rid, f, chunk, wake):
                if time.monotonic() > deadline:
                    raise TimeoutError("request ring stayed full\n" + self.stderr())
                self.collect()
                self.gw_bell.wait(0.005)

    def request(self, rid: int, method: str, path: str, route: str | None = None,
                params: list[str] | None = None, body: bytes = b"", query: str = "",
                headers: list[tuple[str, bytes]] | None = None, wake: bool = True,
                client_cert: _proto.ClientCert | None = None, body_length: int | None = None) -> None:
        h = _proto.RequestHead(method, path, query, [x for pair in (headers or []) for x in pair],
                               route or path, params or [], "1.1", "http", "127.0.0.1:5555",
                               f"req-{rid:x}", len(body) if body_length is None else body_length,
                               0, client_cert)  # fmt: skip
        self.send_frames(sr.REQ_HEAD, rid, _proto.encode_head(h), wake=wake)
        if body:
            self.send_frames(sr.REQ_BODY, rid, body, wake=wake)

    def cancel(self, rid: int) -> None:
        self.send_frames(sr.CANCEL, rid, b"", sr.FLAG_CANCEL)

    def send_body(self, rid: int, data: bytes, begin: bool, end: bool, flags: int = 0) -> None:
        """Some of a streamed request body: REQ_BODY fragments, the first flagged BEGIN if
        begin, the last END|flags if end."""
        deadline = time.monotonic() + TIMEOUT
        for f, chunk in self.writer.fragments(data, begin, end, flags):
            while not self.writer.try_write(sr.REQ_BODY, rid, f, chunk, True):
                if time.monotonic() > deadline:
                    raise TimeoutError("request ring stayed full\n" + self.stderr())
                self.collect()
                self.gw_bell.wait(0.005)

    def _on_frame(self, typ: int, rid: int, flags: int, payload: bytes) -> None:
        if typ == sr.REQ_WINDOW:
            assert flags == sr.BEGIN | sr.END, (rid, flags)
            self.grants.setdefault(rid, []).append(_proto.decode_window_payload(payload))
            return
        a = self.answers.setdefault(rid, Answer())
        if a.done:
            a.late.append((typ, flags))
            return
        if typ == sr.RESP_HEAD:
            assert a.status is None and bool(flags & sr.BEGIN) == (not a.head_parts), (rid, flags)
            a.head_parts.append(payload)
            if flags & sr.END:
                a.status, a.headers, a.body_length = _proto.decode_response_head(b"".join(a.head_parts))
        elif typ == sr.RESP_BODY:
            assert a.status is not None, f"body before head for {rid:#x}"
            assert bool(flags & sr.BEGIN) == (not a.body_begun), (rid, flags)
            a.body_begun = True
            a.body_frames += 1
            a.body += payload
            if flags & sr.FLAG_ERR:
                a.aborted = True
            if flags & sr.END:
                a.done = True
        elif typ == sr.RESP:
            assert a.status is None and not a.head_parts and flags == sr.BEGIN | sr.END, (rid, flags)
            a.status, a.headers, a.body_length, body = _proto.decode_response(payload)
            a.body += body
            a.body_frames += 1
            a.whole = a.body_begun = a.done = True
        elif typ == sr.EARLY_HINTS:
            assert a.status is None and flags == sr.BEGIN | sr.END, (rid, flags)
            a.hints.append(_proto.decode_early_hints(payload))
        elif typ == sr.ERROR:
            assert flags & sr.FLAG_ERR and flags & sr.BEGIN and flags & sr.END, flags
            a.error = _proto.decode_error_payload(payload)
            a.done = True
        else:
            raise AssertionError(f"unexpected frame type {typ}")

    def collect(self) -> None:
        while self.reader.poll(self._on_frame):
            pass

    def until(self, pred: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.collect()
            if pred():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; worker stderr:\n{self.stderr()}")
            if self.proc.poll() is not None and not pred():
                self.collect()
                if not pred():
                    raise AssertionError(f"worker exited ({self.proc.returncode}) while waiting for "
                                         f"{what}; stderr:\n{self.stderr()}")
            self.reader.wait(self.gw_bell, 0.02, spin_ns=0)

    def answer(self, rid: int, timeout: float = TIMEOUT) -> Answer:
        self.until(lambda: rid in self.answers and self.answers[rid].done, f"answer to {rid:#x}", timeout)
        return self.answers[rid]

    def exchange(self, rid: int, method: str, path: str, route: str | None = None, **kw: Any) -> Answer:
        self.request(rid, method, path, route, **kw)
        return self.answer(rid)

    def wait_exit(self, timeout: float = TIMEOUT) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker did not exit; stderr:\n{self.stderr()}") from None


# Every worker test runs on both event loops the worker supports (COVET_LOOP), and on
# uvloop under a second Python when one is given.
NEEDS_UVLOOP = pytest.mark.skipif(importlib.util.find_spec("uvloop") is None,
                                  reason="uvloop is not installed (make venv installs it)")


@functools.cache
def eager_tasks(python: str) -> bool:
    """Whether the worker runs each request as an eager task under ``python`` (3.12+)."""
    if python == sys.executable:
        return sys.version_info >= (3, 12)
    out = subprocess.run([python, "-c", "import sys; print(sys.version_info >= (3, 12))"],
                         capture_output=True, text=True, check=True).stdout
    return out.strip() == "True"


# A second Python with msgpack, msgspec and uvloop (make test makes .venv-compat from a
# Python 3.11 when .venv's is newer): the oldest supported Python and the newest both
# run the worker, one with scheduled tasks, the other with eager ones.
OTHER_PYTHON = os.environ.get("COVET_TEST_OTHER_PYTHON", "")
WORKERS = [
    pytest.param(("asyncio", sys.executable), id="asyncio"),
    pytest.param(("uvloop", sys.executable), id="uvloop", marks=NEEDS_UVLOOP),
    pytest.param(("uvloop", OTHER_PYTHON), id="uvloop-other", marks=pytest.mark.skipif(
        not OTHER_PYTHON,
        reason="no second Python for the worker (COVET_TEST_OTHER_PYTHON unset; make test sets it "
        "to a Python 3.11 when .venv's is newer and one is installed): only this interpreter's "
        "task path of covet/_worker.py is run")),
]


def started(tmp_path: Path, worker: tuple[str, str], **env: str) -> Iterator[FakeGateway]:
    loop, python = worker
    g = FakeGateway(tmp_path, extra_env={"COVET_LOOP": loop, **env}, python=python)
    try:
        g.start()
        tasks = "eager" if eager_tasks(python) else "scheduled"
        assert f"{loop} loop, {tasks} tasks" in g.stderr()
        yield g
    finally:
        g.close()


@pytest.fixture(params=WORKERS)
def gw(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[FakeGateway]:
    yield from started(tmp_path, request.param)


@pytest.fixture(params=WORKERS)
def sleepy_gw(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[FakeGateway]:
    """A worker that never spins: it reads the ring only when the doorbell rings."""
    yield from started(tmp_path, request.param, COVET_WORKER_SPIN_US="0")


@pytest.mark.parametrize(("setting", "text"), [
    (("COVET_WORKER_SPIN_US", "fast"), "COVET_WORKER_SPIN_US='fast': want microseconds"),
    (("COVET_LOOP", "trio"), "COVET_LOOP='trio': want auto, asyncio or uvloop"),
    (("COVET_SYNC_SPILL_MS", "soon"), "COVET_SYNC_SPILL_MS='soon': want milliseconds, 0 to 60000"),
])  # fmt: skip
def test_bad_worker_setting_is_refused(setting: tuple[str, str], text: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVET_")}
    env.update({setting[0]: setting[1], _proto.ENV_CONTROL_FD: "99"})
    r = subprocess.run([sys.executable, "-m", "covet", "worker", "worker_app:app"], cwd=TESTS_DIR,
                       env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 2 and text in r.stderr


def test_worker_that_never_spins_is_woken_by_the_doorbell(tmp_path: Path) -> None:
    """COVET_WORKER_SPIN_US=0: the pump sleeps as soon as the ring is empty, so every
    request below needs the doorbell (PROTOCOL 2.5) to be noticed: with a 20 s
    heartbeat, the heartbeat's re-poll (every 10 s) cannot stand in for it."""
    g = FakeGateway(tmp_path, heartbeat_ms=20_000, extra_env={"COVET_WORKER_SPIN_US": "0"})
    try:
        g.start()
        for i in range(1, 6):
            time.sleep(0.02)  # the worker is asleep on its doorbell
            start = time.monotonic()
            a = g.exchange(GEN | i, "GET", "/json", query=f"q={i}")
            assert a.status == 200 and a.json() == {"hello": "world", "query": str(i)}
            assert time.monotonic() - start < 5, "answered only by the heartbeat's re-poll"
    finally:
        g.close()


def test_worker_spins_only_after_a_short_burst(tmp_path: Path) -> None:
    """With a 1 s spin: after a burst of more than SPIN_MAX_BURST requests the worker
    sleeps on its doorbell at once (at 64 connections spinning only took CPU from the
    gateway); after a single request it spins."""
    g = FakeGateway(tmp_path, heartbeat_ms=20_000, extra_env={"COVET_WORKER_SPIN_US": "1000000"})
    try:
        g.start()
        g.until(lambda: g.writer.consumer_sleeping, "the worker to sleep after its start-up spin")
        n = 3 * SPIN_MAX_BURST
        for i in range(1, n + 1):  # one burst: written while it sleeps, rung once
            g.request(GEN | i, "GET", "/json", query=f"q={i}", wake=False)
        g.writer.wake()
        for i in range(1, n + 1):
            assert g.answer(GEN | i).json() == {"hello": "world", "query": str(i)}
        answered = time.monotonic()
        g.until(lambda: g.writer.consumer_sleeping, "the worker to sleep after a long burst")
        assert time.monotonic() - answered < 0.5, "the worker spun after a long burst"

        a = g.exchange(GEN | (n + 1), "GET", "/json", query="q=one")
        assert a.json() == {"hello": "world", "query": "one"}
        assert not g.writer.consumer_sleeping, "the worker slept at once after one request"
    finally:
        g.close()


def test_worker_does_not_spin_while_a_response_waits_for_a_grant(tmp_path: Path) -> None:
    """With a 1 s spin: a response stopped at its window (PROTOCOL 2.7) waits for the
    gateway's client, which takes longer than any spin; the worker sleeps at once."""
    g = FakeGateway(tmp_path, resp_cap=1 << 23, heartbeat_ms=20_000, extra_env={"COVET_WORKER_SPIN_US": "1000000"})
    try:
        g.start()
        g.until(lambda: g.writer.consumer_sleeping, "the worker to sleep after its start-up spin")
        rid, n = GEN | 1, 3_000_000
        g.request(rid, "GET", f"/big/{n}", "/big/{n:int}", params=["n", str(n)])
        g.until(lambda: rid in g.answers and len(g.answers[rid].body) == _proto.RESPONSE_WINDOW, "a window of body")
        stopped = time.monotonic()
        g.until(lambda: g.writer.consumer_sleeping, "the worker to sleep")
        assert time.monotonic() - stopped < 0.5, "the worker spun while waiting for a grant"
        g.send_frames(sr.WINDOW, rid, _proto.encode_window_payload(n), sr.BEGIN | sr.END)
        assert bytes(g.answer(rid).body) == bytes(i % 251 for i in range(n))
    finally:
        g.close()


def test_hello_carries_the_manifest(tmp_path: Path) -> None:
    g = FakeGateway(tmp_path)
    try:
        hello = g.start()
        assert hello["app"] == "worker-test" and hello["pid"] == g.proc.pid
        routes = {(r["method"], r["path"]): r["options"] for r in hello["routes"]}
        assert routes[("GET", "/json")] == {"name": "json", "timeout_ms": 2500}
        assert ("GET", "/item/{id:int}") in routes
        assert g.app_log() == ["startup"]
        assert g.seg is not None and g.seg.heartbeat > 0
    finally:
        g.close()


def test_json_get(gw: FakeGateway) -> None:
    a = gw.exchange(GEN | 1, "GET", "/json", query="q=abc")
    assert a.status == 200 and a.error is None and not a.aborted
    assert a.header("content-type") == b"application/json"
    assert a.json() == {"hello": "world", "query": "abc"}
    assert a.body_length == len(a.body) and a.body_frames == 1


def test_early_hints_come_before_the_head_and_the_client_cert_reaches_the_handler(gw: FakeGateway) -> None:
    cert = _proto.ClientCert("CN=alice,O=Example", ("alice.example", "192.0.2.1"), "ab" * 32)
    a = gw.exchange(GEN | 1, "GET", "/hints", client_cert=cert)
    assert a.status == 200 and a.error is None
    assert a.hints == [[("link", b"</a.css>; rel=preload; as=style"), ("x-hint", b"1")],
                       [("link", b"</b.js>; rel=preload; as=script")]]
    assert a.json() == {"cert": ["CN=alice,O=Example", ["alice.example", "192.0.2.1"], "ab" * 32]}
    a = gw.exchange(GEN | 2, "GET", "/hints")
    assert a.json() == {"cert": None} and len(a.hints) == 2


def test_early_hints_after_the_head_or_past_the_limit_are_refused(gw: FakeGateway) -> None:
    a = gw.exchange(GEN | 1, "GET", "/hints/late")
    assert a.status == 200 and a.hints == [] and bytes(a.body) == b"send_early_hints: the response has already begun"
    a = gw.exchange(GEN | 2, "GET", "/hints/many")
    assert len(a.hints) == _proto.MAX_EARLY_HINTS
    assert bytes(a.body) == b"send_early_hints: at most 16 per request"


def test_each_request_is_its_own_task_with_its_own_context(gw: FakeGateway) -> None:
    # The handler sets a context variable; the next request must not see it, whether
    # its task was scheduled or ran eagerly.
    for n in (1, 2, 3):
        a = gw.exchange(GEN | 600 + n, "GET", "/ctx")
        assert a.status == 200 and a.json() == {"before": "unset", "in_task": True}


def test_answered_requests_leave_nothing_in_flight(gw: FakeGateway) -> None:
    # Requests that finish without suspending (an eager task ends inside its creation)
    # and one that sleeps: once all are answered, a drain finds none in flight.
    for n in range(5):
        gw.request(GEN | 620 + n, "GET", "/json")
    gw.request(GEN | 630, "GET", "/sleep/20", "/sleep/{ms:int}", params=["ms", "20"])
    for rid in [GEN | 620 + n for n in range(5)] + [GEN | 630]:
        assert gw.answer(rid).status == 200
    gw.send_msg({"type": "drain", "deadline_ms": 5000})
    assert gw.read_msg() == {"type": "bye", "reason": "drained"}
    assert gw.wait_exit() == 0
    assert "draining 0 in-flight requests" in gw.stderr()


def test_a_handler_starts_only_once_its_request_is_off_the_ring(gw: FakeGateway) -> None:
    # The gateway retries elsewhere a request whose record a dead worker never released
    # (PROTOCOL.md 1.1), so no handler may run before its record is released: an eager
    # task must not start inside the ring read. The handler blocks the worker for a
    # second; meanwhile the ring's head must already be past the request.
    rid = GEN | 640
    gw.request(rid, "GET", "/block/1000", "/block/{ms:int}", params=["ms", "1000"])
    gw.until(lambda: f"block started req-{rid:x}" in gw.app_log(), "the handler to start")
    assert gw.seg is not None
    released = gw.seg._u64[(gw.seg.req_offset + sr.CB_HEAD) >> 3]
    assert released == gw.writer.tail, f"handler started with {gw.writer.tail - released} bytes unreleased"
    a = gw.answer(rid)
    assert a.status == 200 and bytes(a.body) == b"blocked 1000"


def test_small_complete_response_is_one_resp_frame(gw: FakeGateway) -> None:
    # Head and body in one RESP frame up to WHOLE_MAX bytes of body; above, RESP_HEAD
    # and RESP_BODY (PROTOCOL 2.4).
    for i, (n, whole) in enumerate([(0, True), (WHOLE_MAX, True), (WHOLE_MAX + 1, False)]):
        a = gw.exchange(GEN | (80 + i), "GET", f"/big/{n}", "/big/{n:int}", params=["n", str(n)])
        assert a.status == 200 and a.body_length == n and bytes(a.body) == bytes(j % 251 for j in range(n))
        assert a.whole == whole and a.body_frames == 1, (n, a)
    head = gw.exchange(GEN | 90, "HEAD", "/json", "/json")
    assert head.whole and head.body_length == 0 and head.body == b""


def test_heartbeat_advances(gw: FakeGateway) -> None:
    assert gw.seg is not None
    first = gw.seg.heartbeat
    gw.until(lambda: gw.seg is not None and gw.seg.heartbeat > first, "a newer heartbeat", 2.0)


def test_post_body_spanning_many_fragments_is_echoed(gw: FakeGateway) -> None:
    body = os.urandom(200_000)  # 64 KiB rings: ~25 fragments each way, several wraps
    assert len(body) > 3 * gw.writer.max_payload
    a = gw.exchange(GEN | 2, "POST", "/echo", body=body)
    assert a.status == 200 and a.body_length == len(body)
    assert bytes(a.body) == body and a.body_frames > 3


def test_request_body_is_streamed_in_fragments(gw: FakeGateway) -> None:
    a = gw.exchange(GEN | 3, "POST", "/count", body=b"x" * 50_000)
    got = a.json()
    assert got["bytes"] == 50_000 and got["chunks"] >= 50_000 // gw.writer.max_payload


def test_request_body_is_granted_back_as_the_handler_takes_it(gw: FakeGateway) -> None:
    # PROTOCOL 2.8: the gateway sends a window of body; the worker grants back what the
    # handler took, a quarter of the window at a time, until the body's END came.
    rid, win = GEN | 700, _proto.REQUEST_WINDOW
    gw.request(rid, "POST", "/count", body_length=-1)
    first = os.urandom(win)
    gw.send_body(rid, first, True, False)
    got = lambda: sum(gw.grants.get(rid, []))  # noqa: E731
    # The handler took the whole window: all of it is granted back but what is left
    # short of a quarter (so the gateway can always send on).
    gw.until(lambda: got() > win - GRANT_AT, "grants for the window taken")
    assert got() <= win and all(g >= GRANT_AT for g in gw.grants[rid]), gw.grants[rid]
    assert not gw.answers.get(rid)
    gw.send_body(rid, b"y" * 300_000, False, True)
    a = gw.answer(rid)
    assert a.status == 200 and a.json()["bytes"] == win + 300_000
    assert got() <= win + 300_000


def test_small_body_costs_no_grant(gw: FakeGateway) -> None:
    a = gw.exchange(GEN | 705, "POST", "/count", body=b"s" * (GRANT_AT - 1))
    assert a.json()["bytes"] == GRANT_AT - 1 and GEN | 705 not in gw.grants


def test_body_broken_off_raises_body_aborted(gw: FakeGateway) -> None:
    # A REQ_BODY fragment flagged ERR|END (the client left, the body passed
    # max_body_bytes): the handler's read raises covet.BodyAborted.
    rid = GEN | 710
    gw.request(rid, "POST", "/aborted", body_length=-1)
    gw.send_body(rid, b"part" * 1000, True, False)
    gw.send_body(rid, b"", False, True, sr.FLAG_ERR)
    a = gw.answer(rid)
    assert a.status == 200 and a.json() == {"read": 4000, "aborted": "BodyAborted"}, a


def test_fragmented_request_head(gw: FakeGateway) -> None:
    big = b"v" * 20_000  # head over one record: REQ_HEAD arrives in fragments
    a = gw.exchange(GEN | 4, "GET", "/json", headers=[("x-big", big)])
    assert a.status == 200 and a.json()["hello"] == "world"


def test_large_response_waits_for_ring_space(gw: FakeGateway) -> None:
    a = gw.exchange(GEN | 5, "GET", "/big/300000", "/big/{id:int}".replace("id", "n"), params=["n", "300000"])
    assert a.status == 200 and a.body_length == 300_000
    assert bytes(a.body) == bytes(i % 251 for i in range(300_000))


def test_response_body_waits_for_window_grants(gw: FakeGateway) -> None:
    # PROTOCOL 2.7: at most RESPONSE_WINDOW bytes of body, then more only as granted.
    n, win = 3_000_000, _proto.RESPONSE_WINDOW
    rid = GEN | 50
    gw.request(rid, "GET", f"/big/{n}", "/big/{n:int}", params=["n", str(n)])
    got = lambda: len(gw.answers[rid].body) if rid in gw.answers else 0  # noqa: E731
    for limit in (win, win + 700_000):
        gw.until(lambda: got() >= limit, f"{limit} bytes of body")
        # Another request is answered meanwhile, so the worker's loop has run on; the
        # stream has not gone past what it was allowed.
        assert gw.exchange(GEN | 51 + limit % 7, "GET", "/json").status == 200
        gw.collect()
        assert got() == limit and not gw.answers[rid].done
        grant = 700_000 if limit == win else n
        gw.send_frames(sr.WINDOW, rid, _proto.encode_window_payload(grant), sr.BEGIN | sr.END)
    a = gw.answer(rid)
    assert a.status == 200 and bytes(a.body) == bytes(i % 251 for i in range(n)) and not a.aborted


def test_whole_body_larger_than_the_window_fits_a_record_but_still_waits(tmp_path: Path) -> None:
    # A 32 MiB response ring takes 4 MiB records: the window, not the record, must
    # split a 3 MB body.
    g = FakeGateway(tmp_path, resp_cap=1 << 25)
    try:
        g.start()
        rid, n = GEN | 55, 3_000_000
        g.request(rid, "GET", f"/big/{n}", "/big/{n:int}", params=["n", str(n)])
        g.until(lambda: rid in g.answers and len(g.answers[rid].body) >= _proto.RESPONSE_WINDOW, "a window of body")
        assert g.exchange(GEN | 56, "GET", "/json").status == 200
        g.collect()
        assert len(g.answers[rid].body) == _proto.RESPONSE_WINDOW and not g.answers[rid].done
        g.send_frames(sr.WINDOW, rid, _proto.encode_window_payload(n), sr.BEGIN | sr.END)
        assert bytes(g.answer(rid).body) == bytes(i % 251 for i in range(n))
    finally:
        g.close()


def test_streamed_body_waits_for_window_grants(gw: FakeGateway) -> None:
    # 40 chunks of 64 KiB: the chunk that crosses the window is split at its edge.
    rid = GEN | 60
    gw.request(rid, "GET", "/bigstream/40", "/bigstream/{n:int}", params=["n", "40"])
    gw.until(lambda: rid in gw.answers and len(gw.answers[rid].body) == _proto.RESPONSE_WINDOW, "a window of body")
    assert gw.exchange(GEN | 61, "GET", "/json").status == 200
    gw.collect()
    assert len(gw.answers[rid].body) == _proto.RESPONSE_WINDOW
    gw.send_frames(sr.WINDOW, rid, _proto.encode_window_payload(40 << 16), sr.BEGIN | sr.END)
    a = gw.answer(rid)
    assert bytes(a.body) == b"".join(bytes([i]) * (1 << 16) for i in range(40))


@pytest.mark.parametrize(("payload", "flags", "text"), [
    (_proto.encode_window_payload(1)[:1] + b"\x00", 0, "grant 0 not an int"),
    (_proto.encode_window_payload(5), sr.FLAG_CANCEL, "flags 0x7, want BEGIN|END"),
])  # fmt: skip
def test_bad_window_is_a_protocol_error(gw: FakeGateway, payload: bytes, flags: int, text: str) -> None:
    gw.send_frames(sr.WINDOW, GEN | 70, payload, flags)
    msg = gw.read_msg()
    assert msg["type"] == "error" and msg["code"] == "protocol" and text in msg["message"], msg
    assert gw.wait_exit() == 1


def test_streaming_response(gw: FakeGateway) -> None:
    a = gw.exchange(GEN | 6, "GET", "/stream/20", "/stream/{n:int}", params=["n", "20"])
    assert a.status == 200 and a.body_length == -1
    assert bytes(a.body) == b"".join(f"chunk {i};".encode() for i in range(20))
    assert a.body_frames == 21  # one per chunk, then the empty END frame


def test_fifty_concurrent_requests(gw: FakeGateway) -> None:
    rids = [GEN | (100 + i) for i in range(50)]
    for i, rid in enumerate(rids):
        gw.request(rid, "GET", f"/item/{i}", "/item/{id:int}", params=["id", str(i)])
    gw.until(lambda: all(r in gw.answers and gw.answers[r].done for r in rids), "50 answers")
    for i, rid in enumerate(rids):
        a = gw.answers[rid]
        assert a.status == 200 and a.json() == {"id": i} and not a.late
    assert set(gw.answers) == set(rids)


def test_empty_body_and_404(gw: FakeGateway) -> None:
    a = gw.exchange(GEN | 7, "GET", "/nope")
    assert a.status == 404 and a.json() == {"detail": "Not Found"}
    h = gw.exchange(GEN | 8, "HEAD", "/json", "/json")
    assert h.status == 200 and h.body_length == 0 and h.body == b"" and h.body_frames == 1


def test_cancel_reaches_the_handler(gw: FakeGateway) -> None:
    rid = GEN | 9
    gw.request(rid, "GET", "/slow")
    gw.until(lambda: f"slow started req-{rid:x}" in gw.app_log(), "the handler to start")
    gw.cancel(rid)
    gw.until(lambda: f"slow cancelled req-{rid:x}" in gw.app_log(), "the handler to see CancelledError")
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        gw.collect()
        time.sleep(0.01)
    assert rid not in gw.answers  # nothing at all was sent for it
    assert gw.exchange(GEN | 10, "GET", "/json").status == 200  # the worker goes on


def test_cancel_read_with_its_request_means_the_handler_never_starts(sleepy_gw: FakeGateway) -> None:
    # REQ_HEAD and CANCEL in one batch (one doorbell, after both): the worker takes the
    # request and drops it before its handler runs, eager task or not.
    gw = sleepy_gw
    rid = GEN | 12
    gw.request(rid, "GET", "/slow", wake=False)
    gw.send_frames(sr.CANCEL, rid, b"", sr.FLAG_CANCEL)
    assert gw.exchange(GEN | 13, "GET", "/json").status == 200  # read after both
    gw.collect()
    assert rid not in gw.answers
    assert f"slow started req-{rid:x}" not in gw.app_log()


def test_cancel_of_unknown_id_and_stray_body_are_ignored(gw: FakeGateway) -> None:
    gw.cancel(GEN | 999)
    gw.send_frames(sr.REQ_BODY, GEN | 998, b"stray")
    gw.send_frames(sr.WINDOW, GEN | 997, _proto.encode_window_payload(100), sr.BEGIN | sr.END)
    assert gw.exchange(GEN | 11, "GET", "/json").status == 200
    assert set(gw.answers) == {GEN | 11}


def test_handler_exception_is_500_with_traceback(gw: FakeGateway) -> None:
    a = gw.exchange(GEN | 12, "GET", "/boom")
    assert a.status == 500 and bytes(a.body) == b"Internal Server Error"
    gw.until(lambda: "boom-marker-1234" in gw.stderr(), "the traceback on stderr")
    err = gw.stderr()
    assert "Traceback (most recent call last)" in err and "RuntimeError: boom-marker-1234" in err


def test_stream_failing_midway_ends_with_err(gw: FakeGateway) -> None:
    a = gw.exchange(GEN | 13, "GET", "/badstream")
    assert a.status == 200 and a.body_length == -1
    assert bytes(a.body) == b"first;" and a.aborted
    gw.until(lambda: "stream-broke-5678" in gw.stderr(), "the traceback on stderr")


def test_ping_pong(gw: FakeGateway) -> None:
    gw.send_msg({"type": "ping", "seq": 41})
    assert gw.read_msg() == {"type": "pong", "seq": 41}


def test_drain_finishes_in_flight_refuses_new_then_bye(gw: FakeGateway) -> None:
    slow = GEN | 20
    gw.request(slow, "GET", "/sleep/400", "/sleep/{ms:int}", params=["ms", "400"])
    gw.send_msg({"type": "drain", "deadline_ms": 5000})
    gw.wait_state(sr.STATE_DRAINING)
    late = GEN | 21
    gw.request(late, "GET", "/json")
    assert gw.answer(late).error == (503, "worker is draining")
    a = gw.answer(slow)
    assert a.status == 200 and bytes(a.body) == b"slept 400"
    assert gw.read_msg() == {"type": "bye", "reason": "drained"}
    assert gw.wait_exit() == 0
    assert gw.seg is not None and gw.seg.state == sr.STATE_CLOSED
    assert gw.app_log() == ["startup", "shutdown"]


def test_drain_deadline_cancels_the_rest(gw: FakeGateway) -> None:
    rid = GEN | 22
    gw.request(rid, "GET", "/slow")
    gw.until(lambda: any("slow started" in x for x in gw.app_log()), "the handler to start")
    gw.send_msg({"type": "drain", "deadline_ms": 200})
    assert gw.read_msg()["type"] == "bye"
    assert gw.wait_exit() == 0
    assert f"slow cancelled req-{rid:x}" in gw.app_log()
    gw.collect()
    err = gw.answers[rid].error
    assert err is not None and err[0] == 503


def test_sigterm_drains(gw: FakeGateway) -> None:
    gw.proc.send_signal(signal.SIGTERM)
    assert gw.read_msg()["type"] == "bye"
    assert gw.wait_exit() == 0


def test_gateway_eof_exits_promptly(gw: FakeGateway) -> None:
    gw.request(GEN | 30, "GET", "/slow")
    gw.until(lambda: any("slow started" in x for x in gw.app_log()), "the handler to start")
    started = time.monotonic()
    gw.sock.shutdown(socket.SHUT_RDWR)
    assert gw.wait_exit(5.0) == 1
    assert time.monotonic() - started < 3.0
    assert "closed the control socket" in gw.stderr()
    assert gw.app_log()[-1] == "shutdown"


def test_segment_for_another_pid_is_refused(tmp_path: Path) -> None:
    g = FakeGateway(tmp_path)
    try:
        g.handshake(worker_pid=1)
        msg = g.read_msg()
        assert msg["type"] == "error" and msg["code"] == "protocol" and "worker_pid" in msg["message"]
        assert g.wait_exit() == 1
    finally:
        g.close()


def test_bad_request_head_is_a_protocol_error(gw: FakeGateway) -> None:
    gw.send_frames(sr.REQ_HEAD, GEN | 40, b"\x93\x01\x02\x03")  # an array of 3, not 12
    msg = gw.read_msg()
    assert msg["type"] == "error" and msg["code"] == "protocol" and "REQ_HEAD" in msg["message"]
    assert gw.wait_exit() == 1


def test_no_gateway_in_environment() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVET_")}
    r = subprocess.run([sys.executable, "-m", "covet", "worker", "worker_app:app"], cwd=TESTS_DIR,
                       env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 2 and "COVET_CONTROL_FD" in r.stderr


def test_struct_sanity() -> None:
    # The harness's welcome geometry matches PROTOCOL 2.1.
    assert struct.calcsize("<8sIIQQQQQIIQ") == 72
