package dispatch

import (
	"errors"
	"fmt"
	"time"

	"github.com/covetpy/covetpy/workerproto"
)

// Kind says who answers a route's requests (PROTOCOL.md 1.3).
type Kind uint8

const (
	KindHTTP      Kind = iota // a worker's handler
	KindWebSocket             // a worker's WebSocket handler, through ServeWebSocket
	KindStatic                // the gateway, from the files under Route.Dir
	KindGRPC                  // a worker's gRPC method (PROTOCOL.md 2.10), through Serve
)

var routeKinds = map[string]Kind{"http": KindHTTP, "ws": KindWebSocket, "static": KindStatic, "grpc": KindGRPC}

// Route is what the route table maps a (method, pattern) to.
type Route struct {
	App     string        // the app whose workers serve it
	Pattern string        // e.g. /users/{id:int}
	Timeout time.Duration // handler deadline; 0 means Config.Timeout
	Kind    Kind
	// Resumable (KindWebSocket): a session whose worker goes away moves to
	// another worker instead of closing with 1012.
	Resumable bool
	// AlsoHTTP (KindWebSocket): a request that asks for no WebSocket is
	// served as a KindHTTP route's, by Serve, instead of answered 426
	// (the route's "http" option, PROTOCOL.md 1.3).
	AlsoHTTP bool
	// Dir and Index (KindStatic): the directory served, and whether a
	// directory's index.html answers for it.
	Dir   string
	Index bool
	// Policy is what Config.CompileRoute made of the route's options (the
	// gateway's middleware chain reads it); nil without one.
	Policy any

	app *app
}

// Request is one routed request, ready to go to a worker. The front end fills it;
// Serve does not keep it after it returns.
type Request struct {
	// Head is sent as the REQ_HEAD payload. Head.Body must be len(Body) (0 for
	// none), or with BodyStream the body's length, -1 when unknown (chunked).
	Head workerproto.RequestHead
	// Body is the whole request body (the front end has read it, within its
	// limit). A body over workerproto.RequestWindow goes to the worker within
	// the request window, as a streamed one does.
	Body []byte
	// BodyStream, when not nil, is a body still arriving from the client; Body
	// is then unused. Serve sends it as it comes, within the request window
	// (PROTOCOL.md 2.8), while it waits for the response.
	BodyStream BodyStream
	// Timeout overrides the route's deadline when non-zero.
	Timeout time.Duration
	// Deadline, when not zero, caps the handler deadline (the route's, or
	// Timeout) and fixes it: the call ends at the earlier of the two, and a
	// streamed response's deadline is not counted afresh from each piece of
	// body as it is otherwise. Head.TimeoutMS says what is left of it. A
	// gRPC call's grpc-timeout sets it (PROTOCOL.md 2.10); one already past
	// gives ErrDeadline before the request reaches a worker.
	Deadline time.Time
}

// BodyStream is a request body the front end is still reading from its client.
// Serve reads it on a goroutine of its own, never past the request window, so a
// front end that reads its client only as BodyStream is read holds only what it
// buffers itself.
type BodyStream interface {
	// Read reads body bytes as io.Reader does: it blocks until some arrive,
	// and returns io.EOF after the last (possibly with it). Any other error
	// breaks the body off: the worker's handler sees its read fail (a
	// REQ_BODY fragment flagged ERR), and Serve returns that error if the
	// response head has not reached the ResponseWriter yet (the front end
	// answers it: 413, 400, 408), ErrAborted otherwise.
	Read(p []byte) (int, error)
	// Stop says Serve needs no more of the body: the response has ended,
	// before or after the body did. A Read blocked in it, or made later,
	// must return at once (with any error). Serve calls Stop, and waits for
	// its Read to return, before it returns, if it read the stream at all;
	// the front end still owns the rest of the body (to discard it or close
	// the connection).
	Stop()
}

// BodyError wraps a BodyStream's error when the body broke off before the
// response head reached the writer: the front end answers the client itself.
type BodyError struct{ Err error }

func (e *BodyError) Error() string { return "dispatch: request body broke off: " + e.Err.Error() }
func (e *BodyError) Unwrap() error { return e.Err }

