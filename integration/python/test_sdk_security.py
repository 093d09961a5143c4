"""The SDK's security options end to end: security_app.py declares auth, roles, scopes, a
per-subject rate limit, CORS (the app's default and a route's own), security headers
(the app's map, a route turning them off) and compression per route, in Python; the real
bin/covet-gateway reads them from the worker's manifest and enforces them; real clients
(http.client, the websockets library) check what comes back and what the one worker saw.
A value only the gateway checks refuses the worker's manifest with a message naming the
route and the option.

Tokens are HS256 JWTs minted here with the standard library (hmac), verified by the
gateway with a JWKS file holding the shared key; nothing of this suite trusts the SDK's
TestClient, which enforces none of it.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import hmac
import http.client
import json
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

import security_app
from conftest import GATEWAY, Gateway, _python, need_gateway, serving_gateway

SECRET = b"integration-test-shared-secret-of-32+bytes"
ISSUER = "https://id.covet.test"
AUDIENCE = "secapp"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(claims: dict[str, Any], key: bytes = SECRET, kid: str = "k1") -> str:
    """An HS256 JWS compact serialization of ``claims`` (RFC 7515), standard claims
    filled in where absent."""
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600, **claims}
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = b64url(json.dumps(body, ensure_ascii=False).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = b64url(hmac.new(key, signing_input, hashlib.sha256).digest())
    return f"{header}.{payload}.{signature}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def get(gw: Gateway, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = http.client.HTTPConnection(gw.host, gw.port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.msg, resp.read()
    finally:
        conn.close()


def _ready(gw: Gateway) -> bool:
    try:
        return get(gw, "GET", "/ready")[0] == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("sdksec")
    jwks = tmp / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": b64url(SECRET)}]}))
    flags = [
        "--auth-jwks-file", str(jwks), "--auth-algorithms", "HS256", "--auth-issuer", ISSUER,
        "--auth-audience", AUDIENCE, "--compression", "gzip",
    ]  # fmt: skip
    with serving_gateway(tmp / "gateway.log", "secapp", "security_app", 1, _ready, flags) as g:
        yield g


def hits(gw: Gateway) -> dict[str, int]:
    status, _, body = get(gw, "GET", "/hits")
    assert status == 200
    return json.loads(body)  # type: ignore[no-any-return]


def test_the_worker_sees_the_verified_identity_claims_and_all(gw: Gateway) -> None:
    claims = {"sub": "alice", "roles": ["admin", "ops"], "scope": "reports:read reports:write",
              "tenant": {"id": 7, "name": "Zoë"}, "ratio": 0.5}  # fmt: skip
    status, _, body = get(gw, "GET", "/admin", bearer(mint(claims)))
    assert status == 200, body
    auth = json.loads(body)["auth"]
    assert auth["subject"] == "alice"
    assert auth["roles"] == ["admin", "ops"] and auth["scopes"] == ["reports:read", "reports:write"]
    # The claims set the gateway verified, as the worker decoded it from REQ_HEAD.
    assert {k: auth["claims"][k] for k in claims} == claims
    assert auth["claims"]["iss"] == ISSUER


def test_a_route_without_auth_gets_a_valid_identity_and_ignores_a_bad_token(gw: Gateway) -> None:
    assert json.loads(get(gw, "GET", "/whoami")[2])["auth"] is None
    status, _, body = get(gw, "GET", "/whoami", bearer(mint({"sub": "bob"})))
    assert status == 200 and json.loads(body)["auth"]["subject"] == "bob"
    for bad in (mint({"sub": "mallory"}, key=b"another-key-of-enough-length-000000"),
                mint({"sub": "mallory", "exp": int(time.time()) - 3600}), "not.a.token"):  # fmt: skip
        status, _, body = get(gw, "GET", "/whoami", bearer(bad))
        assert status == 200 and json.loads(body)["auth"] is None, body


def test_auth_roles_and_scopes_are_enforced_before_the_worker(gw: Gateway) -> None:
    before = hits(gw).get("admin", 0)
    status, msg, _ = get(gw, "GET", "/admin")
    assert status == 401 and (msg.get("www-authenticate") or "").startswith("Bearer")
    status, msg, _ = get(gw, "GET", "/admin", bearer(mint({"sub": "eve"}, key=b"wrong-key-wrong-key-wrong-key-wrong")))
    assert status == 401 and 'error="invalid_token"' in (msg.get("www-authenticate") or "")
    status, msg, _ = get(gw, "GET", "/admin", bearer(mint({"sub": "carl", "roles": ["ops"], "scope": "reports:read"})))
    assert status == 403 and 'error="insufficient_scope"' in (msg.get("www-authenticate") or "")
    status, _, _ = get(gw, "GET", "/admin", bearer(mint({"sub": "carl", "roles": ["admin"], "scope": "other"})))
    assert status == 403
    assert hits(gw).get("admin", 0) == before  # none of them reached the handler


def test_a_per_subject_rate_limit_from_the_decorator(gw: Gateway) -> None:
    # rate_limit="2/hour" (a burst of 2), rate_limit_key="subject": dave's third
    # request within the half hour is refused, erin still has her own two.
    dave, erin = bearer(mint({"sub": "dave"})), bearer(mint({"sub": "erin"}))
    assert [get(gw, "GET", "/limited", dave)[0] for _ in range(2)] == [200, 200]
    status, msg, _ = get(gw, "GET", "/limited", dave)
    assert status == 429
    assert int(msg["retry-after"]) >= 1
    assert [get(gw, "GET", "/limited", erin)[0] for _ in range(2)] == [200, 200]
    assert hits(gw)["limited"] == 4


def test_the_apps_cors_default_a_routes_own_and_cors_off(gw: Gateway) -> None:
    app_origin = {"Origin": "https://app.example.com"}
    _, msg, _ = get(gw, "GET", "/whoami", app_origin)
    assert msg.get("access-control-allow-origin") == "https://app.example.com"
    _, msg, _ = get(gw, "GET", "/whoami", {"Origin": "https://evil.example.com"})
    assert msg.get("access-control-allow-origin") is None
    _, msg, _ = get(gw, "GET", "/plain", app_origin)  # cors=False
    assert msg.get("access-control-allow-origin") is None
    # A preflight for the route with its own CORS settings, answered by the gateway.
    before = hits(gw).get("item", 0)
    preflight = {"Origin": "https://other.example.com", "Access-Control-Request-Method": "PUT"}
    status, msg, _ = get(gw, "OPTIONS", "/item", preflight)
    assert status in (200, 204)
    assert msg.get("access-control-allow-origin") == "https://other.example.com"
    assert "PUT" in (msg.get("access-control-allow-methods") or "")
    status, msg, _ = get(gw, "OPTIONS", "/item", {**preflight, "Origin": "https://app.example.com"})
    assert msg.get("access-control-allow-origin") is None  # the route's settings replace the app's
    assert hits(gw).get("item", 0) == before  # no preflight reached the worker


def test_the_apps_security_headers_and_a_route_without(gw: Gateway) -> None:
    # The gateway's security_headers setting is off; the app's map turns them on for
    # its routes, with its Referrer-Policy; security_headers=False turns them off.
    _, msg, _ = get(gw, "GET", "/whoami")
    assert msg.get("referrer-policy") == "no-referrer"
    assert msg.get("x-content-type-options") == "nosniff"
    assert msg.get("x-frame-options") == "DENY"
    assert msg.get("strict-transport-security") is None  # HSTS over TLS only
    _, msg, _ = get(gw, "GET", "/plain")
    assert msg.get("referrer-policy") is None and msg.get("x-content-type-options") is None


def test_compress_false_on_a_route(gw: Gateway) -> None:
    status, msg, body = get(gw, "GET", "/big", {"Accept-Encoding": "gzip"})
    assert status == 200 and msg.get("content-encoding") == "gzip"
    assert gzip.decompress(body).decode() == security_app.BIG
    status, msg, body = get(gw, "GET", "/big-raw", {"Accept-Encoding": "gzip"})
    assert status == 200 and msg.get("content-encoding") is None and body.decode() == security_app.BIG


def test_websocket_auth_and_ws_auth(gw: Gateway) -> None:
    url = f"ws://{gw.host}:{gw.port}/ws"

    async def run() -> None:
        for headers, status in [({}, 401), (bearer(mint({"sub": "fay", "roles": ["admin"]})), 403)]:
            with pytest.raises(InvalidStatus) as info:
                async with connect(url, additional_headers=headers, open_timeout=10):
                    pass
            assert info.value.response.status_code == status
        async with connect(url, additional_headers=bearer(mint({"sub": "gus", "roles": ["chat"]})),
                           open_timeout=10) as ws:  # fmt: skip
            got = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert got["subject"] == "gus" and got["roles"] == ["chat"] and got["claims"]["aud"] == AUDIENCE

    asyncio.run(run())


def test_websocket_origin_checked_against_the_apps_cors(gw: Gateway) -> None:
    """CORS does not cover WebSockets, so the gateway checks an upgrade's Origin against
    the route's CORS origins itself (a page elsewhere must not open the user's session):
    an allowed origin and the gateway's own go on, another is refused 403 before auth."""
    url = f"ws://{gw.host}:{gw.port}/ws"
    token = bearer(mint({"sub": "gus", "roles": ["chat"]}))

    async def run() -> None:
        with pytest.raises(InvalidStatus) as info:
            async with connect(url, origin=Origin("https://evil.example.com"), additional_headers=token, open_timeout=10):
                pass
        assert info.value.response.status_code == 403
        for origin in ("https://app.example.com", f"http://{gw.host}:{gw.port}"):
            async with connect(url, origin=Origin(origin), additional_headers=token, open_timeout=10) as ws:
                got = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert got["subject"] == "gus", origin

    asyncio.run(run())



def test_a_value_only_the_gateway_checks_refuses_the_manifest(tmp_path: Path) -> None:
    # The SDK checks what it cheaply can; the gateway checks every value when the worker
    # registers. An HSTS value without max-age passes the SDK and is refused by the
    # gateway, naming the route and the option; the gateway gives up on the app.
    need_gateway()
    (tmp_path / "bad_app.py").write_text(
        "from covet import Covet\n"
        "app = Covet('badapp')\n"
        "@app.get('/hsts', security_headers={'Strict-Transport-Security': 'bogus'})\n"
        "def hsts(req): return 'x'\n"
    )
    argv = [str(GATEWAY), "--listen", "127.0.0.1:0", "--app", "badapp", "--workers", "1",
            "--worker-cmd", f"{shlex.quote(_python())} -m covet worker bad_app:app", "--worker-dir", str(tmp_path)]  # fmt: skip
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert 'route GET /hsts: security_headers.strict-transport-security: "bogus"' in r.stderr, r.stderr[-2000:]
