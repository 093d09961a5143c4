"""TestClient answers as the gateway does: the same app (parity_app.py) and the same
requests, once through covet.testing.TestClient and once through the real
bin/covet-gateway with real workers over http.client; status, header fields (in
order, names lower-cased) and body must be equal.

Left out of the comparison: the value of Date (present in both, an IMF-fixdate), and
the value of a request id the gateway generated (16 hex digits in both). Every other
field is compared, Server, X-Request-ID, Content-Length, Transfer-Encoding and
Connection included. A response that breaks off mid-body is compared as
("incomplete", status, fields, the part of the body received).
"""

from __future__ import annotations

import http.client
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

import parity_app
from conftest import Gateway, serving_gateway
from covet.testing import IncompleteResponse, TestClient

if TYPE_CHECKING:
    from covet.testing import TestResponse

MIB = 1 << 20
IMF_DATE = re.compile(r"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT")
GENERATED_ID = re.compile(r"[0-9a-f]{16}")


@dataclass
class Case:
    method: str
    path: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None
    rid: str | None = "auto"  # "auto": a fixed id per case; None: none sent

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


CASES = [
    Case("GET", "/started"),  # startup hooks ran before the first request
    Case("GET", "/things"),
    Case("GET", "/things/"),  # a trailing slash is another path: 404
    Case("GET", "/things?a=1&b=%20"),
    Case("POST", "/things", [("content-type", "application/json")], b"{}"),
    Case("GET", "/text"),
    Case("GET", "/text", rid=None),
    Case("GET", "/text", [("connection", "close")]),
    Case("GET", "/users/42"),
    Case("GET", "/users/%34%32"),
    Case("GET", "/words/caf%C3%A9"),
    Case("GET", "/files/a/b%2Fc"),
    # answered by the gateway: 404, 405, automatic OPTIONS, HEAD
    Case("GET", "/no/such/route"),
    Case("GET", "/users/abc"),  # a typed parameter that does not match: 404
    Case("HEAD", "/no/such/route"),
    Case("PUT", "/things"),
    Case("POST", "/text", body=b"x"),
    Case("HEAD", "/things"),
    Case("HEAD", "/text"),
    Case("HEAD", "/stream"),
    Case("HEAD", "/explicit-head"),
    Case("GET", "/explicit-head"),
    Case("OPTIONS", "/things"),
    Case("OPTIONS", "/no/such/route"),
    Case("DELETE", "/no/such/route"),
    Case("PROPFIND", "/things"),
    # refused before routing: 400
    Case("GET", "/words/%zz"),
    Case("GET", "/words/%ff"),
    Case("GET", "/files/../text"),
    Case("GET", "/files/%2e"),
    # the fields the gateway adds and drops; bodiless statuses
    Case("GET", "/none"),
    Case("GET", "/empty"),
    Case("GET", "/not-modified"),
    Case("GET", "/framing"),
    Case("HEAD", "/framing"),
    Case("GET", "/stream"),
    Case("GET", "/cookies"),
    Case("GET", "/redirect"),
    Case("POST", "/echo", [("content-type", "text/x-parity")], "grüße ✓".encode()),
    Case("POST", "/echo", [("content-type", "application/octet-stream")], os.urandom(3 * MIB)),
    Case("POST", "/echo", [("content-type", "application/octet-stream")], b"\0" * (11 * MIB)),  # 413
    Case("POST", "/no/such/route", [], b"\0" * (11 * MIB)),  # 413 before 404
    # errors and deadlines
    Case("GET", "/teapot"),
    Case("GET", "/ctl-header"),
    Case("GET", "/nul-header"),
    Case("GET", "/missing"),
    Case("GET", "/boom"),
    Case("GET", "/slow"),
    Case("GET", "/slow-sync"),
    Case("GET", "/slow-body"),
    Case("GET", "/broken-body"),
]

Outcome = tuple[str, int, list[tuple[str, str]], bytes]


