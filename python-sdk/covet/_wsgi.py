"""Serving a WSGI application (PEP 3333) on a thread pool: the adapter from a routed
request to ``environ`` and ``start_response``."""

from __future__ import annotations

from typing import Any

from ._app import Covet

__all__ = ["wsgi_app", "DEFAULT_THREADS", "ENV_THREADS"]

#: The environment variable giving the pool's size (covet run's --wsgi-threads).
ENV_THREADS = "COVET_WSGI_THREADS"

#: The WSGI thread pool's size when neither ``--wsgi-threads`` nor
#: ``COVET_WSGI_THREADS`` says.
DEFAULT_THREADS = 16


def wsgi_app(app: Any, name: str, *, threads: int | None = None) -> Covet:
    """A Covet app named ``name`` serving the WSGI application ``app`` on a pool of
    ``threads`` threads (None: $COVET_WSGI_THREADS, else DEFAULT_THREADS)."""
    raise NotImplementedError
