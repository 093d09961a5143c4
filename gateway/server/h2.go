package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/gateway/grpcgw"
	"github.com/covetpy/covetpy/gateway/http1"
	"github.com/covetpy/covetpy/ops/metrics"
	"github.com/covetpy/covetpy/router"
	covettls "github.com/covetpy/covetpy/tls"
	"github.com/covetpy/covetpy/workerproto"
)

// The HTTP/2 front end is Go's own (net/http's server, with Protocols set
// to HTTP/2 only): serveTLS and serveH2C hand it connections that chose h2
// through a connQueue, its listener, and its handler, a Handler, routes
// through Backend.Lookup and serves through Backend.Serve as the HTTP/1.1
// front end does. The same Handler serves HTTP/3 (covet-gateway runs
// quic-go's server with it).

// h2Front is the Server's HTTP/2 server.
type h2Front struct {
	hs *http.Server
	q  *connQueue
}

func (s *Server) newH2Front() *h2Front {
	cfg := &s.cfg
	var p http.Protocols
	p.SetHTTP2(cfg.HTTP2)
	p.SetUnencryptedHTTP2(cfg.H2C)
	q := &connQueue{ch: make(chan net.Conn), done: make(chan struct{})}
	hs := &http.Server{
		Handler:           s.Handler("2"),
		Protocols:         &p,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.Limits.MaxHeaderBytes,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: cfg.MaxConcurrentStreams,
			// The protocol's default and least frame size, advertised
			// in SETTINGS_MAX_FRAME_SIZE instead of net/http's 1 MiB:
			// a client's frame is buffered whole before it is parsed,
			// so this bounds what one frame can make the connection
			// hold, and a larger frame is the FRAME_SIZE_ERROR h2spec
			// checks for (http2/4.2/3; docs/conformance.md).
			MaxReadFrameSize: 16 << 10,
			WriteByteTimeout: cfg.WriteTimeout,
			// An idle connection is pinged after half the idle timeout
			// and closed when the ping is not answered.
			SendPingTimeout: cfg.IdleTimeout / 2,
			PingTimeout:     cfg.ReadHeaderTimeout,
		},
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext: func(net.Listener) context.Context { return s.baseCtx },
		// Each connection's requests share an h2Conn, through which
		// handler.clientReset ends a Rapid Reset.
		ConnContext: func(ctx context.Context, nc net.Conn) context.Context {
			return context.WithValue(ctx, h2ConnKey{}, &h2Conn{nc: nc})
		},
		ConnState: func(nc net.Conn, st http.ConnState) {
			if st == http.StateClosed || st == http.StateHijacked {
				s.pending.Add(-1)
				s.metrics.ConnClosed(metrics.ProtoH2)
			}
		},
	}
	go hs.Serve(q)
	return &h2Front{hs: hs, q: q}
}

// serveH2 hands nc, which counts in s.pending, to the HTTP/2 server.
func (s *Server) serveH2(nc net.Conn) {
	if s.h2 != nil {
		s.metrics.ConnOpened(metrics.ProtoH2) // before ConnState can count it closed
		if s.h2.q.deliver(nc) {
			return
		}
		s.metrics.ConnClosed(metrics.ProtoH2)
	}
	// HTTP/2 is off (a TLS config offering h2 without HTTP2 set), or the
	// server is shutting down.
	s.log.Debug("http2 connection refused", "remote", remoteAddr(nc), "http2", s.cfg.HTTP2, "closing", s.inShutdown.Load())
	s.dropPending(nc)
}

// h2Conn is one HTTP/2 connection as its requests see it, through their
// context. net/http's server runs at most MaxConcurrentStreams handlers per
// connection, but a client that resets each stream at once (Rapid Reset,
// CVE-2023-44487) has its next ones started as fast as it sends them, each a
// worker request begun and canceled. So the requests a client reset before
// their response was done are counted, and a connection where they are at
// least h2MinResets and half of its requests is closed (Envoy's rule for
// premature resets is alike).
type h2Conn struct {
	nc       net.Conn
	requests atomic.Int64
	resets   atomic.Int64
	closed   atomic.Bool
}

