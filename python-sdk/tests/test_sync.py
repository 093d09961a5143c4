"""covet._sync: sync callables on one handler thread per loop, in batches, with the spill
to the thread pool. The tests are about order and events, never about speed: a
"blocked" call waits on a threading.Event that the test sets, with generous timeouts."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from covet import Covet, Depends, Query, Request
from covet import _sync
from covet._sync import run_sync, shutdown, spill_seconds
from covet.testing import TestClient

WAIT = 10.0  # seconds any wait here may take before the test fails
HANDLER_THREAD = "covet-sync"

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


@pytest.fixture(autouse=True)
def no_spill(monkeypatch: pytest.MonkeyPatch) -> None:
    """A threshold of a minute unless a test sets its own: the threshold counts any wait
    for the thread, so on a loaded machine the default 5 ms could spill calls a test
    expects on the thread. The tests of the spill itself set theirs."""
    monkeypatch.setenv(_sync.ENV_SPILL_MS, "60000")


def run(coro_fn: Callable[[], Any], spill_ms: str | None = None, monkeypatch: pytest.MonkeyPatch | None = None) -> Any:
    """Run ``coro_fn()`` in a fresh loop (so a fresh runner reads the setting) and stop
    that loop's handler thread afterwards."""
    if spill_ms is not None:
        assert monkeypatch is not None
        monkeypatch.setenv(_sync.ENV_SPILL_MS, spill_ms)

    async def main() -> Any:
        try:
            return await coro_fn()
        finally:
            assert shutdown(asyncio.get_running_loop(), WAIT)

    return asyncio.run(main())


async def awaiting(fut: asyncio.Future[Any]) -> Any:
    """A task's await of ``fut``: cancelling the task cancels the future."""
    return await fut


def thread_name() -> str:
    return threading.current_thread().name


class CountingQueue:
    """Stands in for a runner's SimpleQueue, counting the batches put."""

    def __init__(self) -> None:
        self.q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.puts = 0

    def put(self, item: Any) -> None:
        if item is not None:
            self.puts += 1
        self.q.put(item)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        return self.q.get(block, timeout)


# -- the setting ---------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "seconds"), [("", 0.005), ("0", 0.0), ("2.5", 0.0025), (" 100 ", 0.1), ("60000", 60.0)])
def test_spill_setting(raw: str, seconds: float) -> None:
    assert spill_seconds({_sync.ENV_SPILL_MS: raw}) == pytest.approx(seconds)
    assert spill_seconds({}) == pytest.approx(0.005)


@pytest.mark.parametrize("raw", ["fast", "-1", "60001", "nan", "inf"])
def test_bad_spill_setting_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="COVET_SYNC_SPILL_MS=.*want milliseconds, 0 to 60000"):
        spill_seconds({_sync.ENV_SPILL_MS: raw})


# -- results, exceptions, context ----------------------------------------------------------


def test_result_and_arguments() -> None:
    def add(a: int, b: int = 0, *, c: int = 0) -> tuple[int, str]:
        return a + b + c, thread_name()

    async def main() -> tuple[int, str]:
        return await run_sync(add, 1, 2, c=3)

    assert run(main) == (6, HANDLER_THREAD)


def test_exception_reaches_the_caller() -> None:
    def fail() -> None:
        raise KeyError("nope")

    def stop() -> None:
        raise StopIteration

    async def main() -> None:
        with pytest.raises(KeyError, match="nope") as info:
            await run_sync(fail)
        assert any(entry.name == "fail" for entry in info.traceback)
        # An asyncio future cannot hold StopIteration: it comes as a RuntimeError.
        with pytest.raises(RuntimeError, match="raised StopIteration") as got:
            await run_sync(stop)
        assert isinstance(got.value.__cause__, StopIteration)
        assert await run_sync(lambda: "still serving") == "still serving"

    run(main)


def test_context_variables_are_seen_and_kept_apart() -> None:
    def read_and_set() -> str:
        seen = var.get()
        var.set("set in the thread")
        return seen

    async def one(value: str) -> tuple[str, str]:
        var.set(value)
        seen = await run_sync(read_and_set)
        return seen, var.get()

    async def main() -> list[tuple[str, str]]:
        return list(await asyncio.gather(*(one(f"v{i}") for i in range(5))))

    assert run(main) == [(f"v{i}", f"v{i}") for i in range(5)]


