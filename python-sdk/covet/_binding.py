"""Handler signatures compiled into binding plans: which parameter comes from where.

At registration ``compile_plan`` reads a handler's signature and type hints once and
decides, per parameter: the request (annotated ``Request``, or the first positional
parameter when it is unannotated and not a path parameter), a path parameter, a query,
header or cookie value, the body, a dependency (``Depends``), the request's
``BackgroundTasks``, or the ``Response`` whose headers and cookies the handler may set.
Per request only the compiled steps run; a handler that takes just ``(req, **path
params)`` keeps the plain call path with no binding step at all.

The plan is also what the OpenAPI document is generated from (covet._openapi).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
import collections.abc
import contextlib
import dataclasses
import functools
import inspect
import logging
import sys
import types
import typing
import uuid
from typing import Any

import msgspec

from ._exceptions import HTTPException
from ._params import (
    REQUIRED,
    BackgroundTasks,
    BodyParam,
    Dependency,
    HeaderParam,
    Param,
    PathParam,
)
from ._patterns import ConversionError, ParamKind, Pattern, convert
from ._request import Request
from ._responses import Response, to_response
from ._security import SecurityOptions
from ._sync import run_sync
from ._validation import BodyDecoder, BodyField, Invalid, RequestValidationError, body_decoder, scalar_converter

error_log = logging.getLogger("covet.error")

#: A compiled binding step: ``await binder(request, raw_path_params)`` is the response.
Binder = Callable[[Request, list[str]], Awaitable[Response]]

__all__ = ["Binder", "Deferred", "FieldSpec", "BodySpec", "Plan", "RouteDocs", "NO_DOCS", "RouteOptions", "call", "path_params", "run_background",
           "check_signature", "compile_handler", "route_docs"]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A parameter bound from the path, the query string, a header or a cookie (the
    handler's own or one of its dependencies')."""

    #: The Python parameter name.
    name: str
    #: The name on the wire: the query key, the header name (lower-case), the cookie
    #: name, or the path parameter's name.
    alias: str
    #: "path", "query", "header" or "cookie".
    source: str
    #: The declared type with ``Annotated`` and ``Optional`` taken off: ``int``,
    #: ``list[int]``, an Enum class, ...
    tp: Any
    #: True when None is allowed (``X | None``).
    optional: bool
    required: bool
    #: The default when not required (REQUIRED when required).
    default: Any
    #: The marker (Query(...), Header(...), ...) when the parameter has one; its
    #: ``constraints``, ``description``, ``title``, ``examples``, ``deprecated`` and
    #: ``include_in_schema`` document the parameter.
    info: Param | None = None


@dataclass(frozen=True, slots=True)
class BodySpec:
    """The request body a handler takes: one typed parameter (``tp``), or several
    embedded ones (``fields``, each FieldSpec with source "body" and the JSON member's
    name as alias)."""

    tp: Any
    fields: tuple[FieldSpec, ...]
    required: bool
    media_type: str = "application/json"
    info: Param | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """How one handler's parameters are bound; what OpenAPI reads."""

    #: Every path, query, header and cookie parameter, the dependencies' included, once
    #: per (source, alias): the handler's own, then its dependencies'.
    fields: tuple[FieldSpec, ...] = ()
    body: BodySpec | None = None
    #: The handler's return annotation (inspect.Signature.empty when none).
    return_type: Any = None


@dataclass(frozen=True, slots=True)
class RouteDocs:
    """A route's documentation and success status, from the decorator's arguments
    (FastAPI's names) and the handler's docstring.

    ``status_code``: the status of a successful response built from the handler's return
    value (a returned Response keeps its own). ``responses``: extra documented
    responses, ``{404: {"description": "...", "model": SomeStruct}}`` (the ``model``, or
    a ready ``content`` map, gives the schema). ``response_model``: the type the return
    value is converted to before it is sent (fields it does not declare are dropped)
    and documented as; when absent the return annotation documents the response."""

    status_code: int | None = None
    tags: tuple[str, ...] = ()
    summary: str | None = None
    description: str | None = None
    responses: dict[int | str, dict[str, Any]] = field(default_factory=dict)
    response_model: Any = None
    deprecated: bool = False
    include_in_schema: bool = True
    operation_id: str | None = None


NO_DOCS = RouteDocs()


