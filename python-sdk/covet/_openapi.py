"""The OpenAPI 3.1 document of an app, generated from its routes, and the pages that
serve it: ``/openapi.json`` and the interactive ``/docs`` (assets shipped in the
package, in ``covet/docs/``: no CDN, works offline).

The document is made from what registration already compiled: each HTTP route's
pattern, binding plan (covet._binding.Plan: its path, query, header and cookie fields,
its body, its return type), documentation (RouteDocs) and security options. Schemas
come from msgspec (``msgspec.json.schema_components``) for the types msgspec knows
(Structs, dataclasses, TypedDicts, enums, scalars, containers) and from pydantic
(``TypeAdapter.json_schemas``) for types holding a pydantic model; both sets of
components are hoisted into ``components.schemas`` under one name each.
"""

from __future__ import annotations

import html
import http
import importlib.resources
import inspect
import re
import string
import sys
import uuid
from collections.abc import Callable
from typing import Any, get_args

import msgspec

from ._binding import FieldSpec, Plan
from ._params import Constraints, Param
from ._patterns import Pattern
from ._request import Request
from ._responses import Response, encode_json
from ._routing import Route

__all__ = ["install_docs", "openapi_document"]

_REF_PREFIX = "#/components/schemas/"
_MSGSPEC_REF = _REF_PREFIX + "{name}"
_PYDANTIC_REF = _REF_PREFIX + "{model}"
_NONE = type(None)

#: FastAPI's names and shapes for the 422 body, so that clients generated from either
#: document read it alike.
_VALIDATION_ERROR: dict[str, Any] = {
    "title": "ValidationError",
    "type": "object",
    "properties": {
        "loc": {"title": "Location", "type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
        "msg": {"title": "Message", "type": "string"},
        "type": {"title": "Error Type", "type": "string"},
        "input": {"title": "Input"},
        "ctx": {"title": "Context", "type": "object"},
    },
    "required": ["loc", "msg", "type"],
}
_HTTP_VALIDATION_ERROR: dict[str, Any] = {
    "title": "HTTPValidationError",
    "type": "object",
    "properties": {"detail": {"title": "Detail", "type": "array", "items": {"$ref": _REF_PREFIX + "ValidationError"}}},
}
_BEARER: dict[str, Any] = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}

#: The order of parameters in an operation, by where they come from (FastAPI's).
_SOURCE_ORDER = {"path": 0, "query": 1, "header": 2, "cookie": 3}
#: The types a path parameter of each pattern type converts to without fail: the
#: gateway's router only matches a segment of that form.
_SURE_PATH_TYPES: dict[str, tuple[Any, ...]] = {"int": (int,), "uuid": (uuid.UUID,), "str": (str,), "path": (str,)}

#: A path parameter's schema when only the pattern's type is known.
_KIND_SCHEMAS: dict[str, dict[str, Any]] = {
    "int": {"type": "integer"},
    "uuid": {"type": "string", "format": "uuid"},
    "str": {"type": "string"},
    "path": {"type": "string"},
}


def _constraint_keywords(constraints: Constraints, is_array: bool) -> dict[str, Any]:
    """JSON Schema keywords for a parameter's constraints (lengths of a list count its
    items)."""
    out: dict[str, Any] = {}
    for attr, keyword in (("gt", "exclusiveMinimum"), ("ge", "minimum"), ("lt", "exclusiveMaximum"),
                          ("le", "maximum"), ("multiple_of", "multipleOf"), ("pattern", "pattern")):  # fmt: skip
        value = getattr(constraints, attr)
        if value is not None:
            out[keyword] = value
    if constraints.min_length is not None:
        out["minItems" if is_array else "minLength"] = constraints.min_length
    if constraints.max_length is not None:
        out["maxItems" if is_array else "maxLength"] = constraints.max_length
    return out


def _holds_pydantic(tp: Any) -> bool:
    """Whether ``tp`` is, or holds (``list[Model]``, ``Model | None``, ...), a pydantic
    model. Pydantic is never imported here: an app using its models has done that."""
    pydantic = sys.modules.get("pydantic")
    if pydantic is None:
        return False
    if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):
        return True
    return any(_holds_pydantic(arg) for arg in get_args(tp))


