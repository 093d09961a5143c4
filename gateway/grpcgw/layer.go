package grpcgw

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/gateway/http1"
	"github.com/covetpy/covetpy/ops/metrics"
	"github.com/covetpy/covetpy/router"
	"github.com/covetpy/covetpy/workerproto"
)

// Backend is what the Layer wraps and itself is: the middleware chain
// (*guard.Chain), or a *dispatch.Dispatcher.
type Backend interface {
	Lookup(method, path string, ps *router.Params) (router.Match[*dispatch.Route], router.Status)
	Serve(ctx context.Context, rt *dispatch.Route, req *dispatch.Request, w dispatch.ResponseWriter) error
	ServeWebSocket(ctx context.Context, rt *dispatch.Route, req *dispatch.Request, peer dispatch.WebSocketPeer) error
}

// Layer is the gateway's gRPC layer, the front ends' Backend in front of the
// middleware chain. Requests to routes of other kinds pass through it
// untouched. A call to a KindGRPC route (or, while no worker has registered
// the route table, any POST with a gRPC content-type) is served as gRPC:
//
//   - The content-type decides how: application/grpc (or +x, ;x) is native
//     gRPC, which needs HTTP/2 or HTTP/3 (a front end writer that can send
//     trailers): over HTTP/1.x it is answered HTTP 505.
//     application/grpc-web and application/grpc-web-text (+proto) are
//     gRPC-Web, over any HTTP version: the worker sees a native call (the
//     content-type rewritten, a text body decoded from base64 as it
//     streams), and the client gets the answer with its own content-type,
//     the messages (base64 again for text) and the status and trailing
//     metadata as gRPC-Web's trailer message at the end of the body, never
//     as HTTP trailers. Any other content-type is answered HTTP 415, as
//     gRPC's HTTP/2 protocol says.
//   - grpc-timeout (1 to 8 digits and a unit, H M S m u n) sets the call's
//     fixed deadline (dispatch.Request.Deadline): the worker gets the
//     smaller of it and the route's timeout, and past it the client gets
//     DEADLINE_EXCEEDED. A malformed grpc-timeout is answered INTERNAL, as
//     grpc-go's server answers it.
//   - The client always gets a gRPC status, never an HTTP error or a reset
//     stream: an answer that is not gRPC's (the chain's 401, 403 or 429, a
//     worker's plain HTTP response) becomes a trailers-only answer whose
//     code maps its HTTP status (PROTOCOL.md 2.10), and the dispatcher's
//     failures become statuses too: before the response head as a
//     trailers-only answer, after it as trailers (no live worker, a worker
//     that died or a queue wait past its deadline UNAVAILABLE, a full queue
//     RESOURCE_EXHAUSTED, the deadline DEADLINE_EXCEEDED, an invalid worker
//     answer INTERNAL, a worker's ERROR by its status, 500 UNKNOWN). A client
//     that went away (ErrCanceled) gets nothing: the front end resets the
//     stream.
//
// Methods the gateway answers itself (health, reflection) come from Local:
// Lookup gives a Local route for a POST no route of the table serves, and
// Serve answers it through Local, outside the middleware chain.
//
// Every gRPC call counts in covet_grpc_calls_total by service, method (from
// the route, never from the request) and the code the client got.
type Layer struct {
	next  Backend
	local Local // nil: none
	m     *metrics.Metrics
	log   *slog.Logger
}

// New returns the Layer in front of next. local may be nil (no gateway
// services), m nil (no metrics), log nil (discard).
func New(next Backend, local Local, m *metrics.Metrics, log *slog.Logger) *Layer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Layer{next: next, local: local, m: m, log: log}
}

// Lookup implements the front ends' Backend: next's route, or for a POST
// next does not route, Local's route for the path, if any.
func (l *Layer) Lookup(method, path string, ps *router.Params) (router.Match[*dispatch.Route], router.Status) {
	m, st := l.next.Lookup(method, path, ps)
	if l.local != nil && method == http.MethodPost && (st != router.StatusFound || m.Value == nil || m.Value.Pattern == metrics.Unmatched) {
		if rt := l.local.Route(path); rt != nil {
			ps.Reset()
			return router.Match[*dispatch.Route]{Value: rt, Pattern: rt.Pattern}, router.StatusFound
		}
	}
	return m, st
}

