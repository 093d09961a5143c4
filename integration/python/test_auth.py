"""JWT bearer authentication end to end: a real bin/covet-gateway with auth_jwks_file,
auth_issuer, auth_audience and audit_log, real Python workers serving auth_app:app, and
tokens minted here with ``cryptography``.

Checks: a valid token reaches the handler, which sees the identity the gateway
verified; a missing token is 401 with ``WWW-Authenticate: Bearer error="invalid_token"``
(the gateway answers every 401 with error="invalid_token", the missing-token case
included, with an error_description saying which); a valid token lacking the route's
role or scope is 403 with ``error="insufficient_scope"``; every token of the attack
matrix is 401; and every decision is one JSON line of the audit log, found by the
request's X-Request-ID, naming the reason and never holding the token. A second gateway
on auth_jwks_url shows 10,000 requests with random unknown kids fetching the URL at most
once per auth_jwks_cooldown.

The 1 MB token needs max_header_bytes above its size: with the default (64 KiB) the front
end answers 431 before the chain runs, and nothing is audited.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import http.server
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from conftest import Gateway, serving_gateway

ISSUER = "https://issuer.test"
AUDIENCE = "api"
AUDIT_WAIT_S = 5.0  # the audit log is flushed every 200ms


def b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


@dataclass
class Key:
    kid: str
    alg: str
    jwk: dict[str, Any]
    sign: Callable[[bytes], bytes]

    def token(self, claims: dict[str, Any] | None = None, header: dict[str, Any] | None = None,
              raw_header: str | None = None, raw_claims: str | None = None) -> str:
        h = raw_header if raw_header is not None else json.dumps({"alg": self.alg, "kid": self.kid, **(header or {})})
        c = raw_claims if raw_claims is not None else json.dumps(claims if claims is not None else good_claims())
        signing_input = b64u(h.encode()) + "." + b64u(c.encode())
        return signing_input + "." + b64u(self.sign(signing_input.encode()))


def ec_key(kid: str) -> Key:
    k = ec.generate_private_key(ec.SECP256R1())
    n = k.public_key().public_numbers()

    def sign(data: bytes) -> bytes:
        r, s = decode_dss_signature(k.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    jwk = {"kty": "EC", "crv": "P-256", "kid": kid, "x": b64u(n.x.to_bytes(32, "big")), "y": b64u(n.y.to_bytes(32, "big"))}
    return Key(kid, "ES256", jwk, sign)


def ed_key(kid: str) -> Key:
    k = ed25519.Ed25519PrivateKey.generate()
    raw = k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return Key(kid, "EdDSA", {"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64u(raw)}, k.sign)


def rsa_key(kid: str) -> tuple[Key, bytes]:
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    n = k.public_key().public_numbers().n
    pem = k.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    jwk = {"kty": "RSA", "kid": kid, "n": b64u(n.to_bytes(256, "big")), "e": "AQAB"}
    return Key(kid, "RS256", jwk, lambda d: k.sign(d, padding.PKCS1v15(), hashes.SHA256())), pem


def hmac_key(kid: str, secret: bytes) -> Key:
    return Key(kid, "HS256", {"kty": "oct", "kid": kid, "k": b64u(secret)},
               lambda d: hmac.new(secret, d, hashlib.sha256).digest())


def good_claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    c: dict[str, Any] = {"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "iat": now - 10, "exp": now + 600,
                         "roles": ["admin", "ops"], "scope": "reports:read reports:write"}
    for k, v in over.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


class _Counting(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:  # noqa: N802
        type(self).hits += 1
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class World:
    gw: Gateway
    audit: Path
    ec: Key
    ed: Key
    rsa: Key
    rsa_pem: bytes
    hs: Key
    attacker: Key  # an EC key the gateway does not know, sent with the real EC key's kid
    attacker_url: str
    sent: list[str] = field(default_factory=list)

    def get(self, path: str, token: str | None = None, authorization: str | None = None,
            rid: str | None = None) -> tuple[int, dict[str, str], bytes]:
        headers = {}
        if token is not None:
            headers["Authorization"] = "Bearer " + token
            self.sent.append(token)
        if authorization is not None:
            headers["Authorization"] = authorization
        if rid is not None:
            headers["X-Request-ID"] = rid
        conn = http.client.HTTPConnection(self.gw.host, self.gw.port, timeout=10)
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
        finally:
            conn.close()

    def audit_line(self, rid: str) -> dict[str, Any]:
        """The audit log's line for the request with X-Request-ID rid."""
        deadline = time.monotonic() + AUDIT_WAIT_S
        while True:
            lines = self.audit.read_text("utf-8").splitlines() if self.audit.exists() else []
            found = [json.loads(line) for line in lines if f'"{rid}"' in line]
            if found:
                assert len(found) == 1, f"{len(found)} audit lines for {rid}: {found}"
                return found[0]
            if time.monotonic() >= deadline:
                pytest.fail(f"no audit line for request {rid} after {AUDIT_WAIT_S}s; log has {len(lines)} lines")
            time.sleep(0.05)


