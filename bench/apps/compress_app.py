"""bench/compress.py's CovetPy app: fixed bodies for the gateway to compress
(compression: gzip,zstd), and /plaintext for the readiness check."""

from covet import Covet, PlainTextResponse, Request, Response
from compress_bodies import BODIES

app = Covet("bench")

JSON64K, JSON_TYPE = BODIES["json64k"]
HTML1M, HTML_TYPE = BODIES["html1m"]


@app.get("/plaintext")
async def plaintext(req: Request):
    return PlainTextResponse(b"Hello, World!")


@app.get("/json64k")
async def json64k(req: Request):
    return Response(JSON64K, media_type=JSON_TYPE)


@app.get("/html1m")
async def html1m(req: Request):
    return Response(HTML1M, media_type=HTML_TYPE)
