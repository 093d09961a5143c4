package server

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/ops/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

func newMetrics(t testing.TB) (*metrics.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

// metricValue is the value of the counter or gauge name{labels} (the sample
// count for a histogram), 0 when the series does not exist.
func metricValue(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

// lockedBuffer is a log sink safe for the writer goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimSpace(l.b.String()), "\n")
}

func TestMetricsAndAccessLog(t *testing.T) {
	m, reg := newMetrics(t)
	var logs lockedBuffer
	b := newFakeBackend()
	b.handle(t, "GET", "/users/{id}", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		return respond(w, 200, "user")
	})
	b.handle(t, "POST", "/fail", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		return dispatch.ErrNoWorker
	})
	ts := startServer(t, Config{Metrics: m, AccessLog: slog.New(slog.NewJSONHandler(&logs, nil))}, b)
	app := "GET /users/{id}" // fakeBackend names the app after the route

	rc := ts.dial(t)
	for _, id := range []string{"1", "2", "3"} {
		rc.send("GET /users/" + id + " HTTP/1.1\r\nHost: x\r\nX-Request-ID: req-" + id + "\r\n\r\n")
		if resp, _ := rc.read("GET"); resp.StatusCode != 200 {
			t.Fatalf("GET /users/%s: %d", id, resp.StatusCode)
		}
	}
	rc.send("GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
	rc.read("GET")
	rc.send("DELETE /users/1 HTTP/1.1\r\nHost: x\r\n\r\n")
	rc.read("DELETE")
	rc.send("POST /fail HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
	if resp, _ := rc.read("POST"); resp.StatusCode != 503 {
		t.Fatalf("POST /fail: %d", resp.StatusCode)
	}
	rc.send("GET /bad path HTTP/1.1\r\n\r\n") // a parse error: 400, then close
	rc.read("GET")
	rc.expectEOF()
	waitFor(t, "connection closed", func() bool { return ts.srv.numConns() == 0 })

	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"covet_requests_total", map[string]string{"app": app, "route": "/users/{id}", "method": "GET", "status": "200"}, 3},
		{"covet_request_duration_seconds", map[string]string{"app": app, "route": "/users/{id}", "method": "GET"}, 3},
		{"covet_requests_total", map[string]string{"app": "POST /fail", "route": "/fail", "method": "POST", "status": "503"}, 1},
		{"covet_requests_total", map[string]string{"app": "", "route": metrics.Unmatched, "method": "GET", "status": "404"}, 1},
		{"covet_requests_total", map[string]string{"app": "", "route": metrics.Unmatched, "method": "DELETE", "status": "405"}, 1},
		{"covet_requests_total", map[string]string{"app": "", "route": metrics.Unmatched, "method": "OTHER", "status": "400"}, 1},
		{"covet_connections_accepted_total", nil, 1},
		{"covet_connections_open", nil, 0},
	} {
		if got := metricValue(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	in := metricValue(t, reg, "covet_bytes_received_total", nil)
	out := metricValue(t, reg, "covet_bytes_sent_total", nil)
	if in < 200 || out < 500 {
		t.Errorf("bytes in %v, out %v: too few", in, out)
	}

	lines := logs.lines()
	if len(lines) != 7 {
		t.Fatalf("%d access log lines, want 7:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	var rec struct {
		Msg, Method, Path, RequestID, App, Route, Client string
		Status                                           int
		Bytes                                            int64
		Duration                                         time.Duration
	}
	dec := json.NewDecoder(strings.NewReader(lines[1]))
	if err := dec.Decode(&rec); err != nil {
		t.Fatal(err)
	}
	// slog's JSON keys are the attribute names; map the snake_case one.
	var raw map[string]any
	json.Unmarshal([]byte(lines[1]), &raw)
	rec.RequestID, _ = raw["request_id"].(string)
	if rec.Msg != "request" || rec.Method != "GET" || rec.Path != "/users/2" || rec.Status != 200 ||
		rec.RequestID != "req-2" || rec.App != app || rec.Route != "/users/{id}" ||
		!strings.HasPrefix(rec.Client, "127.0.0.1:") || rec.Bytes < 50 || rec.Duration <= 0 {
		t.Errorf("access log line: %s", lines[1])
	}
	if !strings.Contains(lines[3], `"status":404`) || !strings.Contains(lines[3], `"route":""`) {
		t.Errorf("404 access log line: %s", lines[3])
	}
	if !strings.Contains(lines[6], `"status":400`) {
		t.Errorf("parse error access log line: %s", lines[6])
	}
}

// TestMetricsClientGone: a request whose client leaves before the response
// counts as 499.
func TestMetricsClientGone(t *testing.T) {
	m, reg := newMetrics(t)
	started := make(chan struct{})
	b := newFakeBackend()
	b.handle(t, "GET", "/wait", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		close(started)
		<-ctx.Done()
		return dispatch.ErrCanceled
	})
	ts := startServer(t, Config{Metrics: m}, b)
	rc := ts.dial(t)
	rc.send(get("x", "/wait"))
	<-started
	rc.nc.Close()
	labels := map[string]string{"route": "/wait", "status": "499"}
	waitFor(t, "499 counted", func() bool { return metricValue(t, reg, "covet_requests_total", labels) == 1 })
}

// TestSteadyStateAllocsWithMetrics: with metrics on, a warm keep-alive
// request still costs the front end no allocation.
func TestSteadyStateAllocsWithMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: allocation count skipped")
	}
	m, reg := newMetrics(t)
	step, stop := keepAliveLoopConfig(t, Config{Metrics: m})
	defer stop()
	expectNoAllocs(t, "keep-alive request with metrics", 500, step)
	if n := metricValue(t, reg, "covet_requests_total", map[string]string{"status": "200"}); n != 602 { // first request + 100 warm-up + 1 + 500 (AllocsPerRun warms up once)
		t.Errorf("requests counted: %v, want 602", n)
	}
}

func BenchmarkKeepAliveMetrics(b *testing.B) {
	m, _ := newMetrics(b)
	step, stop := keepAliveLoopConfig(b, Config{Metrics: m})
	defer stop()
	b.ReportAllocs()
	for b.Loop() {
		step()
	}
}

func BenchmarkKeepAliveAccessLog(b *testing.B) {
	m, _ := newMetrics(b)
	step, stop := keepAliveLoopConfig(b, Config{Metrics: m, AccessLog: slog.New(slog.NewJSONHandler(discard{}, nil))})
	defer stop()
	b.ReportAllocs()
	for b.Loop() {
		step()
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
