"""Covet: the application object — route registration, hooks, and request handling."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar, Unpack, overload

from ._binding import RouteOptions, call, check_signature, compile_handler, path_params, route_docs
from ._datastructures import State
from ._exceptions import HTTPException
from ._grpc import GrpcServer
from ._head import BodySource, RequestHead
from ._openapi import install_docs
from ._patterns import ConversionError, Pattern, convert
from ._request import InterimSink, Request
from ._responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response, to_response
from ._routing import HTTP_METHODS, Route, Router, is_async_callable, timeout_to_ms
from ._validation import RequestValidationError
from ._security import CORS, SecurityOptions, cors_option, route_security, security_headers_option
from ._sync import run_sync

__all__ = ["Covet"]

#: What sync handlers commonly return, none of it awaitable: no inspect.isawaitable
#: for these (call() awaits what a sync callable returns when it is awaitable).
_NOT_AWAITABLE = (dict, list, str, bytes, Response)


def _on_loop(fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """A ``def`` handler as a coroutine function that calls it on the event loop
    (``sync_to_thread=False``); its signature, annotations and docstring are the
    handler's, so it is bound and documented as the handler is. An awaitable it returns
    is awaited, as on the handler thread."""

    @functools.wraps(fn)
    async def on_loop(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        if not isinstance(result, _NOT_AWAITABLE) and inspect.isawaitable(result):
            result = await result
        return result

    return on_loop

F = TypeVar("F", bound=Callable[..., Any])
Hook = Callable[[], Any]
ExceptionHandler = Callable[[Request, Exception], Any]
#: An HTTP middleware: ``async def mw(req, call_next) -> Response``.
Middleware = Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]
M = TypeVar("M", bound=Middleware)
#: ``Covet(lifespan=fn)``: ``fn(app)`` is an async context manager around the worker's
#: life; what it yields (a mapping, or None) seeds each request's ``req.state``.
Lifespan = Callable[["Covet"], contextlib.AbstractAsyncContextManager[Any]]

error_log = logging.getLogger("covet.error")
_APP_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class Covet:
    """A CovetPy application.

    ``name`` identifies the app to the gateway (1-64 characters of ``[A-Za-z0-9_.-]``).
    ``cors`` (a :class:`covet.CORS` or mapping; False: no CORS on any route) and
    ``security_headers`` (a mapping of overrides; False: none) are defaults the SDK
    writes into every route that does not set its own (static routes excepted); the
    gateway enforces them.
    ``title``, ``version`` and ``description`` head the OpenAPI document, served at
    ``openapi_url`` with the interactive page at ``docs_url`` (None: not served;
    docs/python-app.md, "OpenAPI and /docs").
    Register handlers with the method decorators before the worker starts; the worker
    calls ``freeze()``, after which the app can no longer change.
    """

    def __init__(
        self,
        name: str = "covet",
        *,
        cors: bool | Mapping[str, Any] | CORS | None = None,
        security_headers: bool | Mapping[str, str] | None = None,
        lifespan: Lifespan | None = None,
        title: str | None = None,
        version: str = "0.1.0",
        description: str | None = None,
        openapi_url: str | None = "/openapi.json",
        docs_url: str | None = "/docs",
    ) -> None:
        if not isinstance(name, str) or not _APP_NAME_RE.fullmatch(name):
            raise ValueError(f"app name must be 1-64 characters of [A-Za-z0-9_.-], got {name!r}")
        self.name = name
        #: The app's defaults (option form) for routes that set no cors / security_headers.
        self._cors = cors_option(cors, "app cors")
        self._security_headers = security_headers_option(security_headers, "app security_headers")
        self.router = Router()
        # sync_lane's decisions: route pattern -> method -> endpoint or None.
        self._lanes: dict[str, dict[str, Callable[..., Any] | None]] = {}
        self._startup: list[Hook] = []
        self._shutdown: list[Hook] = []
        self._status_handlers: dict[int, ExceptionHandler] = {}
        self._class_handlers: dict[type[BaseException], ExceptionHandler] = {}
        self._middleware: list[Middleware] = []
        #: The middleware wrapped around the routed handler, outermost first; built by
        #: freeze(). None when there is no middleware.
        self._stack: Callable[[Request], Awaitable[Response]] | None = None
        if lifespan is not None and not callable(lifespan):
            raise TypeError(f"lifespan must be a callable returning an async context manager, got {lifespan!r}")
        self._lifespan = lifespan
        self._lifespan_exit: contextlib.AsyncExitStack | None = None
        #: What the lifespan context yielded (a mapping): each request's ``req.state``
        #: starts as a copy of it.
        self._lifespan_state: dict[str, Any] = {}
        #: Application-wide state: ``app.state.pool = ...`` in a startup hook or lifespan.
        self.state = State()
        #: Replacements for dependencies, ``{original: replacement}`` (tests, mostly);
        #: read per request, so they may change while the app serves.
        self.dependency_overrides: dict[Callable[..., Any], Callable[..., Any]] = {}
        self.title = title if title is not None else name
        self.version = version
        self.description = description
        self.openapi_url = openapi_url
        self.docs_url = docs_url
        self._frozen = False
        self._grpc: GrpcServer | None = None
        install_docs(self)

    # -- registration -------------------------------------------------------------------

    @property
    def frozen(self) -> bool:
        return self._frozen

    def freeze(self) -> None:
        """Forbid further registration (called by the worker before serving) and build
        the middleware stack and the gRPC services' call table."""
        if self._frozen:
            return
        if self._grpc is not None:
            self._grpc.freeze()
        self._frozen = True
        inner: Callable[[Request], Awaitable[Response]] = self._route_response
        for mw in reversed(self._middleware):
            inner = functools.partial(_run_middleware, mw, inner)
        self._stack = inner if self._middleware else None

    @property
    def grpc(self) -> GrpcServer:
        """The app's gRPC services, registered as on a ``grpc.Server``:
        ``greeter_pb2_grpc.add_GreeterServicer_to_server(Greeter(), app.grpc)``
        (docs/python-app.md, "gRPC services"). Each method is a route ``POST
        /package.Service/Method`` of kind ``grpc`` that the gateway serves over HTTP/2;
        servicer methods may be ``async def`` (grpc.aio's style) or ``def``. The first
        use imports grpcio: ImportError without it (``pip install 'covet[grpc]'``)."""
        if self._grpc is None:
            self._grpc = GrpcServer(self)
        return self._grpc

    def _check_open(self, what: str) -> None:
        if self._frozen:
            raise RuntimeError(f"cannot register {what}: the app is frozen (its worker has started)")

    def route(
        self,
        path: str,
        methods: Iterable[str] = ("GET",),
        **options: Unpack[RouteOptions],
    ) -> Callable[[F], F]:
        """Register the decorated handler for ``path`` and each of ``methods``.

        The handler's parameters are bound by name and type (docs/python-app.md,
        "Typed handlers"): path parameters, then query values, headers and cookies
        (``Query``, ``Header``, ``Cookie``), a typed body (a msgspec Struct, dataclass,
        TypedDict or pydantic model), dependencies (``Depends``), ``BackgroundTasks``,
        and the request (annotated ``Request``, or the first positional parameter when
        unannotated). A value that does not convert answers 422.

        ``name`` names the route; ``timeout`` (seconds) is passed to the gateway as the
        route's deadline; ``dependencies=[Depends(check)]`` run before the handler,
        their values unused. ``status_code`` is the status of a response made from the
        handler's return value (``status=`` is the same). ``response_model`` converts the
        return value to that type before it is sent. ``tags``, ``summary``,
        ``description`` (default: the docstring), ``responses``, ``deprecated``,
        ``include_in_schema`` and ``operation_id`` go into the OpenAPI document.

        The security options travel in the manifest and the gateway enforces them before
        a request reaches the worker (PROTOCOL.md 1.3; docs/python-app.md, "Security"):
        ``auth=True`` requires a verified bearer token (401 without one), whose identity
        the handler reads as ``req.auth``; ``roles`` and ``scopes`` (with ``auth``) must
        all be carried by the token (403); ``rate_limit`` (``"5/minute"``, units second,
        minute, hour, day or s, m, h, d; ``"none"`` exempts the route from the gateway's
        ``rate_limit_default``) counted by ``rate_limit_key`` (``"ip"``, ``"subject"``,
        ``"header:X-API-Key"``); ``cors`` (False: off; a :class:`covet.CORS` or mapping:
        this route's settings; None or True: the app's, else the gateway's);
        ``security_headers`` (False: none; a mapping overrides the gateway's one by one,
        ``""`` removing one; True: the gateway's set, even when its default is off);
        ``compress=False`` never compresses the route's responses. Bad values raise
        ValueError or TypeError here, naming the route.

        A ``def`` handler runs on the worker's handler thread (docs/python-app.md, "Sync
        handlers"); ``sync_to_thread=False`` runs it on the event loop instead, as an
        ``async def`` one runs: cheaper, for a handler that never blocks (no I/O, no
        sleep, no lock), since while it runs no other request of the worker moves. It has
        no effect on an ``async def`` handler, nor on the sync dependencies of either.
        """
        if isinstance(methods, str):
            raise TypeError("methods must be a list of method names, not a str")
        wanted = [m.upper() for m in methods]
        for m in wanted:
            if m not in HTTP_METHODS:
                raise ValueError(f"unsupported HTTP method {m!r} (use one of {', '.join(HTTP_METHODS)})")
        if not wanted or len(set(wanted)) != len(wanted):
            raise ValueError(f"methods must be non-empty and without repeats, got {wanted!r}")
        where = f"route {'|'.join(wanted)} {path!r}"
        pattern = Pattern.parse(path)
        opts: dict[str, Any] = dict(options)
        name = opts.pop("name", None)
        timeout_ms = timeout_to_ms(opts.pop("timeout", None))
        sync_to_thread = opts.pop("sync_to_thread", True)
        if not isinstance(sync_to_thread, bool):
            raise TypeError(f"{where}: sync_to_thread must be True or False, got {sync_to_thread!r}")
        dependencies = opts.pop("dependencies", ())
        if isinstance(dependencies, (str, bytes)) or not isinstance(dependencies, Iterable):
            raise TypeError(f"{where}: dependencies must be a list of Depends(...)")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"route name must be a str, got {type(name).__name__}")
        docs = route_docs(where, opts)
        checked = route_security(where, **opts)

        def decorator(endpoint: F) -> F:
            self._check_open(f"route {path!r}")
            if not callable(endpoint):
                raise TypeError(f"route {path!r} handler must be callable")
            handler = endpoint if sync_to_thread or is_async_callable(endpoint) else _on_loop(endpoint)
            plan, binder = compile_handler(handler, pattern, docs, self, list(dependencies))
            is_async = is_async_callable(handler)
            for method in wanted:
                self.router.add(
                    Route(method, pattern, handler, name, timeout_ms, is_async, pattern.kinds(), security=checked,
                          plan=plan, binder=binder, docs=docs)  # fmt: skip
                )
            return endpoint

        return decorator

    def get(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[F], F]:
        """Register the decorated handler for ``GET path``; the options as :meth:`route`'s."""
        return self.route(path, ["GET"], **options)

    def post(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[F], F]:
        """Register the decorated handler for ``POST path``; the options as :meth:`route`'s."""
        return self.route(path, ["POST"], **options)

    def put(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[F], F]:
        """Register the decorated handler for ``PUT path``; the options as :meth:`route`'s."""
        return self.route(path, ["PUT"], **options)

    def patch(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[F], F]:
        """Register the decorated handler for ``PATCH path``; the options as :meth:`route`'s."""
        return self.route(path, ["PATCH"], **options)

    def delete(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[F], F]:
        """Register the decorated handler for ``DELETE path``; the options as :meth:`route`'s."""
        return self.route(path, ["DELETE"], **options)

    def head(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[F], F]:
        """Register the decorated handler for ``HEAD path``; the options as :meth:`route`'s."""
        return self.route(path, ["HEAD"], **options)

    def options(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[F], F]:
        """Register the decorated handler for ``OPTIONS path``; the options as :meth:`route`'s."""
        return self.route(path, ["OPTIONS"], **options)

    def static(
        self, prefix: str, directory: str | os.PathLike[str], *, index: bool = False, name: str | None = None
    ) -> None:
        """Serve the files under ``directory`` at ``prefix`` (``/assets/app.js`` is
        ``directory/app.js``): the gateway answers these requests from disk itself,
        without the worker (sendfile, ETag and Last-Modified with 304, ranges,
        precompressed ``.br``/``.gz`` siblings; docs/python-app.md). With ``index`` a
        directory is answered with its ``index.html`` (and one named without its
        trailing slash is redirected to it).

        ``directory`` is resolved to an absolute path now (symbolic links too) and must
        exist; the gateway must see the same directory at that path. The route is
        ``GET prefix/{path...}`` of kind ``static`` in the manifest.
        """
        self._check_open(f"static files at {prefix!r}")
        if not isinstance(prefix, str) or not prefix.startswith("/"):
            raise ValueError(f"static prefix must be a path starting with '/', got {prefix!r}")
        base = prefix.rstrip("/")
        if not base:
            raise ValueError("static prefix '/' would take every path; mount the files under a prefix such as /assets")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"route name must be a str, got {type(name).__name__}")
        root = os.path.realpath(os.fspath(directory))
        if not os.path.isdir(root):
            raise ValueError(f"static directory {os.fspath(directory)!r} ({root}) does not exist or is not a directory")
        pattern = Pattern.parse(base + "/{path...}")
        options = (("dir", root), ("index", bool(index)))
        endpoint = _StaticFiles(root, bool(index))
        self.router.add(Route("GET", pattern, endpoint, name, None, True, pattern.kinds(), "static", extra=options))

    def websocket(
        self,
        path: str,
        *,
        name: str | None = None,
        resumable: bool = False,
        **security: Unpack[SecurityOptions],
    ) -> Callable[[F], F]:
        """Register the decorated coroutine function as the WebSocket endpoint at
        ``path``: ``async def handler(ws, **path_params)`` gets a :class:`covet.WebSocket`
        (docs/python-app.md, "WebSocket"). The route is a GET route of kind ``ws``;
        ``resumable=True`` asks the gateway to move a client's session to another worker
        when this one goes away, instead of closing it (the handler then starts again
        with ``ws.resumed`` true). The security options are :meth:`route`'s; the gateway
        applies them to the upgrade request, and ``ws.auth`` is its verified identity.
        An HTTP GET route may share the pattern (``@app.get(path)``): a plain GET then
        reaches it instead of the gateway's 426; the pair is one route at the gateway,
        so its security options must equal this route's (ValueError otherwise)."""
        pattern = Pattern.parse(path)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"route name must be a str, got {type(name).__name__}")
        if not isinstance(resumable, bool):
            raise TypeError(f"resumable must be a bool, got {type(resumable).__name__}")
        checked = route_security(f"WebSocket route {path!r}", **security)

        def decorator(endpoint: F) -> F:
            self._check_open(f"WebSocket route {path!r}")
            if not is_async_callable(endpoint):
                raise TypeError(f"WebSocket route {path!r} handler must be an async function (async def)")
            check_signature(endpoint, pattern)
            self.router.add(
                Route("GET", pattern, endpoint, name, None, True, pattern.kinds(), "ws", resumable, security=checked)
            )
            return endpoint

        return decorator

    def ws(
        self,
        path: str,
        *,
        name: str | None = None,
        resumable: bool = False,
        **security: Unpack[SecurityOptions],
    ) -> Callable[[F], F]:
        """Alias of :meth:`websocket`."""
        return self.websocket(path, name=name, resumable=resumable, **security)

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

    @overload
    def middleware(self, fn: M) -> M: ...

    @overload
    def middleware(self, fn: str | None = None) -> Callable[[M], M]: ...

    def middleware(self, fn: M | str | None = None) -> M | Callable[[M], M]:
        """Register an HTTP middleware: ``async def mw(req, call_next)`` that awaits
        ``call_next(req)`` for the response (or returns its own, short-circuiting), and
        may edit it (``response.headers`` is mutable) before returning it. Middleware
        runs in registration order, the first registered outermost, around every
        routed HTTP request (not WebSocket sessions, not the gateway's static files).
        ``call_next`` never raises for the handler's errors: they are already answered
        by then (HTTPException, exception handlers, 500). Used bare
        (``@app.middleware``) or as ``@app.middleware("http")``."""
        if fn is None or isinstance(fn, str):
            if fn not in (None, "http"):
                raise ValueError(f"middleware type must be 'http', got {fn!r}")
            return self.middleware
        self._check_open("a middleware")
        if not is_async_callable(fn):
            raise TypeError(f"middleware {getattr(fn, '__qualname__', fn)!r} must be an async function (req, call_next)")
        self._middleware.append(fn)
        return fn

    def manifest(self) -> list[dict[str, Any]]:
        """The route manifest for the gateway handshake (PROTOCOL 1.3 route maps): the
        routes, then the gRPC methods."""
        routes = self.router.manifest(self._cors, self._security_headers)
        return routes + self._grpc.manifest() if self._grpc is not None else routes

    # -- lifecycle ----------------------------------------------------------------------

    async def startup(self) -> None:
        """Enter the lifespan context (``Covet(lifespan=...)``), then run the startup
        hooks in registration order; the first failure propagates."""
        if self._lifespan is not None:
            stack = contextlib.AsyncExitStack()
            state = await stack.enter_async_context(self._lifespan(self))
            self._lifespan_exit = stack
            if state is not None:
                if not isinstance(state, Mapping):
                    await stack.aclose()
                    self._lifespan_exit = None
                    raise TypeError(f"lifespan must yield a mapping (request state) or None, got {type(state).__name__}")
                self._lifespan_state = dict(state)
        for hook in self._startup:
            await call(hook, is_async_callable(hook))

    async def shutdown(self) -> None:
        """Run every shutdown hook in reverse order, then leave the lifespan context;
        failures are logged, not raised."""
        for hook in reversed(self._shutdown):
            try:
                await call(hook, is_async_callable(hook))
            except Exception:
                error_log.exception("shutdown hook %r failed", hook)
        stack, self._lifespan_exit = self._lifespan_exit, None
        if stack is not None:
            try:
                await stack.aclose()
            except Exception:
                error_log.exception("lifespan %r failed on shutdown", self._lifespan)

    # -- handling -----------------------------------------------------------------------

    async def _handle(self, head: RequestHead, body: BodySource, interim: InterimSink | None = None) -> Response:
        """Run the middleware and the handler for one routed request and return its
        response. ``interim`` sends the handler's 103 Early Hints
        (``Request.send_early_hints``). The response's ``background`` (if any) is for
        the caller to run once the response has been sent: the request's background
        tasks, then its dependencies' cleanup.

        Never raises (cancellation of the calling task aside): a missing route or a path
        parameter that does not convert gives 404, HTTPException its status, a value
        that does not fit the handler's types 422, and any other exception a registered
        handler's answer or a logged 500.
        """
        request = Request(head, body, None, interim, self)
        stack = self._stack
        if stack is None:
            response = await self._route_response(request)
        else:
            try:
                response = await stack(request)
            except Exception as exc:  # a middleware failed
                response = await self._answer_error(request, exc)
        if request.deferred is not None:
            response.background = request.deferred.after(response.background)
        if head.method == "HEAD":
            response = _without_body(response)
        return response

    # -- the worker's lane for plain sync handlers --------------------------------------
    #
    # A route whose handler is a plain ``def handler(req)`` (no path parameters, no
    # binder) in an app without middleware is the common sync case. The worker runs
    # it without a Task (covet/_worker.py, _launch): it hands ``sync_lane(head)``'s
    # endpoint to the handler thread itself, then answers from the result with
    # ``sync_response``, or, when that is not a plain answer, through a Task awaiting
    # ``finish_sync``, which does what _handle does after such a handler returns.

    def sync_lane(self, head: RequestHead) -> Callable[..., Any] | None:
        """The endpoint of ``head``'s route if the worker may run it on its sync lane,
        else None. Decided once per (route pattern, method): the patterns are the
        gateway's, from this app's manifest."""
        by_method = self._lanes.get(head.route)
        if by_method is None:
            by_method = self._lanes[head.route] = {}
        try:
            return by_method[head.method]
        except KeyError:
            pass
        endpoint = None
        route = self.router.lookup(head.method, head.route)
        if (self._stack is None and head.method != "HEAD" and route is not None and not route.is_async
                and route.binder is None and not route.kinds):
            endpoint = route.endpoint
        by_method[head.method] = endpoint
        return endpoint

    def sync_response(self, request: Request, result: Any) -> Response | None:
        """The response for a sync-lane handler's ``result``, or None when it needs
        finish_sync (an awaitable, a value to_response refuses, background work)."""
        if request.deferred is not None or (not isinstance(result, _NOT_AWAITABLE) and inspect.isawaitable(result)):
            return None
        try:
            response = to_response(result)
        except Exception:
            return None
        return response if response.background is None else None

    async def finish_sync(self, request: Request, outcome: asyncio.Future[Any]) -> Response:
        """_handle's answer for a sync-lane request whose handler has run: ``outcome``
        holds its result or its exception."""
        try:
            result = outcome.result()
            if not isinstance(result, _NOT_AWAITABLE) and inspect.isawaitable(result):
                result = await result
            response = to_response(result)
        except Exception as exc:
            response = await self._answer_error(request, exc)
        if request.deferred is not None:
            response.background = request.deferred.after(response.background)
        return response

    async def _route_response(self, request: Request) -> Response:
        """The routed handler's response (what a middleware's ``call_next`` gives):
        routing, binding, the handler, its return value converted, its exceptions
        answered."""
        head = request.head
        # One coroutine frame for the handler's part of the request: routing and the
        # handler call are inline (every await of a helper coroutine costs a frame).
        try:
            route = self.router.lookup(head.method, head.route)
            if route is None:
                raise HTTPException(404)
            binder = route.binder
            if binder is not None:
                response = await binder(request, head.params)
            elif not head.params and not route.kinds:
                if route.is_async:
                    response = to_response(await route.endpoint(request))
                else:  # on the handler thread (covet/_sync.py); call()'s steps inline
                    result = await run_sync(route.endpoint, request)
                    if not isinstance(result, _NOT_AWAITABLE) and inspect.isawaitable(result):
                        result = await result
                    response = to_response(result)
            else:
                params = path_params(route.kinds, head.params)
                request.path_params = params
                if route.is_async:
                    response = to_response(await route.endpoint(request, **params))
                else:
                    result = await run_sync(route.endpoint, request, **params)
                    if not isinstance(result, _NOT_AWAITABLE) and inspect.isawaitable(result):
                        result = await result
                    response = to_response(result)
        except Exception as exc:
            response = await self._answer_error(request, exc)
        return response

    async def _answer_error(self, request: Request, exc: Exception) -> Response:
        """The answer to ``exc`` from the exception handlers, or a logged 500 when they
        fail too."""
        try:
            return await self._handle_exception(request, exc)
        except Exception as exc2:  # an exception handler itself failed
            self._log(request, exc2)
            return PlainTextResponse("Internal Server Error", 500)

    async def _handle_exception(self, request: Request, exc: Exception) -> Response:
        if isinstance(exc, RequestValidationError):
            handler = self._class_handler(exc)
            if handler is None:
                return JSONResponse({"detail": exc.errors()}, 422)
        elif isinstance(exc, HTTPException):
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
        result = await call(handler, is_async_callable(handler), request, exc)
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


