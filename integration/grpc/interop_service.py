"""grpc-go's interop TestService (``grpc.testing.TestService``) as a Python servicer.

The service's schema is not in the repository: ``integration/grpc/descdump`` writes the
FileDescriptorSet that grpc-go v1.85.0's ``interop/grpc_testing`` package registers
(test.proto, messages.proto, empty.proto), and :func:`load` adds those files to
google.protobuf's default descriptor pool and makes the message classes from it. The
path comes from ``$COVET_GRPC_DESCRIPTORS`` unless given.

:class:`InteropServicer` implements what the interop client's core cases call, in grpc.aio
style (``async def`` methods, async iterators for streams), the way grpc-go's own test
server (interop/test_utils.go) behaves. :func:`add_to_server` registers it the way
grpcio-tools' generated ``add_TestServiceServicer_to_server`` does, on a
``grpc.aio.Server`` or on a Covet app's ``app.grpc`` alike. ``UnimplementedCall`` is
left out on purpose, so that calling it gets UNIMPLEMENTED, as the
``unimplemented_method`` case wants.

For the integration tests the servicer also leaves marks: a call whose metadata holds
``x-covet-test-mark: NAME`` and whose handler is cancelled (client cancel, deadline, the
stream reset) writes the file ``NAME.cancelled`` in ``$COVET_TEST_DIR``; and a
``response_size`` below zero (or a payload type other than COMPRESSABLE) makes the
handler raise, as grpc-go's server returns an error for them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

DESCRIPTORS_ENV = "COVET_GRPC_DESCRIPTORS"
PACKAGE = "grpc.testing"
SERVICE = f"{PACKAGE}.TestService"
# The metadata the custom_metadata case sends and expects back: the first as initial
# metadata, the second (a binary field) as trailing metadata.
ECHO_INITIAL = "x-grpc-test-echo-initial"
ECHO_TRAILING = "x-grpc-test-echo-trailing-bin"
# The metadata key naming a call's cancellation mark (see the module doc).
MARK = "x-covet-test-mark"

_CODES = {code.value[0]: code for code in grpc.StatusCode}


class Messages:
    """The grpc.testing message classes, made from the descriptor set."""

    def __init__(self, pool: descriptor_pool.DescriptorPool) -> None:
        def message(name: str) -> Any:
            return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))

        self.service = pool.FindServiceByName(SERVICE)
        self.Empty = message("Empty")
        self.Payload = message("Payload")
        self.SimpleRequest = message("SimpleRequest")
        self.SimpleResponse = message("SimpleResponse")
        self.StreamingInputCallRequest = message("StreamingInputCallRequest")
        self.StreamingInputCallResponse = message("StreamingInputCallResponse")
        self.StreamingOutputCallRequest = message("StreamingOutputCallRequest")
        self.StreamingOutputCallResponse = message("StreamingOutputCallResponse")
        self.ResponseParameters = message("ResponseParameters")
        self.EchoStatus = message("EchoStatus")
        self.COMPRESSABLE = pool.FindEnumTypeByName(f"{PACKAGE}.PayloadType").values_by_name["COMPRESSABLE"].number

    def request_class(self, method: str) -> Any:
        """The request message class of TestService's ``method``."""
        return message_factory.GetMessageClass(self.service.methods_by_name[method].input_type)

    def response_class(self, method: str) -> Any:
        """The response message class of TestService's ``method``."""
        return message_factory.GetMessageClass(self.service.methods_by_name[method].output_type)


def load(path: str | os.PathLike[str] | None = None) -> Messages:
    """Add the files of the descriptor set at ``path`` (default ``$COVET_GRPC_DESCRIPTORS``)
    to the default descriptor pool, each file once, and return the message classes."""
    if path is None:
        path = os.environ.get(DESCRIPTORS_ENV)
        if not path:
            raise RuntimeError(
                f"${DESCRIPTORS_ENV} is not set: it names the interop descriptor set "
                "`go run ./integration/grpc/descdump OUT.pb` writes"
            )
    files = descriptor_pb2.FileDescriptorSet.FromString(Path(path).read_bytes()).file
    pool = descriptor_pool.Default()
    for file in files:  # descdump writes each file after its imports
        try:
            pool.FindFileByName(file.name)
        except KeyError:
            pool.Add(file)
    return Messages(pool)


