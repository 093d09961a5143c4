"""The FastAPI port answers as FastAPI does: examples/crud/app.py served by the real
bin/covet-gateway (one worker) and examples/crud/fastapi_app.py, the same API written
for FastAPI, served by uvicorn, both on loopback; the same requests, in the same
order, over http.client, each server starting from the same seeded store.

Compared per request: the status, the Content-Type, the ``x-app`` field the
middleware adds, and the body (parsed when it is JSON). The 422 bodies must be the
same to the letter: type, loc, msg, input and ctx of every error, in order.

Where the two differ by design, the case is listed in EXPECTED_DIFFERENCES with
the reason, and the test checks that each side gives exactly its listed value (so a
difference that goes away, or changes, fails the test too).
"""

from __future__ import annotations

import http.client
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, Gateway, _free_port, serving_gateway, serving_process

CRUD = REPO / "examples" / "crud"
TOKEN = {"x-token": "s3cret"}
JSON = {"content-type": "application/json"}
AUTH_JSON = {**TOKEN, **JSON}


@dataclass(frozen=True)
class Case:
    """One request of the corpus; ``name`` identifies it in failures and in
    EXPECTED_DIFFERENCES."""

    name: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    #: Sent as it is when bytes, as JSON otherwise (None: no body).
    body: Any = None
    #: For a response that background tasks complete later: ask again (up to 5 s)
    #: until this holds of the parsed body.
    settled: Callable[[Any], bool] | None = None

    def payload(self) -> bytes | None:
        if self.body is None or isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


def item(name: str = "lamp", price: Any = 19.5, category: str = "tools", **more: Any) -> dict[str, Any]:
    return {"name": name, "price": price, "category": category, **more}


CORPUS: list[Case] = [
    # -- reads over the seeded store (ids 1..3) -------------------------------------
    Case("list all", "GET", "/items"),
    Case("list a page", "GET", "/items?skip=1&limit=1"),
    Case("list by category", "GET", "/items?category=books"),
    Case("list by every tag", "GET", "/items?tags=maps&tags=paper"),
    Case("list by tags none match", "GET", "/items?tags=maps&tags=wood"),
    Case("list by ids", "GET", "/items?ids=1&ids=3"),
    Case("list with description", "GET", "/items?has_description=true"),
    Case("list bool word", "GET", "/items?has_description=no"),
    Case("list q and max_price", "GET", "/items?max_price=26&q=ch"),
    Case("list repeated scalar", "GET", "/items?category=books&category=games"),
    Case("list unknown key ignored", "GET", "/items?colour=red"),
    Case("get one", "GET", "/items/2"),
    Case("get negative id", "GET", "/items/-1"),
    Case("get missing", "GET", "/items/99"),
    # -- writes ---------------------------------------------------------------------
    Case("create", "POST", "/items", AUTH_JSON, item()),
    Case("create lax number, extra field", "POST", "/items", AUTH_JSON,
         item("pen", "2.5", "books", tags=["ink"], description="blue", colour="red")),  # fmt: skip
    Case("get created", "GET", "/items/4"),
    Case("replace", "PUT", "/items/4", AUTH_JSON, item("desk lamp", 21, tags=["led"])),
    Case("patch price", "PATCH", "/items/4", AUTH_JSON, {"price": 9}),
    Case("patch null is no change", "PATCH", "/items/4", AUTH_JSON, {"name": None, "tags": ["a", "b"]}),
    Case("add tag (embedded body)", "POST", "/items/4/tags", AUTH_JSON, {"tag": "new"}),
    Case("delete", "DELETE", "/items/5", TOKEN),
    Case("get deleted", "GET", "/items/5"),
    Case("delete again", "DELETE", "/items/5", TOKEN),
    Case("replace missing", "PUT", "/items/99", AUTH_JSON, item()),
    Case("wrong token", "POST", "/items", {"x-token": "nope", **JSON}, item()),
    Case("list after writes", "GET", "/items?limit=100"),
    Case("audit", "GET", "/audit", settled=lambda lines: len(lines) == 6),
    # -- invalid input: 422 ---------------------------------------------------------
    Case("path not an int", "GET", "/items/abc"),
    Case("path hex", "GET", "/items/0x10"),
    Case("path float text", "GET", "/items/1.5"),
    Case("query int and ge, two errors", "GET", "/items?limit=0&skip=-1"),
    Case("query not an int", "GET", "/items?limit=abc"),
    Case("query le", "GET", "/items?limit=101"),
    Case("query bad enum", "GET", "/items?category=food"),
    Case("query gt", "GET", "/items?max_price=0"),
    Case("query bad bool", "GET", "/items?has_description=maybe"),
    Case("query too long", "GET", "/items?q=" + "x" * 21),
    Case("query list bad element", "GET", "/items?ids=1&ids=x&ids=2.5"),
    Case("body missing fields", "POST", "/items", AUTH_JSON, {}),
    Case("body constraints and enum", "POST", "/items", AUTH_JSON, item("", 0, "food")),
    Case("body name too long", "POST", "/items", AUTH_JSON, item("n" * 51)),
    Case("body price not a number", "POST", "/items", AUTH_JSON, item(price="abc")),
    Case("body price null", "POST", "/items", AUTH_JSON, item(price=None)),
    Case("body tags not a list", "POST", "/items", AUTH_JSON, item(tags="steel")),
    Case("body tag not a str", "POST", "/items", AUTH_JSON, item(tags=["a", 1, None])),
    Case("body description not a str", "POST", "/items", AUTH_JSON, item(description=5)),
    Case("body malformed JSON", "POST", "/items", AUTH_JSON, b'{"name": '),
    Case("body a list", "POST", "/items", AUTH_JSON, [1, 2]),
    Case("body absent", "POST", "/items", AUTH_JSON),
    Case("body not declared JSON", "POST", "/items", {**TOKEN, "content-type": "text/plain"}, item()),
    Case("header missing", "POST", "/items", JSON, item()),
    Case("header missing and body bad", "POST", "/items", JSON, {"price": -1}),
    Case("path and body bad", "PUT", "/items/abc", AUTH_JSON, {"name": 5}),
    Case("patch two errors", "PATCH", "/items/1", AUTH_JSON, {"price": -1, "name": 5}),
    Case("patch bad enum", "PATCH", "/items/1", AUTH_JSON, {"category": "food"}),
    Case("embedded body missing", "POST", "/items/1/tags", AUTH_JSON, {}),
    Case("embedded body too short", "POST", "/items/1/tags", AUTH_JSON, {"tag": ""}),
    Case("embedded body not an object", "POST", "/items/1/tags", AUTH_JSON, "new"),
    # -- the store is unchanged by the refused requests -------------------------------
    Case("list at the end", "GET", "/items?limit=100"),
]

