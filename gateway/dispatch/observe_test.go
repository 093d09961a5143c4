package dispatch

import (
	"strings"
	"testing"
	"time"

	"github.com/covetpy/covetpy/ops/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

func TestReadyNamesAppsWithoutWorkers(t *testing.T) {
	d, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Ready(); err == nil || !strings.Contains(err.Error(), "no app") {
		t.Fatalf("Ready with no app = %v, want an error", err)
	}
	if _, err := d.register(hello("shop", "GET /items")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.register(hello("blog", "GET /posts")); err != nil {
		t.Fatal(err)
	}
	err = d.Ready()
	if err == nil || err.Error() != `app "blog", "shop" has no live worker` {
		t.Fatalf("Ready = %v", err)
	}
	// A pooled session makes its app ready.
	a := d.apps["shop"]
	s := &Session{ID: 1, App: "shop", a: a}
	a.setState(s, stateStarting)
	a.mu.Lock()
	a.sessions = append(a.sessions, s)
	a.setStateLocked(s, stateReady)
	a.mu.Unlock()
	if err := d.Ready(); err == nil || err.Error() != `app "blog" has no live worker` {
		t.Fatalf("Ready = %v", err)
	}
}

func TestPoolStatsStates(t *testing.T) {
	d, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := d.register(hello("shop", "GET /items"))
	if err != nil {
		t.Fatal(err)
	}
	// Sessions without a segment: PoolStats must skip their rings.
	s1, s2, s3 := &Session{ID: 1, a: a}, &Session{ID: 2, a: a}, &Session{ID: 3, a: a}
	for _, s := range []*Session{s1, s2, s3} {
		a.setState(s, stateStarting)
	}
	a.mu.Lock()
	a.sessions = append(a.sessions, s1, s2)
	a.setStateLocked(s1, stateReady)
	a.setStateLocked(s2, stateReady)
	a.inflight, a.waiting = 5, 2
	a.mu.Unlock()
	a.remove(s2) // BYE, Drain or Retire: draining
	a.mu.Lock()
	a.removeLocked(s1, stateGone) // closed
	a.removeLocked(s1, stateDraining)
	a.mu.Unlock()
	a.remove(s1) // a gone session stays gone

	st := d.PoolStats()
	want := metrics.AppStats{App: "shop", InFlight: 5, Queued: 2, Starting: 1, Ready: 0, Draining: 1}
	if len(st.Apps) != 1 || st.Apps[0] != want {
		t.Fatalf("PoolStats.Apps = %+v, want [%+v]", st.Apps, want)
	}
	if len(st.Workers) != 0 {
		t.Fatalf("PoolStats.Workers = %+v, want none", st.Workers)
	}
}

func TestMetricsSourceAndQueueWait(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{Metrics: m, QueueTimeout: 20 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := d.register(hello("shop", "GET /items"))
	if err != nil {
		t.Fatal(err)
	}
	s := &Session{ID: 1, a: a}
	a.sessions = append(a.sessions, s)
	got, err := a.acquire(t.Context(), Config{MaxInflight: 1, QueueSize: 1, QueueTimeout: 20 * time.Millisecond})
	if err != nil || got != s {
		t.Fatalf("acquire = %v, %v", got, err)
	}
	// The only worker is busy: the next request waits and times out.
	if _, err := a.acquire(t.Context(), Config{MaxInflight: 1, QueueSize: 1, QueueTimeout: 20 * time.Millisecond}); err != ErrQueueTimeout {
		t.Fatalf("second acquire: %v, want ErrQueueTimeout", err)
	}
	a.release(s)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var count uint64
	var sum float64
	var sawWorkers bool
	for _, mf := range mfs {
		switch mf.GetName() {
		case "covet_queue_wait_seconds":
			h := mf.GetMetric()[0].GetHistogram()
			count, sum = h.GetSampleCount(), h.GetSampleSum()
		case "covet_workers":
			sawWorkers = true
		}
	}
	if count != 2 || sum < 0.015 {
		t.Errorf("queue wait: %d samples summing %vs, want 2 (0 and about 20ms)", count, sum)
	}
	if !sawWorkers {
		t.Error("covet_workers not exported: New did not install the pool source")
	}
}
