"""The worker's side of WebSocket sessions (workerproto/PROTOCOL.md 2.9).

:class:`Sessions` is the worker's table of live sessions; the worker hands it every
record of types 80-95 (``on_record``) and every CANCEL it has no HTTP exchange for
(``cancel``). Each :class:`Session` is one session's transport (covet._websocket's
``WebSocketTransport``) and its task:

- ``WS_OPEN`` (fragments assembled like a REQ_HEAD) starts the handler's task, made
  with ``create_task`` so that it runs only after the poll that read the record has
  released it (PROTOCOL.md 1.1); while the worker drains, a new session is refused
  with ERROR 503;
- ``WS_TEXT`` / ``WS_BINARY`` fragments are assembled into one message per id and
  handed to the WebSocket's queue whole; each frame spends the gateway's credit
  (payload + 64), and a gateway that sends past its window broke the protocol;
- once the handler has *received* a message, its cost is owed back to the gateway:
  the owed credit goes out as one ``WS_CREDIT`` when it reaches a quarter of the
  window (a window at least twice the gateway's largest message then never stalls);
- a message the handler sends goes out as fragments of at most one record, each
  waiting for credit (``WS_CREDIT`` from the gateway) and ring space, under a
  per-session lock so that the fragments of two messages never interleave; a message
  of several fragments is finished even if the handler cancels its send;
- the gateway's ``WS_CLOSE`` makes the handler's next receive raise
  WebSocketDisconnect (and wakes a send waiting for credit, which raises too);
- the session ends with exactly one ``WS_CLOSE`` from this side (the handler's close,
  1000 when it returns, 1011 when it raises), or, when the handler rejected the
  handshake, with an HTTP response (``RESP`` / ``RESP_HEAD`` ...) instead of
  ``WS_ACCEPT``; after either, frames for the id are ignored;
- ``CANCEL`` for the id cancels the handler and nothing more is sent for it (the
  rule of HTTP exchanges, 2.4: there is nothing to answer a gateway that has let the
  id go). So does the drain deadline: the gateway then treats the session as one
  whose worker went away (closes it with 1012, or resumes a ``resumable`` one
  elsewhere).

Everything runs on the worker's loop thread.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Final

from ._control import ProtocolError
from ._head import RequestHead
from ._payloads import (
    FLAG_BEGIN,
    FLAG_END,
    FRAME_WS_BINARY,
    FRAME_WS_CLOSE,
    FRAME_WS_CREDIT,
    FRAME_WS_OPEN,
    FRAME_WS_TEXT,
    FRAME_WS_ACCEPT,
    WS_FRAME_COST,
    assemble_fragment,
    decode_window_payload,
    decode_ws_close,
    decode_ws_open,
    encode_window_payload,
    encode_ws_accept,
    encode_ws_close,
)
from ._responses import JSONResponse, Response
from ._shmring import FRAME_HEADER, RingCorrupt
from ._websocket import WebSocket, run_session

if TYPE_CHECKING:
    from ._worker import _Worker

__all__ = ["Session", "Sessions"]

log = logging.getLogger("covet.worker")

_BE: Final = FLAG_BEGIN | FLAG_END


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a background send's outcome as seen (its caller may have gone)."""
    if not task.cancelled():
        task.exception()