type h2ConnKey struct{}

// h2MinResets is how many requests a client may reset on one connection
// before the share of them can end it.
const h2MinResets = 200

// clientReset counts a request of ctx's connection that its client reset
// (the Server not shutting down), and closes the connection when such
// requests are too many.
func (h *handler) clientReset(ctx context.Context) {
	hc, ok := ctx.Value(h2ConnKey{}).(*h2Conn)
	if !ok || h.s.inShutdown.Load() {
		return
	}
	n := hc.resets.Add(1)
	if n >= h2MinResets && 2*n >= hc.requests.Load() && hc.closed.CompareAndSwap(false, true) {
		h.s.log.Warn("http2 client reset too many requests; closing its connection", "remote", remoteAddr(hc.nc), "requests", hc.requests.Load(), "reset", n)
		hc.nc.Close()
	}
}

// connQueue is a net.Listener whose connections are handed to it.
type connQueue struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) deliver(c net.Conn) bool {
	select {
	case q.ch <- c:
		return true
	case <-q.done:
		return false
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4zero} }

// Handler returns an http.Handler that serves requests as the Server
// does: routed through the Backend, answered by the gateway itself where
// the HTTP/1.1 front end would be (400, 404, 405, OPTIONS, 413, 503...).
// proto is the HTTP version workers and logs are told: "2" or "3". Its
// requests count in the Server's metrics and access log; Config limits
// apply (MaxBodyBytes, BodyReadTimeout and MinBodyRate, the response
// budget). Call it after Prepare.
func (s *Server) Handler(proto string) http.Handler {
	return &handler{s: s, proto: proto, seed: rand.Uint64()}
}

type handler struct {
	s     *Server
	proto string
	seed  uint64
	n     atomic.Uint64
}

// hx is one request's scratch space, pooled.
type hx struct {
	params  router.Params
	pathBuf []byte
	wparams []workerproto.Param
	hdrs    []workerproto.Header
	ridBuf  [16]byte
	dreq    dispatch.Request
	w       hWriter
}

var hxs = sync.Pool{New: func() any { return new(hx) }}

