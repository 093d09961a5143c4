"""What each feature of the typed-handler SDK (issue 23) costs per request over a plain
handler, in process (no sockets, no gateway): CovetPy's ``app._handle`` side by side
with FastAPI's ASGI app. Part of `make bench-sdk` (after bench/sdk.py) and `make bench`:

    .venv/bin/python bench/sdk_features.py                 # 7 rounds x 5,000 requests a row
    BENCH_QUICK=1 .venv/bin/python bench/sdk_features.py   # 3 rounds x 1,000

Run by the repo's .venv python (the SDK as checked out, and pydantic for its row). One
app per framework has a route per feature (FEATURES below); the middleware row has an
app of its own, since a middleware wraps every route. Each row's request is built once:
for CovetPy a RequestHead as the worker decodes it from the gateway, handed to
``await app._handle(head, body)`` with the body as a one-chunk source, then the
response's ``background`` (background tasks, dependencies' cleanup) awaited, as the
worker does once the response is handed to the gateway; for FastAPI an ASGI scope
called with a receive that gives the body and a send that keeps the answer (its
background tasks and cleanup run inside that call). Every row's answer (status and
JSON; a task that ran, a cleanup that ran) is checked before it is timed.

Timing: BENCH_FEATURE_ROUNDS interleaved rounds (the rows' order rotated per round),
each timing BENCH_FEATURE_REQUESTS requests of every row back to back with
time.perf_counter_ns, after one unmeasured batch of a tenth of that. µs/request: the
median over the rounds; +µs: that minus the plain row's. The event loop is the
worker's: uvloop when installed. FastAPI runs in a second process, bench/.venv's python
(BENCH_VENV), after CovetPy's rows: `python bench/sdk_features.py --fastapi` prints its
rows as JSON.

Printed and written to bench/RESULTS-sdk-features.md (BENCH_SDK_FEATURES_RESULTS).
"""

import asyncio
import contextlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH / "apps"))
import run as R  # noqa: E402  (bench/run.py: settings, machine facts)
from sdk_common import ITEM_BODY, SortKey  # noqa: E402

ROUNDS = int(R.env_num("BENCH_FEATURE_ROUNDS", 3 if R.QUICK else 7))
REQUESTS = int(R.env_num("BENCH_FEATURE_REQUESTS", 1000 if R.QUICK else 5000))
RESULTS_MD = Path(os.environ.get("BENCH_SDK_FEATURES_RESULTS", str(BENCH / "RESULTS-sdk-features.md")))
OK = {"ok": True}
JSON = ("content-type", b"application/json")


@dataclass(frozen=True)
class Feature:
    name: str
    describe: str
    method: str = "GET"
    query: str = ""
    headers: tuple[tuple[str, bytes], ...] = ()
    body: bytes = b""
    status: int = 200
    path: str = ""  # default: /NAME

    @property
    def route(self) -> str:
        return self.path or f"/{self.name}"


FEATURES = [
    Feature("plain", "`async def h(req)` returning a dict (FastAPI: `async def h()`)"),
    Feature("query", "3 query parameters: `q: str, limit: int = 10, sort: SortKey = ...` (an Enum)",
            query="q=lamp&limit=20&sort=price"),
    Feature("header", "`x_token: Annotated[str, Header()]`", headers=(("x-token", b"secret-token"),)),
    Feature("cookie", "`session: Annotated[str, Cookie()]`", headers=(("cookie", b"session=abc123; theme=dark"),)),
    Feature("struct-body", f"a 10-field msgspec Struct body ({len(ITEM_BODY)} bytes of JSON; FastAPI: n/a)",
            "POST", headers=(JSON,), body=ITEM_BODY),
    Feature("pydantic-body", "the same body into a pydantic model", "POST", headers=(JSON,), body=ITEM_BODY),
    Feature("depends-async", "one `Depends(async def)`"),
    Feature("depends-sync", "one `Depends(def)` (run in the thread pool)"),
    Feature("depends-asyncgen", "one `Depends` on an async generator (cleanup after the response)"),
    Feature("depends-gen", "one `Depends` on a sync generator (thread pool; cleanup after the response)"),
    Feature("depends-nested", "3 nested async `Depends` (c needs b needs a)"),
    Feature("background", "a `BackgroundTasks` parameter, one async no-op task added and run"),
    Feature("middleware", "one `@app.middleware(\"http\")` passing through (`return await call_next(req)`) "
            "around a plain handler", path="/plain"),
    Feature("response-model", "`response_model=` a 1-field type; the handler returns a dict with one more key"),
    Feature("status-code", "`@app.post(..., status_code=201)`", "POST", status=201),
    Feature("return-struct", "returns a msgspec Struct (FastAPI: a pydantic model)"),
]


