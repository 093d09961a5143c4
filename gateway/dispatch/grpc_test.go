package dispatch

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/covetpy/covetpy/router"
	"github.com/covetpy/covetpy/shmring"
	"github.com/covetpy/covetpy/workerproto"
)

func grpcHello(app string, descriptors [][]byte, paths ...string) workerproto.Hello {
	h := workerproto.Hello{Version: 1, App: app, Descriptors: descriptors}
	for _, p := range paths {
		method, path, _ := strings.Cut(p, " ")
		h.Routes = append(h.Routes, workerproto.Route{Method: method, Path: path, Kind: "grpc",
			Options: map[string]any{"timeout_ms": int64(5000)}})
	}
	return h
}

// TestRegisterGRPCRoutes: grpc routes register like http ones, and a route that
// is not POST /{service}/{method} is refused with a manifest error naming it.
func TestRegisterGRPCRoutes(t *testing.T) {
	d, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.register(grpcHello("greeter", nil, "POST /helloworld.Greeter/SayHello")); err != nil {
		t.Fatal(err)
	}
	var ps router.Params
	m, st := d.routes.Lookup("POST", "/helloworld.Greeter/SayHello", &ps)
	if st != router.StatusFound || m.Value.Kind != KindGRPC || m.Value.Timeout != 5*time.Second {
		t.Fatalf("lookup: %v %+v", st, m.Value)
	}
	for _, c := range []struct{ route, text string }{
		{"GET /a.B/C", "route GET /a.B/C: a grpc route's method is POST, not GET"},
		{"POST /a.B", "route POST /a.B: a grpc route's path is /{package.Service}/{Method}"},
		{"POST /a.B/C/D", "route POST /a.B/C/D: a grpc route's path is /{package.Service}/{Method}"},
		{"POST //C", "route POST //C: a grpc route's path is /{package.Service}/{Method}"},
		{"POST /a.B/", "route POST /a.B/: a grpc route's path is /{package.Service}/{Method}"},
		{"POST /a.B/{m}", "route POST /a.B/{m}: a grpc route's path is literal: no parameters"},
	} {
		_, err := d.register(grpcHello("bad", nil, c.route))
		var pe *workerproto.Error
		if !errors.As(err, &pe) || pe.Code != workerproto.CodeManifest || pe.Message != c.text {
			t.Errorf("%s: got %v, want manifest error %q", c.route, err, c.text)
		}
	}
	if _, ok := d.apps["bad"]; ok {
		t.Error("a refused manifest left its app behind")
	}
}

