"""Sync callables (``def`` handlers, dependencies, exception handlers, hooks) run off the
event loop, on one handler thread per loop, fed in batches.

``await run_sync(fn, *args, **kwargs)`` is ``fn(*args, **kwargs)`` run on the loop's
**handler thread** (``covet-sync``, started on first use, a daemon) in a copy of the
caller's context (context variables are seen as the caller sees them). The calls made
during one turn of the loop go to the thread together: the first appends to a pending
list and schedules one ``call_soon``, which hands the whole list over with one queue put.
The thread runs them in order and posts their outcomes back with one
``call_soon_threadsafe`` per batch, which sets the futures the callers await. Against
``loop.run_in_executor`` per call (a ``concurrent.futures.Future``, a wrapping asyncio
future, a queue put and a thread wakeup and a ``call_soon_threadsafe`` for each) this
costs about one thread wakeup and one loop wakeup per loop turn, whatever the number of
calls.

**Spill.** One thread runs one call at a time, so a call that blocks would hold the ones
behind it. The spill threshold (``COVET_SYNC_SPILL_MS``, default 5 ms) bounds that: a
watchdog on the loop, armed while the thread has work, sends every call that has waited
for the thread that long to the loop's default thread pool (``run_in_executor``), and
while the thread's current call has run past the threshold (the thread notes when each
call starts), new batches go straight to the pool. The outcomes of the calls the thread
has finished are delivered at each check too, so none waits for a slow neighbour's end.
A sync call that blocks for a second therefore delays the other sync calls by about the
threshold at most (plus the loop's timer lag), and never holds the loop or an ``async``
handler. ``COVET_SYNC_SPILL_MS=0`` sends every call to the pool, as before the handler
thread existed.

**Cancellation.** Cancelling the awaiting task cancels the future: a call that has not
started yet is skipped, and the outcome of one that was running is dropped.

**Lanes.** :func:`open_lane` gives a caller a handler thread of its own, with its own
name and its own pool to spill to, fed and spilled the same way (the WSGI host runs
every request of a WSGI app on one, covet/_wsgi.py); :func:`busy` counts it too, and
:func:`close_lane` stops it.

**Lifetime.** :func:`shutdown` stops a loop's thread (a sentinel behind the batches
already queued); the worker calls it when it stops, the TestClient when it closes its
loop. A loop closed without it: its thread notices within ``IDLE_CHECK_S`` of idling and
ends.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import functools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

__all__ = ["DEFAULT_SPILL_MS", "ENV_SPILL_MS", "Lane", "busy", "close_lane", "open_lane", "run_sync", "shutdown",
           "spill_seconds"]

log = logging.getLogger("covet.worker")

T = TypeVar("T")

#: Milliseconds a sync call may run on the handler thread before the calls waiting
#: behind it go to the thread pool; 0: every call goes to the pool.
ENV_SPILL_MS: Final = "COVET_SYNC_SPILL_MS"
DEFAULT_SPILL_MS: Final = 5.0
#: The largest accepted spill threshold (one minute).
MAX_SPILL_MS: Final = 60_000.0
#: How often an idle handler thread checks whether its loop has been closed.
IDLE_CHECK_S: Final = 1.0
#: The watchdog's shortest re-check delay.
_MIN_RECHECK_S: Final = 0.0005

_now = time.monotonic
_get_running_loop = asyncio.get_running_loop
_copy_context = contextvars.copy_context

#: One call: (context, callable, args, kwargs, the future its caller awaits).
_Item = tuple[contextvars.Context, Callable[..., Any], tuple[Any, ...], Mapping[str, Any], "asyncio.Future[Any]"]
#: One outcome: (future, exception or None, result).
_Outcome = tuple["asyncio.Future[Any]", BaseException | None, Any]


def spill_seconds(environ: Mapping[str, str] = os.environ) -> float:
    """The spill threshold ``environ`` sets (``COVET_SYNC_SPILL_MS``), in seconds; 0
    means every sync call goes to the thread pool. ValueError for anything but a
    number of milliseconds from 0 to 60000."""
    raw = environ.get(ENV_SPILL_MS, "").strip()
    if not raw:
        return DEFAULT_SPILL_MS / 1000
    try:
        ms = float(raw)
    except ValueError:
        ms = -1.0
    if not 0 <= ms <= MAX_SPILL_MS:  # also refuses nan
        raise ValueError(f"{ENV_SPILL_MS}={raw!r}: want milliseconds, 0 to {MAX_SPILL_MS:.0f}")
    return ms / 1000


class _Batch:
    """The calls of one loop turn. ``todo`` is shared by the thread and the watchdog:
    each takes calls with ``popleft`` (atomic), so each call runs exactly once; ``done``
    holds the outcomes the loop has not delivered yet."""

    __slots__ = ("todo", "done", "queued")

    def __init__(self, items: list[_Item], queued: float) -> None:
        #: When the loop handed it to the thread (time.monotonic).
        self.queued = queued
        self.todo: collections.deque[_Item] = collections.deque(items)
        self.done: collections.deque[_Outcome] = collections.deque()


class _Runner:
    """One handler thread of a loop and its bookkeeping: the loop's own (run_sync), or a
    lane (open_lane). Every method but ``_work`` and ``_run`` runs on the loop's thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, spill: float, name: str = "covet-sync",
                 pool: concurrent.futures.Executor | None = None) -> None:  # fmt: skip
        self.loop = loop
        self.spill = spill
        self.name = name
        #: Where spilled calls go (None: the loop's default executor).
        self.pool = pool
        self.queue: queue.SimpleQueue[_Batch | None] = queue.SimpleQueue()
        self.pending: list[_Item] | None = None
        #: Batches handed to the thread and not yet posted back.
        self.outstanding: list[_Batch] = []
        #: When the thread's current call started (time.monotonic); 0.0 between calls.
        #: Written by the thread, read by the loop.
        self.started = 0.0
        self.thread: threading.Thread | None = None
        self.timer: asyncio.TimerHandle | None = None

    # -- the loop's side ------------------------------------------------------------------

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """``fn(*args, **kwargs)`` on this thread in a copy of the current context (on
        the pool, when the spill threshold is 0); the future its caller awaits."""
        loop = self.loop
        ctx = _copy_context()
        if not self.spill:
            return loop.run_in_executor(self.pool, functools.partial(ctx.run, fn, *args, **kwargs))
        # Inline (one call less per request): the call joins this loop turn's batch.
        fut = loop.create_future()
        item = (ctx, fn, args, kwargs, fut)
        pending = self.pending
        if pending is None:
            self.pending = [item]
            loop.call_soon(self.flush)
        else:
            pending.append(item)
        return fut

    def busy(self) -> bool:
        """Whether calls are queued for this thread or running on it."""
        return bool(self.outstanding or self.pending)

    def flush(self) -> None:
        """Hand this turn's calls to the thread, or to the pool while the thread is held
        by a call past the threshold."""
        items, self.pending = self.pending, None
        if not items:
            return
        now = _now()
        started = self.started
        if started and now - started > self.spill:
            for item in items:
                self.to_pool(item)
            return
        batch = _Batch(items, now)
        self.outstanding.append(batch)
        if self.thread is None:
            self.thread = threading.Thread(target=self._work, name=self.name, daemon=True)
            self.thread.start()
        self.queue.put(batch)
        if self.timer is None:
            self.timer = self.loop.call_later(self.spill, self.watch)

    def deliver(self, batch: _Batch) -> None:
        """The thread is done with ``batch``: set the futures of what it ran."""
        _drain(batch)
        try:
            self.outstanding.remove(batch)
        except ValueError:
            pass

    def watch(self) -> None:
        """The watchdog: deliver what the thread has finished, and send to the pool every
        call that has waited for the thread for the threshold or longer (the whole rest
        of a batch queued that long ago). Re-armed for the next such deadline while the
        thread has work."""
        self.timer = None
        outstanding = self.outstanding
        if not outstanding:
            return
        spill = self.spill
        now = _now()
        deadline = now + spill
        for batch in outstanding:
            _drain(batch)
            todo = batch.todo
            if not todo:
                continue
            if now - batch.queued >= spill:
                while True:
                    try:
                        item = todo.popleft()
                    except IndexError:
                        break
                    self.to_pool(item)
            else:
                deadline = min(deadline, batch.queued + spill)
        self.timer = self.loop.call_later(max(deadline - now, _MIN_RECHECK_S), self.watch)

    def to_pool(self, item: _Item) -> None:
        ctx, fn, args, kwargs, fut = item
        if fut.done():  # cancelled before it started
            return
        inner = self.loop.run_in_executor(self.pool, functools.partial(ctx.run, fn, *args, **kwargs))
        inner.add_done_callback(functools.partial(_copy_outcome, fut))
        fut.add_done_callback(functools.partial(_cancel_inner, inner))

    def stop(self) -> threading.Thread | None:
        """Queue the sentinel (behind the batches already queued) and forget the thread."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.pending:
            self.flush()
        thread, self.thread = self.thread, None
        if thread is not None:
            self.queue.put(None)
        return thread

    # -- the thread's side ----------------------------------------------------------------

    def _work(self) -> None:
        get = self.queue.get
        loop = self.loop
        while True:
            try:
                batch = get(timeout=IDLE_CHECK_S)
            except queue.Empty:
                if loop.is_closed():
                    _forget(self)
                    return
                continue
            if batch is None:
                return
            self._run(batch)
            try:
                loop.call_soon_threadsafe(self.deliver, batch)
            except RuntimeError:  # the loop is closed: nobody awaits these any more
                _forget(self)
                return
            del batch

    def _run(self, batch: _Batch) -> None:
        todo = batch.todo
        done = batch.done.append
        popleft = todo.popleft
        now = _now
        while True:
            try:
                ctx, fn, args, kwargs, fut = popleft()
            except IndexError:
                break
            if fut.cancelled():
                continue
            self.started = now()
            try:
                outcome: _Outcome = (fut, None, ctx.run(fn, *args, **kwargs))
            except StopIteration as e:  # an asyncio future refuses it as an exception
                err = RuntimeError(f"{getattr(fn, '__qualname__', fn)!r} raised StopIteration")
                err.__cause__ = e
                outcome = (fut, err, None)
            except BaseException as e:
                outcome = (fut, e, None)
            # Free before the outcome is seen: a caller answered is never told the
            # thread is still held by its call.
            self.started = 0.0
            done(outcome)


def _drain(batch: _Batch) -> None:
    done = batch.done
    while True:
        try:
            fut, exc, result = done.popleft()
        except IndexError:
            return
        if fut.done():  # cancelled while it ran
            continue
        if exc is None:
            fut.set_result(result)
        else:
            fut.set_exception(exc)


def _copy_outcome(fut: asyncio.Future[Any], inner: asyncio.Future[Any]) -> None:
    if fut.done():
        return
    if inner.cancelled():
        fut.cancel()
        return
    exc = inner.exception()
    if exc is None:
        fut.set_result(inner.result())
    else:
        fut.set_exception(exc)


def _cancel_inner(inner: asyncio.Future[Any], fut: asyncio.Future[Any]) -> None:
    if fut.cancelled():
        inner.cancel()


_runners: dict[asyncio.AbstractEventLoop, _Runner] = {}
_runners_lock = threading.Lock()


def _spill() -> float:
    """The spill threshold from the environment; the default (with a warning) for a bad
    value (the worker refuses one at start; TestClient and the like do not check)."""
    try:
        return spill_seconds()
    except ValueError as e:
        log.warning("%s; using %g ms", e, DEFAULT_SPILL_MS)
        return DEFAULT_SPILL_MS / 1000


def _runner(loop: asyncio.AbstractEventLoop) -> _Runner:
    with _runners_lock:
        runner = _runners.get(loop)
        if runner is None:
            runner = _runners[loop] = _Runner(loop, _spill())
        return runner


def _forget(runner: _Runner) -> None:
    with _runners_lock:
        if _runners.get(runner.loop) is runner:
            del _runners[runner.loop]


def run_sync(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> asyncio.Future[T]:
    """``fn(*args, **kwargs)`` on the running loop's handler thread, in a copy of the
    current context; await the returned future for its result (or its exception). With
    ``COVET_SYNC_SPILL_MS=0`` it runs in the loop's default thread pool instead."""
    loop = _get_running_loop()
    runner = _runners.get(loop)
    if runner is None:
        runner = _runner(loop)
    return runner.submit(fn, *args, **kwargs)