// ResponseWriter receives a worker's answer, on the goroutine that called Serve.
type ResponseWriter interface {
	// WriteHead is called once, first. bodyLen is the body length when known, -1
	// when the worker streams it. headers are valid only during the call.
	WriteHead(status int, headers []workerproto.Header, bodyLen int64) error
	// WriteBody and WriteBodyv are called for the pieces of the body, in order;
	// the bytes are valid only during the call. WriteBodyv hands over several
	// pieces at once, to be written together where possible (one vectored
	// write). Flush decisions are the writer's.
	WriteBody(p []byte) error
	WriteBodyv(ps [][]byte) error
}

// Flusher is implemented by a ResponseWriter that buffers what it is given.
// Serve calls Flush when a streamed response's head has come with no body yet,
// so that the client sees the head at once (an event stream opens before its
// first event).
type Flusher interface {
	Flush() error
}

// InterimWriter is implemented by a ResponseWriter that can send informational
// responses. A worker's 103 Early Hints (PROTOCOL.md 3.5) reach the client only
// through it; Serve drops them for a writer without it.
type InterimWriter interface {
	// WriteInterim sends an informational (1xx) response before the final head.
	// It is called on the goroutine that called Serve, only before WriteHead;
	// headers are valid only during the call. An error ends the exchange as
	// one from WriteHead does.
	WriteInterim(status int, headers []workerproto.Header) error
}

// FileWriter is implemented by a ResponseWriter that can answer with a file
// from disk: a worker's RESP_FILE (PROTOCOL.md 3.6) reaches the client only
// through it (Serve answers ErrNoFileWriter for a writer without it).
type FileWriter interface {
	// WriteFile answers with the file at path, an absolute path, as a
	// static route's file is answered (conditional requests, ranges, HEAD,
	// precompressed siblings), status being the full answer's. headers
	// (valid only during the call) are added to the gateway's; a
	// content-type among them replaces the one inferred from the name. A
	// file that cannot be opened or is not a regular file is answered 404
	// by the writer itself. It is called once, in place of WriteHead, on
	// the goroutine that called Serve, after the worker has been released
	// (a slow client holds no worker credit while the file goes out); an
	// error is a failed write to the client, after which the front end
	// breaks the response off.
	WriteFile(status int, headers []workerproto.Header, path string) error
}

// StaticFielder is a front end's Backend's optional side (*guard.Chain
// implements it, and the gRPC Layer passes it on): the response fields it
// adds to a file the front end serves from disk itself, for a static route or
// mount (CORS fields, security headers), appended to hs.
type StaticFielder interface {
	StaticFields(rt *Route, origin []byte, https bool, hs []workerproto.Header) []workerproto.Header
}

// TrailerWriter is implemented by a ResponseWriter that can send trailer
// fields after the body (HTTP/2, HTTP/3, and gRPC-Web's translation). A
// worker's RESP_TRAILERS (PROTOCOL.md 3.10) reach the client only through
// it; Serve drops them for a writer without it.
type TrailerWriter interface {
	// WriteTrailers is called at most once, after WriteHead and the whole
	// body, on the goroutine that called Serve; headers are valid only
	// during the call. The response is complete when it returns.
	WriteTrailers(headers []workerproto.Header) error
}

// GRPCService is one gRPC service of the live route table (the part of a
// KindGRPC route's pattern between its slashes), as the gateway's own health
// service reports it.
type GRPCService struct {
	Name string // e.g. "helloworld.Greeter"
	// Serving: the app whose routes name it has a live worker.
	Serving bool
}

// StatusError is a failure the front end answers with Status itself: it happened
// before any of the response reached the ResponseWriter.
type StatusError struct {
	Status     int    // 502, 503 or 504
	Reason     string // a fixed phrase, usable as a metric label
	RetryAfter int    // seconds, for 503; 0 for none
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("dispatch: %d %s", e.Status, e.Reason)
}

