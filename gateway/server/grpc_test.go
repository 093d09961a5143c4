package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/gateway/grpcgw"
	"github.com/covetpy/covetpy/gateway/http1"
	"github.com/covetpy/covetpy/ops/metrics"
	"github.com/covetpy/covetpy/router"
	"github.com/covetpy/covetpy/workerproto"
)

// These tests run a real grpc-go client against the Server with the gRPC
// Layer (grpcgw) in front of grpcWorker, which stands in for the dispatcher
// and a Python worker: it answers as dispatch.Serve does, through the
// ResponseWriter, and fails with dispatch's errors.

// rawCodec sends a gRPC message's bytes as they are: the gateway never
// decodes protobuf, so the tests need none.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}
func (rawCodec) Name() string { return "raw" }

// grpcMsg frames p as a gRPC length-prefixed message.
func grpcMsg(p []byte) []byte {
	b := make([]byte, 5, 5+len(p))
	binary.BigEndian.PutUint32(b[1:], uint32(len(p)))
	return append(b, p...)
}

// readMsg reads one length-prefixed message; io.EOF at a message boundary.
func readMsg(r io.Reader) ([]byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	p := make([]byte, binary.BigEndian.Uint32(h[1:]))
	_, err := io.ReadFull(r, p)
	return p, err
}

type grpcHandler func(ctx context.Context, req *dispatch.Request, body io.Reader, w dispatch.ResponseWriter) error

// grpcWorker is the stand-in backend: KindGRPC routes, each served by a
// handler that reads the request's messages from body.
type grpcWorker struct {
	r        *router.Router[*dispatch.Route]
	handlers map[string]grpcHandler
	mu       sync.Mutex
	canceled chan string // a handler's path when its context ended
	heads    chan workerproto.RequestHead
	deadline time.Time // the last request's
}

func newGRPCWorker(t *testing.T) *grpcWorker {
	g := &grpcWorker{r: router.New[*dispatch.Route](), handlers: map[string]grpcHandler{},
		canceled: make(chan string, 8), heads: make(chan workerproto.RequestHead, 64)}
	ok := func(w dispatch.ResponseWriter, md ...string) error {
		return w.WriteHead(200, fields(append([]string{"content-type", "application/grpc"}, md...)...), -1)
	}
	g.handle(t, "/test.S/Unary", func(ctx context.Context, req *dispatch.Request, body io.Reader, w dispatch.ResponseWriter) error {
		in, err := readMsg(body)
		if err != nil {
			return err
		}
		h := req.Head
		if err := ok(w, "x-init", hdrOf(h, "x-custom"), "x-echo-bin", hdrOf(h, "x-data-bin")); err != nil {
			return err
		}
		if err := w.WriteBody(grpcMsg(append([]byte("echo:"), in...))); err != nil {
			return err
		}
		return w.(dispatch.TrailerWriter).WriteTrailers(fields("grpc-status", "0", "x-trail-bin", base64.RawStdEncoding.EncodeToString([]byte{0, 1, 0xfe})))
	})
	g.handle(t, "/test.S/Stream", func(ctx context.Context, req *dispatch.Request, body io.Reader, w dispatch.ResponseWriter) error {
		// Bidirectional: each message answered as it comes (ping-pong),
		// then "n=<count>" once the client's stream ends.
		if err := ok(w); err != nil {
			return err
		}
		n := 0
		for {
			in, err := readMsg(body)
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			n++
			if err := w.WriteBody(grpcMsg(append([]byte("pong:"), in...))); err != nil {
				return err
			}
		}
		if err := w.WriteBody(grpcMsg([]byte("n=" + strconv.Itoa(n)))); err != nil {
			return err
		}
		return w.(dispatch.TrailerWriter).WriteTrailers(fields("grpc-status", "0"))
	})
	g.handle(t, "/test.S/Fail", func(ctx context.Context, req *dispatch.Request, body io.Reader, w dispatch.ResponseWriter) error {
		how := hdrOf(req.Head, "x-fail")
		if after, ok := strings.CutPrefix(how, "after-"); ok {
			// The response has begun: one message, then the failure.
			if err := w.WriteHead(200, fields("content-type", "application/grpc"), -1); err != nil {
				return err
			}
			if err := w.WriteBody(grpcMsg([]byte("first"))); err != nil {
				return err
			}
			return &dispatch.AbortError{Cause: failures[after]}
		}
		if status, err := strconv.Atoi(how); err == nil {
			// An HTTP answer, as the chain's 401 or a worker's plain response.
			return w.WriteHead(status, fields("content-type", "text/plain", "www-authenticate", "Bearer"), 0)
		}
		if how == "trailers-only" { // PROTOCOL.md 2.10: a RESP of body 0
			return w.WriteHead(200, fields("content-type", "application/grpc", "grpc-status", "5", "grpc-message", "no such user: caf%C3%A9", "x-id", "7"), 0)
		}
		return failures[how]
	})
	sleep := func(ctx context.Context, req *dispatch.Request, body io.Reader, w dispatch.ResponseWriter) error {
		g.mu.Lock()
		g.deadline = req.Deadline
		g.mu.Unlock()
		var late <-chan time.Time // the dispatcher's deadline, as dispatch enforces it
		if !req.Deadline.IsZero() {
			late = time.After(time.Until(req.Deadline))
		}
		select {
		case <-ctx.Done():
			g.canceled <- req.Head.Path
			return dispatch.ErrCanceled
		case <-late:
			return dispatch.ErrDeadline
		}
	}
	g.handle(t, "/test.S/Sleep", sleep)
	g.handle(t, "/test.S/Hold", sleep)
	return g
}

