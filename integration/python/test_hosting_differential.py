"""Hosted apps answer under CovetPy as under the servers they were written for: a
FastAPI, a Starlette, a Django and a Flask app (hosted/*_app.py, unchanged) served
by the real bin/covet-gateway (``covet worker mod:app --interface asgi|wsgi``) and
by uvicorn (ASGI) or gunicorn with sync workers (WSGI), both on loopback; the same
corpus of raw HTTP/1.x requests (hosting_corpus.py, over 270 per app) sent to
both, each on a fresh connection, byte for byte.

Compared per request: the status, the body (bytes; a JSON body's differing keys,
and the keys of its objects, are named in the failure) and the header fields less
Date and Server. Header field names are compared lower-cased (RFC 9110 5.1: they
are case-insensitive) and grouped by name, keeping the order of the lines of one
name (RFC 9110 5.3: the order of fields with different names is not significant;
that of one name's lines is). A Content-Length that is the length of the body read
is compared as such (the body is compared anyway); its absence, or its value on a
HEAD or 304 answer, is compared as it is. The reason phrase is not compared (RFC
9112 4: a client ignores it).

Where CovetPy answers differently by design, the difference is listed with its
reason: GLOBAL_RULES (a field one side adds to every answer), ECHO_RULES (a key of
the /echo document that differs on every echo), GATEWAY_ANSWERS (a request the
gateway answers itself, before any app: its answer is checked whole, the
reference's status noted) and EXPECTED_DIFFERENCES (one case of some apps). The
test checks that each listed difference occurs exactly as listed and each rule
applies wherever it is due, so a difference that goes away or changes fails it too.

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
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conftest import HERE, _free_port, serving_gateway, serving_process
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
    answer of an ``interface`` app (either interface when empty) and that its other
    side lacks: checked present (one line matching
    ``value``, a regular expression), then left out of the comparison. No rule applies
    to a case the gateway answers itself (GATEWAY_ANSWERS): that answer is checked
    whole."""

    side: str
    interface: str
    name: str
    value: str
    reason: str


REQUEST_ID = r"[0-9a-f]{16}|client-chosen-id-42"

GLOBAL_RULES: list[GlobalRule] = [
    GlobalRule("reference", "wsgi", "connection", "close",
               "gunicorn's sync workers serve one request per connection and say so on every "
               "answer; the gateway keeps HTTP/1.1 connections alive (RFC 9112 9.3) whatever the worker"),  # fmt: skip
    GlobalRule("candidate", "", "x-request-id", REQUEST_ID,
               "the gateway gives every answer it routes its request id (the client's X-Request-ID when "
               "sane; docs/operations.md, 'Logs')"),  # fmt: skip
]


@dataclass(frozen=True)
class EchoRule:
    """A key of the /echo document (``json:<key>.<subkey>``) that differs on every echo
    of ``apps`` by design: the reference's value is ``reference(target)`` (the
    request-target the reference was sent), CovetPy's is ``candidate``. Checked, then
    left out of the comparison."""

    apps: frozenset[str]
    key: str
    reference: Callable[[str], Any]
    candidate: Any
    reason: str


ECHO_RULES: list[EchoRule] = [
    EchoRule(frozenset({"starlette"}), "json:asgi.spec_version", lambda target: "2.3", "2.4",
             "CovetPy's ASGI adapter speaks HTTP spec version 2.4 (send raises an OSError once the client "
             "has gone: docs/python-app.md, 'Hosting ASGI and WSGI apps'); uvicorn 0.55 says 2.3"),  # fmt: skip
    EchoRule(frozenset({"django", "flask"}), "json:environ.RAW_URI", lambda target: target, None,
             "RAW_URI (the request-target as sent) is gunicorn's own key, not PEP 3333's; neither Django "
             "nor Flask (Werkzeug) reads it, and what the gateway passes on is the target it has checked "
             "and routed, not the client's bytes: the adapter does not invent it"),  # fmt: skip
]


