"""Typed handlers (issue 23): how parameters are bound, dependencies, background tasks,
middleware, state and lifespan, status codes and return values — through TestClient,
which runs the same Covet._handle a worker runs."""


import contextlib
import dataclasses
import enum
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any, TypedDict

import msgspec
import pytest

from covet import (
    BackgroundTasks,
    Body,
    Cookie,
    Covet,
    Depends,
    Header,
    HTTPException,
    JSONResponse,
    Path,
    Query,
    Request,
    RequestValidationError,
    Response,
)
from covet.testing import TestClient


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Item(msgspec.Struct):
    name: str
    price: float
    tags: list[str] = []


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Movie(TypedDict):
    title: str
    year: int


class Public(msgspec.Struct):
    name: str


def missing(source: str, name: str) -> dict[str, Any]:
    return {"type": "missing", "loc": [source, name], "msg": "Field required", "input": None}


def test_parameters_come_from_path_query_header_and_cookie() -> None:
    app = Covet()

    @app.get("/items/{item_id}")
    async def read(
        item_id: int,
        q: str | None = None,
        limit: Annotated[int, Query(ge=1)] = 10,
        tags: Annotated[list[str], Query(alias="tag")] = [],
        color: Color = Color.RED,
        flag: bool = False,
        user_agent: Annotated[str | None, Header()] = None,
        x_ids: Annotated[list[int], Header()] = [],
        session: Annotated[str | None, Cookie()] = None,
        u: uuid.UUID | None = None,
    ) -> dict[str, Any]:
        return {"item_id": item_id, "q": q, "limit": limit, "tags": tags, "color": color, "flag": flag,
                "ua": user_agent, "ids": x_ids, "session": session, "u": u}  # fmt: skip

    with TestClient(app) as client:
        r = client.get(
            "/items/7?q=hi&limit=3&tag=a&tag=b&color=blue&flag=yes&u=00000000-0000-0000-0000-000000000001",
            headers=[("User-Agent", "t/1"), ("X-Ids", "1"), ("x-ids", "2"), ("cookie", "session=s1")],
        )
        assert r.status_code == 200
        assert r.json() == {"item_id": 7, "q": "hi", "limit": 3, "tags": ["a", "b"], "color": "blue", "flag": True,
                            "ua": "t/1", "ids": [1, 2], "session": "s1",
                            "u": "00000000-0000-0000-0000-000000000001"}  # fmt: skip
        r = client.get("/items/7")
        assert r.json() == {"item_id": 7, "q": None, "limit": 10, "tags": [], "color": "red", "flag": False,
                            "ua": None, "ids": [], "session": None, "u": None}  # fmt: skip


def test_errors_are_collected_in_fastapi_order_and_shape() -> None:
    app = Covet()

    def auth(x_token: Annotated[str, Header()]) -> str:
        return x_token

    @app.get("/r/{n}")
    async def both(n: int, q: str, k: int, who: Annotated[str, Depends(auth)]) -> None: ...

    with TestClient(app) as client:
        r = client.get("/r/x?k=z")
        assert r.status_code == 422
        assert r.headers["content-type"] == "application/json"
        detail = r.json()["detail"]
        # the dependency's errors first, then path, query (in declaration order)
        assert [e["loc"] for e in detail] == [["header", "x-token"], ["path", "n"], ["query", "q"], ["query", "k"]]
        assert detail[0] == missing("header", "x-token")
        assert detail[1]["type"] == "int_parsing" and detail[1]["input"] == "x"
        assert detail[2] == missing("query", "q")
        assert detail[3]["type"] == "int_parsing" and detail[3]["input"] == "z"


def test_a_route_pattern_type_still_routes_and_an_annotation_converts() -> None:
    app = Covet()

    @app.get("/a/{id:int}")
    async def typed_pattern(id: int) -> int:
        return id

    @app.get("/b/{id}")
    async def typed_annotation(id: Annotated[int, Path(ge=1)]) -> int:
        return id

    with TestClient(app) as client:
        assert client.get("/a/5").json() == 5
        assert client.get("/a/x").status_code == 404  # the router refuses it
        assert client.get("/b/5").json() == 5
        r = client.get("/b/0")
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "id"]
        assert r.json()["detail"][0]["type"] == "greater_than_equal"