var failures = map[string]error{
	"no-worker":    dispatch.ErrNoWorker,
	"queue-full":   dispatch.ErrQueueFull,
	"queue-time":   dispatch.ErrQueueTimeout,
	"died":         dispatch.ErrWorkerDied,
	"deadline":     dispatch.ErrDeadline,
	"bad-response": dispatch.ErrBadResponse,
	"raised":       &dispatch.StatusError{Status: 500, Reason: "worker error"},
	"err-fragment": dispatch.ErrWorkerAborted,
}

// fields makes header fields of name, value pairs, leaving out empty values.
func fields(flat ...string) []workerproto.Header {
	var hs []workerproto.Header
	for i := 0; i+1 < len(flat); i += 2 {
		if flat[i+1] != "" {
			hs = append(hs, workerproto.Header{Name: []byte(flat[i]), Value: []byte(flat[i+1])})
		}
	}
	return hs
}

func hdrOf(h workerproto.RequestHead, name string) string {
	for _, f := range h.Headers {
		if workerproto.NameIs(f.Name, name) {
			return string(f.Value)
		}
	}
	return ""
}

func (g *grpcWorker) handle(t *testing.T, path string, h grpcHandler) {
	t.Helper()
	rt := &dispatch.Route{App: "grpc", Pattern: path, Kind: dispatch.KindGRPC}
	if err := g.r.Add(router.Route[*dispatch.Route]{Method: "POST", Pattern: path, Value: rt}); err != nil {
		t.Fatal(err)
	}
	g.handlers[path] = h
}

func (g *grpcWorker) Lookup(method, path string, ps *router.Params) (router.Match[*dispatch.Route], router.Status) {
	return g.r.Lookup(method, path, ps)
}

func (g *grpcWorker) Serve(ctx context.Context, rt *dispatch.Route, req *dispatch.Request, w dispatch.ResponseWriter) error {
	h := req.Head // a copy: the front end reuses the fields' memory
	h.Headers = make([]workerproto.Header, len(req.Head.Headers))
	for i, f := range req.Head.Headers {
		h.Headers[i] = workerproto.Header{Name: bytes.Clone(f.Name), Value: bytes.Clone(f.Value)}
	}
	h.Path = strings.Clone(h.Path)
	g.heads <- h
	var body io.Reader = bytes.NewReader(req.Body)
	if req.BodyStream != nil {
		body = req.BodyStream
	}
	return g.handlers[rt.Pattern](ctx, req, body, w)
}