@dataclass(frozen=True)
class GatewayAnswer:
    """A request the gateway answers itself, by design, before any worker sees it:
    CovetPy's answer is exactly this one (``status``; ``body``, text/plain, with its
    Content-Length; ``Connection: close`` when ``close``; its request id when
    ``request_id``; and ``fields``), whatever the reference's (its own parser's or its
    app's answer, of status ``reference``: one for all apps, or one per app in APPS'
    order). ``apps`` says for which apps (all four when empty)."""

    reason: str
    status: int
    body: bytes
    reference: int | tuple[int, ...]
    close: bool = False
    request_id: bool = False
    fields: tuple[tuple[str, str], ...] = ()
    apps: frozenset[str] = frozenset()

    def covers(self, app: str) -> bool:
        return not self.apps or app in self.apps

    def reference_status(self, app: str) -> int:
        ref = self.reference
        return ref if isinstance(ref, int) else ref[list(APPS).index(app)]

    def check(self, app: str, ref: Answer, cand: Answer) -> list[str]:
        """What in the two answers is not as this says."""
        problems = []
        if ref.status != self.reference_status(app):
            problems.append(f"the reference answered {ref.status}, listed as {self.reference_status(app)}")
        want: dict[str, Any] = {"status": self.status, "body": self.body}
        got: dict[str, Any] = {"status": cand.status, "body": cand.body}
        fields = {k: v for k, v in cand.fields().items() if k not in DROPPED}
        rid = fields.pop("x-request-id", None)
        if self.request_id != (rid is not None and len(rid) == 1 and re.fullmatch(REQUEST_ID, rid[0]) is not None):
            problems.append(f"request id {rid!r}, listed as {'one' if self.request_id else 'none'}")
        expect: dict[str, list[str]] = {k: [v] for k, v in self.fields}
        if self.body:
            expect["content-type"] = ["text/plain; charset=utf-8"]
        if self.status != 204:
            expect["content-length"] = [str(len(self.body))]
        if self.close:
            expect["connection"] = ["close"]
        want["fields"], got["fields"] = expect, fields
        problems += [f"{k}: {short(got[k])}, listed as {short(want[k])}" for k in want if want[k] != got[k]]
        return problems


def _gateway(status: int, body: bytes, reference: int | tuple[int, ...], reason: str, **kw: Any) -> GatewayAnswer:
    """An answer of the gateway's router (past the parser): keep-alive, with a request id."""
    return GatewayAnswer(reason, status, body, reference, request_id=True, **kw)


_PHRASES = {400: "Bad Request", 417: "Expectation Failed", 431: "Request Header Fields Too Large",
            501: "Not Implemented", 505: "HTTP Version Not Supported"}  # fmt: skip


def _parser(status: int, code: str, reference: int | tuple[int, ...], reason: str, close: bool = True) -> GatewayAnswer:
    """A rejection by the HTTP/1.1 parser (gateway/http1/doc.go, 'Rejections'), with its
    reason code in the body; no request id (no request was made of it)."""
    body = f"{_PHRASES[status]}: {code}\n".encode()
    return GatewayAnswer(reason + " (gateway/http1/doc.go, 'Rejections')", status, body, reference, close=close)


_ASGI = frozenset({"fastapi", "starlette"})
_WSGI = frozenset({"django", "flask"})
_METHODS = (
    "the hosted app is routed for the seven methods of covet._routing.HTTP_METHODS (issue 24's design); "
    "the gateway's router answers any other 405 with those in Allow (gateway/server/doc.go, 'Answered by "
    "the gateway'), where uvicorn's and gunicorn's apps see it"
)
_ALLOW = (("allow", "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"),)
_ESCAPE = (
    "a path with a malformed %-escape (RFC 3986 2.1), or not UTF-8 once decoded, is refused by the router"
    " before any app (gateway/server/doc.go, 'Answered by the gateway'); the reference servers hand their"
    " app a path it cannot decode"
)
_DOTS = (
    "a dot segment (RFC 3986 3.3), also as %2e, is refused before routing: the router matches raw paths "
    "and never resolves them, and a worker never sees a path whose meaning depends on who normalises it "
    "(gateway/server/doc.go; docs/operations.md, 'Traversal')"
)
_TARGET = "a request-target is ASCII with no SP, CTL or '#' (RFC 9112 3.2; a fragment is never sent, RFC 9110 7.1)"
_LENGTH = (
    "Content-Length is one plain decimal on one line (RFC 9110 8.6); a list or a second line, even of "
    "equal values, is refused: proxies disagree on folding them, and a disagreement on framing is request"
    " smuggling (docs/operations.md, 'Request sizes')"
)