def _builtin(value: Any) -> Any:
    """``value`` as JSON-ready builtins (an enum as its value), or _NONE when it has no
    JSON form."""
    try:
        return msgspec.to_builtins(value)
    except (TypeError, ValueError):
        return _NONE


def _rename_refs(node: Any, renames: dict[str, str]) -> None:
    """Point every ``$ref`` under ``node`` that names a renamed component at its new
    name, in place."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF_PREFIX) and ref[len(_REF_PREFIX):] in renames:
            node["$ref"] = _REF_PREFIX + renames[ref[len(_REF_PREFIX):]]
        for value in node.values():
            _rename_refs(value, renames)
    elif isinstance(node, list):
        for value in node:
            _rename_refs(value, renames)


class _Schemas:
    """The schemas a document needs. Each one asked for is a slot (a dict placed in the
    document at once) filled by :meth:`resolve`, which generates every type in one pass
    per generator so that components shared between routes are named once."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}
        # (type, mode, slot, inner keywords, nullable, outer keywords)
        self._wanted: list[tuple[Any, str, dict[str, Any], dict[str, Any], bool, dict[str, Any]]] = []

    def slot(self, tp: Any, mode: str = "validation", *, inner: dict[str, Any] | None = None, nullable: bool = False,
             outer: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
        """A schema for ``tp`` (``mode``: "validation" for what the app reads,
        "serialization" for what it answers), with ``inner`` keywords (constraints)
        added to the type's own schema, made nullable (``anyOf`` with null) when
        ``nullable``, and ``outer`` keywords (title, default) added last."""
        out: dict[str, Any] = {}
        self._wanted.append((tp, mode, out, inner or {}, nullable, outer or {}))
        return out

    def component(self, name: str, schema: dict[str, Any]) -> dict[str, Any]:
        """Add a ready component under ``name`` (a different one already there gets a
        numbered name); its ``$ref``."""
        return {"$ref": _REF_PREFIX + self._add(name, schema)}

    def _add(self, name: str, schema: Any) -> str:
        existing = self.components.get(name)
        if existing is None or existing == schema:
            self.components[name] = schema
            return name
        n = 2
        while f"{name}{n}" in self.components and self.components[f"{name}{n}"] != schema:
            n += 1
        self.components[f"{name}{n}"] = schema
        return f"{name}{n}"

    def _merge(self, components: dict[str, Any], schemas: list[Any]) -> None:
        """Add one generator's components, renaming those whose name another generator
        already took for a different schema (and the references to them)."""
        renames: dict[str, str] = {}
        for name in components:
            if name in self.components and self.components[name] != components[name]:
                n = 2
                while f"{name}{n}" in self.components or f"{name}{n}" in components:
                    n += 1
                renames[name] = f"{name}{n}"
        if renames:
            _rename_refs(components, renames)
            _rename_refs(schemas, renames)
        for name, schema in components.items():
            self.components[renames.get(name, name)] = schema

    def resolve(self) -> None:
        """Generate every schema asked for and fill its slot."""
        plain = [w for w in self._wanted if not _holds_pydantic(w[0])]
        models = [w for w in self._wanted if _holds_pydantic(w[0])]
        generated: list[Any] = []
        if plain:
            generated += zip(plain, self._msgspec_schemas([w[0] for w in plain]))
        if models:
            generated += zip(models, self._pydantic_schemas([(w[0], w[1]) for w in models]))
        for (_, _, out, inner, nullable, outer), schema in generated:
            schema = {**schema, **inner}
            if nullable and schema != {}:
                schema = {"anyOf": [schema, {"type": "null"}]}
            out.update(schema)
            out.update(outer)

    def _msgspec_schemas(self, types: list[Any]) -> list[dict[str, Any]]:
        """msgspec's schemas of ``types``; ``{}`` for a type it does not know (an
        arbitrary class as a return annotation, say)."""
        try:
            schemas, components = msgspec.json.schema_components(types, ref_template=_MSGSPEC_REF)
        except (TypeError, ValueError):
            known = [t for t in types if _msgspec_knows(t)]
            schemas, components = msgspec.json.schema_components(known, ref_template=_MSGSPEC_REF)
            found = iter(schemas)
            schemas = tuple(next(found) if _msgspec_knows(t) else {} for t in types)
        out = [dict(s) for s in schemas]
        self._merge(dict(components), out)
        return out

    def _pydantic_schemas(self, wanted: list[tuple[Any, str]]) -> list[dict[str, Any]]:
        """pydantic's schemas of ``wanted`` (type, mode) in one generation: a model
        whose validation and serialization schemas differ is named ``Model-Input`` and
        ``Model-Output``, as FastAPI names them."""
        from pydantic import TypeAdapter

        inputs = [(i, mode, TypeAdapter(tp)) for i, (tp, mode) in enumerate(wanted)]
        by_key, top = TypeAdapter.json_schemas(inputs, ref_template=_PYDANTIC_REF)  # type: ignore[arg-type]
        out = [dict(by_key[(i, mode)]) for i, (_, mode) in enumerate(wanted)]  # type: ignore[index]
        self._merge(dict(top.get("$defs", {})), out)
        return out


def _msgspec_knows(tp: Any) -> bool:
    try:
        msgspec.json.schema(tp)
    except (TypeError, ValueError):
        return False
    return True


def _path_template(pattern: Pattern) -> str:
    """The pattern as an OpenAPI path template: ``/items/{id:int}`` is ``/items/{id}``."""
    return "/" + "/".join(s.text if s.kind is None else "{" + s.text + "}" for s in pattern.segments)


def _title(name: str) -> str:
    return name.replace("_", " ").title()


class _DocumentBuilder:
    """One document's state while its operations are made."""

    def __init__(self) -> None:
        self.schemas = _Schemas()
        self.operation_ids: set[str] = set()
        self.uses_auth = False
        self.validation_ref: dict[str, Any] | None = None

    def operation(self, route: Route, path: str) -> dict[str, Any]:
        docs = route.docs
        plan = route.plan or Plan()
        name: str = route.name or getattr(route.endpoint, "__name__", None) or "handler"
        op: dict[str, Any] = {}
        if docs.tags:
            op["tags"] = list(docs.tags)
        op["summary"] = docs.summary or _title(name)
        description = docs.description
        if description is None and inspect.isroutine(route.endpoint) and route.endpoint.__doc__:
            description = inspect.cleandoc(route.endpoint.__doc__)
        security = route.security
        if security.roles or security.scopes:
            needs = [f"{what}: {', '.join(values)}" for what, values in
                     (("roles", security.roles), ("scopes", security.scopes)) if values]  # fmt: skip
            line = "Requires a bearer token with " + "; ".join(needs) + "."
            description = f"{description}\n\n{line}" if description else line
        if description:
            op["description"] = description
        op["operationId"] = self._operation_id(docs.operation_id, name, path, route.method)
        if docs.deprecated:
            op["deprecated"] = True
        parameters = self._parameters(route, plan)
        if parameters:
            op["parameters"] = parameters
        if plan.body is not None:
            op["requestBody"] = self._request_body(plan, op["operationId"])
        op["responses"] = self._responses(route, plan)
        if security.auth:
            self.uses_auth = True
            op["security"] = [{"bearerAuth": []}]
        return op

    def _operation_id(self, given: str | None, name: str, path: str, method: str) -> str:
        op_id = given or re.sub(r"\W", "_", name + path) + "_" + method.lower()
        base, n = op_id, 2
        while op_id in self.operation_ids:
            op_id, n = f"{base}_{n}", n + 1
        self.operation_ids.add(op_id)
        return op_id

    def _parameters(self, route: Route, plan: Plan) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        bound = {f.alias for f in plan.fields if f.source == "path"}
        for param, kind in route.kinds.items():
            if param not in bound:
                entry: dict[str, Any] = {"name": param, "in": "path", "required": True,
                                         "schema": dict(_KIND_SCHEMAS[kind], title=_title(param))}  # fmt: skip
                if kind == "path":
                    entry["x-covet-catch-all"] = True
                out.append(entry)
        for f in sorted(plan.fields, key=lambda f: _SOURCE_ORDER[f.source]):
            info = f.info
            if info is not None and not info.include_in_schema:
                continue
            entry = {"name": f.alias, "in": f.source, "required": f.required or f.source == "path"}
            if info is not None and info.description:
                entry["description"] = info.description
            if info is not None and info.deprecated:
                entry["deprecated"] = True
            entry["schema"] = self._field_schema(f, info)
            if f.source == "path" and route.kinds.get(f.alias) == "path":
                entry["x-covet-catch-all"] = True
            out.append(entry)
        return out

    def _field_schema(self, f: FieldSpec, info: Param | None) -> dict[str, Any]:
        inner = _constraint_keywords(info.constraints, _is_array(f.tp)) if info is not None else {}
        outer: dict[str, Any] = {"title": (info.title if info is not None and info.title else _title(f.alias))}
        if not f.required and f.default is not None:
            default = _builtin(f.default)
            if default is not _NONE:
                outer["default"] = default
        if info is not None and info.examples:
            examples = _builtin(info.examples)
            if examples is not _NONE:
                outer["examples"] = examples
        return self.schemas.slot(f.tp, inner=inner, nullable=f.optional, outer=outer)

    def _request_body(self, plan: Plan, op_id: str) -> dict[str, Any]:
        body = plan.body
        assert body is not None
        if body.fields:
            properties: dict[str, Any] = {}
            required: list[str] = []
            for f in body.fields:
                properties[f.alias] = self._field_schema(f, f.info)
                if f.required:
                    required.append(f.alias)
            embedded: dict[str, Any] = {"title": f"Body_{op_id}", "type": "object", "properties": properties}
            if required:
                embedded["required"] = required
            schema = self.schemas.component(f"Body_{op_id}", embedded)
        else:
            schema = self.schemas.slot(body.tp)
        out: dict[str, Any] = {"content": {body.media_type: {"schema": schema}}}
        if body.required:
            out["required"] = True
        if body.info is not None and body.info.description:
            out["description"] = body.info.description
        return out

    def _responses(self, route: Route, plan: Plan) -> dict[str, Any]:
        docs = route.docs
        tp = docs.response_model if docs.response_model is not None else plan.return_type
        status, success = self._success(tp, docs.status_code)
        responses: dict[str, Any] = {str(status): success}
        if plan.body is not None or any(_can_fail(f, route.kinds) for f in plan.fields):
            if self.validation_ref is None:
                self.schemas.component("ValidationError", _VALIDATION_ERROR)
                self.validation_ref = self.schemas.component("HTTPValidationError", _HTTP_VALIDATION_ERROR)
            responses["422"] = {"description": "Validation Error",
                                "content": {"application/json": {"schema": dict(self.validation_ref)}}}  # fmt: skip
        for key, spec in docs.responses.items():
            entry = dict(responses.get(str(key), {}))
            extra = dict(spec)
            model = extra.pop("model", None)
            content = extra.pop("content", None)
            if model is not None:
                entry.setdefault("content", {})
                entry["content"] = {**entry["content"],
                                    "application/json": {"schema": self.schemas.slot(model, "serialization")}}  # fmt: skip
            if content is not None:
                entry["content"] = {**entry.get("content", {}), **content}
            entry.update(extra)
            if "description" not in entry:
                entry["description"] = _reason(key)
            responses[str(key)] = entry
        return responses

    def _success(self, tp: Any, status: int | None) -> tuple[int, dict[str, Any]]:
        """The success status and its response object for a return type ``tp`` (None:
        not known), as to_response turns a value of that type into a response."""
        entry: dict[str, Any] = {"description": "Successful Response"}
        if tp is _NONE:  # `-> None`: an empty body, 204 unless the route says otherwise
            return status or 204, entry
        if isinstance(tp, type) and issubclass(tp, Response):
            if tp.media_type is not None:
                entry["content"] = {tp.media_type.split(";")[0]: {"schema": {}}}
            return status or 200, entry
        if tp is str:
            entry["content"] = {"text/plain": {"schema": {"type": "string"}}}
        elif tp is bytes:
            entry["content"] = {"application/octet-stream": {"schema": {}}}
        elif tp is None or tp is inspect.Signature.empty or tp is Any:
            entry["content"] = {"application/json": {"schema": {}}}
        else:
            entry["content"] = {"application/json": {"schema": self.schemas.slot(tp, "serialization")}}
        return status or 200, entry


def _can_fail(f: FieldSpec, kinds: dict[str, Any]) -> bool:
    """Whether binding ``f`` can answer 422: anything but a path parameter whose type
    the pattern already guarantees (``{id:int}`` bound as an int, say)."""
    if f.source != "path" or (f.info is not None and not f.info.constraints.empty()):
        return True
    return f.tp not in _SURE_PATH_TYPES.get(kinds.get(f.alias, ""), ())


def _is_array(tp: Any) -> bool:
    origin = getattr(tp, "__origin__", None)
    return tp in (list, tuple, set, frozenset) or origin in (list, tuple, set, frozenset)


def _reason(status: int | str) -> str:
    try:
        return http.HTTPStatus(int(status)).phrase
    except ValueError:
        return "Response"


def openapi_document(app: Any) -> dict[str, Any]:
    """The app's OpenAPI 3.1 document: one operation per HTTP route (WebSocket and
    static routes are left out, as are those registered with
    ``include_in_schema=False``), with its parameters, body, responses and security,
    and ``info`` from the app's title, version and description."""
    builder = _DocumentBuilder()
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes:
        if route.kind != "http" or not route.docs.include_in_schema:
            continue
        path = _path_template(route.pattern)
        paths.setdefault(path, {})[route.method.lower()] = builder.operation(route, path)
    builder.schemas.resolve()
    info: dict[str, Any] = {"title": app.title, "version": app.version}
    if app.description:
        info["description"] = app.description
    doc: dict[str, Any] = {"openapi": "3.1.0", "info": info, "paths": paths}
    components: dict[str, Any] = {}
    if builder.schemas.components:
        components["schemas"] = dict(sorted(builder.schemas.components.items()))
    if builder.uses_auth:
        components["securitySchemes"] = {"bearerAuth": _BEARER}
    if components:
        doc["components"] = components
    return doc


#: The docs page's Content-Security-Policy: its script and style are files of its own,
#: and it talks to its own origin only.
_PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
             "base-uri 'none'; form-action 'none'; frame-ancestors 'self'")  # fmt: skip
