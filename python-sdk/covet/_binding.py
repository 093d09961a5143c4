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
import inspect
from typing import TYPE_CHECKING, Any

from ._params import Param
from ._patterns import Pattern
from ._security import SecurityOptions

if TYPE_CHECKING:
    from ._request import Request
    from ._responses import Response

#: A compiled binding step: ``await binder(request, raw_path_params)`` is the response.
Binder = Callable[["Request", list[str]], Awaitable["Response"]]

__all__ = ["Binder", "FieldSpec", "BodySpec", "Plan", "RouteDocs", "NO_DOCS", "RouteOptions", "compile_handler", "route_docs"]


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
    #: per (source, alias), in the order they were found.
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


def compile_handler(endpoint: Callable[..., Any], pattern: Pattern, docs: RouteDocs, app: Any) -> tuple[Plan, Binder | None]:
    """The binding plan of ``endpoint`` for ``pattern`` and its binder (None: the plain
    ``(req, **params)`` call path serves it). Raises TypeError naming the handler and
    the parameter when a parameter cannot be bound."""
    check_signature(endpoint, pattern)
    return Plan(), None


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
