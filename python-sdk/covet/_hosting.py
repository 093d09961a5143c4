"""Hosting an app that is not a Covet app: an ASGI 3 application (FastAPI, Starlette,
Django's ASGIHandler, ...) or a WSGI one (Flask, Django's WSGIHandler, ...), behind the
same gateway and transport. Each is wrapped in a Covet app with one catch-all route per
method (``/{path...}``) whose handler adapts the request to the foreign interface
(covet/_asgi.py, covet/_wsgi.py); the worker serves it as it serves any Covet app.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from ._app import Covet

__all__ = ["INTERFACES", "detect_interface", "host", "hosted_name"]

#: What ``--interface`` takes: ``auto`` detects from the object.
INTERFACES = ("auto", "covet", "asgi", "wsgi")
_NAME_BAD = re.compile(r"[^A-Za-z0-9_.-]")


def _positional_count(fn: Any) -> int | None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    params = list(sig.parameters.values())
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return None
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def detect_interface(obj: Any) -> tuple[str, str]:
    """``(interface, why)`` for ``obj``: ``covet`` for a Covet app, ``asgi`` for an
    async callable of three arguments (scope, receive, send), ``wsgi`` for a sync
    callable of two (environ, start_response). Raises ValueError saying what ``obj``
    is when it is none of them."""
    if isinstance(obj, Covet):
        return "covet", "a covet.Covet app"
    if not callable(obj):
        raise ValueError(f"a {type(obj).__name__} is not an app: want a Covet app, an ASGI 3 callable or a WSGI callable")
    call = obj if inspect.isfunction(obj) or inspect.ismethod(obj) else getattr(obj, "__call__", obj)
    is_async = inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(obj)
    count = _positional_count(call)
    if is_async and count in (3, None):
        return "asgi", "an async callable of (scope, receive, send): ASGI 3"
    if not is_async and count in (2, None):
        return "wsgi", "a callable of (environ, start_response): WSGI"
    kind = "an async" if is_async else "a sync"
    raise ValueError(f"{kind} callable of {count} positional arguments is neither ASGI 3 (async, 3) nor WSGI (sync, 2); "
                     "say which with --interface")  # fmt: skip


def hosted_name(spec: str) -> str:
    """The gateway app name for a foreign app loaded as ``spec`` (``module:attr``):
    the module's name, with characters an app name cannot hold as ``-``."""
    module = spec.partition(":")[0].rsplit(".", 1)[-1]
    return (_NAME_BAD.sub("-", module) or "app")[:64]


def host(obj: Any, interface: str, name: str, *, wsgi_threads: int | None = None) -> Covet:
    """``obj`` served through ``interface`` (``auto`` detects it) as a Covet app named
    ``name`` (a Covet app is returned as it is). Raises ValueError when ``obj`` is
    not of that interface."""
    if interface not in INTERFACES:
        raise ValueError(f"interface must be one of {', '.join(INTERFACES)}, got {interface!r}")
    if interface == "auto":
        interface = detect_interface(obj)[0]
    if interface == "covet":
        if not isinstance(obj, Covet):
            raise ValueError(f"--interface covet needs a covet.Covet app, got a {type(obj).__name__}")
        return obj
    if isinstance(obj, Covet):
        raise ValueError(f"a covet.Covet app is served as it is; --interface {interface} is for foreign apps")
    if interface == "asgi":
        from ._asgi import asgi_app

        return asgi_app(obj, name)
    from ._wsgi import wsgi_app

    return wsgi_app(obj, name, threads=wsgi_threads)