def test_the_request_by_annotation_or_first_positional() -> None:
    app = Covet()

    @app.get("/old/{id}")
    async def old(req, id: str):  # type: ignore[no-untyped-def]
        return [req.method, id, type(req).__name__]

    @app.get("/new")
    async def new(q: int, request: Request) -> list[Any]:
        return [q, request.url.endswith("/new?q=1")]

    with TestClient(app) as client:
        assert client.get("/old/a").json() == ["GET", "a", "Request"]
        assert client.get("/new?q=1").json() == [1, True]


@pytest.mark.parametrize("model,body,want", [
    (Item, {"name": "a", "price": "2.5"}, {"name": "a", "price": 2.5, "tags": []}),
    (Point, {"x": 1, "y": 2}, {"x": 1, "y": 2}),
    (Movie, {"title": "M", "year": 1999}, {"title": "M", "year": 1999}),
])  # fmt: skip
def test_typed_bodies(model: Any, body: dict[str, Any], want: dict[str, Any]) -> None:
    app = Covet()

    async def create(value: Any) -> Any:
        assert isinstance(value, dict) if model is Movie else isinstance(value, model)
        return value

    create.__annotations__["value"] = model
    app.post("/x", status_code=201)(create)
    with TestClient(app) as client:
        r = client.post("/x", json=body)
        assert (r.status_code, r.json()) == (201, want)
        r = client.post("/x", content=msgspec.msgpack.encode(body), headers={"content-type": "application/msgpack"})
        assert (r.status_code, r.json()) == (201, want)
        r = client.post("/x")
        assert r.status_code == 422
        assert r.json()["detail"] == [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]


def test_embedded_bodies_and_body_markers() -> None:
    app = Covet()

    @app.post("/two")
    async def two(item: Item, point: Point, note: Annotated[str, Body()] = "") -> list[Any]:
        return [item, point, note]

    @app.post("/one")
    async def one(item: Annotated[Item, Body(embed=True)]) -> Item:
        return item

    with TestClient(app) as client:
        r = client.post("/two", json={"item": {"name": "a", "price": 1}, "point": {"x": 1, "y": 2}, "note": "n"})
        assert r.json() == [{"name": "a", "price": 1.0, "tags": []}, {"x": 1, "y": 2}, "n"]
        r = client.post("/one", json={"item": {"name": "b", "price": 2}})
        assert r.json() == {"name": "b", "price": 2.0, "tags": []}
        assert client.post("/one", json={"name": "b", "price": 2}).status_code == 422


def test_dependencies_sync_async_generator_cached_and_overridden() -> None:
    app = Covet()
    calls: list[str] = []

    async def settings() -> dict[str, int]:
        calls.append("settings")
        return {"page": 5}

    def paging(skip: int = 0, cfg: dict[str, int] = Depends(settings)) -> tuple[int, int]:
        calls.append(f"paging on {threading.current_thread() is threading.main_thread()}")
        return skip, cfg["page"]

    async def session() -> AsyncIterator[str]:
        calls.append("open")
        try:
            yield "db"
        except HTTPException:
            calls.append("rollback")
            raise
        finally:
            calls.append("close")

    def sync_session() -> Iterator[str]:
        calls.append("sync open")
        yield "sdb"
        calls.append("sync close")

    class Common:
        def __init__(self, q: str | None = None) -> None:
            self.q = q

    @app.get("/deps")
    async def deps(
        page: tuple[int, int] = Depends(paging),
        cfg: dict[str, int] = Depends(settings),
        fresh: dict[str, int] = Depends(settings, use_cache=False),
        db: str = Depends(session),
        sdb: Annotated[str, Depends(sync_session)] = "",
        common: Annotated[Common, Depends()] = None,  # type: ignore[assignment]
    ) -> dict[str, Any]:
        calls.append("handler")
        return {"page": page, "cfg": cfg, "fresh": fresh, "db": db, "sdb": sdb, "q": common.q}

    @app.get("/fail")
    async def fail(db: str = Depends(session)) -> None:
        raise HTTPException(409, "conflict")

    with TestClient(app) as client:
        r = client.get("/deps?skip=2&q=z")
        assert r.json() == {"page": [2, 5], "cfg": {"page": 5}, "fresh": {"page": 5}, "db": "db", "sdb": "sdb", "q": "z"}
        # settings once for paging and cfg, again for use_cache=False; a sync dependency
        # runs in the thread pool; cleanup after the response, in reverse order
        assert calls == ["settings", "paging on False", "settings", "open", "sync open", "handler",
                         "sync close", "close"]  # fmt: skip
        calls.clear()
        r = client.get("/fail")
        assert (r.status_code, r.json()) == (409, {"detail": "conflict"})
        assert calls == ["open", "rollback", "close"]
        calls.clear()
        app.dependency_overrides[settings] = lambda: {"page": 99}
        assert client.get("/deps").json()["page"] == [0, 99]
        app.dependency_overrides.clear()
        assert client.get("/deps").json()["page"] == [0, 5]


