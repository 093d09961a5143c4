"""A raw WSGI app (served by gunicorn's sync worker)."""

import json
import time

from common import BODY_1M, BODY_10K, JSON_MESSAGE, PLAINTEXT, SLEEP_S, SLEPT

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
OCTET = "application/octet-stream"


def app(environ, start_response):
    path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
    status, ctype, body = "404 Not Found", TEXT, b"Not Found"
    if method == "GET":
        if path == "/plaintext":
            status, ctype, body = "200 OK", TEXT, PLAINTEXT
        elif path == "/json":
            status, ctype, body = "200 OK", JSON, json.dumps(JSON_MESSAGE, separators=(",", ":")).encode()
        elif path == "/10k":
            status, ctype, body = "200 OK", OCTET, BODY_10K
        elif path == "/1m":
            status, ctype, body = "200 OK", OCTET, BODY_1M
        elif path == "/sleep":
            time.sleep(SLEEP_S)
            status, ctype, body = "200 OK", TEXT, SLEPT
        elif path.startswith("/users/") and path[7:].isdigit():
            status, ctype, body = "200 OK", JSON, json.dumps({"id": int(path[7:])}, separators=(",", ":")).encode()
    elif method == "POST" and path == "/echo":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        status, ctype, body = "200 OK", OCTET, environ["wsgi.input"].read(length)
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]
