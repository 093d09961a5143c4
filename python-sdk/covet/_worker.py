"""The worker process: one asyncio loop serving the gateway's requests from shared memory.

Lifecycle (workerproto/PROTOCOL.md 1.4): connect the control channel as the environment
says, freeze the app, run its startup hooks, send hello, receive the welcome and its
three descriptors, map and check the segment, store ``worker_state = ready``, then serve
until the gateway drains us (or goes away).

Inside the loop (all callbacks, no threads):

- the **worker doorbell** is an ``add_reader`` callback. It wakes tasks waiting for
  response-ring space and, if the consumer was asleep, restarts the **pump**;
- the **pump** polls the request ring in batches and reschedules itself with
  ``call_soon`` while records keep coming; when the ring is empty it keeps re-polling
  once per loop turn for ``spin_ns`` (PROTOCOL 2.5 step 1, cooperatively, so handlers
  keep running) if the burst of records it just read was short (``SPIN_MAX_BURST``),
  then goes through ``prepare_sleep`` and lets the doorbell (or the heartbeat timer,
  which bounds a lost wakeup to ``heartbeat_ms / 2``) wake it;
- each REQ_HEAD starts one task running ``app._handle`` and writing RESP_HEAD plus the
  RESP_BODY stream, made once the poll that read it has released its records (an
  eager task on Python 3.12+, so a handler that never waits is done right there);
  REQ_BODY fragments feed that request's body iterator; CANCEL
  cancels the task, after which nothing more is sent for its id; WINDOW grants the
  task more response body (a body past ``RESPONSE_WINDOW`` waits for the gateway to
  write the earlier bytes to its client, PROTOCOL 2.7);
- a REQ_HEAD for a gRPC method (a ``grpc`` route) starts a task running the call
  (covet/_grpc_call.py, PROTOCOL 2.10) instead: the same exchange, answered with the
  response messages as a body stream and the status as RESP_TRAILERS;
- WebSocket frames (types 80-95) go to the session table of ``covet/_ws_worker.py``,
  and a CANCEL for an id with no HTTP exchange to it: a WS_OPEN starts a session's
  task, messages, credit and closes flow through it (PROTOCOL 2.9);
- the **control socket** is another ``add_reader`` callback: ping -> pong, drain ->
  graceful stop, EOF -> exit 1.

Ownership: the ``_Worker`` owns the channel, segment, doorbells, the in-flight table and
every task it creates; everything runs on the loop thread, so nothing is locked.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import importlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Final

from ._app import Covet
from ._binding import run_background
from ._exceptions import BodyAborted
from ._control import (
    CODE_INTERNAL,
    CODE_PROTOCOL,
    ENV_CONTROL_FD,
    ControlChannel,
    PeerError,
    ProtocolError,
    TruncatedError,
    Welcome,
    parse_frame,
)
from ._grpc_call import Runtime
from ._head import RequestHead, decode_head
from ._payloads import (
    FLAG_BEGIN,
    FLAG_END,
    FLAG_ERR,
    FRAME_CANCEL,
    FRAME_EARLY_HINTS,
    FRAME_ERROR,
    FRAME_REQ_BODY,
    FRAME_REQ_HEAD,
    FRAME_REQ_WINDOW,
    FRAME_RESP,
    FRAME_RESP_BODY,
    FRAME_RESP_FILE,
    FRAME_RESP_HEAD,
    FRAME_WINDOW,
    FRAME_WS_FIRST,
    MAX_EARLY_HINTS,
    REQUEST_WINDOW,
    RESPONSE_WINDOW,
    assemble_fragment,
    decode_window_payload,
    encode_early_hints,
    encode_error_payload,
    encode_resp_file,
    encode_response_head,
    encode_window_payload,
)
from ._responses import FileResponse, Response
from ._ws_worker import Sessions
from ._request import Request
from ._sync import busy as sync_busy, run_sync, shutdown as sync_shutdown, spill_seconds
from ._shmring import (
    ACCELERATED,
    DEFAULT_BATCH,
    FRAME_HEADER,
    STATE_CLOSED,
    STATE_DRAINING,
    STATE_READY,
    Doorbell,
    RingCorrupt,
    RingReader,
    RingWriter,
    Segment,
    SegmentError,
)

__all__ = ["BodyAborted", "run_worker"]

log = logging.getLogger("covet.worker")

ENV_CONTROL_TOKEN: Final = "COVET_CONTROL_TOKEN"
#: Event loop: ``auto`` (uvloop when installed, else asyncio), ``asyncio`` or ``uvloop``.
ENV_LOOP: Final = "COVET_LOOP"
#: How long the pump keeps polling an empty request ring before it sleeps on the
#: doorbell, in microseconds. On the 2-core development machine 150 us rather than 50
#: took the median latency at one connection from about 175 to 135 us and throughput at
#: four connections up by about a fifth (the next request usually arrives within it, so
#: no wakeup is needed); it costs CPU while requests trickle in. Only after a burst of
#: at most SPIN_MAX_BURST requests: under load it took CPU from the gateway. 0 sleeps
#: at once.
ENV_SPIN: Final = "COVET_WORKER_SPIN_US"
DEFAULT_WORKER_SPIN_US: Final = 150
#: Bodies of at most this many bytes go out with their head in one RESP frame: one
#: ring record and one frame for the gateway instead of two, for the cost of joining
#: the bytes (docs/performance.md, "Worker").
WHOLE_MAX: Final = 4 << 10
# The worker spins on an empty request ring only after a burst of at most this many
# records (docs/performance.md, "Latency at light load").
SPIN_MAX_BURST: Final = 8
#: Seconds a SIGTERM/SIGINT drain waits for in-flight requests (env overrides).
ENV_DRAIN_TIMEOUT: Final = "COVET_DRAIN_TIMEOUT"
DEFAULT_DRAIN_TIMEOUT: Final = 30.0
#: How long hello -> welcome may take before the worker gives up.
HANDSHAKE_TIMEOUT: Final = 60.0
#: Grace for cancelled tasks to unwind, and the cap on shutdown hooks after the
#: gateway vanished.
CANCEL_GRACE: Final = 1.0
SHUTDOWN_TIMEOUT_ON_EXIT: Final = 5.0
#: Longest single wait for response-ring space before re-checking (PROTOCOL 2.5).
SPACE_WAIT_MAX: Final = 0.1

_BE: Final = FLAG_BEGIN | FLAG_END
_BE_ERR: Final = FLAG_BEGIN | FLAG_END | FLAG_ERR  # every ERROR frame carries ERR (2.3)
_PLAIN_BODY_CHUNKS: Final = Response.body_chunks


#: The worker grants request body back (REQ_WINDOW, PROTOCOL 2.8) each time the handler
#: has taken this much of it: a quarter of the window, so the gateway reads on while the
#: handler works through the rest.
GRANT_AT: Final = REQUEST_WINDOW // 4


class _RequestBody:
    """One request's body as it arrives: an async iterator over a small queue that the
    pump feeds with REQ_BODY fragments. Read once, by the handler, if at all.

    The gateway sends at most REQUEST_WINDOW bytes ahead of what the handler took:
    ``grant`` (when set) is called with the bytes taken each time they reach GRANT_AT,
    until the body's last fragment has arrived."""

    __slots__ = ("_chunks", "_done", "_error", "_taken", "_waiter", "grant")

    def __init__(self, grant: Callable[[int], None] | None = None) -> None:
        self._chunks: collections.deque[bytes] = collections.deque()
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._taken = 0
        self.grant = grant

    def __aiter__(self) -> _RequestBody:
        return self

    async def __anext__(self) -> bytes:
        chunks = self._chunks
        while not chunks:
            if self._error is not None:
                raise self._error
            if self._done:
                raise StopAsyncIteration
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiter = fut
            try:
                await fut
            finally:
                self._waiter = None
        chunk = chunks.popleft()
        self._taken += len(chunk)
        if self._taken >= GRANT_AT and not self._done and self.grant is not None:
            self.grant(self._taken)
            self._taken = 0
        return chunk

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def feed(self, data: bytes, end: int) -> None:
        if self._done:
            return
        if data:
            self._chunks.append(data)
        if end:
            self._done = True
        self._wake()

    def abort(self, exc: BaseException) -> None:
        if self._done:
            return
        self._error = exc
        self._done = True
        self._wake()

    def discard(self) -> None:
        self._chunks.clear()
        self._done = True