class Counters:
    """How many background tasks and dependency cleanups ran: the checks' evidence."""

    tasks = 0
    cleanups = 0


async def noop_task() -> None:
    Counters.tasks += 1


def ok(bound_right: bool) -> dict[str, bool]:
    """A handler's answer: OK when its parameters were bound to the values its request
    sent, else {"ok": false} (which the check reports)."""
    return OK if bound_right else {"ok": False}


# --------------------------------------------------------------------------- CovetPy


def covet_apps() -> tuple[Any, Any]:
    """(the app with a route per feature, the app with one middleware and /plain)."""
    import msgspec

    from covet import BackgroundTasks, Cookie, Covet, Depends, Header, Request
    from sdk_covet import Item

    app, mw_app = Covet("features"), Covet("middleware")

    class Out(msgspec.Struct):
        ok: bool

    async def dep_a() -> int:
        return 1

    def dep_sync() -> int:
        return 1

    async def dep_asyncgen() -> Any:
        try:
            yield 1
        finally:
            Counters.cleanups += 1

    def dep_gen() -> Any:
        try:
            yield 1
        finally:
            Counters.cleanups += 1

    async def dep_b(a: Annotated[int, Depends(dep_a)]) -> int:
        return a + 1

    async def dep_c(b: Annotated[int, Depends(dep_b)]) -> int:
        return b + 1

    @app.get("/plain")
    async def plain(req):
        return OK

    @mw_app.get("/plain")
    async def plain_mw(req):
        return OK

    @mw_app.middleware("http")
    async def passthrough(req: Request, call_next):
        return await call_next(req)

    @app.get("/query")
    async def query(q: str, limit: int = 10, sort: SortKey = SortKey.relevance):
        return ok(q == "lamp" and limit == 20 and sort is SortKey.price)

    @app.get("/header")
    async def header(x_token: Annotated[str, Header()]):
        return ok(x_token == "secret-token")

    @app.get("/cookie")
    async def cookie(session: Annotated[str, Cookie()]):
        return ok(session == "abc123")

    @app.post("/struct-body")
    async def struct_body(item: Item):
        return ok(item.dimensions.depth == 2.0)

    with contextlib.suppress(ImportError):
        from sdk_pydantic import Item as ItemModel

        @app.post("/pydantic-body")
        async def pydantic_body(item: ItemModel):
            return ok(item.dimensions.depth == 2.0)

    @app.get("/depends-async")
    async def depends_async(v: Annotated[int, Depends(dep_a)]):
        return ok(v == 1)

    @app.get("/depends-sync")
    async def depends_sync(v: Annotated[int, Depends(dep_sync)]):
        return ok(v == 1)

    @app.get("/depends-asyncgen")
    async def depends_asyncgen(v: Annotated[int, Depends(dep_asyncgen)]):
        return ok(v == 1)

    @app.get("/depends-gen")
    async def depends_gen(v: Annotated[int, Depends(dep_gen)]):
        return ok(v == 1)

    @app.get("/depends-nested")
    async def depends_nested(v: Annotated[int, Depends(dep_c)]):
        return ok(v == 3)

    @app.get("/background")
    async def background(tasks: BackgroundTasks):
        tasks.add_task(noop_task)
        return ok(len(tasks.tasks) == 1)

    @app.get("/response-model", response_model=Out)
    async def response_model(req):
        return {"ok": True, "dropped": 1}

    @app.post("/status-code", status_code=201)
    async def status_code(req):
        return OK

    @app.get("/return-struct")
    async def return_struct(req):
        return Out(ok=True)

    app.freeze()
    mw_app.freeze()
    return app, mw_app


