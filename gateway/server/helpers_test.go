package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/gateway/engine"
	"github.com/covetpy/covetpy/router"
	"github.com/covetpy/covetpy/workerproto"
)

// handlerFunc is a fake worker: it answers one request.
type handlerFunc func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error

// fakeBackend implements Backend with a real router and in-process
// handlers, keyed by Route.App.
type fakeBackend struct {
	r        *router.Router[*dispatch.Route]
	handlers map[string]handlerFunc
	// streams: the apps whose handlers read req.BodyStream themselves; for
	// the others Serve reads a streamed body whole into req.Body first, as a
	// worker's handler that awaits req.body() sees it.
	streams map[string]bool
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{r: router.New[*dispatch.Route](), handlers: map[string]handlerFunc{}, streams: map[string]bool{}}
}

// handleStream is handle for a handler that reads req.BodyStream itself.
func (b *fakeBackend) handleStream(t testing.TB, method, pattern string, h handlerFunc) {
	t.Helper()
	b.handle(t, method, pattern, 0, h)
	b.streams[method+" "+pattern] = true
}

func (b *fakeBackend) handle(t testing.TB, method, pattern string, timeout time.Duration, h handlerFunc) {
	t.Helper()
	app := method + " " + pattern
	rt := &dispatch.Route{App: app, Pattern: pattern, Timeout: timeout}
	if err := b.r.Add(router.Route[*dispatch.Route]{Method: method, Pattern: pattern, Value: rt}); err != nil {
		t.Fatal(err)
	}
	b.handlers[app] = h
}

func (b *fakeBackend) Lookup(method, path string, ps *router.Params) (router.Match[*dispatch.Route], router.Status) {
	return b.r.Lookup(method, path, ps)
}

func (b *fakeBackend) Serve(ctx context.Context, rt *dispatch.Route, req *dispatch.Request, w dispatch.ResponseWriter) error {
	if req.BodyStream != nil && !b.streams[rt.App] {
		body, err := io.ReadAll(req.BodyStream)
		if err != nil {
			return &dispatch.BodyError{Err: err} // as dispatch answers a broken body
		}
		req.Body, req.BodyStream = body, nil
	}
	return b.handlers[rt.App](ctx, req, w)
}

// respond writes a whole response with a known length.
func respond(w dispatch.ResponseWriter, status int, body string, hdrs ...string) error {
	var hs []workerproto.Header
	for i := 0; i+1 < len(hdrs); i += 2 {
		hs = append(hs, workerproto.Header{Name: []byte(hdrs[i]), Value: []byte(hdrs[i+1])})
	}
	if err := w.WriteHead(status, hs, int64(len(body))); err != nil {
		return err
	}
	if body == "" {
		return nil
	}
	return w.WriteBody([]byte(body))
}

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

type testServer struct {
	srv    *Server
	addr   string
	ln     *countingListener
	served chan error
}

func startServer(t testing.TB, cfg Config, b Backend) *testServer {
	t.Helper()
	return startServerOn(t, cfg, b, nil)
}

// startServerOn is startServer with the listener wrapped by wrap (nil: as is),
// for tests that must see or alter the accepted connections.
func startServerOn(t testing.TB, cfg Config, b Backend, wrap func(net.Listener) net.Listener) *testServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	eng := testEngine(t)
	ts := &testServer{
		srv:    &Server{Config: cfg, Backend: b, Engine: eng},
		addr:   l.Addr().String(),
		ln:     &countingListener{Listener: eng.Listen(l)}, // the engine's listener, counted
		served: make(chan error, 1),
	}
	var ln net.Listener = ts.ln
	if wrap != nil {
		ln = wrap(ln)
	}
	go func() { ts.served <- ts.srv.Serve(ln) }()
	t.Cleanup(func() {
		ts.srv.Close()
		select {
		case err := <-ts.served:
			if !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
		waitFor(t, "connections to close", func() bool { return ts.srv.numConns() == 0 })
		eng.Close()
	})
	return ts
}

// testEngine opens the engine named by $COVET_TEST_ENGINE (uring, netpoll
// or auto; unset: auto), so that `make test` runs the suite once per engine.
// An engine that cannot start fails the test: the suite never passes on an
// engine it did not run on.
func testEngine(t testing.TB) engine.Engine {
	t.Helper()
	name := os.Getenv("COVET_TEST_ENGINE")
	if name == "" {
		name = engine.Auto
	}
	e, _, err := engine.New(name)
	if err != nil {
		t.Fatalf("engine %s: %v", name, err)
	}
	return e
}

func (ts *testServer) url(path string) string { return "http://" + ts.addr + path }

// client returns a net/http client with its own keep-alive pool.
func (ts *testServer) client(t testing.TB) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// rawConn is a raw client connection for pipelining and malformed input.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func (ts *testServer) dial(t testing.TB) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (rc *rawConn) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.nc, s); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

// read reads one response to a request with the given method, body included.
func (rc *rawConn) read(method string) (*http.Response, string) {
	rc.t.Helper()
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		rc.t.Fatalf("read response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		rc.t.Fatalf("read body: %v", err)
	}
	return resp, string(body)
}

// expect100 reads an interim "100 Continue" response, exactly.
func (rc *rawConn) expect100() {
	rc.t.Helper()
	line, err := rc.br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		rc.t.Fatalf("want 100 Continue, got %q %v", line, err)
	}
	if blank, _ := rc.br.ReadString('\n'); blank != "\r\n" {
		rc.t.Fatalf("100 Continue not terminated: %q", blank)
	}
}

// expectEOF checks that the server closes the connection within 3s.
func (rc *rawConn) expectEOF() {
	rc.t.Helper()
	rc.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	b, err := rc.br.ReadByte()
	if err == nil {
		rest, _ := rc.br.Peek(rc.br.Buffered())
		rc.t.Fatalf("want EOF, got more data: %q", string(b)+string(rest))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		rc.t.Fatalf("connection not closed within 3s")
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func get(host, path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
}

// recorder keeps what the fake worker saw, for assertions.
type recorder struct {
	mu    sync.Mutex
	heads []workerproto.RequestHead
	bodys []string
}

func (r *recorder) add(req *dispatch.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := req.Head
	// Deep-copy: the front end reuses these buffers after Serve returns.
	h.Method, h.Path, h.Query = strings.Clone(h.Method), strings.Clone(h.Path), strings.Clone(h.Query)
	h.RequestID, h.Route, h.Client = strings.Clone(h.RequestID), strings.Clone(h.Route), strings.Clone(h.Client)
	h.Headers = nil
	for _, f := range req.Head.Headers {
		h.Headers = append(h.Headers, workerproto.Header{Name: append([]byte(nil), f.Name...), Value: append([]byte(nil), f.Value...)})
	}
	h.Params = nil
	for _, p := range req.Head.Params {
		h.Params = append(h.Params, workerproto.Param{Name: strings.Clone(p.Name), Value: strings.Clone(p.Value)})
	}
	r.heads = append(r.heads, h)
	r.bodys = append(r.bodys, string(req.Body))
}

func (r *recorder) last(t testing.TB) (workerproto.RequestHead, string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.heads) == 0 {
		t.Fatal("backend saw no request")
	}
	return r.heads[len(r.heads)-1], r.bodys[len(r.bodys)-1]
}
