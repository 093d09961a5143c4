"""Rate limits end to end: real bin/covet-gateway processes, real Python workers
(ratelimit_app.py), a real redis-server on a free loopback port, http.client.

- 429 with Retry-After and the RateLimit-Policy / RateLimit fields once a route's
  limit is used up; refused requests never reach the worker;
- a limit counted per request header (rate_limit_key="header:X-API-Key");
- rate_limit_default for routes that set none, "none" exempting a route;
- 100/s +- 5% from one gateway in memory, and from one and from two gateways
  sharing one Redis;
- Redis killed: rate_limit_redis_failure open admits (and counts the failure in
  /metrics), closed answers 503 with Retry-After.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Gateway, _free_port, serving_gateway


def _request(gw: Gateway, method: str, path: str, **headers: str) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = http.client.HTTPConnection(gw.host, gw.port, timeout=10)
    try:
        conn.request(method, path, headers={k.replace("_", "-"): v for k, v in headers.items()})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def _ready(gw: Gateway) -> bool:
    try:
        return _request(gw, "GET", "/ready")[0] == 200
    except OSError:
        return False


def _handled(gw: Gateway, name: str) -> int:
    status, _, body = _request(gw, "GET", f"/handled/{name}")
    assert status == 200, body
    return int(json.loads(body)["count"])


# --- redis-server -----------------------------------------------------------------


def _redis_bin() -> str:
    """$COVET_REDIS_SERVER (the Makefile sets it: then a missing server fails), else
    redis-server on PATH, else the test skips, saying why."""
    want = os.environ.get("COVET_REDIS_SERVER")
    found = shutil.which(want or "redis-server")
    if found is None:
        if want:
            pytest.fail(f"COVET_REDIS_SERVER={want} is not an executable")
        pytest.skip("redis-server is not installed (Debian package redis-server; make test-integration installs it)")
    return found


class Redis:
    """A redis-server on a free loopback port, without persistence."""

    def __init__(self, log: Path) -> None:
        self.bin, self.port, self.log = _redis_bin(), _free_port(), log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [self.bin, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 10
        while not self.ping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"redis-server did not start:\n{self.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Redis]:
    r = Redis(tmp_path / "redis.log")
    r.start()
    try:
        yield r
    finally:
        r.stop()


@contextlib.contextmanager
def _gateway(tmp_path: Path, name: str, *flags: str) -> Iterator[Gateway]:
    with serving_gateway(tmp_path / f"{name}.log", "rlapp", "ratelimit_app", 1, _ready, list(flags)) as gw:
        yield gw


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway, limits in memory, rate_limit_default 3/minute."""
    with _gateway(tmp_path_factory.mktemp("rl"), "memory", "--rate-limit-default", "3/minute") as g:
        yield g


# --- in memory --------------------------------------------------------------------


def test_429_with_retry_after_and_ratelimit_fields(gw: Gateway) -> None:
    for remaining in (4, 3, 2, 1, 0):
        status, h, body = _request(gw, "POST", "/login")
        assert (status, body) == (200, b"ok")
        assert h["RateLimit-Policy"] == '"5/minute";q=5;w=60'
        m = re.fullmatch(r'"5/minute";r=(\d+);t=(\d+)', h["RateLimit"])
        assert m and int(m[1]) == remaining and 1 <= int(m[2]) <= 60, h["RateLimit"]
    status, h, _ = _request(gw, "POST", "/login")
    assert status == 429
    assert 1 <= int(h["Retry-After"]) <= 12  # one request per 12 s after the burst
    assert h["RateLimit-Policy"] == '"5/minute";q=5;w=60'
    assert re.fullmatch(r'"5/minute";r=0;t=(\d+)', h["RateLimit"]), h["RateLimit"]
    assert _handled(gw, "login") == 5  # the 429 never reached the worker


def test_keyed_by_header(gw: Gateway) -> None:
    for _ in range(3):
        assert _request(gw, "GET", "/keyed", X_API_Key="alpha")[0] == 200
    status, h, _ = _request(gw, "GET", "/keyed", X_API_Key="alpha")
    assert status == 429 and int(h["Retry-After"]) >= 1
    # Another key has its own budget; the header name is matched without regard to case.
    assert _request(gw, "GET", "/keyed", x_api_key="beta")[0] == 200
    # Without the header the client address is the key: a budget of its own, not alpha's.
    for _ in range(3):
        assert _request(gw, "GET", "/keyed")[0] == 200
    assert _request(gw, "GET", "/keyed")[0] == 429
    assert _handled(gw, "keyed") == 3 + 1 + 3


def test_default_limit_and_none(gw: Gateway) -> None:
    for _ in range(3):
        status, h, _ = _request(gw, "GET", "/default")
        assert status == 200 and h["RateLimit-Policy"] == '"3/minute";q=3;w=60'
    assert _request(gw, "GET", "/default")[0] == 429
    for _ in range(10):  # rate_limit="none": exempt from the default
        status, h, _ = _request(gw, "GET", "/ready")
        assert status == 200 and "RateLimit" not in h and "RateLimit-Policy" not in h


# --- shared through Redis ---------------------------------------------------------