// Errors Serve returns. Each is a *StatusError, an *AbortError (which is
// ErrAborted), ErrCanceled or a *BodyError.
var (
	ErrNoWorker     = &StatusError{Status: 503, Reason: "no live worker", RetryAfter: 1}
	ErrQueueFull    = &StatusError{Status: 503, Reason: "queue full", RetryAfter: 1}
	ErrQueueTimeout = &StatusError{Status: 503, Reason: "queue deadline passed", RetryAfter: 1}
	ErrWorkerDied   = &StatusError{Status: 502, Reason: "worker died"}
	ErrBadResponse  = &StatusError{Status: 502, Reason: "invalid worker response"}
	ErrDeadline     = &StatusError{Status: 504, Reason: "handler deadline passed"}
	// ErrNoFileWriter: the worker answered with RESP_FILE and the writer is
	// no FileWriter.
	ErrNoFileWriter = &StatusError{Status: 502, Reason: "file answer not supported by this front end"}
	// ErrAborted: the response broke off after its head reached the writer (the
	// worker died, failed mid-stream or passed its deadline). The front end must
	// close the connection so the client sees an incomplete response. Serve
	// returns it as an *AbortError, which says why.
	ErrAborted = errors.New("dispatch: response aborted mid-body")
	// ErrWorkerAborted is the cause of an abort (AbortError) by the worker's
	// body fragment flagged ERR (PROTOCOL.md 2.4): its handler failed
	// mid-stream.
	ErrWorkerAborted = &StatusError{Status: 500, Reason: "worker broke the response off"}
	// ErrCanceled: the request's context ended (the client went away); the worker
	// was sent CANCEL.
	ErrCanceled = errors.New("dispatch: request canceled")
)

// AbortError is how Serve reports a response that broke off after its head
// reached the writer: errors.Is(err, ErrAborted) holds for it, and Cause (also
// what Unwrap gives, so errors.As finds a *StatusError in it) says why:
// ErrWorkerDied, ErrBadResponse (the worker broke the protocol and lost its
// session), ErrDeadline, ErrWorkerAborted, a worker ERROR's *StatusError, or
// the request body's *BodyError. A front end that can still end the response
// cleanly (gRPC's trailers) reports the cause; the others break the response
// off.
type AbortError struct{ Cause error }

func (e *AbortError) Error() string {
	return "dispatch: response aborted mid-body: " + e.Cause.Error()
}

// Is makes an AbortError ErrAborted.
func (e *AbortError) Is(target error) bool { return target == ErrAborted }
func (e *AbortError) Unwrap() error        { return e.Cause }

// WebSocketPeer is the client's side of a WebSocket session (PROTOCOL.md 2.9),
// implemented by the front end, which owns the connection: the handshake's
// framing, masking, fragmentation, compression, UTF-8 checks, ping/pong, the
// idle timeout and the close handshake. ServeWebSocket drives it.
//
// Before Accept, the embedded ResponseWriter answers the upgrade request
// when the worker rejects it (a 403, or whatever the handler answered).
// After Accept, ReadMessage is called from one goroutine and WriteMessage and
// then Close from another, concurrently. Close is called once: it may find
// ReadMessage blocked, and must then make it return (a *CloseError with the
// client's answering close, or 1006 once the connection is closed);
// ServeWebSocket waits for that before it returns.
type WebSocketPeer interface {
	ResponseWriter
	// Accept completes the handshake (101, or 200 for HTTP/2's extended
	// CONNECT) with the chosen subprotocol ("" for none) and extra headers.
	Accept(subprotocol string, headers []workerproto.Header) error
	// ReadMessage returns the client's next whole message, validated and
	// decompressed; p is valid until the next call. It returns a *CloseError
	// once the session has ended on the client's side: the client's close
	// frame (its code, 1005 without one), a lost connection (1006), or the
	// front end's own close of it (1002, 1007, 1009, 1001 on shutdown, ...),
	// after which the front end has already answered the client's close.
	ReadMessage() (text bool, p []byte, err error)
	// WriteMessage sends one whole message to the client.
	WriteMessage(text bool, p []byte) error
	// MaxMessage is the largest message the front end takes from the client;
	// it sizes both windows (PROTOCOL.md 2.9: twice the largest message).
	MaxMessage() int
	// Close ends the session from the gateway's side: it runs the close
	// handshake with code and reason (unless the client's close came first)
	// and releases the connection.
	Close(code int, reason string) error
}

// CloseError is how a WebSocket session ended on the client's side (RFC 6455
// 7.4 codes; 1005 and 1006 are never sent on the wire).
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string { return fmt.Sprintf("websocket closed: %d %s", e.Code, e.Reason) }