#: case name -> how the gateway answers it itself.
GATEWAY_ANSWERS: dict[str, GatewayAnswer] = {
    "unknown method": _gateway(405, b"Method Not Allowed\n", (405, 405, 200, 405), _METHODS, fields=_ALLOW),
    "TRACE": _gateway(405, b"Method Not Allowed\n", (405, 405, 200, 405), _METHODS, fields=_ALLOW),
    "lower-case method": _gateway(405, b"Method Not Allowed\n", (405, 405, 400, 400),
                                  _METHODS + "; methods are case-sensitive (RFC 9110 9.1)", fields=_ALLOW),
    "CONNECT": _gateway(501, b"Not Implemented\n", 404,
                        "the gateway is not a proxy: CONNECT is answered 501 (RFC 9110 9.3.6; gateway/server/doc.go)"),
    "OPTIONS star": _gateway(204, b"", 404, "OPTIONS * asks about the server, not a resource: the gateway answers "
                             "204 itself (RFC 9110 9.3.7; gateway/server/doc.go)"),
    "path bad escape": _gateway(400, b"Bad Request\n", 200, _ESCAPE),
    "path lone percent": _gateway(400, b"Bad Request\n", 200, _ESCAPE),
    "path truncated escape": _gateway(400, b"Bad Request\n", 200, _ESCAPE),
    "path invalid UTF-8": _gateway(400, b"Bad Request\n", 200, _ESCAPE),
    "path byte FF": _gateway(400, b"Bad Request\n", 200, _ESCAPE),
    "path dot dot": _gateway(400, b"Bad Request\n", 200, _DOTS),
    "path dot": _gateway(400, b"Bad Request\n", 200, _DOTS),
    "path encoded dot dot": _gateway(400, b"Bad Request\n", 200, _DOTS),
    "path trailing dot dot": _gateway(400, b"Bad Request\n", 200, _DOTS),
    "header upgrade websocket on http route": _gateway(
        426, b"Upgrade Required\n", 400,
        "a hosted ASGI app's catch-all also serves WebSocket, so an upgrade is a handshake: one with no "
        "Sec-WebSocket-Version gets 426 naming version 13 (RFC 6455 4.2.2; docs/operations.md, 'Handshake'); "
        "uvicorn refuses it 400 for its missing Sec-WebSocket-Key",
        fields=(("sec-websocket-version", "13"), ("upgrade", "websocket")), apps=_ASGI),  # fmt: skip
    "path raw UTF-8 bytes": _parser(400, "invalid_target", 400, _TARGET),
    "path raw latin-1 byte": _parser(400, "invalid_target", 400, _TARGET),
    "path raw space": _parser(400, "invalid_target", 400, _TARGET),
    "query raw UTF-8 bytes": _parser(400, "invalid_target", 400, _TARGET),
    "path with fragment": _parser(400, "invalid_target", 200, _TARGET),
    "request line extra space": _parser(400, "invalid_target", 400, _TARGET),
    "path no leading slash": _parser(400, "invalid_target_form", (404, 404, 400, 400),
                                     "an origin-form target starts with '/' (RFC 9112 3.2.1)"),
    "header 120 fields": _parser(431, "too_many_fields", (200, 200, 431, 431),
                                 "a header section holds at most 100 fields (docs/operations.md, 'Request sizes')"),
    "header obs-fold": _parser(400, "obs_fold", (200, 200, 400, 400),
                               "obs-fold is refused, as RFC 9112 5.2 allows (the other choice is unfolding it)"),
    "header without colon": _parser(400, "invalid_field_name", 400, "a field line is name ':' value (RFC 9112 5)"),
    "header space before colon": _parser(400, "space_before_colon", 400,
                                         "whitespace between a field name and the colon MUST be refused "
                                         "(RFC 9112 5.1)"),
    "header invalid name": _parser(400, "invalid_field_name", 400, "a field name is a token (RFC 9110 5.1)"),
    "header NUL in value": _parser(400, "invalid_field_value", 400,
                                   "NUL is not a field-value character (RFC 9110 5.5)"),
    "header CR in value": _parser(400, "bare_cr", 400, "a bare CR in a head is refused (RFC 9112 2.2)"),
    "header bare LF line ends": _parser(400, "bare_lf", (200, 200, 400, 400),
                                        "a bare LF line end, which RFC 9112 2.2 lets a recipient accept, is refused: "
                                        "leniency about line ends is a smuggling vector"),
    "body two equal Content-Lengths": _parser(400, "duplicate_content_length", (200, 200, 400, 400), _LENGTH),
    "body Content-Length list": _parser(400, "invalid_content_length", (200, 200, 400, 400), _LENGTH),
    "body two different Content-Lengths": _parser(400, "duplicate_content_length", 400, _LENGTH),
    "body negative Content-Length": _parser(400, "invalid_content_length", 400, _LENGTH),
    "body Content-Length with plus": _parser(400, "invalid_content_length", 400, _LENGTH),
    "body Content-Length not a number": _parser(400, "invalid_content_length", 400, _LENGTH),
    "chunked bad size": _parser(400, "invalid_chunk_size", (400, 400, 200, 500),
                                "a chunk size is hex digits (RFC 9112 7.1); gunicorn hands Django an empty "
                                "body and raises in Flask's read"),
    "chunked and Content-Length": _parser(400, "content_length_with_transfer_encoding", (200, 200, 400, 400),
                                          "Content-Length with Transfer-Encoding is refused, as RFC 9112 6.1 "
                                          "allows a server to (it is a smuggling attempt or a broken client)"),
    "transfer-encoding identity": _parser(400, "content_length_with_transfer_encoding", 400,
                                          "'identity' is no transfer coding (RFC 9112 7); with its Content-Length "
                                          "the request is refused as RFC 9112 6.1 allows"),
    "transfer-encoding gzip, chunked": _parser(501, "unsupported_transfer_coding", (400, 400, 200, 200),
                                               "a transfer coding the server does not understand: 501 (RFC 9112 "
                                               "6.1); gunicorn passes the gzip-coded bytes to the app undecoded"),
    "transfer-encoding on HTTP/1.0": _parser(400, "transfer_encoding_http10", (200, 200, 400, 400),
                                             "Transfer-Encoding in HTTP/1.0 is faulty framing (RFC 9112 6.1)"),
    "version HTTP/2.0 in a request line": _parser(505, "unsupported_version", (200, 200, 400, 400),
                                                  "a major version other than 1 on an HTTP/1 connection: 505 "
                                                  "(RFC 9110 15.6.6); uvicorn serves it as HTTP/1.1"),
    "version lower-case": _parser(400, "invalid_version", 400, "HTTP-name is case-sensitive (RFC 9112 2.3)"),
    "request line without version": _parser(400, "invalid_request_line", 400,
                                            "a request-line has three parts (RFC 9112 3); HTTP/0.9 is not served"),
    "header expect other": _parser(417, "expectation_failed", (200, 200, 417, 417),
                                   "an expectation other than 100-continue: 417 (RFC 9110 10.1.1)", close=False),
    "header Host missing": _parser(400, "missing_host", (400, 400, 200, 200),
                                   "an HTTP/1.1 request without Host MUST get 400 (RFC 9112 3.2)", close=False),
    "header Host twice": _parser(400, "duplicate_host", 400,
                                 "a request with two Host lines MUST get 400 (RFC 9112 3.2)", close=False),
    "header Host invalid": _parser(400, "invalid_host", (200, 200, 400, 200),
                                   "a Host that is not a valid host[:port] MUST get 400 (RFC 9112 3.2)", close=False),
}


