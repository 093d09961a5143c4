"""Covet: registration, patterns, freezing, manifest, hooks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covet import Covet, HTTPException
from covet._patterns import Pattern
from covet.testing import TestClient


def test_decorators_return_function_unchanged() -> None:
    app = Covet()

    async def handler(req: object) -> str:
        return "x"

    for deco in (app.get, app.post, app.put, app.patch, app.delete, app.head, app.options):
        assert deco(f"/{deco.__name__}")(handler) is handler
    assert app.route("/multi", methods=["GET", "POST"])(handler) is handler
    assert [r["method"] for r in app.manifest()][-2:] == ["GET", "POST"]


def test_manifest_shape_and_options() -> None:
    app = Covet(openapi_url=None)

    @app.get("/users/{id:int}", name="user", timeout=1.5)
    async def user(req: object, id: int) -> dict[str, int]:
        return {"id": id}

    @app.get("/static/{rest:path}")
    async def static(req: object, rest: str) -> str:
        return rest

    @app.post("/items/{name:str}", timeout=0.0001)
    async def items(req: object, name: str) -> str:
        return name

    @app.get("/café/%7E%2f%c3%a9")
    async def cafe(req: object) -> str:
        return ""

    # Non-ASCII encoded, then the canonical form: upper-case hex, unreserved decoded.
    assert app.manifest()[-1]["path"] == "/caf%C3%A9/~%2F%C3%A9"
    app.router.routes.pop()
    assert app.manifest() == [
        {"method": "GET", "path": "/users/{id:int}", "kind": "http",
         "options": {"name": "user", "timeout_ms": 1500}},
        {"method": "GET", "path": "/static/{rest...}", "kind": "http", "options": {}},
        {"method": "POST", "path": "/items/{name}", "kind": "http", "options": {"timeout_ms": 1}},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("users", "must start with '/'"),
        ("/a//b", "segment 2 is empty"),
        ("/a/{id", "fill a whole segment"),
        ("/a/x{id}", "fill a whole segment"),
        ("/a/{id:float}", "unknown type 'float'"),
        ("/a/{1x}", "not a Python identifier"),
        ("/a/{class}", "not a Python identifier"),
        ("/a/{}", "not a Python identifier"),
        ("/a/{x}/{x}", "used twice"),
        ("/a/{rest...}/b", "must be the last segment"),
        ("/a/{rest:path}/b", "must be the last segment"),
        ("/a b", "not allowed in a static segment"),
        ("/a?b", "not allowed in a static segment"),
        ("/a%2", "'%' is not allowed in a static segment; percent-encode it"),
        ("/a%zz", "'%' is not allowed"),
        ("/a<b", "'<' is not allowed"),
        ("/" + "/".join(f"{{p{i}}}" for i in range(17)), "more than 16 parameters"),
        ("/" + "a" * 2048, "longer than 2048 bytes"),
    ],
)
def test_invalid_patterns_raise_precise_errors(pattern: str, message: str) -> None:
    app = Covet()
    with pytest.raises(ValueError, match="invalid route pattern") as info:
        app.get(pattern)
    assert message in str(info.value)


def test_duplicate_and_conflicting_routes_raise() -> None:
    app = Covet()

    @app.get("/users/{id:int}")
    async def a(req: object, id: int) -> None: ...

    with pytest.raises(ValueError, match="already registered"):
        app.get("/users/{id:int}")(a)
    with pytest.raises(ValueError, match="conflicts with GET '/users/{id:int}'"):

        @app.get("/users/{num:int}")
        async def b(req: object, num: int) -> None: ...

    async def plain(req: object) -> None: ...

    app.get("/caf%C3%A9")(plain)
    with pytest.raises(ValueError, match="'/café' is already registered"):
        app.get("/café")(plain)  # the same route once percent-encoded

    # A str parameter, a uuid parameter and another method all coexist with the int one.
    @app.get("/users/{name}")
    async def c(req: object, name: str) -> None: ...

    @app.get("/users/{key:uuid}")
    async def d(req: object, key: object) -> None: ...

    @app.post("/users/{id:int}")
    async def e(req: object, id: int) -> None: ...


def test_bad_methods_and_options() -> None:
    app = Covet()
    with pytest.raises(ValueError, match="unsupported HTTP method 'BREW'"):
        app.route("/x", methods=["BREW"])
    with pytest.raises(TypeError, match="not a str"):
        app.route("/x", methods="GET")
    with pytest.raises(ValueError, match="without repeats"):
        app.route("/x", methods=["GET", "get"])
    with pytest.raises(ValueError, match="positive number of seconds"):
        app.get("/x", timeout=0)
    with pytest.raises(ValueError, match="app name"):
        Covet("bad name!")


def test_handler_signature_checked_at_registration() -> None:
    app = Covet()
    with pytest.raises(TypeError, match="no parameter named 'id'"):

        @app.get("/u/{id:int}")
        async def missing(req: object) -> None: ...

    # A path parameter is bound by name, even where the request would have gone; a
    # parameter that is not in the path is a query parameter; a handler may take no
    # parameters at all (issue 23: FastAPI's rules).
    @app.get("/u/{req}")
    async def by_name(req: object) -> object:
        return req

    @app.get("/v/{id}")
    async def extra(req: object, id: str, extra: int) -> object:
        return [id, extra]

    @app.get("/w")
    async def no_request() -> str:
        return "w"

    with pytest.raises(TypeError, match="no parameter named 'id'"):

        @app.get("/x/{id}")
        async def only_query(req: object, idx: int) -> None: ...

    @app.get("/k/{a}/{b}")
    async def kwargs_ok(req: object, **params: str) -> None: ...

    from covet.testing import TestClient

    with TestClient(app) as client:
        assert client.get("/u/bob").text == "bob"
        assert client.get("/v/a?extra=2").json() == ["a", 2]
        assert client.get("/v/a").status_code == 422
        assert client.get("/w").text == "w"


def test_registering_after_freeze_raises() -> None:
    app = Covet()
    app.freeze()
    assert app.frozen
    with pytest.raises(RuntimeError, match="frozen"):
        app.get("/late")(lambda req: None)
    with pytest.raises(RuntimeError, match="frozen"):
        app.on_startup(lambda: None)
    with pytest.raises(RuntimeError, match="frozen"):
        app.on_shutdown(lambda: None)
    with pytest.raises(RuntimeError, match="frozen"):
        app.exception_handler(ValueError)(lambda req, exc: None)


def test_testclient_freezes_the_app() -> None:
    app = Covet()

    @app.get("/")
    async def index(req: object) -> str:
        return "ok"

    with TestClient(app) as client:
        assert client.get("/").text == "ok"
        with pytest.raises(RuntimeError):
            app.post("/")(index)


def test_ws_is_an_alias_of_websocket_and_registers_a_ws_route() -> None:
    app = Covet(openapi_url=None)

    @app.ws("/chat/{room}", name="chat", resumable=True)
    async def chat(ws: object, room: str) -> None: ...

    @app.websocket("/plain")
    async def plain(ws: object) -> None: ...

    assert app.manifest() == [
        {"method": "GET", "path": "/chat/{room}", "kind": "ws", "options": {"name": "chat", "resumable": True}},
        {"method": "GET", "path": "/plain", "kind": "ws", "options": {}},
    ]
    with pytest.raises(TypeError, match="async function"):
        app.websocket("/sync")(lambda ws: None)
    with pytest.raises(TypeError, match="no parameter named 'room'"):
        app.websocket("/x/{room}")(plain)
    with pytest.raises(ValueError, match="share a path only with the same pattern"):
        app.get("/chat/{name}")(lambda req, name: None)


def test_http_get_and_websocket_on_one_pattern_are_one_manifest_route() -> None:
    """An HTTP GET route and a WebSocket route may share a pattern; the manifest sends
    the pair as the ws route with option http (PROTOCOL.md 1.3), where the ws route was
    registered, the HTTP route's timeout with it; the worker finds each by its key."""
    app = Covet(openapi_url=None)

    @app.post("/live")
    async def post_live(req: object) -> str:
        return "post"

    @app.get("/live", name="live-page", timeout=2.5)
    async def live_page(req: object) -> str:
        return "page"

    @app.websocket("/live", resumable=True)
    async def live_ws(ws: object) -> None: ...

    @app.websocket("/rooms/{room}", name="room")
    async def room_ws(ws: object, room: str) -> None: ...

    @app.get("/rooms/{room:str}")  # the same canonical pattern, spelled otherwise
    async def room_page(req: object, room: str) -> str:
        return room

    assert app.manifest() == [
        {"method": "POST", "path": "/live", "kind": "http", "options": {}},
        {"method": "GET", "path": "/live", "kind": "ws",
         "options": {"name": "live-page", "timeout_ms": 2500, "resumable": True, "http": True}},
        {"method": "GET", "path": "/rooms/{room}", "kind": "ws", "options": {"name": "room", "http": True}},
    ]  # fmt: skip
    router = app.router
    get, ws = router.lookup("GET", "/live"), router.lookup_ws("/live")
    assert get is not None and get.endpoint is live_page and ws is not None and ws.endpoint is live_ws
    head = router.lookup("HEAD", "/live")
    assert head is get  # HEAD falls back to the GET route, as for any GET route
    assert router.http_side(ws) is get and router.http_side(get) is None
    room = router.lookup_ws("/rooms/{room}")
    assert room is not None and router.http_side(room) is router.lookup("GET", "/rooms/{room}")
    # As at the gateway, the table's GET route for the pair is the WebSocket one.
    match = router.match("GET", "/rooms/kitchen")
    assert match.route is room and match.params == [("room", "kitchen")]
    assert router.match("HEAD", "/live").route is ws
    assert router.match("DELETE", "/live").allow == ("GET", "HEAD", "OPTIONS", "POST")


