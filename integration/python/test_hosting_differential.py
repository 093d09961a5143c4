"""Hosted apps answer under CovetPy as under the servers they were written for: a
FastAPI, a Starlette, a Django and a Flask app (hosted/*_app.py, unchanged) served
by the real bin/covet-gateway (``covet worker mod:app --interface asgi|wsgi``) and
by uvicorn (ASGI) or gunicorn with sync workers (WSGI), both on loopback; the same
corpus of raw HTTP/1.x requests (hosting_corpus.py, over 270 per app) sent to
both, each on a fresh connection, byte for byte.

Compared per request: the status, the body (bytes; a JSON body's differing keys
are named in the failure) and the header fields less Date and Server. Header
field names are compared lower-cased (RFC 9110 5.1: they are case-insensitive)
and grouped by name, keeping the order of the lines of one name (RFC 9110 5.3:
the order of fields with different names is not significant; that of one name's
lines is). The reason phrase is not compared (RFC 9112 4: a client ignores it).

Where CovetPy answers differently by design, the difference is listed, with its
reason, in GLOBAL_RULES (a field one side adds to every answer) or
EXPECTED_DIFFERENCES (one case); the test checks each listed difference occurs
exactly as listed, so a difference that goes away or changes fails it too.

``COVET_DIFF_CANDIDATE=reference`` runs the reference server against a second
instance of itself, with no difference allowed: the harness's own check (that the
corpus and the comparison are deterministic).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conftest import HERE, REPO, SHUTDOWN_TIMEOUT_S, STARTUP_TIMEOUT_S, _free_port, serving_gateway
from hosting_corpus import GENERIC, HOST, Case, corpus

HOSTED = HERE / "hosted"

#: app -> (module in hosted/, interface).
APPS: dict[str, tuple[str, str]] = {
    "fastapi": ("fastapi_app", "asgi"),
    "starlette": ("starlette_app", "asgi"),
    "django": ("django_app", "wsgi"),
    "flask": ("flask_app", "wsgi"),
}
REFERENCE = {"asgi": "uvicorn", "wsgi": "gunicorn"}
CANDIDATE = os.environ.get("COVET_DIFF_CANDIDATE", "covet")
SELF_CHECK = CANDIDATE == "reference"

IO_TIMEOUT_S = 15.0
#: Every server's Python runs with this hash seed: Werkzeug builds Allow from a set,
#: whose order follows string hashing, which is randomized per process otherwise.
HASH_SEED = "0"


# -- what a server answered ---------------------------------------------------------------


@dataclass
class Answer:
    """A server's answer to one case: status 0 and ``error`` when none came."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    error: str = ""

    def fields(self) -> dict[str, list[str]]:
        """The header fields by lower-cased name, each name's values in order."""
        out: dict[str, list[str]] = {}
        for name, value in self.headers:
            out.setdefault(name.lower(), []).append(value)
        return out


def ask(port: int, case: Case) -> Answer:
    """Send ``case`` on a fresh connection and read one answer (a 1xx interim one
    skipped). A server may answer and close before it took the whole request: a
    failed send is not an error when an answer can still be read."""
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT_S) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(case.wire())
        resp = http.client.HTTPResponse(sock, method=case.method if case.raw is None else "GET")
        try:
            resp.begin()
            body = resp.read()
        except (http.client.HTTPException, OSError) as e:
            return Answer(0, error=type(e).__name__)
        return Answer(resp.status, [(k, v) for k, v in resp.getheaders()], body)


# -- where the two may differ, by design ----------------------------------------------------


@dataclass(frozen=True)
class GlobalRule:
    """A header field that ``side`` (``reference`` or ``candidate``) adds to every
    answer of an ``interface`` app that its other side lacks: checked present (its
    value matching ``value``, a regular expression), then left out of the
    comparison."""

    side: str
    interface: str
    name: str
    value: str
    reason: str


GLOBAL_RULES: list[GlobalRule] = [
    GlobalRule("reference", "wsgi", "connection", "close",
               "gunicorn's sync workers serve one request per connection and say so; the gateway keeps "
               "HTTP/1.1 connections alive (RFC 9112 9.3) whatever the worker"),  # fmt: skip
    GlobalRule("candidate", "asgi", "x-request-id", r"[0-9a-f]{16}|client-chosen-id-42",
               "the gateway gives every answer its request id (the client's X-Request-ID when sane)"),  # fmt: skip
    GlobalRule("candidate", "wsgi", "x-request-id", r"[0-9a-f]{16}|client-chosen-id-42",
               "the gateway gives every answer its request id (the client's X-Request-ID when sane)"),  # fmt: skip
]