@dataclass(frozen=True)
class Expected:
    """A case the app answers under CovetPy differently by design: ``differs`` maps what
    differs (``status``, ``body``, ``header:<name>`` for that field's list of values,
    None when absent, or ``json:<key>``/``json:<key>.<subkey>`` when both bodies are
    JSON objects) to (the reference's, CovetPy's), either of which may be ANY; or,
    with ``reference_case``, CovetPy serves the case as the reference serves that
    equivalent request, and its answer is compared with the reference's answer to it.
    ``apps`` says for which apps (all four when empty)."""

    reason: str
    differs: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    apps: frozenset[str] = frozenset()
    reference_case: Case | None = None

    def covers(self, app: str) -> bool:
        return not self.apps or app in self.apps


#: In an Expected value: whatever that side answers.
ANY: Any = type("Any", (), {"__repr__": lambda self: "ANY"})()
#: In an Expected ``header:content-length``: present, and the body's length.
BODY_LENGTH = "<the body's length>"

_JOINED = (
    "a repeated field reaches a WSGI app as one value joined with ', ' as RFC 9110 5.3 recommends ('for "
    "consistency, use comma SP'; docs/python-app.md, 'WSGI'); gunicorn joins with ','"
)
_H = ["host", "covet.test"]

#: case name -> the differences CovetPy shows on it, with why.
EXPECTED_DIFFERENCES: dict[str, list[Expected]] = {
    "path absolute-form": [Expected(
        "an absolute-form target MUST be accepted (RFC 9112 3.2.2): the gateway routes its path and takes Host "
        "from its authority, so the app sees the request as in origin-form; uvicorn's apps answer 404",
        apps=_ASGI, reference_case=Case("path absolute-form, origin-form", "GET", "/echo/absolute"))],  # fmt: skip
    "leading empty line": [Expected(
        "an empty line before a request-line is ignored (RFC 9112 2.2: SHOULD ignore at least one), as gunicorn "
        "does; uvicorn answers 400", apps=_ASGI,
        reference_case=Case("leading empty line, without it", "GET", "/echo/v"))],  # fmt: skip
    "version HTTP/1.2": [Expected(
        "HTTP/1.2 is served as HTTP/1.1, the highest minor version the gateway speaks (RFC 9110 2.5; "
        "gateway/http1/doc.go); the reference servers tell the app 1.2",
        reference_case=Case("version HTTP/1.2 as HTTP/1.1", "GET", "/echo/v"))],  # fmt: skip
    "HTTP/1.0 keep-alive": [
        Expected("an HTTP/1.0 client asking for keep-alive gets it (RFC 9112 9.3, Appendix C.2.2); uvicorn closes",
                 {"header:connection": (["close"], ["keep-alive"])}, _ASGI),
        Expected("an HTTP/1.0 client asking for keep-alive gets it (RFC 9112 9.3, Appendix C.2.2); gunicorn closes "
                 "(its Connection: close is GLOBAL_RULES')", {"header:connection": (None, ["keep-alive"])}, _WSGI),
    ],  # fmt: skip
    **{name: [Expected(
        "a HEAD answer declares the GET's length; the GET's echo is 5 bytes shorter under CovetPy (RAW_URI "
        "null for the 7-character target: ECHO_RULES)",
        {"header:content-length": ([str(n + 5)], [str(n)])}, frozenset({app}))
        for app, n in (("django", 492), ("flask", 453))] for name in ("HEAD echo", "HTTP/1.0 HEAD")},  # fmt: skip
    "header long 16k": [Expected(
        "gunicorn refuses a field line over 8190 bytes (its limit_request_field_size); the gateway bounds the "
        "header section at 64 KiB (docs/operations.md, 'Request sizes') and the app echoes the request",
        {"status": (431, 200), "body": (ANY, ANY), "header:content-type": (["text/html"], ["application/json"])},
        _WSGI)],  # fmt: skip
    "chunked spelled Chunked": [Expected(
        "the gateway passes header fields on as received (gateway/server/doc.go), as gunicorn does; uvicorn "
        "lower-cases this one (transfer-coding names are case-insensitive, RFC 9112 7)",
        {"json:headers": ([_H, ["transfer-encoding", "chunked"]], [_H, ["transfer-encoding", "Chunked"]])},
        _ASGI)],  # fmt: skip
    "header repeated twice": [Expected(_JOINED, {"json:headers": (
        [_H, ["x-test-rep", "one,two"]], [_H, ["x-test-rep", "one, two"]])}, _WSGI)],  # fmt: skip
    "header repeated thrice": [Expected(_JOINED, {"json:headers": (
        [_H, ["x-test-other", "x"], ["x-test-rep", "1,2,3"]],
        [_H, ["x-test-other", "x"], ["x-test-rep", "1, 2, 3"]])}, _WSGI)],  # fmt: skip
    "cookie two fields": [Expected(
        "two Cookie lines reach a WSGI app joined with '; ', as one Cookie line would carry them (RFC 6265 5.4; "
        "RFC 9113 8.2.3 does the same for HTTP/2; docs/python-app.md, 'WSGI'); gunicorn's ',' makes one "
        "cookie 'a' of value '1,b=2'",
        {"json:headers": ([["cookie", "a=1,b=2"], _H], [["cookie", "a=1; b=2"], _H]),
         "json:cookies": ([["a", "1,b=2"]], [["a", "1"], ["b", "2"]])}, _WSGI)],  # fmt: skip
    "body Content-Length leading zeros": [Expected(
        "CONTENT_LENGTH is the body's length as the gateway read it, in plain decimal: the same number "
        "(RFC 9110 8.6); gunicorn copies the field's text",
        {"json:headers": ([_H, ["content-length", "0004"]], [_H, ["content-length", "4"]])}, _WSGI)],  # fmt: skip
    "stream empty": [Expected(
        "a body that ends before its first byte is known empty when the head goes out: Content-Length: 0 "
        "(RFC 9112 6.3), where the reference servers had chosen chunked",
        {"header:content-length": (None, BODY_LENGTH), "header:transfer-encoding": (["chunked"], None)})],  # fmt: skip
    "stream HEAD": [
        Expected("uvicorn announces chunked on a HEAD answer whose GET would be chunked; the gateway sends no "
                 "framing field on a HEAD answer of unknown length (RFC 9110 9.3.2 lets a server omit what "
                 "only generating the content determines)",
                 {"header:transfer-encoding": (["chunked"], None)}, _ASGI),
        Expected("for HEAD the WSGI adapter counts the body Django's streaming response produces and declares "
                 "that length, which is the GET's (RFC 9110 8.6 allows it; covet/_wsgi.py); gunicorn declares "
                 "none (Flask's HEAD body is empty: no length to count, none declared)",
                 {"header:content-length": (None, ["30"])}, frozenset({"django"})),
    ],  # fmt: skip
    "status 304": [Expected(
        "a 304 has no content; a Content-Length on it would have to be the 200's (RFC 9110 8.6), so the adapter "
        "drops the app's (Django's '0')",
        {"header:content-length": (["0"], None)}, frozenset({"django"}))],  # fmt: skip
}