func (g *grpcWorker) ServeWebSocket(context.Context, *dispatch.Route, *dispatch.Request, dispatch.WebSocketPeer) error {
	return errors.New("no WebSocket here")
}

// lastHead is the head of the last request the worker got.
func (g *grpcWorker) lastHead(t *testing.T) workerproto.RequestHead {
	t.Helper()
	var h workerproto.RequestHead
	for {
		select {
		case h = <-g.heads:
		default:
			return h
		}
	}
}

// grpcSetup runs the Server (h2c and TLS) with the Layer over a grpcWorker,
// with metrics on a registry of its own.
type grpcSetup struct {
	g       *grpcWorker
	reg     *prometheus.Registry
	h2c     *testServer
	tlsSrv  *testServer
	tlsConf *tls.Config
}

func startGRPC(t *testing.T) *grpcSetup {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	g := newGRPCWorker(t)
	layer := grpcgw.New(g, nil, m, nil)
	s := &grpcSetup{g: g, reg: reg}
	s.h2c = startServer(t, Config{H2C: true, Metrics: m}, layer)
	s.tlsSrv, s.tlsConf = startTLSServer(t, Config{Metrics: m}, layer)
	return s
}

// conns returns a client connection over h2c and one over TLS.
func (s *grpcSetup) conns(t *testing.T) map[string]*grpc.ClientConn {
	t.Helper()
	out := map[string]*grpc.ClientConn{}
	for name, c := range map[string]struct {
		addr  string
		creds credentials.TransportCredentials
	}{
		"h2c": {s.h2c.addr, insecure.NewCredentials()},
		"tls": {s.tlsSrv.addr, credentials.NewTLS(s.tlsConf.Clone())},
	} {
		cc, err := grpc.NewClient("passthrough:///"+c.addr, grpc.WithTransportCredentials(c.creds),
			grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		out[name] = cc
	}
	return out
}

func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestGRPCUnaryMetadata: a unary call over h2c and TLS; metadata both ways,
// -bin fields included (the worker sees the base64 the client sent), the
// worker's initial and trailing metadata reach the client.
func TestGRPCUnaryMetadata(t *testing.T) {
	s := startGRPC(t)
	for name, cc := range s.conns(t) {
		t.Run(name, func(t *testing.T) {
			ctx := metadata.AppendToOutgoingContext(ctxTimeout(t), "x-custom", "hello", "x-data-bin", string([]byte{0xff, 0, 1}))
			in, out := []byte("ping"), []byte(nil)
			var hdr, trl metadata.MD
			if err := cc.Invoke(ctx, "/test.S/Unary", &in, &out, grpc.Header(&hdr), grpc.Trailer(&trl)); err != nil {
				t.Fatal(err)
			}
			if string(out) != "echo:ping" {
				t.Fatalf("answer %q", out)
			}
			h := s.g.lastHead(t)
			if hdrOf(h, "content-type") != "application/grpc+raw" || hdrOf(h, "te") != "trailers" || hdrOf(h, "x-data-bin") != "/wAB" || h.Body != -1 {
				t.Errorf("worker saw content-type %q te %q x-data-bin %q body %d", hdrOf(h, "content-type"), hdrOf(h, "te"), hdrOf(h, "x-data-bin"), h.Body)
			}
			if got := hdr.Get("x-init"); len(got) != 1 || got[0] != "hello" {
				t.Errorf("initial metadata x-init %q", got)
			}
			if got := hdr.Get("x-echo-bin"); len(got) != 1 || got[0] != "\xff\x00\x01" {
				t.Errorf("initial metadata x-echo-bin %q", got)
			}
			if got := trl.Get("x-trail-bin"); len(got) != 1 || got[0] != "\x00\x01\xfe" {
				t.Errorf("trailing metadata x-trail-bin %q (all: %v)", got, trl)
			}
		})
	}
	ok := testutil.ToFloat64(mustCounter(t, s.reg, "test.S", "Unary", "OK"))
	if ok != 2 {
		t.Errorf("covet_grpc_calls_total{test.S,Unary,OK} = %v, want 2", ok)
	}
}

// mustCounter finds one series of covet_grpc_calls_total.
func mustCounter(t *testing.T, reg *prometheus.Registry, service, method, code string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "covet_grpc_calls_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["service"] == service && l["method"] == method && l["code"] == code {
				return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x", Help: "x"}, m.GetCounter().GetValue)
			}
		}
	}
	t.Fatalf("no covet_grpc_calls_total{%s,%s,%s}", service, method, code)
	return nil
}

