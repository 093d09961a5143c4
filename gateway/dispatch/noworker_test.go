package dispatch

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/covetpy/covetpy/router"
)

func attachFake(a *app) *Session {
	s := &Session{a: a}
	a.mu.Lock()
	a.addLocked(s)
	a.mu.Unlock()
	return s
}

// TestMissWithoutWorkersIs503: routes come from the workers, so while none has
// registered, or an app has lost all its workers, a request the table does not
// route is answered 503 (the unavailable route, ErrNoWorker), not 404 or 405.
func TestMissWithoutWorkersIs503(t *testing.T) {
	d, _ := New(Config{}, nil)
	var ps router.Params
	unavailable := func(method, path string) bool {
		m, st := d.Lookup(method, path, &ps)
		return st == router.StatusFound && m.Value == d.unavailable
	}
	if !unavailable("GET", "/anything") {
		t.Error("no app registered yet: a miss is not the unavailable route")
	}
	err := d.Serve(context.Background(), d.unavailable, &Request{}, nil)
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 503 || se.RetryAfter == 0 {
		t.Errorf("Serve on the unavailable route: %v, want 503 with Retry-After", err)
	}

	a, err := d.register(hello("shop", "GET /items/{id:int}"))
	if err != nil {
		t.Fatal(err)
	}
	if !unavailable("GET", "/nothing") || !unavailable("POST", "/items/1") {
		t.Error("registered app without a live worker: a miss is not the unavailable route")
	}
	if m, st := d.Lookup("GET", "/items/1", &ps); st != router.StatusFound || m.Value.App != "shop" {
		t.Errorf("its own route: %v %+v", st, m.Value)
	}
	s := attachFake(a)
	if _, st := d.Lookup("GET", "/nothing", &ps); st != router.StatusNotFound {
		t.Errorf("every app has a worker: a miss is %v, want 404", st)
	}
	if _, st := d.Lookup("POST", "/items/1", &ps); st != router.StatusMethodNotAllowed {
		t.Errorf("every app has a worker: wrong method is %v, want 405", st)
	}
	a.mu.Lock()
	a.removeLocked(s, stateGone)
	a.mu.Unlock()
	if !unavailable("GET", "/nothing") {
		t.Error("the app lost its last worker: a miss is not the unavailable route")
	}
	attachFake(a)
	// Another app the supervisor expects, none of whose workers has registered.
	d.Expect("billing")
	if !unavailable("GET", "/nothing") {
		t.Error("an expected app has no worker: a miss is not the unavailable route")
	}
	if err := d.Ready(); err == nil || !strings.Contains(err.Error(), `"billing"`) {
		t.Errorf("Ready with an expected app down: %v, want it named", err)
	}
}

// TestExpectedAppQueues: a request for an app whose workers are all gone but
// expected back (the supervisor restarts them) waits in the queue for one, up to
// the queue deadline; without that expectation it fails at once.
func TestExpectedAppQueues(t *testing.T) {
	cfg := Config{QueueTimeout: 100 * time.Millisecond}.WithDefaults()
	d, _ := New(cfg, nil)
	a, err := d.register(hello("shop", "GET /items"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := a.acquire(ctx, cfg); err != ErrNoWorker {
		t.Fatalf("no worker, none expected: %v, want ErrNoWorker", err)
	}
	d.Expect("shop")
	start := time.Now()
	if _, err := a.acquire(ctx, cfg); err != ErrQueueTimeout || time.Since(start) < cfg.QueueTimeout/2 {
		t.Errorf("expected worker never came: %v after %v, want ErrQueueTimeout after the queue deadline", err, time.Since(start))
	}
	cfg.QueueTimeout = 10 * time.Second
	got := make(chan *Session, 1)
	go func() {
		s, err := a.acquire(ctx, cfg)
		if err != nil {
			t.Error(err)
		}
		got <- s
	}()
	for a.waitingNow() == 0 {
		time.Sleep(time.Millisecond)
	}
	s := attachFake(a)
	select {
	case g := <-got:
		if g != s {
			t.Errorf("acquire returned %p, want the worker that attached (%p)", g, s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a waiting request was not given the worker that attached")
	}
	// Drain: nothing comes back any more, so nothing waits.
	a.mu.Lock()
	a.removeLocked(s, stateGone)
	a.mu.Unlock()
	d.Drain(time.Second)
	if _, err := a.acquire(ctx, cfg); err != ErrNoWorker {
		t.Errorf("after Drain: %v, want ErrNoWorker", err)
	}
}

func (a *app) waitingNow() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.waiting
}
