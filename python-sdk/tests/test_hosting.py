"""covet/_hosting.py: what --interface auto makes of an object, the name a hosted app
gets, and the refusals that name what went wrong."""

from __future__ import annotations

from typing import Any

import pytest

from covet import Covet
from covet._hosting import detect_interface, host, hosted_name


async def asgi_function(scope: Any, receive: Any, send: Any) -> None: ...


class AsgiClass:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None: ...


def wsgi_function(environ: Any, start_response: Any) -> list[bytes]:
    return []


class WsgiClass:
    def __call__(self, environ: Any, start_response: Any) -> list[bytes]:
        return []


async def two_async(a: Any, b: Any) -> None: ...


def three_sync(a: Any, b: Any, c: Any) -> None: ...


def test_detection() -> None:
    assert detect_interface(Covet())[0] == "covet"
    assert detect_interface(asgi_function)[0] == "asgi"
    assert detect_interface(AsgiClass())[0] == "asgi"
    assert detect_interface(wsgi_function)[0] == "wsgi"
    assert detect_interface(WsgiClass())[0] == "wsgi"
    for obj, want in [(two_async, "async callable of 2"), (three_sync, "sync callable of 3"), (42, "int is not an app")]:
        with pytest.raises(ValueError, match=want):
            detect_interface(obj)


def test_frameworks_are_detected_as_what_they_are() -> None:
    starlette = pytest.importorskip("starlette.applications", reason="starlette (with fastapi) is in PYDEPS")
    fastapi = pytest.importorskip("fastapi", reason="fastapi is in PYDEPS")
    assert detect_interface(starlette.Starlette())[0] == "asgi"
    assert detect_interface(fastapi.FastAPI())[0] == "asgi"


def test_hosted_names_and_refusals() -> None:
    assert hosted_name("main:app") == "main"
    assert hosted_name("pkg.my site:app") == "my-site"
    app = Covet()
    assert host(app, "auto", "x") is app
    assert host(app, "covet", "x") is app
    with pytest.raises(ValueError, match="served as it is"):
        host(app, "asgi", "x")
    with pytest.raises(ValueError, match="needs a covet.Covet app"):
        host(asgi_function, "covet", "x")
    with pytest.raises(ValueError, match="interface must be one of"):
        host(asgi_function, "rsgi", "x")