def test_http_get_and_websocket_pair_conflicts() -> None:
    app = Covet()

    @app.websocket("/feed", auth=True, rate_limit="5/minute")
    async def feed(ws: object) -> None: ...

    async def feed_at(ws: object, **params: str) -> None: ...

    # A second route of either kind on the pattern is a duplicate.
    with pytest.raises(ValueError, match="already registered"):
        app.websocket("/feed", auth=True, rate_limit="5/minute")(feed)
    # The pair is one route at the gateway: one set of security options.
    with pytest.raises(ValueError, match="security options must be the same") as info:
        app.get("/feed", auth=True)(lambda req: None)
    assert "'rate_limit': '5/minute'" in str(info.value)
    app.get("/feed", auth=True, rate_limit="5/minute")(lambda req: None)
    with pytest.raises(ValueError, match="already registered"):
        app.get("/feed", auth=True, rate_limit="5/minute")(lambda req: None)
    with pytest.raises(ValueError, match="already registered"):
        app.websocket("/feed", auth=True, rate_limit="5/minute")(feed)
    # The other order: the WebSocket route second, its options checked the same way.
    app.get("/page")(lambda req: None)
    with pytest.raises(ValueError, match="security options must be the same"):
        app.websocket("/page", cors=False)(feed)
    # Another pattern of the same shape still conflicts, whatever the kinds.
    app.websocket("/u/{id}")(feed_at)
    with pytest.raises(ValueError, match="share a path only with the same pattern"):
        app.get("/u/{name}")(lambda req, name: None)
    # A static route's path has no other GET route; the OpenAPI pages stay theirs.
    app.static("/assets", ".")
    with pytest.raises(ValueError, match="a static route's path has no other GET route"):
        app.websocket("/assets/{path...}")(feed_at)
    with pytest.raises(ValueError, match="taken by the app's OpenAPI pages"):
        app.websocket("/openapi.json")(feed)


