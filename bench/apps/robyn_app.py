"""Robyn: the bench workloads. Run as `python robyn_app.py --processes N --workers 1`
with ROBYN_HOST / ROBYN_PORT in the environment."""

import asyncio
import json

from robyn import Headers, Response, Robyn

from common import BODY_1M, BODY_10K, JSON_MESSAGE, PLAINTEXT, SLEEP_S, SLEPT

app = Robyn(__file__)

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
OCTET = "application/octet-stream"


def _resp(ctype, body):
    return Response(status_code=200, headers=Headers({"Content-Type": ctype}), description=body)


@app.get("/plaintext")
async def plaintext(request):
    return _resp(TEXT, PLAINTEXT)


@app.get("/json")
async def json_(request):
    return _resp(JSON, json.dumps(JSON_MESSAGE, separators=(",", ":")))


@app.get("/users/:id")
async def user(request):
    return _resp(JSON, json.dumps({"id": int(request.path_params["id"])}, separators=(",", ":")))


@app.get("/10k")
async def ten_k(request):
    return _resp(OCTET, BODY_10K)


@app.get("/1m")
async def one_m(request):
    return _resp(OCTET, BODY_1M)


@app.post("/echo")
async def echo(request):
    body = request.body
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogateescape")
    return _resp(OCTET, body)


@app.get("/sleep")
async def sleep(request):
    await asyncio.sleep(SLEEP_S)
    return _resp(TEXT, SLEPT)


if __name__ == "__main__":
    app.start(_check_port=False)
