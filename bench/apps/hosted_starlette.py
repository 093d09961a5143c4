"""bench/hosting.py's Starlette app, the same under CovetPy (`--interface asgi`),
uvicorn and Granian: a plaintext GET, a JSON GET with a path parameter, a JSON POST
echoed back."""

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from hosted_common import PLAINTEXT, USERS


async def plaintext(request):
    return PlainTextResponse(PLAINTEXT)


async def user(request):
    found = USERS.get(request.path_params["user_id"])
    if found is None:
        return JSONResponse({"detail": "no such user"}, status_code=404)
    return JSONResponse(found)


async def echo(request):
    return JSONResponse(await request.json())


app = Starlette(routes=[
    Route("/plaintext", plaintext),
    Route("/users/{user_id:int}", user),
    Route("/echo", echo, methods=["POST"]),
])