func (h *handler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect && h.proto == "2" && r.Header.Get(":protocol") != "" {
		h.serveExtendedConnect(rw, r) // RFC 8441 WebSocket (ws_h2.go)
		return
	}
	s := h.s
	start := time.Now()
	x := hxs.Get().(*hx)
	defer func() {
		x.params.Reset()
		x.wparams, x.hdrs = x.wparams[:0], x.hdrs[:0]
		x.dreq = dispatch.Request{Head: workerproto.RequestHead{Headers: x.dreq.Head.Headers[:0]}}
		x.w = hWriter{}
		hxs.Put(x)
	}()
	if hc, ok := r.Context().Value(h2ConnKey{}).(*h2Conn); ok {
		hc.requests.Add(1)
	}
	method := methodString(stringBytes(r.Method))
	target := r.RequestURI
	path, query, _ := strings.Cut(target, "?")
	rid := r.Header.Get("X-Request-Id")
	if !saneRequestID(stringBytes(rid)) {
		// A copy: the response's header fields may be encoded after
		// ServeHTTP has returned and x is reused.
		rid = strings.Clone(requestID(&x.ridBuf, h.seed, h.n.Add(1)))
	}
	w := &x.w
	*w = hWriter{rw: rw, req: r, s: s, rid: rid, isHead: method == http.MethodHead}
	w.flusher, _ = rw.(http.Flusher)
	// A gRPC call (always a POST) gets the gateway's own answers as gRPC
	// statuses, and a native one's body streams (below).
	var ct string
	if method == http.MethodPost {
		ct = r.Header.Get("Content-Type")
		w.grpc = grpcgw.ContentIsGRPC(ct)
	}
	obs := func(rt *dispatch.Route) {
		if s.timed {
			s.observeStream(h.proto, method, path, rid, r.RemoteAddr, rt, w.status, w.written, time.Since(start))
		}
	}

	var answer int
	var allow string
	var rt *dispatch.Route
	var pattern string
	switch {
	case method == http.MethodConnect:
		answer = 501 // not a proxy (HTTP/2 extended CONNECT went to serveExtendedConnect)
	case target == "*":
		answer = 204
	case earlyData(r) && !replayable(method):
		answer = 425 // replayable early data (HTTP/3 0-RTT): RFC 8470
	default:
		answer, allow, rt, pattern = s.routeRequest(method, path, &x.params, &x.pathBuf, &x.wparams)
	}
	if answer != 0 {
		w.answer(answer, allow, 0)
		obs(nil)
		return
	}
	if rt.Kind == dispatch.KindStatic { // static.go: from disk, no worker
		err := s.serveStaticHTTP(w, r, rt, &x.params, path, query)
		obs(rt)
		if err != nil {
			panic(http.ErrAbortHandler) // the client must see a broken response
		}
		return
	}
	if rt.Kind == dispatch.KindWebSocket && !rt.AlsoHTTP {
		// Only an extended CONNECT (ws_h2.go) opens a session; over HTTP/3
		// nothing does. A route that also serves HTTP takes the rest.
		w.answer(426, "", 0)
		obs(rt)
		return
	}
	var stream *h2Body
	var body []byte
	status := 0
	if rt.Kind == dispatch.KindGRPC && w.grpc && grpcgw.ContentIsNative(ct) {
		// A gRPC call's messages go to the worker as they come: a
		// bidirectional stream waits for answers between them. Its
		// length is not bounded as a whole: the worker bounds each
		// message (max_receive_message_length), as gRPC servers do,
		// and a long client stream is no larger a body than a long
		// server stream is a response.
		// Nor is its pace: a client stream may rest between messages
		// for as long as the call lasts (a chat, a subscription).
		stream = newH2Body(s, rw, r)
		stream.max, stream.unpaced = math.MaxInt64, true
	} else if r.ContentLength < 0 || r.ContentLength > streamMin {
		// Large or of unknown length: the worker takes it as it arrives.
		if r.ContentLength > s.cfg.Limits.MaxBodyBytes {
			status = 413
		} else {
			stream = newH2Body(s, rw, r)
		}
	} else {
		body, status = h.readBody(rw, r)
	}
	if status != 0 {
		if status != statusClientGone {
			w.answer(status, "", 0)
		}
		w.status = status
		obs(rt)
		return
	}
	ctx := r.Context()
	if ctx.Err() != nil {
		// The stream was reset (or the connection lost) before its
		// request reached a worker: start none. Rapid Reset (HEADERS
		// then RST_STREAM at once, thousands of times) then costs the
		// workers only the requests already on their way.
		h.clientReset(ctx)
		w.status = 0
		obs(rt)
		return
	}
	if !s.admitResponse(ctx) {
		if ctx.Err() == nil {
			s.metrics.BudgetShed()
			w.answer(503, "", 1)
		}
		obs(rt)
		return
	}

	hs := x.dreq.Head.Headers[:0]
	hs = append(hs, workerproto.Header{Name: nameHost, Value: stringBytes(r.Host)})
	for _, name := range slices.Sorted(maps.Keys(r.Header)) {
		vs := r.Header[name]
		if name == "Cookie" && len(vs) > 1 {
			// Split cookie fields are one field again (RFC 9113 8.2.3).
			hs = append(hs, workerproto.Header{Name: stringBytes(name), Value: []byte(strings.Join(vs, "; "))})
			continue
		}
		for _, v := range vs {
			hs = append(hs, workerproto.Header{Name: stringBytes(name), Value: stringBytes(v)})
		}
	}
	d := &x.dreq
	d.Head = workerproto.RequestHead{
		Method:      method,
		Path:        path,
		Query:       query,
		Headers:     hs,
		Route:       pattern,
		Params:      x.wparams,
		HTTPVersion: h.proto,
		Scheme:      "https",
		Client:      r.RemoteAddr,
		RequestID:   rid,
		Body:        int64(len(body)),
		TimeoutMS:   rt.Timeout.Milliseconds(),
	}
	if stream != nil {
		d.Head.Body = r.ContentLength // -1: unknown
		d.BodyStream = stream
	}
	if r.TLS == nil {
		d.Head.Scheme = "http"
	}
	if r.TLS != nil {
		d.Head.ClientCert = clientCert(r.TLS)
	}
	d.Body = body
	err := h.callServe(ctx, rt, d, w)
	if stream != nil {
		stream.Stop() // Serve may not have read it at all
	}
	var be *dispatch.BodyError
	switch {
	case errors.As(err, &be) && !w.started:
		// The body broke off before the response began (PROTOCOL.md 2.8).
		var pe *http1.Error
		if errors.As(be.Err, &pe) {
			w.answer(pe.Status, "", 0)
		} else {
			h.clientReset(ctx)
			w.status = statusClientGone
		}
	case err == nil && w.started:
		if w.length >= 0 && w.written < w.length && !w.isHead {
			s.log.Warn("response body shorter than its length", "remote", r.RemoteAddr, "request_id", rid, "missing", w.length-w.written)
			obs(rt)
			panic(http.ErrAbortHandler)
		}
	case errors.Is(err, dispatch.ErrCanceled) || ctx.Err() != nil:
		h.clientReset(ctx)
		w.status = max(w.status, 0)
	case w.started:
		if !errors.Is(err, dispatch.ErrAborted) && w.werr == nil {
			s.log.Warn("backend failed mid-response", "remote", r.RemoteAddr, "request_id", rid, "err", err)
		}
		obs(rt)
		panic(http.ErrAbortHandler) // the client must see a broken response
	default:
		if se := statusError(err); se != nil {
			w.answer(se.Status, "", se.RetryAfter)
		} else {
			if err == nil {
				err = errors.New("server: backend returned no response")
			}
			s.log.Warn("backend error", "remote", r.RemoteAddr, "request_id", rid, "err", err)
			w.answer(502, "", 0)
		}
	}
	obs(rt)
}