// TestGRPCCatalog: services sorted, each once, Serving while the app naming
// them has a live worker; descriptors each once, from the latest hello.
func TestGRPCCatalog(t *testing.T) {
	d, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	shared := []byte("\x0a\x0dcommon.proto")
	if _, err := d.register(grpcHello("b", [][]byte{[]byte("\x0a\x05b.pro"), shared},
		"POST /pkg.Zeta/Get", "POST /pkg.Alpha/Put", "POST /pkg.Alpha/Get")); err != nil {
		t.Fatal(err)
	}
	a, err := d.register(grpcHello("a", [][]byte{shared, []byte("\x0a\x05a.pro")}, "POST /pkg.Beta/Run"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.register(hello("web", "GET /")); err != nil {
		t.Fatal(err)
	}
	attachFake(a)
	got := d.GRPCServices()
	want := []GRPCService{{"pkg.Alpha", false}, {"pkg.Beta", true}, {"pkg.Zeta", false}}
	if len(got) != len(want) {
		t.Fatalf("services %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("services %v, want %v", got, want)
		}
	}
	var names []string
	for _, f := range d.GRPCDescriptors() {
		names = append(names, string(f[2:]))
	}
	if strings.Join(names, " ") != "common.proto a.pro b.pro" {
		t.Fatalf("descriptors %q", names)
	}
	// A later worker of app a with the same routes and a newer file replaces them.
	if _, err := d.register(grpcHello("a", [][]byte{[]byte("\x0a\x05a.pr2")}, "POST /pkg.Beta/Run")); err != nil {
		t.Fatal(err)
	}
	names = names[:0]
	for _, f := range d.GRPCDescriptors() {
		names = append(names, string(f[2:]))
	}
	if strings.Join(names, " ") != "a.pr2 b.pro common.proto" {
		t.Fatalf("descriptors after a new hello %q", names)
	}
}

func trailersPayload(t *testing.T, kv ...string) []byte {
	t.Helper()
	var tr workerproto.RespTrailers
	for i := 0; i < len(kv); i += 2 {
		tr.Headers = append(tr.Headers, workerproto.Header{Name: []byte(kv[i]), Value: []byte(kv[i+1])})
	}
	b, err := tr.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func headPayload(t *testing.T, status int, body int64) []byte {
	t.Helper()
	b, err := (&workerproto.ResponseHead{Status: status, Body: body,
		Headers: []workerproto.Header{{Name: []byte("content-type"), Value: []byte("application/grpc")}}}).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRespTrailersReader: RESP_TRAILERS after a streamed head ends the call
// with a copy of the fields; before the head, after a head of known length,
// after the body's END, twice, not flagged BEGIN|END or malformed, it ends the
// session (onFrame's error); for a stale id it is dropped.
func TestRespTrailersReader(t *testing.T) {
	trl := trailersPayload(t, "grpc-status", "0", "x-n-bin", "AQ")
	s, c, id := hintSession()
	defer putCall(c)
	if err := s.onFrame(frame(workerproto.FrameRespTrailers, id, trl)); !errors.Is(err, errSequence) {
		t.Fatalf("before the head: %v", err)
	}
	if err := s.onFrame(frame(workerproto.FrameRespHead, id, headPayload(t, 200, -1))); err != nil {
		t.Fatal(err)
	}
	if err := s.onFrame(frame(workerproto.FrameRespTrailers, uint64(2)<<32, trl)); err != nil || c.done {
		t.Fatalf("stale id: %v", err)
	}
	f := frame(workerproto.FrameRespTrailers, id, trl)
	f.Flags = workerproto.FlagBegin
	if err := s.onFrame(f); err == nil || !strings.Contains(err.Error(), "want BEGIN|END") {
		t.Fatalf("fragment: %v", err)
	}
	if err := s.onFrame(frame(workerproto.FrameRespTrailers, id, trailersPayload(t, "content-length", "0"))); !errors.Is(err, workerproto.ErrBadValue) {
		t.Fatalf("framing field: %v", err)
	}
	msg := frame(workerproto.FrameRespBody, id, []byte("msg"))
	msg.Flags = workerproto.FlagBegin
	if err := s.onFrame(msg); err != nil {
		t.Fatal(err)
	}
	buf := append([]byte(nil), trl...)
	if err := s.onFrame(frame(workerproto.FrameRespTrailers, id, buf)); err != nil {
		t.Fatal(err)
	}
	clear(buf) // the ring reuses the record
	if !c.done || !c.gotTrailers || c.err != nil || len(c.trailers.Headers) != 2 || string(c.trailers.Headers[1].Value) != "AQ" {
		t.Fatalf("call after the trailers: done %v trailers %v %v", c.done, c.gotTrailers, c.trailers.Headers)
	}
	if err := s.onFrame(frame(workerproto.FrameRespTrailers, id, trl)); !errors.Is(err, errSequence) {
		t.Fatalf("second trailers: %v", err)
	}
	if err := s.onFrame(frame(workerproto.FrameRespBody, id, []byte("late"))); !errors.Is(err, errSequence) {
		t.Fatalf("body after the trailers: %v", err)
	}

	s2, c2, id2 := hintSession()
	defer putCall(c2)
	if err := s2.onFrame(frame(workerproto.FrameRespHead, id2, headPayload(t, 200, 3))); err != nil {
		t.Fatal(err)
	}
	if err := s2.onFrame(frame(workerproto.FrameRespTrailers, id2, trl)); !errors.Is(err, errSequence) {
		t.Fatalf("after a head of known length: %v", err)
	}
	s3, c3, id3 := hintSession()
	defer putCall(c3)
	for _, f := range []shmring.Frame{frame(workerproto.FrameRespHead, id3, headPayload(t, 200, -1)), frame(workerproto.FrameRespBody, id3, nil)} {
		if err := s3.onFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := s3.onFrame(frame(workerproto.FrameRespTrailers, id3, trl)); !errors.Is(err, errSequence) {
		t.Fatalf("after the body's END: %v", err)
	}
}

// trailerRecorder records what a TrailerWriter is handed, in order.
type trailerRecorder struct {
	events []string
	head   chan struct{} // when not nil, closed by WriteHead
}

func (r *trailerRecorder) WriteHead(status int, _ []workerproto.Header, n int64) error {
	r.events = append(r.events, "head")
	if r.head != nil {
		close(r.head)
	}
	return nil
}
func (r *trailerRecorder) WriteBody(p []byte) error { return r.WriteBodyv([][]byte{p}) }
func (r *trailerRecorder) WriteBodyv(ps [][]byte) error {
	for _, p := range ps {
		r.events = append(r.events, "body "+string(p))
	}
	return nil
}
func (r *trailerRecorder) WriteTrailers(hs []workerproto.Header) error {
	var b strings.Builder
	for _, h := range hs {
		b.WriteString(" " + string(h.Name) + "=" + string(h.Value))
	}
	r.events = append(r.events, "trailers"+b.String())
	return nil
}

// exchange runs do on r in the background with w and returns the request's id
// (from the ring) and the channel do's error arrives on.
func exchange(t *testing.T, r *ringSession, deadline time.Time, fixed bool, w ResponseWriter) (uint64, chan error) {
	t.Helper()
	head, _ := (&workerproto.RequestHead{Method: "POST", Path: "/p.S/M", HTTPVersion: "2", Scheme: "http"}).Append(nil)
	out := make(chan error, 1)
	go func() { out <- r.s.do(context.Background(), deadline, fixed, head, nil, nil, 0, w) }()
	var id uint64
	for end := time.Now().Add(10 * time.Second); id == 0 && time.Now().Before(end); time.Sleep(100 * time.Microsecond) {
		r.poll(t, func(f shmring.Frame) {
			if workerproto.FrameType(f.Type) == workerproto.FrameReqHead {
				id = f.ID
			}
		})
	}
	if id == 0 {
		t.Fatal("no REQ_HEAD on the ring")
	}
	return id, out
}

func feed(t *testing.T, r *ringSession, fs ...shmring.Frame) {
	t.Helper()
	for _, f := range fs {
		if err := r.s.onFrame(f); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTrailersReachTheWriter: the worker's trailers reach a TrailerWriter after
// the whole body and end the call; a writer without WriteTrailers gets the
// body and the call ends all the same.
func TestTrailersReachTheWriter(t *testing.T) {
	r := newRingSession(t)
	w := &trailerRecorder{}
	id, out := exchange(t, r, time.Now().Add(time.Minute), false, w)
	body := frame(workerproto.FrameRespBody, id, []byte("m1"))
	body.Flags = workerproto.FlagBegin
	feed(t, r, frame(workerproto.FrameRespHead, id, headPayload(t, 200, -1)), body)
	more := frame(workerproto.FrameRespBody, id, []byte("m2"))
	more.Flags = 0
	feed(t, r, more, frame(workerproto.FrameRespTrailers, id, trailersPayload(t, "grpc-status", "0", "x-a", "b")))
	if err := <-out; err != nil {
		t.Fatal(err)
	}
	got := strings.Join(w.events, "|")
	if !strings.HasPrefix(got, "head|body m1") || !strings.HasSuffix(got, "m2|trailers grpc-status=0 x-a=b") {
		t.Fatalf("writer saw %q", got)
	}

	p := &statusRecorder{}
	id, out = exchange(t, r, time.Now().Add(time.Minute), false, p)
	feed(t, r, frame(workerproto.FrameRespHead, id, headPayload(t, 200, -1)), frame(workerproto.FrameRespTrailers, id, trailersPayload(t, "grpc-status", "5")))
	if err := <-out; err != nil || p.status != 200 {
		t.Fatalf("plain writer: %d %v", p.status, err)
	}
}

// TestAbortCause: a response broken off after its head is ErrAborted, and the
// cause can be recovered: a worker ERROR's status, an ERR fragment, the
// deadline.
func TestAbortCause(t *testing.T) {
	r := newRingSession(t)
	errPayload, _ := (&workerproto.ErrorPayload{Status: 503, Message: "overloaded"}).Append(nil)
	errFrame := frame(workerproto.FrameError, 0, errPayload)
	errFrame.Flags |= workerproto.FlagErr
	errFrag := frame(workerproto.FrameRespBody, 0, nil)
	errFrag.Flags = workerproto.FlagErr | workerproto.FlagEnd
	for _, c := range []struct {
		name   string
		last   shmring.Frame
		status int
	}{
		{"worker ERROR", errFrame, 503},
		{"ERR fragment", errFrag, 500},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := &trailerRecorder{head: make(chan struct{})}
			id, out := exchange(t, r, time.Now().Add(time.Minute), false, w)
			c.last.ID = id
			feed(t, r, frame(workerproto.FrameRespHead, id, headPayload(t, 200, -1)))
			<-w.head // the response has begun
			feed(t, r, c.last)
			err := <-out
			var ae *AbortError
			var se *StatusError
			if !errors.Is(err, ErrAborted) || !errors.As(err, &ae) || !errors.As(err, &se) || se.Status != c.status {
				t.Fatalf("got %v, want ErrAborted caused by a %d", err, c.status)
			}
		})
	}
	// The deadline, fixed: body pieces arriving do not move it (a streamed
	// response's deadline otherwise counts from its last piece).
	id, out := exchange(t, r, time.Now().Add(300*time.Millisecond), true, &trailerRecorder{})
	feed(t, r, frame(workerproto.FrameRespHead, id, headPayload(t, 200, -1)))
	var err error
	for i := 0; ; i++ {
		select {
		case err = <-out:
		case <-time.After(20 * time.Millisecond):
			piece := frame(workerproto.FrameRespBody, id, []byte("x"))
			piece.Flags = 0
			feed(t, r, piece)
			continue
		}
		break
	}
	if !errors.Is(err, ErrAborted) || !errors.Is(err, ErrDeadline) {
		t.Fatalf("got %v, want ErrAborted caused by ErrDeadline", err)
	}
}

// TestServeDeadline: Request.Deadline caps the route's deadline (the worker is
// told what is left of it) and one already past fails at once.
func TestServeDeadline(t *testing.T) {
	d, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := d.register(grpcHello("g", nil, "POST /p.S/M"))
	if err != nil {
		t.Fatal(err)
	}
	r := newRingSession(t)
	r.s.a = a
	a.mu.Lock()
	a.addLocked(r.s)
	a.mu.Unlock()
	var ps router.Params
	m, _ := d.Lookup("POST", "/p.S/M", &ps)
	req := &Request{Head: workerproto.RequestHead{Method: "POST", Path: "/p.S/M", HTTPVersion: "2", Scheme: "http"},
		Deadline: time.Now().Add(-time.Millisecond)}
	if err := d.Serve(context.Background(), m.Value, req, &statusRecorder{}); err != ErrDeadline {
		t.Fatalf("past deadline: %v", err)
	}
	req.Deadline = time.Now().Add(2 * time.Second) // the route says 5 s
	out := make(chan error, 1)
	w := &statusRecorder{}
	go func() { out <- d.Serve(context.Background(), m.Value, req, w) }()
	var head workerproto.RequestHead
	var id uint64
	for end := time.Now().Add(10 * time.Second); id == 0 && time.Now().Before(end); time.Sleep(100 * time.Microsecond) {
		r.poll(t, func(f shmring.Frame) {
			if workerproto.FrameType(f.Type) == workerproto.FrameReqHead {
				id = f.ID
				if head, err = workerproto.DecodeRequestHead(f.Payload); err != nil {
					t.Error(err)
				}
			}
		})
	}
	if head.TimeoutMS < 1 || head.TimeoutMS > 2000 {
		t.Fatalf("timeout_ms %d, want at most the 2 s the deadline leaves", head.TimeoutMS)
	}
	feed(t, r, respFrame(t, id, 200))
	if err := <-out; err != nil || w.status != 200 {
		t.Fatalf("%d %v", w.status, err)
	}
}