class RouteOptions(SecurityOptions, total=False):
    """The keywords every route decorator takes; :meth:`covet.Covet.route` documents
    them."""

    name: str | None
    timeout: float | None
    sync_to_thread: bool
    dependencies: Sequence[Any]
    status_code: int | None
    status: int | None
    tags: Sequence[str]
    summary: str | None
    description: str | None
    responses: Mapping[int | str, Mapping[str, Any]]
    response_model: Any
    deprecated: bool
    include_in_schema: bool
    operation_id: str | None


_DOC_KEYS = ("status_code", "status", "tags", "summary", "description", "responses", "response_model",
             "deprecated", "include_in_schema", "operation_id")  # fmt: skip


def route_docs(where: str, options: dict[str, Any]) -> RouteDocs:
    """Take the documentation keywords out of ``options`` (leaving the security ones)
    and check them; bad values raise TypeError or ValueError naming ``where``."""
    got = {k: options.pop(k) for k in _DOC_KEYS if k in options}
    status = got.pop("status", None)
    code = got.pop("status_code", None)
    if status is not None and code is not None and status != code:
        raise ValueError(f"{where}: status={status!r} and status_code={code!r} disagree; give one")
    code = code if code is not None else status
    if code is not None and (isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599):
        raise ValueError(f"{where}: status_code must be an int in 100..599, got {code!r}")
    tags = got.get("tags", ())
    if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
        raise TypeError(f"{where}: tags must be a list of str, got {tags!r}")
    for key in ("summary", "description", "operation_id"):
        if got.get(key) is not None and not isinstance(got[key], str):
            raise TypeError(f"{where}: {key} must be a str, got {type(got[key]).__name__}")
    responses: dict[int | str, dict[str, Any]] = {}
    for status_key, spec in dict(got.get("responses") or {}).items():
        if not isinstance(spec, Mapping):
            raise TypeError(f"{where}: responses[{status_key!r}] must be a mapping (description, model, content)")
        responses[status_key] = dict(spec)
    return RouteDocs(
        status_code=code,
        tags=tuple(tags),
        summary=got.get("summary"),
        description=got.get("description"),
        responses=responses,
        response_model=got.get("response_model"),
        deprecated=bool(got.get("deprecated", False)),
        include_in_schema=bool(got.get("include_in_schema", True)),
        operation_id=got.get("operation_id"),
    )


def check_signature(endpoint: Callable[..., Any], pattern: Pattern) -> None:
    """Reject, at registration, a handler that cannot be called as ``f(req, **params)``."""
    try:
        sig = inspect.signature(endpoint)
    except (TypeError, ValueError):
        return  # not introspectable (some builtins): trust the caller
    where = f"handler {getattr(endpoint, '__qualname__', endpoint)!r} for {pattern.source!r}"
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    has_var_pos = any(p.kind is p.VAR_POSITIONAL for p in params)
    if not positional and not has_var_pos:
        raise TypeError(f"{where} must take the request as its first positional argument")
    first = positional[0] if positional else None
    has_var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    by_name = {p.name: p for p in params}
    for name in pattern.param_names:
        p = by_name.get(name)
        if p is first or (p is not None and p.kind is p.POSITIONAL_ONLY):
            raise TypeError(f"{where}: path parameter {name!r} clashes with the request argument")
        if p is None and not has_var_kw:
            raise TypeError(f"{where} has no parameter named {name!r} (nor **kwargs)")
    for p in params:
        if p is first or p.default is not p.empty:
            continue
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in pattern.param_names:
            continue
        raise TypeError(f"{where}: required parameter {p.name!r} is not a path parameter")


# -- compiling a handler's signature ------------------------------------------------------

_REQUEST, _PATH, _QUERY, _HEADER, _COOKIE, _BODY, _DEP, _TASKS, _RESPONSE, _KWARGS = range(10)
_SOURCE_KIND = {"path": _PATH, "query": _QUERY, "header": _HEADER, "cookie": _COOKIE}
#: The type a route pattern's parameter kind already converts to: such a path
#: parameter needs no second conversion.
_KIND_TYPE: dict[str, Any] = {"int": int, "uuid": uuid.UUID, "str": str, "path": str}
_NO_ANNOTATION = inspect.Parameter.empty