class OneChunk:
    """A request body source that yields ``data`` once (as the worker's does for a body
    that came in one record)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data: bytes | None = data

    def __aiter__(self) -> "OneChunk":
        return self

    async def __anext__(self) -> bytes:
        data, self.data = self.data, None
        if not data:
            raise StopAsyncIteration
        return data


def covet_calls() -> tuple[dict[str, Callable[[], Awaitable[tuple[int, bytes]]]], dict[str, str]]:
    """One request-making coroutine function per feature the app serves, and why the
    others are not run."""
    from covet._head import RequestHead

    app, mw_app = covet_apps()
    calls: dict[str, Callable[[], Awaitable[tuple[int, bytes]]]] = {}
    missing: dict[str, str] = {}
    for f in FEATURES:
        target = mw_app if f.name == "middleware" else app
        if target.router.lookup(f.method, f.route) is None:
            missing[f.name] = "pydantic not installed" if f.name == "pydantic-body" else "no route"
            continue
        flat: list[Any] = [x for pair in f.headers for x in pair]
        if f.body:
            flat += ["content-length", str(len(f.body)).encode()]
        head = RequestHead.from_wire([f.method, f.route, f.query, flat, f.route, [], "1.1", "http",
                                      "127.0.0.1:40000", "bench-1", len(f.body), 0])

        def call(target: Any = target, head: Any = head, body: bytes = f.body) -> Awaitable[tuple[int, bytes]]:
            return covet_one(target, head, body)

        calls[f.name] = call
    return calls, missing


async def covet_one(app: Any, head: Any, body: bytes) -> tuple[int, bytes]:
    response = await app._handle(head, OneChunk(body))
    if response.background is not None:
        await response.background()
    return response.status, response.body


# --------------------------------------------------------------------------- FastAPI


def fastapi_calls() -> tuple[dict[str, Callable[[], Awaitable[tuple[int, bytes]]]], dict[str, str]]:
    from fastapi import BackgroundTasks, Cookie, Depends, FastAPI, Header
    from pydantic import BaseModel

    from sdk_pydantic import Item as ItemModel

    app, mw_app = FastAPI(), FastAPI()

    class Out(BaseModel):
        ok: bool

    async def dep_a() -> int:
        return 1

    def dep_sync() -> int:
        return 1

    async def dep_asyncgen() -> Any:
        try:
            yield 1
        finally:
            Counters.cleanups += 1

    def dep_gen() -> Any:
        try:
            yield 1
        finally:
            Counters.cleanups += 1

    async def dep_b(a: Annotated[int, Depends(dep_a)]) -> int:
        return a + 1

    async def dep_c(b: Annotated[int, Depends(dep_b)]) -> int:
        return b + 1

    @app.get("/plain")
    async def plain():
        return OK

    @mw_app.get("/plain")
    async def plain_mw():
        return OK

    @mw_app.middleware("http")
    async def passthrough(request, call_next):
        return await call_next(request)

    @app.get("/query")
    async def query(q: str, limit: int = 10, sort: SortKey = SortKey.relevance):
        return ok(q == "lamp" and limit == 20 and sort is SortKey.price)

    @app.get("/header")
    async def header(x_token: Annotated[str, Header()]):
        return ok(x_token == "secret-token")

    @app.get("/cookie")
    async def cookie(session: Annotated[str, Cookie()]):
        return ok(session == "abc123")

    @app.post("/pydantic-body")
    async def pydantic_body(item: ItemModel):
        return ok(item.dimensions.depth == 2.0)

    @app.get("/depends-async")
    async def depends_async(v: Annotated[int, Depends(dep_a)]):
        return ok(v == 1)

    @app.get("/depends-sync")
    async def depends_sync(v: Annotated[int, Depends(dep_sync)]):
        return ok(v == 1)

    @app.get("/depends-asyncgen")
    async def depends_asyncgen(v: Annotated[int, Depends(dep_asyncgen)]):
        return ok(v == 1)

    @app.get("/depends-gen")
    async def depends_gen(v: Annotated[int, Depends(dep_gen)]):
        return ok(v == 1)

    @app.get("/depends-nested")
    async def depends_nested(v: Annotated[int, Depends(dep_c)]):
        return ok(v == 3)

    @app.get("/background")
    async def background(tasks: BackgroundTasks):
        tasks.add_task(noop_task)
        return ok(len(tasks.tasks) == 1)

    @app.get("/response-model", response_model=Out)
    async def response_model():
        return {"ok": True, "dropped": 1}

    @app.post("/status-code", status_code=201)
    async def status_code():
        return OK

    @app.get("/return-struct")
    async def return_struct():
        return Out(ok=True)

    calls: dict[str, Callable[[], Awaitable[tuple[int, bytes]]]] = {}
    for f in FEATURES:
        if f.name == "struct-body":
            continue
        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
                 "method": f.method, "scheme": "http", "path": f.route, "raw_path": f.route.encode(),
                 "query_string": f.query.encode(), "root_path": "",
                 "headers": [(k.encode(), v) for k, v in f.headers]
                 + ([(b"content-length", str(len(f.body)).encode())] if f.body else []),
                 "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000)}
        target = mw_app if f.name == "middleware" else app

        def call(target: Any = target, scope: dict = scope, body: bytes = f.body) -> Awaitable[tuple[int, bytes]]:
            return asgi_one(target, scope, body)

        calls[f.name] = call
    return calls, {"struct-body": "n/a (FastAPI takes pydantic models)"}


async def asgi_one(app: Any, scope: dict, body: bytes) -> tuple[int, bytes]:
    """One request through an ASGI app: receive gives the body, then waits (a client that
    stays connected); send keeps the status and the body."""
    sent = False
    answer: list[Any] = [0, b""]

    async def receive() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # never set: cancelled when the app is done with it
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            answer[0] = message["status"]
        elif message["type"] == "http.response.body":
            answer[1] += message.get("body", b"")

    await app(dict(scope), receive, send)
    return answer[0], answer[1]


# --------------------------------------------------------------------------- timing


def check(name: str, status: int, body: bytes, tasks: int, cleanups: int) -> str | None:
    """None if the feature's one request answered as it must; else what was wrong."""
    f = next(f for f in FEATURES if f.name == name)
    if status != f.status:
        return f"status {status}, not {f.status}: {body[:200]!r}"
    try:
        got = json.loads(body)
    except ValueError:
        return f"not JSON: {body[:200]!r}"
    if got != OK:
        return f"answered {got!r}, not {OK!r}"
    if name == "background" and Counters.tasks != tasks + 1:
        return "the background task did not run"
    if name in ("depends-asyncgen", "depends-gen") and Counters.cleanups != cleanups + 1:
        return "the dependency's cleanup did not run"
    return None


