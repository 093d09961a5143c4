"""Shared helpers for the app-layer tests."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, ParamSpec

from covet._head import RequestHead

P = ParamSpec("P")


def make_head(
    method: str = "GET",
    path: str = "/",
    route: str = "/",
    params: list[str] | None = None,
    *,
    query: str = "",
    headers: list[object] | None = None,
    body: int = 0,
    request_id: str = "req-1",
) -> RequestHead:
    """A RequestHead built through from_wire, exactly as the transport builds it."""
    return RequestHead.from_wire(
        [method, path, query, headers or [], route, params or [], "1.1", "http",
         "10.0.0.1:4242", request_id, body, 0]  # fmt: skip
    )


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def run_async(fn: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run an async test body in a fresh event loop (no pytest plugin needed)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        asyncio.run(fn(*args, **kwargs))

    return wrapper
