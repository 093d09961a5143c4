"""FastAPI (served by uvicorn): the bench workloads, written the idiomatic FastAPI way."""

import asyncio

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from common import BODY_1M, BODY_10K, JSON_MESSAGE, PLAINTEXT, SLEEP_S, SLEPT

OCTET = "application/octet-stream"

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/plaintext", response_class=PlainTextResponse)
async def plaintext():
    return PlainTextResponse(PLAINTEXT)


@app.get("/json")
async def json_():
    return JSON_MESSAGE


@app.get("/users/{id}")
async def user(id: int):
    return {"id": id}


@app.get("/10k")
async def ten_k():
    return Response(BODY_10K, media_type=OCTET)


@app.get("/1m")
async def one_m():
    return Response(BODY_1M, media_type=OCTET)


@app.post("/echo")
async def echo(request: Request):
    return Response(await request.body(), media_type=OCTET)


@app.get("/sleep", response_class=PlainTextResponse)
async def sleep():
    await asyncio.sleep(SLEEP_S)
    return PlainTextResponse(SLEPT)