// ServeWebSocket passes a WebSocket session on to next.
func (l *Layer) ServeWebSocket(ctx context.Context, rt *dispatch.Route, req *dispatch.Request, peer dispatch.WebSocketPeer) error {
	return l.next.ServeWebSocket(ctx, rt, req, peer)
}

// StaticFields implements dispatch.StaticFielder by passing on next's fields
// (the chain's CORS fields and security headers): hs unchanged when next adds
// none.
func (l *Layer) StaticFields(rt *dispatch.Route, origin []byte, https bool, hs []workerproto.Header) []workerproto.Header {
	if sf, ok := l.next.(dispatch.StaticFielder); ok {
		return sf.StaticFields(rt, origin, https, hs)
	}
	return hs
}

// Serve implements the front ends' Backend (see Layer).
func (l *Layer) Serve(ctx context.Context, rt *dispatch.Route, req *dispatch.Request, w dispatch.ResponseWriter) error {
	h := &req.Head
	// Only a gRPC route, or the table's answer to every request while no
	// worker has registered (a POST there may be a gRPC call), needs the
	// content-type: other requests pass on without a look at their fields.
	unrouted := rt.Kind == dispatch.KindHTTP && rt.Pattern == metrics.Unmatched && h.Method == http.MethodPost
	if rt.Kind != dispatch.KindGRPC && !unrouted {
		return l.next.Serve(ctx, rt, req, w)
	}
	ct := field(h.Headers, "content-type")
	md := classify(ct)
	if unrouted && md == notGRPC {
		return l.next.Serve(ctx, rt, req, w)
	}
	if md == notGRPC {
		return answerHTTP(w, http.StatusUnsupportedMediaType)
	}
	if _, ok := w.(dispatch.TrailerWriter); md == native && !ok {
		return answerHTTP(w, http.StatusHTTPVersionNotSupported)
	}
	service, method := metrics.Unmatched, metrics.Unmatched
	if !unrouted {
		service, method, _ = strings.Cut(strings.TrimPrefix(rt.Pattern, "/"), "/")
	}
	code, err := l.serve(ctx, rt, req, w, md, ct)
	l.m.GRPCCall(service, method, code.String())
	return err
}

// serve serves one gRPC call and reports the code the client got.
func (l *Layer) serve(ctx context.Context, rt *dispatch.Route, req *dispatch.Request, w dispatch.ResponseWriter, md mode, ct []byte) (Code, error) {
	h := &req.Head
	cw := &callWriter{inner: w, mode: md, webCT: ct}
	if v := field(h.Headers, "grpc-timeout"); v != nil {
		d, ok := parseTimeout(v)
		if !ok {
			return Internal, cw.status(Internal, "malformed grpc-timeout", nil)
		}
		req.Deadline = time.Now().Add(d)
	} else if rt.Timeout == 0 {
		// No deadline from the client and none set for the route: as a gRPC
		// server, none (the gateway's default handler deadline would end a
		// quiet stream, or a long call, the client meant to keep open).
		req.Timeout = maxTimeout
	}
	if md != native {
		toNative(req, md)
	}
	var err error
	if l.local != nil && l.local.Route(h.Path) == rt {
		err = l.local.Serve(ctx, rt, req, cw)
	} else {
		err = l.next.Serve(ctx, rt, req, cw)
	}
	switch {
	case err == nil:
		if !cw.ended {
			// A body that ended without the worker's status.
			return Internal, cw.status(Internal, "the server sent no status", nil)
		}
		return cw.code, nil
	case errors.Is(err, dispatch.ErrCanceled) || ctx.Err() != nil:
		return Canceled, err
	case cw.ended:
		return cw.code, err // the status went out; then a write failed
	}
	code, msg, ok := statusOf(err)
	if !ok {
		return Unknown, err // the client went away, or the front end failed
	}
	l.log.Debug("grpc call failed", "path", h.Path, "code", code.String(), "err", err)
	return code, cw.status(code, msg, nil)
}

