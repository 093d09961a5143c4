"""Starlette (served by uvicorn): the upload bench's handler (bench/upload.py)."""

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


async def hello(request):
    return PlainTextResponse("hello")


async def upload(request):
    n = 0
    async for chunk in request.stream():
        n += len(chunk)
    return JSONResponse({"bytes": n})


app = Starlette(routes=[Route("/hello", hello), Route("/upload", upload, methods=["POST"])])
