"""Starlette (served by uvicorn): the bench workloads, and bench/ws.py's WebSocket echo at
/ws/echo as a WebSocketEndpoint."""

import asyncio

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.endpoints import WebSocketEndpoint
from starlette.routing import Route, WebSocketRoute

from common import BODY_1M, BODY_10K, JSON_MESSAGE, PLAINTEXT, SLEEP_S, SLEPT

OCTET = "application/octet-stream"


async def plaintext(request):
    return PlainTextResponse(PLAINTEXT)


async def json_(request):
    return JSONResponse(JSON_MESSAGE)


def json_sync(request):
    """/json from a sync endpoint: Starlette runs it in its thread pool (anyio)."""
    return JSONResponse(JSON_MESSAGE)


async def user(request):
    return JSONResponse({"id": request.path_params["id"]})


async def ten_k(request):
    return Response(BODY_10K, media_type=OCTET)


async def one_m(request):
    return Response(BODY_1M, media_type=OCTET)


async def echo(request):
    return Response(await request.body(), media_type=OCTET)


async def sleep(request):
    await asyncio.sleep(SLEEP_S)
    return PlainTextResponse(SLEPT)


class WsEcho(WebSocketEndpoint):
    """Every message back as it came. decode is overridden because the default one (no
    encoding) takes an empty text message for a binary one and fails on it."""

    async def decode(self, websocket, message):
        text = message.get("text")
        return text if text is not None else message["bytes"]

    async def on_receive(self, websocket, data):
        if isinstance(data, str):
            await websocket.send_text(data)
        else:
            await websocket.send_bytes(data)


app = Starlette(routes=[
    Route("/plaintext", plaintext),
    Route("/json", json_),
    Route("/json-sync", json_sync),
    Route("/users/{id:int}", user),
    Route("/10k", ten_k),
    Route("/1m", one_m),
    Route("/echo", echo, methods=["POST"]),
    Route("/sleep", sleep),
    WebSocketRoute("/ws/echo", WsEcho),
])