async def _run_middleware(mw: Middleware, call_next: Callable[[Request], Awaitable[Response]], request: Request) -> Response:
    response = await mw(request, call_next)
    if not isinstance(response, Response):
        raise TypeError(f"middleware {getattr(mw, '__qualname__', mw)!r} returned {type(response).__name__}, not a Response")
    return response


class _StaticFiles:
    """The handler of an app.static route, for an in-process client (TestClient): the
    gateway serves these requests itself and never hands them to a worker. It refuses
    what the gateway refuses (empty and dot segments, backslashes, NUL, a symbolic
    link out of the directory) with the gateway's own 404 (``Not Found`` and a newline,
    as text; the app's exception handlers never see it) and answers with a
    FileResponse."""

    def __init__(self, root: str, index: bool) -> None:
        self.root = root
        self.index = index

    async def __call__(self, request: Request, path: str) -> Response:
        trailing = path == "" or path.endswith("/")
        parts = path.split("/")[:-1] if trailing else path.split("/")
        if path == "":
            parts = []
        if any(p in ("", ".", "..") or "\\" in p or "\x00" in p for p in parts):
            return _not_found()
        real = os.path.realpath(os.path.join(self.root, *parts))
        if real != self.root and not real.startswith(self.root + os.sep):
            return _not_found()
        if os.path.isdir(real):
            if not self.index:
                return _not_found()
            if not trailing:
                query = request.head.query
                return RedirectResponse(request.head.path + "/" + ("?" + query if query else ""), 301)
            real = os.path.join(real, "index.html")
        elif trailing and parts:
            return _not_found()
        if not os.path.isfile(real):
            return _not_found()
        return FileResponse(real)


def _not_found() -> Response:
    return PlainTextResponse("Not Found\n", 404)


def _without_body(response: Response) -> Response:
    """The answer to HEAD: the same status and headers, no body; a known length is kept
    as an explicit Content-Length header (the gateway sends no body for body_length 0).
    A FileResponse is kept: the gateway answers HEAD for the file itself."""
    if isinstance(response, FileResponse):
        return response
    stripped = Response(b"", response.status, background=response.background)
    stripped.headers.raw.extend(response.headers.raw)
    length = response.body_length
    if length > 0 and "content-length" not in stripped.headers:
        stripped.headers.raw.append(("content-length", str(length).encode()))
    return stripped