# -- comparing ------------------------------------------------------------------------------

DROPPED = ("date", "server")
#: Statuses whose answers have no content (a Content-Length on them is not the body's).
NO_CONTENT = (204, 304)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def target_of(case: Case) -> str:
    """The request-target ``case`` sends."""
    line = case.wire().lstrip(b"\r\n").split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    return parts[1].decode("latin-1") if len(parts) > 1 else ""


@dataclass
class Tally:
    """How often each rule applied (each must apply where it says it does)."""

    rules: dict[GlobalRule, int] = field(default_factory=dict)
    rules_due: dict[GlobalRule, int] = field(default_factory=dict)
    echo: dict[EchoRule, int] = field(default_factory=dict)
    #: (case, app) of the listed differences seen to differ.
    seen: set[tuple[str, str]] = field(default_factory=set)


def aspects(case: Case, answer: Answer) -> dict[str, Any]:
    """What is compared of ``answer``: ``status``, ``error``, ``body``, and
    ``header:<name>`` for each field (a Content-Length that is the body's length, on an
    answer with content, as BODY_LENGTH: its value is the body's, compared as the
    body)."""
    fields = answer.fields()
    out: dict[str, Any] = {"status": answer.status, "error": answer.error, "body": answer.body}
    for name, values in fields.items():
        if name not in DROPPED:
            out[f"header:{name}"] = values
    length = out.get("header:content-length")
    if length == [str(len(answer.body))] and case.method != "HEAD" and answer.status not in NO_CONTENT:
        out["header:content-length"] = BODY_LENGTH
    return out


