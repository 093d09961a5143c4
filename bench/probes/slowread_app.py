"""The app bench/probes/slowread.py drives: a 5 MB response made per request."""

from covet import Covet, PlainTextResponse, Request, Response

app = Covet("slowread")

FIVE_MB = 5 * 1000 * 1000


@app.get("/5mb")
async def five_mb(req: Request) -> Response:
    # A fresh body per request, as generated content is: the worker holds it until
    # the gateway has taken it.
    return Response(b"x" * FIVE_MB, media_type="application/octet-stream")


@app.get("/hello")
async def hello(req: Request) -> PlainTextResponse:
    return PlainTextResponse(b"hello")
