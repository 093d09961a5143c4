"""The OpenAPI document (covet._openapi) and the /openapi.json and /docs routes.

Routes are added with binding plans made by hand (covet._binding.Plan, FieldSpec,
BodySpec), so the document is checked against exactly the plan it is made from; every
document is also checked by openapi-spec-validator."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import uuid
from pathlib import Path
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypedDict

import jsonschema
import msgspec
import pydantic
import pytest
from openapi_spec_validator import validate

from covet import BackgroundTasks, Covet, Depends, HTMLResponse, HTTPException, Query, Request
from covet._binding import BodySpec, FieldSpec, Plan, route_docs
from covet._openapi import openapi_document
from covet._params import REQUIRED, Body, Cookie, Header, Param
from covet._patterns import Pattern
from covet._routing import Route
from covet._security import route_security
from covet.testing import TestClient


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Tag(msgspec.Struct):
    name: str


class Item(msgspec.Struct):
    """A thing for sale."""

    name: str
    price: float
    color: Color = Color.RED
    tags: list[Tag] = []


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Note(TypedDict):
    text: str
    when: datetime


class Owner(pydantic.BaseModel):
    name: str

    @pydantic.computed_field  # type: ignore[prop-decorator]
    @property
    def initial(self) -> str:
        return self.name[:1]


class Pet(pydantic.BaseModel):
    name: str = pydantic.Field(max_length=20)
    owner: Owner | None = None


async def _endpoint(req: Any) -> None:
    return None


def add(app: Covet, method: str, path: str, plan: Plan | None = None, endpoint: Callable[..., Any] = _endpoint,
        **options: Any) -> None:  # fmt: skip
    """Register ``endpoint`` for ``method path`` with ``plan`` as its binding plan and
    the decorator options ``options`` (documentation and security)."""
    pattern = Pattern.parse(path)
    where = f"route {method} {path!r}"
    docs = route_docs(where, options)
    security = route_security(where, **options)
    app.router.add(Route(method, pattern, endpoint, None, None, True, pattern.kinds(), security=security,
                         plan=plan if plan is not None else Plan(), docs=docs))  # fmt: skip


def field(name: str, source: str, tp: Any, *, info: Param | None = None, alias: str | None = None,
          optional: bool = False, default: Any = REQUIRED) -> FieldSpec:  # fmt: skip
    required = default is REQUIRED
    return FieldSpec(name, alias or name, source, tp, optional, required, default, info)


def document(app: Covet) -> dict[str, Any]:
    doc = openapi_document(app)
    validate(doc)  # type: ignore[arg-type]
    return doc


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    name = ref.removeprefix("#/components/schemas/")
    assert name != ref, ref
    out: dict[str, Any] = doc["components"]["schemas"][name]
    return out


def params_by_name(op: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in op.get("parameters", [])}


# -- parameters ---------------------------------------------------------------------------


def read_item(req: Any) -> None:
    """Read one item.

        Indented detail."""


def test_parameters_of_every_source_with_types_and_constraints() -> None:
    app = Covet("t", openapi_url=None)
    plan = Plan(fields=(
        field("item_id", "path", int, info=Param(ge=1, description="The item's number")),
        field("q", "query", str, info=Query(None, max_length=50, pattern="^[a-z]+$"), optional=True, default=None),
        field("limit", "query", int, info=Query(10, gt=0, le=100, multiple_of=5), default=10),
        field("ids", "query", list[int], info=Query(min_length=1, max_length=3)),
        field("color", "query", Color, default=Color.BLUE),
        field("mode", "query", Literal["fast", "slow"], default="fast"),
        field("since", "query", datetime, optional=True, default=None),
        field("token", "query", uuid.UUID, info=Query(deprecated=True, examples=[str(uuid.UUID(int=1))])),
        field("hidden", "query", str, info=Query("", include_in_schema=False), default=""),
        field("x_token", "header", str, alias="x-token", info=Header()),
        field("session", "cookie", str, info=Cookie(None), optional=True, default=None),
    ), return_type=Item)  # fmt: skip
    add(app, "GET", "/items/{item_id:int}", plan, read_item)
    doc = document(app)
    op = doc["paths"]["/items/{item_id}"]["get"]
    assert op["summary"] == "Read Item"
    assert op["description"] == "Read one item.\n\nIndented detail."
    assert op["operationId"] == "read_item_items__item_id__get"
    params = params_by_name(op)
    assert list(params) == ["item_id", "q", "limit", "ids", "color", "mode", "since", "token", "x-token", "session"]
    assert params["item_id"] == {"name": "item_id", "in": "path", "required": True, "description": "The item's number",
                                 "schema": {"type": "integer", "minimum": 1, "title": "Item Id"}}  # fmt: skip
    assert params["q"]["required"] is False
    assert params["q"]["schema"] == {"anyOf": [{"type": "string", "maxLength": 50, "pattern": "^[a-z]+$"}, {"type": "null"}],
                                     "title": "Q"}  # fmt: skip
    assert params["limit"]["schema"] == {"type": "integer", "exclusiveMinimum": 0, "maximum": 100, "multipleOf": 5,
                                         "title": "Limit", "default": 10}  # fmt: skip
    assert params["ids"]["required"] is True
    assert params["ids"]["schema"] == {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3,
                                       "title": "Ids"}  # fmt: skip
    assert params["color"]["schema"] == {"$ref": "#/components/schemas/Color", "title": "Color", "default": "blue"}
    assert sorted(resolve(doc, params["color"]["schema"])["enum"]) == ["blue", "red"]
    assert params["mode"]["schema"]["enum"] == ["fast", "slow"]
    assert params["since"]["schema"]["anyOf"][1] == {"type": "null"}
    assert params["token"]["deprecated"] is True
    assert params["token"]["schema"]["format"] == "uuid"
    assert params["token"]["schema"]["examples"] == [str(uuid.UUID(int=1))]
    assert params["x-token"]["in"] == "header" and params["x-token"]["required"] is True
    assert params["session"]["in"] == "cookie" and params["session"]["required"] is False
    # Anything bound can fail to convert: the 422 is documented, as FastAPI words it.
    assert op["responses"]["422"] == {"description": "Validation Error", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/HTTPValidationError"}}}}  # fmt: skip
    detail = doc["components"]["schemas"]["HTTPValidationError"]["properties"]["detail"]
    assert detail["items"] == {"$ref": "#/components/schemas/ValidationError"}
    assert doc["components"]["schemas"]["ValidationError"]["required"] == ["loc", "msg", "type"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Item"}
    assert resolve(doc, {"$ref": "#/components/schemas/Item"})["description"] == "A thing for sale."


def test_a_route_without_a_plan_documents_its_pattern_parameters() -> None:
    app = Covet("t", openapi_url=None)

    @app.get("/users/{uid:uuid}/files/{rest...}")
    async def user_file(req: Any, uid: uuid.UUID, rest: str) -> Any:
        return rest

    @app.get("/plain")
    async def plain(req: Any) -> Any:
        return "x"

    doc = document(app)
    params = params_by_name(doc["paths"]["/users/{uid}/files/{rest}"]["get"])
    assert params["uid"] == {"name": "uid", "in": "path", "required": True,
                             "schema": {"type": "string", "format": "uuid", "title": "Uid"}}  # fmt: skip
    assert params["rest"]["x-covet-catch-all"] is True
    # Nothing bound from the request: no 422 to document.
    assert set(doc["paths"]["/plain"]["get"]["responses"]) == {"200"}


# -- bodies ---------------------------------------------------------------------------------


@pytest.mark.parametrize("tp, name", [(Item, "Item"), (Point, "Point"), (Note, "Note")])
def test_a_typed_body_is_a_component(tp: Any, name: str) -> None:
    app = Covet("t", openapi_url=None)
    add(app, "POST", "/things", Plan(body=BodySpec(tp, (), True)))
    doc = document(app)
    body = doc["paths"]["/things"]["post"]["requestBody"]
    assert body == {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}
    schema = resolve(doc, body["content"]["application/json"]["schema"])
    assert schema["type"] == "object" and schema["properties"]


def test_nested_msgspec_components_are_hoisted_once() -> None:
    app = Covet("t", openapi_url=None)
    add(app, "POST", "/a", Plan(body=BodySpec(Item, (), True), return_type=Item))
    add(app, "PUT", "/b", Plan(body=BodySpec(list[Item], (), False), return_type=Tag))
    doc = document(app)
    assert {"Item", "Tag", "Color"} <= set(doc["components"]["schemas"])
    item = doc["components"]["schemas"]["Item"]
    assert item["properties"]["tags"] == {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}, "default": []}
    put = doc["paths"]["/b"]["put"]["requestBody"]
    assert "required" not in put
    assert put["content"]["application/json"]["schema"] == {"type": "array", "items": {"$ref": "#/components/schemas/Item"}}


def test_an_embedded_body_is_an_object_of_its_fields() -> None:
    app = Covet("t", openapi_url=None)
    fields = (
        field("item", "body", Item),
        field("importance", "body", int, info=Body(1, gt=0), default=1),
        field("note", "body", str, optional=True, default=None),
    )
    add(app, "PUT", "/items/{item_id}", Plan(fields=(field("item_id", "path", str),), body=BodySpec(None, fields, True)),
        operation_id="update_item")  # fmt: skip
    doc = document(app)
    op = doc["paths"]["/items/{item_id}"]["put"]
    assert op["operationId"] == "update_item"
    ref = op["requestBody"]["content"]["application/json"]["schema"]
    assert ref == {"$ref": "#/components/schemas/Body_update_item"}
    body = resolve(doc, ref)
    assert body["type"] == "object" and body["required"] == ["item"]
    assert body["properties"]["item"] == {"$ref": "#/components/schemas/Item", "title": "Item"}
    assert body["properties"]["importance"] == {"type": "integer", "exclusiveMinimum": 0, "title": "Importance", "default": 1}
    assert body["properties"]["note"]["anyOf"] == [{"type": "string"}, {"type": "null"}]


def test_pydantic_models_split_into_input_and_output_where_they_differ() -> None:
    app = Covet("t", openapi_url=None)
    add(app, "POST", "/pets", Plan(body=BodySpec(Pet, (), True), return_type=Pet), status_code=201)
    add(app, "GET", "/owners", Plan(return_type=list[Owner]))
    doc = document(app)
    schemas = doc["components"]["schemas"]
    op = doc["paths"]["/pets"]["post"]
    assert op["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Pet-Input"}
    assert op["responses"]["201"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Pet-Output"}
    assert schemas["Pet-Input"]["properties"]["name"]["maxLength"] == 20
    assert "initial" in schemas["Owner-Output"]["properties"]
    assert "initial" not in schemas["Owner-Input"]["properties"]
    owners = doc["paths"]["/owners"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert owners == {"type": "array", "items": {"$ref": "#/components/schemas/Owner-Output"}}


def test_components_of_one_name_from_two_generators_are_kept_apart() -> None:
    class Tag(pydantic.BaseModel):  # msgspec's Tag is another schema of the same name
        label: int

    app = Covet("t", openapi_url=None)
    add(app, "POST", "/a", Plan(body=BodySpec(Item, (), True)))
    add(app, "POST", "/b", Plan(body=BodySpec(list[Tag], (), True)))
    doc = document(app)
    schemas = doc["components"]["schemas"]
    assert schemas["Tag"]["properties"] == {"name": {"type": "string"}}
    b = doc["paths"]["/b"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert b == {"type": "array", "items": {"$ref": "#/components/schemas/Tag2"}}
    assert schemas["Tag2"]["properties"]["label"]["type"] == "integer"


# -- responses -----------------------------------------------------------------------------


class Opaque:
    """A return type no schema generator knows."""


def test_success_responses_follow_the_return_type() -> None:
    app = Covet("t", openapi_url=None)
    add(app, "DELETE", "/none", Plan(return_type=type(None)))
    add(app, "POST", "/none-created", Plan(return_type=type(None)), status_code=201)
    add(app, "GET", "/text", Plan(return_type=str))
    add(app, "GET", "/html", Plan(return_type=HTMLResponse))
    add(app, "GET", "/unknown", Plan(return_type=inspect.Signature.empty))
    add(app, "GET", "/opaque", Plan(return_type=Opaque))
    add(app, "GET", "/model", Plan(return_type=Opaque), response_model=Tag)
    doc = document(app)
    paths = doc["paths"]
    assert paths["/none"]["delete"]["responses"] == {"204": {"description": "Successful Response"}}
    assert paths["/none-created"]["post"]["responses"] == {"201": {"description": "Successful Response"}}
    assert paths["/text"]["get"]["responses"]["200"]["content"] == {"text/plain": {"schema": {"type": "string"}}}
    assert paths["/html"]["get"]["responses"]["200"]["content"] == {"text/html": {"schema": {}}}
    assert paths["/unknown"]["get"]["responses"]["200"]["content"] == {"application/json": {"schema": {}}}
    assert paths["/opaque"]["get"]["responses"]["200"]["content"] == {"application/json": {"schema": {}}}
    model = paths["/model"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert model == {"$ref": "#/components/schemas/Tag"}


def test_declared_responses_are_added_and_merged() -> None:
    app = Covet("t", openapi_url=None)
    add(app, "GET", "/items/{id}", Plan(fields=(field("id", "path", str),), return_type=Item), responses={
        404: {"description": "No such item", "model": Tag},
        "200": {"description": "The item", "headers": {"X-Count": {"schema": {"type": "integer"}}}},
        409: {"content": {"text/plain": {"schema": {"type": "string"}}}},
    })  # fmt: skip
    doc = document(app)
    responses = doc["paths"]["/items/{id}"]["get"]["responses"]
    assert responses["404"] == {"description": "No such item",
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Tag"}}}}  # fmt: skip
    assert responses["200"]["description"] == "The item"
    assert responses["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Item"}
    assert responses["200"]["headers"] == {"X-Count": {"schema": {"type": "integer"}}}
    assert responses["409"] == {"description": "Conflict", "content": {"text/plain": {"schema": {"type": "string"}}}}
    # A str path parameter always binds: nothing can answer 422.
    assert set(responses) == {"200", "404", "409"}


# -- real handlers: the binder's plans, and answers that fit the document ------------------


def shop_app() -> Covet:
    app = Covet("shop", title="Shop")

    def paging(limit: Annotated[int, Query(ge=1, le=100)] = 10, x_client: Annotated[str | None, Header()] = None) -> int:
        return limit

    @app.get("/items/{item_id:int}", tags=["items"], responses={404: {"description": "No such item", "model": Tag}})
    async def read_item(req: Request, item_id: int, q: str | None = None, limit: int = Depends(paging)) -> Item:
        """One item by its number."""
        if item_id == 0:
            raise HTTPException(404, {"name": "none"})
        return Item(name=q or "thing", price=item_id * 1.5)

    @app.post("/pets", status_code=201, tags=["pets"])
    async def create_pet(pet: Pet, tasks: BackgroundTasks) -> Pet:
        return pet

    @app.put("/points/{name}")
    def move(name: str, point: Point, note: Annotated[str, Body(max_length=10)] = "") -> Point:
        return point

    @app.delete("/items/{item_id:int}", tags=["items"])
    async def delete_item(item_id: int) -> None:
        return None

    return app


def response_schema(doc: dict[str, Any], op: dict[str, Any], status: int) -> dict[str, Any]:
    """The documented JSON schema of ``op``'s ``status`` answer, its references
    resolvable (the document's components beside it)."""
    schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
    return {**schema, "components": doc["components"]}


def test_real_handlers_are_documented_and_answer_as_documented() -> None:
    app = shop_app()
    with TestClient(app) as client:
        doc = client.get("/openapi.json").json()
        validate(doc)
        read = doc["paths"]["/items/{item_id}"]["get"]
        # The request and the dependency are not parameters; the dependency's own are:
        # path, query, header, each the handler's own first.
        assert [(p["name"], p["in"]) for p in read["parameters"]] == [
            ("item_id", "path"), ("q", "query"), ("limit", "query"), ("x-client", "header")]  # fmt: skip
        assert params_by_name(read)["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 100,
                                                           "title": "Limit", "default": 10}  # fmt: skip
        assert read["description"] == "One item by its number."
        assert set(read["responses"]) == {"200", "404", "422"}
        ok = client.get("/items/4?q=lamp")
        assert ok.status_code == 200
        jsonschema.validate(ok.json(), response_schema(doc, read, 200))
        bad = client.get("/items/4?limit=0")
        assert bad.status_code == 422
        jsonschema.validate(bad.json(), response_schema(doc, read, 422))
        missing = client.get("/items/0")
        assert missing.status_code == 404

        create = doc["paths"]["/pets"]["post"]
        assert "parameters" not in create
        assert create["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Pet-Input"}
        created = client.post("/pets", json={"name": "Rex", "owner": {"name": "Ann"}})
        assert created.status_code == 201
        assert set(create["responses"]) == {"201", "422"}
        jsonschema.validate(created.json(), response_schema(doc, create, 201))
        assert created.json()["owner"]["initial"] == "A"

        move = doc["paths"]["/points/{name}"]["put"]
        body = resolve(doc, move["requestBody"]["content"]["application/json"]["schema"])
        assert body["required"] == ["point"]
        assert body["properties"]["note"] == {"type": "string", "maxLength": 10, "title": "Note", "default": ""}
        assert resolve(doc, body["properties"]["point"])["required"] == ["x", "y"]
        moved = client.put("/points/p", json={"point": {"x": 1, "y": 2}, "note": "hi"})
        assert moved.status_code == 200
        jsonschema.validate(moved.json(), response_schema(doc, move, 200))

        delete = doc["paths"]["/items/{item_id}"]["delete"]
        # `-> None` answers 204; an {item_id:int} path parameter always converts.
        assert delete["responses"] == {"204": {"description": "Successful Response"}}
        assert client.delete("/items/3").status_code == 204


# -- operations, security, info ------------------------------------------------------------


def test_operation_options_security_and_info() -> None:
    app = Covet("t", title="Shop", version="2.1", description="Sells things.", openapi_url=None)
    add(app, "GET", "/admin", Plan(), tags=["admin", "ops"], summary="Admin page", description="Only admins.",
        deprecated=True, auth=True, roles=["admin"], scopes=["shop:read"])  # fmt: skip
    add(app, "GET", "/me", Plan(), auth=True)
    add(app, "GET", "/secret", Plan(), include_in_schema=False)

    @app.websocket("/ws")
    async def ws(ws: Any) -> None:
        pass

    doc = document(app)
    assert doc["openapi"] == "3.1.0"
    assert doc["info"] == {"title": "Shop", "version": "2.1", "description": "Sells things."}
    assert set(doc["paths"]) == {"/admin", "/me"}
    admin = doc["paths"]["/admin"]["get"]
    assert admin["tags"] == ["admin", "ops"]
    assert admin["summary"] == "Admin page"
    assert admin["description"] == "Only admins.\n\nRequires a bearer token with roles: admin; scopes: shop:read."
    assert admin["deprecated"] is True
    assert admin["security"] == [{"bearerAuth": []}]
    assert doc["paths"]["/me"]["get"]["security"] == [{"bearerAuth": []}]
    assert "description" not in doc["paths"]["/me"]["get"]
    assert doc["components"]["securitySchemes"] == {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}


def test_operation_ids_are_unique() -> None:
    app = Covet("t", openapi_url=None)
    add(app, "GET", "/a_b", Plan(), read_item)
    add(app, "GET", "/a/b", Plan(), read_item)  # the same id from name, path and method
    add(app, "POST", "/c", Plan(), operation_id="read_item_a_b_get")
    doc = document(app)
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert ids == ["read_item_a_b_get", "read_item_a_b_get_2", "read_item_a_b_get_3"]


def test_an_app_without_schemas_or_security_has_no_components() -> None:
    app = Covet("t", openapi_url=None)
    add(app, "GET", "/", Plan())
    doc = document(app)
    assert "components" not in doc
    assert doc["paths"]["/"]["get"]["operationId"] == "_endpoint__get"


# -- the routes serving it -------------------------------------------------------------------


def test_openapi_json_and_the_docs_page_are_served() -> None:
    app = Covet("shop", title="Shop <&> API")
    add(app, "GET", "/items", Plan(return_type=list[Item]), tags=["items"])
    with TestClient(app) as client:
        first = client.get("/openapi.json")
        assert first.status_code == 200
        assert first.headers["content-type"] == "application/json"
        doc = first.json()
        validate(doc)
        assert set(doc["paths"]) == {"/items"}  # the docs routes are not in it
        assert client.get("/openapi.json").content == first.content
        page = client.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        html = page.text
        assert "<title>Shop &lt;&amp;&gt; API · API docs</title>" in html
        assert 'data-openapi-url="/openapi.json"' in html
        assert '<script src="/docs/docs.js" defer></script>' in html
        assert '<link rel="stylesheet" href="/docs/docs.css">' in html
        assert "<script>" not in html and "<style" not in html and " style=" not in html
        js = client.get("/docs/docs.js")
        assert js.headers["content-type"] == "text/javascript; charset=utf-8"
        assert b"fetch(" in js.content
        css = client.get("/docs/docs.css")
        assert css.headers["content-type"] == "text/css; charset=utf-8"
        assert client.head("/docs").status_code == 200


def test_the_document_is_kept_once_the_app_is_frozen() -> None:
    app = Covet("t")
    add(app, "GET", "/a", Plan())
    with TestClient(app) as client:  # freezes the app
        first = client.get("/openapi.json").json()
        assert set(first["paths"]) == {"/a"}
        app.router.routes[-1:] = []  # what would change the document, were it generated again
        assert client.get("/openapi.json").json() == first


def test_urls_can_be_moved_or_turned_off() -> None:
    moved = Covet("t", openapi_url="/api/schema.json", docs_url="/api/docs/")
    with TestClient(moved) as client:
        assert client.get("/api/schema.json").status_code == 200
        page = client.get("/api/docs/")
        assert 'data-openapi-url="/api/schema.json"' in page.text
        assert '"/api/docs/docs.js"' in page.text
        assert client.get("/api/docs/docs.js").status_code == 200
        assert client.get("/openapi.json").status_code == 404
        assert client.get("/docs").status_code == 404
    no_docs = Covet("t", docs_url=None)
    assert [r.pattern.source for r in no_docs.router.routes] == ["/openapi.json"]
    # No document, no page either; an app may then serve its own /docs.
    off = Covet("t", openapi_url=None)
    assert off.router.routes == []

    @off.get("/docs")
    async def own_docs(req: Any) -> str:
        return "mine"

    with TestClient(off) as client:
        assert client.get("/docs").text == "mine"


@pytest.mark.parametrize("kwargs", [{"openapi_url": "openapi.json"}, {"docs_url": "/docs/{page}"}])
def test_bad_urls_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be a path starting with '/'"):
        Covet("t", **kwargs)


# -- against FastAPI -----------------------------------------------------------------------


def _load(name: str, path: Any) -> Any:
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _operation_facts(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (path, method): {
            "summary": op.get("summary"), "operationId": op.get("operationId"), "tags": op.get("tags"),
            "parameters": [(p["name"], p["in"], p["required"]) for p in op.get("parameters", [])],
            "body": (op["requestBody"].get("required", False), op["requestBody"]["content"]) if "requestBody" in op else None,
            "responses": sorted(op["responses"]),
        }
        for path, item in doc["paths"].items() for method, op in item.items()
    }  # fmt: skip


def test_the_crud_example_is_documented_as_its_fastapi_port_is() -> None:
    """examples/crud/app.py and examples/crud/fastapi_app.py, the same API for each
    framework: the same operations (summaries, ids, tags, parameters, bodies, answer
    statuses) and the same components, field for field."""
    pytest.importorskip("fastapi", reason="fastapi (PYDEPS) is what the port runs on")
    crud = Path(__file__).resolve().parents[2] / "examples" / "crud"
    ours = openapi_document(_load("openapi_crud_covet", crud / "app.py").app)
    theirs = _load("openapi_crud_fastapi", crud / "fastapi_app.py").app.openapi()
    validate(ours)  # type: ignore[arg-type]
    assert _operation_facts(ours) == _operation_facts(theirs)
    schemas, their_schemas = ours["components"]["schemas"], theirs["components"]["schemas"]
    assert sorted(schemas) == sorted(their_schemas)
    for name, schema in schemas.items():
        other = their_schemas[name]
        assert list(schema.get("properties", {})) == list(other.get("properties", {})), name
        assert sorted(schema.get("required", [])) == sorted(other.get("required", [])), name
        assert sorted(schema.get("enum", [])) == sorted(other.get("enum", [])), name


def test_a_route_on_a_docs_url_says_how_to_free_it() -> None:
    app = Covet()
    with pytest.raises(ValueError, match=r"docs_url=None"):

        @app.get("/docs")
        async def own_docs() -> str:
            return "mine"

    free = Covet(docs_url=None)

    @free.get("/docs")
    async def mine() -> str:
        return "mine"
