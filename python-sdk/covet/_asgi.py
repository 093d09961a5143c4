"""Serving an ASGI 3 application: the adapter from a routed request to ASGI's scope,
receive and send (https://asgi.readthedocs.io/en/latest/specs/main.html)."""

from __future__ import annotations

from typing import Any

from ._app import Covet

__all__ = ["asgi_app"]


def asgi_app(app: Any, name: str) -> Covet:
    """A Covet app named ``name`` serving the ASGI 3 application ``app``: one catch-all
    route per method; ASGI's lifespan protocol run by the worker's startup and
    shutdown."""
    raise NotImplementedError
