"""Covet: the application object — route registration, hooks, and request handling."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from ._exceptions import HTTPException
from ._head import BodySource, RequestHead
from ._patterns import ConversionError, Pattern, convert
from ._request import InterimSink, Request
from ._responses import JSONResponse, PlainTextResponse, Response, to_response
from ._routing import HTTP_METHODS, Route, Router, check_signature, is_async_callable, timeout_to_ms

__all__ = ["Covet"]

F = TypeVar("F", bound=Callable[..., Any])
Hook = Callable[[], Any]
ExceptionHandler = Callable[[Request, Exception], Any]

error_log = logging.getLogger("covet.error")
_APP_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


async def _call(fn: Callable[..., Any], is_async: bool, *args: Any, **kwargs: Any) -> Any:
    """Await an async callable; run a sync one in the loop's thread pool (context kept)."""
    if is_async:
        return await fn(*args, **kwargs)
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    result = await loop.run_in_executor(None, functools.partial(ctx.run, fn, *args, **kwargs))
    if inspect.isawaitable(result):
        result = await result
    return result


class Covet:
    """A CovetPy application.

    ``name`` identifies the app to the gateway (1-64 characters of ``[A-Za-z0-9_.-]``).
    Register handlers with the method decorators before the worker starts; the worker
    calls ``freeze()``, after which the app can no longer change.
    """

    def __init__(self, name: str = "covet") -> None:
        if not isinstance(name, str) or not _APP_NAME_RE.fullmatch(name):
            raise ValueError(f"app name must be 1-64 characters of [A-Za-z0-9_.-], got {name!r}")
        self.name = name
        self.router = Router()
        self._startup: list[Hook] = []
        self._shutdown: list[Hook] = []
        self._status_handlers: dict[int, ExceptionHandler] = {}
        self._class_handlers: dict[type[BaseException], ExceptionHandler] = {}
        self._frozen = False

    # -- registration -------------------------------------------------------------------

    @property
    def frozen(self) -> bool:
        return self._frozen

    def freeze(self) -> None:
        """Forbid further registration (called by the worker before serving)."""
        self._frozen = True

    def _check_open(self, what: str) -> None:
        if self._frozen:
            raise RuntimeError(f"cannot register {what}: the app is frozen (its worker has started)")

    def route(
        self,
        path: str,
        methods: Iterable[str] = ("GET",),
        *,
        name: str | None = None,
        timeout: float | None = None,
    ) -> Callable[[F], F]:
        """Register the decorated handler for ``path`` and each of ``methods``.

        ``timeout`` (seconds) is passed to the gateway as the route's deadline.
        """
        if isinstance(methods, str):
            raise TypeError("methods must be a list of method names, not a str")
        wanted = [m.upper() for m in methods]
        for m in wanted:
            if m not in HTTP_METHODS:
                raise ValueError(f"unsupported HTTP method {m!r} (use one of {', '.join(HTTP_METHODS)})")
        if not wanted or len(set(wanted)) != len(wanted):
            raise ValueError(f"methods must be non-empty and without repeats, got {wanted!r}")
        pattern = Pattern.parse(path)
        timeout_ms = timeout_to_ms(timeout)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"route name must be a str, got {type(name).__name__}")

        def decorator(endpoint: F) -> F:
            self._check_open(f"route {path!r}")
            if not callable(endpoint):
                raise TypeError(f"route {path!r} handler must be callable")
            check_signature(endpoint, pattern)
            is_async = is_async_callable(endpoint)
            for method in wanted:
                self.router.add(
                    Route(method, pattern, endpoint, name, timeout_ms, is_async, pattern.kinds())
                )
            return endpoint

        return decorator

    def get(self, path: str, *, name: str | None = None, timeout: float | None = None) -> Callable[[F], F]:
        return self.route(path, ["GET"], name=name, timeout=timeout)

    def post(self, path: str, *, name: str | None = None, timeout: float | None = None) -> Callable[[F], F]:
        return self.route(path, ["POST"], name=name, timeout=timeout)

    def put(self, path: str, *, name: str | None = None, timeout: float | None = None) -> Callable[[F], F]:
        return self.route(path, ["PUT"], name=name, timeout=timeout)

    def patch(self, path: str, *, name: str | None = None, timeout: float | None = None) -> Callable[[F], F]:
        return self.route(path, ["PATCH"], name=name, timeout=timeout)

    def delete(self, path: str, *, name: str | None = None, timeout: float | None = None) -> Callable[[F], F]:
        return self.route(path, ["DELETE"], name=name, timeout=timeout)

    def head(self, path: str, *, name: str | None = None, timeout: float | None = None) -> Callable[[F], F]:
        return self.route(path, ["HEAD"], name=name, timeout=timeout)

    def options(self, path: str, *, name: str | None = None, timeout: float | None = None) -> Callable[[F], F]:
        return self.route(path, ["OPTIONS"], name=name, timeout=timeout)

    def websocket(self, path: str, *, name: str | None = None, resumable: bool = False) -> Callable[[F], F]:
        """Register the decorated coroutine function as the WebSocket endpoint at
        ``path``: ``async def handler(ws, **path_params)`` gets a :class:`covet.WebSocket`
        (docs/python-app.md, "WebSocket"). The route is a GET route of kind ``ws``;
        ``resumable=True`` asks the gateway to move a client's session to another worker
        when this one goes away, instead of closing it (the handler then starts again
        with ``ws.resumed`` true)."""
        pattern = Pattern.parse(path)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"route name must be a str, got {type(name).__name__}")
        if not isinstance(resumable, bool):
            raise TypeError(f"resumable must be a bool, got {type(resumable).__name__}")

        def decorator(endpoint: F) -> F:
            self._check_open(f"WebSocket route {path!r}")
            if not is_async_callable(endpoint):
                raise TypeError(f"WebSocket route {path!r} handler must be an async function (async def)")
            check_signature(endpoint, pattern)
            self.router.add(Route("GET", pattern, endpoint, name, None, True, pattern.kinds(), "ws", resumable))
            return endpoint

        return decorator

    def ws(self, path: str, *, name: str | None = None, resumable: bool = False) -> Callable[[F], F]:
        """Alias of :meth:`websocket`."""
        return self.websocket(path, name=name, resumable=resumable)

    def on_startup(self, fn: F) -> F:
        """Run ``fn`` (sync or async, no arguments) when the worker starts, in order."""
        self._check_open("a startup hook")
        self._startup.append(fn)
        return fn

    def on_shutdown(self, fn: F) -> F:
        """Run ``fn`` (sync or async) when the worker stops; hooks run in reverse order."""
        self._check_open("a shutdown hook")
        self._shutdown.append(fn)
        return fn

    def exception_handler(self, key: type[BaseException] | int) -> Callable[[F], F]:
        """Handle an exception class (and its subclasses), or an HTTP error status.

        The handler is called as ``handler(req, exc)`` (sync or async) and returns what a
        route handler may return. A status key handles HTTPException with that status;
        key 500 also handles otherwise unhandled exceptions (which are still logged).
        """
        if isinstance(key, int) and not isinstance(key, bool):
            if not 400 <= key <= 599:
                raise ValueError(f"exception handler status must be in 400..599, got {key}")
        elif not (isinstance(key, type) and issubclass(key, Exception)):
            raise TypeError(f"exception handler key must be an Exception subclass or a status, got {key!r}")

        def decorator(fn: F) -> F:
            self._check_open("an exception handler")
            if isinstance(key, int):
                self._status_handlers[key] = fn
            else:
                self._class_handlers[key] = fn
            return fn

        return decorator

    def manifest(self) -> list[dict[str, Any]]:
        """The route manifest for the gateway handshake (PROTOCOL 1.3 route maps)."""
        return [route.manifest_entry() for route in self.router.routes]

    # -- lifecycle ----------------------------------------------------------------------

    async def startup(self) -> None:
        """Run the startup hooks in registration order; the first failure propagates."""
        for hook in self._startup:
            await _call(hook, is_async_callable(hook))

    async def shutdown(self) -> None:
        """Run every shutdown hook in reverse order; failures are logged, not raised."""
        for hook in reversed(self._shutdown):
            try:
                await _call(hook, is_async_callable(hook))
            except Exception:
                error_log.exception("shutdown hook %r failed", hook)

    # -- handling -----------------------------------------------------------------------

    async def _handle(self, head: RequestHead, body: BodySource, interim: InterimSink | None = None) -> Response:
        """Run the handler for one routed request and return its response. ``interim``
        sends the handler's 103 Early Hints (``Request.send_early_hints``).

        Never raises (cancellation of the calling task aside): a missing route or a path
        parameter that does not convert gives 404, HTTPException its status, and any
        other exception a registered handler's answer or a logged 500.
        """
        request = Request(head, body, None, interim)
        # One coroutine frame for the whole request: routing and the handler call are
        # inline (every await of a helper coroutine costs a frame per request).
        try:
            try:
                route = self.router.lookup(head.method, head.route)
                if route is None:
                    raise HTTPException(404)
                if not head.params and not route.kinds:
                    if route.is_async:
                        result = await route.endpoint(request)
                    else:
                        result = await _call(route.endpoint, False, request)
                else:
                    params = self._params(route, head.params)
                    request.path_params = params
                    if route.is_async:
                        result = await route.endpoint(request, **params)
                    else:
                        result = await _call(route.endpoint, False, request, **params)
                response = to_response(result)
            except Exception as exc:
                response = await self._handle_exception(request, exc)
        except Exception as exc:  # an exception handler itself failed
            self._log(request, exc)
            response = PlainTextResponse("Internal Server Error", 500)
        if head.method == "HEAD":
            response = _without_body(response)
        return response

    @staticmethod
    def _params(route: Route, flat: list[str]) -> dict[str, Any]:
        """The gateway's raw path parameters converted to the route's types; 404 if one
        does not convert or they do not match the route's parameters."""
        kinds = route.kinds
        params: dict[str, Any] = {}
        for i in range(0, len(flat), 2):
            name = flat[i]
            kind = kinds.get(name)
            if kind is None:
                raise HTTPException(404)
            try:
                params[name] = convert(kind, flat[i + 1])
            except ConversionError:
                raise HTTPException(404) from None
        if len(params) != len(kinds):
            raise HTTPException(404)
        return params

    async def _handle_exception(self, request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            handler = self._status_handlers.get(exc.status) or self._class_handler(exc)
            if handler is None:
                return JSONResponse({"detail": exc.detail}, exc.status, exc.headers)
        else:
            handler = self._class_handler(exc)
            if handler is None:
                self._log(request, exc)
                handler = self._status_handlers.get(500)
                if handler is None:
                    return PlainTextResponse("Internal Server Error", 500)
        result = await _call(handler, is_async_callable(handler), request, exc)
        return to_response(result)

    def _class_handler(self, exc: Exception) -> ExceptionHandler | None:
        for cls in type(exc).__mro__:
            handler = self._class_handlers.get(cls)
            if handler is not None:
                return handler
        return None

    @staticmethod
    def _log(request: Request, exc: Exception) -> None:
        head = request.head
        error_log.error(
            "unhandled exception in %s %s (route %s, request_id=%s)",
            head.method, head.path, head.route, head.request_id,
            exc_info=exc, extra={"request_id": head.request_id},
        )  # fmt: skip


def _without_body(response: Response) -> Response:
    """The answer to HEAD: the same status and headers, no body; a known length is kept
    as an explicit Content-Length header (the gateway sends no body for body_length 0)."""
    stripped = Response(b"", response.status)
    stripped.headers.raw.extend(response.headers.raw)
    length = response.body_length
    if length > 0 and "content-length" not in stripped.headers:
        stripped.headers.raw.append(("content-length", str(length).encode()))
    return stripped

