"""Request: every attribute, through TestClient."""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covet import Covet, Request
from covet.testing import TestClient


@pytest.fixture
def client() -> TestClient:
    app = Covet()

    @app.route("/echo/{name}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    async def echo(req: Request, name: str) -> dict[str, Any]:
        return {
            "method": req.method,
            "path": req.path,
            "raw_path": req.raw_path,
            "name": name,
            "path_params": req.path_params,
            "query": dict(req.query_params),
            "tags": req.query_params.getlist("tag"),
            "query_string": req.query_string,
            "client": list(req.client) if req.client else None,
            "scheme": req.scheme,
            "http_version": req.http_version,
            "request_id": req.request_id,
            "route": req.route,
            "url": req.url,
        }

    @app.get("/café/{word}")
    async def cafe(req: Request, word: str) -> dict[str, str]:
        return {"path": req.path, "raw_path": req.raw_path, "word": word}

    @app.get("/headers")
    async def headers(req: Request) -> dict[str, Any]:
        return {
            "latin": req.headers["X-Latin"],
            "LATIN_get": req.headers.get("x-LATIN"),
            "multi": req.headers.getlist("x-multi"),
            "first": req.headers["x-multi"],
            "missing": req.headers.get("x-missing", "default"),
            "has": "X-Multi" in req.headers,
            "raw_latin": req.headers.raw[[n for n, _ in req.headers.raw].index("x-latin")][1].hex(),
        }

    @app.get("/cookies")
    async def cookies(req: Request) -> dict[str, str]:
        return req.cookies

    @app.get("/typed/{n:int}/{key:uuid}/{rest...}")
    async def typed(req: Request, n: int, key: uuid.UUID, rest: str) -> dict[str, Any]:
        return {"n": n, "n_type": type(n).__name__, "key": str(key),
                "key_type": type(key).__name__, "rest": rest}  # fmt: skip

    @app.post("/json")
    async def json_body(req: Request) -> Any:
        return {"got": await req.json(), "again": await req.json()}

    @app.post("/hash")
    async def hash_body(req: Request) -> dict[str, Any]:
        data = await req.body()
        assert await req.body() is data  # cached
        return {"len": len(data), "sha": hashlib.sha256(data).hexdigest()}

    @app.post("/stream")
    async def stream(req: Request) -> dict[str, Any]:
        count, size, digest = 0, 0, hashlib.sha256()
        async for chunk in req.stream():
            count += 1
            size += len(chunk)
            digest.update(chunk)
        with pytest.raises(RuntimeError, match="already been streamed"):
            await req.body()
        return {"chunks": count, "len": size, "sha": digest.hexdigest()}

    @app.post("/text")
    async def text(req: Request) -> str:
        return (await req.body()).decode("utf-8")

    return TestClient(app)


def test_basic_attributes(client: TestClient) -> None:
    r = client.put("/echo/bob?tag=a&tag=b&empty=", headers={"x-request-id": "abc-123"})
    assert r.status_code == 200
    assert r.json() == {
        "method": "PUT",
        "path": "/echo/bob",
        "raw_path": "/echo/bob",
        "name": "bob",
        "path_params": {"name": "bob"},
        "query": {"tag": "a", "empty": ""},
        "tags": ["a", "b"],
        "query_string": "tag=a&tag=b&empty=",
        "client": ["127.0.0.1", 50000],
        "scheme": "http",
        "http_version": "1.1",
        "request_id": "abc-123",
        "route": "/echo/{name}",
        "url": "http://testserver/echo/bob?tag=a&tag=b&empty=",
    }


def test_query_params_from_params_argument(client: TestClient) -> None:
    r = client.get("/echo/x?a=1", params={"tag": ["é", "z"], "b": "2 3"})
    data = r.json()
    assert data["query"] == {"a": "1", "tag": "é", "b": "2 3"}
    assert data["tags"] == ["é", "z"]


def test_request_id_is_generated_when_absent(client: TestClient) -> None:
    r = client.get("/echo/x")
    # as the gateway makes one: 16 hex digits, sent back in X-Request-ID
    assert re.fullmatch(r"[0-9a-f]{16}", r.json()["request_id"])
    assert r.request_id == r.json()["request_id"] == r.headers["x-request-id"]


def test_non_ascii_path_is_percent_decoded(client: TestClient) -> None:
    r = client.get("/café/naïve")
    assert r.json() == {"path": "/café/naïve", "raw_path": "/caf%C3%A9/na%C3%AFve", "word": "naïve"}
    # Already-encoded input, and an encoded slash staying inside one segment.
    r = client.get("/echo/a%2Fb%20c")
    assert r.json()["name"] == "a/b c"
    assert r.json()["raw_path"] == "/echo/a%2Fb%20c"
    # Equivalent spellings route alike, as in the gateway (RFC 3986 6.2.2); the handler
    # still sees the path as sent.
    r = client.get("/%63af%c3%a9/na%c3%afve%7e")
    assert r.json() == {"path": "/café/naïve~", "raw_path": "/%63af%c3%a9/na%c3%afve%7e", "word": "naïve~"}
    assert client.get("/caf%C3%A9%2Fx").status_code == 404


def test_headers_case_insensitive_multi_latin1(client: TestClient) -> None:
    r = client.get(
        "/headers",
        headers=[("X-Latin", b"caf\xe9 \xff"), ("X-Multi", "one"), ("x-multi", "two")],
    )
    assert r.json() == {
        "latin": "café ÿ",
        "LATIN_get": "café ÿ",
        "multi": ["one", "two"],
        "first": "one",
        "missing": "default",
        "has": True,
        "raw_latin": "636166e920ff",
    }


def test_cookies(client: TestClient) -> None:
    r = client.get("/cookies", headers={"cookie": 'a=1; b="quoted value"; junk; a=2; =x'})
    assert r.json() == {"a": "1", "b": "quoted value"}
    r = client.get("/cookies", cookies={"session": "s3cr3t"})
    assert r.json() == {"session": "s3cr3t"}


def test_typed_path_params(client: TestClient) -> None:
    key = uuid.uuid4()
    r = client.get(f"/typed/-12/{key}/deep/er/path.txt")
    assert r.json() == {"n": -12, "n_type": "int", "key": str(key), "key_type": "UUID",
                        "rest": "deep/er/path.txt"}  # fmt: skip
    assert client.get(f"/typed/12/{key}/").json()["rest"] == ""


@pytest.mark.parametrize(
    "url",
    [
        "/typed/abc/6f9619ff-8b86-d011-b42d-00c04fc964ff/x",
        "/typed/99999999999999999999/6f9619ff-8b86-d011-b42d-00c04fc964ff/x",
        "/typed/1/not-a-uuid/x",
        "/typed/1/6f9619ff-8b86-d011-b42d-00c04fc964ff",
    ],
)
def test_typed_path_param_conversion_failure_is_404(client: TestClient, url: str) -> None:
    r = client.get(url)
    assert r.status_code == 404
    assert r.text == "Not Found\n"  # the gateway's answer: the router refuses it


def test_json_body_non_ascii(client: TestClient) -> None:
    payload = {"name": "Zoë", "emoji": "🚀", "nested": [1, 2.5, None, True]}
    r = client.post("/json", json=payload)
    assert r.json() == {"got": payload, "again": payload}


def test_malformed_json_is_400(client: TestClient) -> None:
    r = client.post("/json", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json() == {"detail": "malformed JSON body"}
    assert client.post("/json").status_code == 400  # empty body


def test_non_ascii_text_body(client: TestClient) -> None:
    r = client.post("/text", content="héllo wörld — ✓")
    assert r.text == "héllo wörld — ✓"


def test_large_body_upload_8mib(client: TestClient) -> None:
    data = os.urandom(8 * 1024 * 1024 + 17)
    r = client.post("/hash", content=data)
    assert r.json() == {"len": len(data), "sha": hashlib.sha256(data).hexdigest()}


def test_stream_body_in_chunks(client: TestClient) -> None:
    data = os.urandom(8 * 1024 * 1024 + 5)
    r = client.post("/stream", content=data)
    assert r.json()["len"] == len(data)
    assert r.json()["sha"] == hashlib.sha256(data).hexdigest()
    assert r.json()["chunks"] == 129  # 64 KiB chunks from the client: nothing buffered


@settings(max_examples=500, deadline=None)
@given(
    st.text(alphabet="ab=&+%2Fé0fZ;\x00 ", max_size=24)
    | st.lists(
        st.sampled_from(["a=1", "b", "=x", "c=%41", "d=%zz", "e=a+b", "f=%C3%A9", "g=%ff", ""]),
        max_size=6).map("&".join)  # fmt: skip
)
def test_query_parsing_equals_parse_qsl(query: str) -> None:
    """Request.query_params' own parser gives what urllib.parse.parse_qsl gives (blank
    values kept, UTF-8 with replacement)."""
    from urllib.parse import parse_qsl

    from covet._request import parse_query

    assert parse_query(query) == parse_qsl(query, keep_blank_values=True, encoding="utf-8", errors="replace")
