"""The app served by the SDK end-to-end tests (integration/python/test_sdk_http.py).

Each route exposes one Request or Response feature so that the test can check it
through the real gateway with real HTTP clients.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
import uuid

from covet import (
    Covet,
    HTMLResponse,
    HTTPException,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Request,
    Response,
    StreamingResponse,
    UploadFile,
)

from gates import opened

app = Covet("sdkapp")

# Text of the exception raised by /boom: the test checks that it reaches the worker's
# log and never the client.
BOOM_TEXT = "sdk-e2e-secret-boom-7f3a"


def big_body(n: int) -> bytes:
    """``n`` deterministic pseudo-random bytes (the test recomputes them)."""
    return random.Random(n).randbytes(n)


def describe(req: Request) -> dict[str, object]:
    client = req.client
    return {
        "method": req.method,
        "path": req.path,
        "raw_path": req.raw_path,
        "query_string": req.query_string,
        "query": req.query_params.multi_items(),
        "headers": [[name, value.decode("latin-1")] for name, value in req.headers.raw],
        "cookies": req.cookies,
        "client": None if client is None else [client.host, client.port],
        "scheme": req.scheme,
        "http_version": req.http_version,
        "request_id": req.request_id,
        "route": req.route,
        "url": req.url,
    }


# -- Request features ---------------------------------------------------------------------


@app.route("/inspect", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
async def inspect_request(req: Request) -> dict[str, object]:
    info = describe(req)
    body = await req.body()
    info["body_len"] = len(body)
    info["body_sha256"] = hashlib.sha256(body).hexdigest()
    return info


@app.get("/inspect-sync")
def inspect_sync(req: Request) -> dict[str, object]:
    return describe(req)


EARLY_HINTS = ("</style.css>; rel=preload; as=style", "</app.js>; rel=preload; as=script")


@app.get("/early-hints")
async def early_hints(req: Request) -> dict[str, object]:
    """Two 103 Early Hints (the second with an extra field), a pause, then the answer:
    the client certificate the gateway passed on (None over plain HTTP)."""
    await req.send_early_hints(EARLY_HINTS[0])
    await req.send_early_hints(EARLY_HINTS[1], headers={"x-hint": "2"})
    await asyncio.sleep(0.05)
    return {"client_cert": req.client_cert}


@app.get("/items/{id:int}")
async def item(req: Request, id: int) -> dict[str, object]:
    return {"id": id, "type": type(id).__name__, "path_params": {"id": req.path_params["id"]},
            "route": req.route}


@app.get("/uuids/{u:uuid}")
async def by_uuid(req: Request, u: uuid.UUID) -> dict[str, object]:
    return {"u": str(u), "type": type(u).__name__, "version": u.version, "route": req.route}


@app.get("/files/{rest...}")
async def files(req: Request, rest: str) -> dict[str, object]:
    return {"rest": rest, "type": type(rest).__name__, "route": req.route}


@app.get("/échos/{word}")
async def echos(req: Request, word: str) -> dict[str, object]:
    return {"word": word, "path": req.path, "raw_path": req.raw_path, "route": req.route}


@app.get("/headers")
async def headers(req: Request) -> dict[str, object]:
    h = req.headers
    return {
        "mixed_case_get": h.get("X-Mixed-Case"),
        "lower_get": h.get("x-mixed-case"),
        "upper_item": h["X-MIXED-CASE"],
        "contains_upper": "X-MIXED-CASE" in h,
        "multi": h.getlist("X-Multi"),
        "latin": h.get("x-latin"),
        "latin_codepoints": [ord(c) for c in h.get("x-latin", "")],
        "missing": h.get("x-not-sent", "default"),
    }


@app.post("/json")
async def json_echo(req: Request) -> JSONResponse:
    data = await req.json()
    return JSONResponse({"got": data, "content_type": req.content_type})


@app.post("/form")
async def form(req: Request) -> dict[str, object]:
    data = await req.form()
    items = []
    for name, value in data.multi_items():
        if isinstance(value, UploadFile):
            content = await value.read()
            items.append({
                "name": name, "kind": "file", "filename": value.filename,
                "content_type": value.content_type, "size": value.size,
                "sha256": hashlib.sha256(content).hexdigest(),
            })  # fmt: skip
        else:
            items.append({"name": name, "kind": "field", "value": value})
    return {"items": items, "content_type": req.content_type}


@app.post("/sha256")
async def sha256(req: Request) -> dict[str, object]:
    digest = hashlib.sha256()
    length = 0
    chunks = 0
    async for chunk in req.stream():
        digest.update(chunk)
        length += len(chunk)
        chunks += 1
    return {"sha256": digest.hexdigest(), "length": length, "chunks": chunks}


@app.route("/echo", methods=["POST", "PUT"])
async def echo(req: Request) -> Response:
    body = await req.body()
    return Response(body, media_type=req.headers.get("content-type", "application/octet-stream"))


@app.get("/big/{n:int}")
def big(req: Request, n: int) -> bytes:
    return big_body(n)


@app.get("/sleep")
async def sleep(req: Request) -> dict[str, object]:
    await asyncio.sleep(0.2)
    return {"request_id": req.request_id, "n": req.query_params.get("n")}


# -- Response features --------------------------------------------------------------------


@app.get("/r/dict")
def r_dict(req: Request) -> dict[str, object]:
    return {"kind": "dict", "text": "grüße ✓", "n": 1}


@app.get("/r/list")
def r_list(req: Request) -> list[object]:
    return [1, "two", None, {"three": 3}]


@app.get("/r/str")
def r_str(req: Request) -> str:
    return "plain text ünïcödé"


@app.get("/r/bytes")
def r_bytes(req: Request) -> bytes:
    return bytes(range(256))


@app.get("/r/none")
def r_none(req: Request) -> None:
    return None


@app.get("/r/tuple")
def r_tuple(req: Request) -> tuple[dict[str, bool], int]:
    return {"created": True}, 201


@app.get("/r/custom")
def r_custom(req: Request) -> Response:
    return Response(
        b"custom-body",
        status=203,
        headers=[("X-Custom", "one"), ("X-Custom", "two"), ("X-Latin-Out", b"caf\xe9")],
        media_type="application/x-covet-test",
    )


@app.get("/r/json")
def r_json(req: Request) -> JSONResponse:
    return JSONResponse({"ok": True, "ünïcode": "✓"}, status=202, headers={"X-Json": "yes"})


@app.get("/r/html")
def r_html(req: Request) -> HTMLResponse:
    return HTMLResponse("<h1>Grüße</h1>")


@app.get("/r/plain")
def r_plain(req: Request) -> PlainTextResponse:
    return PlainTextResponse("just text", status=200)


@app.get("/r/redirect")
def r_redirect(req: Request) -> RedirectResponse:
    return RedirectResponse("/r/str?from=redirect")


@app.get("/r/redirect-301")
def r_redirect_301(req: Request) -> RedirectResponse:
    return RedirectResponse("/r/naïve path", status=301)


SYNC_CHUNKS = [f"sync-chunk-{i}\n" for i in range(5)]
ASYNC_CHUNKS = [f"async-chunk-{i}\n" for i in range(5)]


@app.get("/stream/sync")
def stream_sync(req: Request) -> StreamingResponse:
    def gen():
        for chunk in SYNC_CHUNKS:
            time.sleep(0.02)  # blocking: runs in the executor
            yield chunk

    return StreamingResponse(gen(), media_type="text/plain", headers={"X-Stream": "sync"})


@app.get("/stream/async")
async def stream_async(req: Request) -> StreamingResponse:
    async def gen():
        for chunk in ASYNC_CHUNKS:
            await asyncio.sleep(0.02)
            yield chunk.encode()

    return StreamingResponse(gen(), media_type="text/plain", headers={"X-Stream": "async"})


@app.get("/stream/slow")
async def stream_slow(req: Request) -> StreamingResponse:
    """Two chunks 0.5 s apart: the first must reach the client before the second exists."""

    async def gen():
        yield b"first\n"
        await asyncio.sleep(0.5)
        yield b"second\n"

    return StreamingResponse(gen(), media_type="text/plain")


@app.get("/stream/gated")
async def stream_gated(req: Request) -> StreamingResponse:
    """Two chunks, the second made only once the file ``?gate=`` exists: a client that
    creates the file after reading "first" proves the first chunk reached it while the
    handler had not yet made the second ("second (gate timed out)" otherwise)."""
    gate = req.query_params["gate"]

    async def gen():
        yield b"first\n"
        yield b"second\n" if await opened(gate) else b"second (gate timed out)\n"

    return StreamingResponse(gen(), media_type="text/plain")


@app.get("/cookies/set")
def cookies_set(req: Request) -> Response:
    response = PlainTextResponse("cookies set")
    response.set_cookie("session", "abc123", max_age=3600, httponly=True)
    response.set_cookie("theme", "dark", path="/r", secure=True, samesite="strict")
    response.delete_cookie("old")
    return response


@app.get("/cookies/echo")
def cookies_echo(req: Request) -> dict[str, object]:
    return {"cookies": req.cookies}


@app.get("/only-get")
def only_get(req: Request) -> str:
    return "only get"


# -- error paths --------------------------------------------------------------------------


@app.get("/boom")
def boom(req: Request) -> None:
    raise RuntimeError(BOOM_TEXT)


@app.get("/boom-async")
async def boom_async(req: Request) -> None:
    raise ValueError(BOOM_TEXT + "-async")


@app.get("/teapot")
async def teapot(req: Request) -> None:
    raise HTTPException(418, "teapot", headers={"X-Teapot": "short and stout"})


@app.get("/bad-return")
def bad_return(req: Request) -> object:
    return object()


@app.get("/stream/broken")
async def stream_broken(req: Request) -> StreamingResponse:
    """A body that fails after its first chunk: the client must see it incomplete."""

    async def gen():
        yield b"partial\n"
        await asyncio.sleep(0.05)
        raise RuntimeError(BOOM_TEXT + "-stream")

    return StreamingResponse(gen(), media_type="text/plain")


@app.get("/too-slow", timeout=0.3)
async def too_slow(req: Request) -> str:
    await asyncio.sleep(3)
    return "late"