var streamDesc = &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

// TestGRPCStreaming: client streaming (all sent, then one answer after the
// client's end), server streaming (many answers to one message) and
// bidirectional ping-pong: each message is answered before the client
// sends the next, so the request body must stream and every answer must be
// flushed at once.
func TestGRPCStreaming(t *testing.T) {
	s := startGRPC(t)
	for name, cc := range s.conns(t) {
		t.Run(name, func(t *testing.T) {
			st, err := cc.NewStream(ctxTimeout(t), streamDesc, "/test.S/Stream")
			if err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				msg := []byte("m" + strconv.Itoa(i))
				if err := st.SendMsg(&msg); err != nil {
					t.Fatal(err)
				}
				var got []byte
				if err := st.RecvMsg(&got); err != nil {
					t.Fatalf("ping %d: %v", i, err)
				}
				if string(got) != "pong:m"+strconv.Itoa(i) {
					t.Fatalf("ping %d answered %q", i, got)
				}
			}
			closeAndExpectLast(t, st, "n=5")

			// Client streaming: sent in one go, answered after the end.
			st, err = cc.NewStream(ctxTimeout(t), streamDesc, "/test.S/Stream")
			if err != nil {
				t.Fatal(err)
			}
			big := bytes.Repeat([]byte("x"), 3<<20) // a large message crosses many frames
			for _, m := range [][]byte{[]byte("a"), big, []byte("c")} {
				if err := st.SendMsg(&m); err != nil {
					t.Fatal(err)
				}
			}
			if err := st.CloseSend(); err != nil {
				t.Fatal(err)
			}
			var answers []string
			for {
				var m []byte
				if err := st.RecvMsg(&m); err == io.EOF {
					break
				} else if err != nil {
					t.Fatal(err)
				}
				answers = append(answers, string(m[:min(len(m), 8)]))
			}
			if strings.Join(answers, "|") != "pong:a|pong:xxx|pong:c|n=3" {
				t.Fatalf("answers %q", answers)
			}
		})
	}
}