def _ready(gw: Gateway) -> bool:
    conn = http.client.HTTPConnection(gw.host, gw.port, timeout=2)
    try:
        conn.request("GET", "/health")
        resp = conn.getresponse()
        return resp.status == 200 and resp.read() == b"ok"
    except OSError:
        return False
    finally:
        conn.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("auth")
    eck, edk, hsk = ec_key("ec-1"), ed_key("ed-1"), hmac_key("hs-1", os.urandom(32))
    rsak, pem = rsa_key("rsa-1")
    attacker = ec_key("ec-1")
    (tmp / "jwks.json").write_text(json.dumps({"keys": [eck.jwk, edk.jwk, rsak.jwk, hsk.jwk]}))
    audit = tmp / "audit.jsonl"
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    flags = ["--auth-jwks-file", str(tmp / "jwks.json"), "--auth-issuer", ISSUER, "--auth-audience", AUDIENCE,
             "--audit-log", str(audit), "--max-header-bytes", str(2 << 20)]
    try:
        # auth_algorithms from the environment: a comma-separated list.
        with serving_gateway(tmp / "gateway.log", "authapp", "auth_app", 1, _ready, flags,
                             COVET_AUTH_ALGORITHMS="ES256,EdDSA,RS256,HS256") as gw:
            yield World(gw, audit, eck, edk, rsak, pem, hsk, attacker, f"http://127.0.0.1:{srv.server_port}")
    finally:
        srv.shutdown()
        srv.server_close()
    assert _Counting.hits == 0, "the gateway fetched a jku/x5u URL"


def check_audit_clean(w: World, line: dict[str, Any], token: str | None) -> None:
    text = json.dumps(line)
    if token:
        for part in token.split("."):
            if len(part) >= 8:
                assert part not in text, "the audit line holds part of the token"


@pytest.mark.parametrize("kind", ["ec", "ed"])
def test_valid_token_reaches_the_handler(world: World, kind: str) -> None:
    key = getattr(world, kind)
    claims = good_claims(extra={"team": "blue"})
    tok = key.token(claims)
    rid = f"valid-{kind}-{os.urandom(4).hex()}"
    status, _, body = world.get("/admin", tok, rid=rid)
    assert status == 200, body
    got = json.loads(body)["auth"]
    assert got["subject"] == "alice"
    assert got["roles"] == ["admin", "ops"]
    assert got["scopes"] == ["reports:read", "reports:write"]
    assert got["claims"] == claims
    line = world.audit_line(rid)
    assert (line["decision"], line["reason"], line["subject"], line["route"], line["status"]) == \
        ("allow", "ok", "alice", "/admin", 0)
    assert line["client"].startswith("127.0.0.1")
    check_audit_clean(world, line, tok)


def test_missing_token_401(world: World) -> None:
    for i, authz in enumerate([None, "Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer a b"]):
        rid = f"missing-{i}-{os.urandom(4).hex()}"
        status, headers, _ = world.get("/admin", authorization=authz, rid=rid)
        assert status == 401, authz
        www = headers.get("www-authenticate", "")
        assert www.startswith("Bearer ") and 'error="invalid_token"' in www, www
        line = world.audit_line(rid)
        assert (line["decision"], line["status"]) == ("deny", 401)
        assert line["reason"] == ("missing" if authz is None else "not_bearer")
        assert "YWxpY2U6c2VjcmV0" not in json.dumps(line)


@pytest.mark.parametrize("claims,missing", [
    (good_claims(roles=["ops"]), "role"),
    (good_claims(roles=None), "role"),
    (good_claims(scope="reports:write"), "scope"),
    (good_claims(scope=None), "scope"),
])  # fmt: skip
def test_lacking_role_or_scope_403(world: World, claims: dict[str, Any], missing: str) -> None:
    tok = world.ed.token(claims)
    rid = f"scope-{os.urandom(4).hex()}"
    status, headers, _ = world.get("/admin", tok, rid=rid)
    assert status == 403
    www = headers.get("www-authenticate", "")
    assert www.startswith("Bearer ") and 'error="insufficient_scope"' in www, www
    assert f"missing {missing}" in www
    line = world.audit_line(rid)
    assert (line["decision"], line["reason"], line["subject"], line["status"]) == \
        ("deny", "insufficient_scope", "alice", 403)
    check_audit_clean(world, line, tok)
    # The same token on a route that needs only a token is fine.
    status, _, body = world.get("/me", tok)
    assert status == 200 and json.loads(body)["auth"]["subject"] == "alice"