class Session:
    """One WebSocket session: its transport towards the gateway and its task.

    Credit: ``send_credit`` is what this side may still send (the window plus the
    gateway's grants, less the cost of what was sent); ``recv_left`` is what the
    gateway may still send us (checked: more is a violation); ``owed`` is the cost of
    messages the handler has received, not yet granted back."""

    __slots__ = ("closed", "credit", "grant_at", "head", "lock", "max_message", "owed", "part_cost",
                 "part_type", "parts", "recv_left", "rid", "send_credit", "task", "worker", "ws")  # fmt: skip

    def __init__(self, worker: _Worker, rid: int, head: RequestHead, resumed: bool, window: int) -> None:
        self.worker = worker
        self.rid = rid
        self.head = head
        self.max_message = window // 2
        self.send_credit = window
        self.recv_left = window
        self.owed = 0
        self.grant_at = max(1, window // 4)
        self.closed = False  # this side's WS_CLOSE or HTTP answer is out (or the id was cancelled)
        self.credit: asyncio.Future[None] | None = None
        self.lock = asyncio.Lock()
        self.parts: list[bytes] | None = None
        self.part_type = 0
        self.part_cost = 0
        self.task: asyncio.Task[None] | None = None
        self.ws = WebSocket(head, self, resumed=resumed)

    # -- WebSocketTransport --------------------------------------------------------------

    async def accept(self, subprotocol: str, headers: list[tuple[str, bytes]]) -> None:
        payload = encode_ws_accept(subprotocol, headers)
        if len(payload) > self.worker._max_payload:  # WS_ACCEPT is one frame (PROTOCOL.md 2.9)
            raise ValueError(f"accept(): its headers take {len(payload)} bytes, more than one ring record "
                             f"holds ({self.worker._max_payload})")  # fmt: skip
        async with self.lock:
            await self.worker._send(FRAME_WS_ACCEPT, self.rid, payload, True, True)
        self.worker._wake_soon()

    async def send_message(self, text: bool, data: bytes) -> None:
        typ = FRAME_WS_TEXT if text else FRAME_WS_BINARY
        worker = self.worker
        if len(data) <= worker._max_payload:  # one frame: a cancelled send writes nothing
            async with self.lock:
                await self._write_message(typ, data)
            return
        # Several frames: once the first is out, the message must be finished, or the
        # next one would begin inside it (a violation). So it is sent by a task of its
        # own that the caller's cancellation does not reach: a cancelled send may
        # still be delivered whole. A CANCEL of the session stops it between frames.
        task = worker._loop.create_task(self._send_locked(typ, data))
        task.add_done_callback(_retrieve)
        worker._aux.add(task)
        task.add_done_callback(worker._aux.discard)
        await asyncio.shield(task)

    async def _send_locked(self, typ: int, data: bytes) -> None:
        async with self.lock:
            await self._write_message(typ, data)

    async def _write_message(self, typ: int, data: bytes) -> None:
        """Write one message as fragments of at most one record, each within credit
        and ring space; the caller holds the lock."""
        worker = self.worker
        w = worker._writer
        rid = self.rid
        view = memoryview(data)
        n = len(view)
        off = 0
        flags = FLAG_BEGIN
        while True:
            k = min(n - off, worker._max_payload)
            cost = k + WS_FRAME_COST
            while self.send_credit < cost:
                await self._wait_credit()
            last = off + k == n
            if last:
                flags |= FLAG_END
            chunk = view[off:off + k]
            while True:
                if self.closed:
                    raise RuntimeError("send on a WebSocket session that has ended")
                if w.try_write(typ, rid, flags, chunk, False):
                    break
                await worker._wait_space(FRAME_HEADER + k)
            self.send_credit -= cost
            if last:
                break
            flags = 0
            off += k
        worker._wake_soon()

    async def _wait_credit(self) -> None:
        """The window is spent: have the gateway see what was written, and wait for its
        WS_CREDIT (or its close, which raises WebSocketDisconnect)."""
        self.ws._check_send()
        self.worker._writer.wake()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.credit = fut
        try:
            await fut
        finally:
            self.credit = None
        self.ws._check_send()

    async def close(self, code: int, reason: str) -> None:
        payload = encode_ws_close(code, reason)
        async with self.lock:
            if self.closed:
                return
            self.closed = True
            await self.worker._send(FRAME_WS_CLOSE, self.rid, payload, True, True)
        self.worker._wake_soon()

    def consumed(self, cost: int) -> None:
        if self.closed:
            return
        self.owed += cost
        if self.owed >= self.grant_at:
            grant, self.owed = self.owed, 0
            self.recv_left += grant
            worker = self.worker
            payload = encode_window_payload(grant)
            if worker._writer.try_write(FRAME_WS_CREDIT, self.rid, _BE, payload, False):
                worker._wake_soon()
            else:
                worker._spawn(self._grant_later(payload))

    async def _grant_later(self, payload: bytes) -> None:
        """A WS_CREDIT the full ring refused: written once there is room, under the
        session's lock, and never after this side's WS_CLOSE (the gateway would take a
        frame after it for a violation)."""
        async with self.lock:
            if self.closed:
                return
            await self.worker._send(FRAME_WS_CREDIT, self.rid, payload, True, True)
        self.worker._wake_soon()

    # -- from the gateway --------------------------------------------------------------

    def on_message_frame(self, typ: int, flags: int, payload: bytes) -> None:
        if flags & ~_BE:
            raise ProtocolError(f"WebSocket message for {self.rid:#x}: flags {flags:#x}")
        cost = len(payload) + WS_FRAME_COST
        self.recv_left -= cost
        if self.recv_left < 0:
            raise ProtocolError(f"WebSocket session {self.rid:#x}: the gateway sent {-self.recv_left} bytes "
                                "past its window")  # fmt: skip
        parts = self.parts
        if flags & FLAG_BEGIN:
            if parts is not None:
                raise ProtocolError(f"WebSocket message for {self.rid:#x}: BEGIN inside a message")
            if flags & FLAG_END:  # the common case: a message in one frame
                self._deliver(typ, payload, cost)
                return
            self.parts = [payload]
            self.part_type = typ
            self.part_cost = cost
            return
        if parts is None:
            raise ProtocolError(f"WebSocket message for {self.rid:#x}: fragment without BEGIN")
        if typ != self.part_type:
            raise ProtocolError(f"WebSocket message for {self.rid:#x}: type {typ} inside a message of type {self.part_type}")
        parts.append(payload)
        self.part_cost += cost
        if flags & FLAG_END:
            self.parts = None
            self._deliver(typ, b"".join(parts), self.part_cost)

    def _deliver(self, typ: int, data: bytes, cost: int) -> None:
        if self.closed:
            return
        if typ == FRAME_WS_TEXT:
            try:
                self.ws._deliver(data.decode("utf-8"), cost)
            except UnicodeDecodeError:
                raise ProtocolError(f"WS_TEXT for {self.rid:#x} is not UTF-8") from None
        else:
            self.ws._deliver(data, cost)

    def on_close(self, code: int, reason: str) -> None:
        self.parts = None
        self.ws._deliver_close(code, reason)
        fut = self.credit
        if fut is not None and not fut.done():
            fut.set_result(None)

    def on_credit(self, grant: int) -> None:
        self.send_credit += grant
        fut = self.credit
        if fut is not None and not fut.done():
            fut.set_result(None)

    # -- the task ----------------------------------------------------------------------

    async def run(self) -> None:
        worker = self.worker
        head = self.head
        try:
            route = worker._app.router.lookup_ws(head.route)
            response: Response | None
            if route is None:
                response = JSONResponse({"detail": "Not Found"}, 404)
            else:
                response = await run_session(worker._app, route, self.ws)
            if response is not None and not self.closed:
                self.closed = True
                await worker._answer_http(self.rid, head, response)
        except RingCorrupt as e:
            worker._stopped = True
            worker._fatal(str(e))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("WebSocket session %#x (%s, request_id=%s): failed", self.rid, head.path,
                          head.request_id, extra={"request_id": head.request_id})  # fmt: skip
            if not self.closed:
                self.closed = True
                try:
                    worker._writer.try_write(FRAME_WS_CLOSE, self.rid, _BE, encode_ws_close(1011, "internal error"))
                    worker._wake_soon()
                except (ValueError, RingCorrupt):
                    pass
        finally:
            worker._ws.ended(self)


class Sessions:
    """The worker's live WebSocket sessions by request id, and WS_OPEN messages being
    assembled."""

    def __init__(self, worker: _Worker) -> None:
        self.worker = worker
        self.live: dict[int, Session] = {}
        self.opening: dict[int, list[bytes]] = {}

    def tasks(self) -> list[asyncio.Task[None]]:
        return [s.task for s in self.live.values() if s.task is not None and not s.task.done()]

    def ended(self, session: Session) -> None:
        if self.live.get(session.rid) is session:
            del self.live[session.rid]

    def cancel(self, rid: int) -> None:
        """CANCEL (or ERROR) from the gateway for ``rid``: stop its handler; nothing
        more is sent for the id."""
        self.opening.pop(rid, None)
        session = self.live.pop(rid, None)
        if session is not None:
            session.closed = True
            if session.task is not None:
                session.task.cancel()

    def on_record(self, typ: int, rid: int, flags: int, payload: bytes) -> None:
        if typ == FRAME_WS_TEXT or typ == FRAME_WS_BINARY:
            session = self.live.get(rid)
            if session is not None and not session.closed:
                session.on_message_frame(typ, flags, payload)
        elif typ == FRAME_WS_CREDIT:
            if flags != _BE:
                raise ProtocolError(f"WS_CREDIT for {rid:#x}: flags {flags:#x}, want BEGIN|END")
            grant = decode_window_payload(payload)
            session = self.live.get(rid)
            if session is not None:
                session.on_credit(grant)
        elif typ == FRAME_WS_CLOSE:
            if flags != _BE:
                raise ProtocolError(f"WS_CLOSE for {rid:#x}: flags {flags:#x}, want BEGIN|END")
            code, reason = decode_ws_close(payload)
            session = self.live.get(rid)
            if session is not None:
                session.on_close(code, reason)
        elif typ == FRAME_WS_OPEN:
            self._open_fragment(rid, flags, payload)
        # 86-95 are reserved; unknown types never pass the ring reader.

    def _open_fragment(self, rid: int, flags: int, payload: bytes) -> None:
        if flags & ~_BE:
            raise ProtocolError(f"WS_OPEN for {rid:#x}: flags {flags:#x}")
        whole = assemble_fragment(self.opening, "WS_OPEN", rid, flags, payload)
        if whole is not None:
            self._open(rid, whole)

    def _open(self, rid: int, payload: bytes) -> None:
        worker = self.worker
        head, resumed, window = decode_ws_open(payload)
        if rid in self.live or rid in worker._inflight:
            raise ProtocolError(f"WS_OPEN for {rid:#x}, which is in flight")
        if worker._draining:
            worker._refuse(rid)
            return
        session = Session(worker, rid, head, resumed, window)
        self.live[rid] = session
        # A scheduled task, not an eager one: it runs once the poll that read this
        # record has released it.
        session.task = worker._loop.create_task(session.run())
