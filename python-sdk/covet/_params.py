"""Markers a handler's parameters carry to say where their values come from:
``Query``, ``Header``, ``Cookie``, ``Path``, ``Body`` and ``Depends``; and
``BackgroundTasks``, the request's list of work to run after its response.

A marker is used either inside ``Annotated`` (``q: Annotated[str, Query(max_length=50)]``)
or as the parameter's default (``q: str = Query("", max_length=50)``), as in FastAPI.
The markers hold no per-request state: ``covet._binding`` reads them once, when the
route is registered, and compiles the handler's signature into a plan.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, ParamSpec

__all__ = [
    "REQUIRED",
    "Constraints",
    "Param",
    "QueryParam",
    "HeaderParam",
    "CookieParam",
    "PathParam",
    "BodyParam",
    "Dependency",
    "Query",
    "Header",
    "Cookie",
    "Path",
    "Body",
    "Depends",
    "BackgroundTasks",
]

P = ParamSpec("P")
error_log = logging.getLogger("covet.error")


class _Required:
    """The default of a parameter that must be given (also spelt ``...``)."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Final[Any] = _Required()


@dataclass(frozen=True, slots=True)
class Constraints:
    """Value constraints, as pydantic and JSON Schema name them. Numbers: ``gt``, ``ge``,
    ``lt``, ``le``, ``multiple_of``; strings, bytes and lists: ``min_length``,
    ``max_length``; strings: ``pattern`` (a regular expression searched in the value,
    as pydantic does)."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    multiple_of: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None

    def empty(self) -> bool:
        return all(getattr(self, f) is None for f in self.__slots__)


class Param:
    """What a ``Query``, ``Header``, ``Cookie``, ``Path`` or ``Body`` marker holds."""

    #: Where the value comes from: "query", "header", "cookie", "path" or "body".
    source: str = ""

    def __init__(
        self,
        default: Any = REQUIRED,
        *,
        alias: str | None = None,
        title: str | None = None,
        description: str | None = None,
        gt: float | None = None,
        ge: float | None = None,
        lt: float | None = None,
        le: float | None = None,
        multiple_of: float | None = None,
        min_length: int | None = None,
        max_length: int | None = None,
        pattern: str | None = None,
        examples: list[Any] | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
    ) -> None:
        #: REQUIRED (or ``...``) when the value must be given.
        self.default = REQUIRED if default is ... else default
        if alias is not None and (not isinstance(alias, str) or not alias):
            raise ValueError(f"{type(self).__name__} alias must be a non-empty str, got {alias!r}")
        self.alias = alias
        self.title = title
        self.description = description
        self.constraints = Constraints(gt, ge, lt, le, multiple_of, min_length, max_length, pattern)
        self.examples = examples
        self.deprecated = deprecated
        self.include_in_schema = include_in_schema

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.default!r}, alias={self.alias!r})"


class QueryParam(Param):
    source = "query"


class PathParam(Param):
    source = "path"


class CookieParam(Param):
    source = "cookie"


class HeaderParam(Param):
    source = "header"

    def __init__(self, default: Any = REQUIRED, *, convert_underscores: bool = True, **kwargs: Any) -> None:
        super().__init__(default, **kwargs)
        #: Header names are the parameter's with ``_`` read as ``-`` (``x_token`` is
        #: ``x-token``) unless an alias names the field, or this is False.
        self.convert_underscores = convert_underscores


class BodyParam(Param):
    source = "body"

    def __init__(self, default: Any = REQUIRED, *, embed: bool = False, media_type: str = "application/json",
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(default, **kwargs)
        #: True: the body is a JSON object with this parameter under its name (as it is
        #: anyway when a handler has more than one body parameter).
        self.embed = embed
        self.media_type = media_type


def Query(default: Any = REQUIRED, **kwargs: Any) -> Any:
    """A parameter bound from the query string (the default for a parameter of a scalar
    or ``list[scalar]`` type that is not in the path). Options: ``alias`` (the key, when
    it is not a Python name), ``gt``/``ge``/``lt``/``le``/``multiple_of``,
    ``min_length``/``max_length``/``pattern``, and ``title``, ``description``,
    ``examples``, ``deprecated``, ``include_in_schema`` for the OpenAPI document."""
    return QueryParam(default, **kwargs)


def Header(default: Any = REQUIRED, **kwargs: Any) -> Any:
    """A parameter bound from a request header: ``user_agent`` reads ``User-Agent``
    (names are case-blind; ``convert_underscores=False`` keeps ``_``); a ``list[str]``
    parameter gets every field of the name. Options as :func:`Query`'s."""
    return HeaderParam(default, **kwargs)