def _attack_matrix(w: World) -> list[tuple[str, str, str]]:
    """(name, token, the audit reason) for each hostile token."""
    now = int(time.time())
    claims = json.dumps(good_claims())
    payload = b64u(claims.encode())
    cases: list[tuple[str, str, str]] = []
    for none in ["none", "None", "NONE", "nOnE"]:
        h = b64u(json.dumps({"alg": none, "kid": "ec-1"}).encode())
        cases.append((f"alg {none}", f"{h}.{payload}.", "bad_alg"))
        cases.append((f"alg {none}, signed", f"{h}.{payload}.{b64u(b'x' * 32)}", "bad_alg"))
    forged = hmac_key("rsa-1", w.rsa_pem)  # HS256 keyed with the RSA public key (PEM), RSA key's kid
    cases.append(("HS256 with the RSA public key", forged.token(), "bad_alg"))
    forged_jwk = hmac_key("rsa-1", json.dumps(w.rsa.jwk).encode())
    cases.append(("HS256 with the RSA public JWK", forged_jwk.token(), "bad_alg"))
    cases += [
        ("kid path traversal", w.ec.token(header={"kid": "../../etc/passwd"}), "unknown_kid"),
        ("kid SQL injection", w.ec.token(header={"kid": "x' OR '1'='1' --"}), "unknown_kid"),
        ("kid shell injection", w.ec.token(header={"kid": "$(touch /tmp/pwned);`id`"}), "unknown_kid"),
        ("jku to the attacker", w.attacker.token(header={"jku": w.attacker_url + "/jwks.json"}), "bad_signature"),
        ("x5u to the attacker", w.attacker.token(header={"x5u": w.attacker_url + "/cert.pem"}), "bad_signature"),
        ("jwk header of the attacker", w.attacker.token(header={"jwk": w.attacker.jwk}), "bad_signature"),
        ("expired", w.ec.token(good_claims(exp=now - 5)), "expired"),
        ("no exp", w.ec.token(good_claims(exp=None)), "missing_exp"),
        ("not yet valid", w.ec.token(good_claims(nbf=now + 300)), "not_yet_valid"),
        ("issued in the future", w.ec.token(good_claims(iat=now + 300)), "not_yet_valid"),
        ("wrong aud", w.ec.token(good_claims(aud="other")), "bad_audience"),
        ("wrong iss", w.ec.token(good_claims(iss="https://evil.test")), "bad_issuer"),
        ("unknown crit", w.ec.token(header={"crit": ["x-bank"], "x-bank": 1}), "crit"),
        ("b64 false", w.ec.token(header={"b64": False, "crit": ["b64"]}), "b64"),
        ("standard base64 in the signature", w.ec.token()[:-3] + "+/~", "malformed"),
        ("characters outside token68", w.ec.token()[:-3] + "*!*", "not_bearer"),
        ("padded base64 signature", w.ec.token() + "==", "malformed"),
        ("padding inside the token", b64u(b'{"alg":"ES256","kid":"ec-1"}') + "==." + payload + ".AAAA", "not_bearer"),
        ("not a JWS", "abc.def", "malformed"),
        ("duplicate alg in the header", w.ec.token(raw_header='{"alg":"none","kid":"ec-1","alg":"ES256"}'), "duplicate_keys"),
        ("duplicate sub in the claims", w.ec.token(raw_claims=claims.replace('"sub": "alice"', '"sub": "alice", "sub": "root"')),
         "duplicate_keys"),
        ("modified signature", w.ec.token()[:-4] + ("AAAA" if not w.ec.token().endswith("AAAA") else "BBBB"), "bad_signature"),
        ("a 1 MB token", "eyJhbGciOiJFUzI1NiJ9." + "A" * (1 << 20) + ".AAAA", "too_large"),
    ]
    return cases