# -- batches --------------------------------------------------------------------------------


def test_calls_of_one_loop_turn_are_one_batch_run_in_order() -> None:
    order: list[int] = []

    def record(i: int) -> str:
        order.append(i)
        return thread_name()

    async def main() -> tuple[list[str], int]:
        loop = asyncio.get_running_loop()
        runner = _sync._runner(loop)
        counting = CountingQueue()
        runner.queue = counting  # type: ignore[assignment]
        futures = [run_sync(record, i) for i in range(20)]  # one turn
        names = list(await asyncio.gather(*futures))
        more = [run_sync(record, i) for i in range(20, 25)]  # the next turn: a second batch
        names += await asyncio.gather(*more)
        return names, counting.puts

    names, puts = run(main)
    assert order == list(range(25))
    assert set(names) == {HANDLER_THREAD}
    assert puts == 2


def test_one_thread_per_loop_and_shutdown_ends_it() -> None:
    async def main() -> tuple[threading.Thread, threading.Thread, threading.Thread]:
        loop = asyncio.get_running_loop()
        first = await run_sync(threading.current_thread)
        assert await run_sync(threading.current_thread) is first
        assert shutdown(loop, WAIT)
        assert not first.is_alive()
        second = await run_sync(threading.current_thread)  # a new one, started on demand
        assert second is not first and second.name == HANDLER_THREAD
        return first, second, await run_sync(threading.current_thread)

    first, second, third = run(main)
    assert third is second and not second.is_alive()


def test_a_closed_loop_s_thread_ends_by_itself() -> None:
    loop = asyncio.new_event_loop()
    try:
        thread = loop.run_until_complete(_current_thread())
    finally:
        loop.close()
    thread.join(WAIT)  # it checks every IDLE_CHECK_S while idle
    assert not thread.is_alive()
    assert loop not in _sync._runners


async def _current_thread() -> threading.Thread:
    return await run_sync(threading.current_thread)


# -- cancellation ---------------------------------------------------------------------------


