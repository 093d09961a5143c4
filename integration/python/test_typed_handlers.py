"""Typed handlers (issue 23) through the real gateway and a real worker process:
parameters bound from the query string, the path and headers; a typed body with a 422
in FastAPI's shape; dependencies; middleware; lifespan state; a tuple return; and
background tasks that run after the client has its response (seen in a log file the
worker writes). The client is Python's http.client."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Gateway, fetch, serving_gateway


@pytest.fixture(scope="module")
def typed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Path]]:
    tmp = tmp_path_factory.mktemp("typed")
    events = tmp / "events.log"
    events.touch()

    def ready(gw: Gateway) -> bool:
        try:
            return request(gw, "GET", "/search?q=x")[0] == 200
        except OSError:
            return False

    with serving_gateway(tmp / "gateway.log", "typedapp", "typed_app", 1, ready, COVET_TYPED_LOG=str(events)) as gw:
        yield gw, events


def request(gw: Gateway, method: str, path: str, body: Any = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:  # fmt: skip
    """The answer to a request with ``body`` sent as JSON: status, header fields (names
    lower-case) and the body, decoded when it is JSON."""
    data = None if body is None else json.dumps(body).encode()
    all_headers = {"content-type": "application/json"} if data is not None else {}
    all_headers.update(headers or {})
    status, message, raw = fetch(gw, method, path, data, all_headers)
    fields = {k.lower(): v for k, v in message.items()}
    return status, fields, json.loads(raw) if fields.get("content-type") == "application/json" else raw


def test_query_parameters_and_their_422(typed: tuple[Gateway, Path]) -> None:
    gw, _ = typed
    status, fields, body = request(gw, "GET", "/search?q=lamp&limit=5&kind=game&tag=a&tag=b")
    assert (status, body) == (200, {"q": "lamp", "limit": 5, "kind": "game", "tag": ["a", "b"]})
    assert fields["x-typed"] == "1"
    status, fields, body = request(gw, "GET", "/search?limit=99&kind=toy")
    assert status == 422 and fields["x-typed"] == "1"
    assert [(e["type"], e["loc"]) for e in body["detail"]] == [
        ("missing", ["query", "q"]), ("less_than_equal", ["query", "limit"]), ("enum", ["query", "kind"])]
    assert body["detail"][0] == {"type": "missing", "loc": ["query", "q"], "msg": "Field required", "input": None}
    assert body["detail"][1]["ctx"] == {"le": 50} and body["detail"][1]["input"] == "99"


def test_a_typed_body_with_dependencies_and_background_tasks(typed: tuple[Gateway, Path]) -> None:
    gw, events = typed
    good = {"name": "Dune", "price": 9.5, "kind": "book", "tags": ["sf"]}
    status, _, body = request(gw, "POST", "/items/3", good, {"x-token": "nope"})
    assert (status, body) == (401, {"detail": "bad token"})
    status, _, body = request(gw, "POST", "/items/3", {"name": "", "price": 0}, {"x-token": "secret"})
    assert status == 422
    assert [(e["type"], e["loc"]) for e in body["detail"]] == [
        ("string_too_short", ["body", "name"]), ("greater_than", ["body", "price"])]
    before = events.read_text().count("created Dune")
    status, _, body = request(gw, "POST", "/items/3", good, {"x-token": "secret"})
    assert (status, body) == (201, {"shelf": 3, "item": good, "db": "session"})
    # The task sleeps 0.3 s before it notes: the client had its answer first.
    assert events.read_text().count("created Dune") == before
    deadline = time.monotonic() + 5
    while events.read_text().count("created Dune") == before and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = events.read_text().splitlines()
    assert lines.count("created Dune") == before + 1
    # the dependency's cleanup ran after the background task
    assert lines[-2:] == ["created Dune", "session close"]


def test_lifespan_state_middleware_state_and_a_tuple_return(typed: tuple[Gateway, Path]) -> None:
    gw, _ = typed
    assert request(gw, "GET", "/state")[2] == {"greeting": "hello", "seen_by": "stamp", "started": True}
    status, fields, body = request(gw, "GET", "/pair")
    assert (status, body, fields["x-pair"], fields["x-typed"]) == (203, {"sync": 1}, "yes", "1")
