package metrics

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

func newTest(t *testing.T) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

// family returns the gathered family name, or nil.
func family(t *testing.T, g prometheus.Gatherer, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	return nil
}

// find returns the metric of mf whose labels include want, or nil.
func find(mf *dto.MetricFamily, want map[string]string) *dto.Metric {
	if mf == nil {
		return nil
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		return m
	}
	return nil
}

func TestRouteCountsAndBuckets(t *testing.T) {
	m, reg := newTest(t)
	r := m.Route("shop", "/items/{id}", "GET", ProtoHTTP1)
	if m.Route("shop", "/items/{id}", "GET", ProtoHTTP1) != r {
		t.Fatal("Route returned a new handle for the same labels")
	}
	r.Observe(200, 150*time.Microsecond) // bucket 0.00025
	r.Observe(200, 3*time.Millisecond)   // bucket 0.005
	r.Observe(503, 20*time.Second)       // bucket 30
	m.Route("", Unmatched, "BREW", ProtoHTTP1).Observe(404, time.Millisecond)

	if got := testutil.ToFloat64(m.requests.WithLabelValues("shop", "/items/{id}", "GET", "200", ProtoHTTP1)); got != 2 {
		t.Errorf("200 counter = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("shop", "/items/{id}", "GET", "503", ProtoHTTP1)); got != 1 {
		t.Errorf("503 counter = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("", Unmatched, "OTHER", "404", ProtoHTTP1)); got != 1 {
		t.Errorf("unmatched OTHER 404 counter = %v, want 1 (unknown methods fold into OTHER)", got)
	}

	h := find(family(t, reg, "covet_request_duration_seconds"),
		map[string]string{"app": "shop", "route": "/items/{id}", "method": "GET"}).GetHistogram()
	if h.GetSampleCount() != 3 {
		t.Fatalf("histogram count = %d, want 3", h.GetSampleCount())
	}
	if len(h.GetBucket()) != len(LatencyBuckets) {
		t.Fatalf("%d buckets, want %d", len(h.GetBucket()), len(LatencyBuckets))
	}
	want := map[float64]uint64{0.0001: 0, 0.00025: 1, 0.0025: 1, 0.005: 2, 10: 2, 30: 3}
	for _, b := range h.GetBucket() {
		if w, ok := want[b.GetUpperBound()]; ok && b.GetCumulativeCount() != w {
			t.Errorf("bucket le=%v: cumulative %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), w)
		}
	}
	if s := h.GetSampleSum(); s < 20.003 || s > 20.0032 {
		t.Errorf("histogram sum = %v, want about 20.00315", s)
	}
}

func TestBucketsSpan(t *testing.T) {
	if LatencyBuckets[0] != 0.0001 || LatencyBuckets[len(LatencyBuckets)-1] != 30 {
		t.Fatalf("buckets span %v..%v, want 100us..30s", LatencyBuckets[0], LatencyBuckets[len(LatencyBuckets)-1])
	}
	for i := 1; i < len(LatencyBuckets); i++ {
		if r := LatencyBuckets[i] / LatencyBuckets[i-1]; r <= 1 || r > 3 {
			t.Errorf("buckets %v -> %v: ratio %.2f, want within (1, 3] for usable quantiles",
				LatencyBuckets[i-1], LatencyBuckets[i], r)
		}
	}
}

func TestCountersAndGauges(t *testing.T) {
	m, _ := newTest(t)
	m.ConnAccepted()
	m.ConnAccepted()
	m.ConnOpened(ProtoHTTP1)
	m.ConnOpened(ProtoHTTP1)
	m.ConnClosed(ProtoHTTP1)
	m.ConnOpened(ProtoH2)
	m.TLSHandshakeFailed()
	m.BytesIn(100)
	m.BytesIn(0)
	m.BytesOut(250)
	m.WorkerRestarted("shop", "killed")
	m.WorkerRestarted("shop", "killed")
	m.WorkerRecycled("shop", "max_requests")
	m.App("shop").QueueWait(2 * time.Millisecond)
	checks := []struct {
		name string
		c    prometheus.Collector
		want float64
	}{
		{"connections open", m.connsOpen.WithLabelValues(ProtoHTTP1), 1},
		{"h2 connections open", m.connsOpen.WithLabelValues(ProtoH2), 1},
		{"tls handshake failures", m.tlsFailures, 1},
		{"connections accepted", m.connsAccepted, 2},
		{"bytes in", m.bytesIn, 100},
		{"bytes out", m.bytesOut, 250},
		{"restarts", m.restarts.WithLabelValues("shop", "killed"), 2},
		{"recycles", m.recycles.WithLabelValues("shop", "max_requests"), 1},
	}
	for _, c := range checks {
		if got := testutil.ToFloat64(c.c); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(m.queueWait, "covet_queue_wait_seconds"); n != 1 {
		t.Errorf("queue wait series = %d, want 1", n)
	}
}

func TestPoolSource(t *testing.T) {
	m, reg := newTest(t)
	if mf := family(t, reg, "covet_workers"); mf != nil {
		t.Fatal("pool gauges exported before a source was set")
	}
	m.SetPoolSource(func() PoolStats {
		return PoolStats{
			Apps: []AppStats{{App: "shop", InFlight: 3, Queued: 2, Starting: 1, Ready: 4}},
			Workers: []WorkerStats{{App: "shop", Worker: 7, RequestRingUsed: 64, RequestRingSize: 1 << 20,
				ResponseRingUsed: 128, ResponseRingSize: 1 << 20}},
		}
	})
	gauge := func(name string, labels map[string]string) float64 {
		t.Helper()
		mt := find(family(t, reg, name), labels)
		if mt == nil {
			t.Fatalf("%s%v missing", name, labels)
		}
		return mt.GetGauge().GetValue()
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"covet_requests_in_flight", map[string]string{"app": "shop"}, 3},
		{"covet_queue_depth", map[string]string{"app": "shop"}, 2},
		{"covet_workers", map[string]string{"app": "shop", "state": "starting"}, 1},
		{"covet_workers", map[string]string{"app": "shop", "state": "ready"}, 4},
		{"covet_workers", map[string]string{"app": "shop", "state": "draining"}, 0},
		{"covet_ring_bytes_used", map[string]string{"app": "shop", "worker": "7", "ring": "request"}, 64},
		{"covet_ring_bytes_used", map[string]string{"app": "shop", "worker": "7", "ring": "response"}, 128},
		{"covet_ring_bytes_capacity", map[string]string{"app": "shop", "worker": "7", "ring": "response"}, 1 << 20},
	} {
		if got := gauge(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

func TestRuntimeCollectorsOnInjectedRegistry(t *testing.T) {
	_, reg := newTest(t)
	for _, name := range []string{"go_goroutines", "process_open_fds"} {
		if family(t, reg, name) == nil {
			t.Errorf("%s not on the injected registry", name)
		}
	}
	if _, err := New(reg); err == nil {
		t.Error("a second New on the same registry succeeded; want a duplicate-registration error")
	}
}

func TestNilSafe(t *testing.T) {
	var m *Metrics
	r := m.Route("a", "/", "GET", ProtoHTTP1)
	r.Observe(200, time.Millisecond)
	m.App("a").QueueWait(time.Millisecond)
	m.ConnAccepted()
	m.ConnOpened(ProtoHTTP1)
	m.ConnClosed(ProtoHTTP1)
	m.TLSHandshakeFailed()
	m.BytesIn(1)
	m.BytesOut(1)
	m.WorkerRestarted("a", "x")
	m.WorkerRecycled("a", "x")
	m.SetPoolSource(nil)
	m.AuthDecision("deny", "expired")
	m.JWKSFetch("ok")
	m.RateLimited("a")
	m.RateLimitStoreError("open")
	m.ClientRefused("conns_per_ip")
	m.CORSPreflight("allowed")
	m.Compressed("gzip")
	m.GRPCCall("a.B", "C", "OK")
}

func TestGRPCCalls(t *testing.T) {
	m, reg := newTest(t)
	m.GRPCCall("helloworld.Greeter", "SayHello", "OK")
	m.GRPCCall("helloworld.Greeter", "SayHello", "OK")
	m.GRPCCall(Unmatched, Unmatched, "UNIMPLEMENTED")
	want := map[string]string{"service": "helloworld.Greeter", "method": "SayHello", "code": "OK"}
	if c := find(family(t, reg, "covet_grpc_calls_total"), want); c.GetCounter().GetValue() != 2 {
		t.Fatal(c)
	}
	want = map[string]string{"service": Unmatched, "method": Unmatched, "code": "UNIMPLEMENTED"}
	if c := find(family(t, reg, "covet_grpc_calls_total"), want); c.GetCounter().GetValue() != 1 {
		t.Fatal(c)
	}
}

func TestSecurityCounters(t *testing.T) {
	m, reg := newTest(t)
	m.AuthDecision("deny", "expired")
	m.AuthDecision("deny", "expired")
	m.RateLimitStoreError("closed")
	if c := find(family(t, reg, "covet_auth_decisions_total"), map[string]string{"decision": "deny", "reason": "expired"}); c.GetCounter().GetValue() != 2 {
		t.Fatal(c)
	}
	if c := find(family(t, reg, "covet_rate_limit_store_errors_total"), map[string]string{"mode": "closed"}); c.GetCounter().GetValue() != 1 {
		t.Fatal(c)
	}
}

func get(t *testing.T, h http.Handler, path string, header ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHandler(t *testing.T) {
	m, reg := newTest(t)
	m.Route("shop", "/", "GET", ProtoHTTP1).Observe(200, time.Millisecond)
	var readyErr error
	h := Handler(reg, func() error { return readyErr })

	r := get(t, h, "/metrics")
	text := body(t, r)
	if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Errorf("/metrics: %d %q", r.StatusCode, r.Header.Get("Content-Type"))
	}
	if !strings.Contains(text, `covet_requests_total{app="shop",method="GET",protocol="http/1.1",route="/",status="200"} 1`) {
		t.Errorf("/metrics lacks the request counter:\n%s", text)
	}
	r = get(t, h, "/metrics", "Accept", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited")
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/vnd.google.protobuf") {
		t.Errorf("/metrics with a protobuf Accept: Content-Type %q", ct)
	}
	r = get(t, h, "/metrics", "Accept", "application/openmetrics-text; version=1.0.0")
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Errorf("/metrics with an OpenMetrics Accept: Content-Type %q", ct)
	}

	r = get(t, h, "/healthz")
	if b := body(t, r); r.StatusCode != 200 || b != "ok\n" || r.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("/healthz: %d %q %q", r.StatusCode, b, r.Header.Get("Content-Type"))
	}

	r = get(t, h, "/readyz")
	if b := body(t, r); r.StatusCode != 200 || b != "ready\n" {
		t.Errorf("/readyz while ready: %d %q", r.StatusCode, b)
	}
	readyErr = errors.New(`app "shop" has no live worker`)
	r = get(t, h, "/readyz")
	if b := body(t, r); r.StatusCode != 503 || !strings.Contains(b, `app "shop" has no live worker`) ||
		r.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("/readyz while not ready: %d %q", r.StatusCode, b)
	}
	readyErr = nil
	if r = get(t, h, "/readyz"); r.StatusCode != 200 {
		t.Errorf("/readyz after recovery: %d", r.StatusCode)
	}

	if r = get(t, Handler(reg, nil), "/readyz"); r.StatusCode != 200 {
		t.Errorf("/readyz with a nil check: %d", r.StatusCode)
	}
	if r = get(t, h, "/nope"); r.StatusCode != 404 {
		t.Errorf("/nope: %d", r.StatusCode)
	}
}

// TestObserveAllocs: recording a request on a warm handle allocates nothing,
// and neither does finding the handle again.
func TestObserveAllocs(t *testing.T) {
	m, _ := newTest(t)
	r := m.Route("shop", "/items/{id}", "GET", ProtoHTTP1)
	r.Observe(200, time.Millisecond)
	r.Observe(404, time.Millisecond)
	a := m.App("shop")
	a.QueueWait(0)
	allocs := testing.AllocsPerRun(1000, func() {
		h := m.Route("shop", "/items/{id}", "GET", ProtoHTTP1)
		h.Observe(200, 1234*time.Microsecond)
		h.Observe(404, 10*time.Microsecond)
		a.QueueWait(0)
		m.BytesIn(512)
		m.BytesOut(1024)
	})
	if allocs != 0 {
		t.Fatalf("%.2f allocations per steady-state record, want 0", allocs)
	}
}

func BenchmarkRouteObserve(b *testing.B) {
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		b.Fatal(err)
	}
	r := m.Route("shop", "/items/{id}", "GET", ProtoHTTP1)
	b.ReportAllocs()
	for b.Loop() {
		r.Observe(200, time.Millisecond)
	}
}

func BenchmarkRouteLookupObserveParallel(b *testing.B) {
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Route("shop", "/items/{id}", "GET", ProtoHTTP1).Observe(200, time.Millisecond)
		}
	})
}
