"""The app of test_sdk_security.py: every security option of the SDK, declared in Python,
carried by the manifest and enforced by the real gateway; the handlers return the
identity the worker received (``req.auth`` / ``ws.auth``) and count the requests that
reached them, so a test can tell what the gateway stopped."""

from __future__ import annotations

import collections
import os
from typing import Any

from covet import CORS, Auth, Covet, Request, WebSocket

app = Covet(
    "secapp",
    cors=CORS(["https://app.example.com"], allow_methods=["GET", "PUT"], allow_headers=["X-Token"], max_age=60),
    security_headers={"Referrer-Policy": "no-referrer"},
)

#: Requests that reached this worker, by route (the test runs one worker).
hits: collections.Counter[str] = collections.Counter()

BIG = "all work and no play makes jack a dull boy\n" * 200  # 8.6 kB of text/plain, compresses well


def identity(auth: Auth | None) -> dict[str, Any] | None:
    if auth is None:
        return None
    return {"subject": auth.subject, "claims": auth.claims, "roles": list(auth.roles), "scopes": list(auth.scopes)}


@app.get("/ready")
def ready(req: Request) -> str:
    return "ready"


@app.get("/hits")
def get_hits(req: Request) -> dict[str, int]:
    return dict(hits)


@app.get("/whoami")
def whoami(req: Request) -> dict[str, Any]:
    hits["whoami"] += 1
    return {"auth": identity(req.auth), "pid": os.getpid()}


@app.get("/admin", auth=True, roles=["admin"], scopes=["reports:read"])
def admin(req: Request) -> dict[str, Any]:
    hits["admin"] += 1
    return {"auth": identity(req.auth)}


@app.get("/limited", auth=True, rate_limit="2/hour", rate_limit_key="subject")
def limited(req: Request) -> str:
    hits["limited"] += 1
    return "ok"


@app.put("/item", cors=CORS(["https://other.example.com"], allow_methods=["PUT"]))
def item(req: Request) -> str:
    hits["item"] += 1
    return "put"


@app.get("/plain", cors=False, security_headers=False)
def plain(req: Request) -> str:
    hits["plain"] += 1
    return "plain"


@app.get("/big")
def big(req: Request) -> str:
    return BIG


@app.get("/big-raw", compress=False)
def big_raw(req: Request) -> str:
    return BIG


@app.websocket("/ws", auth=True, roles=["chat"])
async def ws_endpoint(ws: WebSocket) -> None:
    await ws.accept()
    await ws.send_json(identity(ws.auth))
    await ws.close()