// TestGRPCStatusMapping: the dispatcher's failures, before and after the
// response head, the chain's HTTP answers and a worker's trailers-only
// answer all reach the client as gRPC statuses (never an HTTP error or a
// reset stream).
func TestGRPCStatusMapping(t *testing.T) {
	s := startGRPC(t)
	cc := s.conns(t)["h2c"]
	for _, c := range []struct {
		fail string
		code codes.Code
		msg  string
	}{
		{"no-worker", codes.Unavailable, "no live worker"},
		{"died", codes.Unavailable, "worker died"},
		{"queue-time", codes.Unavailable, "queue deadline passed"},
		{"queue-full", codes.ResourceExhausted, "queue full"},
		{"deadline", codes.DeadlineExceeded, "handler deadline passed"},
		{"bad-response", codes.Internal, "invalid worker response"},
		{"raised", codes.Unknown, "Internal Server Error"},
		{"err-fragment", codes.Unknown, "Internal Server Error"},
		{"after-died", codes.Unavailable, "worker died"},
		{"after-deadline", codes.DeadlineExceeded, "handler deadline passed"},
		{"after-bad-response", codes.Internal, "invalid worker response"},
		{"after-err-fragment", codes.Unknown, "Internal Server Error"},
		{"400", codes.Internal, "Bad Request"},
		{"401", codes.Unauthenticated, "Unauthorized"},
		{"403", codes.PermissionDenied, "Forbidden"},
		{"404", codes.Unimplemented, "Not Found"},
		{"413", codes.ResourceExhausted, "Request Entity Too Large"},
		{"429", codes.ResourceExhausted, "Too Many Requests"},
		{"503", codes.Unavailable, "Service Unavailable"},
		{"504", codes.DeadlineExceeded, "Gateway Timeout"},
		{"502", codes.Unknown, "Bad Gateway"},
		{"trailers-only", codes.NotFound, "no such user: café"},
	} {
		t.Run(c.fail, func(t *testing.T) {
			ctx := metadata.AppendToOutgoingContext(ctxTimeout(t), "x-fail", c.fail)
			st, err := cc.NewStream(ctx, streamDesc, "/test.S/Fail")
			if err != nil {
				t.Fatal(err)
			}
			if err := st.CloseSend(); err != nil {
				t.Fatal(err)
			}
			var m []byte
			err = st.RecvMsg(&m)
			if strings.HasPrefix(c.fail, "after-") {
				if err != nil || string(m) != "first" {
					t.Fatalf("first message: %q %v", m, err)
				}
				err = st.RecvMsg(&m)
			}
			if got := status.Convert(err); got.Code() != c.code || got.Message() != c.msg {
				t.Fatalf("got %v %q, want %v %q", got.Code(), got.Message(), c.code, c.msg)
			}
			if c.fail == "401" {
				// A trailers-only answer: grpc-go gives its fields as trailers.
				if tr := st.Trailer(); len(tr.Get("www-authenticate")) != 1 {
					t.Errorf("the answer's other fields were lost: %v", tr)
				}
			}
		})
	}
}

// TestGRPCDeadlineCancelUnimplemented: grpc-timeout becomes the call's fixed
// deadline and DEADLINE_EXCEEDED; a client's cancel reaches the handler's
// context; a method no route serves is UNIMPLEMENTED.
func TestGRPCDeadlineCancelUnimplemented(t *testing.T) {
	s := startGRPC(t)
	cc := s.conns(t)["tls"]
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	in, out := []byte("x"), []byte(nil)
	err := cc.Invoke(ctx, "/test.S/Sleep", &in, &out)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("deadline: %v", err)
	}
	s.g.mu.Lock()
	dl := s.g.deadline
	s.g.mu.Unlock()
	if dl.IsZero() || time.Until(dl) > 300*time.Millisecond {
		t.Errorf("the worker's deadline %v is not the client's", dl)
	}

	ctx, cancel = context.WithCancel(context.Background())
	st, err := cc.NewStream(ctx, streamDesc, "/test.S/Hold")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SendMsg(&in); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the call to reach the worker", func() bool { return s.g.lastHead(t).Path == "/test.S/Hold" })
	cancel()
	for end := time.After(10 * time.Second); ; {
		select {
		case p := <-s.g.canceled:
			if p != "/test.S/Hold" {
				continue // the call that passed its deadline, reset by the client too
			}
		case <-end:
			t.Fatal("the client's cancel did not reach the handler")
		}
		break
	}

	for _, path := range []string{"/test.S/Nope", "/other.Svc/Unary"} {
		err := cc.Invoke(ctxTimeout(t), path, &in, &out)
		if st := status.Convert(err); st.Code() != codes.Unimplemented || st.Message() != "unknown method "+path {
			t.Errorf("%s: %v", path, err)
		}
	}
	if n := testutil.ToFloat64(mustCounter(t, s.reg, metrics.Unmatched, metrics.Unmatched, "UNIMPLEMENTED")); n != 2 {
		t.Errorf("unmatched calls counted %v", n)
	}
}