def apply_global_rules(app: str, ref: dict[str, Any], cand: dict[str, Any], tally: Tally) -> list[str]:
    """Check and drop the GLOBAL_RULES' fields: from the side that adds it, and from
    the other side too where it says the same (the two agree there)."""
    problems = []
    interface = APPS[app][1]
    for rule in GLOBAL_RULES:
        if SELF_CHECK or rule.interface not in ("", interface):
            continue
        side, other = (ref, cand) if rule.side == "reference" else (cand, ref)
        if side["status"] == 0:
            continue
        key = f"header:{rule.name}"
        tally.rules_due[rule] = tally.rules_due.get(rule, 0) + 1
        values = side.pop(key, None)
        if values is None or len(values) != 1 or not re.fullmatch(rule.value, values[0]):
            problems.append(f"{rule.side} answer has {rule.name}: {values!r}, expected one matching {rule.value!r}")
        else:
            tally.rules[rule] = tally.rules.get(rule, 0) + 1
        if other.get(key) == values:
            del other[key]
    return problems


def expand_json(a: dict[str, Any], b: dict[str, Any]) -> None:
    """When both bodies are JSON objects, compare them key by key (``json:<key>``, and
    ``json:<key>.<subkey>`` for an object's keys) and by the order of their keys
    (``body``): with the same framework serializing on both sides, that is comparing
    their bytes, with a readable difference."""
    da, db = _json(a["body"]), _json(b["body"])
    if not (isinstance(da, dict) and isinstance(db, dict)):
        return
    for out, doc in ((a, da), (b, db)):
        out["body"] = ("JSON object with keys", list(doc))
        for key, value in doc.items():
            if isinstance(value, dict):
                out[f"json:{key}"] = ("JSON object with keys", list(value))
                for sub, v in value.items():
                    out[f"json:{key}.{sub}"] = v
            else:
                out[f"json:{key}"] = value


