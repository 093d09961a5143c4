package grpcgw

import (
	"context"
	"testing"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/workerproto"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

const (
	serving    = healthpb.HealthCheckResponse_SERVING
	notServing = healthpb.HealthCheckResponse_NOT_SERVING
	unknownSvc = healthpb.HealthCheckResponse_SERVICE_UNKNOWN
)

func TestHealthStatus(t *testing.T) {
	up := dispatch.GRPCService{Name: "a.Up", Serving: true}
	down := dispatch.GRPCService{Name: "a.Down"}
	for _, c := range []struct {
		svcs    []dispatch.GRPCService
		service string
		want    healthpb.HealthCheckResponse_ServingStatus
		known   bool
	}{
		{nil, "", serving, true},
		{[]dispatch.GRPCService{down}, "", notServing, true},
		{[]dispatch.GRPCService{down, up}, "", serving, true},
		{[]dispatch.GRPCService{down, up}, "a.Up", serving, true},
		{[]dispatch.GRPCService{down, up}, "a.Down", notServing, true},
		{[]dispatch.GRPCService{down}, "grpc.health.v1.Health", serving, true},
		{nil, "grpc.reflection.v1.ServerReflection", serving, true},
		{nil, "grpc.reflection.v1alpha.ServerReflection", serving, true},
		{[]dispatch.GRPCService{up}, "a.Other", unknownSvc, false},
	} {
		got, known := health(c.svcs, c.service)
		if got != c.want || known != c.known {
			t.Errorf("health(%v, %q) = %v, %v; want %v, %v", c.svcs, c.service, got, known, c.want, c.known)
		}
	}
}

func TestCheckAnswers(t *testing.T) {
	cat := &fakeCatalog{svcs: []dispatch.GRPCService{{Name: "a.Up", Serving: true}}}
	s := NewServices(cat, nil)
	ctx := context.Background()

	rec := serve(t, ctx, s, healthCheck, nil, marshal(t, &healthpb.HealthCheckRequest{Service: "a.Up"}))
	if code, _ := rec.statusOf(t); code != OK || rec.status != 200 || rec.bodyLen != -1 {
		t.Fatalf("status %v, head %d with body %d", code, rec.status, rec.bodyLen)
	}
	if ct := string(headerValue(rec.head, "content-type")); ct != "application/grpc" {
		t.Fatalf("content-type %q", ct)
	}
	msgs := messages[healthpb.HealthCheckResponse](t, rec.body)
	if len(msgs) != 1 || msgs[0].Status != serving {
		t.Fatalf("answer %v", msgs)
	}

	// Failures before any message are trailers-only.
	for _, c := range []struct {
		name    string
		headers []workerproto.Header
		body    []byte
		code    Code
	}{
		{"unknown service", nil, marshal(t, &healthpb.HealthCheckRequest{Service: "a.Nope"}), NotFound},
		{"no request", nil, nil, Internal},
		{"two requests", nil, append(marshal(t, &healthpb.HealthCheckRequest{}), marshal(t, &healthpb.HealthCheckRequest{})...), Internal},
		{"not protobuf", nil, frame(0, []byte{0xff, 0xff}), Internal},
		{"compressed without encoding", nil, frame(1, gzipped(t, nil)), Internal},
		{"unknown encoding", []workerproto.Header{{Name: []byte("grpc-encoding"), Value: []byte("br")}}, frame(1, []byte("x")), Unimplemented},
		{"too large", nil, []byte{0, 0x7f, 0, 0, 0}, ResourceExhausted},
	} {
		rec := serve(t, ctx, s, healthCheck, c.headers, c.body)
		if code, msg := rec.statusOf(t); code != c.code || rec.trailers != nil || len(rec.calls) != 1 || msg == "" {
			t.Errorf("%s: %v %q after %v, want a trailers-only %v", c.name, code, msg, rec.calls, c.code)
		}
	}

	// A gzip-compressed request.
	req, _ := appendMessage(nil, &healthpb.HealthCheckRequest{Service: "a.Up"})
	gz := []workerproto.Header{{Name: []byte("grpc-encoding"), Value: []byte("gzip")}}
	rec = serve(t, ctx, s, healthCheck, gz, frame(1, gzipped(t, req[prefixLen:])))
	if code, msg := rec.statusOf(t); code != OK {
		t.Fatalf("gzip request: %v %q", code, msg)
	}
}

// Watch sends the status at once, then each change, and a deadline ends it
// DEADLINE_EXCEEDED.
func TestWatchDeadline(t *testing.T) {
	s := NewServices(&fakeCatalog{svcs: []dispatch.GRPCService{{Name: "a.Up", Serving: true}}}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*watchInterval)
	defer cancel()
	rec := serve(t, ctx, s, healthWatch, nil, marshal(t, &healthpb.HealthCheckRequest{Service: "a.Up"}))
	if code, _ := rec.statusOf(t); code != DeadlineExceeded {
		t.Fatalf("Watch ended %v", code)
	}
	msgs := messages[healthpb.HealthCheckResponse](t, rec.body)
	if len(msgs) != 1 || msgs[0].Status != serving {
		t.Fatalf("Watch sent %v, want one SERVING (no change)", msgs)
	}
	if rec.flushes != 1 {
		t.Fatalf("%d flushes for one message", rec.flushes)
	}
}

// A canceled call is not answered: Serve says so.
func TestWatchCanceled(t *testing.T) {
	s := NewServices(new(fakeCatalog), nil)
	ctx, cancel := context.WithCancel(context.Background())
	rec := new(recorder)
	rec2 := &cancelOnBody{recorder: rec, cancel: cancel}
	req := &dispatch.Request{Body: marshal(t, &healthpb.HealthCheckRequest{Service: "x.Y"})}
	if err := s.Serve(ctx, s.Route(healthWatch), req, rec2); err != dispatch.ErrCanceled {
		t.Fatalf("Serve = %v, want ErrCanceled", err)
	}
	msgs := messages[healthpb.HealthCheckResponse](t, rec.body)
	if len(msgs) != 1 || msgs[0].Status != unknownSvc || rec.trailers != nil {
		t.Fatalf("sent %v then trailers %q", msgs, rec.trailers)
	}
}

// cancelOnBody cancels the call's context once the first message is written.
type cancelOnBody struct {
	*recorder
	cancel context.CancelFunc
}

func (c *cancelOnBody) WriteBody(p []byte) error {
	defer c.cancel()
	return c.recorder.WriteBody(p)
}

// grpc-go's health client over h2c: Check, List and Watch following changes.
func TestHealthClient(t *testing.T) {
	cat := &fakeCatalog{svcs: []dispatch.GRPCService{{Name: "a.Up", Serving: true}, {Name: "a.Down"}}}
	_, conn := h2cServer(t, NewServices(cat, nil))
	client := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for svc, want := range map[string]healthpb.HealthCheckResponse_ServingStatus{"": serving, "a.Up": serving, "a.Down": notServing} {
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.Status != want {
			t.Fatalf("Check(%q) = %v, %v; want %v", svc, resp, err, want)
		}
	}
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "a.Nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("Check of an unknown service: %v", err)
	}

	list, err := client.List(ctx, &healthpb.HealthListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]healthpb.HealthCheckResponse_ServingStatus{
		"": serving, "a.Up": serving, "a.Down": notServing, "grpc.health.v1.Health": serving,
		"grpc.reflection.v1.ServerReflection": serving, "grpc.reflection.v1alpha.ServerReflection": serving,
	}
	if len(list.Statuses) != len(want) {
		t.Fatalf("List = %v", list.Statuses)
	}
	for name, st := range want {
		if list.Statuses[name].GetStatus() != st {
			t.Fatalf("List[%q] = %v, want %v", name, list.Statuses[name], st)
		}
	}

	wctx, wcancel := context.WithCancel(ctx)
	stream, err := client.Watch(wctx, &healthpb.HealthCheckRequest{Service: "a.New"})
	if err != nil {
		t.Fatal(err)
	}
	next := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		resp, err := stream.Recv()
		if err != nil || resp.Status != want {
			t.Fatalf("Watch sent %v, %v; want %v", resp, err, want)
		}
	}
	next(unknownSvc)
	cat.setServices(dispatch.GRPCService{Name: "a.New", Serving: true})
	next(serving)
	cat.setServices(dispatch.GRPCService{Name: "a.New"})
	next(notServing)
	cat.setServices()
	next(unknownSvc)
	wcancel()
	if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
		t.Fatalf("Recv after cancel: %v", err)
	}
}