_NO_BODY: Final = _RequestBody()
_NO_BODY._done = True


class _Exchange:
    """One request in flight. ``sent``: 0 nothing written yet, 1 RESP_HEAD written,
    2 a body frame written (BEGIN used). ``by_gateway``: cancelled by CANCEL.
    ``window``: response body bytes it may still send (PROTOCOL 2.7); ``credit``: the
    future a body write waits on for a WINDOW grant. It is the request's InterimSink:
    ``hints`` counts the EARLY_HINTS it sent."""

    __slots__ = ("body", "by_gateway", "credit", "hints", "rid", "sent", "task", "window", "worker")

    def __init__(self, body: _RequestBody, rid: int, worker: _Worker) -> None:
        self.body = body
        self.rid = rid
        self.worker = worker
        # Made once its record is released: the exchange's Task, or, on the sync lane,
        # the handler thread's future for the handler's result.
        self.task: asyncio.Future[Any] | None = None
        self.sent = 0
        self.hints = 0
        self.by_gateway = False
        self.window = RESPONSE_WINDOW
        self.credit: asyncio.Future[None] | None = None

    async def early_hints(self, fields: list[tuple[str, bytes]]) -> None:
        """InterimSink: one EARLY_HINTS frame (PROTOCOL 3.5), before the response head."""
        if self.sent:
            raise RuntimeError("send_early_hints: the response has already begun")
        if self.hints >= MAX_EARLY_HINTS:
            raise RuntimeError(f"send_early_hints: at most {MAX_EARLY_HINTS} per request")
        payload = encode_early_hints(fields)
        self.hints += 1
        await self.worker._send_interim(self.rid, payload)


#: Whether each request runs as an eager task (Python 3.12 and later; see _task_factory).
EAGER_TASKS: Final = sys.version_info >= (3, 12)


