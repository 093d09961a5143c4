"""What the four hosted apps (fastapi_app, starlette_app, django_app, flask_app) answer
on /echo: one deterministic JSON shape built from what the framework saw, so that the
same app under two servers can be compared byte for byte.

Header names are lower-cased; the order of the list is what the server handed over
(ASGI keeps the order of the request; for WSGI the environ's HTTP_* keys are sorted,
as a dict has no order a server must keep)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

#: The body pattern /large and /stream send: byte i is PATTERN[i % len(PATTERN)].
PATTERN = b"0123456789abcdefghijklmnopqrstuvwxyz\n"

#: Statuses /status/{code} answers with no body (RFC 9110 15.3.5, 15.4.5).
NO_BODY = {204, 304}

#: A text with characters from several scripts, for /unicode.
UNICODE_TEXT = "h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c\u8a9e \U0001f40d \u00df\u00c6\u00f8"


def pattern(size: int, offset: int = 0) -> bytes:
    """``size`` bytes of PATTERN starting at ``offset``."""
    n = len(PATTERN)
    reps = (offset % n + size) // n + 1
    start = offset % n
    return (PATTERN * reps)[start : start + size]


def describe(*, framework: str, method: str, path: str, query_string: str, query: Iterable[tuple[str, str]],
             headers: Iterable[tuple[str, str]], cookies: Iterable[tuple[str, str]], body: bytes,
             extra: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """The /echo document."""
    return {
        "framework": framework,
        "method": method,
        "path": path,
        "query_string": query_string,
        "query": [[k, v] for k, v in query],
        "headers": [[k.lower(), v] for k, v in headers],
        "cookies": sorted([k, v] for k, v in cookies),
        "body_length": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "body_head": body[:64].decode("latin-1"),
        **extra,
    }


def wsgi_view(environ: dict[str, Any]) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """The request's header fields from a WSGI environ (sorted by key) and the
    environ's CGI keys worth comparing."""
    headers = [(k[5:].replace("_", "-").lower(), v) for k, v in sorted(environ.items()) if k.startswith("HTTP_")]
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if key in environ:
            headers.append((key.replace("_", "-").lower(), environ[key]))
    # SERVER_NAME and SERVER_PORT are left out: a server may take them from its
    # socket (gunicorn does) rather than from Host, and the two servers' ports differ.
    keys = ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_PROTOCOL", "RAW_URI", "REQUEST_URI", "wsgi.url_scheme", "wsgi.input_terminated")  # fmt: skip
    return headers, {"environ": {k: environ.get(k) for k in keys}}
