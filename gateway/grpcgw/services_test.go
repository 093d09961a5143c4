package grpcgw

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/workerproto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/proto"
)

// fakeCatalog is the dispatcher's read side, as a test sets it.
type fakeCatalog struct {
	mu    sync.Mutex
	svcs  []dispatch.GRPCService
	descs [][]byte
}

func (c *fakeCatalog) GRPCServices() []dispatch.GRPCService {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.svcs)
}

func (c *fakeCatalog) GRPCDescriptors() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.descs
}

func (c *fakeCatalog) setServices(svcs ...dispatch.GRPCService) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.svcs = svcs
}

func (c *fakeCatalog) setDescriptors(descs [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.descs = descs
}

// recorder is a ResponseWriter (with TrailerWriter and Flusher) that keeps
// what Serve wrote.
type recorder struct {
	status   int
	head     []workerproto.Header
	bodyLen  int64
	body     []byte
	trailers []workerproto.Header
	flushes  int
	calls    []string // the order of the writer's methods
}

func cloneHeaders(hs []workerproto.Header) []workerproto.Header {
	out := make([]workerproto.Header, len(hs))
	for i, h := range hs {
		out[i] = workerproto.Header{Name: bytes.Clone(h.Name), Value: bytes.Clone(h.Value)}
	}
	return out
}

func (r *recorder) WriteHead(status int, hs []workerproto.Header, bodyLen int64) error {
	r.calls = append(r.calls, "head")
	r.status, r.head, r.bodyLen = status, cloneHeaders(hs), bodyLen
	return nil
}

func (r *recorder) WriteBody(p []byte) error {
	r.calls = append(r.calls, "body")
	r.body = append(r.body, p...)
	return nil
}

func (r *recorder) WriteBodyv(ps [][]byte) error {
	for _, p := range ps {
		if err := r.WriteBody(p); err != nil {
			return err
		}
	}
	return nil
}

func (r *recorder) WriteTrailers(hs []workerproto.Header) error {
	r.calls = append(r.calls, "trailers")
	r.trailers = cloneHeaders(hs)
	return nil
}

func (r *recorder) Flush() error {
	r.flushes++
	return nil
}

// statusOf is the gRPC status the recorder got: from the trailers, or from a
// trailers-only head.
func (r *recorder) statusOf(t *testing.T) (Code, string) {
	t.Helper()
	fields := r.trailers
	if fields == nil {
		if r.bodyLen != 0 {
			t.Fatalf("no trailers after a head with body %d", r.bodyLen)
		}
		fields = r.head
	}
	n, err := strconv.Atoi(string(headerValue(fields, "grpc-status")))
	if err != nil {
		t.Fatalf("no grpc-status in %q", fields)
	}
	return Code(n), string(headerValue(fields, "grpc-message"))
}

// messages decodes the response messages into new values of T.
func messages[T any, PT interface {
	*T
	proto.Message
}](t *testing.T, body []byte) []PT {
	t.Helper()
	raw, err := readAll(body, "")
	if err != io.EOF {
		t.Fatalf("response body: %v", err)
	}
	out := make([]PT, len(raw))
	for i, b := range raw {
		out[i] = PT(new(T))
		if err := proto.Unmarshal(b, out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// serve runs one call to method with the body given whole.
func serve(t *testing.T, ctx context.Context, s *Services, method string, headers []workerproto.Header, body []byte) *recorder {
	t.Helper()
	rt := s.Route(method)
	if rt == nil {
		t.Fatalf("no route for %s", method)
	}
	rec := new(recorder)
	req := &dispatch.Request{Head: workerproto.RequestHead{Method: "POST", Path: method, Headers: headers, Body: int64(len(body))}, Body: body}
	if err := s.Serve(ctx, rt, req, rec); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	return rec
}

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := appendMessage(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoute(t *testing.T) {
	s := NewServices(new(fakeCatalog), nil)
	for _, m := range []string{
		"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch", "/grpc.health.v1.Health/List",
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
	} {
		rt := s.Route(m)
		if rt == nil || rt.Kind != dispatch.KindGRPC || rt.Pattern != m {
			t.Fatalf("Route(%s) = %+v", m, rt)
		}
		if s.Route(m) != rt {
			t.Fatalf("Route(%s) gives a new route each call", m)
		}
	}
	for _, m := range []string{"/grpc.health.v1.Health/Nope", "/grpc.health.v1.Health", "/helloworld.Greeter/SayHello", ""} {
		if rt := s.Route(m); rt != nil {
			t.Fatalf("Route(%q) = %+v, want nil", m, rt)
		}
	}
	if n := testing.AllocsPerRun(100, func() { s.Route("/grpc.health.v1.Health/Check") }); n != 0 {
		t.Fatalf("Route allocates %v times", n)
	}
}

// TestWithoutReflection: grpc_reflection off leaves the health service and
// routes no reflection method.
func TestWithoutReflection(t *testing.T) {
	s := NewServices(new(fakeCatalog), nil).WithoutReflection()
	if s.Route("/grpc.health.v1.Health/Check") == nil {
		t.Fatal("health went with reflection")
	}
	for _, m := range []string{"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"} {
		if rt := s.Route(m); rt != nil {
			t.Fatalf("Route(%s) = %+v with reflection off", m, rt)
		}
	}
}

func TestServeNeedsTrailerWriter(t *testing.T) {
	s := NewServices(new(fakeCatalog), nil)
	w := new(recorder)
	rw := struct{ dispatch.ResponseWriter }{w} // hides WriteTrailers
	err := s.Serve(context.Background(), s.Route(healthCheck), &dispatch.Request{}, rw)
	if err != errNoTrailers || len(w.calls) != 0 {
		t.Fatalf("Serve = %v after %v, want errNoTrailers and nothing written", err, w.calls)
	}
}

// A route Services did not make is answered UNIMPLEMENTED, trailers-only.
func TestServeForeignRoute(t *testing.T) {
	s := NewServices(new(fakeCatalog), nil)
	rec := new(recorder)
	rt := &dispatch.Route{Kind: dispatch.KindGRPC, Pattern: "/a.B/C"}
	if err := s.Serve(context.Background(), rt, &dispatch.Request{}, rec); err != nil {
		t.Fatal(err)
	}
	if code, _ := rec.statusOf(t); code != Unimplemented || !slices.Equal(rec.calls, []string{"head"}) {
		t.Fatalf("status %v after %v", code, rec.calls)
	}
}

// h2cServer serves s over HTTP/2 without TLS through a test adapter from
// net/http to dispatch's request and writer, and returns a gRPC client
// connection to it.
func h2cServer(t *testing.T, s *Services) (addr string, conn *grpc.ClientConn) {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt := s.Route(r.URL.Path)
		if rt == nil {
			w.Header().Set("content-type", "application/grpc")
			w.Header().Set("grpc-status", strconv.Itoa(int(Unimplemented)))
			w.WriteHeader(200)
			return
		}
		var hs []workerproto.Header
		for name, vs := range r.Header {
			for _, v := range vs {
				hs = append(hs, workerproto.Header{Name: []byte(strings.ToLower(name)), Value: []byte(v)})
			}
		}
		req := &dispatch.Request{
			Head:       workerproto.RequestHead{Method: r.Method, Path: r.URL.Path, Headers: hs, Body: -1, HTTPVersion: "2"},
			BodyStream: bodyStream{r.Body},
		}
		if err := s.Serve(r.Context(), rt, req, &h2Writer{w}); err != nil && !errors.Is(err, dispatch.ErrCanceled) {
			panic(http.ErrAbortHandler) // breaks the stream off
		}
	})
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: &protocols}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	conn, err = grpc.NewClient("passthrough:///"+ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return ln.Addr().String(), conn
}

type bodyStream struct{ r io.ReadCloser }

func (b bodyStream) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b bodyStream) Stop()                      { _ = b.r.Close() }

type h2Writer struct{ w http.ResponseWriter }

func (h *h2Writer) WriteHead(status int, hs []workerproto.Header, _ int64) error {
	for _, f := range hs {
		h.w.Header().Add(string(f.Name), string(f.Value))
	}
	h.w.WriteHeader(status)
	return nil
}

func (h *h2Writer) WriteBody(p []byte) error {
	_, err := h.w.Write(p)
	return err
}

func (h *h2Writer) WriteBodyv(ps [][]byte) error {
	for _, p := range ps {
		if err := h.WriteBody(p); err != nil {
			return err
		}
	}
	return nil
}

func (h *h2Writer) Flush() error { return http.NewResponseController(h.w).Flush() }

func (h *h2Writer) WriteTrailers(hs []workerproto.Header) error {
	for _, f := range hs {
		h.w.Header().Add(http.TrailerPrefix+string(f.Name), string(f.Value))
	}
	return nil
}

// chanBody is a BodyStream that gives its bytes, then blocks until Stop
// (without end) or ends (with end).
type chanBody struct {
	r       io.Reader
	end     bool
	stopped chan struct{}
	stops   atomic.Int32
}

var errStopped = errors.New("body stopped")

func (b *chanBody) Read(p []byte) (int, error) {
	if n, err := b.r.Read(p); err != io.EOF || b.end {
		return n, err
	}
	<-b.stopped
	return 0, errStopped
}

func (b *chanBody) Stop() {
	if b.stops.Add(1) == 1 {
		close(b.stopped)
	}
}

// Serve stops a streamed body once, whether the call ends on its own or its
// context ends while it waits for the client.
func TestServeStopsBody(t *testing.T) {
	s := NewServices(new(fakeCatalog), nil)
	body := &chanBody{r: bytes.NewReader(marshal(t, &healthpb.HealthCheckRequest{})), end: true, stopped: make(chan struct{})}
	rec := new(recorder)
	if err := s.Serve(context.Background(), s.Route(healthCheck), &dispatch.Request{BodyStream: body}, rec); err != nil {
		t.Fatal(err)
	}
	if code, _ := rec.statusOf(t); code != OK || body.stops.Load() != 1 {
		t.Fatalf("status %v, %d stops", code, body.stops.Load())
	}

	// A reflection stream whose client goes quiet, then away.
	ctx, cancel := context.WithCancel(context.Background())
	body = &chanBody{r: bytes.NewReader(marshal(t, listReq)), stopped: make(chan struct{})}
	rec = new(recorder)
	err := s.Serve(ctx, s.Route(reflectionV1), &dispatch.Request{BodyStream: body}, &cancelOnBody{recorder: rec, cancel: cancel})
	if err != dispatch.ErrCanceled || body.stops.Load() != 1 || rec.trailers != nil {
		t.Fatalf("Serve = %v after %d stops, trailers %q", err, body.stops.Load(), rec.trailers)
	}
	if msgs := messages[reflectionpb.ServerReflectionResponse](t, rec.body); len(msgs) != 1 {
		t.Fatalf("%d answers", len(msgs))
	}
}