_ASSETS = {"docs.js": "text/javascript", "docs.css": "text/css"}


def _check_url(what: str, url: str) -> None:
    if not isinstance(url, str) or not url.startswith("/") or "{" in url or "}" in url:
        raise ValueError(f"{what} must be a path starting with '/' and without parameters, or None; got {url!r}")


def install_docs(app: Any) -> None:
    """Register the app's ``openapi_url`` route (the JSON document) and its
    ``docs_url`` routes (the interactive page and its script and style sheet under
    ``docs_url + "/"``), all left out of the document itself. None for either URL:
    not served; without ``openapi_url`` there is no page either. The document is
    generated on its first request once the app is frozen, then kept."""
    openapi_url, docs_url = app.openapi_url, app.docs_url
    if openapi_url is None:
        return
    _check_url("openapi_url", openapi_url)
    cached: list[bytes] = []

    async def openapi(req: Request) -> Response:
        if cached:
            return Response(cached[0], media_type="application/json")
        body = encode_json(openapi_document(app))
        if app.frozen:
            cached.append(body)
        return Response(body, media_type="application/json")

    app.get(openapi_url, include_in_schema=False)(openapi)
    if docs_url is None:
        return
    _check_url("docs_url", docs_url)
    files = importlib.resources.files("covet") / "docs"
    base = docs_url.rstrip("/")
    page = string.Template(files.joinpath("index.html").read_text("utf-8")).substitute(
        title=html.escape(app.title), openapi_url=html.escape(openapi_url),
        css=html.escape(base + "/docs.css"), js=html.escape(base + "/docs.js"),
    ).encode()  # fmt: skip

    async def docs(req: Request) -> Response:
        return Response(page, headers={"content-security-policy": _PAGE_CSP}, media_type="text/html")

    app.get(docs_url, include_in_schema=False)(docs)
    for asset, media_type in _ASSETS.items():
        app.get(f"{base}/{asset}", include_in_schema=False)(_asset(files.joinpath(asset).read_bytes(), media_type))


def _asset(body: bytes, media_type: str) -> Callable[[Request], Any]:
    async def asset(req: Request) -> Response:
        return Response(body, media_type=media_type)

    return asset