def _task_factory(loop: asyncio.AbstractEventLoop) -> Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]]:
    """How each request's task is made (by _launch). On Python 3.12 and later it is an
    eager task: the handler runs at once, up to its first real suspension, and one that
    never suspends (most do not) finishes there, with no trip through the loop's ready
    queue: about 1 µs less per request. ``asyncio.current_task()``, the task's own
    context and cancellation are as for any task. Before 3.12 the task is scheduled as
    usual."""
    if sys.version_info >= (3, 12):  # spelled out, not EAGER_TASKS: type checkers read it
        return functools.partial(asyncio.Task, loop=loop, eager_start=True)
    return loop.create_task


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _Worker:
    def __init__(
        self,
        app: Covet,
        channel: ControlChannel,
        *,
        app_name: str,
        token: str,
        spawned: bool,
        drain_timeout: float,
        spin_ns: int,
        loop_name: str,
    ) -> None:
        # Immutable after __init__ / the handshake.
        self._app = app
        self._ch = channel
        self._app_name = app_name
        self._token = token
        self._spawned = spawned
        self._drain_timeout = drain_timeout
        self._spin_ns = spin_ns
        self._loop_name = loop_name
        # Set by the handshake.
        self._seg: Segment | None = None
        self._bell: Doorbell | None = None
        self._gw_bell: Doorbell | None = None
        self._reader: RingReader
        self._writer: RingWriter
        self._max_payload = 0
        self._max_body = 0  # largest body written in one frame: within the window too
        self._beat_s = 0.5
        self._space_timeout = SPACE_WAIT_MAX
        # Owned by the loop.
        self._loop: asyncio.AbstractEventLoop
        self._done: asyncio.Future[int]
        self._inflight: dict[int, _Exchange] = {}
        self._partial: dict[int, list[bytes]] = {}
        self._aux: set[asyncio.Task[None]] = set()
        # Tasks waiting for response-ring space, in arrival order: (record length, future).
        self._space_waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()
        self._cbuf = bytearray()
        self._sleeping = False
        self._wake_pending = False
        self._idle_since = 0
        self._burst = 0  # records read since the ring was last found empty
        self._spin_now = 0  # this idle spell's spin: spin_ns or 0
        self._window_waits = 0  # exchanges waiting for a WINDOW grant
        self._draining = False
        self._stopped = False
        self._shutdown_ran = False
        self._signals = 0
        self._beat_handle: asyncio.TimerHandle | None = None
        self._drain_task: asyncio.Task[None] | None = None
        self._new_task: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]]  # set by run()
        self._sync_lane: Callable[[RequestHead], Callable[..., Any] | None] | None = None  # set by run()
        self._starting: list[tuple[int, RequestHead, _Exchange]] = []  # read, task not made yet
        self._grpc: Runtime | None = None  # set by run()
        self._ws = Sessions(self)  # WebSocket sessions (covet/_ws_worker.py)

    # -- lifecycle --------------------------------------------------------------------

    async def run(self) -> int:
        self._loop = loop = asyncio.get_running_loop()
        self._new_task = _task_factory(loop)
        app = self._app
        app.freeze()
        # The sync lane (_launch), for apps that have a route with a sync handler.
        self._sync_lane = app.sync_lane if any(not r.is_async for r in app.router.routes) else None
        # The gRPC calls' runtime (covet/_grpc_call.py), for apps with gRPC methods.
        grpc = app._grpc.runtime if app._grpc is not None else None
        self._grpc = grpc if grpc is not None and grpc.methods else None
        try:
            await app.startup()
        except Exception as e:
            log.exception("startup hook failed; the worker exits")
            self._send_error(CODE_INTERNAL, f"{type(e).__name__}: {e}")
            return 1
        try:
            if not self._handshake():
                return 1
            return await self._serve()
        finally:
            await self._cleanup()

    def _handshake(self) -> bool:
        """Hello, welcome, segment check. Blocking: nothing else runs yet."""
        ch = self._ch
        try:
            ch.sock.settimeout(HANDSHAKE_TIMEOUT)
            grpc = self._app._grpc
            ch.hello(self._app_name, self._app.manifest(), self._token,
                     descriptors=grpc.descriptors() if grpc is not None else ())
            welcome, fds = ch.recv_welcome()
            ch.sock.settimeout(None)
        except PeerError as e:
            log.error("the gateway refused this worker: %s", e)
            return False
        except ProtocolError as e:
            log.error("handshake failed: %s", e)
            self._send_error(e.code, str(e))
            return False
        except (OSError, EOFError) as e:
            log.error("handshake failed: control socket: %s", e)
            return False
        seg_fd, bell_fd, gw_fd = fds
        try:
            self._bell = Doorbell(bell_fd)
            self._gw_bell = Doorbell(gw_fd)
        except OSError as e:
            for fd in fds:
                os.close(fd)
            self._send_error(CODE_PROTOCOL, f"doorbell descriptors unusable: {e}")
            return False
        try:
            self._seg = seg = Segment.open(seg_fd, self._expected(welcome), heartbeat_ms=welcome.heartbeat_ms)
            pid = os.getpid()
            if seg.worker_pid != pid and (self._spawned or seg.worker_pid != 0):
                raise SegmentError("worker_pid", f"header has {seg.worker_pid}, this worker is {pid}")
            self._reader = seg.request_reader(self._gw_bell)
            if ACCELERATED:
                # The compiled reader decodes whole request heads itself, from the ring.
                setattr(self._reader, "on_head", self._start_head)
            self._writer = seg.response_writer(self._bell, self._gw_bell)
        except (SegmentError, RingCorrupt, OSError, ValueError) as e:
            log.error("segment rejected: %s", e)
            self._send_error(CODE_PROTOCOL, f"segment rejected: {e}")
            return False
        self._max_payload = self._writer.max_payload
        self._max_body = min(self._max_payload, RESPONSE_WINDOW)
        self._beat_s = welcome.heartbeat_ms / 2000
        self._space_timeout = min(SPACE_WAIT_MAX, welcome.heartbeat_ms / 1000)
        log.info(
            "worker %d (pid %d) serving app %r: %d routes, rings %d/%d bytes (%s), %s loop, %s tasks",
            welcome.worker_id, os.getpid(), self._app_name, len(self._app.manifest()),
            welcome.req_capacity, welcome.resp_capacity,
            "compiled" if ACCELERATED else "pure Python", self._loop_name,
            "eager" if EAGER_TASKS else "scheduled",
        )  # fmt: skip
        return True

    @staticmethod
    def _expected(w: Welcome) -> dict[str, object]:
        return {
            "version": w.version,
            "segment_size": w.segment_size,
            "req_capacity": w.req_capacity,
            "resp_capacity": w.resp_capacity,
            "epoch": w.epoch,
        }

    async def _serve(self) -> int:
        loop = self._loop
        seg = self._seg
        bell = self._bell
        assert seg is not None and bell is not None
        self._done = loop.create_future()
        loop.add_reader(bell.fd, self._on_bell)
        loop.add_reader(self._ch.fileno(), self._on_control)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        seg.set_heartbeat()
        seg.set_state(STATE_READY)
        self._beat_handle = loop.call_later(self._beat_s, self._beat)
        loop.call_soon(self._pump)
        return await self._done

    def _finish(self, code: int) -> None:
        if not self._done.done():
            self._done.set_result(code)

    async def _cleanup(self) -> None:
        self._stopped = True
        loop = self._loop
        if self._beat_handle is not None:
            self._beat_handle.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if self._bell is not None:
            loop.remove_reader(self._bell.fd)
        if self._ch.sock.fileno() >= 0:
            loop.remove_reader(self._ch.fileno())
        tasks = self._inflight_tasks() + list(self._aux)
        if self._drain_task is not None and not self._drain_task.done():
            tasks.append(self._drain_task)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CANCEL_GRACE)
        if not self._shutdown_ran:
            self._shutdown_ran = True
            try:
                await asyncio.wait_for(self._app.shutdown(), SHUTDOWN_TIMEOUT_ON_EXIT)
            except TimeoutError:
                log.error("shutdown hooks took over %.0f s; abandoned", SHUTDOWN_TIMEOUT_ON_EXIT)
        # The handler thread (covet/_sync.py) ends after the calls queued to it (this
        # waits up to a second for that); one still blocked in a handler is a daemon
        # thread, left behind when the process exits.
        sync_shutdown(loop)
        for _, fut in self._space_waiters:
            fut.cancel()
        if self._wake_pending:
            self._wake_pending = False
            self._writer.wake()
        if self._seg is not None:
            self._seg.close()
        for b in (self._bell, self._gw_bell):
            if b is not None:
                b.close()
        self._ch.close()

    def _send_error(self, code: str, message: str) -> None:
        """Best-effort ``error`` frame (the caller then exits)."""
        try:
            self._ch.send_error(code, message[:4096])
        except (OSError, ProtocolError):
            pass

    def _fatal(self, message: str) -> None:
        """The gateway broke the protocol: report it and exit (PROTOCOL 5)."""
        log.error("protocol violation by the gateway: %s", message)
        self._send_error(CODE_PROTOCOL, message)
        self._finish(1)

    # -- control plane ------------------------------------------------------------------

    def _on_control(self) -> None:
        try:
            data = self._ch.sock.recv(65536, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            log.error("control socket failed: %s; exiting", e)
            self._loop.remove_reader(self._ch.fileno())
            self._finish(1)
            return
        if not data:
            log.warning("the gateway closed the control socket; exiting")
            self._loop.remove_reader(self._ch.fileno())
            self._finish(1)
            return
        buf = self._cbuf
        buf += data
        while buf:
            try:
                msg, n = parse_frame(buf)
            except TruncatedError:
                return
            except ProtocolError as e:
                self._loop.remove_reader(self._ch.fileno())
                self._fatal(f"control frame: {e}")
                return
            del buf[:n]
            self._on_message(msg)

    def _on_message(self, msg: dict[str, Any]) -> None:
        typ = msg["type"]
        if typ == "ping":
            self._write_control({"type": "pong", "seq": msg["seq"]})
        elif typ == "drain":
            self._begin_drain(msg["deadline_ms"] / 1000, "drain requested by the gateway")
        elif typ == "pong":
            pass
        elif typ == "error":
            log.error("the gateway sent error %s: %s; exiting", msg["code"], msg["message"])
            self._finish(1)
        else:
            self._fatal(f"unexpected control message {typ!r}")

    def _write_control(self, msg: Mapping[str, Any]) -> None:
        try:
            self._ch.write_message(msg)
        except OSError as e:
            log.error("control socket write failed: %s; exiting", e)
            self._finish(1)

    def _on_signal(self, sig: int) -> None:
        self._signals += 1
        if self._signals == 1:
            self._begin_drain(self._drain_timeout, f"{signal.Signals(sig).name} received")
        else:
            log.warning("%s received again: exiting now", signal.Signals(sig).name)
            self._finish(1)

    def _begin_drain(self, deadline_s: float, why: str) -> None:
        if self._draining:
            return
        log.info("%s: draining %d in-flight requests and %d WebSocket sessions (deadline %.3f s)",
                 why, len(self._inflight), len(self._ws.live), deadline_s)  # fmt: skip
        self._draining = True
        assert self._seg is not None
        self._seg.set_state(STATE_DRAINING)
        self._drain_task = self._loop.create_task(self._drain(deadline_s))

    def _inflight_tasks(self) -> list[asyncio.Future[Any]]:
        """What the requests and WebSocket sessions in flight run as."""
        tasks: list[asyncio.Future[Any]] = [ex.task for ex in self._inflight.values() if ex.task is not None]
        return tasks + self._ws.tasks()

    async def _drain(self, deadline_s: float) -> None:
        # WebSocket sessions keep going until the deadline too (PROTOCOL.md 2.9). Again
        # after each wait: a sync-lane request whose handler has returned may go on in
        # a Task of its own (_sync_done).
        deadline = self._loop.time() + deadline_s
        while tasks := [t for t in self._inflight_tasks() if not t.done()]:
            _, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - self._loop.time()))
            if pending:
                log.warning("drain deadline passed: cancelling %d requests", len(pending))
                for t in pending:
                    t.cancel()
                await asyncio.wait(pending, timeout=CANCEL_GRACE)
                break
        if self._aux:
            await asyncio.wait(list(self._aux), timeout=CANCEL_GRACE)
        self._shutdown_ran = True
        await self._app.shutdown()
        assert self._seg is not None
        self._seg.set_state(STATE_CLOSED)
        self._write_control({"type": "bye", "reason": "drained"})
        log.info("drained; bye")
        self._finish(0)

    def _beat(self) -> None:
        seg = self._seg
        if self._stopped or seg is None:
            return
        seg.set_heartbeat()
        if self._sleeping:
            # The doorbell wait's timeout (PROTOCOL 2.5 step 3): re-poll.
            self._sleeping = False
            self._reader.end_sleep()
            self._pump()
        self._beat_handle = self._loop.call_later(self._beat_s, self._beat)

    # -- request ring -------------------------------------------------------------------

    def _on_bell(self) -> None:
        assert self._bell is not None
        self._bell.drain()
        if self._space_waiters:
            self._wake_space_waiters()
        if self._sleeping:
            self._sleeping = False
            self._reader.end_sleep()
            self._pump()

    def _pump(self) -> None:
        if self._stopped:
            return
        try:
            try:
                n = self._reader.poll(self._on_record, DEFAULT_BATCH)
            finally:
                if self._starting:
                    self._launch()
        except (RingCorrupt, ProtocolError) as e:
            self._stopped = True
            self._fatal(str(e))
            return
        except Exception:
            log.exception("internal error while reading the request ring; exiting")
            self._stopped = True
            self._send_error(CODE_INTERNAL, "worker failed reading the request ring")
            self._finish(1)
            return
        if n:
            self._idle_since = 0
            self._burst += n
            self._loop.call_soon(self._pump)
            return
        now = time.perf_counter_ns()
        if not self._idle_since:
            # The ring just ran dry. Spin only after a short burst: a long one means
            # many requests in flight, whose next burst comes after the gateway has
            # answered this one, later than any spin; spinning then only takes CPU
            # from the gateway, and a wakeup costs little per request.
            self._idle_since = now
            self._spin_now = self._spin_ns if self._burst <= SPIN_MAX_BURST else 0
            self._burst = 0
        # Nor while a response waits for a WINDOW grant: that comes once the gateway
        # has written to a client, later than any spin. Nor while the handler thread
        # runs sync handlers (covet/_sync.py): the spinning loop would hold the GIL
        # that thread needs, and their answers come back through the loop anyway.
        spin = now - self._idle_since < self._spin_now and not self._window_waits and not sync_busy(self._loop)
        if spin or not self._reader.prepare_sleep():
            self._loop.call_soon(self._pump)
            return
        self._idle_since = 0
        self._sleeping = True

    def _on_record(self, typ: int, rid: int, flags: int, payload: bytes) -> None:
        if typ == FRAME_REQ_HEAD:
            if flags & _BE == _BE:
                self._start(rid, payload)
            else:
                self._head_fragment(rid, flags, payload)
        elif typ == FRAME_REQ_BODY:
            ex = self._inflight.get(rid)
            if ex is not None:
                if flags & FLAG_ERR:
                    ex.body.abort(BodyAborted("the gateway aborted the request body"))
                else:
                    ex.body.feed(payload, flags & FLAG_END)
        elif typ == FRAME_CANCEL or typ == FRAME_ERROR:
            self._partial.pop(rid, None)
            ex = self._inflight.pop(rid, None)
            if ex is not None:
                ex.by_gateway = True
                if ex.task is not None:
                    ex.task.cancel()
                # else it is still in _starting, and _launch skips it: never started
            else:
                self._ws.cancel(rid)
        elif typ == FRAME_WINDOW:
            if flags != _BE:
                raise ProtocolError(f"WINDOW for request {rid:#x}: flags {flags:#x}, want BEGIN|END")
            grant = decode_window_payload(payload)
            ex = self._inflight.get(rid)
            if ex is not None:
                ex.window += grant
                if ex.credit is not None and not ex.credit.done():
                    ex.credit.set_result(None)
        elif typ >= FRAME_WS_FIRST:  # WebSocket frames (PROTOCOL.md 2.9)
            self._ws.on_record(typ, rid, flags, payload)
        # CONTROL frames are reserved; unknown ids and types are ignored.

    def _head_fragment(self, rid: int, flags: int, payload: bytes) -> None:
        whole = assemble_fragment(self._partial, "REQ_HEAD", rid, flags, payload)
        if whole is not None:
            self._start(rid, whole)

    def _start(self, rid: int, payload: bytes) -> None:
        try:
            head = decode_head(payload)
        except Exception as e:
            raise ProtocolError(f"REQ_HEAD of request {rid:#x}: {e}") from None
        self._start_head(rid, head)

    def _start_head(self, rid: int, head: RequestHead) -> None:
        if self._draining:
            self._refuse(rid)
            return
        if rid in self._inflight:
            raise ProtocolError(f"REQ_HEAD for request {rid:#x}, which is in flight")
        ex = _Exchange(_RequestBody(functools.partial(self._grant_body, rid)) if head.body_length else _NO_BODY, rid, self)
        self._inflight[rid] = ex
        self._starting.append((rid, head, ex))

    def _launch(self) -> None:
        """Make the tasks of the requests the last poll read, once it has released their
        records. The order matters with eager tasks, whose handlers run inside
        _new_task: a record the gateway sees released is a request the worker took, so
        one that was never released is one it may retry elsewhere if this worker dies
        (PROTOCOL.md 1.1); a handler must not start before that. Each exchange is in
        flight before its task exists, since an eager one may finish inside _new_task."""
        starting, self._starting = self._starting, []
        inflight = self._inflight
        new_task = self._new_task
        lane = self._sync_lane
        grpc = self._grpc
        for rid, head, ex in starting:
            if inflight.get(rid) is ex:  # not cancelled by a later record of the batch
                if grpc is not None:
                    method = grpc.methods.get(head.route)
                    if method is not None:
                        ex.task = new_task(grpc.serve(self, rid, head, ex, method))
                        continue
                if lane is not None:
                    endpoint = lane(head)
                    if endpoint is not None:
                        self._start_sync(rid, head, ex, endpoint)
                        continue
                ex.task = new_task(self._exchange(rid, head, ex))

    def _start_sync(self, rid: int, head: RequestHead, ex: _Exchange, endpoint: Callable[..., Any]) -> None:
        """The sync lane: a plain ``def`` handler (Covet.sync_lane) goes to the handler
        thread (covet/_sync.py) with no Task; _sync_done answers from its result."""
        request = Request(head, ex.body, None, ex, self._app)
        fut = run_sync(endpoint, request)
        ex.task = fut
        fut.add_done_callback(functools.partial(self._sync_done, rid, head, ex, request))

    def _sync_done(self, rid: int, head: RequestHead, ex: _Exchange, request: Request, fut: asyncio.Future[Any]) -> None:
        """A sync-lane handler returned (or raised, or its future was cancelled): answer
        a plain result at once, as _exchange would; anything else (an exception, a
        response that does not fit the ring now, background work) goes on in a Task
        running _exchange from the outcome."""
        if self._inflight.get(rid) is not ex:  # CANCEL or ERROR from the gateway
            return
        if fut.cancelled():  # the worker is stopping
            self._end_exchange(rid, ex)
            if not ex.by_gateway:
                self._abort_exchange(rid, ex, "request cancelled: the worker is stopping")
            return
        if fut.exception() is None:
            response = self._app.sync_response(request, fut.result())
            if response is not None:
                try:
                    if self._respond_now(rid, response, ex):
                        self._end_exchange(rid, ex)
                        return
                except RingCorrupt as e:
                    self._stopped = True
                    self._fatal(str(e))
                    return
                # Too large for the ring now: the Task sends this response, not one
                # made from the handler's result again.
                fut = self._loop.create_future()
                fut.set_result(response)
        ex.task = self._new_task(self._exchange(rid, head, ex, request, fut))

    def _end_exchange(self, rid: int, ex: _Exchange) -> None:
        """``ex`` is over: out of the in-flight table (if it is still the one there) and
        its unread request body dropped."""
        if self._inflight.get(rid) is ex:
            del self._inflight[rid]
        ex.body.discard()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as an auxiliary task (cancelled when the worker stops)."""
        t = self._loop.create_task(coro)
        self._aux.add(t)
        t.add_done_callback(self._aux.discard)

    async def _answer_http(self, rid: int, head: RequestHead, response: Response) -> None:
        """Send ``response`` as the HTTP answer for ``rid`` (a rejected WebSocket
        handshake), as an exchange's response is sent."""
        ex = _Exchange(_NO_BODY, rid, self)
        ex.task = asyncio.current_task()
        self._inflight[rid] = ex  # so that WINDOW grants and CANCEL reach it
        try:
            if not self._respond_now(rid, response, ex):
                await self._respond(rid, head, response, ex)
        finally:
            self._end_exchange(rid, ex)

    def _grant_body(self, rid: int, n: int) -> None:
        """Let the gateway send ``n`` more bytes of request ``rid``'s body (REQ_WINDOW,
        PROTOCOL 2.8); a grant for a request no longer in flight is not sent."""
        if rid not in self._inflight:
            return
        payload = encode_window_payload(n)
        if self._writer.try_write(FRAME_REQ_WINDOW, rid, _BE, payload):
            return
        t = self._loop.create_task(self._send(FRAME_REQ_WINDOW, rid, payload, True, True))
        self._aux.add(t)
        t.add_done_callback(self._aux.discard)

    def _refuse(self, rid: int) -> None:
        payload = encode_error_payload(503, "worker is draining")
        if self._writer.try_write(FRAME_ERROR, rid, _BE_ERR, payload):
            return
        t = self._loop.create_task(self._send(FRAME_ERROR, rid, payload, True, True, flags=FLAG_ERR))
        self._aux.add(t)
        t.add_done_callback(self._aux.discard)

    # -- responses ----------------------------------------------------------------------

    async def _exchange(self, rid: int, head: RequestHead, ex: _Exchange, request: Request | None = None,
                        outcome: asyncio.Future[Any] | None = None) -> None:
        """Run the request and send its response. From the sync lane (_sync_done) the
        handler has already run: ``request`` is its Request and ``outcome`` its result,
        and the head may be written already (``ex.sent``)."""
        background = None
        try:
            if request is None or outcome is None:
                response = await self._app._handle(head, ex.body, ex)
            else:
                response = await self._app.finish_sync(request, outcome)
            if ex.sent or not self._respond_now(rid, response, ex):
                await self._respond(rid, head, response, ex)
            background = response.background
        except asyncio.CancelledError:
            if not ex.by_gateway:
                self._abort_exchange(rid, ex, "request cancelled: the worker is stopping")
            raise
        except RingCorrupt as e:
            self._stopped = True
            self._fatal(str(e))
        except Exception:
            log.exception("request %#x (%s %s, request_id=%s): failed to send the response",
                          rid, head.method, head.path, head.request_id,
                          extra={"request_id": head.request_id})  # fmt: skip
            self._abort_exchange(rid, ex, "worker failed to send the response")
        finally:
            self._end_exchange(rid, ex)
        if background is not None:  # the response has been handed to the gateway
            await run_background(background, head.request_id)

    def _respond_now(self, rid: int, response: Response, ex: _Exchange) -> bool:
        """The common response, written without awaiting: a complete body, and the head
        and the body each fit one record with ring space free now. False leaves the rest
        to _respond, from ``ex.sent`` on (a refused head is reported there)."""
        if type(response).body_chunks is not _PLAIN_BODY_CHUNKS:
            return False
        body = response.body
        try:
            resp_head = encode_response_head(response.status, response.raw_headers, response.body_length)
        except ValueError:
            return False
        w = self._writer
        maxp = self._max_payload
        n = len(body)
        if n <= WHOLE_MAX and n == response.body_length:
            whole = resp_head + body
            if len(whole) > maxp or not w.try_write(FRAME_RESP, rid, _BE, whole, False):
                return False
            ex.sent = 2
            self._wake_soon()
            return True
        if len(resp_head) > maxp or not w.try_write(FRAME_RESP_HEAD, rid, _BE, resp_head, False):
            return False
        ex.sent = 1
        if len(body) > self._max_body or not w.try_write(FRAME_RESP_BODY, rid, _BE, body, False):
            return False
        ex.sent = 2
        self._wake_soon()
        return True

    async def _respond(self, rid: int, head: RequestHead, response: Response, ex: _Exchange) -> None:
        w = self._writer
        maxp = self._max_payload
        if ex.sent == 0 and isinstance(response, FileResponse):
            await self._respond_file(rid, head, response, ex)
            return
        if ex.sent == 0:
            try:
                resp_head = encode_response_head(response.status, response.raw_headers, response.body_length)
            except ValueError as e:
                log.error("request %#x (%s %s, request_id=%s): response head refused: %s",
                          rid, head.method, head.path, head.request_id, e,
                          extra={"request_id": head.request_id})  # fmt: skip
                payload = encode_error_payload(500, f"bad response head: {e}")
                await self._send(FRAME_ERROR, rid, payload, True, True, flags=FLAG_ERR)
                self._wake_soon()
                return
            if len(resp_head) > maxp or not w.try_write(FRAME_RESP_HEAD, rid, _BE, resp_head, False):
                await self._send(FRAME_RESP_HEAD, rid, resp_head, True, True)
            ex.sent = 1
        if type(response).body_chunks is _PLAIN_BODY_CHUNKS:
            body = response.body
            if len(body) <= self._max_body and w.try_write(FRAME_RESP_BODY, rid, _BE, body, False):
                ex.sent = 2
            else:
                await self._send_body(rid, body, True, True, ex)
            self._wake_soon()
            return
        # A streamed body may be slow to start (an event stream waiting for its first
        # event): let the gateway have the head now.
        self._wake_soon()
        chunks = response.body_chunks()
        try:
            async for chunk in chunks:
                await self._send_body(rid, chunk, ex.sent == 1, False, ex)
                self._wake_soon()
        except (asyncio.CancelledError, RingCorrupt):
            raise
        except Exception:
            log.exception("request %#x (%s %s, request_id=%s): the response body failed mid-stream",
                          rid, head.method, head.path, head.request_id,
                          extra={"request_id": head.request_id})  # fmt: skip
            self._abort_exchange(rid, ex, "response body failed")
            return
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        await self._send_body(rid, b"", ex.sent == 1, True, ex)
        self._wake_soon()

    async def _respond_file(self, rid: int, head: RequestHead, response: FileResponse, ex: _Exchange) -> None:
        """Answer with RESP_FILE: the gateway sends the file (PROTOCOL.md 2.4, 3.6)."""
        try:
            payload = encode_resp_file(response.status, response.raw_headers, response.path)
            if len(payload) > self._max_payload:
                raise ValueError(f"{len(payload)} bytes, more than one record ({self._max_payload})")
        except ValueError as e:
            log.error("request %#x (%s %s, request_id=%s): file response refused: %s",
                      rid, head.method, head.path, head.request_id, e,
                      extra={"request_id": head.request_id})  # fmt: skip
            payload = encode_error_payload(500, f"bad file response: {e}")
            await self._send(FRAME_ERROR, rid, payload, True, True, flags=FLAG_ERR)
            self._wake_soon()
            return
        await self._send(FRAME_RESP_FILE, rid, payload, True, True)
        ex.sent = 2
        self._wake_soon()

    async def _send_interim(self, rid: int, payload: bytes) -> None:
        """Write an EARLY_HINTS message and have the gateway see it at the end of this
        loop turn (the handler usually awaits something slow after it)."""
        w = self._writer
        if len(payload) > self._max_payload or not w.try_write(FRAME_EARLY_HINTS, rid, _BE, payload, False):
            await self._send(FRAME_EARLY_HINTS, rid, payload, True, True)
        self._wake_soon()

    def _wake_soon(self) -> None:
        """Wake the gateway once per loop turn, after every response finished in this
        turn was committed: one fence and at most one doorbell write per batch."""
        if not self._wake_pending:
            self._wake_pending = True
            self._loop.call_soon(self._flush_wake)

    def _flush_wake(self) -> None:
        self._wake_pending = False
        if not self._stopped:
            self._writer.wake()

    def _abort_exchange(self, rid: int, ex: _Exchange, why: str) -> None:
        """End a response we cannot finish: ERROR before the head, else a body frame
        flagged ERR|END. Never waits: if the ring is full the gateway's own failure
        handling (a 502 when we leave) covers it."""
        w = self._writer
        try:
            if ex.sent == 0:
                w.try_write(FRAME_ERROR, rid, _BE_ERR, encode_error_payload(503 if self._draining else 500, why))
            else:
                flags = FLAG_ERR | FLAG_END | (FLAG_BEGIN if ex.sent == 1 else 0)
                w.try_write(FRAME_RESP_BODY, rid, flags, b"")
        except (ValueError, RingCorrupt) as e:  # segment already closed, or corrupt
            log.debug("request %#x: could not abort the response: %s", rid, e)

    async def _send(self, typ: int, rid: int, payload: bytes, begin: bool, end: bool, flags: int = 0) -> None:
        """Write one head or error message (fragmented to max_payload), awaiting ring
        space."""
        w = self._writer
        for f, chunk in w.fragments(payload, begin, end, flags):
            while not w.try_write(typ, rid, f, chunk, False):
                await self._wait_space(FRAME_HEADER + len(chunk))

    async def _send_body(self, rid: int, payload: bytes, begin: bool, end: bool, ex: _Exchange) -> None:
        """Write response body bytes as RESP_BODY fragments of at most max_payload
        bytes, never past the exchange's window (PROTOCOL 2.7), awaiting ring space and
        WINDOW grants. ``ex.sent`` becomes 2 once a fragment is written. An empty
        payload is one frame, or none if it would carry no flag."""
        w = self._writer
        view = memoryview(payload).cast("B")
        n = len(view)
        off = 0
        while True:
            k = min(n - off, self._max_payload, ex.window)
            if k == 0 and off < n:
                await self._wait_window(ex)
                continue
            last = off + k == n
            f = (FLAG_BEGIN if begin else 0) | (FLAG_END if end and last else 0)
            if k == 0 and not f:
                return
            chunk = view[off:off + k]
            while not w.try_write(FRAME_RESP_BODY, rid, f, chunk, False):
                await self._wait_space(FRAME_HEADER + k)
            ex.window -= k
            ex.sent = 2
            if last:
                return
            begin = False
            off += k

    async def _wait_window(self, ex: _Exchange) -> None:
        """The window is spent: wake the gateway to take what was written, and wait
        for its WINDOW grant (a CANCEL cancels the task instead)."""
        self._writer.wake()
        fut: asyncio.Future[None] = self._loop.create_future()
        ex.credit = fut
        self._window_waits += 1
        try:
            await fut
        finally:
            ex.credit = None
            self._window_waits -= 1

    def _wake_space_waiters(self) -> None:
        """The gateway freed response-ring space: wake, in arrival order, the tasks
        waiting for it that it has room for (the first always), not all of them, so
        that a full ring shared by many large responses costs each a few wakeups, not
        one per doorbell. If some are left, producer_waiting is stored again so that
        the gateway rings once it frees more (each wait's timer bounds a miss)."""
        waiters = self._space_waiters
        w = self._writer
        free = w.free_space()
        woke = False
        while waiters:
            length, fut = waiters[0]
            if fut.done():  # its timer fired, or it was cancelled
                waiters.popleft()
                continue
            need = (length + 7) & -8
            if woke and need > free:
                w.prepare_wait(length)
                return
            waiters.popleft()
            fut.set_result(None)
            free -= need
            woke = True

    async def _wait_space(self, length: int) -> None:
        """Response ring full (PROTOCOL 2.5): wake the gateway, flag producer_waiting,
        and wait for the worker doorbell (or the timeout) without blocking the loop."""
        w = self._writer
        w.wake()
        if not w.prepare_wait(length):
            return
        fut: asyncio.Future[None] = self._loop.create_future()
        self._space_waiters.append((length, fut))
        timer = self._loop.call_later(self._space_timeout, _resolve, fut)
        try:
            await fut
        finally:
            timer.cancel()