def _hammer(gws: list[Gateway], path: str, seconds: float, threads_each: int = 3) -> tuple[list[int], list[int]]:
    """Send GET path to each gateway from threads_each keep-alive connections apiece,
    as fast as they go, for seconds; return the 200s each gateway gave, and the 200s
    in each whole second (by when the request was sent; for information: a loaded
    machine's pauses shift admissions from one second to the next)."""
    ok = [0] * len(gws)
    per_second = [0] * int(seconds + 1)
    other: list[int] = []
    lock = threading.Lock()
    start = time.monotonic()
    end = start + seconds

    def run(i: int) -> None:
        conn = http.client.HTTPConnection(gws[i].host, gws[i].port, timeout=10)
        sent: list[float] = []
        try:
            while (t := time.monotonic()) < end:
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    sent.append(t - start)
                elif resp.status != 429:
                    other.append(resp.status)
        finally:
            conn.close()
            with lock:
                ok[i] += len(sent)
                for t in sent:
                    per_second[int(t)] += 1

    ts = [threading.Thread(target=run, args=(i,)) for i in range(len(gws)) for _ in range(threads_each)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not other, f"statuses other than 200 and 429: {sorted(set(other))}"
    return ok, per_second[: int(seconds)]


def _drain(gw: Gateway, path: str) -> None:
    """Use up path's burst, so that what follows is admitted at the steady rate."""
    for _ in range(1000):
        if _request(gw, "GET", path)[0] == 429:
            return
    pytest.fail("the burst never ran out")


W = 3  # seconds of load in the accuracy tests
LO, HI = 100 * W * 95 // 100, 100 * W * 105 // 100  # 100/s +- 5%


def test_accuracy_one_gateway_in_memory(gw: Gateway) -> None:
    """100/s counted in the gateway's memory: after the burst, 100 per second +- 5%
    over W seconds. Pauses of a loaded machine do not lose admissions: GCRA makes up
    missed slots up to the burst (1 s here), so the bound holds unless a whole second
    is lost at the very end."""
    _drain(gw, "/fast")
    got, per_second = _hammer([gw], "/fast", W)
    print(f"100/s over {W} s, one gateway, in memory: {got[0]} (per second {per_second})")
    assert LO <= got[0] <= HI, f"admitted {got[0]} in {W} s, want {LO}..{HI}"


@pytest.mark.parametrize("n", [1, 2])
def test_accuracy_gateways_sharing_redis(tmp_path: Path, redis: Redis, n: int) -> None:
    """100/s counted by client address (every client is 127.0.0.1) in one Redis, over
    n gateways: after the burst, 100 per second +- 5% together over W seconds."""
    flags = ("--rate-limit-redis", redis.url, "--rate-limit-redis-timeout", "1s")
    with contextlib.ExitStack() as stack:
        gws = [stack.enter_context(_gateway(tmp_path, f"gw{i}", *flags)) for i in range(n)]
        _drain(gws[0], "/fast")
        got, per_second = _hammer(gws, "/fast", W)
        total = sum(got)
        print(f"100/s over {W} s through {n} gateway(s) sharing one Redis: {' + '.join(map(str, got))} = {total}"
              f" (per second {per_second})")  # fmt: skip
        assert LO <= total <= HI, f"admitted {got} = {total} in {W} s, want {LO}..{HI}"
        assert min(got) > 0, f"a gateway admitted nothing: {got}"


def _metric(gw_admin: tuple[str, int], name: str, label: str) -> float:
    conn = http.client.HTTPConnection(*gw_admin, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    m = re.search(rf"^{name}{{{label}}} (\S+)$", text, re.M)
    return float(m[1]) if m else 0.0


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_redis_down(tmp_path: Path, redis: Redis, mode: str) -> None:
    admin = ("127.0.0.1", _free_port())
    flags = ("--rate-limit-redis", redis.url, "--rate-limit-redis-failure", mode,
             "--admin-listen", f"{admin[0]}:{admin[1]}")  # fmt: skip
    with _gateway(tmp_path, mode, *flags) as gw:
        status, h, _ = _request(gw, "POST", "/login")
        assert status == 200 and re.fullmatch(r'"5/minute";r=4;t=\d+', h["RateLimit"])
        redis.stop()
        statuses = []
        for _ in range(20):
            status, h, body = _request(gw, "POST", "/login")
            statuses.append(status)
            if mode == "closed":
                assert status == 503 and int(h["Retry-After"]) >= 1, (status, body)
        if mode == "open":
            # More than the limit's 5, all admitted: nothing can count them.
            assert statuses == [200] * 20
        assert _metric(admin, "covet_rate_limit_store_errors_total", f'mode="{mode}"') == 20
        # Redis back (same port, empty): decisions through it again, within the
        # breaker's longest pause (5 s).
        redis.start()
        deadline = time.monotonic() + 15
        while True:
            status, h, _ = _request(gw, "POST", "/login")
            if status == 200 and "RateLimit" in h:
                break
            assert time.monotonic() < deadline, f"no decision through the restarted Redis: {status} {dict(h)}"
            time.sleep(0.1)
