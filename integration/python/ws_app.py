"""The app served by the WebSocket and server-sent-events end-to-end tests
(integration/python/test_websocket.py): each route exposes one behaviour of a session
so that the test can check it through the real gateway with real clients (the
``websockets`` library and headless Chromium)."""

from __future__ import annotations

import asyncio
import os
import uuid

from covet import (
    Covet,
    EventSourceResponse,
    HTMLResponse,
    HTTPException,
    PlainTextResponse,
    Request,
    Response,
    StreamingResponse,
    WebSocket,
    WebSocketDisconnect,
)

app = Covet("wsapp")

# Close codes the handlers saw from clients, and whether the SSE generator's finally
# ran, readable over HTTP (one worker serves these tests).
CLOSES: list[int] = []
SSE_FINALLY: list[str] = []
SSE_GO = asyncio.Event()
PAGE_CLOSED: dict[str, asyncio.Event] = {}  # /page's sessions, by token, once ended


@app.get("/r/plain")
async def plain(req: Request) -> PlainTextResponse:
    return PlainTextResponse("just text")


@app.get("/pid")
async def pid(req: Request) -> str:
    return str(os.getpid())


@app.get("/live/{topic}")
async def live_page(req: Request, topic: str) -> PlainTextResponse:
    return PlainTextResponse(f"the {topic} page", headers={"x-side": "http"})


@app.websocket("/live/{topic}")
async def live_session(ws: WebSocket, topic: str) -> None:
    await ws.accept()
    async for message in ws:
        await ws.send_text(f"{topic}: {message}")


@app.websocket("/ws/echo")
async def echo(ws: WebSocket) -> None:
    await ws.accept(subprotocol=ws.subprotocols[0] if ws.subprotocols else None)
    async for message in ws:
        if isinstance(message, str):
            await ws.send_text(message)
        else:
            await ws.send_bytes(message)


@app.websocket("/ws/room/{room}")
async def room(ws: WebSocket, room: str) -> None:
    await ws.accept(headers={"x-room": room})
    await ws.send_json({
        "room": room,
        "q": ws.query_params.get("x"),
        "cookie": ws.cookies.get("c"),
        "header": ws.headers.get("x-h"),
        "path": ws.path_params,
    })  # fmt: skip
    await ws.close(4001, "room closed")


@app.websocket("/ws/reject")
async def reject(ws: WebSocket) -> None:
    await ws.close(4403)


@app.websocket("/ws/missing")
async def missing(ws: WebSocket) -> None:
    raise HTTPException(404, "no such room")


@app.websocket("/ws/record")
async def record(ws: WebSocket) -> None:
    await ws.accept()
    try:
        while True:
            await ws.send_text(await ws.receive_text())
    except WebSocketDisconnect as e:
        CLOSES.append(e.code)
        if (token := ws.query_params.get("page")) in PAGE_CLOSED:
            PAGE_CLOSED[token].set()


@app.get("/closes")
async def closes(req: Request) -> list[int]:
    return CLOSES


@app.websocket("/ws/boom")
async def boom(ws: WebSocket) -> None:
    await ws.accept()
    await ws.receive_text()
    raise RuntimeError("ws-boom")


@app.websocket("/ws/flood/{n:int}")
async def flood(ws: WebSocket, n: int) -> None:
    """Sends n numbered messages as fast as the credit allows, then closes."""
    await ws.accept()
    for i in range(n):
        await ws.send_text(str(i))
    await ws.close()


@app.websocket("/ws/pid")
async def ws_pid(ws: WebSocket) -> None:
    await ws.accept()
    await ws.send_text(f"{os.getpid()} {ws.resumed}")
    async for message in ws:
        await ws.send_text(message)


@app.websocket("/ws/resumable", resumable=True)
async def ws_resumable(ws: WebSocket) -> None:
    await ws.accept()
    await ws.send_text(f"{os.getpid()} {ws.resumed}")
    async for message in ws:
        await ws.send_text(message)


@app.get("/events")
async def events(req: Request) -> EventSourceResponse:
    async def gen():  # type: ignore[no-untyped-def]
        try:
            # Each event exists only once the test asks for it, after it has seen what
            # came before (the head, then the first event).
            await SSE_GO.wait()
            SSE_GO.clear()
            yield {"event": "first", "id": "1", "data": "one"}
            await SSE_GO.wait()
            SSE_GO.clear()
            yield {"event": "second", "id": "2", "data": "two\nlines"}
            await asyncio.sleep(3600)  # until the client leaves
        finally:
            SSE_FINALLY.append(req.request_id)

    return EventSourceResponse(gen(), ping=3)


@app.get("/stream/{pause_ms:int}/{n:int}", timeout=1.0)
async def stream(req: Request, pause_ms: int, n: int) -> StreamingResponse:
    """n pieces, pause_ms apart, under a 1 s route deadline."""

    async def pieces():  # type: ignore[no-untyped-def]
        for i in range(n):
            yield f"piece {i}\n"
            await asyncio.sleep(pause_ms / 1000)

    return StreamingResponse(pieces(), media_type="text/plain")


@app.post("/events/go")
async def events_go(req: Request) -> str:
    SSE_GO.set()
    return "ok"


@app.get("/events/finally")
async def events_finally(req: Request) -> list[str]:
    return SSE_FINALLY


PAGE = """<!doctype html><title>pending</title><script>
const ws = new WebSocket(`ws://${location.host}/ws/record?page=TOKEN`);
ws.onopen = () => ws.send("hello from chromium");
ws.onmessage = (e) => { document.title = "echo:" + e.data; ws.close(4100, "page done"); };
ws.onerror = () => { document.title = "error"; };
</script><script src="/page/closed.js?page=TOKEN"></script>"""


@app.get("/page/closed.js")
async def page_closed(req: Request) -> Response:
    """Answers once the page's /ws/record session has ended (at most 10 s): the
    page's load event, after which Chromium dumps the DOM, waits for this
    parser-blocking script, so the dump comes after the page's socket has closed."""
    closed = PAGE_CLOSED.get(req.query_params.get("page", ""))
    if closed is None:
        return Response("unknown page", status=404)
    try:
        await asyncio.wait_for(closed.wait(), 10)
        js = 'document.title += " closed";'
    except asyncio.TimeoutError:
        js = 'document.title += " no-close";'
    return Response(js, media_type="text/javascript")


@app.get("/page")
async def page(req: Request) -> HTMLResponse:
    token = uuid.uuid4().hex
    PAGE_CLOSED[token] = asyncio.Event()
    return HTMLResponse(PAGE.replace("TOKEN", token))