@dataclass(frozen=True)
class Expected:
    """A case where CovetPy answers differently by design: ``differs`` maps what
    differs (``status``, ``body``, ``header:<name>`` for that field's list of values,
    None when absent, or ``json:<key>`` for a key when both bodies are JSON objects)
    to (the reference's, CovetPy's), either of which may be ANY; ``apps`` says for
    which apps (all four when empty)."""

    reason: str
    differs: dict[str, tuple[Any, Any]]
    apps: frozenset[str] = frozenset()
    #: The gateway answers this request itself (no worker sees it): the candidate's
    #: GLOBAL_RULES do not apply to it.
    gateway_answer: bool = False

    def covers(self, app: str) -> bool:
        return not self.apps or app in self.apps


#: In an Expected value: whatever that side answers (the other server's own parser
#: or error page, not CovetPy's to match).
ANY: Any = type("Any", (), {"__repr__": lambda self: "ANY"})()

#: case name -> the differences CovetPy shows on it, with why.
EXPECTED_DIFFERENCES: dict[str, list[Expected]] = {}


# -- comparing ------------------------------------------------------------------------------

DROPPED = ("date", "server")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def aspects(app: str, side: str, answer: Answer, counts: dict[GlobalRule, int],
            gateway_answer: bool) -> tuple[dict[str, Any], list[str]]:  # fmt: skip
    """What is compared of ``answer``: ``status``, ``error``, ``body``, and
    ``header:<name>`` for each field; and the global rules it breaks (none apply to
    the candidate's answer when the gateway answers the case itself)."""
    interface = APPS[app][1]
    fields = answer.fields()
    broken: list[str] = []
    for rule in GLOBAL_RULES:
        if SELF_CHECK or rule.side != side or rule.interface != interface or answer.status == 0:
            continue
        if side == "candidate" and gateway_answer:
            continue
        values = fields.pop(rule.name, None)
        if values is None or len(values) != 1 or not re.fullmatch(rule.value, values[0]):
            broken.append(f"{side} answer has {rule.name}: {values!r}, expected one matching {rule.value!r}")
        else:
            counts[rule] = counts.get(rule, 0) + 1
    out: dict[str, Any] = {"status": answer.status, "error": answer.error, "body": answer.body}
    for name, values in fields.items():
        if name not in DROPPED:
            out[f"header:{name}"] = values
    return out, broken


def expand_json(a: dict[str, Any], b: dict[str, Any]) -> None:
    """When both bodies are JSON objects, compare them key by key (``json:<key>``)
    and by the order of their keys (``body``): with the same framework serializing
    on both sides, that is comparing their bytes, with a readable difference."""
    da, db = _json(a["body"]), _json(b["body"])
    if not (isinstance(da, dict) and isinstance(db, dict)):
        return
    for out, doc in ((a, da), (b, db)):
        out["body"] = ("JSON object with keys", list(doc))
        for key, value in doc.items():
            out[f"json:{key}"] = value


def short(v: Any) -> str:
    text = repr(v)
    if len(text) > 300:
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        text = f"{text[:240]}... ({len(text)} chars, sha256 {digest})"
    return text


def compare(app: str, case: Case, ref: Answer, cand: Answer, counts: dict[GlobalRule, int],
            seen: set[tuple[str, str]]) -> list[str]:  # fmt: skip
    """The unexplained differences between the two answers to ``case``."""
    expected: dict[str, tuple[Any, Any]] = {}
    gateway_answer = False
    if not SELF_CHECK:
        for exp in EXPECTED_DIFFERENCES.get(case.name, []):
            if exp.covers(app):
                expected.update(exp.differs)
                gateway_answer = gateway_answer or exp.gateway_answer
                seen.add((case.name, app))
    a, broken_a = aspects(app, "reference", ref, counts, False)
    b, broken_b = aspects(app, "candidate", cand, counts, gateway_answer)
    expand_json(a, b)
    problems = [f"{case.name}: {m}" for m in broken_a + broken_b]
    for key in sorted(a.keys() | b.keys()):
        got = (a.get(key), b.get(key))
        if key in expected:
            want = expected[key]
            if not all(w is ANY or w == g for w, g in zip(want, got)):
                problems.append(f"{case.name}: {key} expected to differ as {short(want)}, got {short(got)}")
        elif got[0] != got[1]:
            problems.append(f"{case.name}: {key}\n    {REFERENCE[APPS[app][1]]}: {short(got[0])}\n"
                            f"    {CANDIDATE}: {short(got[1])}")  # fmt: skip
    return problems


