"""TestClient: routing like the gateway (precedence, 404, 405, HEAD), errors, lifecycle."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from covet import Covet, HTTPException, JSONResponse, Request, StreamingResponse
from covet.testing import IncompleteResponse, TestClient


def build() -> Covet:
    app = Covet()

    @app.get("/files/{path...}")
    async def catch_all(req: Request, path: str) -> dict[str, str]:
        return {"route": "catch-all", "path": path}

    @app.get("/files/{name}")
    async def one(req: Request, name: str) -> dict[str, str]:
        return {"route": "param", "name": name}

    @app.get("/files/readme")
    async def static(req: Request) -> dict[str, str]:
        return {"route": "static"}

    @app.get("/files/{id:int}/raw")
    async def typed(req: Request, id: int) -> dict[str, object]:
        return {"route": "typed", "id": id}

    @app.get("/files/{name}/raw/")
    async def trailing(req: Request, name: str) -> dict[str, str]:
        return {"route": "trailing", "name": name}

    @app.get("/users/me")
    async def me(req: Request) -> str:
        return "me"

    @app.get("/users/{id:int}")
    async def user_id(req: Request, id: int) -> str:
        return f"id {id}"

    @app.get("/users/{name}")
    async def user_name(req: Request, name: str) -> str:
        return f"name {name}"

    @app.route("/items", methods=["GET", "POST"])
    async def items(req: Request) -> dict[str, str]:
        return {"method": req.method}

    @app.delete("/items/{id:int}")
    async def delete_item(req: Request, id: int) -> None:
        return None

    @app.get("/head-only")
    async def get_for_head(req: Request) -> str:
        return "body that HEAD must not carry"

    @app.head("/explicit-head")
    async def explicit_head(req: Request) -> JSONResponse:
        return JSONResponse({}, headers={"x-head": "yes"})

    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(build())


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/files/readme", {"route": "static"}),
        ("/files/other", {"route": "param", "name": "other"}),
        ("/files/a/b/c", {"route": "catch-all", "path": "a/b/c"}),
        ("/files/", {"route": "catch-all", "path": ""}),
        ("/files/12/raw", {"route": "typed", "id": 12}),
        ("/files/x/raw", {"route": "catch-all", "path": "x/raw"}),
        ("/files/x/raw/", {"route": "trailing", "name": "x"}),
        ("/users/me", "me"),
        ("/users/42", "id 42"),
        ("/users/-7", "id -7"),
        ("/users/bob", "name bob"),
        ("/users/%31", "id 1"),  # an escaped digit is the digit (RFC 3986 6.2.2.2)
        ("/users/%2531", "name %31"),  # typed params see the raw segment: %25 is not unreserved
        ("/users/9223372036854775808", "name 9223372036854775808"),  # past int64
    ],
)
def test_precedence(client: TestClient, url: str, expected: object) -> None:
    r = client.get(url)
    assert r.status_code == 200
    assert (r.json() if isinstance(expected, dict) else r.text) == expected


def test_404(client: TestClient) -> None:
    for url in ("/nope", "/files", "/items/", "/items/abc"):
        r = client.get(url)
        assert r.status_code == 404, url
        assert (r.text, r.headers["content-type"]) == ("Not Found\n", "text/plain; charset=utf-8")


def test_405_with_allow(client: TestClient) -> None:
    r = client.put("/items")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    assert r.text == "Method Not Allowed\n"
    r = client.get("/items/3")
    assert (r.status_code, r.headers["Allow"]) == (405, "DELETE, OPTIONS")
    assert client.delete("/items/3").status_code == 204


def test_automatic_options(client: TestClient) -> None:
    r = client.options("/items")
    assert (r.status_code, r.content, r.headers["allow"]) == (204, b"", "GET, HEAD, OPTIONS, POST")
    assert client.options("/nope").status_code == 404


def test_head_falls_back_to_get(client: TestClient) -> None:
    r = client.head("/head-only")
    assert r.status_code == 200 and r.content == b""
    assert r.headers["content-length"] == str(len("body that HEAD must not carry"))
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    r = client.head("/explicit-head")
    assert (r.headers["x-head"], r.content) == ("yes", b"")
    assert client.head("/nope").status_code == 404
    r = client.head("/items/3")
    assert r.status_code == 405 and r.content == b""


def test_full_url_and_base_url() -> None:
    app = Covet()

    @app.get("/where")
    async def where(req: Request) -> dict[str, str]:
        return {"url": req.url, "scheme": req.scheme, "host": req.headers["host"]}

    client = TestClient(app, base_url="https://api.example")
    assert client.get("/where?q=1").json() == {
        "url": "https://api.example/where?q=1", "scheme": "https", "host": "api.example"
    }
    assert client.get("http://other:8080/where").json()["url"] == "http://other:8080/where"


def test_exception_handlers() -> None:
    app = Covet()

    class PaymentRequired(Exception):
        pass

    class CardDeclined(PaymentRequired):
        pass

    @app.exception_handler(PaymentRequired)
    async def on_payment(req: Request, exc: Exception) -> tuple[dict[str, str], int]:
        return {"error": type(exc).__name__, "path": req.path}, 402

    @app.exception_handler(404)
    def on_404(req: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"missing": exc.detail}, 404)

    @app.exception_handler(KeyError)
    async def on_key(req: Request, exc: Exception) -> str:
        raise HTTPException(409, "conflict from handler")  # handlers may not recurse

    @app.get("/pay")
    async def pay(req: Request) -> None:
        raise CardDeclined()

    @app.get("/missing")
    async def missing(req: Request) -> None:
        raise HTTPException(404, "no such thing")

    @app.get("/teapot")
    async def teapot(req: Request) -> None:
        raise HTTPException(418, headers={"x-tea": "earl grey"})

    @app.get("/key")
    async def key(req: Request) -> None:
        raise KeyError("k")

    client = TestClient(app)
    r = client.get("/pay")
    assert (r.status_code, r.json()) == (402, {"error": "CardDeclined", "path": "/pay"})
    r = client.get("/missing")
    assert (r.status_code, r.json()) == (404, {"missing": "no such thing"})
    r = client.get("/teapot")
    assert (r.status_code, r.json(), r.headers["x-tea"]) == (418, {"detail": "I'm a Teapot"}, "earl grey")
    r = client.get("/key")
    assert (r.status_code, r.text) == (500, "Internal Server Error")


def test_500_hides_traceback_and_logs_it(caplog: pytest.LogCaptureFixture) -> None:
    app = Covet()

    @app.get("/crash")
    def crash(req: Request) -> None:
        raise ZeroDivisionError("password=hunter2")

    client = TestClient(app)
    with caplog.at_level(logging.ERROR, logger="covet.error"):
        r = client.get("/crash", headers={"x-request-id": "req-42"})
    assert (r.status_code, r.text) == (500, "Internal Server Error")
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert "Traceback" not in r.text and "hunter2" not in r.text
    records = [rec for rec in caplog.records if rec.name == "covet.error"]
    assert len(records) == 1 and "req-42" in records[0].getMessage()
    assert records[0].exc_info is not None
    assert "Traceback (most recent call last)" in caplog.text
    assert "ZeroDivisionError: password=hunter2" in caplog.text


def test_500_handler_sees_unhandled_exceptions(caplog: pytest.LogCaptureFixture) -> None:
    app = Covet()

    @app.exception_handler(500)
    async def on_500(req: Request, exc: Exception) -> tuple[dict[str, str], int]:
        return {"oops": type(exc).__name__, "id": req.request_id}, 500

    @app.get("/crash")
    async def crash(req: Request) -> None:
        raise ValueError("x")

    r = TestClient(app).get("/crash", headers={"x-request-id": "r1"})
    assert (r.status_code, r.json()) == (500, {"oops": "ValueError", "id": "r1"})
    assert "r1" in caplog.text  # still logged


def test_context_manager_shares_one_loop_with_startup() -> None:
    app = Covet()
    state: dict[str, object] = {}

    @app.on_startup
    async def start() -> None:
        state["loop"] = asyncio.get_running_loop()
        state["queue"] = asyncio.Queue()

    @app.get("/same-loop")
    async def same(req: Request) -> dict[str, bool]:
        return {"same": asyncio.get_running_loop() is state["loop"]}

    with TestClient(app) as client:
        assert client.get("/same-loop").json() == {"same": True}
        assert client.get("/same-loop").json() == {"same": True}


def test_cookie_jar_and_per_request_cookies() -> None:
    app = Covet()

    @app.post("/login")
    async def login(req: Request) -> JSONResponse:
        resp = JSONResponse({"ok": True})
        resp.set_cookie("sid", "42")
        return resp

    @app.get("/me")
    async def me(req: Request) -> dict[str, str]:
        return req.cookies

    client = TestClient(app)
    client.post("/login")
    assert client.cookies == {"sid": "42"}
    assert client.get("/me", cookies={"extra": "1"}).json() == {"sid": "42", "extra": "1"}


def test_client_body_arguments_are_exclusive() -> None:
    client = TestClient(Covet())
    with pytest.raises(ValueError, match="only one of"):
        client.post("/", json={"a": 1}, content=b"x")


def test_client_cert_and_early_hints() -> None:
    from covet import ClientCert

    app = Covet()

    @app.get("/me")
    async def me(req: Request) -> dict[str, object]:
        await req.send_early_hints("</a.css>; rel=preload; as=style", "</b.js>; rel=preload; as=script")
        await req.send_early_hints(headers=[("X-Hint", "2"), ("Content-Length", "9")])
        cert = req.client_cert
        return {"subject": None if cert is None else cert.subject, "sans": None if cert is None else list(cert.sans)}

    @app.get("/late")
    async def late(req: Request) -> StreamingResponse:
        async def gen() -> AsyncIterator[bytes]:
            await req.send_early_hints("</x>")
            yield b"never"

        return StreamingResponse(gen())

    @app.get("/bad")
    async def bad(req: Request) -> str:
        await req.send_early_hints("</x>\r\nx-injected: 1")
        return "no"

    client = TestClient(app)
    cert = ClientCert("CN=alice", ("alice.example",), "00" * 32)
    r = client.get("/me", client_cert=cert)
    assert r.status_code == 200 and r.json() == {"subject": "CN=alice", "sans": ["alice.example"]}
    assert [h.getlist("link") for h in r.early_hints] == [
        ["</a.css>; rel=preload; as=style", "</b.js>; rel=preload; as=script"], []]
    # The gateway drops framing fields from a 103 as from the final head.
    assert r.early_hints[1].get("x-hint") == "2" and "content-length" not in r.early_hints[1]
    r = client.get("/me")
    assert r.json() == {"subject": None, "sans": None} and len(r.early_hints) == 2
    with pytest.raises(IncompleteResponse) as ei:
        client.get("/late")
    assert isinstance(ei.value.__cause__, RuntimeError) and "already begun" in str(ei.value.__cause__)
    r = client.get("/bad")
    assert r.status_code == 500 and r.early_hints == []