def apply_echo_rules(app: str, target: str, a: dict[str, Any], b: dict[str, Any], tally: Tally) -> list[str]:
    """Check and drop the ECHO_RULES' keys from both sides' aspects."""
    problems = []
    for rule in ECHO_RULES:
        if SELF_CHECK or app not in rule.apps or not ("body" in a and isinstance(a["body"], tuple)):
            continue
        if not isinstance(b["body"], tuple):
            continue
        parent = rule.key.rsplit(".", 1)[0]
        if parent not in a and parent not in b:
            continue
        want = (rule.reference(target), rule.candidate)
        got = (a.pop(rule.key, None), b.pop(rule.key, None))
        if got != want:
            problems.append(f"{rule.key}: {short(got)}, the rule says {short(want)}")
        tally.echo[rule] = tally.echo.get(rule, 0) + 1
    return problems


def short(v: Any) -> str:
    text = repr(v)
    if len(text) > 300:
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        text = f"{text[:240]}... ({len(text)} chars, sha256 {digest})"
    return text


def compare(app: str, case: Case, ref: Answer, cand: Answer, tally: Tally, ref_case: Case | None = None) -> list[str]:
    """The unexplained differences between the reference's answer to ``ref_case``
    (``case`` unless given) and CovetPy's to ``case``."""
    expected: dict[str, tuple[Any, Any]] = {}
    if not SELF_CHECK:
        for exp in EXPECTED_DIFFERENCES.get(case.name, []):
            if exp.covers(app):
                expected.update(exp.differs)
    sent = ref_case or case
    a, b = aspects(sent, ref), aspects(case, cand)
    expand_json(a, b)
    found = apply_global_rules(app, a, b, tally) + apply_echo_rules(app, target_of(sent), a, b, tally)
    problems = [f"{case.name}: {m}" for m in found]
    for key in sorted(a.keys() | b.keys()):
        got = (a.get(key), b.get(key))
        if key in expected:
            want = expected[key]
            if not all(w is ANY or w == g for w, g in zip(want, got)):
                problems.append(f"{case.name}: {key} expected to differ as {short(want)}, got {short(got)}")
            elif got[0] != got[1]:
                tally.seen.add((case.name, app))
        elif got[0] != got[1]:
            problems.append(f"{case.name}: {key}\n    {REFERENCE[APPS[app][1]]}: {short(got[0])}\n"
                            f"    {CANDIDATE}: {short(got[1])}")  # fmt: skip
    return problems