def test_startup_and_shutdown_hooks_sync_and_async() -> None:
    app = Covet()
    events: list[str] = []

    @app.on_startup
    def sync_start() -> None:
        events.append("start-sync")

    @app.on_startup
    async def async_start() -> None:
        events.append("start-async")

    @app.on_shutdown
    async def async_stop() -> None:
        events.append("stop-async")

    @app.on_shutdown
    def sync_stop() -> None:
        events.append("stop-sync")

    @app.get("/")
    async def index(req: object) -> list[str]:
        return events

    with TestClient(app) as client:
        assert client.get("/").json() == ["start-sync", "start-async"]
    assert events == ["start-sync", "start-async", "stop-sync", "stop-async"]


def test_failing_shutdown_hook_is_logged_and_others_run(caplog: pytest.LogCaptureFixture) -> None:
    app = Covet()
    ran: list[str] = []

    @app.on_shutdown
    def last() -> None:
        ran.append("last")

    @app.on_shutdown
    def broken() -> None:
        raise RuntimeError("boom")

    with TestClient(app):
        pass
    assert ran == ["last"]
    assert "shutdown hook" in caplog.text and "boom" in caplog.text


def test_startup_failure_propagates() -> None:
    app = Covet()

    @app.on_startup
    async def broken() -> None:
        raise RuntimeError("no database")

    with pytest.raises(RuntimeError, match="no database"):
        with TestClient(app):
            pass


def test_http_exception_validates_status() -> None:
    with pytest.raises(ValueError):
        HTTPException(200)
    exc = HTTPException(418)
    assert exc.detail == "I'm a Teapot" and exc.headers == {}


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("/{}:.ab1_%é? -"), max_size=24))
def test_pattern_parser_accepts_or_explains(pattern: str) -> None:
    try:
        parsed = Pattern.parse(pattern)
    except ValueError as exc:
        assert str(exc).startswith("invalid route pattern")
    else:
        # The canonical form is stable and is itself a valid pattern of the same shape.
        again = Pattern.parse(parsed.canonical)
        assert again.canonical == parsed.canonical and again.shape == parsed.shape
        assert parsed.canonical.isascii()
