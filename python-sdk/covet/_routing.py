"""Routes, the route table, and a Python-side matcher equal to the gateway's router.

In production the gateway routes each request and names the matched pattern; the
matcher here serves covet.testing (and any tool that must route without a gateway).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._binding import NO_DOCS, Binder, Plan, RouteDocs
from ._patterns import ParamKind, Pattern, canonical_path
from ._security import NO_SECURITY, RouteSecurity

__all__ = ["HTTP_METHODS", "MAX_ROUTES", "Route", "Router", "Match", "is_async_callable"]

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
MAX_ROUTES = 4096
WS_KEY = "WS"  # the method key of WebSocket routes in the lookup table


def is_async_callable(fn: Any) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or (
        callable(fn) and inspect.iscoroutinefunction(getattr(fn, "__call__", None))
    )


def timeout_to_ms(timeout: float | None) -> int | None:
    """A per-route timeout in seconds, as whole milliseconds (rounded up)."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"route timeout must be a positive number of seconds, got {timeout!r}")
    if math.isinf(timeout):
        raise ValueError("route timeout must be finite; use None for no per-route timeout")
    return math.ceil(timeout * 1000)


@dataclass(frozen=True, slots=True)
class Route:
    """One registered (method, pattern) -> handler binding. ``kind`` is ``http``, or
    ``ws`` for a WebSocket endpoint (method GET), whose ``resumable`` option the
    manifest carries when it is true (PROTOCOL.md 1.3). A ``ws`` route and an ``http``
    GET route may share one pattern (Router.add): the gateway knows the pair as one
    ``ws`` route with option ``http``."""

    method: str
    pattern: Pattern
    endpoint: Callable[..., Any]
    name: str | None
    timeout_ms: int | None
    is_async: bool
    kinds: dict[str, ParamKind]
    #: The route kind (PROTOCOL.md 1.3): "http", "ws" for app.websocket, "static" for
    #: app.static.
    kind: str = "http"
    resumable: bool = False
    #: Kind-specific manifest options, e.g. a static route's dir and index.
    extra: tuple[tuple[str, Any], ...] = ()
    #: The route's security options (auth, roles, rate limit, CORS, ...), checked.
    security: RouteSecurity = NO_SECURITY
    #: How the handler's parameters are bound (None: a WebSocket or static route).
    plan: Plan | None = None
    #: The compiled binding step, ``await binder(request, raw_params)`` giving the
    #: handler's return value; None when the handler takes only ``(req, **params)``
    #: (the plain call path).
    binder: Binder | None = None
    #: Status code and OpenAPI documentation from the decorator.
    docs: RouteDocs = NO_DOCS

    def manifest_entry(
        self, app_cors: Any = None, app_security_headers: Any = None, http: Route | None = None
    ) -> dict[str, Any]:
        """The route map of the manifest (PROTOCOL.md 1.3); ``app_cors`` and
        ``app_security_headers`` are the app's defaults (option form) for the security
        options the route does not set itself. A static route carries none of them: the
        gateway serves it without the security chain.

        ``http`` is the HTTP GET route sharing a ``ws`` route's pattern: the entry is then
        the pair's one route, with option ``http`` true, the HTTP route's timeout, and its
        name when the WebSocket route has none (their security options are equal)."""
        options: dict[str, Any] = {}
        name = self.name if self.name is not None or http is None else http.name
        if name is not None:
            options["name"] = name
        timeout_ms = self.timeout_ms if http is None else http.timeout_ms
        if timeout_ms is not None:
            options["timeout_ms"] = timeout_ms
        if self.resumable:
            options["resumable"] = True
        if http is not None:
            options["http"] = True
        options.update(self.extra)
        if self.kind != "static":
            options.update(self.security.options(app_cors, app_security_headers))
        return {"method": self.method, "path": self.pattern.canonical, "kind": self.kind,
                "options": options}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Match:
    """A matcher outcome: a route and its raw params, or a status (404, or 405 + allow)."""

    route: Route | None
    params: list[tuple[str, str]]
    status: int = 200
    allow: tuple[str, ...] = ()