async def call(fn: Callable[..., Any], is_async: bool, *args: Any, **kwargs: Any) -> Any:
    """Await an async callable; run a sync one on the loop's handler thread (context
    kept; covet._sync), awaiting what it returns if that is awaitable."""
    if is_async:
        return await fn(*args, **kwargs)
    result = await run_sync(fn, *args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


@dataclass(slots=True)
class _Bound:
    """One parameter of a callable and how it is filled."""

    kind: int
    name: str
    spec: FieldSpec | None = None
    #: _PATH/_QUERY/_HEADER/_COOKIE: str -> value (None: the raw string as it is).
    convert: Callable[[str], Any] | None = None
    many: bool = False
    dep: _Callee | None = None
    use_cache: bool = True


class _Callee:
    """A handler or a dependency, compiled: its parameters and how to call it."""

    def __init__(self, fn: Callable[..., Any], pattern: Pattern, where: str, top: bool, seen: tuple[Any, ...]) -> None:
        self.fn = fn
        self.where = where
        #: "async", "sync", "agen" (async generator) or "gen" (generator).
        self.mode = _call_mode(fn)
        #: A generator dependency as a context manager factory (wrapped once, here).
        self.context: Callable[..., Any] = (contextlib.asynccontextmanager(fn) if self.mode == "agen"
                                            else contextlib.contextmanager(fn) if self.mode == "gen" else fn)  # fmt: skip
        self.params: list[_Bound] = []
        self.body: BodySpec | None = None
        self.decoder: BodyDecoder | None = None
        self.return_type: Any = _NO_ANNOTATION
        self._compile(pattern, top, seen)
        #: The parameter a single (not embedded) body is passed as.
        self.body_name = next((b.name for b in self.params if b.kind == _BODY), "")
        #: Dependencies first, then path, query, header and cookie values, in the order
        #: FastAPI reports their errors.
        order = {_DEP: 0, _PATH: 1, _QUERY: 2, _HEADER: 3, _COOKIE: 4}
        self.steps = sorted((b for b in self.params if b.kind in order), key=lambda b: order[b.kind])
        #: The parameters given what the request already has: itself, its task list,
        #: its Response, and (``**kwargs``) the path parameters no other one takes.
        self.given = [b for b in self.params if b.kind in (_REQUEST, _TASKS, _RESPONSE, _KWARGS)]
        self.bound_names = frozenset(b.name for b in self.params)

    def _compile(self, pattern: Pattern, top: bool, seen: tuple[Any, ...]) -> None:
        target = self.fn.__init__ if inspect.isclass(self.fn) else self.fn
        try:
            sig = inspect.signature(self.fn)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{self.where}: cannot read its signature ({e})") from None
        hints = _hints(target, self.where)
        self.return_type = hints.get("return", _NO_ANNOTATION)
        path_names = set(pattern.param_names)
        kinds = pattern.kinds()
        body: list[tuple[inspect.Parameter, Any, bool, Param | None]] = []
        first = True
        for p in sig.parameters.values():
            if p.kind is p.VAR_POSITIONAL:
                continue
            if p.kind is p.VAR_KEYWORD:
                if top:
                    self.params.append(_Bound(_KWARGS, p.name))
                continue
            annotation = hints.get(p.name, _NO_ANNOTATION)
            tp, optional, marker = _unwrap(annotation)
            default = p.default
            if isinstance(default, (Param, Dependency)):
                if marker is not None:
                    raise TypeError(f"{self.where}: parameter {p.name!r} has a marker both in Annotated and as its default")
                marker, default = default, (default.default if isinstance(default, Param) else _NO_ANNOTATION)
            elif isinstance(marker, Param) and default is not _NO_ANNOTATION:
                if not marker.required:
                    raise TypeError(f"{self.where}: parameter {p.name!r} has a default both in {type(marker).__name__}() and after '='")
            elif isinstance(marker, Param):
                default = marker.default
            was_first, first = first, False
            if marker is None and p.kind is not p.KEYWORD_ONLY and p.name not in path_names:
                if was_first and (tp in (_NO_ANNOTATION, Any, object) or _is_request_type(tp)):
                    self.params.append(_Bound(_REQUEST, p.name))
                    continue
            if marker is None and _is_request_type(tp):
                self.params.append(_Bound(_REQUEST, p.name))
                continue
            if isinstance(marker, Dependency):
                fn = marker.dependency if marker.dependency is not None else tp
                if not callable(fn):
                    raise TypeError(f"{self.where}: Depends() on parameter {p.name!r} needs a callable or a class annotation")
                if fn in seen:
                    raise TypeError(f"{self.where}: dependency cycle through {_name(fn)}")
                dep = _Callee(fn, pattern, f"dependency {_name(fn)} of {self.where}", False, (*seen, fn))
                self.params.append(_Bound(_DEP, p.name, dep=dep, use_cache=marker.use_cache))
                continue
            if tp is BackgroundTasks:
                self.params.append(_Bound(_TASKS, p.name))
                continue
            if tp is Response:
                self.params.append(_Bound(_RESPONSE, p.name))
                continue
            required = default is _NO_ANNOTATION or default is REQUIRED or default is ...
            value_default = REQUIRED if required else default
            if p.name in path_names and (marker is None or isinstance(marker, PathParam)):
                natural = _KIND_TYPE[kinds[p.name]]
                has_rules = isinstance(marker, Param) and not marker.constraints.empty()
                plain = tp in (_NO_ANNOTATION, Any, object, natural) and not has_rules
                if not plain and kinds[p.name] not in ("str", "path"):
                    tp_conv = tp if tp not in (_NO_ANNOTATION, Any, object) else natural
                else:
                    tp_conv = tp if tp not in (_NO_ANNOTATION, Any, object) else str
                converter = None if plain else self._converter(p.name, tp_conv, marker)
                spec = FieldSpec(p.name, p.name, "path", tp_conv if tp is not _NO_ANNOTATION else natural,
                                 optional, True, REQUIRED, marker if isinstance(marker, Param) else None)  # fmt: skip
                self.params.append(_Bound(_PATH, p.name, spec, converter))
                continue
            if isinstance(marker, PathParam):
                raise TypeError(f"{self.where}: parameter {p.name!r} is declared Path() but the route has no {{{p.name}}}")
            source = marker.source if isinstance(marker, Param) else ("body" if _is_body_type(tp) else "query")
            if source == "body":
                if not top:
                    raise TypeError(f"{self.where}: parameter {p.name!r} is a request body; only the handler takes one")
                body.append((p, tp, required, marker if isinstance(marker, Param) else None))
                self.params.append(_Bound(_BODY, p.name))
                continue
            many, item = _sequence_item(tp)
            if tp is _NO_ANNOTATION:
                item = str
            converter = self._converter(p.name, item, marker if isinstance(marker, Param) else None)
            alias = marker.alias if isinstance(marker, Param) and marker.alias else p.name
            if source == "header":
                convert_underscores = not isinstance(marker, HeaderParam) or marker.convert_underscores
                if not (isinstance(marker, Param) and marker.alias) and convert_underscores:
                    alias = alias.replace("_", "-")
                alias = alias.lower()
            if many and value_default is not REQUIRED and value_default is not None:
                value_default = list(value_default)
            spec = FieldSpec(p.name, alias, source, tp if tp is not _NO_ANNOTATION else str, optional, required,
                             value_default, marker if isinstance(marker, Param) else None)  # fmt: skip
            self.params.append(_Bound(_SOURCE_KIND[source], p.name, spec, converter, many))
        if body:
            self._compile_body(body)

    def _converter(self, name: str, tp: Any, marker: Any) -> Callable[[str], Any]:
        constraints = marker.constraints if isinstance(marker, Param) else None
        try:
            return scalar_converter(tp, constraints)
        except TypeError as e:
            raise TypeError(f"{self.where}: parameter {name!r}: {e}") from None

    def _compile_body(self, body: list[tuple[inspect.Parameter, Any, bool, Param | None]]) -> None:
        embed = len(body) > 1 or any(isinstance(m, BodyParam) and m.embed for _, _, _, m in body)
        media_type = next((m.media_type for _, _, _, m in body if isinstance(m, BodyParam)), "application/json")
        try:
            if embed:
                fields = tuple(
                    FieldSpec(p.name, (m.alias if m is not None and m.alias else p.name), "body", tp, False, required,
                              REQUIRED if required else p.default if not isinstance(p.default, Param) else m.default if m else None,
                              m)  # fmt: skip
                    for p, tp, required, m in body
                )
                self.body = BodySpec(None, fields, any(f.required for f in fields), media_type)
                self.decoder = body_decoder(
                    None, fields=[BodyField(f.alias, _constrained(f.tp, f.info), f.required, f.default) for f in fields]
                )
            else:
                p, tp, required, m = body[0]
                default = None if required else (m.default if m is not None else p.default)
                self.body = BodySpec(tp, (), required, media_type, m)
                self.decoder = body_decoder(_constrained(tp, m), required=required, default=default)
        except TypeError as e:
            raise TypeError(f"{self.where}: body parameter: {e}") from None

    # -- per request --------------------------------------------------------------------

    async def solve(self, ctx: _Context) -> Any:
        """Bind this callable's parameters for ``ctx``'s request and call it; on a value
        that does not convert, add the errors to ``ctx.errors`` and return _FAILED
        without calling it."""
        kwargs: dict[str, Any] = {}
        errors = ctx.errors
        before = len(errors)
        request = ctx.request
        for b in self.steps:
            kind = b.kind
            if kind == _DEP:
                dep = b.dep
                assert dep is not None
                key = dep.fn
                if ctx.overrides:
                    dep = ctx.override(dep)
                if b.use_cache and key in ctx.cache:
                    value = ctx.cache[key]
                else:
                    value = await dep.solve(ctx)
                    if b.use_cache and value is not _FAILED:
                        ctx.cache[key] = value
                if b.name:  # a route's dependencies=[...] are run for their effect only
                    kwargs[b.name] = value
                continue
            spec = b.spec
            assert spec is not None
            if kind == _PATH:
                raw = ctx.path[spec.alias]
                if b.convert is not None:
                    try:
                        raw = b.convert(raw if isinstance(raw, str) else str(raw))
                    except Invalid as e:
                        errors.append(e.error(("path", spec.alias), raw))
                        continue
                kwargs[b.name] = raw
                continue
            if kind == _QUERY:
                values: list[str] | str | None = request.query_params.getlist(spec.alias)
                if not b.many:  # a repeated key gives a scalar its last value, as FastAPI does
                    values = values[-1] if values else None
            elif kind == _HEADER:
                values = request.headers.getlist(spec.alias) if b.many else request.headers.get(spec.alias)
            else:
                values = request.cookies.get(spec.alias)
            loc_source = spec.source
            if values is None or (b.many and not values):
                if spec.required:
                    errors.append({"type": "missing", "loc": [loc_source, spec.alias], "msg": "Field required", "input": None})
                else:
                    default = spec.default
                    kwargs[b.name] = list(default) if b.many and isinstance(default, list) else default
                continue
            convert = b.convert
            assert convert is not None
            if b.many:
                assert isinstance(values, list)
                out = []
                for i, v in enumerate(values):
                    try:
                        out.append(convert(v))
                    except Invalid as e:
                        errors.append(e.error((loc_source, spec.alias, i), v))
                kwargs[b.name] = out
            else:
                assert isinstance(values, str)
                try:
                    kwargs[b.name] = convert(values)
                except Invalid as e:
                    errors.append(e.error((loc_source, spec.alias), values))
        for b in self.given:
            kind = b.kind
            if kind == _REQUEST:
                kwargs[b.name] = request
            elif kind == _TASKS:
                kwargs[b.name] = ctx.tasks()
            elif kind == _RESPONSE:
                kwargs[b.name] = ctx.response()
            else:  # **kwargs
                kwargs.update((k, v) for k, v in ctx.path.items() if k not in self.bound_names)
        if self.decoder is not None:
            try:
                data = await request.body()
                value = self.decoder.decode(data, request.content_type)
            except RequestValidationError as e:
                errors.extend(e.errors())
            else:
                assert self.body is not None
                if self.body.fields:
                    kwargs.update((f.name, value[f.alias]) for f in self.body.fields)
                else:
                    kwargs[self.body_name] = value
        if len(errors) > before:
            return _FAILED
        mode = self.mode
        if mode == "async":
            return await self.fn(**kwargs)
        if mode == "sync":
            return await call(self.fn, False, **kwargs)
        stack = ctx.exit_stack()
        if mode == "agen":
            return await stack.enter_async_context(self.context(**kwargs))
        cm = self.context(**kwargs)
        value = await call(cm.__enter__, False)
        stack.push_async_exit(functools.partial(_exit_in_thread, cm))
        return value

    def fields(self) -> list[FieldSpec]:
        """Every path, query, header and cookie parameter, once per (source, alias): the
        callable's own, then each dependency's (the order FastAPI's OpenAPI document
        lists them in)."""
        out: list[FieldSpec] = []
        seen: set[tuple[str, str]] = set()
        own = [b.spec for b in self.steps if b.dep is None and b.spec is not None]
        for spec in own + [spec for b in self.steps if b.dep is not None for spec in b.dep.fields()]:
            if (spec.source, spec.alias) not in seen:
                seen.add((spec.source, spec.alias))
                out.append(spec)
        return out


async def _exit_in_thread(cm: contextlib.AbstractContextManager[Any], *exc: Any) -> bool | None:
    result: bool | None = await call(cm.__exit__, False, *exc)
    return result


class _Failed:
    pass


_FAILED: Any = _Failed()


class _Context:
    """One request's binding state: its converted path parameters, the dependency
    cache, the errors found, and what must run after the response."""

    __slots__ = ("request", "path", "cache", "errors", "overrides", "deferred", "compiled", "temp_response")

    def __init__(self, request: Request, path: dict[str, Any], overrides: dict[Any, Any],
                 compiled: dict[Any, _Callee]) -> None:  # fmt: skip
        self.request = request
        self.path = path
        self.cache: dict[Any, Any] = {}
        self.errors: list[dict[str, Any]] = []
        self.overrides = overrides
        self.compiled = compiled
        self.deferred: Deferred | None = None
        self.temp_response: Response | None = None

    def _deferred(self) -> Deferred:
        if self.deferred is None:
            self.deferred = Deferred(self.request.head.request_id)
            self.request.deferred = self.deferred
        return self.deferred

    def tasks(self) -> BackgroundTasks:
        return self._deferred().tasks()

    def exit_stack(self) -> contextlib.AsyncExitStack:
        return self._deferred().exit_stack()

    def response(self) -> Response:
        if self.temp_response is None:
            self.temp_response = Response()
        return self.temp_response

    def override(self, dep: _Callee) -> _Callee:
        replacement = self.overrides.get(dep.fn)
        if replacement is None:
            return dep
        compiled = self.compiled.get(replacement)
        if compiled is None:
            compiled = _Callee(replacement, _EMPTY_PATTERN, f"override {_name(replacement)} of {_name(dep.fn)}", False, ())
            self.compiled[replacement] = compiled
        return compiled


class Deferred:
    """What runs after a request's response has been sent: its background tasks, then
    its dependencies' cleanup (the code after ``yield``), in reverse order."""

    __slots__ = ("request_id", "_tasks", "_stack")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self._tasks: BackgroundTasks | None = None
        self._stack: contextlib.AsyncExitStack | None = None

    def tasks(self) -> BackgroundTasks:
        if self._tasks is None:
            self._tasks = BackgroundTasks()
            self._tasks.request_id = self.request_id
        return self._tasks

    def exit_stack(self) -> contextlib.AsyncExitStack:
        if self._stack is None:
            self._stack = contextlib.AsyncExitStack()
        return self._stack

    async def unwind(self, exc: BaseException) -> None:
        """Leave the dependencies' contexts with the exception the request failed with
        (a generator dependency sees it raised at its ``yield``); the exception itself
        goes on to the app's handling whatever they do."""
        stack, self._stack = self._stack, None
        self._tasks = None
        if stack is not None:
            try:
                await stack.__aexit__(type(exc), exc, exc.__traceback__)
            except Exception as e:
                if e is not exc:
                    _log_after(self.request_id, "a dependency's cleanup failed", e)

    def after(self, background: Callable[[], Awaitable[None]] | None) -> Callable[[], Awaitable[None]] | None:
        """The response's background work: ``background`` (the response's own), this
        request's tasks, then the cleanup. None when there is nothing to run."""
        if self._tasks is None and self._stack is None:
            return background
        return functools.partial(self._run, background)

    async def _run(self, background: Callable[[], Awaitable[None]] | None) -> None:
        try:
            if background is not None:
                try:
                    await background()
                except Exception as e:
                    _log_after(self.request_id, "the response's background task failed", e)
            if self._tasks is not None:
                await self._tasks()
        finally:
            if self._stack is not None:
                try:
                    await self._stack.aclose()
                except Exception as e:
                    _log_after(self.request_id, "a dependency's cleanup failed", e)


async def run_background(background: Callable[[], Awaitable[None]], request_id: str) -> None:
    """Run a response's ``background`` once it has been sent (the worker and the
    TestClient call this); a failure is logged with the request id, never raised."""
    try:
        await background()
    except Exception as e:
        _log_after(request_id, "the response's background work failed", e)


def _log_after(request_id: str, what: str, exc: BaseException) -> None:
    error_log.error("%s (request_id=%s)", what, request_id, exc_info=exc, extra={"request_id": request_id})


_EMPTY_PATTERN = Pattern.parse("/")


def compile_handler(
    endpoint: Callable[..., Any], pattern: Pattern, docs: RouteDocs, app: Any, dependencies: Sequence[Any] = ()
) -> tuple[Plan, Binder | None]:
    """The binding plan of ``endpoint`` for ``pattern`` and its binder (None: the plain
    ``(req, **params)`` call path serves it). ``dependencies`` (the route's
    ``dependencies=[Depends(check)]``) run before the handler's own, their values
    unused. Raises TypeError naming the handler and the parameter when a parameter
    cannot be bound."""
    where = f"handler {_name(endpoint)!r} for {pattern.source!r}"
    callee = _Callee(endpoint, pattern, where, True, ())
    extra = []
    for marker in dependencies:
        if not isinstance(marker, Dependency) or marker.dependency is None:
            raise TypeError(f"{where}: dependencies must be a list of Depends(callable), got {marker!r}")
        dep = _Callee(marker.dependency, pattern, f"dependency {_name(marker.dependency)} of {where}", False,
                      (marker.dependency,))  # fmt: skip
        extra.append(_Bound(_DEP, "", dep=dep, use_cache=marker.use_cache))
    callee.steps[:0] = extra
    fields = tuple(callee.fields())
    names = {b.spec.name for b in callee.params if b.kind == _PATH and b.spec is not None}
    missing = [n for n in pattern.param_names if n not in names]
    if missing and not any(b.kind == _KWARGS for b in callee.params):
        raise TypeError(f"{where} has no parameter named {missing[0]!r} (nor **kwargs)")
    plan = Plan(fields, callee.body, callee.return_type)
    plain = (
        not extra
        and callee.mode in ("async", "sync")
        and docs.status_code is None
        and docs.response_model is None
        and callee.params[:1] and callee.params[0].kind == _REQUEST
        and all(b.kind in (_PATH, _KWARGS) and b.convert is None for b in callee.params[1:])
    )
    if plain:
        return plan, None
    return plan, _make_binder(callee, pattern.kinds(), docs, app)


def path_params(kinds: dict[str, ParamKind], flat: list[str]) -> dict[str, Any]:
    """The gateway's raw path parameters (``[name, value, ...]``) converted to the
    route pattern's types; 404 if one does not convert or they do not match the
    pattern's parameters."""
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


def _make_binder(callee: _Callee, kinds: dict[str, ParamKind], docs: RouteDocs, app: Any) -> Binder:
    status = docs.status_code
    model = docs.response_model
    convert_result = _result_converter(model) if model is not None else None
    #: The compiled overrides of dependencies (app.dependency_overrides), by function.
    compiled: dict[Any, _Callee] = {}

    async def bind(request: Request, flat: list[str]) -> Response:
        path = path_params(kinds, flat)
        request.path_params = path
        ctx = _Context(request, path, app.dependency_overrides, compiled)
        try:
            result = await callee.solve(ctx)
            if result is _FAILED:
                raise RequestValidationError(ctx.errors)
        except BaseException as exc:
            if ctx.deferred is not None:
                request.deferred = None
                await ctx.deferred.unwind(exc)
            raise
        if isinstance(result, Response):
            return result
        if convert_result is not None:
            result = convert_result(result)
        response = to_response(result, status)
        temp = ctx.temp_response
        if temp is not None:
            if temp.status != 200:
                response.status = temp.status
            response.headers.raw.extend(temp.headers.raw)
        return response

    return bind



# -- reading annotations ------------------------------------------------------------------


def _name(fn: Any) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn))