// TestGRPCRawRequests: what grpc-go never sends: a malformed grpc-timeout
// (INTERNAL, as grpc-go answers it), a wrong content-type on a gRPC route
// (HTTP 415) and native gRPC over HTTP/1.1 (HTTP 505).
func TestGRPCRawRequests(t *testing.T) {
	s := startGRPC(t)
	do := func(proto, ct, timeout string) *http.Response {
		req, err := http.NewRequest("POST", "http://"+s.h2c.addr+"/test.S/Unary", bytes.NewReader(grpcMsg([]byte("x"))))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", ct)
		if timeout != "" {
			req.Header.Set("Grpc-Timeout", timeout)
		}
		resp, err := client(t, nil, proto).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for _, bad := range []string{"1x", "123456789S", "S", "-1S", "1.5S"} {
		resp := do("h2c", "application/grpc", bad)
		if resp.StatusCode != 200 || resp.Header.Get("Grpc-Status") != "13" || resp.Header.Get("Grpc-Message") != "malformed grpc-timeout" {
			t.Errorf("grpc-timeout %q: %d %v", bad, resp.StatusCode, resp.Header)
		}
	}
	if resp := do("h2c", "application/json", ""); resp.StatusCode != 415 {
		t.Errorf("json to a gRPC route: %d", resp.StatusCode)
	}
	if resp := do("1.1", "application/grpc", ""); resp.StatusCode != 505 {
		t.Errorf("native gRPC over HTTP/1.1: %d", resp.StatusCode)
	}
}

// TestGRPCFrontEndAnswers: what the front end refuses before the Layer sees a
// call (a gRPC-Web body whose length passes max_body_bytes, a path it will
// not route) reaches a gRPC client as a trailers-only gRPC status, not an HTTP
// error; a native call's stream is not bounded by max_body_bytes as a whole.
func TestGRPCFrontEndAnswers(t *testing.T) {
	g := newGRPCWorker(t)
	srv := startServer(t, Config{H2C: true, Limits: http1.Limits{MaxBodyBytes: 16}}, grpcgw.New(g, nil, nil, nil))
	post := func(path, ct string, body []byte) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest("POST", "http://"+srv.addr+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque = path // sent as written, dot segment and all
		req.ContentLength = int64(len(body))
		req.Header.Set("Content-Type", ct)
		resp, err := client(t, nil, "h2c").Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, got
	}
	for _, c := range []struct {
		path, ct, grpcStatus, grpcMessage string
	}{
		{"/test.S/Unary", "application/grpc-web+proto", "8", "Request Entity Too Large"},
		{"/test.S/Nope", "application/grpc", "12", "unknown method /test.S/Nope"},
		{"/./test.S/Unary", "application/grpc", "13", "Bad Request"},
	} {
		resp, _ := post(c.path, c.ct, grpcMsg(bytes.Repeat([]byte("x"), 32)))
		if resp.StatusCode != 200 || resp.Header.Get("Grpc-Status") != c.grpcStatus ||
			resp.Header.Get("Grpc-Message") != grpcgw.EncodeMessage(c.grpcMessage) || resp.Header.Get("Content-Type") != c.ct {
			t.Errorf("%s %s: %d %v", c.ct, c.path, resp.StatusCode, resp.Header)
		}
	}
	var stream []byte
	for range 3 {
		stream = append(stream, grpcMsg(bytes.Repeat([]byte("y"), 40))...)
	}
	resp, body := post("/test.S/Stream", "application/grpc", stream)
	if resp.StatusCode != 200 || resp.Trailer.Get("Grpc-Status") != "0" || !bytes.HasSuffix(body, []byte("n=3")) {
		t.Errorf("a native stream of %d bytes with max_body_bytes 16: %d %v %q", len(stream), resp.StatusCode, resp.Trailer, body)
	}
}

// grpcWebCall posts one gRPC-Web request and returns the response's
// messages and its trailer message's fields.
func grpcWebCall(t *testing.T, c *http.Client, url, ct string, body []byte) (*http.Response, []string, map[string]string) {
	t.Helper()
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("X-Grpc-Web", "1")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(ct, "application/grpc-web-text") {
		// Decoded in 4-character quanta: each piece may end in padding.
		var dec []byte
		for len(raw) >= 4 {
			n := len(raw) &^ 3
			if i := bytes.IndexByte(raw[:n], '='); i >= 0 {
				n = i&^3 + 4
			}
			part, err := base64.StdEncoding.DecodeString(string(raw[:n]))
			if err != nil {
				t.Fatalf("response body not base64: %v", err)
			}
			dec, raw = append(dec, part...), raw[n:]
		}
		if len(raw) != 0 {
			t.Fatalf("%d base64 characters left over", len(raw))
		}
		raw = dec
	}
	var msgs []string
	trailers := map[string]string{}
	r := bytes.NewReader(raw)
	for r.Len() > 0 {
		var h [5]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			t.Fatal(err)
		}
		p := make([]byte, binary.BigEndian.Uint32(h[1:]))
		if _, err := io.ReadFull(r, p); err != nil {
			t.Fatal(err)
		}
		if h[0]&0x80 == 0 {
			msgs = append(msgs, string(p))
			continue
		}
		if r.Len() != 0 {
			t.Fatal("bytes after the trailer message")
		}
		for _, line := range strings.Split(strings.TrimSuffix(string(p), "\r\n"), "\r\n") {
			k, v, _ := strings.Cut(line, ": ")
			trailers[k] = v
		}
	}
	return resp, msgs, trailers
}