class Router:
    """The route table: registration with conflict checks, lookup by (method, pattern).

    A path has one route per method, except that an HTTP GET route and a WebSocket
    route may share a pattern: a plain GET reaches the one, an upgrade the other. The
    gateway knows the pair as one route (the ``ws`` one with option ``http``,
    PROTOCOL.md 1.3), so the pair has one set of security options: they must be equal.
    """

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self._by_key: dict[tuple[str, str], Route] = {}
        # (method, shape) -> route; a WebSocket route's method here is WS_KEY.
        self._by_shape: dict[tuple[str, str], Route] = {}

    def add(self, route: Route) -> None:
        ws = route.kind == "ws"
        shape_key = (WS_KEY if ws else route.method, route.pattern.shape)
        existing = self._by_shape.get(shape_key)
        if existing is None and route.method == "GET":
            # The other side of a GET: a WebSocket route beside an HTTP one.
            existing = self._by_shape.get(("GET" if ws else WS_KEY, route.pattern.shape))
            if existing is not None and self._pairs(existing, route):
                existing = None
        if existing is not None:
            if getattr(existing.endpoint, "__module__", "") == "covet._openapi":
                raise ValueError(
                    f"route {route.method} {route.pattern.source!r} is taken by the app's OpenAPI pages: pass "
                    "Covet(openapi_url=None) and/or docs_url=None (or other URLs) to free it"
                )
            same = existing.pattern.canonical == route.pattern.canonical
            if existing.kind != route.kind:  # GET: an HTTP and a WebSocket route
                raise ValueError(
                    f"route {route.method} {route.pattern.source!r} ({route.kind}) conflicts with the "
                    f"{existing.kind} route {existing.pattern.source!r}: "
                    + ("a static route's path has no other GET route" if "static" in (existing.kind, route.kind) else
                       "an HTTP and a WebSocket route share a path only with the same pattern")  # fmt: skip
                )
            raise ValueError(
                f"route {route.method} {route.pattern.source!r} "
                + ("is already registered" if same else
                   f"conflicts with {existing.method} {existing.pattern.source!r} "
                   "(same path shape; a request could match either)")  # fmt: skip
            )
        if len(self.routes) >= MAX_ROUTES:
            raise ValueError(f"an app may register at most {MAX_ROUTES} routes")
        self.routes.append(route)
        self._by_shape[shape_key] = route
        # A WebSocket route is found only by lookup_ws: an HTTP request never reaches
        # its handler.
        method = WS_KEY if ws else route.method
        self._by_key[(method, route.pattern.canonical)] = route
        self._by_key.setdefault((method, route.pattern.source), route)

    @staticmethod
    def _pairs(existing: Route, route: Route) -> bool:
        """Whether ``route`` and ``existing`` (GET routes of one shape, one of them a
        WebSocket route) may share their pattern: the other is an HTTP route, the
        patterns are the same, and so are the security options (raises if not)."""
        if (
            {existing.kind, route.kind} != {"http", "ws"}
            or existing.pattern.canonical != route.pattern.canonical
            or getattr(existing.endpoint, "__module__", "") == "covet._openapi"
        ):
            return False
        if existing.security != route.security:
            raise ValueError(
                f"route GET {route.pattern.source!r} ({route.kind}) and the {existing.kind} route "
                f"{existing.pattern.source!r} are one route at the gateway, so their security options must be "
                f"the same: {route.security.options()} here, {existing.security.options()} there"
            )
        return True

    def http_side(self, route: Route) -> Route | None:
        """The HTTP GET route that shares a WebSocket route's pattern, if any."""
        if route.kind != "ws":
            return None
        return self._by_key.get(("GET", route.pattern.canonical))

    def manifest(self, app_cors: Any = None, app_security_headers: Any = None) -> list[dict[str, Any]]:
        """The manifest's route maps (PROTOCOL.md 1.3), in registration order: an HTTP
        GET route and a WebSocket route on one pattern are one entry, the WebSocket
        route's with option ``http``, where the WebSocket route was registered."""
        out = []
        for route in self.routes:
            if route.kind == "http" and route.method == "GET" and (WS_KEY, route.pattern.canonical) in self._by_key:
                continue  # sent as its WebSocket route's http side
            out.append(route.manifest_entry(app_cors, app_security_headers, self.http_side(route)))
        return out

    def lookup_ws(self, pattern: str) -> Route | None:
        """The WebSocket route the gateway matched for a WS_OPEN."""
        return self._by_key.get((WS_KEY, pattern))

    def lookup(self, method: str, pattern: str) -> Route | None:
        """The HTTP route the gateway matched; HEAD falls back to the GET route."""
        route = self._by_key.get((method, pattern))
        if route is None and method == "HEAD":
            route = self._by_key.get(("GET", pattern))
        return route

    def match(self, method: str, raw_path: str) -> Match:
        """Route a raw request path like the gateway's router: static > typed > str >
        catch-all per segment; HEAD may use a GET route; an unrouted OPTIONS gets 204 and
        another method 405, both with Allow (the path's methods, HEAD with GET, and
        OPTIONS, sorted); 404 if no pattern matches. A GET for a pattern with an HTTP and
        a WebSocket route matches the WebSocket one, as at the gateway (its HTTP side is
        :meth:`http_side`)."""
        if not raw_path.startswith("/"):
            return Match(None, [], 404)
        segments = canonical_path(raw_path)[1:].split("/")
        best: dict[str, tuple[tuple[int, ...], Route, list[tuple[str, str]]]] = {}
        for route in self.routes:
            if route.kind == "http" and route.method == "GET" and (WS_KEY, route.pattern.canonical) in self._by_key:
                continue  # the gateway's table holds the pair as its WebSocket route
            found = route.pattern.match(segments)
            if found is None:
                continue
            key, params = found
            current = best.get(route.method)
            if current is None or key < current[0]:
                best[route.method] = (key, route, params)
        chosen = best.get(method) or (best.get("GET") if method == "HEAD" else None)
        if chosen is not None:
            return Match(chosen[1], chosen[2])
        if not best:
            return Match(None, [], 404)
        allowed = set(best) | {"OPTIONS"}
        if "GET" in allowed:
            allowed.add("HEAD")
        return Match(None, [], 204 if method == "OPTIONS" else 405, tuple(sorted(allowed)))
