"""CovetPy: Python handlers served by a Go gateway through shared-memory rings."""

from ._app import Covet
from ._datastructures import Address, Headers, MutableHeaders, QueryParams
from ._exceptions import BodyAborted, HTTPException
from ._forms import FormData, UploadFile
from ._head import Auth, ClientCert
from ._request import Request
from ._security import CORS
from ._sse import EventSourceResponse, ServerSentEvent
from ._websocket import WebSocket, WebSocketDisconnect
from ._responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

__all__ = [
    "Address",
    "Auth",
    "BodyAborted",
    "CORS",
    "ClientCert",
    "Covet",
    "EventSourceResponse",
    "FileResponse",
    "FormData",
    "HTMLResponse",
    "HTTPException",
    "Headers",
    "JSONResponse",
    "MutableHeaders",
    "PlainTextResponse",
    "QueryParams",
    "RedirectResponse",
    "Request",
    "Response",
    "ServerSentEvent",
    "StreamingResponse",
    "UploadFile",
    "WebSocket",
    "WebSocketDisconnect",
]