// TestGRPCWeb: gRPC-Web, binary and text, over HTTP/1.1 and HTTP/2: the
// worker sees a native call, the client its messages and the status as the
// trailer message (no HTTP trailers); a failure and a route miss too.
func TestGRPCWeb(t *testing.T) {
	s := startGRPC(t)
	for _, proto := range []string{"1.1", "h2c"} {
		c := client(t, nil, proto)
		url := "http://" + s.h2c.addr
		t.Run(proto+"/binary", func(t *testing.T) {
			resp, msgs, trl := grpcWebCall(t, c, url+"/test.S/Unary", "application/grpc-web+proto", grpcMsg([]byte("hi")))
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/grpc-web" || len(resp.Trailer) != 0 {
				t.Fatalf("%d %v trailers %v", resp.StatusCode, resp.Header, resp.Trailer)
			}
			if strings.Join(msgs, "|") != "echo:hi" || trl["grpc-status"] != "0" || trl["x-trail-bin"] != "AAH+" {
				t.Fatalf("messages %q trailers %v", msgs, trl)
			}
			if h := s.g.lastHead(t); hdrOf(h, "content-type") != "application/grpc+proto" {
				t.Errorf("worker saw %q", hdrOf(h, "content-type"))
			}
		})
		t.Run(proto+"/text", func(t *testing.T) {
			// Two padded base64 pieces one after the other, as text
			// clients may send them.
			m := grpcMsg([]byte("hello"))
			body := base64.StdEncoding.EncodeToString(m[:4]) + base64.StdEncoding.EncodeToString(m[4:])
			resp, msgs, trl := grpcWebCall(t, c, url+"/test.S/Unary", "application/grpc-web-text", []byte(body))
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/grpc-web-text" {
				t.Fatalf("%d %v", resp.StatusCode, resp.Header)
			}
			if strings.Join(msgs, "|") != "echo:hello" || trl["grpc-status"] != "0" {
				t.Fatalf("messages %q trailers %v", msgs, trl)
			}
			h := s.g.lastHead(t)
			if hdrOf(h, "content-type") != "application/grpc" || hdrOf(h, "content-length") != "" {
				t.Errorf("worker saw content-type %q content-length %q", hdrOf(h, "content-type"), hdrOf(h, "content-length"))
			}
		})
		t.Run(proto+"/failure", func(t *testing.T) {
			req := grpcMsg(nil)
			for _, ct := range []string{"application/grpc-web", "application/grpc-web-text"} {
				body := req
				if strings.Contains(ct, "text") {
					body = []byte(base64.StdEncoding.EncodeToString(req))
				}
				r, _ := http.NewRequest("POST", url+"/test.S/Fail", bytes.NewReader(body))
				r.Header.Set("Content-Type", ct)
				r.Header.Set("X-Fail", "no-worker")
				resp, err := c.Do(r)
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if strings.Contains(ct, "text") {
					raw, _ = base64.StdEncoding.DecodeString(string(raw))
				}
				if resp.StatusCode != 200 || !bytes.HasPrefix(raw, []byte{0x80}) || !bytes.Contains(raw, []byte("grpc-status: 14\r\ngrpc-message: no live worker\r\n")) {
					t.Errorf("%s: %d %q", ct, resp.StatusCode, raw)
				}
			}
		})
	}
}