var nameHost = []byte("host")

// clientCert is the verified client certificate of a TLS connection, for
// the worker; nil when the client gave none.
func clientCert(cs *tls.ConnectionState) *workerproto.ClientCert {
	id := covettls.Identity(cs)
	if id == nil {
		return nil
	}
	return &workerproto.ClientCert{Subject: id.Subject, SANs: id.SANs, Fingerprint: id.Fingerprint}
}

func (h *handler) callServe(ctx context.Context, rt *dispatch.Route, d *dispatch.Request, w *hWriter) (err error) {
	defer func() {
		if p := recover(); p != nil {
			h.s.log.Error("backend panic", "panic", p, "stack", string(debug.Stack()))
			err = errBackendPanic
		}
	}()
	return h.s.Backend.Serve(ctx, rt, d, w)
}

// readBody reads r's whole body within Limits.MaxBodyBytes, at the pace
// BodyReadTimeout and MinBodyRate ask of HTTP/1.1 bodies. status is the
// answer when it cannot: 413, 408, or statusClientGone (the stream ended).
func (h *handler) readBody(rw http.ResponseWriter, r *http.Request) (body []byte, status int) {
	cfg := &h.s.cfg
	maxBody := cfg.Limits.MaxBodyBytes
	if r.ContentLength > maxBody {
		return nil, 413
	}
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return nil, 0
	}
	if r.ContentLength > 0 {
		body = make([]byte, 0, r.ContentLength)
	}
	rc := http.NewResponseController(rw)
	start := time.Now()
	for {
		if len(body) == cap(body) {
			body = slices.Grow(body, min(max(4<<10, len(body)), int(maxBody+1-int64(len(body)))))
		}
		_ = rc.SetReadDeadline(cfg.bodyDeadline(start, int64(len(body))))
		n, err := r.Body.Read(body[len(body):cap(body)])
		body = body[:len(body)+n]
		if int64(len(body)) > maxBody {
			return nil, 413
		}
		switch {
		case err == io.EOF:
			_ = rc.SetReadDeadline(time.Time{})
			return body, 0
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil, 408
		case err != nil:
			h.s.log.Debug("request body", "remote", r.RemoteAddr, "err", err)
			return nil, statusClientGone
		}
	}
}