async def measure(calls: dict[str, Callable[[], Awaitable[tuple[int, bytes]]]]) -> tuple[dict[str, list[float]], dict[str, str]]:
    """µs per request of each row, one figure per round; and the rows whose check failed."""
    wrong: dict[str, str] = {}
    for name, call in calls.items():
        tasks, cleanups = Counters.tasks, Counters.cleanups
        status, body = await call()
        why = check(name, status, body, tasks, cleanups)
        if why:
            wrong[name] = f"WRONG: {why}"
    rows = [n for n in calls if n not in wrong]
    for name in rows:  # warm-up: caches, the thread pool's threads, lazily built stacks
        for _ in range(max(REQUESTS // 10, 1)):
            await calls[name]()
    times: dict[str, list[float]] = {n: [] for n in rows}
    for rnd in range(ROUNDS):
        k = rnd % len(rows) if rows else 0
        for name in rows[k:] + rows[:k]:
            call = calls[name]
            t0 = time.perf_counter_ns()
            for _ in range(REQUESTS):
                await call()
            times[name].append((time.perf_counter_ns() - t0) / REQUESTS / 1000)
    return times, wrong


def new_loop() -> tuple[str, asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:
        return "asyncio", asyncio.new_event_loop()
    return "uvloop", uvloop.new_event_loop()


def run_rows(calls_of: Callable[[], tuple[dict, dict]]) -> dict[str, Any]:
    calls, missing = calls_of()
    loop_name, loop = new_loop()
    try:
        times, wrong = loop.run_until_complete(measure(calls))
    finally:
        loop.close()
    return {"times": times, "status": {**missing, **wrong}, "loop": loop_name,
            "python": sys.version.split()[0]}


def fastapi_rows() -> dict[str, Any]:
    """FastAPI's rows from bench/.venv's python (a process of its own), or why not."""
    if not R.VPY.exists():
        return {"times": {}, "status": {}, "why": f"{R.shown(R.VENV)} missing"}
    r = subprocess.run([str(R.VPY), str(Path(__file__).resolve()), "--fastapi"], capture_output=True, text=True,
                       env={k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"})
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
        return {"times": {}, "status": {}, "why": f"failed: {tail[:300]}"}
    out = json.loads(r.stdout)
    out["versions"] = R.cmd_out([str(R.VPY), "-c", "import fastapi, pydantic, starlette; print(f'FastAPI "
                                 "{fastapi.__version__}, Starlette {starlette.__version__}, pydantic {pydantic.VERSION}')"])
    return out


# --------------------------------------------------------------------------- report


def table(covet: dict[str, Any], fastapi: dict[str, Any]) -> str:
    L = ["| feature | CovetPy µs/req | CovetPy +µs | FastAPI µs/req | FastAPI +µs | what |",
         "|---|---:|---:|---:|---:|---|"]

    def cells(res: dict[str, Any], name: str) -> str:
        t = res["times"].get(name)
        if not t:
            return f"{res['status'].get(name) or res.get('why') or 'not run'} | "
        med = statistics.median(t)
        plain = res["times"].get("plain")
        extra = "" if name == "plain" or not plain else f"{med - statistics.median(plain):+.1f}"
        return f"{med:.1f} | {extra}"

    for f in FEATURES:
        L.append(f"| {f.name} | {cells(covet, f.name)} | {cells(fastapi, f.name)} | {f.describe} |")
    return "\n".join(L) + "\n"


def render(info: dict, covet: dict[str, Any], fastapi: dict[str, Any], elapsed: float) -> str:
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(os.environ.items())
                   if k.startswith("BENCH_") and k != "BENCH_SDK_FEATURES_RESULTS")
    spread = ", ".join(f"{n} {min(t):.1f}..{max(t):.1f}" for n, t in covet["times"].items())
    fa_spread = ", ".join(f"{n} {min(t):.1f}..{max(t):.1f}" for n, t in fastapi["times"].items())
    L = ["# The typed-handler SDK: what each feature costs per request\n",
         f"Generated by `bench/sdk_features.py` (`make bench-sdk`, `make bench`) on "
         f"{time.strftime('%Y-%m-%d %H:%M %Z')}; this file is rewritten by every run. Over HTTP, against FastAPI "
         "on uvicorn and Granian: bench/RESULTS-sdk.md.\n",
         f"Command: `{env + ' ' if env else ''}.venv/bin/python bench/sdk_features.py`\n"]
    if R.QUICK or ROUNDS < 5 or REQUESTS < 5000:
        L.append(f"> **Short run** ({ROUNDS} rounds x {REQUESTS:,} requests): indicative, not a settled result.\n")
    L += ["## Machine\n",
          f"- CPUs: {info['nproc']} x {info['cpu_model']}; load average at start {' '.join(info['loadavg'])}",
          f"- CovetPy {info['covet']}, {covet['loop']} event loop",
          f"- {fastapi.get('versions', 'FastAPI: not run')}, Python {fastapi.get('python', '?')}, "
          f"{fastapi.get('loop', '?')} event loop ({R.shown(R.VENV)})",
          "", "## Method\n",
          "- In process, no sockets and no gateway: CovetPy's `await app._handle(head, body)` (what the worker runs "
          "for each request) and then the response's background work; FastAPI's ASGI app called with a scope, a "
          "receive giving the body and a send keeping the answer (its background work runs inside that call). "
          "This is the framework's own cost per request: the HTTP parsing, the transport and the server loop "
          "are not in it (bench/RESULTS-sdk.md has them).",
          f"- {ROUNDS} interleaved rounds (the rows' order rotated per round), each timing {REQUESTS:,} requests "
          "of every row back to back; µs/req is the median over the rounds, +µs that minus the plain row's. "
          "Each row's answer is checked once before timing (status, JSON body; that the background task and "
          "the dependency cleanups ran).",
          "- Every handler returns `{\"ok\": true}` (response-model: through the model; return-struct: as a "
          "Struct / pydantic model), so a row differs from plain only by its feature. FastAPI's rows ran "
          "after CovetPy's, in their own process.",
          "", "## Per request\n", table(covet, fastapi),
          f"- Spread over the rounds (µs/req, min..max): CovetPy {spread or 'none'}; FastAPI {fa_spread or 'none'}.",
          f"- Elapsed: {elapsed:.0f} s.\n"]
    return "\n".join(L)


def main() -> int:
    if "--fastapi" in sys.argv:
        print(json.dumps(run_rows(fastapi_calls)))
        return 0
    t0 = time.time()
    info = R.machine_info(R.ensure_venv())  # bench/.venv: FastAPI's rows
    R.log(f"==> CovetPy: {len(FEATURES)} rows, {ROUNDS} rounds x {REQUESTS:,} requests")
    covet = run_rows(covet_calls)
    R.log(f"==> FastAPI ({R.shown(R.VPY)}): the same rows")
    fastapi = fastapi_rows()
    elapsed = time.time() - t0
    RESULTS_MD.write_text(render(info, covet, fastapi, elapsed))
    print()
    print(table(covet, fastapi))
    R.log(f"==> wrote {R.shown(RESULTS_MD)} ({elapsed:.0f} s)")
    bad = [f"CovetPy {n}: {v}" for n, v in covet["status"].items() if v.startswith("WRONG")]
    bad += [f"FastAPI {n}: {v}" for n, v in fastapi["status"].items() if v.startswith("WRONG")]
    if fastapi.get("why", "").startswith("failed"):
        bad.append(f"FastAPI: {fastapi['why']}")
    for b in bad:
        R.log(f"    {b}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