class InteropServicer:
    """The TestService methods the interop client's core cases call."""

    def __init__(self, messages: Messages, marks: Path | None = None) -> None:
        self.m = messages
        # Where cancellation marks go: $COVET_TEST_DIR unless given; none without either.
        if marks is None and os.environ.get("COVET_TEST_DIR"):
            marks = Path(os.environ["COVET_TEST_DIR"])
        self.marks = marks

    def _payload(self, response_type: int, size: int) -> Any:
        if size < 0:
            raise ValueError(f"requested a response with invalid length {size}")
        if response_type != self.m.COMPRESSABLE:
            raise ValueError(f"unsupported payload type: {response_type}")
        return self.m.Payload(type=response_type, body=bytes(size))

    async def _echo_metadata(self, context: Any) -> None:
        """Send back the custom_metadata case's fields: the initial one as initial
        metadata, the binary one as trailing metadata."""
        metadata = dict(context.invocation_metadata() or ())
        if ECHO_INITIAL in metadata:
            await context.send_initial_metadata(((ECHO_INITIAL, metadata[ECHO_INITIAL]),))
        if ECHO_TRAILING in metadata:
            context.set_trailing_metadata(((ECHO_TRAILING, metadata[ECHO_TRAILING]),))

    async def _abort_if_asked(self, echo_status: Any, context: Any) -> None:
        if echo_status.code != 0:
            await context.abort(_CODES[echo_status.code], echo_status.message)

    def _mark_cancelled(self, context: Any) -> None:
        name = dict(context.invocation_metadata() or ()).get(MARK)
        if name and self.marks is not None:
            (self.marks / f"{name}.cancelled").write_text("cancelled")

    async def EmptyCall(self, request: Any, context: Any) -> Any:
        return self.m.Empty()

    async def UnaryCall(self, request: Any, context: Any) -> Any:
        await self._echo_metadata(context)
        await self._abort_if_asked(request.response_status, context)
        if request.response_compressed.value:
            context.set_compression(grpc.Compression.Gzip)
        return self.m.SimpleResponse(payload=self._payload(request.response_type, request.response_size))

    async def StreamingInputCall(self, request_iterator: AsyncIterator[Any], context: Any) -> Any:
        total = 0
        try:
            async for request in request_iterator:
                total += len(request.payload.body)
        except asyncio.CancelledError:
            self._mark_cancelled(context)
            raise
        return self.m.StreamingInputCallResponse(aggregated_payload_size=total)

    async def StreamingOutputCall(self, request: Any, context: Any) -> AsyncIterator[Any]:
        try:
            for params in request.response_parameters:
                if params.interval_us:
                    await asyncio.sleep(params.interval_us / 1e6)
                yield self.m.StreamingOutputCallResponse(payload=self._payload(request.response_type, params.size))
            await self._abort_if_asked(request.response_status, context)
        except asyncio.CancelledError:
            self._mark_cancelled(context)
            raise

    async def FullDuplexCall(self, request_iterator: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        await self._echo_metadata(context)
        try:
            async for request in request_iterator:
                await self._abort_if_asked(request.response_status, context)
                for params in request.response_parameters:
                    if params.interval_us:
                        await asyncio.sleep(params.interval_us / 1e6)
                    yield self.m.StreamingOutputCallResponse(payload=self._payload(request.response_type, params.size))
        except asyncio.CancelledError:
            self._mark_cancelled(context)
            raise

    async def HalfDuplexCall(self, request_iterator: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        requests = [request async for request in request_iterator]
        for request in requests:
            for params in request.response_parameters:
                if params.interval_us:
                    await asyncio.sleep(params.interval_us / 1e6)
                yield self.m.StreamingOutputCallResponse(payload=self._payload(request.response_type, params.size))


_HANDLER_KINDS: dict[tuple[bool, bool], Callable[..., grpc.RpcMethodHandler]] = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def add_to_server(servicer: InteropServicer, server: Any) -> None:
    """Register ``servicer``'s TestService methods on ``server`` (a ``grpc.aio.Server``
    or a Covet app's ``app.grpc``) with the calls grpcio-tools' generated
    ``add_TestServiceServicer_to_server`` makes: a generic handler, then the same
    method handlers as registered ones. A method the servicer lacks is not registered."""
    m = servicer.m
    handlers = {}
    for method in m.service.methods:
        behavior = getattr(servicer, method.name, None)
        if behavior is None:
            continue
        make = _HANDLER_KINDS[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = make(
            behavior,
            request_deserializer=m.request_class(method.name).FromString,
            response_serializer=m.response_class(method.name).SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)


class InteropStub:
    """A client for TestService on a grpcio channel (sync or aio), as generated code's
    ``TestServiceStub`` is, plus ``UnimplementedCall``."""

    def __init__(self, channel: Any, messages: Messages) -> None:
        kinds = {
            (False, False): channel.unary_unary,
            (False, True): channel.unary_stream,
            (True, False): channel.stream_unary,
            (True, True): channel.stream_stream,
        }
        for method in messages.service.methods:
            make = kinds[(method.client_streaming, method.server_streaming)]
            setattr(self, method.name, make(
                f"/{SERVICE}/{method.name}",
                request_serializer=messages.request_class(method.name).SerializeToString,
                response_deserializer=messages.response_class(method.name).FromString,
            ))  # fmt: skip
