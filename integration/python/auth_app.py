"""The app served by the JWT end-to-end test (integration/python/test_auth.py).

/admin needs a bearer token with the role ``admin`` and the scope ``reports:read``
(the gateway checks both); the handler answers with the identity it was handed,
so the test can compare it with the token it sent.
"""

from __future__ import annotations

from covet import Covet, PlainTextResponse, Request

app = Covet("authapp")


def identity(req: Request) -> dict[str, object] | None:
    a = req.auth
    if a is None:
        return None
    return {"subject": a.subject, "roles": list(a.roles), "scopes": list(a.scopes), "claims": a.claims}


@app.get("/health")
def health(req: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


@app.get("/admin", auth=True, roles=["admin"], scopes=["reports:read"])
def admin(req: Request) -> dict[str, object]:
    return {"route": "admin", "auth": identity(req)}


@app.get("/me", auth=True)
def me(req: Request) -> dict[str, object]:
    return {"route": "me", "auth": identity(req)}


@app.get("/public")
def public(req: Request) -> dict[str, object]:
    return {"route": "public", "auth": identity(req)}