#: A handler thread of a caller's own (open_lane): ``lane.submit(fn, *args)`` as run_sync.
Lane = _Runner

#: The lanes open on each loop (for busy).
_lanes: dict[asyncio.AbstractEventLoop, list[_Runner]] = {}


def open_lane(name: str, pool: concurrent.futures.Executor) -> Lane:
    """A handler thread for the running loop named ``name`` (started at its first call),
    spilling to ``pool``, with the spill threshold run_sync has (0: every call goes to
    ``pool``). Stop it with close_lane."""
    loop = _get_running_loop()
    lane = _Runner(loop, _spill(), name, pool)
    _lanes.setdefault(loop, []).append(lane)
    return lane


def close_lane(lane: Lane) -> None:
    """Stop ``lane``'s thread once it has run the calls queued to it (without waiting),
    and forget it."""
    lanes = _lanes.get(lane.loop)
    if lanes is not None and lane in lanes:
        lanes.remove(lane)
        if not lanes:
            del _lanes[lane.loop]
    lane.stop()


def busy(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether one of ``loop``'s handler threads (its own, or a lane) has calls queued or
    running. The worker does not spin on its request ring meanwhile: a loop that spins
    holds the GIL the thread needs."""
    runner = _runners.get(loop)
    if runner is not None and runner.busy():
        return True
    lanes = _lanes.get(loop)
    return lanes is not None and any(lane.busy() for lane in lanes)


def shutdown(loop: asyncio.AbstractEventLoop, timeout: float = 1.0) -> bool:
    """Stop ``loop``'s handler thread once it has run the calls already queued, waiting
    at most ``timeout`` seconds for it; True when it has ended (or there was none). A
    later ``run_sync`` on the same loop starts a new one."""
    with _runners_lock:
        runner = _runners.pop(loop, None)
    if runner is None:
        return True
    thread = runner.stop()
    if thread is None:
        return True
    thread.join(timeout)
    return not thread.is_alive()
