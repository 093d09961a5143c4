"""The app of test_cors.py: an API that a page on another loopback origin calls from
headless Chromium. Every request a handler sees is counted by method, so the test can
prove that the gateway answered the preflights (no OPTIONS ever reaches the worker)."""

from __future__ import annotations

from collections import Counter

from covet import CORS, Covet, JSONResponse, PlainTextResponse, Request, Response

app = Covet("corsapp")

SEEN: Counter[str] = Counter()  # method -> requests this worker's handlers saw


@app.get("/r/plain")
async def plain(req: Request) -> PlainTextResponse:
    return PlainTextResponse("just text")


@app.route("/api/item", ["GET", "PUT", "OPTIONS"])
async def item(req: Request) -> Response:
    SEEN[req.method] += 1
    if req.method == "OPTIONS":  # only if the gateway let a preflight through
        return Response(b"worker answered OPTIONS", headers={"x-from": "worker"})
    body = await req.body()
    return JSONResponse(
        {
            "method": req.method,
            "origin": req.headers.get("origin"),
            "token": req.headers.get("x-token"),
            "cookie": req.cookies.get("c"),
            "body": body.decode(),
        },
        headers={"x-item-id": "42", "x-secret": "not exposed"},
    )


@app.get("/api/seen")
async def seen(req: Request) -> JSONResponse:
    return JSONResponse(dict(SEEN))


@app.get("/api/framed")
async def framed(req: Request) -> PlainTextResponse:
    """Sets its own X-Frame-Options: the worker's value wins over the gateway's."""
    return PlainTextResponse("framed", headers={"x-frame-options": "SAMEORIGIN"})


# Per-route options (PROTOCOL.md 1.3), which override the gateway's cors_* and
# security_* settings for one route.


@app.get("/api/private", cors=False, security_headers=False)
async def private(req: Request) -> PlainTextResponse:
    return PlainTextResponse("no CORS, no security headers here")


@app.put("/api/partner", cors=CORS(allow_origins=["https://partner.example"], allow_methods=["PUT"], max_age=60))
async def partner(req: Request) -> PlainTextResponse:
    SEEN["partner " + req.method] += 1
    return PlainTextResponse("partner")


@app.get("/api/embed", security_headers={"x-frame-options": "SAMEORIGIN", "referrer-policy": "",
                                         "content-security-policy": "frame-ancestors 'self'"})
async def embed(req: Request) -> PlainTextResponse:
    return PlainTextResponse("embeddable")
