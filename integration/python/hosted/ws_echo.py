"""The WebSocket echo of the hosted Starlette and FastAPI apps (FastAPI's WebSocket is
Starlette's): accepts with the first offered subprotocol, answers each message with
"echo:" before it, and closes with 4001 when told "close"."""

from __future__ import annotations

from starlette.websockets import WebSocket, WebSocketDisconnect


async def ws_echo(websocket: WebSocket) -> None:
    subprotocols = websocket.scope["subprotocols"]
    await websocket.accept(subprotocol=subprotocols[0] if subprotocols else None)
    try:
        while True:
            msg = await websocket.receive()
            if msg["type"] == "websocket.disconnect":
                return
            if msg.get("text") is not None:
                if msg["text"] == "close":
                    await websocket.close(code=4001, reason="asked to")
                    return
                await websocket.send_text("echo:" + msg["text"])
            else:
                await websocket.send_bytes(b"echo:" + msg["bytes"])
    except WebSocketDisconnect:
        return