// errH2BodyTooLarge breaks off a streamed HTTP/2 or HTTP/3 body that passes
// Limits.MaxBodyBytes.
var errH2BodyTooLarge = &http1.Error{Status: 413, Reason: "body_too_large", Close: true}

// h2Body is an HTTP/2 or HTTP/3 request body streamed to the backend
// (dispatch.BodyStream): r.Body read as the backend asks, within
// Limits.MaxBodyBytes, at the pace BodyReadTimeout and MinBodyRate ask of the
// client. Only the time spent in the client's reads counts against that pace,
// not the time the backend takes between them. A failure is an *http1.Error
// (413, 408) or the client's own (the stream reset or the connection lost).
type h2Body struct {
	s    *Server
	rc   *http.ResponseController
	body io.ReadCloser
	max  int64
	// unpaced: no BodyReadTimeout and MinBodyRate deadline (a gRPC call's
	// stream, whose client may rest between messages).
	unpaced bool

	mu      sync.Mutex // guards stopped
	stopped bool

	read   int64         // bytes read; owned by the reading goroutine
	client time.Duration // time spent in reads
	closed sync.Once
}

func newH2Body(s *Server, rw http.ResponseWriter, r *http.Request) *h2Body {
	return &h2Body{s: s, rc: http.NewResponseController(rw), body: r.Body, max: s.cfg.Limits.MaxBodyBytes}
}

// Read implements dispatch.BodyStream.
func (b *h2Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	stopped := b.stopped
	b.mu.Unlock()
	if stopped || b.body == nil || b.body == http.NoBody {
		if stopped {
			return 0, errPipeStopped
		}
		return 0, io.EOF
	}
	cfg := &b.s.cfg
	start := time.Now()
	if !b.unpaced {
		_ = b.rc.SetReadDeadline(cfg.bodyDeadline(start.Add(-b.client), b.read))
	}
	n, err := b.body.Read(p)
	b.client += time.Since(start)
	b.read += int64(n)
	switch {
	case b.read > b.max:
		return 0, errH2BodyTooLarge
	case err == nil, err == io.EOF:
		if err == io.EOF {
			_ = b.rc.SetReadDeadline(time.Time{})
		}
		return n, err
	case errors.Is(err, os.ErrDeadlineExceeded):
		return n, errTimeout
	default:
		b.s.log.Debug("request body", "err", err)
		return n, errClientGone
	}
}

// Stop implements dispatch.BodyStream: closing the body makes a blocked Read
// return.
func (b *h2Body) Stop() {
	b.mu.Lock()
	b.stopped = true
	b.mu.Unlock()
	if b.body != nil {
		b.closed.Do(func() { b.body.Close() })
	}
}

// hWriter is the dispatch.ResponseWriter of one HTTP/2 or HTTP/3 request.
type hWriter struct {
	rw      http.ResponseWriter
	req     *http.Request
	flusher http.Flusher
	s       *Server
	rid     string
	isHead  bool
	grpc    bool // a gRPC call (native or gRPC-Web): answer gives a gRPC status

	started bool
	stream  bool  // body of unknown length: each piece is flushed
	length  int64 // the body length announced; -1: none
	status  int
	written int64
	werr    error // the client's stream failed
	err     error
}

var (
	_ dispatch.ResponseWriter = (*hWriter)(nil)
	_ dispatch.FileWriter     = (*hWriter)(nil)
	_ dispatch.TrailerWriter  = (*hWriter)(nil)
)