def test_cancelled_calls_are_skipped_or_their_results_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A call cancelled while it runs: its caller gets CancelledError at once and the
    result is dropped quietly; one cancelled before it starts never runs."""
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def blocking() -> str:
        started.set()
        release.wait(WAIT)
        ran.append("blocking")
        return "late"

    def behind() -> None:
        ran.append("behind")

    async def main() -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        errors: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: errors.append(context))
        t1 = asyncio.create_task(awaiting(run_sync(blocking)))
        t2 = asyncio.create_task(awaiting(run_sync(behind)))
        await loop.run_in_executor(None, started.wait, WAIT)
        t1.cancel()
        t2.cancel()
        for t in (t1, t2):
            with pytest.raises(asyncio.CancelledError):
                await t
        release.set()
        assert await run_sync(lambda: "after") == "after"  # behind the cancelled ones
        return errors

    # A spill threshold of a minute: nothing goes to the pool in this test.
    assert run(main, "60000", monkeypatch) == []
    assert ran == ["blocking"]


# -- spill ----------------------------------------------------------------------------------


def test_calls_behind_a_blocked_one_go_to_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    started, release = threading.Event(), threading.Event()

    def blocking() -> str:
        started.set()
        assert release.wait(WAIT), "never released"
        return thread_name()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        before = run_sync(thread_name)  # same batch, ahead of the blocking call
        blocked = run_sync(blocking)
        behind = [run_sync(thread_name) for _ in range(3)]  # same batch, behind it
        await loop.run_in_executor(None, started.wait, WAIT)
        # Finished before the blocking call: delivered by the watchdog, not at the
        # batch's end.
        assert await asyncio.wait_for(before, WAIT) == HANDLER_THREAD
        names = await asyncio.wait_for(asyncio.gather(*behind), WAIT)
        assert HANDLER_THREAD not in names  # taken back and run on the pool
        # A new batch while the thread is held: the pool too.
        assert await asyncio.wait_for(run_sync(thread_name), WAIT) != HANDLER_THREAD
        # An async handler never waited on any of it.
        assert not blocked.done()
        release.set()
        assert await asyncio.wait_for(blocked, WAIT) == HANDLER_THREAD
        # The thread is free again: the next call runs on it.
        assert await asyncio.wait_for(run_sync(thread_name), WAIT) == HANDLER_THREAD

    # 200 ms, not less: the threshold counts any wait for the thread, so on a loaded
    # machine a smaller one could spill the calls this test expects on the thread.
    run(main, "200", monkeypatch)


def test_a_blocked_call_can_be_released_by_a_later_sync_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """The deadlock the spill prevents: a sync call waits for another sync call."""
    event = threading.Event()

    async def main() -> list[Any]:
        waiting = asyncio.ensure_future(run_sync(event.wait, WAIT))
        await asyncio.sleep(0)  # its own batch
        return list(await asyncio.wait_for(asyncio.gather(waiting, run_sync(event.set)), 2 * WAIT))

    assert run(main, "5", monkeypatch) == [True, None]  # the default threshold


def test_spill_zero_sends_every_call_to_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> list[str]:
        names = list(await asyncio.gather(*(run_sync(thread_name) for _ in range(5))))
        var.set("in the caller")
        names.append(await run_sync(var.get))
        return names

    names = run(main, "0", monkeypatch)
    assert HANDLER_THREAD not in names[:5] and names[5] == "in the caller"


def test_a_pool_call_cancelled_with_its_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spilled calls keep cancellation: the caller's future cancelled, the pool's
    outcome dropped; the caller of one that completes gets its result."""
    started, release = threading.Event(), threading.Event()

    def blocking() -> None:
        started.set()
        release.wait(WAIT)

    def pool_block() -> str:
        release.wait(WAIT)
        return "pooled"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        blocked = run_sync(blocking)
        await loop.run_in_executor(None, started.wait, WAIT)
        # Past the threshold: these go to the pool.
        await asyncio.sleep(0.01)
        kept = asyncio.create_task(awaiting(run_sync(pool_block)))
        dropped = asyncio.create_task(awaiting(run_sync(pool_block)))
        await asyncio.sleep(0)
        dropped.cancel()
        with pytest.raises(asyncio.CancelledError):
            await dropped
        release.set()
        assert await asyncio.wait_for(kept, WAIT) == "pooled"
        await asyncio.wait_for(blocked, WAIT)

    run(main, "1", monkeypatch)


# -- through the app ------------------------------------------------------------------------


@pytest.fixture
def app() -> Iterator[Covet]:
    app = Covet("sync-test")
    seen: list[str] = []

    @app.on_startup
    def start() -> None:
        seen.append(thread_name())

    @app.get("/where")
    def where(req: Request) -> dict[str, Any]:
        return {"thread": thread_name(), "startup": seen}

    @app.get("/fail")
    def fail(req: Request) -> None:
        raise LookupError("gone")  # str(exc) is "gone" (KeyError would quote it)

    @app.exception_handler(LookupError)
    def missing(req: Request, exc: LookupError) -> tuple[dict[str, str], int]:
        return {"error": str(exc), "thread": thread_name()}, 404

    yield app


def test_sync_handlers_hooks_and_exception_handlers_run_on_the_handler_thread(app: Covet) -> None:
    with TestClient(app) as client:
        r = client.get("/where")
        assert r.status_code == 200 and r.json() == {"thread": HANDLER_THREAD, "startup": [HANDLER_THREAD]}
        r = client.get("/fail")
        assert r.status_code == 404 and r.json() == {"error": "gone", "thread": HANDLER_THREAD}
        loop = client._lifespan.runner.get_loop()  # type: ignore[union-attr]
        thread = _sync._runners[loop].thread
        assert thread is not None and thread.is_alive()
    assert not thread.is_alive() and loop not in _sync._runners  # closing the client ended it