def _call_mode(fn: Any) -> str:
    target = fn
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.isclass(target):
        return "sync"
    if inspect.isasyncgenfunction(target):
        return "agen"
    if inspect.isgeneratorfunction(target):
        return "gen"
    if inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(getattr(target, "__call__", None)):
        return "async"
    call_method = getattr(target, "__call__", None)
    if inspect.isasyncgenfunction(call_method):
        return "agen"
    if inspect.isgeneratorfunction(call_method):
        return "gen"
    return "sync"


def _hints(fn: Any, where: str) -> dict[str, Any]:
    """The callable's annotations, strings resolved in its module (``Annotated`` kept).
    An annotation that does not resolve raises TypeError naming it; the return
    annotation is only documentation, so one that does not resolve is dropped."""
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception:
        pass
    raw = dict(getattr(fn, "__annotations__", {}) or {})
    glob = getattr(inspect.unwrap(fn), "__globals__", {})
    out: dict[str, Any] = {}
    for name, ann in raw.items():
        if isinstance(ann, str):
            try:
                ann = eval(ann, dict(glob))  # noqa: S307 - the module's own annotation text
            except Exception as e:
                if name == "return":
                    continue
                raise TypeError(
                    f"{where}: the annotation {ann!r} of parameter {name!r} does not resolve ({e}); define the type "
                    "at module level, or do not use `from __future__ import annotations` for it"
                ) from None
        out[name] = ann
    return out


