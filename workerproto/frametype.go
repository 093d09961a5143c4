package workerproto

import "strconv"

// FrameType is the type field of a data-plane record (PROTOCOL.md 2.3). It is an i32
// on the wire.
type FrameType int32

// Frame types. The numbering leaves room by family: 1 is padding, 16-31 requests,
// 32-47 responses, 48-63 cancellation, errors and flow control, 64-79 ring-level control, 80-95 are
// reserved for WebSocket and 96-111 for gRPC. Any other number is unknown, and a
// receiver treats it as a violation (PROTOCOL.md 5).
const (
	FramePad      FrameType = 1  // padding up to the wrap point; no frame header
	FrameReqHead  FrameType = 16 // gateway -> worker: RequestHead (MessagePack array)
	FrameReqBody  FrameType = 17 // gateway -> worker: raw request body bytes
	FrameRespHead FrameType = 32 // worker -> gateway: ResponseHead (MessagePack array)
	FrameRespBody FrameType = 33 // worker -> gateway: raw response body bytes
	FrameResp     FrameType = 34 // worker -> gateway: a ResponseHead and then the whole body, in one frame
	// FrameEarlyHints: worker -> gateway, EarlyHints (MessagePack array): a 103
	// interim response, before the exchange's RESP_HEAD or RESP.
	FrameEarlyHints FrameType = 35
	FrameRespFile   FrameType = 36 // worker -> gateway: RespFile; the gateway sends a file from disk
	FrameCancel     FrameType = 48 // gateway -> worker: empty; the request is abandoned
	FrameError      FrameType = 49 // either way: ErrorPayload (MessagePack array)
	FrameWindow     FrameType = 50 // gateway -> worker: WindowPayload; more response body may be sent
	FrameReqWindow  FrameType = 51 // worker -> gateway: WindowPayload; more request body may be sent
	FrameControl    FrameType = 64 // either way: reserved for ring-level control (map)

	// WebSocket sessions (PROTOCOL.md 2.9).
	FrameWSOpen   FrameType = 80 // gateway -> worker: WSOpen
	FrameWSAccept FrameType = 81 // worker -> gateway: WSAccept
	FrameWSText   FrameType = 82 // either way: a text message's bytes, fragmented
	FrameWSBinary FrameType = 83 // either way: a binary message's bytes, fragmented
	FrameWSClose  FrameType = 84 // either way: WSClose
	FrameWSCredit FrameType = 85 // either way: WindowPayload; more message bytes may be sent

	// FrameWebSocketFirst ..= FrameWebSocketLast are the WebSocket family; 86-95 are
	// reserved.
	FrameWebSocketFirst FrameType = 80
	FrameWebSocketLast  FrameType = 95
	// FrameRespTrailers: worker -> gateway, RespTrailers (MessagePack array): the
	// trailer fields that end a streamed response body (PROTOCOL.md 2.10, 3.10).
	FrameRespTrailers FrameType = 96

	// FrameGRPCFirst ..= FrameGRPCLast are the gRPC family; 97-111 are reserved.
	FrameGRPCFirst FrameType = 96
	FrameGRPCLast  FrameType = 111
)

// Frame flags (PROTOCOL.md 2.3), a u32 in the frame header.
const (
	FlagBegin  uint32 = 0x1 // first fragment of a message
	FlagEnd    uint32 = 0x2 // last fragment of a message
	FlagCancel uint32 = 0x4 // set on every CANCEL frame
	FlagErr    uint32 = 0x8 // set on every ERROR frame and on a body fragment that aborts its stream

	// FlagsKnown is the union of the flags of protocol version 1; a frame with any
	// other bit set is a violation.
	FlagsKnown = FlagBegin | FlagEnd | FlagCancel | FlagErr
)

// Known reports whether t is a frame type defined by protocol version 1 (the reserved
// parts of the WebSocket and gRPC ranges are not).
func (t FrameType) Known() bool {
	switch t {
	case FramePad, FrameReqHead, FrameReqBody, FrameRespHead, FrameRespBody, FrameResp,
		FrameEarlyHints, FrameRespFile, FrameCancel, FrameError, FrameWindow, FrameReqWindow, FrameControl,
		FrameWSOpen, FrameWSAccept, FrameWSText, FrameWSBinary, FrameWSClose, FrameWSCredit,
		FrameRespTrailers:
		return true
	}
	return false
}

// FromGateway reports whether the gateway may send frames of type t (on the request
// ring).
func (t FrameType) FromGateway() bool {
	switch t {
	case FramePad, FrameReqHead, FrameReqBody, FrameCancel, FrameError, FrameWindow, FrameControl,
		FrameWSOpen, FrameWSText, FrameWSBinary, FrameWSClose, FrameWSCredit:
		return true
	}
	return false
}

// FromWorker reports whether a worker may send frames of type t (on the response
// ring).
func (t FrameType) FromWorker() bool {
	switch t {
	case FramePad, FrameRespHead, FrameRespBody, FrameResp, FrameEarlyHints, FrameRespFile, FrameError,
		FrameReqWindow, FrameControl, FrameWSAccept, FrameWSText, FrameWSBinary, FrameWSClose, FrameWSCredit,
		FrameRespTrailers:
		return true
	}
	return false
}

// String returns the spec's name for t (REQ_HEAD, ...), or a number for others.
func (t FrameType) String() string {
	switch t {
	case FramePad:
		return "PAD"
	case FrameReqHead:
		return "REQ_HEAD"
	case FrameReqBody:
		return "REQ_BODY"
	case FrameRespHead:
		return "RESP_HEAD"
	case FrameRespBody:
		return "RESP_BODY"
	case FrameResp:
		return "RESP"
	case FrameEarlyHints:
		return "EARLY_HINTS"
	case FrameRespFile:
		return "RESP_FILE"
	case FrameRespTrailers:
		return "RESP_TRAILERS"
	case FrameReqWindow:
		return "REQ_WINDOW"
	case FrameWSOpen:
		return "WS_OPEN"
	case FrameWSAccept:
		return "WS_ACCEPT"
	case FrameWSText:
		return "WS_TEXT"
	case FrameWSBinary:
		return "WS_BINARY"
	case FrameWSClose:
		return "WS_CLOSE"
	case FrameWSCredit:
		return "WS_CREDIT"
	case FrameCancel:
		return "CANCEL"
	case FrameError:
		return "ERROR"
	case FrameWindow:
		return "WINDOW"
	case FrameControl:
		return "CONTROL"
	}
	return "FrameType(" + strconv.Itoa(int(t)) + ")"
}
