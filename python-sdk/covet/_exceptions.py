"""HTTPException: the one exception a handler raises to answer with an error status."""

from __future__ import annotations

import http
from collections.abc import Mapping
from typing import Any

__all__ = ["BodyAborted", "HTTPException"]


def reason_phrase(status: int) -> str:
    """The standard reason phrase for ``status``, or ``""`` for an unregistered code."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


class HTTPException(Exception):
    """Raise from a handler to answer with ``status``.

    The response body is JSON ``{"detail": detail}``; ``detail`` defaults to the status's
    reason phrase and may be any JSON-serialisable value. ``headers`` are added to the
    response (for example ``{"www-authenticate": "Bearer"}``).
    """

    def __init__(
        self,
        status: int | None = None,
        detail: Any = None,
        headers: Mapping[str, str] | None = None,
        *,
        status_code: int | None = None,
    ) -> None:
        if status is None:
            status = status_code
        elif status_code is not None and status_code != status:
            raise ValueError(f"HTTPException status={status!r} and status_code={status_code!r} disagree; give one")
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(f"HTTPException status must be an int in 400..599, got {status!r}")
        if detail is None:
            detail = reason_phrase(status)
        super().__init__(status, detail)
        self.status = status
        self.detail = detail
        self.headers: dict[str, str] = dict(headers) if headers else {}

    @property
    def status_code(self) -> int:
        """The status (Starlette's name for ``status``)."""
        return self.status

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, detail={self.detail!r})"

    def __str__(self) -> str:
        return f"{self.status}: {self.detail}"


class BodyAborted(Exception):
    """The request body broke off before its end: the client went away, the body passed
    the gateway's ``max_body_bytes``, its chunked framing was bad, or it arrived too
    slowly (a REQ_BODY fragment flagged ERR, PROTOCOL.md 2.8).

    ``req.stream()``, ``req.body()``, ``req.json()`` and ``req.form()`` raise it. The
    gateway answers the client itself (413, 400, 408) or closes the connection, and
    cancels the handler, so a handler rarely needs to catch it: catch it only to clean
    up what a partial upload left behind.
    """