def _unwrap(annotation: Any) -> tuple[Any, bool, Any]:
    """``(type, optional, marker)``: Annotated taken apart (its first Param or
    Dependency is the marker), then ``X | None`` (Optional) to X."""
    marker = None
    tp = annotation
    if typing.get_origin(tp) is typing.Annotated:
        for extra in tp.__metadata__:
            if isinstance(extra, (Param, Dependency)):
                marker = extra
                break
        tp = tp.__origin__
    optional = False
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)):
            optional = True
            tp = args[0] if len(args) == 1 else typing.Union[tuple(args)]
    if typing.get_origin(tp) is typing.Annotated:  # Optional[Annotated[...]]
        if marker is None:
            marker = next((x for x in tp.__metadata__ if isinstance(x, (Param, Dependency))), None)
        tp = tp.__origin__
    return tp, optional, marker


def _is_request_type(tp: Any) -> bool:
    from ._request import HTTPConnection

    return inspect.isclass(tp) and issubclass(tp, HTTPConnection)


def _is_body_type(tp: Any) -> bool:
    """A model type (Struct, dataclass, TypedDict, pydantic), a dict, or a list of
    those: what FastAPI reads from the body rather than the query string."""
    origin = typing.get_origin(tp) or tp
    if origin in (dict, collections.abc.Mapping):
        return True
    if origin in (list, set, frozenset, tuple, collections.abc.Sequence):
        args = typing.get_args(tp)
        return bool(args) and _is_body_type(_unwrap(args[0])[0])
    if not inspect.isclass(tp):
        return False
    if issubclass(tp, msgspec.Struct) or dataclasses.is_dataclass(tp) or typing.is_typeddict(tp):
        return True
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and issubclass(tp, pydantic.BaseModel)


