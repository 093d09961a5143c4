"""The SDK's side of the gateway's security chain (PROTOCOL.md 1.3 and 3.1): the route
options in the manifest, the app's defaults, the checks at decoration time, covet.Auth
and REQ_HEAD's ``auth`` element, and TestClient's ``auth=``.

The gateway enforces all of it (tokens, roles, limits, CORS, headers, compression);
integration/python tests that through the real gateway."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covet import CORS, Auth, ClientCert, Covet, Request, WebSocket
from covet import _proto as p
from covet._head import _decode, decode_head
from covet.testing import TestClient

REQ = ["GET", "/a", "", ["host", b"x"], "/a", [], "1.1", "http", "1.2.3.4:5", "id", 0, 0]
CERT = ["CN=alice,O=Example", ["alice.example"], "ab" * 32]
CLAIMS = b'{"sub":"alice","iss":"https://id.example.com","roles":["admin"],"n":1.5}'
AUTH = ["alice", CLAIMS, ["admin"], ["reports:read", "reports:write"]]


def pk(obj: Any) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def options(app: Covet) -> list[dict[str, Any]]:
    return [r["options"] for r in app.manifest()]


# -- manifest options -------------------------------------------------------------------


def test_no_security_options_leave_the_manifest_as_it_was() -> None:
    app = Covet(openapi_url=None)

    @app.get("/a", name="a", timeout=1)
    def a(req: Request) -> str:
        return "a"

    @app.websocket("/w", resumable=True)
    async def w(ws: WebSocket) -> None:
        pass

    assert options(app) == [{"name": "a", "timeout_ms": 1000}, {"resumable": True}]


def test_every_option_in_its_wire_shape() -> None:
    app = Covet(openapi_url=None)

    @app.post(
        "/admin/{id:int}", auth=True, roles=("admin", "ops"), scopes=["reports:write"], rate_limit="5/minute",
        rate_limit_key="header:X-API-Key",
        cors=CORS(["https://app.example.com", "https://*.example.com"], allow_methods=["PUT"],
                  allow_headers=["X-Token"], expose_headers=["X-Total"], allow_credentials=True, max_age=600),
        security_headers={"X-Frame-Options": "SAMEORIGIN", "Strict-Transport-Security": ""}, compress=False,
    )  # fmt: skip
    def admin(req: Request, id: int) -> str:
        return "ok"

    [entry] = app.manifest()
    assert entry == {
        "method": "POST",
        "path": "/admin/{id:int}",
        "kind": "http",
        "options": {
            "auth": True,
            "roles": ["admin", "ops"],
            "scopes": ["reports:write"],
            "rate_limit": "5/minute",
            "rate_limit_key": "header:X-API-Key",
            "cors": {
                "allow_origins": ["https://app.example.com", "https://*.example.com"],
                "allow_methods": ["PUT"],
                "allow_headers": ["X-Token"],
                "expose_headers": ["X-Total"],
                "allow_credentials": True,
                "max_age": 600,
            },
            "security_headers": {"x-frame-options": "SAMEORIGIN", "strict-transport-security": ""},
            "compress": False,
        },
    }
    # The hello carries them as they are and the SDK's own manifest check (the gateway's
    # type checks) passes them.
    hello = {"type": "hello", "version": 1, "pid": 1, "app": "covet", "token": "", "routes": app.manifest()}
    msg, _ = p.parse_frame(p.encode_frame(hello))
    assert msg["routes"] == app.manifest()
    p.validate_routes(app.manifest())


def test_each_decorator_takes_the_options() -> None:
    app = Covet(openapi_url=None)
    for method in ("get", "post", "put", "patch", "delete", "head", "options"):
        getattr(app, method)(f"/{method}", auth=True, rate_limit="1/s", compress=True)(lambda req: "x")
    app.route("/route", ["GET", "POST"], auth=True, scopes=["a"])(lambda req: "x")

    async def handler(ws: WebSocket) -> None:
        pass

    app.websocket("/ws1", auth=True, roles=["r"], rate_limit="10/m", rate_limit_key="subject")(handler)
    app.ws("/ws2", cors=False, security_headers=False)(handler)
    got = options(app)
    assert got[:7] == [{"auth": True, "rate_limit": "1/s", "compress": True}] * 7
    assert got[7:9] == [{"auth": True, "scopes": ["a"]}] * 2
    assert got[9:] == [
        {"auth": True, "roles": ["r"], "rate_limit": "10/m", "rate_limit_key": "subject"},
        {"cors": False, "security_headers": False},
    ]
    assert [r["kind"] for r in app.manifest()][9:] == ["ws", "ws"]


def test_rate_limit_forms_and_none() -> None:
    app = Covet(openapi_url=None)
    forms = ["1/second", "100/minute", "1000/hour", "10/day", "5/s", "5/m", "5/h", "5/d", "none", "05/minute",
             "1000000/second", "86400000000/day"]
    for i, form in enumerate(forms):
        app.get(f"/r{i}", rate_limit=form)(lambda req: "x")
    assert [o["rate_limit"] for o in options(app)] == forms


def test_bool_options_map_to_the_protocol() -> None:
    app = Covet(openapi_url=None)
    app.get("/on", cors=True, security_headers=True, compress=True)(lambda req: "x")
    app.get("/off", cors=False, security_headers=False, compress=False)(lambda req: "x")
    # cors=True inherits (the gateway's settings: nothing to send); security_headers=True
    # is the gateway's set with no overrides, even where its default is off.
    assert options(app) == [{"security_headers": {}, "compress": True},
                            {"cors": False, "security_headers": False, "compress": False}]  # fmt: skip


def test_cors_mapping_is_checked_and_written_as_given() -> None:
    app = Covet(openapi_url=None)
    app.get("/m", cors={"allow_origins": ["*"], "max_age": 0})(lambda req: "x")
    assert options(app) == [{"cors": {"allow_origins": ["*"], "max_age": 0}}]


# -- app-level defaults -----------------------------------------------------------------


def test_app_defaults_fill_routes_that_set_none(tmp_path: Any) -> None:
    app = Covet(openapi_url=None, cors={"allow_origins": ["https://app.example.com"]}, security_headers={"Referrer-Policy": "no-referrer"})
    default_cors = {"allow_origins": ["https://app.example.com"]}
    default_headers = {"referrer-policy": "no-referrer"}
    app.get("/plain")(lambda req: "x")
    app.get("/true", cors=True)(lambda req: "x")
    app.get("/own", cors=CORS(["https://other.example"]), security_headers={"x-frame-options": "DENY"})(lambda req: "x")
    app.get("/off", cors=False, security_headers=False)(lambda req: "x")
    app.static("/assets", tmp_path)

    async def handler(ws: WebSocket) -> None:
        pass

    app.websocket("/ws")(handler)
    got = options(app)
    assert got[0] == got[1] == {"cors": default_cors, "security_headers": default_headers}
    assert got[2] == {"cors": {"allow_origins": ["https://other.example"]}, "security_headers": {"x-frame-options": "DENY"}}
    assert got[3] == {"cors": False, "security_headers": False}
    assert "cors" not in got[4] and "security_headers" not in got[4]  # static: no security chain
    assert got[5] == {"cors": default_cors, "security_headers": default_headers}


def test_app_defaults_apply_to_routes_registered_before_and_after() -> None:
    app = Covet(openapi_url=None, cors=CORS(["*"], max_age=5), security_headers=False)
    app.get("/a")(lambda req: "x")
    assert options(app) == [{"cors": {"allow_origins": ["*"], "max_age": 5}, "security_headers": False}]
    off = Covet(openapi_url=None, cors=False, security_headers=True)
    off.get("/a")(lambda req: "x")
    assert options(off) == [{"cors": False, "security_headers": {}}]


def test_app_defaults_are_checked() -> None:
    with pytest.raises(ValueError, match=r"app cors: cors: unknown key 'origins'"):
        Covet(cors={"origins": ["*"]})
    with pytest.raises(TypeError, match="app security_headers must be a bool or a mapping"):
        Covet(security_headers=["x"])  # type: ignore[arg-type]


# -- checks at decoration time -----------------------------------------------------------

BAD = [
    ({"roles": ["admin"]}, ValueError, r"route GET '/x': roles need auth=True"),
    ({"scopes": ["a"]}, ValueError, r"route GET '/x': scopes need auth=True"),
    ({"auth": True, "roles": "admin"}, TypeError, r"roles must be a list of str, got str"),
    ({"auth": True, "roles": ["a", 1]}, TypeError, r"roles\[1\] must be a str, got int"),
    ({"auth": True, "scopes": [""]}, ValueError, r"scopes must not hold an empty name"),
    ({"auth": 1}, TypeError, r"auth must be a bool, got int"),
    ({"rate_limit": "5/fortnight"}, ValueError, r"rate_limit '5/fortnight': want N/unit"),
    ({"rate_limit": "0/minute"}, ValueError, r"rate_limit '0/minute'"),
    ({"rate_limit": "5 / minute"}, ValueError, r"rate_limit '5 / minute'"),
    ({"rate_limit": "minute"}, ValueError, r"rate_limit 'minute'"),
    ({"rate_limit": "None"}, ValueError, r"rate_limit 'None'"),
    ({"rate_limit": 5}, TypeError, r"rate_limit must be a str"),
    ({"rate_limit": "1000001/second"}, ValueError, r"rate_limit '1000001/second': at most 1000000 per second"),
    ({"rate_limit": "-1/second"}, ValueError, r"rate_limit '-1/second'"),
    ({"rate_limit_key": "cookie"}, ValueError, r"rate_limit_key 'cookie': want \"ip\", \"subject\" or \"header:<Name>\""),
    ({"rate_limit_key": "header:"}, ValueError, r"rate_limit_key 'header:': '' is not a header name"),
    ({"rate_limit_key": "header:X Key"}, ValueError, r"'X Key' is not a header name"),
    ({"rate_limit_key": "IP"}, ValueError, r"rate_limit_key 'IP'"),
    ({"cors": "*"}, TypeError, r"cors must be a bool, a covet.CORS or a mapping, got str"),
    ({"cors": {"allow_origin": ["*"]}}, ValueError, r"cors: unknown key 'allow_origin'"),
    ({"cors": {"max_age": 5}}, ValueError, r"cors allow_origins must name at least one origin"),
    ({"cors": {"allow_origins": "*"}}, TypeError, r"cors allow_origins must be a list of str, got str"),
    ({"cors": {"allow_origins": ["https://a.example/"]}}, ValueError, r"allow_origins\[0\] 'https://a.example/'"),
    ({"cors": {"allow_origins": ["a.example"]}}, ValueError, r"allow_origins\[0\] 'a.example'"),
    ({"cors": {"allow_origins": ["https://a.*.example"]}}, ValueError, r"allow_origins\[0\]"),
    ({"cors": {"allow_origins": ["*"], "allow_credentials": True}}, ValueError, r"allow_credentials cannot go with"),
    ({"cors": {"allow_origins": ["*"], "allow_credentials": "yes"}}, TypeError, r"allow_credentials must be a bool"),
    ({"cors": {"allow_origins": ["https://a.example"], "allow_credentials": True, "expose_headers": ["*"]}},
     ValueError, r"allow_credentials cannot go with expose_headers"),
    ({"cors": {"allow_origins": ["https://a.example", "*"]}}, ValueError, r"allow_origins\[1\] \"\*\": must be the only"),
    ({"cors": {"allow_origins": ["*"], "max_age": -1}}, ValueError, r"max_age must be a whole number"),
    ({"cors": {"allow_origins": ["*"], "max_age": 1.5}}, ValueError, r"max_age must be a whole number"),
    ({"cors": {"allow_origins": ["*"], "allow_methods": ["GET POST"]}}, ValueError, r"allow_methods\[0\] 'GET POST'"),
    ({"security_headers": "on"}, TypeError, r"security_headers must be a bool or a mapping"),
    ({"security_headers": {"x frame": "DENY"}}, ValueError, r"header name 'x frame' is not an HTTP token"),
    ({"security_headers": {"x-a": 1}}, TypeError, r"security_headers\['x-a'\] must be a str"),
    ({"security_headers": {"x-a": "a\r\nb: c"}}, ValueError, r"is not a valid header value"),
    ({"security_headers": {"X-A": "1", "x-a": "2"}}, ValueError, r"header 'x-a' given twice"),
    ({"security_headers": {"Content-Type": "text/html"}}, ValueError, r"'Content-Type' is a framing field"),
    ({"security_headers": {"X-Frame-Options": "ALLOW-FROM https://a"}}, ValueError, r"want DENY or SAMEORIGIN"),
    ({"compress": "gzip"}, TypeError, r"compress must be a bool or None"),
]


@pytest.mark.parametrize(("kwargs", "exc", "text"), BAD)
def test_bad_options_are_refused_naming_the_route(kwargs: dict[str, Any], exc: type[Exception], text: str) -> None:
    app = Covet(openapi_url=None)
    with pytest.raises(exc, match=text) as info:
        app.get("/x", **kwargs)
    assert str(info.value).startswith("route GET '/x': ")
    assert app.manifest() == []


def test_websocket_options_are_checked_too() -> None:
    app = Covet(openapi_url=None)
    with pytest.raises(ValueError, match=r"WebSocket route '/w': roles need auth=True"):
        app.websocket("/w", roles=["a"])
    with pytest.raises(ValueError, match=r"route GET\|POST '/m': rate_limit"):
        app.route("/m", ["GET", "POST"], rate_limit="1/week")


def test_validate_routes_checks_the_option_types() -> None:
    for opts, text in [
        ({"auth": "yes"}, "option auth is not a bool"),
        ({"compress": 1}, "option compress is not a bool"),
        ({"rate_limit": 5}, "option rate_limit is not a string"),
        ({"rate_limit_key": None}, "option rate_limit_key is not a string"),
        ({"scopes": ["a", 1]}, "option scopes is not an array of strings"),
        ({"cors": True}, "option cors is not false or a map"),
        ({"security_headers": "x"}, "option security_headers is not false or a map"),
    ]:
        with pytest.raises(p.ProtocolError, match=text):
            p.validate_routes([{"method": "GET", "path": "/a", "kind": "http", "options": opts}])


# -- covet.CORS ---------------------------------------------------------------------------


def test_cors_dataclass() -> None:
    assert CORS(["null"]).to_option() == {"allow_origins": ["null"]}
    c = CORS(["https://a.example:8443", "http://[::1]:8000"], allow_headers=["*"])
    assert c.allow_origins == ("https://a.example:8443", "http://[::1]:8000")  # tuples: hashable, frozen
    assert hash(c) == hash(CORS(("https://a.example:8443", "http://[::1]:8000"), allow_headers=("*",)))
    assert c.to_option() == {"allow_origins": ["https://a.example:8443", "http://[::1]:8000"], "allow_headers": ["*"]}
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.max_age = 1  # type: ignore[misc]
    assert CORS.from_mapping({"allow_origins": ["*"], "expose_headers": ["x-a"]}) == CORS(["*"], expose_headers=["x-a"])
    with pytest.raises(ValueError, match="at least one origin"):
        CORS([])


# -- covet.Auth ---------------------------------------------------------------------------


def test_auth_claims_are_decoded_lazily_and_cached() -> None:
    head = decode_head(pk([*REQ, None, AUTH]))
    auth = head.auth
    assert auth is not None
    assert "claims" not in auth.__dict__  # nothing decoded yet
    claims = auth.claims
    assert claims == {"sub": "alice", "iss": "https://id.example.com", "roles": ["admin"], "n": 1.5}
    assert auth.claims is claims  # cached
    assert auth.raw_claims == CLAIMS
    assert "claims" in auth.__dict__
    assert auth.subject == "alice" and auth.sub == "alice"
    assert auth.roles == ("admin",) and auth.scopes == ("reports:read", "reports:write")
    assert auth.has_role("admin") and not auth.has_role("ops")
    assert auth.has_scope("reports:write") and not auth.has_scope("reports")


def test_auth_without_a_subject_and_bad_claims() -> None:
    auth = decode_head(pk([*REQ, None, ["", b"{}", [], []]])).auth
    assert auth is not None and auth.subject is None and auth.sub == "" and auth.claims == {}
    assert auth.roles == () and auth.scopes == ()
    for raw, text in [(b"[1]", "must be a JSON object, got list"), (b"{", "not valid JSON")]:
        bad = decode_head(pk([*REQ, None, ["a", raw, [], []]])).auth
        assert bad is not None
        with pytest.raises(ValueError, match=text):
            bad.claims


def test_auth_constructor() -> None:
    a = Auth("alice", roles=["admin"], scopes=("read",))
    assert a.subject == "alice" and a.claims == {"sub": "alice"} and a.roles == ("admin",) and a.scopes == ("read",)
    assert Auth().subject is None and Auth().claims == {}
    b = Auth("bob", claims={"sub": "bob", "tenant": 7})
    assert b.claims == {"sub": "bob", "tenant": 7} and b.raw_claims == b'{"sub":"bob","tenant":7}'
    assert Auth("bob", claims=b'{"x":1}').claims == {"x": 1}
    assert Auth("a", roles=["r"]) == Auth("a", roles=("r",)) and Auth("a") != Auth("b")
    assert hash(Auth("a")) == hash(Auth("a"))
    assert repr(a) == "Auth(subject='alice', roles=('admin',), scopes=('read',))"
    assert a.to_wire() == ["alice", b'{"sub":"alice"}', ["admin"], ["read"]]
    with pytest.raises(TypeError, match="roles must be a list of str, not a single str"):
        Auth("a", roles="admin")
    with pytest.raises(TypeError, match="scopes must be str, got int"):
        Auth("a", scopes=[1])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="subject must be a str or None"):
        Auth(1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="claims must be a mapping or JSON bytes"):
        Auth("a", claims="{}")  # type: ignore[arg-type]


# -- REQ_HEAD with auth -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "cert"),
    [([*REQ, None, AUTH], None), ([*REQ, CERT, AUTH], ClientCert(CERT[0], tuple(CERT[1]), CERT[2]))],  # type: ignore[arg-type]
    ids=["auth", "cert+auth"],
)
def test_req_head_auth_round_trip(wire: list[Any], cert: ClientCert | None) -> None:
    raw = pk(wire)
    head = p.decode_head(raw)
    assert _decode(raw) == head  # msgspec's fast path takes it, no fallback
    assert head.client_cert == cert
    assert head.auth == Auth("alice", CLAIMS, ["admin"], ["reports:read", "reports:write"])
    assert type(head.auth) is Auth and type(head.auth.roles) is tuple
    assert p.encode_head(head) == raw
    assert p.RequestHead.from_wire(wire) == head
    assert p.RequestHead.from_wire(tuple(wire)) == head
    # A head without auth still encodes to 12 elements, one with a certificate to 13.
    assert p.encode_head(head._replace(auth=None)) == pk(REQ if cert is None else [*REQ, CERT])


BAD_AUTH = [
    (None, r"REQ_HEAD\[13\] \(auth\) must be an array of 4 elements, got NoneType"),
    ("alice", r"must be an array of 4 elements, got str"),
    (["alice", CLAIMS, []], r"must be an array of 4 elements, got 3 elements"),
    (["alice", CLAIMS, [], [], []], r"must be an array of 4 elements, got 5 elements"),
    ([1, CLAIMS, [], []], r"\(auth\): subject must be str, got int"),
    ([None, CLAIMS, [], []], r"\(auth\): subject must be str, got NoneType"),
    (["alice", "{}", [], []], r"\(auth\): claims must be bin, got str"),
    (["alice", CLAIMS, "admin", []], r"\(auth\): roles must be an array of str"),
    (["alice", CLAIMS, [b"admin"], []], r"\(auth\): roles must be an array of str"),
    (["alice", CLAIMS, [], [1]], r"\(auth\): scopes must be an array of str"),
    (["alice", CLAIMS, [], None], r"\(auth\): scopes must be an array of str"),
]


@pytest.mark.parametrize(("auth", "text"), BAD_AUTH)
@pytest.mark.parametrize("cert", [None, CERT], ids=["nil-cert", "cert"])
def test_req_head_bad_auth(auth: Any, text: str, cert: Any) -> None:
    # By the fast path (msgspec) and its fallback alike, and by from_wire (WS_OPEN).
    with pytest.raises(ValueError, match=text):
        p.decode_head(pk([*REQ, cert, auth]))
    with pytest.raises(ValueError, match=text):
        p.RequestHead.from_wire([*REQ, cert, auth])


def test_req_head_a_bad_13th_with_auth_is_still_refused() -> None:
    for cert, text in [(0, "got int"), (["CN=a", []], "got 2 elements")]:
        with pytest.raises(ValueError, match=rf"REQ_HEAD\[12\] \(client_cert\) must be an array of 3 elements, {text}"):
            p.decode_head(pk([*REQ, cert, AUTH]))
    # A nil 13th is only allowed when auth follows.
    with pytest.raises(ValueError, match=r"\(client_cert\) must be an array of 3 elements, got NoneType"):
        p.decode_head(pk([*REQ, None]))


def test_req_head_auth_golden_vector_claims() -> None:
    from test_proto import TESTDATA, read_hex

    head = p.decode_head(read_hex(TESTDATA / "req_head_auth.hex"))
    assert head.client_cert is None and head.auth is not None
    assert head.auth.subject == "alice" and head.auth.claims["scope"] == "reports:read reports:write"
    assert head.auth.roles == ("admin",)


# -- req.auth and TestClient's auth= ------------------------------------------------------


def test_testclient_hands_the_identity_to_the_handler() -> None:
    app = Covet(openapi_url=None)

    @app.get("/me", auth=True, roles=["admin"])
    def me(req: Request) -> dict[str, Any]:
        a = req.auth
        if a is None:
            return {"auth": None}
        return {"sub": a.subject, "roles": list(a.roles), "scopes": list(a.scopes), "tenant": a.claims.get("tenant"),
                "cert": None if req.client_cert is None else req.client_cert.subject}  # fmt: skip

    client = TestClient(app)
    who = Auth("alice", claims={"sub": "alice", "tenant": "t1"}, roles=["admin"], scopes=["read"])
    assert client.get("/me", auth=who).json() == {"sub": "alice", "roles": ["admin"], "scopes": ["read"],
                                                 "tenant": "t1", "cert": None}  # fmt: skip
    cert = ClientCert("CN=alice", (), "00")
    assert client.get("/me", auth=who, client_cert=cert).json()["cert"] == "CN=alice"
    # TestClient enforces nothing: no identity, or one without the route's role, still
    # reaches the handler (the gateway would answer 401 / 403).
    assert client.get("/me").json() == {"auth": None}
    assert client.get("/me", auth=Auth("bob")).json()["roles"] == []
    with pytest.raises(TypeError, match="auth must be a covet.Auth"):
        client.get("/me", auth="Bearer x")  # type: ignore[arg-type]


def test_testclient_websocket_auth() -> None:
    app = Covet(openapi_url=None)

    @app.websocket("/ws", auth=True)
    async def ws_handler(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(repr(ws.auth))
        await ws.close()

    client = TestClient(app)
    with client.websocket_connect("/ws", auth=Auth("carol", scopes=["chat"])) as session:
        assert session.receive_text() == "Auth(subject='carol', roles=(), scopes=('chat',))"
    with client.websocket_connect("/ws") as session:
        assert session.receive_text() == "None"


_text = st.text(max_size=20)


@settings(max_examples=200, deadline=None)
@given(
    subject=_text, claims=st.binary(max_size=64), roles=st.lists(_text, max_size=4), scopes=st.lists(_text, max_size=4),
    cert=st.none() | st.tuples(_text, st.lists(_text, max_size=3), _text),
)  # fmt: skip
def test_req_head_auth_round_trips(subject: str, claims: bytes, roles: list[str], scopes: list[str],
                                   cert: tuple[str, list[str], str] | None) -> None:  # fmt: skip
    wire = [*REQ, None if cert is None else list(cert), [subject, claims, roles, scopes]]
    raw = pk(wire)
    head = p.decode_head(raw)
    assert head == p.RequestHead.from_wire(wire) == _decode(raw)
    assert head.auth is not None and (head.auth.sub, head.auth.raw_claims) == (subject, claims)
    assert head.auth.roles == tuple(roles) and head.auth.scopes == tuple(scopes)
    assert (head.client_cert is None) == (cert is None)
    assert p.encode_head(head) == raw
