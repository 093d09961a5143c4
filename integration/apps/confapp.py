"""App served to h2spec by the HTTP/2 conformance test (integration/conformance_test.go).

h2spec sends its requests to / with GET, HEAD and POST (some with bodies, some
with trailers); /hello is what the test harness waits on; /slow and /slow/count
serve the Rapid Reset test (integration/conformance_test.go).
"""

from __future__ import annotations

import asyncio

from covet import Covet, Request

app = Covet("confapp")


@app.get("/hello")
async def hello(req: Request) -> str:
    return "hello"


@app.route("/", ["GET", "HEAD"])
async def index(req: Request) -> str:
    return "conformance"


@app.post("/")
async def post(req: Request) -> str:
    body = await req.body()
    return f"received {len(body)} bytes"


slow_calls = 0  # requests /slow has begun, in this worker


@app.get("/slow")
async def slow(req: Request) -> str:
    """Counts its calls, then waits: the Rapid Reset test resets it at once."""
    global slow_calls
    slow_calls += 1
    await asyncio.sleep(5)
    return "slow"


@app.get("/slow/count")
async def slow_count(req: Request) -> str:
    return str(slow_calls)
