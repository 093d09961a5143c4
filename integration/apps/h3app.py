"""App served by the HTTP/3 integration tests (integration/h3_test.go)."""

from __future__ import annotations

import base64

from covet import Covet, HTMLResponse, Request, Response

app = Covet("h3app")

# A 1x1 transparent PNG.
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)

PAGE = """<!doctype html>
<html><head><title>h3</title></head>
<body>
<p id="proto">served over {version}</p>
<img id="pixel" src="/pixel.png" alt="pixel">
<p id="out">script not run</p>
<script src="/app.js"></script>
</body></html>
"""

SCRIPT = """
var img = document.getElementById('pixel');
function done() {
  document.getElementById('out').textContent =
    'script loaded; image ' + (img.naturalWidth === 1 ? 'loaded' : 'missing');
}
if (img.complete) { done(); } else { img.onload = done; img.onerror = done; }
"""


@app.get("/hello")
async def hello(req: Request) -> str:
    return "hello"


@app.get("/version")
async def version(req: Request) -> str:
    return req.http_version


@app.post("/echo")
async def echo(req: Request) -> Response:
    body = await req.body()
    return Response(body, media_type="application/octet-stream", headers={"x-version": req.http_version})


@app.get("/page")
async def page(req: Request) -> HTMLResponse:
    return HTMLResponse(PAGE.format(version=req.http_version))


@app.get("/app.js")
async def script(req: Request) -> Response:
    return Response(SCRIPT, media_type="text/javascript")


@app.get("/pixel.png")
async def pixel(req: Request) -> Response:
    return Response(PIXEL, media_type="image/png")