def check_case(app: str, case: Case, ref_port: int, cand_port: int, tally: Tally) -> tuple[int, list[str]]:
    """Send ``case`` to both servers and compare, as GATEWAY_ANSWERS and
    EXPECTED_DIFFERENCES say; the reference's status and the unexplained differences."""
    ref = ask(ref_port, case)
    cand = ask(cand_port, case)
    if SELF_CHECK:
        return ref.status, compare(app, case, ref, cand, tally)
    gw = GATEWAY_ANSWERS.get(case.name)
    if gw is not None and gw.covers(app):
        problems = gw.check(app, ref, cand)
        if (ref.status, ref.body) != (cand.status, cand.body):
            tally.seen.add((case.name, app))
        return ref.status, [f"{case.name} (answered by the gateway): {m}" for m in problems]
    for exp in EXPECTED_DIFFERENCES.get(case.name, []):
        if exp.covers(app) and exp.reference_case is not None:
            if compare(app, case, ref, cand, Tally()):
                tally.seen.add((case.name, app))
            return ref.status, compare(app, case, ask(ref_port, exp.reference_case), cand, tally,
                                       exp.reference_case)  # fmt: skip
    return ref.status, compare(app, case, ref, cand, tally)


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
    with serving_process(argv, log_path, lambda: _answers(port), cwd=HOSTED, PYTHONHASHSEED=HASH_SEED):
        yield port


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
    case of the apps it says, once, with its reason."""
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
    listed: list[tuple[str, frozenset[str], str, bool]] = [
        (name, gw.apps, gw.reason, True) for name, gw in GATEWAY_ANSWERS.items()]
    listed += [(name, e.apps, e.reason, bool(e.differs) != (e.reference_case is not None))
               for name, exps in EXPECTED_DIFFERENCES.items() for e in exps]  # fmt: skip
    for name, apps, reason, well_formed in listed:
        assert reason and well_formed, name
        assert all(name in {c.name for c in corpus(app)} for app in apps or APPS), name
    for app in APPS:
        for name, gw in GATEWAY_ANSWERS.items():
            both = gw.covers(app) and any(e.covers(app) for e in EXPECTED_DIFFERENCES.get(name, []))
            assert not both, (name, app)
        for name, exps in EXPECTED_DIFFERENCES.items():
            assert sum(1 for e in exps if e.covers(app)) <= 1, (name, app)


def listed_for(app: str) -> set[str]:
    """The cases GATEWAY_ANSWERS and EXPECTED_DIFFERENCES list for ``app``."""
    out = {name for name, gw in GATEWAY_ANSWERS.items() if gw.covers(app)}
    return out | {name for name, exps in EXPECTED_DIFFERENCES.items() if any(e.covers(app) for e in exps)}


def test_same_answers(pair: Pair) -> None:
    """Every case of the corpus: the same status, body and header fields from both,
    less what GLOBAL_RULES, ECHO_RULES, GATEWAY_ANSWERS and EXPECTED_DIFFERENCES
    list; each listed difference seen, each rule applied wherever it is due."""
    tally = Tally()
    problems: list[str] = []
    statuses: dict[str, int] = {}
    for case in corpus(pair.app):
        statuses[case.name], found = check_case(pair.app, case, pair.reference, pair.candidate, tally)
        problems += found
    assert not problems, f"{len(problems)} unexplained differences ({pair.app}):\n" + "\n".join(problems)
    if not SELF_CHECK:
        assert not listed_for(pair.app) - {n for n, a in tally.seen if a == pair.app}, sorted(
            listed_for(pair.app) - {n for n, a in tally.seen if a == pair.app})
        interface = APPS[pair.app][1]
        for rule in GLOBAL_RULES:
            if rule.interface in ("", interface):
                assert tally.rules.get(rule, 0) == tally.rules_due.get(rule, -1) > 200, (rule.name, tally.rules_due)
        for echo in ECHO_RULES:
            if pair.app in echo.apps:
                assert tally.echo.get(echo, 0) > 100, (echo.key, tally.echo)
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