def normalize(case: Case, kind: str, status: int, fields: list[tuple[str, str]], body: bytes) -> Outcome:
    dates = [v for n, v in fields if n == "date"]
    assert len(dates) == 1 and IMF_DATE.fullmatch(dates[0]), (case.id, fields)
    out = []
    for name, value in fields:
        if name == "date":
            continue
        if name == "x-request-id" and case.rid is None:
            assert GENERATED_ID.fullmatch(value), (case.id, value)
            value = "<generated>"
        out.append((name, value))
    return kind, status, out, body


def request_headers(case: Case, index: int) -> list[tuple[str, str]]:
    headers = list(case.headers)
    if case.rid == "auto":
        headers.append(("x-request-id", f"parity-{index}"))
    return headers


def via_testclient(client: TestClient, case: Case, index: int) -> Outcome:
    try:
        r: TestResponse = client.request(case.method, case.path, headers=request_headers(case, index),
                                         content=case.body)  # fmt: skip
        kind = "complete"
    except IncompleteResponse as exc:
        r, kind = exc.response, "incomplete"
    fields = [(n, v.decode("latin-1")) for n, v in r.headers.raw]
    return normalize(case, kind, r.status_code, fields, r.content)


def via_gateway(gw: Gateway, case: Case, index: int) -> Outcome:
    conn = http.client.HTTPConnection(gw.host, gw.port, timeout=30)
    try:
        conn.putrequest(case.method, case.path, skip_accept_encoding=True)
        for name, value in request_headers(case, index):
            conn.putheader(name, value)
        oversized = case.body is not None and len(case.body) > 10 * MIB
        if case.body:
            conn.putheader("content-length", str(len(case.body)))
        conn.endheaders()
        if case.body:
            try:  # the gateway answers an oversized body from the head: send a part
                conn.send(case.body[: 256 * 1024] if oversized else case.body)
            except OSError:
                pass
        resp = conn.getresponse()
        fields = [(n.lower(), v) for n, v in resp.getheaders()]
        try:
            body, kind = resp.read(), "complete"
        except http.client.IncompleteRead as exc:
            body, kind = exc.partial, "incomplete"
        return normalize(case, kind, resp.status, fields, body)
    finally:
        conn.close()


def _parity_ready(gw: Gateway) -> bool:
    try:
        return via_gateway(gw, Case("GET", "/text", rid=None), 0)[1] == 200
    except (OSError, http.client.HTTPException):
        return False


@pytest.fixture(scope="module")
def parity_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    log_path = tmp_path_factory.mktemp("parity") / "gateway.log"
    with serving_gateway(log_path, "parity", "parity_app", 1, _parity_ready) as gw:
        yield gw


@pytest.fixture(scope="module")
def gateway_outcome(parity_gateway: Gateway) -> Callable[[int], Outcome]:
    """What the gateway answered to CASES[index], each case sent once per module: the
    coverage test below reuses the answers the comparisons got (the slow cases take
    seconds each)."""
    outcomes: dict[int, Outcome] = {}

    def outcome(index: int) -> Outcome:
        if index not in outcomes:
            outcomes[index] = via_gateway(parity_gateway, CASES[index], index)
        return outcomes[index]

    return outcome


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    # Not `with`: the startup hooks must run before the first request all the same.
    client = TestClient(parity_app.app)
    yield client
    client.close()


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c.id for c in CASES])
def test_testclient_answers_as_the_gateway(
    gateway_outcome: Callable[[int], Outcome], client: TestClient, index: int
) -> None:
    case = CASES[index]
    client.cookies.clear()  # http.client keeps no cookies
    expected = gateway_outcome(index)
    got = via_testclient(client, case, index)
    assert got == expected, f"{case.id}:\n TestClient {got[:3]}\n gateway    {expected[:3]}"


def test_every_status_of_the_behaviour_table_is_covered(gateway_outcome: Callable[[int], Outcome]) -> None:
    """The cases reach every status docs/python-app.md's table lists for the gateway."""
    statuses = {gateway_outcome(i)[1] for i, case in enumerate(CASES) if case.body is None}
    assert {200, 204, 304, 307, 400, 404, 405, 418, 500, 504} <= statuses, statuses