// statusOf maps an error of Serve to the status a gRPC client gets, or
// reports false for one that leaves nothing to answer (the client's body
// broke off because the client went away, a failed write).
func statusOf(err error) (Code, string, bool) {
	var be *dispatch.BodyError
	if errors.As(err, &be) {
		var he *http1.Error
		switch {
		case errors.As(be.Err, &he):
			return HTTPCode(he.Status), http.StatusText(he.Status), true
		case errors.Is(be.Err, errBadText):
			return Internal, "gRPC-Web text body is not base64", true
		}
		return 0, "", false
	}
	var se *dispatch.StatusError
	if !errors.As(err, &se) {
		return 0, "", false
	}
	switch se {
	case dispatch.ErrNoWorker, dispatch.ErrWorkerDied, dispatch.ErrQueueTimeout:
		return Unavailable, se.Reason, true
	case dispatch.ErrQueueFull:
		return ResourceExhausted, se.Reason, true
	case dispatch.ErrDeadline:
		return DeadlineExceeded, se.Reason, true
	case dispatch.ErrBadResponse:
		return Internal, se.Reason, true
	}
	// A worker's ERROR (500: its handler raised; no detail reaches the
	// client) or another status.
	return HTTPCode(se.Status), http.StatusText(se.Status), true
}

// answerHTTP answers a request that cannot be a gRPC call with a plain HTTP
// status, as the middleware chain answers.
func answerHTTP(w dispatch.ResponseWriter, status int) error {
	text := http.StatusText(status) + "\n"
	hs := []workerproto.Header{{Name: nameContentType, Value: []byte("text/plain; charset=utf-8")}}
	if err := w.WriteHead(status, hs, int64(len(text))); err != nil {
		return err
	}
	return w.WriteBody([]byte(text))
}

// maxTimeout bounds a grpc-timeout (eight digits of hours would overflow a
// time.Duration); the route's timeout is always smaller.
const maxTimeout = 100 * 365 * 24 * time.Hour

// parseTimeout reads a grpc-timeout value: 1 to 8 ASCII digits and a unit
// (gRPC's HTTP/2 protocol, "Timeout").
func parseTimeout(v []byte) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	var n int64
	for _, c := range v[:len(v)-1] {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if n > int64(maxTimeout/unit) {
		return maxTimeout, true
	}
	return time.Duration(n) * unit, true
}

// toNative turns a gRPC-Web request into the native call the worker sees:
// the content-type's base becomes application/grpc, and a text body is
// decoded from base64 (its length is then unknown).
func toNative(req *dispatch.Request, md mode) {
	h := &req.Head
	hs := make([]workerproto.Header, 0, len(h.Headers))
	for _, f := range h.Headers {
		switch {
		case workerproto.NameIs(f.Name, "content-type"):
			f.Value = retype(f.Value, webBase(md), ctGRPC)
		case md == webText && workerproto.NameIs(f.Name, "content-length"):
			continue
		}
		hs = append(hs, f)
	}
	h.Headers = hs
	if md != webText {
		return
	}
	switch {
	case req.BodyStream != nil:
		req.BodyStream = newTextBody(req.BodyStream)
		h.Body = -1
	case len(req.Body) > 0:
		body, rest, err := decodeQuanta(make([]byte, 0, len(req.Body)*3/4), req.Body)
		if err != nil || len(rest) > 0 {
			// Sent to the worker as a body that breaks off at once.
			req.Body, req.BodyStream, h.Body = nil, &failedBody{errBadText}, -1
			return
		}
		req.Body, h.Body = body, int64(len(body))
	}
}

// failedBody is a request body that fails at once.
type failedBody struct{ err error }

func (b *failedBody) Read([]byte) (int, error) { return 0, b.err }
func (b *failedBody) Stop()                    {}