#: Cases where CovetPy answers differently by design: {case: {what: (FastAPI's,
#: CovetPy's)}}, what being "status", "content-type", "x-app" or "body".
EXPECTED_DIFFERENCES: dict[str, dict[str, tuple[Any, Any]]] = {
    # A handler returning None with status_code=204: FastAPI sends its default
    # response class's Content-Type with the empty body; CovetPy sends no
    # Content-Type, as there is no content (RFC 9110 8.3).
    "delete": {"content-type": ("application/json", None)},
}


@dataclass
class Answer:
    status: int
    content_type: str | None
    x_app: str | None
    body: Any

    def get(self, what: str) -> Any:
        return {"status": self.status, "content-type": self.content_type, "x-app": self.x_app, "body": self.body}[what]


def same(a: Any, b: Any) -> bool:
    """Equal JSON values of the same JSON types: 0 and 0.0 differ (``ctx: {"gt": 0.0}``
    is what FastAPI sends for a float field's constraint)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def ask(port: int, case: Case) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(case.method, case.path, body=case.payload(), headers=case.headers)
        resp = conn.getresponse()
        raw = resp.read()
        ctype = resp.getheader("content-type")
        body: Any = json.loads(raw) if raw and ctype == "application/json" else raw
        return Answer(resp.status, ctype, resp.getheader("x-app"), body)
    finally:
        conn.close()


def ask_settled(port: int, case: Case) -> Answer:
    answer = ask(port, case)
    deadline = time.monotonic() + 5
    while case.settled is not None and not case.settled(answer.body) and time.monotonic() < deadline:
        time.sleep(0.05)
        answer = ask(port, case)
    return answer


def _answers(port: int) -> bool:
    try:
        return ask(port, Case("probe", "GET", "/items/1")).status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def covet_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    log = tmp_path_factory.mktemp("crud-covet") / "gateway.log"
    with serving_gateway(log, "crud", "app", 1, lambda gw: _answers(gw.port), worker_dir=CRUD) as gw:
        yield gw.port


@pytest.fixture(scope="module")
def fastapi_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    log_path = tmp_path_factory.mktemp("crud-fastapi") / "uvicorn.log"
    port = _free_port()
    # uvicorn runs on the test's own interpreter (the project venv has FastAPI); the
    # workers' (COVET_PYTHON) may be a bare one, as in the Makefile's netpoll pass (on .venv-compat).
    argv = [sys.executable, "-m", "uvicorn", "fastapi_app:app", "--app-dir", str(CRUD),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--no-access-log"]  # fmt: skip
    with serving_process(argv, log_path, lambda: _answers(port)):
        yield port


def test_corpus_shape() -> None:
    """The corpus is what the issue asks for: at least 40 requests, at least 15 of
    them invalid input, with unique names; every expected difference names a case."""
    names = [c.name for c in CORPUS]
    assert len(names) == len(set(names))
    assert len(CORPUS) >= 40
    first_invalid = names.index("path not an int")
    assert len(CORPUS) - first_invalid - 1 >= 15
    assert set(EXPECTED_DIFFERENCES) <= set(names)


def test_same_answers(covet_port: int, fastapi_port: int) -> None:
    mismatches: list[str] = []
    statuses: dict[str, int] = {}
    for case in CORPUS:
        theirs = ask_settled(fastapi_port, case)
        ours = ask_settled(covet_port, case)
        statuses[case.name] = ours.status
        expected = EXPECTED_DIFFERENCES.get(case.name, {})
        for what in ("status", "content-type", "x-app", "body"):
            got = (theirs.get(what), ours.get(what))
            if what in expected:
                if got != expected[what]:
                    mismatches.append(f"{case.name}: {what} expected to differ as {expected[what]!r}, got {got!r}")
            elif not same(*got):
                mismatches.append(f"{case.name} ({case.method} {case.path}): {what}\n  FastAPI: {got[0]!r}\n"
                                  f"  CovetPy: {got[1]!r}")  # fmt: skip
    assert not mismatches, "\n".join(mismatches)
    # The corpus does what it says: the invalid cases are refused, the flows succeed.
    refused = [n for n in statuses if statuses[n] == 422]
    assert len(refused) >= 15, refused
    assert statuses["create"] == 201 and statuses["delete"] == 204 and statuses["get deleted"] == 404
    assert statuses["wrong token"] == 401 and statuses["header missing"] == 422