def test_a_body_in_a_dependency_is_refused() -> None:
    app = Covet()

    def uses_body(item: Item) -> None: ...

    with pytest.raises(TypeError, match="only the handler takes one"):

        @app.get("/b")
        async def b(v: Any = Depends(uses_body)) -> None: ...


def test_background_tasks_run_after_the_response_and_failures_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    app = Covet()
    done: list[str] = []

    async def cleanup() -> AsyncIterator[None]:
        yield
        done.append("dependency cleanup")

    def boom() -> None:
        raise RuntimeError("task failed")

    @app.post("/send", status_code=202)
    async def send(tasks: BackgroundTasks, _: None = Depends(cleanup)) -> dict[str, bool]:
        tasks.add_task(done.append, "sync task")
        tasks.add_task(boom)

        async def later(word: str) -> None:
            done.append(word)

        tasks.add_task(later, word="async task")
        done.append("handler")
        return {"queued": True}

    with TestClient(app) as client, caplog.at_level(logging.ERROR, "covet.error"):
        r = client.post("/send")
        assert (r.status_code, r.json()) == (202, {"queued": True})
    assert done == ["handler", "sync task", "async task", "dependency cleanup"]
    failed = [rec for rec in caplog.records if "background task" in rec.getMessage()]
    assert len(failed) == 1 and "boom" in failed[0].getMessage()
    assert getattr(failed[0], "request_id", "") == r.headers["x-request-id"]


def test_middleware_order_short_circuit_and_editing() -> None:
    app = Covet()
    seen: list[str] = []

    @app.middleware
    async def outer(req: Request, call_next: Any) -> Response:
        seen.append("outer in")
        req.state.user = "ann"
        response: Response = await call_next(req)
        seen.append("outer out")
        response.headers["x-outer"] = "1"
        return response

    @app.middleware("http")
    async def inner(req: Request, call_next: Any) -> Response:
        seen.append("inner in")
        if req.query_params.get("stop"):
            return JSONResponse({"stopped": True}, status_code=403)
        response: Response = await call_next(req)
        response.headers["x-inner"] = "1"
        return response

    @app.get("/")
    async def home(req: Request) -> dict[str, str]:
        seen.append("handler")
        return {"user": req.state.user}

    @app.get("/err")
    async def err() -> None:
        raise RuntimeError("boom")

    with TestClient(app) as client:
        r = client.get("/")
        assert r.json() == {"user": "ann"} and r.headers["x-outer"] == "1" and r.headers["x-inner"] == "1"
        assert seen == ["outer in", "inner in", "handler", "outer out"]
        r = client.get("/?stop=1")
        assert (r.status_code, r.json(), r.headers.get("x-inner"), r.headers["x-outer"]) == (403, {"stopped": True}, None, "1")
        r = client.get("/err")  # call_next gives the 500 answer; middleware still edits it
        assert (r.status_code, r.headers["x-inner"]) == (500, "1")
        r = client.get("/nowhere")  # the gateway's own 404: no worker, no middleware
        assert r.status_code == 404 and "x-inner" not in r.headers