def Cookie(default: Any = REQUIRED, **kwargs: Any) -> Any:
    """A parameter bound from the cookie of its name (or ``alias``). Options as
    :func:`Query`'s."""
    return CookieParam(default, **kwargs)


def Path(default: Any = REQUIRED, **kwargs: Any) -> Any:
    """A path parameter with constraints or documentation (``Path(ge=1)``); path
    parameters are bound by name without it."""
    return PathParam(default, **kwargs)


def Body(default: Any = REQUIRED, **kwargs: Any) -> Any:
    """A parameter bound from the request body (the default for a parameter annotated
    with a msgspec Struct, a dataclass, a TypedDict or a pydantic model). ``embed=True``
    reads it from the body's JSON object under the parameter's name."""
    return BodyParam(default, **kwargs)


class Dependency:
    """What ``Depends(fn)`` holds: the callable and whether its result is shared by
    every use within one request."""

    __slots__ = ("dependency", "use_cache")

    def __init__(self, dependency: Callable[..., Any] | None = None, *, use_cache: bool = True) -> None:
        if dependency is not None and not callable(dependency):
            raise TypeError(f"Depends() takes a callable, got {type(dependency).__name__}")
        self.dependency = dependency
        self.use_cache = use_cache

    def __repr__(self) -> str:
        name = getattr(self.dependency, "__qualname__", repr(self.dependency))
        return f"Depends({name})"


def Depends(dependency: Callable[..., Any] | None = None, *, use_cache: bool = True) -> Any:
    """A parameter whose value is what ``dependency`` returns for this request.

    ``dependency`` is a function (sync, async, or a generator that yields the value once
    and cleans up after the response has been sent) or a class; its own parameters are
    bound as a handler's are, dependencies included. Within one request it is called
    once however many parameters depend on it, unless ``use_cache=False``. Without an
    argument the parameter's annotation is the dependency. ``app.dependency_overrides``
    replaces a dependency (in tests, say)."""
    return Dependency(dependency, use_cache=use_cache)


class BackgroundTasks:
    """Work to run after the response has been handed to the gateway: a handler (or a
    dependency) takes a parameter annotated ``BackgroundTasks`` and calls
    :meth:`add_task`. Tasks run one after another, in order; a sync one runs in the
    worker's thread pool. A task that raises is logged with the request id and does not
    stop the ones after it. The client never waits for them."""

    def __init__(self) -> None:
        self.tasks: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
        #: The request the tasks belong to, for the log (set when bound to one).
        self.request_id = ""

    def add_task(self, func: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> None:
        """Run ``func(*args, **kwargs)`` after the response."""
        if not callable(func):
            raise TypeError(f"add_task takes a callable, got {type(func).__name__}")
        self.tasks.append((func, args, kwargs))

    async def __call__(self) -> None:
        """Run the tasks in order (the worker and the TestClient call this), logging a
        failure on ``covet.error`` with the request id and going on with the next."""
        for func, args, kwargs in self.tasks:
            try:
                await _run_task(func, args, kwargs)
            except Exception as exc:
                error_log.error(
                    "background task %s failed (request_id=%s)",
                    getattr(func, "__qualname__", repr(func)), self.request_id,
                    exc_info=exc, extra={"request_id": self.request_id},
                )  # fmt: skip

    def __len__(self) -> int:
        return len(self.tasks)


async def _run_task(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(getattr(func, "__call__", None)):
        await func(*args, **kwargs)
        return
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    result = await loop.run_in_executor(None, functools.partial(ctx.run, func, *args, **kwargs))
    if inspect.isawaitable(result):
        await result