def test_sync_to_thread_false_runs_a_def_handler_on_the_loop() -> None:
    """sync_to_thread=False: the handler runs on the loop's thread (as an async one does),
    bound and documented as any handler (path and query values, 422, its docstring), an
    awaitable it returns awaited; the sync dependencies it has still go to the thread.
    The default stays the handler thread, and the option does nothing to async handlers."""
    app = Covet("inline-test")

    def dep() -> str:
        return thread_name()

    @app.get("/inline/{n:int}", sync_to_thread=False)
    def inline(n: int, q: int = Query(0), dep_thread: str = Depends(dep)) -> dict[str, Any]:
        """Inline doc."""
        return {"thread": thread_name(), "n": n, "q": q, "dep": dep_thread}

    @app.get("/plain", sync_to_thread=False)
    def plain(req: Request) -> dict[str, Any]:
        return {"thread": thread_name()}

    @app.get("/awaitable", sync_to_thread=False)
    def awaitable(req: Request) -> Any:
        async def later() -> dict[str, str]:
            return {"thread": thread_name()}
        return later()

    @app.get("/async", sync_to_thread=False)
    async def in_async(req: Request) -> dict[str, Any]:
        return {"thread": thread_name()}

    @app.get("/default")
    def default(req: Request) -> dict[str, Any]:
        return {"thread": thread_name()}

    with TestClient(app) as client:
        loop_thread = client.get("/async").json()["thread"]
        assert loop_thread != HANDLER_THREAD
        assert client.get("/inline/3?q=4").json() == {"thread": loop_thread, "n": 3, "q": 4, "dep": HANDLER_THREAD}
        r = client.get("/inline/3?q=x")
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "q"]
        assert client.get("/plain").json() == {"thread": loop_thread}
        assert client.get("/awaitable").json() == {"thread": loop_thread}
        assert client.get("/default").json() == {"thread": HANDLER_THREAD}
        doc = client.get("/openapi.json").json()["paths"]["/inline/{n}"]["get"]
        assert doc["description"] == "Inline doc." and doc["operationId"] == "inline_inline__n__get"
    assert inline(1, 2, "x") == {"thread": thread_name(), "n": 1, "q": 2, "dep": "x"}  # the decorator returned it as is
    with pytest.raises(TypeError, match="sync_to_thread must be True or False"):
        app.get("/bad", sync_to_thread="no")  # type: ignore[arg-type]


def test_busy_while_the_thread_has_calls() -> None:
    """The worker does not spin on its ring while busy(loop) holds."""
    started, release = threading.Event(), threading.Event()

    def blocking() -> None:
        started.set()
        release.wait(WAIT)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert not _sync.busy(loop)
        fut = run_sync(blocking)
        assert _sync.busy(loop)  # pending: not handed over yet
        await loop.run_in_executor(None, started.wait, WAIT)
        assert _sync.busy(loop)  # running
        release.set()
        await asyncio.wait_for(fut, WAIT)
        # The watchdog may have delivered the result just before the thread posted
        # the batch back: that follows within a few loop turns.
        deadline = loop.time() + WAIT
        while _sync.busy(loop):
            assert loop.time() < deadline, "still busy"
            await asyncio.sleep(0.001)

    run(main)


def test_a_lane_has_its_own_thread_and_pool_and_counts_as_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    """open_lane: calls run on a thread of the lane's name, a call that waits behind a
    blocked one spills to the lane's pool (not the loop's default executor), busy()
    counts the lane, and close_lane ends its thread."""
    started, release = threading.Event(), threading.Event()

    def blocking() -> str:
        started.set()
        release.wait(WAIT)
        return threading.current_thread().name

    def name() -> str:
        return threading.current_thread().name

    async def main() -> None:
        loop = asyncio.get_running_loop()
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lane-pool") as pool:
            lane = _sync.open_lane("lane-thread", pool)
            try:
                first = lane.submit(blocking)
                assert _sync.busy(loop)
                await loop.run_in_executor(None, started.wait, WAIT)
                second = lane.submit(name)  # the thread is held: spilled after the threshold (5 ms)
                assert await asyncio.wait_for(second, WAIT) == "lane-pool_0"
                release.set()
                assert await asyncio.wait_for(first, WAIT) == "lane-thread"
                deadline = loop.time() + WAIT
                while _sync.busy(loop):
                    assert loop.time() < deadline, "still busy"
                    await asyncio.sleep(0.001)
                assert loop not in _sync._runners  # run_sync's own thread was never started
            finally:
                release.set()
                thread = lane.thread
                _sync.close_lane(lane)
            assert thread is not None
            thread.join(WAIT)
            assert not thread.is_alive() and loop not in _sync._lanes

    run(main, "5", monkeypatch)