def _sequence_item(tp: Any) -> tuple[bool, Any]:
    """``(True, T)`` for ``list[T]`` (also set, frozenset, tuple[T, ...], Sequence[T]): a
    query, header or cookie parameter that takes every value of its name."""
    origin = typing.get_origin(tp)
    if origin in (list, set, frozenset, tuple, collections.abc.Sequence) or tp in (list, set, frozenset, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return True, _unwrap(args[0])[0] if args else str
    return False, tp


def _result_converter(model: Any) -> Callable[[Any], Any]:
    """Converts a handler's return value to ``response_model`` (fields the model does
    not declare dropped); a value that does not fit raises (a 500: the handler broke
    its own contract)."""
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and inspect.isclass(model) and issubclass(model, pydantic.BaseModel):
        adapter = pydantic.TypeAdapter(model)

        def convert_pydantic(value: Any) -> Any:
            return adapter.validate_python(value, from_attributes=True)

        return convert_pydantic

    def convert_msgspec(value: Any) -> Any:
        if not isinstance(value, (dict, list, str, int, float, bool, type(None))):
            value = msgspec.to_builtins(value, enc_hook=_builtins_hook)
        return msgspec.convert(value, model, strict=False)

    return convert_msgspec


def _builtins_hook(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump()
    if hasattr(value, "__dict__"):
        return {k: v for k, v in vars(value).items() if not k.startswith("_")}
    raise TypeError(f"cannot convert {type(value).__name__} to the response model")


def _constrained(tp: Any, marker: Param | None) -> Any:
    """``tp`` with a ``Body(...)`` marker's constraints (``max_length=20``, ``gt=0``, ...)
    attached as msgspec ``Meta``, which the body decoder checks and words as pydantic
    does; ``tp`` itself when the marker has none."""
    if marker is None or marker.constraints.empty():
        return tp
    c = marker.constraints
    return typing.Annotated[tp, msgspec.Meta(**{k: getattr(c, k) for k in c.__slots__ if getattr(c, k) is not None})]
