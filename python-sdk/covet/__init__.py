"""CovetPy: Python handlers served by a Go gateway through shared-memory rings."""

from ._app import Covet
from ._datastructures import Address, Headers, MutableHeaders, QueryParams
from ._exceptions import HTTPException
from ._forms import FormData, UploadFile
from ._head import ClientCert
from ._request import Request
from ._sse import EventSourceResponse, ServerSentEvent
from ._websocket import WebSocket, WebSocketDisconnect
from ._responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

__all__ = [
    "Address",
    "ClientCert",
    "Covet",
    "EventSourceResponse",
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
