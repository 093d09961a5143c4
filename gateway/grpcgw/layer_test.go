package grpcgw

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/ops/metrics"
	"github.com/covetpy/covetpy/router"
	"github.com/covetpy/covetpy/workerproto"
)

// tableBackend routes one KindGRPC route and the unavailable route for
// every other path, as the dispatcher does while no worker has registered.
type tableBackend struct {
	rt, unavailable *dispatch.Route
	served          []string
}

func (b *tableBackend) Lookup(method, path string, ps *router.Params) (router.Match[*dispatch.Route], router.Status) {
	if path == b.rt.Pattern {
		return router.Match[*dispatch.Route]{Value: b.rt, Pattern: path}, router.StatusFound
	}
	return router.Match[*dispatch.Route]{Value: b.unavailable, Pattern: metrics.Unmatched}, router.StatusFound
}

func (b *tableBackend) Serve(ctx context.Context, rt *dispatch.Route, req *dispatch.Request, w dispatch.ResponseWriter) error {
	b.served = append(b.served, req.Head.Path)
	return dispatch.ErrNoWorker
}

func (b *tableBackend) ServeWebSocket(context.Context, *dispatch.Route, *dispatch.Request, dispatch.WebSocketPeer) error {
	return errors.New("none")
}

// stubLocal stands in for the gateway's own services.
type stubLocal struct {
	rt  *dispatch.Route
	got []string // content-type the call arrived with
}

func (h *stubLocal) Route(path string) *dispatch.Route {
	if path == h.rt.Pattern {
		return h.rt
	}
	return nil
}

func (h *stubLocal) Serve(ctx context.Context, rt *dispatch.Route, req *dispatch.Request, w dispatch.ResponseWriter) error {
	h.got = append(h.got, string(field(req.Head.Headers, "content-type")))
	if err := w.WriteHead(200, []workerproto.Header{{Name: []byte("content-type"), Value: []byte("application/grpc")}}, -1); err != nil {
		return err
	}
	if err := w.WriteBody([]byte{0, 0, 0, 0, 2, 8, 1}); err != nil {
		return err
	}
	return w.(dispatch.TrailerWriter).WriteTrailers(StatusFields(nil, OK, ""))
}

// sink records what reaches the front end.
type sink struct {
	status   int
	head     []string
	body     []byte
	trailers []string
}

func (s *sink) WriteHead(status int, hs []workerproto.Header, n int64) error {
	s.status = status
	for _, h := range hs {
		s.head = append(s.head, string(h.Name)+"="+string(h.Value))
	}
	return nil
}
func (s *sink) WriteBody(p []byte) error { s.body = append(s.body, p...); return nil }
func (s *sink) WriteBodyv(ps [][]byte) error {
	for _, p := range ps {
		s.body = append(s.body, p...)
	}
	return nil
}
func (s *sink) WriteTrailers(hs []workerproto.Header) error {
	for _, h := range hs {
		s.trailers = append(s.trailers, string(h.Name)+"="+string(h.Value))
	}
	return nil
}

// TestLocalServices: a path the table does not route goes to Local's route
// (even while the table answers misses with the unavailable route), and
// Local serves it outside the chain, gRPC-Web translated; a gRPC call on
// the unavailable route is answered UNAVAILABLE as a gRPC status.
func TestLocalServices(t *testing.T) {
	next := &tableBackend{rt: &dispatch.Route{Pattern: "/app.S/M", Kind: dispatch.KindGRPC},
		unavailable: &dispatch.Route{Pattern: metrics.Unmatched}}
	local := &stubLocal{rt: &dispatch.Route{Pattern: "/grpc.health.v1.Health/Check", Kind: dispatch.KindGRPC}}
	l := New(next, local, nil, nil)
	var ps router.Params
	call := func(path, ct string) *sink {
		t.Helper()
		m, st := l.Lookup("POST", path, &ps)
		if st != router.StatusFound {
			t.Fatalf("%s: %v", path, st)
		}
		req := &dispatch.Request{Head: workerproto.RequestHead{Method: "POST", Path: path,
			Headers: []workerproto.Header{{Name: []byte("Content-Type"), Value: []byte(ct)}}}}
		w := &sink{}
		if err := l.Serve(context.Background(), m.Value, req, w); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return w
	}
	w := call("/grpc.health.v1.Health/Check", "application/grpc")
	if w.status != 200 || string(w.body) != "\x00\x00\x00\x00\x02\x08\x01" || strings.Join(w.trailers, " ") != "grpc-status=0" {
		t.Fatalf("native: %d %q %v", w.status, w.body, w.trailers)
	}
	w = call("/grpc.health.v1.Health/Check", "application/grpc-web+proto")
	if !strings.HasSuffix(string(w.body), "\x80\x00\x00\x00\x10grpc-status: 0\r\n") || len(w.trailers) != 0 {
		t.Fatalf("gRPC-Web: %q %v", w.body, w.trailers)
	}
	if strings.Join(local.got, " ") != "application/grpc application/grpc+proto" {
		t.Fatalf("local saw %v", local.got)
	}
	if len(next.served) != 0 {
		t.Fatalf("local calls went through next: %v", next.served)
	}
	w = call("/other.S/M", "application/grpc")
	if strings.Join(w.head, " ") != "content-type=application/grpc grpc-status=14 grpc-message=no live worker" {
		t.Fatalf("unavailable: %v", w.head)
	}
	// A GET is never Local's.
	if m, _ := l.Lookup("GET", "/grpc.health.v1.Health/Check", &ps); m.Value == local.rt {
		t.Fatal("a GET routed to a gRPC method")
	}
}

// fielder is a backend that adds fields to the files the front end serves.
type fielder struct{ tableBackend }

func (fielder) StaticFields(_ *dispatch.Route, _ []byte, _ bool, hs []workerproto.Header) []workerproto.Header {
	return append(hs, workerproto.Header{Name: []byte("x-content-type-options"), Value: []byte("nosniff")})
}

// TestStaticFieldsPassThrough: the chain's fields for static files (CORS,
// security headers) reach the front end through the Layer; a backend
// without them adds none.
func TestStaticFieldsPassThrough(t *testing.T) {
	rt := &dispatch.Route{Kind: dispatch.KindStatic}
	if got := New(&fielder{}, nil, nil, nil).StaticFields(rt, nil, true, nil); len(got) != 1 || string(got[0].Value) != "nosniff" {
		t.Fatalf("with a fielder: %v", got)
	}
	if got := New(&tableBackend{}, nil, nil, nil).StaticFields(rt, nil, true, nil); len(got) != 0 {
		t.Fatalf("without one: %v", got)
	}
}