// WriteHead implements dispatch.ResponseWriter. Connection-specific fields
// (forbidden in HTTP/2 and HTTP/3) and Content-Length are dropped, the
// gateway's Server, X-Request-ID and Alt-Svc added where the worker set
// none; no Content-Type is guessed.
func (w *hWriter) WriteHead(status int, headers []workerproto.Header, bodyLen int64) error {
	if w.err != nil {
		return w.err
	}
	if w.started {
		w.err = errHeadTwice
		return w.err
	}
	if status < 200 || status > 599 {
		w.err = errBadStatus
		return w.err
	}
	hdr := w.rw.Header()
	headLen := int64(-1)
	for i := range headers {
		f := &headers[i]
		switch {
		case fieldIs(f.Name, "content-length"):
			if w.isHead {
				headLen = parseLength(f.Value)
			}
			continue
		case connectionField(f.Name):
			continue
		}
		hdr.Add(string(f.Name), string(f.Value))
	}
	w.fill(hdr)
	w.length = bodyLen
	switch {
	case w.isHead && headLen >= 0:
		hdr["Content-Length"] = []string{strconv.FormatInt(headLen, 10)}
	case !w.isHead && bodyLen >= 0 && bodyAllowed(status):
		hdr["Content-Length"] = []string{strconv.FormatInt(bodyLen, 10)}
	}
	w.stream = bodyLen < 0
	w.started, w.status = true, status
	w.rw.WriteHeader(status)
	if w.stream && w.flusher != nil {
		w.flusher.Flush() // the head goes out now: the body may be long coming
	}
	return nil
}

// connectionField reports whether a field is connection-specific, which
// HTTP/2 and HTTP/3 forbid (RFC 9113 8.2.2).
func connectionField(name []byte) bool {
	return fieldIs(name, "transfer-encoding") || fieldIs(name, "connection") || fieldIs(name, "keep-alive") ||
		fieldIs(name, "proxy-connection") || fieldIs(name, "upgrade") || fieldIs(name, "te")
}

// fill adds the gateway's fields to hdr where absent.
func (w *hWriter) fill(hdr http.Header) {
	if _, ok := hdr["Server"]; !ok {
		hdr["Server"] = []string{"covetpy"}
	}
	if _, ok := hdr["X-Request-Id"]; !ok {
		hdr["X-Request-Id"] = []string{w.rid}
	}
	if a := w.s.cfg.AltSvc; a != "" {
		if _, ok := hdr["Alt-Svc"]; !ok {
			hdr["Alt-Svc"] = []string{a}
		}
	}
	if _, ok := hdr["Content-Type"]; !ok {
		hdr["Content-Type"] = nil // no sniffing
	}
}

func bodyAllowed(status int) bool {
	return status != 204 && status != 304 && (status < 100 || status > 199)
}

// WriteBody implements dispatch.ResponseWriter.
func (w *hWriter) WriteBody(p []byte) error {
	if w.err != nil {
		return w.err
	}
	if !w.started {
		w.err = errBodyBeforeHead
		return w.err
	}
	if w.length >= 0 && w.written+int64(len(p)) > w.length {
		w.err = errBodyTooLong
		return w.err
	}
	if w.isHead || !bodyAllowed(w.status) {
		w.written += int64(len(p))
		return nil
	}
	n, err := w.rw.Write(p)
	w.written += int64(n)
	if err == nil && w.stream && w.flusher != nil {
		w.flusher.Flush()
	}
	if err != nil {
		w.werr, w.err = err, err
	}
	return err
}

// WriteBodyv implements dispatch.ResponseWriter.
func (w *hWriter) WriteBodyv(ps [][]byte) error {
	stream := w.stream
	w.stream = false // one flush for all the pieces
	defer func() { w.stream = stream }()
	for _, p := range ps {
		if err := w.WriteBody(p); err != nil {
			return err
		}
	}
	if stream && w.flusher != nil && w.err == nil {
		w.flusher.Flush()
	}
	return nil
}

