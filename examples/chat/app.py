"""WebSocket and server-sent events example: an echo endpoint, chat rooms, an event
stream, and a page that uses them.

    cd examples/chat && ../../bin/covet run app:app --workers 1 --port 8000
    # then open http://127.0.0.1:8000/ in a browser, or:
    python -m websockets ws://127.0.0.1:8000/ws/echo        # pip install websockets
    curl -N http://127.0.0.1:8000/events

Routes:

- ``/ws/echo``: every text and binary message is sent back as it came;
- ``/ws/chat/{room}``: a chat room; each text message goes to everyone in the room,
  prefixed with the sender's name (``?name=``); offers the ``chat.v1`` subprotocol;
- ``/events``: a server-sent event stream: a ``tick`` event every second, with an id;
- ``/``: an HTML page with a chat client and the event stream.

Rooms live in the worker's memory, so run one worker (``--workers 1``): with several,
two clients of one room may be served by different workers and not see each other
(docs/python-app.md, "Each worker is a process with its own state"; share rooms
through Redis pub/sub or similar for that).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

from covet import (
    Covet,
    EventSourceResponse,
    HTMLResponse,
    Request,
    ServerSentEvent,
    WebSocket,
    WebSocketDisconnect,
)

app = Covet("chat")

#: Room name -> the sockets in it (this worker's share of the room).
rooms: dict[str, set[WebSocket]] = {}


@app.websocket("/ws/echo")
async def echo(ws: WebSocket) -> None:
    await ws.accept()
    async for message in ws:  # str for text, bytes for binary; ends when the client closes
        await ws.send(message)


@app.websocket("/ws/chat/{room}")
async def chat(ws: WebSocket, room: str) -> None:
    name = ws.query_params.get("name") or f"guest-{ws.request_id[-4:]}"
    await ws.accept(subprotocol="chat.v1" if "chat.v1" in ws.subprotocols else None)
    members = rooms.setdefault(room, set())
    members.add(ws)
    await broadcast(room, f"* {name} joined {room} ({len(members)} here)")
    try:
        while True:
            text = await ws.receive_text()
            await broadcast(room, f"{name}: {text}")
    except WebSocketDisconnect:
        pass
    finally:
        members.discard(ws)
        if not members:
            rooms.pop(room, None)
        await broadcast(room, f"* {name} left")


async def broadcast(room: str, text: str) -> None:
    """Send ``text`` to everyone in ``room``; one who has left is skipped."""
    for member in list(rooms.get(room, ())):
        try:
            await member.send_text(text)
        except (WebSocketDisconnect, RuntimeError):
            rooms.get(room, set()).discard(member)


@app.get("/events", timeout=24 * 3600)  # the route's deadline bounds the stream
async def events(req: Request) -> EventSourceResponse:
    # A browser that reconnects sends the id of the last event it saw.
    last = req.headers.get("last-event-id", "")
    start = int(last) if last.isdigit() and len(last) < 16 else 0

    async def ticks() -> AsyncIterator[ServerSentEvent]:
        # When the client leaves, the gateway cancels the request and the worker closes
        # this generator: a try/finally here would run its cleanup then.
        for n in itertools.count(start + 1):
            yield ServerSentEvent(data={"tick": n}, event="tick", id=str(n))
            await asyncio.sleep(1)

    return EventSourceResponse(ticks(), ping=15)


PAGE = """<!doctype html>
<meta charset="utf-8">
<title>CovetPy chat</title>
<h1>Room <span id="room">lobby</span></h1>
<pre id="log"></pre>
<form id="send"><input id="text" autocomplete="off" autofocus> <button>Send</button></form>
<p>Ticks: <span id="ticks">-</span></p>
<script>
const room = new URLSearchParams(location.search).get("room") || "lobby";
const name = new URLSearchParams(location.search).get("name") || "";
document.getElementById("room").textContent = room;
const log = document.getElementById("log");
const scheme = location.protocol === "https:" ? "wss:" : "ws:";
const ws = new WebSocket(`${scheme}//${location.host}/ws/chat/${encodeURIComponent(room)}?name=${encodeURIComponent(name)}`, ["chat.v1"]);
ws.onmessage = (e) => { log.textContent += e.data + "\\n"; };
ws.onclose = (e) => { log.textContent += `* closed (${e.code})\\n`; };
document.getElementById("send").onsubmit = (e) => {
  e.preventDefault();
  const input = document.getElementById("text");
  if (input.value) { ws.send(input.value); input.value = ""; }
};
const events = new EventSource("/events");
events.addEventListener("tick", (e) => { document.getElementById("ticks").textContent = JSON.parse(e.data).tick; });
</script>
"""


@app.get("/")
async def index(req: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)
