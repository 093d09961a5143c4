"""Sync (``def``) handlers through the real gateway and worker (covet/_sync.py): they run
on the worker's handler thread, and one that blocks does not hold the others: the sync
requests behind it go to the thread pool past the spill threshold (COVET_SYNC_SPILL_MS),
and async ones never wait on it.

The test is about order, not speed: /block waits (up to 10 s) for an event that only
the sync /release request sets, so /block answers "released" only if /release was
served while /block still blocked; before the handler thread had a spill it would have
waited behind /block and /block would answer "timeout"."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from conftest import fetch, serving_gateway

if TYPE_CHECKING:
    from conftest import Gateway

HANDLER_THREAD = "covet-sync"
WAIT_S = 10.0


def _ready(gw: Gateway) -> bool:
    try:
        return fetch(gw, "GET", "/blocking")[0] == 200
    except OSError:
        return False


# 200 ms rather than the default 5: the threshold counts any wait for the thread, and
# on a loaded machine 5 ms could spill a call this test expects on the thread; "0"
# sends every sync call to the pool.
@pytest.fixture(params=["200", "0"], ids=["spill-200ms", "spill-0-pool-only"])
def gw(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Gateway]:
    env = {"COVET_SYNC_SPILL_MS": request.param}
    # One worker: /block, /release and the others all reach the same process.
    with serving_gateway(tmp_path / "gateway.log", "syncapp", "sync_app", 1, _ready, **env) as g:
        yield g


def _get(gw: Gateway, path: str) -> tuple[int, Any]:
    status, _, body = fetch(gw, "GET", path)
    return status, body.decode() if not body.startswith(b"{") else json.loads(body)


def test_a_blocked_sync_handler_holds_no_other_request(gw: Gateway, request: pytest.FixtureRequest) -> None:
    pool_only = "spill-0" in request.node.callspec.id
    if not pool_only:  # the worker serves sync handlers on its handler thread
        assert _get(gw, "/fast/0") == (200, {"i": 0, "thread": HANDLER_THREAD})
    with ThreadPoolExecutor(9) as clients:
        blocked = clients.submit(_get, gw, "/block")
        deadline = time.monotonic() + WAIT_S
        while _get(gw, "/blocking")[1]["blocking"] is not True:  # async: answered meanwhile
            assert time.monotonic() < deadline, "/block never started"
            assert not blocked.done(), blocked.result()
            time.sleep(0.02)
        fast = [clients.submit(_get, gw, f"/fast/{i}") for i in range(1, 9)]
        answers = [f.result(timeout=WAIT_S) for f in fast]
        assert [a[0] for a in answers] == [200] * 8 and [a[1]["i"] for a in answers] == list(range(1, 9))
        assert all(a[1]["thread"] != HANDLER_THREAD for a in answers)  # the handler thread is held
        assert not blocked.done(), "/block answered before /release"
        assert _get(gw, "/release") == (200, "set")
        assert blocked.result(timeout=WAIT_S + 5) == (200, "released")
    if not pool_only:  # the handler thread is free again
        assert _get(gw, "/fast/9") == (200, {"i": 9, "thread": HANDLER_THREAD})



def test_the_sync_lane_answers_as_the_task_path_does(gw: Gateway) -> None:
    """Plain `def handler(req)` routes: plain answers straight from the handler thread's
    result; exceptions (HTTPException, an app exception handler, a crash), a body larger
    than one ring record, a response with background work and HEAD the same as an async
    route gets them."""
    status, _, body = fetch(gw, "GET", "/lane/thread")
    assert status == 200 and json.loads(body)["path"] == "/lane/thread"
    status, headers, body = fetch(gw, "HEAD", "/lane/thread")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0
    status, _, body = fetch(gw, "GET", "/lane/teapot")
    assert status == 418 and b"short and stout" in body
    assert fetch(gw, "GET", "/lane/lookup")[0::2] == (409, b"handled: 'nothing here'")
    status, _, body = fetch(gw, "GET", "/lane/crash")
    assert status == 500 and b"failed" not in body  # no traceback to the client
    status, headers, body = fetch(gw, "GET", "/lane/big")
    assert status == 200 and body == bytes(range(256)) * (12 << 10)
    assert fetch(gw, "GET", "/lane/background")[0::2] == (200, b"later")
    deadline = time.monotonic() + WAIT_S
    while not json.loads(fetch(gw, "GET", "/lane/background-ran")[2])["ran"]:
        assert time.monotonic() < deadline, "the background task never ran"
        time.sleep(0.01)


def test_a_def_handler_declared_sync_to_thread_false_runs_on_the_loop(gw: Gateway) -> None:
    """sync_to_thread=False: the worker's main thread (its event loop) runs the handler,
    with path parameters and HTTPException as for any route, whatever the spill setting."""
    assert _get(gw, "/inline/7") == (200, {"i": 7, "thread": "MainThread"})
    status, _, body = fetch(gw, "GET", "/inline-teapot")
    assert status == 418 and b"short and stout" in body