def test_lifespan_state_app_state_and_hooks_in_order() -> None:
    order: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Covet) -> AsyncIterator[dict[str, Any]]:
        order.append("lifespan start")
        app.state.pool = "pool"
        yield {"counter": [0]}
        order.append("lifespan end")

    app = Covet(lifespan=lifespan)

    @app.on_startup
    def hook() -> None:
        order.append("startup hook")

    @app.on_shutdown
    def down() -> None:
        order.append("shutdown hook")

    @app.get("/")
    async def home(req: Request) -> list[Any]:
        req.state.counter[0] += 1
        return [req.app.state.pool, req.state.counter[0]]

    with TestClient(app) as client:
        assert client.get("/").json() == ["pool", 1]
        assert client.get("/").json() == ["pool", 2]  # a shallow copy per request, as Starlette's
    assert order == ["lifespan start", "startup hook", "shutdown hook", "lifespan end"]
    with pytest.raises(AttributeError, match="'missing'"):
        app.state.missing


def test_status_codes_tuples_response_param_and_response_model() -> None:
    app = Covet()

    class Secret(msgspec.Struct):
        name: str
        password: str

    @app.post("/made", status_code=201)
    async def made() -> Item:
        return Item("a", 1.0)

    @app.delete("/gone", status=204)
    async def gone() -> None: ...

    @app.get("/tuple")
    async def tup() -> Any:
        return {"a": 1}, 202, {"x-extra": "1"}

    @app.get("/cookie")
    async def cookie(response: Response) -> dict[str, int]:
        response.set_cookie("k", "v")
        response.status_code = 203
        return {"ok": 1}

    @app.get("/public", response_model=Public)
    async def public() -> Secret:
        return Secret("ann", "hunter2")

    @app.get("/dict", response_model=Public)
    async def from_dict() -> dict[str, str]:
        return {"name": "bob", "password": "x"}

    with TestClient(app) as client:
        r = client.post("/made")
        assert (r.status_code, r.json()) == (201, {"name": "a", "price": 1.0, "tags": []})
        r = client.delete("/gone")
        assert (r.status_code, r.content) == (204, b"")
        r = client.get("/tuple")
        assert (r.status_code, r.json(), r.headers["x-extra"]) == (202, {"a": 1}, "1")
        r = client.get("/cookie")
        assert (r.status_code, r.headers["set-cookie"].startswith("k=v")) == (203, True)
        assert client.get("/public").json() == {"name": "ann"}
        assert client.get("/dict").json() == {"name": "bob"}
    with pytest.raises(ValueError, match="disagree"):
        app2 = Covet()
        app2.get("/x", status=200, status_code=201)


def test_a_validation_error_handler_replaces_the_422() -> None:
    app = Covet()

    @app.exception_handler(RequestValidationError)
    async def handle(req: Request, exc: Exception) -> Any:
        assert isinstance(exc, RequestValidationError)
        return {"errors": len(exc.errors)}, 400

    @app.get("/")
    async def home(a: int, b: int) -> None: ...

    with TestClient(app) as client:
        r = client.get("/?a=x")
        assert (r.status_code, r.json()) == (400, {"errors": 2})


def test_registration_errors_name_the_handler_and_parameter() -> None:
    app = Covet()
    with pytest.raises(TypeError, match=r"parameter 'x'.*"):

        @app.get("/")
        async def bad(x: Annotated[complex, Query()]) -> None: ...

    with pytest.raises(TypeError, match="declared Path"):

        @app.get("/p")
        async def no_path(x: Annotated[int, Path()]) -> None: ...

    with pytest.raises(TypeError, match="both in Annotated and as its default"):

        @app.get("/q")
        async def twice(x: Annotated[int, Query()] = Query(1)) -> None: ...


def test_plain_handlers_keep_the_plain_call_path() -> None:
    app = Covet()

    @app.get("/a/{id:int}")
    async def a(req: Request, id: int) -> None: ...

    @app.get("/b")
    async def b(req: Request, q: int = 0) -> None: ...

    plain, bound = app.router.routes
    assert plain.binder is None
    assert bound.binder is not None
    assert [f.name for f in bound.plan.fields] == ["q"] if bound.plan else False
