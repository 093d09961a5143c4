"""A raw RSGI app (Granian's native interface), no framework."""

import asyncio
import json

from common import BODY_1M, BODY_10K, JSON_MESSAGE, PLAINTEXT, SLEEP_S, SLEPT

TEXT = [("content-type", "text/plain; charset=utf-8")]
JSON = [("content-type", "application/json")]
OCTET = [("content-type", "application/octet-stream")]
STATIC = {
    "/plaintext": (TEXT, PLAINTEXT),
    "/10k": (OCTET, BODY_10K),
    "/1m": (OCTET, BODY_1M),
}


async def app(scope, proto):
    if scope.proto != "http":
        return
    path, method = scope.path, scope.method
    if method == "GET":
        if path == "/json":
            return proto.response_bytes(200, JSON, json.dumps(JSON_MESSAGE, separators=(",", ":")).encode())
        hit = STATIC.get(path)
        if hit is not None:
            return proto.response_bytes(200, *hit)
        if path.startswith("/users/"):
            tail = path[7:]
            if tail.isdigit():
                return proto.response_bytes(200, JSON, json.dumps({"id": int(tail)}, separators=(",", ":")).encode())
        elif path == "/sleep":
            await asyncio.sleep(SLEEP_S)
            return proto.response_bytes(200, TEXT, SLEPT)
    elif method == "POST" and path == "/echo":
        return proto.response_bytes(200, OCTET, await proto())
    proto.response_bytes(404, TEXT, b"Not Found")
