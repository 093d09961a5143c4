"""CovetPy: Python handlers served by a Go gateway through shared-memory rings."""

from ._app import Covet
from ._datastructures import Address, Headers, MutableHeaders, QueryParams, State
from ._exceptions import BodyAborted, HTTPException
from ._forms import FormData, UploadFile
from ._head import Auth, ClientCert
from ._params import BackgroundTasks, Body, Cookie, Depends, Header, Path, Query
from ._request import Request
from ._security import CORS
from ._sse import EventSourceResponse, ServerSentEvent
from ._validation import RequestValidationError
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
    "BackgroundTasks",
    "Body",
    "BodyAborted",
    "CORS",
    "ClientCert",
    "Cookie",
    "Covet",
    "Depends",
    "EventSourceResponse",
    "FileResponse",
    "FormData",
    "HTMLResponse",
    "HTTPException",
    "Header",
    "Headers",
    "JSONResponse",
    "MutableHeaders",
    "Path",
    "PlainTextResponse",
    "Query",
    "QueryParams",
    "RedirectResponse",
    "Request",
    "RequestValidationError",
    "Response",
    "ServerSentEvent",
    "State",
    "StreamingResponse",
    "UploadFile",
    "WebSocket",
    "WebSocketDisconnect",
]