# -- the servers ----------------------------------------------------------------------------


def _answers(port: int) -> bool:
    try:
        return ask(port, Case("probe", "GET", "/only-get")).status == 200
    except OSError:
        return False


@contextlib.contextmanager
def reference_server(app: str, log_path: Path) -> Iterator[int]:
    """uvicorn (ASGI) or gunicorn with one sync worker (WSGI) serving ``app`` on a
    free loopback port; yields the port."""
    module, interface = APPS[app]
    port = _free_port()
    if interface == "asgi":
        argv = [sys.executable, "-m", "uvicorn", f"{module}:app", "--app-dir", str(HOSTED), "--host", "127.0.0.1",
                "--port", str(port), "--workers", "1", "--no-access-log", "--lifespan", "on"]  # fmt: skip
    else:
        argv = [sys.executable, "-m", "gunicorn", f"{module}:app", "--chdir", str(HOSTED), "--bind",
                f"127.0.0.1:{port}", "--workers", "1", "--worker-class", "sync", "--timeout", "60"]  # fmt: skip
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=HOSTED,
                                env=dict(os.environ, PYTHONUNBUFFERED="1", PYTHONHASHSEED=HASH_SEED))  # fmt: skip
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _answers(port):
            if proc.poll() is not None or time.monotonic() >= deadline:
                pytest.fail(f"{argv[2]} not serving {module} (exit {proc.poll()}):\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def adapter_missing(interface: str) -> str | None:
    """Why CovetPy cannot host an ``interface`` app yet (its adapter is a stub), or
    None."""
    from covet._hosting import host

    async def asgi(scope: Any, receive: Any, send: Any) -> None: ...

    def wsgi(environ: Any, start_response: Any) -> list[bytes]:
        return []

    try:
        host(asgi if interface == "asgi" else wsgi, interface, "probe")
    except NotImplementedError:
        return f"covet/_{interface}.py is still a stub: nothing to compare {REFERENCE[interface]} with"
    return None


@dataclass
class Pair:
    app: str
    reference: int
    candidate: int


@pytest.fixture(scope="module", params=list(APPS))
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    app: str = request.param
    module, interface = APPS[app]
    logs = tmp_path_factory.mktemp(f"diff-{app}")
    with contextlib.ExitStack() as stack:
        ref = stack.enter_context(reference_server(app, logs / "reference.log"))
        if SELF_CHECK:
            cand = stack.enter_context(reference_server(app, logs / "reference-2.log"))
        else:
            why = adapter_missing(interface)
            if why:
                pytest.skip(why)
            gw = stack.enter_context(serving_gateway(logs / "gateway.log", module, module, 1,
                                                     lambda gw: _answers(gw.port), worker_dir=HOSTED,
                                                     interface=interface, PYTHONHASHSEED=HASH_SEED))  # fmt: skip
            cand = gw.port
        yield Pair(app, ref, cand)


# -- the tests ------------------------------------------------------------------------------


def test_corpus_shape() -> None:
    """The corpus is what the issue asks for: at least 200 requests for every app,
    unique names, each kind of request present; every listed difference names a
    case of the apps it says."""
    for app in APPS:
        names = [c.name for c in corpus(app)]
        assert len(names) == len(set(names)), app
        assert len(names) >= 200, app
    wires = [c.wire() for c in GENERIC]
    assert any(b"Transfer-Encoding: chunked" in w for w in wires)
    assert sum(1 for c in GENERIC if c.method == "HEAD") >= 10
    assert sum(1 for w in wires if len(w) > 1 << 20) >= 3
    assert any(re.search(rb"^Cookie: .*\r\nCookie: ", w, re.M) for w in wires)
    assert any(re.search(rb"%[0-9A-Fa-f]{2}", w.split(b" ")[1]) for w in wires)
    for name, exps in EXPECTED_DIFFERENCES.items():
        for exp in exps:
            apps = exp.apps or set(APPS)
            assert all(name in {c.name for c in corpus(app)} for app in apps), name
            assert exp.reason and exp.differs, name


def test_same_answers(pair: Pair) -> None:
    """Every case of the corpus: the same status, body and header fields from both,
    less what GLOBAL_RULES and EXPECTED_DIFFERENCES list; each listed difference
    seen."""
    counts: dict[GlobalRule, int] = {}
    seen: set[tuple[str, str]] = set()
    problems: list[str] = []
    statuses: dict[str, int] = {}
    for case in corpus(pair.app):
        ref = ask(pair.reference, case)
        cand = ask(pair.candidate, case)
        statuses[case.name] = ref.status
        problems += compare(pair.app, case, ref, cand, counts, seen)
    assert not problems, f"{len(problems)} unexplained differences ({pair.app}):\n" + "\n".join(problems)
    if not SELF_CHECK:
        listed = {(n, pair.app) for n, exps in EXPECTED_DIFFERENCES.items() for e in exps if e.covers(pair.app)}
        assert listed <= seen, sorted(listed - seen)
        interface = APPS[pair.app][1]
        answered = sum(1 for s in statuses.values() if s)
        for rule in GLOBAL_RULES:
            if rule.interface == interface:
                assert counts.get(rule, 0) >= answered - 20, (rule, counts.get(rule, 0), answered)
    # The corpus does what it says: the routes answer as written, the framework refuses.
    assert statuses["GET echo"] == 200 and statuses["missing GET"] == 404
    assert statuses["only-get POST"] == 405 and statuses["error GET"] == 500
    assert statuses["body 1 MiB"] == 200 and statuses["chunked 1 MiB in 64 KiB chunks"] == 200
    assert statuses["status 418"] == 418 and statuses["stream 1 MiB"] == 200


def test_echo_sees_the_request(pair: Pair) -> None:
    """The echo route reports what was sent (so that equal echoes mean something):
    the decoded path, the repeated header, both cookies, the body's digest."""
    body = pattern_body = b"0123456789" * 1000
    case = Case("probe echo", "POST", "/echo/caf%C3%A9?a=1&a=2",
                (("X-Test-Rep", "one"), ("X-Test-Rep", "two"), ("Cookie", "a=1; b=2")), body)  # fmt: skip
    for port in (pair.reference, pair.candidate):
        answer = ask(port, case)
        assert answer.status == 200, answer
        doc = json.loads(answer.body)
        assert doc["path"] == "/echo/caf\u00e9"
        assert doc["query"] == [["a", "1"], ["a", "2"]]
        assert sorted(doc["cookies"]) == [["a", "1"], ["b", "2"]]
        assert doc["body_sha256"] == hashlib.sha256(pattern_body).hexdigest()
        reps = [v for k, v in doc["headers"] if k in ("x-test-rep",)]
        # ASGI keeps the lines; WSGI servers join them with "," or ", " (RFC 9110 5.3).
        assert reps in (["one", "two"], ["one, two"], ["one,two"]), reps
        assert ["host", HOST.decode()] in doc["headers"]


# -- WebSocket: the same echo exchange through both -------------------------------------------


def ws_exchange(port: int, path: str) -> list[Any]:
    """A transcript of one WebSocket session on ``path``: the subprotocol chosen, the
    echoes of a text and a binary message, and the close the app starts."""
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect

    out: list[Any] = []
    try:
        with connect(f"ws://127.0.0.1:{port}{path}", subprotocols=["chat", "superchat"],  # type: ignore[list-item]
                     open_timeout=IO_TIMEOUT_S, close_timeout=IO_TIMEOUT_S) as ws:  # fmt: skip
            out.append(("subprotocol", ws.subprotocol))
            for msg in ("hello", "h\u00e9llo \u2713", b"\x00\x01\xff", "x" * 70000):
                ws.send(msg)
                out.append(("echo", ws.recv(timeout=IO_TIMEOUT_S)))
            ws.send("close")
            try:
                ws.recv(timeout=IO_TIMEOUT_S)
            except ConnectionClosed as e:
                out.append(("closed", e.rcvd.code if e.rcvd else None, e.rcvd.reason if e.rcvd else None))
    except InvalidStatus as e:
        out.append(("refused", e.response.status_code))
    return out


@pytest.mark.parametrize("path", ["/ws", "/ws-missing"])
def test_websocket_same_exchange(pair: Pair, path: str) -> None:
    """FastAPI's and Starlette's WebSocket echo gives the same transcript through both
    servers; a WebSocket to a path with no WebSocket route is refused alike."""
    if APPS[pair.app][1] != "asgi":
        pytest.skip("WSGI has no WebSocket")
    ref = ws_exchange(pair.reference, path)
    cand = ws_exchange(pair.candidate, path)
    assert ref == cand
    if path == "/ws":
        assert ref[0] == ("subprotocol", "chat") and ref[-1] == ("closed", 4001, "asked to")
    else:
        assert ref == [("refused", 403)]
