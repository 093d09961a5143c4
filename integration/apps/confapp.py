"""App served to h2spec by the HTTP/2 conformance test (integration/conformance_test.go).

h2spec sends its requests to / with GET, HEAD and POST (some with bodies, some
with trailers); /hello is what the test harness waits on.
"""

from __future__ import annotations

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