def test_attack_matrix_401_and_audited(world: World) -> None:
    cases = _attack_matrix(world)
    assert len(cases) >= 25
    for i, (name, tok, reason) in enumerate(cases):
        rid = f"attack-{i}-{os.urandom(4).hex()}"
        status, headers, body = world.get("/admin", tok, rid=rid)
        assert status == 401, f"{name}: {status} {body[:200]!r}"
        www = headers.get("www-authenticate", "")
        assert www.startswith("Bearer ") and 'error="invalid_token"' in www, f"{name}: {www}"
        line = world.audit_line(rid)
        assert (line["decision"], line["status"], line["route"]) == ("deny", 401, "/admin"), name
        assert line["reason"] == reason, f"{name}: audited reason {line['reason']!r}, want {reason!r}"
        assert "subject" not in line, name
        check_audit_clean(world, line, tok)


def test_audit_log_never_holds_a_token(world: World) -> None:
    world.get("/admin", world.ec.token(), rid=f"last-{os.urandom(4).hex()}")
    time.sleep(0.5)  # past the audit log's flush interval
    text = world.audit.read_text("utf-8")
    lines = text.splitlines()
    assert lines and all(json.loads(line)["decision"] in ("allow", "deny") for line in lines)
    for tok in world.sent:
        sig = tok.rsplit(".", 1)[-1]
        if len(sig) >= 16:
            assert sig not in text
        head = tok.split(".", 1)[0]
        if len(head) >= 16:
            assert head not in text


def test_public_route_takes_a_valid_token_and_ignores_a_bad_one(world: World) -> None:
    status, _, body = world.get("/public", world.ed.token())
    assert status == 200 and json.loads(body)["auth"]["subject"] == "alice"
    status, _, body = world.get("/public", world.ed.token(good_claims(exp=int(time.time()) - 5)))
    assert status == 200 and json.loads(body)["auth"] is None
    status, _, body = world.get("/public")
    assert status == 200 and json.loads(body)["auth"] is None


class _JWKS(http.server.BaseHTTPRequestHandler):
    doc = b""
    fetches = 0
    lock = threading.Lock()

    def do_GET(self) -> None:  # noqa: N802
        with type(self).lock:
            type(self).fetches += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/jwk-set+json")
        self.send_header("Content-Length", str(len(self.doc)))
        self.end_headers()
        self.wfile.write(self.doc)

    def log_message(self, *args: Any) -> None:
        pass


def test_unknown_kids_fetch_the_jwks_url_at_most_once_per_cooldown(tmp_path: Path) -> None:
    """10,000 requests, 32 connections at once, each token with a random unknown kid:
    the gateway fetches auth_jwks_url at most once per auth_jwks_cooldown (here 2s)."""
    key = ed_key("real")
    _JWKS.doc = json.dumps({"keys": [key.jwk]}).encode()
    _JWKS.fetches = 0
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _JWKS)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    cooldown = 2.0
    flags = ["--auth-jwks-url", f"http://127.0.0.1:{srv.server_port}/jwks.json", "--auth-algorithms", "EdDSA",
             "--auth-jwks-cooldown", f"{cooldown:g}s"]
    tokens = [key.token(good_claims(), header={"kid": os.urandom(12).hex()}) for _ in range(10_000)]
    try:
        with serving_gateway(tmp_path / "gateway.log", "authapp", "auth_app", 1, _ready, flags) as gw:
            assert _JWKS.fetches == 1, "the startup fetch"
            time.sleep(cooldown + 0.2)  # the cooldown has passed: the first unknown kid may fetch

            statuses: dict[int, int] = {}
            lock = threading.Lock()

            def client(chunk: list[str]) -> None:
                conn = http.client.HTTPConnection(gw.host, gw.port, timeout=30)
                try:
                    for tok in chunk:
                        conn.request("GET", "/me", headers={"Authorization": "Bearer " + tok})
                        resp = conn.getresponse()
                        resp.read()
                        with lock:
                            statuses[resp.status] = statuses.get(resp.status, 0) + 1
                finally:
                    conn.close()

            start = time.monotonic()
            threads = [threading.Thread(target=client, args=(tokens[i::32],)) for i in range(32)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - start
            assert statuses == {401: 10_000}
            print(f"10,000 unknown-kid requests in {elapsed:.1f}s: {_JWKS.fetches} JWKS fetches (startup included)")
            allowed = 1 + 1 + int(elapsed / cooldown)  # startup, then one per cooldown begun
            assert 2 <= _JWKS.fetches <= allowed, f"{_JWKS.fetches} fetches in {elapsed:.1f}s (at most {allowed})"
            # The real key still works.
            conn = http.client.HTTPConnection(gw.host, gw.port, timeout=10)
            conn.request("GET", "/me", headers={"Authorization": "Bearer " + key.token()})
            resp = conn.getresponse()
            assert resp.status == 200 and json.loads(resp.read())["auth"]["subject"] == "alice"
            conn.close()
    finally:
        srv.shutdown()
        srv.server_close()