def loop_factory(choice: str) -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The event loop named by ``COVET_LOOP``: ``(name, factory)``. ``auto`` takes uvloop
    when it is installed (``pip install 'covet[uvloop]'``) and asyncio's own loop
    otherwise; ValueError for an unknown name or a missing uvloop that was asked for."""
    if choice not in ("auto", "asyncio", "uvloop"):
        raise ValueError(f"{ENV_LOOP}={choice!r}: want auto, asyncio or uvloop")
    if choice != "asyncio":
        try:
            uvloop = importlib.import_module("uvloop")
        except ImportError:
            if choice == "uvloop":
                raise ValueError(f"{ENV_LOOP}=uvloop, but uvloop is not installed (pip install 'covet[uvloop]')") from None
        else:
            return "uvloop", uvloop.new_event_loop
    return "asyncio", asyncio.new_event_loop


def run_worker(app: Covet, *, app_name: str, environ: Mapping[str, str] = os.environ) -> int:
    """Serve ``app`` as one worker of the gateway named by ``environ``; returns the
    process exit status: 0 after a drain, 1 if the gateway went away or broke the
    protocol, 2 if the environment is unusable (it names no gateway, or COVET_LOOP,
    COVET_WORKER_SPIN_US or COVET_SYNC_SPILL_MS is bad)."""
    if not isinstance(app, Covet):
        raise TypeError(f"run_worker needs a Covet app, got {type(app).__name__}")
    try:
        loop_name, new_loop = loop_factory(environ.get(ENV_LOOP, "auto").strip().lower() or "auto")
    except ValueError as e:
        log.error("%s", e)
        return 2
    spin = environ.get(ENV_SPIN, "").strip() or str(DEFAULT_WORKER_SPIN_US)
    if not (spin.isascii() and spin.isdigit()) or int(spin) > 1_000_000:
        log.error("%s=%r: want microseconds, 0 to 1000000", ENV_SPIN, spin)
        return 2
    try:
        spill_seconds(environ)
    except ValueError as e:
        log.error("%s", e)
        return 2
    try:
        channel = ControlChannel.from_env(environ, timeout=HANDSHAKE_TIMEOUT)
    except (LookupError, ValueError, ProtocolError) as e:
        log.error("no gateway to serve: %s", e)
        return 2
    except OSError as e:
        log.error("cannot reach the gateway's control socket: %s", e)
        return 1
    try:
        drain_timeout = float(environ.get(ENV_DRAIN_TIMEOUT, DEFAULT_DRAIN_TIMEOUT))
    except ValueError:
        drain_timeout = DEFAULT_DRAIN_TIMEOUT
    worker = _Worker(
        app,
        channel,
        app_name=app_name,
        token=environ.get(ENV_CONTROL_TOKEN, ""),
        spawned=bool(environ.get(ENV_CONTROL_FD)),
        drain_timeout=drain_timeout,
        spin_ns=int(spin) * 1000,
        loop_name=loop_name,
    )
    try:
        with asyncio.Runner(loop_factory=new_loop) as runner:
            return runner.run(worker.run())
    finally:
        channel.close()
