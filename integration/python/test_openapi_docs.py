"""/openapi.json and the /docs page end to end: a real bin/covet-gateway serving
openapi_app.py, the document fetched with http.client and checked by
openapi-spec-validator, and the page loaded in headless Chromium, whose DOM (dumped
after the page's script fetched and rendered the document, under the page's own
Content-Security-Policy) must list every documented operation; then, driven over
Chromium's DevTools protocol, the page's "Try it" forms send requests through the
gateway and show the answers."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate
from websockets.sync.client import connect

from conftest import Gateway, fetch, serving_gateway

CHROMIUM_TIMEOUT_S = 60


def _get(gw: Gateway, path: str) -> tuple[int, http.client.HTTPMessage, bytes]:
    return fetch(gw, "GET", path)


def _ready(gw: Gateway) -> bool:
    try:
        return _get(gw, "/ready")[0] == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("openapi")
    # A key source, so that the gateway takes the app's auth=True route.
    secret = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    (tmp / "jwks.json").write_text(json.dumps({"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": secret}]}))
    flags = ["--auth-jwks-file", str(tmp / "jwks.json"), "--auth-algorithms", "HS256"]
    with serving_gateway(tmp / "gateway.log", "openapiapp", "openapi_app", 1, _ready, flags) as g:
        yield g


def test_the_document_is_served_and_valid(gw: Gateway) -> None:
    status, headers, body = _get(gw, "/openapi.json")
    assert status == 200
    assert headers["content-type"] == "application/json"
    doc = json.loads(body)
    validate(doc)
    assert doc["info"] == {"title": "Shop API", "version": "1.2.3", "description": "A small shop."}
    assert set(doc["paths"]) == {"/items/{item_id}", "/items", "/legacy/search", "/admin/stats"}
    assert doc["paths"]["/admin/stats"]["get"]["security"] == [{"bearerAuth": []}]
    assert doc["paths"]["/items"]["post"]["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Item"}  # fmt: skip


def test_the_page_and_its_assets_are_served(gw: Gateway) -> None:
    status, headers, body = _get(gw, "/docs")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in headers["content-security-policy"]
    # The operations are not in the page itself: its script renders them.
    assert b"/legacy/search" not in body and b"Read Item" not in body
    for asset, media_type in (("docs.js", "text/javascript"), ("docs.css", "text/css")):
        status, headers, body = _get(gw, f"/docs/{asset}")
        assert status == 200 and body
        assert headers["content-type"] == f"{media_type}; charset=utf-8"


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path is not None:
            return path
    pytest.skip("no chromium on PATH (make test-integration installs it with apt-get: `apt-get install -y chromium`)")


def _dump_dom(url: str, tmp_path: Path) -> tuple[str, str]:
    """The DOM of ``url`` once headless Chromium has run its scripts (5 s of virtual
    time), and a note of it and Chromium's stderr for failure messages."""
    argv = [_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom", url]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, timeout=CHROMIUM_TIMEOUT_S, env=dict(os.environ, HOME=str(tmp_path)))
    dom, stderr = done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")
    assert done.returncode == 0, f"chromium exited with {done.returncode}:\n{stderr[-3000:]}"
    assert "Could not load" not in dom, dom
    return dom, f"\nDOM:\n{dom[-6000:]}\nchromium stderr:\n{stderr[-3000:]}"


def test_chromium_renders_every_operation(gw: Gateway, tmp_path: Path) -> None:
    dom, why = _dump_dom(f"{gw.base_url}/docs", tmp_path)
    # The page's script fetched the document and rendered one entry per operation,
    # grouped by tag, with the document's title and version.
    for path in ("/items/{item_id}", "/items", "/legacy/search", "/admin/stats"):
        assert f'<code class="path">{path}</code>' in dom, why
    for summary in ("Read Item", "Create Item", "Legacy Search", "Admin Stats"):
        assert f'<span class="summary">{summary}</span>' in dom, why
    assert '<h2 id="tag-items">items</h2>' in dom and '<h2 id="tag-admin">admin</h2>' in dom, why
    assert 'class="op get deprecated"' in dom, why
    assert '<span class="badge lock" title="requires a bearer token">auth</span>' in dom, why
    assert "version 1.2.3" in dom, why
    assert "/ready" not in dom, why
    assert "<table>" not in dom, why  # every operation closed


def test_a_link_to_an_operation_opens_it(gw: Gateway, tmp_path: Path) -> None:
    dom, why = _dump_dom(f"{gw.base_url}/docs#op-read_item_items__item_id__get", tmp_path)
    assert '<details class="op get" id="op-read_item_items__item_id__get" open="">' in dom, why
    assert "<p class=\"description\">One item by its number.</p>" in dom, why
    # The parameters table: name, in, type, required, constraints.
    assert "<td><code>item_id</code></td><td>path</td><td>integer</td><td>yes</td>" in dom, why
    assert "<td><code>q</code></td><td>query</td><td>string | null</td><td>no</td><td>max length 20</td>" in dom, why
    # The Try it form: a labelled input per parameter and a send button.
    assert '<label for="op-0-p-0">item_id' in dom and '<input id="op-0-p-0" name="item_id"' in dom, why
    assert '<button type="submit">Send GET request</button>' in dom, why
    # Responses, the schemas behind their references resolved.
    assert "<dt>200</dt>" in dom and "<dt>422</dt>" in dom, why
    assert '<span class="field">price</span>' in dom, why


def test_a_body_is_prefilled_from_its_schema(gw: Gateway, tmp_path: Path) -> None:
    dom, why = _dump_dom(f"{gw.base_url}/docs#op-create_item_items_post", tmp_path)
    assert 'id="op-create_item_items_post" open=""' in dom, why
    assert "Request body" in dom, why
    body = dom[dom.index('<textarea id="op-1-body"'):]
    body = body[body.index(">") + 1:body.index("</textarea>")]
    assert json.loads(body.replace("&quot;", '"')) == {"name": "string", "price": 0}, why
    assert '<button type="submit">Send POST request</button>' in dom, why


@contextlib.contextmanager
def _devtools(tmp_path: Path) -> Iterator[Callable[[str], Any]]:
    """A headless Chromium tab, as a function evaluating a JavaScript expression in it
    (over the DevTools protocol) and returning its value (promises awaited)."""
    profile = tmp_path / "profile"
    argv = [_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
            f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"]  # fmt: skip
    with open(tmp_path / "chromium.log", "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, HOME=str(tmp_path)))
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + CHROMIUM_TIMEOUT_S
        while not (port_file.exists() and port_file.read_text().strip()):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "chromium.log").read_text()
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            tab = next(t for t in json.load(resp) if t["type"] == "page")
        with connect(tab["webSocketDebuggerUrl"], max_size=None, open_timeout=10) as ws:
            ids = iter(range(1, 1 << 30))

            def evaluate(expression: str) -> Any:
                n = next(ids)
                ws.send(json.dumps({"id": n, "method": "Runtime.evaluate", "params": {
                    "expression": expression, "awaitPromise": True, "returnByValue": True}}))  # fmt: skip
                while True:
                    msg = json.loads(ws.recv(timeout=CHROMIUM_TIMEOUT_S))
                    if msg.get("id") == n:
                        if "error" in msg:  # no page to evaluate in: e.g. mid-navigation
                            raise _NoContext(msg["error"])
                        assert "exceptionDetails" not in msg["result"], msg
                        return msg["result"]["result"].get("value")

            yield evaluate
    finally:
        proc.terminate()
        proc.wait(10)


class _NoContext(Exception):
    """DevTools answered an evaluation with an error instead of a result: the tab had
    no JavaScript context to run it in (a navigation had torn the old one down and
    the new page's was not yet there)."""


def _wait(js: Callable[[str], Any], expression: str, timeout: float = 10.0) -> None:
    """Return once ``expression`` is truthy (in JavaScript's terms); an evaluation
    that finds no context (the page still loading) counts as false."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if js(f"Boolean({expression})"):
                return
            why = "still false"
        except _NoContext as e:
            why = f"not evaluable ({e})"
        assert time.monotonic() < deadline, f"{expression} {why} after {timeout}s"
        time.sleep(0.05)


def _try(js: Callable[[str], Any], op_id: str, values: dict[int, str]) -> tuple[str, str, str]:
    """Fill operation ``op_id``'s form (parameter index -> value), press its send
    button, and return the status line, headers and body the page shows."""
    op = f"document.getElementById({json.dumps(op_id)})"
    js(f"{op}.open = true")
    _wait(js, f"{op}.querySelector('form')")
    js(f"{op}.querySelector('.result').replaceChildren()")
    for index, value in values.items():
        js(f"{op}.querySelectorAll('form input')[{index}].value = {json.dumps(value)}")
    js(f"{op}.querySelector('form button').click()")
    _wait(js, f"{op}.querySelector('.result pre.body')")
    status, headers, body = (js(f"{op}.querySelector('.result {sel}').textContent") for sel in ("p.status", "pre.headers", "pre.body"))
    return status, headers, body


def test_try_it_sends_requests_through_the_gateway(gw: Gateway, tmp_path: Path) -> None:
    with _devtools(tmp_path) as js:
        with contextlib.suppress(_NoContext):  # the navigation may take the context with it
            js(f"location.href = {json.dumps(gw.base_url + '/docs')}")
        _wait(js, "document.querySelectorAll('details.op').length === 4")
        # Path and query parameters filled in, the answer shown pretty-printed.
        status, headers, body = _try(js, "op-read_item_items__item_id__get", {0: "7", 1: "lamp"})
        assert status.startswith("200 OK · GET /items/7?q=lamp"), status
        assert "content-type: application/json" in headers
        assert json.loads(body) == {"name": "lamp", "price": 10.5}
        assert body == json.dumps(json.loads(body), indent=2)
        # A value the handler's types refuse: the 422 body, as the app sent it.
        status, _, body = _try(js, "op-read_item_items__item_id__get", {0: "7", 1: "x" * 21})
        assert status.startswith("422 "), status
        assert [e["type"] for e in json.loads(body)["detail"]] == ["string_too_long"]
        # The body as prefilled from the schema, sent as JSON.
        status, _, body = _try(js, "op-create_item_items_post", {})
        assert status.startswith("201 Created · POST /items"), status
        assert json.loads(body) == {"name": "string", "price": 0}
        # Without a token the gateway asks for one; with one typed in (kept for the
        # tab), it is sent as a bearer token, which the gateway checks (and refuses).
        status, headers, _ = _try(js, "op-admin_stats_admin_stats_get", {})
        assert status.startswith("401 "), status
        assert 'error_description="no bearer token"' in headers, headers
        js("const t = document.getElementById('bearer-token'); t.value = 'not-a-jwt';"
           "t.dispatchEvent(new Event('input'))")  # fmt: skip
        assert js("sessionStorage.getItem('covet-docs-bearer-token')") == "not-a-jwt"
        status, headers, _ = _try(js, "op-admin_stats_admin_stats_get", {})
        assert status.startswith("401 "), status
        assert 'error="invalid_token"' in headers and "no bearer token" not in headers, headers
