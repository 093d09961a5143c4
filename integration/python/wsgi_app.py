"""A plain WSGI application (PEP 3333, no framework) for integration/python/test_wsgi_hosting.py,
served by ``covet worker wsgi_app:app --interface wsgi`` (app name ``wsgi_app``) with
one worker, so that the module's state is shared by every request.

``WSGI_TEST_DIR`` names a directory holding ``page.txt`` for /file.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

StartResponse = Callable[..., Callable[[bytes], None]]

_lock = threading.Condition()
#: Lines /upload has read so far, by upload id.
_lines_read: dict[str, int] = {}
#: /stream's second part waits for /release.
_released = threading.Event()
#: Whether /endless's iterable has been closed, and how many chunks it made.
_endless = {"closed": False, "chunks": 0}
#: /slow requests in the app now; set by /fast, which they wait for.
_slow = {"inside": 0}
_fast_seen = threading.Event()
#: How long /slow waits for /fast before answering without it.
SLOW_WAIT_S = 10.0


def _text(start_response: StartResponse, body: str, status: str = "200 OK") -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
    return [body.encode()]


def _upload(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    upload = environ["QUERY_STRING"]
    stream = environ["wsgi.input"]
    total = 0
    for line in stream:  # one line at a time, as the client sends them
        total += len(line)
        with _lock:
            _lines_read[upload] = _lines_read.get(upload, 0) + 1
            _lock.notify_all()
    return _text(start_response, f"lines={_lines_read.get(upload, 0)} bytes={total}")


def _stream(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
    _released.clear()
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"first part\n"
    released = _released.wait(10)
    yield b"second part\n" if released else b"never released\n"


class _Endless:
    """An endless body whose close() is recorded."""

    def __iter__(self) -> Iterator[bytes]:
        chunk = b"e" * 65536
        while True:
            _endless["chunks"] += 1
            yield chunk

    def close(self) -> None:
        _endless["closed"] = True


def _environ(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    keys = ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "SERVER_PROTOCOL", "SERVER_NAME", "SERVER_PORT",
            "REMOTE_ADDR", "HTTP_X_MANY", "HTTP_COOKIE", "CONTENT_LENGTH", "wsgi.url_scheme")  # fmt: skip
    lines = [f"{k}={environ.get(k, '-')}" for k in keys]
    path_bytes = environ["PATH_INFO"].encode("latin-1")
    lines.append(f"path_utf8={path_bytes.decode('utf-8', 'replace')}")
    return _text(start_response, "\n".join(lines))


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Routes: /ready, /upload?ID, /progress?ID, /stream, /release, /file, /slow (blocks
    until /fast has been served), /slow-inside (how many /slow are blocked), /fast,
    /endless, /endless-state, /environ/..., /boom; anything else 404."""
    path = environ["PATH_INFO"]
    if path == "/ready":
        return _text(start_response, "ok")
    if path == "/upload":
        return _upload(environ, start_response)
    if path == "/progress":
        with _lock:
            return _text(start_response, str(_lines_read.get(environ["QUERY_STRING"], 0)))
    if path == "/stream":
        return _stream(environ, start_response)
    if path == "/release":
        _released.set()
        return _text(start_response, "released")
    if path == "/file":
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        f = open(os.path.join(os.environ["WSGI_TEST_DIR"], "page.txt"), "rb")  # noqa: SIM115 - closed by the wrapper
        return environ["wsgi.file_wrapper"](f, 8192)  # type: ignore[no-any-return]
    if path == "/slow":
        with _lock:
            _slow["inside"] += 1
        try:
            served = _fast_seen.wait(SLOW_WAIT_S)
        finally:
            with _lock:
                _slow["inside"] -= 1
        return _text(start_response, "slow" if served else "slow, and no /fast was served meanwhile")
    if path == "/slow-inside":
        with _lock:
            return _text(start_response, str(_slow["inside"]))
    if path == "/fast":
        _fast_seen.set()
        return _text(start_response, "fast")
    if path == "/endless":
        _endless["closed"] = False
        _endless["chunks"] = 0
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return _Endless()
    if path == "/endless-state":
        return _text(start_response, f"closed={_endless['closed']} chunks={_endless['chunks']}")
    if path.startswith("/environ"):
        return _environ(environ, start_response)
    if path == "/boom":
        raise RuntimeError("the WSGI app failed on purpose")
    return _text(start_response, "no such page", "404 Not Found")