// answer writes a response generated by the gateway, as conn.answer does;
// a gRPC call's as a gRPC status (grpcAnswer).
func (w *hWriter) answer(status int, allow string, retryAfter int) {
	if w.grpc {
		w.grpcAnswer(status)
		return
	}
	hdr := w.rw.Header()
	w.fill(hdr)
	text := ""
	if status != 204 {
		text = http1.StatusText(status) + "\n"
		hdr["Content-Type"] = []string{"text/plain; charset=utf-8"}
		hdr["Content-Length"] = []string{strconv.Itoa(len(text))}
	}
	if allow != "" {
		hdr["Allow"] = []string{allow}
	}
	if retryAfter > 0 {
		hdr["Retry-After"] = []string{strconv.Itoa(retryAfter)}
	}
	w.status = status
	w.rw.WriteHeader(status)
	if text != "" && !w.isHead {
		n, _ := io.WriteString(w.rw, text)
		w.written += int64(n)
	}
}

// WriteTrailers implements dispatch.TrailerWriter: the fields go out as
// HTTP/2 or HTTP/3 trailers (a HEADERS frame ending the stream) when the
// handler returns, even after a head with no body: net/http sends the head
// at once (WriteHead flushed it) and the trailers after it. Framing and
// connection-specific fields are dropped, as the worker may not send them.
func (w *hWriter) WriteTrailers(headers []workerproto.Header) error {
	if w.err != nil {
		return w.err
	}
	if !w.started {
		w.err = errBodyBeforeHead
		return w.err
	}
	hdr := w.rw.Header()
	for i := range headers {
		f := &headers[i]
		if fieldIs(f.Name, "content-length") || fieldIs(f.Name, "trailer") || connectionField(f.Name) {
			continue
		}
		hdr.Add(http.TrailerPrefix+string(f.Name), string(f.Value))
	}
	return nil
}

// grpcAnswer answers a gRPC call the gateway ends before any worker does (no
// route: UNIMPLEMENTED naming the method; a body over max_body_bytes, load
// shed, ...) as gRPC does: trailers-only, HTTP 200 with the status in one
// HEADERS frame that ends the stream, the code mapped from status as the
// Layer (grpcgw) maps the chain's answers. The Layer never sees these.
func (w *hWriter) grpcAnswer(status int) {
	code, msg := grpcgw.HTTPCode(status), http.StatusText(status)
	if status == 404 || status == 405 {
		code, msg = grpcgw.Unimplemented, "unknown method "+w.req.URL.Path
	}
	hdr := w.rw.Header()
	w.fill(hdr)
	hdr["Content-Type"] = []string{w.req.Header.Get("Content-Type")} // gRPC's, native or gRPC-Web
	hdr["Grpc-Status"] = []string{strconv.Itoa(int(code))}
	hdr["Grpc-Message"] = []string{grpcgw.EncodeMessage(msg)}
	w.status = 200
	w.rw.WriteHeader(200)
	w.s.metrics.GRPCCall(metrics.Unmatched, metrics.Unmatched, code.String())
}

// WriteInterim sends an informational response (103 Early Hints) before
// the final head; a status outside 100..199 other than 101, or a call after
// the head, is an error.
func (w *hWriter) WriteInterim(status int, headers []workerproto.Header) error {
	if w.err != nil {
		return w.err
	}
	if w.started || status < 100 || status > 199 || status == 101 {
		return errBadStatus
	}
	hdr := w.rw.Header()
	saved := map[string][]string{}
	for i := range headers {
		f := &headers[i]
		if fieldIs(f.Name, "content-length") || connectionField(f.Name) {
			continue
		}
		name := http.CanonicalHeaderKey(string(f.Name))
		if _, ok := saved[name]; !ok {
			saved[name] = hdr[name]
		}
		hdr[name] = append(hdr[name], string(f.Value))
	}
	w.rw.WriteHeader(status)
	// The fields went with the 1xx; the final response has its own.
	for name, vs := range saved {
		if vs == nil {
			delete(hdr, name)
		} else {
			hdr[name] = vs
		}
	}
	return nil
}