// TestGRPCStreamRests: a client stream may rest between messages for longer
// than body_read_timeout allows a request body (and send less than
// min_body_rate): a bidirectional call is a conversation, not an upload.
func TestGRPCStreamRests(t *testing.T) {
	g := newGRPCWorker(t)
	srv := startServer(t, Config{H2C: true, BodyReadTimeout: 50 * time.Millisecond, MinBodyRate: 1 << 20},
		grpcgw.New(g, nil, nil, nil))
	cc, err := grpc.NewClient("passthrough:///"+srv.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	st, err := cc.NewStream(ctxTimeout(t), streamDesc, "/test.S/Stream")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if i > 0 {
			time.Sleep(300 * time.Millisecond) // six times body_read_timeout, nothing sent
		}
		msg := []byte("m" + strconv.Itoa(i))
		if err := st.SendMsg(&msg); err != nil {
			t.Fatal(err)
		}
		var got []byte
		if err := st.RecvMsg(&got); err != nil || string(got) != "pong:m"+strconv.Itoa(i) {
			t.Fatalf("ping %d: %q %v", i, got, err)
		}
	}
	closeAndExpectLast(t, st, "n=2")
}

// closeAndExpectLast ends the client's side of a ping-pong stream, then
// expects the server's last message, want, and the end of the stream.
func closeAndExpectLast(t *testing.T, st grpc.ClientStream, want string) {
	t.Helper()
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var got []byte
	if err := st.RecvMsg(&got); err != nil || string(got) != want {
		t.Fatalf("after the client's end: %q %v", got, err)
	}
	if err := st.RecvMsg(&got); err != io.EOF {
		t.Fatalf("end of the stream: %v", err)
	}
}

// TestGRPCOverHTTP3: a gRPC call over HTTP/3 (no gRPC library speaks it, so
// the call is framed by hand): the messages both ways, the status and the
// trailing metadata as HTTP/3 trailers, and a trailers-only failure.
func TestGRPCOverHTTP3(t *testing.T) {
	g := newGRPCWorker(t)
	_, tc, addr := startH3Server(t, Config{}, grpcgw.New(g, nil, nil, nil))
	c := h3Client(t, tc)
	call := func(path string, hdr ...string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest("POST", "https://"+addr+path, bytes.NewReader(grpcMsg([]byte("hi"))))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("Te", "trailers")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body) // the trailers come after the body
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	resp, body := call("/test.S/Unary", "X-Custom", "v")
	msg, err := readMsg(bytes.NewReader(body))
	if resp.StatusCode != 200 || resp.ProtoMajor != 3 || err != nil || string(msg) != "echo:hi" ||
		resp.Header.Get("X-Init") != "v" || resp.Trailer.Get("Grpc-Status") != "0" ||
		resp.Trailer.Get("X-Trail-Bin") != base64.RawStdEncoding.EncodeToString([]byte{0, 1, 0xfe}) {
		t.Fatalf("unary over HTTP/3: %d %q %v header %v trailer %v", resp.StatusCode, msg, err, resp.Header, resp.Trailer)
	}
	resp, _ = call("/test.S/Fail", "X-Fail", "no-worker")
	if resp.StatusCode != 200 || resp.Header.Get("Grpc-Status") != "14" {
		t.Fatalf("trailers-only over HTTP/3: %d header %v trailer %v", resp.StatusCode, resp.Header, resp.Trailer)
	}
}
